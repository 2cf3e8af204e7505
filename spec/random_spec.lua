-- Random numbers: manual_seed / initial_seed, rand randn randint randperm, rand_like randn_like,
-- t:uniform_ and t:normal_.
-- The generator is our own (xoshiro256**, src/core/rng.h), not PyTorch's, so values are pinned
-- against what it gives ("regression values"): a change to the algorithm must show up here.
-- Statistics are computed in Lua from totable(), under a fixed seed (so they cannot flake).
local mg = require "moongrad"
local H = require "helper"

local function flat(t)
  local out = {}
  local function walk(x)
    if type(x) == "table" then
      for _, v in ipairs(x) do walk(v) end
    else
      out[#out + 1] = x
    end
  end
  walk(t:totable())
  return out
end

local function mean_var(t)
  local xs = flat(t)
  local s = 0
  for _, v in ipairs(xs) do s = s + v end
  local m = s / #xs
  local s2 = 0
  for _, v in ipairs(xs) do s2 = s2 + (v - m) ^ 2 end
  return m, s2 / #xs, xs
end

local function bounds(xs)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(xs) do
    lo, hi = math.min(lo, v), math.max(hi, v)
  end
  return lo, hi
end

describe("random", function()
  describe("manual_seed()", function()
    it("makes the numbers reproducible", function()
      mg.manual_seed(7)
      local a, b = mg.rand(5):totable(), mg.randn(5):totable()
      mg.manual_seed(7)
      assert.same(a, mg.rand(5):totable())
      assert.same(b, mg.randn(5):totable())
    end)

    it("gives different numbers for a different seed, and for the next call", function()
      mg.manual_seed(7)
      local a = mg.rand(5):totable()
      local a2 = mg.rand(5):totable()
      mg.manual_seed(8)
      local b = mg.rand(5):totable()
      assert.are_not.same(a, b)
      assert.are_not.same(a, a2)
    end)

    it("is recorded by initial_seed", function()
      mg.manual_seed(123)
      assert.equal(123, mg.initial_seed())
      mg.manual_seed(-1) -- taken modulo 2^64
      assert.equal(-1, mg.initial_seed())
    end)

    it("starts from the default seed in a new Lua state", function()
      -- a child process: a second module instance in this state would share the Tensor metatable
      local code = "local mg = require 'moongrad'; io.write(mg.initial_seed(), ' ', ('%.17g'):format(mg.rand(1, {dtype = 'float64'})[1]))"
      local cmd = string.format("lua5.4 -e %q", string.format("package.path = %q; package.cpath = %q; %s",
        package.path, package.cpath, code))
      local pipe = assert(io.popen(cmd))
      local out = pipe:read("a")
      pipe:close()
      local seed, first = out:match("^(%S+) (%S+)$")
      assert.equal(0x6d6f6f6e67726164, math.tointeger(seed)) -- "moongrad" in ASCII (src/core/ctx.c)
      mg.manual_seed(0x6d6f6f6e67726164)
      assert.equal(mg.rand(1, {dtype = "float64"})[1], tonumber(first))
    end)

    it("takes integers only", function()
      H.errors(function() mg.manual_seed(1.5) end,
        "bad argument #1 to 'manual_seed' (number has no integer representation)")
      H.errors(function() mg.manual_seed("x") end, "bad argument #1 to 'manual_seed' (number expected, got string)")
    end)
  end)

  describe("regression values for seed 42", function()
    -- xoshiro256** seeded by splitmix64(42); checked against an independent Python transcription.
    it("rand, float32 and float64", function()
      mg.manual_seed(42)
      assert.same({0.083862960338592529, 0.37898021936416626, 0.68004339933395386, 0.92469292879104614},
        mg.rand(4):totable())
      mg.manual_seed(42)
      assert.same({0.083862971059882163, 0.37898025066266861, 0.68004341102813937, 0.92469294532538759},
        mg.rand(4, {dtype = "float64"}):totable())
    end)

    it("randn, float32 and float64 (both values of each polar pair)", function()
      mg.manual_seed(42)
      assert.same({-0.72621911764144897, -0.21119691431522369, 0.22162270545959473, 0.52277171611785889,
                   0.46417731046676636}, mg.randn(5):totable())
      mg.manual_seed(42)
      assert.same({-0.72621913824478568, -0.21119691823195985, 0.22162270150359337, 0.52277168775601457,
                   0.46417731016247366}, mg.randn(5, {dtype = "float64"}):totable())
    end)

    it("randint and randperm", function()
      mg.manual_seed(42)
      assert.same({0, 3, 6, 9, 9, 7, 7, 8}, mg.randint(0, 10, {8}):totable())
      mg.manual_seed(42)
      assert.same({8, 2, 7, 4, 6, 5, 3, 1}, mg.randperm(8):totable())
    end)

    it("uniform_ and normal_ with parameters", function()
      mg.manual_seed(42)
      assert.same({-1.5806851387023926, -0.10509896278381348, 1.4002170562744141}, mg.zeros(3):uniform_(-2, 3):totable())
      mg.manual_seed(42)
      assert.same({3.5475617235104284, 4.5776061635360801, 5.4432454030071868},
        mg.zeros(3, {dtype = "float64"}):normal_(5, 2):totable())
    end)

    it("a negative seed", function()
      mg.manual_seed(-1)
      assert.same({0.55989270405052116, 0.7674350796247662}, mg.rand(2, {dtype = "float64"}):totable())
    end)
  end)

  describe("rand()", function()
    it("takes the shape as varargs or a table, float32 by default", function()
      mg.manual_seed(1)
      local a = mg.rand(2, 3)
      mg.manual_seed(1)
      local b = mg.rand{2, 3}
      assert.same({2, 3}, a.shape)
      assert.equal("float32", a.dtype)
      assert.same(a:totable(), b:totable())
      assert.equal(0, mg.rand{}:dim())
      assert.same({0, 4}, mg.rand(0, 4).shape)
    end)

    it("fills in row-major order: the first numbers of a bigger shape are the same", function()
      mg.manual_seed(3)
      local a = mg.rand(2, 3):totable()
      mg.manual_seed(3)
      local b = mg.rand(6):totable()
      assert.same({b[1], b[2], b[3]}, a[1])
      assert.same({b[4], b[5], b[6]}, a[2])
    end)

    it("gives float32 values on the 2^-24 grid in [0, 1), float64 finer", function()
      mg.manual_seed(5)
      local xs = flat(mg.rand(1000))
      for _, v in ipairs(xs) do
        assert.is_true(v >= 0 and v < 1)
        assert.equal(0, (v * 2 ^ 24) % 1)
      end
      local off_grid = 0
      for _, v in ipairs(flat(mg.rand(100, {dtype = "float64"}))) do
        if (v * 2 ^ 24) % 1 ~= 0 then off_grid = off_grid + 1 end
      end
      assert.is_true(off_grid > 90)
    end)

    it("has mean 1/2 and variance 1/12 over 10^5 samples", function()
      mg.manual_seed(1)
      local m, v, xs = mean_var(mg.rand(100000))
      assert.is_true(math.abs(m - 0.5) < 0.005, "mean " .. m)
      assert.is_true(math.abs(v - 1 / 12) < 0.002, "variance " .. v)
      local lo, hi = bounds(xs)
      assert.is_true(lo >= 0 and lo < 1e-3 and hi < 1 and hi > 1 - 1e-3)
    end)

    it("marks requires_grad", function()
      assert.is_true(mg.rand(2, {requires_grad = true}).requires_grad)
    end)

    it("refuses integer dtypes, unknown dtypes and negative sizes", function()
      H.errors(function() return mg.rand(3, {dtype = "int64"}) end,
        "bad argument #2 to 'rand' (rand needs a floating point dtype, got 'int64')")
      H.errors(function() return mg.rand(3, {dtype = "float16"}) end,
        "bad argument #2 to 'rand' (unknown dtype 'float16', expected 'float32', 'float64', 'int64' or 'bool')")
      H.errors(function() return mg.rand(-3) end, "bad argument #1 to 'rand' (size -3 at dimension 1 is negative)")
    end)
  end)

  describe("randn()", function()
    it("has mean 0 and variance 1 over 10^5 samples, float32 and float64", function()
      mg.manual_seed(1)
      for _, dtype in ipairs{"float32", "float64"} do
        local t = mg.randn(100000, {dtype = dtype})
        assert.equal(dtype, t.dtype)
        local m, v, xs = mean_var(t)
        assert.is_true(math.abs(m) < 0.015, dtype .. " mean " .. m)
        assert.is_true(math.abs(v - 1) < 0.02, dtype .. " variance " .. v)
        -- about 68.3% within one standard deviation
        local inside = 0
        for _, x in ipairs(xs) do
          if math.abs(x) < 1 then inside = inside + 1 end
        end
        assert.is_true(math.abs(inside / #xs - 0.6827) < 0.01, dtype .. " within 1 sd " .. inside / #xs)
      end
    end)

    it("uses both values of a pair: an odd count gives a prefix of the next even one", function()
      mg.manual_seed(9)
      local a = mg.randn(3):totable()
      mg.manual_seed(9)
      local b = mg.randn(4):totable()
      assert.same({b[1], b[2], b[3]}, a)
    end)

    it("refuses integer dtypes", function()
      H.errors(function() return mg.randn(2, 2, {dtype = "bool"}) end,
        "bad argument #3 to 'randn' (randn needs a floating point dtype, got 'bool')")
    end)
  end)

  describe("rand_like() randn_like()", function()
    it("take the shape and the floating dtype of their argument", function()
      local src = mg.zeros(2, 3, {dtype = "float64"}):t()
      local r = mg.rand_like(src)
      assert.same({3, 2}, r.shape)
      assert.equal("float64", r.dtype)
      assert.equal("float32", mg.randn_like(src, {dtype = "float32"}).dtype)
    end)

    it("refuse an integer tensor", function()
      local i = mg.zeros(2, {dtype = "int64"})
      H.errors(function() return mg.rand_like(i) end,
        "bad argument #1 to 'rand_like' (rand_like needs a floating point tensor or opts.dtype, got int64)")
      H.errors(function() return mg.randn_like(mg.zeros(2), {dtype = "int64"}) end,
        "bad argument #2 to 'randn_like' (randn_like needs a floating point dtype, got 'int64')")
      assert.equal("float32", mg.rand_like(i, {dtype = "float32"}).dtype)
    end)
  end)

  describe("randint()", function()
    it("gives int64 in [low, high), reaching both ends", function()
      mg.manual_seed(2)
      local t = mg.randint(-3, 3, {1000})
      assert.equal("int64", t.dtype)
      local xs = flat(t)
      local lo, hi = bounds(xs)
      assert.equal(-3, lo)
      assert.equal(2, hi)
      for _, v in ipairs(xs) do assert.equal("integer", math.type(v)) end
    end)

    it("is uniform over 10^5 samples", function()
      mg.manual_seed(1)
      local counts = {}
      for _, v in ipairs(flat(mg.randint(0, 10, {100000}))) do counts[v] = (counts[v] or 0) + 1 end
      for k = 0, 9 do
        assert.is_true(math.abs(counts[k] - 10000) < 500, k .. ": " .. tostring(counts[k]))
      end
    end)

    it("takes randint(high, shape), varargs shapes and opts.dtype", function()
      mg.manual_seed(4)
      local a = mg.randint(5, {2, 2})
      mg.manual_seed(4)
      local b = mg.randint(0, 5, 2, 2)
      assert.same({2, 2}, a.shape)
      assert.same(a:totable(), b:totable())
      local f = mg.randint(0, 4, {3}, {dtype = "float64"})
      assert.equal("float64", f.dtype)
      for _, v in ipairs(flat(f)) do assert.is_true(v == math.floor(v) and v >= 0 and v < 4) end
    end)

    it("spans the whole int64 range without overflow", function()
      mg.manual_seed(6)
      local xs = flat(mg.randint(math.mininteger, math.maxinteger, {200}))
      local neg = 0
      for _, v in ipairs(xs) do if v < 0 then neg = neg + 1 end end
      assert.is_true(neg > 60 and neg < 140, "negatives: " .. neg)
    end)

    it("refuses low >= high, a missing shape and float bounds", function()
      H.errors(function() return mg.randint(5, 5, {3}) end,
        "bad argument #2 to 'randint' (high (5) must be greater than low (5))")
      H.errors(function() return mg.randint(5, 2, {3}) end,
        "bad argument #2 to 'randint' (high (2) must be greater than low (5))")
      H.errors(function() return mg.randint(0, 3) end,
        "bad argument #3 to 'randint' (shape expected (randint(low, high, shape)))")
      H.errors(function() return mg.randint(0, 2.5, {2}) end,
        "bad argument #2 to 'randint' (number has no integer representation)")
      H.errors(function() return mg.randint(0, 2, {2}, {requires_grad = true}) end,
        "bad argument #4 to 'randint' (only floating point tensors can require gradients)")
    end)
  end)

  describe("randperm()", function()
    it("is a permutation of 1..n (1-based), int64", function()
      mg.manual_seed(11)
      local t = mg.randperm(50)
      assert.equal("int64", t.dtype)
      local xs = flat(t)
      table.sort(xs)
      local expected = {}
      for i = 1, 50 do expected[i] = i end
      assert.same(expected, xs)
    end)

    it("shuffles: not the identity, and a different seed gives a different order", function()
      mg.manual_seed(11)
      local a = mg.randperm(50):totable()
      mg.manual_seed(12)
      local b = mg.randperm(50):totable()
      local identity = {}
      for i = 1, 50 do identity[i] = i end
      assert.are_not.same(identity, a)
      assert.are_not.same(a, b)
    end)

    it("handles 0 and 1, and takes a float dtype", function()
      assert.same({0}, mg.randperm(0).shape)
      assert.same({1}, mg.randperm(1):totable())
      local f = mg.randperm(4, {dtype = "float64"})
      assert.equal("float64", f.dtype)
      local xs = flat(f)
      table.sort(xs)
      assert.same({1, 2, 3, 4}, xs)
    end)

    it("refuses a negative n and bool", function()
      H.errors(function() return mg.randperm(-2) end, "bad argument #1 to 'randperm' (n must be non-negative, got -2)")
      H.errors(function() return mg.randperm(3, {dtype = "bool"}) end,
        "bad argument #2 to 'randperm' (randperm does not take dtype 'bool')")
    end)
  end)

  describe("uniform_()", function()
    it("fills in place on [a, b) and returns the tensor", function()
      mg.manual_seed(1)
      local t = mg.zeros(100000)
      assert.equal(t, t:uniform_(-2, 3))
      local m, v, xs = mean_var(t)
      assert.is_true(math.abs(m - 0.5) < 0.03, "mean " .. m)
      assert.is_true(math.abs(v - 25 / 12) < 0.05, "variance " .. v)
      local lo, hi = bounds(xs)
      assert.is_true(lo >= -2 and hi < 3)
    end)

    it("defaults to [0, 1) and takes float64", function()
      mg.manual_seed(42)
      local t = mg.zeros(4, {dtype = "float64"}):uniform_()
      assert.same({0.083862971059882163, 0.37898025066266861, 0.68004341102813937, 0.92469294532538759}, t:totable())
    end)

    it("writes through a transposed view in the view's row-major order", function()
      local base = mg.zeros(3, 4)
      local view = base:t()
      mg.manual_seed(7)
      view:uniform_()
      mg.manual_seed(7)
      local same = mg.rand(4, 3):totable()
      assert.same(same, view:totable())
      for i = 1, 3 do
        for j = 1, 4 do assert.equal(same[j][i], base:totable()[i][j]) end
      end
    end)

    it("writes only the narrowed part of a view", function()
      local base = mg.zeros(2, 4)
      base:narrow(2, 2, 2):uniform_(5, 6)
      local b = base:totable()
      for i = 1, 2 do
        assert.equal(0, b[i][1])
        assert.equal(0, b[i][4])
        assert.is_true(b[i][2] >= 5 and b[i][2] < 6 and b[i][3] >= 5 and b[i][3] < 6)
      end
    end)

    it("refuses an integer tensor, reversed bounds and infinite ranges", function()
      local i = mg.zeros(2, {dtype = "int64"})
      H.errors(function() i:uniform_() end,
        "calling 'uniform_' on bad self (uniform_ needs a floating point tensor, got int64)")
      local t = mg.zeros(2)
      H.errors(function() t:uniform_(1, 0) end,
        "bad argument #1 to 'uniform_' (lower bound 1 is greater than upper bound 0)")
      H.errors(function() mg.uniform_(t, 1, 0) end,
        "bad argument #2 to 'uniform_' (lower bound 1 is greater than upper bound 0)")
      H.errors(function() t:uniform_(-3e38, 3e38) end,
        "bad argument #2 to 'uniform_' (range [-3e+38, 3e+38) is not finite in float32)")
      H.errors(function() t:uniform_(0, math.huge) end,
        "bad argument #2 to 'uniform_' (range [0, inf) is not finite in float32)")
    end)
  end)

  describe("normal_()", function()
    it("fills in place with mean and std, and returns the tensor", function()
      mg.manual_seed(1)
      local t = mg.zeros(100000)
      assert.equal(t, t:normal_(5, 2))
      local m, v = mean_var(t)
      assert.is_true(math.abs(m - 5) < 0.03, "mean " .. m)
      assert.is_true(math.abs(v - 4) < 0.1, "variance " .. v)
    end)

    it("writes through a transposed view in the view's row-major order", function()
      local base = mg.zeros(2, 3, {dtype = "float64"})
      local view = base:t()
      mg.manual_seed(8)
      view:normal_()
      mg.manual_seed(8)
      local same = mg.randn(3, 2, {dtype = "float64"}):totable()
      assert.same(same, view:totable())
      assert.same({{same[1][1], same[2][1], same[3][1]}, {same[1][2], same[2][2], same[3][2]}}, base:totable())
    end)

    it("gives the mean alone for std 0", function()
      assert.same({3, 3}, mg.zeros(2):normal_(3, 0):totable())
    end)

    it("refuses a negative std and an integer tensor", function()
      local t = mg.zeros(2)
      H.errors(function() t:normal_(0, -1) end, "bad argument #2 to 'normal_' (std must be non-negative, got -1)")
      H.errors(function() mg.normal_(mg.zeros(2, {dtype = "bool"})) end,
        "bad argument #1 to 'normal_' (normal_ needs a floating point tensor, got bool)")
    end)
  end)
end)
