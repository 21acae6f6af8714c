/*
 * cl-async-ssl.h -- the C half of cl-async-ssl.
 *
 * A flat C API, made to be called through CFFI, in three parts:
 *
 *   loop   a libuv event loop that never runs foreign (Lisp) code inside
 *          uv_run: libuv callbacks only queue events, and the events are
 *          handed to the application's callbacks afterwards, from
 *          casl_loop_run's own frame.  A callback may therefore call any
 *          function here (write, close, stop, ...), and may even leave by a
 *          non-local exit (SBCL unwinds through C frames): no libuv frame is
 *          on the stack, and casl_loop_free resets what the dispatcher held.
 *   tcp    TCP clients and servers on that loop, with write coalescing,
 *          inactivity timeouts, asynchronous DNS and an optional TLS filter
 *          between the wire and the application.
 *   tls    OpenSSL contexts and a memory-BIO TLS filter.  It knows nothing of
 *          libuv and is usable (and tested, and fuzzed) on its own.
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
 *   - Strings are NUL-terminated UTF-8; byte buffers are pointer + length
 *     and are copied when a function needs to keep them.
 *   - Nothing here is thread-safe except casl_notifier_send().  Different
 *     loops may run in different threads.
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

/* A static text for any code returned by this library (libuv's or ours). */
CASL_EXTERN const char *casl_strerror(int code);
/* The symbolic name of a code ("ECONNREFUSED", "ETLS", ...). */
CASL_EXTERN const char *casl_err_name(int code);
/* Library version as "MAJOR.MINOR.PATCH". */
CASL_EXTERN const char *casl_version(void);
/* Versions of libuv and OpenSSL the library runs with. */
CASL_EXTERN const char *casl_libuv_version(void);
CASL_EXTERN const char *casl_openssl_version(void);

/* ------------------------------------------------------------------------ */
/* TLS engine: contexts                                                      */

typedef struct casl_tls_ctx casl_tls_ctx;
typedef struct casl_tls casl_tls;

#define CASL_TLS_CLIENT 0
#define CASL_TLS_SERVER 1

/* Protocol versions for casl_tls_ctx_set_versions (0 = no bound). */
#define CASL_TLS1_0 0x0301
#define CASL_TLS1_1 0x0302
#define CASL_TLS1_2 0x0303
#define CASL_TLS1_3 0x0304

/* Key/certificate encodings. */
#define CASL_FILETYPE_PEM  1
#define CASL_FILETYPE_ASN1 2

/* Peer verification modes for casl_tls_ctx_set_verify. */
#define CASL_VERIFY_NONE     0 /* do not verify the peer */
#define CASL_VERIFY_PEER     1 /* client: verify the server (the default);
                                  server: verify a client cert if one is sent */
#define CASL_VERIFY_REQUIRE  2 /* server: a valid client certificate is required */

/* The default TLS <= 1.2 cipher list (the original cl-async-ssl's). */
#define CASL_DEFAULT_CIPHERS \
  "HIGH:!RC4:!MD5:!aNULL:!EDH:!EXP:+ECDHE-RSA-AES128-SHA256:+3DES"
/* Servers default to it without key exchange lacking forward secrecy
 * (kRSA) and without CBC modes: ECDHE with AEAD ciphers only. */
#define CASL_DEFAULT_SERVER_CIPHERS \
  CASL_DEFAULT_CIPHERS ":!kRSA:!SHA1:!SHA256:!SHA384"
/* Default key exchange groups: none under 128-bit security (no
 * ffdhe2048). */
#define CASL_DEFAULT_GROUPS \
  "X25519:P-256:X448:P-384:P-521:ffdhe3072:ffdhe4096:ffdhe6144:ffdhe8192"

/* Creates a context with secure defaults: TLS 1.2 minimum, no
 * renegotiation, no compression, server cipher preference, session tickets
 * and a server session cache, idle buffers released, the default cipher
 * list (CASL_DEFAULT_SERVER_CIPHERS for servers), CASL_DEFAULT_GROUPS.  Client contexts verify the peer (CASL_VERIFY_PEER) against the
 * trust anchors loaded later; servers do not ask for client certificates.
 * Nothing is loaded (no certificate, no trust store).  *out holds one
 * reference. */
CASL_EXTERN int casl_tls_ctx_new(casl_tls_ctx **out, int server);
/* Wraps an SSL_CTX* made elsewhere.  The caller keeps its own reference:
 * the library takes one more while it uses the context and never frees the
 * caller's.  Its settings are left as they are. */
CASL_EXTERN int casl_tls_ctx_adopt(casl_tls_ctx **out, void *ssl_ctx,
                                   int server);
/* Reference counting: every filter holds a reference to its context. */
CASL_EXTERN void casl_tls_ctx_ref(casl_tls_ctx *ctx);
CASL_EXTERN void casl_tls_ctx_unref(casl_tls_ctx *ctx);
/* The underlying SSL_CTX*. */
CASL_EXTERN void *casl_tls_ctx_ssl_ctx(casl_tls_ctx *ctx);
/* Non-zero for a server context. */
CASL_EXTERN int casl_tls_ctx_is_server(const casl_tls_ctx *ctx);
/* Text of the last failure of a casl_tls_ctx_* call on ctx ("" if none).
 * Never contains key material. */
CASL_EXTERN const char *casl_tls_ctx_error(const casl_tls_ctx *ctx);

/* Sets (ORs in) or clears SSL_OP_* option bits. */
CASL_EXTERN int casl_tls_ctx_set_options(casl_tls_ctx *ctx, uint64_t options);
CASL_EXTERN int casl_tls_ctx_clear_options(casl_tls_ctx *ctx,
                                           uint64_t options);
/* Current SSL_OP_* bits. */
CASL_EXTERN uint64_t casl_tls_ctx_get_options(const casl_tls_ctx *ctx);
/* TLS <= 1.2 cipher list (OpenSSL syntax). */
CASL_EXTERN int casl_tls_ctx_set_ciphers(casl_tls_ctx *ctx, const char *list);
/* Key exchange groups, most preferred first ("X25519:P-256"). */
CASL_EXTERN int casl_tls_ctx_set_groups(casl_tls_ctx *ctx, const char *groups);
/* TLS 1.3 cipher suites (OpenSSL syntax). */
CASL_EXTERN int casl_tls_ctx_set_ciphersuites(casl_tls_ctx *ctx,
                                              const char *suites);
/* Protocol bounds, CASL_TLS1_x or 0 for none.  The minimum defaults to 1.2. */
CASL_EXTERN int casl_tls_ctx_set_versions(casl_tls_ctx *ctx, int min, int max);

/* Certificate chain (leaf first, then intermediates) from a PEM file or
 * from PEM bytes in memory. */
CASL_EXTERN int casl_tls_ctx_use_certificate_chain_file(casl_tls_ctx *ctx,
                                                        const char *path);
CASL_EXTERN int casl_tls_ctx_use_certificate_chain_mem(casl_tls_ctx *ctx,
                                                       const char *pem,
                                                       size_t len);
/* Private key, CASL_FILETYPE_PEM or _ASN1 (DER), optionally encrypted
 * with password (NULL: none).  Fails with CASL_ECONFIG when a certificate
 * is already loaded and the key does not match it. */
CASL_EXTERN int casl_tls_ctx_use_private_key_file(casl_tls_ctx *ctx,
                                                  const char *path, int type,
                                                  const char *password);
CASL_EXTERN int casl_tls_ctx_use_private_key_mem(casl_tls_ctx *ctx,
                                                 const char *data, size_t len,
                                                 int type,
                                                 const char *password);
/* 0 if the loaded key matches the loaded certificate, CASL_ECONFIG if not.
 * After a CASL_ECONFIG from a certificate or key call, the context's
 * certificate and key are unspecified: load them again or discard it. */
CASL_EXTERN int casl_tls_ctx_check_private_key(casl_tls_ctx *ctx);

/* Trust anchors: a PEM file and/or a hashed directory (either may be NULL),
 * PEM bytes in memory, or the system's default paths. */
CASL_EXTERN int casl_tls_ctx_load_verify_locations(casl_tls_ctx *ctx,
                                                   const char *file,
                                                   const char *dir);
CASL_EXTERN int casl_tls_ctx_load_verify_mem(casl_tls_ctx *ctx,
                                             const char *pem, size_t len);
CASL_EXTERN int casl_tls_ctx_load_system_trust(casl_tls_ctx *ctx);
/* Peer verification mode, CASL_VERIFY_*. */
CASL_EXTERN int casl_tls_ctx_set_verify(casl_tls_ctx *ctx, int mode);
CASL_EXTERN int casl_tls_ctx_get_verify(const casl_tls_ctx *ctx);

/* ALPN in wire format (each protocol a length byte then its bytes).
 * Client: the offer list.  Server: the preference list; when the client
 * offers nothing in common the handshake proceeds without ALPN. */
CASL_EXTERN int casl_tls_ctx_set_alpn(casl_tls_ctx *ctx,
                                      const unsigned char *wire, size_t len);

/* Server SNI: when a client asks for a name matching pattern (an exact
 * name, or "*.example.com" for one label; case-insensitive; first match
 * wins), the connection switches to child's certificate, key, trust store,
 * verify mode, options and versions (and ALPN list, if child has one).
 * The context keeps a reference to child. */
CASL_EXTERN int casl_tls_ctx_add_sni(casl_tls_ctx *ctx, const char *pattern,
                                     casl_tls_ctx *child);
/* Server SNI decided by the application: for every ClientHello whose name
 * matches no casl_tls_ctx_add_sni entry, the filter pauses and calls its
 * `sni' callback; the handshake resumes with casl_tls_sni_select. */
CASL_EXTERN int casl_tls_ctx_set_sni_ask(casl_tls_ctx *ctx, int on);

/* Client session resumption: filters created with a session key offer the
 * last session stored under that key (TLS 1.2 ids and TLS 1.3 tickets).
 * On by default; `max' bounds the number of keys kept, least recently used
 * evicted (0: off; default 1024).  Changing it empties the cache.  On a
 * server context: the size of the server's session cache (0: off; tickets
 * stay on unless SSL_OP_NO_TICKET). */
CASL_EXTERN int casl_tls_ctx_set_session_cache(casl_tls_ctx *ctx, int max);

/* Key logging (NSS key log format, one line per secret).  The callback
 * variant gets each line without its newline (from the filter, before its
 * next callback; cb NULL: off); the file variant appends lines to path,
 * created with mode 0600 (NULL: off).  Off by default. */
typedef void (*casl_tls_keylog_cb)(void *ud, const char *line);
CASL_EXTERN int casl_tls_ctx_set_keylog_cb(casl_tls_ctx *ctx,
                                           casl_tls_keylog_cb cb, void *ud);
CASL_EXTERN int casl_tls_ctx_set_keylog_file(casl_tls_ctx *ctx,
                                             const char *path);

/* The value of an OpenSSL constant by name ("SSL_OP_NO_TLSv1_3",
 * "SSL_OP_ALL", "SSL_VERIFY_PEER", ...), from the headers this library was
 * built with.  Returns 0 and sets *out, or CASL_EINVAL for an unknown name. */
CASL_EXTERN int casl_tls_constant(const char *name, uint64_t *out);
/* The names casl_tls_constant knows, NULL-terminated. */
CASL_EXTERN const char *const *casl_tls_constant_names(void);

/* ------------------------------------------------------------------------ */
/* TLS engine: the filter (one connection, no socket)                        */

typedef struct casl_tls_callbacks {
  /* A buffer to decrypt into (like libuv's alloc_cb). */
  void (*alloc)(void *ud, char **buf, size_t *len);
  /* Decrypted bytes in the buffer `alloc' gave; len may be 0, when the
   * buffer is handed back unused.  All that is available is decrypted
   * before the call (one call per buffer filled). */
  void (*plaintext)(void *ud, char *buf, size_t len);
  /* Bytes to send to the peer, batched; copy them before returning. */
  void (*ciphertext)(void *ud, const char *buf, size_t len);
  /* The handshake is complete and the peer verified. */
  void (*handshake)(void *ud);
  /* The peer sent close_notify: a clean end of its data. */
  void (*close_notify)(void *ud);
  /* A fatal error: CASL_ETLS, CASL_EVERIFY or CASL_ETRUNCATED (CASL_ENOMEM
   * when memory or an `alloc' buffer was missing); the text is in
   * casl_tls_error().  Pending alerts were emitted through `ciphertext'
   * first.  Called once; the filter accepts no more input afterwards. */
  void (*error)(void *ud, int code);
  /* Server, with casl_tls_ctx_set_sni_ask: the client asked for `name'
   * (NULL: no SNI).  Call casl_tls_sni_select to go on. May be NULL. */
  void (*sni)(void *ud, const char *name);
} casl_tls_callbacks;

/* Creates a filter on ctx (referenced until the filter is freed); server
 * must match the context's role.  alloc, plaintext and ciphertext are
 * required, the other callbacks may be NULL.  name: client only, the
 * server name for SNI and verification: a DNS name, or an IP literal
 * that is checked against the certificate's IP SANs and not sent as SNI;
 * NULL: no SNI and no name check.  session_key: client only, the key
 * under which sessions are saved and offered (NULL: no resumption).
 * Callbacks may call any casl_tls_* function, including
 * casl_tls_free (deferred until the filter returns). */
CASL_EXTERN int casl_tls_new(casl_tls **out, casl_tls_ctx *ctx, int server,
                             const char *name, const char *session_key,
                             const casl_tls_callbacks *cbs, void *ud);
/* The calls below that drive the filter (start, feed, write, shutdown,
 * eof, sni_select) return 0 when the filter did its work, including when
 * a fatal TLS failure happened meanwhile: that is reported once, through
 * the `error' callback, never also as a return value.  They return
 * CASL_ECLOSED on a filter that failed (or is being freed), CASL_EINVAL
 * for bad arguments, CASL_ENOMEM when plaintext could not be held. */

/* Starts the handshake (a client emits its ClientHello).  Feeding a filter
 * starts it too.  A second call does nothing. */
CASL_EXTERN int casl_tls_start(casl_tls *t);
/* Received ciphertext.  Emits plaintext, ciphertext and state callbacks.
 * Bytes that arrive after the peer's close_notify are ignored; CASL_ECLOSED
 * after casl_tls_eof. */
CASL_EXTERN int casl_tls_feed(casl_tls *t, const char *buf, size_t len);
/* Plaintext to send, copied.  Before the handshake completes it is held
 * and sent, in order, right after it; afterwards it is encrypted at once. */
CASL_EXTERN int casl_tls_write(casl_tls *t, const char *buf, size_t len);
/* Bytes of plaintext held until the handshake completes. */
CASL_EXTERN size_t casl_tls_pending_plaintext(const casl_tls *t);
/* Sends close_notify (once; before the handshake completes it is sent
 * right after it and the held plaintext).  Further writes fail with
 * CASL_ECLOSED. */
CASL_EXTERN int casl_tls_shutdown(casl_tls *t);
/* The transport hit EOF.  After a close_notify (already reported through
 * `close_notify') nothing happens; otherwise the remaining plaintext is
 * delivered, then the CASL_ETRUNCATED error (CASL_ETLS during the
 * handshake). */
CASL_EXTERN int casl_tls_eof(casl_tls *t);
/* Answers a `sni' callback (from inside it or later): ctx, a server
 * context (NULL: keep the default context).  CASL_ESTATE when the filter
 * is not waiting for an answer. */
CASL_EXTERN int casl_tls_sni_select(casl_tls *t, casl_tls_ctx *ctx);
/* Frees the filter (deferred if called from inside one of its callbacks). */
CASL_EXTERN void casl_tls_free(casl_tls *t);
/* Text of the filter's last error ("" if none). */
CASL_EXTERN const char *casl_tls_error(const casl_tls *t);
/* The filter's application pointer. */
CASL_EXTERN void *casl_tls_get_ud(const casl_tls *t);
/* The filter's SSL* (an escape hatch for settings this API lacks).  Do not
 * free it or change its BIOs. */
CASL_EXTERN void *casl_tls_ssl(casl_tls *t);

/* Queries, valid after the handshake (NULL or 0 before) and until the
 * filter is freed. */
CASL_EXTERN int casl_tls_handshake_done(const casl_tls *t);
CASL_EXTERN const char *casl_tls_protocol(const casl_tls *t); /* "TLSv1.3" */
CASL_EXTERN const char *casl_tls_cipher(const casl_tls *t);
/* Negotiated ALPN protocol, NUL-terminated copy (NULL: none). */
CASL_EXTERN const char *casl_tls_alpn(const casl_tls *t);
/* Server: the name the client asked for (NULL: none). */
CASL_EXTERN const char *casl_tls_server_name(const casl_tls *t);
CASL_EXTERN int casl_tls_session_reused(const casl_tls *t);
/* X509 verification result code (0 = ok) and its text, also valid after a
 * failed handshake.  (A client that sent no certificate to a server that
 * requires one fails with CASL_EVERIFY while this stays 0.) */
CASL_EXTERN long casl_tls_verify_result(const casl_tls *t);
CASL_EXTERN const char *casl_tls_verify_string(const casl_tls *t);

/* The peer's certificate; strings stay valid until the filter is freed. */
typedef struct casl_tls_cert_info {
  const char *subject;    /* one line, RFC 2253 ("CN=a,O=b") */
  const char *issuer;     /* same form */
  const char *sans;       /* DNS names and IP addresses, one per line */
  int64_t not_before;     /* Unix time */
  int64_t not_after;      /* Unix time */
  const char *serial;     /* upper-case hex */
  const char *sha256;     /* "AB:CD:..." of the DER encoding */
  const char *pem;        /* the certificate, PEM */
} casl_tls_cert_info;
/* 0 and *out set, or CASL_ESTATE when the peer sent no certificate. */
CASL_EXTERN int casl_tls_peer_cert(casl_tls *t,
                                   const casl_tls_cert_info **out);
/* Number of live filters in the process (for leak checks). */
CASL_EXTERN long casl_tls_live_count(void);

/* ------------------------------------------------------------------------ */
/* Event loop                                                                */

typedef struct casl_loop casl_loop;
typedef struct casl_handle casl_handle;   /* any handle below */
typedef struct casl_timer casl_timer;
typedef struct casl_notifier casl_notifier;
typedef struct casl_tcp casl_tcp;         /* a connection */
typedef struct casl_server casl_server;   /* a listening socket */

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
   * CASL_EVERIFY, CASL_ETRUNCATED.  casl_tcp_error gives the detail.
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
  int64_t dns_queries;     /* DNS lookups in flight */
  int64_t handles;         /* all handles not yet reported closed */
  int64_t queued_events;   /* events waiting to be dispatched */
  int64_t write_queue;     /* bytes queued for writing, all connections */
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

/* ------------------------------------------------------------------------ */
/* TCP                                                                       */

/* Connects to host (IPv4/IPv6 literal, or a name resolved asynchronously,
 * trying each address in turn) on port.  Writes are accepted at once and
 * sent once connected.  Success: `connect'; failure: `error'. */
CASL_EXTERN int casl_tcp_connect(casl_loop *loop, int64_t id, const char *host,
                                 int port, casl_tcp **out);
/* Listens on addr (IPv4/IPv6 literal, NULL or "" for 0.0.0.0) and port (0:
 * any free port); backlog < 1 means 128.  Bind and listen errors are
 * returned here. */
CASL_EXTERN int casl_server_listen(casl_loop *loop, int64_t id,
                                   const char *addr, int port, int backlog,
                                   casl_server **out);
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

#ifdef __cplusplus
}
#endif
#endif /* CL_ASYNC_SSL_H */
