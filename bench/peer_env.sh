# Sourced by bench/run.sh and bench/ops.sh (from bench/): sets PY, the command that runs the PyTorch
# peer, and PEER_NOTE, one line saying how its BLAS kernel core was chosen.
#
# A fair peer runs OpenBLAS's kernels for this CPU's widest vector ISA. OpenBLAS (DYNAMIC_ARCH) picks
# its core from cpuid, and a release older than the CPU does not know it: Debian 12's 0.3.21 takes an
# Intel Xeon of family 6 model 207 (Emerald Rapids, AVX-512) for a Prescott and runs SSE3 kernels,
# 4.6x slower in sgemm. There, and only there, the peer gets OPENBLAS_CORETYPE naming the nearest core
# the library has (Cooperlake with AVX-512 BF16, else SkylakeX, for AVX-512; Haswell for AVX2 + FMA),
# as a PyTorch user who noticed would set it. Otherwise OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (set on
# some machines for older OpenBLAS builds; they slow a current one) are unset for the peer.
PYTHON=${PYTHON:-/usr/bin/python3}
PY="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $PYTHON"
PEER_NOTE="OpenBLAS's own choice of kernel core (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for the peer)"
peer_core() { BENCH_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $1 peer.py 2>/dev/null | sed -n 's/^PEER blas_core=//p'; }
cpu_has() { for f in "$@"; do grep -qw "$f" /proc/cpuinfo || return 1; done; }
if $PY -c 'import torch' 2>/dev/null; then
    auto_core=$(peer_core "$PY")
    want=""
    if cpu_has avx512f avx512bw avx512dq avx512vl; then
        case $auto_core in SkylakeX | Cooperlake | SapphireRapids | "") ;;
        *) if cpu_has avx512_bf16; then want=Cooperlake; else want=SkylakeX; fi ;; esac
    elif cpu_has avx2 fma; then
        case $auto_core in Haswell | Zen | SkylakeX | Cooperlake | SapphireRapids | "") ;;
        *) want=Haswell ;; esac
    fi
    if [ -n "$want" ]; then
        forced="env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=$want $PYTHON"
        if [ "$(peer_core "$forced")" = "$want" ]; then
            PY=$forced
            PEER_NOTE="OPENBLAS_CORETYPE=$want for the peer: unset, this OpenBLAS takes this CPU for a $auto_core (it predates the CPU) and runs that core's narrower kernels"
        else
            PEER_NOTE="OpenBLAS chose $auto_core, narrower than this CPU, and did not take OPENBLAS_CORETYPE=$want: the peer is handicapped here"
        fi
    fi
fi
