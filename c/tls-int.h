/*
 * tls-int.h -- what the TLS engine's files share: the context and filter
 * structures, byte buffers and error text.  The engine knows nothing of
 * libuv (it does not include loop-int.h).
 *
 *   tls-util.c       byte buffers, one-time set-up
 *   tls-error.c      OpenSSL's error queue as text, a context's and a
 *                    connection's error text, what a failed SSL call means
 *   tls-config.c     contexts: creation, reference counts, protocol
 *                    options, ciphers, groups, versions
 *   tls-keypair.c    certificates and private keys (PEM, DER, PKCS#12)
 *   tls-verify.c     trust anchors, verification modes, CRLs, pins, OCSP
 *   tls-session.c    client session cache, ticket keys, server SNI,
 *                    ALPN, key log
 *   tls-bio.c        the BIO between OpenSSL and the filter's buffers
 *   tls-filter.c     the filter: one connection's state machine
 *   tls-conninfo.c   what a connection negotiated, the peer certificate
 *   tls-constants.c  OpenSSL constants by name
 */
#ifndef CASL_TLS_INT_H
#define CASL_TLS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "internal.h"

#define ERR_LEN 1024

/* A growable byte buffer; bytes [off, len) are live. */
struct buf {
  char *data;
  size_t off, len, cap;
};

struct sni_entry {
  char *pattern;
  casl_tls_ctx *child;
};

struct session_entry {
  char *key;
  SSL_SESSION *sess;
  uint64_t stamp; /* last use, for LRU eviction */
};

/* A session-ticket key (CASL_TICKET_KEY_LEN bytes on the wire). */
struct ticket_key {
  unsigned char name[16];
  unsigned char hmac[32];
  unsigned char aes[32];
};

/* A context's ticket keys, shared by contexts that copy them (reloads). */
struct ticket_keys {
  atomic_long refs;
  pthread_mutex_t lock;
  struct ticket_key *keys; /* keys[0] issues */
  size_t n;
  int own;         /* random keys of our own, replaced every lifetime */
  uint64_t born;   /* own: when keys[0] was made (seconds) */
  uint64_t lifetime;
};

struct casl_tls_ctx {
  SSL_CTX *ssl_ctx;
  atomic_long refs;
  int server;
  int adopted;
  int verify;
  int cert_type; /* EVP_PKEY base id of the last certificate loaded */
  int key_type;  /* and of the last private key */
  char err[ERR_LEN];
  /* server: ALPN preference list, wire format */
  unsigned char *alpn;
  size_t alpn_len;
  /* server: SNI */
  struct sni_entry *sni;
  size_t nsni;
  int sni_ask;
  /* client: session cache, guarded by lock (filters on several threads
   * may share a context) */
  pthread_mutex_t lock;
  struct session_entry *sessions;
  size_t nsessions;
  int session_max;
  uint64_t clock;
  /* key log */
  casl_tls_keylog_cb keylog_cb;
  void *keylog_ud;
  char *keylog_path;
  /* verification beyond OpenSSL's (tls-verify.c) */
  unsigned char *pins; /* SHA-256 digests of SPKI, 32 bytes each */
  size_t npins;
  int peer_check;      /* hold data until casl_tls_peer_checked */
  int crl_mode;        /* CASL_CRL_* */
  int ocsp_mode;       /* client: CASL_OCSP_* */
  unsigned char *ocsp_der; /* server: the response to staple */
  size_t ocsp_len;
  /* server: session-ticket keys (tls-session.c), NULL until needed */
  struct ticket_keys *tickets;
};

struct casl_tls {
  SSL *ssl;
  casl_tls_ctx *ctx;     /* referenced */
  casl_tls_ctx *cur_ctx; /* ctx, or the SNI child (referenced if != ctx) */
  casl_tls_callbacks cbs;
  void *ud;
  int server;
  int depth;
  unsigned started : 1;
  unsigned hs_done : 1;
  unsigned failed : 1;
  unsigned free_pending : 1;
  unsigned peer_closed : 1; /* close_notify received (and reported) */
  unsigned shut : 1;        /* casl_tls_shutdown called */
  unsigned shut_sent : 1;   /* SSL_shutdown done */
  unsigned eof : 1;         /* casl_tls_eof called */
  unsigned sni_wait : 1;    /* paused for the application's SNI choice */
  unsigned sni_done : 1;    /* the SNI choice is made */
  unsigned in_write : 1;    /* inside write_held (no nested SSL_write) */
  unsigned in_emit : 1;     /* inside emit_pending */
  unsigned peer_wait : 1;   /* handshake done, waiting for
                               casl_tls_peer_checked */
  unsigned ocsp_failed : 1; /* the client's OCSP check failed (err set) */
  /* input: `in' (owned, older) then ext_ptr/ext_len (the caller's) */
  struct buf in;
  const char *ext_ptr;
  size_t ext_len;
  /* ciphertext produced and not yet handed to `ciphertext' */
  struct buf out;
  /* plaintext held before the handshake, or for an SSL_write retry */
  struct buf held;
  size_t retry_len; /* length of the SSL_write that must be retried */
  size_t hold;      /* ciphertext of writes that may wait in `out' */
  /* key log lines (NUL-terminated, back to back) not yet delivered */
  struct buf klog;
  char *session_key;
  char *server_name;
  char *alpn;
  int have_cert;
  casl_tls_cert_info cert;
  casl_tls_cert_info *chain; /* casl_tls_peer_chain, made on first use */
  size_t nchain;
  unsigned char *ocsp_der;   /* server: this connection's staple; client:
                                the staple received */
  size_t ocsp_len;
  int ocsp_set;              /* server: ocsp_der overrides the context's */
  /* the last failure's text: ERR_LEN bytes made on the first failure
   * (casl__tls_err), so that a connection that never fails holds none */
  char *err;
  unsigned err_lost : 1; /* that allocation failed: the text is lost */
};

/* tls-util.c */
/* Process-wide set-up of the engine (idempotent, thread-safe): 0, or
 * CASL_ENOMEM. */
int casl__tls_global_init(void);
/* The filter an SSL belongs to (NULL for SSLs made elsewhere). */
casl_tls *casl__tls_of(const SSL *ssl);
/* Attaches t to its SSL, for casl__tls_of: 0, or CASL_ENOMEM. */
int casl__tls_attach(casl_tls *t);
/* Empties this thread's OpenSSL error queue before an SSL call, so that
 * SSL_get_error sees only what the call left. */
void casl__tls_clear_errors(void);
/* Room for extra more bytes: 0, or CASL_ENOMEM. */
int casl__tbuf_reserve(struct buf *b, size_t extra);
/* Appends len bytes: 0, or CASL_ENOMEM. */
int casl__tbuf_append(struct buf *b, const void *p, size_t len);
/* Live bytes. */
size_t casl__tbuf_size(const struct buf *b);
/* Frees the buffer's memory and empties it. */
void casl__tbuf_free(struct buf *b);
/* Called when a buffer is empty: keeps buffers up to keep bytes, frees
 * bigger ones. */
void casl__tbuf_drained(struct buf *b, size_t keep);

/* tls-error.c */
/* Appends src to the NUL-terminated dst of capacity cap (truncating). */
void casl__tls_str_append(char *dst, size_t cap, const char *src);
/* What casl__tls_err_queue saw in the queue, besides its text. */
#define CASL__TLS_SAW_VERIFY 1u /* certificate verify failed */
#define CASL__TLS_SAW_NOCERT 2u /* the peer returned no certificate */
#define CASL__TLS_SAW_EOF 4u    /* unexpected EOF */
/* Appends OpenSSL's error queue (emptying it) to dst.  with_data also adds
 * the optional data strings (left out where a key is parsed).  Returns the
 * CASL__TLS_SAW_* bits of the SSL reasons it held. */
unsigned casl__tls_err_queue(char *dst, size_t cap, int with_data);
/* Sets ctx's error text to what, then OpenSSL's queue; returns code. */
int casl__tls_ctx_fail(casl_tls_ctx *ctx, int code, const char *what,
                       int with_data);
/* Clears ctx's error text after a call that succeeded. */
void casl__tls_ctx_ok(casl_tls_ctx *ctx);
/* Where to write t's error text (ERR_LEN bytes, NUL-terminated, made on
 * first use).  Out of memory it is a scratch buffer of this thread, and
 * casl_tls_error says the text was lost. */
char *casl__tls_err(casl_tls *t);
/* The code and text (in t's error text) of a failed SSL call on t.  Call
 * it right after SSL_get_error, before any callback can touch the error
 * queue, which it empties. */
int casl__tls_failure(casl_tls *t, int sslerr);

/* tls-session.c */
/* OpenSSL callbacks a context installs. */
int casl__tls_alpn_select_cb(SSL *ssl, const unsigned char **out,
                             unsigned char *outlen, const unsigned char *in,
                             unsigned int inlen, void *arg);
int casl__tls_client_hello_cb(SSL *ssl, int *al, void *arg);
int casl__tls_new_session_cb(SSL *ssl, SSL_SESSION *sess);
/* Empties the client session cache and makes room for max sessions (0:
 * none): 0, or CASL_ENOMEM. */
int casl__tls_session_cache_alloc(casl_tls_ctx *ctx, int max);
/* Frees what tls-session.c keeps in ctx (SNI entries, sessions, ALPN list,
 * key log path). */
void casl__tls_session_free(casl_tls_ctx *ctx);
/* The session saved under key, referenced (or NULL). */
SSL_SESSION *casl__tls_session_lookup(casl_tls_ctx *ctx, const char *key);
/* Puts the connection on child's certificate, key and settings: 0 or -1. */
int casl__tls_switch_ctx(casl_tls *t, casl_tls_ctx *child);
/* The context whose key log settings apply to t. */
casl_tls_ctx *casl__tls_keylog_ctx(casl_tls *t);

/* Installs the session-ticket key callback on a new server context. */
int casl__tls_tickets_init(casl_tls_ctx *ctx);
/* Drops ctx's reference to its ticket keys. */
void casl__tls_tickets_free(casl_tls_ctx *ctx);

/* tls-verify.c */
/* Checks the peer against ctx's pins once the handshake completed: 0, or
 * CASL_EVERIFY with t->err set. */
int casl__tls_check_pins(casl_tls *t);
/* Installs the OCSP status callback on a new context. */
void casl__tls_ocsp_init(casl_tls_ctx *ctx);
/* Frees what tls-verify.c keeps in ctx. */
void casl__tls_verify_free(casl_tls_ctx *ctx);

/* tls-bio.c */
/* A BIO reading t's input and writing t's output, or NULL. */
BIO *casl__tls_bio_new(casl_tls *t);

/* tls-conninfo.c */
/* Frees the strings of a cached peer certificate. */
void casl__tls_cert_info_free(casl_tls_cert_info *c);
/* Frees the cached peer chain. */
void casl__tls_chain_free(casl_tls *t);

#endif
