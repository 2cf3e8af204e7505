"""W4: nn.Linear(2, 1) + MSELoss + optim.SGD lr 0.01, 20000 single-sample steps (data: see
w4_linear_single.lua)."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

from common import index, median_time, normal, result

N, STEPS, LR = 1000, 20000, 0.01
X = torch.from_numpy(normal(41, 2 * N).astype(np.float32)).reshape(N, 2)
x64 = X.double().numpy()
Y = torch.from_numpy((2.0 * x64[:, 0] - 3.0 * x64[:, 1] + 0.01 * normal(42, N)).astype(np.float32))
Y = Y.reshape(N, 1)
idx = index(43, STEPS, N).astype(np.int64).tolist()
loss_fn = nn.MSELoss()


def run():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    opt = optim.SGD(model.parameters(), lr=LR)
    for i in idx:
        xi, yi = X[i:i + 1], Y[i:i + 1]
        opt.zero_grad()
        loss = loss_fn(model(xi), yi)
        loss.backward()
        opt.step()
    return model


t, model = median_time(run, "auto")
with torch.no_grad():
    full = loss_fn(model(X), Y).item()
w = model.weight.detach().reshape(-1).tolist()
b = model.bias.item()
result("W4_linear_single", t / STEPS * 1e6, "us/step", STEPS / t, [w[0], w[1], b, full],
       "w=%.4f,%.4f,b=%.5f" % (w[0], w[1], b))
