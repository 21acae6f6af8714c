/*
 * tls-util.c -- what the TLS engine's files share: one-time set-up and byte
 * buffers (error text: tls-error.c).
 */
#include <stdlib.h>
#include <string.h>

#include "tls-int.h"

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int ssl_idx = -1;

static void tls_init(void) {
  ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int casl__tls_global_init(void) {
  casl__global_init();
  (void)pthread_once(&tls_once, tls_init);
  return ssl_idx >= 0 ? 0 : CASL_ENOMEM;
}

casl_tls *casl__tls_of(const SSL *ssl) {
  return ssl_idx >= 0 ? SSL_get_ex_data(ssl, ssl_idx) : NULL;
}

int casl__tls_attach(casl_tls *t) {
  return SSL_set_ex_data(t->ssl, ssl_idx, t) ? 0 : CASL_ENOMEM;
}

/* ERR_clear_error walks the whole queue; peeking first keeps the common
 * (empty) case cheap. */
void casl__tls_clear_errors(void) {
  if (ERR_peek_error() != 0)
    ERR_clear_error();
}

/* ------------------------------------------------------------------------ */
/* Buffers and error text                                                    */

/* Big buffers (a busy connection's output, plaintext held for later) are
 * recycled through a small cache per thread instead of being freed when
 * they drain: a connection streaming data fills and empties its output
 * buffer at every write, and memory fresh from malloc costs a page fault
 * per page (glibc gives freed memory at the top of its heap back to the
 * kernel).  A thread holds at most TBUF_CACHE_N buffers and TBUF_CACHE_BYTES
 * in all (enough for the output a pass over 16 busy connections leaves
 * waiting, see casl_tls_set_hold), freed when it exits. */
#define TBUF_CACHE_N 16
#define TBUF_CACHE_MIN (16 * 1024)
#define TBUF_CACHE_MAX (1024 * 1024)
#define TBUF_CACHE_BYTES (4 * 1024 * 1024)

typedef struct tbuf_cache {
  char *data[TBUF_CACHE_N];
  size_t cap[TBUF_CACHE_N];
  int n;
  size_t bytes;   /* their capacities added */
  int registered; /* the key's destructor will free it */
} tbuf_cache;

static _Thread_local tbuf_cache cache;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static int cache_key_ok;

static void cache_destroy(void *p) {
  tbuf_cache *c = p;
  while (c->n > 0) {
    c->n--;
    casl__free(c->data[c->n]);
  }
  c->bytes = 0;
}

static void cache_key_init(void) {
  cache_key_ok = pthread_key_create(&cache_key, cache_destroy) == 0;
}

/* Keeps data (capacity cap) for reuse; 0, or -1 when the caller frees it. */
static int cache_put(char *data, size_t cap) {
  if (cap < TBUF_CACHE_MIN || cap > TBUF_CACHE_MAX || cache.n == TBUF_CACHE_N ||
      cache.bytes + cap > TBUF_CACHE_BYTES)
    return -1;
  if (!cache.registered) {
    if (pthread_once(&cache_once, cache_key_init) != 0 || !cache_key_ok ||
        pthread_setspecific(cache_key, &cache) != 0)
      return -1;
    cache.registered = 1;
  }
  cache.data[cache.n] = data;
  cache.cap[cache.n] = cap;
  cache.n++;
  cache.bytes += cap;
  return 0;
}

/* The smallest cached buffer of at least need bytes (its capacity in
 * *cap), or NULL. */
static char *cache_take(size_t need, size_t *cap) {
  int i, best = -1;
  char *p;
  for (i = 0; i < cache.n; i++)
    if (cache.cap[i] >= need && (best < 0 || cache.cap[i] < cache.cap[best]))
      best = i;
  if (best < 0)
    return NULL;
  p = cache.data[best];
  *cap = cache.cap[best];
  cache.bytes -= *cap;
  cache.n--;
  cache.data[best] = cache.data[cache.n];
  cache.cap[best] = cache.cap[cache.n];
  return p;
}

int casl__tbuf_reserve(struct buf *b, size_t extra) {
  size_t need, cap, live;
  char *p;
  if (b->len + extra <= b->cap)
    return 0;
  live = b->len - b->off;
  if (b->off > 0 && live + extra <= b->cap) {
    memmove(b->data, b->data + b->off, live);
    b->len = live;
    b->off = 0;
    return 0;
  }
  need = live + extra;
  p = need >= TBUF_CACHE_MIN ? cache_take(need, &cap) : NULL;
  if (p == NULL) {
    cap = b->cap ? b->cap * 2 : 1024;
    if (cap < need)
      cap = need; /* a big first reservation gets what it asked for */
  }
  if (p == NULL && b->off == 0) {
    p = casl__realloc(b->data, cap);
    if (p == NULL)
      return CASL_ENOMEM;
  } else {
    if (p == NULL && (p = casl__malloc(cap)) == NULL)
      return CASL_ENOMEM;
    if (live > 0)
      memcpy(p, b->data + b->off, live);
    casl__tbuf_free(b);
    b->len = live;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

int casl__tbuf_append(struct buf *b, const void *p, size_t len) {
  if (len == 0)
    return 0;
  if (casl__tbuf_reserve(b, len) != 0)
    return CASL_ENOMEM;
  memcpy(b->data + b->len, p, len);
  b->len += len;
  return 0;
}

size_t casl__tbuf_size(const struct buf *b) { return b->len - b->off; }

void casl__tbuf_free(struct buf *b) {
  /* The analyzer assumes the `ciphertext' callback in emit_pending may
   * store the buffer it was given back into t->out; it cannot (it gets a
   * const pointer into a buffer already detached from the filter). */
  if (b->data != NULL && cache_put(b->data, b->cap) != 0)
    casl__free(b->data); /* NOLINT(clang-analyzer-unix.Malloc) */
  memset(b, 0, sizeof(*b));
}

/* Called when a buffer is empty: keeps small buffers, frees big ones. */
void casl__tbuf_drained(struct buf *b, size_t keep) {
  b->off = b->len = 0;
  if (b->cap > keep)
    casl__tbuf_free(b);
}
