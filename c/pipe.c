/*
 * pipe.c -- unix domain sockets on the stream core: connecting, and
 * binding servers.
 *
 * A server binds its socket itself (libuv's uv_pipe_bind would unlink the
 * path at close whatever is there by then): the file's device and inode
 * are remembered, and closing the server removes the path only if it is
 * still the file the server made.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "stream-int.h"

static int valid_path(const char *path) {
  struct sockaddr_un sun;
  return path != NULL && *path != '\0' && strlen(path) < sizeof(sun.sun_path);
}

static void pipe_connect_cb(uv_connect_t *req, int status) {
  casl_tcp *c = req->data;
  req->data = NULL;
  if (c->forced)
    return;
  if (status == 0) {
    casl__stream_connected(c);
    return;
  }
  if (c->h.flags & CASL_HF_CLOSING) {
    casl__stream_close_now(c);
    return;
  }
  casl__stream_error(c, status, "connect failed: %s", uv_strerror(status));
}

int casl_pipe_connect(casl_loop *loop, int64_t id, const char *path,
                      casl_tcp **out) {
  casl_tcp *c;
  *out = NULL;
  if (!valid_path(path))
    return CASL_EINVAL;
  c = casl__stream_new(loop, id, CASL_STREAM_PIPE, 0);
  if (c == NULL)
    return CASL_ENOMEM;
  c->creq.data = c;
  uv_pipe_connect(&c->creq, (uv_pipe_t *)c->uv, path, pipe_connect_cb);
  *out = c;
  return 0;
}

/* A bound unix socket at path: the fd, or a negative code. */
static int bind_socket(const char *path, struct stat *st) {
  struct sockaddr_un sun;
  int fd, rc;
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path, strlen(path) + 1);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return casl__errno();
  if (bind(fd, (const struct sockaddr *)&sun, sizeof(sun)) != 0) {
    rc = casl__errno();
    (void)close(fd);
    return rc;
  }
  if (lstat(path, st) != 0) {
    rc = casl__errno();
    (void)close(fd);
    return rc;
  }
  return fd;
}

int casl_pipe_listen(casl_loop *loop, int64_t id, const char *path, int backlog,
                     casl_server **out) {
  struct stat st;
  casl_server *s;
  char *copy;
  int fd, rc;
  *out = NULL;
  memset(&st, 0, sizeof(st));
  if (!valid_path(path))
    return CASL_EINVAL;
  copy = casl__strdup(path);
  if (copy == NULL)
    return CASL_ENOMEM;
  fd = bind_socket(path, &st);
  if (fd < 0) {
    casl__free(copy);
    return fd;
  }
  rc = casl__server_new(loop, id, CASL_STREAM_PIPE, &s);
  if (rc != 0) {
    (void)close(fd);
    (void)unlink(path);
    casl__free(copy);
    return rc;
  }
  s->unlink_path = copy;
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  rc = uv_pipe_open(&s->u.pipe, fd);
  if (rc != 0)
    (void)close(fd); /* not adopted */
  return casl__server_start(s, rc, backlog, out);
}

int casl_pipe_open_fd(casl_loop *loop, int64_t id, int fd, int backlog,
                      casl_server **out) {
  casl_server *s;
  int rc;
  *out = NULL;
  if (fd < 0)
    return CASL_EINVAL;
  if ((rc = casl__server_new(loop, id, CASL_STREAM_PIPE, &s)) != 0)
    return rc;
  return casl__server_start(s, uv_pipe_open(&s->u.pipe, fd), backlog, out);
}
