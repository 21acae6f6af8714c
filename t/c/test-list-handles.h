/* Tests of the handle types beyond TCP: pipes, signals, processes,
 * pollers, filesystem watchers and requests, reverse DNS.  X(name) per
 * test (see test.h). */
