/*
 * internal.h -- declarations shared by the library's own files.  Nothing
 * here is exported (everything is hidden by -fvisibility=hidden).
 */
#ifndef CASL_INTERNAL_H
#define CASL_INTERNAL_H

#include <errno.h>

#include "cl-async-ssl.h"

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
