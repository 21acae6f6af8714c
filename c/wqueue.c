/*
 * wqueue.c -- a stream's write queue.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "wqueue.h"

#define CHUNK_POOLED_CAP (CASL_BUF_SIZE - sizeof(casl_chunk))

static casl_chunk *chunk_new(casl_bufpool *pool, size_t need) {
  casl_chunk *ch;
  size_t cap;
  if (need <= CHUNK_POOLED_CAP) {
    ch = casl__buf_get(pool, CASL_BUF_SIZE);
    cap = CHUNK_POOLED_CAP;
  } else {
    ch = casl__malloc(sizeof(casl_chunk) + need);
    cap = need;
  }
  if (ch == NULL)
    return NULL;
  ch->next = NULL;
  ch->off = ch->len = 0;
  ch->cap = cap;
  return ch;
}

static void chunk_free(casl_bufpool *pool, casl_chunk *ch) {
  if (ch->cap == CHUNK_POOLED_CAP)
    casl__buf_put(pool, ch, CASL_BUF_SIZE);
  else
    casl__free(ch);
}

/* Frees a list of chunks; returns the bytes they still held. */
static size_t chunks_free(casl_bufpool *pool, casl_chunk *ch) {
  size_t n = 0;
  while (ch != NULL) {
    casl_chunk *next = ch->next;
    n += ch->len - ch->off;
    chunk_free(pool, ch);
    ch = next;
  }
  return n;
}

int casl__wq_append(casl_wqueue *q, casl_bufpool *pool, const char *buf,
                    size_t len) {
  casl_chunk *t = q->tail;
  if (len == 0)
    return 0;
  if (t != NULL && t->cap > t->len) {
    size_t n = t->cap - t->len;
    if (n > len)
      n = len;
    memcpy(t->data + t->len, buf, n);
    t->len += n;
    q->bytes += n;
    buf += n;
    len -= n;
  }
  if (len > 0) {
    casl_chunk *ch = chunk_new(pool, len);
    if (ch == NULL)
      return CASL_ENOMEM;
    memcpy(ch->data, buf, len);
    ch->len = len;
    q->bytes += len;
    if (q->tail != NULL)
      q->tail->next = ch;
    else
      q->head = ch;
    q->tail = ch;
  }
  return 0;
}

static int gather(casl_chunk *ch, uv_buf_t *bufs, int max, size_t *total) {
  int n = 0;
  *total = 0;
  for (; ch != NULL && n < max; ch = ch->next) {
    if (ch->len == ch->off)
      continue;
    bufs[n] = uv_buf_init(ch->data + ch->off, (unsigned)(ch->len - ch->off));
    *total += ch->len - ch->off;
    n++;
  }
  return n;
}

int casl__wq_gather(const casl_wqueue *q, uv_buf_t *bufs, int max,
                    size_t *total) {
  return gather(q->head, bufs, max, total);
}

void casl__wq_consume(casl_wqueue *q, casl_bufpool *pool, size_t n) {
  q->bytes -= n;
  while (n > 0 && q->head != NULL) {
    casl_chunk *ch = q->head;
    size_t avail = ch->len - ch->off;
    if (n < avail) {
      ch->off += n;
      return;
    }
    n -= avail;
    q->head = ch->next;
    if (q->head == NULL)
      q->tail = NULL;
    chunk_free(pool, ch);
  }
}

int casl__wq_submit(casl_wqueue *q, uv_buf_t *bufs) {
  casl_chunk *last = q->head;
  size_t total;
  int n;
  if (last == NULL)
    return 0;
  for (n = 1; n < CASL_WQ_SUBMIT_BUFS && last->next != NULL; n++)
    last = last->next;
  q->inflight = q->head;
  q->head = last->next;
  if (q->head == NULL)
    q->tail = NULL;
  last->next = NULL;
  return gather(q->inflight, bufs, CASL_WQ_SUBMIT_BUFS, &total);
}

void casl__wq_sent(casl_wqueue *q, casl_bufpool *pool) {
  q->bytes -= chunks_free(pool, q->inflight);
  q->inflight = NULL;
}

void casl__wq_drop(casl_wqueue *q, casl_bufpool *pool) {
  q->bytes -= chunks_free(pool, q->head);
  q->head = q->tail = NULL;
}

void casl__wq_free(casl_wqueue *q, casl_bufpool *pool) {
  casl__wq_sent(q, pool);
  casl__wq_drop(q, pool);
}
