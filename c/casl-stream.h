/*
 * casl-stream.h -- connections (TCP, unix domain sockets, a child's stdio
 * pipes) and servers on the loop, with an optional TLS filter.  The
 * casl_tcp_* functions that do not name an address apply to every kind
 * of connection.
 * Part of the public API: include cl-async-ssl.h, which includes this.
 */
#ifndef CASL_STREAM_H
#define CASL_STREAM_H

#ifndef CL_ASYNC_SSL_H
#error "include cl-async-ssl.h, not casl-stream.h"
#endif

/* ------------------------------------------------------------------------ */
/* TCP                                                                       */

/* Connects to host (IPv4/IPv6 literal, or a name resolved asynchronously,
 * trying each address in turn) on port.  Writes are accepted at once and
 * sent once connected.  Success: `connect'; failure: `error'. */
CASL_EXTERN int casl_tcp_connect(casl_loop *loop, int64_t id, const char *host,
                                 int port, casl_tcp **out);
/* Listen flags. */
#define CASL_LISTEN_REUSEPORT 1 /* SO_REUSEPORT: several sockets (threads or
                                   processes) listen on one port and the
                                   kernel spreads connections over them */

/* Listens on addr (IPv4/IPv6 literal, NULL or "" for 0.0.0.0) and port (0:
 * any free port); backlog < 1 means 128; flags CASL_LISTEN_*.  Bind and
 * listen errors are returned here.  When accepting fails (UV_EMFILE out of
 * descriptors, UV_ENFILE, UV_ENOMEM, ...) the server (TCP or pipe) gets an
 * `error' event, at most one a second, stops accepting and tries again
 * after a pause (10 ms, doubling to 0.5 s); waiting clients stay in the
 * backlog meanwhile. */
CASL_EXTERN int casl_server_listen(casl_loop *loop, int64_t id,
                                   const char *addr, int port, int backlog,
                                   int flags, casl_server **out);
/* Listens on an already bound socket fd (adopted; closed with the server). */
CASL_EXTERN int casl_server_open_fd(casl_loop *loop, int64_t id, int fd,
                                    int backlog, casl_server **out);
/* The port the server is bound to. */
CASL_EXTERN int casl_server_port(casl_server *s);
/* Every accepted connection of s runs TLS as a server on ctx (referenced),
 * with a handshake timeout (0: none). */
CASL_EXTERN int casl_server_set_tls(casl_server *s, casl_tls_ctx *ctx,
                                    uint64_t handshake_timeout_ms);
/* Stops listening; `closed' follows.  Accepted connections stay open. */
CASL_EXTERN void casl_server_close(casl_server *s);

/* Write flags. */
#define CASL_WRITE_NOW    1 /* flush now instead of at the end of the
                               current loop iteration */
#define CASL_WRITE_NOTIFY 2 /* fire `written' once the queue has drained */

/* Queues len bytes (copied).  Queued bytes are sent, coalesced, when the
 * current dispatch ends, or at once with CASL_WRITE_NOW; before a
 * connection (or its TLS handshake) completes they are held and sent in
 * order right after it.  CASL_ECLOSED after casl_tcp_close. */
CASL_EXTERN int casl_tcp_write(casl_tcp *c, const char *buf, size_t len,
                               int flags);
/* Bytes queued and not yet handed to the kernel (plaintext held before a
 * TLS handshake included). */
CASL_EXTERN size_t casl_tcp_write_queue_size(const casl_tcp *c);
/* Pauses / resumes reading (backpressure). */
CASL_EXTERN int casl_tcp_read_stop(casl_tcp *c);
CASL_EXTERN int casl_tcp_read_start(casl_tcp *c);
/* Read inactivity timeout (also bounds connecting) and write timeout (no
 * write progress while data is queued), in ms; 0 clears.  May be called
 * any number of times. */
CASL_EXTERN int casl_tcp_set_timeouts(casl_tcp *c, uint64_t read_ms,
                                      uint64_t write_ms);
/* Closes the connection.  Graceful (force == 0): reading stops, queued
 * data is flushed (on TLS, then close_notify, bounded by a few seconds),
 * then FIN, then the handle closes.  Forced: closes at once, dropping
 * queued data.  `closed' follows; no other event is dispatched for c
 * afterwards except `written'.  Safe to call twice. */
CASL_EXTERN void casl_tcp_close(casl_tcp *c, int force);
/* Detail of the connection's last error ("" if none). */
CASL_EXTERN const char *casl_tcp_error(const casl_tcp *c);
/* Peer and local addresses as text; port in *port.  0 or negative. */
CASL_EXTERN int casl_tcp_peer_address(casl_tcp *c, char *buf, size_t len,
                                      int *port);
CASL_EXTERN int casl_tcp_local_address(casl_tcp *c, char *buf, size_t len,
                                       int *port);
/* The socket fd, or a negative code. */
CASL_EXTERN int casl_tcp_fd(casl_tcp *c);
/* Non-zero once connected (and, with TLS, once the handshake completed). */
CASL_EXTERN int casl_tcp_connected(const casl_tcp *c);

/* Puts a TLS filter on c (client, or server with `server'), on ctx
 * (referenced).  name/session_key as for casl_tls_new.  The filter starts
 * at once if c is connected, else right after the connection.  On a
 * connected socket (STARTTLS), bytes queued before the call go out as
 * plaintext first, and received bytes not yet dispatched are fed to the
 * filter instead of the application.  Writes after the call are held
 * until the handshake completes.  `connect' fires once it completes.
 * handshake_timeout_ms: 0 for none. */
CASL_EXTERN int casl_tcp_start_tls(casl_tcp *c, casl_tls_ctx *ctx, int server,
                                   const char *name, const char *session_key,
                                   uint64_t handshake_timeout_ms);
/* The connection's filter, or NULL. */
CASL_EXTERN casl_tls *casl_tcp_tls(casl_tcp *c);
/* Answers a `sni' event (ctx NULL: the server's default). */
CASL_EXTERN int casl_tcp_sni_select(casl_tcp *c, casl_tls_ctx *ctx);
/* casl_tls_peer_checked on c's filter (reason NULL: the peer is accepted
 * and the data held since the handshake goes out). */
CASL_EXTERN int casl_tcp_peer_checked(casl_tcp *c, const char *reason);

/* ------------------------------------------------------------------------ */
/* Pipes (unix domain sockets)                                               */

/* Connects to the unix domain socket at path.  Writes are accepted at once
 * and sent once connected.  Success: `connect'; failure (UV_ENOENT when
 * nothing is there, UV_ECONNREFUSED when nobody listens): `error'.
 * CASL_EINVAL for a path longer than a socket address holds. */
CASL_EXTERN int casl_pipe_connect(casl_loop *loop, int64_t id,
                                  const char *path, casl_tcp **out);
/* Listens on a new unix domain socket at path (UV_EADDRINUSE if anything
 * exists there; a missing directory is UV_ENOENT); backlog < 1 means 128.
 * Closing the server removes the socket file if it is still the one the
 * server made, and nothing else. */
CASL_EXTERN int casl_pipe_listen(casl_loop *loop, int64_t id,
                                 const char *path, int backlog,
                                 casl_server **out);
/* Listens on an already bound unix socket fd (adopted; closed with the
 * server; its file is never removed). */
CASL_EXTERN int casl_pipe_open_fd(casl_loop *loop, int64_t id, int fd,
                                  int backlog, casl_server **out);

#endif /* CASL_STREAM_H */
