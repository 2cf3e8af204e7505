"""W8: the digits MLP 64-64-10, cross-entropy, Adam lr 1e-3, batch 32, one epoch over rows
361..1797 of data/digits.csv (see w8_digits.lua)."""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

from common import linear_init, median_time, result

HOLD, BATCH, LR = 360, 32, 1e-3
d = np.loadtxt(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "digits.csv"),
               delimiter=",", skiprows=1)
X = torch.from_numpy((d[:, :64] / 16.0).astype(np.float32))
Y = torch.from_numpy(d[:, 64].astype(np.int64))
model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
with torch.no_grad():
    for p, (seed, count) in zip(model.parameters(), ((81, 64 * 64), (82, 64), (83, 10 * 64), (84, 10))):
        p.copy_(linear_init(seed, count, 64).reshape(p.shape))
opt = optim.Adam(model.parameters(), lr=LR)
loss_fn = nn.CrossEntropyLoss()
batches = [(X[i:i + BATCH], Y[i:i + BATCH]) for i in range(HOLD, len(X), BATCH)]


def epoch():
    loss = None
    for xb, yb in batches:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
    return loss


t, loss = median_time(epoch)
with torch.no_grad():
    acc = (model(X[:HOLD]).argmax(1) == Y[:HOLD]).double().mean().item()
result("W8_digits_mlp", t / len(batches) * 1e6, "us/step", (len(X) - HOLD) / t, [loss.item(), acc],
       "loss=%.5f,acc=%.4f" % (loss.item(), acc))
