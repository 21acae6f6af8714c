/*
 * loop-internal.h -- structures shared by loop.c and tcp.c (the libuv
 * side).  The TLS engine (tls.c) does not include this file.
 */
#ifndef CASL_LOOP_INTERNAL_H
#define CASL_LOOP_INTERNAL_H

#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Loop internals (loop.c, tcp.c)                                            */

#include <netdb.h>
#include <uv.h>

/* Size of the pooled buffers used for plain TCP reads and write chunks. */
#define CASL_BUF_SIZE (64 * 1024)
/* How many free buffers a loop keeps for reuse. */
#define CASL_POOL_KEEP 64
/* Size of the pooled buffers TLS connections read into and decrypt into:
 * large enough that one read of a busy connection becomes one `read'
 * event (fewer, larger buffers handed to the application cost it less per
 * byte), few enough kept that an idle loop holds little. */
#define CASL_BIG_BUF_SIZE (256 * 1024)
#define CASL_BIG_POOL_KEEP 8
/* How long a graceful close may wait for queued data to drain. */
#define CASL_CLOSE_LINGER_MS 10000

typedef enum {
  CASL_H_TIMER = 1,
  CASL_H_NOTIFIER,
  CASL_H_TCP,
  CASL_H_SERVER
} casl_htype;

/* Handle flags. */
#define CASL_HF_CLOSING 0x01 /* the application closed it (or it failed) */
#define CASL_HF_UVCLOSED 0x02 /* every libuv handle of it is closed */
#define CASL_HF_SILENT 0x04  /* never reported to the application */
#define CASL_HF_UNREF 0x08   /* unreferenced */

struct casl_handle {
  casl_htype type;
  unsigned flags;
  int64_t id;
  casl_loop *loop;
  casl_handle *prev, *next; /* loop->handles, until freed */
  int uv_open;              /* libuv handles of ours still open */
};

typedef enum {
  CASL_EV_TIMER = 1,
  CASL_EV_NOTIFY,
  CASL_EV_CLOSED,
  CASL_EV_ACCEPT,
  CASL_EV_CONNECT,
  CASL_EV_READ,
  CASL_EV_WRITTEN,
  CASL_EV_ERROR,
  CASL_EV_DNS,
  CASL_EV_SNI
} casl_evtype;

typedef struct casl_event {
  struct casl_event *next;
  casl_evtype type;
  int code;
  casl_handle *h;   /* the handle (NULL for DNS lookups) */
  casl_handle *aux; /* ACCEPT: the server */
  int64_t id;       /* DNS: the lookup id */
  char *buf;        /* READ: data (see casl__buf_fit); DNS/SNI: malloc'd
                       payload */
  size_t len;
  size_t cap;       /* READ: the capacity of buf */
} casl_event;

/* A write chunk: data[off .. len) is still to be sent. */
typedef struct casl_chunk {
  struct casl_chunk *next;
  size_t off, len, cap;
  char data[];
} casl_chunk;

struct casl_timer {
  casl_handle h;
  uv_timer_t uv;
};

struct casl_notifier {
  casl_handle h;
  uv_async_t uv;
};

struct casl_dns {
  casl_loop *loop;
  int64_t id;
  uv_getaddrinfo_t req;
  struct casl_dns *prev, *next; /* loop->lookups */
};

struct casl_server {
  casl_handle h;
  uv_tcp_t uv;
  casl_tls_ctx *tls_ctx;
  uint64_t handshake_ms;
};

struct casl_connect_req; /* tcp.c */

struct casl_tcp {
  casl_handle h;
  uv_tcp_t *uv;             /* current socket (replaced between attempts) */
  uv_timer_t timer;         /* read/write/handshake/linger deadlines */
  uv_connect_t creq;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  struct casl_connect_req *resolving; /* DNS in flight */
  struct addrinfo *ai_head, *ai_next; /* addresses left to try */
  int port;
  unsigned incoming : 1;    /* accepted by a server */
  unsigned connected : 1;   /* TCP connected */
  unsigned reading : 1;     /* uv_read_start active */
  unsigned paused : 1;      /* application paused reading */
  unsigned writing : 1;     /* wreq in flight */
  unsigned shutting : 1;    /* sreq issued */
  unsigned dirty : 1;       /* in loop->dirty */
  unsigned notify : 1;      /* fire `written' when drained */
  unsigned eof_seen : 1;    /* UV_EOF / close_notify reported */
  unsigned failed : 1;      /* an error was reported */
  unsigned timer_inited : 1;
  unsigned forced : 1;      /* forced close */
  unsigned tls_started : 1; /* casl_tls_start called */
  unsigned tls_done : 1;    /* handshake complete */
  casl_tls *tls;
  casl_tls_ctx *tls_ctx;
  uint64_t handshake_ms;
  uint64_t read_ms, write_ms;
  uint64_t last_read, last_write, hs_start, close_start;
  casl_chunk *out_head, *out_tail; /* queued, not yet submitted */
  casl_chunk *inflight;            /* submitted with wreq */
  size_t out_bytes;                /* bytes in out_* + inflight */
  casl_tcp *dirty_next;
  char *err;                       /* detail of the last error */
};

struct casl_loop {
  uv_loop_t uv;
  uv_idle_t idle;           /* active while events wait: uv_run must not
                               block in poll with a non-empty queue */
  int idle_active;
  uv_timer_t cap;           /* bounds the wait of casl_loop_run_once */
  casl_callbacks cbs;
  casl_handle *handles;     /* every handle not yet freed */
  struct casl_dns *lookups; /* DNS lookups in flight */
  casl_event *ev_head, *ev_tail, *ev_free;
  casl_event *current;      /* event being dispatched */
  long ev_count, ev_free_count;
  void *pool[CASL_POOL_KEEP]; /* free CASL_BUF_SIZE buffers */
  int pool_n;
  void *big_pool[CASL_BIG_POOL_KEEP]; /* free CASL_BIG_BUF_SIZE buffers */
  int big_pool_n;
  int big_held;             /* big buffers held by queued `read' events */
  casl_tcp *dirty;          /* connections with data to flush */
  int running, stop, tearing_down;
  casl_stats st;
};

/* loop.c */
casl_event *casl__event_push(casl_loop *loop, casl_evtype type,
                             casl_handle *h);
void casl__handle_init(casl_loop *loop, casl_handle *h, casl_htype type,
                       int64_t id);
/* One of h's libuv handles finished closing. */
void casl__handle_uv_closed(casl_handle *h);
/* A buffer of `size' bytes (CASL_BUF_SIZE or CASL_BIG_BUF_SIZE) from the
 * loop's pool, or malloc'd; NULL when out of memory. */
void *casl__buf_get(casl_loop *loop, size_t size);
/* Gives back a buffer of capacity `size': kept for reuse when it is one of
 * the pooled sizes and the pool has room, else freed.  NULL is ignored. */
void casl__buf_put(casl_loop *loop, void *buf, size_t size);
/* Chooses the buffer a `read' event keeps for len (> 0) bytes read into buf
 * (capacity *cap): small data, and data filling less than half of a buffer
 * when many big ones are already held, moves to a buffer of its own size
 * and buf goes back to the pool.  Returns the buffer to keep (its capacity
 * in *cap); out of memory, buf itself. */
char *casl__buf_fit(casl_loop *loop, char *buf, size_t len, size_t *cap);
/* Releases the buffer of a `read' event (as chosen by casl__buf_fit). */
void casl__buf_done(casl_loop *loop, char *buf, size_t cap);
char *casl__strdup(const char *s);

/* tcp.c */
void casl__tcp_flush_dirty(casl_loop *loop);
void casl__tcp_close_now(casl_tcp *c);
void casl__server_close_now(casl_server *s);
void casl__tcp_free(casl_tcp *c);
void casl__server_free(casl_server *s);

#endif
