/*
 * test.h -- the C test harness (libuv's test style, small).
 *
 * A test is `TEST_IMPL(name) { ... return 0; }', listed once in
 * test-list.h.  The runner (run-tests.c) forks each test, bounds it with an
 * alarm, and prints one line per test and a summary line
 * "c: N passed, M failed".
 */
#ifndef CASL_TEST_H
#define CASL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl-async-ssl.h"

#define TEST_IMPL(name)                                                     \
  int test_##name(void);                                                    \
  int test_##name(void)
#define TEST_DECLARE(name) int test_##name(void);

/* Directory with the test certificates (made by t/make-certs.sh), set by
 * the runner before any test starts (test_certs_setup). */
extern const char *test_certs_dir;
/* Sets test_certs_dir: as already set, else CASL_TEST_CERTS, else a
 * temporary directory filled by t/make-certs.sh.  0 or -1 (said why). */
int test_certs_setup(void);
/* Removes the temporary directory test_certs_setup made, if it made one. */
void test_certs_cleanup(void);
/* Runs fn in a child process killed by SIGALRM after timeout seconds;
 * under ASan the child then checks for leaks.  Returns fn's result (its
 * low 8 bits), TEST_EXIT_LEAK, TEST_EXIT_SIGNAL + the signal that ended
 * the child (SIGALRM: timeout; said on stderr), or TEST_EXIT_HARNESS. */
#define TEST_EXIT_LEAK 99
#define TEST_EXIT_SIGNAL 1000
#define TEST_EXIT_HARNESS 2000
int test_fork_run(int (*fn)(void), unsigned timeout);
/* A template for mkdtemp/mkstemp in buf: $TMPDIR (else /tmp), then
 * "/prefix-" and the six characters those calls replace.  Returns buf, or
 * NULL when it does not fit in cap. */
char *test_tmp_template(char *buf, size_t cap, const char *prefix);
/* test_cert_path("ca.pem") -> "<certs dir>/ca.pem" (static buffer ring). */
const char *test_cert_path(const char *file);
/* Runs loop with an unreferenced guard timer of guard_id that fires after
 * ms (the test's timer callback sets *guard_fired for it): non-zero if
 * the guard fired or the loop failed. */
int test_run_bounded(casl_loop *loop, int64_t guard_id, uint64_t ms,
                     const int *guard_fired);
/* SHA-256 of a certs-dir certificate's SubjectPublicKeyInfo, computed
 * with the openssl command (an independent implementation).  0 or -1. */
int test_spki_sha256(const char *cert, unsigned char out[32]);
/* Reads a whole file into a malloc'd buffer; *len gets its size. */
char *test_read_file(const char *path, size_t *len);

#define ASSERT(expr)                                                        \
  do {                                                                      \
    if (!(expr)) {                                                          \
      fprintf(stderr, "  assertion failed: %s (%s:%d)\n", #expr, __FILE__, \
              __LINE__);                                                    \
      return 1;                                                             \
    }                                                                       \
  } while (0)

#define ASSERT_EQ(a, b)                                                     \
  do {                                                                      \
    long long a_ = (long long)(a), b_ = (long long)(b);                     \
    if (a_ != b_) {                                                         \
      fprintf(stderr, "  assertion failed: %s == %s (%lld != %lld) (%s:%d)\n", \
              #a, #b, a_, b_, __FILE__, __LINE__);                          \
      return 1;                                                             \
    }                                                                       \
  } while (0)

#define ASSERT_OK(expr) ASSERT_EQ((expr), 0)

/* For callbacks that return nothing: a failure aborts the test process. */
#define ASSERT_VOID(expr)                                                   \
  do {                                                                      \
    if (!(expr)) {                                                          \
      fprintf(stderr, "  assertion failed: %s (%s:%d)\n", #expr, __FILE__, \
              __LINE__);                                                    \
      abort();                                                              \
    }                                                                       \
  } while (0)
#define ASSERT_OK_VOID(expr) ASSERT_VOID((expr) == 0)

#define ASSERT_STR_EQ(a, b)                                                 \
  do {                                                                      \
    const char *a_ = (a), *b_ = (b);                                        \
    if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                  \
      fprintf(stderr, "  assertion failed: %s == %s (\"%s\" != \"%s\") (%s:%d)\n", \
              #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)", __FILE__,     \
              __LINE__);                                                    \
      return 1;                                                             \
    }                                                                       \
  } while (0)

/* Runs a sub-check that returns non-zero on failure, propagating it. */
#define CHECK(call)                                                         \
  do {                                                                      \
    if ((call) != 0) {                                                      \
      fprintf(stderr, "  failed: %s (%s:%d)\n", #call, __FILE__, __LINE__); \
      return 1;                                                             \
    }                                                                       \
  } while (0)

#endif
