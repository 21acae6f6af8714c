/*
 * fuzz-common.h -- contexts for the TLS fuzzer and its seed generator:
 * a P-256 key and a self-signed certificate made in memory at start-up,
 * so the fuzzer needs no files.
 */
#ifndef CASL_FUZZ_COMMON_H
#define CASL_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cl-async-ssl.h"

/* Input byte 0 selects the configuration. */
#define FZ_ROLE_MASK 3 /* 0, 1: server; 2: server asking for SNI; 3: client */
#define FZ_VERIFY 4    /* client verifies the server */
#define FZ_WRITE 8     /* write plaintext before the input */
#define FZ_SHUTDOWN 16 /* shutdown after the input */
#define FZ_EOF 32      /* transport EOF after the input */
#define FZ_ECHO 64     /* write plaintext back from the callback */
#define FZ_TLS12 128   /* client limited to TLS 1.2 */

struct fz_ctxs {
  casl_tls_ctx *server, *server_ask, *child, *client, *client_verify,
      *client12;
};

static char *fz_bio_copy(BIO *b, size_t *len) {
  char *p, *s;
  long n = BIO_get_mem_data(b, &p);
  if (n <= 0 || (s = malloc((size_t)n)) == NULL)
    return NULL;
  memcpy(s, p, (size_t)n);
  *len = (size_t)n;
  return s;
}

/* A self-signed P-256 certificate for cn, PEM, and its key, PEM. */
static int fz_make_cert(const char *cn, char **cert, size_t *clen, char **key,
                        size_t *klen) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_NAME *name;
  X509_EXTENSION *ext;
  BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
  char san[300];
  int ok = 0;
  if (k == NULL || x == NULL || cb == NULL || kb == NULL)
    goto done;
  snprintf(san, sizeof(san), "DNS:%s,IP:127.0.0.1", cn);
  name = X509_get_subject_name(x);
  if (!X509_set_version(x, 2) ||
      !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
      !X509_gmtime_adj(X509_getm_notBefore(x), -86400) ||
      !X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 3650) ||
      !X509_set_pubkey(x, k) ||
      !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  (const unsigned char *)cn, -1, -1, 0) ||
      !X509_set_issuer_name(x, name))
    goto done;
  ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
  if (ext == NULL)
    goto done;
  ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  if (!ok || !X509_sign(x, k, EVP_sha256()) || !PEM_write_bio_X509(cb, x) ||
      !PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL)) {
    ok = 0;
    goto done;
  }
  *cert = fz_bio_copy(cb, clen);
  *key = fz_bio_copy(kb, klen);
  ok = *cert != NULL && *key != NULL;
done:
  BIO_free(cb);
  BIO_free(kb);
  X509_free(x);
  EVP_PKEY_free(k);
  return ok ? 0 : -1;
}

static casl_tls_ctx *fz_server(const char *cn, char **cert, size_t *clen) {
  casl_tls_ctx *c = NULL;
  char *key = NULL;
  size_t klen = 0;
  static const unsigned char alpn[] = "\x02h2\x08http/1.1";
  if (fz_make_cert(cn, cert, clen, &key, &klen) != 0 ||
      casl_tls_ctx_new(&c, 1) != 0 ||
      casl_tls_ctx_use_certificate_chain_mem(c, *cert, *clen) != 0 ||
      casl_tls_ctx_use_private_key_mem(c, key, klen, CASL_FILETYPE_PEM,
                                       NULL) != 0 ||
      casl_tls_ctx_set_alpn(c, alpn, sizeof(alpn) - 1) != 0) {
    fprintf(stderr, "fuzz: server context: %s\n",
            c ? casl_tls_ctx_error(c) : "");
    abort();
  }
  free(key);
  return c;
}

static void fz_make_ctxs(struct fz_ctxs *z) {
  char *cert = NULL, *cert2 = NULL, *cert3 = NULL;
  size_t clen, clen2, clen3;
  static const unsigned char alpn[] = "\x08http/1.1\x02h2";
  z->server = fz_server("localhost", &cert, &clen);
  z->server_ask = fz_server("localhost", &cert2, &clen2);
  z->child = fz_server("child.test", &cert3, &clen3);
  if (casl_tls_ctx_set_sni_ask(z->server_ask, 1) != 0 ||
      casl_tls_ctx_add_sni(z->server, "*.child.test", z->child) != 0 ||
      casl_tls_ctx_set_verify(z->server, CASL_VERIFY_PEER) != 0 ||
      casl_tls_ctx_load_verify_mem(z->server, cert, clen) != 0 ||
      casl_tls_ctx_new(&z->client, 0) != 0 ||
      casl_tls_ctx_set_verify(z->client, CASL_VERIFY_NONE) != 0 ||
      casl_tls_ctx_set_alpn(z->client, alpn, sizeof(alpn) - 1) != 0 ||
      casl_tls_ctx_new(&z->client_verify, 0) != 0 ||
      casl_tls_ctx_load_verify_mem(z->client_verify, cert, clen) != 0 ||
      casl_tls_ctx_new(&z->client12, 0) != 0 ||
      casl_tls_ctx_set_verify(z->client12, CASL_VERIFY_NONE) != 0 ||
      casl_tls_ctx_set_versions(z->client12, CASL_TLS1_2, CASL_TLS1_2) != 0) {
    fprintf(stderr, "fuzz: contexts\n");
    abort();
  }
  free(cert);
  free(cert2);
  free(cert3);
}

#endif
