/*
 * test-core-tls.c -- the TCP transport carrying the TLS filter (stream-tls.c's
 * glue), in C alone, so ASan, UBSan and valgrind see the whole
 * transport+TLS path.
 */
#include <string.h>
#include <uv.h>

#include "cl-async-ssl.h"
#include "test.h"

#define GUARD 999999
#define MAXC 256
#define SRV 0
#define CLI 1
#define IN0 128 /* ids of accepted connections start here; clients below */

static struct {
  casl_loop *loop;
  casl_server *server;
  casl_tls_ctx *sctx, *cctx;
  casl_tcp *c[MAXC];
  int port;
  int connects[MAXC], errors[MAXC], closed[MAXC], written[MAXC];
  char err[MAXC][256];
  char *rx[MAXC];
  size_t rxlen[MAXC];
  int64_t next_in;
  int guard_fired;
  int echo;            /* accepted connections echo */
  size_t client_want;  /* client closes once it has this much */
  int close_in;        /* 1 connect, 2 read, 3 written */
  int sni_asked;
  char sni_name[256];
  casl_tls_ctx *sni_choice;
  int many;            /* clients of core_tls_many_clients (0: one test
                          connection, the server closes after it) */
  size_t want[MAXC];   /* core_tls_many_clients: client k closes once it
                          has want[k] bytes */
  int clients_closed;
} g;

static void rx_add(int id, const char *b, size_t n) {
  g.rx[id] = realloc(g.rx[id], g.rxlen[id] + n);
  memcpy(g.rx[id] + g.rxlen[id], b, n);
  g.rxlen[id] += n;
}

static void on_timer(int64_t id) {
  if (id == GUARD) {
    g.guard_fired = 1;
    casl_loop_stop(g.loop);
  }
}

static void on_closed(int64_t id) {
  if (id >= 0 && id < MAXC)
    g.closed[id]++;
  if (g.many && id > SRV && id < IN0 && ++g.clients_closed == g.many)
    casl_server_close(g.server);
}

static int64_t on_accept(int64_t sid, casl_tcp *c) {
  int64_t id = g.next_in++;
  (void)sid;
  g.c[id] = c;
  if (!g.many)
    casl_server_close(g.server); /* one connection per test */
  return id;
}

static void on_connect(int64_t id) {
  g.connects[id]++;
  if (g.close_in == 1 && id == CLI)
    casl_tcp_close(g.c[id], 0);
}

static void on_read(int64_t id, const char *b, size_t n) {
  rx_add((int)id, b, n);
  if (id >= IN0 && g.echo)
    ASSERT_OK_VOID(casl_tcp_write(g.c[id], b, n, 0));
  if (id == CLI && (g.close_in == 2 ||
                    (g.client_want && g.rxlen[CLI] >= g.client_want)))
    casl_tcp_close(g.c[id], 0);
  if (id > SRV && id < IN0 && g.want[id] && g.rxlen[id] >= g.want[id])
    casl_tcp_close(g.c[id], 0);
  if (id == CLI && g.close_in == 4) /* drop it: no close_notify */
    casl_tcp_close(g.c[id], 1);
}

static void on_written(int64_t id) {
  g.written[id]++;
  if (g.close_in == 3 && id == CLI)
    casl_tcp_close(g.c[id], 0);
}

static void on_error(int64_t id, int code) {
  g.errors[id] = code;
  snprintf(g.err[id], sizeof(g.err[id]), "%s", casl_tcp_error(g.c[id]));
  /* As the Lisp layer does: graceful on EOF and TLS errors. */
  casl_tcp_close(g.c[id], code == UV_ETIMEDOUT || code == UV_ECONNRESET);
}

static void on_sni(int64_t id, const char *name) {
  g.sni_asked++;
  (void)id;
  snprintf(g.sni_name, sizeof(g.sni_name), "%s", name ? name : "(none)");
  ASSERT_OK_VOID(casl_tcp_sni_select(g.c[id], g.sni_choice));
}

static const casl_callbacks cbs = {
    .timer = on_timer,
    .closed = on_closed,
    .accept = on_accept,
    .connect = on_connect,
    .read = on_read,
    .written = on_written,
    .error = on_error,
    .sni = on_sni};

static int run_bounded(uint64_t ms) {
  return test_run_bounded(g.loop, GUARD, ms, &g.guard_fired);
}

/* A loop, a TLS server (cert NAME) listening, and a client context that
 * trusts the test CA. */
static int setup_server(const char *name, uint64_t handshake_ms, int tls) {
  char chain[256], key[256];
  memset(&g, 0, sizeof(g));
  g.next_in = IN0;
  snprintf(chain, sizeof(chain), "%s-chain.pem", name);
  snprintf(key, sizeof(key), "%s.key", name);
  ASSERT_OK(casl_loop_new(&g.loop, &cbs));
  ASSERT_OK(casl_tls_ctx_new(&g.sctx, CASL_TLS_SERVER));
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_file(g.sctx,
                                                    test_cert_path(chain)));
  ASSERT_OK(casl_tls_ctx_use_private_key_file(g.sctx, test_cert_path(key),
                                              CASL_FILETYPE_PEM, NULL));
  ASSERT_OK(casl_tls_ctx_new(&g.cctx, CASL_TLS_CLIENT));
  ASSERT_OK(casl_tls_ctx_load_verify_locations(g.cctx, test_cert_path("ca.pem"),
                                               NULL));
  ASSERT_OK(casl_server_listen(g.loop, SRV, "127.0.0.1", 0, 0, 0, &g.server));
  if (tls)
    ASSERT_OK(casl_server_set_tls(g.server, g.sctx, handshake_ms));
  g.port = casl_server_port(g.server);
  ASSERT(g.port > 0);
  return 0;
}

static int setup(const char *name, uint64_t handshake_ms) {
  return setup_server(name, handshake_ms, 1);
}

static int connect_tls(const char *name) {
  ASSERT_OK(casl_tcp_connect(g.loop, CLI, "127.0.0.1", g.port, &g.c[CLI]));
  ASSERT_OK(casl_tcp_start_tls(g.c[CLI], g.cctx, 0, name, NULL, 5000));
  return 0;
}

static void teardown(void) {
  int i;
  casl_loop_free(g.loop);
  casl_tls_ctx_unref(g.sctx);
  casl_tls_ctx_unref(g.cctx);
  for (i = 0; i < MAXC; i++)
    free(g.rx[i]);
}

/* ------------------------------------------------------------------------ */

TEST_IMPL(core_tls_echo) {
  casl_stats st;
  ASSERT_OK(setup("server", 5000));
  g.echo = 1;
  g.client_want = 10;
  ASSERT_OK(connect_tls("localhost"));
  /* held until the handshake, then sent in order */
  ASSERT_OK(casl_tcp_write(g.c[CLI], "hello", 5, 0));
  ASSERT_OK(casl_tcp_write(g.c[CLI], " tls!", 5, CASL_WRITE_NOTIFY));
  ASSERT_EQ(casl_tcp_write_queue_size(g.c[CLI]), 10);
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.connects[CLI], 1);
  ASSERT_EQ(g.connects[IN0], 1); /* the server side's handshake */
  ASSERT_EQ(g.rxlen[IN0], 10);
  ASSERT(memcmp(g.rx[IN0], "hello tls!", 10) == 0);
  ASSERT_EQ(g.rxlen[CLI], 10);
  ASSERT_EQ(g.written[CLI], 1);
  ASSERT_EQ(g.errors[IN0], UV_EOF); /* close_notify: a clean end */
  ASSERT_EQ(g.closed[CLI], 1);
  ASSERT_EQ(g.closed[IN0], 1);
  casl_loop_stats(g.loop, &st);
  ASSERT_EQ(st.tls, 0);
  ASSERT_EQ(st.connections_in + st.connections_out, 0);
  teardown();
  return 0;
}

TEST_IMPL(core_tls_big_echo) {
  size_t n = 4u << 20, i;
  char *data = malloc(n);
  ASSERT(data != NULL);
  for (i = 0; i < n; i++)
    data[i] = (char)(i * 31 + (i >> 9));
  /* A generous handshake timeout: valgrind on a busy machine is slow. */
  ASSERT_OK(setup("server", 30000));
  g.echo = 1;
  g.client_want = n;
  ASSERT_OK(connect_tls("localhost"));
  ASSERT_OK(casl_tcp_write(g.c[CLI], data, n, 0));
  ASSERT_OK(run_bounded(30000));
  ASSERT_EQ(g.rxlen[CLI], n);
  ASSERT(memcmp(g.rx[CLI], data, n) == 0);
  free(data);
  teardown();
  return 0;
}

/* Many clients writing at once, so the server queues many reads of
 * different sizes in one loop iteration (more than the loop keeps big read
 * buffers for): every byte comes back intact, in order, and nothing is
 * left. */
TEST_IMPL(core_tls_many_clients) {
  enum { N = 100 };
  size_t sizes[] = {1, 3000, 5000, 20000, 70000, 150000, 300000};
  size_t ns = sizeof(sizes) / sizeof(sizes[0]), maxn = 300000 + N + 1, i;
  char *data = malloc(maxn);
  int k;
  casl_stats st;
  ASSERT(data != NULL);
  for (i = 0; i < maxn; i++)
    data[i] = (char)(i * 7 + (i >> 11));
  ASSERT_OK(setup("server", 60000)); /* valgrind is slow */
  g.echo = 1;
  g.many = N;
  for (k = 1; k <= N; k++) {
    size_t n = sizes[(size_t)k % ns];
    ASSERT_OK(casl_tcp_connect(g.loop, k, "127.0.0.1", g.port, &g.c[k]));
    ASSERT_OK(casl_tcp_start_tls(g.c[k], g.cctx, 0, "localhost", NULL, 60000));
    ASSERT_OK(casl_tcp_write(g.c[k], data + k, n - (size_t)k % 2, 0));
    g.want[k] = n;
  }
  /* half of them write their last byte after the others' data is queued */
  for (k = 1; k <= N; k += 2)
    ASSERT_OK(casl_tcp_write(g.c[k], data + k + sizes[(size_t)k % ns] - 1, 1,
                             0));
  ASSERT_OK(run_bounded(120000));
  for (k = 1; k <= N; k++) {
    size_t n = sizes[(size_t)k % ns];
    ASSERT_EQ(g.rxlen[k], n);
    ASSERT(memcmp(g.rx[k], data + k, n) == 0);
    ASSERT_EQ(g.closed[k], 1);
  }
  casl_loop_stats(g.loop, &st);
  ASSERT_EQ(st.tls, 0);
  ASSERT_EQ(st.connections_in + st.connections_out, 0);
  free(data);
  teardown();
  return 0;
}

TEST_IMPL(core_tls_verify_failure) {
  ASSERT_OK(setup("wrongname", 5000));
  ASSERT_OK(connect_tls("localhost"));
  ASSERT_OK(casl_tcp_write(g.c[CLI], "never", 5, 0));
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.errors[CLI], CASL_EVERIFY);
  ASSERT(strstr(g.err[CLI], "verify") != NULL);
  ASSERT_EQ(g.connects[CLI], 0);
  ASSERT_EQ(g.rxlen[IN0], 0); /* nothing leaked past the failure */
  ASSERT_EQ(g.closed[CLI], 1);
  teardown();
  return 0;
}

TEST_IMPL(core_tls_truncation) {
  ASSERT_OK(setup("server", 5000));
  g.echo = 1;
  g.close_in = 4;
  ASSERT_OK(connect_tls("localhost"));
  ASSERT_OK(casl_tcp_write(g.c[CLI], "x", 1, 0));
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.errors[IN0], CASL_ETRUNCATED);
  ASSERT(strstr(g.err[IN0], "close_notify") != NULL ||
         strstr(g.err[IN0], "unexpected eof") != NULL);
  teardown();
  return 0;
}

TEST_IMPL(core_tls_handshake_timeout) {
  ASSERT_OK(setup("server", 150));
  /* a plain TCP client that never speaks */
  ASSERT_OK(casl_tcp_connect(g.loop, CLI, "127.0.0.1", g.port, &g.c[CLI]));
  ASSERT_OK(run_bounded(5000));
  ASSERT_EQ(g.errors[IN0], UV_ETIMEDOUT);
  ASSERT(strstr(g.err[IN0], "handshake") != NULL);
  ASSERT(g.errors[CLI] == UV_EOF || g.errors[CLI] == UV_ECONNRESET);
  teardown();
  return 0;
}

static int tls_close_in(int where) {
  ASSERT_OK(setup("server", 5000));
  g.echo = 1;
  g.close_in = where;
  ASSERT_OK(connect_tls("localhost"));
  ASSERT_OK(casl_tcp_write(g.c[CLI], "data", 4, CASL_WRITE_NOTIFY));
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.closed[CLI], 1);
  ASSERT_EQ(g.closed[IN0], 1);
  teardown();
  return 0;
}

TEST_IMPL(core_tls_close_in_connect) { return tls_close_in(1); }
TEST_IMPL(core_tls_close_in_read) { return tls_close_in(2); }
TEST_IMPL(core_tls_close_in_written) { return tls_close_in(3); }

/* STARTTLS: a plain exchange, then both sides start TLS on the live
 * connection; the plaintext written just before start_tls goes out first. */
static int starttls_phase;
static void starttls_read(int64_t id, const char *b, size_t n) {
  rx_add((int)id, b, n);
  if (id >= IN0 && starttls_phase == 0) {
    starttls_phase = 1;
    ASSERT_OK_VOID(casl_tcp_write(g.c[id], "GO", 2, 0));
    ASSERT_OK_VOID(casl_tcp_start_tls(g.c[id], g.sctx, 1, NULL, NULL, 5000));
  } else if (id == CLI && starttls_phase == 1) {
    starttls_phase = 2;
    ASSERT_VOID(n == 2 && memcmp(b, "GO", 2) == 0);
    ASSERT_OK_VOID(casl_tcp_start_tls(g.c[CLI], g.cctx, 0, "localhost", NULL,
                                      5000));
    ASSERT_OK_VOID(casl_tcp_write(g.c[CLI], "secret", 6, 0));
  } else if (id >= IN0 && starttls_phase == 2) {
    casl_tcp_close(g.c[id], 0);
  }
}

TEST_IMPL(core_starttls) {
  casl_callbacks c2 = cbs;
  ASSERT_OK(setup_server("server", 5000, 0));
  casl_loop_free(g.loop);
  g.server = NULL;
  c2.read = starttls_read;
  starttls_phase = 0;
  ASSERT_OK(casl_loop_new(&g.loop, &c2));
  ASSERT_OK(casl_server_listen(g.loop, SRV, "127.0.0.1", 0, 0, 0, &g.server));
  g.port = casl_server_port(g.server);
  ASSERT_OK(casl_tcp_connect(g.loop, CLI, "127.0.0.1", g.port, &g.c[CLI]));
  ASSERT_OK(casl_tcp_write(g.c[CLI], "STARTTLS", 8, 0));
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(starttls_phase, 2);
  ASSERT_EQ(g.rxlen[IN0], 14); /* "STARTTLS" in clear, "secret" over TLS */
  ASSERT(memcmp(g.rx[IN0], "STARTTLSsecret", 14) == 0);
  ASSERT_EQ(g.connects[CLI], 2); /* TCP connect, then the handshake */
  ASSERT_EQ(g.errors[CLI], UV_EOF);
  teardown();
  return 0;
}

TEST_IMPL(core_tls_sni_ask) {
  casl_tls_ctx *alpha;
  ASSERT_OK(setup("server", 5000));
  ASSERT_OK(casl_tls_ctx_set_sni_ask(g.sctx, 1));
  ASSERT_OK(casl_tls_ctx_new(&alpha, CASL_TLS_SERVER));
  ASSERT_OK(casl_tls_ctx_use_certificate_chain_file(
      alpha, test_cert_path("alpha-chain.pem")));
  ASSERT_OK(casl_tls_ctx_use_private_key_file(
      alpha, test_cert_path("alpha.key"), CASL_FILETYPE_PEM, NULL));
  g.sni_choice = alpha;
  g.echo = 1;
  g.client_want = 2;
  ASSERT_OK(connect_tls("alpha.test"));
  ASSERT_OK(casl_tcp_write(g.c[CLI], "hi", 2, 0));
  ASSERT_OK(run_bounded(10000));
  ASSERT_EQ(g.sni_asked, 1);
  ASSERT_STR_EQ(g.sni_name, "alpha.test");
  ASSERT_EQ(g.rxlen[CLI], 2); /* verified as alpha.test: the switch worked */
  teardown();
  casl_tls_ctx_unref(alpha);
  return 0;
}
