/*
 * loop.c -- the event loop: an event queue between libuv and the
 * application, the buffer pool, timers, notifiers and DNS lookups.
 *
 * libuv callbacks never call the application.  They queue events; the
 * events are dispatched from casl_loop_run after uv_run returns.  So when
 * the application's callback runs, the only C frames below it are
 * casl_loop_run and dispatch(), whose state lives in the loop struct and is
 * reset by casl_loop_free: a callback may leave by a non-local exit.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop-internal.h"

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

char *casl__strdup(const char *s) {
  size_t n;
  char *d;
  if (s == NULL)
    return NULL;
  n = strlen(s) + 1;
  d = malloc(n);
  if (d != NULL)
    memcpy(d, s, n);
  return d;
}

void *casl__buf_get(casl_loop *loop, size_t size) {
  if (size == CASL_BUF_SIZE && loop->pool_n > 0)
    return loop->pool[--loop->pool_n];
  if (size == CASL_BIG_BUF_SIZE && loop->big_pool_n > 0)
    return loop->big_pool[--loop->big_pool_n];
  return malloc(size);
}

void casl__buf_put(casl_loop *loop, void *buf, size_t size) {
  if (buf == NULL)
    return;
  if (!loop->tearing_down) {
    if (size == CASL_BUF_SIZE && loop->pool_n < CASL_POOL_KEEP) {
      loop->pool[loop->pool_n++] = buf;
      return;
    }
    if (size == CASL_BIG_BUF_SIZE && loop->big_pool_n < CASL_BIG_POOL_KEEP) {
      loop->big_pool[loop->big_pool_n++] = buf;
      return;
    }
  }
  free(buf);
}

/* Data up to this size is always copied out of a read buffer into one of
 * its own (cheap, and a queued event then holds no more than its data). */
#define FIT_COPY_MAX 4096
/* Up to this many big buffers may be held by queued `read' events; beyond
 * that, data filling less than half of one is copied out, so a burst of
 * reads on many connections holds at most about twice the memory of its
 * data. */
#define BIG_HELD_MAX 64

char *casl__buf_fit(casl_loop *loop, char *buf, size_t len, size_t *cap) {
  char *p;
  if (len > FIT_COPY_MAX) {
    if (*cap != CASL_BIG_BUF_SIZE)
      return buf;
    if (loop->big_held < BIG_HELD_MAX || len >= *cap / 2) {
      loop->big_held++;
      return buf;
    }
  }
  p = malloc(len);
  if (p == NULL) {
    if (*cap == CASL_BIG_BUF_SIZE)
      loop->big_held++;
    return buf;
  }
  memcpy(p, buf, len);
  casl__buf_put(loop, buf, *cap);
  *cap = len;
  return p;
}

void casl__buf_done(casl_loop *loop, char *buf, size_t cap) {
  if (cap == CASL_BIG_BUF_SIZE && buf != NULL)
    loop->big_held--;
  casl__buf_put(loop, buf, cap);
}

/* ------------------------------------------------------------------------ */
/* Handles                                                                   */

void casl__handle_init(casl_loop *loop, casl_handle *h, casl_htype type,
                       int64_t id) {
  h->type = type;
  h->flags = 0;
  h->id = id;
  h->loop = loop;
  h->uv_open = 0;
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
  h->loop->st.handles--;
  switch (h->type) {
  case CASL_H_TCP:
    casl__tcp_free((casl_tcp *)h);
    break;
  case CASL_H_SERVER:
    casl__server_free((casl_server *)h);
    break;
  case CASL_H_TIMER:
  case CASL_H_NOTIFIER:
    free(h);
    break;
  }
}

void casl__handle_uv_closed(casl_handle *h) {
  if (--h->uv_open > 0)
    return;
  h->flags |= CASL_HF_UVCLOSED;
  switch (h->type) {
  case CASL_H_TIMER:
    h->loop->st.timers--;
    break;
  case CASL_H_NOTIFIER:
    h->loop->st.notifiers--;
    break;
  case CASL_H_SERVER:
    h->loop->st.servers--;
    break;
  case CASL_H_TCP:
    if (((casl_tcp *)h)->incoming)
      h->loop->st.connections_in--;
    else
      h->loop->st.connections_out--;
    break;
  }
  if (h->loop->tearing_down)
    return; /* casl_loop_free frees every handle at the end */
  if (casl__event_push(h->loop, CASL_EV_CLOSED, h) == NULL) {
    /* Out of memory: nobody will be told; free it now so it does not
     * leak.  The application keeps a stale id, which it never uses
     * again because it only drops ids on `closed'. */
    handle_free(h);
  }
}

int64_t casl_handle_id(const casl_handle *h) { return h->id; }

static uv_handle_t *handle_uv(casl_handle *h) {
  switch (h->type) {
  case CASL_H_TIMER:
    return (uv_handle_t *)&((casl_timer *)h)->uv;
  case CASL_H_NOTIFIER:
    return (uv_handle_t *)&((casl_notifier *)h)->uv;
  case CASL_H_SERVER:
    return (uv_handle_t *)&((casl_server *)h)->uv;
  case CASL_H_TCP:
    return (uv_handle_t *)((casl_tcp *)h)->uv;
  }
  return NULL;
}

void casl_handle_ref(casl_handle *h, int ref) {
  uv_handle_t *u;
  if (h == NULL || (h->flags & CASL_HF_CLOSING))
    return;
  u = handle_uv(h);
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
  if (h == NULL)
    return;
  switch (h->type) {
  case CASL_H_TIMER:
    casl_timer_close((casl_timer *)h);
    break;
  case CASL_H_NOTIFIER:
    casl_notifier_close((casl_notifier *)h);
    break;
  case CASL_H_SERVER:
    casl_server_close((casl_server *)h);
    break;
  case CASL_H_TCP:
    casl_tcp_close((casl_tcp *)h, 0);
    break;
  }
}

static void generic_close_cb(uv_handle_t *u) {
  casl__handle_uv_closed((casl_handle *)u->data);
}

/* ------------------------------------------------------------------------ */
/* Events                                                                    */

static void idle_cb(uv_idle_t *idle) { (void)idle; }

casl_event *casl__event_push(casl_loop *loop, casl_evtype type,
                             casl_handle *h) {
  casl_event *ev;
  if (!loop->idle_active && !loop->tearing_down) {
    /* Timers and deferred callbacks run before libuv polls; an active
     * idle handle makes that poll return at once, so these events are
     * dispatched without waiting for I/O. */
    if (uv_idle_start(&loop->idle, idle_cb) == 0)
      loop->idle_active = 1;
  }
  if (loop->ev_free != NULL) {
    ev = loop->ev_free;
    loop->ev_free = ev->next;
    loop->ev_free_count--;
  } else {
    ev = malloc(sizeof(*ev));
    if (ev == NULL)
      return NULL;
  }
  memset(ev, 0, sizeof(*ev));
  ev->type = type;
  ev->h = h;
  if (loop->ev_tail != NULL)
    loop->ev_tail->next = ev;
  else
    loop->ev_head = ev;
  loop->ev_tail = ev;
  loop->ev_count++;
  return ev;
}

/* Releases what an event owns and recycles it. */
static void event_release(casl_loop *loop, casl_event *ev) {
  if (ev->type == CASL_EV_READ)
    casl__buf_done(loop, ev->buf, ev->cap);
  else
    free(ev->buf);
  if (ev->type == CASL_EV_ACCEPT && ev->h != NULL &&
      (ev->h->flags & CASL_HF_SILENT) && !(ev->h->flags & CASL_HF_CLOSING))
    casl__tcp_close_now((casl_tcp *)ev->h);
  if (loop->ev_free_count < 256 && !loop->tearing_down) {
    ev->next = loop->ev_free;
    loop->ev_free = ev;
    loop->ev_free_count++;
  } else {
    free(ev);
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
    if (cb->closed && !(h->flags & CASL_HF_SILENT))
      cb->closed(h->id);
    /* The application is done with h: free it.  (If the callback left by
     * a non-local exit, h is still listed and casl_loop_free frees it.) */
    ev->h = NULL;
    handle_free(h);
    break;
  case CASL_EV_ACCEPT: {
    casl_server *s = (casl_server *)ev->aux;
    int64_t id = 0;
    if (!(s->h.flags & CASL_HF_CLOSING) && cb->accept)
      id = cb->accept(s->h.id, (casl_tcp *)h);
    if (id == 0) {
      h->flags |= CASL_HF_SILENT;
      casl__tcp_close_now((casl_tcp *)h);
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
  loop = calloc(1, sizeof(*loop));
  if (loop == NULL)
    return CASL_ENOMEM;
  rc = uv_loop_init(&loop->uv);
  if (rc != 0) {
    free(loop);
    return rc;
  }
  loop->uv.data = loop;
  rc = uv_idle_init(&loop->uv, &loop->idle);
  if (rc != 0) {
    (void)uv_loop_close(&loop->uv);
    free(loop);
    return rc;
  }
  uv_unref((uv_handle_t *)&loop->idle);
  rc = uv_timer_init(&loop->uv, &loop->cap);
  if (rc != 0) {
    uv_close((uv_handle_t *)&loop->idle, NULL);
    (void)uv_run(&loop->uv, UV_RUN_NOWAIT);
    (void)uv_loop_close(&loop->uv);
    free(loop);
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
  casl__tcp_flush_dirty(loop);
  if (!loop->stop) {
    if (max_wait_ms > 0 && loop->ev_head == NULL)
      (void)uv_timer_start(&loop->cap, cap_cb, max_wait_ms, 0);
    alive = uv_run(&loop->uv,
                   loop->ev_head != NULL ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    (void)uv_timer_stop(&loop->cap);
    dispatch(loop);
    casl__tcp_flush_dirty(loop);
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

static void close_all(casl_loop *loop) {
  casl_handle *h;
  struct casl_dns *d;
  for (h = loop->handles; h != NULL; h = h->next) {
    h->flags |= CASL_HF_CLOSING | CASL_HF_SILENT;
    switch (h->type) {
    case CASL_H_TCP:
      casl__tcp_close_now((casl_tcp *)h);
      break;
    case CASL_H_SERVER:
      casl__server_close_now((casl_server *)h);
      break;
    case CASL_H_TIMER:
    case CASL_H_NOTIFIER: {
      uv_handle_t *u = handle_uv(h);
      if (u != NULL && !uv_is_closing(u))
        uv_close(u, generic_close_cb);
      break;
    }
    }
  }
  for (d = loop->lookups; d != NULL; d = d->next)
    (void)uv_cancel((uv_req_t *)&d->req);
}

static void walk_close_cb(uv_handle_t *u, void *arg) {
  (void)arg;
  if (!uv_is_closing(u))
    uv_close(u, NULL);
}

void casl_loop_free(casl_loop *loop) {
  casl_event *ev;
  int i;
  if (loop == NULL)
    return;
  loop->tearing_down = 1;
  loop->running = 0;
  loop->dirty = NULL;
  if (loop->current != NULL) {
    /* A callback left by a non-local exit: its event was never released. */
    ev = loop->current;
    loop->current = NULL;
    if (ev->type == CASL_EV_CLOSED)
      ev->h = NULL; /* still listed: freed below */
    event_release(loop, ev);
  }
  while ((ev = loop->ev_head) != NULL) {
    loop->ev_head = ev->next;
    if (ev->type == CASL_EV_CLOSED)
      ev->h = NULL;
    if (ev->type == CASL_EV_ACCEPT)
      ev->h->flags |= CASL_HF_SILENT;
    event_release(loop, ev);
  }
  loop->ev_tail = NULL;
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
    while ((ev = loop->ev_head) != NULL) {
      loop->ev_head = ev->next;
      if (ev->type == CASL_EV_CLOSED)
        ev->h = NULL;
      event_release(loop, ev);
    }
    loop->ev_tail = NULL;
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
    free(ev);
  }
  for (i = 0; i < loop->pool_n; i++)
    free(loop->pool[i]);
  for (i = 0; i < loop->big_pool_n; i++)
    free(loop->big_pool[i]);
  free(loop);
}

void casl_loop_stats(casl_loop *loop, casl_stats *out) {
  casl_handle *h;
  int64_t wq = 0, tls = 0;
  *out = loop->st;
  for (h = loop->handles; h != NULL; h = h->next) {
    if (h->type == CASL_H_TCP) {
      casl_tcp *c = (casl_tcp *)h;
      wq += (int64_t)casl_tcp_write_queue_size(c);
      if (c->tls != NULL)
        tls++;
    }
  }
  out->write_queue = wq;
  out->tls = tls;
  out->queued_events = loop->ev_count;
}

static const char *htype_name(casl_htype t) {
  switch (t) {
  case CASL_H_TIMER:
    return "timer";
  case CASL_H_NOTIFIER:
    return "notifier";
  case CASL_H_TCP:
    return "tcp";
  case CASL_H_SERVER:
    return "tcp-server";
  }
  return "unknown";
}

size_t casl_loop_describe(casl_loop *loop, char *buf, size_t len) {
  casl_handle *h;
  size_t need = 0;
  if (len > 0)
    buf[0] = '\0';
  for (h = loop->handles; h != NULL; h = h->next) {
    char line[256];
    int n;
    uv_handle_t *u = (h->flags & CASL_HF_UVCLOSED) ? NULL : handle_uv(h);
    n = snprintf(line, sizeof(line), "handle: %s id=%lld%s%s%s%s\n",
                 htype_name(h->type), (long long)h->id,
                 u != NULL && uv_is_active(u) ? " active" : "",
                 (h->flags & CASL_HF_UNREF) ? " unref" : "",
                 (h->flags & CASL_HF_CLOSING) ? " closing" : "",
                 (h->type == CASL_H_TCP && ((casl_tcp *)h)->tls != NULL)
                     ? " tls"
                     : "");
    if (n < 0)
      continue;
    if (need + (size_t)n < len)
      memcpy(buf + need, line, (size_t)n + 1);
    need += (size_t)n;
  }
  return need + 1;
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */

static void timer_cb(uv_timer_t *u) {
  casl_timer *t = u->data;
  if (t->h.flags & CASL_HF_CLOSING)
    return;
  if (casl__event_push(t->h.loop, CASL_EV_TIMER, &t->h) == NULL)
    fprintf(stderr, "cl-async-ssl: out of memory, timer event lost\n");
}

int casl_timer_new(casl_loop *loop, int64_t id, casl_timer **out) {
  casl_timer *t;
  int rc;
  *out = NULL;
  t = calloc(1, sizeof(*t));
  if (t == NULL)
    return CASL_ENOMEM;
  rc = uv_timer_init(&loop->uv, &t->uv);
  if (rc != 0) {
    free(t);
    return rc;
  }
  casl__handle_init(loop, &t->h, CASL_H_TIMER, id);
  t->h.uv_open = 1;
  t->uv.data = t;
  loop->st.timers++;
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
  uv_close((uv_handle_t *)&t->uv, generic_close_cb);
}

/* ------------------------------------------------------------------------ */
/* Notifiers                                                                 */

static void async_cb(uv_async_t *u) {
  casl_notifier *n = u->data;
  if (n->h.flags & CASL_HF_CLOSING)
    return;
  if (casl__event_push(n->h.loop, CASL_EV_NOTIFY, &n->h) == NULL)
    fprintf(stderr, "cl-async-ssl: out of memory, notifier event lost\n");
}

int casl_notifier_new(casl_loop *loop, int64_t id, casl_notifier **out) {
  casl_notifier *n;
  int rc;
  *out = NULL;
  n = calloc(1, sizeof(*n));
  if (n == NULL)
    return CASL_ENOMEM;
  rc = uv_async_init(&loop->uv, &n->uv, async_cb);
  if (rc != 0) {
    free(n);
    return rc;
  }
  casl__handle_init(loop, &n->h, CASL_H_NOTIFIER, id);
  n->h.uv_open = 1;
  n->uv.data = n;
  loop->st.notifiers++;
  *out = n;
  return 0;
}

int casl_notifier_send(casl_notifier *n) { return uv_async_send(&n->uv); }

void casl_notifier_close(casl_notifier *n) {
  if (n == NULL || (n->h.flags & CASL_HF_CLOSING))
    return;
  n->h.flags |= CASL_HF_CLOSING;
  uv_close((uv_handle_t *)&n->uv, generic_close_cb);
}

/* ------------------------------------------------------------------------ */
/* DNS                                                                       */

static void dns_unlink(casl_loop *loop, struct casl_dns *d) {
  if (d->prev != NULL)
    d->prev->next = d->next;
  else
    loop->lookups = d->next;
  if (d->next != NULL)
    d->next->prev = d->prev;
  loop->st.dns_queries--;
}

/* Packs addresses into one block: n pointers, n ints, then the strings. */
static char *pack_addresses(const struct addrinfo *res, int *count) {
  const struct addrinfo *ai;
  char (*text)[INET6_ADDRSTRLEN];
  int *fams;
  char **ptrs, *block, *p;
  int n = 0, i;
  size_t need;
  for (ai = res; ai != NULL; ai = ai->ai_next)
    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
      n++;
  *count = n;
  if (n == 0)
    return NULL;
  need = (size_t)n * (sizeof(char *) + sizeof(int) + INET6_ADDRSTRLEN);
  block = malloc(need);
  if (block == NULL)
    return NULL;
  ptrs = (char **)(void *)block;
  fams = (int *)(void *)(block + (size_t)n * sizeof(char *));
  p = (char *)(fams + n);
  text = (char(*)[INET6_ADDRSTRLEN])(void *)p;
  i = 0;
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      uv_ip4_name((const struct sockaddr_in *)(void *)ai->ai_addr, text[i],
                  INET6_ADDRSTRLEN);
      fams[i] = CASL_AF_INET;
    } else if (ai->ai_family == AF_INET6) {
      uv_ip6_name((const struct sockaddr_in6 *)(void *)ai->ai_addr, text[i],
                  INET6_ADDRSTRLEN);
      fams[i] = CASL_AF_INET6;
    } else {
      continue;
    }
    ptrs[i] = text[i];
    i++;
  }
  return block;
}

static void dns_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct casl_dns *d = req->data;
  casl_loop *loop = d->loop;
  casl_event *ev;
  dns_unlink(loop, d);
  if (!loop->tearing_down &&
      (ev = casl__event_push(loop, CASL_EV_DNS, NULL)) != NULL) {
    ev->id = d->id;
    ev->code = status;
    if (status == 0) {
      int n = 0;
      ev->buf = pack_addresses(res, &n);
      ev->len = (size_t)n;
      if (n == 0)
        ev->code = UV_EAI_NODATA;
      else if (ev->buf == NULL)
        ev->code = UV_EAI_MEMORY;
    }
  }
  uv_freeaddrinfo(res);
  free(d);
}

int casl_dns_lookup(casl_loop *loop, int64_t id, const char *host,
                    int family) {
  struct casl_dns *d;
  struct addrinfo hints;
  int rc;
  if (host == NULL || *host == '\0')
    return CASL_EINVAL;
  d = calloc(1, sizeof(*d));
  if (d == NULL)
    return CASL_ENOMEM;
  d->loop = loop;
  d->id = id;
  d->req.data = d;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = family == CASL_AF_INET    ? AF_INET
                    : family == CASL_AF_INET6 ? AF_INET6
                                              : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  rc = uv_getaddrinfo(&loop->uv, &d->req, dns_cb, host, NULL, &hints);
  if (rc != 0) {
    free(d);
    return rc;
  }
  d->next = loop->lookups;
  if (d->next != NULL)
    d->next->prev = d;
  loop->lookups = d;
  loop->st.dns_queries++;
  return 0;
}
