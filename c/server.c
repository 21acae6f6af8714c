/*
 * server.c -- listening sockets: accepting connections (streams, with the
 * server's TLS filter if it has one), pausing while accepting fails, and
 * closing.  Binding is the transport's (tcp.c, pipe.c).
 *
 * The server accepts by itself (a poll watcher on the listening socket)
 * instead of through uv_listen.  libuv's accept loop, when accept(2)
 * fails with EMFILE, sheds the waiting connections with one spare
 * descriptor per loop; when that spare is gone (another thread took the
 * descriptor it freed, or the table was full when the loop made its first
 * stream) it calls back with the error and tries again at once, forever,
 * without returning to the loop.  Here a failed accept stops the watcher,
 * queues an error event (at most one a second), and looks again after a
 * pause that doubles while accepting keeps failing.  The waiting
 * connections stay in the kernel's backlog and are accepted once
 * descriptors are free again.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stream-int.h"

/* Connections accepted per wake-up, so other handles get their turn. */
#define ACCEPT_BATCH 128
/* The first pause after a failed accept, and the longest. */
#define PAUSE_MIN_MS 10
#define PAUSE_MAX_MS 500
/* At most one error event per this many ms while accepting fails. */
#define REPORT_EVERY_MS 1000

static uv_stream_t *server_uv(casl_server *s) { return &s->u.stream; }

static void push_error(casl_server *s, int code) {
  casl_event *ev = casl__event_push(s->h.loop, CASL_EV_ERROR, &s->h);
  if (ev != NULL)
    ev->code = code;
  else
    casl__handle_lost(&s->h, code);
}

/* Both libuv handles follow the server's ref state (casl_handle_ref acts
 * on the active one only). */
static void sync_ref(casl_server *s) {
  if (s->h.flags & CASL_HF_UNREF) {
    uv_unref((uv_handle_t *)&s->poll);
    uv_unref((uv_handle_t *)&s->retry);
  } else {
    uv_ref((uv_handle_t *)&s->poll);
    uv_ref((uv_handle_t *)&s->retry);
  }
}

static void poll_cb(uv_poll_t *p, int status, int events);
static void pause_accepting(casl_server *s, int code);

static void retry_cb(uv_timer_t *t) {
  casl_server *s = t->data;
  int rc;
  if (s->h.flags & CASL_HF_CLOSING)
    return;
  s->paused = 0;
  rc = uv_poll_start(&s->poll, UV_READABLE, poll_cb);
  sync_ref(s);
  if (rc != 0)
    pause_accepting(s, rc);
}

/* Accepting failed with code: reports it (at most once a second), stops
 * watching the socket and looks again after a pause. */
static void pause_accepting(casl_server *s, int code) {
  uint64_t now = uv_now(&s->h.loop->uv);
  if (!s->reported || now - s->reported_at >= REPORT_EVERY_MS) {
    s->reported = 1;
    s->reported_at = now;
    push_error(s, code);
  }
  s->pause_ms = s->pause_ms == 0 ? PAUSE_MIN_MS : s->pause_ms * 2;
  if (s->pause_ms > PAUSE_MAX_MS)
    s->pause_ms = PAUSE_MAX_MS;
  if (uv_timer_start(&s->retry, retry_cb, s->pause_ms, 0) != 0)
    return; /* cannot pause: keep watching */
  (void)uv_poll_stop(&s->poll);
  s->paused = 1;
  sync_ref(s);
}

/* Makes an accepted socket fd a stream of s's kind: 0, or a code (fd is
 * then closed). */
static int open_accepted(casl_server *s, casl_tcp *c, int fd) {
  int rc = s->kind == CASL_STREAM_TCP
               ? uv_tcp_open((uv_tcp_t *)c->uv, (uv_os_sock_t)fd)
               : uv_pipe_open((uv_pipe_t *)c->uv, fd);
  if (rc != 0)
    (void)close(fd); /* not adopted */
  return rc;
}

/* Hands the accepted socket fd to the application as a new connection
 * (its reads, or TLS handshake, start at once). */
static void adopt(casl_server *s, int fd) {
  casl_tcp *c = casl__stream_new(s->h.loop, 0, s->kind, 1);
  casl_event *ev;
  int rc;
  if (c == NULL) { /* out of memory: the peer sees the connection end */
    (void)close(fd);
    return;
  }
  c->h.flags |= CASL_HF_SILENT; /* until the application takes it */
  rc = open_accepted(s, c, fd);
  if (rc != 0) {
    casl__stream_close_now(c);
    push_error(s, rc);
    return;
  }
  if (s->kind == CASL_STREAM_TCP)
    (void)uv_tcp_nodelay((uv_tcp_t *)c->uv, 1);
  if (s->tls_ctx != NULL) {
    rc = casl__stream_tls_new(c, s->tls_ctx, CASL_TLS_SERVER, NULL, NULL,
                              s->handshake_ms);
    if (rc != 0) {
      casl__stream_close_now(c);
      push_error(s, rc);
      return;
    }
  }
  ev = casl__event_push(s->h.loop, CASL_EV_ACCEPT, &c->h);
  if (ev == NULL) {
    casl__stream_close_now(c);
    return;
  }
  ev->aux = &s->h;
  casl__stream_connected(c);
}

static void poll_cb(uv_poll_t *p, int status, int events) {
  casl_server *s = p->data;
  int i, fd;
  (void)events;
  if (s->h.flags & CASL_HF_CLOSING)
    return;
  if (status < 0) {
    pause_accepting(s, status);
    return;
  }
  for (i = 0; i < ACCEPT_BATCH; i++) {
    fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int rc = casl__errno();
      if (rc == UV_EAGAIN)
        return; /* nothing more waiting */
      if (rc == UV_EINTR || rc == UV_ECONNABORTED)
        continue; /* that connection is gone; the next may be there */
      /* out of descriptors or memory, or anything else: pause */
      pause_accepting(s, rc);
      return;
    }
    s->pause_ms = 0;
    adopt(s, fd);
  }
}

static uv_handle_t *server_handle_uv(casl_handle *h) {
  casl_server *s = (casl_server *)h;
  return s->paused ? (uv_handle_t *)&s->retry : (uv_handle_t *)&s->poll;
}

static const char *server_tag(casl_handle *h) {
  return ((casl_server *)h)->paused ? "accept-paused" : NULL;
}

/* Removes the socket file the server made, if it is still that file (the
 * entry itself: lstat, so a symlink put there to our socket is not ours). */
static void unlink_own_file(casl_server *s) {
  struct stat st;
  if (s->unlink_path == NULL)
    return;
  if (lstat(s->unlink_path, &st) == 0 && st.st_dev == s->dev &&
      st.st_ino == s->ino)
    (void)unlink(s->unlink_path);
  casl__free(s->unlink_path);
  s->unlink_path = NULL;
}

static void server_close_now(casl_handle *h) {
  casl_server *s = (casl_server *)h;
  h->flags |= CASL_HF_CLOSING;
  /* the watcher before the socket it watches */
  if (s->poll_inited)
    casl__handle_close_uv((uv_handle_t *)&s->poll);
  if (s->retry_inited)
    casl__handle_close_uv((uv_handle_t *)&s->retry);
  casl__handle_close_uv((uv_handle_t *)server_uv(s));
  unlink_own_file(s);
}

static void server_close(casl_handle *h) {
  casl_server_close((casl_server *)h);
}

static void server_release(casl_handle *h) {
  casl_server *s = (casl_server *)h;
  if (s->tls_ctx != NULL)
    casl_tls_ctx_unref(s->tls_ctx);
  casl__free(s->unlink_path);
  casl__free(s);
}

/* One per casl_stream_kind, in order. */
static const casl_handle_ops server_ops[] = {
    {"tcp-server", server_handle_uv, server_close, server_close_now,
     server_release, NULL, NULL, server_tag},
    {"pipe-server", server_handle_uv, server_close, server_close_now,
     server_release, NULL, NULL, server_tag}};

int casl__server_new(casl_loop *loop, int64_t id, casl_stream_kind kind,
                     casl_server **out) {
  casl_server *s = casl__calloc(1, sizeof(*s));
  int rc;
  *out = NULL;
  if (s == NULL)
    return CASL_ENOMEM;
  rc = casl__stream_uv_init(loop, kind, server_uv(s));
  if (rc != 0) {
    casl__free(s);
    return rc;
  }
  s->kind = kind;
  s->fd = -1;
  server_uv(s)->data = s;
  casl__handle_init(loop, &s->h, &server_ops[kind - 1], id, &loop->st.servers);
  s->h.uv_open = 1;
  *out = s;
  return 0;
}

/* Listens on s's bound socket and starts watching it: 0 or a code. */
static int start_listening(casl_server *s, int backlog) {
  casl_loop *loop = s->h.loop;
  uv_os_fd_t fd;
  int rc = uv_fileno((uv_handle_t *)server_uv(s), &fd);
  if (rc != 0)
    return rc;
  s->fd = (int)fd;
  if (listen(s->fd, backlog < 1 ? 128 : backlog) != 0)
    return casl__errno();
  rc = uv_poll_init_socket(&loop->uv, &s->poll, (uv_os_sock_t)s->fd);
  if (rc != 0)
    return rc;
  s->poll.data = s;
  s->poll_inited = 1;
  s->h.uv_open++;
  rc = uv_timer_init(&loop->uv, &s->retry);
  if (rc != 0)
    return rc;
  s->retry.data = s;
  s->retry_inited = 1;
  s->h.uv_open++;
  return uv_poll_start(&s->poll, UV_READABLE, poll_cb);
}

int casl__server_start(casl_server *s, int rc, int backlog, casl_server **out) {
  if (rc == 0)
    rc = start_listening(s, backlog);
  if (rc != 0) {
    s->h.flags |= CASL_HF_SILENT;
    server_close_now(&s->h);
    return rc;
  }
  *out = s;
  return 0;
}

int casl_server_set_tls(casl_server *s, casl_tls_ctx *ctx,
                        uint64_t handshake_timeout_ms) {
  if (s->h.flags & CASL_HF_CLOSING)
    return CASL_ECLOSED;
  if (ctx != NULL)
    casl_tls_ctx_ref(ctx);
  if (s->tls_ctx != NULL)
    casl_tls_ctx_unref(s->tls_ctx);
  s->tls_ctx = ctx;
  s->handshake_ms = handshake_timeout_ms;
  return 0;
}

void casl_server_close(casl_server *s) {
  if (s == NULL || (s->h.flags & CASL_HF_CLOSING))
    return;
  server_close_now(&s->h);
}
