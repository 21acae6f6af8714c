/*
 * tls-error.c -- the TLS engine's error text: OpenSSL's error queue as
 * text, a context's last failure, and what a failed SSL call on a
 * connection means (its code and text).
 */
#include <stdio.h>
#include <string.h>

#include "tls-int.h"

void casl__tls_str_append(char *dst, size_t cap, const char *src) {
  size_t n = strlen(dst);
  if (n + 1 < cap)
    casl__strlcpy(dst + n, src, cap - n);
}

/* The reasons casl__tls_failure tells apart, as casl__tls_err_queue
 * reports them. */
static unsigned reason_bit(unsigned long e) {
  if (ERR_GET_LIB(e) != ERR_LIB_SSL)
    return 0;
  switch (ERR_GET_REASON(e)) {
  case SSL_R_CERTIFICATE_VERIFY_FAILED:
    return CASL__TLS_SAW_VERIFY;
  case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    return CASL__TLS_SAW_NOCERT;
  case SSL_R_UNEXPECTED_EOF_WHILE_READING:
    return CASL__TLS_SAW_EOF;
  default:
    return 0;
  }
}

unsigned casl__tls_err_queue(char *dst, size_t cap, int with_data) {
  unsigned long e;
  const char *data;
  int flags;
  unsigned seen = 0;
  char one[256];
  while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
    seen |= reason_bit(e);
    ERR_error_string_n(e, one, sizeof(one));
    if (dst[0] != '\0')
      casl__tls_str_append(dst, cap, "; ");
    casl__tls_str_append(dst, cap, one);
    if (with_data && (flags & ERR_TXT_STRING) && data != NULL &&
        data[0] != '\0') {
      casl__tls_str_append(dst, cap, " (");
      casl__tls_str_append(dst, cap, data);
      casl__tls_str_append(dst, cap, ")");
    }
  }
  return seen;
}

int casl__tls_ctx_fail(casl_tls_ctx *ctx, int code, const char *what,
                       int with_data) {
  casl__strlcpy(ctx->err, what, sizeof(ctx->err));
  if (ERR_peek_error() != 0) {
    char q[ERR_LEN] = "";
    casl__tls_str_append(ctx->err, sizeof(ctx->err), ": ");
    (void)casl__tls_err_queue(q, sizeof(q), with_data);
    casl__tls_str_append(ctx->err, sizeof(ctx->err), q);
  }
  ERR_clear_error();
  return code;
}

void casl__tls_ctx_ok(casl_tls_ctx *ctx) { ctx->err[0] = '\0'; }

char *casl__tls_err(casl_tls *t) {
  static _Thread_local char scratch[ERR_LEN];
  if (t->err == NULL && !t->err_lost) {
    t->err = casl__malloc(ERR_LEN);
    if (t->err != NULL)
      t->err[0] = '\0';
    else
      t->err_lost = 1;
  }
  return t->err != NULL ? t->err : scratch;
}

int casl__tls_failure(casl_tls *t, int sslerr) {
  char q[ERR_LEN] = "";
  unsigned seen = casl__tls_err_queue(q, sizeof(q), 1);
  char *err;
  long vr;
  if (t->ocsp_failed)
    return CASL_EVERIFY; /* its text says why (tls-verify.c) */
  err = casl__tls_err(t);
  vr = SSL_get_verify_result(t->ssl);
  if ((seen & CASL__TLS_SAW_VERIFY) && vr != X509_V_OK) {
    casl__strlcpy(err, "certificate verify failed: ", ERR_LEN);
    casl__tls_str_append(err, ERR_LEN, X509_verify_cert_error_string(vr));
    return CASL_EVERIFY;
  }
  if (seen & CASL__TLS_SAW_NOCERT) {
    casl__strlcpy(err,
                  "certificate verify failed: the peer did not return a "
                  "certificate (one is required)",
                  ERR_LEN);
    return CASL_EVERIFY;
  }
  if ((seen & CASL__TLS_SAW_EOF) ||
      (sslerr == SSL_ERROR_SYSCALL && q[0] == '\0')) {
    casl__strlcpy(err,
                  t->hs_done ? "connection closed without a TLS close_notify "
                               "(truncated)"
                             : "connection closed during the TLS handshake",
                  ERR_LEN);
    if (q[0] != '\0') {
      casl__tls_str_append(err, ERR_LEN, ": ");
      casl__tls_str_append(err, ERR_LEN, q);
    }
    return t->hs_done ? CASL_ETRUNCATED : CASL_ETLSEOF;
  }
  if (sslerr == SSL_ERROR_ZERO_RETURN) {
    casl__strlcpy(err, "the peer sent close_notify during the TLS handshake",
                  ERR_LEN);
    return CASL_ETLS;
  }
  if (q[0] != '\0')
    casl__strlcpy(err, q, ERR_LEN);
  else
    snprintf(err, ERR_LEN, "TLS failure (SSL_get_error %d)", sslerr);
  return CASL_ETLS;
}

const char *casl_tls_error(const casl_tls *t) {
  if (t == NULL)
    return "";
  if (t->err_lost)
    return "out of memory (the error's text could not be kept)";
  return t->err != NULL ? t->err : "";
}
