/*
 * scenarios.c -- the work the allocation-failure runner repeats: each
 * scenario makes a fresh loop, does one thing the way an application
 * does (closing what it made when something fails), frees everything and
 * says how it ended.  Wherever an allocation fails, the run must end with
 * an error the library reported (a negative return, an `error' event, a
 * negative status) or with the work done; a callback for a handle after
 * its `closed', a second `closed', or a run that ends with neither is
 * SCN_BROKEN.  Hangs, crashes and leaks are caught by the runner.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cl-async-ssl.h"
#include "scenarios.h"
#include "test.h"
#include "torture.h"

/* Ids. */
enum { GUARD = 1, TIMER, NOTIFIER, DNS, RDNS, SERVER, CLIENT, ACCEPTED,
       SIGNAL, PROCESS, CHILD_OUT, POLLER, MKDTEMP, MAXID };

/* tls-full: the second connection's ids. */
#define CLIENT2 TIMER
#define ACCEPTED2 NOTIFIER

#define ECHO_BYTES (64 * 1024)
#define GUARD_MS 20000

static struct {
  casl_loop *loop;
  int closed[MAXID];
  int broken, reported, guard_fired, guarded;
  casl_server *server;
  casl_tcp *tcp[MAXID];
  casl_timer *timer, *guard;
  casl_notifier *notifier;
  casl_signal *signal;
  casl_poll *poller;
  int fired, notified, signalled, polled;
  int dns_ok, rdns_ok, mkdtemp_ok, exit_ok, exited;
  size_t total; /* bytes the client sends: whole copies of payload */
  size_t rxlen;
  int rx_bad;
  char out[64];
  size_t outlen;
  int pollfds[2];
  /* tls-full */
  int full;             /* two connections, the second resuming */
  casl_tls_ctx *cctx;   /* the client's context, for the second */
  int port, resumed, inspected, keylog_lines;
} w;

/* tls-full's server public key pin, computed by scenarios_prepare. */
static unsigned char server_pin[32];
static int have_pin;

static char payload[ECHO_BYTES];

static int connect_tls(int64_t id, casl_tls_ctx *cctx);

static void broken(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "  broken: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  w.broken = 1;
}

/* The library reported a failure (rc < 0): remember it, return it. */
static int failed(int rc) {
  if (rc < 0)
    w.reported = 1;
  return rc < 0;
}

/* Every callback about a handle starts here: 0 if the handle may still
 * be spoken of. */
static int live(int64_t id, const char *what) {
  if (id <= 0 || id >= MAXID) {
    broken("%s for unknown id %lld", what, (long long)id);
    return 0;
  }
  if (w.closed[id]) {
    broken("%s for id %lld after its `closed'", what, (long long)id);
    return 0;
  }
  return 1;
}

static void close_server(void) {
  if (w.server != NULL && !w.closed[SERVER]) {
    casl_server_close(w.server);
    w.server = NULL;
  }
}

static void close_tcp(int64_t id, int force) {
  if (w.tcp[id] != NULL)
    casl_tcp_close(w.tcp[id], force);
}

static void on_timer(int64_t id) {
  if (id == GUARD) {
    char what[2048];
    w.guard_fired = 1;
    (void)casl_loop_describe(w.loop, what, sizeof(what));
    fprintf(stderr, "  open at the guard:\n%s", what);
    casl_loop_stop(w.loop);
    return;
  }
  if (!live(id, "timer"))
    return;
  w.fired++;
  casl_timer_close(w.timer);
}

static void on_notify(int64_t id) {
  if (!live(id, "notify"))
    return;
  w.notified++;
  casl_notifier_close(w.notifier);
}

static void on_closed(int64_t id) {
  if (id == GUARD)
    return;
  if (!live(id, "closed"))
    return;
  w.closed[id] = 1;
  if (id == SERVER)
    w.server = NULL;
  if (id == TIMER)
    w.timer = NULL;
  if (id == NOTIFIER)
    w.notifier = NULL;
  if (id == SIGNAL)
    w.signal = NULL;
  if (id == POLLER)
    w.poller = NULL;
  if (id < MAXID)
    w.tcp[id] = NULL;
  if (w.full && id == CLIENT && w.rxlen == w.total && !w.rx_bad &&
      w.server != NULL) {
    if (connect_tls(CLIENT2, w.cctx) != 0)
      close_server();
  }
}

static int64_t on_accept(int64_t sid, casl_tcp *c) {
  if (!live(sid, "accept"))
    return 0;
  if (w.full && (w.tcp[ACCEPTED] != NULL || w.closed[ACCEPTED])) {
    if (w.tcp[ACCEPTED2] != NULL || w.closed[ACCEPTED2]) {
      broken("a third connection accepted");
      return 0;
    }
    w.tcp[ACCEPTED2] = c;
    close_server();
    return ACCEPTED2;
  }
  if (w.tcp[ACCEPTED] != NULL || w.closed[ACCEPTED]) {
    broken("a second connection accepted");
    return 0;
  }
  w.tcp[ACCEPTED] = c;
  if (!w.full)
    close_server(); /* one connection */
  return ACCEPTED;
}

/* What an application looks at once connected: the peer's chain, the
 * protocol, ALPN, the staple. */
static void inspect(int64_t id) {
  casl_tls *t = casl_tcp_tls(w.tcp[id]);
  const casl_tls_cert_info *cert, *chain;
  size_t n = 0, len = 0;
  if (t == NULL) {
    broken("connected without a filter");
    return;
  }
  if (failed(casl_tls_peer_cert(t, &cert)) ||
      failed(casl_tls_peer_chain(t, &chain, &n)))
    return;
  if (casl_tls_protocol(t) == NULL || casl_tls_cipher(t) == NULL)
    broken("connected without a protocol or cipher");
  if (casl_tls_alpn(t) == NULL || strcmp(casl_tls_alpn(t), "h2") != 0)
    broken("ALPN not h2");
  if ((id == CLIENT || id == CLIENT2) && casl_tls_ocsp_response(t, &len) == NULL &&
      !casl_tls_session_reused(t))
    broken("no OCSP staple");
  w.inspected++;
}

static void on_connect(int64_t id) {
  if (!live(id, "connect"))
    return;
  if (w.full && (id == CLIENT || id == CLIENT2 || id == ACCEPTED ||
                 id == ACCEPTED2))
    inspect(id);
  if (w.full && id == CLIENT2) {
    w.resumed = casl_tls_session_reused(casl_tcp_tls(w.tcp[CLIENT2]));
    close_tcp(CLIENT2, 0);
    return;
  }
  if (id == CLIENT) {
    size_t sent;
    for (sent = 0; sent < w.total; sent += sizeof(payload)) {
      if (failed(casl_tcp_write(w.tcp[CLIENT], payload, sizeof(payload), 0))) {
        close_tcp(CLIENT, 1);
        break;
      }
    }
  }
}

static void on_read(int64_t id, const char *buf, size_t len) {
  if (!live(id, "read"))
    return;
  if (id == ACCEPTED) {
    if (failed(casl_tcp_write(w.tcp[ACCEPTED], buf, len, 0)))
      close_tcp(ACCEPTED, 1);
  } else if (id == CLIENT) {
    size_t i;
    if (w.rxlen + len > w.total)
      w.rx_bad = 1;
    for (i = 0; i < len && !w.rx_bad; i++)
      if (buf[i] != payload[(w.rxlen + i) % sizeof(payload)])
        w.rx_bad = 1;
    w.rxlen += len;
    if (w.rxlen >= w.total)
      close_tcp(CLIENT, 0);
  } else if (id == CHILD_OUT) {
    size_t n = len < sizeof(w.out) - w.outlen ? len : sizeof(w.out) - w.outlen;
    memcpy(w.out + w.outlen, buf, n);
    w.outlen += n;
  }
}

static void on_written(int64_t id) { (void)live(id, "written"); }

static void on_error(int64_t id, int code) {
  if (!live(id, "error"))
    return;
  /* The peer's end is news only to the client, which closes first. */
  if (code != UV_EOF || id == CLIENT || id == CLIENT2)
    w.reported = 1;
  if (id == SERVER) {
    close_server();
    return;
  }
  /* As the Lisp layer does: graceful after the peer's end, else at once;
   * an application whose connection failed stops listening too. */
  close_tcp(id, code != UV_EOF);
  if (code != UV_EOF || id == CLIENT || id == CLIENT2)
    close_server();
}

static void on_dns(int64_t id, int status, int n, const char *const *addrs,
                   const int *families) {
  (void)families;
  if (id != DNS) {
    broken("dns for id %lld", (long long)id);
    return;
  }
  if (status < 0)
    w.reported = 1;
  else if (n >= 1 && strcmp(addrs[0], "127.0.0.1") == 0)
    w.dns_ok = 1;
  else
    broken("dns: status 0 but %d addresses", n);
}

static void on_nameinfo(int64_t id, int status, const char *host,
                        const char *service) {
  (void)service;
  if (id != RDNS) {
    broken("nameinfo for id %lld", (long long)id);
    return;
  }
  if (status < 0)
    w.reported = 1;
  else if (host != NULL && host[0] != '\0')
    w.rdns_ok = 1;
  else
    broken("nameinfo: status 0 without a host");
}

static void on_signal(int64_t id, int signum) {
  if (!live(id, "signal"))
    return;
  if (signum == SIGUSR1)
    w.signalled = 1;
  casl_signal_close(w.signal);
}

static void on_exit_cb(int64_t id, int64_t status, int term) {
  if (!live(id, "exit"))
    return;
  if (w.exited++)
    broken("a second exit event");
  w.exit_ok = status == 0 && term == 0;
}

static void on_poll(int64_t id, int status, int events) {
  if (!live(id, "poll"))
    return;
  if (status < 0)
    w.reported = 1;
  else if (events & CASL_POLL_READABLE)
    w.polled = 1;
  casl_poll_close(w.poller);
}

static void on_fs(int64_t id, int status, const char *path) {
  if (id != MKDTEMP) {
    broken("fs for id %lld", (long long)id);
    return;
  }
  if (status < 0) {
    w.reported = 1;
  } else if (path != NULL && rmdir(path) == 0) {
    w.mkdtemp_ok = 1;
  } else {
    broken("mkdtemp: status 0 but no directory %s", path ? path : "(null)");
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
    .dns = on_dns,
    .signal = on_signal,
    .exit = on_exit_cb,
    .poll = on_poll,
    .fs = on_fs,
    .nameinfo = on_nameinfo};

/* A fresh loop with an unreferenced guard timer that stops a loop that
 * does not end; non-zero (reported) if that failed. */
static int begin(void) {
  size_t i;
  memset(&w, 0, sizeof(w));
  w.pollfds[0] = w.pollfds[1] = -1;
  for (i = 0; i < sizeof(payload); i++)
    payload[i] = (char)('a' + (i * 7 + i / 251) % 26);
  w.total = sizeof(payload);
  if (failed(casl_loop_new(&w.loop, &cbs)))
    return -1;
  if (failed(casl_timer_new(w.loop, GUARD, &w.guard)))
    return -1;
  casl_handle_ref((casl_handle *)w.guard, 0);
  if (failed(casl_timer_start(w.guard, GUARD_MS, 0)))
    return -1;
  w.guarded = 1;
  return 0;
}

static int echo_done(void);
static int tcp_echo_start(void);

/* Runs the loop until it ends (bounded by the guard timer begin made);
 * 0 if it ended by itself. */
static int run_guarded(void) {
  if (casl_loop_run(w.loop) < 0)
    w.reported = 1;
  return w.guard_fired ? -1 : 0;
}

/* After whatever failed, the same loop must still serve: with nothing
 * failing any more, a TCP echo on it has to work. */
static void still_serves(void) {
  static const int ids[] = {SERVER, CLIENT, ACCEPTED};
  size_t i;
  casl_torture_disarm();
  for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
    w.tcp[ids[i]] = NULL;
    w.closed[ids[i]] = 0;
  }
  w.server = NULL;
  w.full = 0;
  w.rxlen = 0;
  w.total = sizeof(payload);
  w.rx_bad = 0;
  if (tcp_echo_start() != 0 || run_guarded() != 0 || !echo_done())
    broken("the loop does not serve a new connection after the failure");
}

/* Runs the loop, checks the work with check (NULL: it failed before the
 * loop ran), checks that the loop still serves, frees it, and says how
 * the scenario ended. */
static int finish_with(int (*check)(void)) {
  int success = 0;
  if (w.loop != NULL) {
    if (run_guarded() != 0)
      broken("the loop did not end (%d s)", GUARD_MS / 1000);
    success = check != NULL && check();
    if (w.guarded && !w.broken && !w.guard_fired)
      still_serves();
    if (w.guard != NULL && !w.guard_fired)
      casl_timer_close(w.guard);
    casl_loop_free(w.loop);
    w.loop = NULL;
  }
  if (w.broken)
    return SCN_BROKEN;
  if (!success && !w.reported) {
    broken("ended without the work done and without an error");
    return SCN_BROKEN;
  }
  return success ? SCN_SUCCESS : SCN_REPORTED;
}

/* The scenario failed before its loop ran (success is always 0). */
static int finish(int success) {
  (void)success;
  return finish_with(NULL);
}

static int timer_done(void) { return w.fired == 1 && w.closed[TIMER]; }

static int scn_timer(void) {
  if (begin())
    return finish(0);
  if (failed(casl_timer_new(w.loop, TIMER, &w.timer)))
    return finish(0);
  if (failed(casl_timer_start(w.timer, 1, 0)))
    casl_timer_close(w.timer);
  return finish_with(timer_done);
}

static int notify_done(void) { return w.notified && w.closed[NOTIFIER]; }

static int scn_notifier(void) {
  if (begin())
    return finish(0);
  if (failed(casl_notifier_new(w.loop, NOTIFIER, &w.notifier)))
    return finish(0);
  if (failed(casl_notifier_send(w.notifier)))
    casl_notifier_close(w.notifier);
  return finish_with(notify_done);
}

static int dns_done(void) { return w.dns_ok; }

static int scn_dns(void) {
  if (begin())
    return finish(0);
  (void)failed(casl_dns_lookup(w.loop, DNS, "localhost", CASL_AF_INET));
  return finish_with(dns_done);
}

static int rdns_done(void) { return w.rdns_ok; }

static int scn_reverse_dns(void) {
  if (begin())
    return finish(0);
  (void)failed(casl_dns_reverse(w.loop, RDNS, "127.0.0.1"));
  return finish_with(rdns_done);
}

/* The echo scenarios: the client sends ECHO_BYTES, the server echoes,
 * the client checks them and closes; the server closes on the EOF. */
static int echo_done(void) {
  return !w.rx_bad && w.rxlen == w.total && w.closed[CLIENT] &&
         w.closed[ACCEPTED] && w.closed[SERVER];
}

/* A TCP server and a client that starts the echo; non-zero (reported)
 * if that failed, with what was made closed. */
static int tcp_echo_start(void) {
  int port;
  if (failed(casl_server_listen(w.loop, SERVER, "127.0.0.1", 0, 0, 0,
                                &w.server)))
    return -1;
  port = casl_server_port(w.server);
  if (failed(port) ||
      failed(casl_tcp_connect(w.loop, CLIENT, "127.0.0.1", port,
                              &w.tcp[CLIENT]))) {
    close_server();
    return -1;
  }
  return 0;
}

static int scn_tcp_echo(void) {
  if (begin())
    return finish(0);
  (void)tcp_echo_start();
  return finish_with(echo_done);
}

/* 8 MiB each way: more than the sockets hold, so writes wait for the
 * kernel (uv_write after a partial uv_try_write) and reads pause. */
static int scn_tcp_big_echo(void) {
  if (begin())
    return finish(0);
  w.total = 128 * sizeof(payload);
  (void)tcp_echo_start();
  return finish_with(echo_done);
}

static int tls_contexts(casl_tls_ctx **sctx, casl_tls_ctx **cctx) {
  *sctx = *cctx = NULL;
  if (failed(casl_tls_ctx_new(sctx, CASL_TLS_SERVER)) ||
      failed(casl_tls_ctx_use_certificate_chain_file(
          *sctx, test_cert_path("server-chain.pem"))) ||
      failed(casl_tls_ctx_use_private_key_file(
          *sctx, test_cert_path("server.key"), CASL_FILETYPE_PEM, NULL)) ||
      failed(casl_tls_ctx_new(cctx, CASL_TLS_CLIENT)) ||
      failed(casl_tls_ctx_load_verify_locations(
          *cctx, test_cert_path("ca.pem"), NULL)))
    return -1;
  return 0;
}

/* A TLS client connection id to w.port; non-zero (reported) if that
 * failed, with what was made closed. */
static int connect_tls(int64_t id, casl_tls_ctx *cctx) {
  if (failed(casl_tcp_connect(w.loop, id, "127.0.0.1", w.port, &w.tcp[id])))
    return -1;
  if (failed(casl_tcp_start_tls(w.tcp[id], cctx, 0, "localhost", "session",
                                5000))) {
    close_tcp(id, 1);
    return -1;
  }
  return 0;
}

/* Listens with TLS on sctx and connects the first client on cctx. */
static void tls_start(casl_tls_ctx *sctx, casl_tls_ctx *cctx) {
  if (failed(casl_server_listen(w.loop, SERVER, "127.0.0.1", 0, 0, 0,
                                &w.server)))
    return;
  if (failed(casl_server_set_tls(w.server, sctx, 5000)) ||
      failed(w.port = casl_server_port(w.server)) ||
      connect_tls(CLIENT, cctx) != 0)
    close_server();
}

static int scn_tls_echo(void) {
  casl_tls_ctx *sctx, *cctx;
  int rc;
  if (begin())
    return finish(0);
  if (tls_contexts(&sctx, &cctx) == 0)
    tls_start(sctx, cctx);
  rc = finish_with(echo_done);
  casl_tls_ctx_unref(sctx);
  casl_tls_ctx_unref(cctx);
  return rc;
}

static void on_keylog(void *ud, const char *line) {
  (void)ud;
  if (line != NULL && line[0] != '\0')
    w.keylog_lines++;
}

/* Resumption is best effort: when a session could not be kept (an
 * allocation failed), the second connection makes a full handshake, and
 * that is no error. */
static int full_done(void) {
  return echo_done() && w.closed[CLIENT2] && w.closed[ACCEPTED2] &&
         (w.resumed || casl_torture_injected(NULL)) && w.inspected == 4 &&
         w.keylog_lines > 0;
}

/* Most of what a production server and client set: client certificates,
 * ALPN, an OCSP staple and its check, a CRL, a pin, shared ticket keys,
 * key logging; an echo, then a second connection that resumes. */
static int scn_tls_full(void) {
  static const unsigned char alpn[] = "\x02h2\x08http/1.1";
  unsigned char keys[CASL_TICKET_KEY_LEN];
  casl_tls_ctx *sctx, *cctx;
  char *ocsp = NULL;
  size_t ocsp_len = 0;
  int rc;
  if (begin())
    return finish(0);
  w.full = 1;
  memset(keys, 7, sizeof(keys));
  ocsp = test_read_file(test_cert_path("ocsp-good.der"), &ocsp_len);
  if (ocsp == NULL || !have_pin) {
    broken("test files");
    free(ocsp);
    return finish(0);
  }
  if (tls_contexts(&sctx, &cctx) != 0 ||
      failed(casl_tls_ctx_set_verify(sctx, CASL_VERIFY_REQUIRE)) ||
      failed(casl_tls_ctx_load_verify_locations(sctx, test_cert_path("ca.pem"),
                                                NULL)) ||
      failed(casl_tls_ctx_set_alpn(sctx, alpn, sizeof(alpn) - 1)) ||
      failed(casl_tls_ctx_set_ocsp_response(
          sctx, (const unsigned char *)ocsp, ocsp_len)) ||
      failed(casl_tls_ctx_set_ticket_keys(sctx, keys, 1)) ||
      failed(casl_tls_ctx_set_keylog_cb(sctx, on_keylog, NULL)) ||
      failed(casl_tls_ctx_use_certificate_chain_file(
          cctx, test_cert_path("client-chain.pem"))) ||
      failed(casl_tls_ctx_use_private_key_file(
          cctx, test_cert_path("client.key"), CASL_FILETYPE_PEM, NULL)) ||
      failed(casl_tls_ctx_set_alpn(cctx, alpn, sizeof(alpn) - 1)) ||
      failed(casl_tls_ctx_set_ocsp(cctx, CASL_OCSP_ASK)) ||
      failed(casl_tls_ctx_load_crl_file(cctx, test_cert_path("int-crl.pem"))) ||
      failed(casl_tls_ctx_set_pins(cctx, server_pin, 1))) {
    /* made no handle yet */
  } else {
    w.cctx = cctx;
    tls_start(sctx, cctx);
  }
  rc = finish_with(full_done);
  free(ocsp);
  casl_tls_ctx_unref(sctx);
  casl_tls_ctx_unref(cctx);
  return rc;
}

static int scn_pipe_echo(void) {
  char path[64];
  int rc;
  snprintf(path, sizeof(path), "/tmp/casl-torture-%ld.sock", (long)getpid());
  (void)unlink(path);
  if (begin())
    return finish(0);
  if (failed(casl_pipe_listen(w.loop, SERVER, path, 0, &w.server)))
    return finish(0);
  if (failed(casl_pipe_connect(w.loop, CLIENT, path, &w.tcp[CLIENT])))
    close_server();
  rc = finish_with(echo_done);
  if (access(path, F_OK) == 0) {
    broken("the server's socket file %s is left", path);
    (void)unlink(path);
    rc = SCN_BROKEN;
  }
  return rc;
}

static int signal_done(void) { return w.signalled && w.closed[SIGNAL]; }

static int scn_signal(void) {
  if (begin())
    return finish(0);
  if (failed(casl_signal_new(w.loop, SIGNAL, SIGUSR1, &w.signal)))
    return finish(0);
  /* Only with a watcher: SIGUSR1's default action ends the process. */
  if (raise(SIGUSR1) != 0) {
    broken("raise");
    casl_signal_close(w.signal);
  }
  return finish_with(signal_done);
}

static int process_done(void) {
  return w.exit_ok && w.outlen == 5 && memcmp(w.out, "hello", 5) == 0 &&
         w.closed[PROCESS] && w.closed[CHILD_OUT];
}

static int scn_process(void) {
  static const char *const args[] = {"sh", "-c", "printf hello", NULL};
  casl_stdio stdio[3];
  casl_spawn_options opts;
  casl_process *p;
  if (begin())
    return finish(0);
  memset(stdio, 0, sizeof(stdio));
  stdio[0].kind = CASL_STDIO_IGNORE;
  stdio[1].kind = CASL_STDIO_PIPE;
  stdio[1].id = CHILD_OUT;
  stdio[2].kind = CASL_STDIO_IGNORE;
  memset(&opts, 0, sizeof(opts));
  opts.file = "/bin/sh";
  opts.args = args;
  opts.stdio_count = 3;
  opts.stdio = stdio;
  if (!failed(casl_process_spawn(w.loop, PROCESS, &opts, &p)))
    w.tcp[CHILD_OUT] = stdio[1].pipe;
  return finish_with(process_done);
}

static int poll_done(void) { return w.polled && w.closed[POLLER]; }

static int scn_poll(void) {
  int rc;
  if (begin())
    return finish(0);
  if (pipe(w.pollfds) != 0 || write(w.pollfds[1], "x", 1) != 1) {
    broken("pipe");
    return finish(0);
  }
  (void)failed(casl_poll_new(w.loop, POLLER, w.pollfds[0], CASL_POLL_READABLE,
                             &w.poller));
  rc = finish_with(poll_done);
  close(w.pollfds[0]);
  close(w.pollfds[1]);
  return rc;
}

static int mkdtemp_done(void) { return w.mkdtemp_ok; }

static int scn_mkdtemp(void) {
  char tmpl[1024];
  if (begin())
    return finish(0);
  if (test_tmp_template(tmpl, sizeof(tmpl), "casl-torture") == NULL)
    broken("mkdtemp: $TMPDIR too long");
  else
    (void)failed(casl_fs_mkdtemp(w.loop, MKDTEMP, tmpl));
  return finish_with(mkdtemp_done);
}

/* The process-wide set-up: the library's and OpenSSL's initialisation,
 * and a TLS context's first use. */
static int init_made;

static int init_done(void) { return init_made; }

static int scn_init(void) {
  casl_tls_ctx *sctx, *cctx;
  if (begin())
    return finish(0);
  init_made = tls_contexts(&sctx, &cctx) == 0;
  casl_tls_ctx_unref(sctx);
  casl_tls_ctx_unref(cctx);
  return finish_with(init_done);
}

const scenario scenarios[] = {
    {"init", scn_init, 1},
    {"timer", scn_timer, 0},
    {"notifier", scn_notifier, 0},
    {"dns", scn_dns, 0},
    {"reverse-dns", scn_reverse_dns, 0},
    {"tcp-echo", scn_tcp_echo, 0},
    {"tcp-big-echo", scn_tcp_big_echo, 0},
    {"tls-echo", scn_tls_echo, 0},
    {"tls-full", scn_tls_full, 0},
    {"pipe-echo", scn_pipe_echo, 0},
    {"signal", scn_signal, 0},
    {"process", scn_process, 0},
    {"poll", scn_poll, 0},
    {"mkdtemp", scn_mkdtemp, 0},
    {NULL, NULL, 0}};

int scenarios_prepare(void) {
  if (test_spki_sha256("server.pem", server_pin) != 0)
    return -1;
  have_pin = 1;
  return 0;
}
