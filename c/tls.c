/*
 * tls.c -- OpenSSL contexts and the TLS filter (one connection, no socket).
 *
 * The filter talks to OpenSSL through one BIO of its own (not a pair of
 * BIO_s_mem): reads come straight from the buffer given to casl_tls_feed
 * (only what OpenSSL leaves unread is copied, into `in'), and writes are
 * appended to `out', which is handed to the `ciphertext' callback in one
 * call per batch before any other callback and before the outermost call
 * returns.  No application callback ever runs inside an OpenSSL call: key
 * log lines are queued the same way.
 *
 * Re-entrancy: every public entry point on a filter counts itself in
 * `depth'; casl_tls_free from inside a callback only sets `free_pending',
 * and the filter is destroyed when the outermost entry returns.  After each
 * callback the pump checks `dead()' and stops.
 *
 * This file knows nothing of libuv.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "internal.h"

#define ERR_LEN 1024
/* An `out' buffer larger than this is freed once drained (idle memory
 * stays small); smaller ones are kept for the next batch. */
#define OUT_KEEP 4096
/* Ciphertext batches are handed on once they exceed this much, so a large
 * casl_tls_write does not buffer its whole output. */
#define OUT_FLUSH (256 * 1024)
/* Largest plaintext given to one SSL_write. */
#define WRITE_CHUNK (256 * 1024)
#define SESSION_CACHE_DEFAULT 1024
#define SID_CTX "cl-async-ssl"

/* A growable byte buffer; bytes [off, len) are live. */
struct buf {
  char *data;
  size_t off, len, cap;
};

struct sni_entry {
  char *pattern;
  casl_tls_ctx *child;
};

struct session_entry {
  char *key;
  SSL_SESSION *sess;
  uint64_t stamp; /* last use, for LRU eviction */
};

struct casl_tls_ctx {
  SSL_CTX *ssl_ctx;
  atomic_long refs;
  int server;
  int adopted;
  int verify;
  int cert_type; /* EVP_PKEY base id of the last certificate loaded */
  int key_type;  /* and of the last private key */
  char err[ERR_LEN];
  /* server: ALPN preference list, wire format */
  unsigned char *alpn;
  size_t alpn_len;
  /* server: SNI */
  struct sni_entry *sni;
  size_t nsni;
  int sni_ask;
  /* client: session cache, guarded by lock (filters on several threads
   * may share a context) */
  pthread_mutex_t lock;
  struct session_entry *sessions;
  size_t nsessions;
  int session_max;
  uint64_t clock;
  /* key log */
  casl_tls_keylog_cb keylog_cb;
  void *keylog_ud;
  char *keylog_path;
};

struct casl_tls {
  SSL *ssl;
  casl_tls_ctx *ctx;     /* referenced */
  casl_tls_ctx *cur_ctx; /* ctx, or the SNI child (referenced if != ctx) */
  casl_tls_callbacks cbs;
  void *ud;
  int server;
  int depth;
  unsigned started : 1;
  unsigned hs_done : 1;
  unsigned failed : 1;
  unsigned free_pending : 1;
  unsigned peer_closed : 1; /* close_notify received (and reported) */
  unsigned shut : 1;        /* casl_tls_shutdown called */
  unsigned shut_sent : 1;   /* SSL_shutdown done */
  unsigned eof : 1;         /* casl_tls_eof called */
  unsigned sni_wait : 1;    /* paused for the application's SNI choice */
  unsigned sni_done : 1;    /* the SNI choice is made */
  unsigned in_write : 1;    /* inside write_held (no nested SSL_write) */
  unsigned in_emit : 1;     /* inside emit_pending */
  /* input: `in' (owned, older) then ext_ptr/ext_len (the caller's) */
  struct buf in;
  const char *ext_ptr;
  size_t ext_len;
  /* ciphertext produced and not yet handed to `ciphertext' */
  struct buf out;
  /* plaintext held before the handshake, or for an SSL_write retry */
  struct buf held;
  size_t retry_len; /* length of the SSL_write that must be retried */
  /* key log lines (NUL-terminated, back to back) not yet delivered */
  struct buf klog;
  char *session_key;
  char *server_name;
  char *alpn;
  int have_cert;
  casl_tls_cert_info cert;
  char err[ERR_LEN];
};

static atomic_long live_filters;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int ssl_idx = -1;
static BIO_METHOD *bio_method;

static BIO_METHOD *make_bio_method(void);

static void tls_init(void) {
  ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  bio_method = make_bio_method();
}

static int tls_global_init(void) {
  casl__global_init();
  (void)pthread_once(&tls_once, tls_init);
  return ssl_idx >= 0 && bio_method != NULL ? 0 : CASL_ENOMEM;
}

/* Empties this thread's OpenSSL error queue before an SSL call, so that
 * SSL_get_error sees only what the call left.  ERR_clear_error walks the
 * whole queue; peeking first keeps the common (empty) case cheap. */
static void clear_errors(void) {
  if (ERR_peek_error() != 0)
    ERR_clear_error();
}

/* ------------------------------------------------------------------------ */
/* Buffers and error text                                                    */

static int buf_reserve(struct buf *b, size_t extra) {
  size_t need, cap;
  char *p;
  if (b->len + extra <= b->cap)
    return 0;
  if (b->off > 0 && b->len - b->off + extra <= b->cap) {
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    return 0;
  }
  need = b->len - b->off + extra;
  cap = b->cap ? b->cap * 2 : 1024;
  while (cap < need)
    cap *= 2;
  if (b->off == 0) {
    p = realloc(b->data, cap);
    if (p == NULL)
      return CASL_ENOMEM;
  } else {
    p = malloc(cap);
    if (p == NULL)
      return CASL_ENOMEM;
    memcpy(p, b->data + b->off, b->len - b->off);
    free(b->data);
    b->len -= b->off;
    b->off = 0;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

static int buf_append(struct buf *b, const void *p, size_t len) {
  if (len == 0)
    return 0;
  if (buf_reserve(b, len) != 0)
    return CASL_ENOMEM;
  memcpy(b->data + b->len, p, len);
  b->len += len;
  return 0;
}

static size_t buf_size(const struct buf *b) { return b->len - b->off; }

static void buf_free(struct buf *b) {
  /* The analyzer assumes the `ciphertext' callback in emit_pending may
   * store the buffer it was given back into t->out; it cannot (it gets a
   * const pointer into a buffer already detached from the filter). */
  free(b->data); /* NOLINT(clang-analyzer-unix.Malloc) */
  memset(b, 0, sizeof(*b));
}

/* Called when a buffer is empty: keeps small buffers, frees big ones. */
static void buf_drained(struct buf *b, size_t keep) {
  b->off = b->len = 0;
  if (b->cap > keep)
    buf_free(b);
}

static void str_append(char *dst, size_t cap, const char *src) {
  size_t n = strlen(dst);
  if (n + 1 < cap)
    casl__strlcpy(dst + n, src, cap - n);
}

/* Appends OpenSSL's error queue (emptying it) to dst.  with_data also adds
 * the optional data strings (left out where a key is parsed). */
static void append_err_queue(char *dst, size_t cap, int with_data) {
  unsigned long e;
  const char *data;
  int flags;
  char one[256];
  while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
    ERR_error_string_n(e, one, sizeof(one));
    if (dst[0] != '\0')
      str_append(dst, cap, "; ");
    str_append(dst, cap, one);
    if (with_data && (flags & ERR_TXT_STRING) && data != NULL &&
        data[0] != '\0') {
      str_append(dst, cap, " (");
      str_append(dst, cap, data);
      str_append(dst, cap, ")");
    }
  }
}

static int ctx_fail(casl_tls_ctx *ctx, int code, const char *what,
                    int with_data) {
  ctx->err[0] = '\0';
  casl__strlcpy(ctx->err, what, sizeof(ctx->err));
  if (ERR_peek_error() != 0) {
    str_append(ctx->err, sizeof(ctx->err), ": ");
    {
      char q[ERR_LEN] = "";
      append_err_queue(q, sizeof(q), with_data);
      str_append(ctx->err, sizeof(ctx->err), q);
    }
  }
  ERR_clear_error();
  return code;
}

static void ctx_ok(casl_tls_ctx *ctx) { ctx->err[0] = '\0'; }

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p != NULL)
    memcpy(p, s, n);
  return p;
}

/* ------------------------------------------------------------------------ */
/* The BIO: reads from the filter's input, writes to its output              */

static int bio_write(BIO *b, const char *data, int len) {
  casl_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len <= 0)
    return 0;
  if (buf_append(&t->out, data, (size_t)len) != 0)
    return -1;
  return len;
}

static int bio_read(BIO *b, char *dst, int len) {
  casl_tls *t = BIO_get_data(b);
  size_t n, avail;
  BIO_clear_retry_flags(b);
  if (len <= 0)
    return 0;
  avail = buf_size(&t->in);
  if (avail > 0) {
    n = avail < (size_t)len ? avail : (size_t)len;
    memcpy(dst, t->in.data + t->in.off, n);
    t->in.off += n;
    if (t->in.off == t->in.len)
      buf_drained(&t->in, 0);
    return (int)n;
  }
  if (t->ext_len > 0) {
    n = t->ext_len < (size_t)len ? t->ext_len : (size_t)len;
    memcpy(dst, t->ext_ptr, n);
    t->ext_ptr += n;
    t->ext_len -= n;
    return (int)n;
  }
  if (t->eof)
    return 0;
  BIO_set_retry_read(b);
  return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  casl_tls *t = BIO_get_data(b);
  (void)num;
  (void)ptr;
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1;
  case BIO_CTRL_EOF:
    return t != NULL && t->eof && buf_size(&t->in) == 0 && t->ext_len == 0;
  case BIO_CTRL_PENDING:
    return t != NULL ? (long)(buf_size(&t->in) + t->ext_len) : 0;
  case BIO_CTRL_WPENDING:
    return t != NULL ? (long)buf_size(&t->out) : 0;
  default:
    return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *make_bio_method(void) {
  BIO_METHOD *m;
  int type = BIO_get_new_index();
  if (type == -1)
    return NULL;
  m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "casl_tls");
  if (m == NULL)
    return NULL;
  if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
      !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
    BIO_meth_free(m);
    return NULL;
  }
  return m;
}

/* ------------------------------------------------------------------------ */
/* OpenSSL callbacks (no application code runs in them)                      */

static casl_tls *tls_of(const SSL *ssl) {
  return ssl_idx >= 0 ? SSL_get_ex_data(ssl, ssl_idx) : NULL;
}

static casl_tls_ctx *keylog_ctx(casl_tls *t) {
  if (t->cur_ctx->keylog_cb != NULL || t->cur_ctx->keylog_path != NULL)
    return t->cur_ctx;
  return t->ctx;
}

static void keylog_append_file(const char *path, const char *line) {
  size_t n = strlen(line);
  char *tmp = malloc(n + 1);
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
  free(tmp);
}

static void keylog_cb(const SSL *ssl, const char *line) {
  casl_tls *t = tls_of(ssl);
  casl_tls_ctx *ctx;
  if (t == NULL)
    return;
  ctx = keylog_ctx(t);
  if (ctx->keylog_path != NULL)
    keylog_append_file(ctx->keylog_path, line);
  if (ctx->keylog_cb != NULL)
    (void)buf_append(&t->klog, line, strlen(line) + 1);
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out,
                          unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg) {
  casl_tls *t = tls_of(ssl);
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
      name = malloc(n + 1);
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
static int switch_ctx(casl_tls *t, casl_tls_ctx *child) {
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

static int client_hello_cb(SSL *ssl, int *al, void *arg) {
  casl_tls *t = tls_of(ssl);
  size_t i;
  (void)arg;
  if (t == NULL || t->sni_done)
    return SSL_CLIENT_HELLO_SUCCESS;
  if (t->sni_wait)
    return SSL_CLIENT_HELLO_RETRY;
  free(t->server_name);
  t->server_name = client_hello_name(ssl);
  if (t->server_name != NULL) {
    for (i = 0; i < t->ctx->nsni; i++) {
      if (sni_match(t->ctx->sni[i].pattern, t->server_name)) {
        if (switch_ctx(t, t->ctx->sni[i].child) != 0) {
          *al = SSL_AD_INTERNAL_ERROR;
          return SSL_CLIENT_HELLO_ERROR;
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
static int new_session_cb(SSL *ssl, SSL_SESSION *sess) {
  casl_tls *t = tls_of(ssl);
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
    key = dup_str(t->session_key);
    if (key == NULL)
      goto done;
    if (ctx->nsessions < (size_t)ctx->session_max) {
      e = &ctx->sessions[ctx->nsessions++];
    } else {
      e = oldest;
      free(e->key);
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
static SSL_SESSION *session_lookup(casl_tls_ctx *ctx, const char *key) {
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

/* ------------------------------------------------------------------------ */
/* Contexts                                                                  */

static int session_cache_alloc(casl_tls_ctx *ctx, int max) {
  struct session_entry *p;
  size_t i;
  pthread_mutex_lock(&ctx->lock);
  for (i = 0; i < ctx->nsessions; i++) {
    free(ctx->sessions[i].key);
    SSL_SESSION_free(ctx->sessions[i].sess);
  }
  free(ctx->sessions);
  ctx->sessions = NULL;
  ctx->nsessions = 0;
  ctx->session_max = 0;
  if (max > 0) {
    p = calloc((size_t)max, sizeof(*p));
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

static casl_tls_ctx *ctx_alloc(SSL_CTX *ssl_ctx, int server, int adopted) {
  casl_tls_ctx *ctx = calloc(1, sizeof(*ctx));
  if (ctx == NULL)
    return NULL;
  if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
    free(ctx);
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
  if ((rc = tls_global_init()) != 0)
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
    SSL_CTX_set_alpn_select_cb(c, alpn_select_cb, NULL);
    SSL_CTX_set_client_hello_cb(c, client_hello_cb, NULL);
    ctx->verify = CASL_VERIFY_NONE;
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT |
                                          SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, new_session_cb);
    if (session_cache_alloc(ctx, SESSION_CACHE_DEFAULT) != 0)
      goto nomem;
    ctx->verify = CASL_VERIFY_PEER;
  }
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
  if ((rc = tls_global_init()) != 0)
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
  size_t i;
  if (ctx == NULL || atomic_fetch_sub(&ctx->refs, 1) != 1)
    return;
  for (i = 0; i < ctx->nsni; i++) {
    free(ctx->sni[i].pattern);
    casl_tls_ctx_unref(ctx->sni[i].child);
  }
  free(ctx->sni);
  (void)session_cache_alloc(ctx, 0);
  free(ctx->alpn);
  free(ctx->keylog_path);
  /* For an adopted context this drops only the reference we took. */
  SSL_CTX_free(ctx->ssl_ctx);
  pthread_mutex_destroy(&ctx->lock);
  free(ctx);
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
  ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_clear_options(casl_tls_ctx *ctx, uint64_t options) {
  if (ctx == NULL)
    return CASL_EINVAL;
  SSL_CTX_clear_options(ctx->ssl_ctx, options);
  ctx_ok(ctx);
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
    return ctx_fail(ctx, CASL_ECONFIG, "cipher list rejected", 1);
  ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_ciphersuites(casl_tls_ctx *ctx, const char *suites) {
  if (ctx == NULL || suites == NULL)
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_set_ciphersuites(ctx->ssl_ctx, suites))
    return ctx_fail(ctx, CASL_ECONFIG, "TLS 1.3 cipher suites rejected", 1);
  ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_groups(casl_tls_ctx *ctx, const char *groups) {
  if (ctx == NULL || groups == NULL)
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_set1_groups_list(ctx->ssl_ctx, groups))
    return ctx_fail(ctx, CASL_ECONFIG, "key exchange groups rejected", 1);
  ctx_ok(ctx);
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
    return ctx_fail(ctx, CASL_ECONFIG, "protocol version bounds rejected", 1);
  ctx_ok(ctx);
  return 0;
}

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
    return ctx_fail(ctx, CASL_ECONFIG, what, 1);
  }
  if ((rc = check_after_cert(ctx)) != 0)
    return rc;
  ctx_ok(ctx);
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
    return ctx_fail(ctx, CASL_ENOMEM, "out of memory", 0);
  x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
  if (x == NULL) {
    rc = ctx_fail(ctx, CASL_ECONFIG, "no certificate in the PEM data", 1);
    goto done;
  }
  if (!SSL_CTX_use_certificate(ctx->ssl_ctx, x) ||
      !SSL_CTX_clear_chain_certs(ctx->ssl_ctx)) {
    rc = ctx_fail(ctx, CASL_ECONFIG, "certificate rejected", 1);
    goto done;
  }
  X509_free(x);
  for (;;) {
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (x == NULL)
      break;
    if (!SSL_CTX_add0_chain_cert(ctx->ssl_ctx, x)) {
      rc = ctx_fail(ctx, CASL_ECONFIG, "chain certificate rejected", 1);
      goto done;
    }
    x = NULL; /* owned by the context now */
  }
  /* The loop ends on "no start line" at the end of the data. */
  if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE &&
      ERR_peek_last_error() != 0) {
    rc = ctx_fail(ctx, CASL_ECONFIG, "bad chain certificate", 1);
    goto done;
  }
  ERR_clear_error();
  if ((rc = check_after_cert(ctx)) == 0)
    ctx_ok(ctx);
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
    pkey = PEM_read_bio_PrivateKey(bio, NULL, key_password_cb,
                                   (void *)password);
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
    return ctx_fail(ctx, CASL_ECONFIG,
                    password != NULL
                        ? "could not load the private key (wrong password?)"
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
  ctx_ok(ctx);
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
      p = malloc(ncap);
      if (p == NULL)
        goto fail;
      if (data != NULL) {
        memcpy(p, data, n);
        OPENSSL_cleanse(data, cap);
        free(data);
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
    free(data);
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
  free(data);
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
    return ctx_fail(ctx, CASL_ECONFIG,
                    "the private key does not match the certificate", 0);
  ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_load_verify_locations(casl_tls_ctx *ctx, const char *file,
                                       const char *dir) {
  if (ctx == NULL || (file == NULL && dir == NULL))
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_load_verify_locations(ctx->ssl_ctx, file, dir))
    return ctx_fail(ctx, CASL_ECONFIG, "could not load the trust anchors", 1);
  ctx_ok(ctx);
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
    return ctx_fail(ctx, CASL_ENOMEM, "out of memory", 0);
  }
  while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
    if (!X509_STORE_add_cert(store, x)) {
      X509_free(x);
      BIO_free(bio);
      return ctx_fail(ctx, CASL_ECONFIG, "trust anchor rejected", 1);
    }
    X509_free(x);
    n++;
  }
  BIO_free(bio);
  if (n == 0 || (ERR_peek_last_error() != 0 &&
                 ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE))
    return ctx_fail(ctx, CASL_ECONFIG,
                    n == 0 ? "no certificate in the PEM data"
                           : "bad certificate in the PEM data",
                    1);
  ERR_clear_error();
  ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_load_system_trust(casl_tls_ctx *ctx) {
  if (ctx == NULL)
    return CASL_EINVAL;
  ERR_clear_error();
  if (!SSL_CTX_set_default_verify_paths(ctx->ssl_ctx))
    return ctx_fail(ctx, CASL_ECONFIG, "could not load the system trust store",
                    1);
  ctx_ok(ctx);
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
  ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_get_verify(const casl_tls_ctx *ctx) {
  return ctx != NULL ? ctx->verify : CASL_VERIFY_NONE;
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
      return ctx_fail(ctx, CASL_ENOMEM, "ALPN list rejected", 1);
    ctx_ok(ctx);
    return 0;
  }
  if (len > 0) {
    copy = malloc(len);
    if (copy == NULL)
      return CASL_ENOMEM;
    memcpy(copy, wire, len);
  }
  free(ctx->alpn);
  ctx->alpn = copy;
  ctx->alpn_len = len;
  if (ctx->adopted && copy != NULL)
    SSL_CTX_set_alpn_select_cb(ctx->ssl_ctx, alpn_select_cb, NULL);
  ctx_ok(ctx);
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
  pat = dup_str(pattern);
  if (pat == NULL)
    return CASL_ENOMEM;
  p = realloc(ctx->sni, (ctx->nsni + 1) * sizeof(*p));
  if (p == NULL) {
    free(pat);
    return CASL_ENOMEM;
  }
  ctx->sni = p;
  p[ctx->nsni].pattern = pat;
  p[ctx->nsni].child = child;
  ctx->nsni++;
  casl_tls_ctx_ref(child);
  if (ctx->adopted)
    SSL_CTX_set_client_hello_cb(ctx->ssl_ctx, client_hello_cb, NULL);
  ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_sni_ask(casl_tls_ctx *ctx, int on) {
  if (ctx == NULL || !ctx->server)
    return CASL_EINVAL;
  ctx->sni_ask = on != 0;
  if (ctx->adopted && on)
    SSL_CTX_set_client_hello_cb(ctx->ssl_ctx, client_hello_cb, NULL);
  ctx_ok(ctx);
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
    ctx_ok(ctx);
    return 0;
  }
  if (session_cache_alloc(ctx, max) != 0)
    return CASL_ENOMEM;
  if (max > 0) {
    SSL_CTX_set_session_cache_mode(ctx->ssl_ctx,
                                   SSL_SESS_CACHE_CLIENT |
                                       SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx->ssl_ctx, new_session_cb);
  }
  ctx_ok(ctx);
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
  ctx_ok(ctx);
  return 0;
}

int casl_tls_ctx_set_keylog_file(casl_tls_ctx *ctx, const char *path) {
  char *copy = NULL;
  if (ctx == NULL)
    return CASL_EINVAL;
  if (path != NULL) {
    copy = dup_str(path);
    if (copy == NULL)
      return CASL_ENOMEM;
  }
  free(ctx->keylog_path);
  ctx->keylog_path = copy;
  keylog_update(ctx);
  ctx_ok(ctx);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Constants                                                                 */

/* OpenSSL 3 keeps these defined as 0; they stay in the table for programs
 * written against older versions (mapped to 0 if a header lacks them). */
#ifndef SSL_OP_SINGLE_ECDH_USE
#define SSL_OP_SINGLE_ECDH_USE 0
#endif
#ifndef SSL_OP_SINGLE_DH_USE
#define SSL_OP_SINGLE_DH_USE 0
#endif
#ifndef SSL_OP_EPHEMERAL_RSA
#define SSL_OP_EPHEMERAL_RSA 0
#endif
#ifndef SSL_OP_NO_SSLv2
#define SSL_OP_NO_SSLv2 0
#endif

#define CONSTANTS(X)                                                        \
  X(SSL_OP_ALL)                                                             \
  X(SSL_OP_NO_QUERY_MTU)                                                    \
  X(SSL_OP_COOKIE_EXCHANGE)                                                 \
  X(SSL_OP_NO_TICKET)                                                       \
  X(SSL_OP_CISCO_ANYCONNECT)                                                \
  X(SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION)                          \
  X(SSL_OP_NO_COMPRESSION)                                                  \
  X(SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION)                               \
  X(SSL_OP_SINGLE_ECDH_USE)                                                 \
  X(SSL_OP_SINGLE_DH_USE)                                                   \
  X(SSL_OP_EPHEMERAL_RSA)                                                   \
  X(SSL_OP_CIPHER_SERVER_PREFERENCE)                                        \
  X(SSL_OP_TLS_ROLLBACK_BUG)                                                \
  X(SSL_OP_NO_SSLv2)                                                        \
  X(SSL_OP_NO_SSLv3)                                                        \
  X(SSL_OP_NO_TLSv1)                                                        \
  X(SSL_OP_NO_TLSv1_1)                                                      \
  X(SSL_OP_NO_TLSv1_2)                                                      \
  X(SSL_OP_NO_TLSv1_3)                                                      \
  X(SSL_OP_NO_RENEGOTIATION)                                                \
  X(SSL_OP_ALLOW_CLIENT_RENEGOTIATION)                                      \
  X(SSL_OP_LEGACY_SERVER_CONNECT)                                           \
  X(SSL_OP_NO_ENCRYPT_THEN_MAC)                                             \
  X(SSL_OP_NO_EXTENDED_MASTER_SECRET)                                       \
  X(SSL_OP_ENABLE_MIDDLEBOX_COMPAT)                                         \
  X(SSL_OP_PRIORITIZE_CHACHA)                                               \
  X(SSL_OP_NO_ANTI_REPLAY)                                                  \
  X(SSL_OP_IGNORE_UNEXPECTED_EOF)                                           \
  X(SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS)                                     \
  X(SSL_OP_SAFARI_ECDHE_ECDSA_BUG)                                          \
  X(SSL_OP_TLSEXT_PADDING)                                                  \
  X(SSL_OP_CRYPTOPRO_TLSEXT_BUG)                                            \
  X(SSL_OP_DISABLE_TLSEXT_CA_NAMES)                                         \
  X(SSL_OP_ALLOW_NO_DHE_KEX)                                                \
  X(SSL_OP_CLEANSE_PLAINTEXT)                                               \
  X(SSL_OP_ENABLE_KTLS)                                                     \
  X(SSL_OP_MICROSOFT_SESS_ID_BUG)                                           \
  X(SSL_OP_NETSCAPE_CHALLENGE_BUG)                                          \
  X(SSL_OP_NETSCAPE_REUSE_CIPHER_CHANGE_BUG)                                \
  X(SSL_OP_MICROSOFT_BIG_SSLV3_BUFFER)                                      \
  X(SSL_OP_TLS_D5_BUG)                                                      \
  X(SSL_OP_TLS_BLOCK_PADDING_BUG)                                           \
  X(SSL_VERIFY_NONE)                                                        \
  X(SSL_VERIFY_PEER)                                                        \
  X(SSL_VERIFY_FAIL_IF_NO_PEER_CERT)                                        \
  X(SSL_VERIFY_CLIENT_ONCE)                                                 \
  X(SSL_VERIFY_POST_HANDSHAKE)

#define CONST_VALUE(name) (uint64_t)(name),
#define CONST_NAME(name) #name,
static const uint64_t constant_values[] = {CONSTANTS(CONST_VALUE)};
static const char *const constant_names[] = {CONSTANTS(CONST_NAME) NULL};

int casl_tls_constant(const char *name, uint64_t *out) {
  size_t i;
  if (name == NULL || out == NULL)
    return CASL_EINVAL;
  for (i = 0; constant_names[i] != NULL; i++) {
    if (strcmp(constant_names[i], name) == 0) {
      *out = constant_values[i];
      return 0;
    }
  }
  return CASL_EINVAL;
}

const char *const *casl_tls_constant_names(void) { return constant_names; }

/* ------------------------------------------------------------------------ */
/* The filter                                                                */

static int dead(const casl_tls *t) { return t->failed || t->free_pending; }

static void destroy(casl_tls *t) {
  SSL_free(t->ssl); /* frees the BIO too */
  buf_free(&t->in);
  buf_free(&t->out);
  if (t->held.data != NULL)
    OPENSSL_cleanse(t->held.data, t->held.cap);
  buf_free(&t->held);
  if (t->klog.data != NULL)
    OPENSSL_cleanse(t->klog.data, t->klog.cap);
  buf_free(&t->klog);
  free(t->session_key);
  free(t->server_name);
  free(t->alpn);
  free((char *)t->cert.subject);
  free((char *)t->cert.issuer);
  free((char *)t->cert.sans);
  free((char *)t->cert.serial);
  free((char *)t->cert.sha256);
  free((char *)t->cert.pem);
  if (t->cur_ctx != t->ctx)
    casl_tls_ctx_unref(t->cur_ctx);
  casl_tls_ctx_unref(t->ctx);
  atomic_fetch_sub(&live_filters, 1);
  free(t);
}

static void enter(casl_tls *t) { t->depth++; }

static int leave(casl_tls *t, int rc) {
  if (--t->depth == 0 && t->free_pending)
    destroy(t);
  return rc;
}

/* Hands queued key log lines, then the ciphertext produced so far, to the
 * application: this runs before every other callback, so bytes always go
 * out in order (alerts before `error', the Finished flight before
 * `handshake').  Returns non-zero when the filter was freed meanwhile. */
static int emit_pending(casl_tls *t) {
  struct buf b;
  size_t off;
  static const struct buf empty;
  if (t->in_emit)
    return t->free_pending; /* the outer emit_pending sends the rest */
  t->in_emit = 1;
  while (!t->free_pending &&
         (buf_size(&t->klog) > 0 || buf_size(&t->out) > 0)) {
    if (buf_size(&t->klog) > 0) {
      casl_tls_ctx *ctx = keylog_ctx(t);
      b = t->klog;
      t->klog = empty;
      for (off = b.off; off < b.len && !t->free_pending;) {
        const char *line = b.data + off;
        off += strlen(line) + 1;
        if (ctx->keylog_cb != NULL)
          ctx->keylog_cb(ctx->keylog_ud, line);
      }
      OPENSSL_cleanse(b.data, b.cap);
      buf_free(&b);
      continue;
    }
    b = t->out;
    t->out = empty;
    t->cbs.ciphertext(t->ud, b.data + b.off, b.len - b.off);
    if (t->out.data == NULL && b.cap <= OUT_KEEP) {
      b.off = b.len = 0;
      t->out = b;
    } else {
      buf_free(&b);
    }
  }
  t->in_emit = 0;
  return t->free_pending;
}

/* Text and code for a failed SSL call.  Call it right after SSL_get_error,
 * before any callback can touch the error queue. */
static int ssl_failure(casl_tls *t, int sslerr) {
  char q[ERR_LEN] = "", one[256];
  unsigned long e;
  const char *data;
  int flags, saw_verify = 0, saw_nocert = 0, saw_eof = 0;
  long vr;
  while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
    if (ERR_GET_LIB(e) == ERR_LIB_SSL) {
      switch (ERR_GET_REASON(e)) {
      case SSL_R_CERTIFICATE_VERIFY_FAILED:
        saw_verify = 1;
        break;
      case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        saw_nocert = 1;
        break;
      case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        saw_eof = 1;
        break;
      default:
        break;
      }
    }
    ERR_error_string_n(e, one, sizeof(one));
    if (q[0] != '\0')
      str_append(q, sizeof(q), "; ");
    str_append(q, sizeof(q), one);
    if ((flags & ERR_TXT_STRING) && data != NULL && data[0] != '\0') {
      str_append(q, sizeof(q), " (");
      str_append(q, sizeof(q), data);
      str_append(q, sizeof(q), ")");
    }
  }
  vr = SSL_get_verify_result(t->ssl);
  if (saw_verify && vr != X509_V_OK) {
    casl__strlcpy(t->err, "certificate verify failed: ", sizeof(t->err));
    str_append(t->err, sizeof(t->err), X509_verify_cert_error_string(vr));
    return CASL_EVERIFY;
  }
  if (saw_nocert) {
    casl__strlcpy(t->err,
                  "certificate verify failed: the peer did not return a "
                  "certificate (one is required)",
                  sizeof(t->err));
    return CASL_EVERIFY;
  }
  if (saw_eof || (sslerr == SSL_ERROR_SYSCALL && q[0] == '\0')) {
    casl__strlcpy(t->err,
                  t->hs_done
                      ? "connection closed without a TLS close_notify "
                        "(truncated)"
                      : "connection closed during the TLS handshake",
                  sizeof(t->err));
    if (q[0] != '\0') {
      str_append(t->err, sizeof(t->err), ": ");
      str_append(t->err, sizeof(t->err), q);
    }
    return t->hs_done ? CASL_ETRUNCATED : CASL_ETLS;
  }
  if (sslerr == SSL_ERROR_ZERO_RETURN) {
    casl__strlcpy(t->err,
                  "the peer sent close_notify during the TLS handshake",
                  sizeof(t->err));
    return CASL_ETLS;
  }
  if (q[0] != '\0')
    casl__strlcpy(t->err, q, sizeof(t->err));
  else
    snprintf(t->err, sizeof(t->err), "TLS failure (SSL_get_error %d)",
             sslerr);
  return CASL_ETLS;
}

/* A fatal error: emits pending alert bytes, then `error' (once). */
static void fail(casl_tls *t, int code) {
  if (t->failed)
    return;
  t->failed = 1;
  buf_drained(&t->in, 0);
  t->ext_len = 0;
  if (emit_pending(t))
    return;
  if (t->cbs.error != NULL)
    t->cbs.error(t->ud, code);
}

static void fail_text(casl_tls *t, int code, const char *text) {
  casl__strlcpy(t->err, text, sizeof(t->err));
  fail(t, code);
}

static void maybe_shutdown(casl_tls *t) {
  int r, err;
  if (!t->shut || t->shut_sent || !t->hs_done || dead(t) ||
      buf_size(&t->held) > 0)
    return;
  t->shut_sent = 1;
  clear_errors();
  r = SSL_shutdown(t->ssl);
  if (r < 0) {
    err = SSL_get_error(t->ssl, r);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
      fail(t, ssl_failure(t, err));
      return;
    }
  }
  (void)emit_pending(t);
}

/* Encrypts the held plaintext (after the handshake, or to retry a write
 * OpenSSL could not finish).  Returns non-zero when the filter stops. */
static int write_held(casl_tls *t) {
  size_t n, w;
  int err;
  if (t->in_write)
    return dead(t); /* the outer write_held picks up what was added */
  t->in_write = 1;
  while (buf_size(&t->held) > 0 && !dead(t)) {
    n = t->retry_len;
    if (n == 0)
      n = buf_size(&t->held) < WRITE_CHUNK ? buf_size(&t->held) : WRITE_CHUNK;
    clear_errors();
    if (!SSL_write_ex(t->ssl, t->held.data + t->held.off, n, &w)) {
      err = SSL_get_error(t->ssl, 0);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        t->retry_len = n; /* OpenSSL wants the same length again */
        break;
      }
      t->in_write = 0;
      fail(t, ssl_failure(t, err));
      return 1;
    }
    t->retry_len = 0;
    t->held.off += n;
    if (buf_size(&t->out) >= OUT_FLUSH && emit_pending(t))
      break;
  }
  if (buf_size(&t->held) == 0 && !t->free_pending)
    buf_drained(&t->held, 0);
  t->in_write = 0;
  return dead(t);
}

static void cache_alpn(casl_tls *t) {
  const unsigned char *p;
  unsigned int n;
  SSL_get0_alpn_selected(t->ssl, &p, &n);
  if (p == NULL || n == 0)
    return;
  t->alpn = malloc(n + 1);
  if (t->alpn == NULL)
    return;
  memcpy(t->alpn, p, n);
  t->alpn[n] = '\0';
}

/* An SSL_read/SSL_peek stopped with err (code: from ssl_failure, taken
 * before any callback, for fatal errors). */
static void read_stopped(casl_tls *t, int err, int code) {
  switch (err) {
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE:
    (void)emit_pending(t);
    return;
  case SSL_ERROR_ZERO_RETURN:
    if (t->peer_closed)
      return;
    t->peer_closed = 1;
    if (emit_pending(t))
      return;
    if (t->cbs.close_notify != NULL)
      t->cbs.close_notify(t->ud);
    return;
  default:
    fail(t, code);
  }
}

/* True when OpenSSL holds no unread record and the BIO no input, so a
 * read could only return WANT_READ (not at EOF: that read reports it). */
static int input_exhausted(casl_tls *t) {
  return !t->eof && t->ext_len == 0 && buf_size(&t->in) == 0 &&
         SSL_pending(t->ssl) == 0 && !SSL_has_pending(t->ssl);
}

static int fatal(int err) {
  return err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE &&
         err != SSL_ERROR_ZERO_RETURN;
}

/* Drives the connection as far as the input allows.  Every callback is
 * followed by a dead() check; nothing is kept in locals across a callback
 * that a nested call could invalidate. */
static void pump(casl_tls *t) {
  int r, err, code;
  size_t n, got, cap;
  char *buf;
  unsigned char c;

  if (dead(t) || !t->started)
    return;
  if (!t->hs_done) {
    if (t->sni_wait)
      return;
    clear_errors();
    r = SSL_do_handshake(t->ssl);
    if (r != 1) {
      err = SSL_get_error(t->ssl, r);
      switch (err) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
      case SSL_ERROR_WANT_X509_LOOKUP:
        (void)emit_pending(t);
        return;
      case SSL_ERROR_WANT_CLIENT_HELLO_CB:
        if (emit_pending(t) || !t->sni_wait)
          return;
        t->cbs.sni(t->ud, t->server_name);
        return;
      default:
        fail(t, ssl_failure(t, err));
        return;
      }
    }
    t->hs_done = 1;
    cache_alpn(t);
    if (write_held(t) || emit_pending(t))
      return;
    if (t->cbs.handshake != NULL) {
      t->cbs.handshake(t->ud);
      if (dead(t))
        return;
    }
    maybe_shutdown(t);
  }

  while (!dead(t) && !t->peer_closed) {
    /* Peek first, so `alloc' is only asked when there is plaintext. */
    clear_errors();
    if (!SSL_peek_ex(t->ssl, &c, 1, &got)) {
      err = SSL_get_error(t->ssl, 0);
      read_stopped(t, err, fatal(err) ? ssl_failure(t, err) : 0);
      break;
    }
    if (emit_pending(t))
      return;
    buf = NULL;
    cap = 0;
    t->cbs.alloc(t->ud, &buf, &cap);
    if (dead(t))
      return;
    if (buf == NULL || cap == 0) {
      fail_text(t, CASL_ENOMEM, "no buffer to decrypt into");
      return;
    }
    n = 0;
    err = SSL_ERROR_NONE;
    code = 0;
    while (n < cap) {
      clear_errors();
      if (!SSL_read_ex(t->ssl, buf + n, cap - n, &got)) {
        err = SSL_get_error(t->ssl, 0);
        if (fatal(err))
          code = ssl_failure(t, err);
        break;
      }
      n += got;
      if (n < cap && input_exhausted(t)) {
        /* Nothing left to decrypt: spare the SSL_read that would only
         * say so. */
        err = SSL_ERROR_WANT_READ;
        break;
      }
    }
    t->cbs.plaintext(t->ud, buf, n);
    if (dead(t))
      return;
    if (err != SSL_ERROR_NONE) {
      read_stopped(t, err, code);
      break;
    }
  }
  if (!dead(t) && buf_size(&t->held) > 0 && !write_held(t))
    (void)emit_pending(t);
  maybe_shutdown(t);
}

static int is_ip(const char *s) {
  unsigned char a[16];
  return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

int casl_tls_new(casl_tls **out, casl_tls_ctx *ctx, int server,
                 const char *name, const char *session_key,
                 const casl_tls_callbacks *cbs, void *ud) {
  casl_tls *t;
  BIO *bio;
  SSL_SESSION *sess;
  int rc;
  if (out == NULL)
    return CASL_EINVAL;
  *out = NULL;
  if (ctx == NULL || cbs == NULL || cbs->alloc == NULL ||
      cbs->plaintext == NULL || cbs->ciphertext == NULL ||
      (server != 0) != (ctx->server != 0))
    return CASL_EINVAL;
  if ((rc = tls_global_init()) != 0)
    return rc;
  t = calloc(1, sizeof(*t));
  if (t == NULL)
    return CASL_ENOMEM;
  t->cbs = *cbs;
  t->ud = ud;
  t->server = server != 0;
  t->ctx = t->cur_ctx = ctx;
  ERR_clear_error();
  t->ssl = SSL_new(ctx->ssl_ctx);
  if (t->ssl == NULL) {
    rc = ctx_fail(ctx, CASL_ECONFIG, "could not create a connection", 1);
    goto fail;
  }
  bio = BIO_new(bio_method);
  if (bio == NULL) {
    rc = CASL_ENOMEM;
    goto fail;
  }
  BIO_set_data(bio, t);
  SSL_set_bio(t->ssl, bio, bio);
  if (!SSL_set_ex_data(t->ssl, ssl_idx, t)) {
    rc = CASL_ENOMEM;
    goto fail;
  }
  if (server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (name != NULL && name[0] != '\0') {
      if (is_ip(name)) {
        /* IP literals: checked against IP SANs, never sent as SNI. */
        if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name)) {
          rc = CASL_EINVAL;
          goto fail;
        }
      } else {
        if (!SSL_set_tlsext_host_name(t->ssl, name) ||
            !SSL_set1_host(t->ssl, name)) {
          rc = CASL_EINVAL;
          goto fail;
        }
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      }
    }
    if (session_key != NULL) {
      t->session_key = dup_str(session_key);
      if (t->session_key == NULL) {
        rc = CASL_ENOMEM;
        goto fail;
      }
      sess = session_lookup(ctx, session_key);
      if (sess != NULL) {
        if (!SSL_set_session(t->ssl, sess))
          ERR_clear_error(); /* a full handshake then */
        SSL_SESSION_free(sess);
      }
    }
  }
  casl_tls_ctx_ref(ctx);
  atomic_fetch_add(&live_filters, 1);
  *out = t;
  return 0;
fail:
  ERR_clear_error();
  SSL_free(t->ssl);
  free(t->session_key);
  free(t);
  return rc;
}

int casl_tls_start(casl_tls *t) {
  if (t == NULL)
    return CASL_EINVAL;
  if (dead(t) || t->eof)
    return CASL_ECLOSED;
  if (t->started)
    return 0;
  enter(t);
  t->started = 1;
  pump(t);
  return leave(t, 0);
}

int casl_tls_feed(casl_tls *t, const char *buf, size_t len) {
  if (t == NULL || (buf == NULL && len > 0))
    return CASL_EINVAL;
  if (dead(t) || t->eof)
    return CASL_ECLOSED;
  if (t->peer_closed || len == 0)
    return 0; /* nothing is read after close_notify */
  enter(t);
  t->started = 1;
  if (t->depth > 1 || buf_size(&t->in) > 0 || t->ext_len > 0) {
    /* Keep the order: older unread bytes first. */
    if (buf_append(&t->in, t->ext_ptr, t->ext_len) != 0 ||
        buf_append(&t->in, buf, len) != 0) {
      fail_text(t, CASL_ENOMEM, "out of memory");
      return leave(t, 0);
    }
    t->ext_len = 0;
  } else {
    t->ext_ptr = buf;
    t->ext_len = len;
  }
  pump(t);
  if (t->depth == 1) {
    /* What OpenSSL left unread (paused handshake) is kept for later. */
    if (t->ext_len > 0 && !dead(t) &&
        buf_append(&t->in, t->ext_ptr, t->ext_len) != 0)
      fail_text(t, CASL_ENOMEM, "out of memory");
    t->ext_ptr = NULL;
    t->ext_len = 0;
  }
  return leave(t, 0);
}

int casl_tls_write(casl_tls *t, const char *buf, size_t len) {
  size_t n, w;
  int err;
  if (t == NULL || (buf == NULL && len > 0))
    return CASL_EINVAL;
  if (dead(t) || t->shut)
    return CASL_ECLOSED;
  if (len == 0)
    return 0;
  if (!t->hs_done || buf_size(&t->held) > 0 || t->in_write)
    return buf_append(&t->held, buf, len);
  enter(t);
  while (len > 0 && !dead(t)) {
    n = len < WRITE_CHUNK ? len : WRITE_CHUNK;
    clear_errors();
    if (!SSL_write_ex(t->ssl, buf, n, &w)) {
      err = SSL_get_error(t->ssl, 0);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        /* OpenSSL is busy (a renegotiation on an adopted context):
         * keep the rest and retry after the next input. */
        if (buf_append(&t->held, buf, len) != 0)
          fail_text(t, CASL_ENOMEM, "out of memory");
        t->retry_len = n;
        break;
      }
      fail(t, ssl_failure(t, err));
      break;
    }
    buf += n;
    len -= n;
    if (len > 0 && buf_size(&t->out) >= OUT_FLUSH && emit_pending(t))
      break;
  }
  (void)emit_pending(t);
  return leave(t, 0);
}

size_t casl_tls_pending_plaintext(const casl_tls *t) {
  return t != NULL ? buf_size(&t->held) : 0;
}

int casl_tls_shutdown(casl_tls *t) {
  if (t == NULL)
    return CASL_EINVAL;
  if (dead(t))
    return CASL_ECLOSED;
  if (t->shut)
    return 0;
  enter(t);
  t->shut = 1;
  maybe_shutdown(t);
  return leave(t, 0);
}

int casl_tls_eof(casl_tls *t) {
  if (t == NULL)
    return CASL_EINVAL;
  if (dead(t))
    return CASL_ECLOSED;
  if (t->eof)
    return 0;
  enter(t);
  t->eof = 1;
  if (t->peer_closed) {
    /* close_notify was seen and reported: a clean end. */
  } else if (!t->started || t->sni_wait) {
    fail_text(t, CASL_ETLS, "connection closed during the TLS handshake");
  } else {
    pump(t);
    if (!dead(t) && !t->peer_closed)
      fail_text(t, t->hs_done ? CASL_ETRUNCATED : CASL_ETLS,
                t->hs_done
                    ? "connection closed without a TLS close_notify (truncated)"
                    : "connection closed during the TLS handshake");
  }
  return leave(t, 0);
}

int casl_tls_sni_select(casl_tls *t, casl_tls_ctx *ctx) {
  if (t == NULL || (ctx != NULL && !ctx->server))
    return CASL_EINVAL;
  if (dead(t))
    return CASL_ECLOSED;
  if (!t->sni_wait)
    return CASL_ESTATE;
  enter(t);
  ERR_clear_error();
  if (ctx != NULL && switch_ctx(t, ctx) != 0) {
    ERR_clear_error();
    fail_text(t, CASL_ETLS, "could not switch to the SNI context");
    return leave(t, 0);
  }
  t->sni_wait = 0;
  t->sni_done = 1;
  pump(t);
  return leave(t, 0);
}

void casl_tls_free(casl_tls *t) {
  if (t == NULL)
    return;
  if (t->depth > 0) {
    t->free_pending = 1;
    return;
  }
  destroy(t);
}

const char *casl_tls_error(const casl_tls *t) {
  return t != NULL ? t->err : "";
}

void *casl_tls_get_ud(const casl_tls *t) { return t != NULL ? t->ud : NULL; }

void *casl_tls_ssl(casl_tls *t) { return t != NULL ? t->ssl : NULL; }

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

long casl_tls_live_count(void) { return atomic_load(&live_filters); }

/* ------------------------------------------------------------------------ */
/* Peer certificate                                                          */

static char *mem_bio_str(BIO *b) {
  char *p, *s;
  long n = BIO_get_mem_data(b, &p);
  if (n < 0)
    return NULL;
  s = malloc((size_t)n + 1);
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
  if (b->len > 0 && buf_append(b, "\n", 1) != 0)
    return -1;
  if (buf_reserve(b, n) != 0)
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
  if (bad || buf_append(&b, "", 1) != 0) {
    buf_free(&b);
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
    s = dup_str(hex);
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
  s = malloc(n * 3);
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

int casl_tls_peer_cert(casl_tls *t, const casl_tls_cert_info **out) {
  X509 *x;
  casl_tls_cert_info *c;
  if (t == NULL || out == NULL)
    return CASL_EINVAL;
  *out = NULL;
  if (t->have_cert) {
    *out = &t->cert;
    return 0;
  }
  x = SSL_get0_peer_certificate(t->ssl);
  if (x == NULL)
    return CASL_ESTATE;
  ERR_clear_error();
  c = &t->cert;
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
    free((char *)c->subject);
    free((char *)c->issuer);
    free((char *)c->sans);
    free((char *)c->serial);
    free((char *)c->sha256);
    free((char *)c->pem);
    memset(c, 0, sizeof(*c));
    return CASL_ENOMEM;
  }
  t->have_cert = 1;
  *out = c;
  return 0;
}
