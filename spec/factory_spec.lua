-- Factories: zeros ones empty full, the *_like forms, eye, arange, linspace.
-- Reference values from torch 1.13 (/usr/bin/python3); the expression is in the comment above each.
local mg = require "moongrad"
local H = require "helper"

describe("factories", function()
  describe("zeros()", function()
    it("takes the shape as varargs or as one table", function()
      -- torch.zeros(2, 3).tolist()
      assert.same({{0, 0, 0}, {0, 0, 0}}, mg.zeros(2, 3):totable())
      assert.same({{0, 0, 0}, {0, 0, 0}}, mg.zeros{2, 3}:totable())
      assert.same({2, 3}, mg.zeros{2, 3}.shape)
    end)

    it("gives float32 by default and any dtype from a trailing options table", function()
      assert.equal("float32", mg.zeros(2).dtype)
      assert.equal("float64", mg.zeros(2, 3, {dtype = "float64"}).dtype)
      local i = mg.zeros({2}, {dtype = "int64"})
      assert.equal("int64", i.dtype)
      assert.equal("integer", math.type(i:totable()[1]))
      assert.same({false, false}, mg.zeros(2, {dtype = "bool"}):totable())
    end)

    it("makes a 0-d tensor from an empty shape and an empty tensor from a zero size", function()
      local s = mg.zeros{}
      assert.equal(0, s:dim())
      assert.equal(0, s:item())
      local e = mg.zeros(2, 0)
      assert.same({2, 0}, e.shape)
      assert.equal(0, e:numel())
    end)

    it("follows set_default_dtype", function()
      mg.set_default_dtype("float64")
      local ok, t = pcall(mg.zeros, 2)
      mg.set_default_dtype("float32")
      assert.is_true(ok)
      assert.equal("float64", t.dtype)
    end)

    it("marks requires_grad on floating tensors only", function()
      assert.is_false(mg.zeros(2).requires_grad)
      assert.is_true(mg.zeros(2, {requires_grad = true}).requires_grad)
      H.errors(function() return mg.zeros(2, {dtype = "int64", requires_grad = true}) end,
        "bad argument #2 to 'zeros' (only floating point tensors can require gradients)")
      H.errors(function() return mg.zeros(2, {requires_grad = 1}) end,
        "bad argument #2 to 'zeros' (requires_grad must be a boolean)")
    end)

    it("refuses a negative size", function()
      H.errors(function() return mg.zeros(-3) end,
        "bad argument #1 to 'zeros' (size -3 at dimension 1 is negative)")
      H.errors(function() return mg.zeros{4, -1} end,
        "bad argument #1 to 'zeros' (size -1 at dimension 2 is negative)")
    end)

    it("refuses shapes of more than 2^62 elements", function()
      local big = 1 << 31
      H.errors(function() return mg.zeros(big, big, big) end,
        "'zeros': shape {2147483648,2147483648,2147483648} has more than 2^62 elements")
    end)

    it("refuses an unknown dtype or option", function()
      H.errors(function() return mg.zeros(3, {dtype = "float16"}) end,
        "bad argument #2 to 'zeros' (unknown dtype 'float16', expected 'float32', 'float64', 'int64' or 'bool')")
      H.errors(function() return mg.zeros(3, {dtpye = "float64"}) end,
        "bad argument #2 to 'zeros' (unknown option 'dtpye' (valid: dtype, requires_grad))")
    end)
  end)

  describe("ones()", function()
    it("fills every dtype with one", function()
      -- torch.ones(2, 2).tolist()
      assert.same({{1, 1}, {1, 1}}, mg.ones(2, 2):totable())
      assert.same({1, 1, 1}, mg.ones({3}, {dtype = "float64"}):totable())
      assert.same({1, 1}, mg.ones(2, {dtype = "int64"}):totable())
      assert.equal("integer", math.type(mg.ones(1, {dtype = "int64"}):totable()[1]))
      -- torch.ones(2, dtype=torch.bool).tolist()
      assert.same({true, true}, mg.ones(2, {dtype = "bool"}):totable())
    end)

    it("refuses a negative size", function()
      H.errors(function() return mg.ones{2, -1} end, "bad argument #1 to 'ones' (size -1 at dimension 2 is negative)")
    end)
  end)

  describe("empty()", function()
    it("has the shape and dtype asked for", function()
      local t = mg.empty(3, 2, {dtype = "int64"})
      assert.same({3, 2}, t.shape)
      assert.equal("int64", t.dtype)
      assert.equal("float32", mg.empty{4}.dtype)
      assert.equal(4, mg.empty{4}:numel())
    end)
  end)

  describe("full()", function()
    it("fills a shape given as a table, with the default dtype for numbers", function()
      -- torch.full((2, 2), 7.).tolist()
      local t = mg.full({2, 2}, 7)
      assert.equal("float32", t.dtype)
      assert.same({{7, 7}, {7, 7}}, t:totable())
      H.near({2.5, 2.5, 2.5}, mg.full({3}, 2.5))
    end)

    it("makes a 0-d tensor from an empty shape table", function()
      local t = mg.full({}, 3.5)
      assert.equal(0, t:dim())
      assert.equal(3.5, t:item())
    end)

    it("gives bool for a boolean value", function()
      -- torch.full((2,), True).tolist()
      local t = mg.full({2}, true)
      assert.equal("bool", t.dtype)
      assert.same({true, true}, t:totable())
    end)

    it("converts the value to opts.dtype", function()
      -- torch.full((2,), 2.7, dtype=torch.int64).tolist()
      assert.same({2, 2}, mg.full({2}, 2.7, {dtype = "int64"}):totable())
      assert.same({1.5}, mg.full({1}, 1.5, {dtype = "float64"}):totable())
      assert.same({1, 1}, mg.full({2}, true, {dtype = "float32"}):totable())
    end)

    it("refuses a shape that is not a table, and a value that is not a number or boolean", function()
      H.errors(function() return mg.full(3, 1) end,
        "bad argument #1 to 'full' (shape table (mg.full({2, 3}, value)) expected, got number)")
      H.errors(function() return mg.full({2}, "x") end,
        "bad argument #2 to 'full' (number or boolean expected, got string)")
      H.errors(function() return mg.full({2, -2}, 1) end,
        "bad argument #1 to 'full' (size -2 at dimension 2 is negative)")
    end)
  end)

  describe("zeros_like() ones_like() empty_like() full_like()", function()
    it("keep the shape and dtype of their argument", function()
      local src = mg.tensor({{1, 2, 3}, {4, 5, 6}}, {dtype = "int64"})
      local z = mg.zeros_like(src)
      assert.equal("int64", z.dtype)
      assert.same({{0, 0, 0}, {0, 0, 0}}, z:totable())
      assert.same({{1, 1, 1}, {1, 1, 1}}, mg.ones_like(src):totable())
      local e = mg.empty_like(src)
      assert.same({2, 3}, e.shape)
      assert.equal("int64", e.dtype)
    end)

    it("take the shape of a view (transposed)", function()
      local src = mg.zeros(2, 3):t()
      assert.same({3, 2}, mg.ones_like(src).shape)
      assert.same({{1, 1}, {1, 1}, {1, 1}}, mg.ones_like(src):totable())
    end)

    it("take opts.dtype", function()
      local t = mg.ones_like(mg.zeros(2), {dtype = "bool"})
      assert.same({true, true}, t:totable())
      assert.equal("float64", mg.zeros_like(mg.zeros(2), {dtype = "float64"}).dtype)
      assert.is_true(mg.zeros_like(mg.zeros(2), {requires_grad = true}).requires_grad)
      assert.is_false(mg.zeros_like(mg.zeros(2, {requires_grad = true})).requires_grad)
    end)

    it("full_like converts the value to the dtype of the tensor", function()
      -- torch.full_like(torch.zeros(2, dtype=torch.int64), 7.9).tolist()
      local i = mg.full_like(mg.zeros(2, {dtype = "int64"}), 7.9)
      assert.equal("int64", i.dtype)
      assert.same({7, 7}, i:totable())
      -- torch.full_like(torch.zeros(2), True).tolist()
      assert.same({1, 1}, mg.full_like(mg.zeros(2), true):totable())
      assert.same({{2.5, 2.5}}, mg.full_like(mg.zeros(1, 2), 2.5, {dtype = "float64"}):totable())
    end)

    it("refuse a non-tensor", function()
      H.errors(function() return mg.zeros_like({1, 2}) end, "bad argument #1 to 'zeros_like' (tensor expected, got table)")
      H.errors(function() return mg.full_like(mg.zeros(2)) end,
        "bad argument #2 to 'full_like' (number or boolean expected, got no value)")
    end)
  end)

  describe("eye()", function()
    it("makes a square identity", function()
      -- torch.eye(3).tolist()
      assert.same({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, mg.eye(3):totable())
      assert.equal("float32", mg.eye(3).dtype)
    end)

    it("makes non-square ones", function()
      -- torch.eye(2, 3).tolist()
      assert.same({{1, 0, 0}, {0, 1, 0}}, mg.eye(2, 3):totable())
      -- torch.eye(3, 2).tolist()
      assert.same({{1, 0}, {0, 1}, {0, 0}}, mg.eye(3, 2):totable())
      assert.same({0, 3}, mg.eye(0, 3).shape)
    end)

    it("takes opts.dtype, with or without m", function()
      -- torch.eye(2, dtype=torch.bool).tolist()
      assert.same({{true, false}, {false, true}}, mg.eye(2, {dtype = "bool"}):totable())
      local i = mg.eye(2, 3, {dtype = "int64"})
      assert.equal("int64", i.dtype)
      assert.same({{1, 0, 0}, {0, 1, 0}}, i:totable())
      assert.equal("float64", mg.eye(1, {dtype = "float64"}).dtype)
    end)

    it("refuses negative sizes", function()
      H.errors(function() return mg.eye(-1) end, "bad argument #1 to 'eye' (n must be non-negative, got -1)")
      H.errors(function() return mg.eye(2, -4) end, "bad argument #2 to 'eye' (m must be non-negative, got -4)")
    end)
  end)

  describe("arange()", function()
    it("counts from 0 to stop (excluded) in the default float dtype", function()
      -- torch.arange(5, dtype=torch.float32).tolist()
      local t = mg.arange(5)
      assert.equal("float32", t.dtype)
      assert.same({0, 1, 2, 3, 4}, t:totable())
      -- torch.arange(2, 5, dtype=torch.float32).tolist()
      assert.same({2, 3, 4}, mg.arange(2, 5):totable())
    end)

    it("gives PyTorch's float32 values for a fractional step", function()
      -- torch.arange(0, 1, 0.1).tolist()
      assert.same({0.0, 0.10000000149011612, 0.20000000298023224, 0.30000001192092896, 0.4000000059604645, 0.5,
                   0.6000000238418579, 0.699999988079071, 0.800000011920929, 0.8999999761581421},
        mg.arange(0, 1, 0.1):totable())
      -- torch.arange(1, 0, -0.25).tolist()
      assert.same({1.0, 0.75, 0.5, 0.25}, mg.arange(1, 0, -0.25):totable())
    end)

    it("gives PyTorch's float64 values (start + step * i as one fused multiply-add)", function()
      -- torch.arange(-1, 1, 0.3, dtype=torch.float64).tolist()
      assert.same({-1.0, -0.7, -0.4, -0.10000000000000003, 0.19999999999999996, 0.49999999999999994,
                   0.7999999999999999}, mg.arange(-1, 1, 0.3, {dtype = "float64"}):totable())
    end)

    it("has ceil((stop - start) / step) elements", function()
      -- torch.arange(0, 1, 0.3).tolist()
      assert.same({0.0, 0.30000001192092896, 0.6000000238418579, 0.8999999761581421}, mg.arange(0, 1, 0.3):totable())
      assert.same({0}, mg.arange(0, 0):size())
      assert.same({1}, mg.arange(0, 1e-9, 1):size())
    end)

    it("counts exactly in int64 when asked", function()
      -- torch.arange(0, 10, 3).tolist()
      local t = mg.arange(0, 10, 3, {dtype = "int64"})
      assert.equal("int64", t.dtype)
      assert.same({0, 3, 6, 9}, t:totable())
      -- torch.arange(10, 0, -3).tolist()
      assert.same({10, 7, 4, 1}, mg.arange(10, 0, -3, {dtype = "int64"}):totable())
      local top = math.maxinteger
      assert.same({top - 2, top - 1}, mg.arange(top - 2, top, {dtype = "int64"}):totable())
    end)

    it("refuses a zero step, a step of the wrong sign and non-finite bounds", function()
      H.errors(function() return mg.arange(0, 1, 0) end, "bad argument #3 to 'arange' (step must be nonzero)")
      H.errors(function() return mg.arange(0, 1, 0 / 0) end, "bad argument #3 to 'arange' (step must be finite)")
      H.errors(function() return mg.arange(0, 5, 0.5, {dtype = "int64"}) end,
        "bad argument #3 to 'arange' (step truncates to 0 as an int64, and it must be nonzero)")
      H.errors(function() return mg.arange(5, 0) end, "'arange': step 1 has the wrong sign to go from 5 to 0")
      H.errors(function() return mg.arange(0, 5, -1) end, "'arange': step -1 has the wrong sign to go from 0 to 5")
      H.errors(function() return mg.arange(0, math.huge) end, "'arange': cannot count from 0 to inf")
      H.errors(function() return mg.arange(0, 1e300, 1e-300) end,
        "'arange': the range from 0 to 1e+300 by 1e-300 has more than 2^62 elements")
    end)

    it("refuses bool and bad arguments", function()
      H.errors(function() return mg.arange(3, {dtype = "bool"}) end,
        "bad argument #2 to 'arange' (arange does not take dtype 'bool')")
      H.errors(function() return mg.arange("a") end, "bad argument #1 to 'arange' (number expected, got string)")
      H.errors(function() return mg.arange(1, 2, 3, 4) end,
        "bad argument #4 to 'arange' (arange takes at most start, stop and step)")
    end)
  end)

  describe("linspace()", function()
    it("gives PyTorch's float32 values", function()
      -- torch.linspace(-1, 1, 5).tolist()
      assert.same({-1.0, -0.5, 0.0, 0.5, 1.0}, mg.linspace(-1, 1, 5):totable())
      -- torch.linspace(0, 1, 7).tolist()
      assert.same({0.0, 0.1666666716337204, 0.3333333432674408, 0.5, 0.6666666269302368, 0.8333333134651184, 1.0},
        mg.linspace(0, 1, 7):totable())
      -- torch.linspace(1, 0, 6).tolist()
      assert.same({1.0, 0.800000011920929, 0.6000000238418579, 0.4000000059604645, 0.20000000298023224, 0.0},
        mg.linspace(1, 0, 6):totable())
    end)

    it("gives PyTorch's float64 values", function()
      -- torch.linspace(0, 1, 7, dtype=torch.float64).tolist()
      assert.same({0.0, 0.16666666666666666, 0.3333333333333333, 0.5, 0.6666666666666667, 0.8333333333333334, 1.0},
        mg.linspace(0, 1, 7, {dtype = "float64"}):totable())
    end)

    it("counts up from start in the first half and down from end in the second", function()
      -- t = torch.linspace(-3.7, 12.2, 1000); [t[i].item() for i in (0, 1, 499, 500, 998, 999)]
      local t = mg.linspace(-3.7, 12.2, 1000)
      H.near({-3.700000047683716, -3.684084177017212, 4.24204158782959, 4.257957458496094, 12.184083938598633,
              12.199999809265137}, {t[1], t[2], t[500], t[501], t[999], t[1000]}, 1e-7)
      -- both ends exactly
      assert.equal(-3.700000047683716, t[1])
      assert.equal(12.199999809265137, t[1000])
    end)

    it("truncates for int64", function()
      -- torch.linspace(0, 10, 7, dtype=torch.int64).tolist()
      assert.same({0, 1, 3, 5, 6, 8, 10}, mg.linspace(0, 10, 7, {dtype = "int64"}):totable())
    end)

    it("gives start for one step and nothing for zero", function()
      -- torch.linspace(0, 1, 1).tolist(), torch.linspace(0, 1, 0).tolist()
      assert.same({0}, mg.linspace(0, 1, 1):totable())
      assert.same({0}, mg.linspace(0, 1, 0):size())
    end)

    it("refuses a negative count and bool", function()
      H.errors(function() return mg.linspace(0, 1, -2) end,
        "bad argument #3 to 'linspace' (number of steps must be non-negative, got -2)")
      H.errors(function() return mg.linspace(0, 1, 3, {dtype = "bool"}) end,
        "bad argument #4 to 'linspace' (linspace does not take dtype 'bool')")
      H.errors(function() return mg.linspace(0, 1) end,
        "bad argument #3 to 'linspace' (number expected, got no value)")
    end)
  end)
end)
