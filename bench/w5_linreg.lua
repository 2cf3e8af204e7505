-- W5: full-batch linear regression with autograd, X 10^6 x 16 float32, 50 steps of lr 0.1.
-- Data from the shared generator: X[i, j] = normal(51, 16i + j) (float32), true_w[j] = normal(52, j),
-- y[i] = X[i] . true_w + 0.5 + 0.01 normal(53, i) (float64 from the float32 X, then float32).
-- Figures: ms per step, and GB/s over X + y read once per step (the minimum traffic).
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
B.setup(mg)

local N, D = tonumber(os.getenv("W5_ROWS") or "1000000"), 16
local STEPS, LR = 50, 0.1
local true_w = mg.tensor(B.normals(52, 0, D), {dtype = "float64"})
local X, y = mg.empty(N, D), mg.empty(N)
local CHUNK = 4096
for r = 0, N - 1, CHUNK do
  local n = math.min(CHUNK, N - r)
  local xc = mg.tensor(B.normals(51, r * D, n * D)):view(n, D)
  X:narrow(1, r + 1, n):copy_(xc)
  local yc = xc:double():matmul(true_w) + 0.5 + 0.01 * mg.tensor(B.normals(53, r, n), {dtype = "float64"})
  y:narrow(1, r + 1, n):copy_(yc)
end

local t, w, b, loss = B.median_time(function()
  local w = mg.zeros(D, {requires_grad = true})
  local b = mg.tensor(0.0, {requires_grad = true})
  local loss
  for _ = 1, STEPS do
    local pred = X:matmul(w) + b
    loss = ((pred - y) ^ 2):mean()
    loss:backward()
    mg.no_grad(function()
      w:sub_(w.grad * LR)
      b:sub_(b.grad * LR)
    end)
    w.grad:zero_()
    b.grad:zero_()
  end
  return w, b, loss
end, math.min(B.REPEATS, 3)) -- the longest workload: 3 timed runs
local err = (w:detach():double() - true_w):abs():max():item()
B.result{name = "W5_linreg_fullbatch", value = t / STEPS * 1e3, unit = "ms/step",
  derived = (N * D + N) * 4 * STEPS / t / 1e9, dunit = "GB/s", limit = "read_w5size",
  nums = {loss:item(), b:item(), w[1]:item()}, tol = "1e-4:1e-6",
  check = string.format("loss=%.4g,max|w-true_w|=%.2g", loss:item(), err)}
