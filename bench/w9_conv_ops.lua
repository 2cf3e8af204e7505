-- W9's convolutions alone (issue 13 asks for their GFLOP/s forward and backward): the book's
-- network's two Conv2d layers (1 -> 16 on 28x28, 16 -> 8 on 14x14, 3x3, padding 1) on a batch of
-- 64, each timed forward, and forward + backward with the gradients the network needs (conv1: weight
-- and bias; conv2: input, weight and bias), the backward's time being the difference. FLOPs: 2 k k
-- cin cout h w a sample forward, twice that backward when the input's gradient is needed, once when
-- not (conv1). Not part of `make bench`'s table (no PyTorch side); run it as
--   MOONGRAD_NUM_THREADS=1 lua5.4 bench/w9_conv_ops.lua
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
B.setup(mg)
local F = mg.F

local function layer(name, C, O, HW, needs_dx)
  local N = 64
  local x = mg.tensor(B.normals(201, 0, N * C * HW * HW)):view(N, C, HW, HW)
  local w = mg.tensor(B.normals(202, 0, O * C * 9)):view(O, C, 3, 3)
  local b = mg.tensor(B.normals(203, 0, O))
  local g = mg.tensor(B.normals(204, 0, N * O * HW * HW)):view(N, O, HW, HW)
  x:requires_grad_(needs_dx)
  w:requires_grad_(true)
  b:requires_grad_(true)
  local STEPS = 50
  local fwd = B.median_time(function()
    for _ = 1, STEPS do F.conv2d(x, w, b, {padding = 1}) end
  end) / STEPS
  local both = B.median_time(function()
    for _ = 1, STEPS do
      F.conv2d(x, w, b, {padding = 1}):backward(g)
      x.grad, w.grad, b.grad = nil, nil, nil
    end
  end) / STEPS
  local flop = 2 * 9 * C * O * HW * HW * N
  local bflop = flop * (needs_dx and 2 or 1)
  print(string.format("%s: forward %.0f us (%.1f GFLOP/s), backward %.0f us (%.1f GFLOP/s%s)", name,
    fwd * 1e6, flop / fwd / 1e9, (both - fwd) * 1e6, bflop / (both - fwd) / 1e9,
    needs_dx and ": dx, dW, db" or ": dW, db"))
end

layer("conv1 1->16, 28x28", 1, 16, 28, false)
layer("conv2 16->8, 14x14", 16, 8, 14, true)
