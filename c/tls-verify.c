/*
 * tls-verify.c -- verification: trust anchors (a file and/or a hashed
 * directory, PEM in memory, the system store), the peer verification
 * mode, certificate revocation lists, public key pins, and OCSP (stapling
 * on servers, checking the staple on clients).  The OCSP callback runs
 * inside OpenSSL and runs no application code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "tls-int.h"

int casl_tls_ctx_load_verify_locations(casl_tls_ctx *ctx, const char *file,
                                       const char *dir) {
  if (ctx == NULL || (file == NULL && dir == NULL))
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_load_verify_locations(ctx->ssl_ctx, file, dir))
    return casl__tls_ctx_fail(ctx, CASL_ECONFIG,
                              "could not load the trust anchors", 1);
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_load_verify_mem(casl_tls_ctx *ctx, const char *pem,
                                 size_t len) {
  BIO *bio;
  X509 *x;
  X509_STORE *store;
  int n = 0;
  if (ctx == NULL || pem == NULL || len > INT32_MAX)
    return CASL_EINVAL;
  ERR_clear_error();
  store = SSL_CTX_get_cert_store(ctx->ssl_ctx);
  bio = BIO_new_mem_buf(pem, (int)len);
  if (store == NULL || bio == NULL) {
    BIO_free(bio);
    return casl__tls_ctx_fail(ctx, CASL_ENOMEM, "out of memory", 0);
  }
  while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
    if (!X509_STORE_add_cert(store, x)) {
      X509_free(x);
      BIO_free(bio);
      return casl__tls_ctx_fail(ctx, CASL_ECONFIG, "trust anchor rejected", 1);
    }
    X509_free(x);
    n++;
  }
  BIO_free(bio);
  if (n == 0 || (ERR_peek_last_error() != 0 &&
                 ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE))
    return casl__tls_ctx_fail(ctx, CASL_ECONFIG,
                              n == 0 ? "no certificate in the PEM data"
                                     : "bad certificate in the PEM data",
                              1);
  ERR_clear_error();
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_load_system_trust(casl_tls_ctx *ctx) {
  if (ctx == NULL)
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_set_default_verify_paths(ctx->ssl_ctx))
    return casl__tls_ctx_fail(ctx, CASL_ECONFIG,
                              "could not load the system trust store", 1);
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_verify(casl_tls_ctx *ctx, int mode) {
  int m;
  if (ctx == NULL)
    return CASL_EINVAL;
  switch (mode) {
  case CASL_VERIFY_NONE:
    m = SSL_VERIFY_NONE;
    break;
  case CASL_VERIFY_PEER:
    m = SSL_VERIFY_PEER;
    break;
  case CASL_VERIFY_REQUIRE:
    m = ctx->server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                    : SSL_VERIFY_PEER;
    break;
  default:
    return CASL_EINVAL;
  }
  SSL_CTX_set_verify(ctx->ssl_ctx, m,
                     SSL_CTX_get_verify_callback(ctx->ssl_ctx));
  ctx->verify = mode;
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_get_verify(const casl_tls_ctx *ctx) {
  return ctx != NULL ? ctx->verify : CASL_VERIFY_NONE;
}

/* ------------------------------------------------------------------------ */
/* Certificate revocation lists                                              */

static int apply_crl_mode(casl_tls_ctx *ctx, int mode) {
  X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx->ssl_ctx);
  if (vp == NULL || !X509_VERIFY_PARAM_clear_flags(
                        vp, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
    return casl__tls_ctx_fail(ctx, CASL_ENOMEM, "out of memory", 0);
  if (mode != CASL_CRL_NONE &&
      !X509_VERIFY_PARAM_set_flags(vp, mode == CASL_CRL_CHAIN
                                           ? X509_V_FLAG_CRL_CHECK |
                                                 X509_V_FLAG_CRL_CHECK_ALL
                                           : X509_V_FLAG_CRL_CHECK))
    return casl__tls_ctx_fail(ctx, CASL_ENOMEM, "out of memory", 0);
  ctx->crl_mode = mode;
  return 0;
}

/* Adds every CRL in bio to ctx's store; what names the source in errors. */
static int load_crls(casl_tls_ctx *ctx, BIO *bio, const char *what) {
  X509_STORE *store = SSL_CTX_get_cert_store(ctx->ssl_ctx);
  X509_CRL *crl;
  char text[600];
  int n = 0, rc;
  if (store == NULL)
    return casl__tls_ctx_fail(ctx, CASL_ENOMEM, "out of memory", 0);
  while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
    rc = X509_STORE_add_crl(store, crl);
    X509_CRL_free(crl);
    if (!rc) {
      snprintf(text, sizeof(text), "CRL rejected in %.500s", what);
      return casl__tls_ctx_fail(ctx, CASL_ECONFIG, text, 1);
    }
    n++;
  }
  if (n == 0 ||
      (ERR_peek_last_error() != 0 &&
       ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE)) {
    snprintf(text, sizeof(text),
             n == 0 ? "no CRL (PEM \"X509 CRL\") in %.500s"
                    : "bad CRL in %.500s",
             what);
    return casl__tls_ctx_fail(ctx, CASL_ECONFIG, text, 1);
  }
  ERR_clear_error();
  if (ctx->crl_mode == CASL_CRL_NONE &&
      (rc = apply_crl_mode(ctx, CASL_CRL_LEAF)) != 0)
    return rc;
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_load_crl_file(casl_tls_ctx *ctx, const char *path) {
  BIO *bio;
  int rc;
  char text[600];
  if (ctx == NULL || path == NULL)
    return CASL_EINVAL;
  ERR_clear_error();
  bio = BIO_new_file(path, "r");
  if (bio == NULL) {
    snprintf(text, sizeof(text), "could not read the CRL file %.500s", path);
    return casl__tls_ctx_fail(ctx, CASL_ECONFIG, text, 1);
  }
  rc = load_crls(ctx, bio, path);
  BIO_free(bio);
  return rc;
}

int casl_tls_ctx_load_crl_mem(casl_tls_ctx *ctx, const char *pem, size_t len) {
  BIO *bio;
  int rc;
  if (ctx == NULL || pem == NULL || len > INT32_MAX)
    return CASL_EINVAL;
  ERR_clear_error();
  bio = BIO_new_mem_buf(pem, (int)len);
  if (bio == NULL)
    return casl__tls_ctx_fail(ctx, CASL_ENOMEM, "out of memory", 0);
  rc = load_crls(ctx, bio, "the CRL data");
  BIO_free(bio);
  return rc;
}

int casl_tls_ctx_set_crl_check(casl_tls_ctx *ctx, int mode) {
  int rc;
  if (ctx == NULL || (mode != CASL_CRL_NONE && mode != CASL_CRL_LEAF &&
                      mode != CASL_CRL_CHAIN))
    return CASL_EINVAL;
  ERR_clear_error();
  if ((rc = apply_crl_mode(ctx, mode)) != 0)
    return rc;
  casl__tls_ctx_ok(ctx);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Public key pins                                                           */

int casl_tls_ctx_set_pins(casl_tls_ctx *ctx, const unsigned char *digests,
                          size_t n) {
  unsigned char *copy = NULL;
  if (ctx == NULL || (n > 0 && digests == NULL) || n > 4096)
    return CASL_EINVAL;
  if (n > 0) {
    copy = casl__malloc(n * SHA256_DIGEST_LENGTH);
    if (copy == NULL)
      return CASL_ENOMEM;
    memcpy(copy, digests, n * SHA256_DIGEST_LENGTH);
  }
  casl__free(ctx->pins);
  ctx->pins = copy;
  ctx->npins = n;
  casl__tls_ctx_ok(ctx);
  return 0;
}

/* Whether x's SubjectPublicKeyInfo has one of ctx's pins. */
static int pinned(const casl_tls_ctx *ctx, X509 *x) {
  unsigned char *der = NULL, md[SHA256_DIGEST_LENGTH];
  size_t i;
  int len = i2d_PUBKEY(X509_get0_pubkey(x), &der), hit = 0;
  if (len <= 0)
    return 0;
  if (SHA256(der, (size_t)len, md) != NULL)
    for (i = 0; i < ctx->npins && !hit; i++)
      hit = memcmp(md, ctx->pins + i * SHA256_DIGEST_LENGTH, sizeof(md)) == 0;
  OPENSSL_free(der);
  return hit;
}

int casl__tls_check_pins(casl_tls *t) {
  const casl_tls_ctx *ctx = t->cur_ctx->npins > 0 ? t->cur_ctx : t->ctx;
  STACK_OF(X509) * chain;
  X509 *leaf;
  int i, n;
  if (ctx->npins == 0)
    return 0;
  chain = SSL_get0_verified_chain(t->ssl);
  if (chain == NULL)
    chain = SSL_get_peer_cert_chain(t->ssl);
  n = chain != NULL ? sk_X509_num(chain) : 0;
  for (i = 0; i < n; i++)
    if (pinned(ctx, sk_X509_value(chain, i)))
      return 0;
  /* A server's view of a client's chain leaves the leaf out. */
  leaf = SSL_get0_peer_certificate(t->ssl);
  if (leaf != NULL && pinned(ctx, leaf))
    return 0;
  ERR_clear_error();
  casl__strlcpy(casl__tls_err(t),
                leaf == NULL
                    ? "certificate verify failed: the peer sent no "
                      "certificate to check against the pins"
                    : "certificate verify failed: no certificate of the "
                      "peer's chain has a pinned public key (:pin-sha256)",
                ERR_LEN);
  return CASL_EVERIFY;
}

int casl_tls_ctx_set_peer_check(casl_tls_ctx *ctx, int on) {
  if (ctx == NULL)
    return CASL_EINVAL;
  ctx->peer_check = on != 0;
  casl__tls_ctx_ok(ctx);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* OCSP                                                                      */

int casl_tls_ctx_set_ocsp_response(casl_tls_ctx *ctx, const unsigned char *der,
                                   size_t len) {
  unsigned char *copy = NULL;
  if (ctx == NULL || !ctx->server || (len > 0 && der == NULL) ||
      len > INT32_MAX)
    return CASL_EINVAL;
  if (len > 0) {
    copy = casl__malloc(len);
    if (copy == NULL)
      return CASL_ENOMEM;
    memcpy(copy, der, len);
  }
  casl__free(ctx->ocsp_der);
  ctx->ocsp_der = copy;
  ctx->ocsp_len = len;
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_ocsp(casl_tls_ctx *ctx, int mode) {
  if (ctx == NULL || ctx->server ||
      (mode != CASL_OCSP_OFF && mode != CASL_OCSP_ASK &&
       mode != CASL_OCSP_REQUIRE))
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_set_tlsext_status_type(
          ctx->ssl_ctx, mode == CASL_OCSP_OFF ? -1 : TLSEXT_STATUSTYPE_ocsp))
    return casl__tls_ctx_fail(ctx, CASL_ECONFIG, "OCSP request rejected", 1);
  ctx->ocsp_mode = mode;
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_set_ocsp_response(casl_tls *t, const unsigned char *der,
                               size_t len) {
  unsigned char *copy = NULL;
  if (t == NULL || !t->server || (len > 0 && der == NULL) || len > INT32_MAX)
    return CASL_EINVAL;
  if (len > 0) {
    copy = casl__malloc(len);
    if (copy == NULL)
      return CASL_ENOMEM;
    memcpy(copy, der, len);
  }
  casl__free(t->ocsp_der);
  t->ocsp_der = copy;
  t->ocsp_len = len;
  t->ocsp_set = 1;
  return 0;
}

/* Server: staples the connection's response, or its context's. */
static int staple(casl_tls *t, SSL *ssl) {
  const unsigned char *der = NULL;
  unsigned char *copy;
  size_t len = 0;
  /* The connection's, else its context's (an SNI child's own: a
   * response is about one certificate). */
  if (t->ocsp_set) {
    der = t->ocsp_der;
    len = t->ocsp_len;
  } else {
    der = t->cur_ctx->ocsp_der;
    len = t->cur_ctx->ocsp_len;
  }
  if (len == 0)
    return SSL_TLSEXT_ERR_NOACK;
  copy = OPENSSL_memdup(der, len);
  if (copy == NULL)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  if (!SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)len)) {
    OPENSSL_free(copy);
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

static int ocsp_fail(casl_tls *t, const char *why) {
  t->ocsp_failed = 1;
  casl__strlcpy(casl__tls_err(t), "certificate verify failed: ", ERR_LEN);
  casl__tls_str_append(casl__tls_err(t), ERR_LEN, why);
  return 0;
}

/* The issuer of x in chain (or NULL). */
static X509 *issuer_in(STACK_OF(X509) * chain, X509 *x) {
  int i;
  for (i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
    X509 *c = sk_X509_value(chain, i);
    if (c != x && X509_check_issued(c, x) == X509_V_OK)
      return c;
  }
  return NULL;
}

/* Client: checks the staple (1: go on, 0: fail the handshake). */
static int check_staple(casl_tls *t, SSL *ssl) {
  const unsigned char *p = NULL;
  long len = SSL_get_tlsext_status_ocsp_resp(ssl, &p);
  int mode = t->ctx->ocsp_mode, ok = 0, status, reason;
  OCSP_RESPONSE *resp = NULL;
  OCSP_BASICRESP *bs = NULL;
  OCSP_CERTID *id = NULL;
  ASN1_GENERALIZEDTIME *rev, *thisupd, *nextupd;
  STACK_OF(X509) * chain;
  X509 *leaf, *issuer;
  char why[ERR_LEN];
  if (len <= 0 || p == NULL)
    return mode == CASL_OCSP_REQUIRE
               ? ocsp_fail(t, "the server stapled no OCSP response (:ocsp "
                              ":require needs one)")
               : 1;
  casl__free(t->ocsp_der);
  t->ocsp_der = casl__malloc((size_t)len);
  if (t->ocsp_der == NULL)
    return ocsp_fail(t, "out of memory");
  memcpy(t->ocsp_der, p, (size_t)len);
  t->ocsp_len = (size_t)len;
  resp = d2i_OCSP_RESPONSE(NULL, &p, len);
  if (resp == NULL) {
    ocsp_fail(t, "the stapled OCSP response is malformed");
    goto done;
  }
  status = OCSP_response_status(resp);
  if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    snprintf(why, sizeof(why), "the stapled OCSP response says \"%s\"",
             OCSP_response_status_str(status));
    ocsp_fail(t, why);
    goto done;
  }
  bs = OCSP_response_get1_basic(resp);
  leaf = SSL_get0_peer_certificate(ssl);
  chain = SSL_get0_verified_chain(ssl);
  if (chain == NULL)
    chain = SSL_get_peer_cert_chain(ssl);
  issuer = leaf != NULL ? issuer_in(chain, leaf) : NULL;
  if (bs == NULL || leaf == NULL || issuer == NULL) {
    ocsp_fail(t, "the stapled OCSP response cannot be checked (no issuer "
                 "certificate)");
    goto done;
  }
  if (OCSP_basic_verify(bs, SSL_get_peer_cert_chain(ssl),
                        SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)), 0) <= 0) {
    char q[ERR_LEN] = "";
    (void)casl__tls_err_queue(q, sizeof(q), 0);
    snprintf(why, sizeof(why),
             "the stapled OCSP response is not signed by the certificate's "
             "issuer or its responder (%.700s)",
             q);
    ocsp_fail(t, why);
    goto done;
  }
  id = OCSP_cert_to_id(NULL, leaf, issuer);
  if (id == NULL || !OCSP_resp_find_status(bs, id, &status, &reason, &rev,
                                           &thisupd, &nextupd)) {
    ocsp_fail(t, "the stapled OCSP response is not about the server's "
                 "certificate");
    goto done;
  }
  if (!OCSP_check_validity(thisupd, nextupd, 300, -1)) {
    ocsp_fail(t, "the stapled OCSP response is out of date");
    goto done;
  }
  if (status == V_OCSP_CERTSTATUS_REVOKED) {
    snprintf(why, sizeof(why),
             "certificate revoked (stapled OCSP response%s%s)",
             reason >= 0 ? "; reason: " : "",
             reason >= 0 ? OCSP_crl_reason_str(reason) : "");
    ocsp_fail(t, why);
    goto done;
  }
  if (status != V_OCSP_CERTSTATUS_GOOD && mode == CASL_OCSP_REQUIRE) {
    ocsp_fail(t, "the stapled OCSP response says the certificate's status "
                 "is unknown (:ocsp :require needs \"good\")");
    goto done;
  }
  ok = 1;
done:
  ERR_clear_error();
  OCSP_CERTID_free(id);
  OCSP_BASICRESP_free(bs);
  OCSP_RESPONSE_free(resp);
  return ok;
}

static int ocsp_cb(SSL *ssl, void *arg) {
  casl_tls *t = casl__tls_of(ssl);
  (void)arg;
  if (t == NULL)
    return SSL_is_server(ssl) ? SSL_TLSEXT_ERR_NOACK : 1;
  return t->server ? staple(t, ssl) : check_staple(t, ssl);
}

void casl__tls_ocsp_init(casl_tls_ctx *ctx) {
  SSL_CTX_set_tlsext_status_cb(ctx->ssl_ctx, ocsp_cb);
}

void casl__tls_verify_free(casl_tls_ctx *ctx) {
  casl__free(ctx->pins);
  ctx->pins = NULL;
  casl__free(ctx->ocsp_der);
  ctx->ocsp_der = NULL;
}
