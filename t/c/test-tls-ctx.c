/*
 * test-tls-ctx.c -- TLS engine: keys and certificates, ALPN, SNI, session
 * resumption, key log, adopted contexts, renegotiation, option constants,
 * peer certificate details.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "test-tls.h"

static int handshake_with(casl_tls_ctx *sc, casl_tls_ctx *cc,
                          const char *name) {
  tpair p;
  ASSERT_OK(tpair_init(&p, cc, sc, name, NULL));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  tpair_free(&p);
  return 0;
}

TEST_IMPL(tls_key_password) {
  casl_tls_ctx *sc, *cc = test_client_ctx("ca.pem");
  static const char *bad = "hunter2-not-the-password";
  ASSERT(cc != NULL);
  ASSERT_OK(casl_tls_ctx_new(&sc, 1));
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_file(
      sc, test_cert_path("server-chain.pem")));
  /* wrong password: rejected, and the text does not contain it */
  ASSERT_EQ(casl_tls_ctx_use_private_key_file(sc,
                                              test_cert_path("server-enc.key"),
                                              CASL_FILETYPE_PEM, bad),
            CASL_ECONFIG);
  ASSERT(casl_tls_ctx_error(sc)[0] != '\0');
  ASSERT(strstr(casl_tls_ctx_error(sc), bad) == NULL);
  ASSERT(strstr(casl_tls_ctx_error(sc), "hunter2") == NULL);
  /* no password for an encrypted key: rejected, no prompt */
  ASSERT_EQ(casl_tls_ctx_use_private_key_file(sc,
                                              test_cert_path("server-enc.key"),
                                              CASL_FILETYPE_PEM, NULL),
            CASL_ECONFIG);
  /* the right one */
  ASSERT_OK(casl_tls_ctx_use_private_key_file(
      sc, test_cert_path("server-enc.key"), CASL_FILETYPE_PEM, "secret"));
  ASSERT_STR_EQ(casl_tls_ctx_error(sc), "");
  ASSERT_OK(casl_tls_ctx_check_private_key(sc));
  CHECK(handshake_with(sc, cc, "localhost"));
  casl_tls_ctx_unref(sc);
  casl_tls_ctx_unref(cc);
  return 0;
}

TEST_IMPL(tls_key_der) {
  casl_tls_ctx *sc, *cc = test_client_ctx("ca.pem");
  ASSERT(cc != NULL);
  ASSERT_OK(casl_tls_ctx_new(&sc, 1));
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_file(
      sc, test_cert_path("server-chain.pem")));
  /* a DER key read as PEM fails, as ASN1 it loads */
  ASSERT_EQ(casl_tls_ctx_use_private_key_file(
                sc, test_cert_path("server.key.der"), CASL_FILETYPE_PEM, NULL),
            CASL_ECONFIG);
  ASSERT_OK(casl_tls_ctx_use_private_key_file(
      sc, test_cert_path("server.key.der"), CASL_FILETYPE_ASN1, NULL));
  CHECK(handshake_with(sc, cc, "localhost"));
  casl_tls_ctx_unref(sc);
  casl_tls_ctx_unref(cc);
  return 0;
}

TEST_IMPL(tls_key_cert_mismatch) {
  casl_tls_ctx *sc;
  /* certificate first, then someone else's key */
  ASSERT_OK(casl_tls_ctx_new(&sc, 1));
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_file(
      sc, test_cert_path("server.pem")));
  ASSERT_EQ(casl_tls_ctx_use_private_key_file(sc, test_cert_path("client.key"),
                                              CASL_FILETYPE_PEM, NULL),
            CASL_ECONFIG);
  ASSERT(strstr(casl_tls_ctx_error(sc), "does not match") != NULL);
  /* an RSA key for an ECDSA certificate */
  ASSERT_EQ(casl_tls_ctx_use_private_key_file(
                sc, test_cert_path("server-rsa.key"), CASL_FILETYPE_PEM, NULL),
            CASL_ECONFIG);
  casl_tls_ctx_unref(sc);
  /* key first, then a certificate that does not match it */
  ASSERT_OK(casl_tls_ctx_new(&sc, 1));
  ASSERT_OK(casl_tls_ctx_use_private_key_file(sc, test_cert_path("client.key"),
                                              CASL_FILETYPE_PEM, NULL));
  ASSERT_EQ(casl_tls_ctx_use_certificate_chain_file(
                sc, test_cert_path("server-chain.pem")),
            CASL_ECONFIG);
  ASSERT_EQ(casl_tls_ctx_check_private_key(sc), CASL_ECONFIG);
  casl_tls_ctx_unref(sc);
  /* missing files */
  ASSERT_OK(casl_tls_ctx_new(&sc, 1));
  ASSERT_EQ(casl_tls_ctx_use_certificate_chain_file(sc, "/nonexistent.pem"),
            CASL_ECONFIG);
  ASSERT(strstr(casl_tls_ctx_error(sc), "/nonexistent.pem") != NULL);
  ASSERT_EQ(casl_tls_ctx_use_private_key_file(sc, "/nonexistent.key",
                                              CASL_FILETYPE_PEM, NULL),
            CASL_ECONFIG);
  ASSERT_EQ(casl_tls_ctx_use_private_key_file(sc, "/nonexistent.key", 7,
                                              NULL),
            CASL_EINVAL);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_dual_cert_ctx) {
  /* An ECDSA and an RSA pair in one context: each key is checked against
   * the certificate of its own type. */
  casl_tls_ctx *sc, *cc = test_client_ctx("ca.pem");
  tpair p;
  ASSERT(cc != NULL);
  ASSERT_OK(casl_tls_ctx_new(&sc, 1));
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_file(
      sc, test_cert_path("server-chain.pem")));
  ASSERT_OK(casl_tls_ctx_use_private_key_file(sc, test_cert_path("server.key"),
                                              CASL_FILETYPE_PEM, NULL));
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_file(
      sc, test_cert_path("server-rsa-chain.pem")));
  ASSERT_OK(casl_tls_ctx_use_private_key_file(
      sc, test_cert_path("server-rsa.key"), CASL_FILETYPE_PEM, NULL));
  CHECK(handshake_with(sc, cc, "localhost"));
  /* a TLS 1.2 client that only takes RSA gets the RSA certificate */
  ASSERT_OK(casl_tls_ctx_set_versions(cc, CASL_TLS1_2, CASL_TLS1_2));
  ASSERT_OK(casl_tls_ctx_set_ciphers(cc, "ECDHE-RSA-AES128-GCM-SHA256"));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_STR_EQ(casl_tls_cipher(p.c.t), "ECDHE-RSA-AES128-GCM-SHA256");
  tpair_free(&p);
  casl_tls_ctx_unref(sc);
  casl_tls_ctx_unref(cc);
  return 0;
}

TEST_IMPL(tls_cert_key_mem) {
  casl_tls_ctx *sc, *cc = test_client_ctx("ca.pem");
  size_t len, klen;
  char *pem = test_read_file(test_cert_path("certkey.pem"), &len);
  char *key = test_read_file(test_cert_path("server.key"), &klen);
  ASSERT(cc != NULL && pem != NULL && key != NULL);
  ASSERT_OK(casl_tls_ctx_new(&sc, 1));
  ASSERT_EQ(casl_tls_ctx_use_certificate_chain_mem(sc, "nothing", 7),
            CASL_ECONFIG);
  /* certkey.pem: leaf, intermediate and the key in one PEM blob */
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_mem(sc, pem, len));
  ASSERT_OK(casl_tls_ctx_use_private_key_mem(sc, pem, len, CASL_FILETYPE_PEM,
                                             NULL));
  CHECK(handshake_with(sc, cc, "localhost"));
  casl_tls_ctx_unref(sc);
  /* key alone from memory, chain file */
  ASSERT_OK(casl_tls_ctx_new(&sc, 1));
  ASSERT_OK(casl_tls_ctx_use_private_key_mem(sc, key, klen, CASL_FILETYPE_PEM,
                                             NULL));
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_file(
      sc, test_cert_path("server-chain.pem")));
  CHECK(handshake_with(sc, cc, "localhost"));
  casl_tls_ctx_unref(sc);
  free(pem);
  free(key);
  casl_tls_ctx_unref(cc);
  return 0;
}

TEST_IMPL(tls_ctx_settings) {
  casl_tls_ctx *c;
  uint64_t o;
  ASSERT_OK(casl_tls_ctx_new(&c, 0));
  ASSERT_EQ(casl_tls_ctx_is_server(c), 0);
  /* secure defaults */
  o = casl_tls_ctx_get_options(c);
  ASSERT(o & SSL_OP_NO_RENEGOTIATION);
  ASSERT(o & SSL_OP_NO_COMPRESSION);
  ASSERT(o & SSL_OP_CIPHER_SERVER_PREFERENCE);
  ASSERT((o & SSL_OP_NO_TICKET) == 0);
  ASSERT_EQ(SSL_CTX_get_min_proto_version(
                (SSL_CTX *)casl_tls_ctx_ssl_ctx(c)),
            TLS1_2_VERSION);
  ASSERT(SSL_CTX_get_mode((SSL_CTX *)casl_tls_ctx_ssl_ctx(c)) &
         SSL_MODE_RELEASE_BUFFERS);
  ASSERT_EQ(casl_tls_ctx_get_verify(c), CASL_VERIFY_PEER);
  /* options */
  ASSERT_OK(casl_tls_ctx_set_options(c, SSL_OP_NO_TICKET));
  ASSERT(casl_tls_ctx_get_options(c) & SSL_OP_NO_TICKET);
  ASSERT_OK(casl_tls_ctx_clear_options(c, SSL_OP_NO_TICKET));
  ASSERT((casl_tls_ctx_get_options(c) & SSL_OP_NO_TICKET) == 0);
  /* ciphers */
  ASSERT_EQ(casl_tls_ctx_set_ciphers(c, "NO-SUCH-CIPHER"), CASL_ECONFIG);
  ASSERT(strstr(casl_tls_ctx_error(c), "no cipher match") != NULL);
  ASSERT_OK(casl_tls_ctx_set_ciphers(c, "ECDHE-ECDSA-AES128-GCM-SHA256"));
  ASSERT_STR_EQ(casl_tls_ctx_error(c), "");
  ASSERT_EQ(casl_tls_ctx_set_ciphersuites(c, "TLS_NO_SUCH"), CASL_ECONFIG);
  ASSERT_OK(casl_tls_ctx_set_ciphersuites(c, "TLS_AES_256_GCM_SHA384"));
  /* versions */
  ASSERT_EQ(casl_tls_ctx_set_versions(c, 0x0200, 0), CASL_EINVAL);
  ASSERT_EQ(casl_tls_ctx_set_versions(c, CASL_TLS1_3, CASL_TLS1_2),
            CASL_EINVAL);
  ASSERT_OK(casl_tls_ctx_set_versions(c, CASL_TLS1_3, 0));
  /* verify */
  ASSERT_EQ(casl_tls_ctx_set_verify(c, 9), CASL_EINVAL);
  ASSERT_OK(casl_tls_ctx_set_verify(c, CASL_VERIFY_NONE));
  ASSERT_EQ(casl_tls_ctx_get_verify(c), CASL_VERIFY_NONE);
  /* ALPN wire format is checked */
  ASSERT_EQ(casl_tls_ctx_set_alpn(c, (const unsigned char *)"\x05h2", 3),
            CASL_EINVAL);
  ASSERT_EQ(casl_tls_ctx_set_alpn(c, (const unsigned char *)"\x00", 1),
            CASL_EINVAL);
  /* SNI is for servers */
  ASSERT_EQ(casl_tls_ctx_set_sni_ask(c, 1), CASL_EINVAL);
  ASSERT_EQ(casl_tls_ctx_set_session_cache(c, -1), CASL_EINVAL);
  casl_tls_ctx_ref(c);
  casl_tls_ctx_unref(c);
  casl_tls_ctx_unref(c);
  ASSERT_OK(casl_tls_ctx_new(&c, 1));
  ASSERT_EQ(casl_tls_ctx_is_server(c), 1);
  ASSERT_EQ(casl_tls_ctx_get_verify(c), CASL_VERIFY_NONE);
  ASSERT_EQ(casl_tls_ctx_add_sni(c, "*", c), CASL_EINVAL);
  ASSERT_OK(casl_tls_ctx_set_session_cache(c, 0));
  casl_tls_ctx_unref(c);
  return 0;
}

static int alpn_case(const char *cw, size_t cl, const char *sw, size_t sl,
                     const char *want) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  tpair p;
  ASSERT(sc != NULL && cc != NULL);
  ASSERT_OK(casl_tls_ctx_set_alpn(cc, (const unsigned char *)cw, cl));
  ASSERT_OK(casl_tls_ctx_set_alpn(sc, (const unsigned char *)sw, sl));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  if (want == NULL) {
    ASSERT(casl_tls_alpn(p.c.t) == NULL);
    ASSERT(casl_tls_alpn(p.s.t) == NULL);
  } else {
    ASSERT_STR_EQ(casl_tls_alpn(p.c.t), want);
    ASSERT_STR_EQ(casl_tls_alpn(p.s.t), want);
  }
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_alpn_match) {
  /* the server's preference wins */
  CHECK(alpn_case("\x02h2\x08http/1.1", 12, "\x08http/1.1\x02h2", 12,
                  "http/1.1"));
  CHECK(alpn_case("\x02h2\x08http/1.1", 12, "\x03" "foo\x02h2", 7, "h2"));
  return 0;
}

TEST_IMPL(tls_alpn_no_overlap) {
  CHECK(alpn_case("\x03" "foo", 4, "\x03" "bar", 4, NULL));
  /* client offers, server has no list */
  CHECK(alpn_case("\x02h2", 3, "", 0, NULL));
  return 0;
}

static int sni_subject(casl_tls_ctx *sc, casl_tls_ctx *cc, const char *name,
                       const char *want_cn) {
  tpair p;
  const casl_tls_cert_info *ci;
  ASSERT_OK(tpair_init(&p, cc, sc, name, NULL));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_peer_cert(p.c.t, &ci));
  ASSERT(strstr(ci->subject, want_cn) != NULL);
  ASSERT_STR_EQ(casl_tls_server_name(p.s.t), name);
  tpair_free(&p);
  return 0;
}

TEST_IMPL(tls_sni_switch) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *alpha = test_server_ctx("alpha-chain.pem", "alpha.key");
  casl_tls_ctx *beta = test_server_ctx("beta-chain.pem", "beta.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  ASSERT(sc != NULL && alpha != NULL && beta != NULL && cc != NULL);
  ASSERT_OK(casl_tls_ctx_add_sni(sc, "alpha.test", alpha));
  ASSERT_OK(casl_tls_ctx_add_sni(sc, "*.beta.test", beta));
  ASSERT_OK(casl_tls_ctx_add_sni(sc, "beta.test", beta));
  ASSERT_EQ(casl_tls_ctx_add_sni(sc, "a.*.test", beta), CASL_EINVAL);
  ASSERT_EQ(casl_tls_ctx_add_sni(sc, "x.test", cc), CASL_EINVAL);
  /* the context keeps its children alive */
  casl_tls_ctx_unref(alpha);
  casl_tls_ctx_unref(beta);
  CHECK(sni_subject(sc, cc, "alpha.test", "CN=alpha.test"));
  CHECK(sni_subject(sc, cc, "ALPHA.test", "CN=alpha.test"));
  CHECK(sni_subject(sc, cc, "x.beta.test", "CN=beta.test"));
  CHECK(sni_subject(sc, cc, "beta.test", "CN=beta.test"));
  /* the star matches exactly one label */
  ASSERT_OK(casl_tls_ctx_set_verify(cc, CASL_VERIFY_NONE));
  CHECK(sni_subject(sc, cc, "a.b.beta.test", "CN=localhost"));
  CHECK(sni_subject(sc, cc, "localhost", "CN=localhost"));
  casl_tls_ctx_unref(sc);
  casl_tls_ctx_unref(cc);
  return 0;
}

static int sni_ask(int in_callback, int answer_alpha) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *alpha = test_server_ctx("alpha-chain.pem", "alpha.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  const casl_tls_cert_info *ci;
  tpair p;
  const char *name = answer_alpha ? "alpha.test" : "localhost";
  ASSERT(sc != NULL && alpha != NULL && cc != NULL);
  ASSERT_OK(casl_tls_ctx_set_sni_ask(sc, 1));
  ASSERT_OK(tpair_init(&p, cc, sc, name, NULL));
  p.s.sni_select_now = in_callback;
  p.s.sni_answer = answer_alpha ? alpha : NULL;
  ASSERT_OK(casl_tls_write(p.c.t, "held", 4));
  tpair_start(&p);
  ASSERT_EQ(p.s.sni_calls, 1);
  ASSERT_STR_EQ(p.s.sni_name, name);
  if (!in_callback) {
    /* paused: nothing moves until the application answers */
    ASSERT_EQ(p.c.handshakes + p.s.handshakes, 0);
    ASSERT_EQ(p.s.ciphertexts, 0);
    ASSERT_OK(casl_tls_sni_select(p.s.t, p.s.sni_answer));
    ASSERT_EQ(casl_tls_sni_select(p.s.t, NULL), CASL_ESTATE);
    tpair_run(&p);
  }
  ASSERT(tpair_ok(&p));
  ASSERT_EQ(p.s.sni_calls, 1);
  ASSERT(tend_got(&p.s, "held"));
  ASSERT_OK(casl_tls_peer_cert(p.c.t, &ci));
  ASSERT(strstr(ci->subject, answer_alpha ? "CN=alpha.test" : "CN=localhost") !=
         NULL);
  tpair_free(&p);
  casl_tls_ctx_unref(alpha);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_sni_ask) {
  CHECK(sni_ask(0, 1));
  CHECK(sni_ask(0, 0));
  return 0;
}

TEST_IMPL(tls_sni_ask_in_callback) {
  CHECK(sni_ask(1, 1));
  CHECK(sni_ask(1, 0));
  return 0;
}

TEST_IMPL(tls_sni_ask_no_name) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = test_client_ctx(NULL);
  tpair p;
  ASSERT(sc != NULL && cc != NULL);
  ASSERT_OK(casl_tls_ctx_set_verify(cc, CASL_VERIFY_NONE));
  ASSERT_OK(casl_tls_ctx_set_sni_ask(sc, 1));
  ASSERT_OK(tpair_init(&p, cc, sc, NULL, NULL));
  p.s.sni_select_now = 1;
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_EQ(p.s.sni_calls, 1);
  ASSERT_EQ(p.s.sni_null, 1);
  ASSERT(casl_tls_server_name(p.s.t) == NULL);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

/* Connects with session_key, exchanges data (TLS 1.3 tickets arrive after
 * the handshake), closes; returns whether the session was reused. */
static int resume_once(casl_tls_ctx *cc, casl_tls_ctx *sc, const char *key,
                       int *reused) {
  tpair p;
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", key));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_write(p.s.t, "hi", 2));
  tpair_run(&p);
  ASSERT(tend_got(&p.c, "hi"));
  *reused = casl_tls_session_reused(p.c.t);
  ASSERT_EQ(casl_tls_session_reused(p.s.t), *reused);
  ASSERT_OK(casl_tls_shutdown(p.c.t));
  tpair_run(&p);
  tpair_free(&p);
  return 0;
}

static int resume(int ver) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  int reused = -1;
  ASSERT(sc != NULL && cc != NULL);
  ASSERT_OK(casl_tls_ctx_set_versions(cc, ver, ver));
  CHECK(resume_once(cc, sc, "localhost:443", &reused));
  ASSERT_EQ(reused, 0);
  CHECK(resume_once(cc, sc, "localhost:443", &reused));
  ASSERT_EQ(reused, 1);
  CHECK(resume_once(cc, sc, "localhost:443", &reused));
  ASSERT_EQ(reused, 1);
  /* without a session key: a full handshake */
  CHECK(resume_once(cc, sc, NULL, &reused));
  ASSERT_EQ(reused, 0);
  /* another key: nothing saved under it yet */
  CHECK(resume_once(cc, sc, "other:443", &reused));
  ASSERT_EQ(reused, 0);
  /* cache off */
  ASSERT_OK(casl_tls_ctx_set_session_cache(cc, 0));
  CHECK(resume_once(cc, sc, "localhost:443", &reused));
  ASSERT_EQ(reused, 0);
  CHECK(resume_once(cc, sc, "localhost:443", &reused));
  ASSERT_EQ(reused, 0);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_resume_tls12) { return resume(CASL_TLS1_2); }
TEST_IMPL(tls_resume_tls13) { return resume(CASL_TLS1_3); }

TEST_IMPL(tls_resume_lru_eviction) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  int reused = -1;
  ASSERT(sc != NULL && cc != NULL);
  ASSERT_OK(casl_tls_ctx_set_session_cache(cc, 2));
  CHECK(resume_once(cc, sc, "a", &reused));
  CHECK(resume_once(cc, sc, "b", &reused));
  CHECK(resume_once(cc, sc, "a", &reused)); /* a is now the most recent */
  ASSERT_EQ(reused, 1);
  CHECK(resume_once(cc, sc, "c", &reused)); /* evicts b */
  ASSERT_EQ(reused, 0);
  CHECK(resume_once(cc, sc, "a", &reused));
  ASSERT_EQ(reused, 1);
  CHECK(resume_once(cc, sc, "b", &reused));
  ASSERT_EQ(reused, 0);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

struct lines {
  char buf[8192];
  int n;
};

static void collect_line(void *ud, const char *line) {
  struct lines *l = ud;
  size_t len = strlen(l->buf);
  l->n++;
  snprintf(l->buf + len, sizeof(l->buf) - len, "%s\n", line);
}

static int keylog(int ver, const char *const *want, int nwant) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  struct lines cl, sl;
  int i;
  ASSERT(sc != NULL && cc != NULL);
  memset(&cl, 0, sizeof(cl));
  memset(&sl, 0, sizeof(sl));
  ASSERT_OK(casl_tls_ctx_set_versions(cc, ver, ver));
  ASSERT_OK(casl_tls_ctx_set_keylog_cb(cc, collect_line, &cl));
  ASSERT_OK(casl_tls_ctx_set_keylog_cb(sc, collect_line, &sl));
  CHECK(handshake_with(sc, cc, "localhost"));
  ASSERT_EQ(cl.n, nwant);
  ASSERT_EQ(sl.n, nwant);
  for (i = 0; i < nwant; i++) {
    char pat[128];
    snprintf(pat, sizeof(pat), "%s ", want[i]);
    ASSERT(strstr(cl.buf, pat) != NULL);
    ASSERT(strstr(sl.buf, pat) != NULL);
  }
  /* both sides log the same secrets */
  ASSERT_EQ(strlen(cl.buf), strlen(sl.buf));
  /* off again: nothing more */
  ASSERT_OK(casl_tls_ctx_set_keylog_cb(cc, NULL, NULL));
  ASSERT_OK(casl_tls_ctx_set_keylog_cb(sc, NULL, NULL));
  CHECK(handshake_with(sc, cc, "localhost"));
  ASSERT_EQ(cl.n, nwant);
  ASSERT_EQ(sl.n, nwant);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_keylog_tls12) {
  static const char *const want[] = {"CLIENT_RANDOM"};
  return keylog(CASL_TLS1_2, want, 1);
}

TEST_IMPL(tls_keylog_tls13) {
  static const char *const want[] = {
      "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
      "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"};
  return keylog(CASL_TLS1_3, want, 5);
}

TEST_IMPL(tls_keylog_file) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  char path[] = "/tmp/casl-keylog-XXXXXX";
  int fd = mkstemp(path);
  size_t len = 0, len2 = 0;
  char *data;
  ASSERT(fd >= 0 && sc != NULL && cc != NULL);
  close(fd);
  /* nothing without the setting */
  CHECK(handshake_with(sc, cc, "localhost"));
  data = test_read_file(path, &len);
  ASSERT(data != NULL);
  ASSERT_EQ(len, 0);
  free(data);
  ASSERT_OK(casl_tls_ctx_set_keylog_file(cc, path));
  CHECK(handshake_with(sc, cc, "localhost"));
  CHECK(handshake_with(sc, cc, "localhost"));
  data = test_read_file(path, &len);
  ASSERT(data != NULL);
  ASSERT(strstr(data, "CLIENT_TRAFFIC_SECRET_0 ") != NULL);
  ASSERT(data[len - 1] == '\n');
  /* appended: two handshakes, five lines each */
  {
    size_t i;
    int lines = 0;
    for (i = 0; i < len; i++)
      lines += data[i] == '\n';
    ASSERT_EQ(lines, 10);
  }
  free(data);
  ASSERT_OK(casl_tls_ctx_set_keylog_file(cc, NULL));
  CHECK(handshake_with(sc, cc, "localhost"));
  data = test_read_file(path, &len2);
  ASSERT(data != NULL);
  ASSERT_EQ(len2, len);
  free(data);
  unlink(path);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_adopt_external_ctx) {
  SSL_CTX *ext = SSL_CTX_new(TLS_client_method());
  casl_tls_ctx *cc = NULL, *sc = test_server_ctx("server-chain.pem",
                                                 "server.key");
  SSL *ssl;
  tpair p;
  ASSERT(ext != NULL && sc != NULL);
  ASSERT(SSL_CTX_load_verify_locations(ext, test_cert_path("ca.pem"), NULL));
  SSL_CTX_set_verify(ext, SSL_VERIFY_PEER, NULL);
  ASSERT_EQ(casl_tls_ctx_adopt(&cc, NULL, 0), CASL_EINVAL);
  ASSERT_OK(casl_tls_ctx_adopt(&cc, ext, 0));
  ASSERT(casl_tls_ctx_ssl_ctx(cc) == ext);
  ASSERT_EQ(casl_tls_ctx_get_verify(cc), CASL_VERIFY_PEER);
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  /* the application's reference goes first: the filter keeps it alive */
  casl_tls_ctx_unref(cc);
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_write(p.c.t, "adopted", 7));
  tpair_run(&p);
  ASSERT(tend_got(&p.s, "adopted"));
  tpair_free(&p);
  /* ours are gone; the SSL_CTX is still the caller's and usable */
  ssl = SSL_new(ext);
  ASSERT(ssl != NULL);
  ASSERT(SSL_get_SSL_CTX(ssl) == ext);
  SSL_free(ssl);
  ASSERT(SSL_CTX_get_verify_mode(ext) == SSL_VERIFY_PEER);
  SSL_CTX_free(ext);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_renegotiation_refused) {
  /* A client that allows renegotiation (an adopted context without
   * SSL_OP_NO_RENEGOTIATION, TLS 1.2) asks for it after the handshake.
   * Our server answers no_renegotiation; the client's OpenSSL then fails
   * the connection (SSL_R_NO_RENEGOTIATION) and alerts the server. */
  SSL_CTX *ext = SSL_CTX_new(TLS_client_method());
  casl_tls_ctx *cc = NULL, *sc = test_server_ctx("server-chain.pem",
                                                 "server.key");
  tpair p;
  ASSERT(ext != NULL && sc != NULL);
  SSL_CTX_set_verify(ext, SSL_VERIFY_NONE, NULL);
  ASSERT(SSL_CTX_set_max_proto_version(ext, TLS1_2_VERSION));
  SSL_CTX_clear_options(ext, SSL_OP_NO_RENEGOTIATION);
  ASSERT_OK(casl_tls_ctx_adopt(&cc, ext, 0));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_STR_EQ(casl_tls_protocol(p.s.t), "TLSv1.2");
  ASSERT_EQ(SSL_renegotiate((SSL *)casl_tls_ssl(p.c.t)), 1);
  /* the write starts the renegotiation; the data waits for it */
  ASSERT_OK(casl_tls_write(p.c.t, "after", 5));
  ASSERT_EQ(casl_tls_pending_plaintext(p.c.t), 5);
  tpair_run(&p);
  ASSERT_EQ(p.c.errors, 1);
  ASSERT_EQ(p.c.error_code, CASL_ETLS);
  ASSERT(strstr(p.c.err, "no renegotiation") != NULL);
  ASSERT_EQ(p.s.errors, 1);
  ASSERT_EQ(p.s.error_code, CASL_ETLS);
  ASSERT(strstr(p.s.err, "handshake failure") != NULL);
  /* no second handshake on either side, and the data never arrived */
  ASSERT_EQ(p.s.handshakes, 1);
  ASSERT_EQ(p.c.handshakes, 1);
  ASSERT_EQ(p.s.rx_len, 0);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  SSL_CTX_free(ext);
  return 0;
}

TEST_IMPL(tls_option_constants) {
#define C(name) {#name, (uint64_t)(name)}
  static const struct {
    const char *name;
    uint64_t value;
  } want[] = {
      C(SSL_OP_NO_QUERY_MTU),
      C(SSL_OP_COOKIE_EXCHANGE),
      C(SSL_OP_NO_TICKET),
      C(SSL_OP_CISCO_ANYCONNECT),
      C(SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION),
      C(SSL_OP_NO_COMPRESSION),
      C(SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION),
      C(SSL_OP_SINGLE_ECDH_USE),
      C(SSL_OP_SINGLE_DH_USE),
      C(SSL_OP_EPHEMERAL_RSA),
      C(SSL_OP_CIPHER_SERVER_PREFERENCE),
      C(SSL_OP_TLS_ROLLBACK_BUG),
      C(SSL_OP_NO_SSLv2),
      C(SSL_OP_NO_SSLv3),
      C(SSL_OP_NO_TLSv1),
      C(SSL_OP_NO_TLSv1_1),
      C(SSL_OP_NO_TLSv1_2),
      C(SSL_OP_NO_TLSv1_3),
      C(SSL_OP_ALL),
      C(SSL_OP_NO_RENEGOTIATION),
      C(SSL_OP_IGNORE_UNEXPECTED_EOF),
      C(SSL_OP_LEGACY_SERVER_CONNECT),
      C(SSL_OP_PRIORITIZE_CHACHA),
      C(SSL_OP_ENABLE_MIDDLEBOX_COMPAT),
      C(SSL_VERIFY_NONE),
      C(SSL_VERIFY_PEER),
      C(SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
      C(SSL_VERIFY_CLIENT_ONCE),
  };
#undef C
  size_t i;
  uint64_t v;
  const char *const *names = casl_tls_constant_names();
  int n = 0;
  for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    v = ~(uint64_t)0;
    if (casl_tls_constant(want[i].name, &v) != 0) {
      fprintf(stderr, "  unknown constant %s\n", want[i].name);
      return 1;
    }
    if (v != want[i].value) {
      fprintf(stderr, "  %s: %llx != %llx\n", want[i].name,
              (unsigned long long)v, (unsigned long long)want[i].value);
      return 1;
    }
  }
  ASSERT(SSL_OP_NO_TLSv1_3 != 0 && SSL_OP_ALL != 0);
  /* every listed name resolves, and the list is NULL-terminated */
  for (; names[n] != NULL; n++)
    ASSERT_OK(casl_tls_constant(names[n], &v));
  ASSERT(n >= (int)(sizeof(want) / sizeof(want[0])));
  ASSERT_EQ(casl_tls_constant("SSL_OP_NO_SUCH_THING", &v), CASL_EINVAL);
  ASSERT_EQ(casl_tls_constant(NULL, &v), CASL_EINVAL);
  return 0;
}

TEST_IMPL(tls_peer_cert_info) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  const casl_tls_cert_info *ci, *again;
  char cmd[1200], line[512], *pem, *nl;
  size_t pemlen;
  FILE *f;
  time_t now = time(NULL);
  tpair p;
  ASSERT(sc != NULL && cc != NULL);
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  ASSERT_EQ(casl_tls_peer_cert(p.c.t, &ci), CASL_ESTATE);
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_peer_cert(p.c.t, &ci));
  ASSERT(strstr(ci->subject, "CN=localhost") != NULL);
  ASSERT(strstr(ci->issuer, "CN=casl test intermediate") != NULL);
  ASSERT_STR_EQ(ci->sans, "localhost\n127.0.0.1\n::1");
  ASSERT(ci->not_before <= (int64_t)now && (int64_t)now < ci->not_after);
  ASSERT(ci->not_after - ci->not_before >= 3649LL * 86400);
  ASSERT(ci->not_after - ci->not_before <= 3651LL * 86400);
  /* the PEM is the server's certificate file, byte for byte */
  pem = test_read_file(test_cert_path("server.pem"), &pemlen);
  ASSERT(pem != NULL);
  ASSERT_STR_EQ(ci->pem, pem);
  free(pem);
  /* serial and fingerprint as the openssl tool prints them */
  snprintf(cmd, sizeof(cmd),
           "openssl x509 -noout -nameopt RFC2253 -subject -issuer -serial "
           "-fingerprint -sha256 -in '%s'",
           test_cert_path("server.pem"));
  f = popen(cmd, "r");
  ASSERT(f != NULL);
  while (fgets(line, sizeof(line), f) != NULL) {
    if ((nl = strchr(line, '\n')) != NULL)
      *nl = '\0';
    if (strncmp(line, "subject=", 8) == 0)
      ASSERT_STR_EQ(ci->subject, line + 8);
    else if (strncmp(line, "issuer=", 7) == 0)
      ASSERT_STR_EQ(ci->issuer, line + 7);
    else if (strncmp(line, "serial=", 7) == 0)
      ASSERT_STR_EQ(ci->serial, line + 7);
    else if (strchr(line, '=') != NULL &&
             strncasecmp(line, "sha256 Fingerprint=", 19) == 0)
      ASSERT_STR_EQ(ci->sha256, line + 19);
    else
      ASSERT(0);
  }
  ASSERT_EQ(pclose(f), 0);
  ASSERT_EQ(strlen(ci->sha256), 32 * 3 - 1);
  /* cached */
  ASSERT_OK(casl_tls_peer_cert(p.c.t, &again));
  ASSERT(again == ci);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}
