#!/bin/sh
# run-stress.sh [short|full] -- the hostile-peer, leak and concurrency
# suite (t/stress/stress.lisp) against a default tcp-ssl-server.
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
trap 'rm -rf "$certs"; pkill -f t/stress/stress-server.lisp 2>/dev/null || true' EXIT INT TERM
sh "$top/t/make-certs.sh" "$certs" >/dev/null
# 10 000 connections need 20 000 descriptors on this machine (both ends).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cd "$top"
CASL_STRESS_SIZE=$size CASL_STRESS_CERTS=$certs CASL_STRESS_TLSLOAD=$build/tlsload \
  sbcl --noinform --non-interactive --load t/stress/stress.lisp
