/*
 * casl-loop.h -- the event loop, handles, timers, notifiers and DNS.
 * Part of the public API: include cl-async-ssl.h, which includes this.
 */
#ifndef CASL_LOOP_H
#define CASL_LOOP_H

#ifndef CL_ASYNC_SSL_H
#error "include cl-async-ssl.h, not casl-loop.h"
#endif

/* ------------------------------------------------------------------------ */
/* Event loop                                                                */

typedef struct casl_loop casl_loop;
typedef struct casl_handle casl_handle;   /* any handle below */
typedef struct casl_timer casl_timer;
typedef struct casl_notifier casl_notifier;
typedef struct casl_tcp casl_tcp;         /* a connection (TCP or pipe) */
typedef struct casl_server casl_server;   /* a listening socket */
typedef struct casl_signal casl_signal;   /* a signal watcher */
typedef struct casl_process casl_process; /* a child process */
typedef struct casl_poll casl_poll;       /* a file descriptor watcher */
typedef struct casl_fs_event casl_fs_event; /* a filesystem watcher */

/* The application's callbacks.  They are called only from casl_loop_run
 * (never from inside uv_run), on the loop's thread, in the order the
 * events happened.  Any may be NULL. */
typedef struct casl_callbacks {
  /* A timer expired. */
  void (*timer)(int64_t id);
  /* A notifier was sent (several sends may be merged into one call). */
  void (*notify)(int64_t id);
  /* A handle is closed; its id will not be used again. */
  void (*closed)(int64_t id);
  /* A server accepted `conn'.  Return the id to give it, or 0 to close
   * it.  Its reads start at once (TLS: the handshake runs in C). */
  int64_t (*accept)(int64_t server_id, casl_tcp *conn);
  /* An outgoing connection is established, or a TLS handshake is complete
   * (peer verified), on either side. */
  void (*connect)(int64_t id);
  /* Data received (plaintext on a TLS connection); copy it. */
  void (*read)(int64_t id, const char *buf, size_t len);
  /* Everything written with CASL_WRITE_NOTIFY has been handed to the
   * kernel and the write queue is empty. */
  void (*written)(int64_t id);
  /* A connection or server failed, or the peer ended it: UV_EOF (clean
   * end; on TLS after close_notify), a libuv error, UV_ETIMEDOUT for a
   * read/write/handshake timeout, UV_EAI_* for DNS, CASL_ETLS,
   * CASL_EVERIFY, CASL_ETRUNCATED, CASL_ETLSEOF.  casl_tcp_error gives
   * the detail.
   * A connection stops reading after an error (not after UV_EOF with
   * queued writes: see casl_tcp_close). */
  void (*error)(int64_t id, int code);
  /* A DNS lookup finished: status 0 and n addresses ("1.2.3.4", "::1")
   * with their families (4 or 6), or a negative UV_EAI_* status. */
  void (*dns)(int64_t id, int status, int n, const char *const *addrs,
              const int *families);
  /* A TLS server connection asks the application for a context by name
   * (see casl_tls_ctx_set_sni_ask); answer with casl_tcp_sni_select. */
  void (*sni)(int64_t id, const char *name);
  /* A watched signal was delivered (deliveries between two iterations
   * may be merged into one call). */
  void (*signal)(int64_t id, int signum);
  /* A child process ended: its exit status, and the signal that ended it
   * (term_signal, 0 if it exited by itself). */
  void (*exit)(int64_t id, int64_t exit_status, int term_signal);
  /* A polled descriptor is ready: status 0 and CASL_POLL_* events; or
   * a negative status, after which the poller is stopped. */
  void (*poll)(int64_t id, int status, int events);
  /* Something changed under a watched path: name (the entry, relative to
   * a watched directory, or the watched file's name; NULL if unknown) and
   * CASL_FS_RENAME / CASL_FS_CHANGE events; or a negative status. */
  void (*fs_event)(int64_t id, int status, const char *name, int events);
  /* A filesystem request (casl_fs_mkdtemp) finished: status 0 and its
   * result (the path made), or a negative code and NULL. */
  void (*fs)(int64_t id, int status, const char *path);
  /* A reverse lookup (casl_dns_reverse) finished: status 0, host and
   * service; or a negative UV_EAI_* status and NULLs. */
  void (*nameinfo)(int64_t id, int status, const char *host,
                   const char *service);
} casl_callbacks;

/* Creates a loop.  cbs is copied. */
CASL_EXTERN int casl_loop_new(casl_loop **out, const casl_callbacks *cbs);
/* Runs until nothing keeps the loop alive or casl_loop_stop is called.
 * Returns 0 after a natural end, 1 if stopped with active handles left,
 * or a negative code. */
CASL_EXTERN int casl_loop_run(casl_loop *loop);
/* One iteration: flushes queued writes, waits for events (at most
 * max_wait_ms when nonzero, 0: as long as needed), dispatches them and
 * flushes again.  Returns CASL_RUN_MORE, CASL_RUN_DONE (nothing keeps the
 * loop alive), CASL_RUN_STOPPED (casl_loop_stop was called) or a negative
 * code.  A host whose asynchronous interrupts must not land inside C code
 * (SBCL) defers them around each call and handles them between calls; the
 * bounded wait keeps that delay short while the loop is idle. */
#define CASL_RUN_DONE 0
#define CASL_RUN_MORE 1
#define CASL_RUN_STOPPED 2
CASL_EXTERN int casl_loop_run_once(casl_loop *loop, uint64_t max_wait_ms);
/* Stops the loop after the events of the current iteration are dispatched.
 * Call it from a callback (the loop thread). */
CASL_EXTERN void casl_loop_stop(casl_loop *loop);
/* Closes every handle without dispatching events, releases everything and
 * frees the loop.  Safe after a callback left casl_loop_run by a
 * non-local exit. */
CASL_EXTERN void casl_loop_free(casl_loop *loop);
/* Non-zero while the loop has referenced active handles or requests. */
CASL_EXTERN int casl_loop_alive(casl_loop *loop);
/* Loop time in milliseconds (cached per iteration). */
CASL_EXTERN uint64_t casl_loop_now(casl_loop *loop);

typedef struct casl_stats {
  int64_t timers;          /* open timer handles */
  int64_t notifiers;       /* open notifier handles */
  int64_t servers;         /* open listening sockets */
  int64_t connections_in;  /* open accepted connections (TCP and TLS) */
  int64_t connections_out; /* open outgoing connections (TCP and TLS) */
  int64_t tls;             /* live TLS filters on this loop */
  int64_t dns_queries;     /* DNS lookups in flight (forward and reverse) */
  int64_t handles;         /* all handles not yet reported closed */
  int64_t queued_events;   /* events waiting to be dispatched */
  int64_t write_queue;     /* bytes queued for writing, all connections */
  int64_t pipes;           /* open pipe connections (unix sockets, stdio) */
  int64_t signals;         /* open signal watchers */
  int64_t processes;       /* child processes not yet reaped */
  int64_t pollers;         /* open descriptor watchers */
  int64_t fs_watchers;     /* open filesystem watchers */
  int64_t fs_requests;     /* filesystem requests in flight */
} casl_stats;
/* Fills *out with the loop's counters. */
CASL_EXTERN void casl_loop_stats(casl_loop *loop, casl_stats *out);
/* Writes a description of every open handle, one per line, into buf
 * (NUL-terminated, truncated to len).  Returns the length it needed. */
CASL_EXTERN size_t casl_loop_describe(casl_loop *loop, char *buf, size_t len);

/* Handles in general. */
/* The handle's application id. */
CASL_EXTERN int64_t casl_handle_id(const casl_handle *h);
/* Whether the handle keeps the loop alive (referenced, the default). */
CASL_EXTERN void casl_handle_ref(casl_handle *h, int ref);
/* Closes any handle (a connection gracefully); `closed' follows. Safe to
 * call twice. */
CASL_EXTERN void casl_handle_close(casl_handle *h);

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */

/* Creates a stopped timer. */
CASL_EXTERN int casl_timer_new(casl_loop *loop, int64_t id, casl_timer **out);
/* Starts (or restarts) it: fires after timeout_ms, then every repeat_ms
 * (0: once).  Timers with equal expiry fire in the order they were started. */
CASL_EXTERN int casl_timer_start(casl_timer *t, uint64_t timeout_ms,
                                 uint64_t repeat_ms);
/* Stops it; it stays open and can be started again. */
CASL_EXTERN int casl_timer_stop(casl_timer *t);
/* Closes it; it never fires again.  `closed' follows. */
CASL_EXTERN void casl_timer_close(casl_timer *t);

/* ------------------------------------------------------------------------ */
/* Notifiers (wake the loop from any thread)                                 */

/* Creates a notifier with id; it keeps the loop alive until closed (or
 * unreferenced with casl_handle_ref). */
CASL_EXTERN int casl_notifier_new(casl_loop *loop, int64_t id,
                                  casl_notifier **out);
/* Wakes the loop to dispatch a `notify' event.  Thread-safe.  The caller
 * must make sure the notifier is not closed concurrently (the Lisp layer
 * holds a lock around both). */
CASL_EXTERN int casl_notifier_send(casl_notifier *n);
/* Closes it (loop thread only); `closed' follows. */
CASL_EXTERN void casl_notifier_close(casl_notifier *n);

/* ------------------------------------------------------------------------ */
/* DNS                                                                       */

#define CASL_AF_UNSPEC 0
#define CASL_AF_INET   4
#define CASL_AF_INET6  6

/* Resolves host asynchronously (family CASL_AF_*); the `dns' callback
 * fires once with id (lookups still running when the loop is freed are
 * cancelled without a callback). */
CASL_EXTERN int casl_dns_lookup(casl_loop *loop, int64_t id, const char *host,
                                int family);
/* Looks up the name of an IPv4 or IPv6 address (port 0) asynchronously;
 * the `nameinfo' callback fires once with id.  An address without a name
 * gives its numeric form.  CASL_EINVAL for a string that is not an IP
 * address. */
CASL_EXTERN int casl_dns_reverse(casl_loop *loop, int64_t id, const char *ip);

#endif /* CASL_LOOP_H */
