"""G: sgemm 1024^3, torch.mm (see g_sgemm.lua)."""
import os

import numpy as np
import torch

from common import median_time, normal, result

S = int(os.environ.get("G_SIZE", "1024"))
LOOP = int(os.environ.get("G_LOOP", "5"))
A = torch.from_numpy(normal(91, S * S).astype(np.float32).reshape(S, S))
B = torch.from_numpy(normal(92, S * S).astype(np.float32).reshape(S, S))


def run():
    C = None
    for _ in range(LOOP):
        C = torch.mm(A, B)
    return C


t, C = median_time(run)
result("G_sgemm_%d" % S, t / LOOP * 1e3, "ms/op", 2 * S ** 3 * LOOP / t / 1e9,
       [C[0, 0].item(), C[S // 2 - 1, S // 3 - 1].item(), C[S - 1, S - 1].item()])
