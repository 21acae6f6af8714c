/*
 * test-fdlimit.c -- a server out of file descriptors.  The server runs in
 * a child process whose descriptor limit is lowered (setrlimit); this
 * process is the clients.  While accepting fails the server must not
 * spin (its CPU time over a window, from getrusage, stays under half the
 * window's wall time), must report the failure as an error event on the
 * server, must keep serving the connections it has, and must accept the
 * waiting clients once descriptors are free again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <uv.h>

#include "cl-async-ssl.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif
/* Under valgrind a descriptor over the soft limit is closed by valgrind
 * itself (an accepted connection is dropped, not refused): these tests
 * do not apply there. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() 0
#endif

#define FD_LIMIT 64
#define WINDOW_MS 2000 /* the CPU is measured over this much wall time */
#define GUARD 999999
#define SRV 0
#define WINDOW_TIMER 999998

/* What the server child reports when it ends. */
struct srv_result {
  int accepted;     /* connections accepted */
  int closed;       /* of them, closed */
  int errors;       /* error events on the server */
  int first_error;  /* the first one's code */
  long cpu_us;      /* CPU time over the window (-1: never measured) */
  long wall_us;     /* its wall time */
  int guard_fired;
};

/* ------------------------------------------------------------------------ */
/* The server child                                                          */

enum { MAXS = 512 };

static struct {
  casl_loop *loop;
  casl_server *server;
  casl_tcp *c[MAXS];
  int64_t next;
  int want;            /* stop once this many connections closed */
  int fillers[FD_LIMIT]; /* descriptors taken to fill the table */
  int nfillers;
  long cpu0, wall0;
  struct srv_result r;
} s;

static long cpu_now_us(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L +
         ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static long wall_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static void srv_maybe_stop(void) {
  if (s.r.closed >= s.want && s.r.cpu_us >= 0)
    casl_loop_stop(s.loop);
}

static void srv_timer(int64_t id) {
  int i;
  if (id == GUARD) {
    s.r.guard_fired = 1;
    casl_loop_stop(s.loop);
    return;
  }
  /* the window ends: measure, then free the descriptors we took */
  s.r.cpu_us = cpu_now_us() - s.cpu0;
  s.r.wall_us = wall_now_us() - s.wall0;
  for (i = 0; i < s.nfillers; i++)
    (void)close(s.fillers[i]);
  s.nfillers = 0;
  srv_maybe_stop();
}

static int64_t srv_accept(int64_t sid, casl_tcp *c) {
  int64_t id = s.next++;
  (void)sid;
  if (id >= MAXS)
    return 0;
  s.c[id] = c;
  s.r.accepted++;
  return id;
}

static void srv_read(int64_t id, const char *b, size_t n) {
  ASSERT_OK_VOID(casl_tcp_write(s.c[id], b, n, 0)); /* echo */
}

static void srv_error(int64_t id, int code) {
  casl_timer *t;
  if (id != SRV) {
    casl_tcp_close(s.c[id], code != UV_EOF);
    return;
  }
  if (s.r.errors++ == 0) { /* accepting failed: the window starts */
    s.r.first_error = code;
    s.cpu0 = cpu_now_us();
    s.wall0 = wall_now_us();
    ASSERT_OK_VOID(casl_timer_new(s.loop, WINDOW_TIMER, &t));
    ASSERT_OK_VOID(casl_timer_start(t, WINDOW_MS, 0));
  }
}

static void srv_closed(int64_t id) {
  if (id > SRV && id < MAXS) {
    s.r.closed++;
    srv_maybe_stop();
  }
}

static const casl_callbacks srv_cbs = {.timer = srv_timer,
                                       .accept = srv_accept,
                                       .read = srv_read,
                                       .error = srv_error,
                                       .closed = srv_closed};

/* The child's limits: FD_LIMIT descriptors, and (outside ASan, which
 * reserves a large shadow) a bound on memory, so a server that queued
 * error events in a loop fails the test instead of the machine. */
static void child_limits(void) {
  struct rlimit rl;
  /* soft limits only: valgrind refuses to change a hard one */
  ASSERT_OK_VOID(getrlimit(RLIMIT_NOFILE, &rl));
  rl.rlim_cur = FD_LIMIT;
  ASSERT_OK_VOID(setrlimit(RLIMIT_NOFILE, &rl));
#if !defined(__SANITIZE_ADDRESS__)
  ASSERT_OK_VOID(getrlimit(RLIMIT_DATA, &rl));
  if (rl.rlim_cur > (1UL << 30)) {
    rl.rlim_cur = 1UL << 30;
    ASSERT_OK_VOID(setrlimit(RLIMIT_DATA, &rl));
  }
#endif
}

/* Ends the child: the result down the pipe, exit status 0 unless
 * LeakSanitizer found a leak. */
static void child_finish(int out) {
  int rc = 0;
  if (write(out, &s.r, sizeof(s.r)) != (ssize_t)sizeof(s.r))
    rc = 1;
#if defined(__SANITIZE_ADDRESS__)
  if (__lsan_do_recoverable_leak_check() != 0)
    rc = 1;
#endif
  _exit(rc);
}

static void child_run(int out, uint64_t guard_ms) {
  casl_timer *guard;
  int i;
  /* a server stuck in a loop that never returns to its timers dies too */
  alarm((unsigned)(guard_ms / 1000) + 30);
  ASSERT_OK_VOID(casl_timer_new(s.loop, GUARD, &guard));
  casl_handle_ref((casl_handle *)guard, 0);
  ASSERT_OK_VOID(casl_timer_start(guard, guard_ms, 0));
  (void)casl_loop_run(s.loop);
  casl_loop_free(s.loop);
  for (i = 0; i < s.nfillers; i++)
    (void)close(s.fillers[i]);
  child_finish(out);
}

/* A TLS echo server with FD_LIMIT descriptors; stops once `want'
 * connections have come and gone. */
static void tls_server_child(int out, int want) {
  casl_tls_ctx *ctx;
  int port;
  memset(&s, 0, sizeof(s));
  s.next = 1;
  s.want = want;
  s.r.cpu_us = -1;
  child_limits();
  ASSERT_OK_VOID(casl_loop_new(&s.loop, &srv_cbs));
  ASSERT_OK_VOID(casl_tls_ctx_new(&ctx, CASL_TLS_SERVER));
  ASSERT_OK_VOID(casl_tls_ctx_use_certificate_chain_file(
      ctx, test_cert_path("server-chain.pem")));
  ASSERT_OK_VOID(casl_tls_ctx_use_private_key_file(
      ctx, test_cert_path("server.key"), CASL_FILETYPE_PEM, NULL));
  ASSERT_OK_VOID(
      casl_server_listen(s.loop, SRV, "127.0.0.1", 0, 512, 0, &s.server));
  ASSERT_OK_VOID(casl_server_set_tls(s.server, ctx, 0));
  casl_tls_ctx_unref(ctx); /* the server holds it */
  port = casl_server_port(s.server);
  ASSERT_VOID(write(out, &port, sizeof(port)) == (ssize_t)sizeof(port));
  child_run(out, 120000);
}

/* A plain echo server made (from a listening socket) after the
 * application filled the descriptor table: not even libuv's spare
 * descriptor is there.  The fillers are closed when the window ends. */
static void full_table_server_child(int out, int want) {
  struct sockaddr_in a;
  socklen_t alen = sizeof(a);
  int lfd, fd, port;
  memset(&s, 0, sizeof(s));
  s.next = 1;
  s.want = want;
  s.r.cpu_us = -1;
  child_limits();
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_VOID(lfd >= 0);
  ASSERT_OK_VOID(bind(lfd, (struct sockaddr *)&a, sizeof(a)));
  ASSERT_OK_VOID(listen(lfd, 64));
  ASSERT_OK_VOID(getsockname(lfd, (struct sockaddr *)&a, &alen));
  port = ntohs(a.sin_port);
  ASSERT_OK_VOID(casl_loop_new(&s.loop, &srv_cbs));
  while (s.nfillers < FD_LIMIT &&
         (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
    s.fillers[s.nfillers++] = fd;
  ASSERT_VOID(errno == EMFILE);
  ASSERT_OK_VOID(casl_server_open_fd(s.loop, SRV, lfd, 64, &s.server));
  ASSERT_VOID(write(out, &port, sizeof(port)) == (ssize_t)sizeof(port));
  child_run(out, 60000);
}

/* ------------------------------------------------------------------------ */
/* The parent: starting, waiting for and reaping the child                   */

/* Reads exactly len bytes from fd within ms: 0, or -1. */
static int read_within(int fd, void *buf, size_t len, int ms) {
  size_t got = 0;
  while (got < len) {
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;
    int rc = poll(&p, 1, ms);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc <= 0)
      return -1;
    n = read(fd, (char *)buf + got, len - got);
    if (n <= 0)
      return -1;
    got += (size_t)n;
  }
  return 0;
}

/* Forks the server child running fn(write end, want); *port gets its port
 * (0 and the child reaped if it never told one). */
static pid_t start_child(void (*fn)(int, int), int want, int *rfd, int *port) {
  int p[2];
  pid_t pid;
  *port = 0;
  if (pipe(p) != 0)
    return -1;
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    (void)close(p[0]);
    /* it must not outlive the test, even a test killed by its alarm */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1)
      _exit(1);
    fn(p[1], want);
    _exit(1);
  }
  (void)close(p[1]);
  *rfd = p[0];
  if (read_within(p[0], port, sizeof(*port), 30000) != 0)
    *port = 0;
  return pid;
}

/* Collects the child's result (within ms) and reaps it, killing it if it
 * did not end by itself: 0 when it reported and exited with status 0. */
static int finish_child(pid_t pid, int rfd, struct srv_result *r, int ms) {
  int status, got = read_within(rfd, r, sizeof(*r), ms) == 0;
  (void)close(rfd);
  if (!got)
    (void)kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  if (!got) {
    fprintf(stderr, "  the server child did not report (hung or spinning)\n");
    return -1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "  the server child failed (status %d)\n", status);
    return -1;
  }
  return 0;
}

static int check_window(const struct srv_result *r) {
  fprintf(stderr, "  server: %d accepted, %d error events (first %s), "
                  "CPU %ld us over %ld us while accepting failed\n",
          r->accepted, r->errors, casl_err_name(r->first_error), r->cpu_us,
          r->wall_us);
  ASSERT(!r->guard_fired);
  ASSERT(r->errors >= 1);
  ASSERT(r->first_error == UV_EMFILE);
  ASSERT(r->cpu_us >= 0 && r->wall_us >= WINDOW_MS * 900L);
  ASSERT(r->cpu_us * 2 < r->wall_us); /* no spinning */
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The clients                                                               */

enum { NCLI = 200, HOLD = 40, MAXCLI = NCLI + 1 };

static struct {
  casl_loop *loop;
  casl_tls_ctx *ctx;
  casl_tcp *c[MAXCLI];
  int port;
  size_t rx[MAXCLI];
  int err[MAXCLI], closed[MAXCLI], closing[MAXCLI];
  int ready;        /* holders with their first echo */
  int phase;        /* 1 holders, 2 the rest arriving, 3 echo again, 4 release */
  int again, again_done; /* phase 3: connections asked to echo again / done */
  int nclosed, guard_fired;
  int n;            /* clients in this test */
} k;

static void cli_close(int id) {
  if (!k.closing[id]) {
    k.closing[id] = 1;
    casl_tcp_close(k.c[id], 0);
  }
}

static void release_all(void) {
  int id;
  k.phase = 4;
  for (id = 1; id <= k.n; id++)
    if (k.rx[id] >= 4)
      cli_close(id);
}

static int cli_connect_one(int id, int tls) {
  ASSERT_OK(casl_tcp_connect(k.loop, id, "127.0.0.1", k.port, &k.c[id]));
  if (tls)
    ASSERT_OK(casl_tcp_start_tls(k.c[id], k.ctx, 0, "localhost", NULL, 0));
  ASSERT_OK(casl_tcp_write(k.c[id], "ping", 4, 0));
  return 0;
}

static void cli_timer(int64_t id) {
  int i;
  if (id == GUARD) {
    k.guard_fired = 1;
    casl_loop_stop(k.loop);
    return;
  }
  /* the window: the connections the server has echo again */
  k.phase = 3;
  for (i = 1; i <= k.n; i++)
    if (k.rx[i] >= 4 && !k.closing[i]) {
      ASSERT_OK_VOID(casl_tcp_write(k.c[i], "pong", 4, 0));
      k.again++;
    }
  if (k.again == 0)
    release_all();
}

static void cli_read(int64_t id, const char *b, size_t n) {
  size_t before = k.rx[id];
  int i;
  (void)b;
  k.rx[id] += n;
  if (before < 4 && k.rx[id] >= 4) { /* first echo */
    if (k.phase == 4) {
      cli_close((int)id);
    } else if (k.phase == 1 && ++k.ready == HOLD) {
      casl_timer *t;
      k.phase = 2;
      for (i = HOLD + 1; i <= k.n; i++)
        ASSERT_OK_VOID(cli_connect_one(i, 1));
      ASSERT_OK_VOID(casl_timer_new(k.loop, WINDOW_TIMER, &t));
      ASSERT_OK_VOID(casl_timer_start(t, WINDOW_MS + 1000, 0));
    }
  }
  if (before < 8 && k.rx[id] >= 8 && k.phase == 3 &&
      ++k.again_done == k.again)
    release_all();
}

static void cli_error(int64_t id, int code) {
  k.err[id] = code;
  k.closing[id] = 1;
  casl_tcp_close(k.c[id], 1);
}

static void cli_closed(int64_t id) {
  if (id >= 1 && id <= k.n) {
    k.closed[id]++;
    if (++k.nclosed == k.n)
      casl_loop_stop(k.loop);
  }
}

static const casl_callbacks cli_cbs = {.timer = cli_timer,
                                       .read = cli_read,
                                       .error = cli_error,
                                       .closed = cli_closed};

/* Every client ended without an error (else: how many, and the first). */
static int check_clients(void) {
  int id, failed = 0, first = 0;
  for (id = 1; id <= k.n; id++)
    if (k.err[id] != 0 && failed++ == 0)
      first = k.err[id];
  if (failed > 0)
    fprintf(stderr, "  %d of %d clients failed, the first with %s\n", failed,
            k.n, casl_err_name(first));
  ASSERT_EQ(failed, 0);
  return 0;
}

/* ------------------------------------------------------------------------ */

/* Starts the server child fn (stopping after `want' connections) and
 * readies the clients' loop for n clients starting in phase. */
static int setup_clients(void (*fn)(int, int), int want, int n, int phase,
                         pid_t *pid, int *rfd) {
  struct srv_result r;
  int port;
  memset(&k, 0, sizeof(k));
  *pid = start_child(fn, want, rfd, &port);
  ASSERT(*pid > 0);
  if (port == 0) {
    (void)finish_child(*pid, *rfd, &r, 0);
    ASSERT(!"the server child did not start");
  }
  k.port = port;
  k.n = n;
  k.phase = phase;
  ASSERT_OK(casl_loop_new(&k.loop, &cli_cbs));
  return 0;
}

/* Runs the clients (for at most ms), then collects the child's result
 * into *r: 0, or non-zero.  The child is reaped either way. */
static int run_and_collect(pid_t pid, int rfd, uint64_t ms,
                           struct srv_result *r) {
  if (test_run_bounded(k.loop, GUARD, ms, &k.guard_fired) != 0) {
    (void)finish_child(pid, rfd, r, 0);
    ASSERT(!"the clients did not finish");
  }
  return finish_child(pid, rfd, r, 30000);
}

/* 200 TLS clients at a server limited to 64 descriptors: 40 connect and
 * stay, then 160 more arrive at once.  The server accepts what it can,
 * reports EMFILE, and pauses without spinning; the connections it has
 * echo again meanwhile; once they close, it accepts every waiting client
 * and each gets its echo. */
TEST_IMPL(core_fd_exhaustion_tls_server) {
  struct srv_result r;
  int rfd = -1, id, child;
  pid_t pid;
  if (UNDER_VALGRIND()) {
    fprintf(stderr, "  skipped under valgrind\n");
    return 0;
  }
  CHECK(setup_clients(tls_server_child, NCLI, NCLI, 1, &pid, &rfd));
  ASSERT_OK(casl_tls_ctx_new(&k.ctx, CASL_TLS_CLIENT));
  ASSERT_OK(casl_tls_ctx_load_verify_locations(k.ctx, test_cert_path("ca.pem"),
                                               NULL));
  for (id = 1; id <= HOLD; id++)
    ASSERT_OK(cli_connect_one(id, 1));
  child = run_and_collect(pid, rfd, 120000, &r);
  fprintf(stderr, "  %d connections echoed again while the server was full\n",
          k.again);
  CHECK(check_clients());
  ASSERT_OK(child);
  for (id = 1; id <= NCLI; id++)
    ASSERT_EQ(k.closed[id], 1);
  ASSERT(k.again >= HOLD && k.again < NCLI); /* it was full, and they work */
  ASSERT_EQ(k.again_done, k.again);
  ASSERT_EQ(r.accepted, NCLI);
  ASSERT_EQ(r.closed, NCLI);
  CHECK(check_window(&r));
  casl_loop_free(k.loop);
  casl_tls_ctx_unref(k.ctx);
  return 0;
}

/* The application filled the descriptor table before the server was made
 * (so libuv's spare descriptor is missing too): five clients arrive; the
 * server reports EMFILE and pauses without spinning; once descriptors are
 * free it accepts and echoes all five. */
TEST_IMPL(core_fd_exhaustion_full_table) {
  struct srv_result r;
  int rfd = -1, id, child;
  pid_t pid;
  if (UNDER_VALGRIND()) {
    fprintf(stderr, "  skipped under valgrind\n");
    return 0;
  }
  /* phase 4: each closes once echoed */
  CHECK(setup_clients(full_table_server_child, 5, 5, 4, &pid, &rfd));
  for (id = 1; id <= k.n; id++)
    ASSERT_OK(cli_connect_one(id, 0));
  child = run_and_collect(pid, rfd, 60000, &r);
  CHECK(check_clients());
  ASSERT_OK(child);
  for (id = 1; id <= k.n; id++)
    ASSERT_EQ(k.rx[id], 4);
  ASSERT_EQ(r.accepted, 5);
  CHECK(check_window(&r));
  casl_loop_free(k.loop);
  return 0;
}
