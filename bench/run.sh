#!/bin/sh
# make bench: runs each workload with moongrad and with PyTorch in one run and prints the ratios.
# PyTorch is Debian's python3-torch, run with /usr/bin/python3 (installed when missing and root).
cd "$(dirname "$0")" || exit 1
ROOT=$(cd .. && pwd)
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$ROOT/build/?.so;;"
PY=/usr/bin/python3
if ! $PY -c "import torch" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-numpy >/dev/null
    else
        echo "bench: python3-torch is not installed: running the moongrad side alone"
    fi
fi
printf '%-22s %20s %20s %8s  %s\n' workload moongrad PyTorch ratio "final numbers (moongrad / PyTorch)"
for w in w1_w2_thermo w7_elementwise; do
    lua5.4 "$w.lua" > /tmp/mg-bench-lua.txt || exit 1
    if $PY -c "import torch" 2>/dev/null; then $PY "$w.py" > /tmp/mg-bench-py.txt; else : > /tmp/mg-bench-py.txt; fi
    grep '^RESULT' /tmp/mg-bench-lua.txt | while read -r _ name value unit check; do
        name=${name#name=}; value=${value#value=}; unit=${unit#unit=}; check=${check#check=}
        peer=$(grep "name=$name " /tmp/mg-bench-py.txt | sed -E 's/.*value=([^ ]+).*/\1/')
        peer_check=$(grep "name=$name " /tmp/mg-bench-py.txt | sed -E 's/.*check=(.*)/\1/')
        if [ -n "$peer" ]; then
            # ratio > 1 means moongrad is better (less time, or more bandwidth)
            case $unit in
                GB/s|GFLOP/s) ratio=$(awk "BEGIN{printf \"%.2fx\", $value/$peer}") ;;
                *) ratio=$(awk "BEGIN{printf \"%.2fx\", $peer/$value}") ;;
            esac
        else peer="-"; ratio="-"; fi
        printf '%-22s %11s %-8s %11s %-8s %7s  %s\n' "$name" "$value" "$unit" "$peer" "$unit" "$ratio" \
            "${check:+$check / ${peer_check:--}}"
    done
done
