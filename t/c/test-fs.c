/*
 * test-fs.c -- descriptor pollers, filesystem watchers, mkdtemp requests,
 * reverse DNS lookups and the descriptor helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "cl-async-ssl.h"
#include "test.h"

#define GUARD_ID 999999

enum { MAXID = 16 };

static struct {
  casl_loop *loop;
  casl_poll *pollers[MAXID];
  casl_fs_event *watchers[MAXID];
  int poll_calls[MAXID];
  int poll_status[MAXID];
  int poll_events[MAXID];
  int poll_close_when; /* close poller 1 when these events arrive */
  int closed[MAXID];
  int fs_events[MAXID];
  int fs_status[MAXID];
  int fs_flags[MAXID];
  char fs_name[MAXID][256];
  int fs_done[MAXID];
  int fs_req_status[MAXID];
  char fs_path[MAXID][1024];
  int ni_done[MAXID];
  int ni_status[MAXID];
  char ni_host[MAXID][1025];
  char ni_service[MAXID][64];
  char create_path[1024]; /* made by the timer with id 7 */
  int guard_fired;
} f;

static void on_timer(int64_t id) {
  if (id == GUARD_ID) {
    f.guard_fired = 1;
    casl_loop_stop(f.loop);
    return;
  }
  if (id == 7) {
    int fd = open(f.create_path, O_CREAT | O_WRONLY, 0600);
    ASSERT_VOID(fd >= 0);
    ASSERT_VOID(write(fd, "42", 2) == 2);
    ASSERT_OK_VOID(close(fd));
  }
}

static void on_closed(int64_t id) {
  if (id >= 0 && id < MAXID)
    f.closed[id]++;
}

static void on_poll(int64_t id, int status, int events) {
  f.poll_calls[id]++;
  f.poll_status[id] = status;
  f.poll_events[id] |= events;
  if (status < 0 ||
      (f.poll_close_when && (f.poll_events[id] & f.poll_close_when) ==
                                f.poll_close_when)) {
    casl_poll_close(f.pollers[id]);
    casl_poll_close(f.pollers[id]); /* twice: harmless */
  }
}

static void on_fs_event(int64_t id, int status, const char *name, int events) {
  f.fs_events[id]++;
  f.fs_status[id] = status;
  f.fs_flags[id] |= events;
  if (name != NULL)
    snprintf(f.fs_name[id], sizeof(f.fs_name[id]), "%s", name);
  if (name != NULL && strcmp(name, "made") == 0) {
    ASSERT_OK_VOID(casl_fs_event_stop(f.watchers[id]));
    casl_fs_event_close(f.watchers[id]);
    casl_fs_event_close(f.watchers[id]);
    ASSERT_VOID(casl_fs_event_stop(f.watchers[id]) == CASL_ECLOSED);
  }
}

static void on_fs(int64_t id, int status, const char *path) {
  f.fs_done[id]++;
  f.fs_req_status[id] = status;
  if (path != NULL)
    snprintf(f.fs_path[id], sizeof(f.fs_path[id]), "%s", path);
}

static void on_nameinfo(int64_t id, int status, const char *host,
                        const char *service) {
  f.ni_done[id]++;
  f.ni_status[id] = status;
  if (host != NULL)
    snprintf(f.ni_host[id], sizeof(f.ni_host[id]), "%s", host);
  if (service != NULL)
    snprintf(f.ni_service[id], sizeof(f.ni_service[id]), "%s", service);
}

static const casl_callbacks cbs = {.timer = on_timer,
                                   .closed = on_closed,
                                   .poll = on_poll,
                                   .fs_event = on_fs_event,
                                   .fs = on_fs,
                                   .nameinfo = on_nameinfo};

static int setup(void) {
  memset(&f, 0, sizeof(f));
  return casl_loop_new(&f.loop, &cbs);
}

static int run_bounded(uint64_t ms) {
  return test_run_bounded(f.loop, GUARD_ID, ms, &f.guard_fired);
}

/* Removes a directory made by a test and what it holds (one level). */
static void remove_tree(const char *dir) {
  char cmd[1200];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "  warning: could not remove %s\n", dir);
}

/* ------------------------------------------------------------------------ */
/* Pollers                                                                   */

TEST_IMPL(poll_readable_and_writable) {
  int sv[2];
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  ASSERT_OK(setup());
  ASSERT_OK(casl_poll_new(f.loop, 1, sv[0],
                          CASL_POLL_READABLE | CASL_POLL_WRITABLE,
                          &f.pollers[1]));
  /* The descriptor is non-blocking now, and stays ours. */
  ASSERT(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
  ASSERT_EQ(write(sv[1], "x", 1), 1);
  f.poll_close_when = CASL_POLL_READABLE | CASL_POLL_WRITABLE;
  ASSERT_OK(run_bounded(5000)); /* ends once the poller closed */
  ASSERT(f.poll_calls[1] >= 1);
  ASSERT_EQ(f.poll_status[1], 0);
  ASSERT_EQ(f.poll_events[1], CASL_POLL_READABLE | CASL_POLL_WRITABLE);
  ASSERT_EQ(f.closed[1], 1);
  ASSERT_EQ(write(sv[0], "y", 1), 1); /* closing the poller kept the fd */
  casl_loop_free(f.loop);
  ASSERT_OK(close(sv[0]));
  ASSERT_OK(close(sv[1]));
  return 0;
}

TEST_IMPL(poll_readable_only_after_data) {
  int sv[2];
  casl_timer *t;
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  ASSERT_OK(setup());
  ASSERT_OK(casl_poll_new(f.loop, 1, sv[0], CASL_POLL_READABLE, &f.pollers[1]));
  /* Nothing to read: a short bounded run sees no event. */
  ASSERT_OK(casl_timer_new(f.loop, 2, &t));
  ASSERT_OK(casl_timer_start(t, 30, 0));
  ASSERT(casl_loop_run_once(f.loop, 50) >= 0);
  ASSERT_EQ(f.poll_calls[1], 0);
  casl_timer_close(t);
  ASSERT_EQ(write(sv[1], "x", 1), 1);
  f.poll_close_when = CASL_POLL_READABLE;
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(f.poll_events[1], CASL_POLL_READABLE);
  ASSERT_EQ(f.closed[1], 1);
  casl_loop_free(f.loop);
  ASSERT_OK(close(sv[0]));
  ASSERT_OK(close(sv[1]));
  return 0;
}

TEST_IMPL(poll_refused_descriptors) {
  char path[] = "/tmp/casl-poll-XXXXXX";
  casl_poll *p = (casl_poll *)1;
  casl_stats st;
  int file, sv[2], closed_fd;
  ASSERT_OK(setup());
  file = mkstemp(path);
  ASSERT(file >= 0);
  ASSERT_OK(unlink(path));
  ASSERT_EQ(casl_poll_new(f.loop, 1, file, CASL_POLL_READABLE, &p), UV_EPERM);
  ASSERT(p == NULL);
  closed_fd = dup(file);
  ASSERT(closed_fd >= 0);
  ASSERT_OK(close(closed_fd));
  ASSERT_EQ(casl_poll_new(f.loop, 2, closed_fd, CASL_POLL_READABLE, &p),
            UV_EBADF);
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  ASSERT_OK(casl_poll_new(f.loop, 3, sv[0], CASL_POLL_READABLE, &f.pollers[3]));
  ASSERT_EQ(casl_poll_new(f.loop, 4, sv[0], CASL_POLL_WRITABLE, &p),
            UV_EEXIST);
  ASSERT_EQ(casl_poll_new(f.loop, 5, sv[1], 0, &p), CASL_EINVAL);
  ASSERT_EQ(casl_poll_new(f.loop, 5, sv[1], 64, &p), CASL_EINVAL);
  ASSERT_EQ(casl_poll_new(f.loop, 5, -1, CASL_POLL_READABLE, &p),
            CASL_EINVAL);
  casl_loop_stats(f.loop, &st);
  ASSERT_EQ(st.pollers, 1);
  casl_poll_close(f.pollers[3]);
  ASSERT_OK(casl_loop_run(f.loop));
  casl_loop_stats(f.loop, &st);
  ASSERT_EQ(st.pollers, 0);
  ASSERT_EQ(st.handles, 0);
  ASSERT_EQ(f.closed[3], 1);
  ASSERT_EQ(f.closed[1] + f.closed[2] + f.closed[4] + f.closed[5], 0);
  casl_loop_free(f.loop);
  ASSERT_OK(close(file));
  ASSERT_OK(close(sv[0]));
  ASSERT_OK(close(sv[1]));
  return 0;
}

TEST_IMPL(poll_error_status) {
  /* The write end of a pipe whose read end is closed: POLLERR, which
   * libuv reports as UV_EBADF and stops the poller. */
  int fds[2];
  void (*old)(int);
  old = signal(SIGPIPE, SIG_IGN);
  ASSERT(old != SIG_ERR);
  ASSERT_OK(pipe(fds));
  ASSERT_OK(close(fds[0]));
  ASSERT_OK(setup());
  ASSERT_OK(casl_poll_new(f.loop, 1, fds[1], CASL_POLL_WRITABLE, &f.pollers[1]));
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(f.poll_calls[1], 1);
  ASSERT_EQ(f.poll_status[1], UV_EBADF);
  ASSERT_EQ(f.closed[1], 1);
  casl_loop_free(f.loop);
  ASSERT_OK(close(fds[1]));
  return 0;
}

TEST_IMPL(poll_teardown_with_active_poller) {
  int sv[2];
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  ASSERT_OK(setup());
  ASSERT_OK(casl_poll_new(f.loop, 1, sv[0], CASL_POLL_WRITABLE, &f.pollers[1]));
  ASSERT_EQ(casl_loop_run_once(f.loop, 100), CASL_RUN_MORE);
  ASSERT(f.poll_calls[1] >= 1);
  casl_loop_free(f.loop); /* closes it: no hang, no leak */
  ASSERT_OK(close(sv[0]));
  ASSERT_OK(close(sv[1]));
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Filesystem watchers                                                       */

TEST_IMPL(fs_event_sees_a_created_file) {
  char dir[] = "/tmp/casl-fsev-XXXXXX";
  casl_timer *t;
  ASSERT(mkdtemp(dir) != NULL);
  ASSERT_OK(setup());
  snprintf(f.create_path, sizeof(f.create_path), "%s/made", dir);
  ASSERT_OK(casl_fs_event_new(f.loop, 1, dir, &f.watchers[1]));
  ASSERT_OK(casl_timer_new(f.loop, 7, &t));
  ASSERT_OK(casl_timer_start(t, 20, 0));
  ASSERT_OK(run_bounded(5000)); /* ends once the watcher closed */
  ASSERT(f.fs_events[1] >= 1);
  ASSERT_EQ(f.fs_status[1], 0);
  ASSERT_STR_EQ(f.fs_name[1], "made");
  ASSERT(f.fs_flags[1] & (CASL_FS_RENAME | CASL_FS_CHANGE));
  ASSERT_EQ(f.closed[1], 1);
  casl_loop_free(f.loop);
  remove_tree(dir);
  return 0;
}

TEST_IMPL(fs_event_missing_path) {
  casl_fs_event *w = (casl_fs_event *)1;
  casl_stats st;
  ASSERT_OK(setup());
  ASSERT_EQ(casl_fs_event_new(f.loop, 1, "/nonexistent-casl-dir/x", &w),
            UV_ENOENT);
  ASSERT(w == NULL);
  ASSERT_EQ(casl_fs_event_new(f.loop, 2, "", &w), CASL_EINVAL);
  ASSERT_EQ(casl_fs_event_new(f.loop, 2, NULL, &w), CASL_EINVAL);
  ASSERT_OK(casl_loop_run(f.loop));
  casl_loop_stats(f.loop, &st);
  ASSERT_EQ(st.fs_watchers, 0);
  ASSERT_EQ(st.handles, 0);
  ASSERT_EQ(f.closed[1], 0);
  casl_loop_free(f.loop);
  return 0;
}

TEST_IMPL(fs_event_stopped_lets_the_loop_end) {
  char dir[] = "/tmp/casl-fsev-XXXXXX";
  casl_fs_event *w;
  ASSERT(mkdtemp(dir) != NULL);
  ASSERT_OK(setup());
  ASSERT_OK(casl_fs_event_new(f.loop, 1, dir, &w));
  ASSERT(casl_loop_alive(f.loop));
  ASSERT_OK(casl_fs_event_stop(w));
  ASSERT(!casl_loop_alive(f.loop));
  ASSERT_OK(casl_loop_run(f.loop));
  ASSERT_EQ(f.closed[1], 0); /* still open until closed or freed */
  casl_loop_free(f.loop);
  remove_tree(dir);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* mkdtemp                                                                   */

TEST_IMPL(fs_mkdtemp_makes_a_private_directory) {
  struct stat sb;
  casl_stats st;
  ASSERT_OK(setup());
  ASSERT_OK(casl_fs_mkdtemp(f.loop, 1, "/tmp/casl-mkdtemp-XXXXXX"));
  casl_loop_stats(f.loop, &st);
  ASSERT_EQ(st.fs_requests, 1);
  ASSERT(casl_loop_alive(f.loop)); /* a request keeps the loop alive */
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(f.fs_done[1], 1);
  ASSERT_EQ(f.fs_req_status[1], 0);
  ASSERT(strncmp(f.fs_path[1], "/tmp/casl-mkdtemp-", 18) == 0);
  ASSERT(strstr(f.fs_path[1], "XXXXXX") == NULL);
  ASSERT_OK(stat(f.fs_path[1], &sb));
  ASSERT(S_ISDIR(sb.st_mode));
  ASSERT_EQ(sb.st_mode & 0777, 0700);
  casl_loop_stats(f.loop, &st);
  ASSERT_EQ(st.fs_requests, 0);
  ASSERT_OK(rmdir(f.fs_path[1]));
  casl_loop_free(f.loop);
  return 0;
}

TEST_IMPL(fs_mkdtemp_failures) {
  ASSERT_OK(setup());
  ASSERT_EQ(casl_fs_mkdtemp(f.loop, 1, "/tmp/no-x"), UV_EINVAL);
  ASSERT_EQ(casl_fs_mkdtemp(f.loop, 1, "/tmp/casl-XXXXXX/"), UV_EINVAL);
  ASSERT_EQ(casl_fs_mkdtemp(f.loop, 1, NULL), UV_EINVAL);
  ASSERT_OK(casl_fs_mkdtemp(f.loop, 2, "/nonexistent-casl-parent/aXXXXXX"));
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(f.fs_done[1], 0);
  ASSERT_EQ(f.fs_done[2], 1);
  ASSERT_EQ(f.fs_req_status[2], UV_ENOENT);
  ASSERT_EQ(f.fs_path[2][0], '\0');
  casl_loop_free(f.loop);
  return 0;
}

TEST_IMPL(fs_mkdtemp_cancelled_at_free) {
  int i;
  ASSERT_OK(setup());
  for (i = 1; i < 6; i++)
    ASSERT_OK(casl_fs_mkdtemp(f.loop, i, "/nonexistent-casl-parent/aXXXXXX"));
  casl_loop_free(f.loop); /* no callback, nothing leaked */
  for (i = 1; i < 6; i++)
    ASSERT_EQ(f.fs_done[i], 0);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Reverse DNS                                                               */

/* Whether this machine has an IPv6 loopback to look up. */
static int have_ipv6_loopback(void) {
  struct sockaddr_in6 a;
  int fd = socket(AF_INET6, SOCK_STREAM, 0), ok;
  if (fd < 0)
    return 0;
  memset(&a, 0, sizeof(a));
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

TEST_IMPL(dns_reverse_loopback) {
  casl_stats st;
  int v6 = have_ipv6_loopback();
  ASSERT_OK(setup());
  ASSERT_OK(casl_dns_reverse(f.loop, 1, "127.0.0.1"));
  if (v6)
    ASSERT_OK(casl_dns_reverse(f.loop, 2, "::1"));
  else
    fprintf(stderr, "  note: no IPv6 loopback here, ::1 not looked up\n");
  casl_loop_stats(f.loop, &st);
  ASSERT_EQ(st.dns_queries, v6 ? 2 : 1);
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(f.ni_done[1], 1);
  ASSERT_EQ(f.ni_status[1], 0);
  ASSERT(f.ni_host[1][0] != '\0'); /* "localhost", or the number */
  ASSERT_STR_EQ(f.ni_service[1], "0");
  if (v6) {
    ASSERT_EQ(f.ni_done[2], 1);
    ASSERT_EQ(f.ni_status[2], 0);
    ASSERT(f.ni_host[2][0] != '\0');
    ASSERT_STR_EQ(f.ni_service[2], "0");
  }
  casl_loop_stats(f.loop, &st);
  ASSERT_EQ(st.dns_queries, 0);
  casl_loop_free(f.loop);
  return 0;
}

TEST_IMPL(dns_reverse_invalid_and_cancelled) {
  ASSERT_OK(setup());
  ASSERT_EQ(casl_dns_reverse(f.loop, 1, "not-an-address"), CASL_EINVAL);
  ASSERT_EQ(casl_dns_reverse(f.loop, 1, "256.1.1.1"), CASL_EINVAL);
  ASSERT_EQ(casl_dns_reverse(f.loop, 1, "1:2:3"), CASL_EINVAL);
  ASSERT_EQ(casl_dns_reverse(f.loop, 1, ""), CASL_EINVAL);
  ASSERT_EQ(casl_dns_reverse(f.loop, 1, NULL), CASL_EINVAL);
  ASSERT_OK(casl_dns_reverse(f.loop, 2, "127.0.0.1"));
  casl_loop_free(f.loop); /* cancelled: no callback, nothing leaked */
  ASSERT_EQ(f.ni_done[2], 0);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Descriptor helpers                                                        */

TEST_IMPL(fd_error_texts_of_unknown_codes) {
  /* What error-str shows for a code that is no error (upstream's
   * "(unknown error)"): static texts, nothing allocated (LeakSanitizer
   * would see it). */
  ASSERT_STR_EQ(casl_err_name(12345), "UNKNOWN");
  ASSERT_STR_EQ(casl_strerror(12345), "unknown error");
  ASSERT_STR_EQ(casl_err_name(-99999), "UNKNOWN");
  ASSERT_STR_EQ(casl_err_name(UV_EBADF), "EBADF");
  ASSERT_STR_EQ(casl_err_name(UV_EAI_NONAME), "EAI_NONAME");
  ASSERT_STR_EQ(casl_strerror(UV_ENOENT), "no such file or directory");
  return 0;
}

TEST_IMPL(fd_nonblocking_and_connected) {
  int sv[2], lone, file;
  char path[] = "/tmp/casl-fd-XXXXXX";
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  ASSERT(!(fcntl(sv[0], F_GETFL) & O_NONBLOCK));
  ASSERT_OK(casl_fd_set_nonblocking(sv[0], 1));
  ASSERT(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
  ASSERT_OK(casl_fd_set_nonblocking(sv[0], 1)); /* already: fine */
  ASSERT_OK(casl_fd_set_nonblocking(sv[0], 0));
  ASSERT(!(fcntl(sv[0], F_GETFL) & O_NONBLOCK));
  ASSERT_EQ(casl_fd_connected(sv[0]), 1);
  lone = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT(lone >= 0);
  ASSERT_EQ(casl_fd_connected(lone), 0);
  file = mkstemp(path);
  ASSERT(file >= 0);
  ASSERT_OK(unlink(path));
  ASSERT_EQ(casl_fd_connected(file), UV_ENOTSOCK);
  ASSERT_OK(close(file));
  ASSERT_EQ(casl_fd_connected(file), UV_EBADF);
  ASSERT_EQ(casl_fd_set_nonblocking(file, 1), UV_EBADF);
  ASSERT_OK(close(lone));
  ASSERT_OK(close(sv[0]));
  ASSERT_OK(close(sv[1]));
  return 0;
}
