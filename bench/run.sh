#!/bin/sh
# make bench: runs each workload with moongrad (Lua, wN_*.lua) and with PyTorch (Python, wN_*.py) on
# the same data from the same generator, measures this machine's limits (limits.c), and prints one
# table naming the CPU, the thread count of every figure and the BLAS the PyTorch peer loaded.
#
# moongrad, two builds (columns "installed" and "make"):
#   installed  what a Lua user gets: `luarocks --lua-version=5.4 --tree=<tree> make
#              rockspec/moongrad-scm-1.rockspec`, run on a copy of the working tree (git's tracked and
#              unignored files, so the tree is left clean), installed into BENCH_ROCKS_TREE (default
#              build/rocks). The ratio column and the derived figures are this build's.
#   make       MOONGRAD_BUILD (default build/, from `make`), with the repository's lua/.
# The PyTorch peer: Debian's python3-torch run with /usr/bin/python3, its BLAS from Debian's OpenBLAS
# (libopenblas0-pthread, through the libblas.so.3 alternative; without it torch falls back to netlib's
# reference BLAS at ~6 GFLOP/s). As root, missing python3-torch, python3-numpy or libopenblas0-pthread
# are installed with apt-get; otherwise they are named and the moongrad side runs alone. bench/peer.py
# prints the BLAS torch actually bound (sgemm_ from libtorch_cpu, named by dladdr; OpenBLAS's kernel
# core) and torch's thread settings. bench/peer_env.sh sets the command running the peer: where the
# OpenBLAS predates the CPU and falls back to a narrower core (Prescott on an AVX-512 Xeon), it names
# the nearest core it has in OPENBLAS_CORETYPE; otherwise OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are
# unset for the PyTorch processes.
#
# Threads: every workload on BENCH_THREADS (default 1) on both sides (MOONGRAD_NUM_THREADS,
# OMP_NUM_THREADS and OPENBLAS_NUM_THREADS follow it; torch.set_num_threads does not reach OpenBLAS's
# own pool), and the workloads in BENCH_2T (default "g_sgemm") once more on 2 threads.
# Other environment: BENCH_ROUNDS (how many times the whole set of workloads runs, one after the
# other; each row then shows its median round, default 1: on a noisy machine 3 keeps one burst of
# another tenant's work from moving a row), BENCH_REPEATS (timed runs after a warm-up, median; default 5), W6_SAMPLES
# (default 6400 of the 60000-sample epoch, extrapolated), BENCH_ONLY (workload files to run, e.g.
# "w1_w2_thermo g_sgemm"), BENCH_BUILDS ("installed make" by default; "make" skips luarocks).
#
# bench/hog.sh (the CPU-hog case), when the file exists: run.sh runs `sh hog.sh` from bench/ after the
# workloads, with the workloads' environment exported: LUA_PATH / LUA_CPATH select the measured build
# (installed, else make), BENCH_THREADS, BENCH_REPEATS, MOONGRAD_NUM_THREADS, OMP_NUM_THREADS,
# OPENBLAS_NUM_THREADS, BENCH_PEER (1 when the PyTorch peer runs) and PY (the command running the peer,
# from bench/peer_env.sh: use it unquoted, `$PY file.py`). Every stdout line starting
# with "RESULT " (common.lua's format; its threads= field says e.g. "2+hog", and a field vs1t= gives
# the row's time over the same run's 1-thread time, the figure of the target "<= 1.1") becomes a row of
# the table, and a line that also holds side=pytorch is the PyTorch figure of the row with the same name
# and threads; every other line is printed under the table as it is. A failure is reported, not fatal.
cd "$(dirname "$0")" || exit 1
ROOT=$(cd .. && pwd)
BUILD_DIR=${MOONGRAD_BUILD:-$ROOT/build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
ROCKS=${BENCH_ROCKS_TREE:-$ROOT/build/rocks}
case $ROCKS in /*) ;; *) ROCKS=$ROOT/$ROCKS ;; esac
BUILDS=${BENCH_BUILDS:-installed make}
export BENCH_THREADS=${BENCH_THREADS:-1}
export W6_SAMPLES=${W6_SAMPLES:-6400}
ROUNDS=${BENCH_ROUNDS:-1}
case $ROUNDS in '' | *[!0-9]* | 0) echo "bench: BENCH_ROUNDS must be a whole number of rounds, 1 or more (got '$ROUNDS')"; exit 1 ;; esac
BENCH_2T=${BENCH_2T-g_sgemm}
PYTHON=/usr/bin/python3
PY="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $PYTHON"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/moongrad-bench.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
START=$(date +%s)

# ---------------------------------------------------------------- the peer's packages
PEER_PKGS="python3-torch python3-numpy libopenblas0-pthread"
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
    for p in $PEER_PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
elif ! $PYTHON -c "import torch, numpy" 2>/dev/null; then
    missing=" python3-torch python3-numpy"
fi
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench: installing$missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >"$TMP/apt.txt" 2>&1 \
        && missing="" || { echo "bench: apt-get install$missing failed:"; tail -5 "$TMP/apt.txt"; }
fi
BENCH_PEER=0
if [ -n "$missing" ]; then
    echo "bench: the PyTorch peer needs these Debian packages:$missing"
    echo "bench: install them with:  sudo apt-get install$missing   (running the moongrad side alone)"
elif $PY -c "import torch, numpy" 2>/dev/null; then
    BENCH_PEER=1
else
    echo "bench: torch does not import with $PYTHON: running the moongrad side alone"
fi
export BENCH_PEER
[ $BENCH_PEER = 1 ] && . ./peer_env.sh

# ---------------------------------------------------------------- the machine
cpu() { sed -n "s/^$1[[:space:]]*: //p" /proc/cpuinfo | head -1; }
CPU_DESC="$(cpu 'model name') ($(cpu vendor_id), family $(cpu 'cpu family') model $(cpu model) stepping $(cpu stepping))"
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)
ISA=$(for f in avx2 fma avx512f; do grep -qw "$f" /proc/cpuinfo && printf '%s ' "$f"; done)
VIRT=""; grep -qw hypervisor /proc/cpuinfo && VIRT=", virtual machine"
LOAD0=$(cut -d' ' -f1 /proc/loadavg)

: > "$TMP/limits.txt"
if cc -O2 -march=native -o "$TMP/limits" limits.c -lpthread 2>"$TMP/cc.txt"; then
    "$TMP/limits" > "$TMP/limits.txt"
else
    echo "bench: limits.c did not build (fractions of the limits left out):"; cat "$TMP/cc.txt"
fi
lim() { sed -n "s/^LIMIT name=$1 value=\([^ ]*\) .*/\1/p" "$TMP/limits.txt"; }

# ---------------------------------------------------------------- the two moongrad builds
# each build: a directory under $TMP holding the LUA_PATH / LUA_CPATH that select it
setbuild() { # setbuild NAME LUA_PATH LUA_CPATH DESCRIPTION
    mkdir -p "$TMP/$1"; printf '%s\n' "$2" > "$TMP/$1/path"; printf '%s\n' "$3" > "$TMP/$1/cpath"
    printf '%s\n' "$4" > "$TMP/$1/desc"; HAVE_BUILDS="$HAVE_BUILDS $1"
}
HAVE_BUILDS=""
for b in $BUILDS; do case $b in
make)
    # a copy of the module as `make` built it, taken before luarocks runs
    if [ -f "$BUILD_DIR/moongrad/core.so" ]; then
        mkdir -p "$TMP/make-so/moongrad" && cp "$BUILD_DIR/moongrad/core.so" "$TMP/make-so/moongrad/"
        setbuild make "$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" "$TMP/make-so/?.so;;" \
            "$BUILD_DIR/moongrad/core.so, by \`make\`${BENCH_MAKE_CC:+ (compiled with: $BENCH_MAKE_CC)}"
    else
        echo "bench: no $BUILD_DIR/moongrad/core.so (run \`make\`): the make column is left out"
    fi ;;
installed)
    if ! command -v luarocks >/dev/null 2>&1; then
        echo "bench: luarocks is not installed: the installed column is left out"; continue
    fi
    mkdir -p "$TMP/src"
    if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$TMP/src" 2>/dev/null)
    else
        (cd "$ROOT" && tar --exclude=./build --exclude='./build-*' -cf - .) | (cd "$TMP/src" && tar xf -)
    fi
    # a tree this user cannot write (build/rocks left by root, say): a fresh one under $TMP
    mkdir -p "$ROCKS" 2>/dev/null
    if ! [ -w "$ROCKS" ] || { [ -d "$ROCKS/lib" ] && ! [ -w "$ROCKS/lib/luarocks/rocks-5.4" ]; }; then
        echo "bench: $ROCKS is not writable here: installing into a temporary tree"; ROCKS=$TMP/rocks
    fi
    rm -rf "$ROCKS/lib/lua/5.4/moongrad" "$ROCKS/share/lua/5.4/moongrad"
    if (cd "$TMP/src" && luarocks --lua-version=5.4 --tree="$ROCKS" make rockspec/moongrad-scm-1.rockspec) \
            >"$TMP/luarocks.txt" 2>&1 && [ -f "$ROCKS/lib/lua/5.4/moongrad/core.so" ]; then
        cc_line=$(grep -E '(^| )-c ' "$TMP/luarocks.txt" | grep -v '^make' | head -1 | sed -E 's#( -c)? [^ ]+\.c( |$)# #; s# -o [^ ]+\.o( |$)# #')
        setbuild installed "$ROCKS/share/lua/5.4/?.lua;$ROCKS/share/lua/5.4/?/init.lua;;" \
            "$ROCKS/lib/lua/5.4/?.so;;" \
            "$ROCKS/lib/lua/5.4/moongrad/core.so, by \`luarocks --lua-version=5.4 --tree=$ROCKS make rockspec/moongrad-scm-1.rockspec\`${cc_line:+ (first compile line: $cc_line)}"
    else
        echo "bench: luarocks make failed (the installed column is left out):"; tail -15 "$TMP/luarocks.txt"
    fi ;;
*) echo "bench: unknown build '$b' in BENCH_BUILDS (installed, make)" ;;
esac; done
[ -n "$HAVE_BUILDS" ] || { echo "bench: no moongrad build to measure"; exit 1; }
set -- $HAVE_BUILDS; MAIN=$1   # the build the ratios are of: installed when it built

# ---------------------------------------------------------------- the peer's BLAS
peerinfo() { # peerinfo THREADS
    BENCH_THREADS=$1 MOONGRAD_NUM_THREADS=$1 OMP_NUM_THREADS=$1 OPENBLAS_NUM_THREADS=$1 \
        $PY peer.py > "$TMP/peer_$1.txt" 2>&1 || { echo "bench: peer.py failed:"; cat "$TMP/peer_$1.txt"; }
}
pinfo() { sed -n "s/^PEER $2=//p" "$TMP/peer_$1.txt"; }
WORKLOADS=${BENCH_ONLY:-"w1_w2_thermo w3_thermo_optim w4_linear_single w5_linreg w6_mlp products_w6 w7_elementwise w8_digits w9_convnet g_sgemm"}
two=""   # the workloads run once more on 2 threads
if [ "$BENCH_THREADS" != 2 ]; then
    for w in $BENCH_2T; do case " $WORKLOADS " in *" $w "*) two="$two $w" ;; esac; done
fi
if [ $BENCH_PEER = 1 ]; then
    peerinfo "$BENCH_THREADS"
    [ -n "$two" ] && peerinfo 2
fi

# ---------------------------------------------------------------- the workloads
for b in $HAVE_BUILDS; do : > "$TMP/$b/out.txt"; done
: > "$TMP/py.txt"; : > "$TMP/hog_other.txt"
runall() { # runall THREADS WORKLOAD...
    t=$1; shift
    for w in "$@"; do
        for b in $HAVE_BUILDS; do
            BENCH_THREADS=$t MOONGRAD_NUM_THREADS=$t LUA_PATH=$(cat "$TMP/$b/path") LUA_CPATH=$(cat "$TMP/$b/cpath") \
                lua5.4 "$w.lua" >> "$TMP/$b/out.txt" || { echo "bench: $w.lua ($b build, $t thread(s)) failed"; exit 1; }
        done
        if [ $BENCH_PEER = 1 ]; then
            BENCH_THREADS=$t OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t $PY "$w.py" >> "$TMP/py.txt" \
                || echo "bench: $w.py ($t thread(s)) failed"
        fi
    done
}
export OMP_NUM_THREADS=$BENCH_THREADS OPENBLAS_NUM_THREADS=$BENCH_THREADS MOONGRAD_NUM_THREADS=$BENCH_THREADS
round=0
while [ $round -lt "$ROUNDS" ]; do
    runall "$BENCH_THREADS" $WORKLOADS || exit 1
    [ -n "$two" ] && { runall 2 $two || exit 1; }
    round=$((round + 1))
done
# each row (name and threads) of each side: the round whose value is the median (the lower middle
# one of an even count), so that a burst of another tenant's work moves one round, not the row
median_rows() { # median_rows FILE
    awk '$1 == "RESULT" { key = ""; v = ""
            for (i = 2; i <= NF; i++) { if ($i ~ /^(name|threads)=/) key = key " " $i; if ($i ~ /^value=/) v = substr($i, 7) }
            if (!(key in n)) order[++k] = key
            n[key]++; val[key, n[key]] = v; line[key, n[key]] = $0; next }
        { print }
        END { for (o = 1; o <= k; o++) { key = order[o]; c = n[key]
                for (i = 1; i <= c; i++) idx[i] = i
                for (i = 2; i <= c; i++) for (j = i; j > 1 && val[key, idx[j - 1]] + 0 > val[key, idx[j]] + 0; j--) {
                    t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t }
                print line[key, idx[int((c + 1) / 2)]] } }' "$1" > "$1.median" && mv "$1.median" "$1"
}
if [ "$ROUNDS" -gt 1 ]; then
    for b in $HAVE_BUILDS; do median_rows "$TMP/$b/out.txt"; done
    median_rows "$TMP/py.txt"
fi

# the CPU-hog case (bench/hog.sh, written separately; the contract is in this file's header)
if [ -f hog.sh ]; then
    if LUA_PATH=$(cat "$TMP/$MAIN/path") LUA_CPATH=$(cat "$TMP/$MAIN/cpath") PY="$PY" BENCH_PEER=$BENCH_PEER \
            sh hog.sh > "$TMP/hog.txt" 2>"$TMP/hog_err.txt"; then :; else
        echo "bench: hog.sh failed (exit $?):"; tail -5 "$TMP/hog_err.txt"
    fi
    grep '^RESULT ' "$TMP/hog.txt" | grep -v ' side=pytorch' >> "$TMP/$MAIN/out.txt"
    grep '^RESULT ' "$TMP/hog.txt" | grep ' side=pytorch' >> "$TMP/py.txt"
    grep -v '^RESULT ' "$TMP/hog.txt" > "$TMP/hog_other.txt"
fi

# the limits once more, after the workloads: each limit is the higher of the two measurements (on a
# busy machine a single one can fall well under what the workloads then reach)
if [ -x "$TMP/limits" ]; then
    "$TMP/limits" > "$TMP/limits2.txt"
    awk '$1 == "LIMIT" { split($3, v, "="); n = $2
        if (!(n in best)) { order[++k] = n; best[n] = v[2]; line[n] = $0 }
        else if (v[2] + 0 > best[n] + 0) { best[n] = v[2]; line[n] = $0 } }
        END { for (i = 1; i <= k; i++) print line[order[i]] }' "$TMP/limits.txt" "$TMP/limits2.txt" > "$TMP/limits_max.txt"
    mv "$TMP/limits_max.txt" "$TMP/limits.txt"
fi

# ---------------------------------------------------------------- the table
field() { # field KEY LINE
    printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1
}
find_row() { # find_row FILE NAME THREADS
    grep "^RESULT name=$2 " "$1" 2>/dev/null | while read -r l; do
        [ "$(field threads "$l")" = "$3" ] && { printf '%s\n' "$l"; break; }
    done
}
ratio_of() { awk -v p="$1" -v m="$2" 'BEGIN{ if (p == "-" || m == "-" || m == 0) print "-"; else printf "%.2fx\n", p/m }'; }
OTHER=""; for b in $HAVE_BUILDS; do [ "$b" != "$MAIN" ] && OTHER=$b; done

echo
echo "moongrad bench, $(date -u '+%Y-%m-%d %H:%M UTC'), tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
echo "CPU: $CPU_DESC, $NCPU logical CPUs$VIRT; ${ISA:-no AVX2/FMA/AVX-512}; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$ROUNDS" -gt 1 ] && echo "rounds: $ROUNDS, one after the other; each row shows its median round (BENCH_ROUNDS)"
for b in $HAVE_BUILDS; do echo "moongrad $b: $(cat "$TMP/$b/desc")"; done
if [ $BENCH_PEER = 1 ]; then
    echo "PyTorch: $(pinfo "$BENCH_THREADS" versions) (Debian python3-torch $(dpkg-query -W -f='${Version}' python3-torch 2>/dev/null))"
    echo "PyTorch's BLAS: $(pinfo "$BENCH_THREADS" blas), $(pinfo "$BENCH_THREADS" blas_path); kernel core $(pinfo "$BENCH_THREADS" blas_core); config: $(pinfo "$BENCH_THREADS" blas_config)"
    echo "BLAS libraries in the PyTorch process's /proc/self/maps: $(pinfo "$BENCH_THREADS" blas_mapped)"
    for f in "$TMP"/peer_*.txt; do
        t=${f##*/peer_}; t=${t%.txt}; echo "PyTorch's threads, $t-thread rows: $(pinfo "$t" threads)"
    done
    echo "PyTorch's kernel core: $PEER_NOTE (the peer saw: $(pinfo "$BENCH_THREADS" coretype_env); here: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset})"
else
    echo "PyTorch: not run"
fi
echo
if [ -n "$OTHER" ]; then
    printf '%-22s %-5s %20s %10s %10s %8s %8s %28s %13s %11s %s\n' workload thr "$MAIN" "$OTHER" PyTorch ratio "$OTHER" \
        "derived ($MAIN / PT)" "% of limit" "peak RSS MB" agree
else
    printf '%-22s %-5s %20s %10s %8s %28s %13s %11s %s\n' workload thr "$MAIN" PyTorch ratio \
        "derived ($MAIN / PT)" "% of limit" "peak RSS MB" agree
fi
: > "$TMP/slower.txt"; : > "$TMP/builddiff.txt"; : > "$TMP/numsdiff.txt"; : > "$TMP/rows.txt"
grep '^RESULT' "$TMP/$MAIN/out.txt" | while read -r line; do
    name=$(field name "$line"); value=$(field value "$line"); unit=$(field unit "$line")
    der=$(field derived "$line"); dunit=$(field dunit "$line"); limit=$(field limit "$line")
    tol=$(field tol "$line"); rss=$(field rss "$line"); nums=$(field nums "$line"); thr=$(field threads "$line")
    [ -n "$thr" ] || thr=$BENCH_THREADS
    peer=$(find_row "$TMP/py.txt" "$name" "$thr")
    pvalue=-; pder=-; prss=-; pnums=-; ratio=-; agree=-
    if [ -n "$peer" ]; then
        pvalue=$(field value "$peer"); pder=$(field derived "$peer")
        prss=$(field rss "$peer"); pnums=$(field nums "$peer")
        # ratio > 1: moongrad is faster (every headline figure is a time)
        ratio=$(ratio_of "$pvalue" "$value")
        agree=$(awk -v a="$nums" -v b="$pnums" -v tol="$tol" 'BEGIN{
            split(tol, t, ":"); na = split(a, x, ","); nb = split(b, y, ",")
            if (na != nb || a == "-" || a == "") { print "-"; exit }
            worst = 0
            for (i = 1; i <= na; i++) {
                d = x[i] - y[i]; if (d < 0) d = -d
                m = (x[i] < 0 ? -x[i] : x[i]); n = (y[i] < 0 ? -y[i] : y[i]); if (n > m) m = n
                r = d / (t[1] * m + t[2]); if (r > worst) worst = r
            }
            if (worst <= 1) print "yes"; else printf "no (%.1fx tol)\n", worst }')
    fi
    ovalue=-; oratio=-
    if [ -n "$OTHER" ]; then
        other=$(find_row "$TMP/$OTHER/out.txt" "$name" "$thr")
        if [ -n "$other" ]; then
            ovalue=$(field value "$other"); oratio=$(ratio_of "$pvalue" "$ovalue")
            awk -v a="$value" -v b="$ovalue" 'BEGIN{ exit !(a > 1.1 * b || b > 1.1 * a) }' && \
                echo "$name ($thr thread(s)): $MAIN $value, $OTHER $ovalue $unit ($(ratio_of "$value" "$ovalue") the $OTHER build's time)" >> "$TMP/builddiff.txt"
            [ "$(field nums "$other")" != "$nums" ] && echo "$name" >> "$TMP/numsdiff.txt"
        fi
    fi
    slow=""
    for r in "$MAIN:$ratio" "$OTHER:$oratio"; do
        awk -v r="${r#*:}" 'BEGIN{ r = substr(r, 1, length(r) - 1); exit !(r != "" && r != "-" && r + 0 < 1) }' \
            && slow="$slow, ${r%%:*} build ${r#*:}"
    done
    [ -n "$slow" ] && echo "$name ($thr thread(s)): PyTorch $pvalue $unit, moongrad $value ($MAIN)${OTHER:+ / $ovalue ($OTHER)}: moongrad is slower (ratio${slow#,})" >> "$TMP/slower.txt"
    derived=-
    [ "$der" != "-" ] && derived="$der / $pder $dunit"
    frac=-; L=""
    tn=${thr%%[!0-9]*}; [ -n "$tn" ] || tn=1
    case $limit in
        -|"") ;;
        fma_peak) L=$(lim fma_peak_1core); [ -n "$L" ] && L=$(awk "BEGIN{print $L*$tn}") ;;
        *) L=$(lim "${limit}_${tn}t") ;;
    esac
    if [ -n "$L" ] && [ "$der" != "-" ]; then
        frac=$(awk -v a="$der" -v b="$pder" -v l="$L" 'BEGIN{
            if (b == "-" || b == "") printf "%.0f%%\n", 100*a/l; else printf "%.0f%% / %.0f%%\n", 100*a/l, 100*b/l }')
    fi
    printf '%s %s %s %s %s\n' "$name" "$thr" "$ratio" "${frac%%%*}" "$(field vs1t "$line")" >> "$TMP/rows.txt"
    if [ -n "$OTHER" ]; then
        printf '%-22s %-5s %20s %10s %10s %8s %8s %28s %13s %11s %s\n' "$name" "$thr" "$value $unit" "$ovalue" "$pvalue" \
            "$ratio" "$oratio" "$derived" "$frac" "$rss / $prss" "$agree"
    else
        printf '%-22s %-5s %20s %10s %8s %28s %13s %11s %s\n' "$name" "$thr" "$value $unit" "$pvalue" "$ratio" \
            "$derived" "$frac" "$rss / $prss" "$agree"
    fi
done
echo
if [ -s "$TMP/hog_other.txt" ]; then echo "hog.sh:"; cat "$TMP/hog_other.txt"; echo; fi
# issue 10's targets: PyTorch time / moongrad time of the $MAIN build (and the fractions of a limit)
target() { # target LABEL NAME THREADS COLUMN MIN [KIND]: COLUMN 3 ratio, 4 % of limit, 5 vs1t (at most MIN)
    awk -v label="$1" -v name="$2" -v thr="$3" -v col="$4" -v min="$5" '
        $1 == name && $2 == thr { v = $col; sub(/x$/, "", v); found = 1 }
        END {
            unit = (col == 4 ? "%" : "x"); want = (col == 5 ? "<= " : ">= ") min unit
            if (!found || v == "" || v == "-") { printf "  %-52s %-9s %10s  %s\n", label, want, "-", "not measured"; exit }
            ok = (col == 5 ? v + 0 <= min + 0 : v + 0 >= min + 0)
            printf "  %-52s %-9s %9s%s  %s\n", label, want, v, unit, ok ? "met" : "MISSED" }' "$TMP/rows.txt"
}
if [ $BENCH_PEER = 1 ] && [ "$BENCH_THREADS" = 1 ]; then
    echo "Issue 10's targets ($MAIN build, PyTorch with $(pinfo 1 blas); this run, this machine):"
    target "W1 book loop, hand gradient (1 thread)" W1_thermo_manual 1 3 30
    target "W2 autograd (1 thread)" W2_thermo_autograd 1 3 20
    target "W4 nn.Linear single-sample SGD (1 thread)" W4_linear_single 1 3 30
    target "W7 a + b, 11 elements (1 thread)" W7_add_11 1 3 8
    target "W7 a + b, 10^6 elements (1 thread)" W7_add_1e6 1 3 1.0
    target "W7 a + b, 10^6 elements: % of the triad limit" W7_add_1e6 1 4 85
    target "W5 full-batch linear regression (1 thread)" W5_linreg_fullbatch 1 3 1.5
    target "W6 MLP 784-256-10 (1 thread)" "W6_mlp_${W6_SAMPLES}of60000" 1 3 1.5
    target "W6's products alone: % of one core's FMA peak" W6_products_only 1 4 85
    target "W8 digits MLP step (1 thread)" W8_digits_mlp 1 3 20
    target "W9 the book's convnet, a Fashion-MNIST epoch (1 thread; issue 13)" W9_convnet_book 1 3 3
    target "G sgemm 1024^3 (1 thread)" G_sgemm_1024 1 3 1.1
    target "G sgemm 1024^3 (2 threads)" G_sgemm_1024 2 3 1.1
    hogrows=$(awk '$2 ~ /hog/ && $5 != "" && $5 != "-" { print $1, $2 }' "$TMP/rows.txt")
    if [ -n "$hogrows" ]; then
        printf '%s\n' "$hogrows" | while read -r n t; do
            target "$n ($t threads): time / its 1-thread time" "$n" "$t" 5 1.1
        done
    else
        target "2 threads with a CPU hog on one core: / 1 thread" - - 5 1.1
    fi
    echo
fi
if [ $BENCH_PEER = 1 ]; then
    if [ -s "$TMP/slower.txt" ]; then
        echo "Where moongrad is slower than PyTorch (ratio < 1):"; sed 's/^/  /' "$TMP/slower.txt"
    else
        echo "moongrad ($MAIN) is slower than PyTorch in no row of this run."
    fi
fi
if [ -n "$OTHER" ]; then
    if [ -s "$TMP/builddiff.txt" ]; then
        echo "Where the $MAIN and $OTHER builds differ by more than 10 %:"; sed 's/^/  /' "$TMP/builddiff.txt"
    else
        echo "The $MAIN and $OTHER builds are within 10 % of each other in every row."
    fi
    if [ -s "$TMP/numsdiff.txt" ]; then
        echo "Final numbers differing between the two builds (%.9g): $(paste -sd' ' "$TMP/numsdiff.txt")"
    else
        echo "Final numbers (%.9g) identical in the two builds in every row."
    fi
fi
echo
echo "limits (the higher of a measurement before and one after the workloads): $(sed -n 's/^LIMIT name=\([^ ]*\) value=\([^ ]*\) unit=\(.*\)/\1 \2 \3/p' "$TMP/limits.txt" | paste -sd';' | sed 's/;/; /g')"
echo "thr: the threads of the row's figures, on both sides. ratio: PyTorch time / moongrad time (above 1: moongrad is"
echo "faster), of the $MAIN build${OTHER:+; the columns $OTHER: the time and ratio of that build}. % of limit: the derived figure"
echo "(moongrad / PyTorch) against the limit measured in this run on as many threads (W5: read bandwidth at W5's size;"
echo "W7: triad at W7's size; W6, G: one core's FMA peak times the threads; W6 counts its products' FLOPs over"
echo "the whole step, a lower bound; W6_products_only times W6's five products alone). W6 trains on the first $W6_SAMPLES of the 60000"
echo "samples, its s/epoch extrapolated. agree: the final numbers (params, loss, accuracy) within float32"
echo "tolerance; peak RSS: each process's VmHWM / ru_maxrss. A busy machine makes them noisy."
echo "total run time: $(( $(date +%s) - START )) s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v s="$LOAD0" -v e="$(cut -d' ' -f1 /proc/loadavg)" -v n="$NCPU" 'BEGIN{ exit !(s > n / 2 || e > n + 0.5) }' &&
    echo "bench: the machine was busy (load average above the run's own share): these figures are not a record"
exit 0
