"""W9: the two chapter-8 convnets of w9_convnet.lua (the book's 16/8/32 and examples/fashion_cnn.lua's
32/32/64) on W9_STEPS batches of 64 generated 28x28 images, Adam lr 1e-3, extrapolated to a
60000-image epoch (data and init: see w9_convnet.lua). PyTorch's convolutions go through oneDNN
(mkldnn) on this build."""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

from common import index, median_time, normal, result, uniform

STEPS, BATCH, EPOCH = int(os.environ.get("W9_STEPS", "40")), 64, 60000
N = STEPS * BATCH
X = torch.from_numpy(normal(91, N * 28 * 28).astype(np.float32).reshape(N, 1, 28, 28))
Y = torch.from_numpy((index(92, N, 10)).astype(np.int64))


def run(name, C1, C2, H):
    shapes = [(C1, 1, 3, 3), (C1,), (C2, C1, 3, 3), (C2,), (H, C2 * 49), (H,), (10, H), (10,)]
    fans = [9, 9, 9 * C1, 9 * C1, C2 * 49, C2 * 49, H, H]
    init = [torch.from_numpy(((2.0 * uniform(93 + i, int(np.prod(s))) - 1.0) / np.sqrt(f)).astype(np.float32))
            .reshape(s) for i, (s, f) in enumerate(zip(shapes, fans))]
    conv1, conv2, lin = 2 * 9 * C1 * 28 * 28, 2 * 9 * C1 * C2 * 14 * 14, 2 * (C2 * 49 * H + H * 10)
    flop_per_sample = 2 * conv1 + 3 * conv2 + 3 * lin

    def train():
        model = nn.Sequential(nn.Conv2d(1, C1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(C1, C2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(C2 * 49, H), nn.ReLU(), nn.Linear(H, 10))
        with torch.no_grad():
            for p, v in zip(model.parameters(), init):
                p.copy_(v)
        opt = optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        loss = None
        for s in range(0, N, BATCH):
            opt.zero_grad()
            loss = loss_fn(model(X[s:s + BATCH]), Y[s:s + BATCH])
            loss.backward()
            opt.step()
        return loss.item()

    t, loss = median_time(train, min(int(os.environ.get("BENCH_REPEATS", "5")), 3))
    result(name, t * EPOCH / N, "s/epoch", flop_per_sample * N / t / 1e9, nums=(loss,), check="loss=%.5f" % loss)


ONLY = os.environ.get("W9_ONLY")
if ONLY in (None, "book"):
    run("W9_convnet_book", 16, 8, 32)
if ONLY in (None, "example"):
    run("W9_convnet_example", 32, 32, 64)
