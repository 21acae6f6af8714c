/*
 * test-tls.c -- TLS engine: handshakes, data, bulk transfers, close and
 * truncation, held plaintext, error states.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-tls.h"

/* A pair on server.pem/server.key, the client trusting ca.pem, checking
 * "localhost"; versions bounded to ver (0: default). */
static int std_pair(tpair *p, int ver, casl_tls_ctx **cc, casl_tls_ctx **sc) {
  *sc = test_server_ctx("server-chain.pem", "server.key");
  *cc = test_client_ctx("ca.pem");
  if (*sc == NULL || *cc == NULL)
    return -1;
  if (ver != 0 && casl_tls_ctx_set_versions(*cc, ver, ver) != 0)
    return -1;
  return tpair_init(p, *cc, *sc, "localhost", NULL);
}

static int handshake_version(int ver, const char *want) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  ASSERT_OK(std_pair(&p, ver, &cc, &sc));
  ASSERT(casl_tls_protocol(p.c.t) == NULL);
  ASSERT_EQ(casl_tls_handshake_done(p.c.t), 0);
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_STR_EQ(casl_tls_protocol(p.c.t), want);
  ASSERT_STR_EQ(casl_tls_protocol(p.s.t), want);
  ASSERT(casl_tls_cipher(p.c.t) != NULL);
  ASSERT_STR_EQ(casl_tls_cipher(p.c.t), casl_tls_cipher(p.s.t));
  ASSERT_EQ(casl_tls_verify_result(p.c.t), 0);
  ASSERT_STR_EQ(casl_tls_verify_string(p.c.t), "ok");
  ASSERT_EQ(casl_tls_session_reused(p.c.t), 0);
  ASSERT_STR_EQ(casl_tls_server_name(p.s.t), "localhost");
  ASSERT(casl_tls_alpn(p.c.t) == NULL);
  ASSERT_EQ(casl_tls_live_count(), 2);
  tpair_free(&p);
  ASSERT_EQ(casl_tls_live_count(), 0);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_handshake_tls12) {
  return handshake_version(CASL_TLS1_2, "TLSv1.2");
}

TEST_IMPL(tls_handshake_tls13) {
  return handshake_version(CASL_TLS1_3, "TLSv1.3");
}

TEST_IMPL(tls_handshake_rsa_server) {
  tpair p;
  casl_tls_ctx *sc = test_server_ctx("server-rsa-chain.pem", "server-rsa.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  ASSERT(sc != NULL && cc != NULL);
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_version_mismatch_fails) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  ASSERT_OK(std_pair(&p, CASL_TLS1_2, &cc, &sc));
  tpair_free(&p);
  ASSERT_OK(casl_tls_ctx_set_versions(sc, CASL_TLS1_3, 0));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  tpair_start(&p);
  ASSERT_EQ(p.c.errors, 1);
  ASSERT_EQ(p.s.errors, 1);
  ASSERT_EQ(p.c.error_code, CASL_ETLS);
  ASSERT_EQ(p.s.error_code, CASL_ETLS);
  ASSERT(strstr(p.s.err, "unsupported protocol") != NULL);
  ASSERT_EQ(p.c.handshakes + p.s.handshakes, 0);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

static int data_both_ways(int ver) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  ASSERT_OK(std_pair(&p, ver, &cc, &sc));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_write(p.c.t, "ping", 4));
  ASSERT_OK(casl_tls_write(p.c.t, " and more", 9));
  ASSERT_OK(casl_tls_write(p.s.t, "pong", 4));
  ASSERT_OK(casl_tls_write(p.s.t, "", 0));
  tpair_run(&p);
  ASSERT(tend_got(&p.s, "ping and more"));
  ASSERT(tend_got(&p.c, "pong"));
  /* Batched: the two client writes were decrypted into one buffer. */
  ASSERT_EQ(p.s.plaintexts, 1);
  ASSERT_EQ(casl_tls_pending_plaintext(p.c.t), 0);
  /* and a 100 000-byte write (7 records) is one ciphertext batch */
  {
    static char big[100000];
    int before = p.c.ciphertexts;
    memset(big, 'b', sizeof(big));
    ASSERT_OK(casl_tls_write(p.c.t, big, sizeof(big)));
    ASSERT_EQ(p.c.ciphertexts, before + 1);
    ASSERT(p.c.qlen > sizeof(big));
    tpair_run(&p);
    ASSERT_EQ(p.s.rx_len, 13 + sizeof(big));
    /* decrypted into as few 64 KiB buffers as possible */
    ASSERT_EQ(p.s.plaintexts, 1 + 2);
  }
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_data_both_ways_tls12) { return data_both_ways(CASL_TLS1_2); }
TEST_IMPL(tls_data_both_ways_tls13) { return data_both_ways(CASL_TLS1_3); }

/* With a hold, small writes wait in the filter and leave as one batch:
 * once more than the hold waits, at casl_tls_flush, or with the output of
 * any other call; without one, each write is its own batch. */
TEST_IMPL(tls_hold_batches_writes) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  static char chunk[16384];
  int before, i;
  ASSERT_OK(std_pair(&p, CASL_TLS1_3, &cc, &sc));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  memset(chunk, 'h', sizeof(chunk));
  casl_tls_set_hold(p.c.t, 64 * 1024);
  before = p.c.ciphertexts;
  for (i = 0; i < 3; i++)
    ASSERT_OK(casl_tls_write(p.c.t, chunk, sizeof(chunk)));
  ASSERT_EQ(p.c.ciphertexts, before);
  ASSERT(casl_tls_pending_ciphertext(p.c.t) > 3 * sizeof(chunk));
  ASSERT_OK(casl_tls_flush(p.c.t));
  ASSERT_EQ(p.c.ciphertexts, before + 1);
  ASSERT_EQ(casl_tls_pending_ciphertext(p.c.t), 0);
  ASSERT_OK(casl_tls_flush(p.c.t)); /* nothing waits: nothing emitted */
  ASSERT_EQ(p.c.ciphertexts, before + 1);
  /* the fourth 16 KiB write (with its records' overhead) takes it past
   * 64 KiB */
  for (i = 0; i < 4; i++)
    ASSERT_OK(casl_tls_write(p.c.t, chunk, sizeof(chunk)));
  ASSERT_EQ(p.c.ciphertexts, before + 2);
  ASSERT_EQ(casl_tls_pending_ciphertext(p.c.t), 0);
  /* held output goes with close_notify, in order */
  ASSERT_OK(casl_tls_write(p.c.t, "tail", 4));
  ASSERT_EQ(p.c.ciphertexts, before + 2);
  ASSERT_OK(casl_tls_shutdown(p.c.t));
  ASSERT_EQ(casl_tls_pending_ciphertext(p.c.t), 0);
  tpair_run(&p);
  ASSERT_EQ(p.s.rx_len, 7 * sizeof(chunk) + 4);
  ASSERT(memcmp(p.s.rx + 7 * sizeof(chunk), "tail", 4) == 0);
  ASSERT_EQ(p.s.close_notifies, 1);
  /* no hold: every write is a batch */
  casl_tls_set_hold(p.s.t, 0);
  before = p.s.ciphertexts;
  ASSERT_OK(casl_tls_write(p.s.t, "a", 1));
  ASSERT_OK(casl_tls_write(p.s.t, "b", 1));
  ASSERT_EQ(p.s.ciphertexts, before + 2);
  ASSERT_EQ(casl_tls_flush(NULL), CASL_EINVAL);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

/* 16 MiB (scaled) each way, written in interleaved pieces, checked byte by
 * byte against the pattern on arrival. */
static int bulk(int mode) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  uint64_t total = (uint64_t)(16.0 * 1024 * 1024 * test_scale());
  uint64_t cpos = 0, spos = 0;
  uint64_t rng = 12345;
  if (total < 65536)
    total = 65536;
  ASSERT_OK(std_pair(&p, 0, &cc, &sc));
  p.mode = mode;
  p.c.check_pattern = p.s.check_pattern = 1;
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  while (cpos < total || spos < total) {
    size_t n;
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    n = 1 + (size_t)((rng >> 33) % (256 * 1024));
    if (cpos < total)
      ASSERT_OK(tend_write_pattern(&p.c, &cpos,
                                   (size_t)(total - cpos < n ? total - cpos
                                                             : n)));
    if (spos < total)
      ASSERT_OK(tend_write_pattern(&p.s, &spos,
                                   (size_t)(total - spos < n ? total - spos
                                                             : n)));
    tpair_run(&p);
  }
  ASSERT(tpair_ok(&p));
  ASSERT_EQ(p.s.rx_total, total);
  ASSERT_EQ(p.c.rx_total, total);
  ASSERT_EQ(p.s.pattern_bad, 0);
  ASSERT_EQ(p.c.pattern_bad, 0);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_bulk_16m_whole) { return bulk(DELIVER_WHOLE); }
TEST_IMPL(tls_bulk_16m_1byte) { return bulk(DELIVER_BYTE); }
TEST_IMPL(tls_bulk_16m_random) { return bulk(DELIVER_RANDOM); }
TEST_IMPL(tls_bulk_16m_64k) { return bulk(DELIVER_64K); }

static int write_before_handshake(int ver, int mode) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  ASSERT_OK(std_pair(&p, ver, &cc, &sc));
  p.mode = mode;
  ASSERT_OK(casl_tls_write(p.c.t, "hello ", 6));
  ASSERT_OK(casl_tls_write(p.c.t, "world", 5));
  ASSERT_EQ(casl_tls_pending_plaintext(p.c.t), 11);
  ASSERT_OK(casl_tls_write(p.s.t, "early server", 12));
  /* Written from the handshake callback: after the held bytes. */
  p.c.write_on_handshake = ", later";
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_EQ(casl_tls_pending_plaintext(p.c.t), 0);
  ASSERT_OK(casl_tls_write(p.c.t, "!", 1));
  tpair_run(&p);
  ASSERT(tend_got(&p.s, "hello world, later!"));
  ASSERT(tend_got(&p.c, "early server"));
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_write_before_handshake) {
  CHECK(write_before_handshake(CASL_TLS1_3, DELIVER_WHOLE));
  CHECK(write_before_handshake(CASL_TLS1_2, DELIVER_BYTE));
  return 0;
}

static int close_notify_clean(int ver) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  ASSERT_OK(std_pair(&p, ver, &cc, &sc));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_write(p.c.t, "last words", 10));
  ASSERT_OK(casl_tls_shutdown(p.c.t));
  ASSERT_OK(casl_tls_shutdown(p.c.t)); /* once */
  tpair_run(&p);
  ASSERT(tend_got(&p.s, "last words"));
  ASSERT_EQ(p.s.close_notifies, 1);
  ASSERT_EQ(p.s.errors, 0);
  /* the server may still answer (half close), then closes too */
  ASSERT_OK(casl_tls_write(p.s.t, "bye", 3));
  ASSERT_OK(casl_tls_shutdown(p.s.t));
  tpair_run(&p);
  ASSERT(tend_got(&p.c, "bye"));
  ASSERT_EQ(p.c.close_notifies, 1);
  /* transport EOF after close_notify: clean, no error */
  ASSERT_OK(casl_tls_eof(p.s.t));
  ASSERT_OK(casl_tls_eof(p.c.t));
  ASSERT_EQ(p.s.errors + p.c.errors, 0);
  ASSERT_EQ(p.s.close_notifies, 1);
  ASSERT_EQ(casl_tls_feed(p.s.t, "x", 1), CASL_ECLOSED);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_close_notify_clean) {
  CHECK(close_notify_clean(CASL_TLS1_3));
  CHECK(close_notify_clean(CASL_TLS1_2));
  return 0;
}

TEST_IMPL(tls_shutdown_before_handshake) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  ASSERT_OK(std_pair(&p, 0, &cc, &sc));
  ASSERT_OK(casl_tls_write(p.c.t, "held", 4));
  ASSERT_OK(casl_tls_shutdown(p.c.t));
  ASSERT_EQ(casl_tls_write(p.c.t, "x", 1), CASL_ECLOSED);
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT(tend_got(&p.s, "held"));
  ASSERT_EQ(p.s.close_notifies, 1);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

static int eof_truncated(int ver) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  ASSERT_OK(std_pair(&p, ver, &cc, &sc));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_write(p.c.t, "partial", 7));
  tpair_run(&p);
  ASSERT_OK(casl_tls_eof(p.s.t));
  ASSERT(tend_got(&p.s, "partial"));
  ASSERT_EQ(p.s.errors, 1);
  ASSERT_EQ(p.s.error_code, CASL_ETRUNCATED);
  ASSERT_EQ(p.s.close_notifies, 0);
  ASSERT(strstr(p.s.err, "close_notify") != NULL);
  ASSERT(strstr(p.s.err, "unexpected eof") != NULL);
  ASSERT_EQ(casl_tls_feed(p.s.t, "x", 1), CASL_ECLOSED);
  ASSERT_EQ(casl_tls_write(p.s.t, "x", 1), CASL_ECLOSED);
  ASSERT_EQ(casl_tls_eof(p.s.t), CASL_ECLOSED);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_eof_truncated) {
  CHECK(eof_truncated(CASL_TLS1_3));
  CHECK(eof_truncated(CASL_TLS1_2));
  return 0;
}

TEST_IMPL(tls_eof_during_handshake) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  ASSERT_OK(std_pair(&p, 0, &cc, &sc));
  ASSERT_OK(casl_tls_start(p.c.t));
  /* the server never answers: EOF on the client mid-handshake */
  ASSERT(p.c.qlen > 0);
  ASSERT_OK(casl_tls_eof(p.c.t));
  ASSERT_EQ(p.c.errors, 1);
  ASSERT_EQ(p.c.error_code, CASL_ETLSEOF);
  ASSERT(strstr(p.c.err, "handshake") != NULL);
  /* a server that got half a ClientHello, then EOF */
  ASSERT_OK(casl_tls_feed(p.s.t, p.c.q, p.c.qlen / 2));
  ASSERT_OK(casl_tls_eof(p.s.t));
  ASSERT_EQ(p.s.errors, 1);
  ASSERT_EQ(p.s.error_code, CASL_ETLSEOF);
  ASSERT_EQ(p.s.handshakes, 0);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_write_after_shutdown) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  ASSERT_OK(std_pair(&p, 0, &cc, &sc));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_shutdown(p.c.t));
  ASSERT_EQ(casl_tls_write(p.c.t, "late", 4), CASL_ECLOSED);
  tpair_run(&p);
  ASSERT_EQ(p.s.close_notifies, 1);
  ASSERT_EQ(p.s.rx_len, 0);
  /* the peer's close_notify does not stop the server writing (half close) */
  ASSERT_OK(casl_tls_write(p.s.t, "ok", 2));
  tpair_run(&p);
  ASSERT(tend_got(&p.c, "ok"));
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_live_count) {
  tpair p;
  casl_tls_ctx *cc, *sc;
  long base = casl_tls_live_count();
  ASSERT_OK(std_pair(&p, 0, &cc, &sc));
  ASSERT_EQ(casl_tls_live_count(), base + 2);
  tpair_start(&p);
  tend_free(&p.c);
  ASSERT_EQ(casl_tls_live_count(), base + 1);
  tpair_free(&p);
  ASSERT_EQ(casl_tls_live_count(), base);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_bad_arguments) {
  casl_tls_ctx *cc = test_client_ctx(NULL), *sc = test_server_ctx(
                                                   "server-chain.pem",
                                                   "server.key");
  casl_tls *t = NULL;
  static const casl_tls_callbacks none;
  tpair p;
  ASSERT(cc != NULL && sc != NULL);
  ASSERT_EQ(casl_tls_new(&t, cc, 0, NULL, NULL, &none, NULL), CASL_EINVAL);
  ASSERT(t == NULL);
  ASSERT_OK(tpair_init(&p, cc, sc, NULL, NULL));
  /* role must match the context */
  ASSERT_EQ(casl_tls_new(&t, sc, 0, NULL, NULL, &none, NULL), CASL_EINVAL);
  ASSERT_EQ(casl_tls_feed(p.s.t, NULL, 3), CASL_EINVAL);
  ASSERT_EQ(casl_tls_write(NULL, "x", 1), CASL_EINVAL);
  ASSERT_EQ(casl_tls_sni_select(p.s.t, NULL), CASL_ESTATE);
  ASSERT_EQ(casl_tls_sni_select(p.s.t, cc), CASL_EINVAL);
  ASSERT_STR_EQ(casl_tls_error(p.s.t), "");
  ASSERT(casl_tls_get_ud(p.s.t) == &p.s);
  ASSERT(casl_tls_ssl(p.s.t) != NULL);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}
