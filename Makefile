# cl-async-ssl -- asynchronous TCP and TLS for Common Lisp.
#
#   make demo        install what is missing, build, run the demo
#   make test        install what is missing, build, run the C tests and
#                    the FiveAM suites; last line "N passed, M failed"
#   make asan        the C tests, then a Lisp-driven echo, under AddressSanitizer
#                    + UBSan
#   make valgrind    the C tests under valgrind (no errors, no definite leaks)
#   make fuzz        the TLS filter fuzzer for FUZZ_SECONDS (default 60)
#   make torture     every allocation failing in turn (ASan + UBSan + LSan);
#                    TORTURE_RUNS=R samples R per scenario (CI)
#   make lint        cppcheck and clang-tidy (analyzer and bugprone checks) over c/
#   make scan        sslscan and testssl.sh against a default tcp-ssl-server
#   make stress      hostile peers, leaks and 10 000 connections against a
#                    default tcp-ssl-server, a killed reuse-port worker, and
#                    a 10-minute soak of 4 loops (STRESS_SIZE=short for CI)
#   make bench-filter  the in-memory TLS filter benchmark
#   make clean

SHELL := /bin/sh
FUZZ_SECONDS ?= 60
TORTURE_RUNS ?= 0
STRESS_SIZE ?= full

# Debian packages every target needs (installed when missing).
DEPS = make gcc pkg-config sbcl cl-cffi cl-fiveam cl-babel cl-alexandria \
       cl-bordeaux-threads cl-trivial-gray-streams libuv1-dev libssl-dev openssl \
       ca-certificates
ASAN_DEPS = libasan8 libubsan1
VALGRIND_DEPS = valgrind
FUZZ_DEPS = clang libclang-rt-14-dev

.PHONY: all deps build test demo asan valgrind fuzz torture bench-filter stress scan lint clean

all: build

deps:
	@sh t/install-deps.sh $(DEPS)

build: deps
	$(MAKE) -C c all tests

test: build
	@sh t/run-all.sh

demo: build
	sbcl --noinform --non-interactive --load lisp/examples/demo.lisp

asan: deps
	@sh t/install-deps.sh $(ASAN_DEPS)
	$(MAKE) -C c MODE=asan tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 c/build-asan/run-tests
	sh t/asan/run-lisp-asan.sh

valgrind: deps
	@sh t/install-deps.sh $(VALGRIND_DEPS)
	$(MAKE) -C c MODE=debug tests
	CASL_TEST_SCALE=$${CASL_TEST_SCALE:-0.05} valgrind -q --error-exitcode=1 \
	  --leak-check=full --errors-for-leak-kinds=definite --show-possibly-lost=no \
	  --suppressions=t/c/valgrind.supp c/build-debug/run-tests --timeout 900

fuzz: deps
	@sh t/install-deps.sh $(FUZZ_DEPS)
	$(MAKE) -C c fuzz-bin
	sh t/fuzz/run-fuzz.sh $(FUZZ_SECONDS)

# Every allocation failing in turn (t/torture/run-torture.c); TORTURE_RUNS=0
# runs them all.
torture: deps
	@sh t/install-deps.sh $(ASAN_DEPS)
	$(MAKE) -C c MODE=torture torture-bin
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  c/build-torture/run-torture --runs $(TORTURE_RUNS)

LINT_SRCS = $(filter-out %torture.c,$(wildcard c/*.c))
LINT_CHECKS = -*,clang-analyzer-*,bugprone-*,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-bugprone-narrowing-conversions,-bugprone-implicit-widening-of-multiplication-result
lint: deps
	@sh t/install-deps.sh cppcheck clang-tidy
	cppcheck --enable=warning,performance,portability --quiet --std=c11 \
	  -I c $$(pkg-config --cflags-only-I libuv openssl) $(LINT_SRCS)
	cppcheck --enable=warning,performance,portability --quiet --std=c11 \
	  -DCASL_TORTURE -I c $$(pkg-config --cflags-only-I libuv openssl) c/*torture.c
	clang-tidy --quiet -checks='$(LINT_CHECKS)' $(LINT_SRCS) \
	  -- -std=c11 -D_GNU_SOURCE -Ic $$(pkg-config --cflags libuv openssl)
	clang-tidy --quiet -checks='$(LINT_CHECKS)' c/*torture.c \
	  -- -std=c11 -D_GNU_SOURCE -DCASL_TORTURE -Ic $$(pkg-config --cflags libuv openssl)
	@! grep -nE '(^|[^_[:alnum:]>.])(malloc|calloc|realloc|free|strdup|strndup)\(' \
	  $(LINT_SRCS) || { echo "lint: allocate with casl__malloc & co (c/internal.h)"; exit 1; }

scan: build
	@sh t/install-deps.sh testssl.sh sslscan
	sh t/scan/run-scan.sh

stress: build
	sh t/stress/run-stress.sh $(STRESS_SIZE)

bench-filter: deps
	$(MAKE) -C c bench-filter-bin
	sh t/bench/bench-filter.sh

clean:
	$(MAKE) -C c clean

# make bench: our TLS echo server and client against Node's tls and cl+ssl
# (t/bench/run-bench.sh; BENCH_N, BENCH_DURATION, ... as described there).
# Builds the shared tlsload load generator into t/bench/build/.
BENCH_DEPS = gnuplot-nox cl-plus-ssl cl-usocket cl-flexi-streams cl-trivial-garbage
TLSLOAD_DIR ?= $(abspath $(CURDIR)/../shared/tools/tlsload)

.PHONY: bench
bench: build
	@sh t/install-deps.sh $(BENCH_DEPS)
	@test -f $(TLSLOAD_DIR)/tlsload.c || { echo "bench: no tlsload source in $(TLSLOAD_DIR) (set TLSLOAD_DIR)"; exit 1; }
	@mkdir -p t/bench/build
	$(MAKE) -s -C t/bench/build -f $(TLSLOAD_DIR)/Makefile VPATH=$(TLSLOAD_DIR) tlsload
	bash t/bench/run-bench.sh
