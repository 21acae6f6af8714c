/* Loop and transport tests: X(name) per test (see test.h). */
