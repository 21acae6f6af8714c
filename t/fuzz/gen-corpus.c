/*
 * gen-corpus.c -- writes the fuzzer's seed inputs (see make-corpus.sh):
 * real ClientHellos (TLS 1.3, TLS 1.2, with SNI for the ask/child paths),
 * a server's first flight for the client role (TLS 1.3 and 1.2), and some
 * garbage.  Each file is the fuzzer's two configuration bytes, then data.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz-common.h"

struct cap {
  char *buf;
  size_t len;
};

static void on_alloc(void *ud, char **buf, size_t *len) {
  static char b[16384];
  (void)ud;
  *buf = b;
  *len = sizeof(b);
}
static void on_plaintext(void *ud, char *buf, size_t len) {
  (void)ud;
  (void)buf;
  (void)len;
}
static void on_ciphertext(void *ud, const char *buf, size_t len) {
  struct cap *c = ud;
  c->buf = realloc(c->buf, c->len + len);
  if (c->buf == NULL)
    abort();
  memcpy(c->buf + c->len, buf, len);
  c->len += len;
}
static void on_sni(void *ud, const char *name) {
  (void)ud;
  (void)name;
}

static const casl_tls_callbacks cbs = {on_alloc, on_plaintext, on_ciphertext,
                                       NULL,     NULL,         NULL,
                                       on_sni};

static void save(const char *dir, const char *name, int b0, int b1,
                 const char *data, size_t len) {
  char path[1024];
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "wb");
  if (f == NULL || fputc(b0, f) == EOF || fputc(b1, f) == EOF ||
      fwrite(data, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

/* The ClientHello a client on ctx sends for name. */
static struct cap client_hello(casl_tls_ctx *ctx, const char *name) {
  struct cap c = {NULL, 0};
  casl_tls *t;
  if (casl_tls_new(&t, ctx, 0, name, NULL, &cbs, &c) != 0 ||
      casl_tls_start(t) != 0)
    abort();
  casl_tls_free(t);
  return c;
}

/* The first flight of a server on ctx answering hello. */
static struct cap server_flight(casl_tls_ctx *ctx, struct cap hello) {
  struct cap c = {NULL, 0};
  casl_tls *t;
  if (casl_tls_new(&t, ctx, 1, NULL, NULL, &cbs, &c) != 0 ||
      casl_tls_feed(t, hello.buf, hello.len) != 0)
    abort();
  casl_tls_free(t);
  return c;
}

int main(int argc, char **argv) {
  struct fz_ctxs z;
  struct cap ch13, ch12, chsni, sf13, sf12;
  static const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  char junk[512];
  size_t i;
  if (argc != 2) {
    fprintf(stderr, "usage: gen-corpus DIR\n");
    return 2;
  }
  fz_make_ctxs(&z);
  ch13 = client_hello(z.client, "localhost");
  ch12 = client_hello(z.client12, "localhost");
  chsni = client_hello(z.client, "a.child.test");
  sf13 = server_flight(z.server, ch13);
  sf12 = server_flight(z.server, ch12);
  save(argv[1], "server-clienthello-tls13", 0, 0, ch13.buf, ch13.len);
  save(argv[1], "server-clienthello-tls13-bytes", 0 | FZ_EOF, 1, ch13.buf,
       ch13.len);
  save(argv[1], "server-clienthello-tls12", 1 | FZ_WRITE, 0, ch12.buf,
       ch12.len);
  save(argv[1], "server-ask-clienthello-sni", 2, 0, chsni.buf, chsni.len);
  save(argv[1], "server-clienthello-child", 0 | FZ_SHUTDOWN, 7, chsni.buf,
       chsni.len);
  save(argv[1], "client-serverflight-tls13", 3, 0, sf13.buf, sf13.len);
  save(argv[1], "client-serverflight-tls12", 3 | FZ_TLS12 | FZ_VERIFY, 0,
       sf12.buf, sf12.len);
  save(argv[1], "server-http", 0, 0, http, sizeof(http) - 1);
  for (i = 0; i < sizeof(junk); i++)
    junk[i] = (char)(i * 37 + 11);
  junk[0] = 0x16;
  junk[1] = 0x03;
  junk[2] = 0x01;
  save(argv[1], "server-junk", 0 | FZ_EOF, 0, junk, sizeof(junk));
  save(argv[1], "client-junk", 3 | FZ_ECHO, 3, junk, sizeof(junk));
  save(argv[1], "server-alert", 0, 0, "\x15\x03\x03\x00\x02\x02\x28", 7);
  free(ch13.buf);
  free(ch12.buf);
  free(chsni.buf);
  free(sf13.buf);
  free(sf12.buf);
  return 0;
}
