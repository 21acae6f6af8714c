/*
 * casl-process.h -- signal watchers and child processes on the loop.
 * Part of the public API: include cl-async-ssl.h, which includes this.
 */
#ifndef CASL_PROCESS_H
#define CASL_PROCESS_H

#ifndef CL_ASYNC_SSL_H
#error "include cl-async-ssl.h, not casl-process.h"
#endif

/* ------------------------------------------------------------------------ */
/* Signals                                                                   */

/* Watches signum: each delivery becomes a `signal' event on this loop's
 * thread.  The signal's disposition before the first watcher of the
 * process (handler, flags and mask, e.g. the host's own SIGINT handler)
 * is saved, and put back when the last watcher closes.  UV_EINVAL for
 * SIGKILL, SIGSTOP or a number that is not a signal. */
CASL_EXTERN int casl_signal_new(casl_loop *loop, int64_t id, int signum,
                                casl_signal **out);
/* Stops watching; `closed' follows.  After the last watcher of the signal
 * (in any loop of the process) the saved disposition is back at once. */
CASL_EXTERN void casl_signal_close(casl_signal *s);
/* The number of the signal called name ("SIGINT", "SIGUSR1", ...) on this
 * platform, or CASL_EINVAL when the platform has no such signal (SIGEMT
 * and SIGINFO on Linux). */
CASL_EXTERN int casl_signal_number(const char *name);

/* ------------------------------------------------------------------------ */
/* Child processes                                                           */

/* What a child's descriptor is connected to. */
#define CASL_STDIO_IGNORE 0  /* /dev/null */
#define CASL_STDIO_INHERIT 1 /* this process's descriptor `fd' */
#define CASL_STDIO_PIPE 2    /* a new pipe; this end becomes a connection */
#define CASL_STDIO_FILE 3    /* the file `path': read for descriptor 0,
                                else created or truncated and written */

typedef struct casl_stdio {
  int kind;         /* CASL_STDIO_* */
  int fd;           /* INHERIT: the descriptor to pass */
  const char *path; /* FILE */
  int64_t id;       /* PIPE: the id of the connection */
  casl_tcp *pipe;   /* PIPE: set by casl_process_spawn, our end.  For
                       descriptor 0 we write and the child reads; for the
                       others the child writes and our end is reading. */
} casl_stdio;

typedef struct casl_spawn_options {
  const char *file;         /* the program; without a "/" it is searched
                               in the PATH of env (or of this process) */
  const char *const *args;  /* argv, NULL-terminated (args[0]: the name) */
  const char *const *env;   /* "NAME=value", NULL-terminated: the child's
                               whole environment; NULL: this process's */
  const char *cwd;          /* working directory; NULL: this process's */
  int stdio_count;          /* descriptors 0 .. stdio_count-1 */
  casl_stdio *stdio;
} casl_spawn_options;

/* Starts a child process.  Failures to run it (UV_ENOENT, UV_EACCES, ...)
 * are returned here, with every pipe made for it closed; on success each
 * CASL_STDIO_PIPE entry's `pipe' is set, and an `exit' event follows when
 * the child ends, after which the handle closes by itself.  A child still
 * running when the loop is freed is left running and is reaped when it
 * ends (never a zombie). */
CASL_EXTERN int casl_process_spawn(casl_loop *loop, int64_t id,
                                   const casl_spawn_options *opts,
                                   casl_process **out);
/* Sends signum to the child.  CASL_ECLOSED once it has exited. */
CASL_EXTERN int casl_process_kill(casl_process *p, int signum);
/* The child's process id. */
CASL_EXTERN int casl_process_pid(const casl_process *p);

#endif /* CASL_PROCESS_H */
