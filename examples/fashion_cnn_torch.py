# PyTorch 1.13's counterpart of fashion_cnn.lua, for comparison: the same network, data, normalization
# and training (Adam lr 1e-3, cosine schedule, 12 epochs of shuffled batches of 64), on 1 thread.
#   /usr/bin/python3 examples/fashion_cnn_torch.py [seed [epochs [width2]]]
# Prints the same per-epoch numbers as fashion_cnn.lua (docs/examples.md: 92.23% with seed 1).
import gzip
import sys
import time

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 12
width2 = int(sys.argv[3]) if len(sys.argv) > 3 else 32
torch.manual_seed(seed)
DATA = "/usr/share/datasets/fashion-mnist/"


def images(name):
    raw = np.frombuffer(gzip.open(DATA + name).read(), np.uint8, offset=16)
    return torch.from_numpy(raw.reshape(-1, 1, 28, 28).astype(np.float32) / 255)


def labels(name):
    return torch.from_numpy(np.frombuffer(gzip.open(DATA + name).read(), np.uint8, offset=8).astype(np.int64))


X, y = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
Xt, yt = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
mean, std = X.mean().item(), X.std().item()
X, Xt = (X - mean) / std, (Xt - mean) / std
model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, width2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(width2 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
loss_fn = nn.CrossEntropyLoss()
t0, c0 = time.time(), time.process_time()
for epoch in range(1, epochs + 1):
    perm, total = torch.randperm(len(X)), 0.0
    for i in range(0, len(X), 64):
        idx = perm[i:i + 64]
        loss = loss_fn(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    sched.step()
    with torch.no_grad():
        out = torch.cat([model(Xt[i:i + 100]) for i in range(0, len(Xt), 100)])
        acc, test_loss = (out.argmax(1) == yt).float().mean().item(), loss_fn(out, yt).item()
    print(f"Epoch {epoch}/{epochs}, Training loss {total / len(X):.4f}, Test loss {test_loss:.4f}, "
          f"Test accuracy {100 * acc:.2f}%, {time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU",
          flush=True)
