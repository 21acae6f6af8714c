/*
 * run-torture.c -- `make torture': every scenario of scenarios.c is run
 * once with no failure (it must succeed; that run counts its
 * allocations), then again and again with allocation number 1, 2, 3, ...
 * failing, until a run ends before reaching it.  Each run is a child
 * process under ASan + UBSan with LeakSanitizer at its end, bounded by an
 * alarm.  A run fails if the child crashes, hangs, leaks, or says the
 * scenario ended broken (see scenarios.c).
 *
 * The `fresh' scenario (init) runs first, in children of a process where
 * nothing is initialised.  Then this process runs tls-echo once itself,
 * so that OpenSSL's process-wide state (its initialisation, the
 * algorithms it fetches at first use) exists before the other scenarios
 * fork: their counts are their own work.  OpenSSL 3.0 leaks some of its
 * global tables when its own initialisation fails part-way; a leak in an
 * init run is therefore counted and shown, not failed.
 *
 *   run-torture [--runs R] [--timeout S] [--verbose] [SCENARIO...]
 *   run-torture --at N SCENARIO     (one run, in this process: for a debugger)
 *
 * --runs R: at most R failing runs per scenario, spread evenly over its
 * allocations (CI); without it every allocation fails once.  The last line
 * is "torture: N runs, M failed"; the exit status is 0 only if M is 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "scenarios.h"
#include "test.h"
#include "torture.h"

/* What a child tells its parent through the pipe. */
struct record {
  int result; /* SCN_* */
  int injected;
  uint64_t count;
  char where[256];
};

static const scenario *current;
static uint64_t fail_at;
static int record_fd = -1;
static int log_fd = -1;

static int child(void) {
  struct record r;
  const char *where = NULL;
  if (dup2(log_fd, 2) < 0)
    return SCN_BROKEN;
  casl_torture_arm(fail_at);
  memset(&r, 0, sizeof(r));
  r.result = current->run();
  r.injected = casl_torture_injected(&where);
  r.count = casl_torture_count();
  if (where != NULL)
    snprintf(r.where, sizeof(r.where), "%s", where);
  casl_torture_arm(0);
  if (write(record_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
    return SCN_BROKEN;
  return r.result;
}

/* Distinct sites where a failure was injected. */
static char **sites;
static size_t nsites, capsites;
static size_t site_ours, site_ossl, site_uv;

static int our_file(const char *where) {
  char path[512];
  size_t n = strcspn(where, ":");
  if (memchr(where, '/', n) != NULL)
    return 0;
  snprintf(path, sizeof(path), "%s/../c/%.*s", CASL_TEST_DIR, (int)n, where);
  return access(path, F_OK) == 0;
}

static void add_site(const char *where) {
  size_t i;
  for (i = 0; i < nsites; i++)
    if (strcmp(sites[i], where) == 0)
      return;
  if (nsites == capsites) {
    size_t cap = capsites ? capsites * 2 : 256;
    char **p = realloc(sites, cap * sizeof(*p));
    if (p == NULL) {
      perror("realloc");
      exit(2);
    }
    sites = p;
    capsites = cap;
  }
  sites[nsites] = strdup(where);
  if (sites[nsites] == NULL) {
    perror("strdup");
    exit(2);
  }
  nsites++;
  if (strcmp(where, "libuv") == 0)
    site_uv++;
  else if (our_file(where))
    site_ours++;
  else
    site_ossl++;
}

static void show_log(void) {
  char buf[4096];
  ssize_t n;
  int lines = 0;
  if (lseek(log_fd, 0, SEEK_SET) < 0)
    return;
  while ((n = read(log_fd, buf, sizeof(buf) - 1)) > 0 && lines < 60) {
    char *p = buf, *nl;
    buf[n] = '\0';
    while ((nl = strchr(p, '\n')) != NULL && lines < 60) {
      *nl = '\0';
      fprintf(stderr, "    | %s\n", p);
      p = nl + 1;
      lines++;
    }
  }
}

static long init_leaks;

/* One run with allocation n failing (0: none).  Returns 0 if it ended as
 * it may, with *r filled in; 1 if it failed (said why). */
static int run(uint64_t n, unsigned timeout, struct record *r) {
  int fds[2], rc;
  ssize_t got;
  const char *why = NULL;
  if (pipe(fds) != 0 || ftruncate(log_fd, 0) != 0 ||
      lseek(log_fd, 0, SEEK_SET) < 0) {
    perror("run-torture");
    exit(2);
  }
  record_fd = fds[1];
  fail_at = n;
  rc = test_fork_run(child, timeout);
  close(fds[1]);
  memset(r, 0, sizeof(*r));
  got = read(fds[0], r, sizeof(*r));
  close(fds[0]);
  if (rc == TEST_EXIT_LEAK && current->fresh && n > 0 &&
      got == (ssize_t)sizeof(*r) && r->result != SCN_BROKEN) {
    init_leaks++; /* OpenSSL's, see above */
    return 0;
  }
  if (rc == TEST_EXIT_LEAK)
    why = "leak";
  else if (rc == TEST_EXIT_SIGNAL + SIGALRM)
    why = "hang";
  else if (rc >= TEST_EXIT_SIGNAL)
    why = "crash";
  else if (got != (ssize_t)sizeof(*r))
    why = "died (sanitizer report?)";
  else if (r->result == SCN_BROKEN)
    why = "broken";
  else if (n == 0 && r->result != SCN_SUCCESS)
    why = "failed with no allocation failing";
  if (why == NULL)
    return 0;
  printf("FAIL %s: allocation %" PRIu64 " (%s) failing: %s\n", current->name,
         n, r->where[0] ? r->where : "?", why);
  fflush(stdout);
  show_log();
  return 1;
}

/* Sets up OpenSSL's process-wide state here, before the forks. */
static int warm_up(void) {
  const scenario *s;
  for (s = scenarios; s->name != NULL; s++) {
    if (strcmp(s->name, "tls-echo") != 0)
      continue;
    casl_torture_arm(0);
    if (s->run() != SCN_SUCCESS) {
      fprintf(stderr, "run-torture: tls-echo failed with nothing failing\n");
      return -1;
    }
    return 0;
  }
  fprintf(stderr, "run-torture: no tls-echo scenario\n");
  return -1;
}

static int selected(const char *name, int argc, char **argv, int first) {
  int i;
  if (first >= argc)
    return 1;
  for (i = first; i < argc; i++)
    if (strcmp(name, argv[i]) == 0)
      return 1;
  return 0;
}

int main(int argc, char **argv) {
  unsigned timeout = 60;
  uint64_t max_runs = 0;
  int first = 1, verbose = 0;
  long total_runs = 0, total_failed = 0, total_injected = 0;
  char log_path[] = "/tmp/casl-torture-log-XXXXXX";
  const scenario *s;
  int pass, warmed = 0;
  uint64_t at = 0;

  if (casl_torture_install() != 0) {
    fprintf(stderr, "run-torture: OpenSSL or libuv allocated before "
                    "casl_torture_install\n");
    return 2;
  }
  while (first < argc && strncmp(argv[first], "--", 2) == 0) {
    if (strcmp(argv[first], "--runs") == 0 && first + 1 < argc) {
      max_runs = strtoull(argv[first + 1], NULL, 10);
      first += 2;
    } else if (strcmp(argv[first], "--timeout") == 0 && first + 1 < argc) {
      timeout = (unsigned)atoi(argv[first + 1]);
      first += 2;
    } else if (strcmp(argv[first], "--at") == 0 && first + 1 < argc) {
      at = strtoull(argv[first + 1], NULL, 10);
      first += 2;
    } else if (strcmp(argv[first], "--verbose") == 0) {
      verbose = 1;
      first++;
    } else {
      fprintf(stderr, "usage: %s [--runs R] [--timeout S] [--verbose] "
                      "[SCENARIO...]\n", argv[0]);
      return 2;
    }
  }
  if (test_certs_setup() != 0)
    return 2;
  if (scenarios_prepare() != 0) {
    fprintf(stderr, "run-torture: could not prepare the scenarios\n");
    return 2;
  }
  if (at > 0) {
    const char *where = NULL;
    int result;
    for (s = scenarios; s->name != NULL; s++)
      if (first < argc && strcmp(s->name, argv[first]) == 0)
        break;
    if (s->name == NULL) {
      fprintf(stderr, "--at needs a scenario\n");
      return 2;
    }
    if (!s->fresh && warm_up() != 0)
      return 2;
    casl_torture_arm(at);
    result = s->run();
    (void)casl_torture_injected(&where);
    printf("%s at %" PRIu64 " (%s): %s\n", s->name, at,
           where != NULL ? where : "not reached",
           result == SCN_SUCCESS ? "done" : result == SCN_REPORTED ? "reported"
                                                                  : "broken");
    test_certs_cleanup();
    return result == SCN_BROKEN;
  }
  log_fd = mkstemp(log_path);
  if (log_fd < 0) {
    perror("mkstemp");
    return 2;
  }
  (void)unlink(log_path);

  for (pass = 0; pass < 2; pass++)
  for (s = scenarios; s->name != NULL; s++) {
    struct record r;
    uint64_t n, step = 1, total;
    long runs = 0, failed = 0, injected = 0, reported = 0, succeeded = 0;
    size_t sites_before = nsites;
    struct timespec a, b;
    if (s->fresh != (pass == 0))
      continue;
    if (pass == 1 && !warmed) {
      if (warm_up() != 0)
        return 2;
      warmed = 1;
    }
    if (!selected(s->name, argc, argv, first))
      continue;
    current = s;
    clock_gettime(CLOCK_MONOTONIC, &a);
    runs++;
    if (run(0, timeout, &r) != 0) {
      total_runs++;
      total_failed++;
      continue;
    }
    total = r.count;
    if (max_runs > 0 && total > max_runs)
      step = total / max_runs;
    for (n = 1;; n += step) {
      if (n > 2 * total + 1000) {
        printf("FAIL %s: runs still reach allocation %" PRIu64
               " (%" PRIu64 " without failures)\n", s->name, n, total);
        failed++;
        break;
      }
      runs++;
      if (run(n, timeout, &r) != 0) {
        failed++;
        continue;
      }
      if (!r.injected)
        break; /* the run ended before allocation n */
      injected++;
      add_site(r.where);
      if (r.result == SCN_SUCCESS)
        succeeded++;
      else
        reported++;
      if (verbose)
        printf("  %s %" PRIu64 " %s: %s\n", s->name, n, r.where,
               r.result == SCN_SUCCESS ? "done anyway" : "reported");
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%s %s: %" PRIu64 " allocations, %ld failed in turn%s "
           "(%ld reported, %ld done anyway), %zu new sites, %ld broken "
           "(%.1fs)\n",
           failed ? "FAIL" : "ok  ", s->name, total, injected,
           step > 1 ? " (sampled)" : "", reported, succeeded,
           nsites - sites_before, failed,
           (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    fflush(stdout);
    total_runs += runs;
    total_failed += failed;
    total_injected += injected;
  }
  test_certs_cleanup();
  printf("torture: %ld injected failures at %zu sites (ours %zu, OpenSSL "
         "%zu, libuv %zu)\n",
         total_injected, nsites, site_ours, site_ossl, site_uv);
  if (init_leaks > 0)
    printf("torture: %ld init runs leaked inside OpenSSL's own failed "
           "initialisation (not counted as failures)\n", init_leaks);
  printf("torture: %ld runs, %ld failed\n", total_runs, total_failed);
  return total_failed == 0 ? 0 : 1;
}
