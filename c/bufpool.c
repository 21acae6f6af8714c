/*
 * bufpool.c -- the loop's pool of read and write buffers.
 */
#include <stdlib.h>
#include <string.h>

#include "bufpool.h"
#include "internal.h"

void *casl__buf_get(casl_bufpool *pool, size_t size) {
  if (size == CASL_BUF_SIZE && pool->small_n > 0)
    return pool->small[--pool->small_n];
  if (size == CASL_BIG_BUF_SIZE && pool->big_n > 0)
    return pool->big[--pool->big_n];
  return casl__malloc(size);
}

void casl__buf_put(casl_bufpool *pool, void *buf, size_t size) {
  if (buf == NULL)
    return;
  if (!pool->draining) {
    if (size == CASL_BUF_SIZE && pool->small_n < CASL_POOL_KEEP) {
      pool->small[pool->small_n++] = buf;
      return;
    }
    if (size == CASL_BIG_BUF_SIZE && pool->big_n < CASL_BIG_POOL_KEEP) {
      pool->big[pool->big_n++] = buf;
      return;
    }
  }
  casl__free(buf);
}

/* Data up to this size is always copied out of a read buffer into one of
 * its own (cheap, and a queued event then holds no more than its data). */
#define FIT_COPY_MAX 4096
/* Up to this many big buffers may be held by queued `read' events; beyond
 * that, data filling less than half of one is copied out, so a burst of
 * reads on many connections holds at most about twice the memory of its
 * data. */
#define BIG_HELD_MAX 64

char *casl__buf_fit(casl_bufpool *pool, char *buf, size_t len, size_t *cap) {
  char *p;
  if (len > FIT_COPY_MAX) {
    if (*cap != CASL_BIG_BUF_SIZE)
      return buf;
    if (pool->big_held < BIG_HELD_MAX || len >= *cap / 2) {
      pool->big_held++;
      return buf;
    }
  }
  p = casl__malloc(len);
  if (p == NULL) {
    if (*cap == CASL_BIG_BUF_SIZE)
      pool->big_held++;
    return buf;
  }
  memcpy(p, buf, len);
  casl__buf_put(pool, buf, *cap);
  *cap = len;
  return p;
}

void casl__buf_done(casl_bufpool *pool, char *buf, size_t cap) {
  if (cap == CASL_BIG_BUF_SIZE && buf != NULL)
    pool->big_held--;
  casl__buf_put(pool, buf, cap);
}

void casl__bufpool_drain(casl_bufpool *pool) {
  int i;
  pool->draining = 1;
  for (i = 0; i < pool->small_n; i++)
    casl__free(pool->small[i]);
  for (i = 0; i < pool->big_n; i++)
    casl__free(pool->big[i]);
  pool->small_n = pool->big_n = 0;
}
