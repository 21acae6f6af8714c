/*
 * test-tls-prod.c -- production TLS features of the engine: PKCS#12,
 * CRLs, public key pins, shared and rotated session-ticket keys, OCSP
 * stapling and its check, the application's own peer check, the peer
 * chain.
 */
#include <string.h>

#include "test-tls.h"

/* A handshake on a fresh pair; returns 0 when both ends handshook, else
 * the client's (or the server's) error code. */
static int pair_result(casl_tls_ctx *cc, casl_tls_ctx *sc, tpair *p) {
  if (tpair_init(p, cc, sc, "localhost", NULL) != 0)
    return -1;
  tpair_start(p);
  if (tpair_ok(p))
    return 0;
  return p->c.errors ? p->c.error_code : p->s.error_code;
}

/* Reads a certs-dir file; the caller frees it. */
static char *cert_bytes(const char *name, size_t *len) {
  return test_read_file(test_cert_path(name), len);
}

TEST_IMPL(tls_pkcs12) {
  casl_tls_ctx *sc, *cc = test_client_ctx("ca.pem");
  size_t len;
  char *p12 = cert_bytes("server.p12", &len);
  tpair p;
  ASSERT(cc != NULL && p12 != NULL);
  ASSERT_OK(casl_tls_ctx_new(&sc, 1));
  ASSERT_EQ(casl_tls_ctx_use_pkcs12_mem(sc, p12, len, "wrong"), CASL_ECONFIG);
  ASSERT(strstr(casl_tls_ctx_error(sc), "wrong password") != NULL);
  ASSERT_EQ(casl_tls_ctx_use_pkcs12_mem(sc, p12, len, NULL), CASL_ECONFIG);
  ASSERT(strstr(casl_tls_ctx_error(sc), "password") != NULL);
  ASSERT_EQ(casl_tls_ctx_use_pkcs12_mem(sc, "junk", 4, "secret"),
            CASL_ECONFIG);
  ASSERT_EQ(casl_tls_ctx_use_pkcs12_file(sc, test_cert_path("missing.p12"),
                                         "secret"),
            CASL_ECONFIG);
  ASSERT(strstr(casl_tls_ctx_error(sc), "missing.p12") != NULL);
  /* from the file: the chain (with the intermediate) verifies */
  ASSERT_OK(casl_tls_ctx_use_pkcs12_file(sc, test_cert_path("server.p12"),
                                         "secret"));
  ASSERT_OK(pair_result(cc, sc, &p));
  tpair_free(&p);
  casl_tls_ctx_unref(sc);
  /* from memory */
  ASSERT_OK(casl_tls_ctx_new(&sc, 1));
  ASSERT_OK(casl_tls_ctx_use_pkcs12_mem(sc, p12, len, "secret"));
  ASSERT_OK(pair_result(cc, sc, &p));
  tpair_free(&p);
  casl_tls_ctx_unref(sc);
  casl_tls_ctx_unref(cc);
  free(p12);
  return 0;
}

/* A client with the root and crls (a certs-dir file) against a server
 * presenting chain/key; returns pair_result, the text in why. */
static int crl_client(const char *crls, int mode, const char *chain,
                      const char *key, char *why, size_t n) {
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  casl_tls_ctx *sc = test_server_ctx(chain, key);
  tpair p;
  int rc;
  if (cc == NULL || sc == NULL)
    return -1;
  if (crls != NULL &&
      casl_tls_ctx_load_crl_file(cc, test_cert_path(crls)) != 0)
    return -2;
  if (mode != CASL_CRL_LEAF && casl_tls_ctx_set_crl_check(cc, mode) != 0)
    return -3;
  rc = pair_result(cc, sc, &p);
  snprintf(why, n, "%s", p.c.err);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return rc;
}

TEST_IMPL(tls_crl_revoked_server) {
  char why[1024];
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  ASSERT(cc != NULL);
  ASSERT_EQ(casl_tls_ctx_load_crl_file(cc, test_cert_path("ca.pem")),
            CASL_ECONFIG); /* a certificate is not a CRL */
  ASSERT(strstr(casl_tls_ctx_error(cc), "no CRL") != NULL);
  ASSERT_EQ(casl_tls_ctx_set_crl_check(cc, 7), CASL_EINVAL);
  casl_tls_ctx_unref(cc);
  ASSERT_OK(crl_client("int-crl.pem", CASL_CRL_LEAF, "server-chain.pem",
                       "server.key", why, sizeof(why)));
  ASSERT_EQ(crl_client("int-crl.pem", CASL_CRL_LEAF, "revoked-chain.pem",
                       "revoked.key", why, sizeof(why)),
            CASL_EVERIFY);
  ASSERT(strstr(why, "revoked") != NULL);
  /* without the CRL the revoked certificate passes */
  ASSERT_OK(crl_client(NULL, CASL_CRL_LEAF, "revoked-chain.pem", "revoked.key",
                       why, sizeof(why)));
  return 0;
}

TEST_IMPL(tls_crl_chain_revoked_intermediate) {
  char why[1024];
  /* the leaf's own CRL says nothing against it: :leaf passes */
  ASSERT_OK(crl_client("crl-all.pem", CASL_CRL_LEAF, "int2leaf-chain.pem",
                       "int2leaf.key", why, sizeof(why)));
  /* :chain sees the revoked intermediate */
  ASSERT_EQ(crl_client("crl-all.pem", CASL_CRL_CHAIN, "int2leaf-chain.pem",
                       "int2leaf.key", why, sizeof(why)),
            CASL_EVERIFY);
  ASSERT(strstr(why, "revoked") != NULL);
  /* a good chain with every CRL passes :chain */
  ASSERT_OK(crl_client("crl-all.pem", CASL_CRL_CHAIN, "server-chain.pem",
                       "server.key", why, sizeof(why)));
  return 0;
}

TEST_IMPL(tls_crl_revoked_client) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *good = test_client_ctx("ca.pem"), *bad = test_client_ctx("ca.pem");
  tpair p;
  ASSERT(sc != NULL && good != NULL && bad != NULL);
  ASSERT_OK(casl_tls_ctx_load_verify_locations(sc, test_cert_path("ca.pem"),
                                               NULL));
  ASSERT_OK(casl_tls_ctx_set_verify(sc, CASL_VERIFY_REQUIRE));
  ASSERT_OK(casl_tls_ctx_load_crl_file(sc, test_cert_path("int-crl.pem")));
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_file(
      good, test_cert_path("client-chain.pem")));
  ASSERT_OK(casl_tls_ctx_use_private_key_file(
      good, test_cert_path("client.key"), CASL_FILETYPE_PEM, NULL));
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_file(
      bad, test_cert_path("client-revoked-chain.pem")));
  ASSERT_OK(casl_tls_ctx_use_private_key_file(
      bad, test_cert_path("client-revoked.key"), CASL_FILETYPE_PEM, NULL));
  ASSERT_OK(casl_tls_ctx_set_versions(good, CASL_TLS1_2, CASL_TLS1_2));
  ASSERT_OK(casl_tls_ctx_set_versions(bad, CASL_TLS1_2, CASL_TLS1_2));
  ASSERT_OK(pair_result(good, sc, &p));
  tpair_free(&p);
  (void)pair_result(bad, sc, &p);
  ASSERT_EQ(p.s.errors, 1);
  ASSERT_EQ(p.s.error_code, CASL_EVERIFY);
  ASSERT(strstr(p.s.err, "revoked") != NULL);
  tpair_free(&p);
  casl_tls_ctx_unref(sc);
  casl_tls_ctx_unref(good);
  casl_tls_ctx_unref(bad);
  return 0;
}

static int pin_result(const char *const *pins, size_t n, char *why,
                      size_t wlen) {
  unsigned char digests[4 * 32];
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  size_t i;
  tpair p;
  int rc;
  if (cc == NULL || sc == NULL || n > 4)
    return -1;
  for (i = 0; i < n; i++)
    if (test_spki_sha256(pins[i], digests + 32 * i) != 0)
      return -2;
  if (casl_tls_ctx_set_pins(cc, digests, n) != 0)
    return -3;
  rc = pair_result(cc, sc, &p);
  snprintf(why, wlen, "%s", p.c.err);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return rc;
}

TEST_IMPL(tls_pins) {
  static const char *const leaf[] = {"server.pem"};
  static const char *const inter[] = {"other-ca.pem", "int.pem"};
  static const char *const wrong[] = {"other-ca.pem", "alpha.pem"};
  char why[1024];
  ASSERT_OK(pin_result(leaf, 1, why, sizeof(why)));
  ASSERT_OK(pin_result(inter, 2, why, sizeof(why)));
  ASSERT_EQ(pin_result(wrong, 2, why, sizeof(why)), CASL_EVERIFY);
  ASSERT(strstr(why, "pin") != NULL);
  return 0;
}

/* One connection with session_key; *reused gets whether it resumed. */
static int connect_once(casl_tls_ctx *cc, casl_tls_ctx *sc, const char *key,
                        int *reused) {
  tpair p;
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", key));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_write(p.s.t, "hi", 2)); /* TLS 1.3 tickets follow */
  tpair_run(&p);
  ASSERT(tend_got(&p.c, "hi"));
  *reused = casl_tls_session_reused(p.c.t);
  ASSERT_OK(casl_tls_shutdown(p.c.t));
  tpair_run(&p);
  tpair_free(&p);
  return 0;
}

static void fill_key(unsigned char *k, unsigned char seed) {
  int i;
  for (i = 0; i < CASL_TICKET_KEY_LEN; i++)
    k[i] = (unsigned char)(seed * 31 + i);
}

static int ticket_keys(int ver) {
  unsigned char a[CASL_TICKET_KEY_LEN], b[CASL_TICKET_KEY_LEN],
      ba[2 * CASL_TICKET_KEY_LEN];
  casl_tls_ctx *s1 = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *s2 = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *s3 = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  int reused = -1;
  ASSERT(s1 != NULL && s2 != NULL && s3 != NULL && cc != NULL);
  ASSERT_OK(casl_tls_ctx_set_versions(cc, ver, ver));
  fill_key(a, 1);
  fill_key(b, 2);
  memcpy(ba, b, sizeof(b));
  memcpy(ba + sizeof(b), a, sizeof(a));
  ASSERT_EQ(casl_tls_ctx_set_ticket_keys(cc, a, 1), CASL_EINVAL); /* client */
  ASSERT_OK(casl_tls_ctx_set_ticket_keys(s1, a, 1));
  ASSERT_OK(casl_tls_ctx_set_ticket_keys(s2, a, 1));
  /* s3 keeps its own keys */
  ASSERT_OK(connect_once(cc, s1, "svc", &reused));
  ASSERT_EQ(reused, 0);
  ASSERT_OK(connect_once(cc, s2, "svc", &reused)); /* s1's ticket */
  ASSERT_EQ(reused, 1);
  ASSERT_OK(connect_once(cc, s3, "svc", &reused)); /* other keys */
  ASSERT_EQ(reused, 0);
  /* s3 issued that ticket: s1 cannot open it */
  ASSERT_OK(connect_once(cc, s1, "svc", &reused));
  ASSERT_EQ(reused, 0);
  /* rotation: the old key still opens tickets while listed second */
  ASSERT_OK(casl_tls_ctx_set_ticket_keys(s1, ba, 2));
  ASSERT_OK(connect_once(cc, s1, "svc", &reused));
  ASSERT_EQ(reused, 1);
  /* ... and the ticket it got now is under b, which s2 lacks */
  ASSERT_OK(connect_once(cc, s2, "svc", &reused));
  ASSERT_EQ(reused, 0);
  ASSERT_OK(connect_once(cc, s1, "svc", &reused)); /* ticket from s2 (a) */
  ASSERT_EQ(reused, 1);
  ASSERT_OK(casl_tls_ctx_set_ticket_keys(s1, b, 1));
  ASSERT_OK(connect_once(cc, s2, "svc", &reused)); /* s1 renewed: under b */
  ASSERT_EQ(reused, 0);
  ASSERT_OK(connect_once(cc, s1, "svc", &reused)); /* s2's ticket: a, gone */
  ASSERT_EQ(reused, 0);
  /* a copy shares the keys, own ones included */
  ASSERT_OK(casl_tls_ctx_copy_ticket_keys(s2, s3));
  ASSERT_OK(connect_once(cc, s3, "svc", &reused));
  ASSERT_OK(connect_once(cc, s2, "svc", &reused));
  ASSERT_EQ(reused, 1);
  casl_tls_ctx_unref(s1);
  casl_tls_ctx_unref(s2);
  casl_tls_ctx_unref(s3);
  casl_tls_ctx_unref(cc);
  return 0;
}

TEST_IMPL(tls_ticket_keys_tls12) { return ticket_keys(CASL_TLS1_2); }
TEST_IMPL(tls_ticket_keys_tls13) { return ticket_keys(CASL_TLS1_3); }

/* A client asking for OCSP (mode) against a server stapling resp (a
 * certs-dir file, or NULL), presenting chain/key. */
static int ocsp_result(int mode, const char *resp, const char *chain,
                       const char *key, int ver, char *why, size_t n,
                       size_t *got) {
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  casl_tls_ctx *sc = test_server_ctx(chain, key);
  size_t len = 0;
  char *der = resp != NULL ? cert_bytes(resp, &len) : NULL;
  tpair p;
  int rc;
  if (cc == NULL || sc == NULL || (resp != NULL && der == NULL))
    return -1;
  if (casl_tls_ctx_set_ocsp(cc, mode) != 0 ||
      casl_tls_ctx_set_versions(cc, ver, ver) != 0 ||
      (der != NULL && casl_tls_ctx_set_ocsp_response(
                          sc, (const unsigned char *)der, len) != 0))
    return -2;
  rc = pair_result(cc, sc, &p);
  snprintf(why, n, "%s", p.c.err);
  *got = 0;
  if (p.c.t != NULL)
    (void)casl_tls_ocsp_response(p.c.t, got);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  free(der);
  return rc;
}

static int ocsp_modes(int ver) {
  char why[1024];
  size_t got;
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  ASSERT(cc != NULL);
  ASSERT_EQ(casl_tls_ctx_set_ocsp(cc, 9), CASL_EINVAL);
  ASSERT_EQ(casl_tls_ctx_set_ocsp_response(cc, (const unsigned char *)"x", 1),
            CASL_EINVAL); /* a client does not staple */
  casl_tls_ctx_unref(cc);
  ASSERT_OK(ocsp_result(CASL_OCSP_ASK, "ocsp-good.der", "server-chain.pem",
                        "server.key", ver, why, sizeof(why), &got));
  ASSERT(got > 0);
  ASSERT_OK(ocsp_result(CASL_OCSP_REQUIRE, "ocsp-good.der",
                        "server-chain.pem", "server.key", ver, why,
                        sizeof(why), &got));
  ASSERT_EQ(ocsp_result(CASL_OCSP_ASK, "ocsp-revoked.der",
                        "revoked-chain.pem", "revoked.key", ver, why,
                        sizeof(why), &got),
            CASL_EVERIFY);
  ASSERT(strstr(why, "revoked") != NULL);
  /* no staple: fine when asking, a failure when required */
  ASSERT_OK(ocsp_result(CASL_OCSP_ASK, NULL, "server-chain.pem", "server.key",
                        ver, why, sizeof(why), &got));
  ASSERT_EQ(got, 0);
  ASSERT_EQ(ocsp_result(CASL_OCSP_REQUIRE, NULL, "server-chain.pem",
                        "server.key", ver, why, sizeof(why), &got),
            CASL_EVERIFY);
  ASSERT(strstr(why, "stapled no OCSP") != NULL);
  /* a response about another certificate, one signed by a stranger */
  ASSERT_EQ(ocsp_result(CASL_OCSP_ASK, "ocsp-other.der", "server-chain.pem",
                        "server.key", ver, why, sizeof(why), &got),
            CASL_EVERIFY);
  ASSERT_EQ(ocsp_result(CASL_OCSP_ASK, "ocsp-badsig.der", "server-chain.pem",
                        "server.key", ver, why, sizeof(why), &got),
            CASL_EVERIFY);
  ASSERT(strstr(why, "signed") != NULL);
  /* a client that does not ask gets nothing and checks nothing */
  ASSERT_OK(ocsp_result(CASL_OCSP_OFF, "ocsp-revoked.der", "revoked-chain.pem",
                        "revoked.key", ver, why, sizeof(why), &got));
  ASSERT_EQ(got, 0);
  return 0;
}

TEST_IMPL(tls_ocsp_tls12) { return ocsp_modes(CASL_TLS1_2); }
TEST_IMPL(tls_ocsp_tls13) { return ocsp_modes(CASL_TLS1_3); }

TEST_IMPL(tls_ocsp_per_connection) {
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  casl_tls_ctx *sc = test_server_ctx("revoked-chain.pem", "revoked.key");
  size_t len, got = 0;
  char *good = cert_bytes("ocsp-good.der", &len);
  tpair p;
  ASSERT(cc != NULL && sc != NULL && good != NULL);
  ASSERT_OK(casl_tls_ctx_set_ocsp(cc, CASL_OCSP_REQUIRE));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  ASSERT_EQ(casl_tls_set_ocsp_response(p.c.t, (const unsigned char *)good,
                                       len),
            CASL_EINVAL); /* not on a client */
  /* the server's context staples nothing; this connection does (a response
   * about another certificate, so the client refuses it) */
  ASSERT_OK(casl_tls_set_ocsp_response(p.s.t, (const unsigned char *)good,
                                       len));
  tpair_start(&p);
  ASSERT_EQ(p.c.error_code, CASL_EVERIFY);
  ASSERT(casl_tls_ocsp_response(p.c.t, &got) != NULL);
  ASSERT_EQ(got, len);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  free(good);
  return 0;
}

TEST_IMPL(tls_peer_check_holds_data) {
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  const casl_tls_cert_info *chain;
  size_t n;
  tpair p;
  ASSERT(cc != NULL && sc != NULL);
  ASSERT_OK(casl_tls_ctx_set_peer_check(cc, 1));
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  ASSERT_EQ(casl_tls_peer_checked(p.c.t, NULL), CASL_ESTATE); /* too early */
  ASSERT_OK(casl_tls_write(p.c.t, "secret", 6));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_write(p.c.t, " data", 5));
  tpair_run(&p);
  ASSERT_EQ(p.s.rx_len, 0); /* held */
  ASSERT_EQ(casl_tls_pending_plaintext(p.c.t), 11);
  /* the verified chain, leaf first, as the check sees it */
  ASSERT_OK(casl_tls_peer_chain(p.c.t, &chain, &n));
  ASSERT_EQ(n, 3);
  ASSERT(strstr(chain[0].subject, "CN=localhost") != NULL);
  ASSERT(strstr(chain[1].subject, "intermediate") != NULL);
  ASSERT(strstr(chain[2].subject, "ca root") != NULL);
  ASSERT_OK(casl_tls_peer_checked(p.c.t, NULL));
  tpair_run(&p);
  ASSERT(tend_got(&p.s, "secret data"));
  ASSERT_EQ(casl_tls_peer_checked(p.c.t, NULL), CASL_ESTATE); /* once */
  tpair_free(&p);
  /* rejected: nothing goes out, the filter fails with the reason */
  ASSERT_OK(tpair_init(&p, cc, sc, "localhost", NULL));
  ASSERT_OK(casl_tls_write(p.c.t, "secret", 6));
  tpair_start(&p);
  ASSERT(tpair_ok(&p));
  ASSERT_OK(casl_tls_peer_checked(p.c.t, "not the key we expected"));
  tpair_run(&p);
  ASSERT_EQ(p.s.rx_len, 0);
  ASSERT_EQ(p.c.errors, 1);
  ASSERT_EQ(p.c.error_code, CASL_EVERIFY);
  ASSERT(strstr(p.c.err, "not the key we expected") != NULL);
  tpair_free(&p);
  casl_tls_ctx_unref(cc);
  casl_tls_ctx_unref(sc);
  return 0;
}

TEST_IMPL(tls_peer_chain_of_a_client) {
  casl_tls_ctx *sc = test_server_ctx("server-chain.pem", "server.key");
  casl_tls_ctx *cc = test_client_ctx("ca.pem");
  const casl_tls_cert_info *chain;
  size_t n;
  tpair p;
  ASSERT(sc != NULL && cc != NULL);
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_file(
      cc, test_cert_path("client-chain.pem")));
  ASSERT_OK(casl_tls_ctx_use_private_key_file(
      cc, test_cert_path("client.key"), CASL_FILETYPE_PEM, NULL));
  ASSERT_OK(casl_tls_ctx_load_verify_locations(sc, test_cert_path("ca.pem"),
                                               NULL));
  ASSERT_OK(casl_tls_ctx_set_verify(sc, CASL_VERIFY_PEER));
  /* the verified chain, leaf (the client) first */
  ASSERT_OK(pair_result(cc, sc, &p));
  ASSERT_OK(casl_tls_peer_chain(p.s.t, &chain, &n));
  ASSERT_EQ(n, 3);
  ASSERT(strstr(chain[0].subject, "casl test client") != NULL);
  ASSERT(strstr(chain[1].subject, "intermediate") != NULL);
  tpair_free(&p);
  /* a server that asks for nothing sees no chain */
  ASSERT_OK(casl_tls_ctx_set_verify(sc, CASL_VERIFY_NONE));
  ASSERT_OK(pair_result(cc, sc, &p));
  ASSERT_EQ(casl_tls_peer_chain(p.s.t, &chain, &n), CASL_ESTATE);
  tpair_free(&p);
  casl_tls_ctx_unref(sc);
  casl_tls_ctx_unref(cc);
  return 0;
}
