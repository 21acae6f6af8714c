/*
 * notifier.c -- notifiers: wake the loop from any thread.
 */
#include <stdlib.h>

#include "loop-int.h"

struct casl_notifier {
  casl_handle h;
  uv_async_t uv;
};

static void async_cb(uv_async_t *u) {
  casl_notifier *n = u->data;
  if (n->h.flags & CASL_HF_CLOSING)
    return;
  if (casl__event_push(n->h.loop, CASL_EV_NOTIFY, &n->h) == NULL)
    casl__handle_lost(&n->h, UV_ENOMEM);
}

static uv_handle_t *notifier_uv(casl_handle *h) {
  return (uv_handle_t *)&((casl_notifier *)h)->uv;
}

static void notifier_close(casl_handle *h) {
  casl_notifier_close((casl_notifier *)h);
}

static void notifier_close_now(casl_handle *h) {
  casl__handle_close_uv(notifier_uv(h));
}

static const casl_handle_ops notifier_ops = {
    "notifier", notifier_uv, notifier_close, notifier_close_now,
    NULL,       NULL,        NULL,           NULL};

int casl_notifier_new(casl_loop *loop, int64_t id, casl_notifier **out) {
  casl_notifier *n;
  int rc;
  *out = NULL;
  n = casl__calloc(1, sizeof(*n));
  if (n == NULL)
    return CASL_ENOMEM;
  rc = uv_async_init(&loop->uv, &n->uv, async_cb);
  if (rc != 0) {
    casl__free(n);
    return rc;
  }
  casl__handle_init(loop, &n->h, &notifier_ops, id, &loop->st.notifiers);
  n->h.uv_open = 1;
  n->uv.data = n;
  *out = n;
  return 0;
}

int casl_notifier_send(casl_notifier *n) { return uv_async_send(&n->uv); }

void casl_notifier_close(casl_notifier *n) {
  if (n == NULL || (n->h.flags & CASL_HF_CLOSING))
    return;
  n->h.flags |= CASL_HF_CLOSING;
  casl__handle_close_uv((uv_handle_t *)&n->uv);
}
