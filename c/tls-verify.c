/*
 * tls-verify.c -- verification: trust anchors (a file and/or a hashed
 * directory, PEM in memory, the system store) and the peer verification
 * mode.
 */
#include <openssl/pem.h>
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
