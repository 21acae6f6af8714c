/*
 * tls-config.c -- TLS contexts: creation with secure defaults, adoption of
 * an SSL_CTX made elsewhere, reference counts, and the protocol settings
 * (options, cipher lists, key exchange groups, version bounds).
 */
#include <stdlib.h>

#include "tls-int.h"

#define SESSION_CACHE_DEFAULT 1024
#define SID_CTX "cl-async-ssl"

static casl_tls_ctx *ctx_alloc(SSL_CTX *ssl_ctx, int server, int adopted) {
  casl_tls_ctx *ctx = casl__calloc(1, sizeof(*ctx));
  if (ctx == NULL)
    return NULL;
  if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
    casl__free(ctx);
    return NULL;
  }
  atomic_init(&ctx->refs, 1);
  ctx->ssl_ctx = ssl_ctx;
  ctx->server = server != 0;
  ctx->adopted = adopted;
  return ctx;
}

int casl_tls_ctx_new(casl_tls_ctx **out, int server) {
  SSL_CTX *c = NULL;
  casl_tls_ctx *ctx = NULL;
  int rc;
  if (out == NULL)
    return CASL_EINVAL;
  *out = NULL;
  if ((rc = casl__tls_global_init()) != 0)
    return rc;
  ERR_clear_error();
  c = SSL_CTX_new(TLS_method());
  if (c == NULL)
    goto nomem;
  ctx = ctx_alloc(c, server, 0);
  if (ctx == NULL)
    goto nomem;
  if (!SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION))
    goto fail;
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE |
                             SSL_OP_NO_COMPRESSION);
  SSL_CTX_clear_options(c, SSL_OP_NO_TICKET);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (!SSL_CTX_set_cipher_list(c, server ? CASL_DEFAULT_SERVER_CIPHERS
                                         : CASL_DEFAULT_CIPHERS))
    goto fail;
  if (!SSL_CTX_set1_groups_list(c, CASL_DEFAULT_GROUPS))
    goto fail;
  if (server) {
    if (!SSL_CTX_set_session_id_context(c, (const unsigned char *)SID_CTX,
                                        sizeof(SID_CTX) - 1))
      goto fail;
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_alpn_select_cb(c, casl__tls_alpn_select_cb, NULL);
    SSL_CTX_set_client_hello_cb(c, casl__tls_client_hello_cb, NULL);
    if (casl__tls_tickets_init(ctx) != 0)
      goto nomem;
    ctx->verify = CASL_VERIFY_NONE;
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT |
                                          SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, casl__tls_new_session_cb);
    if (casl__tls_session_cache_alloc(ctx, SESSION_CACHE_DEFAULT) != 0)
      goto nomem;
    ctx->verify = CASL_VERIFY_PEER;
  }
  casl__tls_ocsp_init(ctx);
  *out = ctx;
  return 0;
fail:
  ERR_clear_error();
  casl_tls_ctx_unref(ctx);
  return CASL_ECONFIG;
nomem:
  ERR_clear_error();
  if (ctx != NULL)
    casl_tls_ctx_unref(ctx);
  else
    SSL_CTX_free(c);
  return CASL_ENOMEM;
}

int casl_tls_ctx_adopt(casl_tls_ctx **out, void *ssl_ctx, int server) {
  casl_tls_ctx *ctx;
  SSL_CTX *c = ssl_ctx;
  int rc, mode;
  if (out == NULL)
    return CASL_EINVAL;
  *out = NULL;
  if (c == NULL)
    return CASL_EINVAL;
  if ((rc = casl__tls_global_init()) != 0)
    return rc;
  ctx = ctx_alloc(NULL, server, 1);
  if (ctx == NULL)
    return CASL_ENOMEM;
  if (!SSL_CTX_up_ref(c)) {
    ERR_clear_error();
    casl_tls_ctx_unref(ctx);
    return CASL_ENOMEM;
  }
  ctx->ssl_ctx = c;
  mode = SSL_CTX_get_verify_mode(c);
  if (!(mode & SSL_VERIFY_PEER))
    ctx->verify = CASL_VERIFY_NONE;
  else if (server && (mode & SSL_VERIFY_FAIL_IF_NO_PEER_CERT))
    ctx->verify = CASL_VERIFY_REQUIRE;
  else
    ctx->verify = CASL_VERIFY_PEER;
  *out = ctx;
  return 0;
}

void casl_tls_ctx_ref(casl_tls_ctx *ctx) {
  if (ctx != NULL)
    atomic_fetch_add(&ctx->refs, 1);
}

void casl_tls_ctx_unref(casl_tls_ctx *ctx) {
  if (ctx == NULL || atomic_fetch_sub(&ctx->refs, 1) != 1)
    return;
  casl__tls_session_free(ctx);
  casl__tls_tickets_free(ctx);
  casl__tls_verify_free(ctx);
  /* For an adopted context this drops only the reference we took. */
  SSL_CTX_free(ctx->ssl_ctx);
  pthread_mutex_destroy(&ctx->lock);
  casl__free(ctx);
}

void *casl_tls_ctx_ssl_ctx(casl_tls_ctx *ctx) {
  return ctx != NULL ? ctx->ssl_ctx : NULL;
}

int casl_tls_ctx_is_server(const casl_tls_ctx *ctx) {
  return ctx != NULL && ctx->server;
}

const char *casl_tls_ctx_error(const casl_tls_ctx *ctx) {
  return ctx != NULL ? ctx->err : "";
}

int casl_tls_ctx_set_options(casl_tls_ctx *ctx, uint64_t options) {
  if (ctx == NULL)
    return CASL_EINVAL;
  SSL_CTX_set_options(ctx->ssl_ctx, options);
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_clear_options(casl_tls_ctx *ctx, uint64_t options) {
  if (ctx == NULL)
    return CASL_EINVAL;
  SSL_CTX_clear_options(ctx->ssl_ctx, options);
  casl__tls_ctx_ok(ctx);
  return 0;
}

uint64_t casl_tls_ctx_get_options(const casl_tls_ctx *ctx) {
  return ctx != NULL ? SSL_CTX_get_options(ctx->ssl_ctx) : 0;
}

int casl_tls_ctx_set_ciphers(casl_tls_ctx *ctx, const char *list) {
  if (ctx == NULL || list == NULL)
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_set_cipher_list(ctx->ssl_ctx, list))
    return casl__tls_ctx_fail(ctx, CASL_ECONFIG, "cipher list rejected", 1);
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_ciphersuites(casl_tls_ctx *ctx, const char *suites) {
  if (ctx == NULL || suites == NULL)
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_set_ciphersuites(ctx->ssl_ctx, suites))
    return casl__tls_ctx_fail(ctx, CASL_ECONFIG,
                              "TLS 1.3 cipher suites rejected", 1);
  casl__tls_ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_groups(casl_tls_ctx *ctx, const char *groups) {
  if (ctx == NULL || groups == NULL)
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_set1_groups_list(ctx->ssl_ctx, groups))
    return casl__tls_ctx_fail(ctx, CASL_ECONFIG, "key exchange groups rejected",
                              1);
  casl__tls_ctx_ok(ctx);
  return 0;
}

static int valid_version(int v) {
  return v == 0 || v == CASL_TLS1_0 || v == CASL_TLS1_1 || v == CASL_TLS1_2 ||
         v == CASL_TLS1_3;
}

int casl_tls_ctx_set_versions(casl_tls_ctx *ctx, int min, int max) {
  if (ctx == NULL || !valid_version(min) || !valid_version(max) ||
      (min != 0 && max != 0 && min > max))
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_set_min_proto_version(ctx->ssl_ctx, min) ||
      !SSL_CTX_set_max_proto_version(ctx->ssl_ctx, max))
    return casl__tls_ctx_fail(ctx, CASL_ECONFIG,
                              "protocol version bounds rejected", 1);
  casl__tls_ctx_ok(ctx);
  return 0;
}
