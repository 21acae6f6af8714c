/*
 * stream-tls.c -- the TLS filter on a stream: the engine's callbacks
 * (decrypted bytes become `read' events, ciphertext joins the write
 * queue), STARTTLS, and answers to SNI questions.
 *
 * Data flows one way: the wire's bytes reach the filter from stream.c's
 * read callback (casl_tls_feed), and come out here.
 */
#include <stdlib.h>

#include "stream-int.h"

static void tls_alloc(void *ud, char **buf, size_t *len) {
  casl_tcp *c = ud;
  *buf = casl__buf_get(&c->h.loop->pool, CASL_BIG_BUF_SIZE);
  *len = *buf != NULL ? CASL_BIG_BUF_SIZE : 0;
}

static void tls_plaintext(void *ud, char *buf, size_t len) {
  casl_tcp *c = ud;
  casl_bufpool *pool = &c->h.loop->pool;
  casl_event *ev;
  if (len == 0 || (c->h.flags & CASL_HF_CLOSING) || c->failed) {
    casl__buf_put(pool, buf, CASL_BIG_BUF_SIZE);
    return;
  }
  ev = casl__event_push(c->h.loop, CASL_EV_READ, &c->h);
  if (ev == NULL) {
    casl__buf_put(pool, buf, CASL_BIG_BUF_SIZE);
    casl__stream_error(c, UV_ENOMEM, "out of memory while reading");
    return;
  }
  ev->cap = CASL_BIG_BUF_SIZE;
  ev->buf = casl__buf_fit(pool, buf, len, &ev->cap);
  ev->len = len;
}

static void tls_ciphertext(void *ud, const char *buf, size_t len) {
  casl_tcp *c = ud;
  int rc = casl__stream_send(c, buf, len);
  if (rc == 1)
    return;
  if (rc != 0) {
    casl__stream_error(c, UV_ENOMEM, "out of memory while writing");
    return;
  }
  casl__loop_mark_dirty(&c->h);
}

static void tls_handshake(void *ud) {
  casl_tcp *c = ud;
  c->tls_done = 1;
  if (!(c->h.flags & CASL_HF_CLOSING))
    casl__stream_push(c, CASL_EV_CONNECT, 0);
  casl__stream_timer_update(c);
}

static void tls_close_notify(void *ud) { casl__stream_eof(ud); }

static void tls_error(void *ud, int code) {
  casl_tcp *c = ud;
  casl__stream_error(c, code, "%s", casl_tls_error(c->tls));
}

static void tls_sni(void *ud, const char *name) {
  casl_tcp *c = ud;
  casl_event *ev = NULL;
  char *copy;
  if (c->h.flags & CASL_HF_CLOSING)
    return;
  copy = casl__strdup(name != NULL ? name : "");
  if (copy == NULL || (ev = casl__event_push(c->h.loop, CASL_EV_SNI, &c->h)) == NULL) {
    casl__free(copy);
    casl__stream_error(c, UV_ENOMEM, "out of memory");
    return;
  }
  ev->buf = copy;
}

static const casl_tls_callbacks stream_tls_callbacks = {
    tls_alloc,        tls_plaintext, tls_ciphertext, tls_handshake,
    tls_close_notify, tls_error,     tls_sni};

int casl__stream_tls_new(casl_tcp *c, casl_tls_ctx *ctx, int server,
                         const char *name, const char *session_key,
                         uint64_t handshake_timeout_ms) {
  int rc = casl_tls_new(&c->tls, ctx, server, name, session_key,
                        &stream_tls_callbacks, c);
  if (rc == 0) {
    c->handshake_ms = handshake_timeout_ms;
    casl_tls_set_hold(c->tls, CASL_TLS_HOLD);
  }
  return rc;
}

/* Received bytes queued for the application, not yet dispatched, belong
 * to the handshake (STARTTLS): they go to the filter. */
static void feed_filter(casl_handle *h, const char *buf, size_t len) {
  (void)casl_tls_feed(((casl_tcp *)h)->tls, buf, len);
}

int casl_tcp_start_tls(casl_tcp *c, casl_tls_ctx *ctx, int server,
                       const char *name, const char *session_key,
                       uint64_t handshake_timeout_ms) {
  int rc;
  if (c->h.flags & CASL_HF_CLOSING || c->failed)
    return CASL_ECLOSED;
  if (c->tls != NULL)
    return CASL_ESTATE;
  rc = casl__stream_tls_new(c, ctx, server, name, session_key,
                            handshake_timeout_ms);
  if (rc != 0)
    return rc;
  c->hs_start = uv_now(&c->h.loop->uv);
  if (c->connected) {
    casl__stream_tls_start(c);
    casl__event_take_reads(c->h.loop, &c->h, feed_filter);
    casl__loop_mark_dirty(&c->h);
  }
  casl__stream_timer_update(c);
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
  casl__loop_mark_dirty(&c->h);
  return rc;
}

int casl_tcp_peer_checked(casl_tcp *c, const char *reason) {
  int rc;
  if (c->tls == NULL)
    return CASL_ESTATE;
  if (c->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  rc = casl_tls_peer_checked(c->tls, reason);
  casl__loop_mark_dirty(&c->h);
  return rc;
}
