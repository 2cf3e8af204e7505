"""Which BLAS the PyTorch peer actually runs on, and its thread settings: bench/run.sh prints this
above the table. After a product (which loads and initialises the BLAS) it reads /proc/self/maps
for the BLAS libraries the process mapped, asks an OpenBLAS for its config and the kernel core it
chose (openblas_get_corename, through ctypes: threadpoolctl is not needed), and flags netlib's
reference BLAS, which a Debian torch falls back to when no fast BLAS is installed.
Output: "PEER key=value" lines (values may hold spaces; one key per line)."""
import ctypes
import os
import platform

import numpy as np
import torch

import common  # noqa: F401  (sets torch's threads from BENCH_THREADS, as every workload does)

a = torch.ones(256, 256)
torch.mm(a, a)

mapped_all = []
with open("/proc/self/maps") as f:
    for line in f:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].strip() not in mapped_all:
            mapped_all.append(parts[5].strip())
mapped = [p for p in mapped_all if "blas" in os.path.basename(p).lower() or "mkl" in os.path.basename(p).lower()]


def openblas_info(path):
    try:
        lib = ctypes.CDLL(path)
        core, config, threads = lib.openblas_get_corename, lib.openblas_get_config, lib.openblas_get_num_threads
    except (OSError, AttributeError):
        return None
    core.restype = config.restype = ctypes.c_char_p
    threads.restype = ctypes.c_int
    return core().decode(), config().decode(), threads()




class DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def sgemm_provider():
    """The file whose sgemm_ torch's libtorch_cpu binds to: looked up from libtorch_cpu's handle
    (its own dependency order, as the dynamic linker binds it) and named by dladdr."""
    torch_lib = [p for p in mapped_all if os.path.basename(p).startswith("libtorch_cpu")]
    if not torch_lib:
        return None
    try:
        fn = ctypes.CDLL(torch_lib[0]).sgemm_
        libdl = ctypes.CDLL(None)
        libdl.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
        info = DlInfo()
        if libdl.dladdr(ctypes.cast(fn, ctypes.c_void_p), ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(info.dli_fname.decode())
    except (OSError, AttributeError):
        pass
    return None


provider = sgemm_provider()
kind, core, config, blas_threads = "unknown", "-", "-", "-"
info = openblas_info(provider) if provider else None
if info:
    kind, (core, config, blas_threads) = "OpenBLAS", info
elif provider and "mkl" in os.path.basename(provider):
    kind = "MKL"
elif provider and "/blas/libblas" in provider:
    kind = "netlib reference BLAS (slow: install libopenblas0-pthread for a fair peer)"
main = provider or "- (sgemm_ not found from libtorch_cpu)"
via = [p for p in mapped if os.path.basename(p).startswith("libblas") and os.path.realpath(p) != provider]
if via and kind == "OpenBLAS":
    main = "%s (through %s)" % (main, via[0])

print("PEER versions=torch %s, numpy %s, Python %s" % (torch.__version__, np.__version__, platform.python_version()))
print("PEER blas=%s" % kind)
print("PEER blas_path=%s" % main)
print("PEER blas_mapped=%s" % (" ".join(mapped) or "-"))
print("PEER blas_config=%s" % config)
print("PEER blas_core=%s" % core)
print("PEER threads=torch %d, interop %d, BLAS %s (OPENBLAS_NUM_THREADS=%s, OMP_NUM_THREADS=%s)" % (
    torch.get_num_threads(), torch.get_num_interop_threads(), blas_threads,
    os.environ.get("OPENBLAS_NUM_THREADS", "unset"), os.environ.get("OMP_NUM_THREADS", "unset")))
print("PEER coretype_env=OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s" % (
    os.environ.get("OPENBLAS_CORETYPE", "unset"), os.environ.get("OPENBLAS_L2_SIZE", "unset")))
