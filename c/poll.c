/*
 * poll.c -- descriptor pollers (the application's own file descriptors).
 */
#include <stdlib.h>

#include "loop-int.h"

struct casl_poll {
  casl_handle h;
  uv_poll_t uv;
};

static void poll_cb(uv_poll_t *u, int status, int events) {
  casl_poll *p = u->data;
  casl_event *ev;
  if (p->h.flags & CASL_HF_CLOSING)
    return;
  ev = casl__event_push(p->h.loop, CASL_EV_POLL, &p->h);
  if (ev == NULL) {
    casl__handle_lost(&p->h, UV_ENOMEM);
    return;
  }
  ev->code = status;
  ev->num = status < 0
                ? 0
                : (events & UV_READABLE ? CASL_POLL_READABLE : 0) |
                      (events & UV_WRITABLE ? CASL_POLL_WRITABLE : 0) |
                      (events & UV_DISCONNECT ? CASL_POLL_DISCONNECT : 0);
}

static uv_handle_t *poll_uv(casl_handle *h) {
  return (uv_handle_t *)&((casl_poll *)h)->uv;
}

static void poll_close(casl_handle *h) { casl_poll_close((casl_poll *)h); }

static void poll_close_now(casl_handle *h) {
  casl__handle_close_uv(poll_uv(h));
}

static const casl_handle_ops poll_ops = {
    "poller", poll_uv, poll_close, poll_close_now, NULL, NULL, NULL, NULL};

int casl_poll_new(casl_loop *loop, int64_t id, int fd, int events,
                  casl_poll **out) {
  casl_poll *p;
  int rc, uvev;
  *out = NULL;
  if (fd < 0 || events == 0 ||
      (events &
       ~(CASL_POLL_READABLE | CASL_POLL_WRITABLE | CASL_POLL_DISCONNECT)) != 0)
    return CASL_EINVAL;
  p = casl__calloc(1, sizeof(*p));
  if (p == NULL)
    return CASL_ENOMEM;
  /* uv_poll_init fails before it links the handle: nothing to close. */
  rc = uv_poll_init(&loop->uv, &p->uv, fd);
  if (rc != 0) {
    casl__free(p);
    return rc;
  }
  p->uv.data = p;
  casl__handle_init(loop, &p->h, &poll_ops, id, &loop->st.pollers);
  p->h.uv_open = 1;
  uvev = (events & CASL_POLL_READABLE ? UV_READABLE : 0) |
         (events & CASL_POLL_WRITABLE ? UV_WRITABLE : 0) |
         (events & CASL_POLL_DISCONNECT ? UV_DISCONNECT : 0);
  rc = uv_poll_start(&p->uv, uvev, poll_cb);
  if (rc != 0) {
    p->h.flags |= CASL_HF_SILENT | CASL_HF_CLOSING;
    poll_close_now(&p->h);
    return rc;
  }
  *out = p;
  return 0;
}

void casl_poll_close(casl_poll *p) {
  if (p == NULL || (p->h.flags & CASL_HF_CLOSING))
    return;
  p->h.flags |= CASL_HF_CLOSING;
  poll_close_now(&p->h);
}
