/*
 * internal.h -- declarations shared by the library's own files.  Nothing
 * here is exported (everything is hidden by -fvisibility=hidden).
 */
#ifndef CASL_INTERNAL_H
#define CASL_INTERNAL_H

#include "cl-async-ssl.h"

/* Process-wide, once: ignore SIGPIPE and initialise OpenSSL.  Idempotent
 * and thread-safe. */
void casl__global_init(void);

/* Copies src into dst (size len, always NUL-terminated). */
void casl__strlcpy(char *dst, const char *src, size_t len);
/* A malloc'd copy of s (NULL for NULL, or when out of memory). */
char *casl__strdup(const char *s);

#endif
