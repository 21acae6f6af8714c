/*
 * test-tls-reentry.c -- TLS engine: freeing the filter from inside each of
 * its callbacks, calls from inside callbacks, hostile input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-tls.h"

static int std_ctxs(casl_tls_ctx **cc, casl_tls_ctx **sc) {
  *sc = test_server_ctx("server-chain.pem", "server.key");
  *cc = test_client_ctx("ca.pem");
  return *sc != NULL && *cc != NULL ? 0 : -1;
}

/* Frees `who' (client or server end) inside callback cb during a
 * scenario that reaches that callback; checks that it happened, that no
 * callback followed, and that nothing leaked (live count). */
static int free_in(int cb, int server_side) {
  casl_tls_ctx *cc, *sc;
  tpair p;
  tend *e;
  long base = casl_tls_live_count();
  ASSERT_OK(std_ctxs(&cc, &sc));
  if (cb == CB_SNI)
    ASSERT_OK(casl_tls_ctx_set_sni_ask(sc, 1));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  e = server_side ? &p.s : &p.c;
  e->free_in = cb;
  switch (cb) {
  case CB_ALLOC:
  case CB_PLAINTEXT:
    /* data in the same flight as the handshake's end, then more */
    ASSERT_OK(casl_tls_write(e->peer->t, "one", 3));
    tpair_start(&p);
    if (e->t != NULL) {
      ASSERT_OK(casl_tls_write(e->peer->t, "two", 3));
      tpair_run(&p);
    }
    break;
  case CB_CIPHERTEXT:
  case CB_HANDSHAKE:
  case CB_SNI:
    ASSERT_OK(casl_tls_write(e->peer->t, "data", 4));
    tpair_start(&p);
    break;
  case CB_CLOSE_NOTIFY:
    tpair_start(&p);
    ASSERT_OK(casl_tls_write(e->peer->t, "bye", 3));
    ASSERT_OK(casl_tls_shutdown(e->peer->t));
    tpair_run(&p);
    break;
  case CB_ERROR:
    tpair_start(&p);
    ASSERT_OK(casl_tls_feed(e->t, "\x15\x03\x03\x00\x02\x02\x28junk", 11));
    tpair_run(&p);
    break;
  }
  ASSERT_EQ(e->freed, 1);
  ASSERT(e->t == NULL);
  ASSERT_EQ(e->after_free_calls, 0);
  ASSERT_EQ(casl_tls_live_count(), base + 1);
  tpair_free(&p);
  ASSERT_EQ(casl_tls_live_count(), base);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_free_in_alloc) {
  CHECK(free_in(CB_ALLOC, 0));
  CHECK(free_in(CB_ALLOC, 1));
  return 0;
}

TEST_IMPL(tls_free_in_plaintext) {
  CHECK(free_in(CB_PLAINTEXT, 0));
  CHECK(free_in(CB_PLAINTEXT, 1));
  return 0;
}

TEST_IMPL(tls_free_in_ciphertext) {
  CHECK(free_in(CB_CIPHERTEXT, 0));
  CHECK(free_in(CB_CIPHERTEXT, 1));
  return 0;
}

TEST_IMPL(tls_free_in_handshake) {
  CHECK(free_in(CB_HANDSHAKE, 0));
  CHECK(free_in(CB_HANDSHAKE, 1));
  return 0;
}

TEST_IMPL(tls_free_in_close_notify) {
  CHECK(free_in(CB_CLOSE_NOTIFY, 0));
  CHECK(free_in(CB_CLOSE_NOTIFY, 1));
  return 0;
}

TEST_IMPL(tls_free_in_error) {
  CHECK(free_in(CB_ERROR, 0));
  CHECK(free_in(CB_ERROR, 1));
  return 0;
}

TEST_IMPL(tls_free_in_sni) { return free_in(CB_SNI, 1); }

TEST_IMPL(tls_write_in_callbacks) {
  casl_tls_ctx *cc, *sc;
  tpair p;
  ASSERT_OK(std_ctxs(&cc, &sc));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  p.s.echo = 1;                          /* echo from `plaintext' */
  p.s.write_on_handshake = "[s]";        /* write from `handshake' */
  p.c.write_on_handshake = "[c]";
  p.c.shutdown_on_handshake = 1;         /* and close right away */
  ASSERT_OK(casl_tls_write(p.c.t, "early:", 6));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT(tend_got(&p.s, "early:[c]"));
  ASSERT_EQ(p.s.close_notifies, 1);
  /* the server's own bytes first, then the echo, in order */
  ASSERT(tend_got(&p.c, "[s]early:[c]"));
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

static int garbage_to_server(const char *junk, size_t len, int mode) {
  casl_tls_ctx *cc, *sc;
  tpair p;
  size_t i;
  ASSERT_OK(std_ctxs(&cc, &sc));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  for (i = 0; i < len && p.s.errors == 0;) {
    size_t n = mode == DELIVER_BYTE ? 1 : len - i;
    ASSERT_OK(casl_tls_feed(p.s.t, junk + i, n));
    i += n;
  }
  ASSERT_EQ(p.s.errors, 1);
  ASSERT_EQ(p.s.error_code, CASL_ETLS);
  ASSERT(p.s.err[0] != '\0');
  ASSERT_EQ(p.s.handshakes, 0);
  ASSERT_EQ(casl_tls_feed(p.s.t, "more", 4), CASL_ECLOSED);
  ASSERT_EQ(casl_tls_write(p.s.t, "more", 4), CASL_ECLOSED);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_garbage_to_server) {
  static char zeros[300], rnd[4096];
  uint64_t x = 88172645463325252ull;
  size_t i;
  for (i = 0; i < sizeof(rnd); i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rnd[i] = (char)(x >> 24);
  }
  rnd[0] = 0x16; /* looks like a handshake record, then nonsense */
  CHECK(garbage_to_server(zeros, sizeof(zeros), DELIVER_WHOLE));
  CHECK(garbage_to_server(rnd, sizeof(rnd), DELIVER_WHOLE));
  CHECK(garbage_to_server(rnd, sizeof(rnd), DELIVER_BYTE));
  CHECK(garbage_to_server("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27,
                          DELIVER_WHOLE));
  /* an oversized record header */
  CHECK(garbage_to_server("\x16\x03\x01\xff\xff", 5, DELIVER_WHOLE));
  return 0;
}

TEST_IMPL(tls_garbage_to_client) {
  casl_tls_ctx *cc, *sc;
  tpair p;
  ASSERT_OK(std_ctxs(&cc, &sc));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  ASSERT_OK(casl_tls_start(p.c.t));
  ASSERT(p.c.qlen > 0); /* the ClientHello */
  ASSERT_OK(casl_tls_feed(p.c.t, "\x16\x03\x03\x00\x04garbage", 12));
  ASSERT_EQ(p.c.errors, 1);
  ASSERT_EQ(p.c.error_code, CASL_ETLS);
  ASSERT_EQ(p.c.handshakes, 0);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_garbage_after_handshake) {
  casl_tls_ctx *cc, *sc;
  tpair p;
  int before;
  ASSERT_OK(std_ctxs(&cc, &sc));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  before = p.s.ciphertexts;
  /* an application-data record that fails authentication */
  ASSERT_OK(casl_tls_feed(p.s.t,
                          "\x17\x03\x03\x00\x20"
                          "0123456789abcdef0123456789abcdef",
                          37));
  ASSERT_EQ(p.s.errors, 1);
  ASSERT_EQ(p.s.error_code, CASL_ETLS);
  ASSERT(strstr(p.s.err, "bad record mac") != NULL ||
         strstr(p.s.err, "decryption failed") != NULL);
  /* the fatal alert went out before the error callback */
  ASSERT(p.s.ciphertexts > before);
  tpair_run(&p);
  ASSERT_EQ(p.c.errors, 1);
  ASSERT_EQ(p.c.error_code, CASL_ETLS);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}
