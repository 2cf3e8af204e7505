"""W5: full-batch linear regression with autograd, X 10^6 x 16 float32, 50 steps (data: see
w5_linreg.lua)."""
import os

import numpy as np
import torch

from common import REPEATS, median_time, normal, result

N, D = int(os.environ.get("W5_ROWS", "1000000")), 16
STEPS, LR = 50, 0.1
X = torch.from_numpy(normal(51, N * D).astype(np.float32).reshape(N, D))
true_w = normal(52, D)
y = torch.from_numpy((X.double().numpy() @ true_w + 0.5 + 0.01 * normal(53, N)).astype(np.float32))


def run():
    w = torch.zeros(D, requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    loss = None
    for _ in range(STEPS):
        pred = X @ w + b
        loss = ((pred - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w -= LR * w.grad
            b -= LR * b.grad
        w.grad.zero_()
        b.grad.zero_()
    return w, b, loss


t, (w, b, loss) = median_time(run, min(REPEATS, 3))  # the longest workload: 3 timed runs
err = float(np.abs(w.detach().double().numpy() - true_w).max())
result("W5_linreg_fullbatch", t / STEPS * 1e3, "ms/step", (N * D + N) * 4 * STEPS / t / 1e9,
       [loss.item(), b.item(), w[0].item()], "loss=%.4g,max|w-true_w|=%.2g" % (loss.item(), err))
