/* TLS engine tests: X(name) per test (see test.h). */
