/*
 * fs.c -- filesystem requests, run on libuv's thread pool.
 */
#include <stdlib.h>
#include <string.h>

#include "loop-int.h"

typedef struct fs_req {
  casl_req req; /* listed in the loop: cancelled at teardown */
  uv_fs_t uv;
  casl_loop *loop;
  int64_t id;
  casl_event *ev; /* taken beforehand: the result can always be told */
} fs_req;

static void fs_done(uv_fs_t *u) {
  fs_req *r = u->data;
  casl_loop *loop = r->loop;
  casl_event *ev = r->ev;
  casl__req_remove(loop, &r->req);
  loop->st.fs_requests--;
  if (loop->tearing_down) {
    casl__event_discard(loop, ev);
  } else {
    ev->id = r->id;
    ev->code = u->result < 0 ? (int)u->result : 0;
    if (ev->code == 0 && (ev->buf = casl__strdup(u->path)) == NULL)
      ev->code = UV_ENOMEM;
    casl__event_queue(loop, ev, CASL_EV_FS, NULL);
  }
  uv_fs_req_cleanup(u);
  casl__free(r);
}

int casl_fs_mkdtemp(casl_loop *loop, int64_t id, const char *tmpl) {
  fs_req *r;
  size_t n;
  int rc;
  if (tmpl == NULL || (n = strlen(tmpl)) < 6 ||
      strcmp(tmpl + n - 6, "XXXXXX") != 0)
    return UV_EINVAL;
  r = casl__calloc(1, sizeof(*r));
  if (r == NULL || (r->ev = casl__event_new(loop)) == NULL) {
    casl__free(r);
    return CASL_ENOMEM;
  }
  r->loop = loop;
  r->id = id;
  r->uv.data = r;
  r->req.uv = (uv_req_t *)&r->uv;
  rc = uv_fs_mkdtemp(&loop->uv, &r->uv, tmpl, fs_done);
  if (rc != 0) {
    uv_fs_req_cleanup(&r->uv);
    casl__event_discard(loop, r->ev);
    casl__free(r);
    return rc;
  }
  casl__req_add(loop, &r->req);
  loop->st.fs_requests++;
  return 0;
}
