/*
 * test-tls-util.c -- the in-memory pair used by the TLS engine tests.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-tls.h"

double test_scale(void) {
  const char *s = getenv("CASL_TEST_SCALE");
  double v;
  if (s == NULL || *s == '\0')
    return 1.0;
  v = atof(s);
  return v > 0 ? v : 1.0;
}

unsigned char test_pattern(uint64_t i) {
  uint32_t x = (uint32_t)(i * 0x9E3779B1u) ^ (uint32_t)(i >> 16);
  return (unsigned char)(x >> 24);
}

casl_tls_ctx *test_server_ctx(const char *chain, const char *key) {
  casl_tls_ctx *ctx = NULL;
  if (casl_tls_ctx_new(&ctx, 1) != 0)
    return NULL;
  if (casl_tls_ctx_use_certificate_chain_file(ctx, test_cert_path(chain)) !=
          0 ||
      casl_tls_ctx_use_private_key_file(ctx, test_cert_path(key),
                                        CASL_FILETYPE_PEM, NULL) != 0) {
    fprintf(stderr, "  server ctx: %s\n", casl_tls_ctx_error(ctx));
    casl_tls_ctx_unref(ctx);
    return NULL;
  }
  return ctx;
}

casl_tls_ctx *test_client_ctx(const char *ca) {
  casl_tls_ctx *ctx = NULL;
  if (casl_tls_ctx_new(&ctx, 0) != 0)
    return NULL;
  if (ca != NULL &&
      casl_tls_ctx_load_verify_locations(ctx, test_cert_path(ca), NULL) != 0) {
    fprintf(stderr, "  client ctx: %s\n", casl_tls_ctx_error(ctx));
    casl_tls_ctx_unref(ctx);
    return NULL;
  }
  return ctx;
}

static void append(char **buf, size_t *len, size_t *cap, const char *p,
                   size_t n) {
  if (*len + n > *cap) {
    size_t c = *cap ? *cap : 4096;
    while (c < *len + n)
      c *= 2;
    *buf = realloc(*buf, c);
    if (*buf == NULL) {
      fprintf(stderr, "out of memory\n");
      abort();
    }
    *cap = c;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
}

void tend_free(tend *e) {
  if (e->t != NULL && !e->freed) {
    casl_tls_free(e->t);
    e->freed = 1;
    e->t = NULL;
  }
}

/* Counts a callback; returns non-zero if it arrived after a free. */
static int seen(tend *e, int cb) {
  if (e->freed) {
    e->after_free_calls++;
    return 1;
  }
  if (cb != CB_NONE && e->free_in == cb) {
    tend_free(e);
  }
  return 0;
}

static void on_alloc(void *ud, char **buf, size_t *len) {
  tend *e = ud;
  if (e->alloc_outstanding)
    e->bad_order++;
  e->alloc_outstanding = 1;
  e->allocs++;
  *buf = e->abuf;
  *len = TEND_ABUF;
  (void)seen(e, CB_ALLOC);
}

static void on_plaintext(void *ud, char *buf, size_t len) {
  tend *e = ud;
  size_t i;
  if (!e->alloc_outstanding || buf != e->abuf)
    e->bad_order++;
  e->alloc_outstanding = 0;
  if (e->freed) {
    e->after_free_calls++;
    return;
  }
  e->plaintexts++;
  if (e->check_pattern) {
    for (i = 0; i < len; i++)
      if ((unsigned char)buf[i] != test_pattern(e->rx_total + i)) {
        e->pattern_bad++;
        break;
      }
  } else {
    append(&e->rx, &e->rx_len, &e->rx_cap, buf, len);
  }
  e->rx_total += len;
  if (e->echo && len > 0)
    (void)casl_tls_write(e->t, buf, len);
  (void)seen(e, CB_PLAINTEXT);
}

static void on_ciphertext(void *ud, const char *buf, size_t len) {
  tend *e = ud;
  if (e->freed) {
    e->after_free_calls++;
    return;
  }
  e->ciphertexts++;
  append(&e->q, &e->qlen, &e->qcap, buf, len);
  (void)seen(e, CB_CIPHERTEXT);
}

static void on_handshake(void *ud) {
  tend *e = ud;
  if (seen(e, CB_NONE))
    return;
  e->handshakes++;
  if (e->write_on_handshake != NULL)
    (void)casl_tls_write(e->t, e->write_on_handshake,
                         strlen(e->write_on_handshake));
  if (e->shutdown_on_handshake)
    (void)casl_tls_shutdown(e->t);
  (void)seen(e, CB_HANDSHAKE);
}

static void on_close_notify(void *ud) {
  tend *e = ud;
  if (seen(e, CB_NONE))
    return;
  e->close_notifies++;
  (void)seen(e, CB_CLOSE_NOTIFY);
}

static void on_error(void *ud, int code) {
  tend *e = ud;
  if (seen(e, CB_NONE))
    return;
  e->errors++;
  e->error_code = code;
  snprintf(e->err, sizeof(e->err), "%s", casl_tls_error(e->t));
  (void)seen(e, CB_ERROR);
}

static void on_sni(void *ud, const char *name) {
  tend *e = ud;
  if (seen(e, CB_NONE))
    return;
  e->sni_calls++;
  e->sni_null = name == NULL;
  snprintf(e->sni_name, sizeof(e->sni_name), "%s", name ? name : "");
  if (e->sni_select_now)
    (void)casl_tls_sni_select(e->t, e->sni_answer);
  (void)seen(e, CB_SNI);
}

static const casl_tls_callbacks tend_cbs = {
    on_alloc,        on_plaintext, on_ciphertext, on_handshake,
    on_close_notify, on_error,     on_sni};

int tpair_init(tpair *p, casl_tls_ctx *cctx, casl_tls_ctx *sctx,
               const char *name, const char *session_key) {
  memset(p, 0, sizeof(*p));
  p->rng = 0x243F6A8885A308D3ull;
  p->c.peer = &p->s;
  p->s.peer = &p->c;
  p->c.abuf = malloc(TEND_ABUF);
  p->s.abuf = malloc(TEND_ABUF);
  if (p->c.abuf == NULL || p->s.abuf == NULL)
    return -1;
  if (casl_tls_new(&p->c.t, cctx, 0, name, session_key, &tend_cbs, &p->c) !=
      0)
    return -1;
  if (casl_tls_new(&p->s.t, sctx, 1, NULL, NULL, &tend_cbs, &p->s) != 0)
    return -1;
  return 0;
}

static size_t chunk(tpair *p, size_t left) {
  size_t n;
  switch (p->mode) {
  case DELIVER_BYTE:
    n = 1;
    break;
  case DELIVER_RANDOM:
    /* xorshift64, fixed seed: sizes from 1 to 20000 */
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    n = 1 + (size_t)(p->rng % 20000);
    break;
  case DELIVER_64K:
    n = 64 * 1024;
    break;
  default:
    n = left;
  }
  return n < left ? n : left;
}

/* Delivers everything e has queued to its peer; returns bytes moved. */
static size_t deliver(tpair *p, tend *e) {
  char *q = e->q;
  size_t len = e->qlen, off = 0, n;
  tend *to = e->peer;
  if (len == 0)
    return 0;
  /* Detach: callbacks during the feed append to a fresh queue. */
  e->q = NULL;
  e->qlen = e->qcap = 0;
  while (off < len && to->t != NULL && !to->freed) {
    n = chunk(p, len - off);
    if (casl_tls_feed(to->t, q + off, n) != 0)
      break;
    off += n;
  }
  free(q);
  return len;
}

void tpair_run(tpair *p) {
  size_t moved;
  do {
    moved = deliver(p, &p->c);
    moved += deliver(p, &p->s);
  } while (moved > 0);
}

void tpair_start(tpair *p) {
  if (p->s.t != NULL)
    (void)casl_tls_start(p->s.t);
  if (p->c.t != NULL)
    (void)casl_tls_start(p->c.t);
  tpair_run(p);
}

void tpair_free(tpair *p) {
  tend *ends[2] = {&p->c, &p->s};
  int i;
  for (i = 0; i < 2; i++) {
    tend_free(ends[i]);
    free(ends[i]->q);
    free(ends[i]->rx);
    free(ends[i]->abuf);
  }
}

int tpair_ok(const tpair *p) {
  if (p->c.errors || p->s.errors) {
    fprintf(stderr, "  client error %d (%s), server error %d (%s)\n",
            p->c.error_code, p->c.err, p->s.error_code, p->s.err);
    return 0;
  }
  return p->c.handshakes == 1 && p->s.handshakes == 1 &&
         p->c.bad_order == 0 && p->s.bad_order == 0;
}

int tend_got(const tend *e, const char *s) {
  size_t n = strlen(s);
  return e->rx_len == n && memcmp(e->rx, s, n) == 0;
}

int tend_write_pattern(tend *e, uint64_t *pos, size_t n) {
  static unsigned char buf[256 * 1024];
  size_t i, k;
  int rc;
  while (n > 0) {
    k = n < sizeof(buf) ? n : sizeof(buf);
    for (i = 0; i < k; i++)
      buf[i] = test_pattern(*pos + i);
    rc = casl_tls_write(e->t, (const char *)buf, k);
    if (rc != 0)
      return rc;
    *pos += k;
    n -= k;
  }
  return 0;
}
