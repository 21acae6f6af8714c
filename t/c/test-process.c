/*
 * test-process.c -- child processes: stdio pipes, files and descriptors,
 * exit status and terminating signal, exec failures, kill, reaping after
 * the loop is freed, closing from callbacks.
 *
 * Ids: 10 the process (11, 12, ... more of them), 1 its stdin pipe, 2 its
 * stdout pipe, 3 its stderr pipe.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "cl-async-ssl.h"
#include "test.h"

#define GUARD_ID 999999

enum { MAXH = 64 };

enum { CLOSE_NONE, CLOSE_PIPE_IN_READ, CLOSE_ALL_IN_EXIT };

static struct {
  casl_loop *loop;
  casl_process *procs[MAXH];
  casl_tcp *pipes[MAXH];
  int exits[MAXH];
  int64_t status[MAXH];
  int signal[MAXH];
  int errors[MAXH];
  int closed[MAXH + 1];
  int guard_fired;
  int close_in;
  char *rx[MAXH];
  size_t rxlen[MAXH], rxcap[MAXH];
  char dir[64];
} g;

static void rx_append(int id, const char *buf, size_t len) {
  if (g.rxlen[id] + len > g.rxcap[id]) {
    size_t cap = g.rxcap[id] ? g.rxcap[id] : 4096;
    while (cap < g.rxlen[id] + len)
      cap *= 2;
    g.rx[id] = realloc(g.rx[id], cap);
    ASSERT_VOID(g.rx[id] != NULL);
    g.rxcap[id] = cap;
  }
  memcpy(g.rx[id] + g.rxlen[id], buf, len);
  g.rxlen[id] += len;
}

static void on_timer(int64_t id) {
  if (id == GUARD_ID) {
    g.guard_fired = 1;
    casl_loop_stop(g.loop);
    return;
  }
  /* timer id N >= 10: kill process N with SIGTERM */
  ASSERT_VOID(id >= 10 && id < MAXH);
  ASSERT_OK_VOID(casl_process_kill(g.procs[id], SIGTERM));
}

static void on_closed(int64_t id) {
  if (id >= 0 && id <= MAXH)
    g.closed[id]++;
}

static void on_read(int64_t id, const char *buf, size_t len) {
  ASSERT_VOID(id > 0 && id < 10);
  rx_append((int)id, buf, len);
  if (g.close_in == CLOSE_PIPE_IN_READ) {
    casl_tcp_close(g.pipes[id], 1);
    casl_tcp_close(g.pipes[id], 0);
  }
}

static void on_error(int64_t id, int code) {
  ASSERT_VOID(id > 0 && id < 10);
  g.errors[id] = code;
  casl_tcp_close(g.pipes[id], code == UV_EOF ? 0 : 1);
}

static void on_exit_cb(int64_t id, int64_t status, int term_signal) {
  int i;
  ASSERT_VOID(id >= 10 && id < MAXH);
  g.exits[id]++;
  g.status[id] = status;
  g.signal[id] = term_signal;
  /* It has exited: nothing more to send it. */
  ASSERT_VOID(casl_process_kill(g.procs[id], SIGTERM) == CASL_ECLOSED);
  if (g.close_in == CLOSE_ALL_IN_EXIT) {
    casl_handle_close((casl_handle *)g.procs[id]); /* closing by itself */
    for (i = 1; i < 4; i++)
      if (g.pipes[i] != NULL && g.closed[i] == 0)
        casl_tcp_close(g.pipes[i], 1);
  }
}

static const casl_callbacks cbs = {.timer = on_timer,
                                   .closed = on_closed,
                                   .read = on_read,
                                   .error = on_error,
                                   .exit = on_exit_cb};

static int run_bounded(uint64_t ms) {
  return test_run_bounded(g.loop, GUARD_ID, ms, &g.guard_fired);
}

static int setup(void) {
  memset(&g, 0, sizeof(g));
  snprintf(g.dir, sizeof(g.dir), "/tmp/casl-proc-XXXXXX");
  if (mkdtemp(g.dir) == NULL)
    return 1;
  return casl_loop_new(&g.loop, &cbs);
}

static void teardown(void) {
  char p[128];
  int i;
  casl_loop_free(g.loop);
  for (i = 0; i < MAXH; i++)
    free(g.rx[i]);
  snprintf(p, sizeof(p), "%s/out", g.dir);
  (void)unlink(p);
  snprintf(p, sizeof(p), "%s/in", g.dir);
  (void)unlink(p);
  (void)rmdir(g.dir);
}

/* Open descriptors of this process. */
static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

/* Spawns argv as process id with stdio[0..2]. */
static int spawn(int64_t id, const char *const *argv, casl_stdio *stdio) {
  casl_spawn_options o;
  int rc, i;
  memset(&o, 0, sizeof(o));
  o.file = argv[0];
  o.args = argv;
  o.stdio_count = 3;
  o.stdio = stdio;
  rc = casl_process_spawn(g.loop, id, &o, &g.procs[id]);
  for (i = 0; i < 3; i++)
    if (stdio[i].kind == CASL_STDIO_PIPE)
      g.pipes[stdio[i].id] = stdio[i].pipe;
  return rc;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* ------------------------------------------------------------------------ */

/* /bin/cat echoes what is written to its stdin pipe on its stdout pipe;
 * closing stdin is its end of file, and it exits 0. */
TEST_IMPL(process_pipe_echo) {
  const char *argv[] = {"/bin/cat", NULL};
  casl_stdio stdio[3] = {{.kind = CASL_STDIO_PIPE, .id = 1},
                         {.kind = CASL_STDIO_PIPE, .id = 2},
                         {.kind = CASL_STDIO_IGNORE}};
  ASSERT_OK(setup());
  ASSERT_OK(spawn(10, argv, stdio));
  ASSERT(g.pipes[1] != NULL && g.pipes[2] != NULL);
  ASSERT(casl_process_pid(g.procs[10]) > 0);
  ASSERT_OK(casl_tcp_write(g.pipes[1], "hello ", 6, 0));
  ASSERT_OK(casl_tcp_write(g.pipes[1], "world", 5, 0));
  casl_tcp_close(g.pipes[1], 0);
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.rxlen[2], 11);
  ASSERT(memcmp(g.rx[2], "hello world", 11) == 0);
  ASSERT_EQ(g.errors[2], UV_EOF);
  ASSERT_EQ(g.exits[10], 1);
  ASSERT_EQ(g.status[10], 0);
  ASSERT_EQ(g.signal[10], 0);
  ASSERT_EQ(g.closed[10], 1);
  ASSERT_EQ(g.closed[1], 1);
  ASSERT_EQ(g.closed[2], 1);
  teardown();
  return 0;
}

/* The exit status reaches the exit event; a kill, its signal. */
TEST_IMPL(process_exit_status_and_signal) {
  const char *exit3[] = {"/bin/sh", "-c", "echo oops >&2; exit 3", NULL};
  const char *sleeper[] = {"/bin/sleep", "30", NULL};
  casl_stdio s1[3] = {{.kind = CASL_STDIO_IGNORE},
                      {.kind = CASL_STDIO_IGNORE},
                      {.kind = CASL_STDIO_PIPE, .id = 3}};
  casl_stdio s2[3] = {{.kind = CASL_STDIO_IGNORE},
                      {.kind = CASL_STDIO_IGNORE},
                      {.kind = CASL_STDIO_IGNORE}};
  casl_timer *t;
  ASSERT_OK(setup());
  ASSERT_OK(spawn(10, exit3, s1));
  ASSERT_OK(spawn(11, sleeper, s2));
  ASSERT_OK(casl_timer_new(g.loop, 11, &t)); /* kills process 11 */
  ASSERT_OK(casl_timer_start(t, 50, 0));
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.exits[10], 1);
  ASSERT_EQ(g.status[10], 3);
  ASSERT_EQ(g.signal[10], 0);
  ASSERT_EQ(g.rxlen[3], 5);
  ASSERT(memcmp(g.rx[3], "oops\n", 5) == 0);
  ASSERT_EQ(g.exits[11], 1);
  ASSERT_EQ(g.status[11], 0);
  ASSERT_EQ(g.signal[11], SIGTERM);
  ASSERT_EQ(g.closed[10], 1);
  ASSERT_EQ(g.closed[11], 1);
  teardown();
  return 0;
}

/* A missing program and one that is not executable: the error comes back
 * from the spawn, every pipe made for it is closed without an event, and
 * no descriptor is left open. */
TEST_IMPL(process_exec_failure) {
  const char *missing[] = {"/nonexistent/program", NULL};
  const char *bare[] = {"casl-no-such-program", NULL};
  const char *notexec[] = {NULL, NULL};
  char path[128];
  casl_stdio stdio[3];
  int fds, fd;
  ASSERT_OK(setup());
  memset(stdio, 0, sizeof(stdio));
  stdio[0].kind = stdio[1].kind = stdio[2].kind = CASL_STDIO_PIPE;
  stdio[0].id = 1;
  stdio[1].id = 2;
  stdio[2].id = 3;
  /* The first spawn makes libuv open what it keeps for the loop. */
  ASSERT_EQ(spawn(14, missing, stdio), UV_ENOENT);
  fds = count_fds();
  ASSERT_EQ(spawn(10, missing, stdio), UV_ENOENT);
  ASSERT(g.procs[10] == NULL);
  ASSERT(stdio[0].pipe == NULL && stdio[1].pipe == NULL &&
         stdio[2].pipe == NULL);
  ASSERT_EQ(spawn(11, bare, stdio), UV_ENOENT);
  snprintf(path, sizeof(path), "%s/out", g.dir);
  fd = open(path, O_CREAT | O_WRONLY, 0644);
  ASSERT(fd >= 0);
  ASSERT_OK(close(fd));
  notexec[0] = path;
  ASSERT_EQ(spawn(12, notexec, stdio), UV_EACCES);
  /* A stdio file that cannot be opened. */
  stdio[0].kind = CASL_STDIO_FILE;
  stdio[0].path = "/nonexistent/input";
  ASSERT_EQ(spawn(13, missing, stdio), UV_ENOENT);
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(count_fds(), fds);
  ASSERT_EQ(g.closed[1] + g.closed[2] + g.closed[3], 0);
  ASSERT_EQ(g.exits[10] + g.exits[11] + g.exits[12] + g.exits[13], 0);
  ASSERT_EQ(g.closed[10] + g.closed[11] + g.closed[12] + g.closed[13] +
                g.closed[14], 0);
  teardown();
  ASSERT_EQ(waitpid(-1, NULL, WNOHANG), -1); /* no child left */
  ASSERT_EQ(errno, ECHILD);
  return 0;
}

/* Files and descriptors as stdio: cat reads a file and writes into
 * another given as a descriptor of ours. */
TEST_IMPL(process_stdio_file_and_fd) {
  const char *argv[] = {"/bin/cat", NULL};
  const char *echo[] = {"/bin/sh", "-c", "echo second", NULL};
  char in[128], out[128];
  casl_stdio stdio[3];
  char *text;
  size_t len;
  int fd;
  ASSERT_OK(setup());
  snprintf(in, sizeof(in), "%s/in", g.dir);
  snprintf(out, sizeof(out), "%s/out", g.dir);
  fd = open(in, O_CREAT | O_WRONLY, 0600);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, "from a file\n", 12), 12);
  ASSERT_OK(close(fd));
  fd = open(out, O_CREAT | O_WRONLY | O_TRUNC, 0600);
  ASSERT(fd >= 0);
  memset(stdio, 0, sizeof(stdio));
  stdio[0].kind = CASL_STDIO_FILE;
  stdio[0].path = in;
  stdio[1].kind = CASL_STDIO_INHERIT;
  stdio[1].fd = fd;
  stdio[2].kind = CASL_STDIO_IGNORE;
  ASSERT_OK(spawn(10, argv, stdio));
  ASSERT_OK(run_bounded(10000));
  ASSERT_OK(close(fd));
  ASSERT_EQ(g.exits[10], 1);
  ASSERT_EQ(g.status[10], 0);
  text = test_read_file(out, &len);
  ASSERT(text != NULL);
  ASSERT_EQ(len, 12);
  ASSERT(memcmp(text, "from a file\n", 12) == 0);
  free(text);
  /* A file for the output: created or truncated. */
  memset(stdio, 0, sizeof(stdio));
  stdio[1].kind = CASL_STDIO_FILE;
  stdio[1].path = out;
  ASSERT_OK(spawn(11, echo, stdio));
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.exits[11], 1);
  text = test_read_file(out, &len);
  ASSERT(text != NULL);
  ASSERT_EQ(len, 7);
  ASSERT(memcmp(text, "second\n", 7) == 0);
  free(text);
  teardown();
  return 0;
}

/* A child still running when the loop is freed is not left a zombie. */
TEST_IMPL(process_reaped_after_loop_free) {
  const char *argv[] = {"/bin/sleep", "1", NULL};
  casl_stdio stdio[3] = {{.kind = CASL_STDIO_PIPE, .id = 1},
                         {.kind = CASL_STDIO_PIPE, .id = 2},
                         {.kind = CASL_STDIO_IGNORE}};
  int pid, i;
  ASSERT_OK(setup());
  ASSERT_OK(spawn(10, argv, stdio));
  pid = casl_process_pid(g.procs[10]);
  ASSERT(pid > 0);
  teardown(); /* the child is still sleeping */
  ASSERT_OK(kill(pid, 0));
  for (i = 0; i < 500; i++) {
    if (kill(pid, 0) != 0 && errno == ESRCH)
      break; /* gone: reaped (a zombie would still take signals) */
    sleep_ms(10);
  }
  ASSERT(i < 500);
  return 0;
}

/* Closing a running child's handle leaves it running; it is reaped once it
 * ends.  Pipes closed in their read callback, and everything closed in the
 * exit callback, are safe. */
TEST_IMPL(process_close_in_callbacks) {
  const char *sleeper[] = {"/bin/sleep", "30", NULL};
  const char *talker[] = {"/bin/sh", "-c", "echo a; sleep 0.05; echo b", NULL};
  casl_stdio none[3] = {{.kind = CASL_STDIO_IGNORE},
                        {.kind = CASL_STDIO_IGNORE},
                        {.kind = CASL_STDIO_IGNORE}};
  casl_stdio piped[3] = {{.kind = CASL_STDIO_PIPE, .id = 1},
                         {.kind = CASL_STDIO_PIPE, .id = 2},
                         {.kind = CASL_STDIO_IGNORE}};
  int pid, i;
  ASSERT_OK(setup());
  ASSERT_OK(spawn(10, sleeper, none));
  pid = casl_process_pid(g.procs[10]);
  casl_handle_close((casl_handle *)g.procs[10]);
  casl_handle_close((casl_handle *)g.procs[10]); /* twice: harmless */
  ASSERT_EQ(casl_process_kill(g.procs[10], SIGTERM), CASL_ECLOSED);
  g.close_in = CLOSE_PIPE_IN_READ;
  ASSERT_OK(spawn(11, talker, piped));
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.closed[10], 1);
  ASSERT_EQ(g.exits[10], 0);
  ASSERT_EQ(g.exits[11], 1);
  ASSERT_EQ(g.rxlen[2], 2); /* "a\n", then closed */
  ASSERT_EQ(g.closed[1], 0); /* stdin: still open, idle */
  ASSERT_EQ(g.closed[2], 1);
  ASSERT_OK(kill(pid, 0)); /* still running */
  ASSERT_OK(kill(pid, SIGKILL));
  for (i = 0; i < 300; i++) {
    if (kill(pid, 0) != 0 && errno == ESRCH)
      break;
    sleep_ms(10);
  }
  ASSERT(i < 300);
  /* Everything closed in the exit callback. */
  memset(g.pipes, 0, sizeof(g.pipes));
  memset(g.closed, 0, sizeof(g.closed));
  g.close_in = CLOSE_ALL_IN_EXIT;
  piped[0].pipe = piped[1].pipe = NULL;
  ASSERT_OK(spawn(12, talker, piped));
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.exits[12], 1);
  ASSERT_EQ(g.closed[12], 1);
  ASSERT_EQ(g.closed[1], 1);
  ASSERT_EQ(g.closed[2], 1);
  teardown();
  return 0;
}
