-- Elementwise ops of two operands (src/ops/binary.c, src/bind/binary.c): arithmetic and its
-- operators, broadcasting, type promotion, comparisons, maximum / minimum, where, masked_fill, the
-- in-place forms, equal and allclose. Reference values from PyTorch 1.13 (/usr/bin/python3); the
-- expression is in the comment above each.
local mg = require "moongrad"
local H = require "helper"

local inf, nan = math.huge, 0 / 0

local function long(x) return mg.tensor(x, {dtype = "int64"}) end
local function double(x) return mg.tensor(x, {dtype = "float64"}) end

describe("binary", function()
  describe("add()", function()
    it("adds as an operator, a method and a function", function()
      local a, b = mg.tensor{{1, 2}, {3, 4}}, mg.tensor{{10, 20}, {30, 40}}
      assert.same({{11, 22}, {33, 44}}, (a + b):totable())
      assert.same({{11, 22}, {33, 44}}, a:add(b):totable())
      assert.same({{11, 22}, {33, 44}}, mg.add(a, b):totable())
      assert.same({{1, 2}, {3, 4}}, a:totable()) -- operands untouched
    end)

    it("takes a number on either side", function()
      local t = mg.tensor{1, 2}
      assert.same({3, 4}, (t + 2):totable())
      assert.same({3, 4}, (2 + t):totable())
      assert.same({1.5, 2.5}, mg.add(0.5, t):totable())
    end)

    it("adds every dtype", function()
      assert.same({11, 22}, (double{1, 2} + double{10, 20}):totable())
      assert.same({11, 22}, (long{1, 2} + long{10, 20}):totable())
      -- torch.tensor([True, False]) + torch.tensor([True, True]) -> bool [True, True]
      assert.same({true, true, false}, (mg.tensor{true, false, false} + mg.tensor{true, true, false}):totable())
    end)

    -- torch.tensor([9223372036854775807]) + 1 -> [-9223372036854775808]
    it("wraps int64 overflow around as PyTorch", function()
      assert.same({math.mininteger}, (long{math.maxinteger} + 1):totable())
    end)

    it("reads transposed, narrowed and expanded operands", function()
      local a = mg.tensor{{1, 4}, {2, 5}, {3, 6}}:t() -- {{1, 2, 3}, {4, 5, 6}}, not contiguous
      assert.is_false(a:is_contiguous())
      assert.same({{11, 22, 33}, {14, 25, 36}}, (a + mg.tensor{10, 20, 30}):totable())
      assert.same({{2, 4, 6}, {8, 10, 12}}, (a + a):totable())
      assert.same({{2, 3}, {5, 6}}, a:narrow(2, 2, 2):totable())
      assert.same({{102, 103}, {105, 106}}, (a:narrow(2, 2, 2) + 100):totable())
      local e = mg.tensor{1, 2, 3}:expand(2, 3)
      assert.same({{2, 4, 6}, {5, 7, 9}}, (e + a):totable())
      assert.same({{11, 22, 33}, {11, 22, 33}}, (e + mg.tensor{10, 20, 30}:expand(2, 3)):totable())
    end)

    it("refuses a string or a table operand", function()
      local t = mg.tensor{1, 2}
      H.errors(function() return t + "a" end, "bad argument #2 to 'add' (number or tensor expected, got string)")
      H.errors(function() return mg.add(t, {}) end, "bad argument #2 to 'add' (number or tensor expected, got table)")
      H.errors(function() return mg.add("1", t) end, "bad argument #1 to 'add' (number or tensor expected, got string)")
      -- "a" + t reaches __add through the string library's metamethod, which leaves the call
      -- unnamed: the message names 'add' all the same
      H.errors(function() return "a" + t end, "bad argument #1 to 'add' (number or tensor expected, got string)")
      H.errors(function() return mg.add(1, 2) end, "bad argument #2 to 'add' (tensor expected, got number)")
    end)
  end)

  describe("sub()", function()
    -- 2 - torch.tensor([1.5, -2.]) -> [0.5, 4.]
    it("subtracts with a number on either side", function()
      local t = mg.tensor{1.5, -2}
      assert.same({0.5, 4}, (2 - t):totable())
      assert.same({-0.5, -4}, (t - 2):totable())
      assert.same({-0.5, -4}, t:sub(2):totable())
      assert.same({0, 0}, mg.sub(t, t):totable())
      assert.same({-1, 5}, (long{2, 3} - long{3, -2}):totable())
      assert.same({-1, 5}, (double{2, 3} - double{3, -2}):totable())
    end)

    -- torch.tensor([True]) - torch.tensor([True]) -> RuntimeError: Subtraction, the `-` operator,
    -- with two bool tensors is not supported; torch.tensor([True]) - 1 and 1 - torch.tensor([True]) too
    it("refuses a bool tensor", function()
      local b = mg.tensor{true, false}
      H.errors(function() return b - b end, "bad argument #1 to 'sub' (subtraction with a bool tensor is not supported)")
      H.errors(function() return 1 - b end, "bad argument #2 to 'sub' (subtraction with a bool tensor is not supported)")
      H.errors(function() return mg.sub(long{1, 2}, b) end, "bad argument #2 to 'sub' (subtraction with a bool tensor is not supported)")
      H.errors(function() return long{1, 2}:sub_(b) end, "subtraction with a bool tensor is not supported")
    end)
  end)

  describe("neg()", function()
    it("negates as unary minus, a method and a function", function()
      assert.same({-1, 2}, (-mg.tensor{1, -2}):totable())
      assert.same({-1, 2}, mg.tensor{1, -2}:neg():totable())
      assert.same({-1, 2}, mg.neg(long{1, -2}):totable())
      assert.equal("int64", mg.neg(long{1, -2}).dtype)
      assert.equal("float64", (-double{1}).dtype)
      assert.same({-1, -3}, (-mg.tensor{{1, 2}, {3, 4}}:t()[1]):totable())
    end)

    -- -torch.tensor([True]) -> RuntimeError: Negation, the `-` operator, on a bool tensor is not supported
    it("refuses a bool tensor", function()
      H.errors(function() return mg.neg(mg.tensor{true}) end,
        "bad argument #1 to 'neg' (negation of a bool tensor is not supported)")
      -- API.md: unary - reports errors as 'neg' (Lua itself would name the metamethod 'unm')
      H.errors(function() return -mg.tensor{true} end,
        "bad argument #1 to 'neg' (negation of a bool tensor is not supported)")
    end)
  end)

  describe("mul()", function()
    it("multiplies every dtype, a number on either side", function()
      assert.same({3, -6}, (mg.tensor{1, -2} * 3):totable())
      assert.same({3, -6}, (3 * mg.tensor{1, -2}):totable())
      assert.same({3, -6}, mg.mul(double{1, -2}, 3):totable())
      assert.same({3, -6}, long{1, -2}:mul(long{3, 3}):totable())
      -- torch.tensor([True, True, False]) * torch.tensor([True, False, False]) -> [True, False, False]
      assert.same({true, false, false}, (mg.tensor{true, true, false} * mg.tensor{true, false, false}):totable())
      -- torch.tensor([True, False]) * 2 -> int64 [2, 0]
      assert.same({2, 0}, (mg.tensor{true, false} * 2):totable())
    end)
  end)

  describe("div()", function()
    it("divides with a number on either side", function()
      -- torch.tensor([1.5, -2.]) / 2 -> [0.75, -1.]; 3 / torch.tensor([1.5, -2.]) -> [2., -1.5]
      assert.same({0.75, -1}, (mg.tensor{1.5, -2} / 2):totable())
      assert.same({2, -1.5}, (3 / mg.tensor{1.5, -2}):totable())
      assert.same({0.75, -1}, mg.div(double{1.5, -2}, 2):totable())
      assert.same({0.75, -1}, mg.tensor{1.5, -2}:div(2):totable())
    end)

    -- torch.tensor([7, -7]) / torch.tensor([2, 2]) -> float32 [3.5, -3.5]
    it("divides int64 by int64 into float32 (true division)", function()
      local y = long{7, -7} / long{2, 2}
      assert.equal("float32", y.dtype)
      assert.same({3.5, -3.5}, y:totable())
      assert.equal("float32", (long{1} / 2).dtype)
      -- torch.tensor([True, False]) / torch.tensor([True, True]) -> float32 [1., 0.]
      assert.same({1, 0}, (mg.tensor{true, false} / mg.tensor{true, true}):totable())
    end)

    -- torch.tensor([5, -5]) / torch.tensor([0, 0]) -> [inf, -inf]; torch.tensor([0.]) / 0 -> [nan]
    it("gives inf and NaN on division by zero", function()
      assert.same({inf, -inf}, (long{5, -5} / long{0, 0}):totable())
      H.near({nan}, mg.tensor{0} / 0)
    end)
  end)

  describe("pow()", function()
    -- 2 ** torch.tensor([1.5, -2.]) -> [2.8284270763397217, 0.25]
    -- torch.tensor([2., 3.]) ** torch.tensor([3., 0.5]) -> [8., 1.7320507764816284]
    it("raises with a number on either side", function()
      H.near({2.8284270763397217, 0.25}, 2 ^ mg.tensor{1.5, -2})
      assert.same({2.25, 4}, (mg.tensor{1.5, -2} ^ 2):totable())
      H.near({8, 1.7320507764816284}, mg.tensor{2, 3} ^ mg.tensor{3, 0.5})
      -- torch.tensor([2., 3.], dtype=torch.float64) ** torch.tensor([3., 0.5], dtype=torch.float64)
      H.near({8, 1.7320508075688772}, mg.pow(double{2, 3}, double{3, 0.5}), 1e-15)
      assert.same({2.25, 4}, mg.tensor{1.5, -2}:pow(2):totable())
    end)

    -- torch.tensor([-7, 7]) ** 2 -> int64 [49, 49]; 2 ** torch.tensor([-7, 7]) -> int64 [0, 128]
    -- torch.tensor([1, 2]) ** torch.tensor([2, 3]) -> [1, 8]
    it("keeps int64 with integer exponents", function()
      local y = long{-7, 7} ^ 2
      assert.equal("int64", y.dtype)
      assert.same({49, 49}, y:totable())
      assert.same({0, 128}, (2 ^ long{-7, 7}):totable())
      assert.same({1, 8}, (long{1, 2} ^ long{2, 3}):totable())
    end)

    -- torch.tensor([-7, 7]) ** 0.5 -> float32 [nan, 2.6457512378692627]
    -- 2.0 ** torch.tensor([-7, 7]) -> float32 [0.0078125, 128.]
    -- torch.tensor([True, False]) ** 2 -> int64 [1, 0]
    it("promotes int64 with float exponents and bool to int64", function()
      local y = long{-7, 7} ^ 0.5
      assert.equal("float32", y.dtype)
      H.near({nan, 2.6457512378692627}, y)
      assert.same({0.0078125, 128}, (2.0 ^ long{-7, 7}):totable())
      local b = mg.tensor{true, false} ^ 2
      assert.equal("int64", b.dtype)
      assert.same({1, 0}, b:totable())
    end)
  end)

  describe("broadcasting", function()
    it("broadcasts a row over every row", function()
      local a = mg.tensor{{1, 2}, {3, 4}, {5, 6}}
      assert.same({{11, 22}, {13, 24}, {15, 26}}, (a + mg.tensor{10, 20}):totable())
      assert.same({{11, 22}, {13, 24}, {15, 26}}, (mg.tensor{10, 20} + a):totable())
    end)

    it("broadcasts a column {3,1} with a row {1,4} to {3,4}", function()
      local col, row = mg.tensor{{1}, {2}, {3}}, mg.tensor{{10, 20, 30, 40}}
      local y = col * row
      assert.same({3, 4}, y:size())
      assert.same({{10, 20, 30, 40}, {20, 40, 60, 80}, {30, 60, 90, 120}}, y:totable())
      assert.same({{9, 19, 29, 39}, {8, 18, 28, 38}, {7, 17, 27, 37}}, (row - col):totable())
    end)

    it("broadcasts a 0-d tensor with an n-D one", function()
      local s = mg.tensor(10)
      assert.same({}, s:size())
      assert.same({{11, 12}, {13, 14}}, (s + mg.tensor{{1, 2}, {3, 4}}):totable())
      assert.same({{9, 8}, {7, 6}}, (s - mg.tensor{{1, 2}, {3, 4}}):totable())
      local z = s * mg.tensor(3)
      assert.same({}, z:size())
      assert.equal(30, z:item())
    end)

    it("prepends leading dims: {2,1,3} with {4,1} gives {2,4,3}", function()
      local a = mg.tensor{{{1, 2, 3}}, {{4, 5, 6}}}       -- {2,1,3}
      local b = mg.tensor{{0}, {10}, {20}, {30}}          -- {4,1}
      local y = a + b
      assert.same({2, 4, 3}, y:size())
      assert.same({{1, 2, 3}, {11, 12, 13}, {21, 22, 23}, {31, 32, 33}}, y:totable()[1])
      assert.same({{4, 5, 6}, {14, 15, 16}, {24, 25, 26}, {34, 35, 36}}, y:totable()[2])
    end)

    it("gives an empty result for a size-0 dim", function()
      local e = mg.tensor{{1, 2}}:narrow(1, 1, 0) -- {0,2}
      assert.same({0, 2}, (e + mg.tensor{1, 2}):size())
      assert.same({0, 2}, (e + mg.tensor{{1}}):size())
    end)

    it("names both shapes when they cannot broadcast", function()
      local a, b = mg.tensor{{1, 2}, {3, 4}, {5, 6}}, mg.tensor{1, 2, 3, 4}
      H.errors(function() return mg.add(a, b) end, "bad argument #2 to 'add' (shapes {3,2} and {4} cannot broadcast)")
      H.errors(function() return a + b end, "bad argument #2 to 'add' (shapes {3,2} and {4} cannot broadcast)")
      H.errors(function() return a * b end, "bad argument #2 to 'mul' (shapes {3,2} and {4} cannot broadcast)")
      H.errors(function() return a / b end, "bad argument #2 to 'div' (shapes {3,2} and {4} cannot broadcast)")
      H.errors(function() return a ^ b end, "bad argument #2 to 'pow' (shapes {3,2} and {4} cannot broadcast)")
      H.errors(function() return a - b end, "bad argument #2 to 'sub' (shapes {3,2} and {4} cannot broadcast)")
      H.errors(function() return a:lt(b) end, "bad argument #1 to 'lt' (shapes {3,2} and {4} cannot broadcast)")
      H.errors(function() return mg.maximum(b, a) end, "bad argument #2 to 'maximum' (shapes {4} and {3,2} cannot broadcast)")
    end)
  end)

  describe("type promotion", function()
    local function dtype(t) return t.dtype end

    it("widens float32 with float64 to float64", function()
      assert.equal("float64", dtype(mg.tensor{1} + double{1}))
      assert.equal("float64", dtype(double{1} * mg.tensor{1}))
      assert.equal("float64", dtype(long{1} + double{1}))
    end)

    -- torch.tensor([1, 2]) + 1 -> int64; + 1.5 -> float32 [2.5, 3.5]
    it("keeps int64 with an integer and gives float32 with a float number", function()
      local y = long{1, 2} + 1
      assert.equal("int64", y.dtype)
      assert.equal("integer", math.type(y:totable()[1]))
      y = long{1, 2} + 1.5
      assert.equal("float32", y.dtype)
      assert.same({2.5, 3.5}, y:totable())
      assert.equal("float32", dtype(long{1} + mg.tensor{1}))
    end)

    it("gives the default float dtype for int64 and a float number", function()
      mg.set_default_dtype("float64")
      local ok, y = pcall(function() return long{1} * 0.5 end)
      mg.set_default_dtype("float32")
      assert.is_true(ok)
      assert.equal("float64", y.dtype)
    end)

    -- torch.tensor([True]) + 1 -> int64; + 1.5 -> float32; + torch.tensor([1]) -> int64
    it("promotes bool to int64 and to float", function()
      assert.equal("bool", dtype(mg.tensor{true} + mg.tensor{false}))
      assert.equal("int64", dtype(mg.tensor{true} + 1))
      assert.same({2.5}, (mg.tensor{true} + 1.5):totable())
      assert.equal("int64", dtype(mg.tensor{true} + long{1}))
      assert.equal("float32", dtype(mg.tensor{true} * mg.tensor{2}))
    end)

    -- torch.tensor([1.]) + 2**40 -> float32; torch.tensor([1.], dtype=torch.float64) + 1 -> float64
    it("never widens float32 to float64 for a Lua number", function()
      local y = mg.tensor{1} + 2 ^ 40
      assert.equal("float32", y.dtype)
      assert.same({2 ^ 40}, y:totable())
      -- 0.1 is rounded to float32: torch.tensor([0.]) + 0.1 -> 0.10000000149011612
      assert.same({0.10000000149011612}, (mg.tensor{0} + 0.1):totable())
      assert.equal("float64", dtype(double{1} + 1))
      assert.equal("float32", dtype(mg.tensor{1} + 1))
    end)

    -- torch.tensor([1.]) + torch.tensor(1., dtype=torch.float64) -> float32
    -- torch.tensor([1]) + torch.tensor(1.5, dtype=torch.float64) -> float64
    -- torch.tensor(1.) + torch.tensor(1., dtype=torch.float64) -> float64
    it("lets a 0-d tensor widen a tensor with dims only across kinds, as PyTorch", function()
      assert.equal("float32", dtype(mg.tensor{1} + double(1)))
      assert.equal("float32", dtype(double(1) + mg.tensor{1}))
      assert.equal("float64", dtype(long{1} + double(1.5)))
      assert.same({2.5}, (long{1} + double(1.5)):totable())
      assert.equal("float64", dtype(mg.tensor(1) + double(1)))
      assert.equal("int64", dtype(mg.tensor{true} + long(3)))
      assert.equal("float32", dtype(mg.tensor{1} * long(3)))
    end)
  end)

  describe("comparisons", function()
    it("return bool tensors for every dtype", function()
      local a, b = mg.tensor{1, 2, 3}, mg.tensor{3, 2, 1}
      assert.same({false, true, false}, a:eq(b):totable())
      assert.same({true, false, true}, a:ne(b):totable())
      assert.same({true, false, false}, a:lt(b):totable())
      assert.same({true, true, false}, a:le(b):totable())
      assert.same({false, false, true}, a:gt(b):totable())
      assert.same({false, true, true}, a:ge(b):totable())
      assert.equal("bool", a:eq(b).dtype)
      assert.same({false, true, true}, mg.ge(double{1, 2, 3}, 2):totable())
      assert.same({true, false, false}, mg.lt(long{1, 2, 3}, 2):totable())
      -- torch.tensor([True, False]) < torch.tensor([True, True]) -> [False, True]
      assert.same({false, true}, mg.tensor{true, false}:lt(mg.tensor{true, true}):totable())
    end)

    -- torch.tensor([-7, 7]) == -7.0 -> [True, False]; torch.tensor([1.5, -2.]) > 1 -> [True, False]
    it("compares across dtypes after promotion", function()
      assert.same({true, false}, long{-7, 7}:eq(-7.0):totable())
      assert.same({true, false}, long{1, 2}:lt(1.5):totable())
      assert.same({true, false}, mg.tensor{1.5, -2}:gt(1):totable())
      assert.same({true, true}, mg.tensor{1, 2}:eq(long{1, 2}):totable())
    end)

    it("broadcast and read non-contiguous operands", function()
      local a = mg.tensor{{1, 4}, {2, 5}, {3, 6}}:t() -- {{1, 2, 3}, {4, 5, 6}}
      assert.same({{false, true, true}, {true, true, true}}, a:gt(mg.tensor{2, 1, 0}):totable())
      assert.same({{true, false, false}, {false, false, false}}, mg.eq(1, a):totable())
    end)

    it("treat NaN as unequal to everything", function()
      assert.same({false, true, false}, mg.tensor{nan, 1, 2}:eq(mg.tensor{nan, 1, nan}):totable())
      assert.same({true, false, true}, mg.tensor{nan, 1, 2}:ne(mg.tensor{nan, 1, nan}):totable())
    end)
  end)

  describe("maximum() and minimum()", function()
    it("take the elementwise max and min, broadcasting", function()
      local a, b = mg.tensor{{1, 5}, {3, 2}}, mg.tensor{2, 4}
      assert.same({{2, 5}, {3, 4}}, mg.maximum(a, b):totable())
      assert.same({{1, 4}, {2, 2}}, a:minimum(b):totable())
      assert.same({3, 5}, mg.maximum(long{1, 5}, long{3, 2}):totable())
      assert.same({1, 2}, mg.minimum(double{1, 5}, double{3, 2}):totable())
      assert.same({true, false}, mg.maximum(mg.tensor{true, false}, mg.tensor{false, false}):totable())
      assert.same({false, false}, mg.minimum(mg.tensor{true, false}, mg.tensor{false, false}):totable())
      assert.same({2, 5}, mg.maximum(mg.tensor{1, 5}, 2):totable())
    end)

    -- torch.maximum(torch.tensor([1., nan]), torch.tensor([nan, 2.])) -> [nan, nan]; minimum too
    it("propagate NaN from either side", function()
      H.near({nan, nan, 3}, mg.maximum(mg.tensor{1, nan, 3}, mg.tensor{nan, 2, 0}))
      H.near({nan, nan, 0}, mg.minimum(mg.tensor{1, nan, 3}, mg.tensor{nan, 2, 0}))
      H.near({nan, nan}, mg.maximum(double{1, nan}, double{nan, 2}))
    end)
  end)

  describe("where()", function()
    local cond = mg.tensor{true, false, true}

    it("picks from two tensors", function()
      assert.same({1, 20, 3}, mg.where(cond, mg.tensor{1, 2, 3}, mg.tensor{10, 20, 30}):totable())
      assert.same({1, 20, 3}, mg.where(cond, long{1, 2, 3}, long{10, 20, 30}):totable())
      assert.same({true, true, true}, mg.where(cond, mg.tensor{true, true, true}, mg.tensor{false, true, false}):totable())
    end)

    -- torch.where(torch.tensor([True, False]), 1, 0) -> int64 [1, 0]; (.., 1.5, 0) -> float32.
    -- API.md: Lua numbers, integers too, take the default dtype (as in mg.tensor{1, 0}), so two
    -- numbers give float32 here; booleans give bool.
    it("takes numbers on either side", function()
      local y = mg.where(cond, 1, 0)
      assert.equal("float32", y.dtype)
      assert.same({1, 0, 1}, y:totable())
      y = mg.where(cond, 1.5, 0)
      assert.equal("float32", y.dtype)
      assert.same({1.5, 0, 1.5}, y:totable())
      assert.same({-1, 20, -1}, mg.where(cond, -1, mg.tensor{10, 20, 30}):totable())
      assert.same({1, 0, 3}, mg.where(cond, long{1, 2, 3}, 0):totable())
      assert.same({true, false, true}, mg.where(cond, true, false):totable())
    end)

    -- torch.where(torch.tensor([True, False]), torch.tensor([-7, 7]), torch.tensor([1.5, -2.])) -> float32
    -- torch.where(b, torch.tensor([-7, 7]), 2.5) -> float32 [-7., 2.5]
    it("promotes the two branches", function()
      local b = mg.tensor{true, false}
      local y = mg.where(b, long{-7, 7}, mg.tensor{1.5, -2})
      assert.equal("float32", y.dtype)
      assert.same({-7, -2}, y:totable())
      assert.same({-7, 2.5}, mg.where(b, long{-7, 7}, 2.5):totable())
      assert.equal("float64", mg.where(b, double{1, 2}, 1).dtype)
    end)

    it("broadcasts the condition and both branches", function()
      local c = mg.tensor{{true}, {false}} -- {2,1}
      assert.same({{1, 2, 3}, {0, 0, 0}}, mg.where(c, mg.tensor{1, 2, 3}, 0):totable())
      assert.same({{5, 5}, {7, 8}}, mg.where(c, mg.tensor(5), mg.tensor{7, 8}):totable())
      local t = mg.tensor{{1, 4}, {2, 5}, {3, 6}}:t()
      assert.same({{1, 0, 3}, {4, 0, 6}}, mg.where(cond, t, 0):totable())
    end)

    it("needs a bool condition and broadcastable shapes", function()
      H.errors(function() return mg.where(mg.tensor{1, 0}, 1, 2) end,
        "bad argument #1 to 'where' (condition must be a bool tensor, got float32)")
      H.errors(function() return mg.where(long{1, 0}, 1, 2) end, "(condition must be a bool tensor, got int64)")
      H.errors(function() return mg.where(cond, mg.tensor{1, 2}, 0) end,
        "bad argument #2 to 'where' (shapes {3} and {2} cannot broadcast)")
      H.errors(function() return mg.where(cond, 0, mg.tensor{1, 2}) end,
        "bad argument #3 to 'where' (shapes {3} and {2} cannot broadcast)")
      H.errors(function() return mg.where(cond, "a", 1) end, "bad argument #2 to 'where' (number or tensor expected, got string)")
    end)
  end)

  describe("masked_fill()", function()
    -- torch.tensor([1.5, -2.]).masked_fill(torch.tensor([True, False]), 7) -> [7., -2.]
    it("fills where the mask is true, keeping the dtype", function()
      local t = mg.tensor{1.5, -2}
      assert.same({7, -2}, t:masked_fill(mg.tensor{true, false}, 7):totable())
      assert.same({1.5, -2}, t:totable())
      -- torch.tensor([-7, 7]).masked_fill(torch.tensor([True, False]), 2.7) -> int64 [2, 7]
      local y = mg.masked_fill(long{-7, 7}, mg.tensor{true, false}, 2.7)
      assert.equal("int64", y.dtype)
      assert.same({2, 7}, y:totable())
      assert.same({0, 2}, double{1, 2}:masked_fill(mg.tensor{true, false}, mg.tensor(0)):totable())
      assert.same({false, false}, mg.tensor{true, false}:masked_fill(mg.tensor{true, false}, false):totable())
    end)

    -- torch.tensor([1, 2, 3]).masked_fill(torch.tensor(True), 0) -> [0, 0, 0]
    it("broadcasts the mask", function()
      assert.same({0, 0, 0}, long{1, 2, 3}:masked_fill(mg.tensor(true), 0):totable())
      assert.same({{9, 2}, {9, 4}}, mg.tensor{{1, 2}, {3, 4}}:masked_fill(mg.tensor{true, false}, 9):totable())
      assert.same({{9, 9}, {2, 4}}, mg.tensor{{1, 3}, {2, 4}}:t():masked_fill(mg.tensor{true, false}, 9):t():totable())
    end)

    it("fills in place with masked_fill_ and returns the tensor itself", function()
      local t = mg.tensor{{1, 2}, {3, 4}}
      assert.equal(t, t:masked_fill_(mg.tensor{false, true}, 0))
      assert.same({{1, 0}, {3, 0}}, t:totable())
      local base = mg.tensor{{1, 2}, {3, 4}}
      base:t():masked_fill_(mg.tensor{true, false}, -1) -- column 1 of base:t() is row 1 of base
      assert.same({{-1, -1}, {3, 4}}, base:totable())
    end)

    it("refuses a non-bool mask, a mask of the wrong shape and a non-scalar value", function()
      local t = mg.tensor{1, 2}
      H.errors(function() return mg.masked_fill(t, mg.tensor{1, 0}, 3) end,
        "bad argument #2 to 'masked_fill' (mask must be a bool tensor, got float32)")
      H.errors(function() return mg.masked_fill(t, mg.tensor{true, false, true}, 3) end,
        "bad argument #2 to 'masked_fill' (mask of shape {3} does not broadcast to shape {2})")
      H.errors(function() return mg.masked_fill(t, mg.tensor{{true}, {false}}, 3) end,
        "bad argument #2 to 'masked_fill' (mask of shape {2,1} does not broadcast to shape {2})")
      H.errors(function() return mg.masked_fill(t, mg.tensor{true, false}, mg.tensor{3, 4}) end,
        "bad argument #3 to 'masked_fill' (value must be a number or a 0-d tensor)")
      H.errors(function() return mg.masked_fill_(mg.tensor{1}:expand(2), mg.tensor{true, false}, 0) end,
        "bad argument #1 to 'masked_fill_' (more than one element of the in-place target refers to one memory location (clone() it first))")
    end)
  end)

  describe("in-place ops", function()
    it("return the tensor itself", function()
      local t = mg.tensor{1, 2}
      assert.equal(t, t:add_(1))
      assert.equal(t, t:sub_(1))
      assert.equal(t, t:mul_(4))
      assert.equal(t, t:div_(2))
      assert.equal(t, t:pow_(2))
      assert.equal(t, mg.add_(t, 1))
      assert.same({5, 17}, t:totable())
    end)

    it("compute every op in each dtype", function()
      assert.same({4, 6}, long{1, 2}:add_(long{3, 4}):totable())
      assert.same({-2, -2}, long{1, 2}:sub_(long{3, 4}):totable())
      assert.same({3, 8}, long{1, 2}:mul_(long{3, 4}):totable())
      assert.same({1, 16}, long{1, 2}:pow_(long{3, 4}):totable())
      assert.same({0.25, 0.5}, double{1, 2}:div_(4):totable())
      assert.same({0.5, 4}, double{2, 2}:pow_(double{-1, 2}):totable())
      assert.same({true, false}, mg.tensor{false, false}:add_(mg.tensor{true, false}):totable())
      assert.same({false, false}, mg.tensor{true, false}:mul_(mg.tensor{false, true}):totable())
    end)

    it("broadcast the operand to the target", function()
      local t = mg.tensor{{1, 2}, {3, 4}}
      t:add_(mg.tensor{10, 20})
      assert.same({{11, 22}, {13, 24}}, t:totable())
      t:mul_(mg.tensor{{1}, {-1}})
      assert.same({{11, 22}, {-13, -24}}, t:totable())
      t:sub_(mg.tensor(1))
      assert.same({{10, 21}, {-14, -25}}, t:totable())
    end)

    it("write through views into their base", function()
      local base = mg.tensor{{1, 2, 3}, {4, 5, 6}}
      base:t():add_(mg.tensor{100, 200}) -- column j of base.t() is row j of base
      assert.same({{101, 102, 103}, {204, 205, 206}}, base:totable())
      base:narrow(2, 2, 2):mul_(0)
      assert.same({{101, 0, 0}, {204, 0, 0}}, base:totable())
      base:select(1, 2):sub_(4)
      assert.same({{101, 0, 0}, {200, -4, -4}}, base:totable())
    end)

    it("read an operand that overlaps the target as it was before the write", function()
      -- PyTorch refuses partial overlap; moongrad reads the operand from a copy
      local base = mg.tensor{1, 2, 3, 4}
      base:narrow(1, 2, 3):add_(base:narrow(1, 1, 3))
      assert.same({1, 3, 5, 7}, base:totable())
      local t = mg.tensor{1, 2}
      t:mul_(t)
      assert.same({1, 4}, t:totable())
    end)

    -- torch.tensor([1., 2.]).add_(torch.tensor([1.], dtype=torch.float64)) -> float32 [2., 3.]
    -- torch.tensor([1, 2]).add_(torch.tensor([True, False])) -> int64 [2, 2]
    it("accept a result of a lower or equal kind", function()
      local t = mg.tensor{1, 2}
      t:add_(double{1})
      assert.equal("float32", t.dtype)
      assert.same({2, 3}, t:totable())
      assert.same({2, 2}, long{1, 2}:add_(mg.tensor{true, false}):totable())
      assert.same({4, 5}, mg.tensor{3, 4}:add_(long{1, 1}):totable())
    end)

    -- torch.tensor([1, 2]).add_(1.5) -> result type Float can't be cast to the desired output type Long
    -- torch.tensor([1, 2]).div_(2) -> the same
    it("refuse a float result into an int64 tensor", function()
      local t = long{1, 2}
      H.errors(function() return mg.add_(t, 1.5) end,
        "bad argument #2 to 'add_' (result of dtype float32 cannot be written in place into a tensor of dtype int64)")
      H.errors(function() return t:div_(2) end,
        "bad argument #1 to 'div_' (result of dtype float32 cannot be written in place into a tensor of dtype int64)")
      H.errors(function() return t:mul_(mg.tensor{1, 2}) end,
        "result of dtype float32 cannot be written in place into a tensor of dtype int64")
      H.errors(function() return mg.tensor{true}:add_(1) end,
        "result of dtype int64 cannot be written in place into a tensor of dtype bool")
      assert.same({1, 2}, t:totable())
    end)

    -- torch.tensor(1.).add_(torch.ones(3)) -> output with shape [] doesn't match the broadcast shape [3]
    it("refuse an operand that does not broadcast to the target", function()
      H.errors(function() return mg.add_(mg.tensor(1), mg.tensor{1, 1, 1}) end,
        "bad argument #2 to 'add_' (shape {3} does not broadcast to the in-place target's shape {})")
      H.errors(function() return mg.mul_(mg.tensor{1, 2}, mg.tensor{{1}, {2}}) end,
        "bad argument #2 to 'mul_' (shape {2,1} does not broadcast to the in-place target's shape {2})")
      H.errors(function() return mg.sub_(mg.tensor{1, 2}, mg.tensor{1, 2, 3}) end,
        "bad argument #2 to 'sub_' (shapes {2} and {3} cannot broadcast)")
    end)

    -- torch.zeros(1).expand(3).add_(1) -> RuntimeError: unsupported operation: more than one element
    -- of the written-to tensor refers to a single memory location
    it("refuse to write into a view of an expanded shape", function()
      local base = mg.tensor{1, 2}
      local e = base:expand(3, 2)
      H.errors(function() return mg.add_(e, 1) end,
        "bad argument #1 to 'add_' (more than one element of the in-place target refers to one memory location (clone() it first))")
      H.errors(function() return e:mul_(mg.tensor{1, 2}) end, "more than one element of the in-place target")
      assert.same({1, 2}, base:totable())
      -- a size-1 dim expanded to size 1 is still writable
      local one = mg.tensor{5}:expand(1)
      one:add_(1)
      assert.same({6}, one:totable())
    end)

    it("refuse a string operand", function()
      H.errors(function() return mg.add_(long{1}, "x") end, "bad argument #2 to 'add_' (number or tensor expected, got string)")
      H.errors(function() return mg.tensor{1}:add_("x") end, "(number or tensor expected, got string)")
    end)
  end)

  describe("equal()", function()
    -- torch.equal(torch.tensor([1, 2]), torch.tensor([1., 2.])) -> True; with [[1, 2]] -> False
    it("compares shapes and values after promotion", function()
      assert.is_true(mg.equal(mg.tensor{1, 2}, mg.tensor{1, 2}))
      assert.is_true(long{1, 2}:equal(mg.tensor{1, 2}))
      assert.is_false(mg.equal(mg.tensor{1, 2}, mg.tensor{1, 3}))
      assert.is_false(mg.equal(mg.tensor{1, 2}, mg.tensor{{1, 2}}))
      assert.is_true(mg.equal(mg.tensor{{1, 4}, {2, 5}}:t(), mg.tensor{{1, 2}, {4, 5}}))
      assert.is_true(mg.equal(mg.tensor{1, 1}, mg.tensor{1}:expand(2)))
      assert.is_false(mg.equal(mg.tensor{nan}, mg.tensor{nan}))
      assert.is_true(mg.equal(mg.tensor{true, false}, mg.tensor{true, false}))
    end)

    it("needs two tensors", function()
      H.errors(function() return mg.equal(mg.tensor{1, 2}, 3) end, "bad argument #2 to 'equal' (tensor expected, got number)")
    end)
  end)

  describe("allclose()", function()
    -- torch.allclose(torch.tensor([1., inf]), torch.tensor([1. + 1e-6, inf])) -> True
    it("accepts values within atol + rtol * |b|, and equal infinities", function()
      assert.is_true(mg.allclose(mg.tensor{1, inf}, mg.tensor{1 + 1e-6, inf}))
      -- torch.allclose(torch.tensor([1., inf]), torch.tensor([1., -inf])) -> False
      -- torch.allclose(torch.tensor([1e30]), torch.tensor([inf])) -> False
      assert.is_false(mg.allclose(mg.tensor{1, inf}, mg.tensor{1, -inf}))
      assert.is_false(mg.allclose(mg.tensor{1e30}, mg.tensor{inf}))
      assert.is_false(mg.allclose(double{1}, double{1 + 1e-4}))
      assert.is_true(mg.allclose(double{1}, double{1 + 1e-4}, 1e-3))
      assert.is_true(mg.allclose(double{0}, double{1e-9}))
      assert.is_false(mg.allclose(double{0}, double{1e-7}))
      assert.is_true(mg.allclose(double{0}, double{1e-7}, 0, 1e-6))
      assert.is_true(double{1, 2}:allclose(long{1, 2}))
    end)

    -- torch.allclose(torch.tensor([nan]), torch.tensor([nan])) -> False
    it("never accepts NaN", function()
      assert.is_false(mg.allclose(mg.tensor{nan}, mg.tensor{nan}))
    end)

    it("broadcasts, and names both shapes when it cannot", function()
      assert.is_true(mg.allclose(mg.tensor{{1, 1}, {1, 1}}, mg.tensor(1)))
      H.errors(function() return mg.allclose(mg.tensor{1, 2}, mg.tensor{1, 2, 3}) end,
        "bad argument #2 to 'allclose' (shapes {2} and {3} cannot broadcast)")
    end)
  end)
end)

describe("where over long contiguous runs (the block path)", function()
  -- src/ops/binary.c WHERE_LOOP: runs of 256 with the mask widened and the values picked by bit
  -- masks; 1000 elements cross three blocks and end in a partial one. Every layout of the values
  -- (two tensors, one number on either side, two numbers), every dtype, against a Lua loop.
  local n = 1000
  mg.manual_seed(9)
  local mask = mg.rand(n):gt(0.5)
  local m = mask:totable()
  for _, dt in ipairs({ "float32", "float64", "int64", "bool" }) do
    it(dt .. ": each element from the side its mask picks", function()
      local a, b
      if dt == "bool" then
        a, b = mg.rand(n):gt(0.3), mg.rand(n):gt(0.7)
      else
        a, b = (mg.randn(n) * 100):to(dt), (mg.randn(n) * 100):to(dt)
      end
      local at, bt = a:totable(), b:totable()
      local one_a, one_b = at[1], bt[2]
      -- the layouts: a and b tensors; a tensor and a number; a number and a tensor; two numbers
      local cases = {
        mg.where(mask, a, b),
        mg.where(mask, a, mg.tensor(one_b, { dtype = dt })),
        mg.where(mask, mg.tensor(one_a, { dtype = dt }), b),
        mg.where(mask, mg.tensor(one_a, { dtype = dt }), mg.tensor(one_b, { dtype = dt })),
      }
      for c, result in ipairs(cases) do
        local got = result:totable()
        for i = 1, n do
          local want -- (no and/or idiom: bool values may be false)
          if m[i] then
            if c <= 2 then want = at[i] else want = one_a end
          else
            if c % 2 == 1 then want = bt[i] else want = one_b end
          end
          assert.equal(want, got[i], string.format("case %d element %d", c, i))
        end
      end
    end)
  end
  it("copies the sign of zero (values are copied bit for bit)", function()
    local z = mg.where(mask, mg.tensor(-0.0), mg.tensor(0.0)):totable()
    for i = 1, n do assert.equal(m[i] and -math.huge or math.huge, 1 / z[i]) end
    local f = mg.zeros(n):masked_fill(mask, -0.0):totable()
    for i = 1, n do assert.equal(m[i] and -math.huge or math.huge, 1 / f[i]) end
  end)
end)
