/*
 * test-signal.c -- signal watchers: delivery on the loop, closing from the
 * callback, several watchers of one signal, the saved disposition put back
 * (handler, flags and mask), refused signals, signal numbers by name.
 *
 * Every test runs in its own process (run-tests.c forks), so signals sent
 * to ourselves reach only the test.
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cl-async-ssl.h"
#include "test.h"

#define GUARD_ID 999999

static struct {
  casl_loop *loop;
  casl_signal *watchers[8];
  int delivered[8];
  int last_signum[8];
  int closed[8];
  int close_in_callback;
  int guard_fired;
  int kill_signum; /* sent by the timer with id 7 */
} s;

static volatile sig_atomic_t host_handler_calls;

static void host_handler(int signum, siginfo_t *info, void *ctx) {
  (void)signum;
  (void)info;
  (void)ctx;
  host_handler_calls++;
}

static void on_timer(int64_t id) {
  if (id == GUARD_ID) {
    s.guard_fired = 1;
    casl_loop_stop(s.loop);
    return;
  }
  if (id == 7)
    ASSERT_OK_VOID(kill(getpid(), s.kill_signum));
}

static void on_signal(int64_t id, int signum) {
  s.delivered[id]++;
  s.last_signum[id] = signum;
  if (s.close_in_callback) {
    casl_signal_close(s.watchers[id]);
    casl_signal_close(s.watchers[id]); /* twice: harmless */
  }
}

static void on_closed(int64_t id) {
  if (id >= 0 && id < 8)
    s.closed[id]++;
}

static const casl_callbacks cbs = {
    .timer = on_timer, .closed = on_closed, .signal = on_signal};

static int setup(void) {
  memset(&s, 0, sizeof(s));
  host_handler_calls = 0;
  return casl_loop_new(&s.loop, &cbs);
}

static int run_bounded(uint64_t ms) {
  return test_run_bounded(s.loop, GUARD_ID, ms, &s.guard_fired);
}

/* Sends signum to ourselves from a timer after ms. */
static int send_later(int signum, uint64_t ms) {
  casl_timer *t;
  s.kill_signum = signum;
  if (casl_timer_new(s.loop, 7, &t) != 0)
    return 1;
  return casl_timer_start(t, ms, 0);
}

static int install_host_handler(int signum, struct sigaction *saved) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = host_handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGTERM);
  return sigaction(signum, &sa, saved);
}

/* Whether signum's disposition is exactly install_host_handler's. */
static int is_host_handler(int signum) {
  struct sigaction now;
  if (sigaction(signum, NULL, &now) != 0)
    return 0;
  return now.sa_sigaction == host_handler && (now.sa_flags & SA_SIGINFO) &&
         (now.sa_flags & SA_RESTART) && sigismember(&now.sa_mask, SIGTERM) == 1;
}

/* ------------------------------------------------------------------------ */

TEST_IMPL(signal_number_by_name) {
  ASSERT_EQ(casl_signal_number("SIGINT"), SIGINT);
  ASSERT_EQ(casl_signal_number("SIGTERM"), SIGTERM);
  ASSERT_EQ(casl_signal_number("SIGUSR1"), SIGUSR1);
  ASSERT_EQ(casl_signal_number("SIGUSR2"), SIGUSR2);
  ASSERT_EQ(casl_signal_number("SIGCHLD"), SIGCHLD);
  ASSERT_EQ(casl_signal_number("SIGBUS"), SIGBUS);
  ASSERT_EQ(casl_signal_number("SIGSYS"), SIGSYS);
  ASSERT_EQ(casl_signal_number("SIGWINCH"), SIGWINCH);
#ifndef SIGEMT
  ASSERT_EQ(casl_signal_number("SIGEMT"), CASL_EINVAL);
#endif
#ifndef SIGINFO
  ASSERT_EQ(casl_signal_number("SIGINFO"), CASL_EINVAL);
#endif
  ASSERT_EQ(casl_signal_number("SIGNOPE"), CASL_EINVAL);
  ASSERT_EQ(casl_signal_number("sigint"), CASL_EINVAL);
  ASSERT_EQ(casl_signal_number(NULL), CASL_EINVAL);
  return 0;
}

TEST_IMPL(signal_refused) {
  static const int bad[] = {SIGKILL, SIGSTOP, 0, -1, NSIG, 1000};
  casl_signal *w = (casl_signal *)1;
  casl_stats st;
  size_t i;
  ASSERT_OK(setup());
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ASSERT_EQ(casl_signal_new(s.loop, 1, bad[i], &w), UV_EINVAL);
    ASSERT(w == NULL);
  }
  /* Nothing else is open: the loop ends once the refused handles (closed
   * silently) are gone. */
  ASSERT_OK(casl_loop_run(s.loop));
  casl_loop_stats(s.loop, &st);
  ASSERT_EQ(st.signals, 0);
  ASSERT_EQ(st.handles, 0);
  ASSERT_EQ(s.closed[1], 0); /* refused handles are never reported */
  casl_loop_free(s.loop);
  return 0;
}

TEST_IMPL(signal_delivered_and_closed_in_callback) {
  casl_stats st;
  ASSERT_OK(setup());
  ASSERT_OK(casl_signal_new(s.loop, 1, SIGUSR1, &s.watchers[1]));
  ASSERT(casl_loop_alive(s.loop)); /* a watcher keeps the loop alive */
  casl_loop_stats(s.loop, &st);
  ASSERT_EQ(st.signals, 1);
  s.close_in_callback = 1;
  ASSERT_OK(send_later(SIGUSR1, 10));
  ASSERT_OK(run_bounded(5000)); /* ends by itself once the watcher closed */
  ASSERT_EQ(s.delivered[1], 1);
  ASSERT_EQ(s.last_signum[1], SIGUSR1);
  ASSERT_EQ(s.closed[1], 1);
  casl_loop_stats(s.loop, &st);
  ASSERT_EQ(st.signals, 0);
  casl_loop_free(s.loop);
  return 0;
}

TEST_IMPL(signal_disposition_restored) {
  struct sigaction saved;
  ASSERT_OK(install_host_handler(SIGUSR2, &saved));
  ASSERT_OK(setup());
  ASSERT_OK(casl_signal_new(s.loop, 1, SIGUSR2, &s.watchers[1]));
  ASSERT(!is_host_handler(SIGUSR2)); /* libuv's handler now */
  ASSERT_OK(send_later(SIGUSR2, 10));
  s.close_in_callback = 1;
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(s.delivered[1], 1);
  ASSERT_EQ(host_handler_calls, 0);
  /* Put back, flags and mask too, as soon as the watcher closed. */
  ASSERT(is_host_handler(SIGUSR2));
  ASSERT_OK(raise(SIGUSR2));
  ASSERT_EQ(host_handler_calls, 1);
  /* Teardown with a live watcher restores it as well. */
  ASSERT_OK(casl_signal_new(s.loop, 2, SIGUSR2, &s.watchers[2]));
  ASSERT(!is_host_handler(SIGUSR2));
  casl_loop_free(s.loop);
  ASSERT(is_host_handler(SIGUSR2));
  ASSERT_OK(sigaction(SIGUSR2, &saved, NULL));
  return 0;
}

TEST_IMPL(signal_two_watchers_one_signal) {
  struct sigaction saved;
  casl_loop *other;
  casl_signal *w3;
  ASSERT_OK(install_host_handler(SIGUSR1, &saved));
  ASSERT_OK(setup());
  ASSERT_OK(casl_signal_new(s.loop, 1, SIGUSR1, &s.watchers[1]));
  ASSERT_OK(casl_signal_new(s.loop, 2, SIGUSR1, &s.watchers[2]));
  /* A watcher in another loop of the process counts too. */
  ASSERT_OK(casl_loop_new(&other, &cbs));
  ASSERT_OK(casl_signal_new(other, 3, SIGUSR1, &w3));
  ASSERT_OK(send_later(SIGUSR1, 10));
  casl_handle_ref((casl_handle *)s.watchers[1], 0);
  casl_handle_ref((casl_handle *)s.watchers[2], 0);
  s.close_in_callback = 0;
  /* Unreferenced watchers: the loop ends after the timer and the
   * delivery (dispatched in the same or the next iteration). */
  while (s.delivered[1] == 0 && !s.guard_fired)
    ASSERT(run_bounded(5000) == 0 || s.delivered[1] > 0);
  ASSERT_EQ(s.delivered[1], 1);
  ASSERT(s.delivered[2] >= 1);
  casl_signal_close(s.watchers[1]);
  ASSERT(!is_host_handler(SIGUSR1)); /* two watchers left */
  casl_signal_close(s.watchers[2]);
  ASSERT(!is_host_handler(SIGUSR1)); /* the other loop's is left */
  casl_signal_close(w3);
  ASSERT(is_host_handler(SIGUSR1));
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(s.closed[1], 1);
  ASSERT_EQ(s.closed[2], 1);
  casl_loop_free(other);
  casl_loop_free(s.loop);
  ASSERT(is_host_handler(SIGUSR1));
  ASSERT_OK(sigaction(SIGUSR1, &saved, NULL));
  return 0;
}

TEST_IMPL(signal_untouched_without_watchers) {
  struct sigaction saved;
  casl_timer *t;
  ASSERT_OK(install_host_handler(SIGINT, &saved));
  ASSERT_OK(setup());
  ASSERT_OK(casl_timer_new(s.loop, 1, &t));
  ASSERT_OK(casl_timer_start(t, 1, 0));
  ASSERT_OK(run_bounded(5000));
  ASSERT(is_host_handler(SIGINT));
  casl_loop_free(s.loop);
  ASSERT(is_host_handler(SIGINT));
  ASSERT_OK(sigaction(SIGINT, &saved, NULL));
  return 0;
}

TEST_IMPL(signal_new_watcher_after_close) {
  /* Close and re-watch in one iteration (what replacing a handler does at
   * the C level when the application frees and makes one). */
  struct sigaction saved;
  ASSERT_OK(install_host_handler(SIGUSR1, &saved));
  ASSERT_OK(setup());
  ASSERT_OK(casl_signal_new(s.loop, 1, SIGUSR1, &s.watchers[1]));
  casl_signal_close(s.watchers[1]);
  ASSERT(is_host_handler(SIGUSR1));
  ASSERT_OK(casl_signal_new(s.loop, 2, SIGUSR1, &s.watchers[2]));
  ASSERT(!is_host_handler(SIGUSR1));
  s.close_in_callback = 1;
  ASSERT_OK(send_later(SIGUSR1, 10));
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(s.delivered[1], 0); /* closed: its events are dropped */
  ASSERT_EQ(s.delivered[2], 1);
  ASSERT_EQ(s.closed[1], 1);
  ASSERT_EQ(s.closed[2], 1);
  ASSERT(is_host_handler(SIGUSR1));
  ASSERT_EQ(host_handler_calls, 0);
  casl_loop_free(s.loop);
  ASSERT_OK(sigaction(SIGUSR1, &saved, NULL));
  return 0;
}
