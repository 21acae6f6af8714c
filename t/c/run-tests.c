/*
 * run-tests.c -- runs the C tests listed in test-list-*.h.
 *
 *   run-tests [--certs DIR] [--timeout SECONDS] [NAME-SUBSTRING...]
 *
 * Each test runs in a child process bounded by an alarm (a hung test is a
 * failing test).  Certificates come from DIR, or from CASL_TEST_CERTS, or
 * are generated with t/make-certs.sh into a temporary directory that is
 * removed at the end.  The last line is "c: N passed, M failed"; the exit
 * status is 0 only when nothing failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#define X(name) TEST_DECLARE(name)
#include "test-list-core.h"
#include "test-list-handles.h"
#include "test-list-tls.h"
#undef X

struct test_entry {
  const char *name;
  int (*fn)(void);
};

static const struct test_entry tests[] = {
#define X(name) {#name, test_##name},
#include "test-list-core.h"
#include "test-list-handles.h"
#include "test-list-tls.h"
#undef X
    {NULL, NULL}};

static int selected(const char *name, int argc, char **argv, int first) {
  int i;
  if (first >= argc)
    return 1;
  for (i = first; i < argc; i++)
    if (strstr(name, argv[i]) != NULL)
      return 1;
  return 0;
}

static int run_one(const struct test_entry *t, unsigned timeout) {
  return test_fork_run(t->fn, timeout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  unsigned timeout = 300;
  int first = 1, passed = 0, failed = 0;
  const struct test_entry *t;

  while (first < argc && strncmp(argv[first], "--", 2) == 0) {
    if (strcmp(argv[first], "--certs") == 0 && first + 1 < argc) {
      test_certs_dir = argv[first + 1];
      first += 2;
    } else if (strcmp(argv[first], "--timeout") == 0 && first + 1 < argc) {
      timeout = (unsigned)atoi(argv[first + 1]);
      first += 2;
    } else {
      fprintf(stderr, "usage: %s [--certs DIR] [--timeout S] [NAME...]\n",
              argv[0]);
      return 2;
    }
  }
  if (test_certs_setup() != 0)
    return 2;

  for (t = tests; t->name != NULL; t++) {
    struct timespec a, b;
    int rc;
    if (!selected(t->name, argc, argv, first))
      continue;
    clock_gettime(CLOCK_MONOTONIC, &a);
    rc = run_one(t, timeout);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%s %s (%.2fs)\n", rc == 0 ? "ok  " : "FAIL", t->name,
           (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    if (rc == 0)
      passed++;
    else
      failed++;
  }
  test_certs_cleanup();
  printf("c: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
