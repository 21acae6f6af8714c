# profile-split.awk -- splits the samples of `perf script -F ip,sym,dso`
# (call graphs recorded with --call-graph dwarf) of an echo server into
# where the CPU goes: one line per category, largest first.  profile.sh
# runs it; the categories are those of README's "Where the time goes".
function has(pat,    i) { for (i = 1; i <= nf; i++) if (fs[i] ~ pat) return 1; return 0 }
function origin() {         # which copy or allocation a memmove/memset/fault serves
    if (has("^(zeroize_pages_if_needed|gc_alloc_large|zero_all_free_ranges|prepare_pages)$")) return "SBCL zero-filling fresh Lisp vectors"
    if (has("^bio_write$")) return "ciphertext into the filter's out buffer"
    if (has("^bio_read$")) return "ciphertext into OpenSSL's record buffer"
    if (has("^casl_tls_feed$") && has("^casl__tbuf_(append|reserve)$")) return "ciphertext kept between reads (filter in)"
    if (has("^casl__wq_append$")) return "write queue"
    if (has("^casl__buf_fit$")) return "read event copies"
    if (has("^SSL_(read|peek)_ex$")) return "plaintext out of OpenSSL (read buffers)"
    if (has("^SSL_write_ex$")) return "plaintext into OpenSSL's records"
    if (lisp) return "into Lisp vectors (read-cb data, stream buffers)"
    return "other"
}
function flush_sample(    i, leaf, ldso, cat) {
    if (nf == 0) return
    total++
    lisp = 0
    for (i = nf; i >= 1; i--) if (fd[i] == "inlined") fd[i] = (i < nf ? fd[i + 1] : "?")
    for (i = 2; i <= nf; i++) if (fd[i] ~ /perf-[0-9]+\.map|JIT|sbcl/ && fd[i - 1] !~ /sbcl/) { lisp = 1; break }
    leaf = fs[1]; ldso = fd[1]
    if (ldso ~ /kernel/)
        cat = has("exc_page_fault") ? "kernel page faults: " origin() : "kernel: TCP, syscalls, copies"
    else if (leaf ~ /mem(set|move|cpy)/)
        cat = (leaf ~ /memset/ ? "memset: " : "memmove: ") origin()
    else if (leaf ~ /strcmp/)
        cat = "strcmp (OpenSSL 3.0 per-record cipher setup)"
    else if (ldso ~ /libc\.so/ && leaf ~ /malloc|free|_int_|realloc|tcache|unlink|sysmalloc|systrim|brk/)
        cat = "malloc/free"
    else if (ldso ~ /libc\.so/) cat = "libc: other"
    else if (ldso ~ /libcrypto/) cat = "libcrypto (AES-GCM and the rest)"
    else if (ldso ~ /libssl/) cat = "libssl (records)"
    else if (ldso ~ /libcl-async-ssl/) cat = "our C library"
    else if (ldso ~ /libuv/) cat = "libuv"
    else if (ldso ~ /sbcl|perf-[0-9]+\.map|JIT|unknown/) cat = "Lisp + SBCL runtime"
    else cat = "other: " ldso
    n[cat]++
    nf = 0
}
/^[^ \t]/ { flush_sample(); next }
/^[ \t]*$/ { flush_sample(); next }
{
    line = $0
    sub(/^[ \t]+[0-9a-f]+ /, "", line)
    dso = line; sub(/.*\(/, "", dso); sub(/\)$/, "", dso)
    sym = line; sub(/ \([^()]*\)$/, "", sym); sub(/\+0x[0-9a-f]+$/, "", sym)
    nf++; fs[nf] = sym; fd[nf] = dso
}
END {
    flush_sample()
    for (c in n) printf "%6.1f%%  %s\n", 100 * n[c] / total, c | "sort -rn"
    close("sort -rn")
    printf "%d samples\n", total
}
