/*
 * stream.c -- the byte-stream core: reading, writing, timeouts and
 * closing, for every connection (TCP, unix sockets, stdio pipes), with an optional TLS filter
 * between the wire and the application.
 *
 * Writes are copied into the stream's write queue and sent, coalesced,
 * when the current dispatch round ends (uv_try_write first, uv_write for
 * the rest; one write request in flight at a time).  One libuv timer per
 * stream serves the read, write, handshake and close-linger deadlines;
 * activity only moves a timestamp and the timer re-arms itself when it
 * fires early.  A filter is driven through the TLS engine's public API
 * only; its callbacks are in stream-tls.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream-int.h"

static void flush(casl_tcp *c);
static void read_start(casl_tcp *c);

/* ------------------------------------------------------------------------ */
/* Errors and events                                                         */

static void set_err(casl_tcp *c, const char *text) {
  casl__free(c->err);
  c->err = casl__strdup(text);
}

static void read_stop_uv(casl_tcp *c) {
  if (c->reading) {
    (void)uv_read_stop(c->uv);
    c->reading = 0;
  }
}

void casl__stream_push(casl_tcp *c, casl_evtype type, int code) {
  casl_event *ev = casl__event_push(c->h.loop, type, &c->h);
  if (ev == NULL) {
    casl__handle_lost(&c->h, type == CASL_EV_ERROR ? code : UV_ENOMEM);
    return;
  }
  ev->code = code;
}

/* The application decides how to close (the Lisp layer closes the
 * connection on every error). */
void casl__stream_error(casl_tcp *c, int code, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  if (c->failed || (c->h.flags & CASL_HF_CLOSING))
    return;
  c->failed = 1;
  va_start(ap, fmt);
  /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): started above */
  (void)vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  set_err(c, buf);
  read_stop_uv(c);
  casl__stream_push(c, CASL_EV_ERROR, code);
  casl__stream_timer_update(c);
}

void casl__stream_eof(casl_tcp *c) {
  if (c->eof_seen || c->failed || (c->h.flags & CASL_HF_CLOSING))
    return;
  c->eof_seen = 1;
  read_stop_uv(c);
  casl__stream_push(c, CASL_EV_ERROR, UV_EOF);
  casl__stream_timer_update(c);
}

static void write_failed(casl_tcp *c, int code) {
  casl__wq_drop(&c->wq, &c->h.loop->pool);
  casl__stream_error(c, code, "write failed: %s", uv_strerror(code));
  casl__stream_finish_close(c);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

/* Large writes skip the copy into the queue when nothing is queued before
 * them: as much as the kernel takes now goes out from the caller's buffer
 * (small writes are still queued and coalesced).  Advances *buf and *len past
 * what was sent; returns non-zero if the connection failed. */
#define DIRECT_MIN 8192
static int write_direct(casl_tcp *c, const char **buf, size_t *len) {
  uv_buf_t b;
  ssize_t w;
  if (*len < DIRECT_MIN || !c->connected || c->writing || c->wq.head != NULL ||
      c->forced || c->shutting)
    return 0;
  b = uv_buf_init((char *)*buf, (unsigned)*len);
  w = uv_try_write(c->uv, &b, 1);
  if (w == UV_EAGAIN || w == UV_ENOSYS)
    return 0;
  if (w < 0) {
    casl__stream_error(c, (int)w, "write failed: %s", uv_strerror((int)w));
    return 1;
  }
  *buf += w;
  *len -= (size_t)w;
  c->last_write = uv_now(&c->h.loop->uv);
  return 0;
}

int casl__stream_send(casl_tcp *c, const char *buf, size_t len) {
  if (c->forced || write_direct(c, &buf, &len) != 0)
    return 1;
  if (len == 0)
    return 0;
  if (c->wq.head == NULL && !c->writing)
    c->last_write = uv_now(&c->h.loop->uv);
  return casl__wq_append(&c->wq, &c->h.loop->pool, buf, len);
}

/* Everything queued has reached the kernel. */
static void drained(casl_tcp *c) {
  if (c->notify &&
      (c->tls == NULL || (casl_tls_pending_plaintext(c->tls) == 0 &&
                          casl_tls_pending_ciphertext(c->tls) == 0))) {
    c->notify = 0;
    casl__stream_push(c, CASL_EV_WRITTEN, 0);
  }
  casl__stream_timer_update(c);
  casl__stream_finish_close(c);
}

static void write_cb(uv_write_t *req, int status) {
  casl_tcp *c = req->data;
  casl__wq_sent(&c->wq, &c->h.loop->pool);
  c->writing = 0;
  if (status < 0) {
    if (status != UV_ECANCELED) {
      write_failed(c, status);
    } else {
      casl__wq_drop(&c->wq, &c->h.loop->pool);
      casl__stream_finish_close(c);
    }
    return;
  }
  c->last_write = uv_now(&c->h.loop->uv);
  if (c->wq.head != NULL)
    flush(c);
  else
    drained(c);
}

/* Whether the TLS filter holds ciphertext of writes (CASL_TLS_HOLD). */
static int tls_holding(const casl_tcp *c) {
  return c->tls != NULL && !c->failed &&
         casl_tls_pending_ciphertext(c->tls) > 0;
}

static void flush(casl_tcp *c) {
  uv_buf_t bufs[CASL_WQ_MAX_BUFS];
  size_t total;
  int n, rc;
  /* The ciphertext the filter held joins the queue (or goes out) first.
   * A filter that failed reported it through `error'; what it queued
   * before (its alert) still goes out below. */
  if (!c->forced && tls_holding(c))
    (void)casl_tls_flush(c->tls);
  if (!c->connected || c->writing || c->forced || c->shutting)
    return;
  if (c->wq.head == NULL) {
    /* Everything may have gone out directly (write_direct): the drain
     * is still to be reported. */
    if (c->notify)
      drained(c);
    return;
  }
  for (;;) {
    ssize_t w;
    n = casl__wq_gather(&c->wq, bufs, CASL_WQ_MAX_BUFS, &total);
    if (n == 0)
      break;
    w = uv_try_write(c->uv, bufs, (unsigned)n);
    if (w == UV_EAGAIN || w == UV_ENOSYS)
      break;
    if (w < 0) {
      write_failed(c, (int)w);
      return;
    }
    casl__wq_consume(&c->wq, &c->h.loop->pool, (size_t)w);
    c->last_write = uv_now(&c->h.loop->uv);
    if ((size_t)w < total)
      break;
  }
  if (c->wq.head == NULL) {
    drained(c);
    return;
  }
  n = casl__wq_submit(&c->wq, bufs);
  c->wreq.data = c;
  rc = uv_write(&c->wreq, c->uv, bufs, (unsigned)n, write_cb);
  if (rc != 0) {
    casl__wq_sent(&c->wq, &c->h.loop->pool);
    write_failed(c, rc);
    return;
  }
  c->writing = 1;
  casl__stream_timer_update(c);
}

int casl_tcp_write(casl_tcp *c, const char *buf, size_t len, int flags) {
  int rc;
  if (c->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  if (len > 0) {
    rc = c->tls != NULL ? casl_tls_write(c->tls, buf, len)
                        : casl__stream_send(c, buf, len);
    if (rc == 1)
      return 0; /* the failure goes to the `error' event, as for queued
                   writes */
    if (rc != 0)
      return rc;
  }
  if (flags & CASL_WRITE_NOTIFY)
    c->notify = 1;
  if (flags & CASL_WRITE_NOW)
    flush(c);
  else
    casl__loop_mark_dirty(&c->h);
  casl__stream_timer_update(c);
  return 0;
}

size_t casl_tcp_write_queue_size(const casl_tcp *c) {
  return c->wq.bytes +
         (c->tls != NULL ? casl_tls_pending_plaintext(c->tls) +
                               casl_tls_pending_ciphertext(c->tls)
                         : 0);
}

/* ------------------------------------------------------------------------ */
/* Timeouts                                                                  */

static void stream_timer_cb(uv_timer_t *t) {
  casl_tcp *c = t->data;
  uint64_t now = uv_now(&c->h.loop->uv);
  if (c->h.flags & CASL_HF_CLOSING) {
    if (!c->forced && c->close_start + CASL_CLOSE_LINGER_MS <= now)
      casl__stream_close_now(c);
    else
      casl__stream_timer_update(c);
    return;
  }
  if (c->failed) {
    casl__stream_timer_update(c);
    return;
  }
  if (c->handshake_ms && c->tls != NULL && !c->tls_done &&
      c->hs_start + c->handshake_ms <= now) {
    casl__stream_error(c, UV_ETIMEDOUT, "TLS handshake timed out after %.3g s",
                       (double)c->handshake_ms / 1000.0);
    return;
  }
  if (c->read_ms && !c->paused && !c->eof_seen &&
      c->last_read + c->read_ms <= now) {
    if (c->connected)
      casl__stream_error(c, UV_ETIMEDOUT, "read timed out (no data for %.3g s)",
                         (double)c->read_ms / 1000.0);
    else
      casl__stream_error(c, UV_ETIMEDOUT, "connect timed out after %.3g s",
                         (double)c->read_ms / 1000.0);
    return;
  }
  if (c->write_ms && (c->wq.head != NULL || c->writing) &&
      c->last_write + c->write_ms <= now) {
    casl__stream_error(c, UV_ETIMEDOUT,
                       "write timed out (no progress for %.3g s)",
                       (double)c->write_ms / 1000.0);
    return;
  }
  casl__stream_timer_update(c);
}

void casl__stream_timer_update(casl_tcp *c) {
  casl_loop *loop = c->h.loop;
  uint64_t now, due, dl = UINT64_MAX;
  if (c->h.flags & CASL_HF_UVCLOSED || loop->tearing_down)
    return;
  if (c->h.flags & CASL_HF_CLOSING) {
    if (!c->forced && c->close_start != 0)
      dl = c->close_start + CASL_CLOSE_LINGER_MS;
  } else if (!c->failed) {
    if (c->read_ms && !c->paused && !c->eof_seen &&
        c->last_read + c->read_ms < dl)
      dl = c->last_read + c->read_ms;
    if (c->write_ms && (c->wq.head != NULL || c->writing) &&
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
    (void)uv_timer_start(&c->timer, stream_timer_cb, dl > now ? dl - now : 0,
                         0);
  }
}

int casl_tcp_set_timeouts(casl_tcp *c, uint64_t read_ms, uint64_t write_ms) {
  uint64_t now;
  if (c->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  now = uv_now(&c->h.loop->uv);
  c->read_ms = read_ms;
  c->write_ms = write_ms;
  c->last_read = now;
  if (c->wq.head == NULL && !c->writing)
    c->last_write = now;
  casl__stream_timer_update(c);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Closing                                                                   */

void casl__stream_uv_close(uv_handle_t *u) {
  casl_tcp *c = u->data;
  casl__free(u);
  if (c != NULL)
    casl__handle_uv_closed(&c->h);
}

void casl__stream_close_now(casl_tcp *c) {
  c->h.flags |= CASL_HF_CLOSING;
  c->forced = 1;
  if (c->resolving != NULL) {
    casl__resolve_cancel(c->resolving);
    c->resolving = NULL;
  }
  if (c->ai_head != NULL) {
    uv_freeaddrinfo(c->ai_head);
    c->ai_head = c->ai_next = NULL;
  }
  casl__loop_unmark_dirty(&c->h);
  if (c->uv != NULL && !uv_is_closing((uv_handle_t *)c->uv))
    uv_close((uv_handle_t *)c->uv, casl__stream_uv_close);
  if (c->timer_inited)
    casl__handle_close_uv((uv_handle_t *)&c->timer);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  (void)status;
  casl__stream_close_now(req->data);
}

static int connecting(const casl_tcp *c) {
  return c->resolving != NULL || c->ai_head != NULL || c->creq.data != NULL;
}

void casl__stream_finish_close(casl_tcp *c) {
  int rc;
  if (!(c->h.flags & CASL_HF_CLOSING) || c->forced || c->shutting)
    return;
  if (!c->connected) {
    if (connecting(c))
      return; /* still connecting: flush once connected */
    casl__stream_close_now(c);
    return;
  }
  if ((c->wq.head != NULL || tls_holding(c)) && !c->writing)
    flush(c);
  if (c->wq.head != NULL || c->writing || c->shutting || c->forced ||
      tls_holding(c))
    return;
  c->sreq.data = c;
  rc = uv_shutdown(&c->sreq, c->uv, shutdown_cb);
  if (rc != 0)
    casl__stream_close_now(c);
  else
    c->shutting = 1;
}

void casl_tcp_close(casl_tcp *c, int force) {
  if (c == NULL || c->forced)
    return;
  if (force) {
    casl__stream_close_now(c);
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
  casl__stream_timer_update(c);
  casl__stream_finish_close(c);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

/* TLS connections read into big buffers: one read, one batch of
 * decrypted data (see CASL_BIG_BUF_SIZE). */
static void alloc_cb(uv_handle_t *u, size_t suggested, uv_buf_t *buf) {
  casl_tcp *c = u->data;
  size_t size = c->tls != NULL ? CASL_BIG_BUF_SIZE : CASL_BUF_SIZE;
  char *b = casl__buf_get(&c->h.loop->pool, size);
  (void)suggested;
  *buf = uv_buf_init(b, b != NULL ? (unsigned)size : 0);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  casl_tcp *c = s->data;
  casl_loop *loop = c->h.loop;
  if (nread > 0) {
    c->last_read = uv_now(&loop->uv);
    if (c->h.flags & CASL_HF_CLOSING) {
      casl__buf_put(&loop->pool, buf->base, buf->len);
    } else if (c->tls != NULL) {
      (void)casl_tls_feed(c->tls, buf->base, (size_t)nread);
      casl__buf_put(&loop->pool, buf->base, buf->len);
    } else {
      casl_event *ev = casl__event_push(loop, CASL_EV_READ, &c->h);
      if (ev == NULL) {
        casl__buf_put(&loop->pool, buf->base, buf->len);
        casl__stream_error(c, UV_ENOMEM, "out of memory while reading");
        return;
      }
      ev->cap = buf->len;
      ev->buf = casl__buf_fit(&loop->pool, buf->base, (size_t)nread, &ev->cap);
      ev->len = (size_t)nread;
    }
    return;
  }
  casl__buf_put(&loop->pool, buf->base, buf->len);
  if (nread == 0)
    return;
  if (nread == UV_EOF) {
    read_stop_uv(c);
    /* A filter reports a clean close_notify, or a failure, itself; one
     * that has seen neither gets a plain EOF. */
    if (c->tls != NULL && c->tls_started)
      (void)casl_tls_eof(c->tls);
    casl__stream_eof(c);
    return;
  }
  casl__stream_error(c, (int)nread, "read failed: %s", uv_strerror((int)nread));
}

static void read_start(casl_tcp *c) {
  int rc;
  if (c->reading || c->paused || !c->connected || c->eof_seen || c->failed ||
      (c->h.flags & CASL_HF_CLOSING))
    return;
  rc = uv_read_start(c->uv, alloc_cb, read_cb);
  if (rc != 0) {
    casl__stream_error(c, rc, "cannot start reading: %s", uv_strerror(rc));
    return;
  }
  c->reading = 1;
}

int casl_tcp_read_stop(casl_tcp *c) {
  if (c->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  c->paused = 1;
  read_stop_uv(c);
  casl__stream_timer_update(c);
  return 0;
}

int casl_tcp_read_start(casl_tcp *c) {
  if (c->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  c->paused = 0;
  c->last_read = uv_now(&c->h.loop->uv);
  read_start(c);
  casl__stream_timer_update(c);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Life                                                                      */

void casl__stream_tls_start(casl_tcp *c) {
  int rc;
  c->tls_started = 1;
  c->hs_start = uv_now(&c->h.loop->uv);
  rc = casl_tls_start(c->tls);
  if (rc != 0 && !c->failed)
    casl__stream_error(c, rc, "%s", casl_tls_error(c->tls));
  casl__stream_timer_update(c);
}

void casl__stream_connected(casl_tcp *c) {
  c->connected = 1;
  c->last_read = c->last_write = uv_now(&c->h.loop->uv);
  if (c->h.flags & CASL_HF_CLOSING) {
    /* Closed while connecting: deliver what was queued, then close. */
    casl__stream_finish_close(c);
    return;
  }
  read_start(c);
  if (c->tls != NULL)
    casl__stream_tls_start(c);
  else if (!c->incoming)
    casl__stream_push(c, CASL_EV_CONNECT, 0);
  casl__loop_mark_dirty(&c->h);
  casl__stream_timer_update(c);
}

static uv_handle_t *stream_uv(casl_handle *h) {
  return (uv_handle_t *)((casl_tcp *)h)->uv;
}

static void stream_close(casl_handle *h) { casl_tcp_close((casl_tcp *)h, 0); }

static void stream_close_now(casl_handle *h) {
  casl__stream_close_now((casl_tcp *)h);
}

static void stream_release(casl_handle *h) {
  casl_tcp *c = (casl_tcp *)h;
  casl__wq_free(&c->wq, &h->loop->pool);
  if (c->ai_head != NULL)
    uv_freeaddrinfo(c->ai_head);
  if (c->resolving != NULL)
    casl__resolve_cancel(c->resolving);
  casl_tls_free(c->tls);
  casl__free(c->err);
  casl__free(c);
}

static void stream_flush(casl_handle *h) { flush((casl_tcp *)h); }

static void stream_stats(casl_handle *h, casl_stats *st) {
  casl_tcp *c = (casl_tcp *)h;
  st->write_queue += (int64_t)casl_tcp_write_queue_size(c);
  if (c->tls != NULL)
    st->tls++;
}

static const char *stream_tag(casl_handle *h) {
  return ((casl_tcp *)h)->tls != NULL ? "tls" : NULL;
}

/* One per casl_stream_kind, in order. */
static const casl_handle_ops stream_ops[] = {
    {"tcp", stream_uv, stream_close, stream_close_now, stream_release,
     stream_flush, stream_stats, stream_tag},
    {"pipe", stream_uv, stream_close, stream_close_now, stream_release,
     stream_flush, stream_stats, stream_tag}};

int casl__stream_uv_init(casl_loop *loop, casl_stream_kind kind,
                         uv_stream_t *u) {
  switch (kind) {
  case CASL_STREAM_TCP:
    return uv_tcp_init(&loop->uv, (uv_tcp_t *)u);
  case CASL_STREAM_PIPE:
    return uv_pipe_init(&loop->uv, (uv_pipe_t *)u, 0);
  }
  return UV_EINVAL;
}

casl_tcp *casl__stream_new(casl_loop *loop, int64_t id, casl_stream_kind kind,
                           int incoming) {
  casl_tcp *c = casl__calloc(1, sizeof(*c));
  casl_stream_uv *u = casl__malloc(sizeof(*u));
  if (c == NULL || u == NULL ||
      casl__stream_uv_init(loop, kind, &u->stream) != 0) {
    casl__free(u);
    casl__free(c);
    return NULL;
  }
  c->uv = &u->stream;
  c->kind = kind;
  c->uv->data = c;
  casl__handle_init(loop, &c->h, &stream_ops[kind - 1], id,
                    kind == CASL_STREAM_PIPE ? &loop->st.pipes
                    : incoming               ? &loop->st.connections_in
                                             : &loop->st.connections_out);
  c->h.uv_open = 1;
  c->incoming = incoming ? 1 : 0;
  c->last_read = c->last_write = uv_now(&loop->uv);
  return c;
}

const char *casl_tcp_error(const casl_tcp *c) {
  return c->err != NULL ? c->err : "";
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
