"""W6's products alone, torch.mm on the same operands (see products_w6.lua)."""
import os

import numpy as np
import torch

from common import median_time, normal, result

BATCH, DIN, DH, DOUT = 64, 784, 256, 10
LOOP = int(os.environ.get("W6P_LOOP", "100"))


def mat(seed, r, c, s):
    return torch.from_numpy((s * normal(seed, r * c)).astype(np.float32).reshape(r, c))


x, W1, W2 = mat(61, BATCH, DIN, 0.1), mat(63, DH, DIN, 1 / 28), mat(65, DOUT, DH, 1 / 16)
h = mat(67, BATCH, DH, 1.0).relu()
g2, g1 = mat(68, BATCH, DOUT, 1 / 64), mat(69, BATCH, DH, 1 / 64)
FLOP = 2 * BATCH * (DIN * DH + DH * DOUT) + 2 * BATCH * DOUT * DH * 2 + 2 * BATCH * DH * DIN


def run():
    for _ in range(LOOP):
        a = torch.mm(x, W1.t()); b = torch.mm(h, W2.t())
        c = torch.mm(g2.t(), h); d = torch.mm(g2, W2); e = torch.mm(g1.t(), x)
    return a, b, c, d, e


t, out = median_time(run)
result("W6_products_only", t / LOOP * 1e6, "us/step", FLOP * LOOP / t / 1e9, [o.sum().item() for o in out])
