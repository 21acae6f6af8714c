/*
 * util.c -- error texts, versions, the process-wide initialisation and
 * small string helpers.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "internal.h"

#define CASL_VERSION "0.1.0"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void global_init(void) {
  struct sigaction sa;
  /* Leave a handler the application installed alone; replace only the
   * default action, which would kill the process on a write to a closed
   * peer. */
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGPIPE, &sa, NULL);
  }
  /* Idempotent in OpenSSL >= 1.1; loads error strings once. */
  (void)OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS |
                             OPENSSL_INIT_LOAD_CRYPTO_STRINGS,
                         NULL);
}

void casl__global_init(void) { (void)pthread_once(&init_once, global_init); }

void casl__strlcpy(char *dst, const char *src, size_t len) {
  size_t n;
  if (len == 0)
    return;
  n = strlen(src);
  if (n >= len)
    n = len - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

char *casl__strdup(const char *s) {
  size_t n;
  char *d;
  if (s == NULL)
    return NULL;
  n = strlen(s) + 1;
  d = casl__malloc(n);
  if (d != NULL)
    memcpy(d, s, n);
  return d;
}

static const struct {
  int code;
  const char *name;
  const char *text;
} casl_errors[] = {
    {CASL_ETLS, "ETLS", "TLS protocol error"},
    {CASL_EVERIFY, "EVERIFY", "peer certificate verification failed"},
    {CASL_ETRUNCATED, "ETRUNCATED",
     "connection closed without a TLS close_notify (truncated)"},
    {CASL_ECONFIG, "ECONFIG", "TLS configuration rejected"},
    {CASL_ENOMEM, "ENOMEM", "out of memory"},
    {CASL_EINVAL, "EINVAL", "invalid argument"},
    {CASL_ECLOSED, "ECLOSED", "closed"},
    {CASL_ESTATE, "ESTATE", "not allowed in the current state"},
    {CASL_ETLSEOF, "ETLSEOF", "connection closed during the TLS handshake"},
};

/* Whether libuv has a name for code.  For a code it does not know,
 * uv_strerror and uv_err_name return a string they allocate (and nobody
 * frees), so they are only called for known codes. */
static int uv_knows(int code) {
  char buf[64];
  (void)uv_err_name_r(code, buf, sizeof(buf));
  return strncmp(buf, "Unknown system error", 20) != 0;
}

const char *casl_strerror(int code) {
  size_t i;
  if (code == 0)
    return "success";
  for (i = 0; i < sizeof(casl_errors) / sizeof(casl_errors[0]); i++)
    if (casl_errors[i].code == code)
      return casl_errors[i].text;
  return uv_knows(code) ? uv_strerror(code) : "unknown error";
}

const char *casl_err_name(int code) {
  size_t i;
  if (code == 0)
    return "OK";
  for (i = 0; i < sizeof(casl_errors) / sizeof(casl_errors[0]); i++)
    if (casl_errors[i].code == code)
      return casl_errors[i].name;
  return uv_knows(code) ? uv_err_name(code) : "UNKNOWN";
}

const char *casl_version(void) { return CASL_VERSION; }
const char *casl_libuv_version(void) { return uv_version_string(); }
const char *casl_openssl_version(void) {
  return OpenSSL_version(OPENSSL_VERSION);
}
