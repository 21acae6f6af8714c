/*
 * alloc-torture.c -- the counting allocator of the allocation-failure
 * build (CASL_TORTURE; see torture.h).  Built only into c/build-torture.
 * The counter is atomic: libuv's thread pool allocates too.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "internal.h"
#include "torture.h"

#ifndef CASL_TORTURE
#error "alloc-torture.c is only for the allocation-failure build"
#endif

static atomic_uint_fast64_t count;
static atomic_uint_fast64_t fail_at;
static atomic_int family = -1;
static atomic_int injected;
static atomic_int disarmed;
static char where[256];

int casl__torture_point(int fam, const char *what) {
  uint_fast64_t n, at;
  if (atomic_load(&disarmed) || atomic_load(&family) != fam)
    return 0;
  n = atomic_fetch_add(&count, 1) + 1;
  at = atomic_load(&fail_at);
  if (at == 0 || n != at)
    return 0;
  (void)snprintf(where, sizeof(where), "%s", what);
  atomic_store(&injected, 1);
  return 1;
}

/* Counts one allocation; non-zero if it is the one to fail. */
static int should_fail(const char *file, int line) {
  char what[256];
  if (atomic_load(&disarmed) || atomic_load(&family) != CASL_TORTURE_ALLOC)
    return 0;
  if (file != NULL && file[0] != '\0')
    (void)snprintf(what, sizeof(what), "%s:%d", file, line);
  else
    (void)snprintf(what, sizeof(what), "libuv");
  return casl__torture_point(CASL_TORTURE_ALLOC, what);
}

void *casl__torture_malloc(size_t n, const char *file, int line) {
  return should_fail(file, line) ? NULL : malloc(n);
}

void *casl__torture_calloc(size_t n, size_t size, const char *file,
                           int line) {
  return should_fail(file, line) ? NULL : calloc(n, size);
}

void *casl__torture_realloc(void *p, size_t n, const char *file, int line) {
  return should_fail(file, line) ? NULL : realloc(p, n);
}

/* OpenSSL's hooks (it passes where it allocates). */
static void *ossl_malloc(size_t n, const char *file, int line) {
  return casl__torture_malloc(n, file, line);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line) {
  return casl__torture_realloc(p, n, file, line);
}

static void ossl_free(void *p, const char *file, int line) {
  (void)file;
  (void)line;
  free(p);
}

/* libuv's hooks (it does not say where). */
static void *uv_malloc_hook(size_t n) {
  return casl__torture_malloc(n, NULL, 0);
}

/* Not counted, never failed: on Linux libuv 1.44 reallocs only to grow its
 * array of watchers (src/unix/core.c, maybe_resize), which aborts the
 * process when that fails; no caller could handle it.  (Its other two,
 * readlink's buffer and the fd queue of IPC pipes, are not used here.) */
static void *uv_realloc_hook(void *p, size_t n) { return realloc(p, n); }

static void *uv_calloc_hook(size_t n, size_t size) {
  return casl__torture_calloc(n, size, NULL, 0);
}

int casl_torture_install(void) {
  if (CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) != 1)
    return -1;
  if (uv_replace_allocator(uv_malloc_hook, uv_realloc_hook, uv_calloc_hook,
                           free) != 0)
    return -1;
  return 0;
}

void casl_torture_disarm(void) { atomic_store(&disarmed, 1); }

void casl_torture_arm(int fam, uint64_t n) {
  atomic_store(&disarmed, 1);
  atomic_store(&fail_at, 0);
  atomic_store(&injected, 0);
  where[0] = '\0';
  atomic_store(&count, 0);
  atomic_store(&family, fam);
  atomic_store(&fail_at, n);
  atomic_store(&disarmed, 0);
}

uint64_t casl_torture_count(void) { return atomic_load(&count); }

int casl_torture_injected(const char **out) {
  int hit = atomic_load(&injected);
  if (out != NULL)
    *out = hit ? where : NULL;
  return hit;
}
