#!/bin/bash
# run-bench.sh -- `make bench`: our TLS echo server against Node's tls and
# cl+ssl, and our client against Node's client and tlsload, on the same
# work in one run; prints the table and writes t/bench/results/.
#
#   bash t/bench/run-bench.sh            (from anywhere; make bench runs it)
#
# Settings (environment):
#   BENCH_N=3            runs per figure; each figure is their median
#   BENCH_ECHO_N=5       runs of the echo-throughput figures and of openssl speed
#   BENCH_DURATION=2     measured seconds per run (after BENCH_WARMUP=0.5)
#   BENCH_IDLE_HOLD=2    seconds the idle connections are held
#   BENCH_IDLE_CONNS="1000 10000"
#   TLSLOAD=...          the tlsload binary (default t/bench/build/tlsload)
#   BENCH_OUT=...        results directory (default t/bench/results)
#
# Method: each server runs pinned to core 0 (taskset -c 0), the load
# generator to core 1, so the server's CPU use (from /proc, over the
# measured window) is attributable; the figures that hold when the client
# is the bottleneck are CPU per unit of work (server_mib_per_cpu_s,
# server_us_per_hs, server_us_per_msg).  The servers compared run side
# by side and take turns: each run of a figure measures every server once,
# one after the other (the order rotates from run to run), with `openssl
# speed` between the two echo figures, so that a shared machine's drift
# over minutes falls on all of them alike; report.awk's ratio columns are
# the median of the per-run ratios.  Idle-memory runs use a fresh server
# each time.  Also measured: our server with :read-buffer :reuse
# (echo throughput), our server with two event loops on one port
# (:reuse-port; server and load generator unpinned, sharing both cores),
# `openssl speed` AES-256-GCM on core 0 (the crypto ceiling of an echo),
# and our client with :read-buffer :reuse.  Every process started here is killed on exit, also on
# error or interrupt.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
N=${BENCH_N:-3}
ECHO_N=${BENCH_ECHO_N:-5}
DUR=${BENCH_DURATION:-2}
WARM=${BENCH_WARMUP:-0.5}
HOLD=${BENCH_IDLE_HOLD:-2}
IDLE_CONNS=${BENCH_IDLE_CONNS:-"1000 10000"}
TLSLOAD=${TLSLOAD:-$here/build/tlsload}
OUT=${BENCH_OUT:-$here/results}
TLS_ARGS="--tls13 --groups X25519"

started=$(date +%s)
# the code measured: the servers load the working tree
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo "?")
dirty=$(git -C "$top" status --porcelain -- c lisp cl-async.asd cl-async-ssl.asd 2>/dev/null | awk '{print $2}' | tr '\n' ' ')
tmp=$(mktemp -d /tmp/casl-bench-XXXXXX)
mkdir -p "$OUT"
raw=$tmp/raw.txt
: >"$raw"
pids=""

cleanup() {
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  for p in $pids; do wait "$p" 2>/dev/null; done
  pids=""
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM HUP

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

[ -x "$TLSLOAD" ] || die "no tlsload at $TLSLOAD (make bench builds it)"

# ---- pinning, limits, what is there --------------------------------------
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER="taskset -c 0"; PIN_CLIENT="taskset -c 1"; pinning="server on core 0, load generator on core 1 (taskset)"
else
  PIN_SERVER=""; PIN_CLIENT=""; pinning="none (taskset missing or one core)"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt 10100 ]; then
  say "bench: open-file limit is $nofile: the 10000-connection idle figure will stop short"
fi
have_node=1
command -v node >/dev/null 2>&1 || { have_node=0; say "bench: node is not installed: the Node server and client columns are skipped"; }
have_clplus=1
if ! sbcl --noinform --non-interactive \
      --eval '(require :asdf)' \
      --eval '(handler-bind ((warning (function muffle-warning))) (asdf:load-system :cl+ssl))' \
      >"$tmp/clplus-load.log" 2>&1; then
  have_clplus=0
  say "bench: cl+ssl does not load (see below): its column is skipped"
  tail -5 "$tmp/clplus-load.log" >&2
fi

# ---- certificates ----------------------------------------------------------
certs=$tmp/certs
mkdir -p "$certs"
(
  cd "$certs" || exit 1
  ossl() { openssl "$@" >/dev/null 2>&1 || { echo "openssl $* failed" >&2; exit 1; }; }
  ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj "/CN=cl-async-ssl bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ec.key -out ec.csr -subj "/CN=localhost"
  ossl x509 -req -in ec.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out ec.pem
  ossl req -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.csr -subj "/CN=localhost"
  ossl x509 -req -in rsa.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out rsa.pem
) || die "could not make the certificates"
CA=$certs/ca.pem

# ---- servers ---------------------------------------------------------------
# Servers that are compared run side by side (each idle while another is
# measured) and take turns: a run of a figure measures each of them once,
# in an order that rotates from run to run.  A shared machine's speed
# drifts over minutes; measuring one server's runs after another's would
# put that drift into the ratios.
SPID=""; SPORT=""; SNAME=""; SKIND=""
declare -A SPIDS=() SPORTS=()
start_server() {   # start_server NAME ecdsa|rsa: sets SPID, SPORT (and SPIDS, SPORTS)
  SNAME=$1; SKIND=$2
  local cert=$certs/ec.pem key=$certs/ec.key out=$tmp/$1.out
  [ "$2" = rsa ] && { cert=$certs/rsa.pem; key=$certs/rsa.key; }
  : >"$out"
  case $1 in
    lisp)   $PIN_SERVER sbcl --script "$here/lisp-echo.lisp" "$cert" "$key" >"$out" 2>>"$tmp/$1.log" & ;;
    lisp-reuse) $PIN_SERVER sbcl --script "$here/lisp-echo.lisp" "$cert" "$key" 0 --read-buffer reuse >"$out" 2>>"$tmp/$1.log" & ;;
    lisp-2loops) sbcl --script "$here/lisp-echo.lisp" "$cert" "$key" 0 --loops 2 >"$out" 2>>"$tmp/$1.log" & ;;
    node)   $PIN_SERVER node "$here/node-echo.js" "$cert" "$key" >"$out" 2>>"$tmp/$1.log" & ;;
    clplus) $PIN_SERVER sbcl --dynamic-space-size 4GB --script "$here/clplus-echo.lisp" "$cert" "$key" >"$out" 2>>"$tmp/$1.log" & ;;
  esac
  SPID=$!
  pids="$pids $SPID"
  local i=0
  while ! grep -q '^PORT ' "$out"; do
    kill -0 "$SPID" 2>/dev/null || { tail -20 "$tmp/$1.log" >&2; die "the $1 server exited while starting"; }
    i=$((i + 1))
    [ $i -gt 1200 ] && die "the $1 server did not start within 120 s"
    sleep 0.1
  done
  SPORT=$(awk '/^PORT /{print $2; exit}' "$out")
  SPIDS[$1]=$SPID; SPORTS[$1]=$SPORT
}
use_server() {     # use_server NAME: the started server NAME becomes SPID, SPORT
  SNAME=$1; SPID=${SPIDS[$1]}; SPORT=${SPORTS[$1]}
}
stop_server() {
  [ -n "$SPID" ] || return 0
  kill -KILL "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
  local p rest=""
  for p in $pids; do [ "$p" = "$SPID" ] || rest="$rest $p"; done
  pids=$rest
  unset "SPIDS[$SNAME]" "SPORTS[$SNAME]"
  SPID=""
}
start_servers() {  # start_servers ecdsa|rsa NAME...
  local kind=$1 s; shift
  for s in "$@"; do start_server "$s" "$kind"; done
}
stop_servers() {   # stops every server start_servers started
  local s
  for s in "${!SPIDS[@]}"; do use_server "$s"; stop_server; done
}
rotated() {        # rotated K WORD...: the words, starting from the Kth (mod their number)
  local k=$1; shift
  local a=("$@") i
  for ((i = 0; i < $#; i++)); do printf '%s ' "${a[$(((i + k) % $#))]}"; done
}
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null; }
check_alive() {    # after a figure: a crashed server is recorded and restarted
  if ! kill -0 "$SPID" 2>/dev/null; then
    say "bench: the $SNAME server died during $1"
    echo "EVENT side=$SNAME figure=$1 server_died=1" >>"$raw"
    pids=$(for p in $pids; do [ "$p" = "$SPID" ] || printf ' %s' "$p"; done)
    SPID=""
    start_server "$SNAME" "$SKIND"
  fi
}

brief() {          # the figures of a RESULT line worth printing as progress
  tr ' ' '\n' | grep -E '^(mibps|hps|p50_us|p99_us|established|kb_per_conn|errors|server_mib_per_cpu_s|server_us_per_hs|server_us_per_msg|client_mib_per_cpu_s|client_us_per_hs|aes_mb_s)=' | tr '\n' ' '
}
record() {         # record TAG: stdin holds a tool's output
  local line
  line=$(grep '^RESULT' | tail -1)
  [ -n "$line" ] || line="RESULT failed=1 errors=1"
  echo "$1 $line" >>"$raw"
  say "  $1: $(echo "$line" | brief)"
}
tlsload() {        # tlsload TAG MODE ARGS...
  local tag=$1; shift
  timeout 180 $PIN_CLIENT "$TLSLOAD" "$@" $TLS_ARGS --server-pid "$SPID" 2>>"$tmp/tlsload.err" | record "$tag"
}
aes_ceiling() {    # aes_ceiling RUN: AES-256-GCM speed on the servers' core, the echo's crypto ceiling
  local bps
  bps=$($PIN_SERVER openssl speed -evp aes-256-gcm -bytes 16384 -seconds 2 2>/dev/null |
        awk '$1 == "AES-256-GCM" { v = $NF; sub(/k$/, "", v); printf "%.0f", v * 1000 }')
  if [ -n "$bps" ]; then
    echo "EXTRA side=openssl figure=aes run=$1 aes_mb_s=$(awk -v b="$bps" 'BEGIN{printf "%.1f", b / 1e6}') ceiling_mib_s=$(awk -v b="$bps" 'BEGIN{printf "%.1f", b / 2 / 1048576}')" >>"$raw"
    say "  openssl speed run=$1: $(awk -v b="$bps" 'BEGIN{printf "%.0f", b / 1e6}') MB/s"
  fi
}

measure() {         # measure FIGURE RUN SERVER...: one run of FIGURE on each server in turn
  local fig=$1 r=$2 s; shift 2
  for s in "$@"; do
    use_server "$s"
    case $fig in
      tput1) tlsload "side=$s figure=$fig run=$r" throughput --port "$SPORT" --conns 1 --size 16384 --duration "$DUR" --warmup "$WARM" ;;
      tput8) tlsload "side=$s figure=$fig run=$r" throughput --port "$SPORT" --conns 8 --size 16384 --duration "$DUR" --warmup "$WARM" ;;
      hs_ec_1 | hs_rsa_1) tlsload "side=$s figure=$fig run=$r" handshake --port "$SPORT" --conns 1 --duration "$DUR" --warmup "$WARM" ;;
      hs_ec_16 | hs_rsa_16) tlsload "side=$s figure=$fig run=$r" handshake --port "$SPORT" --conns 16 --duration "$DUR" --warmup "$WARM" ;;
      lat1) tlsload "side=$s figure=$fig run=$r" latency --port "$SPORT" --conns 1 --size 64 --duration "$DUR" --warmup "$WARM" ;;
      lat100) tlsload "side=$s figure=$fig run=$r" latency --port "$SPORT" --conns 100 --size 64 --duration "$DUR" --warmup "$WARM" ;;
      *) die "measure: no figure $fig" ;;
    esac
    check_alive "$fig"
  done
}

ecdsa_figures() {  # ecdsa_figures SERVER...: echo (and its AES ceiling), handshakes, latency
  local r order others
  say "== echo servers with an ECDSA certificate, taking turns: $*"
  start_servers ecdsa "$@"
  for r in $(seq $((ECHO_N > N ? ECHO_N : N))); do
    order=$(rotated $((r - 1)) "$@")
    if [ "$r" -le "$ECHO_N" ]; then
      measure tput1 "$r" $order
      aes_ceiling "$r"
      measure tput8 "$r" $order
    fi
    if [ "$r" -le "$N" ]; then
      others=$(printf '%s\n' $order | grep -vx lisp-reuse | tr '\n' ' ')
      measure hs_ec_1 "$r" $others
      measure hs_ec_16 "$r" $others
      measure lat1 "$r" $others
      measure lat100 "$r" $others
    fi
  done
  stop_servers
}

rsa_figures() {    # rsa_figures SERVER...: full handshakes with an RSA-2048 certificate
  local r order
  say "== servers with an RSA certificate, taking turns: $*"
  start_servers rsa "$@"
  for r in $(seq "$N"); do
    order=$(rotated $((r - 1)) "$@")
    measure hs_rsa_1 "$r" $order
    measure hs_rsa_16 "$r" $order
  done
  stop_servers
}

idle_figures() {   # idle_figures SERVER: RSS per idle connection, a fresh server per run
  local s=$1 k r before after est
  say "== $s server: idle connections"
  for k in $IDLE_CONNS; do
    for r in $(seq "$N"); do
      start_server "$s" ecdsa
      tlsload "side=$s figure=idle$k run=$r" idle --port "$SPORT" --conns "$k" --duration "$HOLD" --setup-timeout 40 --ramp 200
      # what the server keeps once every idle connection is gone
      sleep 1
      after=$(rss_kb "$SPID")
      before=$(awk -v t="side=$s figure=idle$k run=$r " 'index($0, t) == 1' "$raw" | tr ' ' '\n' | sed -n 's/^server_rss_before_kb=//p')
      est=$(awk -v t="side=$s figure=idle$k run=$r " 'index($0, t) == 1' "$raw" | tr ' ' '\n' | sed -n 's/^established=//p')
      if [ -n "$after" ] && [ -n "$before" ] && [ "${est:-0}" -gt 0 ]; then
        echo "EXTRA side=$s figure=idle$k run=$r rss_after_close_kb=$after retained_kb_per_conn=$(awk -v a="$after" -v b="$before" -v n="$est" 'BEGIN{printf "%.1f", (a-b)/n}')" >>"$raw"
      fi
      check_alive "idle$k"
      stop_server
    done
  done
}

reuseport_figures() { # two loops on one port; nothing pinned (both cores shared)
  local r
  say "== lisp server, two loops on one port (:reuse-port), unpinned"
  start_server lisp-2loops ecdsa
  for r in $(seq "$N"); do
    timeout 180 "$TLSLOAD" handshake --port "$SPORT" --conns 16 --threads 2 --duration "$DUR" --warmup "$WARM" $TLS_ARGS --server-pid "$SPID" 2>>"$tmp/tlsload.err" | record "side=lisp-2loops figure=hs_ec_16 run=$r"
    timeout 180 "$TLSLOAD" throughput --port "$SPORT" --conns 8 --threads 2 --size 16384 --duration "$DUR" --warmup "$WARM" $TLS_ARGS --server-pid "$SPID" 2>>"$tmp/tlsload.err" | record "side=lisp-2loops figure=tput8 run=$r"
    check_alive "the two-loop figures"
  done
  stop_server
}

client_figures() { # against Node's tls echo server: our client, Node's, tlsload
  say "== clients, against Node's tls echo server"
  start_server node ecdsa
  local r c
  local common="--port $SPORT --duration $DUR --warmup $WARM --server-pid $SPID"
  for r in $(seq "$N"); do
    for c in 1 8; do
      timeout 120 $PIN_CLIENT sbcl --script "$here/lisp-client.lisp" throughput --conns $c $common --ca-file "$CA" 2>>"$tmp/lisp-client.log" | record "side=lisp-client figure=ctput$c run=$r"
      timeout 120 $PIN_CLIENT sbcl --script "$here/lisp-client.lisp" throughput --read-buffer reuse --conns $c $common --ca-file "$CA" 2>>"$tmp/lisp-client.log" | record "side=lisp-client-reuse figure=ctput$c run=$r"
      timeout 120 $PIN_CLIENT node "$here/node-client.js" throughput --conns $c $common --ca-file "$CA" 2>>"$tmp/node-client.log" | record "side=node-client figure=ctput$c run=$r"
      timeout 120 $PIN_CLIENT "$TLSLOAD" throughput --conns $c --size 16384 $common $TLS_ARGS --cafile "$CA" --servername localhost 2>>"$tmp/tlsload.err" | record "side=tlsload figure=ctput$c run=$r"
    done
    timeout 120 $PIN_CLIENT sbcl --script "$here/lisp-client.lisp" handshake --conns 16 $common --ca-file "$CA" --ctx default 2>>"$tmp/lisp-client.log" | record "side=lisp-client figure=chs16 run=$r"
    timeout 120 $PIN_CLIENT sbcl --script "$here/lisp-client.lisp" handshake --conns 16 $common --ca-file "$CA" --ctx shared 2>>"$tmp/lisp-client.log" | record "side=lisp-client-shared figure=chs16 run=$r"
    timeout 120 $PIN_CLIENT node "$here/node-client.js" handshake --conns 16 $common --ca-file "$CA" 2>>"$tmp/node-client.log" | record "side=node-client figure=chs16 run=$r"
    timeout 120 $PIN_CLIENT "$TLSLOAD" handshake --conns 16 $common $TLS_ARGS --cafile "$CA" --servername localhost 2>>"$tmp/tlsload.err" | record "side=tlsload figure=chs16 run=$r"
    check_alive "the client figures"
  done
  stop_server
}

# ---- the run ---------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "bench: N=$N (echo throughput: $ECHO_N), ${DUR} s per run after ${WARM} s warm-up, idle hold ${HOLD} s; pinning: $pinning"
say "bench: load average before the run: $load_before"
compared="lisp"; [ $have_node = 1 ] && compared="$compared node"; [ $have_clplus = 1 ] && compared="$compared clplus"
ecdsa_figures lisp lisp-reuse ${compared#lisp}
rsa_figures $compared
reuseport_figures
for s in $compared; do idle_figures "$s"; done
if [ $have_node = 1 ]; then
  client_figures
else
  say "bench: node is not installed: our client's figures (measured against Node's tls server) are skipped"
fi
elapsed=$(( $(date +%s) - started ))

# server-side event reports (errors other than normal closes), for the record
for s in lisp lisp-reuse lisp-2loops node clplus; do
  [ -s "$tmp/$s.log" ] && grep -v '^[[:space:]]*$' "$tmp/$s.log" | sed "s/^/LOG side=$s /" | tr -d '\r' >>"$raw"
done
[ -s "$tmp/lisp-client.log" ] && sed 's/^/LOG side=lisp-client /' "$tmp/lisp-client.log" >>"$raw"
[ -s "$tmp/node-client.log" ] && sed 's/^/LOG side=node-client /' "$tmp/node-client.log" >>"$raw"
[ -s "$tmp/tlsload.err" ] && grep -v '^READY ' "$tmp/tlsload.err" | sed 's/^/LOG side=tlsload /' >>"$raw"

# ---- the report --------------------------------------------------------------
cpu=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
sbcl_v=$(sbcl --version 2>/dev/null)
ossl_v=$(openssl version 2>/dev/null)
uv_v=$(pkg-config --modversion libuv 2>/dev/null || echo "?")
if [ $have_node = 1 ]; then
  node_v="Node $(node --version) (its own OpenSSL $(node -p process.versions.openssl), libuv $(node -p process.versions.uv))"
else
  node_v="Node: not installed"
fi
clplus_v=$(dpkg-query -W -f='${Version}' cl-plus-ssl 2>/dev/null || echo "?")
{
  echo "# cl-async-ssl benchmark: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- Code measured: commit $commit${dirty:+, with uncommitted changes in: $dirty}"
  echo "- Machine: $(nproc) CPUs, $cpu; Linux $(uname -r)"
  echo "- Versions: $sbcl_v; $ossl_v (ours and cl+ssl); libuv $uv_v (ours); $node_v; cl-plus-ssl $clplus_v (Debian); tlsload $("$TLSLOAD" --help 2>&1 | grep -o 'tlsload [0-9.]*' | head -1 | sed 's/tlsload //') "
  echo "- Method: each figure is the median of N=$N runs of ${DUR} s (echo throughput and \`openssl speed\`: $ECHO_N runs), after ${WARM} s warm-up; the servers compared run side by side and take turns, each run of a figure measuring every server once in an order that rotates from run to run; ratios are the median of the per-run ratios (idle: ${HOLD} s hold, a fresh server per run); pinning: $pinning; TLS 1.3, X25519, the servers' default cipher order (negotiated: see the raw file's cipher=); certificates: ECDSA P-256 or RSA-2048 leaf signed by a throwaway CA."
  echo "- Load average before the run: $load_before; the run took ${elapsed} s."
  echo
} >"$tmp/header.md"
awk -v N="$N" -v idle="$IDLE_CONNS" -v plotdir="$tmp" -f "$here/report.awk" "$raw" >"$tmp/table.md" || die "report failed"
cat "$tmp/header.md" "$tmp/table.md" >"$OUT/latest.md"
cp "$raw" "$OUT/latest-raw.txt"
if command -v gnuplot >/dev/null 2>&1; then
  if gnuplot -e "serverdat='$tmp/plot-server.dat'; clientdat='$tmp/plot-client.dat'; out='$OUT/latest.png'; stamp='$(date -u '+%Y-%m-%d') N=$N'" "$here/plot.gp" 2>"$tmp/gnuplot.err"; then
    say "bench: wrote $OUT/latest.png"
  else
    say "bench: gnuplot failed:"; cat "$tmp/gnuplot.err" >&2
  fi
else
  say "bench: gnuplot is not installed: no plot"
fi
cat "$OUT/latest.md"
say "bench: wrote $OUT/latest.md and $OUT/latest-raw.txt in ${elapsed} s"
