/*
 * tls-session.c -- sessions, SNI, ALPN and key logging: the client session
 * cache (one session per key, least recently used evicted), the server's
 * choice of a context by requested name, the ALPN lists and selection, and
 * NSS key log lines.  The OpenSSL callbacks here run no application code:
 * they only record (key log lines are queued for the filter to deliver).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/tls1.h>

#include "tls-int.h"

casl_tls_ctx *casl__tls_keylog_ctx(casl_tls *t) {
  if (t->cur_ctx->keylog_cb != NULL || t->cur_ctx->keylog_path != NULL)
    return t->cur_ctx;
  return t->ctx;
}

static void keylog_append_file(const char *path, const char *line) {
  size_t n = strlen(line);
  char *tmp = casl__malloc(n + 1);
  int fd;
  if (tmp == NULL)
    return;
  /* A line and its newline for write(2), not a C string. */
  memcpy(tmp, line, n); /* NOLINT(bugprone-not-null-terminated-result) */
  tmp[n] = '\n';
  fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) {
    /* One write per line: with O_APPEND lines from several writers do not
     * interleave. */
    ssize_t w = write(fd, tmp, n + 1);
    (void)w;
    (void)close(fd);
  }
  OPENSSL_cleanse(tmp, n + 1);
  casl__free(tmp);
}

static void keylog_cb(const SSL *ssl, const char *line) {
  casl_tls *t = casl__tls_of(ssl);
  casl_tls_ctx *ctx;
  if (t == NULL)
    return;
  ctx = casl__tls_keylog_ctx(t);
  if (ctx->keylog_path != NULL)
    keylog_append_file(ctx->keylog_path, line);
  if (ctx->keylog_cb != NULL)
    (void)casl__tbuf_append(&t->klog, line, strlen(line) + 1);
}

int casl__tls_alpn_select_cb(SSL *ssl, const unsigned char **out,
                             unsigned char *outlen, const unsigned char *in,
                             unsigned int inlen, void *arg) {
  casl_tls *t = casl__tls_of(ssl);
  casl_tls_ctx *ctx;
  unsigned char *sel = NULL;
  (void)arg;
  if (t == NULL)
    return SSL_TLSEXT_ERR_NOACK;
  ctx = t->cur_ctx->alpn != NULL ? t->cur_ctx : t->ctx;
  if (ctx->alpn == NULL)
    return SSL_TLSEXT_ERR_NOACK;
  if (SSL_select_next_proto(&sel, outlen, ctx->alpn,
                            (unsigned int)ctx->alpn_len, in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* The host_name of a ClientHello's server_name extension, copied, or NULL. */
static char *client_hello_name(SSL *ssl) {
  const unsigned char *p;
  size_t len, list, n;
  char *name;
  if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) ||
      len < 2)
    return NULL;
  list = ((size_t)p[0] << 8) | p[1];
  if (list + 2 != len)
    return NULL;
  p += 2;
  while (list >= 3) {
    unsigned type = p[0];
    n = ((size_t)p[1] << 8) | p[2];
    if (n + 3 > list)
      return NULL;
    if (type == TLSEXT_NAMETYPE_host_name) {
      if (n == 0 || n > 255 || memchr(p + 3, '\0', n) != NULL)
        return NULL;
      name = casl__malloc(n + 1);
      if (name == NULL)
        return NULL;
      memcpy(name, p + 3, n);
      name[n] = '\0';
      return name;
    }
    p += 3 + n;
    list -= 3 + n;
  }
  return NULL;
}

static int sni_match(const char *pattern, const char *name) {
  const char *dot;
  if (pattern[0] == '*' && pattern[1] == '.') {
    dot = strchr(name, '.');
    /* exactly one non-empty label in place of the star */
    return dot != NULL && dot != name && strcasecmp(dot, pattern + 1) == 0;
  }
  return strcasecmp(pattern, name) == 0;
}

/* Puts the connection on child's certificate, key and settings. */
int casl__tls_switch_ctx(casl_tls *t, casl_tls_ctx *child) {
  SSL_CTX *c = child->ssl_ctx;
  if (child == t->cur_ctx)
    return 0;
  if (SSL_set_SSL_CTX(t->ssl, c) == NULL)
    return -1;
  SSL_set_verify(t->ssl, SSL_CTX_get_verify_mode(c),
                 SSL_CTX_get_verify_callback(c));
  SSL_set_verify_depth(t->ssl, SSL_CTX_get_verify_depth(c));
  SSL_clear_options(t->ssl, SSL_get_options(t->ssl) ^ SSL_CTX_get_options(c));
  SSL_set_options(t->ssl, SSL_CTX_get_options(c));
  if (!SSL_set_min_proto_version(t->ssl, SSL_CTX_get_min_proto_version(c)) ||
      !SSL_set_max_proto_version(t->ssl, SSL_CTX_get_max_proto_version(c)))
    return -1;
  casl_tls_ctx_ref(child);
  if (t->cur_ctx != t->ctx)
    casl_tls_ctx_unref(t->cur_ctx);
  t->cur_ctx = child;
  return 0;
}

int casl__tls_client_hello_cb(SSL *ssl, int *al, void *arg) {
  casl_tls *t = casl__tls_of(ssl);
  size_t i;
  (void)arg;
  if (t == NULL || t->sni_done)
    return SSL_CLIENT_HELLO_SUCCESS;
  if (t->sni_wait)
    return SSL_CLIENT_HELLO_RETRY;
  casl__free(t->server_name);
  t->server_name = client_hello_name(ssl);
  if (t->server_name != NULL) {
    for (i = 0; i < t->ctx->nsni; i++) {
      if (sni_match(t->ctx->sni[i].pattern, t->server_name)) {
        if (casl__tls_switch_ctx(t, t->ctx->sni[i].child) != 0) {
          *al = SSL_AD_INTERNAL_ERROR;
          return SSL_CLIENT_HELLO_ERROR;
        }
        if (t->ctx->sni_ask == 2 && t->cbs.sni != NULL) {
          t->sni_wait = 1; /* asked every time, the entry chosen first */
          return SSL_CLIENT_HELLO_RETRY;
        }
        t->sni_done = 1;
        return SSL_CLIENT_HELLO_SUCCESS;
      }
    }
  }
  if (t->ctx->sni_ask && t->cbs.sni != NULL) {
    t->sni_wait = 1;
    return SSL_CLIENT_HELLO_RETRY;
  }
  t->sni_done = 1;
  return SSL_CLIENT_HELLO_SUCCESS;
}

/* Client: OpenSSL hands over each new session (TLS 1.2 at the end of the
 * handshake, TLS 1.3 with each ticket).  Keeps the last one per session key,
 * evicting the least recently used key when the cache is full. */
int casl__tls_new_session_cb(SSL *ssl, SSL_SESSION *sess) {
  casl_tls *t = casl__tls_of(ssl);
  casl_tls_ctx *ctx;
  struct session_entry *e = NULL, *oldest = NULL;
  size_t i;
  char *key;
  int kept = 0;
  if (t == NULL || t->session_key == NULL)
    return 0;
  ctx = t->ctx;
  pthread_mutex_lock(&ctx->lock);
  if (ctx->session_max <= 0)
    goto done;
  for (i = 0; i < ctx->nsessions && e == NULL; i++) {
    if (strcmp(ctx->sessions[i].key, t->session_key) == 0)
      e = &ctx->sessions[i];
    else if (oldest == NULL || ctx->sessions[i].stamp < oldest->stamp)
      oldest = &ctx->sessions[i];
  }
  if (e == NULL) {
    key = casl__strdup(t->session_key);
    if (key == NULL)
      goto done;
    if (ctx->nsessions < (size_t)ctx->session_max) {
      e = &ctx->sessions[ctx->nsessions++];
    } else {
      e = oldest;
      casl__free(e->key);
      SSL_SESSION_free(e->sess);
    }
    e->key = key;
    e->sess = NULL;
  }
  SSL_SESSION_free(e->sess);
  e->sess = sess;
  e->stamp = ++ctx->clock;
  kept = 1;
done:
  pthread_mutex_unlock(&ctx->lock);
  return kept;
}

/* The session saved under key, referenced (or NULL). */
SSL_SESSION *casl__tls_session_lookup(casl_tls_ctx *ctx, const char *key) {
  SSL_SESSION *s = NULL;
  size_t i;
  pthread_mutex_lock(&ctx->lock);
  for (i = 0; i < ctx->nsessions; i++) {
    if (strcmp(ctx->sessions[i].key, key) == 0) {
      if (SSL_SESSION_is_resumable(ctx->sessions[i].sess) &&
          SSL_SESSION_up_ref(ctx->sessions[i].sess)) {
        s = ctx->sessions[i].sess;
        ctx->sessions[i].stamp = ++ctx->clock;
      }
      break;
    }
  }
  pthread_mutex_unlock(&ctx->lock);
  return s;
}

int casl__tls_session_cache_alloc(casl_tls_ctx *ctx, int max) {
  struct session_entry *p;
  size_t i;
  pthread_mutex_lock(&ctx->lock);
  for (i = 0; i < ctx->nsessions; i++) {
    casl__free(ctx->sessions[i].key);
    SSL_SESSION_free(ctx->sessions[i].sess);
  }
  casl__free(ctx->sessions);
  ctx->sessions = NULL;
  ctx->nsessions = 0;
  ctx->session_max = 0;
  if (max > 0) {
    p = casl__calloc((size_t)max, sizeof(*p));
    if (p == NULL) {
      pthread_mutex_unlock(&ctx->lock);
      return CASL_ENOMEM;
    }
    ctx->sessions = p;
    ctx->session_max = max;
  }
  pthread_mutex_unlock(&ctx->lock);
  return 0;
}

static int valid_alpn(const unsigned char *w, size_t len) {
  size_t i = 0;
  if (len == 0 || len > 65535)
    return 0;
  while (i < len) {
    if (w[i] == 0 || i + 1 + w[i] > len)
      return 0;
    i += 1 + (size_t)w[i];
  }
  return 1;
}

int casl_tls_ctx_set_alpn(casl_tls_ctx *ctx, const unsigned char *wire,
                          size_t len) {
  unsigned char *copy = NULL;
  if (ctx == NULL || (len > 0 && (wire == NULL || !valid_alpn(wire, len))))
    return CASL_EINVAL;
  ERR_clear_error();
  if (!ctx->server) {
    /* SSL_CTX_set_alpn_protos returns 0 on success. */
    if (SSL_CTX_set_alpn_protos(ctx->ssl_ctx, len ? wire : NULL,
                                (unsigned int)len) != 0)
      return casl__tls_ctx_fail(ctx, CASL_ENOMEM, "ALPN list rejected", 1);
    casl__tls_ctx_ok(ctx);
    return 0;
  }
  if (len > 0) {
    copy = casl__malloc(len);
    if (copy == NULL)
      return CASL_ENOMEM;
    memcpy(copy, wire, len);
  }
  casl__free(ctx->alpn);
  ctx->alpn = copy;
  ctx->alpn_len = len;
  if (ctx->adopted && copy != NULL)
    SSL_CTX_set_alpn_select_cb(ctx->ssl_ctx, casl__tls_alpn_select_cb, NULL);
  casl__tls_ctx_ok(ctx);
  return 0;
}

static int valid_pattern(const char *p) {
  const char *rest = p;
  if (p[0] == '*') {
    if (p[1] != '.' || p[2] == '\0')
      return 0;
    rest = p + 2;
  }
  return rest[0] != '\0' && strchr(rest, '*') == NULL && strlen(p) <= 255;
}

int casl_tls_ctx_add_sni(casl_tls_ctx *ctx, const char *pattern,
                         casl_tls_ctx *child) {
  struct sni_entry *p;
  char *pat;
  if (ctx == NULL || child == NULL || pattern == NULL || child == ctx ||
      !ctx->server || !child->server || !valid_pattern(pattern))
    return CASL_EINVAL;
  pat = casl__strdup(pattern);
  if (pat == NULL)
    return CASL_ENOMEM;
  p = casl__realloc(ctx->sni, (ctx->nsni + 1) * sizeof(*p));
  if (p == NULL) {
    casl__free(pat);
    return CASL_ENOMEM;
  }
  ctx->sni = p;
  p[ctx->nsni].pattern = pat;
  p[ctx->nsni].child = child;
  ctx->nsni++;
  casl_tls_ctx_ref(child);
  if (ctx->adopted)
    SSL_CTX_set_client_hello_cb(ctx->ssl_ctx, casl__tls_client_hello_cb, NULL);
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_sni_ask(casl_tls_ctx *ctx, int on) {
  if (ctx == NULL || !ctx->server || on < 0 || on > 2)
    return CASL_EINVAL;
  ctx->sni_ask = on;
  if (ctx->adopted && on)
    SSL_CTX_set_client_hello_cb(ctx->ssl_ctx, casl__tls_client_hello_cb, NULL);
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_session_cache(casl_tls_ctx *ctx, int max) {
  if (ctx == NULL || max < 0)
    return CASL_EINVAL;
  if (ctx->server) {
    if (max == 0) {
      SSL_CTX_set_session_cache_mode(ctx->ssl_ctx, SSL_SESS_CACHE_OFF);
    } else {
      SSL_CTX_set_session_cache_mode(ctx->ssl_ctx, SSL_SESS_CACHE_SERVER);
      SSL_CTX_sess_set_cache_size(ctx->ssl_ctx, max);
    }
    casl__tls_ctx_ok(ctx);
    return 0;
  }
  if (casl__tls_session_cache_alloc(ctx, max) != 0)
    return CASL_ENOMEM;
  if (max > 0) {
    SSL_CTX_set_session_cache_mode(
        ctx->ssl_ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx->ssl_ctx, casl__tls_new_session_cb);
  }
  casl__tls_ctx_ok(ctx);
  return 0;
}

static void keylog_update(casl_tls_ctx *ctx) {
  SSL_CTX_set_keylog_callback(
      ctx->ssl_ctx,
      ctx->keylog_cb != NULL || ctx->keylog_path != NULL ? keylog_cb : NULL);
}

int casl_tls_ctx_set_keylog_cb(casl_tls_ctx *ctx, casl_tls_keylog_cb cb,
                               void *ud) {
  if (ctx == NULL)
    return CASL_EINVAL;
  ctx->keylog_cb = cb;
  ctx->keylog_ud = ud;
  keylog_update(ctx);
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_keylog_file(casl_tls_ctx *ctx, const char *path) {
  char *copy = NULL;
  if (ctx == NULL)
    return CASL_EINVAL;
  if (path != NULL) {
    copy = casl__strdup(path);
    if (copy == NULL)
      return CASL_ENOMEM;
  }
  casl__free(ctx->keylog_path);
  ctx->keylog_path = copy;
  keylog_update(ctx);
  casl__tls_ctx_ok(ctx);
  return 0;
}

void casl__tls_session_free(casl_tls_ctx *ctx) {
  size_t i;
  for (i = 0; i < ctx->nsni; i++) {
    casl__free(ctx->sni[i].pattern);
    casl_tls_ctx_unref(ctx->sni[i].child);
  }
  casl__free(ctx->sni);
  ctx->sni = NULL;
  ctx->nsni = 0;
  (void)casl__tls_session_cache_alloc(ctx, 0);
  casl__free(ctx->alpn);
  ctx->alpn = NULL;
  casl__free(ctx->keylog_path);
  ctx->keylog_path = NULL;
}

/* ------------------------------------------------------------------------ */
/* Session-ticket keys (servers)                                             */

static uint64_t now_seconds(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
    return 0;
  return (uint64_t)ts.tv_sec;
}

static void tickets_unref(struct ticket_keys *k) {
  if (k == NULL || atomic_fetch_sub(&k->refs, 1) != 1)
    return;
  if (k->keys != NULL)
    OPENSSL_cleanse(k->keys, k->n * sizeof(*k->keys));
  casl__free(k->keys);
  pthread_mutex_destroy(&k->lock);
  casl__free(k);
}

/* Own keys: a fresh one in front each lifetime, the previous one kept so
 * that its tickets are still accepted (and renewed).  Called locked. */
static int tickets_rotate(struct ticket_keys *k) {
  uint64_t now = now_seconds();
  struct ticket_key *keys;
  if (!k->own || (k->n > 0 && now < k->born + k->lifetime))
    return 0;
  keys = casl__calloc(2, sizeof(*keys));
  if (keys == NULL)
    return -1;
  if (RAND_bytes((unsigned char *)&keys[0], sizeof(keys[0])) <= 0) {
    casl__free(keys);
    return -1;
  }
  if (k->n > 0)
    keys[1] = k->keys[0];
  if (k->keys != NULL)
    OPENSSL_cleanse(k->keys, k->n * sizeof(*k->keys));
  casl__free(k->keys);
  k->keys = keys;
  k->n = k->n > 0 ? 2 : 1;
  k->born = now;
  return 0;
}

static int ticket_mac_init(EVP_MAC_CTX *hctx, const struct ticket_key *key) {
  OSSL_PARAM params[3];
  params[0] = OSSL_PARAM_construct_octet_string(
      OSSL_MAC_PARAM_KEY, (void *)key->hmac, sizeof(key->hmac));
  params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                               (char *)"SHA256", 0);
  params[2] = OSSL_PARAM_construct_end();
  return EVP_MAC_CTX_set_params(hctx, params);
}

/* OpenSSL's ticket callback: 1 (ticket ok / made), 2 (ok, renew it), 0 (not
 * ours: full handshake), -1 (failure). */
static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc) {
  casl_tls *t = casl__tls_of(ssl);
  struct ticket_keys *k;
  size_t i;
  int rc = -1;
  if (t == NULL || (k = t->ctx->tickets) == NULL)
    return -1;
  pthread_mutex_lock(&k->lock);
  if (tickets_rotate(k) != 0 || k->n == 0)
    goto done;
  if (enc) {
    const struct ticket_key *key = &k->keys[0];
    memcpy(key_name, key->name, sizeof(key->name));
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) > 0 &&
        EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, key->aes, iv) &&
        ticket_mac_init(hctx, key))
      rc = 1;
    goto done;
  }
  rc = 0;
  for (i = 0; i < k->n; i++) {
    const struct ticket_key *key = &k->keys[i];
    if (memcmp(key_name, key->name, sizeof(key->name)) != 0)
      continue;
    /* A TLS 1.3 client uses a ticket once: always send it a new one (as
     * OpenSSL does with its own keys). */
    if (ticket_mac_init(hctx, key) &&
        EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, key->aes, iv))
      rc = i == 0 && SSL_version(ssl) < TLS1_3_VERSION ? 1 : 2;
    else
      rc = -1;
    break;
  }
done:
  pthread_mutex_unlock(&k->lock);
  return rc;
}

int casl__tls_tickets_init(casl_tls_ctx *ctx) {
  struct ticket_keys *k = casl__calloc(1, sizeof(*k));
  if (k == NULL)
    return CASL_ENOMEM;
  if (pthread_mutex_init(&k->lock, NULL) != 0) {
    casl__free(k);
    return CASL_ENOMEM;
  }
  atomic_init(&k->refs, 1);
  k->own = 1;
  k->lifetime = 3600;
  ctx->tickets = k;
  if (!SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx->ssl_ctx, ticket_cb)) {
    ERR_clear_error();
    return CASL_ENOMEM;
  }
  return 0;
}

void casl__tls_tickets_free(casl_tls_ctx *ctx) {
  tickets_unref(ctx->tickets);
  ctx->tickets = NULL;
}

int casl_tls_ctx_set_ticket_keys(casl_tls_ctx *ctx, const unsigned char *keys,
                                 size_t n) {
  struct ticket_keys *k;
  struct ticket_key *copy = NULL;
  if (ctx == NULL || ctx->tickets == NULL || (n > 0 && keys == NULL) ||
      n > 1024)
    return CASL_EINVAL;
  k = ctx->tickets;
  if (n > 0) {
    copy = casl__malloc(n * sizeof(*copy));
    if (copy == NULL)
      return CASL_ENOMEM;
    memcpy(copy, keys, n * sizeof(*copy));
  }
  pthread_mutex_lock(&k->lock);
  if (k->keys != NULL)
    OPENSSL_cleanse(k->keys, k->n * sizeof(*k->keys));
  casl__free(k->keys);
  k->keys = copy;
  k->n = n;
  k->own = n == 0;
  k->born = 0;
  pthread_mutex_unlock(&k->lock);
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_ticket_lifetime(casl_tls_ctx *ctx, uint64_t seconds) {
  if (ctx == NULL || ctx->tickets == NULL || seconds == 0)
    return CASL_EINVAL;
  pthread_mutex_lock(&ctx->tickets->lock);
  ctx->tickets->lifetime = seconds;
  pthread_mutex_unlock(&ctx->tickets->lock);
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_copy_ticket_keys(casl_tls_ctx *dst, casl_tls_ctx *src) {
  if (dst == NULL || src == NULL || dst->tickets == NULL ||
      src->tickets == NULL)
    return CASL_EINVAL;
  if (dst->tickets != src->tickets) {
    atomic_fetch_add(&src->tickets->refs, 1);
    tickets_unref(dst->tickets);
    dst->tickets = src->tickets;
  }
  casl__tls_ctx_ok(dst);
  return 0;
}

_Static_assert(sizeof(struct ticket_key) == CASL_TICKET_KEY_LEN,
               "a ticket key is CASL_TICKET_KEY_LEN bytes");
