#!/bin/bash
# profile.sh -- where our TLS echo server spends its CPU: perf records
# lisp-echo.lisp (pinned to core 0) while tlsload (core 1) streams 16 KiB
# chunks through it, and profile-split.awk sorts the samples into
# categories (crypto, kernel, each copy, SBCL zero-filling, ...).
#
#   bash t/bench/profile.sh [CONNS...] [-- ECHO-OPTION...]
#   bash t/bench/profile.sh 1 8 -- --read-buffer reuse
#
# Needs perf (Debian: linux-perf) and t/bench/build/tlsload (make bench
# builds it).  PROFILE_SECONDS (default 3) per figure.  Prints, for each
# number of connections, the server's MiB per CPU-second and the split.
set -u
here=$(cd "$(dirname "$0")" && pwd)
TLSLOAD=${TLSLOAD:-$here/build/tlsload}
SECS=${PROFILE_SECONDS:-3}
conns=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do conns="$conns $1"; shift; done
[ $# -gt 0 ] && shift
[ -n "$conns" ] || conns="1 8"
command -v perf >/dev/null 2>&1 || { echo "profile: perf is missing (sh t/install-deps.sh linux-perf)" >&2; exit 1; }
[ -x "$TLSLOAD" ] || { echo "profile: no tlsload at $TLSLOAD (make bench builds it)" >&2; exit 1; }
tmp=$(mktemp -d)
spid=""
cleanup() { [ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" \
  -out "$tmp/cert.pem" -days 2 -subj "/CN=localhost" >/dev/null 2>&1 || { echo "profile: openssl failed" >&2; exit 1; }
taskset -c 0 sbcl --script "$here/lisp-echo.lisp" "$tmp/cert.pem" "$tmp/key.pem" 0 "$@" >"$tmp/out" 2>"$tmp/err" &
spid=$!
for _ in $(seq 1200); do grep -q '^PORT ' "$tmp/out" && break; sleep 0.1; done
port=$(awk '/^PORT /{print $2; exit}' "$tmp/out")
[ -n "$port" ] || { cat "$tmp/err" >&2; echo "profile: the server did not start" >&2; exit 1; }
for c in $conns; do
  taskset -c 1 "$TLSLOAD" throughput --port "$port" --conns "$c" --size 16384 --duration $((SECS + 2)) \
    --warmup 0.5 --tls13 --groups X25519 --server-pid "$spid" >"$tmp/result" 2>/dev/null &
  lpid=$!
  sleep 1
  perf record -F 1000 --call-graph dwarf,16384 -p "$spid" -o "$tmp/perf.data" -- sleep "$SECS" >/dev/null 2>&1
  wait "$lpid"
  echo "== $c connection(s)$( [ $# -gt 0 ] && printf ', echo options: %s' "$*"): $(tr ' ' '\n' <"$tmp/result" | grep -E '^(server_mib_per_cpu_s|other_cpu)=' | tr '\n' ' ')"
  perf script -i "$tmp/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null | awk -f "$here/profile-split.awk"
done
