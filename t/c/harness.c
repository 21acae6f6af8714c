/*
 * harness.c -- what the C test runner (run-tests.c) and the
 * allocation-failure runner (t/torture/) share: test certificates and
 * their key pins, a bounded loop run, reading files, and running a
 * function in a child process bounded by an alarm.
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
#include <unistd.h>

#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

const char *test_certs_dir;
static char certs_tmpl[1024];
static int made_certs;

int test_certs_setup(void) {
  char cmd[2048];
  if (test_certs_dir == NULL)
    test_certs_dir = getenv("CASL_TEST_CERTS");
  if (test_certs_dir != NULL && *test_certs_dir != '\0')
    return 0;
  if (test_tmp_template(certs_tmpl, sizeof(certs_tmpl), "casl-certs") == NULL ||
      mkdtemp(certs_tmpl) == NULL) {
    perror("mkdtemp");
    return -1;
  }
  snprintf(cmd, sizeof(cmd), "sh '%s/make-certs.sh' '%s' >/dev/null",
           CASL_TEST_DIR, certs_tmpl);
  if (system(cmd) != 0) {
    fprintf(stderr, "could not generate test certificates (%s)\n", cmd);
    return -1;
  }
  test_certs_dir = certs_tmpl;
  made_certs = 1;
  return 0;
}

char *test_tmp_template(char *buf, size_t cap, const char *prefix) {
  const char *dir = getenv("TMPDIR");
  int n;
  if (dir == NULL || *dir == '\0')
    dir = "/tmp";
  n = snprintf(buf, cap, "%s/%s-", dir, prefix);
  if (n < 0 || (size_t)n + 7 > cap)
    return NULL;
  memset(buf + n, 'X', 6);
  buf[n + 6] = '\0';
  return buf;
}

void test_certs_cleanup(void) {
  char cmd[2048];
  if (!made_certs)
    return;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certs_tmpl);
  if (system(cmd) != 0)
    fprintf(stderr, "warning: could not remove %s\n", certs_tmpl);
  made_certs = 0;
}

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

int test_fork_run(int (*fn)(void), unsigned timeout) {
  pid_t pid;
  int status;
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid < 0) {
    perror("fork");
    return TEST_EXIT_HARNESS;
  }
  if (pid == 0) {
    int rc;
    alarm(timeout);
    rc = fn();
#if defined(__SANITIZE_ADDRESS__) || defined(CASL_HAVE_LSAN)
    /* _exit skips LeakSanitizer's exit check: run it here. */
    if (__lsan_do_recoverable_leak_check() != 0)
      rc = TEST_EXIT_LEAK;
#endif
    _exit(rc & 0xff);
  }
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("waitpid");
      return TEST_EXIT_HARNESS;
    }
  }
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "  killed by signal %d%s\n", WTERMSIG(status),
            WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    return TEST_EXIT_SIGNAL + WTERMSIG(status);
  }
  return TEST_EXIT_HARNESS;
}

int test_spki_sha256(const char *cert, unsigned char out[32]) {
  char cmd[2048];
  FILE *f;
  size_t n;
  snprintf(cmd, sizeof(cmd),
           "openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin "
           "-outform DER | openssl dgst -sha256 -binary",
           test_cert_path(cert));
  f = popen(cmd, "r");
  if (f == NULL)
    return -1;
  n = fread(out, 1, 32, f);
  return pclose(f) == 0 && n == 32 ? 0 : -1;
}
