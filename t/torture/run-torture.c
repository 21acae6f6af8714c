/*
 * run-torture.c -- `make torture': every scenario of scenarios.c is run
 * once with no failure (it must succeed; that run counts its
 * allocations), then again and again with allocation number 1, 2, 3, ...
 * failing, until a run past that count ends before reaching it.  Then the
 * same with the libuv calls of the library, the socket calls it makes
 * itself, and the statuses their callbacks bring, failing in turn, each with the error the system gives
 * there (c/uv-torture.c).  Each run is a child
 * process under ASan + UBSan with LeakSanitizer at its end, bounded by an
 * alarm.  A run fails if the child crashes, hangs, leaks, or says the
 * scenario ended broken (see scenarios.c).
 *
 * The `fresh' scenario (init) runs first, in children of a process where
 * nothing is initialised.  Then this process runs the TLS scenarios once,
 * so that OpenSSL's process-wide state (its initialisation, the
 * algorithms it fetches at first use) exists before the other scenarios
 * fork: their counts are their own work.  OpenSSL 3.0 leaks some of its
 * global tables when its own initialisation fails part-way; a leak in an
 * init run is therefore counted and shown, not failed.
 *
 *   run-torture [--runs R] [--timeout S] [--verbose]
 *               [--allocations | --calls] [SCENARIO...]
 *   run-torture [--calls] --at N SCENARIO   (one run, in this process: for
 *                                            a debugger)
 *
 * --runs R: at most R failing runs per scenario and family, spread evenly
 * over its points (CI); without it every point fails once.  The last line
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
static int family; /* CASL_TORTURE_* */
static uint64_t fail_at;
static int record_fd = -1;
static int log_fd = -1;

static int child(void) {
  struct record r;
  const char *where = NULL;
  if (dup2(log_fd, 2) < 0)
    return SCN_BROKEN;
  casl_torture_arm(family, fail_at);
  memset(&r, 0, sizeof(r));
  r.result = current->run();
  r.injected = casl_torture_injected(&where);
  r.count = casl_torture_count();
  if (where != NULL)
    snprintf(r.where, sizeof(r.where), "%s", where);
  casl_torture_disarm();
  if (write(record_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
    return SCN_BROKEN;
  return r.result;
}

/* Distinct sites where an allocation failed, and libuv calls that did. */
typedef struct site_set {
  char **v;
  size_t n, cap;
} site_set;
static site_set sites, calls;
static size_t site_ours, site_ossl, site_uv;

static int our_file(const char *where) {
  char path[512];
  size_t n = strcspn(where, ":");
  if (memchr(where, '/', n) != NULL)
    return 0;
  snprintf(path, sizeof(path), "%s/../c/%.*s", CASL_TEST_DIR, (int)n, where);
  return access(path, F_OK) == 0;
}

/* Adds where to set; 1 if it was new. */
static int add_to(site_set *set, const char *where) {
  size_t i;
  for (i = 0; i < set->n; i++)
    if (strcmp(set->v[i], where) == 0)
      return 0;
  if (set->n == set->cap) {
    size_t cap = set->cap ? set->cap * 2 : 256;
    char **p = realloc(set->v, cap * sizeof(*p));
    if (p == NULL) {
      perror("realloc");
      exit(2);
    }
    set->v = p;
    set->cap = cap;
  }
  set->v[set->n] = strdup(where);
  if (set->v[set->n] == NULL) {
    perror("strdup");
    exit(2);
  }
  set->n++;
  return 1;
}

static void add_site(const char *where) {
  if (family == CASL_TORTURE_CALLS) {
    (void)add_to(&calls, where);
    return;
  }
  if (!add_to(&sites, where))
    return;
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
  printf("FAIL %s: %s %" PRIu64 " (%s) failing: %s\n", current->name,
         family == CASL_TORTURE_CALLS ? "libuv call" : "allocation",
         n, r->where[0] ? r->where : "?", why);
  fflush(stdout);
  show_log();
  return 1;
}

/* Sets up OpenSSL's process-wide state here, before the forks: the TLS
 * scenarios once each, with nothing failing. */
static int warm_up(void) {
  static const char *const names[] = {"tls-echo", "tls-full"};
  const scenario *s;
  size_t i;
  for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    for (s = scenarios; s->name != NULL; s++)
      if (strcmp(s->name, names[i]) == 0)
        break;
    if (s->name == NULL) {
      fprintf(stderr, "run-torture: no %s scenario\n", names[i]);
      return -1;
    }
    casl_torture_arm(CASL_TORTURE_ALLOC, 0);
    if (s->run() != SCN_SUCCESS) {
      fprintf(stderr, "run-torture: %s failed with nothing failing\n",
              names[i]);
      return -1;
    }
  }
  return 0;
}

static long total_runs, total_failed, injected_of[2];

/* Runs s with no failure (it must succeed; that counts its points), then
 * with point 1, 2, ... of the current family failing until a run ends
 * before reaching it (every step-th point with max_runs). */
static void torture(const scenario *s, uint64_t max_runs, unsigned timeout,
                    int verbose) {
  static const char *const noun[] = {"allocations", "libuv and socket calls"};
  struct record r;
  uint64_t n, step = 1, total;
  long runs = 1, failed = 0, injected = 0, reported = 0, succeeded = 0;
  size_t before = family == CASL_TORTURE_CALLS ? calls.n : sites.n;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  if (run(0, timeout, &r) != 0) {
    total_runs++;
    total_failed++;
    return;
  }
  total = r.count;
  if (max_runs > 0 && total > max_runs)
    step = total / max_runs;
  for (n = 1;; n += step) {
    if (n > 2 * total + 1000) {
      printf("FAIL %s: runs still reach point %" PRIu64 " (%" PRIu64
             " without failures)\n", s->name, n, total);
      failed++;
      break;
    }
    runs++;
    if (run(n, timeout, &r) != 0) {
      failed++;
      continue;
    }
    if (!r.injected) {
      /* The run ended before point n.  Runs differ a little (how many
       * reads the kernel makes of the same bytes): below the count of
       * the run without failures, go on. */
      if (n > total)
        break;
      continue;
    }
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
  printf("%s %s: %" PRIu64 " %s, %ld failed in turn%s (%ld reported, %ld "
         "done anyway), %zu new kinds, %ld broken (%.1fs)\n",
         failed ? "FAIL" : "ok  ", s->name, total, noun[family], injected,
         step > 1 ? " (sampled)" : "", reported, succeeded,
         (family == CASL_TORTURE_CALLS ? calls.n : sites.n) - before, failed,
         (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
  fflush(stdout);
  total_runs += runs;
  total_failed += failed;
  injected_of[family] += injected;
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
  char log_path[1024];
  const scenario *s;
  int pass, warmed = 0;
  uint64_t at = 0;
  int only = -1;

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
    } else if (strcmp(argv[first], "--calls") == 0) {
      only = CASL_TORTURE_CALLS;
      first++;
    } else if (strcmp(argv[first], "--allocations") == 0) {
      only = CASL_TORTURE_ALLOC;
      first++;
    } else if (strcmp(argv[first], "--verbose") == 0) {
      verbose = 1;
      first++;
    } else {
      fprintf(stderr, "usage: %s [--runs R] [--timeout S] [--verbose] "
                      "[--allocations | --calls] [--at N] [SCENARIO...]\n",
              argv[0]);
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
    family = only < 0 ? CASL_TORTURE_ALLOC : only;
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
    casl_torture_arm(family, at);
    result = s->run();
    (void)casl_torture_injected(&where);
    printf("%s at %" PRIu64 " (%s): %s\n", s->name, at,
           where != NULL ? where : "not reached",
           result == SCN_SUCCESS ? "done" : result == SCN_REPORTED ? "reported"
                                                                  : "broken");
    test_certs_cleanup();
    return result == SCN_BROKEN;
  }
  log_fd = test_tmp_template(log_path, sizeof(log_path), "casl-torture-log")
               ? mkstemp(log_path)
               : -1;
  if (log_fd < 0) {
    perror("mkstemp");
    return 2;
  }
  (void)unlink(log_path);

  for (pass = 0; pass < 2; pass++)
  for (s = scenarios; s->name != NULL; s++) {
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
    for (family = CASL_TORTURE_ALLOC; family <= CASL_TORTURE_CALLS; family++) {
      if (only >= 0 && family != only)
        continue;
      torture(s, max_runs, timeout, verbose);
    }
  }
  test_certs_cleanup();
  printf("torture: %ld allocations failed at %zu sites (ours %zu, OpenSSL "
         "%zu, libuv %zu); %ld libuv and socket calls and callbacks failed, %zu kinds\n",
         injected_of[CASL_TORTURE_ALLOC], sites.n, site_ours, site_ossl,
         site_uv, injected_of[CASL_TORTURE_CALLS], calls.n);
  if (init_leaks > 0)
    printf("torture: %ld init runs leaked inside OpenSSL's own failed "
           "initialisation (not counted as failures)\n", init_leaks);
  printf("torture: %ld runs, %ld failed\n", total_runs, total_failed);
  return total_failed == 0 ? 0 : 1;
}
