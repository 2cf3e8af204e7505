-- W9 (issue 13): a chapter-8 convnet, Conv2d(1,C1,3,p1) ReLU MaxPool2d(2) Conv2d(C1,C2,3,p1) ReLU
-- MaxPool2d(2) Flatten Linear(C2*49,H) ReLU Linear(H,10), cross-entropy, Adam lr 1e-3, batch 64, on
-- W9_STEPS (default 40) steps of 28x28 images from the shared generator (normal(91), labels
-- index(92) % 10), its time extrapolated to an epoch of Fashion-MNIST's 60000 images. Two networks:
--   W9_convnet_book     C1, C2, H = 16, 8, 32: the book's channel counts (its chapter 8 Net), about
--                       2 MFLOP a sample forward and backward: the network of issue 13's target
--   W9_convnet_example  32, 32, 64: examples/fashion_cnn.lua's (92 % on Fashion-MNIST), 4x the work
-- W9_ONLY=book|example runs one. Init: uniform(93..100) in PyTorch's default ranges
-- (+-1/sqrt(fan_in)). Derived: GFLOP/s of the convolutions and linear layers forward and backward
-- (conv1's input gradient is not needed).
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
B.setup(mg)

local STEPS, BATCH, EPOCH = tonumber(os.getenv("W9_STEPS") or "40"), 64, 60000
local N = STEPS * BATCH
local X = mg.tensor(B.normals(91, 0, N * 28 * 28)):view(N, 1, 28, 28)
local labels = {}
for k = 1, N do labels[k] = B.index(92, k - 1, 10) + 1 end
local Y = mg.tensor(labels, {dtype = "int64"})

local function run(name, C1, C2, H)
  -- FLOPs a sample: conv forward 2*k*k*cin*cout*h*w; backward twice that (input and weight
  -- gradients), conv1 once (no input gradient); the linear layers likewise three times
  local conv1 = 2 * 9 * 1 * C1 * 28 * 28
  local conv2 = 2 * 9 * C1 * C2 * 14 * 14
  local lin = 2 * (C2 * 7 * 7 * H + H * 10)
  local flop_per_sample = 2 * conv1 + 3 * conv2 + 3 * lin
  local shapes = {{C1, 1, 3, 3}, {C1}, {C2, C1, 3, 3}, {C2}, {H, C2 * 7 * 7}, {H}, {10, H}, {10}}
  local fans = {9, 9, 9 * C1, 9 * C1, C2 * 49, C2 * 49, H, H}
  local t, loss = B.median_time(function()
    local nn = mg.nn
    local model = nn.Sequential(nn.Conv2d(1, C1, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(C1, C2, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
      nn.Linear(C2 * 7 * 7, H), nn.ReLU(), nn.Linear(H, 10))
    mg.no_grad(function()
      for i, p in ipairs(model:parameters()) do
        local n = 1
        for _, s in ipairs(shapes[i]) do n = n * s end
        p:copy_(mg.tensor(B.uniforms(92 + i, 0, n, 1 / math.sqrt(fans[i]))):view(shapes[i]))
      end
    end)
    local opt = mg.optim.Adam(model:parameters(), {lr = 1e-3})
    local loss_fn = nn.CrossEntropyLoss()
    local loss
    for s = 1, N, BATCH do
      opt:zero_grad()
      loss = loss_fn(model(X:narrow(1, s, BATCH)), Y:narrow(1, s, BATCH))
      loss:backward()
      opt:step()
    end
    return loss:item()
  end, math.min(B.REPEATS, 3))
  B.result{name = name, value = t * EPOCH / N, unit = "s/epoch",
    derived = flop_per_sample * N / t / 1e9, dunit = "GFLOP/s", limit = "fma_peak",
    nums = {loss}, tol = "2e-3:1e-5", check = string.format("loss=%.5f", loss)}
end

local only = os.getenv("W9_ONLY")
if not only or only == "book" then run("W9_convnet_book", 16, 8, 32) end
if not only or only == "example" then run("W9_convnet_example", 32, 32, 64) end
