/*
 * scenarios.h -- what the allocation-failure runner (run-torture.c) runs:
 * each scenario does one piece of work on a fresh loop and says how it
 * ended.
 */
#ifndef CASL_TORTURE_SCENARIOS_H
#define CASL_TORTURE_SCENARIOS_H

/* How a scenario ended. */
#define SCN_SUCCESS 0  /* the work was done, data intact */
#define SCN_REPORTED 1 /* a call returned a negative code or an error
                          callback came: the normal way to fail */
#define SCN_BROKEN 2   /* neither, or the callback contract was broken
                          (said on stderr) */

typedef struct scenario {
  const char *name;
  int (*run)(void); /* SCN_* */
  int fresh;        /* runs in a process where nothing is initialised yet
                       (the others run after OpenSSL's and the library's
                       process-wide set-up, see run-torture.c) */
} scenario;

/* NULL-terminated. */
extern const scenario scenarios[];
/* What the scenarios need from outside (a pin computed with the openssl
 * command), once, after test_certs_setup.  0 or -1. */
int scenarios_prepare(void);

#endif
