/*
 * tls-filter.c -- the TLS filter: one connection, no socket.
 *
 * The filter talks to OpenSSL through a BIO of its own (tls-bio.c).  The
 * ciphertext OpenSSL writes is handed to the `ciphertext' callback in one
 * call per batch before any other callback and before the outermost call
 * returns.  No application callback ever runs inside an OpenSSL call: key
 * log lines are queued the same way.
 *
 * Re-entrancy: every public entry point on a filter counts itself in
 * `depth'; casl_tls_free from inside a callback only sets `free_pending',
 * and the filter is destroyed when the outermost entry returns.  After each
 * callback the pump checks `dead()' and stops.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "tls-int.h"

/* Ciphertext batches are handed on once they exceed this much, so a large
 * casl_tls_write does not buffer its whole output. */
#define OUT_FLUSH (256 * 1024)
/* Largest plaintext given to one SSL_write. */
#define WRITE_CHUNK (256 * 1024)
/* More than a TLS record adds to its plaintext (header, tag, padding): what
 * `out' is grown by per record before a write, so that it is grown once
 * and not record by record. */
#define RECORD_OVERHEAD 64

static atomic_long live_filters;

static int dead(const casl_tls *t) { return t->failed || t->free_pending; }

static void destroy(casl_tls *t) {
  SSL_free(t->ssl); /* frees the BIO too */
  casl__tbuf_free(&t->in);
  casl__tbuf_free(&t->out);
  if (t->held.data != NULL)
    OPENSSL_cleanse(t->held.data, t->held.cap);
  casl__tbuf_free(&t->held);
  if (t->klog.data != NULL)
    OPENSSL_cleanse(t->klog.data, t->klog.cap);
  casl__tbuf_free(&t->klog);
  casl__free(t->session_key);
  casl__free(t->server_name);
  casl__free(t->alpn);
  casl__tls_cert_info_free(&t->cert);
  casl__tls_chain_free(t);
  casl__free(t->ocsp_der);
  casl__free(t->err);
  if (t->cur_ctx != t->ctx)
    casl_tls_ctx_unref(t->cur_ctx);
  casl_tls_ctx_unref(t->ctx);
  atomic_fetch_sub(&live_filters, 1);
  casl__free(t);
}

static void enter(casl_tls *t) { t->depth++; }

static int leave(casl_tls *t, int rc) {
  if (--t->depth == 0 && t->free_pending)
    destroy(t);
  return rc;
}

/* Hands queued key log lines, then the ciphertext produced so far, to the
 * application: this runs before every other callback, so bytes always go
 * out in order (alerts before `error', the Finished flight before
 * `handshake').  Returns non-zero when the filter was freed meanwhile. */
static int emit_pending(casl_tls *t) {
  struct buf b;
  size_t off;
  static const struct buf empty;
  if (t->in_emit)
    return t->free_pending; /* the outer emit_pending sends the rest */
  t->in_emit = 1;
  while (!t->free_pending &&
         (casl__tbuf_size(&t->klog) > 0 || casl__tbuf_size(&t->out) > 0)) {
    if (casl__tbuf_size(&t->klog) > 0) {
      casl_tls_ctx *ctx = casl__tls_keylog_ctx(t);
      b = t->klog;
      t->klog = empty;
      for (off = b.off; off < b.len && !t->free_pending;) {
        const char *line = b.data + off;
        off += strlen(line) + 1;
        if (ctx->keylog_cb != NULL)
          ctx->keylog_cb(ctx->keylog_ud, line);
      }
      OPENSSL_cleanse(b.data, b.cap);
      casl__tbuf_free(&b);
      continue;
    }
    b = t->out;
    t->out = empty;
    t->cbs.ciphertext(t->ud, b.data + b.off, b.len - b.off);
    /* Not kept for the next batch: an idle connection holds no output
     * buffer (a small one is quickly made again; big ones are recycled
     * by the thread's cache, tls-util.c). */
    casl__tbuf_free(&b);
  }
  t->in_emit = 0;
  return t->free_pending;
}

/* A fatal error: emits pending alert bytes, then `error' (once). */
static void fail(casl_tls *t, int code) {
  if (t->failed)
    return;
  t->failed = 1;
  casl__tbuf_drained(&t->in, 0);
  t->ext_len = 0;
  if (emit_pending(t))
    return;
  if (t->cbs.error != NULL)
    t->cbs.error(t->ud, code);
}

static void fail_text(casl_tls *t, int code, const char *text) {
  casl__strlcpy(casl__tls_err(t), text, ERR_LEN);
  fail(t, code);
}

static void maybe_shutdown(casl_tls *t) {
  int r, err;
  if (!t->shut || t->shut_sent || !t->hs_done || t->peer_wait || dead(t) ||
      casl__tbuf_size(&t->held) > 0)
    return;
  t->shut_sent = 1;
  casl__tls_clear_errors();
  r = SSL_shutdown(t->ssl);
  if (r < 0) {
    err = SSL_get_error(t->ssl, r);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
      fail(t, casl__tls_failure(t, err));
      return;
    }
  }
  (void)emit_pending(t);
}

/* Room in `out' for the records of n bytes of plaintext: 0, or CASL_ENOMEM
 * (the filter has failed). */
static int reserve_out(casl_tls *t, size_t n) {
  /* With a hold, `out' is sized once for the record-sized writes that
   * will wait (small writes, as on many quiet connections, stay small). */
  if (casl__tbuf_size(&t->out) == 0 && n >= SSL3_RT_MAX_PLAIN_LENGTH &&
      n < t->hold)
    n = t->hold;
  if (casl__tbuf_reserve(&t->out, n + (n / SSL3_RT_MAX_PLAIN_LENGTH + 1) *
                                          RECORD_OVERHEAD) == 0)
    return 0;
  fail_text(t, CASL_ENOMEM, "out of memory");
  return CASL_ENOMEM;
}

/* Encrypts the held plaintext (after the handshake, or to retry a write
 * OpenSSL could not finish).  Returns non-zero when the filter stops. */
static int write_held(casl_tls *t) {
  size_t n, w;
  int err;
  if (t->in_write)
    return dead(t); /* the outer write_held picks up what was added */
  t->in_write = 1;
  while (casl__tbuf_size(&t->held) > 0 && !dead(t)) {
    n = t->retry_len;
    if (n == 0)
      n = casl__tbuf_size(&t->held) < WRITE_CHUNK ? casl__tbuf_size(&t->held)
                                                  : WRITE_CHUNK;
    if (reserve_out(t, n) != 0) {
      t->in_write = 0;
      return 1;
    }
    casl__tls_clear_errors();
    if (!SSL_write_ex(t->ssl, t->held.data + t->held.off, n, &w)) {
      err = SSL_get_error(t->ssl, 0);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        t->retry_len = n; /* OpenSSL wants the same length again */
        break;
      }
      t->in_write = 0;
      fail(t, casl__tls_failure(t, err));
      return 1;
    }
    t->retry_len = 0;
    t->held.off += n;
    if (casl__tbuf_size(&t->out) >= OUT_FLUSH && emit_pending(t))
      break;
  }
  if (casl__tbuf_size(&t->held) == 0 && !t->free_pending)
    casl__tbuf_drained(&t->held, 0);
  t->in_write = 0;
  return dead(t);
}

/* Keeps the negotiated protocol as a string for casl_tls_alpn: 0, or
 * CASL_ENOMEM (the connection must then fail: reporting "none" would
 * differ from what the peer agreed to). */
static int cache_alpn(casl_tls *t) {
  const unsigned char *p;
  unsigned int n;
  SSL_get0_alpn_selected(t->ssl, &p, &n);
  if (p == NULL || n == 0)
    return 0;
  t->alpn = casl__malloc(n + 1);
  if (t->alpn == NULL)
    return CASL_ENOMEM;
  memcpy(t->alpn, p, n);
  t->alpn[n] = '\0';
  return 0;
}

/* An SSL_read/SSL_peek stopped with err (code: from casl__tls_failure, taken
 * before any callback, for fatal errors). */
static void read_stopped(casl_tls *t, int err, int code) {
  switch (err) {
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE:
    (void)emit_pending(t);
    return;
  case SSL_ERROR_ZERO_RETURN:
    if (t->peer_closed)
      return;
    t->peer_closed = 1;
    if (emit_pending(t))
      return;
    if (t->cbs.close_notify != NULL)
      t->cbs.close_notify(t->ud);
    return;
  default:
    fail(t, code);
  }
}

/* True when OpenSSL holds no unread record and the BIO no input, so a
 * read could only return WANT_READ (not at EOF: that read reports it). */
static int input_exhausted(casl_tls *t) {
  return !t->eof && t->ext_len == 0 && casl__tbuf_size(&t->in) == 0 &&
         SSL_pending(t->ssl) == 0 && !SSL_has_pending(t->ssl);
}

static int fatal(int err) {
  return err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE &&
         err != SSL_ERROR_ZERO_RETURN;
}

/* Drives the connection as far as the input allows.  Every callback is
 * followed by a dead() check; nothing is kept in locals across a callback
 * that a nested call could invalidate. */
static void pump(casl_tls *t) {
  int r, err, code;
  size_t n, got, cap;
  char *buf;
  unsigned char c;

  if (dead(t) || !t->started)
    return;
  if (!t->hs_done) {
    if (t->sni_wait)
      return;
    casl__tls_clear_errors();
    r = SSL_do_handshake(t->ssl);
    if (r != 1) {
      err = SSL_get_error(t->ssl, r);
      switch (err) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
      case SSL_ERROR_WANT_X509_LOOKUP:
        (void)emit_pending(t);
        return;
      case SSL_ERROR_WANT_CLIENT_HELLO_CB:
        if (emit_pending(t) || !t->sni_wait)
          return;
        t->cbs.sni(t->ud, t->server_name);
        return;
      default:
        fail(t, casl__tls_failure(t, err));
        return;
      }
    }
    t->hs_done = 1;
    if (cache_alpn(t) != 0) {
      fail_text(t, CASL_ENOMEM, "out of memory (keeping the ALPN protocol)");
      return;
    }
    if (casl__tls_check_pins(t) != 0) {
      fail(t, CASL_EVERIFY);
      return;
    }
    /* With a peer check pending, our data waits for the application. */
    t->peer_wait = t->ctx->peer_check || t->cur_ctx->peer_check;
    if ((!t->peer_wait && write_held(t)) || emit_pending(t))
      return;
    if (t->cbs.handshake != NULL) {
      t->cbs.handshake(t->ud);
      if (dead(t))
        return;
    }
    maybe_shutdown(t);
  }

  while (!dead(t) && !t->peer_closed) {
    /* Peek first, so `alloc' is only asked when there is plaintext. */
    casl__tls_clear_errors();
    if (!SSL_peek_ex(t->ssl, &c, 1, &got)) {
      err = SSL_get_error(t->ssl, 0);
      read_stopped(t, err, fatal(err) ? casl__tls_failure(t, err) : 0);
      break;
    }
    if (emit_pending(t))
      return;
    buf = NULL;
    cap = 0;
    t->cbs.alloc(t->ud, &buf, &cap);
    if (dead(t))
      return;
    if (buf == NULL || cap == 0) {
      fail_text(t, CASL_ENOMEM, "no buffer to decrypt into");
      return;
    }
    n = 0;
    err = SSL_ERROR_NONE;
    code = 0;
    while (n < cap) {
      casl__tls_clear_errors();
      if (!SSL_read_ex(t->ssl, buf + n, cap - n, &got)) {
        err = SSL_get_error(t->ssl, 0);
        if (fatal(err))
          code = casl__tls_failure(t, err);
        break;
      }
      n += got;
      if (n < cap && input_exhausted(t)) {
        /* Nothing left to decrypt: spare the SSL_read that would only
         * say so. */
        err = SSL_ERROR_WANT_READ;
        break;
      }
    }
    t->cbs.plaintext(t->ud, buf, n);
    if (dead(t))
      return;
    if (err != SSL_ERROR_NONE) {
      read_stopped(t, err, code);
      break;
    }
  }
  if (!dead(t) && !t->peer_wait && casl__tbuf_size(&t->held) > 0 &&
      !write_held(t))
    (void)emit_pending(t);
  maybe_shutdown(t);
}

static int is_ip(const char *s) {
  unsigned char a[16];
  return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

int casl_tls_new(casl_tls **out, casl_tls_ctx *ctx, int server,
                 const char *name, const char *session_key,
                 const casl_tls_callbacks *cbs, void *ud) {
  casl_tls *t;
  BIO *bio;
  SSL_SESSION *sess;
  int rc;
  if (out == NULL)
    return CASL_EINVAL;
  *out = NULL;
  if (ctx == NULL || cbs == NULL || cbs->alloc == NULL ||
      cbs->plaintext == NULL || cbs->ciphertext == NULL ||
      (server != 0) != (ctx->server != 0))
    return CASL_EINVAL;
  if ((rc = casl__tls_global_init()) != 0)
    return rc;
  t = casl__calloc(1, sizeof(*t));
  if (t == NULL)
    return CASL_ENOMEM;
  t->cbs = *cbs;
  t->ud = ud;
  t->server = server != 0;
  t->ctx = t->cur_ctx = ctx;
  ERR_clear_error();
  t->ssl = SSL_new(ctx->ssl_ctx);
  if (t->ssl == NULL) {
    rc = casl__tls_ctx_fail(ctx, CASL_ECONFIG, "could not create a connection",
                            1);
    goto fail;
  }
  bio = casl__tls_bio_new(t);
  if (bio == NULL) {
    rc = CASL_ENOMEM;
    goto fail;
  }
  SSL_set_bio(t->ssl, bio, bio);
  if ((rc = casl__tls_attach(t)) != 0)
    goto fail;
  if (server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (name != NULL && name[0] != '\0') {
      if (is_ip(name)) {
        /* IP literals: checked against IP SANs, never sent as SNI. */
        if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name)) {
          rc = CASL_EINVAL;
          goto fail;
        }
      } else {
        if (!SSL_set_tlsext_host_name(t->ssl, name) ||
            !SSL_set1_host(t->ssl, name)) {
          rc = CASL_EINVAL;
          goto fail;
        }
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      }
    }
    if (session_key != NULL) {
      t->session_key = casl__strdup(session_key);
      if (t->session_key == NULL) {
        rc = CASL_ENOMEM;
        goto fail;
      }
      sess = casl__tls_session_lookup(ctx, session_key);
      if (sess != NULL) {
        if (!SSL_set_session(t->ssl, sess))
          ERR_clear_error(); /* a full handshake then */
        SSL_SESSION_free(sess);
      }
    }
  }
  casl_tls_ctx_ref(ctx);
  atomic_fetch_add(&live_filters, 1);
  *out = t;
  return 0;
fail:
  ERR_clear_error();
  SSL_free(t->ssl);
  casl__free(t->session_key);
  casl__free(t);
  return rc;
}

int casl_tls_start(casl_tls *t) {
  if (t == NULL)
    return CASL_EINVAL;
  if (dead(t) || t->eof)
    return CASL_ECLOSED;
  if (t->started)
    return 0;
  enter(t);
  t->started = 1;
  pump(t);
  return leave(t, 0);
}

int casl_tls_feed(casl_tls *t, const char *buf, size_t len) {
  if (t == NULL || (buf == NULL && len > 0))
    return CASL_EINVAL;
  if (dead(t) || t->eof)
    return CASL_ECLOSED;
  if (t->peer_closed || len == 0)
    return 0; /* nothing is read after close_notify */
  enter(t);
  t->started = 1;
  if (t->depth > 1 || casl__tbuf_size(&t->in) > 0 || t->ext_len > 0) {
    /* Keep the order: older unread bytes first. */
    if (casl__tbuf_append(&t->in, t->ext_ptr, t->ext_len) != 0 ||
        casl__tbuf_append(&t->in, buf, len) != 0) {
      fail_text(t, CASL_ENOMEM, "out of memory");
      return leave(t, 0);
    }
    t->ext_len = 0;
  } else {
    t->ext_ptr = buf;
    t->ext_len = len;
  }
  pump(t);
  if (t->depth == 1) {
    /* What OpenSSL left unread (paused handshake) is kept for later. */
    if (t->ext_len > 0 && !dead(t) &&
        casl__tbuf_append(&t->in, t->ext_ptr, t->ext_len) != 0)
      fail_text(t, CASL_ENOMEM, "out of memory");
    t->ext_ptr = NULL;
    t->ext_len = 0;
  }
  return leave(t, 0);
}

int casl_tls_write(casl_tls *t, const char *buf, size_t len) {
  size_t n, w;
  int err;
  if (t == NULL || (buf == NULL && len > 0))
    return CASL_EINVAL;
  if (dead(t) || t->shut)
    return CASL_ECLOSED;
  if (len == 0)
    return 0;
  if (!t->hs_done || t->peer_wait || casl__tbuf_size(&t->held) > 0 ||
      t->in_write)
    return casl__tbuf_append(&t->held, buf, len);
  enter(t);
  while (len > 0 && !dead(t)) {
    n = len < WRITE_CHUNK ? len : WRITE_CHUNK;
    if (reserve_out(t, n) != 0)
      break;
    casl__tls_clear_errors();
    if (!SSL_write_ex(t->ssl, buf, n, &w)) {
      err = SSL_get_error(t->ssl, 0);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        /* OpenSSL is busy (a renegotiation on an adopted context):
         * keep the rest and retry after the next input. */
        if (casl__tbuf_append(&t->held, buf, len) != 0)
          fail_text(t, CASL_ENOMEM, "out of memory");
        t->retry_len = n;
        break;
      }
      fail(t, casl__tls_failure(t, err));
      break;
    }
    buf += n;
    len -= n;
    if (len > 0 && casl__tbuf_size(&t->out) >= OUT_FLUSH && emit_pending(t))
      break;
  }
  if (casl__tbuf_size(&t->out) > t->hold || casl__tbuf_size(&t->klog) > 0)
    (void)emit_pending(t);
  return leave(t, 0);
}

void casl_tls_set_hold(casl_tls *t, size_t bytes) {
  if (t != NULL)
    t->hold = bytes < OUT_FLUSH ? bytes : OUT_FLUSH;
}

int casl_tls_flush(casl_tls *t) {
  if (t == NULL)
    return CASL_EINVAL;
  if (dead(t))
    return CASL_ECLOSED;
  if (casl__tbuf_size(&t->out) == 0 && casl__tbuf_size(&t->klog) == 0)
    return 0;
  enter(t);
  (void)emit_pending(t);
  return leave(t, 0);
}

size_t casl_tls_pending_plaintext(const casl_tls *t) {
  return t != NULL ? casl__tbuf_size(&t->held) : 0;
}

size_t casl_tls_pending_ciphertext(const casl_tls *t) {
  return t != NULL ? casl__tbuf_size(&t->out) : 0;
}

int casl_tls_shutdown(casl_tls *t) {
  if (t == NULL)
    return CASL_EINVAL;
  if (dead(t))
    return CASL_ECLOSED;
  if (t->shut)
    return 0;
  enter(t);
  t->shut = 1;
  maybe_shutdown(t);
  return leave(t, 0);
}

int casl_tls_eof(casl_tls *t) {
  if (t == NULL)
    return CASL_EINVAL;
  if (dead(t))
    return CASL_ECLOSED;
  if (t->eof)
    return 0;
  enter(t);
  t->eof = 1;
  if (t->peer_closed) {
    /* close_notify was seen and reported: a clean end. */
  } else if (!t->started || t->sni_wait) {
    fail_text(t, CASL_ETLSEOF, "connection closed during the TLS handshake");
  } else {
    pump(t);
    if (!dead(t) && !t->peer_closed)
      fail_text(t, t->hs_done ? CASL_ETRUNCATED : CASL_ETLSEOF,
                t->hs_done
                    ? "connection closed without a TLS close_notify (truncated)"
                    : "connection closed during the TLS handshake");
  }
  return leave(t, 0);
}

int casl_tls_sni_select(casl_tls *t, casl_tls_ctx *ctx) {
  if (t == NULL || (ctx != NULL && !ctx->server))
    return CASL_EINVAL;
  if (dead(t))
    return CASL_ECLOSED;
  if (!t->sni_wait)
    return CASL_ESTATE;
  enter(t);
  ERR_clear_error();
  if (ctx != NULL && casl__tls_switch_ctx(t, ctx) != 0) {
    ERR_clear_error();
    fail_text(t, CASL_ETLS, "could not switch to the SNI context");
    return leave(t, 0);
  }
  t->sni_wait = 0;
  t->sni_done = 1;
  pump(t);
  return leave(t, 0);
}

int casl_tls_peer_checked(casl_tls *t, const char *reason) {
  if (t == NULL)
    return CASL_EINVAL;
  if (dead(t))
    return CASL_ECLOSED;
  if (!t->peer_wait)
    return CASL_ESTATE;
  enter(t);
  t->peer_wait = 0;
  if (reason != NULL) {
    fail_text(t, CASL_EVERIFY, reason);
    return leave(t, 0);
  }
  if (!write_held(t))
    (void)emit_pending(t);
  maybe_shutdown(t);
  return leave(t, 0);
}

void casl_tls_free(casl_tls *t) {
  if (t == NULL)
    return;
  if (t->depth > 0) {
    t->free_pending = 1;
    return;
  }
  destroy(t);
}

void *casl_tls_get_ud(const casl_tls *t) { return t != NULL ? t->ud : NULL; }

void *casl_tls_ssl(casl_tls *t) { return t != NULL ? t->ssl : NULL; }

long casl_tls_live_count(void) { return atomic_load(&live_filters); }
