-- G: sgemm, C = A B with A, B 1024 x 1024 float32 (A = normal(91, k), B = normal(92, k)):
-- moongrad's matmul against torch.mm; GFLOP/s = 2 * 1024^3 per product.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
B.setup(mg)

local S = tonumber(os.getenv("G_SIZE") or "1024")
local LOOP = tonumber(os.getenv("G_LOOP") or "5")
local A = B.build(mg, S, S, function(first, count) return B.normals(91, first, count) end)
local Bm = B.build(mg, S, S, function(first, count) return B.normals(92, first, count) end)
local t, C = B.median_time(function()
  local C
  for _ = 1, LOOP do C = mg.matmul(A, Bm) end
  return C
end)
B.result{name = "G_sgemm_" .. S, value = t / LOOP * 1e3, unit = "ms/op", derived = 2 * S ^ 3 * LOOP / t / 1e9,
  dunit = "GFLOP/s", limit = "fma_peak", tol = "1e-4:1e-4",
  nums = {C[1][1], C[S // 2][S // 3], C[S][S]}}
