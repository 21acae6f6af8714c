/*
 * dns.c -- asynchronous DNS: the resolver the TCP connects use,
 * casl_dns_lookup, and reverse lookups (casl_dns_reverse).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "dns-int.h"

static void resolve_done(uv_getaddrinfo_t *req, int status,
                         struct addrinfo *res) {
  casl_resolve *r = req->data;
  casl_loop *loop = r->loop;
  casl__req_remove(loop, &r->req);
  loop->st.dns_queries--;
  if (r->cb != NULL && !loop->tearing_down)
    r->cb(r, status, res);
  else
    uv_freeaddrinfo(res);
  casl__event_discard(loop, r->ev); /* not queued: cancelled */
  casl__free(r);
}

int casl__resolve(casl_loop *loop, const char *host, int family, int flags,
                  casl__resolve_cb cb, void *ud, int64_t id,
                  casl_resolve **out) {
  casl_resolve *r;
  struct addrinfo hints;
  int rc;
  *out = NULL;
  r = casl__calloc(1, sizeof(*r));
  if (r == NULL)
    return CASL_ENOMEM;
  r->loop = loop;
  r->cb = cb;
  r->ud = ud;
  r->id = id;
  r->uv.data = r;
  r->req.uv = (uv_req_t *)&r->uv;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = flags;
  rc = uv_getaddrinfo(&loop->uv, &r->uv, resolve_done, host, NULL, &hints);
  if (rc != 0) {
    casl__free(r);
    return rc;
  }
  casl__req_add(loop, &r->req);
  loop->st.dns_queries++;
  *out = r;
  return 0;
}

void casl__resolve_cancel(casl_resolve *r) {
  r->cb = NULL;
  (void)uv_cancel((uv_req_t *)&r->uv);
}

/* Packs addresses into one block: n pointers, n ints, then the strings. */
static char *pack_addresses(const struct addrinfo *res, int *count) {
  const struct addrinfo *ai;
  char(*text)[INET6_ADDRSTRLEN];
  int *fams;
  char **ptrs, *block, *p;
  int n = 0, i;
  size_t need;
  for (ai = res; ai != NULL; ai = ai->ai_next)
    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
      n++;
  *count = n;
  if (n == 0)
    return NULL;
  need = (size_t)n * (sizeof(char *) + sizeof(int) + INET6_ADDRSTRLEN);
  block = casl__malloc(need);
  if (block == NULL)
    return NULL;
  ptrs = (char **)(void *)block;
  fams = (int *)(void *)(block + (size_t)n * sizeof(char *));
  p = (char *)(fams + n);
  text = (char(*)[INET6_ADDRSTRLEN])(void *)p;
  i = 0;
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      uv_ip4_name((const struct sockaddr_in *)(void *)ai->ai_addr, text[i],
                  INET6_ADDRSTRLEN);
      fams[i] = CASL_AF_INET;
    } else if (ai->ai_family == AF_INET6) {
      uv_ip6_name((const struct sockaddr_in6 *)(void *)ai->ai_addr, text[i],
                  INET6_ADDRSTRLEN);
      fams[i] = CASL_AF_INET6;
    } else {
      continue;
    }
    ptrs[i] = text[i];
    i++;
  }
  return block;
}

static void lookup_done(casl_resolve *r, int status, struct addrinfo *res) {
  casl_event *ev = r->ev;
  r->ev = NULL;
  ev->id = r->id;
  ev->code = status;
  if (status == 0) {
    int n = 0;
    ev->buf = pack_addresses(res, &n);
    ev->len = (size_t)n;
    if (n == 0)
      ev->code = UV_EAI_NODATA;
    else if (ev->buf == NULL)
      ev->code = UV_EAI_MEMORY;
  }
  casl__event_queue(r->loop, ev, CASL_EV_DNS, NULL);
  uv_freeaddrinfo(res);
}

int casl_dns_lookup(casl_loop *loop, int64_t id, const char *host, int family) {
  casl_resolve *r;
  casl_event *ev;
  int rc;
  if (host == NULL || *host == '\0')
    return CASL_EINVAL;
  /* Taken now, so that the answer can always be told. */
  if ((ev = casl__event_new(loop)) == NULL)
    return CASL_ENOMEM;
  rc = casl__resolve(loop, host,
                     family == CASL_AF_INET    ? AF_INET
                     : family == CASL_AF_INET6 ? AF_INET6
                                               : AF_UNSPEC,
                     0, lookup_done, NULL, id, &r);
  if (rc != 0) {
    casl__event_discard(loop, ev);
    return rc;
  }
  r->ev = ev;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Reverse lookups                                                           */

typedef struct nameinfo_req {
  casl_req req; /* listed in the loop: cancelled at teardown */
  uv_getnameinfo_t uv;
  casl_loop *loop;
  int64_t id;
  casl_event *ev; /* taken beforehand: the answer can always be told */
} nameinfo_req;

static void nameinfo_done(uv_getnameinfo_t *u, int status, const char *host,
                          const char *service) {
  nameinfo_req *r = u->data;
  casl_loop *loop = r->loop;
  casl_event *ev = r->ev;
  casl__req_remove(loop, &r->req);
  loop->st.dns_queries--;
  if (loop->tearing_down) {
    casl__event_discard(loop, ev);
  } else {
    ev->id = r->id;
    ev->code = status;
    if (status == 0) {
      size_t h = strlen(host), s = strlen(service);
      ev->buf = casl__malloc(h + s + 2);
      if (ev->buf == NULL) {
        ev->code = UV_EAI_MEMORY;
      } else {
        memcpy(ev->buf, host, h + 1);
        memcpy(ev->buf + h + 1, service, s + 1);
      }
    }
    casl__event_queue(loop, ev, CASL_EV_NAMEINFO, NULL);
  }
  casl__free(r);
}

int casl_dns_reverse(casl_loop *loop, int64_t id, const char *ip) {
  struct sockaddr_storage ss;
  nameinfo_req *r;
  int rc;
  if (ip == NULL ||
      (uv_ip4_addr(ip, 0, (struct sockaddr_in *)(void *)&ss) != 0 &&
       uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)(void *)&ss) != 0))
    return CASL_EINVAL;
  r = casl__calloc(1, sizeof(*r));
  if (r == NULL || (r->ev = casl__event_new(loop)) == NULL) {
    casl__free(r);
    return CASL_ENOMEM;
  }
  r->loop = loop;
  r->id = id;
  r->uv.data = r;
  r->req.uv = (uv_req_t *)&r->uv;
  rc = uv_getnameinfo(&loop->uv, &r->uv, nameinfo_done,
                      (const struct sockaddr *)&ss, 0);
  if (rc != 0) {
    casl__event_discard(loop, r->ev);
    casl__free(r);
    return rc;
  }
  casl__req_add(loop, &r->req);
  loop->st.dns_queries++;
  return 0;
}
