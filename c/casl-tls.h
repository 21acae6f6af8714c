/*
 * casl-tls.h -- the TLS engine: contexts and the filter (no libuv).
 * Part of the public API: include cl-async-ssl.h, which includes this.
 */
#ifndef CASL_TLS_H
#define CASL_TLS_H

#ifndef CL_ASYNC_SSL_H
#error "include cl-async-ssl.h, not casl-tls.h"
#endif

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
/* Server SNI decided by the application: with on 1, for every
 * ClientHello whose name matches no casl_tls_ctx_add_sni entry, the filter
 * pauses and calls its `sni' callback; the handshake resumes with
 * casl_tls_sni_select.  With on 2 it asks for every ClientHello, after a
 * matching entry's context was chosen (answering NULL keeps that one), so
 * the application can also set the connection's OCSP staple.  0: off. */
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

/* PKCS#12 (.p12 / .pfx): the certificate, its chain and its key, from a
 * file or from the file's bytes; password NULL for none.  CASL_ECONFIG
 * with "wrong password" in the text when the password does not open it. */
CASL_EXTERN int casl_tls_ctx_use_pkcs12_file(casl_tls_ctx *ctx,
                                             const char *path,
                                             const char *password);
CASL_EXTERN int casl_tls_ctx_use_pkcs12_mem(casl_tls_ctx *ctx,
                                            const char *data, size_t len,
                                            const char *password);

/* Certificate revocation lists (PEM, one or more per file or buffer),
 * checked for the leaf (CASL_CRL_LEAF, the default once a CRL is loaded)
 * or for every certificate of the chain (CASL_CRL_CHAIN; each CA then
 * needs its CRL).  A revoked certificate fails verification with
 * X509_V_ERR_CERT_REVOKED. */
#define CASL_CRL_NONE  0
#define CASL_CRL_LEAF  1
#define CASL_CRL_CHAIN 2
CASL_EXTERN int casl_tls_ctx_load_crl_file(casl_tls_ctx *ctx,
                                           const char *path);
CASL_EXTERN int casl_tls_ctx_load_crl_mem(casl_tls_ctx *ctx, const char *pem,
                                          size_t len);
CASL_EXTERN int casl_tls_ctx_set_crl_check(casl_tls_ctx *ctx, int mode);

/* Public key pinning: n SHA-256 digests (32 bytes each, back to back) of
 * SubjectPublicKeyInfo DER.  Once the peer is verified, the handshake
 * fails with CASL_EVERIFY unless a certificate of its chain has one of
 * them.  n 0: no pinning. */
CASL_EXTERN int casl_tls_ctx_set_pins(casl_tls_ctx *ctx,
                                      const unsigned char *digests, size_t n);

/* Holds the application's data after each handshake on ctx until the
 * application has checked the peer itself: see casl_tls_peer_checked. */
CASL_EXTERN int casl_tls_ctx_set_peer_check(casl_tls_ctx *ctx, int on);

/* Server session-ticket keys: n keys of CASL_TICKET_KEY_LEN bytes (16
 * bytes of name, 32 of HMAC-SHA256 key, 32 of AES-256 key), back to back.
 * The first issues tickets; all are accepted (a ticket of another key is
 * renewed).  Servers with the same keys resume each other's sessions.
 * n 0: keys of the context's own, random, replaced every lifetime (the
 * previous one is still accepted for a lifetime). */
#define CASL_TICKET_KEY_LEN 80
CASL_EXTERN int casl_tls_ctx_set_ticket_keys(casl_tls_ctx *ctx,
                                             const unsigned char *keys,
                                             size_t n);
/* Lifetime of the context's own ticket keys, seconds (default 3600). */
CASL_EXTERN int casl_tls_ctx_set_ticket_lifetime(casl_tls_ctx *ctx,
                                                 uint64_t seconds);
/* Makes dst use the same ticket keys as src (both servers). */
CASL_EXTERN int casl_tls_ctx_copy_ticket_keys(casl_tls_ctx *dst,
                                              casl_tls_ctx *src);

/* OCSP.  Server: the DER response stapled to clients that ask (len 0:
 * none).  Client: CASL_OCSP_OFF (default), CASL_OCSP_ASK (ask; a staple
 * that comes must be valid for the peer's certificate, signed by its
 * issuer or a responder it delegated to, current, and not "revoked"),
 * CASL_OCSP_REQUIRE (no valid staple is a failure).  A failure is
 * CASL_EVERIFY. */
#define CASL_OCSP_OFF     0
#define CASL_OCSP_ASK     1
#define CASL_OCSP_REQUIRE 2
CASL_EXTERN int casl_tls_ctx_set_ocsp_response(casl_tls_ctx *ctx,
                                               const unsigned char *der,
                                               size_t len);
CASL_EXTERN int casl_tls_ctx_set_ocsp(casl_tls_ctx *ctx, int mode);

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
  /* A fatal error: CASL_ETLS, CASL_EVERIFY, CASL_ETRUNCATED or
   * CASL_ETLSEOF (CASL_ENOMEM when memory or an `alloc' buffer was
   * missing); the text is in
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
/* Lets up to `bytes' (at most 256 KiB) of the ciphertext casl_tls_write
 * makes wait in the filter, so that several writes reach `ciphertext' in
 * one call: it is handed on once more is waiting, by casl_tls_flush, or by
 * any other call that emits (feed, shutdown, ...).  0, the default: each
 * write hands on what it made before it returns. */
CASL_EXTERN void casl_tls_set_hold(casl_tls *t, size_t bytes);
/* Hands the ciphertext waiting in the filter to `ciphertext' now: 0, or
 * CASL_EINVAL / CASL_ECLOSED. */
CASL_EXTERN int casl_tls_flush(casl_tls *t);
/* Bytes of ciphertext waiting in the filter (see casl_tls_set_hold). */
CASL_EXTERN size_t casl_tls_pending_ciphertext(const casl_tls *t);
/* Sends close_notify (once; before the handshake completes it is sent
 * right after it and the held plaintext).  Further writes fail with
 * CASL_ECLOSED. */
CASL_EXTERN int casl_tls_shutdown(casl_tls *t);
/* The transport hit EOF.  After a close_notify (already reported through
 * `close_notify') nothing happens; otherwise the remaining plaintext is
 * delivered, then the CASL_ETRUNCATED error (CASL_ETLSEOF during the
 * handshake). */
CASL_EXTERN int casl_tls_eof(casl_tls *t);
/* Answers a `sni' callback (from inside it or later): ctx, a server
 * context (NULL: keep the default context).  CASL_ESTATE when the filter
 * is not waiting for an answer. */
CASL_EXTERN int casl_tls_sni_select(casl_tls *t, casl_tls_ctx *ctx);
/* With casl_tls_ctx_set_peer_check: after the handshake (`handshake'
 * callback) the application's writes are held until this call.  reason
 * NULL: the peer is accepted, held data goes out; otherwise the filter
 * fails with CASL_EVERIFY and reason as its text.  CASL_ESTATE when the
 * filter is not waiting for it. */
CASL_EXTERN int casl_tls_peer_checked(casl_tls *t, const char *reason);
/* Server: the OCSP response to staple on this connection, instead of the
 * context's (len 0: none); call it before the handshake reaches the
 * ServerHello, e.g. from the `sni' callback.  Copied. */
CASL_EXTERN int casl_tls_set_ocsp_response(casl_tls *t,
                                           const unsigned char *der,
                                           size_t len);
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
/* The peer's chain, leaf first: the verified chain when the peer was
 * verified, else the certificates it sent.  *n set; 0 and *out, or
 * CASL_ESTATE when it sent none.  Valid until the filter is freed. */
CASL_EXTERN int casl_tls_peer_chain(casl_tls *t,
                                    const casl_tls_cert_info **out, size_t *n);
/* Client: the OCSP response the server stapled (DER, *len bytes), or NULL. */
CASL_EXTERN const unsigned char *casl_tls_ocsp_response(const casl_tls *t,
                                                        size_t *len);
/* Number of live filters in the process (for leak checks). */
CASL_EXTERN long casl_tls_live_count(void);

#endif /* CASL_TLS_H */
