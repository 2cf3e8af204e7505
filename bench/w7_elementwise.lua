-- W7: c = a + b on float32 tensors: per-op overhead at 11 elements (ns/op), bandwidth at 10^6
-- (GB/s counting a and b read and c written). a, b = uniform(71 | 73, k), uniform(72 | 74, k).
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
B.setup(mg)

local SMALL = tonumber(os.getenv("W7_SMALL_LOOP") or "1000000")
local LARGE = tonumber(os.getenv("W7_LARGE_LOOP") or "200")

local function uniform(seed, n)
  local t = {}
  for k = 1, n do t[k] = B.uniform(seed, k - 1) end
  return mg.tensor(t)
end

local a, b = uniform(71, 11), uniform(72, 11)
local t, c = B.median_time(function()
  local c
  for _ = 1, SMALL do c = a + b end
  return c
end, "auto")
B.result{name = "W7_add_11", value = t / SMALL * 1e9, unit = "ns/op", nums = {c[1], c[6], c[11]}}

local n = 1000000
local x, y = uniform(73, n), uniform(74, n)
t, c = B.median_time(function()
  local z
  for _ = 1, LARGE do z = x + y end
  return z
end, "auto")
B.result{name = "W7_add_1e6", value = t / LARGE * 1e6, unit = "us/op", derived = 12 * n / (t / LARGE) / 1e9,
  dunit = "GB/s", limit = "triad_w7size", nums = {c[1], c[n // 2], c:sum():item()}}
