/*
 * tls-keypair.c -- certificates and private keys: chains from files or
 * memory, keys in PEM or DER (optionally encrypted), and the check that a
 * key belongs to its certificate.  Key material read from files is wiped
 * before it is freed, and never appears in error text.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/decoder.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "tls-int.h"

static int mismatch(casl_tls_ctx *ctx) {
  ERR_clear_error();
  casl__strlcpy(ctx->err, "the private key does not match the certificate",
                sizeof(ctx->err));
  return CASL_ECONFIG;
}

/* After a certificate was loaded: if the last key loaded is of the same
 * type it must match (OpenSSL would silently drop it).  A key of another
 * type is left alone, so a context can hold an RSA and an ECDSA pair. */
static int check_after_cert(casl_tls_ctx *ctx) {
  X509 *x = SSL_CTX_get0_certificate(ctx->ssl_ctx);
  EVP_PKEY *pub = x != NULL ? X509_get0_pubkey(x) : NULL;
  ctx->cert_type = pub != NULL ? EVP_PKEY_get_base_id(pub) : 0;
  if (ctx->key_type != 0 && ctx->key_type == ctx->cert_type &&
      !SSL_CTX_check_private_key(ctx->ssl_ctx))
    return mismatch(ctx);
  return 0;
}

/* After a key was loaded: it must belong to the last certificate. */
static int check_after_key(casl_tls_ctx *ctx) {
  if (ctx->cert_type == 0)
    return 0;
  if (ctx->cert_type != ctx->key_type ||
      !SSL_CTX_check_private_key(ctx->ssl_ctx))
    return mismatch(ctx);
  return 0;
}

int casl_tls_ctx_use_certificate_chain_file(casl_tls_ctx *ctx,
                                            const char *path) {
  char what[600];
  int rc;
  if (ctx == NULL || path == NULL)
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_use_certificate_chain_file(ctx->ssl_ctx, path)) {
    snprintf(what, sizeof(what), "could not load the certificate chain %.500s",
             path);
    return casl__tls_ctx_fail(ctx, CASL_ECONFIG, what, 1);
  }
  if ((rc = check_after_cert(ctx)) != 0)
    return rc;
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_use_certificate_chain_mem(casl_tls_ctx *ctx, const char *pem,
                                           size_t len) {
  BIO *bio = NULL;
  X509 *x = NULL;
  int rc;
  if (ctx == NULL || pem == NULL || len > INT32_MAX)
    return CASL_EINVAL;
  ERR_clear_error();
  bio = BIO_new_mem_buf(pem, (int)len);
  if (bio == NULL)
    return casl__tls_ctx_fail(ctx, CASL_ENOMEM, "out of memory", 0);
  x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
  if (x == NULL) {
    rc = casl__tls_ctx_fail(ctx, CASL_ECONFIG, "no certificate in the PEM data",
                            1);
    goto done;
  }
  if (!SSL_CTX_use_certificate(ctx->ssl_ctx, x) ||
      !SSL_CTX_clear_chain_certs(ctx->ssl_ctx)) {
    rc = casl__tls_ctx_fail(ctx, CASL_ECONFIG, "certificate rejected", 1);
    goto done;
  }
  X509_free(x);
  for (;;) {
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (x == NULL)
      break;
    if (!SSL_CTX_add0_chain_cert(ctx->ssl_ctx, x)) {
      rc = casl__tls_ctx_fail(ctx, CASL_ECONFIG, "chain certificate rejected",
                              1);
      goto done;
    }
    x = NULL; /* owned by the context now */
  }
  /* The loop ends on "no start line" at the end of the data. */
  if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE &&
      ERR_peek_last_error() != 0) {
    rc = casl__tls_ctx_fail(ctx, CASL_ECONFIG, "bad chain certificate", 1);
    goto done;
  }
  ERR_clear_error();
  if ((rc = check_after_cert(ctx)) == 0)
    casl__tls_ctx_ok(ctx);
done:
  X509_free(x);
  BIO_free(bio);
  return rc;
}

static int key_password_cb(char *buf, int size, int rwflag, void *u) {
  const char *pw = u;
  size_t n;
  (void)rwflag;
  /* No password: fail instead of prompting on the terminal. */
  if (pw == NULL || size <= 0)
    return -1;
  n = strlen(pw);
  if (n > (size_t)size)
    return -1;
  memcpy(buf, pw, n);
  return (int)n;
}

static EVP_PKEY *decode_key(const char *data, size_t len, int type,
                            const char *password) {
  EVP_PKEY *pkey = NULL;
  if (type == CASL_FILETYPE_PEM) {
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (bio == NULL)
      return NULL;
    pkey =
        PEM_read_bio_PrivateKey(bio, NULL, key_password_cb, (void *)password);
    BIO_free(bio);
  } else {
    OSSL_DECODER_CTX *d;
    const unsigned char *p = (const unsigned char *)data;
    size_t left = len;
    d = OSSL_DECODER_CTX_new_for_pkey(&pkey, "DER", NULL, NULL,
                                      EVP_PKEY_KEYPAIR, NULL, NULL);
    if (d == NULL)
      return NULL;
    if (!OSSL_DECODER_CTX_set_pem_password_cb(d, key_password_cb,
                                              (void *)password) ||
        !OSSL_DECODER_from_data(d, &p, &left)) {
      EVP_PKEY_free(pkey);
      pkey = NULL;
    }
    OSSL_DECODER_CTX_free(d);
  }
  return pkey;
}

int casl_tls_ctx_use_private_key_mem(casl_tls_ctx *ctx, const char *data,
                                     size_t len, int type,
                                     const char *password) {
  EVP_PKEY *pkey;
  int rc;
  if (ctx == NULL || data == NULL || len > INT32_MAX ||
      (type != CASL_FILETYPE_PEM && type != CASL_FILETYPE_ASN1))
    return CASL_EINVAL;
  ERR_clear_error();
  pkey = decode_key(data, len, type, password);
  if (pkey == NULL)
    return casl__tls_ctx_fail(
        ctx, CASL_ECONFIG,
        password != NULL ? "could not load the private key (wrong password?)"
                         : "could not load the private key (encrypted?)",
        0);
  if (!SSL_CTX_use_PrivateKey(ctx->ssl_ctx, pkey)) {
    EVP_PKEY_free(pkey);
    return mismatch(ctx);
  }
  ctx->key_type = EVP_PKEY_get_base_id(pkey);
  EVP_PKEY_free(pkey);
  if ((rc = check_after_key(ctx)) != 0)
    return rc;
  casl__tls_ctx_ok(ctx);
  return 0;
}

/* Reads a whole file; the caller cleanses and frees it. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rbe");
  char *data = NULL, *p;
  size_t n = 0, cap = 0, got;
  if (f == NULL)
    return NULL;
  for (;;) {
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 8192;
      if (ncap > (size_t)64 << 20)
        goto fail;
      p = casl__malloc(ncap);
      if (p == NULL)
        goto fail;
      if (data != NULL) {
        memcpy(p, data, n);
        OPENSSL_cleanse(data, cap);
        casl__free(data);
      }
      data = p;
      cap = ncap;
    }
    got = fread(data + n, 1, cap - n, f);
    n += got;
    if (got == 0) {
      if (ferror(f))
        goto fail;
      break;
    }
  }
  fclose(f);
  *len = n;
  return data;
fail:
  if (data != NULL) {
    OPENSSL_cleanse(data, cap);
    casl__free(data);
  }
  fclose(f);
  return NULL;
}

int casl_tls_ctx_use_private_key_file(casl_tls_ctx *ctx, const char *path,
                                      int type, const char *password) {
  char *data;
  size_t len = 0;
  int rc;
  char what[ERR_LEN + 600];
  if (ctx == NULL || path == NULL ||
      (type != CASL_FILETYPE_PEM && type != CASL_FILETYPE_ASN1))
    return CASL_EINVAL;
  data = read_file(path, &len);
  if (data == NULL) {
    snprintf(what, sizeof(what), "could not read the private key %.500s: %s",
             path, strerror(errno));
    casl__strlcpy(ctx->err, what, sizeof(ctx->err));
    return CASL_ECONFIG;
  }
  rc = casl_tls_ctx_use_private_key_mem(ctx, data, len, type, password);
  OPENSSL_cleanse(data, len);
  casl__free(data);
  if (rc != 0 && strncmp(ctx->err, "could not load", 14) == 0) {
    snprintf(what, sizeof(what), "%.500s: %s", path, ctx->err);
    casl__strlcpy(ctx->err, what, sizeof(ctx->err));
  }
  return rc;
}

int casl_tls_ctx_check_private_key(casl_tls_ctx *ctx) {
  if (ctx == NULL)
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_check_private_key(ctx->ssl_ctx))
    return casl__tls_ctx_fail(
        ctx, CASL_ECONFIG, "the private key does not match the certificate", 0);
  casl__tls_ctx_ok(ctx);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* PKCS#12                                                                   */

int casl_tls_ctx_use_pkcs12_mem(casl_tls_ctx *ctx, const char *data,
                                size_t len, const char *password) {
  const unsigned char *p = (const unsigned char *)data;
  PKCS12 *p12 = NULL;
  EVP_PKEY *pkey = NULL;
  X509 *cert = NULL;
  STACK_OF(X509) *ca = NULL;
  int rc = 0, i;
  if (ctx == NULL || data == NULL || len > INT32_MAX)
    return CASL_EINVAL;
  ERR_clear_error();
  p12 = d2i_PKCS12(NULL, &p, (long)len);
  if (p12 == NULL) {
    rc = casl__tls_ctx_fail(ctx, CASL_ECONFIG, "not PKCS#12 (.p12/.pfx) data",
                            0);
    goto done;
  }
  if (!PKCS12_verify_mac(p12, password, -1) &&
      !(password == NULL && PKCS12_verify_mac(p12, "", 0))) {
    rc = casl__tls_ctx_fail(ctx, CASL_ECONFIG,
                            password != NULL
                                ? "could not open the PKCS#12 data (wrong "
                                  "password?)"
                                : "could not open the PKCS#12 data (it needs "
                                  "a password: pass :password)",
                            0);
    goto done;
  }
  if (!PKCS12_parse(p12, password != NULL ? password : "", &pkey, &cert,
                    &ca) ||
      pkey == NULL || cert == NULL) {
    rc = casl__tls_ctx_fail(
        ctx, CASL_ECONFIG,
        "the PKCS#12 data holds no certificate with its private key", 0);
    goto done;
  }
  if (!SSL_CTX_use_certificate(ctx->ssl_ctx, cert) ||
      !SSL_CTX_clear_chain_certs(ctx->ssl_ctx)) {
    rc = casl__tls_ctx_fail(ctx, CASL_ECONFIG,
                            "the PKCS#12 certificate was rejected", 1);
    goto done;
  }
  for (i = 0; ca != NULL && i < sk_X509_num(ca); i++) {
    if (!SSL_CTX_add1_chain_cert(ctx->ssl_ctx, sk_X509_value(ca, i))) {
      rc = casl__tls_ctx_fail(ctx, CASL_ECONFIG,
                              "a PKCS#12 chain certificate was rejected", 1);
      goto done;
    }
  }
  if ((rc = check_after_cert(ctx)) != 0)
    goto done;
  if (!SSL_CTX_use_PrivateKey(ctx->ssl_ctx, pkey)) {
    rc = mismatch(ctx);
    goto done;
  }
  ctx->key_type = EVP_PKEY_get_base_id(pkey);
  if ((rc = check_after_key(ctx)) == 0)
    casl__tls_ctx_ok(ctx);
done:
  ERR_clear_error();
  EVP_PKEY_free(pkey);
  X509_free(cert);
  sk_X509_pop_free(ca, X509_free);
  PKCS12_free(p12);
  return rc;
}

int casl_tls_ctx_use_pkcs12_file(casl_tls_ctx *ctx, const char *path,
                                 const char *password) {
  char *data, what[ERR_LEN + 600];
  size_t len = 0;
  int rc;
  if (ctx == NULL || path == NULL)
    return CASL_EINVAL;
  data = read_file(path, &len);
  if (data == NULL) {
    snprintf(what, sizeof(what), "could not read the PKCS#12 file %.500s: %s",
             path, strerror(errno));
    casl__strlcpy(ctx->err, what, sizeof(ctx->err));
    return CASL_ECONFIG;
  }
  rc = casl_tls_ctx_use_pkcs12_mem(ctx, data, len, password);
  OPENSSL_cleanse(data, len);
  casl__free(data);
  if (rc != 0) {
    snprintf(what, sizeof(what), "%.500s: %s", path, ctx->err);
    casl__strlcpy(ctx->err, what, sizeof(ctx->err));
  }
  return rc;
}
