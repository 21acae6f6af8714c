/*
 * server.c -- listening sockets: accepting connections (streams, with the
 * server's TLS filter if it has one), and closing.  Binding is the
 * transport's (tcp.c).
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stream-int.h"

static uv_stream_t *server_uv(casl_server *s) { return &s->u.stream; }

static void push_error(casl_server *s, int code) {
  casl_event *ev = casl__event_push(s->h.loop, CASL_EV_ERROR, &s->h);
  if (ev != NULL)
    ev->code = code;
  else
    casl__handle_lost(&s->h, code);
}

/* Out of memory for a connection: accept it and drop it, or libuv keeps
 * reporting it. */
static void dropped_cb(uv_handle_t *u) { casl__free(u); }

static void accept_and_drop(casl_server *s) {
  casl_stream_uv *tmp = casl__malloc(sizeof(*tmp));
  if (tmp == NULL ||
      casl__stream_uv_init(s->h.loop, s->kind, &tmp->stream) != 0) {
    casl__free(tmp);
    return;
  }
  (void)uv_accept(server_uv(s), &tmp->stream);
  uv_close((uv_handle_t *)&tmp->stream, dropped_cb);
}

static void connection_cb(uv_stream_t *srv, int status) {
  casl_server *s = srv->data;
  casl_tcp *c;
  casl_event *ev;
  int rc;
  if (s->h.flags & CASL_HF_CLOSING)
    return;
  if (status < 0) {
    push_error(s, status);
    return;
  }
  c = casl__stream_new(s->h.loop, 0, s->kind, 1);
  if (c == NULL) {
    accept_and_drop(s);
    return;
  }
  c->h.flags |= CASL_HF_SILENT; /* until the application takes it */
  rc = uv_accept(srv, c->uv);
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

static uv_handle_t *server_handle_uv(casl_handle *h) {
  return (uv_handle_t *)&((casl_server *)h)->u.stream;
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
  h->flags |= CASL_HF_CLOSING;
  casl__handle_close_uv(server_handle_uv(h));
  unlink_own_file((casl_server *)h);
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
     server_release, NULL, NULL, NULL},
    {"pipe-server", server_handle_uv, server_close, server_close_now,
     server_release, NULL, NULL, NULL}};

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
  server_uv(s)->data = s;
  casl__handle_init(loop, &s->h, &server_ops[kind - 1], id, &loop->st.servers);
  s->h.uv_open = 1;
  *out = s;
  return 0;
}

int casl__server_start(casl_server *s, int rc, int backlog, casl_server **out) {
  if (rc == 0)
    rc = uv_listen(server_uv(s), backlog < 1 ? 128 : backlog, connection_cb);
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
