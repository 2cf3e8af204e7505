-- Elementwise math of one tensor (src/ops/unary.c, src/bind/unary.c).
-- Reference values from PyTorch 1.13 (/usr/bin/python3); the expression is in the comment above each.
local mg = require "moongrad"
local H = require "helper"

local inf, nan = math.huge, 0 / 0

-- x = torch.tensor([[-2.5, -0.5, 0.], [0.5, 1., 3.]]) for most ops; p (positive) for log, sqrt, ...
local X = {{-2.5, -0.5, 0}, {0.5, 1, 3}}
local P = {{0.25, 0.5, 1}, {2, 4, 9}}

-- One row per op: the input, then torch.<op>(torch.tensor(input)).tolist() in float32.
local cases = {
  exp = {X, {{0.08208499848842621, 0.6065306663513184, 1.0}, {1.6487212181091309, 2.7182817459106445, 20.08553695678711}}},
  log = {P, {{-1.3862943649291992, -0.6931471824645996, 0.0}, {0.6931471824645996, 1.3862943649291992, 2.1972246170043945}}},
  sqrt = {P, {{0.5, 0.7071067690849304, 1.0}, {1.4142135381698608, 2.0, 3.0}}},
  rsqrt = {P, {{2.0, 1.4142135381698608, 1.0}, {0.7071067690849304, 0.5, 0.3333333432674408}}},
  sin = {X, {{-0.5984721183776855, -0.4794255495071411, 0.0}, {0.4794255495071411, 0.8414709568023682, 0.14112000167369843}}},
  cos = {X, {{-0.8011435866355896, 0.8775825500488281, 1.0}, {0.8775825500488281, 0.5403023362159729, -0.9899924993515015}}},
  tanh = {X, {{-0.9866142868995667, -0.46211716532707214, 0.0}, {0.46211716532707214, 0.7615941762924194, 0.9950547814369202}}},
  sigmoid = {X, {{0.07585817575454712, 0.3775406777858734, 0.5}, {0.622459352016449, 0.7310585975646973, 0.9525741338729858}}},
  log1p = {P, {{0.2231435477733612, 0.40546509623527527, 0.6931471824645996}, {1.0986123085021973, 1.6094379425048828, 2.3025851249694824}}},
  expm1 = {X, {{-0.9179149866104126, -0.39346933364868164, 0.0}, {0.6487212777137756, 1.718281865119934, 19.08553695678711}}},
  abs = {X, {{2.5, 0.5, 0.0}, {0.5, 1.0, 3.0}}},
  relu = {X, {{0.0, 0.0, 0.0}, {0.5, 1.0, 3.0}}},
  floor = {X, {{-3.0, -1.0, 0.0}, {0.0, 1.0, 3.0}}},
  ceil = {X, {{-2.0, -0.0, 0.0}, {1.0, 1.0, 3.0}}},
  round = {X, {{-2.0, -0.0, 0.0}, {0.0, 1.0, 3.0}}},
  sign = {X, {{-1.0, -1.0, 0.0}, {1.0, 1.0, 1.0}}},
  square = {X, {{6.25, 0.25, 0.0}, {0.25, 1.0, 9.0}}},
}
local names = {"exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "log1p", "expm1",
               "abs", "relu", "floor", "ceil", "round", "sign", "square"}

-- transpose of a 2-D Lua table
local function tr(m)
  local out = {}
  for j = 1, #m[1] do
    out[j] = {}
    for i = 1, #m do out[j][i] = m[i][j] end
  end
  return out
end

describe("unary", function()
  for _, name in ipairs(names) do
    local input, expected = cases[name][1], cases[name][2]
    describe(name .. "()", function()
      it("computes float32 values as a method and as mg." .. name, function()
        local t = mg.tensor(input)
        local y = t[name](t)
        assert.equal("float32", y.dtype)
        H.near(expected, y)
        H.near(expected, mg[name](t))
        assert.same(input, t:totable()) -- the input is untouched
      end)

      it("computes in float64", function()
        local y = mg[name](mg.tensor(input, {dtype = "float64"}))
        assert.equal("float64", y.dtype)
        H.near(expected, y, 1e-6) -- the float32 references are good to ~1e-7
      end)

      it("reads a transposed input", function()
        local t = mg.tensor(tr(input)):t() -- non-contiguous, values of `input`
        assert.is_false(t:is_contiguous())
        H.near(expected, mg[name](t))
        H.near(tr(expected), mg[name](t:t()))
      end)

      it("reads a narrowed and an expanded input", function()
        local t = mg.tensor(input)
        H.near({expected[1][2], expected[2][2]}, mg[name](t:narrow(2, 2, 1):view(2)))
        local row = mg.tensor(input[2]):expand(4, 3) -- stride 0 over rows
        H.near({expected[2], expected[2], expected[2], expected[2]}, mg[name](row))
      end)

      it("keeps a 0-d tensor 0-d and an empty tensor empty", function()
        H.near(expected[2][2], mg[name](mg.tensor(input[2][2])):item())
        assert.same({0, 3}, mg[name](mg.tensor(input):narrow(1, 1, 0)):size())
      end)

      it("writes in place with " .. name .. "_ and returns the tensor itself", function()
        local t = mg.tensor(input)
        assert.equal(t, t[name .. "_"](t))
        H.near(expected, t)
      end)

      it("writes in place through a view into its base", function()
        local base = mg.tensor(tr(input))
        local view = base:t()
        assert.equal(view, view[name .. "_"](view))
        H.near(tr(expected), base)
      end)

      it("refuses to write in place into an expanded tensor", function()
        local e = mg.tensor(input[2]):expand(2, 3)
        H.errors(function() return e[name .. "_"](e) end,
          "more than one element of the in-place target refers to one memory location (clone() it first)")
      end)
    end)
  end

  describe("dtype rules", function()
    -- torch.exp(torch.tensor([-2, 3])) -> float32 [0.1353352814912796, 20.08553695678711]
    it("promotes int64 to float32 for float functions", function()
      local y = mg.exp(mg.tensor({-2, 3}, {dtype = "int64"}))
      assert.equal("float32", y.dtype)
      H.near({0.1353352814912796, 20.08553695678711}, y)
      -- torch.sqrt(torch.tensor([4, 9])) -> [2., 3.]
      assert.same({2, 3}, mg.sqrt(mg.tensor({4, 9}, {dtype = "int64"})):totable())
    end)

    -- torch.sigmoid(torch.tensor([True, False])) -> float32 [0.7310585975646973, 0.5]
    it("promotes bool to float32 for float functions", function()
      local y = mg.tensor{true, false}:sigmoid()
      assert.equal("float32", y.dtype)
      H.near({0.7310585975646973, 0.5}, y)
      -- torch.log(torch.tensor([True, False])) -> [0., -inf]
      assert.same({0, -inf}, mg.log(mg.tensor{true, false}):totable())
    end)

    it("promotes to the default dtype when it is float64", function()
      mg.set_default_dtype("float64")
      local ok, y = pcall(mg.tanh, mg.tensor({1}, {dtype = "int64"}))
      mg.set_default_dtype("float32")
      assert.is_true(ok)
      assert.equal("float64", y.dtype)
      -- torch.tanh(torch.tensor([1.], dtype=torch.float64)) -> 0.7615941559557649
      H.near({0.7615941559557649}, y, 1e-12)
    end)

    it("keeps int64 for abs, relu, sign, square, floor, ceil and round", function()
      local t = mg.tensor({-3, 0, 4}, {dtype = "int64"})
      local function int(y) assert.equal("int64", y.dtype) return y:totable() end
      -- torch.abs / relu / sign / square / floor of torch.tensor([-3, 0, 4])
      assert.same({3, 0, 4}, int(t:abs()))
      assert.same({0, 0, 4}, int(t:relu()))
      assert.same({-1, 0, 1}, int(t:sign()))
      assert.same({9, 0, 16}, int(t:square()))
      assert.same({-3, 0, 4}, int(t:floor()))
      assert.same({-3, 0, 4}, int(t:ceil()))
      assert.same({-3, 0, 4}, int(t:round()))
      assert.equal(math.type(t:abs():totable()[1]), "integer")
    end)

    -- torch.abs(torch.tensor([-9223372036854775808])) -> [-9223372036854775808]
    it("wraps abs(INT64_MIN) to itself as PyTorch", function()
      assert.same({math.mininteger}, mg.tensor({math.mininteger}, {dtype = "int64"}):abs():totable())
    end)

    -- torch.sign(torch.tensor([True, False])) -> bool [True, False]
    -- torch.square(torch.tensor([True, False])) -> int64 [1, 0]
    it("keeps bool for sign and widens it to int64 for square", function()
      local b = mg.tensor{true, false}
      assert.equal("bool", b:sign().dtype)
      assert.same({true, false}, b:sign():totable())
      assert.equal("int64", b:square().dtype)
      assert.same({1, 0}, b:square():totable())
    end)

    -- torch.abs(torch.tensor([True])) -> RuntimeError "abs_cpu" not implemented for 'Bool'
    it("refuses bool for abs, relu, floor, ceil and round", function()
      local b = mg.tensor{true}
      H.errors(function() return mg.abs(b) end, "bad argument #1 to 'abs' (expected a float32, float64 or int64 tensor, got bool)")
      H.errors(function() return mg.relu(b) end, "bad argument #1 to 'relu' (expected a float32, float64 or int64 tensor, got bool)")
      H.errors(function() return mg.floor(b) end, "bad argument #1 to 'floor' (expected a float32, float64 or int64 tensor, got bool)")
      H.errors(function() return mg.ceil(b) end, "bad argument #1 to 'ceil' (expected a float32, float64 or int64 tensor, got bool)")
      H.errors(function() return mg.round(b) end, "bad argument #1 to 'round' (expected a float32, float64 or int64 tensor, got bool)")
      H.errors(function() return b:abs_() end, "bad self (expected a float32, float64 or int64 tensor, got bool)")
    end)

    -- torch.tensor([1, 2]).exp_() -> result type Float can't be cast to the desired output type Long
    it("refuses an in-place float result into an int64 tensor", function()
      local t = mg.tensor({1, 2}, {dtype = "int64"})
      H.errors(function() return mg.exp_(t) end,
        "bad argument #1 to 'exp_' (result of dtype float32 cannot be written in place into a tensor of dtype int64)")
      assert.same({1, 2}, t:totable())
      H.errors(function() return t:sigmoid_() end,
        "result of dtype float32 cannot be written in place into a tensor of dtype int64")
      H.errors(function() return mg.tensor{true}:square_() end,
        "result of dtype int64 cannot be written in place into a tensor of dtype bool")
    end)

    it("writes int64 results in place", function()
      local t = mg.tensor({-3, 5}, {dtype = "int64"})
      assert.equal(t, t:abs_())
      assert.same({3, 5}, t:totable())
    end)

    it("refuses a non-tensor", function()
      H.errors(function() return mg.exp(2) end, "bad argument #1 to 'exp' (tensor expected, got number)")
    end)
  end)

  describe("special values", function()
    -- torch.sigmoid(torch.tensor([-200., -100., 100., 200.], dtype=torch.float64))
    --   -> [1.3838965267367376e-87, 3.7200759760208356e-44, 1.0, 1.0]
    it("gives a stable sigmoid for large |x|", function()
      local y = mg.tensor({-200, -100, 100, 200}, {dtype = "float64"}):sigmoid():totable()
      assert.near(1.3838965267367376e-87, y[1], 1e-100)
      assert.near(3.7200759760208356e-44, y[2], 1e-57)
      assert.same({1, 1}, {y[3], y[4]})
      -- torch.sigmoid(torch.tensor([-1000., 1000., nan])) -> [0., 1., nan]
      H.near({0, 1, nan}, mg.tensor{-1000, 1000, nan}:sigmoid())
    end)

    -- torch.log(torch.tensor([0., -1.])) -> [-inf, nan]; torch.sqrt(torch.tensor([-1.])) -> [nan]
    it("gives -inf and NaN for log and sqrt out of their domain", function()
      H.near({-inf, nan}, mg.log(mg.tensor{0, -1}))
      H.near({nan}, mg.sqrt(mg.tensor{-1}))
      -- torch.rsqrt(torch.tensor([0.])) -> [inf]
      H.near({inf}, mg.rsqrt(mg.tensor{0}))
    end)

    -- torch.round(torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999])) -> [0., 2., 2., -0., -2., 2.]
    it("rounds half to even", function()
      assert.same({0, 2, 2, -0.0, -2, 2}, mg.tensor{0.5, 1.5, 2.5, -0.5, -1.5, 2.4999}:round():totable())
      assert.same({0, 2, 2, -2}, mg.tensor({0.5, 1.5, 2.5, -2.5}, {dtype = "float64"}):round():totable())
    end)

    -- torch.relu(torch.tensor([nan, -0., -1., 2.])) -> [nan, -0., 0., 2.]
    -- torch.sign(torch.tensor([nan, -0., -1., 2.])) -> [0., 0., -1., 1.]
    it("keeps NaN through relu and gives sign(NaN) = 0", function()
      local t = mg.tensor{nan, -0.0, -1, 2}
      H.near({nan, 0, 0, 2}, t:relu())
      assert.equal(-inf, 1 / t:relu():totable()[2]) -- -0.0 stays -0.0
      assert.same({0, 0, -1, 1}, t:sign():totable())
    end)

    -- torch.expm1(torch.tensor([1e-10], dtype=torch.float64)) -> 1.00000000005e-10
    -- torch.log1p(torch.tensor([1e-10], dtype=torch.float64)) -> 9.999999999500001e-11
    it("keeps precision of expm1 and log1p near 0", function()
      local t = mg.tensor({1e-10}, {dtype = "float64"})
      assert.near(1.00000000005e-10, t:expm1():item(), 1e-24)
      assert.near(9.999999999500001e-11, t:log1p():item(), 1e-24)
    end)

    -- float32 exp, log, tanh and sigmoid are moongrad's own vectorized code (src/ops/vmath.h), not
    -- libm's: each result is held to the float64 result rounded to float32, over 2 * 10^5 points
    -- spread across the range where results are normal floats, within 1 ulp (sigmoid: 2).
    it("computes float32 exp, log, tanh and sigmoid within 1-2 ulp of the rounded float64 results", function()
      local n = 200000
      local wide = mg.linspace(-87, 88, n, {dtype = "float64"})
      local positive = mg.exp(mg.linspace(-85, 85, n, {dtype = "float64"}))
      local near0 = mg.linspace(-1, 1, n, {dtype = "float64"}) -- tanh's polynomial range and beyond
      local sweeps = {
        {"exp", wide, 1}, {"log", positive, 1}, {"tanh", near0, 1}, {"tanh", wide, 1},
        {"sigmoid", mg.linspace(-80, 80, n, {dtype = "float64"}), 2},
      }
      for _, c in ipairs(sweeps) do
        local name, x, ulps = c[1], c[2]:float(), c[3]
        local want = x:double()[name](x:double()):float():double()
        local got = x[name](x):double()
        -- one ulp of a normal float r is at most |r| 2^-23
        local excess = ((got - want):abs() - want:abs() * (ulps * 2 ^ -23)):max():item()
        assert.is_true(excess <= 0, name .. " exceeds " .. ulps .. " ulp by " .. excess)
      end
      -- torch.exp / log / tanh / sigmoid at the edges (float32)
      H.near({0, 1, 1, math.huge, math.huge, nan}, mg.tensor{-math.huge, 0, -0.0, 89, math.huge, nan}:exp())
      assert.equal(1.1754943508222875e-38 * 2 ^ -23, mg.tensor{-103.2789}:exp():item()) -- the least subnormal
      H.near({-math.huge, -math.huge, nan, math.huge, nan, -103.27892303466797},
        mg.tensor{0, -0.0, -1, math.huge, nan, 1.401298464324817e-45}:log())
      assert.same({-1, 1, 0, 1}, mg.tensor{-math.huge, math.huge, 0, 20}:tanh():totable())
      assert.equal(-math.huge, 1 / mg.tensor{-0.0}:tanh():item()) -- tanh(-0) is -0
      H.near({0, 1, 0.5, nan}, mg.tensor{-math.huge, math.huge, 0, nan}:sigmoid())
    end)

    -- torch.exp(torch.tensor([-2.5, 0.5, 3.], dtype=torch.float64))
    it("computes float64 to double precision", function()
      local y = mg.exp(mg.tensor({-2.5, 0.5, 3}, {dtype = "float64"})):totable()
      H.near({0.0820849986238988, 1.6487212707001282, 20.085536923187668}, y, 1e-14)
      -- torch.sigmoid(torch.tensor([-2.5, 0.5], dtype=torch.float64))
      H.near({0.07585818002124355, 0.6224593312018546},
        mg.tensor({-2.5, 0.5}, {dtype = "float64"}):sigmoid(), 1e-14)
    end)
  end)

  describe("clamp()", function()
    local x = {{-2.5, -0.5, 0}, {0.5, 1, 3}}

    -- torch.tensor(x).clamp(-1, 1)
    it("clamps to both bounds", function()
      assert.same({{-1, -0.5, 0}, {0.5, 1, 1}}, mg.tensor(x):clamp(-1, 1):totable())
      assert.same({{-1, -0.5, 0}, {0.5, 1, 1}}, mg.clamp(mg.tensor(x), -1, 1):totable())
    end)

    -- torch.tensor(x).clamp(min=0) and .clamp(max=0.5)
    it("leaves one side open with a nil bound", function()
      assert.same({{0, 0, 0}, {0.5, 1, 3}}, mg.tensor(x):clamp(0):totable())
      assert.same({{-2.5, -0.5, 0}, {0.5, 0.5, 0.5}}, mg.tensor(x):clamp(nil, 0.5):totable())
    end)

    -- torch.clamp(torch.tensor(x)) -> "At least one of 'min' or 'max' must not be None"
    it("needs at least one bound", function()
      H.errors(function() return mg.clamp(mg.tensor(x)) end,
        "bad argument #2 to 'clamp' (at least one of min or max must be given)")
      H.errors(function() return mg.clamp(mg.tensor(x), nil, nil) end,
        "at least one of min or max must be given")
      H.errors(function() return mg.clamp_(mg.tensor(x)) end,
        "bad argument #2 to 'clamp_' (at least one of min or max must be given)")
    end)

    it("refuses a bound that is not a number", function()
      H.errors(function() return mg.clamp(mg.tensor(x), "a") end,
        "bad argument #2 to 'clamp' (number expected, got string)")
      H.errors(function() return mg.clamp(mg.tensor(x), 0, {}) end,
        "bad argument #3 to 'clamp' (number expected, got table)")
    end)

    -- torch.tensor([nan, -0., -1., 2.]).clamp(0, 1) -> [nan, -0., 0., 1.]
    -- torch.tensor([nan, -0., -1., 2.]).clamp(2, 1) -> [nan, 1., 1., 1.]
    it("propagates NaN and gives max when min > max", function()
      local t = mg.tensor{nan, -0.0, -1, 2}
      H.near({nan, 0, 0, 1}, t:clamp(0, 1))
      H.near({nan, 1, 1, 1}, t:clamp(2, 1))
    end)

    -- torch.tensor([1, 5]).clamp(max=3) -> int64 [1, 3]; .clamp(0.5) -> float32 [1., 5.]
    it("keeps int64 with integer bounds and promotes with float bounds", function()
      local t = mg.tensor({-4, 1, 5}, {dtype = "int64"})
      local y = t:clamp(nil, 3)
      assert.equal("int64", y.dtype)
      assert.same({-4, 1, 3}, y:totable())
      assert.same({0, 1, 3}, t:clamp(0, 3):totable())
      y = t:clamp(0.5)
      assert.equal("float32", y.dtype)
      assert.same({0.5, 1, 5}, y:totable())
      -- torch.tensor([1, 2**62]).clamp(max=2**62 - 1): bounds are exact for int64
      assert.same({1, (1 << 62) - 1}, mg.tensor({1, 1 << 62}, {dtype = "int64"}):clamp(nil, (1 << 62) - 1):totable())
    end)

    -- torch.tensor([True, False]).clamp(0, 1) -> int64 [1, 0]; .clamp(0.5) -> float32
    it("widens bool to int64 (integer bounds) or float32 (float bounds)", function()
      local b = mg.tensor{true, false}
      assert.equal("int64", b:clamp(0, 1).dtype)
      assert.same({1, 0}, b:clamp(0, 1):totable())
      assert.equal("float32", b:clamp(0.5).dtype)
      assert.same({1, 0.5}, b:clamp(0.5):totable())
    end)

    it("keeps float64 with any bound", function()
      local y = mg.tensor({-1, 0.25, 7}, {dtype = "float64"}):clamp(0, 1)
      assert.equal("float64", y.dtype)
      assert.same({0, 0.25, 1}, y:totable())
    end)

    it("reads transposed and expanded inputs", function()
      local t = mg.tensor(tr(x)):t()
      assert.same({{-1, -0.5, 0}, {0.5, 1, 1}}, t:clamp(-1, 1):totable())
      assert.same({{0, 0, 0}, {0, 0, 0}}, mg.tensor{-1, -2, -3}:expand(2, 3):clamp(0):totable())
    end)

    it("clamps in place with clamp_ and returns the tensor itself", function()
      local t = mg.tensor(x)
      assert.equal(t, t:clamp_(-1, 1))
      assert.same({{-1, -0.5, 0}, {0.5, 1, 1}}, t:totable())
      local i = mg.tensor({-4, 9}, {dtype = "int64"})
      assert.equal(i, mg.clamp_(i, nil, 2))
      assert.same({-4, 2}, i:totable())
    end)

    it("clamps in place through a narrowed view into its base", function()
      local base = mg.tensor(x)
      base:narrow(2, 1, 2):clamp_(0)
      assert.same({{0, 0, 0}, {0.5, 1, 3}}, base:totable())
    end)

    -- torch.tensor([1, 2]).clamp_(0.5) -> result type Float can't be cast to the desired output type long int
    it("refuses a float bound in place into an int64 tensor", function()
      H.errors(function() return mg.tensor({1, 2}, {dtype = "int64"}):clamp_(0.5) end,
        "result of dtype float32 cannot be written in place into a tensor of dtype int64")
    end)

    it("refuses to clamp in place into an expanded tensor", function()
      H.errors(function() return mg.tensor{1, 2}:expand(3, 2):clamp_(0, 1) end,
        "more than one element of the in-place target refers to one memory location (clone() it first)")
    end)
  end)

  describe("views", function()
    it("a write through one view is seen through another", function()
      local base = mg.tensor{{1, 4}, {9, 16}}
      local a, b = base:select(1, 1), base:t()
      a:sqrt_()
      assert.same({{1, 9}, {2, 16}}, b:totable())
    end)
  end)
end)

describe("floor, ceil and round over long runs (the vectorized loops)", function()
  -- exact at every element: halves (round goes to even), negatives near 0 (a zero keeps the
  -- sign), values past 2^23 and 2^52, infinities, NaN; 40 copies so the runs are long
  local base = { -2.5, -1.5, -0.5, -0.3, -0.0, 0.0, 0.3, 0.5, 1.5, 2.5, 3.7, -3.7, 8388607.5,
    -8388607.5, 16777217.0, 1e30, -1e30, math.huge, -math.huge }
  local function c_round(v) -- half to even, as nearbyint in the default rounding mode
    local f = math.floor(v)
    local d = v - f
    if d > 0.5 or (d == 0.5 and f % 2 == 1) then f = f + 1 end
    return f
  end
  local refs = { floor = math.floor, ceil = math.ceil, round = c_round }
  for _, dt in ipairs({ "float32", "float64" }) do
    it(dt .. ": each element as C computes it, the sign of zero included", function()
      local values = {}
      for _ = 1, 40 do for _, v in ipairs(base) do values[#values + 1] = v end end
      values[#values + 1] = 0 / 0
      local x = mg.tensor(values, { dtype = dt })
      local xs = x:totable()
      for name, ref in pairs(refs) do
        local y = x[name](x):totable()
        for i = 1, #xs - 1 do
          local v = xs[i]
          local want = (v ~= v or v == math.huge or v == -math.huge) and v or ref(v)
          if want == 0 then want = (v < 0 or 1 / v < 0) and -0.0 or 0.0 end
          assert.equal(want, y[i], string.format("%s(%.17g)", name, v))
          if want == 0 then assert.equal(1 / want, 1 / y[i], string.format("%s(%.17g): sign of zero", name, v)) end
        end
        assert.is_true(y[#xs] ~= y[#xs], name .. "(NaN)")
      end
    end)
  end
end)
