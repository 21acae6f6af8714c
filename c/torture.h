/*
 * torture.h -- the allocation-failure build (make torture): every
 * allocation of the library, of OpenSSL and of libuv is counted, and the
 * one a test chooses fails; or every libuv call (and callback status) of
 * the library is, and the chosen one gives an error.  Only in builds with CASL_TORTURE
 * (c/build-torture); the shared library never has it.
 */
#ifndef CASL_TORTURE_H
#define CASL_TORTURE_H

#include <stddef.h>
#include <stdint.h>

/* Routes OpenSSL's allocations (CRYPTO_set_mem_functions) and libuv's
 * (uv_replace_allocator) through the counter (libuv's reallocs excepted:
 * see alloc-torture.c).  Call it first in main,
 * before anything allocates through either.  0, or -1 if either library
 * refused (it already allocated). */
int casl_torture_install(void);
/* What fails: allocations (alloc-torture.c), or libuv calls and the
 * statuses their callbacks bring (uv-torture.c). */
#define CASL_TORTURE_ALLOC 0
#define CASL_TORTURE_CALLS 1
/* From now on, counts the points of family (CASL_TORTURE_*) from 1 and
 * makes point number n fail (0: none fails).  Resets what
 * casl_torture_injected reports. */
void casl_torture_arm(int family, uint64_t n);
/* Stops failing (the record of casl_torture_injected and the count are
 * kept as they are), until the next casl_torture_arm. */
void casl_torture_disarm(void);
/* Points counted since casl_torture_arm (up to casl_torture_disarm). */
uint64_t casl_torture_count(void);
/* Whether the chosen point was reached and failed; *where (if not NULL)
 * gets what it was: for an allocation "file:line" of its caller (one of
 * ours, an OpenSSL source file, or "libuv", which does not say where),
 * for a call its name and the error given ("uv_write: ENOBUFS"). */
int casl_torture_injected(const char **where);
/* For alloc-torture.c and uv-torture.c: counts a point of family, named
 * what; non-zero if it is the one to fail. */
int casl__torture_point(int family, const char *what);

#endif
