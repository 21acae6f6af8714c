#!/bin/sh
# run-scan.sh -- scans a default tcp-ssl-server (ECDSA and RSA certificates)
# with sslscan and testssl.sh (Debian packages).  Fails if a protocol older
# than TLS 1.2 is offered, a cipher without forward secrecy or with a key
# under 128 bits is accepted, a key exchange group under 128 bits is
# offered, or testssl.sh reports any vulnerability.  Findings about the
# throwaway test certificate itself (not trusted, long validity, no
# revocation URI, no CAA record) are about the certificate, not the server,
# and are listed but not counted.  Run from the repository root.
set -u
top=$(pwd)
work=$(mktemp -d /tmp/casl-scan-XXXXXX)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
sh t/make-certs.sh "$work/certs" >/dev/null
failures=0
fail() { echo "FAIL $1"; failures=$((failures + 1)); }

scan() {
  name=$1
  rm -f "$work/port"
  CASL_STRESS_CERTS="$work/certs" CASL_STRESS_PORT_FILE="$work/port" \
  CASL_STRESS_HANDSHAKE_TIMEOUT=20 CASL_STRESS_CERT_NAME="$name" \
    sbcl --noinform --non-interactive --load t/stress/stress-server.lisp \
    >"$work/server.log" 2>&1 &
  server_pid=$!
  i=0
  while [ ! -s "$work/port" ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
  [ -s "$work/port" ] || { fail "$name: the server did not start"; cat "$work/server.log"; return; }
  port=$(cat "$work/port")
  echo "== default tcp-ssl-server with the $name certificate on 127.0.0.1:$port"

  sslscan --no-colour --xml="$work/sslscan.xml" "127.0.0.1:$port" >"$work/sslscan.txt" 2>&1
  sed -n '/SSL\/TLS Protocols/,/Server Key Exchange/p;/Key Exchange Group/,/SSL Certificate/p' \
    "$work/sslscan.txt" | grep -v '^$'
  for p in 'type="ssl" version="2"' 'type="ssl" version="3"' \
           'type="tls" version="1.0"' 'type="tls" version="1.1"'; do
    grep -q "<protocol $p enabled=\"1\"" "$work/sslscan.xml" &&
      fail "$name: sslscan: $p enabled"
  done
  grep '<cipher status="\(accepted\|preferred\)"' "$work/sslscan.xml" >"$work/ciphers" || true
  [ -s "$work/ciphers" ] || fail "$name: sslscan found no cipher at all"
  while read -r line; do
    c=$(echo "$line" | sed 's/.* cipher="\([^"]*\)".*/\1/')
    b=$(echo "$line" | sed 's/.* bits="\([0-9]*\)".*/\1/')
    [ "$b" -ge 128 ] || fail "$name: cipher $c has a $b-bit key"
    case "$c" in
      TLS_*|ECDHE-*|DHE-*) ;;
      *) fail "$name: cipher $c has no forward secrecy" ;;
    esac
  done <"$work/ciphers"
  grep '<group ' "$work/sslscan.xml" | sed 's/.* bits="\([0-9]*\)".* name="\([^"]*\)".*/\1 \2/' |
    while read -r b g; do
      [ "$b" -ge 128 ] || echo "FAIL $name: key exchange group $g gives $b bits"
    done >"$work/groups-fail"
  if [ -s "$work/groups-fail" ]; then cat "$work/groups-fail"; failures=$((failures + $(wc -l <"$work/groups-fail"))); fi

  echo "-- testssl.sh"
  testssl --quiet --color 0 --warnings off --ip one --csvfile "$work/testssl.csv" \
    "127.0.0.1:$port" >"$work/testssl.txt" 2>&1
  [ -s "$work/testssl.csv" ] || { fail "$name: testssl.sh produced no results"; tail "$work/testssl.txt"; }
  # id,fqdn/ip,port,severity,finding
  awk -F'","' -v name="$name" '
    NR == 1 { next }
    { id = substr($1, 2); sev = $4; finding = $5 }
    id ~ /^(SSLv2|SSLv3|TLS1|TLS1_1)$/ {
      if (finding !~ /^not offered/) { print "FAIL " name ": testssl: " id " " finding; bad++ }
      next }
    id ~ /^cipherlist_(NULL|aNULL|EXPORT|LOW|3DES_IDEA|AVERAGE)$/ {
      if (finding !~ /^not offered/) { print "FAIL " name ": testssl: " id " " finding; bad++ }
      next }
    id ~ /^cipher_x/ {
      split(finding, f, " +")
      if (f[3] !~ /^(ECDH|DH)$/ || f[6] + 0 < 128) { print "FAIL " name ": testssl: " finding; bad++ }
      next }
    id ~ /^(heartbleed|CCS|ticketbleed|ROBOT|secure_renego|secure_client_renego|CRIME_TLS|BREACH|POODLE_SSL|fallback_SCSV|SWEET32|FREAK|DROWN|LOGJAM|LOGJAM-common_primes|BEAST|BEAST_CBC_TLS1|LUCKY13|RC4|winshock|GREASE|PFS|cipher_order)$/ {
      if (sev != "OK" && sev != "INFO") { print "FAIL " name ": testssl: " id " " sev " " finding; bad++ }
      else print "ok   " id ": " finding
      next }
    id ~ /^(cert|DNS_CAA|OCSP|certificate_transparency|intermediate)/ {
      if (sev != "OK" && sev != "INFO") print "note " id " " sev ": " finding " (the test certificate)"
      next }
    END { exit bad > 0 }
  ' "$work/testssl.csv" || failures=$((failures + 1))
  kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; server_pid=""
}

scan server
scan server-rsa
if [ "$failures" -eq 0 ]; then
  echo "scan: default server configuration clean (sslscan and testssl.sh, ECDSA and RSA)"
else
  echo "scan: $failures problem(s)"
  exit 1
fi
