"""The PyTorch side of the benchmarks: thread setup, timing (a warm-up run, then the median of
REPEATS), the shared deterministic data generator (splitmix64 + Box-Muller, the same numbers as
bench/common.lua), peak resident memory and the RESULT lines that bench/run.sh turns into a table."""
import gc
import math
import os
import resource
import statistics
import time

import numpy as np
import torch

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
# median_time(fn, "auto"): a short workload repeats until its timed runs add up to MIN_SECONDS (at
# most MAX_REPEATS runs), as bench/common.lua does; only for a fn whose every run starts from the
# same state
MIN_SECONDS = float(os.environ.get("BENCH_MIN_SECONDS", "0.25"))
MAX_REPEATS = 41
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
torch.set_num_threads(THREADS)

# ------------------------------------------------------------------ generator
# bits(seed, k) = mix(seed + (k + 1) * G) mod 2^64; uniform = (bits >> 11) * 2^-53;
# normal(seed, k) = sqrt(-2 log(1 - uniform(seed, 2k))) * cos(2 pi uniform(seed, 2k + 1));
# index(seed, k, n) = (bits >> 11) % n. float64, then float32 where the tensor is float32.
_G, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def bits(seed, k):
    """k: a uint64 array of counters; returns the uint64 array of mixed bits."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (k + np.uint64(1)) * _G
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def uniform(seed, count, start=0):
    k = np.arange(start, start + count, dtype=np.uint64)
    return (bits(seed, k) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def normal(seed, count):
    out = np.empty(count)
    step = 1 << 21
    for s in range(0, count, step):
        c = min(step, count - s)
        u = uniform(seed, 2 * c, 2 * s)
        out[s:s + c] = np.sqrt(-2.0 * np.log(1.0 - u[0::2])) * np.cos(2.0 * np.pi * u[1::2])
    return out


def index(seed, count, n):
    return (bits(seed, np.arange(count, dtype=np.uint64)) >> np.uint64(11)) % np.uint64(n)


def linear_init(seed, count, fan_in):
    """PyTorch's Linear init range, from the generator: a * (2u - 1), a = 1/sqrt(fan_in)."""
    a = 1.0 / np.sqrt(fan_in)
    return torch.from_numpy((a * (2.0 * uniform(seed, count) - 1.0)).astype(np.float32))


# ------------------------------------------------------------------ timing and reporting
def median_time(fn, repeats=None):
    w0 = time.perf_counter()
    ret = fn()
    if repeats == "auto":
        warm = time.perf_counter() - w0
        repeats = max(REPEATS, min(MAX_REPEATS, math.ceil(MIN_SECONDS / max(warm, 1e-9))))
    times = []
    for _ in range(repeats or REPEATS):
        ret = None  # each repeat from the same state, as bench/common.lua's
        gc.collect()
        t0 = time.perf_counter()
        ret = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), ret


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def result(name, value, unit, derived=None, nums=(), check="-"):
    """The moongrad side's line names the units and the limit; this side gives its own figures."""
    print("RESULT name=%s value=%.6g unit=%s derived=%s rss=%.0f nums=%s check=%s threads=%d" % (
        name, value, unit, "-" if derived is None else "%.4g" % derived, peak_rss_mb(),
        ",".join("%.9g" % v for v in nums) or "-", str(check).replace(" ", ""), THREADS), flush=True)
