#!/bin/sh
# run-lisp-asan.sh -- builds the C library with AddressSanitizer + UBSan
# and runs t/asan/lisp-echo.lisp in SBCL against it (LD_PRELOAD of the
# sanitizer runtimes).  SBCL's own memory is not instrumented; ASan's
# complaint that it cannot unmap SBCL's heap at exit is not about our code
# and is ignored, every other report fails.  Run from the repository root.
set -u
top=$(pwd)
out=$top/c/build-asan/lib
mkdir -p "$out"
cc -std=c11 -D_GNU_SOURCE -fPIC -shared -O1 -g -fno-omit-frame-pointer \
  -fsanitize=address,undefined -fno-sanitize-recover=all \
  $(pkg-config --cflags libuv openssl) -o "$out/libcl-async-ssl.so" \
  $(ls c/*.c | grep -v torture) $(pkg-config --libs libuv openssl) \
  -lpthread || exit 1
certs=$(mktemp -d --suffix=.casl-asan-certs)
trap 'rm -rf "$certs"' EXIT
sh t/make-certs.sh "$certs" >/dev/null
log=$(mktemp)
CL_ASYNC_SSL_LIBRARY="$out/libcl-async-ssl.so" CASL_CERTS="$certs" \
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
LD_PRELOAD="$(cc -print-file-name=libasan.so):$(cc -print-file-name=libubsan.so)" \
  timeout 600 sbcl --noinform --non-interactive --load t/asan/lisp-echo.lisp >"$log" 2>&1
status=$?
grep -v '^;' "$log" | grep -v 'redefin' | grep -v '^$' | grep -v 'unable to unmap' |
  grep -v 'failed to deallocate' | tail -20
if grep -q 'lisp-asan: ok' "$log" &&
   ! grep -v 'unable to unmap\|failed to deallocate' "$log" | grep -q 'ERROR: AddressSanitizer\|runtime error:'; then
  rm -f "$log"
  exit 0
fi
rm -f "$log"
echo "lisp-asan: failed (exit $status)"
exit 1
