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

const char *test_certs_dir;

const char *test_cert_path(const char *file) {
  static char ring[8][1024];
  static int next;
  char *buf = ring[next++ % 8];
  snprintf(buf, sizeof(ring[0]), "%s/%s", test_certs_dir, file);
  return buf;
}

int test_run_bounded(casl_loop *loop, int64_t guard_id, uint64_t ms,
                     const int *guard_fired) {
  casl_timer *guard;
  int rc;
  if (casl_timer_new(loop, guard_id, &guard) != 0)
    return 1;
  casl_handle_ref((casl_handle *)guard, 0);
  if (casl_timer_start(guard, ms, 0) != 0)
    return 1;
  rc = casl_loop_run(loop);
  casl_timer_close(guard);
  return *guard_fired || rc < 0;
}

char *test_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  long n;
  if (f == NULL)
    return NULL;
  if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0)
    goto fail;
  buf = malloc((size_t)n + 1);
  if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
    goto fail;
  buf[n] = '\0';
  *len = (size_t)n;
  fclose(f);
  return buf;
fail:
  free(buf);
  fclose(f);
  return NULL;
}

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
  pid_t pid;
  int status;
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    int rc;
    alarm(timeout);
    rc = t->fn() == 0 ? 0 : 1;
#if defined(__SANITIZE_ADDRESS__) || defined(CASL_HAVE_LSAN)
    /* _exit skips LeakSanitizer's exit check: run it here. */
    if (__lsan_do_recoverable_leak_check() != 0)
      rc = 1;
#endif
    _exit(rc);
  }
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("waitpid");
      return 1;
    }
  }
  if (WIFEXITED(status))
    return WEXITSTATUS(status) == 0 ? 0 : 1;
  if (WIFSIGNALED(status))
    fprintf(stderr, "  killed by signal %d%s\n", WTERMSIG(status),
            WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
  return 1;
}

int main(int argc, char **argv) {
  unsigned timeout = 300;
  int first = 1, passed = 0, failed = 0;
  char tmpl[] = "/tmp/casl-certs-XXXXXX";
  char cmd[2048];
  int made_certs = 0;
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
  if (test_certs_dir == NULL)
    test_certs_dir = getenv("CASL_TEST_CERTS");
  if (test_certs_dir == NULL || *test_certs_dir == '\0') {
    if (mkdtemp(tmpl) == NULL) {
      perror("mkdtemp");
      return 2;
    }
    snprintf(cmd, sizeof(cmd), "sh '%s/make-certs.sh' '%s' >/dev/null",
             CASL_TEST_DIR, tmpl);
    if (system(cmd) != 0) {
      fprintf(stderr, "could not generate test certificates (%s)\n", cmd);
      return 2;
    }
    test_certs_dir = tmpl;
    made_certs = 1;
  }

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
  if (made_certs) {
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
    if (system(cmd) != 0)
      fprintf(stderr, "warning: could not remove %s\n", tmpl);
  }
  printf("c: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
