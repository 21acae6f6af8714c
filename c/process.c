/*
 * process.c -- child processes and their stdio pipes.
 *
 * libuv reaps a child while its process handle is open.  A child still
 * running when its handle closes (the loop is freed, or the application
 * closes it) is waited for by a small detached thread, so it never stays
 * a zombie.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stream-int.h"

struct casl_process {
  casl_handle h;
  uv_process_t uv;
  unsigned exited : 1;
};

static void *reap_thread(void *arg) {
  pid_t pid = (pid_t)(intptr_t)arg;
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
    ;
  return NULL;
}

/* Waits for pid in the background (unless it has ended already). */
static void reap_later(pid_t pid) {
  pthread_attr_t attr;
  pthread_t t;
  sigset_t all, old;
  int rc;
  if (pid <= 0 || waitpid(pid, NULL, WNOHANG) != 0)
    return;
  if (pthread_attr_init(&attr) != 0)
    goto fail;
  (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  (void)pthread_attr_setstacksize(&attr, 64 * 1024);
  /* The thread takes no signals: they stay for the host's threads. */
  sigfillset(&all);
  (void)pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&t, &attr, reap_thread, (void *)(intptr_t)pid);
  (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
  (void)pthread_attr_destroy(&attr);
  if (rc == 0)
    return;
fail:
  fprintf(stderr, "cl-async-ssl: cannot wait for child %d in the background\n",
          (int)pid);
}

static void exit_cb(uv_process_t *u, int64_t status, int term_signal) {
  casl_process *p = u->data;
  casl_event *ev;
  p->exited = 1;
  if (!(p->h.flags & CASL_HF_CLOSING)) {
    ev = casl__event_push(p->h.loop, CASL_EV_EXIT, &p->h);
    if (ev != NULL) {
      ev->num = status;
      ev->code = term_signal;
    } else {
      casl__handle_lost(&p->h, UV_ENOMEM);
    }
  }
  /* Done: `closed' follows the `exit' event. */
  casl__handle_close_uv((uv_handle_t *)&p->uv);
}

static void process_close_now(casl_handle *h) {
  casl_process *p = (casl_process *)h;
  h->flags |= CASL_HF_CLOSING;
  if (!p->exited && !uv_is_closing((uv_handle_t *)&p->uv)) {
    p->exited = 1;
    reap_later(p->uv.pid);
  }
  casl__handle_close_uv((uv_handle_t *)&p->uv);
}

static uv_handle_t *process_uv(casl_handle *h) {
  return (uv_handle_t *)&((casl_process *)h)->uv;
}

static void process_close(casl_handle *h) {
  if (!(h->flags & CASL_HF_CLOSING))
    process_close_now(h);
}

static const casl_handle_ops process_ops = {
    "process", process_uv, process_close, process_close_now,
    NULL,      NULL,       NULL,          NULL};

/* Undoes the pipes made for a spawn that failed. */
static void drop_pipes(const casl_spawn_options *o) {
  int i;
  for (i = 0; i < o->stdio_count; i++) {
    casl_tcp *c = o->stdio[i].pipe;
    if (o->stdio[i].kind == CASL_STDIO_PIPE && c != NULL) {
      c->h.flags |= CASL_HF_SILENT;
      casl__stream_close_now(c);
      o->stdio[i].pipe = NULL;
    }
  }
}

/* Fills the libuv stdio containers; files are opened into fds[]. */
static int set_stdio(casl_loop *loop, const casl_spawn_options *o,
                     uv_stdio_container_t *sc, int *fds) {
  int i;
  for (i = 0; i < o->stdio_count; i++) {
    casl_stdio *st = &o->stdio[i];
    switch (st->kind) {
    case CASL_STDIO_IGNORE:
      sc[i].flags = UV_IGNORE;
      break;
    case CASL_STDIO_INHERIT:
      if (st->fd < 0)
        return CASL_EINVAL;
      sc[i].flags = UV_INHERIT_FD;
      sc[i].data.fd = st->fd;
      break;
    case CASL_STDIO_FILE:
      if (st->path == NULL)
        return CASL_EINVAL;
      fds[i] = open(st->path,
                    i == 0 ? O_RDONLY | O_CLOEXEC
                           : O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                    0666);
      if (fds[i] < 0)
        return casl__errno();
      sc[i].flags = UV_INHERIT_FD;
      sc[i].data.fd = fds[i];
      break;
    case CASL_STDIO_PIPE:
      st->pipe = casl__stream_new(loop, st->id, CASL_STREAM_PIPE, 1);
      if (st->pipe == NULL)
        return CASL_ENOMEM;
      sc[i].flags =
          (uv_stdio_flags)(UV_CREATE_PIPE |
                           (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE));
      sc[i].data.stream = st->pipe->uv;
      break;
    default:
      return CASL_EINVAL;
    }
  }
  return 0;
}

int casl_process_spawn(casl_loop *loop, int64_t id, const casl_spawn_options *o,
                       casl_process **out) {
  uv_process_options_t uo;
  uv_stdio_container_t *sc = NULL;
  casl_process *p = NULL;
  int *fds = NULL;
  int i, rc;
  *out = NULL;
  if (o == NULL || o->file == NULL || *o->file == '\0' || o->args == NULL ||
      o->args[0] == NULL || o->stdio_count < 0 || o->stdio_count > 1024 ||
      (o->stdio_count > 0 && o->stdio == NULL))
    return CASL_EINVAL;
  for (i = 0; i < o->stdio_count; i++)
    o->stdio[i].pipe = NULL;
  sc = casl__calloc((size_t)o->stdio_count + 1, sizeof(*sc));
  fds = casl__malloc(((size_t)o->stdio_count + 1) * sizeof(*fds));
  if (fds != NULL)
    for (i = 0; i < o->stdio_count; i++)
      fds[i] = -1;
  p = casl__calloc(1, sizeof(*p));
  if (sc == NULL || fds == NULL || p == NULL) {
    rc = CASL_ENOMEM;
    goto fail;
  }
  rc = set_stdio(loop, o, sc, fds);
  if (rc != 0)
    goto fail;
  memset(&uo, 0, sizeof(uo));
  uo.exit_cb = exit_cb;
  uo.file = o->file;
  uo.args = (char **)(void *)o->args;
  uo.env = (char **)(void *)o->env;
  uo.cwd = o->cwd;
  uo.stdio_count = o->stdio_count;
  uo.stdio = sc;
  casl__handle_init(loop, &p->h, &process_ops, id, &loop->st.processes);
  p->h.uv_open = 1;
  p->uv.data = p;
  rc = uv_spawn(&loop->uv, &p->uv, &uo);
  for (i = 0; i < o->stdio_count; i++)
    if (fds[i] >= 0)
      (void)close(fds[i]);
  casl__free(fds);
  casl__free(sc);
  if (rc != 0) {
    /* libuv wants the handle of a failed spawn closed too. */
    p->h.flags |= CASL_HF_SILENT | CASL_HF_CLOSING;
    p->exited = 1;
    casl__handle_close_uv((uv_handle_t *)&p->uv);
    drop_pipes(o);
    return rc;
  }
  for (i = 0; i < o->stdio_count; i++) {
    casl_tcp *c = o->stdio[i].pipe;
    if (c == NULL)
      continue;
    if (i == 0)
      c->paused = 1; /* the child reads this one; we only write */
    casl__stream_connected(c);
  }
  *out = p;
  return 0;
fail:
  if (fds != NULL)
    for (i = 0; i < o->stdio_count; i++)
      if (fds[i] >= 0)
        (void)close(fds[i]);
  drop_pipes(o);
  casl__free(fds);
  casl__free(sc);
  casl__free(p);
  return rc;
}

int casl_process_kill(casl_process *p, int signum) {
  if (p->exited || (p->h.flags & CASL_HF_CLOSING))
    return CASL_ECLOSED;
  return uv_process_kill(&p->uv, signum);
}

int casl_process_pid(const casl_process *p) { return p->uv.pid; }
