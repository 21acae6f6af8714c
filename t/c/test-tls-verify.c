/*
 * test-tls-verify.c -- TLS engine: the verification matrix and mutual TLS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509_vfy.h>

#include "test-tls.h"

/* Client (trusting ca, verify mode) against a server presenting
 * chain/key, checking name.  Fills the pair; the caller inspects it. */
static int run_verify(tpair *p, const char *chain, const char *key,
                      const char *ca, int verify, const char *name) {
  casl_tls_ctx *sc = test_server_ctx(chain, key);
  casl_tls_ctx *cc = test_client_ctx(ca);
  if (sc == NULL || cc == NULL)
    return -1;
  if (casl_tls_ctx_get_verify(cc) != CASL_VERIFY_PEER ||
      casl_tls_ctx_set_verify(cc, verify) != 0 ||
      tpair_init(p, cc, sc, name, NULL) != 0)
    return -1;
  casl_tls_ctx_unref(cc); /* the filters keep them alive */
  casl_tls_ctx_unref(sc);
  tpair_start(p);
  return 0;
}

/* The client must fail with CASL_EVERIFY and X509 code `code', the server
 * with a TLS alert (CASL_ETLS). */
static int expect_verify_failure(const char *chain, const char *key,
                                 const char *name, long code,
                                 const char *text) {
  tpair p;
  char want[256];
  ASSERT_OK(run_verify(&p, chain, key, "ca.pem", CASL_VERIFY_PEER, name));
  ASSERT_EQ(p.c.handshakes, 0);
  ASSERT_EQ(p.c.errors, 1);
  ASSERT_EQ(p.c.error_code, CASL_EVERIFY);
  ASSERT_EQ(casl_tls_verify_result(p.c.t), code);
  snprintf(want, sizeof(want), "certificate verify failed: %s", text);
  ASSERT_STR_EQ(p.c.err, want);
  ASSERT_STR_EQ(casl_tls_verify_string(p.c.t), text);
  /* the alert reached the server */
  ASSERT_EQ(p.s.errors, 1);
  ASSERT_EQ(p.s.error_code, CASL_ETLS);
  ASSERT(strstr(p.s.err, "alert") != NULL);
  ASSERT_EQ(p.s.handshakes, 0);
  tpair_free(&p);
  return 0;
}

TEST_IMPL(tls_verify_good_chain) {
  tpair p;
  /* leaf + intermediate from the server, root in the client's store */
  ASSERT_OK(run_verify(&p, "server-chain.pem", "server.key", "ca.pem",
                       CASL_VERIFY_PEER, "localhost"));
  ASSERT(tpair_ok(&p));
  ASSERT_EQ(casl_tls_verify_result(p.c.t), X509_V_OK);
  tpair_free(&p);
  return 0;
}

TEST_IMPL(tls_verify_chain_missing_intermediate) {
  return expect_verify_failure("server.pem", "server.key", "localhost",
                               X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                               "unable to get local issuer certificate");
}

TEST_IMPL(tls_verify_self_signed) {
  return expect_verify_failure("selfsigned.pem", "selfsigned.key",
                               "localhost",
                               X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
                               "self-signed certificate");
}

TEST_IMPL(tls_verify_expired) {
  return expect_verify_failure("expired-chain.pem", "expired.key",
                               "localhost", X509_V_ERR_CERT_HAS_EXPIRED,
                               "certificate has expired");
}

TEST_IMPL(tls_verify_not_yet_valid) {
  return expect_verify_failure("notyet-chain.pem", "notyet.key", "localhost",
                               X509_V_ERR_CERT_NOT_YET_VALID,
                               "certificate is not yet valid");
}

TEST_IMPL(tls_verify_wrong_name) {
  CHECK(expect_verify_failure("wrongname-chain.pem", "wrongname.key",
                              "localhost", X509_V_ERR_HOSTNAME_MISMATCH,
                              "hostname mismatch"));
  /* and a right certificate asked for another name */
  CHECK(expect_verify_failure("server-chain.pem", "server.key",
                              "other.example", X509_V_ERR_HOSTNAME_MISMATCH,
                              "hostname mismatch"));
  return 0;
}

TEST_IMPL(tls_verify_ip_san_match) {
  tpair p;
  ASSERT_OK(run_verify(&p, "server-chain.pem", "server.key", "ca.pem",
                       CASL_VERIFY_PEER, "127.0.0.1"));
  ASSERT(tpair_ok(&p));
  /* an IP literal is not sent as SNI */
  ASSERT(casl_tls_server_name(p.s.t) == NULL);
  tpair_free(&p);
  ASSERT_OK(run_verify(&p, "server-chain.pem", "server.key", "ca.pem",
                       CASL_VERIFY_PEER, "::1"));
  ASSERT(tpair_ok(&p));
  tpair_free(&p);
  return 0;
}

TEST_IMPL(tls_verify_ip_san_mismatch) {
  /* nameonly.pem has DNS:localhost and no IP SAN */
  CHECK(expect_verify_failure("nameonly-chain.pem", "nameonly.key",
                              "127.0.0.1", X509_V_ERR_IP_ADDRESS_MISMATCH,
                              "IP address mismatch"));
  CHECK(expect_verify_failure("server-chain.pem", "server.key", "10.1.2.3",
                              X509_V_ERR_IP_ADDRESS_MISMATCH,
                              "IP address mismatch"));
  return 0;
}

TEST_IMPL(tls_verify_untrusted_ca) {
  return expect_verify_failure("untrusted.pem", "untrusted.key", "localhost",
                               X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                               "unable to get local issuer certificate");
}

TEST_IMPL(tls_verify_no_trust_anchors) {
  tpair p;
  ASSERT_OK(run_verify(&p, "server-chain.pem", "server.key", NULL,
                       CASL_VERIFY_PEER, "localhost"));
  ASSERT_EQ(p.c.error_code, CASL_EVERIFY);
  ASSERT_EQ(p.c.handshakes, 0);
  tpair_free(&p);
  return 0;
}

TEST_IMPL(tls_verify_off_accepts_all) {
  static const struct {
    const char *chain, *key, *name;
    long code;
  } cases[] = {
      {"selfsigned.pem", "selfsigned.key", "localhost",
       X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT},
      {"expired-chain.pem", "expired.key", "localhost",
       X509_V_ERR_CERT_HAS_EXPIRED},
      {"notyet-chain.pem", "notyet.key", "localhost",
       X509_V_ERR_CERT_NOT_YET_VALID},
      {"wrongname-chain.pem", "wrongname.key", "localhost",
       X509_V_ERR_HOSTNAME_MISMATCH},
      {"untrusted.pem", "untrusted.key", "localhost",
       X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY},
      {"nameonly-chain.pem", "nameonly.key", "127.0.0.1",
       X509_V_ERR_IP_ADDRESS_MISMATCH},
  };
  size_t i;
  tpair p;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    ASSERT_OK(run_verify(&p, cases[i].chain, cases[i].key, "ca.pem",
                         CASL_VERIFY_NONE, cases[i].name));
    ASSERT(tpair_ok(&p));
    /* accepted, but the result is still reported */
    ASSERT_EQ(casl_tls_verify_result(p.c.t), cases[i].code);
    ASSERT_OK(casl_tls_write(p.c.t, "x", 1));
    tpair_run(&p);
    ASSERT(tend_got(&p.s, "x"));
    tpair_free(&p);
  }
  return 0;
}

TEST_IMPL(tls_verify_ca_dir_and_mem) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = NULL;
  char *pem;
  size_t len;
  tpair p;
  ASSERT(sc != NULL);
  /* hashed directory */
  ASSERT_OK(casl_tls_ctx_new(&cc, 0));
  ASSERT_OK(casl_tls_ctx_load_verify_locations(cc, NULL,
                                               test_cert_path("cadir")));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  /* PEM in memory */
  pem = test_read_file(test_cert_path("ca-bundle.pem"), &len);
  ASSERT(pem != NULL);
  ASSERT_OK(casl_tls_ctx_new(&cc, 0));
  ASSERT_EQ(casl_tls_ctx_load_verify_mem(cc, "garbage", 7), CASL_ECONFIG);
  ASSERT(casl_tls_ctx_error(cc)[0] != '\0');
  ASSERT_OK(casl_tls_ctx_load_verify_mem(cc, pem, len));
  ASSERT_STR_EQ(casl_tls_ctx_error(cc), "");
  ASSERT_OK(casl_tls_ctx_load_system_trust(cc));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  /* a missing file */
  ASSERT_OK(casl_tls_ctx_new(&cc, 0));
  ASSERT_EQ(casl_tls_ctx_load_verify_locations(cc, "/nonexistent/ca.pem",
                                               NULL),
            CASL_ECONFIG);
  casl_tls_ctx_unref(cc);
  free(pem);
  casl_tls_ctx_unref(sc);
  return 0;
}

/* Server requiring (or asking for) a client certificate. */
static int mtls_pair(tpair *p, int verify, const char *cchain,
                     const char *ckey) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  if (sc == NULL || cc == NULL)
    return -1;
  if (casl_tls_ctx_load_verify_locations(sc, test_cert_path("ca.pem"),
                                         NULL) != 0 ||
      casl_tls_ctx_set_verify(sc, verify) != 0 ||
      casl_tls_ctx_get_verify(sc) != verify)
    return -1;
  if (cchain != NULL &&
      (casl_tls_ctx_use_certificate_chain_file(cc, test_cert_path(cchain)) !=
           0 ||
       casl_tls_ctx_use_private_key_file(cc, test_cert_path(ckey),
                                         CASL_FILETYPE_PEM, NULL) != 0))
    return -1;
  if (tpair_init(p, cc, sc, "localhost", NULL) != 0)
    return -1;
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  tpair_start(p);
  return 0;
}

static int mtls_missing(int ver) {
  tpair p;
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  ASSERT(sc != NULL && cc != NULL);
  ASSERT_OK(casl_tls_ctx_set_verify(sc, CASL_VERIFY_REQUIRE));
  ASSERT_OK(casl_tls_ctx_set_versions(cc, ver, ver));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  tpair_start(&p);
  ASSERT_EQ(p.s.handshakes, 0);
  ASSERT_EQ(p.s.errors, 1);
  ASSERT_EQ(p.s.error_code, CASL_EVERIFY);
  ASSERT(strstr(p.s.err, "did not return a certificate") != NULL);
  ASSERT_EQ(p.c.errors, 1);
  ASSERT_EQ(p.c.error_code, CASL_ETLS);
  ASSERT(strstr(p.c.err, "alert") != NULL);
  /* TLS 1.3: the client finishes its side before the server's verdict */
  ASSERT_EQ(p.c.handshakes, ver == CASL_TLS1_3 ? 1 : 0);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_mtls_required_missing) {
  CHECK(mtls_missing(CASL_TLS1_3));
  CHECK(mtls_missing(CASL_TLS1_2));
  return 0;
}

TEST_IMPL(tls_mtls_required_ok) {
  tpair p;
  const casl_tls_cert_info *ci;
  ASSERT_OK(mtls_pair(&p, CASL_VERIFY_REQUIRE, "client-chain.pem",
                      "client.key"));
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_peer_cert(p.s.t, &ci));
  ASSERT(strstr(ci->subject, "CN=casl test client") != NULL);
  ASSERT(strstr(ci->issuer, "CN=casl test intermediate") != NULL);
  ASSERT_EQ(casl_tls_verify_result(p.s.t), X509_V_OK);
  tpair_free(&p);
  return 0;
}

TEST_IMPL(tls_mtls_untrusted_client) {
  tpair p;
  ASSERT_OK(mtls_pair(&p, CASL_VERIFY_PEER, "client-untrusted.pem",
                      "client-untrusted.key"));
  ASSERT_EQ(p.s.handshakes, 0);
  ASSERT_EQ(p.s.error_code, CASL_EVERIFY);
  ASSERT_EQ(casl_tls_verify_result(p.s.t),
            X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  ASSERT_EQ(p.c.error_code, CASL_ETLS);
  tpair_free(&p);
  return 0;
}

TEST_IMPL(tls_mtls_optional) {
  tpair p;
  const casl_tls_cert_info *ci;
  /* CASL_VERIFY_PEER on a server: no certificate is fine... */
  ASSERT_OK(mtls_pair(&p, CASL_VERIFY_PEER, NULL, NULL));
  ASSERT(tpair_ok(&p));
  ASSERT_EQ(casl_tls_peer_cert(p.s.t, &ci), CASL_ESTATE);
  tpair_free(&p);
  /* ...and one that is sent is verified */
  ASSERT_OK(mtls_pair(&p, CASL_VERIFY_PEER, "client-chain.pem",
                      "client.key"));
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_peer_cert(p.s.t, &ci));
  ASSERT(strstr(ci->subject, "casl test client") != NULL);
  tpair_free(&p);
  return 0;
}
