/*
 * cl-async-ssl.h -- the C half of cl-async-ssl.
 *
 * A flat C API, made to be called through CFFI, in parts, each in a
 * header of its own that this one includes:
 *
 *   casl-loop.h    a libuv event loop that never runs foreign (Lisp) code
 *                  inside uv_run: libuv callbacks only queue events, and
 *                  the events are handed to the application's callbacks
 *                  afterwards, from casl_loop_run's own frame.  A callback
 *                  may therefore call any function here (write, close,
 *                  stop, ...), and may even leave by a non-local exit
 *                  (SBCL unwinds through C frames): no libuv frame is on
 *                  the stack, and casl_loop_free resets what the dispatcher
 *                  held.  Timers, notifiers and DNS run on it.
 *   casl-stream.h  TCP clients and servers on that loop, with write
 *                  coalescing, inactivity timeouts, asynchronous DNS and an
 *                  optional TLS filter between the wire and the
 *                  application.
 *   casl-process.h signal watchers and child processes.
 *   casl-fs.h      descriptor pollers, filesystem watchers, filesystem
 *                  requests.
 *   casl-tls.h     OpenSSL contexts and a memory-BIO TLS filter.  It knows
 *                  nothing of libuv and is usable (and tested, and fuzzed)
 *                  on its own.
 *
 * The sources, one concern a file (internal headers: *-int.h):
 *   util.c                 error texts, versions, process-wide set-up
 *   loop.c                 handles, the event queue, run/stop/teardown,
 *                          statistics
 *   bufpool.c              the loop's pool of read and write buffers
 *   timer.c notifier.c     timers; cross-thread wake-ups
 *   dns.c                  name resolution
 *   stream.c               the byte-stream core: reads, the write queue
 *                          (wqueue.c), timeouts, graceful and forced close
 *   stream-tls.c           the TLS filter on a stream, STARTTLS, SNI answers
 *   server.c tcp.c pipe.c  listening and accepting; TCP connect and bind;
 *                          unix domain sockets
 *   signal.c process.c     signal watchers; child processes and their pipes
 *   poll.c fsevent.c fs.c  descriptor pollers; filesystem watchers;
 *                          filesystem requests
 *   fd.c                   settings and queries of application descriptors
 *   tls-config.c tls-keypair.c tls-verify.c tls-session.c
 *                          TLS contexts: protocol settings; certificates and
 *                          keys; trust and verification; sessions, SNI,
 *                          ALPN, key log
 *   tls-filter.c tls-bio.c the filter's state machine and its BIO
 *   tls-conninfo.c         what a connection negotiated, peer certificate
 *   tls-constants.c        OpenSSL constants by name
 *   tls-util.c             buffers and set-up shared by the TLS files
 *   tls-error.c            error text: OpenSSL's queue, failed SSL calls
 *   alloc-torture.c        the allocation-failure build's counting
 *   uv-torture.c           allocator, and its failing libuv calls
 *                          (torture.h; make torture only)
 *
 * Conventions
 *   - Every function that can fail returns 0 or a negative code: a libuv
 *     error (negative errno, UV_EOF, UV_EAI_*) or one of the CASL_E* codes
 *     below.  casl_strerror() gives a static text for any code; the detailed
 *     text of a TLS failure is kept in the object that failed
 *     (casl_tls_ctx_error, casl_tls_error, casl_tcp_error).
 *   - Handles are created with an application id (int64_t); every event
 *     passes that id back.  A handle's memory stays valid until its `closed'
 *     event has been dispatched, then it is freed by the library.
 *   - Out of memory: a handle whose event cannot be queued is closed at
 *     once after the current round of events, and gets `error' (UV_ENOMEM,
 *     or the error that could not be queued) right before its `closed'.
 *     `closed' itself and the answers of DNS and filesystem requests never
 *     need memory when they happen.
 *   - Strings are NUL-terminated UTF-8; byte buffers are pointer + length
 *     and are copied when a function needs to keep them.
 *   - Nothing here is thread-safe except casl_notifier_send().  Different
 *     loops may run in different threads.
 *   - Signals: the library installs a handler only for signals a watcher
 *     asks for (casl_signal_new), and child processes make libuv watch
 *     SIGCHLD; every other disposition is left as the host set it.
 *   - The library ignores SIGPIPE once, process-wide, the first time a loop
 *     is created (a write to a closed peer is then an EPIPE error instead of
 *     a signal in the middle of uv_run), and initialises OpenSSL once.
 */
#ifndef CL_ASYNC_SSL_H
#define CL_ASYNC_SSL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CASL_EXTERN __attribute__((visibility("default")))
#else
#define CASL_EXTERN
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

#define CASL_ETLS       (-30001) /* TLS protocol failure or alert */
#define CASL_EVERIFY    (-30002) /* peer certificate verification failed */
#define CASL_ETRUNCATED (-30003) /* transport EOF without a TLS close_notify */
#define CASL_ECONFIG    (-30004) /* a TLS context setting was rejected */
#define CASL_ENOMEM     (-30005) /* out of memory */
#define CASL_EINVAL     (-30006) /* invalid argument */
#define CASL_ECLOSED    (-30007) /* the object is closed, failed or shut down */
#define CASL_ESTATE     (-30008) /* not allowed in the object's current state */
#define CASL_ETLSEOF    (-30009) /* transport EOF during the TLS handshake */

/* A static text for any code returned by this library (libuv's or ours);
 * "unknown error" for a code that is neither. */
CASL_EXTERN const char *casl_strerror(int code);
/* The symbolic name of a code ("ECONNREFUSED", "ETLS", ...); "UNKNOWN"
 * for a code that is neither libuv's nor ours. */
CASL_EXTERN const char *casl_err_name(int code);
/* Library version as "MAJOR.MINOR.PATCH". */
CASL_EXTERN const char *casl_version(void);
/* Versions of libuv and OpenSSL the library runs with. */
CASL_EXTERN const char *casl_libuv_version(void);
CASL_EXTERN const char *casl_openssl_version(void);

#include "casl-tls.h"
#include "casl-loop.h"
#include "casl-stream.h"
#include "casl-process.h"
#include "casl-fs.h"

#ifdef __cplusplus
}
#endif
#endif /* CL_ASYNC_SSL_H */
