"""W7 with PyTorch: c = a + b on float32 tensors, 11 elements (ns/op) and 10^6 (GB/s)."""
import os
import statistics
import time

import torch

torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
SMALL = int(os.environ.get("W7_SMALL_LOOP", "1000000"))
LARGE = int(os.environ.get("W7_LARGE_LOOP", "200"))


def median_time(fn):
    fn()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def result(name, value, unit):
    print(f"RESULT name={name} value={value:.6g} unit={unit} check=")


a, b = torch.rand(11), torch.rand(11)


def small():
    for _ in range(SMALL):
        c = a + b
    return c


result("w7_add_11", median_time(small) / SMALL * 1e9, "ns/op")
n = 1000000
x, y = torch.rand(n), torch.rand(n)


def large():
    for _ in range(LARGE):
        c = x + y
    return c


result("w7_add_1e6", 12 * n / (median_time(large) / LARGE) / 1e9, "GB/s")
