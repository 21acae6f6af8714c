/*
 * timer.c -- timers.
 */
#include <stdlib.h>

#include "loop-int.h"

struct casl_timer {
  casl_handle h;
  uv_timer_t uv;
};

static void timer_cb(uv_timer_t *u) {
  casl_timer *t = u->data;
  if (t->h.flags & CASL_HF_CLOSING)
    return;
  if (casl__event_push(t->h.loop, CASL_EV_TIMER, &t->h) == NULL)
    casl__handle_lost(&t->h, UV_ENOMEM);
}

static uv_handle_t *timer_uv(casl_handle *h) {
  return (uv_handle_t *)&((casl_timer *)h)->uv;
}

static void timer_close(casl_handle *h) { casl_timer_close((casl_timer *)h); }

static void timer_close_now(casl_handle *h) {
  casl__handle_close_uv(timer_uv(h));
}

static const casl_handle_ops timer_ops = {
    "timer", timer_uv, timer_close, timer_close_now, NULL, NULL, NULL, NULL};

int casl_timer_new(casl_loop *loop, int64_t id, casl_timer **out) {
  casl_timer *t;
  int rc;
  *out = NULL;
  t = casl__calloc(1, sizeof(*t));
  if (t == NULL)
    return CASL_ENOMEM;
  rc = uv_timer_init(&loop->uv, &t->uv);
  if (rc != 0) {
    casl__free(t);
    return rc;
  }
  casl__handle_init(loop, &t->h, &timer_ops, id, &loop->st.timers);
  t->h.uv_open = 1;
  t->uv.data = t;
  *out = t;
  return 0;
}

int casl_timer_start(casl_timer *t, uint64_t timeout_ms, uint64_t repeat_ms) {
  if (t->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  return uv_timer_start(&t->uv, timer_cb, timeout_ms, repeat_ms);
}

int casl_timer_stop(casl_timer *t) {
  if (t->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  return uv_timer_stop(&t->uv);
}

void casl_timer_close(casl_timer *t) {
  if (t == NULL || (t->h.flags & CASL_HF_CLOSING))
    return;
  t->h.flags |= CASL_HF_CLOSING;
  casl__handle_close_uv((uv_handle_t *)&t->uv);
}
