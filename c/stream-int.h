/*
 * stream-int.h -- the byte-stream core every connection is built on (TCP,
 * unix domain sockets, a child's stdio pipes): reading, the write queue, graceful and forced close, timeouts,
 * and the TLS filter between the wire and the application.
 *
 *   stream.c       the core (it drives a filter through the engine's
 *                  public API only)
 *   stream-tls.c   the filter's callbacks, STARTTLS and SNI answers
 *   server.c       listening sockets: accepted connections are streams
 *   tcp.c pipe.c   TCP and unix socket connects and binds on top of these
 *   process.c      a child's stdio pipes are streams too
 */
#ifndef CASL_STREAM_INT_H
#define CASL_STREAM_INT_H

#include <sys/types.h>

#include "dns-int.h"
#include "loop-int.h"
#include "wqueue.h"

/* How long a graceful close may wait for queued data to drain. */
#define CASL_CLOSE_LINGER_MS 10000
/* Ciphertext of application writes a TLS stream lets wait in its filter
 * until the loop flushes the stream (casl_tls_set_hold): the writes of one
 * pass (a client sending 16 KiB chunks) then leave in one system call, and
 * bigger writes (an echo of a large read) still go out at once. */
#define CASL_TLS_HOLD (64 * 1024)

typedef enum { CASL_STREAM_TCP = 1, CASL_STREAM_PIPE } casl_stream_kind;

/* Room for the libuv handle of any kind of stream. */
typedef union casl_stream_uv {
  uv_stream_t stream;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
} casl_stream_uv;

struct casl_tcp {
  casl_handle h;
  casl_stream_kind kind;
  uv_stream_t *uv;  /* the socket (TCP: replaced between connect
                       attempts) */
  uv_timer_t timer; /* read/write/handshake/linger deadlines */
  uv_connect_t creq;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  casl_resolve *resolving;            /* DNS in flight */
  struct addrinfo *ai_head, *ai_next; /* addresses left to try */
  int port;
  unsigned incoming : 1;  /* accepted by a server, or a child's stdio
                             pipe: never a `connect' event */
  unsigned connected : 1; /* the transport is connected */
  unsigned reading : 1;   /* uv_read_start active */
  unsigned paused : 1;    /* application paused reading */
  unsigned writing : 1;   /* wreq in flight */
  unsigned shutting : 1;  /* sreq issued */
  unsigned notify : 1;    /* fire `written' when drained */
  unsigned eof_seen : 1;  /* UV_EOF / close_notify reported */
  unsigned failed : 1;    /* an error was reported */
  unsigned timer_inited : 1;
  unsigned forced : 1;      /* forced close */
  unsigned tls_started : 1; /* casl_tls_start called */
  unsigned tls_done : 1;    /* handshake complete */
  casl_tls *tls;
  uint64_t handshake_ms;
  uint64_t read_ms, write_ms;
  uint64_t last_read, last_write, hs_start, close_start;
  casl_wqueue wq;
  char *err; /* detail of the last error */
};

/* stream.c */
/* A stream of `kind' with its libuv handle initialised (not connected),
 * counted (TCP) as incoming or outgoing; NULL when out of memory. */
casl_tcp *casl__stream_new(casl_loop *loop, int64_t id, casl_stream_kind kind,
                           int incoming);
/* Initialises u, room for a libuv handle of kind. */
int casl__stream_uv_init(casl_loop *loop, casl_stream_kind kind,
                         uv_stream_t *u);
/* The transport is connected (connect or accept): reading starts, then the
 * TLS handshake or, without TLS, a `connect' event (connect only: an
 * accepted stream's `accept' event stands for it). */
void casl__stream_connected(casl_tcp *c);
/* Reports a failure once (error event, detail from fmt); reading stops. */
void casl__stream_error(casl_tcp *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reports the peer's clean end once (error event with UV_EOF). */
void casl__stream_eof(casl_tcp *c);
/* Queues an event of type for c with code. */
void casl__stream_push(casl_tcp *c, casl_evtype type, int code);
/* Queues ciphertext or plaintext for the wire (large writes go straight
 * to the socket when nothing is queued).  0, CASL_ENOMEM, or 1 when
 * nothing was queued because the stream is closed at once or failed (a
 * write failure is reported through casl__stream_error). */
int casl__stream_send(casl_tcp *c, const char *buf, size_t len);
/* Closes every libuv handle of c at once; queued data is dropped. */
void casl__stream_close_now(casl_tcp *c);
/* A graceful close waiting for the connection goes on (or ends). */
void casl__stream_finish_close(casl_tcp *c);
/* Recomputes the deadline timer. */
void casl__stream_timer_update(casl_tcp *c);
/* Starts the filter's handshake (c->tls set, transport connected). */
void casl__stream_tls_start(casl_tcp *c);
/* Closes a replaced libuv socket of c (or c's own, via close_now). */
void casl__stream_uv_close(uv_handle_t *u);

/* stream-tls.c */
/* Puts a new filter on c (see casl_tcp_start_tls; not started here). */
int casl__stream_tls_new(casl_tcp *c, casl_tls_ctx *ctx, int server,
                         const char *name, const char *session_key,
                         uint64_t handshake_timeout_ms);

/* server.c */
struct casl_server {
  casl_handle h;
  casl_stream_kind kind;
  casl_stream_uv u;         /* owns the listening socket (never uv_listen'd:
                               server.c accepts by itself) */
  int fd;                   /* that socket, once listening */
  uv_poll_t poll;           /* readable: connections are waiting */
  uv_timer_t retry;         /* ends a pause after a failed accept */
  uint64_t pause_ms;        /* the last pause; 0 after an accept worked */
  uint64_t reported_at;     /* loop time of the last error event */
  unsigned poll_inited : 1, retry_inited : 1;
  unsigned paused : 1;      /* not watching the socket until retry fires */
  unsigned reported : 1;    /* reported_at is set */
  char *unlink_path;        /* pipe.c: the socket file this server made,
                               removed at close if it is still that file */
  dev_t dev;
  ino_t ino;
  casl_tls_ctx *tls_ctx;
  uint64_t handshake_ms;
};
/* A server handle with id, its libuv handle initialised for kind, before
 * it is bound: 0 and *out, or a code. */
int casl__server_new(casl_loop *loop, int64_t id, casl_stream_kind kind,
                     casl_server **out);
/* Listens on s once binding (or adopting an fd) gave rc; on any failure
 * the handle closes without ever being reported and rc is returned. */
int casl__server_start(casl_server *s, int rc, int backlog, casl_server **out);

#endif
