/*
 * uv-torture.c -- the errors libuv can give, one at a time, in the
 * allocation-failure build (CASL_TORTURE; see torture.h).  The build links
 * with -Wl,--wrap for the libuv calls below, so the library's calls land
 * in __wrap_uv_*: each call, and each status or read that a callback of
 * them brings, is a point the counter of casl_torture_arm_calls counts,
 * and the chosen point gives the error the system would give there
 * (EPIPE for a write, ECONNRESET for a read, EMFILE for an accept, ...)
 * instead of what libuv did.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <uv.h>

#include "internal.h"
#include "torture.h"

#ifndef CASL_TORTURE
#error "uv-torture.c is only for the allocation-failure build"
#endif

/* Counts one point of the calls family: the error to give, or 0. */
static int fault(const char *what, int err) {
  return casl__torture_point(CASL_TORTURE_CALLS, what) ? err : 0;
}

/* Synchronous failures: the call is not made. */
#define WRAP(ret, name, params, args, err, what)                            \
  ret __real_##name params;                                                 \
  ret __wrap_##name params;                                                 \
  ret __wrap_##name params {                                                \
    int e_ = fault(what, err);                                              \
    if (e_ != 0)                                                            \
      return e_;                                                            \
    return __real_##name args;                                              \
  }

WRAP(int, uv_loop_init, (uv_loop_t *l), (l), UV_EMFILE, "uv_loop_init: EMFILE")
WRAP(int, uv_async_init, (uv_loop_t *l, uv_async_t *a, uv_async_cb cb),
     (l, a, cb), UV_EMFILE, "uv_async_init: EMFILE")
WRAP(int, uv_try_write,
     (uv_stream_t *s, const uv_buf_t bufs[], unsigned int n), (s, bufs, n),
     UV_EPIPE, "uv_try_write: EPIPE")
WRAP(int, uv_signal_start, (uv_signal_t *h, uv_signal_cb cb, int signum),
     (h, cb, signum), UV_EINVAL, "uv_signal_start: EINVAL")
WRAP(int, uv_poll_start, (uv_poll_t *h, int ev, uv_poll_cb cb), (h, ev, cb),
     UV_ENOMEM, "uv_poll_start: ENOMEM")
WRAP(int, uv_fs_event_start,
     (uv_fs_event_t *h, uv_fs_event_cb cb, const char *p, unsigned int f),
     (h, cb, p, f), UV_ENOSPC, "uv_fs_event_start: ENOSPC")
WRAP(int, uv_fs_mkdtemp,
     (uv_loop_t *l, uv_fs_t *r, const char *t, uv_fs_cb cb), (l, r, t, cb),
     UV_ENOMEM, "uv_fs_mkdtemp: ENOMEM")
WRAP(int, uv_getnameinfo,
     (uv_loop_t *l, uv_getnameinfo_t *r, uv_getnameinfo_cb cb,
      const struct sockaddr *a, int f),
     (l, r, cb, a, f), UV_ENOMEM, "uv_getnameinfo: ENOMEM")

/* uv_spawn fails after it initialised the handle (which must then be
 * closed): it is made to fail for real, running a program that is not
 * there. */
int __real_uv_spawn(uv_loop_t *l, uv_process_t *p,
                    const uv_process_options_t *o);
int __wrap_uv_spawn(uv_loop_t *l, uv_process_t *p,
                    const uv_process_options_t *o);

int __wrap_uv_spawn(uv_loop_t *l, uv_process_t *p,
                    const uv_process_options_t *o) {
  uv_process_options_t missing;
  if (!casl__torture_point(CASL_TORTURE_CALLS, "uv_spawn: ENOENT"))
    return __real_uv_spawn(l, p, o);
  missing = *o;
  missing.file = "/nonexistent/casl-torture";
  return __real_uv_spawn(l, p, &missing);
}

/* Callbacks: one held back at a time (one point fails per run), called
 * with the error in place of libuv's status. */
static struct {
  void *req;
  void (*cb)(void);
  int err;
} held;

static int hold(void *req, void (*cb)(void), int err, const char *what) {
  if (!casl__torture_point(CASL_TORTURE_CALLS, what))
    return 0;
  held.req = req;
  held.cb = cb;
  held.err = err;
  return 1;
}

/* The held callback of req, or NULL; *err gets its error. */
static void (*take(void *req, int *err))(void) {
  void (*cb)(void);
  if (held.req != req)
    return NULL;
  cb = held.cb;
  *err = held.err;
  held.req = NULL;
  held.cb = NULL;
  return cb;
}

int __real_uv_write(uv_write_t *r, uv_stream_t *s, const uv_buf_t bufs[],
                    unsigned int n, uv_write_cb cb);
int __wrap_uv_write(uv_write_t *r, uv_stream_t *s, const uv_buf_t bufs[],
                    unsigned int n, uv_write_cb cb);

static void write_tramp(uv_write_t *r, int status) {
  int err = 0;
  void (*cb)(void) = take(r, &err);
  ((uv_write_cb)(void *)cb)(r, err != 0 ? err : status);
}

int __wrap_uv_write(uv_write_t *r, uv_stream_t *s, const uv_buf_t bufs[],
                    unsigned int n, uv_write_cb cb) {
  int e = fault("uv_write: ENOBUFS", UV_ENOBUFS);
  if (e != 0)
    return e;
  if (hold(r, (void (*)(void))(void *)cb, UV_EPIPE, "write callback: EPIPE"))
    cb = write_tramp;
  return __real_uv_write(r, s, bufs, n, cb);
}

int __real_uv_shutdown(uv_shutdown_t *r, uv_stream_t *s, uv_shutdown_cb cb);
int __wrap_uv_shutdown(uv_shutdown_t *r, uv_stream_t *s, uv_shutdown_cb cb);

static void shutdown_tramp(uv_shutdown_t *r, int status) {
  int err = 0;
  void (*cb)(void) = take(r, &err);
  ((uv_shutdown_cb)(void *)cb)(r, err != 0 ? err : status);
}

int __wrap_uv_shutdown(uv_shutdown_t *r, uv_stream_t *s, uv_shutdown_cb cb) {
  int e = fault("uv_shutdown: ENOTCONN", UV_ENOTCONN);
  if (e != 0)
    return e;
  if (hold(r, (void (*)(void))(void *)cb, UV_ECONNRESET,
           "shutdown callback: ECONNRESET"))
    cb = shutdown_tramp;
  return __real_uv_shutdown(r, s, cb);
}

int __real_uv_tcp_connect(uv_connect_t *r, uv_tcp_t *h,
                          const struct sockaddr *a, uv_connect_cb cb);
int __wrap_uv_tcp_connect(uv_connect_t *r, uv_tcp_t *h,
                          const struct sockaddr *a, uv_connect_cb cb);
void __real_uv_pipe_connect(uv_connect_t *r, uv_pipe_t *h, const char *path,
                            uv_connect_cb cb);
void __wrap_uv_pipe_connect(uv_connect_t *r, uv_pipe_t *h, const char *path,
                            uv_connect_cb cb);

static void connect_tramp(uv_connect_t *r, int status) {
  int err = 0;
  void (*cb)(void) = take(r, &err);
  ((uv_connect_cb)(void *)cb)(r, err != 0 ? err : status);
}

int __wrap_uv_tcp_connect(uv_connect_t *r, uv_tcp_t *h,
                          const struct sockaddr *a, uv_connect_cb cb) {
  int e = fault("uv_tcp_connect: ENOBUFS", UV_ENOBUFS);
  if (e != 0)
    return e;
  if (hold(r, (void (*)(void))(void *)cb, UV_ECONNRESET,
           "connect callback: ECONNRESET"))
    cb = connect_tramp;
  return __real_uv_tcp_connect(r, h, a, cb);
}

void __wrap_uv_pipe_connect(uv_connect_t *r, uv_pipe_t *h, const char *path,
                            uv_connect_cb cb) {
  if (hold(r, (void (*)(void))(void *)cb, UV_ECONNREFUSED,
           "pipe connect callback: ECONNREFUSED"))
    cb = connect_tramp;
  __real_uv_pipe_connect(r, h, path, cb);
}

int __real_uv_getaddrinfo(uv_loop_t *l, uv_getaddrinfo_t *r,
                          uv_getaddrinfo_cb cb, const char *node,
                          const char *service, const struct addrinfo *hints);
int __wrap_uv_getaddrinfo(uv_loop_t *l, uv_getaddrinfo_t *r,
                          uv_getaddrinfo_cb cb, const char *node,
                          const char *service, const struct addrinfo *hints);

static void getaddrinfo_tramp(uv_getaddrinfo_t *r, int status,
                              struct addrinfo *res) {
  int err = 0;
  void (*cb)(void) = take(r, &err);
  if (err != 0 && status == 0) {
    uv_freeaddrinfo(res);
    res = NULL;
    status = err;
  }
  ((uv_getaddrinfo_cb)(void *)cb)(r, status, res);
}

int __wrap_uv_getaddrinfo(uv_loop_t *l, uv_getaddrinfo_t *r,
                          uv_getaddrinfo_cb cb, const char *node,
                          const char *service, const struct addrinfo *hints) {
  int e = fault("uv_getaddrinfo: EAI_MEMORY", UV_EAI_MEMORY);
  if (e != 0)
    return e;
  if (hold(r, (void (*)(void))(void *)cb, UV_EAI_AGAIN,
           "getaddrinfo callback: EAI_AGAIN"))
    cb = getaddrinfo_tramp;
  return __real_uv_getaddrinfo(l, r, cb, node, service, hints);
}

/* Streams' reads: every read callback passes through here (the callbacks
 * are kept per stream), and the chosen one brings an error. */
#define MAX_STREAMS 64
static struct {
  uv_stream_t *s;
  uv_read_cb read;
} streams[MAX_STREAMS];

static int stream_slot(uv_stream_t *s) {
  int i, free_slot = -1;
  for (i = 0; i < MAX_STREAMS; i++) {
    if (streams[i].s == s)
      return i;
    if (streams[i].s == NULL && free_slot < 0)
      free_slot = i;
  }
  if (free_slot < 0) {
    fprintf(stderr, "uv-torture: more than %d streams\n", MAX_STREAMS);
    abort();
  }
  streams[free_slot].s = s;
  return free_slot;
}

static void read_tramp(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  uv_read_cb cb = streams[stream_slot(s)].read;
  if (nread > 0 &&
      casl__torture_point(CASL_TORTURE_CALLS, "read callback: ECONNRESET"))
    nread = UV_ECONNRESET;
  cb(s, nread, buf);
}

int __real_uv_read_start(uv_stream_t *s, uv_alloc_cb a, uv_read_cb r);
int __wrap_uv_read_start(uv_stream_t *s, uv_alloc_cb a, uv_read_cb r);

int __wrap_uv_read_start(uv_stream_t *s, uv_alloc_cb a, uv_read_cb r) {
  int e = fault("uv_read_start: ENOTCONN", UV_ENOTCONN);
  if (e != 0)
    return e;
  streams[stream_slot(s)].read = r;
  return __real_uv_read_start(s, a, read_tramp);
}

/* The socket calls the library makes itself (servers bind, listen and
 * accept without libuv: tcp.c, pipe.c, server.c).  A failing call sets
 * errno and returns -1, as the system does. */
#define WRAP_SYS(name, params, args, err, what)                             \
  int __real_##name params;                                                 \
  int __wrap_##name params;                                                 \
  int __wrap_##name params {                                                \
    if (casl__torture_point(CASL_TORTURE_CALLS, what)) {                    \
      errno = err;                                                          \
      return -1;                                                            \
    }                                                                       \
    return __real_##name args;                                              \
  }

WRAP_SYS(socket, (int d, int t, int p), (d, t, p), EMFILE, "socket: EMFILE")
WRAP_SYS(bind, (int fd, const struct sockaddr *a, socklen_t n), (fd, a, n),
         EADDRNOTAVAIL, "bind: EADDRNOTAVAIL")
WRAP_SYS(listen, (int fd, int backlog), (fd, backlog), EADDRINUSE,
         "listen: EADDRINUSE")
WRAP_SYS(accept4, (int fd, struct sockaddr *a, socklen_t *n, int f),
         (fd, a, n, f), EMFILE, "accept4: EMFILE")
