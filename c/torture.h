/*
 * torture.h -- the allocation-failure build (make torture): every
 * allocation of the library, of OpenSSL and of libuv is counted, and the
 * one a test chooses fails.  Only in builds with CASL_TORTURE
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
/* From now on, counts allocations from 1 and makes allocation number n
 * fail (0: none fails).  Resets what casl_torture_injected reports. */
void casl_torture_arm(uint64_t n);
/* Stops failing (the record of casl_torture_injected and the count are
 * kept as they are), until the next casl_torture_arm. */
void casl_torture_disarm(void);
/* Allocations counted since casl_torture_arm (up to casl_torture_disarm). */
uint64_t casl_torture_count(void);
/* Whether the chosen allocation was reached and failed; *where (if not
 * NULL) gets "file:line" of its caller: one of ours, an OpenSSL source
 * file, or "libuv" (libuv does not say where). */
int casl_torture_injected(const char **where);

#endif
