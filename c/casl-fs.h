/*
 * casl-fs.h -- descriptor pollers, filesystem watchers and filesystem
 * requests on the loop.
 * Part of the public API: include cl-async-ssl.h, which includes this.
 */
#ifndef CASL_FS_H
#define CASL_FS_H

#ifndef CL_ASYNC_SSL_H
#error "include cl-async-ssl.h, not casl-fs.h"
#endif

/* ------------------------------------------------------------------------ */
/* Pollers                                                                   */

#define CASL_POLL_READABLE 1
#define CASL_POLL_WRITABLE 2
#define CASL_POLL_DISCONNECT 4

/* Watches the descriptor fd (made non-blocking) for events CASL_POLL_*:
 * level-triggered `poll' events until stopped.  UV_EPERM for a regular
 * file, UV_EBADF for a closed descriptor, UV_EEXIST when this loop
 * already polls fd.  fd stays the caller's: closing the poller does not
 * close it. */
CASL_EXTERN int casl_poll_new(casl_loop *loop, int64_t id, int fd,
                              int events, casl_poll **out);
/* Closes the poller; `closed' follows. */
CASL_EXTERN void casl_poll_close(casl_poll *p);

/* ------------------------------------------------------------------------ */
/* Descriptors                                                               */

/* Sets (on != 0) or clears O_NONBLOCK on fd.  0 or a negative errno. */
CASL_EXTERN int casl_fd_set_nonblocking(int fd, int on);
/* 1 if fd is a socket with a peer and no pending error (SO_ERROR 0), 0 if
 * it is a socket that is not (or not yet) connected or has a pending
 * error, or a negative errno (UV_ENOTSOCK, UV_EBADF). */
CASL_EXTERN int casl_fd_connected(int fd);

/* ------------------------------------------------------------------------ */
/* Filesystem watchers                                                       */

#define CASL_FS_RENAME 1
#define CASL_FS_CHANGE 2

/* Watches path (a file, or a directory and its direct entries) for
 * `fs_event' events.  UV_ENOENT when path does not exist. */
CASL_EXTERN int casl_fs_event_new(casl_loop *loop, int64_t id,
                                  const char *path, casl_fs_event **out);
/* Stops the events; the watcher stays open (it no longer keeps the loop
 * alive) until closed. */
CASL_EXTERN int casl_fs_event_stop(casl_fs_event *w);
/* Closes the watcher; `closed' follows. */
CASL_EXTERN void casl_fs_event_close(casl_fs_event *w);

/* ------------------------------------------------------------------------ */
/* Filesystem requests (run on libuv's thread pool)                          */

/* Makes a fresh directory, mode 0700, from tmpl (a path ending in
 * "XXXXXX"); the `fs' callback fires once with id and the path made.
 * Requests still running when the loop is freed are cancelled without a
 * callback. */
CASL_EXTERN int casl_fs_mkdtemp(casl_loop *loop, int64_t id, const char *tmpl);

#endif /* CASL_FS_H */
