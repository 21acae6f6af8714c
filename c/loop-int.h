/*
 * loop-int.h -- the loop core shared by every handle type: the handle
 * header and its per-type hooks, the event queue, requests in flight, and
 * the loop itself.  Handle files (timer.c, notifier.c, stream.c, ...)
 * include this; the loop knows them only through their casl_handle_ops.
 * The TLS engine (tls-*.c) does not include it.
 */
#ifndef CASL_LOOP_INT_H
#define CASL_LOOP_INT_H

#include <uv.h>

#include "bufpool.h"
#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Events                                                                    */

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
  CASL_EV_SNI,
  CASL_EV_SIGNAL,
  CASL_EV_EXIT,
  CASL_EV_POLL,
  CASL_EV_FS_EVENT,
  CASL_EV_FS,
  CASL_EV_NAMEINFO
} casl_evtype;

typedef struct casl_event {
  struct casl_event *next;
  casl_evtype type;
  int code;         /* status; SIGNAL: the signal; EXIT: term signal */
  casl_handle *h;   /* the handle (NULL for requests: DNS, FS, NAMEINFO) */
  casl_handle *aux; /* ACCEPT: the server */
  int64_t id;       /* requests: the request's id */
  int64_t num;      /* EXIT: exit status; POLL, FS_EVENT: events */
  char *buf;        /* READ: data (see casl__buf_fit); others: malloc'd
                       payload or NULL (DNS: packed addresses; SNI, FS,
                       FS_EVENT: a string; NAMEINFO: host, NUL, service) */
  size_t len;       /* READ: bytes; DNS: number of addresses */
  size_t cap;       /* READ: the capacity of buf */
} casl_event;

/* ------------------------------------------------------------------------ */
/* Handles                                                                   */

/* Handle flags. */
#define CASL_HF_CLOSING 0x01  /* the application closed it (or it failed) */
#define CASL_HF_UVCLOSED 0x02 /* every libuv handle of it is closed */
#define CASL_HF_SILENT 0x04   /* never reported to the application */
#define CASL_HF_UNREF 0x08    /* unreferenced */
#define CASL_HF_DIRTY 0x10    /* in loop->dirty */
#define CASL_HF_LOST 0x20     /* casl__handle_lost: closed at the next flush */

/* What the loop needs to know of a handle type. */
typedef struct casl_handle_ops {
  const char *name; /* for casl_loop_describe: "timer", "tcp", ... */
  /* The libuv handle ref/unref act on (NULL: none right now). */
  uv_handle_t *(*uv)(casl_handle *h);
  /* casl_handle_close: the type's own close. */
  void (*close)(casl_handle *h);
  /* Teardown (and refused accepts): closes every libuv handle of h at
   * once, dropping queued work; each close ends in casl__handle_uv_closed. */
  void (*close_now)(casl_handle *h);
  /* Frees h and what it owns once `closed' was dispatched (NULL: free). */
  void (*release)(casl_handle *h);
  /* Does the work casl__loop_mark_dirty asked for (may be NULL). */
  void (*flush)(casl_handle *h);
  /* Adds h's share to the loop-wide figures of casl_loop_stats (NULL:
   * nothing) and gives a tag for casl_loop_describe (NULL: none). */
  void (*stats)(casl_handle *h, casl_stats *st);
  const char *(*tag)(casl_handle *h);
} casl_handle_ops;

struct casl_handle {
  const casl_handle_ops *ops;
  unsigned flags;
  int64_t id;
  casl_loop *loop;
  casl_handle *prev, *next; /* loop->handles, until freed */
  casl_handle *dirty_next;  /* loop->dirty */
  int64_t *count;           /* the loop counter this handle is in, or NULL */
  int uv_open;              /* libuv handles of ours still open */
  int lost;                 /* casl__handle_lost's code, told right before
                               `closed' (0: none) */
  casl_event closed_ev;     /* its `closed': queued without allocating */
};

/* Links h into the loop and counts it in *count (a field of loop->st, or
 * NULL).  h->uv_open starts at 0: add one per libuv handle opened. */
void casl__handle_init(casl_loop *loop, casl_handle *h,
                       const casl_handle_ops *ops, int64_t id, int64_t *count);
/* One of h's libuv handles finished closing; after the last one `closed'
 * is queued (or, during teardown, nothing: the loop frees h at the end). */
void casl__handle_uv_closed(casl_handle *h);
/* uv_close(u) unless it is closing, ending in casl__handle_uv_closed of the
 * handle in u->data. */
void casl__handle_close_uv(uv_handle_t *u);
/* Asks the loop to call h->ops->flush(h) before it next polls, and after
 * the events of the current round are dispatched.  Idempotent. */
void casl__loop_mark_dirty(casl_handle *h);
/* Takes h off that list (before it is closed or freed). */
void casl__loop_unmark_dirty(casl_handle *h);

/* ------------------------------------------------------------------------ */
/* Queueing events                                                           */

/* Queues an event for h (NULL: none), dispatched after the current
 * uv_run returns.  NULL when out of memory (never for CASL_EV_CLOSED,
 * which uses the handle's own): the caller then calls casl__handle_lost,
 * or for a request uses an event it took with casl__event_new. */
casl_event *casl__event_push(casl_loop *loop, casl_evtype type, casl_handle *h);
/* An event not yet queued, for a request that must be able to tell its
 * end without allocating then.  NULL when out of memory. */
casl_event *casl__event_new(casl_loop *loop);
/* Queues ev (from casl__event_new) as an event of type for h (NULL). */
void casl__event_queue(casl_loop *loop, casl_event *ev, casl_evtype type,
                       casl_handle *h);
/* Releases an event from casl__event_new that was never queued. */
void casl__event_discard(casl_loop *loop, casl_event *ev);
/* h cannot go on: an event for it could not be queued (out of memory), or
 * it failed in a way only closing mends.  After the events of the current
 * round are dispatched h is closed at once (close_now), and `error' with
 * code comes right before its `closed' (none if the application closed h
 * first, or h is silent).  Idempotent: the first code stays. */
void casl__handle_lost(casl_handle *h, int code);
/* Takes the queued, not yet dispatched `read' events of h off the queue
 * and hands their bytes to fn, oldest first (STARTTLS: bytes received as
 * plaintext that belong to the handshake).  fn may queue events. */
void casl__event_take_reads(casl_loop *loop, casl_handle *h,
                            void (*fn)(casl_handle *h, const char *buf,
                                       size_t len));

/* ------------------------------------------------------------------------ */
/* Requests in flight (DNS lookups, ...): cancelled at teardown            */

typedef struct casl_req {
  struct casl_req *prev, *next; /* loop->reqs */
  uv_req_t *uv;
} casl_req;

/* Lists r (r->uv set by the caller); casl_loop_free cancels it. */
void casl__req_add(casl_loop *loop, casl_req *r);
/* Unlists r (from its completion callback). */
void casl__req_remove(casl_loop *loop, casl_req *r);

/* ------------------------------------------------------------------------ */
/* The loop                                                                  */

struct casl_loop {
  uv_loop_t uv;
  uv_idle_t idle; /* active while events wait: uv_run must not
                     block in poll with a non-empty queue */
  int idle_active;
  uv_timer_t cap; /* bounds the wait of casl_loop_run_once */
  casl_callbacks cbs;
  casl_handle *handles; /* every handle not yet freed */
  casl_req *reqs;       /* requests in flight */
  casl_event *ev_head, *ev_tail, *ev_free;
  casl_event *current; /* event being dispatched */
  long ev_count, ev_free_count;
  casl_bufpool pool;
  casl_handle *dirty; /* handles with work to flush */
  int running, stop, tearing_down;
  casl_stats st;
};

#endif
