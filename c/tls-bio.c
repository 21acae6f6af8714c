/*
 * tls-bio.c -- the filter's BIO.  OpenSSL reads straight from the buffer
 * given to casl_tls_feed (only what it leaves unread is copied, into the
 * filter's `in'), and its writes are appended to `out', which the filter
 * hands to the `ciphertext' callback in one call per batch.
 */
#include <string.h>

#include "tls-int.h"

static int bio_write(BIO *b, const char *data, int len) {
  casl_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len <= 0)
    return 0;
  if (casl__tbuf_append(&t->out, data, (size_t)len) != 0)
    return -1;
  return len;
}

static int bio_read(BIO *b, char *dst, int len) {
  casl_tls *t = BIO_get_data(b);
  size_t n, avail;
  BIO_clear_retry_flags(b);
  if (len <= 0)
    return 0;
  avail = casl__tbuf_size(&t->in);
  if (avail > 0) {
    n = avail < (size_t)len ? avail : (size_t)len;
    memcpy(dst, t->in.data + t->in.off, n);
    t->in.off += n;
    if (t->in.off == t->in.len)
      casl__tbuf_drained(&t->in, 0);
    return (int)n;
  }
  if (t->ext_len > 0) {
    n = t->ext_len < (size_t)len ? t->ext_len : (size_t)len;
    memcpy(dst, t->ext_ptr, n);
    t->ext_ptr += n;
    t->ext_len -= n;
    return (int)n;
  }
  if (t->eof)
    return 0;
  BIO_set_retry_read(b);
  return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  casl_tls *t = BIO_get_data(b);
  (void)num;
  (void)ptr;
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1;
  case BIO_CTRL_EOF:
    return t != NULL && t->eof && casl__tbuf_size(&t->in) == 0 &&
           t->ext_len == 0;
  case BIO_CTRL_PENDING:
    return t != NULL ? (long)(casl__tbuf_size(&t->in) + t->ext_len) : 0;
  case BIO_CTRL_WPENDING:
    return t != NULL ? (long)casl__tbuf_size(&t->out) : 0;
  default:
    return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *make_bio_method(void) {
  BIO_METHOD *m;
  int type = BIO_get_new_index();
  if (type == -1)
    return NULL;
  m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "casl_tls");
  if (m == NULL)
    return NULL;
  if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
      !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
    BIO_meth_free(m);
    return NULL;
  }
  return m;
}

static pthread_once_t bio_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_method;

static void bio_init(void) { bio_method = make_bio_method(); }

BIO *casl__tls_bio_new(casl_tls *t) {
  BIO *bio;
  (void)pthread_once(&bio_once, bio_init);
  if (bio_method == NULL)
    return NULL;
  bio = BIO_new(bio_method);
  if (bio != NULL)
    BIO_set_data(bio, t);
  return bio;
}
