/*
 * test-core.c -- the loop and the TCP transport, without TLS.
 *
 * Callbacks carry only ids, so each test keeps its state in the globals
 * below (every test runs in its own process).
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cl-async-ssl.h"
#include "test.h"

#define GUARD_ID 999999 /* a timer that stops a test that hangs */

enum { MAXH = 64 };

static struct {
  casl_loop *loop;
  casl_timer *timers[MAXH];
  casl_tcp *conns[MAXH];
  casl_server *server;
  int server_port;
  int timer_fired[MAXH];
  int timer_order[MAXH];
  int norder;
  int notified;
  int closed[MAXH + 1];
  int nclosed;
  int connects[MAXH];
  int errors[MAXH];
  int accepts;
  int written[MAXH];
  char *rx[MAXH];
  size_t rxlen[MAXH];
  size_t rxcap[MAXH];
  char errtext[MAXH][256];
  int dns_status;
  int dns_n;
  int dns_fams;
  int guard_fired;
  int close_in; /* which callback closes its handle (test_close_in_cb) */
  size_t echo_target;
  int echo_server; /* server connections echo what they read */
  int server_close_on_accept;
  int accepts_by[4];     /* per server id (ids 0..3) */
  casl_server *servers[4];
  int accept_target;     /* close everything once this many arrived */
} g;

static void rx_append(int id, const char *buf, size_t len) {
  if (g.rxlen[id] + len > g.rxcap[id]) {
    size_t cap = g.rxcap[id] ? g.rxcap[id] : 4096;
    while (cap < g.rxlen[id] + len)
      cap *= 2;
    g.rx[id] = realloc(g.rx[id], cap);
    g.rxcap[id] = cap;
  }
  memcpy(g.rx[id] + g.rxlen[id], buf, len);
  g.rxlen[id] += len;
}

enum {
  CLOSE_NONE,
  CLOSE_IN_CONNECT,
  CLOSE_IN_READ,
  CLOSE_IN_WRITTEN,
  CLOSE_IN_ERROR,
  CLOSE_IN_ACCEPT,
  CLOSE_IN_TIMER,
  CLOSE_IN_NOTIFY,
  CLOSE_FORCE_IN_READ
};

static void on_timer(int64_t id) {
  if (id == GUARD_ID) {
    g.guard_fired = 1;
    casl_loop_stop(g.loop);
    return;
  }
  g.timer_fired[id]++;
  g.timer_order[g.norder++] = (int)id;
  if (g.close_in == CLOSE_IN_TIMER) {
    casl_timer_close(g.timers[id]);
    casl_timer_close(g.timers[id]); /* twice: harmless */
  }
}

static casl_notifier *notifier;
static void on_notify(int64_t id) {
  (void)id;
  g.notified++;
  if (g.close_in == CLOSE_IN_NOTIFY || g.notified >= 1)
    casl_notifier_close(notifier);
}

static void on_closed(int64_t id) {
  if (id == GUARD_ID)
    return;
  if (id >= 0 && id <= MAXH)
    g.closed[id]++;
  g.nclosed++;
}

static int64_t next_in_id = 20;
static int64_t on_accept(int64_t server_id, casl_tcp *c) {
  int64_t id = next_in_id++;
  (void)server_id;
  g.accepts++;
  g.conns[id] = c;
  if (server_id >= 0 && server_id < 4)
    g.accepts_by[server_id]++;
  if (g.accept_target > 0 && g.accepts == g.accept_target) {
    int i;
    for (i = 0; i < 4; i++)
      casl_server_close(g.servers[i]);
    for (i = 1; i < MAXH; i++)
      if (g.conns[i] != NULL && (int64_t)i != id)
        casl_tcp_close(g.conns[i], 1);
    casl_tcp_close(c, 1);
  }
  if (g.server_close_on_accept)
    casl_server_close(g.server);
  if (g.close_in == CLOSE_IN_ACCEPT) {
    casl_tcp_close(c, 0);
  }
  return id;
}

static void on_connect(int64_t id) {
  g.connects[id]++;
  if (g.close_in == CLOSE_IN_CONNECT && id < 20)
    casl_tcp_close(g.conns[id], 0);
}

static void on_read(int64_t id, const char *buf, size_t len) {
  rx_append((int)id, buf, len);
  if (id >= 20 && g.echo_server)
    ASSERT_OK_VOID(casl_tcp_write(g.conns[id], buf, len, 0));
  if (id >= 20 && g.close_in == CLOSE_IN_ERROR)
    casl_tcp_close(g.conns[id], 0); /* the client sees EOF */
  if (g.close_in == CLOSE_IN_READ && id < 20)
    casl_tcp_close(g.conns[id], 0);
  if (g.close_in == CLOSE_FORCE_IN_READ && id < 20) {
    casl_tcp_close(g.conns[id], 1);
    casl_tcp_close(g.conns[id], 0);
  }
  if (id < 20 && g.echo_target && g.rxlen[id] >= g.echo_target)
    casl_tcp_close(g.conns[id], 0);
}

static void on_written(int64_t id) {
  g.written[id]++;
  if (g.close_in == CLOSE_IN_WRITTEN)
    casl_tcp_close(g.conns[id], 0);
}

static void on_error(int64_t id, int code) {
  if (id < MAXH)
    g.errors[id] = code;
  if (id > 0 && id < MAXH)
    snprintf(g.errtext[id], sizeof(g.errtext[id]), "%s",
             casl_tcp_error(g.conns[id]));
  if (id == 0) { /* the server */
    return;
  }
  /* What the Lisp layer does: close on any error (gracefully on EOF). */
  casl_tcp_close(g.conns[id], code == UV_EOF ? 0 : 1);
  if (g.close_in == CLOSE_IN_ERROR)
    casl_tcp_close(g.conns[id], 0);
}

static void on_dns(int64_t id, int status, int n, const char *const *addrs,
                   const int *fams) {
  int i;
  (void)id;
  g.dns_status = status;
  g.dns_n = n;
  for (i = 0; i < n; i++) {
    ASSERT_VOID(addrs[i] != NULL && addrs[i][0] != '\0');
    g.dns_fams |= fams[i];
  }
}

static const casl_callbacks cbs = {
    .timer = on_timer,
    .notify = on_notify,
    .closed = on_closed,
    .accept = on_accept,
    .connect = on_connect,
    .read = on_read,
    .written = on_written,
    .error = on_error,
    .dns = on_dns};

/* Runs the loop with a guard timer; returns non-zero if the guard fired. */
static int run_bounded(uint64_t ms) {
  return test_run_bounded(g.loop, GUARD_ID, ms, &g.guard_fired);
}

static int setup(void) {
  memset(&g, 0, sizeof(g));
  next_in_id = 20;
  return casl_loop_new(&g.loop, &cbs);
}

static int start_server(const char *addr) {
  int rc = casl_server_listen(g.loop, 0, addr, 0, 0, 0, &g.server);
  if (rc != 0)
    return rc;
  g.server_port = casl_server_port(g.server);
  return g.server_port > 0 ? 0 : 1;
}

static void teardown(void) {
  int i;
  casl_loop_free(g.loop);
  for (i = 0; i < MAXH; i++)
    free(g.rx[i]);
}

/* ------------------------------------------------------------------------ */

TEST_IMPL(core_timers_fire_in_order) {
  int i;
  ASSERT_OK(setup());
  for (i = 1; i <= 3; i++) {
    ASSERT_OK(casl_timer_new(g.loop, i, &g.timers[i]));
  }
  ASSERT_OK(casl_timer_start(g.timers[3], 30, 0));
  ASSERT_OK(casl_timer_start(g.timers[1], 0, 0));
  ASSERT_OK(casl_timer_start(g.timers[2], 0, 0)); /* equal: after 1 */
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.norder, 3);
  ASSERT_EQ(g.timer_order[0], 1);
  ASSERT_EQ(g.timer_order[1], 2);
  ASSERT_EQ(g.timer_order[2], 3);
  for (i = 1; i <= 3; i++)
    casl_timer_close(g.timers[i]);
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.closed[1] + g.closed[2] + g.closed[3], 3);
  teardown();
  return 0;
}

TEST_IMPL(core_timer_repeat_and_unref) {
  ASSERT_OK(setup());
  ASSERT_OK(casl_timer_new(g.loop, 1, &g.timers[1]));
  ASSERT_OK(casl_timer_new(g.loop, 2, &g.timers[2]));
  ASSERT_OK(casl_timer_start(g.timers[1], 5, 5));
  ASSERT_OK(casl_timer_start(g.timers[2], 60, 0));
  /* An unref'd repeating timer does not keep the loop alive: the loop ends
   * when timer 2 has fired. */
  casl_handle_ref((casl_handle *)g.timers[1], 0);
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.timer_fired[2], 1);
  ASSERT(g.timer_fired[1] >= 3);
  teardown();
  return 0;
}

TEST_IMPL(core_timer_close_in_callback) {
  ASSERT_OK(setup());
  g.close_in = CLOSE_IN_TIMER;
  ASSERT_OK(casl_timer_new(g.loop, 1, &g.timers[1]));
  ASSERT_OK(casl_timer_start(g.timers[1], 1, 1));
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.timer_fired[1], 1);
  ASSERT_EQ(g.closed[1], 1);
  teardown();
  return 0;
}

static void *send_later(void *arg) {
  usleep(50000);
  if (casl_notifier_send(arg) != 0)
    abort();
  return NULL;
}

TEST_IMPL(core_notifier_from_thread) {
  pthread_t th;
  ASSERT_OK(setup());
  g.close_in = CLOSE_IN_NOTIFY;
  ASSERT_OK(casl_notifier_new(g.loop, 7, &notifier));
  ASSERT_OK(pthread_create(&th, NULL, send_later, notifier));
  ASSERT_OK(run_bounded(5000));
  ASSERT_OK(pthread_join(th, NULL));
  ASSERT_EQ(g.notified, 1);
  ASSERT_EQ(g.closed[7], 1);
  teardown();
  return 0;
}

/* Client 1 sends "hello" (queued before the connection), the server
 * echoes, the client closes once it has it all. */
static int echo_round(const char *bind, const char *host) {
  ASSERT_OK(setup());
  g.echo_server = 1;
  g.echo_target = 5;
  ASSERT_OK(start_server(bind));
  ASSERT_OK(casl_tcp_connect(g.loop, 1, host, g.server_port, &g.conns[1]));
  ASSERT_OK(casl_tcp_write(g.conns[1], "hel", 3, 0));
  ASSERT_OK(casl_tcp_write(g.conns[1], "lo", 2, CASL_WRITE_NOTIFY));
  ASSERT_EQ(casl_tcp_write_queue_size(g.conns[1]), 5);
  g.server_close_on_accept = 1;
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.connects[1], 1);
  ASSERT_EQ(g.accepts, 1);
  ASSERT_EQ(g.written[1], 1);
  ASSERT_EQ(g.rxlen[20], 5);
  ASSERT(memcmp(g.rx[20], "hello", 5) == 0);
  ASSERT_EQ(g.rxlen[1], 5);
  ASSERT(memcmp(g.rx[1], "hello", 5) == 0);
  ASSERT_EQ(g.errors[20], UV_EOF); /* the server saw the client's FIN */
  ASSERT_EQ(g.closed[1], 1);
  ASSERT_EQ(g.closed[20], 1);
  ASSERT_EQ(g.closed[0], 1);
  teardown();
  return 0;
}

TEST_IMPL(core_tcp_echo_ipv4) { return echo_round("127.0.0.1", "127.0.0.1"); }
TEST_IMPL(core_tcp_echo_ipv6) { return echo_round("::1", "::1"); }
/* "localhost" may resolve to ::1 first: the connection must fall back to
 * 127.0.0.1 where the server listens. */
TEST_IMPL(core_tcp_echo_dns_fallback) {
  return echo_round("127.0.0.1", "localhost");
}

TEST_IMPL(core_tcp_refused) {
  int port;
  ASSERT_OK(setup());
  ASSERT_OK(start_server("127.0.0.1"));
  port = g.server_port;
  casl_server_close(g.server);
  ASSERT_OK(run_bounded(5000));
  ASSERT_OK(casl_tcp_connect(g.loop, 1, "127.0.0.1", port, &g.conns[1]));
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.errors[1], UV_ECONNREFUSED);
  ASSERT(strstr(g.errtext[1], "refused") != NULL);
  ASSERT_EQ(g.closed[1], 1);
  teardown();
  return 0;
}

TEST_IMPL(core_tcp_dns_failure) {
  ASSERT_OK(setup());
  ASSERT_OK(casl_tcp_connect(g.loop, 1, "no-such-host.invalid", 80,
                             &g.conns[1]));
  ASSERT_OK(run_bounded(20000));
  ASSERT(g.errors[1] == UV_EAI_NONAME || g.errors[1] == UV_EAI_AGAIN ||
         g.errors[1] == UV_EAI_NODATA || g.errors[1] == UV_EAI_FAIL);
  ASSERT_EQ(g.closed[1], 1);
  teardown();
  return 0;
}

TEST_IMPL(core_dns_lookup) {
  ASSERT_OK(setup());
  g.dns_status = 1;
  ASSERT_OK(casl_dns_lookup(g.loop, 5, "localhost", CASL_AF_UNSPEC));
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.dns_status, 0);
  ASSERT(g.dns_n >= 1);
  ASSERT(g.dns_fams & (CASL_AF_INET | CASL_AF_INET6));
  ASSERT_EQ(casl_dns_lookup(g.loop, 6, "", CASL_AF_UNSPEC), CASL_EINVAL);
  teardown();
  return 0;
}

TEST_IMPL(core_address_in_use) {
  casl_server *second = NULL;
  ASSERT_OK(setup());
  ASSERT_OK(start_server("127.0.0.1"));
  ASSERT_EQ(casl_server_listen(g.loop, 1, "127.0.0.1", g.server_port, 0, 0,
                               &second),
            UV_EADDRINUSE);
  ASSERT(second == NULL);
  ASSERT_EQ(casl_server_listen(g.loop, 1, "not-an-address", 0, 0, 0, &second),
            CASL_EINVAL);
  casl_server_close(g.server);
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.closed[0], 1);
  ASSERT_EQ(g.closed[1], 0); /* the failed server is never reported */
  teardown();
  return 0;
}

/* Two servers on one port with SO_REUSEPORT: both accept connections; without
 * the flag the second bind fails. */
TEST_IMPL(core_reuse_port) {
  int i, port;
  ASSERT_OK(setup());
  ASSERT_OK(casl_server_listen(g.loop, 1, "127.0.0.1", 0, 0,
                               CASL_LISTEN_REUSEPORT, &g.servers[1]));
  port = casl_server_port(g.servers[1]);
  ASSERT(port > 0);
  ASSERT_OK(casl_server_listen(g.loop, 2, "127.0.0.1", port, 0,
                               CASL_LISTEN_REUSEPORT, &g.servers[2]));
  ASSERT_EQ(casl_server_listen(g.loop, 3, "127.0.0.1", port, 0, 0,
                               &g.servers[3]),
            UV_EADDRINUSE);
  ASSERT_EQ(casl_server_listen(g.loop, 3, "127.0.0.1", 0, 0, 8, &g.servers[3]),
            CASL_EINVAL);
  g.servers[3] = NULL;
  g.accept_target = 16;
  for (i = 1; i <= 16; i++)
    ASSERT_OK(casl_tcp_connect(g.loop, i, "127.0.0.1", port, &g.conns[i]));
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.accepts, 16);
  ASSERT(g.accepts_by[1] > 0);
  ASSERT(g.accepts_by[2] > 0);
  teardown();
  return 0;
}

/* 1 MiB through an echo server, written in one call. */
TEST_IMPL(core_tcp_big_echo) {
  size_t n = 1 << 20, i;
  char *data = malloc(n);
  ASSERT(data != NULL);
  for (i = 0; i < n; i++)
    data[i] = (char)(i * 7 + (i >> 11));
  ASSERT_OK(setup());
  g.echo_server = 1;
  g.echo_target = n;
  ASSERT_OK(start_server("127.0.0.1"));
  ASSERT_OK(casl_tcp_connect(g.loop, 1, "127.0.0.1", g.server_port,
                             &g.conns[1]));
  ASSERT_OK(casl_tcp_write(g.conns[1], data, n, CASL_WRITE_NOTIFY));
  g.server_close_on_accept = 1;
  ASSERT_OK(run_bounded(30000));
  ASSERT_EQ(g.rxlen[1], n);
  ASSERT(memcmp(g.rx[1], data, n) == 0);
  ASSERT_EQ(g.written[1], 1);
  free(data);
  teardown();
  return 0;
}

TEST_IMPL(core_read_timeout) {
  ASSERT_OK(setup());
  ASSERT_OK(start_server("127.0.0.1"));
  ASSERT_OK(casl_tcp_connect(g.loop, 1, "127.0.0.1", g.server_port,
                             &g.conns[1]));
  ASSERT_OK(casl_tcp_set_timeouts(g.conns[1], 100, 0));
  ASSERT_OK(casl_tcp_set_timeouts(g.conns[1], 150, 0)); /* again: fine */
  g.server_close_on_accept = 1;
  ASSERT_OK(run_bounded(3000));
  ASSERT_EQ(g.errors[1], UV_ETIMEDOUT);
  ASSERT(strstr(g.errtext[1], "timed out") != NULL);
  ASSERT_EQ(g.closed[1], 1);
  ASSERT_EQ(g.closed[20], 1); /* it saw the client go */
  teardown();
  return 0;
}

/* The client sends and half-closes; the server replies from its read
 * callback and closes on EOF: the reply must still arrive. */
static void eof_on_read(int64_t id, const char *buf, size_t len) {
  rx_append((int)id, buf, len);
}

TEST_IMPL(core_eof_flushes_queued_writes) {
  casl_callbacks c2 = cbs;
  ASSERT_OK(setup());
  casl_loop_free(g.loop);
  c2.read = eof_on_read;
  ASSERT_OK(casl_loop_new(&g.loop, &c2));
  ASSERT_OK(start_server("127.0.0.1"));
  ASSERT_OK(casl_tcp_connect(g.loop, 1, "127.0.0.1", g.server_port,
                             &g.conns[1]));
  ASSERT_OK(casl_tcp_write(g.conns[1], "ping", 4, 0));
  casl_tcp_close(g.conns[1], 0); /* graceful: data, then FIN */
  g.server_close_on_accept = 1;
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.rxlen[20], 4);
  ASSERT_EQ(g.errors[20], UV_EOF);
  ASSERT_EQ(g.closed[1], 1);
  ASSERT_EQ(g.closed[20], 1);
  teardown();
  return 0;
}

/* Closing from inside each callback type is safe (ASan checks the rest). */
static int close_in(int where) {
  ASSERT_OK(setup());
  g.close_in = where;
  g.echo_server = 1;
  ASSERT_OK(start_server("127.0.0.1"));
  ASSERT_OK(casl_tcp_connect(g.loop, 1, "127.0.0.1", g.server_port,
                             &g.conns[1]));
  ASSERT_OK(casl_tcp_write(g.conns[1], "data", 4, CASL_WRITE_NOTIFY));
  g.server_close_on_accept = 1;
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.closed[1], 1);
  if (where != CLOSE_IN_ACCEPT)
    ASSERT_EQ(g.closed[20], 1);
  teardown();
  return 0;
}

TEST_IMPL(core_close_in_connect) { return close_in(CLOSE_IN_CONNECT); }
TEST_IMPL(core_close_in_read) { return close_in(CLOSE_IN_READ); }
TEST_IMPL(core_close_in_written) { return close_in(CLOSE_IN_WRITTEN); }
TEST_IMPL(core_close_in_error) { return close_in(CLOSE_IN_ERROR); }
TEST_IMPL(core_close_in_accept) { return close_in(CLOSE_IN_ACCEPT); }
TEST_IMPL(core_force_close_in_read) { return close_in(CLOSE_FORCE_IN_READ); }

/* Pausing reading stops read events; resuming delivers what waited. */
static int paused_reads;
/* The client pauses after the echo of "hi"; the server then sends
 * "second", which must wait until the client resumes (timer 3); once it
 * has arrived both sides close.  Driven by the events, not by time, so a
 * slow machine (valgrind) changes nothing. */
static void pause_on_read(int64_t id, const char *buf, size_t len) {
  rx_append((int)id, buf, len);
  if (id >= 20 && g.rxlen[id] == 2) /* echo "hi" */
    ASSERT_OK_VOID(casl_tcp_write(g.conns[id], buf, len, 0));
  if (id == 1 && paused_reads++ == 0 && g.rxlen[1] == 2) {
    casl_tcp_read_stop(g.conns[1]);
    ASSERT_OK_VOID(casl_tcp_write(g.conns[20], "second", 6, 0));
    ASSERT_OK_VOID(casl_timer_start(g.timers[3], 200, 0));
  }
  if (id == 1 && g.rxlen[1] == 8) {
    casl_tcp_close(g.conns[1], 0);
    casl_tcp_close(g.conns[20], 0);
  }
}
static void pause_on_timer(int64_t id) {
  if (id == GUARD_ID) {
    g.guard_fired = 1;
    casl_loop_stop(g.loop);
    return;
  }
  if (id == 3) { /* check nothing arrived while paused, resume */
    g.timer_fired[3] = (int)g.rxlen[1];
    casl_tcp_read_start(g.conns[1]);
    casl_timer_close(g.timers[3]);
  }
}

TEST_IMPL(core_pause_resume_reading) {
  casl_callbacks c2 = cbs;
  ASSERT_OK(setup());
  casl_loop_free(g.loop);
  c2.read = pause_on_read;
  c2.timer = pause_on_timer;
  ASSERT_OK(casl_loop_new(&g.loop, &c2));
  paused_reads = 0;
  ASSERT_OK(start_server("127.0.0.1"));
  ASSERT_OK(casl_tcp_connect(g.loop, 1, "127.0.0.1", g.server_port,
                             &g.conns[1]));
  ASSERT_OK(casl_tcp_write(g.conns[1], "hi", 2, 0));
  g.echo_server = 1;
  ASSERT_OK(casl_timer_new(g.loop, 3, &g.timers[3]));
  g.server_close_on_accept = 1;
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.timer_fired[3], 2); /* "hi" only, while paused */
  ASSERT_EQ(g.rxlen[1], 8);       /* then "second" */
  ASSERT(memcmp(g.rx[1], "hisecond", 8) == 0);
  teardown();
  return 0;
}

/* casl_loop_stop from a callback, then casl_loop_free with live handles:
 * everything is released (ASan/valgrind check the leaks). */
static void stop_on_connect(int64_t id) {
  g.connects[id]++;
  casl_loop_stop(g.loop);
}

TEST_IMPL(core_stop_and_free_with_live_handles) {
  casl_callbacks c2 = cbs;
  ASSERT_OK(setup());
  casl_loop_free(g.loop);
  c2.connect = stop_on_connect;
  ASSERT_OK(casl_loop_new(&g.loop, &c2));
  ASSERT_OK(start_server("127.0.0.1"));
  ASSERT_OK(casl_tcp_connect(g.loop, 1, "127.0.0.1", g.server_port,
                             &g.conns[1]));
  ASSERT_OK(casl_tcp_write(g.conns[1], "queued", 6, 0));
  ASSERT_OK(casl_timer_new(g.loop, 2, &g.timers[2]));
  ASSERT_OK(casl_timer_start(g.timers[2], 100000, 0));
  ASSERT_OK(casl_dns_lookup(g.loop, 3, "localhost", CASL_AF_UNSPEC));
  ASSERT_EQ(casl_loop_run(g.loop), 1); /* stopped with handles left */
  ASSERT_EQ(g.connects[1], 1);
  ASSERT_EQ(g.timer_fired[2], 0);
  teardown();
  return 0;
}

TEST_IMPL(core_stats_count_handles) {
  casl_stats st;
  ASSERT_OK(setup());
  g.echo_server = 1;
  g.echo_target = 2;
  ASSERT_OK(start_server("127.0.0.1"));
  ASSERT_OK(casl_tcp_connect(g.loop, 1, "127.0.0.1", g.server_port,
                             &g.conns[1]));
  ASSERT_OK(casl_tcp_write(g.conns[1], "ab", 2, 0));
  casl_loop_stats(g.loop, &st);
  ASSERT_EQ(st.servers, 1);
  ASSERT_EQ(st.connections_out, 1);
  ASSERT_EQ(st.write_queue, 2);
  g.server_close_on_accept = 1;
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(casl_loop_run(g.loop), 0); /* lets the guard timer close */
  casl_loop_stats(g.loop, &st);
  ASSERT_EQ(st.servers, 0);
  ASSERT_EQ(st.connections_out, 0);
  ASSERT_EQ(st.connections_in, 0);
  ASSERT_EQ(st.handles, 0);
  ASSERT_EQ(st.write_queue, 0);
  teardown();
  return 0;
}

TEST_IMPL(core_error_texts) {
  ASSERT_STR_EQ(casl_err_name(CASL_ETRUNCATED), "ETRUNCATED");
  ASSERT_STR_EQ(casl_err_name(UV_ECONNREFUSED), "ECONNREFUSED");
  ASSERT(strstr(casl_strerror(UV_ECONNREFUSED), "refused") != NULL);
  ASSERT(strstr(casl_strerror(CASL_EVERIFY), "verif") != NULL);
  ASSERT(strstr(casl_libuv_version(), "1.") == casl_libuv_version());
  ASSERT(strstr(casl_openssl_version(), "OpenSSL") != NULL);
  return 0;
}

/* A 0 ms timer started from a callback fires even though no I/O follows
 * (regression: libuv used to block in poll with the event still queued). */
static void restart_on_timer(int64_t id) {
  g.timer_fired[id]++;
  if (id == 1)
    ASSERT_OK_VOID(casl_timer_start(g.timers[2], 0, 0));
  if (id == 2) {
    casl_timer_close(g.timers[1]);
    casl_timer_close(g.timers[2]);
  }
}

TEST_IMPL(core_timer_started_in_callback_fires) {
  casl_callbacks c2 = cbs;
  ASSERT_OK(setup());
  casl_loop_free(g.loop);
  c2.timer = restart_on_timer;
  ASSERT_OK(casl_loop_new(&g.loop, &c2));
  ASSERT_OK(casl_timer_new(g.loop, 1, &g.timers[1]));
  ASSERT_OK(casl_timer_new(g.loop, 2, &g.timers[2]));
  ASSERT_OK(casl_timer_start(g.timers[1], 0, 0));
  ASSERT_OK(casl_loop_run(g.loop)); /* ends by itself: no guard needed */
  ASSERT_EQ(g.timer_fired[1], 1);
  ASSERT_EQ(g.timer_fired[2], 1);
  teardown();
  return 0;
}
