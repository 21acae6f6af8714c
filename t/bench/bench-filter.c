/*
 * bench-filter.c -- the TLS filter in memory: a client and a server filter
 * wired back to back in one thread (run by bench-filter.sh).
 *
 *   bench-filter CERTS-DIR [MIB] [SECONDS]
 *
 * Prints "key value" lines:
 *   throughput_mb_s   MB/s (10^6 bytes) moved client -> server, MIB MiB
 *                     in 16 KiB writes, TLS 1.3 AES-128-GCM
 *   hs_ecdsa_per_s    full TLS 1.3 handshakes/s, ECDSA P-256 server key
 *   hs_rsa_per_s      the same with an RSA-2048 server key
 * (client verifies the server; both ends' work counts).  Ciphertext goes
 * from one filter's callback straight into the other's feed (no copy).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl-async-ssl.h"

struct end {
  casl_tls *t;
  struct end *peer;
  char *q;
  size_t qlen, qcap;
  char buf[64 * 1024];
  unsigned long long rx;
  int handshakes, errors;
};

static void on_alloc(void *ud, char **buf, size_t *len) {
  struct end *e = ud;
  *buf = e->buf;
  *len = sizeof(e->buf);
}

static void on_plaintext(void *ud, char *buf, size_t len) {
  struct end *e = ud;
  (void)buf;
  e->rx += len;
}

static int feeding;

/* The in-memory transport: hand the bytes straight to the peer, unless a
 * feed is already running (then queue them for run()). */
static void on_ciphertext(void *ud, const char *buf, size_t len) {
  struct end *e = ud;
  if (!feeding && e->qlen == 0) {
    feeding = 1;
    if (casl_tls_feed(e->peer->t, buf, len) != 0)
      abort();
    feeding = 0;
    return;
  }
  if (e->qlen + len > e->qcap) {
    size_t c = e->qcap ? e->qcap : 65536;
    while (c < e->qlen + len)
      c *= 2;
    e->q = realloc(e->q, c);
    if (e->q == NULL)
      abort();
    e->qcap = c;
  }
  memcpy(e->q + e->qlen, buf, len);
  e->qlen += len;
}

static void on_handshake(void *ud) { ((struct end *)ud)->handshakes++; }

static void on_error(void *ud, int code) {
  struct end *e = ud;
  e->errors++;
  fprintf(stderr, "bench: TLS error %d: %s\n", code, casl_tls_error(e->t));
}

static const casl_tls_callbacks cbs = {on_alloc, on_plaintext, on_ciphertext,
                                       on_handshake, NULL, on_error, NULL};

static void run(struct end *c, struct end *s) {
  struct end *ends[2] = {c, s};
  int moved, i;
  do {
    moved = 0;
    for (i = 0; i < 2; i++) {
      struct end *e = ends[i];
      if (e->qlen > 0) {
        size_t n = e->qlen;
        e->qlen = 0;
        feeding = 1;
        if (casl_tls_feed(e->peer->t, e->q, n) != 0)
          abort();
        feeding = 0;
        moved = 1;
      }
    }
  } while (moved);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static casl_tls_ctx *server_ctx(const char *dir, const char *chain,
                                const char *key) {
  char c[1024], k[1024];
  casl_tls_ctx *ctx;
  snprintf(c, sizeof(c), "%s/%s", dir, chain);
  snprintf(k, sizeof(k), "%s/%s", dir, key);
  if (casl_tls_ctx_new(&ctx, 1) != 0 ||
      casl_tls_ctx_use_certificate_chain_file(ctx, c) != 0 ||
      casl_tls_ctx_use_private_key_file(ctx, k, CASL_FILETYPE_PEM, NULL) !=
          0) {
    fprintf(stderr, "bench: server context: %s\n", casl_tls_ctx_error(ctx));
    exit(1);
  }
  return ctx;
}

static int pair(struct end *c, struct end *s, casl_tls_ctx *cc,
                casl_tls_ctx *sc) {
  c->peer = s;
  s->peer = c;
  if (casl_tls_new(&c->t, cc, 0, "localhost", NULL, &cbs, c) != 0 ||
      casl_tls_new(&s->t, sc, 1, NULL, NULL, &cbs, s) != 0)
    return -1;
  casl_tls_start(c->t);
  run(c, s);
  return c->handshakes == 1 && s->handshakes == 1 ? 0 : -1;
}

static double handshakes(casl_tls_ctx *cc, casl_tls_ctx *sc, double secs) {
  static struct end c, s;
  double t0 = now(), t;
  long n = 0;
  do {
    c.handshakes = s.handshakes = 0;
    if (pair(&c, &s, cc, sc) != 0) {
      fprintf(stderr, "bench: handshake failed\n");
      exit(1);
    }
    casl_tls_free(c.t);
    casl_tls_free(s.t);
    n++;
    t = now() - t0;
  } while (t < secs);
  free(c.q);
  free(s.q);
  c.q = s.q = NULL;
  c.qlen = c.qcap = s.qlen = s.qcap = 0;
  return n / t;
}

int main(int argc, char **argv) {
  const char *dir;
  casl_tls_ctx *cc, *sc, *sc_rsa;
  static struct end c, s;
  static char block[16384];
  unsigned long long total, sent = 0;
  double t0, t, secs;
  char ca[1024];
  if (argc < 2) {
    fprintf(stderr, "usage: bench-filter CERTS-DIR [MIB] [SECONDS]\n");
    return 2;
  }
  dir = argv[1];
  total = (unsigned long long)(argc > 2 ? atoi(argv[2]) : 256) << 20;
  secs = argc > 3 ? atof(argv[3]) : 2.0;
  snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
  sc = server_ctx(dir, "server-chain.pem", "server.key");
  sc_rsa = server_ctx(dir, "server-rsa-chain.pem", "server-rsa.key");
  if (casl_tls_ctx_new(&cc, 0) != 0 ||
      casl_tls_ctx_load_verify_locations(cc, ca, NULL) != 0 ||
      casl_tls_ctx_set_ciphersuites(cc, "TLS_AES_128_GCM_SHA256") != 0) {
    fprintf(stderr, "bench: client context\n");
    return 1;
  }
  memset(block, 'x', sizeof(block));

  if (pair(&c, &s, cc, sc) != 0) {
    fprintf(stderr, "bench: handshake failed\n");
    return 1;
  }
  printf("protocol %s\ncipher %s\n", casl_tls_protocol(c.t),
         casl_tls_cipher(c.t));
  t0 = now();
  while (sent < total) {
    if (casl_tls_write(c.t, block, sizeof(block)) != 0)
      abort();
    sent += sizeof(block);
    run(&c, &s);
  }
  t = now() - t0;
  if (s.rx != total || c.errors || s.errors) {
    fprintf(stderr, "bench: received %llu of %llu\n", s.rx, total);
    return 1;
  }
  printf("throughput_mb_s %.1f\n", total / t / 1e6);
  casl_tls_free(c.t);
  casl_tls_free(s.t);
  free(c.q);
  free(s.q);

  printf("hs_ecdsa_per_s %.0f\n", handshakes(cc, sc, secs));
  printf("hs_rsa_per_s %.0f\n", handshakes(cc, sc_rsa, secs));
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  casl_tls_ctx_unref(sc_rsa);
  return casl_tls_live_count() == 0 ? 0 : 1;
}
