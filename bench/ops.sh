#!/bin/sh
# make bench-ops: bench/ops.lua (moongrad, the make build) and bench/ops.py (PyTorch with its BLAS, as
# make bench runs it) side by side, 1 thread, the common ops one by one on a 1000 x 256 float32
# tensor; ratio = PyTorch's time / moongrad's (above 1: moongrad is faster), "slower" marks the rest.
cd "$(dirname "$0")" || exit 1
ROOT=$(cd .. && pwd)
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$ROOT/build/?.so;;"
export MOONGRAD_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
grep -m1 "model name" /proc/cpuinfo | sed 's/^model name[^:]*: /CPU: /'
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), tree $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), 1 thread, us per call"
lua5.4 ops.lua > "$tmp/mg" || exit 1
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  . ./peer_env.sh
  echo "PyTorch's kernel core: $PEER_NOTE"
  $PY ops.py > "$tmp/pt" || exit 1
else
  echo "(no PyTorch here: python3-torch; moongrad's side alone)"
  awk '{print $1, "-"}' "$tmp/mg" > "$tmp/pt"
fi
printf '%-26s %10s %10s %8s\n' op moongrad PyTorch ratio
paste -d' ' "$tmp/mg" "$tmp/pt" | awk '{
  if ($3 == "-") { printf "%-26s %10s %10s %8s\n", $1, $2, "-", "-"; next }
  r = $4 / $2; printf "%-26s %10.1f %10.1f %7.2fx%s\n", $1, $2, $4, r, (r < 1 ? "  slower" : "") }'
