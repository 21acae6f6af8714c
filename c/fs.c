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
} fs_req;

static void fs_done(uv_fs_t *u) {
  fs_req *r = u->data;
  casl_loop *loop = r->loop;
  casl_event *ev;
  casl__req_remove(loop, &r->req);
  loop->st.fs_requests--;
  if (!loop->tearing_down &&
      (ev = casl__event_push(loop, CASL_EV_FS, NULL)) != NULL) {
    ev->id = r->id;
    ev->code = u->result < 0 ? (int)u->result : 0;
    if (ev->code == 0 && (ev->buf = casl__strdup(u->path)) == NULL)
      ev->code = UV_ENOMEM;
  }
  uv_fs_req_cleanup(u);
  free(r);
}

int casl_fs_mkdtemp(casl_loop *loop, int64_t id, const char *tmpl) {
  fs_req *r;
  size_t n;
  int rc;
  if (tmpl == NULL || (n = strlen(tmpl)) < 6 ||
      strcmp(tmpl + n - 6, "XXXXXX") != 0)
    return UV_EINVAL;
  r = calloc(1, sizeof(*r));
  if (r == NULL)
    return CASL_ENOMEM;
  r->loop = loop;
  r->id = id;
  r->uv.data = r;
  r->req.uv = (uv_req_t *)&r->uv;
  rc = uv_fs_mkdtemp(&loop->uv, &r->uv, tmpl, fs_done);
  if (rc != 0) {
    uv_fs_req_cleanup(&r->uv);
    free(r);
    return rc;
  }
  casl__req_add(loop, &r->req);
  loop->st.fs_requests++;
  return 0;
}
