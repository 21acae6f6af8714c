/*
 * wqueue.h -- a stream's write queue: bytes copied into chunks (pooled
 * buffers for small writes), coalesced: uv_try_write of up to
 * CASL_WQ_MAX_BUFS chunks at a time, then a uv_write of up to
 * CASL_WQ_SUBMIT_BUFS.
 */
#ifndef CASL_WQUEUE_H
#define CASL_WQUEUE_H

#include <uv.h>

#include "bufpool.h"

/* Most chunks handed to one uv_try_write. */
#define CASL_WQ_MAX_BUFS 64
/* Most chunks handed to one write request: what a uv_write_t holds
 * without allocating (its bufsml).  With more, libuv (1.44 and later)
 * mallocs, and when that fails it returns UV_ENOMEM with the request
 * still counted in the loop, which then never ends (found by make
 * torture). */
#define CASL_WQ_SUBMIT_BUFS 4

/* A chunk: data[off .. len) is still to be sent. */
typedef struct casl_chunk {
  struct casl_chunk *next;
  size_t off, len, cap;
  char data[];
} casl_chunk;

typedef struct casl_wqueue {
  casl_chunk *head, *tail; /* queued, not yet submitted */
  casl_chunk *inflight;    /* submitted with the write request */
  size_t bytes;            /* bytes queued and in flight */
} casl_wqueue;

/* Copies len bytes to the end of the queue: 0, or CASL_ENOMEM (nothing
 * of a failed append is queued beyond what fitted the last chunk). */
int casl__wq_append(casl_wqueue *q, casl_bufpool *pool, const char *buf,
                    size_t len);
/* Describes up to max queued chunks (from the head) in bufs; returns how
 * many, their total length in *total. */
int casl__wq_gather(const casl_wqueue *q, uv_buf_t *bufs, int max,
                    size_t *total);
/* Removes n sent bytes from the head of the queue. */
void casl__wq_consume(casl_wqueue *q, casl_bufpool *pool, size_t n);
/* Moves up to CASL_WQ_SUBMIT_BUFS chunks from the head into flight and
 * describes them in bufs (room for CASL_WQ_SUBMIT_BUFS); returns how many. */
int casl__wq_submit(casl_wqueue *q, uv_buf_t *bufs);
/* The write request finished (sent or failed): frees the chunks in flight. */
void casl__wq_sent(casl_wqueue *q, casl_bufpool *pool);
/* Drops what is queued and not in flight. */
void casl__wq_drop(casl_wqueue *q, casl_bufpool *pool);
/* Drops everything (the stream is freed). */
void casl__wq_free(casl_wqueue *q, casl_bufpool *pool);

#endif
