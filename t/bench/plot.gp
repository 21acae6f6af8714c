# plot.gp -- the ratio chart of `make bench` (t/bench/results/latest.png).
#
#   gnuplot -e "serverdat='S'; clientdat='C'; out='latest.png'; stamp='...'" plot.gp
#
# Data files (written by report.awk): one line per figure, "label" r1 r2,
# ratios "ours relative to the peer, > 1 means ours is better"; NaN when a
# peer is missing.  Log scale, so 2x better and 2x worse are equally far
# from the line at 1.0.

set datafile missing "NaN"
# rows per panel (counted before the histogram style is set)
stats serverdat using 0 nooutput
nserver = STATS_records
stats clientdat using 0 nooutput
nclient = STATS_records

set terminal pngcairo size 1500,1100 font "sans,10"
set output out
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 2
set yrange [0.03125:64]
set ytics ("1/32" 0.03125, "1/16" 0.0625, "1/8" 0.125, "1/4" 0.25, "1/2" 0.5, "1" 1, "2" 2, "4" 4, "8" 8, "16" 16, "32" 32, "64" 64)
set grid ytics lc rgb "#dddddd"
set xtics rotate by -40 left noenhanced
set key top left noenhanced
set ylabel "ours relative to peer (> 1: ours better)"
set lmargin 12
set bmargin 7

set multiplot layout 2,1 title "cl-async-ssl: ours relative to the peer, median of runs (" . stamp . ")"

set xrange [-0.7:nserver - 0.3]
set title "Servers: our tcp-ssl-server echo vs Node tls and cl+ssl (tlsload load)"
plot serverdat using 2:xtic(1) title "ours vs node tls" lc rgb "#3b7dd8", \
     '' using 3 title "ours vs cl+ssl" lc rgb "#e8a33d", \
     1 with lines lw 2 lc rgb "#c0392b" title "1.0 (equal)"

set xrange [-0.7:nclient - 0.3]
set title "Clients: our tcp-ssl-connect vs Node tls client and tlsload (against Node's echo server)"
plot clientdat using 2:xtic(1) title "ours vs node client (ctx bars: default settings vs shared :ssl-ctx)" lc rgb "#3b7dd8", \
     '' using 3 title "ours vs tlsload" lc rgb "#6aa84f", \
     1 with lines lw 2 lc rgb "#c0392b" title "1.0 (equal)"

unset multiplot
