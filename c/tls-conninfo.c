/*
 * tls-conninfo.c -- what a connection negotiated (protocol, cipher, ALPN,
 * server name, resumption, verification result) and the peer's
 * certificate as text.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls-int.h"

int casl_tls_handshake_done(const casl_tls *t) {
  return t != NULL && t->hs_done;
}

const char *casl_tls_protocol(const casl_tls *t) {
  return t != NULL && t->hs_done ? SSL_get_version(t->ssl) : NULL;
}

const char *casl_tls_cipher(const casl_tls *t) {
  return t != NULL && t->hs_done ? SSL_get_cipher_name(t->ssl) : NULL;
}

const char *casl_tls_alpn(const casl_tls *t) {
  return t != NULL && t->hs_done ? t->alpn : NULL;
}

const char *casl_tls_server_name(const casl_tls *t) {
  if (t == NULL)
    return NULL;
  if (t->server_name != NULL)
    return t->server_name;
  return t->hs_done ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name)
                    : NULL;
}

int casl_tls_session_reused(const casl_tls *t) {
  return t != NULL && t->hs_done && SSL_session_reused(t->ssl);
}

long casl_tls_verify_result(const casl_tls *t) {
  return t != NULL ? SSL_get_verify_result(t->ssl) : X509_V_OK;
}

const char *casl_tls_verify_string(const casl_tls *t) {
  return X509_verify_cert_error_string(casl_tls_verify_result(t));
}

/* ------------------------------------------------------------------------ */
/* Peer certificate                                                          */

static char *mem_bio_str(BIO *b) {
  char *p, *s;
  long n = BIO_get_mem_data(b, &p);
  if (n < 0)
    return NULL;
  s = casl__malloc((size_t)n + 1);
  if (s == NULL)
    return NULL;
  memcpy(s, p, (size_t)n);
  s[n] = '\0';
  return s;
}

static char *name_str(const X509_NAME *name) {
  BIO *b = BIO_new(BIO_s_mem());
  char *s = NULL;
  /* RFC 2253, but UTF-8 left as is instead of escaped byte by byte. */
  if (b != NULL &&
      X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >=
          0)
    s = mem_bio_str(b);
  BIO_free(b);
  return s;
}

static int sans_append(struct buf *b, const char *s, size_t n) {
  size_t i;
  if (b->len > 0 && casl__tbuf_append(b, "\n", 1) != 0)
    return -1;
  if (casl__tbuf_reserve(b, n) != 0)
    return -1;
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    /* A hostile certificate must not smuggle line breaks or controls. */
    b->data[b->len++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
  }
  return 0;
}

static char *sans_str(X509 *x) {
  GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  struct buf b = {0};
  char ip[INET6_ADDRSTRLEN];
  char *s;
  int i, n, bad = 0;
  n = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0;
  for (i = 0; i < n && !bad; i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    if (g->type == GEN_DNS) {
      bad = sans_append(&b, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                        (size_t)ASN1_STRING_length(g->d.dNSName));
    } else if (g->type == GEN_IPADD) {
      int len = ASN1_STRING_length(g->d.iPAddress);
      const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
      if ((len == 4 && inet_ntop(AF_INET, p, ip, sizeof(ip)) != NULL) ||
          (len == 16 && inet_ntop(AF_INET6, p, ip, sizeof(ip)) != NULL))
        bad = sans_append(&b, ip, strlen(ip));
    }
  }
  GENERAL_NAMES_free(gens);
  if (bad || casl__tbuf_append(&b, "", 1) != 0) {
    casl__tbuf_free(&b);
    return NULL;
  }
  s = b.data; /* NUL-terminated, owned by the caller */
  return s;
}

static int asn1_time_unix(const ASN1_TIME *tm, int64_t *out) {
  struct tm t;
  memset(&t, 0, sizeof(t));
  if (tm == NULL || !ASN1_TIME_to_tm(tm, &t))
    return -1;
  *out = (int64_t)timegm(&t);
  return 0;
}

static char *serial_str(X509 *x) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
  char *hex, *s = NULL;
  if (bn == NULL)
    return NULL;
  hex = BN_bn2hex(bn);
  if (hex != NULL)
    s = casl__strdup(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  return s;
}

static char *sha256_str(X509 *x) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0, i;
  static const char hexd[] = "0123456789ABCDEF";
  char *s;
  if (!X509_digest(x, EVP_sha256(), md, &n) || n == 0)
    return NULL;
  s = casl__malloc(n * 3);
  if (s == NULL)
    return NULL;
  for (i = 0; i < n; i++) {
    s[i * 3] = hexd[md[i] >> 4];
    s[i * 3 + 1] = hexd[md[i] & 15];
    s[i * 3 + 2] = i + 1 < n ? ':' : '\0';
  }
  return s;
}

static char *pem_str(X509 *x) {
  BIO *b = BIO_new(BIO_s_mem());
  char *s = NULL;
  if (b != NULL && PEM_write_bio_X509(b, x))
    s = mem_bio_str(b);
  BIO_free(b);
  return s;
}

/* Fills c from x: 0, or CASL_ENOMEM (c left empty). */
static int cert_info(X509 *x, casl_tls_cert_info *c) {
  ERR_clear_error();
  memset(c, 0, sizeof(*c));
  c->subject = name_str(X509_get_subject_name(x));
  c->issuer = name_str(X509_get_issuer_name(x));
  c->sans = sans_str(x);
  c->serial = serial_str(x);
  c->sha256 = sha256_str(x);
  c->pem = pem_str(x);
  if (c->subject == NULL || c->issuer == NULL || c->sans == NULL ||
      c->serial == NULL || c->sha256 == NULL || c->pem == NULL ||
      asn1_time_unix(X509_get0_notBefore(x), &c->not_before) != 0 ||
      asn1_time_unix(X509_get0_notAfter(x), &c->not_after) != 0) {
    ERR_clear_error();
    casl__tls_cert_info_free(c);
    return CASL_ENOMEM;
  }
  return 0;
}

int casl_tls_peer_cert(casl_tls *t, const casl_tls_cert_info **out) {
  X509 *x;
  int rc;
  if (t == NULL || out == NULL)
    return CASL_EINVAL;
  *out = NULL;
  if (!t->have_cert) {
    x = SSL_get0_peer_certificate(t->ssl);
    if (x == NULL)
      return CASL_ESTATE;
    if ((rc = cert_info(x, &t->cert)) != 0)
      return rc;
    t->have_cert = 1;
  }
  *out = &t->cert;
  return 0;
}

int casl_tls_peer_chain(casl_tls *t, const casl_tls_cert_info **out,
                        size_t *n) {
  STACK_OF(X509) *chain;
  X509 *leaf;
  size_t i, count, first;
  int rc;
  if (t == NULL || out == NULL || n == NULL)
    return CASL_EINVAL;
  *out = NULL;
  *n = 0;
  if (t->chain == NULL) {
    leaf = SSL_get0_peer_certificate(t->ssl);
    if (leaf == NULL)
      return CASL_ESTATE;
    chain = SSL_get0_verified_chain(t->ssl);
    if (chain == NULL)
      chain = SSL_get_peer_cert_chain(t->ssl);
    count = chain != NULL ? (size_t)sk_X509_num(chain) : 0;
    /* A server's view of what a client sent leaves the leaf out. */
    first = count > 0 && X509_cmp(sk_X509_value(chain, 0), leaf) == 0 ? 0 : 1;
    t->chain = casl__calloc(count + first, sizeof(*t->chain));
    if (t->chain == NULL)
      return CASL_ENOMEM;
    t->nchain = count + first;
    if (first && (rc = cert_info(leaf, &t->chain[0])) != 0)
      goto fail;
    for (i = 0; i < count; i++)
      if ((rc = cert_info(sk_X509_value(chain, (int)i),
                          &t->chain[i + first])) != 0)
        goto fail;
  }
  *out = t->chain;
  *n = t->nchain;
  return 0;
fail:
  casl__tls_chain_free(t);
  return rc;
}

void casl__tls_chain_free(casl_tls *t) {
  size_t i;
  for (i = 0; t->chain != NULL && i < t->nchain; i++)
    casl__tls_cert_info_free(&t->chain[i]);
  casl__free(t->chain);
  t->chain = NULL;
  t->nchain = 0;
}

const unsigned char *casl_tls_ocsp_response(const casl_tls *t, size_t *len) {
  if (t == NULL || len == NULL || t->server || t->ocsp_der == NULL) {
    if (len != NULL)
      *len = 0;
    return NULL;
  }
  *len = t->ocsp_len;
  return t->ocsp_der;
}

void casl__tls_cert_info_free(casl_tls_cert_info *c) {
  casl__free((char *)c->subject);
  casl__free((char *)c->issuer);
  casl__free((char *)c->sans);
  casl__free((char *)c->serial);
  casl__free((char *)c->sha256);
  casl__free((char *)c->pem);
  memset(c, 0, sizeof(*c));
}
