/*
 * internal.h -- declarations shared by the library's own files.  Nothing
 * here is exported (everything is hidden by -fvisibility=hidden).
 */
#ifndef CASL_INTERNAL_H
#define CASL_INTERNAL_H

#include <errno.h>
#include <stdlib.h>

#include "cl-async-ssl.h"

/* Every allocation of the library's own goes through these.  In the
 * allocation-failure build (make torture: CASL_TORTURE, alloc-torture.c)
 * they count allocations and can make a chosen one fail; otherwise they
 * are the C library's. */
#ifdef CASL_TORTURE
void *casl__torture_malloc(size_t n, const char *file, int line);
void *casl__torture_calloc(size_t n, size_t size, const char *file, int line);
void *casl__torture_realloc(void *p, size_t n, const char *file, int line);
#define casl__malloc(n) casl__torture_malloc((n), __FILE__, __LINE__)
#define casl__calloc(n, size) casl__torture_calloc((n), (size), __FILE__, __LINE__)
#define casl__realloc(p, n) casl__torture_realloc((p), (n), __FILE__, __LINE__)
#else
static inline void *casl__malloc(size_t n) { return malloc(n); }
static inline void *casl__calloc(size_t n, size_t size) {
  return calloc(n, size);
}
static inline void *casl__realloc(void *p, size_t n) { return realloc(p, n); }
#endif
static inline void casl__free(void *p) { free(p); }

/* Process-wide, once: ignore SIGPIPE and initialise OpenSSL.  Idempotent
 * and thread-safe. */
void casl__global_init(void);

/* Copies src into dst (size len, always NUL-terminated). */
void casl__strlcpy(char *dst, const char *src, size_t len);
/* The negative errno of the system call that just failed (-EIO if errno
 * was not set, so a failure is never taken for a success). */
static inline int casl__errno(void) { return errno > 0 ? -errno : -EIO; }
/* A malloc'd copy of s (NULL for NULL, or when out of memory). */
char *casl__strdup(const char *s);

#endif
