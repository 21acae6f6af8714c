/*
 * tcp.c -- TCP connections and servers on the loop, with an optional TLS
 * filter between the wire and the application.
 *
 * Writes are copied into a per-connection queue of chunks and sent,
 * coalesced, when the current dispatch round ends (uv_try_write first,
 * uv_write for the rest; one write request in flight at a time).  One
 * libuv timer per connection serves the read, write, handshake and
 * close-linger deadlines; activity only moves a timestamp and the timer
 * re-arms itself when it fires early.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop-internal.h"

struct casl_connect_req {
  uv_getaddrinfo_t req;
  casl_tcp *c; /* NULL once the connection no longer waits for it */
};

#define CHUNK_POOLED_CAP (CASL_BUF_SIZE - sizeof(casl_chunk))
#define MAX_BUFS 64

static void flush(casl_tcp *c);
static void maybe_finish_close(casl_tcp *c);
static void timer_update(casl_tcp *c);
static void read_start(casl_tcp *c);
static void start_tls_now(casl_tcp *c);

/* ------------------------------------------------------------------------ */
/* Errors and events                                                         */

static void set_err(casl_tcp *c, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): started above */
  (void)vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  free(c->err);
  c->err = casl__strdup(buf);
}

static void read_stop_uv(casl_tcp *c) {
  if (c->reading) {
    (void)uv_read_stop((uv_stream_t *)c->uv);
    c->reading = 0;
  }
}

static void push(casl_tcp *c, casl_evtype type, int code) {
  casl_event *ev = casl__event_push(c->h.loop, type, &c->h);
  if (ev == NULL) {
    fprintf(stderr, "cl-async-ssl: out of memory, event lost\n");
    return;
  }
  ev->code = code;
}

/* Reports a failure once; reading stops.  The application decides how to
 * close (the Lisp layer closes the connection on every error). */
static void report_error(casl_tcp *c, int code, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  if (c->failed || (c->h.flags & CASL_HF_CLOSING))
    return;
  c->failed = 1;
  va_start(ap, fmt);
  /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): started above */
  (void)vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  set_err(c, "%s", buf);
  read_stop_uv(c);
  push(c, CASL_EV_ERROR, code);
  timer_update(c);
}

static void report_eof(casl_tcp *c) {
  if (c->eof_seen || c->failed || (c->h.flags & CASL_HF_CLOSING))
    return;
  c->eof_seen = 1;
  read_stop_uv(c);
  push(c, CASL_EV_ERROR, UV_EOF);
  timer_update(c);
}

/* ------------------------------------------------------------------------ */
/* Write queue                                                               */

static casl_chunk *chunk_new(casl_loop *loop, size_t need) {
  casl_chunk *ch;
  size_t cap;
  if (need <= CHUNK_POOLED_CAP) {
    ch = casl__buf_get(loop, CASL_BUF_SIZE);
    cap = CHUNK_POOLED_CAP;
  } else {
    ch = malloc(sizeof(casl_chunk) + need);
    cap = need;
  }
  if (ch == NULL)
    return NULL;
  ch->next = NULL;
  ch->off = ch->len = 0;
  ch->cap = cap;
  return ch;
}

static void chunk_free(casl_loop *loop, casl_chunk *ch) {
  if (ch->cap == CHUNK_POOLED_CAP)
    casl__buf_put(loop, ch, CASL_BUF_SIZE);
  else
    free(ch);
}

static void chunks_free(casl_loop *loop, casl_chunk *ch) {
  while (ch != NULL) {
    casl_chunk *next = ch->next;
    chunk_free(loop, ch);
    ch = next;
  }
}

static void drop_queue(casl_tcp *c) {
  casl_chunk *ch;
  for (ch = c->out_head; ch != NULL; ch = ch->next)
    c->out_bytes -= ch->len - ch->off;
  chunks_free(c->h.loop, c->out_head);
  c->out_head = c->out_tail = NULL;
}

/* Large writes skip the copy into the queue when nothing is queued before
 * them: as much as the kernel takes now goes out from the caller's buffer
 * (small writes are still queued and coalesced).  Advances *buf and *len past
 * what was sent; returns non-zero if the connection failed. */
#define DIRECT_MIN 8192
static int write_direct(casl_tcp *c, const char **buf, size_t *len) {
  uv_buf_t b;
  ssize_t w;
  if (*len < DIRECT_MIN || !c->connected || c->writing ||
      c->out_head != NULL || c->forced || c->shutting)
    return 0;
  b = uv_buf_init((char *)*buf, (unsigned)*len);
  w = uv_try_write((uv_stream_t *)c->uv, &b, 1);
  if (w == UV_EAGAIN || w == UV_ENOSYS)
    return 0;
  if (w < 0) {
    report_error(c, (int)w, "write failed: %s", uv_strerror((int)w));
    return 1;
  }
  *buf += w;
  *len -= (size_t)w;
  c->last_write = uv_now(&c->h.loop->uv);
  return 0;
}

static int out_append(casl_tcp *c, const char *buf, size_t len) {
  casl_chunk *t = c->out_tail;
  if (len == 0)
    return 0;
  if (c->out_head == NULL && !c->writing)
    c->last_write = uv_now(&c->h.loop->uv);
  if (t != NULL && t->cap > t->len) {
    size_t n = t->cap - t->len;
    if (n > len)
      n = len;
    memcpy(t->data + t->len, buf, n);
    t->len += n;
    c->out_bytes += n;
    buf += n;
    len -= n;
  }
  if (len > 0) {
    casl_chunk *ch = chunk_new(c->h.loop, len);
    if (ch == NULL)
      return CASL_ENOMEM;
    memcpy(ch->data, buf, len);
    ch->len = len;
    c->out_bytes += len;
    if (c->out_tail != NULL)
      c->out_tail->next = ch;
    else
      c->out_head = ch;
    c->out_tail = ch;
  }
  return 0;
}

static void mark_dirty(casl_tcp *c) {
  casl_loop *loop = c->h.loop;
  if (c->dirty || loop->tearing_down)
    return;
  c->dirty = 1;
  c->dirty_next = loop->dirty;
  loop->dirty = c;
}

static void dirty_unlink(casl_tcp *c) {
  casl_tcp **p;
  if (!c->dirty)
    return;
  for (p = &c->h.loop->dirty; *p != NULL; p = &(*p)->dirty_next) {
    if (*p == c) {
      *p = c->dirty_next;
      break;
    }
  }
  c->dirty = 0;
  c->dirty_next = NULL;
}

void casl__tcp_flush_dirty(casl_loop *loop) {
  while (loop->dirty != NULL) {
    casl_tcp *c = loop->dirty;
    loop->dirty = c->dirty_next;
    c->dirty = 0;
    c->dirty_next = NULL;
    flush(c);
  }
}

/* Everything queued has reached the kernel. */
static void drained(casl_tcp *c) {
  if (c->notify &&
      (c->tls == NULL || casl_tls_pending_plaintext(c->tls) == 0)) {
    c->notify = 0;
    push(c, CASL_EV_WRITTEN, 0);
  }
  timer_update(c);
  maybe_finish_close(c);
}

/* Removes n sent bytes from the head of the queue. */
static void consume(casl_tcp *c, size_t n) {
  c->out_bytes -= n;
  while (n > 0 && c->out_head != NULL) {
    casl_chunk *ch = c->out_head;
    size_t avail = ch->len - ch->off;
    if (n < avail) {
      ch->off += n;
      return;
    }
    n -= avail;
    c->out_head = ch->next;
    if (c->out_head == NULL)
      c->out_tail = NULL;
    chunk_free(c->h.loop, ch);
  }
}

static int gather(casl_chunk *ch, uv_buf_t *bufs, int max, size_t *total) {
  int n = 0;
  *total = 0;
  for (; ch != NULL && n < max; ch = ch->next) {
    if (ch->len == ch->off)
      continue;
    bufs[n] = uv_buf_init(ch->data + ch->off, (unsigned)(ch->len - ch->off));
    *total += ch->len - ch->off;
    n++;
  }
  return n;
}

static void write_cb(uv_write_t *req, int status) {
  casl_tcp *c = req->data;
  size_t n = 0;
  casl_chunk *ch;
  for (ch = c->inflight; ch != NULL; ch = ch->next)
    n += ch->len - ch->off;
  chunks_free(c->h.loop, c->inflight);
  c->inflight = NULL;
  c->writing = 0;
  c->out_bytes -= n;
  if (status < 0) {
    drop_queue(c);
    if (status != UV_ECANCELED)
      report_error(c, status, "write failed: %s", uv_strerror(status));
    maybe_finish_close(c);
    return;
  }
  c->last_write = uv_now(&c->h.loop->uv);
  if (c->out_head != NULL)
    flush(c);
  else
    drained(c);
}

static void flush(casl_tcp *c) {
  uv_buf_t bufs[MAX_BUFS];
  size_t total;
  int n, rc;
  casl_chunk *ch, *last;
  if (!c->connected || c->writing || c->forced || c->shutting)
    return;
  if (c->out_head == NULL) {
    /* Everything may have gone out directly (write_direct): the drain
     * is still to be reported. */
    if (c->notify)
      drained(c);
    return;
  }
  for (;;) {
    ssize_t w;
    n = gather(c->out_head, bufs, MAX_BUFS, &total);
    if (n == 0)
      break;
    w = uv_try_write((uv_stream_t *)c->uv, bufs, (unsigned)n);
    if (w == UV_EAGAIN || w == UV_ENOSYS)
      break;
    if (w < 0) {
      drop_queue(c);
      report_error(c, (int)w, "write failed: %s", uv_strerror((int)w));
      maybe_finish_close(c);
      return;
    }
    consume(c, (size_t)w);
    c->last_write = uv_now(&c->h.loop->uv);
    if ((size_t)w < total)
      break;
  }
  if (c->out_head == NULL) {
    drained(c);
    return;
  }
  /* Hand the first MAX_BUFS chunks to libuv; the rest waits. */
  last = c->out_head;
  for (n = 1; n < MAX_BUFS && last->next != NULL; n++)
    last = last->next;
  c->inflight = c->out_head;
  c->out_head = last->next;
  if (c->out_head == NULL)
    c->out_tail = NULL;
  last->next = NULL;
  n = gather(c->inflight, bufs, MAX_BUFS, &total);
  c->wreq.data = c;
  rc = uv_write(&c->wreq, (uv_stream_t *)c->uv, bufs, (unsigned)n, write_cb);
  if (rc != 0) {
    for (ch = c->inflight; ch != NULL; ch = ch->next)
      c->out_bytes -= ch->len - ch->off;
    chunks_free(c->h.loop, c->inflight);
    c->inflight = NULL;
    drop_queue(c);
    report_error(c, rc, "write failed: %s", uv_strerror(rc));
    maybe_finish_close(c);
    return;
  }
  c->writing = 1;
  timer_update(c);
}

/* ------------------------------------------------------------------------ */
/* Timer                                                                     */

static void tcp_timer_cb(uv_timer_t *t) {
  casl_tcp *c = t->data;
  uint64_t now = uv_now(&c->h.loop->uv);
  if (c->h.flags & CASL_HF_CLOSING) {
    if (!c->forced && c->close_start + CASL_CLOSE_LINGER_MS <= now)
      casl__tcp_close_now(c);
    else
      timer_update(c);
    return;
  }
  if (c->failed) {
    timer_update(c);
    return;
  }
  if (c->handshake_ms && c->tls != NULL && !c->tls_done &&
      c->hs_start + c->handshake_ms <= now) {
    report_error(c, UV_ETIMEDOUT, "TLS handshake timed out after %.3g s",
                 (double)c->handshake_ms / 1000.0);
    return;
  }
  if (c->read_ms && !c->paused && !c->eof_seen &&
      c->last_read + c->read_ms <= now) {
    report_error(c, UV_ETIMEDOUT,
                 c->connected ? "read timed out (no data for %.3g s)"
                              : "connect timed out after %.3g s",
                 (double)c->read_ms / 1000.0);
    return;
  }
  if (c->write_ms && (c->out_head != NULL || c->writing) &&
      c->last_write + c->write_ms <= now) {
    report_error(c, UV_ETIMEDOUT,
                 "write timed out (no progress for %.3g s)",
                 (double)c->write_ms / 1000.0);
    return;
  }
  timer_update(c);
}

static void timer_close_cb(uv_handle_t *u) {
  casl__handle_uv_closed((casl_handle *)u->data);
}

static void timer_update(casl_tcp *c) {
  casl_loop *loop = c->h.loop;
  uint64_t now, due, dl = UINT64_MAX;
  if (c->h.flags & CASL_HF_UVCLOSED || loop->tearing_down)
    return;
  if (c->h.flags & CASL_HF_CLOSING) {
    if (!c->forced && c->close_start != 0)
      dl = c->close_start + CASL_CLOSE_LINGER_MS;
  } else if (!c->failed) {
    if (c->read_ms && !c->paused && !c->eof_seen && c->last_read + c->read_ms < dl)
      dl = c->last_read + c->read_ms;
    if (c->write_ms && (c->out_head != NULL || c->writing) &&
        c->last_write + c->write_ms < dl)
      dl = c->last_write + c->write_ms;
    if (c->handshake_ms && c->tls != NULL && !c->tls_done &&
        c->hs_start + c->handshake_ms < dl)
      dl = c->hs_start + c->handshake_ms;
  }
  if (dl == UINT64_MAX) {
    if (c->timer_inited && !(c->forced))
      (void)uv_timer_stop(&c->timer);
    return;
  }
  if (c->forced)
    return;
  if (!c->timer_inited) {
    if (uv_timer_init(&loop->uv, &c->timer) != 0)
      return; /* deadlines cannot be enforced; nothing else to do */
    c->timer.data = c;
    c->timer_inited = 1;
    c->h.uv_open++;
  }
  now = uv_now(&loop->uv);
  /* Arm only when not armed, or when the new deadline is earlier; a later
   * deadline is picked up when the armed timer fires. */
  due = uv_timer_get_due_in(&c->timer);
  if (!uv_is_active((uv_handle_t *)&c->timer) || dl < now + due) {
    (void)uv_timer_start(&c->timer, tcp_timer_cb, dl > now ? dl - now : 0,
                         0);
  }
}

/* ------------------------------------------------------------------------ */
/* Closing                                                                   */

static void tcp_uv_close_cb(uv_handle_t *u) {
  casl_tcp *c = u->data;
  free(u);
  if (c != NULL)
    casl__handle_uv_closed(&c->h);
}

void casl__tcp_close_now(casl_tcp *c) {
  c->h.flags |= CASL_HF_CLOSING;
  c->forced = 1;
  if (c->resolving != NULL) {
    c->resolving->c = NULL;
    (void)uv_cancel((uv_req_t *)&c->resolving->req);
    c->resolving = NULL;
  }
  if (c->ai_head != NULL) {
    uv_freeaddrinfo(c->ai_head);
    c->ai_head = c->ai_next = NULL;
  }
  dirty_unlink(c);
  if (c->uv != NULL && !uv_is_closing((uv_handle_t *)c->uv))
    uv_close((uv_handle_t *)c->uv, tcp_uv_close_cb);
  if (c->timer_inited && !uv_is_closing((uv_handle_t *)&c->timer))
    uv_close((uv_handle_t *)&c->timer, timer_close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  (void)status;
  casl__tcp_close_now(req->data);
}

static void maybe_finish_close(casl_tcp *c) {
  int rc;
  if (!(c->h.flags & CASL_HF_CLOSING) || c->forced || c->shutting)
    return;
  if (!c->connected) {
    if (c->resolving != NULL || c->ai_head != NULL || c->creq.data != NULL)
      return; /* still connecting: flush once connected */
    casl__tcp_close_now(c);
    return;
  }
  if (c->out_head != NULL && !c->writing)
    flush(c);
  if (c->out_head != NULL || c->writing || c->shutting || c->forced)
    return;
  c->sreq.data = c;
  rc = uv_shutdown(&c->sreq, (uv_stream_t *)c->uv, shutdown_cb);
  if (rc != 0)
    casl__tcp_close_now(c);
  else
    c->shutting = 1;
}

void casl_tcp_close(casl_tcp *c, int force) {
  if (c == NULL || c->forced)
    return;
  if (force) {
    casl__tcp_close_now(c);
    return;
  }
  if (c->h.flags & CASL_HF_CLOSING)
    return;
  c->h.flags |= CASL_HF_CLOSING;
  read_stop_uv(c);
  if (c->tls != NULL && c->tls_done && !c->failed)
    (void)casl_tls_shutdown(c->tls); /* close_notify joins the queue */
  c->close_start = uv_now(&c->h.loop->uv);
  if (c->close_start == 0)
    c->close_start = 1;
  timer_update(c);
  maybe_finish_close(c);
}

void casl__tcp_free(casl_tcp *c) {
  dirty_unlink(c);
  chunks_free(c->h.loop, c->out_head);
  chunks_free(c->h.loop, c->inflight);
  if (c->ai_head != NULL)
    uv_freeaddrinfo(c->ai_head);
  if (c->resolving != NULL)
    c->resolving->c = NULL;
  casl_tls_free(c->tls);
  free(c->err);
  free(c);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

/* TLS connections read into big buffers: one read, one batch of
 * decrypted data (see CASL_BIG_BUF_SIZE). */
static void alloc_cb(uv_handle_t *u, size_t suggested, uv_buf_t *buf) {
  casl_tcp *c = u->data;
  size_t size = c->tls != NULL ? CASL_BIG_BUF_SIZE : CASL_BUF_SIZE;
  char *b = casl__buf_get(c->h.loop, size);
  (void)suggested;
  *buf = uv_buf_init(b, b != NULL ? (unsigned)size : 0);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  casl_tcp *c = s->data;
  casl_loop *loop = c->h.loop;
  if (nread > 0) {
    c->last_read = uv_now(&loop->uv);
    if (c->h.flags & CASL_HF_CLOSING) {
      casl__buf_put(loop, buf->base, buf->len);
    } else if (c->tls != NULL) {
      (void)casl_tls_feed(c->tls, buf->base, (size_t)nread);
      casl__buf_put(loop, buf->base, buf->len);
    } else {
      casl_event *ev = casl__event_push(loop, CASL_EV_READ, &c->h);
      if (ev == NULL) {
        casl__buf_put(loop, buf->base, buf->len);
        report_error(c, UV_ENOMEM, "out of memory while reading");
        return;
      }
      ev->cap = buf->len;
      ev->buf = casl__buf_fit(loop, buf->base, (size_t)nread, &ev->cap);
      ev->len = (size_t)nread;
    }
    return;
  }
  casl__buf_put(loop, buf->base, buf->len);
  if (nread == 0)
    return;
  if (nread == UV_EOF) {
    read_stop_uv(c);
    if (c->tls != NULL && c->tls_started) {
      (void)casl_tls_eof(c->tls);
      /* A clean close_notify was already reported; a failure went to the
       * error callback.  A filter that has seen neither (no close_notify
       * and no error) gets a plain EOF. */
      report_eof(c);
    } else {
      report_eof(c);
    }
    return;
  }
  report_error(c, (int)nread, "read failed: %s", uv_strerror((int)nread));
}

static void read_start(casl_tcp *c) {
  int rc;
  if (c->reading || c->paused || !c->connected || c->eof_seen ||
      c->failed || (c->h.flags & CASL_HF_CLOSING))
    return;
  rc = uv_read_start((uv_stream_t *)c->uv, alloc_cb, read_cb);
  if (rc != 0) {
    report_error(c, rc, "cannot start reading: %s", uv_strerror(rc));
    return;
  }
  c->reading = 1;
}

int casl_tcp_read_stop(casl_tcp *c) {
  if (c->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  c->paused = 1;
  read_stop_uv(c);
  timer_update(c);
  return 0;
}

int casl_tcp_read_start(casl_tcp *c) {
  if (c->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  c->paused = 0;
  c->last_read = uv_now(&c->h.loop->uv);
  read_start(c);
  timer_update(c);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Connecting                                                                */

static casl_tcp *tcp_new(casl_loop *loop, int64_t id, int incoming) {
  casl_tcp *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->uv = malloc(sizeof(*c->uv));
  if (c->uv == NULL || uv_tcp_init(&loop->uv, c->uv) != 0) {
    free(c->uv);
    free(c);
    return NULL;
  }
  c->uv->data = c;
  casl__handle_init(loop, &c->h, CASL_H_TCP, id);
  c->h.uv_open = 1;
  c->incoming = incoming ? 1 : 0;
  if (incoming)
    loop->st.connections_in++;
  else
    loop->st.connections_out++;
  c->last_read = c->last_write = uv_now(&loop->uv);
  return c;
}

static void connect_next(casl_tcp *c, int last_error);

static void on_connected(casl_tcp *c) {
  casl_loop *loop = c->h.loop;
  c->connected = 1;
  c->last_read = c->last_write = uv_now(&loop->uv);
  (void)uv_tcp_nodelay(c->uv, 1);
  if (c->ai_head != NULL) {
    uv_freeaddrinfo(c->ai_head);
    c->ai_head = c->ai_next = NULL;
  }
  if (c->h.flags & CASL_HF_CLOSING) {
    /* Closed while connecting: deliver what was queued, then close. */
    maybe_finish_close(c);
    return;
  }
  read_start(c);
  if (c->tls != NULL)
    start_tls_now(c);
  else
    push(c, CASL_EV_CONNECT, 0);
  mark_dirty(c);
  timer_update(c);
}

static void connect_cb(uv_connect_t *req, int status) {
  casl_tcp *c = req->data;
  req->data = NULL;
  if (c->forced)
    return;
  if (status == 0) {
    on_connected(c);
    return;
  }
  if (status == UV_ECANCELED && (c->h.flags & CASL_HF_CLOSING))
    return;
  connect_next(c, status);
}

static int try_connect(casl_tcp *c, const struct sockaddr *addr) {
  c->creq.data = c;
  return uv_tcp_connect(&c->creq, c->uv, addr, connect_cb);
}

/* Tries the next resolved address; reports the failure when none is left. */
static void connect_next(casl_tcp *c, int last_error) {
  while (c->ai_next != NULL) {
    struct addrinfo *ai = c->ai_next;
    int rc;
    c->ai_next = ai->ai_next;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
      continue;
    if (last_error != 0) {
      /* The failed attempt left its socket in an error state: replace it. */
      uv_tcp_t *fresh = malloc(sizeof(*fresh));
      if (fresh == NULL || uv_tcp_init(&c->h.loop->uv, fresh) != 0) {
        free(fresh);
        last_error = UV_ENOMEM;
        break;
      }
      fresh->data = c;
      c->uv->data = NULL;
      uv_close((uv_handle_t *)c->uv, tcp_uv_close_cb);
      c->uv = fresh;
    }
    if (ai->ai_family == AF_INET)
      ((struct sockaddr_in *)(void *)ai->ai_addr)->sin_port =
          htons((uint16_t)c->port);
    else
      ((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_port =
          htons((uint16_t)c->port);
    rc = try_connect(c, ai->ai_addr);
    if (rc == 0)
      return;
    c->creq.data = NULL;
    last_error = rc;
  }
  if (c->ai_head != NULL) {
    uv_freeaddrinfo(c->ai_head);
    c->ai_head = c->ai_next = NULL;
  }
  if (c->h.flags & CASL_HF_CLOSING) {
    casl__tcp_close_now(c);
    return;
  }
  report_error(c, last_error, "connect failed: %s", uv_strerror(last_error));
}

static void resolve_cb(uv_getaddrinfo_t *req, int status,
                       struct addrinfo *res) {
  struct casl_connect_req *r = req->data;
  casl_tcp *c = r->c;
  free(r);
  if (c == NULL) { /* the connection was closed meanwhile */
    uv_freeaddrinfo(res);
    return;
  }
  c->resolving = NULL;
  c->h.loop->st.dns_queries--;
  if (status != 0 || res == NULL) {
    uv_freeaddrinfo(res);
    if (c->h.flags & CASL_HF_CLOSING) {
      casl__tcp_close_now(c);
      return;
    }
    report_error(c, status != 0 ? status : UV_EAI_NODATA,
                 "DNS lookup failed: %s",
                 uv_strerror(status != 0 ? status : UV_EAI_NODATA));
    return;
  }
  c->ai_head = c->ai_next = res;
  connect_next(c, 0);
}

static int parse_ip(const char *host, int port, struct sockaddr_storage *ss) {
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)(void *)ss) == 0)
    return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)(void *)ss) == 0)
    return 0;
  return CASL_EINVAL;
}

int casl_tcp_connect(casl_loop *loop, int64_t id, const char *host, int port,
                     casl_tcp **out) {
  struct sockaddr_storage ss;
  casl_tcp *c;
  int rc;
  *out = NULL;
  if (host == NULL || *host == '\0' || port <= 0 || port > 65535)
    return CASL_EINVAL;
  c = tcp_new(loop, id, 0);
  if (c == NULL)
    return CASL_ENOMEM;
  c->port = port;
  if (parse_ip(host, port, &ss) == 0) {
    rc = try_connect(c, (const struct sockaddr *)&ss);
    if (rc != 0) {
      c->creq.data = NULL;
      report_error(c, rc, "connect failed: %s", uv_strerror(rc));
    }
  } else {
    struct addrinfo hints;
    struct casl_connect_req *r = calloc(1, sizeof(*r));
    if (r == NULL) {
      c->h.flags |= CASL_HF_SILENT;
      casl__tcp_close_now(c);
      return CASL_ENOMEM;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_ADDRCONFIG;
    r->c = c;
    r->req.data = r;
    rc = uv_getaddrinfo(&loop->uv, &r->req, resolve_cb, host, NULL, &hints);
    if (rc != 0) {
      free(r);
      report_error(c, rc, "DNS lookup failed: %s", uv_strerror(rc));
    } else {
      c->resolving = r;
      loop->st.dns_queries++;
    }
  }
  *out = c;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

int casl_tcp_write(casl_tcp *c, const char *buf, size_t len, int flags) {
  int rc;
  if (c->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  if (len > 0) {
    if (c->tls != NULL) {
      rc = casl_tls_write(c->tls, buf, len);
    } else {
      if (write_direct(c, &buf, &len) != 0)
        return 0; /* the failure goes to the `error' event, as for queued
                     writes */
      rc = out_append(c, buf, len);
    }
    if (rc != 0)
      return rc;
  }
  if (flags & CASL_WRITE_NOTIFY)
    c->notify = 1;
  if (flags & CASL_WRITE_NOW)
    flush(c);
  else
    mark_dirty(c);
  timer_update(c);
  return 0;
}

size_t casl_tcp_write_queue_size(const casl_tcp *c) {
  return c->out_bytes + (c->tls != NULL ? casl_tls_pending_plaintext(c->tls)
                                        : 0);
}

int casl_tcp_set_timeouts(casl_tcp *c, uint64_t read_ms, uint64_t write_ms) {
  uint64_t now;
  if (c->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  now = uv_now(&c->h.loop->uv);
  c->read_ms = read_ms;
  c->write_ms = write_ms;
  c->last_read = now;
  if (c->out_head == NULL && !c->writing)
    c->last_write = now;
  timer_update(c);
  return 0;
}

const char *casl_tcp_error(const casl_tcp *c) {
  return c->err != NULL ? c->err : "";
}

static int address_of(casl_tcp *c, int peer, char *buf, size_t len,
                      int *port) {
  struct sockaddr_storage ss;
  int n = sizeof(ss), rc;
  if (c->uv == NULL || (c->h.flags & CASL_HF_UVCLOSED))
    return CASL_ECLOSED;
  rc = peer ? uv_tcp_getpeername(c->uv, (struct sockaddr *)&ss, &n)
            : uv_tcp_getsockname(c->uv, (struct sockaddr *)&ss, &n);
  if (rc != 0)
    return rc;
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)(void *)&ss;
    rc = uv_ip4_name(a, buf, len);
    *port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(void *)&ss;
    rc = uv_ip6_name(a, buf, len);
    *port = ntohs(a->sin6_port);
  } else {
    return CASL_EINVAL;
  }
  return rc;
}

int casl_tcp_peer_address(casl_tcp *c, char *buf, size_t len, int *port) {
  return address_of(c, 1, buf, len, port);
}

int casl_tcp_local_address(casl_tcp *c, char *buf, size_t len, int *port) {
  return address_of(c, 0, buf, len, port);
}

int casl_tcp_fd(casl_tcp *c) {
  uv_os_fd_t fd;
  int rc;
  if (c->uv == NULL || (c->h.flags & CASL_HF_UVCLOSED))
    return CASL_ECLOSED;
  rc = uv_fileno((uv_handle_t *)c->uv, &fd);
  return rc != 0 ? rc : (int)fd;
}

int casl_tcp_connected(const casl_tcp *c) {
  return c->connected && !(c->h.flags & CASL_HF_CLOSING) &&
         (c->tls == NULL || c->tls_done);
}

/* ------------------------------------------------------------------------ */
/* TLS                                                                       */

static void tls_alloc(void *ud, char **buf, size_t *len) {
  casl_tcp *c = ud;
  *buf = casl__buf_get(c->h.loop, CASL_BIG_BUF_SIZE);
  *len = *buf != NULL ? CASL_BIG_BUF_SIZE : 0;
}

static void tls_plaintext(void *ud, char *buf, size_t len) {
  casl_tcp *c = ud;
  casl_event *ev;
  if (len == 0 || (c->h.flags & CASL_HF_CLOSING) || c->failed) {
    casl__buf_put(c->h.loop, buf, CASL_BIG_BUF_SIZE);
    return;
  }
  ev = casl__event_push(c->h.loop, CASL_EV_READ, &c->h);
  if (ev == NULL) {
    casl__buf_put(c->h.loop, buf, CASL_BIG_BUF_SIZE);
    report_error(c, UV_ENOMEM, "out of memory while reading");
    return;
  }
  ev->cap = CASL_BIG_BUF_SIZE;
  ev->buf = casl__buf_fit(c->h.loop, buf, len, &ev->cap);
  ev->len = len;
}

static void tls_ciphertext(void *ud, const char *buf, size_t len) {
  casl_tcp *c = ud;
  if (c->forced || write_direct(c, &buf, &len) != 0)
    return;
  if (out_append(c, buf, len) != 0) {
    report_error(c, UV_ENOMEM, "out of memory while writing");
    return;
  }
  mark_dirty(c);
}

static void tls_handshake(void *ud) {
  casl_tcp *c = ud;
  c->tls_done = 1;
  if (!(c->h.flags & CASL_HF_CLOSING))
    push(c, CASL_EV_CONNECT, 0);
  timer_update(c);
}

static void tls_close_notify(void *ud) { report_eof(ud); }

static void tls_error(void *ud, int code) {
  casl_tcp *c = ud;
  report_error(c, code, "%s", casl_tls_error(c->tls));
}

static void tls_sni(void *ud, const char *name) {
  casl_tcp *c = ud;
  casl_event *ev;
  if (c->h.flags & CASL_HF_CLOSING)
    return;
  ev = casl__event_push(c->h.loop, CASL_EV_SNI, &c->h);
  if (ev == NULL || (ev->buf = casl__strdup(name != NULL ? name : "")) ==
                        NULL) {
    report_error(c, UV_ENOMEM, "out of memory");
    return;
  }
}

static const casl_tls_callbacks tcp_tls_callbacks = {
    tls_alloc,     tls_plaintext, tls_ciphertext, tls_handshake,
    tls_close_notify, tls_error,  tls_sni};

/* Feeds received bytes that were queued for the application, but not yet
 * dispatched, to the filter (STARTTLS). */
static void reroute_reads(casl_tcp *c) {
  casl_loop *loop = c->h.loop;
  casl_event **p = &loop->ev_head, *prev = NULL;
  while (*p != NULL) {
    casl_event *ev = *p;
    if (ev->h == &c->h && ev->type == CASL_EV_READ) {
      *p = ev->next;
      if (loop->ev_tail == ev)
        loop->ev_tail = prev;
      loop->ev_count--;
      (void)casl_tls_feed(c->tls, ev->buf, ev->len);
      casl__buf_done(loop, ev->buf, ev->cap);
      free(ev);
      continue;
    }
    prev = ev;
    p = &ev->next;
  }
}

static void start_tls_now(casl_tcp *c) {
  int rc;
  c->tls_started = 1;
  c->hs_start = uv_now(&c->h.loop->uv);
  rc = casl_tls_start(c->tls);
  if (rc != 0 && !c->failed)
    report_error(c, rc, "%s", casl_tls_error(c->tls));
  timer_update(c);
}

int casl_tcp_start_tls(casl_tcp *c, casl_tls_ctx *ctx, int server,
                       const char *name, const char *session_key,
                       uint64_t handshake_timeout_ms) {
  casl_tls *t;
  int rc;
  if (c->h.flags & CASL_HF_CLOSING || c->failed)
    return CASL_ECLOSED;
  if (c->tls != NULL)
    return CASL_ESTATE;
  rc = casl_tls_new(&t, ctx, server, name, session_key, &tcp_tls_callbacks,
                    c);
  if (rc != 0)
    return rc;
  c->tls = t;
  c->handshake_ms = handshake_timeout_ms;
  c->hs_start = uv_now(&c->h.loop->uv);
  if (c->connected) {
    start_tls_now(c);
    reroute_reads(c);
    mark_dirty(c);
  }
  timer_update(c);
  return 0;
}

casl_tls *casl_tcp_tls(casl_tcp *c) { return c->tls; }

int casl_tcp_sni_select(casl_tcp *c, casl_tls_ctx *ctx) {
  int rc;
  if (c->tls == NULL)
    return CASL_ESTATE;
  if (c->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  rc = casl_tls_sni_select(c->tls, ctx);
  mark_dirty(c);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Servers                                                                   */

static void server_close_cb(uv_handle_t *u) {
  casl__handle_uv_closed((casl_handle *)u->data);
}

static void connection_cb(uv_stream_t *srv, int status) {
  casl_server *s = srv->data;
  casl_loop *loop = s->h.loop;
  casl_tcp *c;
  casl_event *ev;
  int rc;
  if (s->h.flags & CASL_HF_CLOSING)
    return;
  if (status < 0) {
    ev = casl__event_push(loop, CASL_EV_ERROR, &s->h);
    if (ev != NULL)
      ev->code = status;
    return;
  }
  c = tcp_new(loop, 0, 1);
  if (c == NULL) {
    /* Accept and drop, or libuv keeps reporting the connection. */
    uv_tcp_t *tmp = malloc(sizeof(*tmp));
    if (tmp != NULL && uv_tcp_init(&loop->uv, tmp) == 0) {
      tmp->data = NULL;
      (void)uv_accept(srv, (uv_stream_t *)tmp);
      uv_close((uv_handle_t *)tmp, tcp_uv_close_cb);
    } else {
      free(tmp);
    }
    return;
  }
  c->h.flags |= CASL_HF_SILENT; /* until the application takes it */
  rc = uv_accept(srv, (uv_stream_t *)c->uv);
  if (rc != 0) {
    casl__tcp_close_now(c);
    ev = casl__event_push(loop, CASL_EV_ERROR, &s->h);
    if (ev != NULL)
      ev->code = rc;
    return;
  }
  c->connected = 1;
  (void)uv_tcp_nodelay(c->uv, 1);
  if (s->tls_ctx != NULL) {
    rc = casl_tls_new(&c->tls, s->tls_ctx, CASL_TLS_SERVER, NULL, NULL,
                      &tcp_tls_callbacks, c);
    if (rc != 0) {
      casl__tcp_close_now(c);
      ev = casl__event_push(loop, CASL_EV_ERROR, &s->h);
      if (ev != NULL)
        ev->code = rc;
      return;
    }
    c->handshake_ms = s->handshake_ms;
  }
  ev = casl__event_push(loop, CASL_EV_ACCEPT, &c->h);
  if (ev == NULL) {
    casl__tcp_close_now(c);
    return;
  }
  ev->aux = &s->h;
  read_start(c);
  if (c->tls != NULL)
    start_tls_now(c);
  timer_update(c);
}

/* A server handle with id, before it is bound: 0 and *out, or a code. */
static int server_new(casl_loop *loop, int64_t id, casl_server **out) {
  casl_server *s = calloc(1, sizeof(*s));
  int rc;
  *out = NULL;
  if (s == NULL)
    return CASL_ENOMEM;
  rc = uv_tcp_init(&loop->uv, &s->uv);
  if (rc != 0) {
    free(s);
    return rc;
  }
  s->uv.data = s;
  casl__handle_init(loop, &s->h, CASL_H_SERVER, id);
  s->h.uv_open = 1;
  loop->st.servers++;
  *out = s;
  return 0;
}

/* Listens on s once binding (or adopting an fd) gave rc; on any failure
 * the handle closes without ever being reported and rc is returned. */
static int server_start(casl_server *s, int rc, int backlog,
                        casl_server **out) {
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&s->uv, backlog < 1 ? 128 : backlog,
                   connection_cb);
  if (rc != 0) {
    s->h.flags |= CASL_HF_CLOSING | CASL_HF_SILENT;
    uv_close((uv_handle_t *)&s->uv, server_close_cb);
    return rc;
  }
  *out = s;
  return 0;
}

int casl_server_listen(casl_loop *loop, int64_t id, const char *addr, int port,
                       int backlog, casl_server **out) {
  struct sockaddr_storage ss;
  casl_server *s;
  int rc;
  *out = NULL;
  if (addr == NULL || *addr == '\0')
    addr = "0.0.0.0";
  if (port < 0 || port > 65535 || parse_ip(addr, port, &ss) != 0)
    return CASL_EINVAL;
  if ((rc = server_new(loop, id, &s)) != 0)
    return rc;
  return server_start(s, uv_tcp_bind(&s->uv, (const struct sockaddr *)&ss, 0),
                      backlog, out);
}

int casl_server_open_fd(casl_loop *loop, int64_t id, int fd, int backlog,
                        casl_server **out) {
  casl_server *s;
  int rc;
  *out = NULL;
  if (fd < 0)
    return CASL_EINVAL;
  if ((rc = server_new(loop, id, &s)) != 0)
    return rc;
  return server_start(s, uv_tcp_open(&s->uv, (uv_os_sock_t)fd), backlog, out);
}

int casl_server_port(casl_server *s) {
  struct sockaddr_storage ss;
  int n = sizeof(ss), rc;
  rc = uv_tcp_getsockname(&s->uv, (struct sockaddr *)&ss, &n);
  if (rc != 0)
    return rc;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
  return CASL_EINVAL;
}

int casl_server_set_tls(casl_server *s, casl_tls_ctx *ctx,
                        uint64_t handshake_timeout_ms) {
  if (s->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  if (ctx != NULL)
    casl_tls_ctx_ref(ctx);
  if (s->tls_ctx != NULL)
    casl_tls_ctx_unref(s->tls_ctx);
  s->tls_ctx = ctx;
  s->handshake_ms = handshake_timeout_ms;
  return 0;
}

void casl__server_close_now(casl_server *s) {
  s->h.flags |= CASL_HF_CLOSING;
  if (!uv_is_closing((uv_handle_t *)&s->uv))
    uv_close((uv_handle_t *)&s->uv, server_close_cb);
}

void casl_server_close(casl_server *s) {
  if (s == NULL || (s->h.flags & CASL_HF_CLOSING))
    return;
  casl__server_close_now(s);
}

void casl__server_free(casl_server *s) {
  if (s->tls_ctx != NULL)
    casl_tls_ctx_unref(s->tls_ctx);
  free(s);
}
