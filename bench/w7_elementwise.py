"""W7: c = a + b on float32 tensors, 11 elements (ns/op) and 10^6 (GB/s); data: see w7_elementwise.lua."""
import os

import numpy as np
import torch

from common import median_time, result, uniform

SMALL = int(os.environ.get("W7_SMALL_LOOP", "1000000"))
LARGE = int(os.environ.get("W7_LARGE_LOOP", "200"))


def tensor(seed, n):
    return torch.from_numpy(uniform(seed, n).astype(np.float32))


a, b = tensor(71, 11), tensor(72, 11)


def small():
    c = None
    for _ in range(SMALL):
        c = a + b
    return c


t, c = median_time(small, "auto")
result("W7_add_11", t / SMALL * 1e9, "ns/op", nums=[c[0].item(), c[5].item(), c[10].item()])
n = 1000000
x, y = tensor(73, n), tensor(74, n)


def large():
    c = None
    for _ in range(LARGE):
        c = x + y
    return c


t, c = median_time(large, "auto")
result("W7_add_1e6", t / LARGE * 1e6, "us/op", 12 * n / (t / LARGE) / 1e9,
       [c[0].item(), c[n // 2 - 1].item(), c.sum().item()])
