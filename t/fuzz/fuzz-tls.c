/*
 * fuzz-tls.c -- libFuzzer harness for the TLS filter.
 *
 * Input: byte 0 selects the configuration (see fuzz-common.h: server,
 * server asking for SNI, or client after its ClientHello; options to write,
 * echo, shut down, hit EOF), byte 1 the size of the pieces the rest is fed
 * in (0: all at once), then the bytes a peer would send.
 *
 *   make -C c fuzz-bin
 *   c/build-fuzz/fuzz-tls -max_total_time=60 <scratch dir> t/fuzz/corpus
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz-common.h"

static struct fz_ctxs ctxs;

struct fz_state {
  casl_tls *t;
  int flags;
  int errors;
  char buf[4096];
};

static void on_alloc(void *ud, char **buf, size_t *len) {
  struct fz_state *s = ud;
  *buf = s->buf;
  *len = sizeof(s->buf);
}

static void on_plaintext(void *ud, char *buf, size_t len) {
  struct fz_state *s = ud;
  if ((s->flags & FZ_ECHO) && len > 0)
    (void)casl_tls_write(s->t, buf, len);
}

static void on_ciphertext(void *ud, const char *buf, size_t len) {
  (void)ud;
  (void)buf;
  (void)len;
}

static void on_handshake(void *ud) {
  struct fz_state *s = ud;
  const casl_tls_cert_info *ci;
  (void)casl_tls_protocol(s->t);
  (void)casl_tls_alpn(s->t);
  (void)casl_tls_peer_cert(s->t, &ci);
}

static void on_close_notify(void *ud) { (void)ud; }

static void on_error(void *ud, int code) {
  struct fz_state *s = ud;
  (void)code;
  s->errors++;
  if (s->errors > 1)
    abort(); /* the error callback must fire once */
}

static void on_sni(void *ud, const char *name) {
  struct fz_state *s = ud;
  (void)casl_tls_sni_select(s->t, name != NULL && name[0] == 'c' ? ctxs.child
                                                                  : NULL);
}

static const casl_tls_callbacks cbs = {on_alloc,        on_plaintext,
                                       on_ciphertext,   on_handshake,
                                       on_close_notify, on_error,
                                       on_sni};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fz_make_ctxs(&ctxs);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fz_state s;
  casl_tls_ctx *ctx;
  int role, server;
  size_t step, off, n;
  if (size < 2)
    return 0;
  memset(&s, 0, sizeof(s));
  s.flags = data[0];
  role = data[0] & FZ_ROLE_MASK;
  step = data[1];
  data += 2;
  size -= 2;
  server = role != 3;
  if (role == 2)
    ctx = ctxs.server_ask;
  else if (server)
    ctx = ctxs.server;
  else if (s.flags & FZ_TLS12)
    ctx = ctxs.client12;
  else
    ctx = (s.flags & FZ_VERIFY) ? ctxs.client_verify : ctxs.client;
  if (casl_tls_new(&s.t, ctx, server, server ? NULL : "localhost",
                   server ? NULL : "fuzz", &cbs, &s) != 0)
    abort();
  if (s.flags & FZ_WRITE)
    (void)casl_tls_write(s.t, "GET / HTTP/1.1\r\n\r\n", 18);
  (void)casl_tls_start(s.t);
  for (off = 0; off < size; off += n) {
    n = step == 0 ? size - off : step;
    if (n > size - off)
      n = size - off;
    if (casl_tls_feed(s.t, (const char *)data + off, n) != 0)
      break;
  }
  if (s.flags & FZ_SHUTDOWN)
    (void)casl_tls_shutdown(s.t);
  if (s.flags & FZ_EOF)
    (void)casl_tls_eof(s.t);
  (void)casl_tls_error(s.t);
  casl_tls_free(s.t);
  if (casl_tls_live_count() != 0)
    abort();
  return 0;
}
