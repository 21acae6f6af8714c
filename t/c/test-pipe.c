/*
 * test-pipe.c -- unix domain sockets: echo, connect failures, bind
 * failures, which socket files a server removes, closing from callbacks.
 *
 * Ids: 0 the server, 1.. clients, 20.. accepted connections.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "cl-async-ssl.h"
#include "test.h"

#define GUARD_ID 999999

enum { MAXH = 64 };

enum { CLOSE_NONE, CLOSE_IN_CONNECT, CLOSE_IN_READ, CLOSE_IN_ACCEPT,
       CLOSE_IN_ERROR, CLOSE_IN_WRITTEN };

static struct {
  casl_loop *loop;
  casl_server *server;
  casl_tcp *conns[MAXH];
  char dir[64];
  char path[128];
  int connects[MAXH];
  int errors[MAXH];
  int closed[MAXH + 1];
  int written[MAXH];
  int accepts;
  int guard_fired;
  int close_in;
  int echo;           /* accepted connections echo what they read */
  size_t want;        /* a client closes once it has read this much */
  char *rx[MAXH];
  size_t rxlen[MAXH], rxcap[MAXH];
} g;

static int64_t next_in_id;

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
  }
}

static void on_closed(int64_t id) {
  if (id >= 0 && id <= MAXH)
    g.closed[id]++;
}

static int64_t on_accept(int64_t server_id, casl_tcp *c) {
  int64_t id = next_in_id++;
  (void)server_id;
  ASSERT_VOID(id < MAXH);
  g.accepts++;
  g.conns[id] = c;
  if (g.close_in == CLOSE_IN_ACCEPT) {
    casl_tcp_close(c, 0);
    casl_tcp_close(c, 1); /* both, twice: harmless */
    casl_server_close(g.server);
  }
  return id;
}

static void on_connect(int64_t id) {
  g.connects[id]++;
  if (g.close_in == CLOSE_IN_CONNECT) {
    casl_tcp_close(g.conns[id], 0);
    casl_server_close(g.server);
  }
}

static void on_read(int64_t id, const char *buf, size_t len) {
  rx_append((int)id, buf, len);
  if (id >= 20 && g.echo)
    ASSERT_OK_VOID(casl_tcp_write(g.conns[id], buf, len, 0));
  if (id < 20 && g.close_in == CLOSE_IN_READ) {
    casl_tcp_close(g.conns[id], 1);
    casl_server_close(g.server);
  }
  if (id < 20 && g.want && g.rxlen[id] >= g.want) {
    casl_tcp_close(g.conns[id], 0);
    casl_server_close(g.server);
  }
}

static void on_written(int64_t id) {
  g.written[id]++;
  if (g.close_in == CLOSE_IN_WRITTEN && id < 20) {
    casl_tcp_close(g.conns[id], 0);
    casl_server_close(g.server);
  }
}

static void on_error(int64_t id, int code) {
  ASSERT_VOID(id > 0 && id < MAXH);
  g.errors[id] = code;
  casl_tcp_close(g.conns[id], code == UV_EOF ? 0 : 1);
  if (g.close_in == CLOSE_IN_ERROR) {
    casl_tcp_close(g.conns[id], 0);
    casl_server_close(g.server);
  }
}

static const casl_callbacks cbs = {.timer = on_timer,
                                   .closed = on_closed,
                                   .accept = on_accept,
                                   .connect = on_connect,
                                   .read = on_read,
                                   .written = on_written,
                                   .error = on_error};

static int run_bounded(uint64_t ms) {
  return test_run_bounded(g.loop, GUARD_ID, ms, &g.guard_fired);
}

static int setup(void) {
  memset(&g, 0, sizeof(g));
  next_in_id = 20;
  snprintf(g.dir, sizeof(g.dir), "/tmp/casl-pipe-XXXXXX");
  if (mkdtemp(g.dir) == NULL)
    return 1;
  snprintf(g.path, sizeof(g.path), "%s/sock", g.dir);
  return casl_loop_new(&g.loop, &cbs);
}

/* Frees the loop and removes the temporary directory (and what is in it). */
static void teardown(void) {
  char p[160];
  int i;
  casl_loop_free(g.loop);
  for (i = 0; i < MAXH; i++)
    free(g.rx[i]);
  (void)unlink(g.path);
  snprintf(p, sizeof(p), "%s/file", g.dir);
  (void)unlink(p);
  (void)rmdir(g.dir);
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

/* ------------------------------------------------------------------------ */

/* A client sends 1 MiB (written before the connection is up), the server
 * echoes it, the client closes once it has it all back. */
TEST_IMPL(pipe_echo) {
  enum { N = 1 << 20 };
  char *data = malloc(N);
  size_t i;
  ASSERT(data != NULL);
  for (i = 0; i < N; i++)
    data[i] = (char)(i * 31 + (i >> 11));
  ASSERT_OK(setup());
  g.echo = 1;
  g.want = N;
  ASSERT_OK(casl_pipe_listen(g.loop, 0, g.path, 0, &g.server));
  ASSERT(exists(g.path));
  ASSERT_OK(casl_pipe_connect(g.loop, 1, g.path, &g.conns[1]));
  ASSERT_OK(casl_tcp_write(g.conns[1], data, N, CASL_WRITE_NOTIFY));
  ASSERT_OK(run_bounded(20000));
  ASSERT_EQ(g.connects[1], 1);
  ASSERT_EQ(g.accepts, 1);
  ASSERT_EQ(g.written[1], 1);
  ASSERT_EQ(g.rxlen[20], N);
  ASSERT_EQ(g.rxlen[1], N);
  ASSERT(memcmp(g.rx[20], data, N) == 0);
  ASSERT(memcmp(g.rx[1], data, N) == 0);
  ASSERT_EQ(g.errors[20], UV_EOF);
  ASSERT_EQ(g.closed[1], 1);
  ASSERT_EQ(g.closed[20], 1);
  ASSERT_EQ(g.closed[0], 1);
  ASSERT(!exists(g.path)); /* the server removed its socket */
  free(data);
  teardown();
  return 0;
}

/* Nothing there: UV_ENOENT; a file that is no socket: UV_ECONNREFUSED;
 * a path too long for a socket address: CASL_EINVAL at once. */
TEST_IMPL(pipe_missing_path) {
  char file[160], longpath[300];
  int fd;
  ASSERT_OK(setup());
  ASSERT_OK(casl_pipe_connect(g.loop, 1, g.path, &g.conns[1]));
  ASSERT_OK(casl_tcp_write(g.conns[1], "x", 1, 0)); /* held, then dropped */
  snprintf(file, sizeof(file), "%s/file", g.dir);
  fd = open(file, O_CREAT | O_WRONLY, 0600);
  ASSERT(fd >= 0);
  ASSERT_OK(close(fd));
  ASSERT_OK(casl_pipe_connect(g.loop, 2, file, &g.conns[2]));
  memset(longpath, 'a', sizeof(longpath) - 1);
  longpath[0] = '/';
  longpath[sizeof(longpath) - 1] = '\0';
  ASSERT_EQ(casl_pipe_connect(g.loop, 3, longpath, &g.conns[3]), CASL_EINVAL);
  ASSERT(g.conns[3] == NULL);
  ASSERT_EQ(casl_pipe_connect(g.loop, 3, "", &g.conns[3]), CASL_EINVAL);
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.errors[1], UV_ENOENT);
  ASSERT_EQ(g.errors[2], UV_ECONNREFUSED);
  ASSERT_EQ(g.connects[1] + g.connects[2], 0);
  ASSERT_EQ(g.closed[1], 1);
  ASSERT_EQ(g.closed[2], 1);
  teardown();
  return 0;
}

/* A live server, or any file, at the path: UV_EADDRINUSE (and the file
 * there is left alone); a missing directory: UV_ENOENT. */
TEST_IMPL(pipe_path_in_use) {
  casl_server *second = NULL;
  char file[160], missing[200];
  int fd;
  ASSERT_OK(setup());
  ASSERT_OK(casl_pipe_listen(g.loop, 0, g.path, 0, &g.server));
  ASSERT_EQ(casl_pipe_listen(g.loop, 1, g.path, 0, &second), UV_EADDRINUSE);
  ASSERT(second == NULL);
  ASSERT(exists(g.path)); /* the failed bind removed nothing */
  snprintf(file, sizeof(file), "%s/file", g.dir);
  fd = open(file, O_CREAT | O_WRONLY, 0600);
  ASSERT(fd >= 0);
  ASSERT_OK(close(fd));
  ASSERT_EQ(casl_pipe_listen(g.loop, 2, file, 0, &second), UV_EADDRINUSE);
  ASSERT(exists(file));
  snprintf(missing, sizeof(missing), "%s/no/such/dir/sock", g.dir);
  ASSERT_EQ(casl_pipe_listen(g.loop, 3, missing, 0, &second), UV_ENOENT);
  ASSERT_EQ(casl_pipe_listen(g.loop, 4, "", 0, &second), CASL_EINVAL);
  casl_server_close(g.server);
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.closed[0], 1);
  ASSERT_EQ(g.closed[1] + g.closed[2] + g.closed[3] + g.closed[4], 0);
  ASSERT(!exists(g.path));
  teardown();
  return 0;
}

/* Closing a server removes its socket file, but not a file someone else
 * put at the path meanwhile, nor the file of an adopted fd. */
TEST_IMPL(pipe_server_file_removal) {
  struct sockaddr_un sun;
  casl_server *adopted;
  char other[160];
  int fd;
  ASSERT_OK(setup());
  /* Re-created by someone else: survives. */
  ASSERT_OK(casl_pipe_listen(g.loop, 0, g.path, 0, &g.server));
  ASSERT_OK(unlink(g.path));
  fd = open(g.path, O_CREAT | O_WRONLY, 0600);
  ASSERT(fd >= 0);
  ASSERT_OK(close(fd));
  casl_server_close(g.server);
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.closed[0], 1);
  ASSERT(exists(g.path));
  ASSERT_OK(unlink(g.path));
  /* An adopted, already bound fd: its file is never removed. */
  snprintf(other, sizeof(other), "%s/file", g.dir);
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, other, strlen(other) + 1);
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT(fd >= 0);
  ASSERT_OK(bind(fd, (struct sockaddr *)&sun, sizeof(sun)));
  ASSERT_OK(casl_pipe_open_fd(g.loop, 1, fd, 0, &adopted));
  ASSERT_OK(casl_pipe_connect(g.loop, 2, other, &g.conns[2]));
  g.close_in = CLOSE_IN_CONNECT;
  g.server = adopted;
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.connects[2], 1);
  ASSERT_EQ(g.closed[1], 1);
  ASSERT(exists(other));
  /* Its own, untouched: removed. */
  ASSERT_OK(casl_pipe_listen(g.loop, 3, g.path, 0, &g.server));
  casl_server_close(g.server);
  casl_server_close(g.server); /* twice: harmless */
  ASSERT(!exists(g.path));
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.closed[3], 1);
  teardown();
  return 0;
}

/* Closing from inside every callback of a pipe connection. */
static int close_in(int mode) {
  ASSERT_OK(setup());
  g.close_in = mode;
  g.echo = 1;
  ASSERT_OK(casl_pipe_listen(g.loop, 0, g.path, 0, &g.server));
  ASSERT_OK(casl_pipe_connect(g.loop, 1, g.path, &g.conns[1]));
  ASSERT_OK(casl_tcp_write(g.conns[1], "ping", 4, CASL_WRITE_NOTIFY));
  if (mode == CLOSE_IN_ERROR || mode == CLOSE_IN_WRITTEN)
    g.want = 4;
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.closed[1], 1);
  if (mode != CLOSE_IN_CONNECT)
    ASSERT_EQ(g.accepts, 1);
  if (g.accepts > 0)
    ASSERT_EQ(g.closed[20], 1);
  ASSERT_EQ(g.closed[0], 1);
  teardown();
  return 0;
}

TEST_IMPL(pipe_close_in_callbacks) {
  CHECK(close_in(CLOSE_IN_CONNECT));
  CHECK(close_in(CLOSE_IN_READ));
  CHECK(close_in(CLOSE_IN_ACCEPT));
  CHECK(close_in(CLOSE_IN_ERROR));
  CHECK(close_in(CLOSE_IN_WRITTEN));
  return 0;
}
