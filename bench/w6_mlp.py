"""W6: MLP 784-256-10, cross-entropy, SGD lr 0.05 momentum 0.9, batch 64, on the first W6_SAMPLES
rows (default 6400) of the 60000-sample epoch, extrapolated (data and init: see w6_mlp.lua)."""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

from common import linear_init, median_time, normal, result

EPOCH, DIN, DH, DOUT, BATCH, LR, MOM = 60000, 784, 256, 10, 64, 0.05, 0.9
N = int(os.environ.get("W6_SAMPLES", "6400"))
FLOP_PER_SAMPLE = 2 * (DIN * DH + DH * DOUT) + 2 * DIN * DH + 2 * 2 * DH * DOUT
X = (0.1 * normal(61, N * DIN)).astype(np.float32).reshape(N, DIN)
Y = torch.from_numpy(np.argmax(X.astype(np.float64) @ normal(62, DIN * DOUT).reshape(DIN, DOUT), axis=1))
X = torch.from_numpy(X)
init = [linear_init(63, DH * DIN, DIN).reshape(DH, DIN), linear_init(64, DH, DIN),
        linear_init(65, DOUT * DH, DH).reshape(DOUT, DH), linear_init(66, DOUT, DH)]
loss_fn = nn.CrossEntropyLoss()


def run():
    model = nn.Sequential(nn.Linear(DIN, DH), nn.ReLU(), nn.Linear(DH, DOUT))
    with torch.no_grad():
        for p, v in zip(model.parameters(), init):
            p.copy_(v)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOM)
    total, nb = 0.0, 0
    for s in range(0, N, BATCH):
        xb, yb = X[s:s + BATCH], Y[s:s + BATCH]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        total, nb = total + loss.item(), nb + 1
    return model, total / nb


t, (model, mean_loss) = median_time(run)
with torch.no_grad():
    out = model(X)
    final = loss_fn(out, Y).item()
    acc = (out.argmax(1) == Y).double().mean().item()
result("W6_mlp_%dof%d" % (N, EPOCH), t * EPOCH / N, "s/epoch", FLOP_PER_SAMPLE * N / t / 1e9,
       [mean_loss, final, acc], "epoch_loss=%.5f,acc=%.4f" % (mean_loss, acc))
