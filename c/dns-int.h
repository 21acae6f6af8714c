/*
 * dns-int.h -- asynchronous name resolution for the library's own use
 * (TCP connects) and for casl_dns_lookup (dns.c).
 */
#ifndef CASL_DNS_INT_H
#define CASL_DNS_INT_H

#include <netdb.h>

#include "loop-int.h"

typedef struct casl_resolve casl_resolve;
/* Called once with the lookup's status and, on success, its results, which
 * the callback owns (uv_freeaddrinfo).  Not called after
 * casl__resolve_cancel or while the loop is being freed. */
typedef void (*casl__resolve_cb)(casl_resolve *r, int status,
                                 struct addrinfo *res);

struct casl_resolve {
  casl_req req; /* listed in the loop: cancelled at teardown */
  uv_getaddrinfo_t uv;
  casl_loop *loop;
  casl__resolve_cb cb; /* NULL once cancelled */
  void *ud;            /* the caller's */
  int64_t id;          /* the caller's */
  casl_event *ev;      /* casl_dns_lookup: its event, taken beforehand */
};

/* Starts resolving host (hints: family AF_*, flags AI_*; stream sockets)
 * and counts it in the loop's dns_queries.  0 and *out, or a code. */
int casl__resolve(casl_loop *loop, const char *host, int family, int flags,
                  casl__resolve_cb cb, void *ud, int64_t id,
                  casl_resolve **out);
/* The callback will not be called; the request is freed when libuv is
 * done with it. */
void casl__resolve_cancel(casl_resolve *r);

#endif
