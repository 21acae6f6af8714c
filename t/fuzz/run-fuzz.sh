#!/bin/sh
# run-fuzz.sh SECONDS -- runs the TLS filter fuzzer (c/build-fuzz/fuzz-tls)
# for SECONDS.  New inputs go to a scratch corpus (t/fuzz/work/, ignored by
# git) seeded from the committed t/fuzz/corpus, which stays untouched.
# Fails on any crash, leak or sanitizer report.
set -eu
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work="$here/work"
mkdir -p "$work/corpus" "$work/artifacts"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "$top/c/build-fuzz/fuzz-tls" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" -detect_leaks=1 -timeout=25 -rss_limit_mb=2048 \
  "$work/corpus" "$here/corpus"
