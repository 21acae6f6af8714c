#!/bin/sh
# make-corpus.sh -- regenerates the fuzzer's seed corpus in t/fuzz/corpus
# (committed; run again only when the input format of fuzz-tls.c changes).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -D_GNU_SOURCE -O1 -I"$top/c" -o "$tmp/gen-corpus" \
  "$here/gen-corpus.c" $(ls "$top"/c/tls-*.c) "$top/c/util.c" \
  $(pkg-config --cflags --libs libuv openssl 2>/dev/null || echo -luv -lssl -lcrypto) -lpthread
mkdir -p "$here/corpus"
"$tmp/gen-corpus" "$here/corpus"
ls -l "$here/corpus"
