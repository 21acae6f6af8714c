/*
 * test-tls.h -- helpers for the TLS engine tests: a client filter and a
 * server filter wired back to back in memory (a "pair"), with the
 * ciphertext delivered whole, 1 byte at a time, in random-sized chunks
 * (fixed seed) or in 64 KiB chunks.
 */
#ifndef CASL_TEST_TLS_H
#define CASL_TEST_TLS_H

#include <stdint.h>

#include "cl-async-ssl.h"
#include "test.h"

#define X(name) TEST_DECLARE(name)
#include "test-list-tls.h"
#undef X

enum deliver { DELIVER_WHOLE, DELIVER_BYTE, DELIVER_RANDOM, DELIVER_64K };

/* Callbacks, for "free the filter from inside this one". */
enum tcb {
  CB_NONE,
  CB_ALLOC,
  CB_PLAINTEXT,
  CB_CIPHERTEXT,
  CB_HANDSHAKE,
  CB_CLOSE_NOTIFY,
  CB_ERROR,
  CB_SNI
};

#define TEND_ABUF (64 * 1024)

typedef struct tend tend;
struct tend {
  casl_tls *t;
  tend *peer;
  /* ciphertext this end emitted, not yet delivered to the peer */
  char *q;
  size_t qlen, qcap;
  /* plaintext received: kept (rx) or checked against the pattern */
  char *rx;
  size_t rx_len, rx_cap;
  int check_pattern;
  int pattern_bad;
  uint64_t rx_total;
  /* counters */
  int handshakes, close_notifies, errors, error_code, sni_calls;
  int allocs, plaintexts, ciphertexts, alloc_outstanding, bad_order;
  int after_free_calls;
  char err[1024];
  char sni_name[256];
  int sni_null;
  /* actions */
  int free_in;          /* enum tcb: free the filter in that callback */
  int freed;            /* casl_tls_free was called */
  int sni_select_now;   /* answer the sni callback from inside it */
  casl_tls_ctx *sni_answer;
  const char *write_on_handshake;
  int shutdown_on_handshake;
  int echo; /* write every plaintext back from inside the callback */
  char *abuf;
};

typedef struct tpair {
  tend c, s;
  int mode;
  uint64_t rng;
} tpair;

/* Scale for big transfers, from CASL_TEST_SCALE (default 1). */
double test_scale(void);
/* The pattern byte at stream position i. */
unsigned char test_pattern(uint64_t i);

/* A server context with chain+key (PEM files from the certs dir), NULL on
 * failure (the reason is printed). */
casl_tls_ctx *test_server_ctx(const char *chain, const char *key);
/* A client context trusting ca (a certs-dir file; NULL: nothing). */
casl_tls_ctx *test_client_ctx(const char *ca);

/* Creates both filters (the pair starts zeroed by this call). */
int tpair_init(tpair *p, casl_tls_ctx *cctx, casl_tls_ctx *sctx,
               const char *name, const char *session_key);
/* Shuttles ciphertext both ways until nothing moves.  */
void tpair_run(tpair *p);
/* Starts both ends and runs. */
void tpair_start(tpair *p);
/* Frees what is left of both ends. */
void tpair_free(tpair *p);
/* Both ends handshook with no error. */
int tpair_ok(const tpair *p);
/* Plaintext received by e equals s. */
int tend_got(const tend *e, const char *s);
/* Writes n pattern bytes starting at stream position *pos. */
int tend_write_pattern(tend *e, uint64_t *pos, size_t n);
/* Free the end's filter now (safe inside its callbacks). */
void tend_free(tend *e);

#endif
