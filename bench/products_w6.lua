-- W6's products alone (not a workload of its own: the row that says how close W6's matrix products
-- come to one core's FMA peak, which W6's GFLOP/s over the whole step only bounds from below).
-- Per step of batch 64, the five products of the MLP 784-256-10 as nn.Linear computes them:
-- x W1^T, h W2^T (forward), g2^T h, g2 W2, g1^T x (backward; x needs no gradient).
-- x = 0.1 normal(61, k), W1 = normal(63, k) / 28, W2 = normal(65, k) / 16, h = relu(normal(67, k)),
-- g2 = normal(68, k) / 64, g1 = normal(69, k) / 64 (float32).
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
B.setup(mg)

local BATCH, DIN, DH, DOUT = 64, 784, 256, 10
local LOOP = tonumber(os.getenv("W6P_LOOP") or "100")
local function normal(seed, r, c, s)
  return B.build(mg, r, c, function(first, count) return B.normals(seed, first, count, s) end)
end
local x, W1, W2 = normal(61, BATCH, DIN, 0.1), normal(63, DH, DIN, 1 / 28), normal(65, DOUT, DH, 1 / 16)
local h = normal(67, BATCH, DH, 1.0):relu()
local g2, g1 = normal(68, BATCH, DOUT, 1 / 64), normal(69, BATCH, DH, 1 / 64)
local W1t, W2t, g2t, g1t = W1:t(), W2:t(), g2:t(), g1:t()
local FLOP = 2 * BATCH * (DIN * DH + DH * DOUT) + 2 * BATCH * DOUT * DH * 2 + 2 * BATCH * DH * DIN

local t, a, b, c, d, e = B.median_time(function()
  local a, b, c, d, e
  for _ = 1, LOOP do
    a = mg.matmul(x, W1t); b = mg.matmul(h, W2t)
    c = mg.matmul(g2t, h); d = mg.matmul(g2, W2); e = mg.matmul(g1t, x)
  end
  return a, b, c, d, e
end)
B.result{name = "W6_products_only", value = t / LOOP * 1e6, unit = "us/step", derived = FLOP * LOOP / t / 1e9,
  dunit = "GFLOP/s", limit = "fma_peak", tol = "1e-4:1e-5",
  nums = {a:sum():item(), b:sum():item(), c:sum():item(), d:sum():item(), e:sum():item()}}
