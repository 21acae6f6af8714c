# report.awk -- turns the raw lines of run-bench.sh (tag key=value...,
# tlsload's RESULT fields) into the markdown table of latest.md, and writes
# the plot data (plotdir/plot-server.dat, plotdir/plot-client.dat).
#
#   awk -v N=3 -v idle="1000 10000" -v plotdir=DIR -f report.awk raw.txt > table.md
#
# Each figure is the median over its runs.  Ratio columns are "ours
# relative to the peer, > 1 means ours is better": ours/peer where higher
# is better, peer/ours where lower is better, taken run by run (run K of
# ours against run K of the peer: run-bench.sh measures them one right
# after the other) and the median of those; the ratio of the two medians
# where the runs do not pair up.

function median(list,    a, n, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) {
        t = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
    }
    if (n % 2) return a[(n + 1) / 2] + 0
    return (a[n / 2] + a[n / 2 + 1]) / 2
}
function num(v) {
    if (v == "") return "–"
    if (v >= 1000 || v <= -1000) return sprintf("%.0f", v)
    if (v >= 100 || v <= -100) return sprintf("%.0f", v)
    if (v >= 10 || v <= -10) return sprintf("%.1f", v)
    return sprintf("%.2f", v)
}
function ratio(ours, peer, better) {
    if (ours == "" || peer == "" || ours + 0 <= 0 || peer + 0 <= 0) return ""
    if (better != "higher" && better != "lower") return ""
    return better == "higher" ? ours / peer : peer / ours
}
function pratio(us, peer, fig, metric, better,    k, rr, list, n) {
    # the median of the run-by-run ratios of US and PEER (see the top)
    list = ""; n = 0
    for (k = 1; k <= maxrun; k++) {
        if (!((us SUBSEP fig SUBSEP metric SUBSEP k) in pv)) continue
        if (!((peer SUBSEP fig SUBSEP metric SUBSEP k) in pv)) continue
        rr = ratio(pv[us SUBSEP fig SUBSEP metric SUBSEP k], pv[peer SUBSEP fig SUBSEP metric SUBSEP k], better)
        if (rr != "") { list = list " " rr; n++ }
    }
    if (n > 0) return median(list)
    return ratio(median(vals[us SUBSEP fig SUBSEP metric]), median(vals[peer SUBSEP fig SUBSEP metric]), better)
}
function ceiling_ratio(us, fig,    k, list, n) {
    # ours over the AES ceiling of the same run (openssl speed runs between
    # the echo figures of each run), median over the runs
    list = ""; n = 0
    for (k = 1; k <= maxrun; k++) {
        if (!((us SUBSEP fig SUBSEP "server_mib_per_cpu_s" SUBSEP k) in pv)) continue
        if (!(("openssl" SUBSEP "aes" SUBSEP "ceiling_mib_s" SUBSEP k) in pv)) continue
        if (pv["openssl" SUBSEP "aes" SUBSEP "ceiling_mib_s" SUBSEP k] + 0 <= 0) continue
        list = list " " pv[us SUBSEP fig SUBSEP "server_mib_per_cpu_s" SUBSEP k] / pv["openssl" SUBSEP "aes" SUBSEP "ceiling_mib_s" SUBSEP k]
        n++
    }
    if (n > 0) return median(list)
    if (ceiling == "" || ceiling + 0 <= 0) return ""
    return median(vals[us SUBSEP fig SUBSEP "server_mib_per_cpu_s"]) / ceiling
}
function rtext(r) { return r == "" ? "–" : sprintf("%.2f", r) }
function cell(side, fig, metric,    v, e, s) {
    v = median(vals[side SUBSEP fig SUBSEP metric])
    s = num(v)
    if ((side SUBSEP fig) in errs) s = s " ⚠"
    return s
}
function one_target(spec, rn, rc, ours, rceil,    kind, x, r, what) {
    # one target: "node:X" / "clplus:X" (ours relative to that peer >= X),
    # "cpu_node:X" (ours <= X times Node's, lower is better), "cpu_best:X"
    # (ours <= X times the better peer's), "value:X" (ours <= X),
    # "ceiling:X" (ours >= X times the AES-256-GCM/2 ceiling), "ctx:X"
    split(spec, kind, ":")
    x = kind[2] + 0
    if (kind[1] == "node" || kind[1] == "clplus") {
        r = kind[1] == "node" ? rn : rc
        what = sprintf("vs %s ≥ %.2f", kind[1] == "node" ? "node" : "cl+ssl", x)
        return r == "" ? what ": n/a" : sprintf("%s: %s (%.2f)", what, r >= x ? "met" : "missed", r)
    }
    if (kind[1] == "cpu_node") {
        # ours / node's CPU: 1 / (node's / ours)
        what = sprintf("≤ %.2f× node", x)
        if (rn == "" || rn + 0 <= 0) return what ": n/a"
        r = 1 / rn
        return sprintf("%s: %s (%.2f×)", what, r <= x ? "met" : "missed", r)
    }
    if (kind[1] == "cpu_best") {
        # against the better peer: the larger of ours / each peer's CPU
        what = sprintf("≤ %.2f× best peer", x)
        r = ""
        if (rn != "" && rn + 0 > 0) r = 1 / rn
        if (rc != "" && rc + 0 > 0 && (r == "" || 1 / rc > r)) r = 1 / rc
        if (r == "") return what ": n/a"
        return sprintf("%s: %s (%.2f×)", what, r <= x ? "met" : "missed", r)
    }
    if (kind[1] == "value")
        return sprintf("≤ %s: %s", kind[2], ours == "" ? "n/a" : (ours <= x ? "met" : "missed"))
    if (kind[1] == "ceiling") {
        what = sprintf("≥ %.2f of the AES ceiling", x)
        if (rceil == "") return what ": n/a"
        r = rceil
        return sprintf("%s (%s MiB/s): %s (%.2f)", what, num(ceiling), r >= x ? "met" : "missed", r)
    }
    if (kind[1] == "ctx")
        return rn == "" ? sprintf("≥ %.2f: n/a", x) : sprintf("≥ %.2f: %s (%.4f)", x, rn >= x ? "met" : "missed", rn)
    return ""
}
function target_text(spec, rn, rc, ours, rceil,    parts, n, i, out) {
    # spec: targets joined by "&"
    if (spec == "") return ""
    n = split(spec, parts, "&")
    out = ""
    for (i = 1; i <= n; i++)
        out = out (i > 1 ? "; " : "") one_target(parts[i], rn, rc, ours, rceil)
    return out
}

BEGIN {
    # figure|metric|better|label|short label for the plot|targets (issue 14)|our side (default lisp)
    ns = 0
    S[++ns] = "tput1|mibps|higher|Echo throughput, 1 conn, 16 KiB chunks (MiB/s)|MiB/s 1c||"
    S[++ns] = "tput1|server_mib_per_cpu_s|higher|  same, MiB echoed per server CPU-second|MiB/CPU-s 1c|clplus:1.2|"
    S[++ns] = "tput1|server_mib_per_cpu_s|higher|  same, with `:read-buffer :reuse`: MiB echoed per server CPU-second|reuse MiB/CPU-s 1c|ceiling:0.6&clplus:1.2|lisp-reuse"
    S[++ns] = "tput8|mibps|higher|Echo throughput, 8 conns, 16 KiB chunks (MiB/s)|MiB/s 8c||"
    S[++ns] = "tput8|server_mib_per_cpu_s|higher|  same, MiB echoed per server CPU-second|MiB/CPU-s 8c|clplus:1.1&node:1.6|"
    S[++ns] = "tput8|server_mib_per_cpu_s|higher|  same, with `:read-buffer :reuse`: MiB echoed per server CPU-second|reuse MiB/CPU-s 8c|ceiling:0.6&clplus:1.1&node:1.6|lisp-reuse"
    S[++ns] = "hs_ec_1|hps|higher|Full handshakes/s, ECDSA P-256, 1 conn|hs/s EC 1c||"
    S[++ns] = "hs_ec_1|server_us_per_hs|lower|  same, server CPU µs per handshake|µs/hs EC 1c||"
    S[++ns] = "hs_ec_16|hps|higher|Full handshakes/s, ECDSA P-256, 16 conns|hs/s EC 16c||"
    S[++ns] = "hs_ec_16|server_us_per_hs|lower|  same, server CPU µs per handshake|µs/hs EC 16c|cpu_node:0.75|"
    S[++ns] = "hs_rsa_1|hps|higher|Full handshakes/s, RSA-2048, 1 conn|hs/s RSA 1c||"
    S[++ns] = "hs_rsa_1|server_us_per_hs|lower|  same, server CPU µs per handshake|µs/hs RSA 1c||"
    S[++ns] = "hs_rsa_16|hps|higher|Full handshakes/s, RSA-2048, 16 conns|hs/s RSA 16c||"
    S[++ns] = "hs_rsa_16|server_us_per_hs|lower|  same, server CPU µs per handshake|µs/hs RSA 16c|cpu_node:0.8|"
    S[++ns] = "lat1|p50_us|lower|64 B ping-pong, 1 conn: p50 round trip (µs)|p50 1c||"
    S[++ns] = "lat1|p99_us|lower|  same, p99 round trip (µs)|p99 1c||"
    S[++ns] = "lat1|server_us_per_msg|lower|  same, server CPU µs per message|µs/msg 1c||"
    S[++ns] = "lat100|rate|higher|64 B ping-pong, 100 conns: messages/s|msg/s 100c||"
    S[++ns] = "lat100|p50_us|lower|  same, p50 round trip (µs)|p50 100c||"
    S[++ns] = "lat100|p99_us|lower|  same, p99 round trip (µs)|p99 100c||"
    S[++ns] = "lat100|server_us_per_msg|lower|  same, server CPU µs per message|µs/msg 100c|cpu_best:0.5|"
    nidle = split(idle, idles, " ")
    for (i = 1; i <= nidle; i++) {
        k = idles[i]
        S[++ns] = "idle" k "|kb_per_conn|lower|Idle TLS connections, " k ": server RSS per connection (KiB)|KiB/conn " k "|" (k == 10000 ? "value:16" : "") "|"
        S[++ns] = "idle" k "|established|higher|  same, connections established|conns " k "||"
        S[++ns] = "idle" k "|retained_kb_per_conn|lower|  same, RSS still held 1 s after they closed (KiB per former conn)|kept KiB " k "||"
    }

    nc = 0
    C[++nc] = "ctput1|mibps|higher|Throughput, 1 conn, 16 KiB chunks (MiB/s)|MiB/s 1c||"
    C[++nc] = "ctput1|client_mib_per_cpu_s|higher|  same, MiB per client CPU-second|MiB/CPU-s 1c|node:1.1|"
    C[++nc] = "ctput1|client_mib_per_cpu_s|higher|  same, with `:read-buffer :reuse`: MiB per client CPU-second|reuse MiB/CPU-s 1c|node:1.1|lisp-client-reuse"
    C[++nc] = "ctput8|mibps|higher|Throughput, 8 conns, 16 KiB chunks (MiB/s)|MiB/s 8c||"
    C[++nc] = "ctput8|client_mib_per_cpu_s|higher|  same, MiB per client CPU-second|MiB/CPU-s 8c|node:1.1|"
    C[++nc] = "ctput8|client_mib_per_cpu_s|higher|  same, with `:read-buffer :reuse`: MiB per client CPU-second|reuse MiB/CPU-s 8c|node:1.1|lisp-client-reuse"
    C[++nc] = "chs16|hps|higher|Full handshakes/s, ECDSA, 16 conns, client verifying|hs/s 16c||"
    C[++nc] = "chs16|client_us_per_hs|lower|  same, client CPU µs per handshake|µs/hs 16c||"
}

{
    delete kv
    for (i = 1; i <= NF; i++) {
        eq = index($i, "=")
        if (eq > 1) kv[substr($i, 1, eq - 1)] = substr($i, eq + 1)
    }
}
$1 == "LOG" { next }
$1 == "EVENT" { died[kv["side"]] = died[kv["side"]] " " kv["figure"]; next }
$1 == "EXTRA" || $1 ~ /^side=/ {
    side = kv["side"]; fig = kv["figure"]
    for (k in kv) {
        if (k == "side" || k == "figure" || k == "run") continue
        if (kv[k] ~ /^-?[0-9.]+$/) {
            vals[side SUBSEP fig SUBSEP k] = vals[side SUBSEP fig SUBSEP k] " " kv[k]
            if ("run" in kv) pv[side SUBSEP fig SUBSEP k SUBSEP kv["run"]] = kv[k]
        }
    }
    if (kv["run"] + 0 > maxrun) maxrun = kv["run"] + 0
    if ($1 != "EXTRA") {
        runs[side SUBSEP fig]++
        if (kv["errors"] + 0 > 0) errs[side SUBSEP fig] += kv["errors"]
        if (kv["failed"] == "1") { failed[side SUBSEP fig]++; if (!((side SUBSEP fig) in errs)) errs[side SUBSEP fig] = 0 }
        if ("other_cpu" in kv) {
            other = other " " kv["other_cpu"]; nother++
            if (kv["other_cpu"] + 0 > 0.2) nbusy++
            if (kv["other_cpu"] + 0 > maxother) maxother = kv["other_cpu"] + 0
        }
        if ("proto" in kv && kv["proto"] != "none") protos[kv["proto"] " " kv["cipher"]] = 1
        if (side == "node") have["node"] = 1
        if (side == "clplus") have["clplus"] = 1
        if (side == "node-client") have["node-client"] = 1
    }
}

END {
    # AES-256-GCM/2: the echo throughput per core crypto alone allows
    ceiling = median(vals["openssl" SUBSEP "aes" SUBSEP "ceiling_mib_s"])
    pserver = plotdir "/plot-server.dat"
    pclient = plotdir "/plot-client.dat"
    printf "" > pserver
    printf "" > pclient
    neg = ""
    for (p in protos) neg = neg (neg == "" ? "" : ", ") p
    print "Negotiated: " (neg == "" ? "none" : neg) ". Other processes on the machine (other_cpu: host CPU use minus client and server, from tlsload and both clients) used a median of " \
          num(median(other)) " CPUs, max " num(maxother) "; " nbusy + 0 " of " nother + 0 " runs had more than 0.2 CPUs of it" \
          (nbusy + 0 > nother / 10 ? ": **the machine was busy part of the time; absolute rates and tail latencies of those runs are noisy, CPU per unit of work much less so** (the raw file has other_cpu for every run)." : ".")
    print ""
    print "Ratio columns: **ours relative to the peer, > 1 means ours is better** (ours/peer where higher is better, peer/ours where lower is better), taken run by run (each run measures the servers one right after the other) and the median of those ratios, so they need not equal the ratio of the two medians shown; the AES-ceiling ratio likewise pairs each echo run with the `openssl speed` of the same run. ⚠ marks a figure whose runs counted errors (see the notes below the tables)."
    print ""
    print "## Servers (tlsload against each echo server)"
    print ""
    print "| figure | better | ours (tcp-ssl-server) | node tls | cl+ssl | ours vs node | ours vs cl+ssl | issue 14 target |"
    print "|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= ns; i++) {
        split(S[i], f, "|")
        us = f[7] == "" ? "lisp" : f[7]
        o = median(vals[us SUBSEP f[1] SUBSEP f[2]])
        rn = pratio(us, "node", f[1], f[2], f[3]); rc = pratio(us, "clplus", f[1], f[2], f[3])
        better = f[3]
        if (f[2] == "established") { better = "higher"; rn = ""; rc = "" }
        printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", f[4], better, cell(us, f[1], f[2]),
            have["node"] ? cell("node", f[1], f[2]) : "skipped", have["clplus"] ? cell("clplus", f[1], f[2]) : "skipped",
            rtext(rn), rtext(rc), target_text(f[6], rn, rc, o, ceiling_ratio(us, f[1]))
        if (f[2] != "established")
            printf "\"%s\" %s %s\n", f[5], rn == "" ? "NaN" : rn, rc == "" ? "NaN" : rc >> pserver
    }
    print ""
    print ""
    printf "AES ceiling: `openssl speed -evp aes-256-gcm -bytes 16384` on the server's core gives %s MB/s (median); an echo encrypts and decrypts every byte, so crypto alone allows %s MiB echoed per CPU-second.\n", \
        num(median(vals["openssl" SUBSEP "aes" SUBSEP "aes_mb_s"])), num(ceiling)
    print ""
    print "## More than one core: two event loops on one port (`:reuse-port t`)"
    print ""
    print "`lisp-echo.lisp --loops 2`: two threads, each with its own event loop and `tcp-ssl-server` on the same port (`:reuse-port t`, shared `:ticket-keys`), not pinned, against tlsload with 2 threads, also not pinned.  **On this 2-core machine the server and the load generator share both cores, so the rates are bounded by the load generator** (its CPU use is in the table): the figure to compare with one loop is the server CPU per handshake.  One loop: the pinned figures above."
    print ""
    print "| figure | better | 1 loop (pinned, core 0) | 2 loops (both cores) | 2 loops vs 1 | tlsload CPU, 2 loops (of 2 cores) |"
    print "|---|---|---|---|---|---|"
    nm = split("hs_ec_16|hps|higher|Full handshakes/s, ECDSA P-256, 16 conns;hs_ec_16|server_us_per_hs|lower|  same, server CPU µs per handshake;hs_ec_16|server_cpu|–|  same, server CPUs used;tput8|mibps|higher|Echo throughput, 8 conns, 16 KiB (MiB/s);tput8|server_mib_per_cpu_s|higher|  same, MiB echoed per server CPU-second", M, ";")
    for (i = 1; i <= nm; i++) {
        split(M[i], f, "|")
        o = median(vals["lisp" SUBSEP f[1] SUBSEP f[2]])
        t = median(vals["lisp-2loops" SUBSEP f[1] SUBSEP f[2]])
        r = ratio(t, o, f[3])
        printf "| %s | %s | %s | %s | %s | %s |\n", f[4], f[3], cell("lisp", f[1], f[2]), cell("lisp-2loops", f[1], f[2]), rtext(r),
            num(median(vals["lisp-2loops" SUBSEP f[1] SUBSEP "client_cpu"]))
    }
    print ""
    print "## Our client (tcp-ssl-connect) against Node's tls echo server"
    print ""
    print "| figure | better | ours (lisp-client.lisp) | node tls client | tlsload | ours vs node client | ours vs tlsload | issue 14 target |"
    print "|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= nc; i++) {
        split(C[i], f, "|")
        us = f[7] == "" ? "lisp-client" : f[7]
        o = median(vals[us SUBSEP f[1] SUBSEP f[2]])
        rn = pratio(us, "node-client", f[1], f[2], f[3]); rt = pratio(us, "tlsload", f[1], f[2], f[3])
        printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", f[4], f[3], cell(us, f[1], f[2]),
            have["node-client"] ? cell("node-client", f[1], f[2]) : "skipped", cell("tlsload", f[1], f[2]),
            rtext(rn), rtext(rt), target_text(f[6], rn, "", o, "")
        printf "\"%s\" %s %s\n", f[5], rn == "" ? "NaN" : rn, rt == "" ? "NaN" : rt >> pclient
    }
    r = pratio("lisp-client", "lisp-client-shared", "chs16", "hps", "higher")
    print ""
    rc = pratio("lisp-client", "lisp-client-shared", "chs16", "client_us_per_hs", "lower")
    print "Trust store per connect: our client's full handshakes (16 conns, verifying) with default settings (`:ca-file` on every `tcp-ssl-connect`: the library's cached context) vs. with one `as-ssl:make-ssl-context` passed as `:ssl-ctx`.  Both ratios are about 1 when default settings cost nothing extra (no context made and no trust store loaded per connect; upstream made both per connect); the CPU ratio is the steadier one on a busy machine."
    print ""
    print "| default settings (hs/s) | shared :ssl-ctx (hs/s) | default / shared, hs/s | client CPU µs/hs, default | client CPU µs/hs, shared | shared / default, CPU µs | issue 6 target (hs/s within 10%) |"
    print "|---|---|---|---|---|---|---|"
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", cell("lisp-client", "chs16", "hps"), cell("lisp-client-shared", "chs16", "hps"),
        rtext(r), cell("lisp-client", "chs16", "client_us_per_hs"), cell("lisp-client-shared", "chs16", "client_us_per_hs"),
        rtext(rc), target_text("ctx:0.9", r, "", "", "")
    printf "\"ctx: default/shared hs/s\" %s NaN\n", r == "" ? "NaN" : r >> pclient
    printf "\"ctx: CPU per hs\" %s NaN\n", rc == "" ? "NaN" : rc >> pclient
    print ""
    print "Notes:"
    print ""
    print "- Better: the direction in which a figure is better (higher MiB/s, handshakes/s and messages/s; lower latency, CPU µs and KiB)."
    print "- Server CPU is the server process's user+system time over the measured window (tlsload `--server-pid`), so CPU per unit of work is comparable even when the client is the bottleneck; client CPU is the client process's own."
    print "- Idle: tlsload opens the connections (handshake and a 1-byte echo each), holds them, and samples the server's VmRSS; per connection = (RSS while holding − RSS before) / established.  \"Still held\" is the server's VmRSS 1 s after tlsload closed them, minus RSS before, per former connection."
    print "- cl+ssl: Debian's cl-plus-ssl, blocking streams over sb-bsd-sockets, one thread per connection, certificate and key given to make-ssl-server-stream (cl+ssl loads them per connection), stream buffers raised to 16 KiB (one TLS record), SBCL heap 4 GB."
    print "- Our client and Node's client verify the server (chain and name, a throwaway CA); tlsload runs with `--cafile` so it verifies too; full handshakes only (no resumption: `:session nil`)."
    for (k in errs) {
        split(k, kk, SUBSEP)
        printf "- ⚠ %s, %s: %d errors counted over %d runs%s.\n", kk[1], kk[2], errs[k], runs[k], \
            (k in failed) ? sprintf(" (%d runs gave no result)", failed[k]) : ""
    }
    for (k in died) printf "- The %s server died during:%s (restarted).\n", k, died[k]
    for (k in vals) {
        split(k, kk, SUBSEP)
        if (kk[3] == "established" && kk[2] ~ /^idle/) {
            want = substr(kk[2], 5) + 0
            got = median(vals[k])
            if (got < want) printf "- %s, %s: only %d of %d connections were established (median); the RSS per connection is over those.\n", kk[1], kk[2], got, want
        }
    }
}
