#!/bin/sh
# bench-filter.sh -- the in-memory TLS filter benchmark next to `openssl
# speed', measured in the same run (make bench-filter).
#
#   sh t/bench/bench-filter.sh [MIB]      (default 256)
#
# Moves MIB MiB client -> server through two filters back to back in one
# thread, 16 KiB writes, TLS 1.3 AES-128-GCM: each byte is encrypted once
# and decrypted once, so the ceiling against `openssl speed -evp
# aes-128-gcm' (one operation) is about 0.5.  Then full handshakes per
# second (client and server in the same thread, client verifying) for an
# ECDSA P-256 and an RSA-2048 server key, next to openssl's sign rates.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
mib=${1:-256}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

make -s -C "$top/c" bench-filter-bin >/dev/null
sh "$top/t/make-certs.sh" "$tmp/certs" >/dev/null

speed() { openssl speed "$@" 2>/dev/null; }
# "AES-128-GCM   6191071.23k" (1000s of bytes per second, 16384-byte blocks)
aes=$(speed -seconds 3 -bytes 16384 -evp aes-128-gcm |
  awk '/^AES-128-GCM/ { v = $NF; sub(/k$/, "", v); printf "%.1f", v / 1000 }')
# " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  43961.0  14102.2"
ecdsa=$(speed -seconds 2 ecdsap256 | awk '/ecdsa \(nistp256\)/ { print $(NF-1) }')
# "rsa 2048 bits 0.000590s 0.000017s   1695.8  58733.9"
rsa=$(speed -seconds 2 rsa2048 | awk '/^rsa 2048 bits/ { print $(NF-1) }')

"$top/c/build/bench-filter" "$tmp/certs" "$mib" 2 > "$tmp/out"
get() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/out"; }
mbs=$(get throughput_mb_s)
hse=$(get hs_ecdsa_per_s)
hsr=$(get hs_rsa_per_s)

printf 'bench-filter: %s, %s MiB, 16 KiB writes, %s %s, one thread\n' \
  "$(openssl version | cut -d' ' -f1-2)" "$mib" "$(get protocol)" "$(get cipher)"
printf '%-34s %14s %24s %8s\n' "" "filter pair" "openssl speed" "ratio"
printf '%-34s %9s MB/s %14s MB/s (16 KiB) %8s\n' "throughput (encrypt+decrypt)" \
  "$mbs" "$aes" "$(awk -v a="$mbs" -v b="$aes" 'BEGIN { printf "%.2f", a / b }')"
printf '%-34s %9s /s   %14s sign/s   %8s\n' "full handshakes, ECDSA P-256" \
  "$hse" "$ecdsa" "$(awk -v a="$hse" -v b="$ecdsa" 'BEGIN { printf "%.3f", a / b }')"
printf '%-34s %9s /s   %14s sign/s   %8s\n' "full handshakes, RSA-2048" \
  "$hsr" "$rsa" "$(awk -v a="$hsr" -v b="$rsa" 'BEGIN { printf "%.3f", a / b }')"
echo "(throughput ceiling about 0.5: each byte is encrypted and decrypted;"
echo " aim >= 0.4.  Handshakes: client and server work in one thread.)"
