/*
 * bufpool.h -- the pool of read and write buffers a loop keeps for reuse.
 *
 * Shared by the stream core (socket reads, write chunks) and the TLS glue
 * (decrypted reads); it knows nothing of handles or libuv.  A buffer is
 * taken with casl__buf_get, may travel with a `read' event (chosen by
 * casl__buf_fit), and comes back with casl__buf_put or casl__buf_done.
 */
#ifndef CASL_BUFPOOL_H
#define CASL_BUFPOOL_H

#include <stddef.h>

/* Size of the pooled buffers used for plain reads and write chunks. */
#define CASL_BUF_SIZE (64 * 1024)
/* How many free buffers a pool keeps for reuse. */
#define CASL_POOL_KEEP 64
/* Size of the pooled buffers TLS connections read into and decrypt into:
 * large enough that one read of a busy connection becomes one `read'
 * event (fewer, larger buffers handed to the application cost it less per
 * byte), few enough kept that an idle loop holds little. */
#define CASL_BIG_BUF_SIZE (256 * 1024)
#define CASL_BIG_POOL_KEEP 16

typedef struct casl_bufpool {
  void *small[CASL_POOL_KEEP]; /* free CASL_BUF_SIZE buffers */
  int small_n;
  void *big[CASL_BIG_POOL_KEEP]; /* free CASL_BIG_BUF_SIZE buffers */
  int big_n;
  int big_held; /* big buffers held by queued `read' events */
  int draining; /* the loop is being freed: keep nothing */
} casl_bufpool;

/* A buffer of `size' bytes (CASL_BUF_SIZE or CASL_BIG_BUF_SIZE) from the
 * pool, or malloc'd; NULL when out of memory. */
void *casl__buf_get(casl_bufpool *pool, size_t size);
/* Gives back a buffer of capacity `size': kept for reuse when it is one of
 * the pooled sizes and the pool has room, else freed.  NULL is ignored. */
void casl__buf_put(casl_bufpool *pool, void *buf, size_t size);
/* Chooses the buffer a `read' event keeps for len (> 0) bytes read into buf
 * (capacity *cap): small data, and data filling less than half of a buffer
 * when many big ones are already held, moves to a buffer of its own size
 * and buf goes back to the pool.  Returns the buffer to keep (its capacity
 * in *cap); out of memory, buf itself. */
char *casl__buf_fit(casl_bufpool *pool, char *buf, size_t len, size_t *cap);
/* Releases the buffer of a `read' event (as chosen by casl__buf_fit). */
void casl__buf_done(casl_bufpool *pool, char *buf, size_t cap);
/* Frees every buffer the pool keeps; later puts free at once. */
void casl__bufpool_drain(casl_bufpool *pool);

#endif
