/*
 * fsevent.c -- filesystem watchers.
 */
#include <stdlib.h>

#include "loop-int.h"

struct casl_fs_event {
  casl_handle h;
  uv_fs_event_t uv;
};

static void fs_event_cb(uv_fs_event_t *u, const char *name, int events,
                        int status) {
  casl_fs_event *w = u->data;
  casl_event *ev;
  if (w->h.flags & CASL_HF_CLOSING)
    return;
  ev = casl__event_push(w->h.loop, CASL_EV_FS_EVENT, &w->h);
  if (ev == NULL) {
    casl__handle_lost(&w->h, UV_ENOMEM);
    return;
  }
  ev->code = status;
  ev->num = (events & UV_RENAME ? CASL_FS_RENAME : 0) |
            (events & UV_CHANGE ? CASL_FS_CHANGE : 0);
  /* Out of memory for the name: the event still counts, name unknown. */
  if (name != NULL)
    ev->buf = casl__strdup(name);
}

static uv_handle_t *fs_event_uv(casl_handle *h) {
  return (uv_handle_t *)&((casl_fs_event *)h)->uv;
}

static void fs_event_close(casl_handle *h) {
  casl_fs_event_close((casl_fs_event *)h);
}

static void fs_event_close_now(casl_handle *h) {
  casl__handle_close_uv(fs_event_uv(h));
}

static const casl_handle_ops fs_event_ops = {
    "fs-watcher", fs_event_uv, fs_event_close, fs_event_close_now,
    NULL,         NULL,        NULL,           NULL};

int casl_fs_event_new(casl_loop *loop, int64_t id, const char *path,
                      casl_fs_event **out) {
  casl_fs_event *w;
  int rc;
  *out = NULL;
  if (path == NULL || *path == '\0')
    return CASL_EINVAL;
  w = casl__calloc(1, sizeof(*w));
  if (w == NULL)
    return CASL_ENOMEM;
  rc = uv_fs_event_init(&loop->uv, &w->uv);
  if (rc != 0) {
    casl__free(w);
    return rc;
  }
  w->uv.data = w;
  casl__handle_init(loop, &w->h, &fs_event_ops, id, &loop->st.fs_watchers);
  w->h.uv_open = 1;
  rc = uv_fs_event_start(&w->uv, fs_event_cb, path, 0);
  if (rc != 0) {
    w->h.flags |= CASL_HF_SILENT | CASL_HF_CLOSING;
    fs_event_close_now(&w->h);
    return rc;
  }
  *out = w;
  return 0;
}

int casl_fs_event_stop(casl_fs_event *w) {
  if (w->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  return uv_fs_event_stop(&w->uv);
}

void casl_fs_event_close(casl_fs_event *w) {
  if (w == NULL || (w->h.flags & CASL_HF_CLOSING))
    return;
  w->h.flags |= CASL_HF_CLOSING;
  fs_event_close_now(&w->h);
}
