#!/bin/sh
# hog.sh: the busy-core case of `make bench` (issue 10: "2 threads with a CPU hog on one core: <= 1.1x
# the 1-thread time"). Starts a CPU hog pinned to one core (another program busy there: a game, a
# browser, a second experiment), then runs W6 (bench/w6_mlp.lua) and W7's a + b on 10^6 elements
# (bench/w7_elementwise.lua) with 1 thread and with 2 threads, alternating, and prints RESULT lines
# (bench/common.lua's format) and the ratio: 2 threads with the hog / 1 thread with the hog.
# Self-contained: run.sh calls `sh hog.sh` with its environment; alone, `sh bench/hog.sh` after `make`.
# Environment: LUA_PATH / LUA_CPATH (default: this tree's lua/ and MOONGRAD_BUILD or build/),
# BENCH_REPEATS (timed runs per measurement, median; default 5), W6_SAMPLES (default 6400),
# HOG_CPU (the core the hog is pinned to; default the last online one), HOG_ROUNDS (how many times
# each thread count runs, alternating; the median is reported; default 3).
cd "$(dirname "$0")" || exit 1
ROOT=$(cd .. && pwd)
if [ -z "$LUA_CPATH" ]; then
    BUILD_DIR=${MOONGRAD_BUILD:-$ROOT/build}
    case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
    export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$BUILD_DIR/?.so;;"
fi
export W6_SAMPLES=${W6_SAMPLES:-6400}
ROUNDS=${HOG_ROUNDS:-3}
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
HOG_CPU=${HOG_CPU:-$((NCPU - 1))}

# the hog: a shell busy loop, pinned when taskset is there, killed however this script ends
if command -v taskset >/dev/null 2>&1; then
    taskset -c "$HOG_CPU" sh -c 'while :; do :; done' &
    WHERE="pinned to CPU $HOG_CPU"
else
    sh -c 'while :; do :; done' &
    WHERE="not pinned (no taskset)"
fi
HOG=$!
trap 'kill $HOG 2>/dev/null' EXIT
trap 'exit 130' INT TERM
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)
echo "hog: a busy loop $WHERE; $NCPU CPUs online (${CPU:-unknown CPU}); $ROUNDS rounds of 1 and 2 threads"

# run THREADS SCRIPT NAME: the value of RESULT line NAME printed by SCRIPT on THREADS threads
run() {
    BENCH_THREADS=$1 MOONGRAD_NUM_THREADS=$1 W7_SMALL_LOOP=1000 lua5.4 "$2" |
        sed -n "s/^RESULT name=$3 value=\([^ ]*\) .*/\1/p"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

for w in "w6_mlp.lua W6_mlp_${W6_SAMPLES}of60000 s/epoch" "w7_elementwise.lua W7_add_1e6 us/op"; do
    set -- $w
    one=""; two=""
    r=0
    while [ $r -lt "$ROUNDS" ]; do
        a=$(run 1 "$1" "$2"); b=$(run 2 "$1" "$2")
        [ -n "$a" ] && [ -n "$b" ] || { echo "hog: $1 failed"; exit 1; }
        one="$one $a"; two="$two $b"
        r=$((r + 1))
    done
    m1=$(echo "$one" | median); m2=$(echo "$two" | median)
    ratio=$(awk "BEGIN{printf \"%.3f\", $m2 / $m1}")
    # run.sh's contract: threads= names the case, vs1t= the 2-thread / 1-thread ratio (target <= 1.1)
    echo "RESULT name=${2}_hog value=$m1 unit=$3 threads=1+hog derived=- dunit=- limit=- tol=- rss=- nums=- check=-"
    echo "RESULT name=${2}_hog value=$m2 unit=$3 threads=2+hog vs1t=$ratio derived=- dunit=- limit=- tol=- rss=- nums=- check=-"
    echo "hog: $2: 1 thread$one (median $m1 $3); 2 threads$two (median $m2); 2 threads / 1 thread = $ratio (target <= 1.1)"
done
