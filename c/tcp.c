/*
 * tcp.c -- TCP on the stream core: connecting (a literal address, or a
 * name resolved asynchronously with each address tried in turn),
 * addresses, and binding servers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream-int.h"

static void connect_next(casl_tcp *c, int last_error);

static void free_addresses(casl_tcp *c) {
  if (c->ai_head != NULL) {
    uv_freeaddrinfo(c->ai_head);
    c->ai_head = c->ai_next = NULL;
  }
}

static void connect_cb(uv_connect_t *req, int status) {
  casl_tcp *c = req->data;
  req->data = NULL;
  if (c->forced)
    return;
  if (status == 0) {
    (void)uv_tcp_nodelay((uv_tcp_t *)c->uv, 1);
    free_addresses(c);
    casl__stream_connected(c);
    return;
  }
  if (status == UV_ECANCELED && (c->h.flags & CASL_HF_CLOSING))
    return;
  connect_next(c, status);
}

static int try_connect(casl_tcp *c, const struct sockaddr *addr) {
  c->creq.data = c;
  return uv_tcp_connect(&c->creq, (uv_tcp_t *)c->uv, addr, connect_cb);
}

/* Tries the next resolved address; reports the failure when none is left. */
static void connect_next(casl_tcp *c, int last_error) {
  while (c->ai_next != NULL) {
    struct addrinfo *ai = c->ai_next;
    int rc;
    c->ai_next = ai->ai_next;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
      continue;
    if (last_error != 0) {
      /* The failed attempt left its socket in an error state: replace it. */
      uv_tcp_t *fresh = casl__malloc(sizeof(*fresh));
      if (fresh == NULL || uv_tcp_init(&c->h.loop->uv, fresh) != 0) {
        casl__free(fresh);
        last_error = UV_ENOMEM;
        break;
      }
      fresh->data = c;
      c->uv->data = NULL;
      uv_close((uv_handle_t *)c->uv, casl__stream_uv_close);
      c->uv = (uv_stream_t *)fresh;
    }
    if (ai->ai_family == AF_INET)
      ((struct sockaddr_in *)(void *)ai->ai_addr)->sin_port =
          htons((uint16_t)c->port);
    else
      ((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_port =
          htons((uint16_t)c->port);
    rc = try_connect(c, ai->ai_addr);
    if (rc == 0)
      return;
    c->creq.data = NULL;
    last_error = rc;
  }
  free_addresses(c);
  if (c->h.flags & CASL_HF_CLOSING) {
    casl__stream_close_now(c);
    return;
  }
  casl__stream_error(c, last_error, "connect failed: %s",
                     uv_strerror(last_error));
}

static void resolved(casl_resolve *r, int status, struct addrinfo *res) {
  casl_tcp *c = r->ud;
  c->resolving = NULL;
  if (status != 0 || res == NULL) {
    uv_freeaddrinfo(res);
    if (c->h.flags & CASL_HF_CLOSING) {
      casl__stream_close_now(c);
      return;
    }
    if (status == 0)
      status = UV_EAI_NODATA;
    casl__stream_error(c, status, "DNS lookup failed: %s", uv_strerror(status));
    return;
  }
  c->ai_head = c->ai_next = res;
  connect_next(c, 0);
}

static int parse_ip(const char *host, int port, struct sockaddr_storage *ss) {
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)(void *)ss) == 0)
    return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)(void *)ss) == 0)
    return 0;
  return CASL_EINVAL;
}

int casl_tcp_connect(casl_loop *loop, int64_t id, const char *host, int port,
                     casl_tcp **out) {
  struct sockaddr_storage ss;
  casl_tcp *c;
  int rc;
  *out = NULL;
  if (host == NULL || *host == '\0' || port <= 0 || port > 65535)
    return CASL_EINVAL;
  c = casl__stream_new(loop, id, CASL_STREAM_TCP, 0);
  if (c == NULL)
    return CASL_ENOMEM;
  c->port = port;
  if (parse_ip(host, port, &ss) == 0) {
    rc = try_connect(c, (const struct sockaddr *)&ss);
    if (rc != 0) {
      c->creq.data = NULL;
      casl__stream_error(c, rc, "connect failed: %s", uv_strerror(rc));
    }
  } else {
    rc = casl__resolve(loop, host, AF_UNSPEC, AI_ADDRCONFIG, resolved, c, 0,
                       &c->resolving);
    if (rc == CASL_ENOMEM) {
      c->h.flags |= CASL_HF_SILENT;
      casl__stream_close_now(c);
      return CASL_ENOMEM;
    }
    if (rc != 0)
      casl__stream_error(c, rc, "DNS lookup failed: %s", uv_strerror(rc));
  }
  *out = c;
  return 0;
}

static int address_of(casl_tcp *c, int peer, char *buf, size_t len, int *port) {
  struct sockaddr_storage ss;
  int n = sizeof(ss), rc;
  if (c->uv == NULL || (c->h.flags & CASL_HF_UVCLOSED))
    return CASL_ECLOSED;
  if (c->kind != CASL_STREAM_TCP)
    return CASL_EINVAL;
  rc = peer ? uv_tcp_getpeername((uv_tcp_t *)c->uv, (struct sockaddr *)&ss, &n)
            : uv_tcp_getsockname((uv_tcp_t *)c->uv, (struct sockaddr *)&ss, &n);
  if (rc != 0)
    return rc;
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)(void *)&ss;
    rc = uv_ip4_name(a, buf, len);
    *port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(void *)&ss;
    rc = uv_ip6_name(a, buf, len);
    *port = ntohs(a->sin6_port);
  } else {
    return CASL_EINVAL;
  }
  return rc;
}

int casl_tcp_peer_address(casl_tcp *c, char *buf, size_t len, int *port) {
  return address_of(c, 1, buf, len, port);
}

int casl_tcp_local_address(casl_tcp *c, char *buf, size_t len, int *port) {
  return address_of(c, 0, buf, len, port);
}

/* ------------------------------------------------------------------------ */
/* Servers                                                                   */

/* A TCP socket bound to ss with SO_REUSEADDR (and SO_REUSEPORT with
 * CASL_LISTEN_REUSEPORT; an IPv6 one takes IPv4 too): the fd, or a
 * negative code.  Bound here rather than by uv_tcp_bind, which leaves
 * EADDRINUSE for uv_listen to report. */
static int bind_socket(const struct sockaddr_storage *ss, int flags) {
  int fd, on = 1, off = 0, rc;
  socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
  fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return casl__errno();
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
      ((flags & CASL_LISTEN_REUSEPORT) &&
       setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) ||
      (ss->ss_family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) != 0) ||
      bind(fd, (const struct sockaddr *)ss, len) != 0) {
    rc = casl__errno();
    (void)close(fd);
    return rc;
  }
  return fd;
}

int casl_server_listen(casl_loop *loop, int64_t id, const char *addr, int port,
                       int backlog, int flags, casl_server **out) {
  struct sockaddr_storage ss;
  casl_server *s;
  int rc, fd;
  *out = NULL;
  if (addr == NULL || *addr == '\0')
    addr = "0.0.0.0";
  if (port < 0 || port > 65535 || parse_ip(addr, port, &ss) != 0 ||
      (flags & ~CASL_LISTEN_REUSEPORT) != 0)
    return CASL_EINVAL;
  fd = bind_socket(&ss, flags);
  if (fd < 0)
    return fd;
  if ((rc = casl__server_new(loop, id, CASL_STREAM_TCP, &s)) != 0) {
    (void)close(fd);
    return rc;
  }
  rc = uv_tcp_open(&s->u.tcp, (uv_os_sock_t)fd);
  if (rc != 0)
    (void)close(fd); /* not adopted */
  return casl__server_start(s, rc, backlog, out);
}

int casl_server_open_fd(casl_loop *loop, int64_t id, int fd, int backlog,
                        casl_server **out) {
  casl_server *s;
  int rc;
  *out = NULL;
  if (fd < 0)
    return CASL_EINVAL;
  if ((rc = casl__server_new(loop, id, CASL_STREAM_TCP, &s)) != 0)
    return rc;
  return casl__server_start(s, uv_tcp_open(&s->u.tcp, (uv_os_sock_t)fd),
                            backlog, out);
}

int casl_server_port(casl_server *s) {
  struct sockaddr_storage ss;
  int n = sizeof(ss), rc;
  if (s->kind != CASL_STREAM_TCP)
    return CASL_EINVAL;
  rc = uv_tcp_getsockname(&s->u.tcp, (struct sockaddr *)&ss, &n);
  if (rc != 0)
    return rc;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
  return CASL_EINVAL;
}
