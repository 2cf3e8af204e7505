#!/bin/sh
# make bench: runs each workload with moongrad (Lua) and with PyTorch (Python) on the same data from
# the same generator, measures this machine's limits (limits.c), and prints one table.
# PyTorch is Debian's python3-torch, run with /usr/bin/python3 (installed when missing and root;
# otherwise the moongrad side runs alone). Both sides use BENCH_THREADS threads (default 1).
# Environment: MOONGRAD_BUILD (the build dir holding moongrad/core.so, default build/),
# BENCH_REPEATS (timed runs after a warm-up, median; default 5), BENCH_THREADS, W6_SAMPLES
# (default 6400 of the 60000-sample epoch, extrapolated), BENCH_ONLY (workload files to run,
# e.g. "w1_w2_thermo g_sgemm").
cd "$(dirname "$0")" || exit 1
ROOT=$(cd .. && pwd)
BUILD_DIR=${MOONGRAD_BUILD:-$ROOT/build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$BUILD_DIR/?.so;;"
export BENCH_THREADS=${BENCH_THREADS:-1}
export MOONGRAD_NUM_THREADS=$BENCH_THREADS OMP_NUM_THREADS=$BENCH_THREADS OPENBLAS_NUM_THREADS=$BENCH_THREADS
export W6_SAMPLES=${W6_SAMPLES:-6400}
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/moongrad-bench.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
START=$(date +%s)

if ! $PY -c "import torch, numpy" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        echo "bench: installing python3-torch"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-numpy) >/dev/null
    fi
fi
if $PY -c "import torch, numpy" 2>/dev/null; then HAVE_TORCH=1; else
    HAVE_TORCH=0
    echo "bench: python3-torch is not installed (and not root): running the moongrad side alone"
fi

# the machine's limits, measured now
: > "$TMP/limits.txt"
if cc -O2 -march=native -o "$TMP/limits" limits.c -lpthread 2>"$TMP/cc.txt"; then
    "$TMP/limits" > "$TMP/limits.txt"
else
    echo "bench: limits.c did not build (fractions of the limits left out):"; cat "$TMP/cc.txt"
fi
lim() { sed -n "s/^LIMIT name=$1 value=\([^ ]*\) .*/\1/p" "$TMP/limits.txt"; }

WORKLOADS=${BENCH_ONLY:-"w1_w2_thermo w3_thermo_optim w4_linear_single w5_linreg w6_mlp w7_elementwise w8_digits g_sgemm"}
: > "$TMP/lua.txt"; : > "$TMP/py.txt"
for w in $WORKLOADS; do
    lua5.4 "$w.lua" >> "$TMP/lua.txt" || { echo "bench: $w.lua failed"; exit 1; }
    if [ $HAVE_TORCH = 1 ]; then $PY "$w.py" >> "$TMP/py.txt" || echo "bench: $w.py failed"; fi
done

field() { # field KEY LINE
    printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}
echo
printf '%-22s %19s %10s %7s %30s %13s %11s %s\n' workload moongrad PyTorch ratio \
    "derived (mg / PT)" "% of limit" "peak RSS MB" agree
grep '^RESULT' "$TMP/lua.txt" | while read -r line; do
    name=$(field name "$line"); value=$(field value "$line"); unit=$(field unit "$line")
    der=$(field derived "$line"); dunit=$(field dunit "$line"); limit=$(field limit "$line")
    tol=$(field tol "$line"); rss=$(field rss "$line"); nums=$(field nums "$line")
    peer=$(grep "^RESULT name=$name " "$TMP/py.txt" | head -1)
    pvalue=-; pder=-; prss=-; pnums=-; ratio=-; agree=-
    if [ -n "$peer" ]; then
        pvalue=$(field value "$peer"); pder=$(field derived "$peer")
        prss=$(field rss "$peer"); pnums=$(field nums "$peer")
        # ratio > 1: moongrad is faster (every headline figure is a time)
        ratio=$(awk "BEGIN{printf \"%.2fx\", $pvalue/$value}")
        agree=$(awk -v a="$nums" -v b="$pnums" -v tol="$tol" 'BEGIN{
            split(tol, t, ":"); na = split(a, x, ","); nb = split(b, y, ",")
            if (na != nb || a == "-") { print "-"; exit }
            worst = 0
            for (i = 1; i <= na; i++) {
                d = x[i] - y[i]; if (d < 0) d = -d
                m = (x[i] < 0 ? -x[i] : x[i]); n = (y[i] < 0 ? -y[i] : y[i]); if (n > m) m = n
                r = d / (t[1] * m + t[2]); if (r > worst) worst = r
            }
            if (worst <= 1) print "yes"; else printf "no (%.1fx tol)\n", worst }')
    fi
    derived=-
    [ "$der" != "-" ] && derived="$der / $pder $dunit"
    frac=-
    case $limit in
        -) ;;
        fma_peak) L=$(lim fma_peak_1core); [ -n "$L" ] && L=$(awk "BEGIN{print $L*$BENCH_THREADS}") ;;
        *) L=$(lim "${limit}_${BENCH_THREADS}t") ;;
    esac
    if [ "$limit" != "-" ] && [ -n "$L" ]; then
        frac=$(awk -v a="$der" -v b="$pder" -v l="$L" 'BEGIN{
            if (b == "-" || b == "") printf "%.0f%%\n", 100*a/l; else printf "%.0f%% / %.0f%%\n", 100*a/l, 100*b/l }')
    fi
    printf '%-22s %19s %10s %7s %30s %13s %11s %s\n' "$name" "$value $unit" "$pvalue" "$ratio" \
        "$derived" "$frac" "$rss / $prss" "$agree"
done
echo
echo "limits ($BENCH_THREADS thread(s)): $(sed -n 's/^LIMIT name=\([^ ]*\) value=\([^ ]*\) unit=\(.*\)/\1 \2 \3/p' "$TMP/limits.txt" | paste -sd';' | sed 's/;/; /g')"
echo "ratio: PyTorch time / moongrad time (above 1: moongrad is faster); % of limit: the derived figure"
echo "against the measured limit (W5: read bandwidth at W5's size, W7: triad at W7's size, W6/G: FMA peak)."
echo "W6 trains on the first $W6_SAMPLES of the 60000 samples; its s/epoch is extrapolated to 60000."
echo "agree: the final numbers (params, loss, accuracy) within float32 tolerance; peak RSS: each process's VmHWM / ru_maxrss."
echo "total run time: $(( $(date +%s) - START )) s"
