/*
 * fd.c -- small queries and settings on the application's own file
 * descriptors (upstream cl-async's set-socket-nonblocking and
 * fd-connected-p), with the platform's constants.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

#include "internal.h"

int casl_fd_set_nonblocking(int fd, int on) {
  int flags, want;
  flags = fcntl(fd, F_GETFL);
  if (flags == -1)
    return casl__errno();
  want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (want == flags)
    return 0;
  if (fcntl(fd, F_SETFL, want) == -1)
    return casl__errno();
  return 0;
}

int casl_fd_connected(int fd) {
  struct sockaddr_storage peer;
  socklen_t len = sizeof(int);
  int err = 0;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    return casl__errno();
  if (err != 0)
    return 0;
  len = sizeof(peer);
  if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0)
    return errno == ENOTCONN ? 0 : -errno;
  return 1;
}
