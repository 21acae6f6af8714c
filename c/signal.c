/*
 * signal.c -- signal watchers.
 *
 * libuv installs its own handler for a watched signal (it only writes to
 * the loop's wake-up pipe) and sets the disposition to SIG_DFL when its
 * last watcher stops.  Before our first watcher of a signal the process's
 * disposition is saved, and it is put back (handler, flags and mask) as
 * soon as our last watcher closes: a host's own handler, such as SBCL's
 * SIGINT handler, works again.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "loop-int.h"

struct casl_signal {
  casl_handle h;
  uv_signal_t uv;
  int signum;
  int counted; /* holds one of sig_state[signum].watchers */
};

/* Process-wide: how many of our watchers each signal has, and what its
 * disposition was before the first. */
static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  int watchers;
  struct sigaction saved;
} sig_state[NSIG];

static void signal_cb(uv_signal_t *u, int signum) {
  casl_signal *s = u->data;
  casl_event *ev;
  if (s->h.flags & CASL_HF_CLOSING)
    return;
  ev = casl__event_push(s->h.loop, CASL_EV_SIGNAL, &s->h);
  if (ev == NULL) {
    casl__handle_lost(&s->h, UV_ENOMEM);
    return;
  }
  ev->code = signum;
}

/* Closes the libuv watcher (libuv stops it at once) and, after our last
 * watcher of the signal, puts the saved disposition back. */
static void signal_close_now(casl_handle *h) {
  casl_signal *s = (casl_signal *)h;
  h->flags |= CASL_HF_CLOSING;
  casl__handle_close_uv((uv_handle_t *)&s->uv);
  if (s->counted) {
    s->counted = 0;
    pthread_mutex_lock(&sig_lock);
    if (--sig_state[s->signum].watchers == 0) {
      /* Only when libuv let go of the signal (it may still watch it for
       * itself: SIGCHLD for child processes). */
      struct sigaction now;
      if (sigaction(s->signum, NULL, &now) == 0 && now.sa_handler == SIG_DFL)
        (void)sigaction(s->signum, &sig_state[s->signum].saved, NULL);
    }
    pthread_mutex_unlock(&sig_lock);
  }
}

static uv_handle_t *signal_uv(casl_handle *h) {
  return (uv_handle_t *)&((casl_signal *)h)->uv;
}

static void signal_close(casl_handle *h) {
  casl_signal_close((casl_signal *)h);
}

static const casl_handle_ops signal_ops = {
    "signal", signal_uv, signal_close, signal_close_now,
    NULL,     NULL,      NULL,         NULL};

int casl_signal_new(casl_loop *loop, int64_t id, int signum,
                    casl_signal **out) {
  casl_signal *s;
  int rc;
  *out = NULL;
  if (signum <= 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP)
    return UV_EINVAL;
  s = casl__calloc(1, sizeof(*s));
  if (s == NULL)
    return CASL_ENOMEM;
  rc = uv_signal_init(&loop->uv, &s->uv);
  if (rc != 0) {
    casl__free(s);
    return rc;
  }
  s->uv.data = s;
  s->signum = signum;
  casl__handle_init(loop, &s->h, &signal_ops, id, &loop->st.signals);
  s->h.uv_open = 1;
  pthread_mutex_lock(&sig_lock);
  rc = 0;
  if (sig_state[signum].watchers == 0 &&
      sigaction(signum, NULL, &sig_state[signum].saved) != 0)
    rc = UV_EINVAL;
  if (rc == 0)
    rc = uv_signal_start(&s->uv, signal_cb, signum);
  if (rc == 0) {
    sig_state[signum].watchers++;
    s->counted = 1;
  }
  pthread_mutex_unlock(&sig_lock);
  if (rc != 0) {
    s->h.flags |= CASL_HF_SILENT;
    signal_close_now(&s->h);
    return rc;
  }
  *out = s;
  return 0;
}

void casl_signal_close(casl_signal *s) {
  if (s == NULL || (s->h.flags & CASL_HF_CLOSING))
    return;
  signal_close_now(&s->h);
}

/* ------------------------------------------------------------------------ */
/* Signal numbers by name                                                    */

static const struct {
  const char *name;
  int number;
} signal_names[] = {
    {"SIGHUP", SIGHUP},       {"SIGINT", SIGINT},       {"SIGQUIT", SIGQUIT},
    {"SIGILL", SIGILL},       {"SIGTRAP", SIGTRAP},     {"SIGABRT", SIGABRT},
#ifdef SIGEMT
    {"SIGEMT", SIGEMT},
#endif
    {"SIGFPE", SIGFPE},       {"SIGKILL", SIGKILL},     {"SIGBUS", SIGBUS},
    {"SIGSEGV", SIGSEGV},     {"SIGSYS", SIGSYS},       {"SIGPIPE", SIGPIPE},
    {"SIGALRM", SIGALRM},     {"SIGTERM", SIGTERM},     {"SIGURG", SIGURG},
    {"SIGSTOP", SIGSTOP},     {"SIGTSTP", SIGTSTP},     {"SIGCONT", SIGCONT},
    {"SIGCHLD", SIGCHLD},     {"SIGTTIN", SIGTTIN},     {"SIGTTOU", SIGTTOU},
#ifdef SIGIO
    {"SIGIO", SIGIO},
#endif
    {"SIGXCPU", SIGXCPU},     {"SIGXFSZ", SIGXFSZ},     {"SIGVTALRM", SIGVTALRM},
    {"SIGPROF", SIGPROF},
#ifdef SIGWINCH
    {"SIGWINCH", SIGWINCH},
#endif
#ifdef SIGINFO
    {"SIGINFO", SIGINFO},
#endif
    {"SIGUSR1", SIGUSR1},     {"SIGUSR2", SIGUSR2},
#ifdef SIGPWR
    {"SIGPWR", SIGPWR},
#endif
#ifdef SIGSTKFLT
    {"SIGSTKFLT", SIGSTKFLT},
#endif
};

int casl_signal_number(const char *name) {
  size_t i;
  if (name == NULL)
    return CASL_EINVAL;
  for (i = 0; i < sizeof(signal_names) / sizeof(signal_names[0]); i++)
    if (strcmp(signal_names[i].name, name) == 0)
      return signal_names[i].number;
  return CASL_EINVAL;
}
