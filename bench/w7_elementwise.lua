-- W7: c = a + b on float32 tensors: per-op overhead at 11 elements, bandwidth at 10^6.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"

local SMALL = tonumber(os.getenv("W7_SMALL_LOOP") or "1000000")
local LARGE = tonumber(os.getenv("W7_LARGE_LOOP") or "200")

local a, b = mg.rand(11), mg.rand(11)
local c
local t = B.median_time(function() for _ = 1, SMALL do c = a + b end end)
B.result("w7_add_11", t / SMALL * 1e9, "ns/op", c[6])

local n = 1000000
local x, y = mg.rand(n), mg.rand(n)
t = B.median_time(function() for _ = 1, LARGE do c = x + y end end)
-- bytes moved: read a and b, write c
B.result("w7_add_1e6", 12 * n / (t / LARGE) / 1e9, "GB/s", c[n // 2])
