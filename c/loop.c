/*
 * loop.c -- the event loop: handles, the event queue between libuv and the
 * application, running, stopping, teardown and statistics.
 *
 * libuv callbacks never call the application.  They queue events; the
 * events are dispatched from casl_loop_run after uv_run returns.  So when
 * the application's callback runs, the only C frames below it are
 * casl_loop_run and dispatch(), whose state lives in the loop struct and is
 * reset by casl_loop_free: a callback may leave by a non-local exit.
 *
 * The loop knows handle types only through their casl_handle_ops (close,
 * teardown, free, flush, statistics): it calls no handle file's internals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop-int.h"

/* ------------------------------------------------------------------------ */
/* Handles                                                                   */

void casl__handle_init(casl_loop *loop, casl_handle *h,
                       const casl_handle_ops *ops, int64_t id, int64_t *count) {
  h->ops = ops;
  h->flags = 0;
  h->id = id;
  h->loop = loop;
  h->uv_open = 0;
  h->dirty_next = NULL;
  h->count = count;
  if (count != NULL)
    (*count)++;
  h->prev = NULL;
  h->next = loop->handles;
  if (loop->handles != NULL)
    loop->handles->prev = h;
  loop->handles = h;
  loop->st.handles++;
}

static void handle_unlink(casl_handle *h) {
  casl_loop *loop = h->loop;
  if (loop->handles == h)
    loop->handles = h->next;
  else if (h->prev != NULL)
    h->prev->next = h->next;
  if (h->next != NULL)
    h->next->prev = h->prev;
  h->prev = h->next = NULL;
}

static void handle_free(casl_handle *h) {
  handle_unlink(h);
  casl__loop_unmark_dirty(h);
  h->loop->st.handles--;
  if (h->ops->release != NULL)
    h->ops->release(h);
  else
    casl__free(h);
}

void casl__handle_uv_closed(casl_handle *h) {
  if (--h->uv_open > 0)
    return;
  h->flags |= CASL_HF_UVCLOSED;
  if (h->count != NULL) {
    (*h->count)--;
    h->count = NULL;
  }
  if (h->loop->tearing_down)
    return; /* casl_loop_free frees every handle at the end */
  (void)casl__event_push(h->loop, CASL_EV_CLOSED, h); /* never fails */
}

static void generic_close_cb(uv_handle_t *u) {
  casl__handle_uv_closed((casl_handle *)u->data);
}

void casl__handle_close_uv(uv_handle_t *u) {
  if (!uv_is_closing(u))
    uv_close(u, generic_close_cb);
}

int64_t casl_handle_id(const casl_handle *h) { return h->id; }

void casl_handle_ref(casl_handle *h, int ref) {
  uv_handle_t *u;
  if (h == NULL || (h->flags & CASL_HF_CLOSING))
    return;
  u = h->ops->uv != NULL ? h->ops->uv(h) : NULL;
  if (ref) {
    h->flags &= ~(unsigned)CASL_HF_UNREF;
    if (u != NULL)
      uv_ref(u);
  } else {
    h->flags |= CASL_HF_UNREF;
    if (u != NULL)
      uv_unref(u);
  }
}

void casl_handle_close(casl_handle *h) {
  if (h != NULL)
    h->ops->close(h);
}

void casl__loop_mark_dirty(casl_handle *h) {
  casl_loop *loop = h->loop;
  if ((h->flags & CASL_HF_DIRTY) || loop->tearing_down)
    return;
  h->flags |= CASL_HF_DIRTY;
  h->dirty_next = loop->dirty;
  loop->dirty = h;
}

void casl__loop_unmark_dirty(casl_handle *h) {
  casl_handle **p;
  if (!(h->flags & CASL_HF_DIRTY))
    return;
  for (p = &h->loop->dirty; *p != NULL; p = &(*p)->dirty_next) {
    if (*p == h) {
      *p = h->dirty_next;
      break;
    }
  }
  h->flags &= ~(unsigned)CASL_HF_DIRTY;
  h->dirty_next = NULL;
}

static void flush_dirty(casl_loop *loop) {
  while (loop->dirty != NULL) {
    casl_handle *h = loop->dirty;
    loop->dirty = h->dirty_next;
    h->flags &= ~(unsigned)CASL_HF_DIRTY;
    h->dirty_next = NULL;
    if (h->flags & CASL_HF_LOST) {
      /* Closed by the application since: it hears nothing more. */
      if (h->flags & CASL_HF_CLOSING)
        h->lost = 0;
      h->flags |= CASL_HF_CLOSING;
      h->ops->close_now(h);
    } else if (h->ops->flush != NULL) {
      h->ops->flush(h);
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

void casl__req_add(casl_loop *loop, casl_req *r) {
  r->prev = NULL;
  r->next = loop->reqs;
  if (r->next != NULL)
    r->next->prev = r;
  loop->reqs = r;
}

void casl__req_remove(casl_loop *loop, casl_req *r) {
  if (r->prev != NULL)
    r->prev->next = r->next;
  else if (loop->reqs == r)
    loop->reqs = r->next;
  if (r->next != NULL)
    r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

/* ------------------------------------------------------------------------ */
/* Events                                                                    */

static void idle_cb(uv_idle_t *idle) { (void)idle; }

casl_event *casl__event_new(casl_loop *loop) {
  casl_event *ev;
  if (loop->ev_free != NULL) {
    ev = loop->ev_free;
    loop->ev_free = ev->next;
    loop->ev_free_count--;
  } else {
    ev = casl__malloc(sizeof(*ev));
    if (ev == NULL)
      return NULL;
  }
  memset(ev, 0, sizeof(*ev));
  return ev;
}

void casl__event_queue(casl_loop *loop, casl_event *ev, casl_evtype type,
                       casl_handle *h) {
  if (!loop->idle_active && !loop->tearing_down) {
    /* Timers and deferred callbacks run before libuv polls; an active
     * idle handle makes that poll return at once, so these events are
     * dispatched without waiting for I/O. */
    if (uv_idle_start(&loop->idle, idle_cb) == 0)
      loop->idle_active = 1;
  }
  ev->type = type;
  ev->h = h;
  ev->next = NULL;
  if (loop->ev_tail != NULL)
    loop->ev_tail->next = ev;
  else
    loop->ev_head = ev;
  loop->ev_tail = ev;
  loop->ev_count++;
}

casl_event *casl__event_push(casl_loop *loop, casl_evtype type,
                             casl_handle *h) {
  casl_event *ev;
  if (type == CASL_EV_CLOSED) {
    ev = &h->closed_ev;
    memset(ev, 0, sizeof(*ev));
  } else if ((ev = casl__event_new(loop)) == NULL) {
    return NULL;
  }
  casl__event_queue(loop, ev, type, h);
  return ev;
}

/* Releases what an event owns and recycles it.  Not for `closed' events,
 * which live in their handle. */
static void event_release(casl_loop *loop, casl_event *ev) {
  if (ev->type == CASL_EV_READ)
    casl__buf_done(&loop->pool, ev->buf, ev->cap);
  else
    casl__free(ev->buf);
  if (ev->type == CASL_EV_ACCEPT && ev->h != NULL &&
      (ev->h->flags & CASL_HF_SILENT) && !(ev->h->flags & CASL_HF_CLOSING))
    ev->h->ops->close_now(ev->h);
  if (loop->ev_free_count < 256 && !loop->tearing_down) {
    ev->next = loop->ev_free;
    loop->ev_free = ev;
    loop->ev_free_count++;
  } else {
    casl__free(ev);
  }
}

void casl__event_discard(casl_loop *loop, casl_event *ev) {
  if (ev != NULL)
    event_release(loop, ev);
}

void casl__handle_lost(casl_handle *h, int code) {
  if (h->flags & (CASL_HF_LOST | CASL_HF_UVCLOSED))
    return;
  h->flags |= CASL_HF_LOST;
  if (!(h->flags & CASL_HF_CLOSING))
    h->lost = code;
  casl__loop_mark_dirty(h);
}

void casl__event_take_reads(casl_loop *loop, casl_handle *h,
                            void (*fn)(casl_handle *h, const char *buf,
                                       size_t len)) {
  casl_event **p = &loop->ev_head, *prev = NULL, *taken = NULL, **tail = &taken;
  while (*p != NULL) {
    casl_event *ev = *p;
    if (ev->h == h && ev->type == CASL_EV_READ) {
      *p = ev->next;
      if (loop->ev_tail == ev)
        loop->ev_tail = prev;
      loop->ev_count--;
      ev->next = NULL;
      *tail = ev;
      tail = &ev->next;
      continue;
    }
    prev = ev;
    p = &ev->next;
  }
  while (taken != NULL) {
    casl_event *ev = taken;
    taken = ev->next;
    fn(h, ev->buf, ev->len);
    event_release(loop, ev);
  }
}

/* Whether an event for a handle the application closed is still shown. */
static int event_wanted(const casl_event *ev) {
  if (ev->h == NULL || !(ev->h->flags & CASL_HF_CLOSING))
    return 1;
  return ev->type == CASL_EV_CLOSED || ev->type == CASL_EV_WRITTEN;
}

static void dispatch_one(casl_loop *loop, casl_event *ev) {
  const casl_callbacks *cb = &loop->cbs;
  casl_handle *h = ev->h;
  switch (ev->type) {
  case CASL_EV_TIMER:
    if (cb->timer)
      cb->timer(h->id);
    break;
  case CASL_EV_NOTIFY:
    if (cb->notify)
      cb->notify(h->id);
    break;
  case CASL_EV_CLOSED:
    if (h->lost != 0 && !(h->flags & CASL_HF_SILENT)) {
      int code = h->lost;
      h->lost = 0;
      if (cb->error)
        cb->error(h->id, code);
    }
    if (cb->closed && !(h->flags & CASL_HF_SILENT))
      cb->closed(h->id);
    /* The application is done with h: free it.  (If the callback left by
     * a non-local exit, h is still listed and casl_loop_free frees it.) */
    ev->h = NULL;
    handle_free(h);
    break;
  case CASL_EV_ACCEPT: {
    casl_handle *server = ev->aux;
    int64_t id = 0;
    if (!(server->flags & CASL_HF_CLOSING) && cb->accept)
      id = cb->accept(server->id, (casl_tcp *)h);
    if (id == 0) {
      h->flags |= CASL_HF_SILENT;
      h->ops->close_now(h);
    } else {
      h->id = id;
      h->flags &= ~(unsigned)CASL_HF_SILENT;
    }
    break;
  }
  case CASL_EV_CONNECT:
    if (cb->connect)
      cb->connect(h->id);
    break;
  case CASL_EV_READ:
    if (cb->read)
      cb->read(h->id, ev->buf, ev->len);
    break;
  case CASL_EV_WRITTEN:
    if (cb->written)
      cb->written(h->id);
    break;
  case CASL_EV_ERROR:
    if (cb->error)
      cb->error(h->id, ev->code);
    break;
  case CASL_EV_DNS: {
    /* payload: n, then n pointers, then n ints, then strings */
    int n = ev->code == 0 ? (int)ev->len : 0;
    const char *const *addrs = NULL;
    const int *fams = NULL;
    if (n > 0) {
      addrs = (const char *const *)(void *)ev->buf;
      fams = (const int *)(void *)(ev->buf + (size_t)n * sizeof(char *));
    }
    if (cb->dns)
      cb->dns(ev->id, ev->code, n, addrs, fams);
    break;
  }
  case CASL_EV_SNI:
    if (cb->sni)
      cb->sni(h->id, ev->buf);
    break;
  case CASL_EV_SIGNAL:
    if (cb->signal)
      cb->signal(h->id, ev->code);
    break;
  case CASL_EV_EXIT:
    if (cb->exit)
      cb->exit(h->id, ev->num, ev->code);
    break;
  case CASL_EV_POLL:
    if (cb->poll)
      cb->poll(h->id, ev->code, (int)ev->num);
    break;
  case CASL_EV_FS_EVENT:
    if (cb->fs_event)
      cb->fs_event(h->id, ev->code, ev->buf, (int)ev->num);
    break;
  case CASL_EV_FS:
    if (cb->fs)
      cb->fs(ev->id, ev->code, ev->code == 0 ? ev->buf : NULL);
    break;
  case CASL_EV_NAMEINFO:
    if (cb->nameinfo) {
      const char *host = ev->code == 0 ? ev->buf : NULL;
      cb->nameinfo(ev->id, ev->code, host,
                   host != NULL ? host + strlen(host) + 1 : NULL);
    }
    break;
  }
}

/* Dispatches the events queued before the call; events queued meanwhile
 * wait for the next round (so one busy connection cannot starve the loop).
 * Returns the number dispatched. */
static long dispatch(casl_loop *loop) {
  casl_event *last = loop->ev_tail;
  long n = 0;
  while (loop->ev_head != NULL) {
    casl_event *ev = loop->ev_head;
    int is_last = ev == last;
    loop->ev_head = ev->next;
    if (loop->ev_head == NULL)
      loop->ev_tail = NULL;
    loop->ev_count--;
    ev->next = NULL;
    if (ev->type == CASL_EV_CLOSED) {
      /* The event is the handle's own: gone with it. */
      loop->current = ev;
      dispatch_one(loop, ev);
      loop->current = NULL;
      n++;
      if (is_last)
        break;
      continue;
    }
    if (event_wanted(ev)) {
      loop->current = ev;
      dispatch_one(loop, ev);
      loop->current = NULL;
      n++;
    } else if (ev->type == CASL_EV_ACCEPT) {
      ev->h->flags |= CASL_HF_SILENT;
    }
    event_release(loop, ev);
    if (is_last)
      break;
  }
  return n;
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                  */

int casl_loop_new(casl_loop **out, const casl_callbacks *cbs) {
  casl_loop *loop;
  int rc;
  *out = NULL;
  casl__global_init();
  loop = casl__calloc(1, sizeof(*loop));
  if (loop == NULL)
    return CASL_ENOMEM;
  rc = uv_loop_init(&loop->uv);
  if (rc != 0) {
    casl__free(loop);
    return rc;
  }
  loop->uv.data = loop;
  rc = uv_idle_init(&loop->uv, &loop->idle);
  if (rc != 0) {
    (void)uv_loop_close(&loop->uv);
    casl__free(loop);
    return rc;
  }
  uv_unref((uv_handle_t *)&loop->idle);
  rc = uv_timer_init(&loop->uv, &loop->cap);
  if (rc != 0) {
    uv_close((uv_handle_t *)&loop->idle, NULL);
    (void)uv_run(&loop->uv, UV_RUN_NOWAIT);
    (void)uv_loop_close(&loop->uv);
    casl__free(loop);
    return rc;
  }
  uv_unref((uv_handle_t *)&loop->cap);
  if (cbs != NULL)
    loop->cbs = *cbs;
  *out = loop;
  return 0;
}

static void cap_cb(uv_timer_t *t) { (void)t; }

int casl_loop_run_once(casl_loop *loop, uint64_t max_wait_ms) {
  int alive, result;
  if (loop->running)
    return CASL_ESTATE;
  loop->running = 1;
  flush_dirty(loop);
  if (!loop->stop) {
    if (max_wait_ms > 0 && loop->ev_head == NULL)
      (void)uv_timer_start(&loop->cap, cap_cb, max_wait_ms, 0);
    alive =
        uv_run(&loop->uv, loop->ev_head != NULL ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    (void)uv_timer_stop(&loop->cap);
    dispatch(loop);
    flush_dirty(loop);
    if (loop->ev_head == NULL && loop->idle_active) {
      (void)uv_idle_stop(&loop->idle);
      loop->idle_active = 0;
    }
  } else {
    alive = 1;
  }
  if (loop->stop) {
    loop->stop = 0;
    result = CASL_RUN_STOPPED;
  } else if (loop->ev_head == NULL && !alive && !uv_loop_alive(&loop->uv)) {
    result = CASL_RUN_DONE;
  } else {
    result = CASL_RUN_MORE;
  }
  loop->running = 0;
  return result;
}

int casl_loop_run(casl_loop *loop) {
  int rc;
  do
    rc = casl_loop_run_once(loop, 0);
  while (rc == CASL_RUN_MORE);
  if (rc < 0)
    return rc;
  return uv_loop_alive(&loop->uv) ? 1 : 0;
}

void casl_loop_stop(casl_loop *loop) {
  loop->stop = 1;
  uv_stop(&loop->uv);
}

int casl_loop_alive(casl_loop *loop) {
  return uv_loop_alive(&loop->uv) || loop->ev_head != NULL;
}

uint64_t casl_loop_now(casl_loop *loop) { return uv_now(&loop->uv); }

/* ------------------------------------------------------------------------ */
/* Teardown                                                                  */

static void close_all(casl_loop *loop) {
  casl_handle *h;
  casl_req *r;
  for (h = loop->handles; h != NULL; h = h->next) {
    h->flags |= CASL_HF_CLOSING | CASL_HF_SILENT;
    h->ops->close_now(h);
  }
  for (r = loop->reqs; r != NULL; r = r->next)
    (void)uv_cancel(r->uv);
}

static void walk_close_cb(uv_handle_t *u, void *arg) {
  (void)arg;
  if (!uv_is_closing(u))
    uv_close(u, NULL);
}

/* Releases the queued events without dispatching them. */
static void drop_events(casl_loop *loop) {
  casl_event *ev;
  while ((ev = loop->ev_head) != NULL) {
    loop->ev_head = ev->next;
    if (ev->type == CASL_EV_CLOSED)
      continue; /* the handle's own; it is still listed: freed at the end */
    if (ev->type == CASL_EV_ACCEPT)
      ev->h->flags |= CASL_HF_SILENT;
    event_release(loop, ev);
  }
  loop->ev_tail = NULL;
}

void casl_loop_free(casl_loop *loop) {
  casl_event *ev;
  int i;
  if (loop == NULL)
    return;
  loop->tearing_down = 1;
  loop->running = 0;
  while (loop->dirty != NULL)
    casl__loop_unmark_dirty(loop->dirty);
  casl__bufpool_drain(&loop->pool);
  if (loop->current != NULL) {
    /* A callback left by a non-local exit: its event was never released. */
    ev = loop->current;
    loop->current = NULL;
    if (ev->type != CASL_EV_CLOSED) /* that one is the handle's own */
      event_release(loop, ev);
  }
  drop_events(loop);
  close_all(loop);
  if (!uv_is_closing((uv_handle_t *)&loop->idle))
    uv_close((uv_handle_t *)&loop->idle, NULL);
  if (!uv_is_closing((uv_handle_t *)&loop->cap))
    uv_close((uv_handle_t *)&loop->cap, NULL);
  loop->idle_active = 0;
  /* Drain close callbacks and cancelled requests.  Nothing is dispatched:
   * events queued now are released at once (tearing_down). */
  for (i = 0; i < 1000; i++) {
    (void)uv_run(&loop->uv, UV_RUN_DEFAULT);
    drop_events(loop);
    if (uv_loop_close(&loop->uv) == 0)
      break;
    uv_walk(&loop->uv, walk_close_cb, NULL);
  }
  while (loop->handles != NULL) {
    casl_handle *h = loop->handles;
    loop->handles = h->next; /* pop it first: handle_free unlinks no more */
    if (loop->handles != NULL)
      loop->handles->prev = NULL;
    h->next = h->prev = NULL;
    handle_free(h);
  }
  while ((ev = loop->ev_free) != NULL) {
    loop->ev_free = ev->next;
    casl__free(ev);
  }
  casl__free(loop);
}

/* ------------------------------------------------------------------------ */
/* Inspection                                                                */

void casl_loop_stats(casl_loop *loop, casl_stats *out) {
  casl_handle *h;
  *out = loop->st;
  out->write_queue = 0;
  out->tls = 0;
  for (h = loop->handles; h != NULL; h = h->next)
    if (h->ops->stats != NULL)
      h->ops->stats(h, out);
  out->queued_events = loop->ev_count;
}

size_t casl_loop_describe(casl_loop *loop, char *buf, size_t len) {
  casl_handle *h;
  size_t need = 0;
  if (len > 0)
    buf[0] = '\0';
  for (h = loop->handles; h != NULL; h = h->next) {
    char line[256];
    int n;
    uv_handle_t *u = (h->flags & CASL_HF_UVCLOSED) || h->ops->uv == NULL
                         ? NULL
                         : h->ops->uv(h);
    const char *tag = h->ops->tag != NULL ? h->ops->tag(h) : NULL;
    n = snprintf(line, sizeof(line), "handle: %s id=%lld%s%s%s%s%s\n",
                 h->ops->name, (long long)h->id,
                 u != NULL && uv_is_active(u) ? " active" : "",
                 (h->flags & CASL_HF_UNREF) ? " unref" : "",
                 (h->flags & CASL_HF_CLOSING) ? " closing" : "",
                 tag != NULL ? " " : "", tag != NULL ? tag : "");
    if (n < 0)
      continue;
    if (need + (size_t)n < len)
      memcpy(buf + need, line, (size_t)n + 1);
    need += (size_t)n;
  }
  return need + 1;
}
