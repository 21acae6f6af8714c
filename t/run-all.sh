#!/bin/sh
# run-all.sh -- the C tests, then the FiveAM suites; ends with one line
# "N passed, M failed" (the sum of both) and exits non-zero if anything
# failed.  Run from the repository root.
set -u
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
c/build/run-tests 2>&1 | tee "$log" || status=1
c_line=$(grep '^c: ' "$log" | tail -n 1)
sbcl --noinform --non-interactive --load t/run-lisp-tests.lisp 2>&1 | tee "$log" || status=1
l_line=$(grep '^lisp: ' "$log" | tail -n 1)
n() { echo "$1" | sed -n "s/.* \([0-9][0-9]*\) $2.*/\1/p"; }
cp=$(n "$c_line" passed); cf=$(n "$c_line" failed)
lp=$(n "$l_line" passed); lf=$(n "$l_line" failed)
# A runner that died before its summary counts as one failure.
[ -n "$cp" ] || { cp=0; cf=1; status=1; }
[ -n "$lp" ] || { lp=0; lf=1; status=1; }
[ "$cf" -eq 0 ] && [ "$lf" -eq 0 ] || status=1
echo "$((cp + lp)) passed, $((cf + lf)) failed"
exit $status
