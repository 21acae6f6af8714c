#!/bin/sh
# run-stress.sh [short|full] -- the hostile-peer, leak, concurrency,
# killed-worker and soak suite (t/stress/stress.lisp) against default
# tcp-ssl-servers.
# Run from the repository root after the library is built (make stress).
set -eu
size=${1:-full}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build="$here/build"
mkdir -p "$build"
tlsload_src="$top/../shared/tools/tlsload/tlsload.c"
if [ ! -x "$build/tlsload" ] || [ "$tlsload_src" -nt "$build/tlsload" ]; then
  cc -O2 -o "$build/tlsload" "$tlsload_src" -lssl -lcrypto -lpthread -lm
fi
certs=$(mktemp -d /tmp/casl-stress-certs-XXXXXX)
# The driver stops the processes it starts; each of them also exits by
# itself once the driver is gone (common.lisp's exit-when-orphaned).
trap 'rm -rf "$certs"' EXIT INT TERM
sh "$top/t/make-certs.sh" "$certs" >/dev/null
# 10 000 connections need 20 000 descriptors on this machine (both ends).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cd "$top"
CASL_STRESS_SIZE=$size CASL_STRESS_CERTS=$certs CASL_STRESS_TLSLOAD=$build/tlsload \
  sbcl --noinform --non-interactive --load t/stress/stress.lisp
