-- Tensors: creation from Lua values, properties, item / totable, dtype conversions, the default
-- dtype. Views and indexing are in views_spec.lua.
local mg = require "moongrad"
local H = require "helper"

describe("tensor", function()
  describe("tensor()", function()
    it("makes a 0-d tensor from a number", function()
      local t = mg.tensor(2.5)
      assert.same({}, t.shape)
      assert.equal("float32", t.dtype)
      assert.equal(2.5, t:item())
    end)
    it("makes 1-D, 2-D and 3-D tensors from nested tables", function()
      assert.same({1, 2, 3}, mg.tensor{1, 2, 3}:totable())
      assert.same({{1, 2}, {3, 4}, {5, 6}}, mg.tensor{{1, 2}, {3, 4}, {5, 6}}:totable())
      local t = mg.tensor{{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}}
      assert.same({2, 2, 2}, t.shape)
      assert.same({{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}}, t:totable())
    end)
    it("makes an empty 1-D tensor from an empty table", function()
      assert.same({0}, mg.tensor{}.shape)
    end)
    it("makes bool tensors from booleans", function()
      local t = mg.tensor{true, false}
      assert.equal("bool", t.dtype)
      assert.same({true, false}, t:totable())
      assert.equal("bool", mg.tensor(true).dtype)
    end)
    it("copies a tensor", function()
      local a = mg.tensor{1, 2}
      local b = mg.tensor(a)
      b[1] = 9
      assert.same({1, 2}, a:totable())
      assert.same({9, 2}, b:totable())
      assert.same({{1, 3}, {2, 4}}, mg.tensor(mg.tensor{{1, 2}, {3, 4}}:t()):totable())
      assert.equal("int64", mg.tensor(a, {dtype = "int64"}).dtype)
    end)
    it("takes a dtype option", function()
      for _, dt in ipairs{"float32", "float64", "int64", "bool"} do
        assert.equal(dt, mg.tensor({1, 0}, {dtype = dt}).dtype)
      end
      assert.same({true, false}, mg.tensor({1, 0}, {dtype = "bool"}):totable())
      assert.equal("float64", mg.tensor({1}, {dtype = "double"}).dtype)
      -- torch.tensor(0.1, dtype=torch.float64).item() keeps all 53 bits
      assert.equal(0.1, mg.tensor(0.1, {dtype = "float64"}):item())
      assert.are_not.equal(0.1, mg.tensor(0.1):item())         -- float32 rounds it
    end)
    it("says where nested tables are not rectangular", function()
      H.errors(function() return mg.tensor{{1, 2}, {3}} end,
        "bad argument #1 to 'tensor' (non-rectangular nested tables: data[2] has 1 element, expected 2)")
      H.errors(function() return mg.tensor{{1, 2}, 3} end,
        "non-rectangular nested tables: data[2] is a number, expected a table of 2 elements")
      H.errors(function() return mg.tensor{{{1}, {2}}, {{1}, {2, 3}}} end,
        "non-rectangular nested tables: data[2][2] has 2 elements, expected 1")
    end)
    it("says where a table holds something that is not a number", function()
      H.errors(function() return mg.tensor{{1, 2}, {3, "x"}} end,
        "bad argument #1 to 'tensor' (data[2][2] is a string, expected a number)")
      H.errors(function() return mg.tensor("1") end,
        "bad argument #1 to 'tensor' (number, table or tensor expected, got string)")
    end)
    it("names an unknown dtype and the valid ones", function()
      H.errors(function() return mg.tensor({1}, {dtype = "float16"}) end,
        "bad argument #2 to 'tensor' (unknown dtype 'float16', expected 'float32', 'float64', 'int64' or 'bool')")
      H.errors(function() return mg.tensor({1}, {dtpye = "float64"}) end,
        "bad argument #2 to 'tensor' (unknown option 'dtpye' (valid: dtype, requires_grad))")
    end)
  end)

  describe("properties", function()
    local t = mg.tensor{{1, 2, 3}, {4, 5, 6}}
    it("shape is a fresh table each time", function()
      local s = t.shape
      assert.same({2, 3}, s)
      s[1] = 99
      assert.same({2, 3}, t.shape)
      assert.are_not.equal(t.shape, t.shape)
    end)
    it("size() gives the shape or one dim's size", function()
      assert.same({2, 3}, t:size())
      assert.equal(3, t:size(2))
      assert.equal(2, t:size(-2))
      assert.equal(3, mg.size(t, -1))
      H.errors(function() return t:size(3) end,
        "bad argument #1 to 'size' (dimension 3 out of range (expected 1..2 or -2..-1))")
    end)
    it("dim(), numel() and #t", function()
      assert.equal(2, t:dim())
      assert.equal(6, t:numel())
      assert.equal(2, #t)
      assert.equal(0, mg.tensor(1):dim())
      assert.equal(1, mg.tensor(1):numel())
      assert.equal(0, #mg.tensor{})
    end)
    it("#t on a 0-d tensor is an error", function()
      H.errors(function() return #mg.tensor(1) end, "a 0-d tensor has no length (use t:numel() or t:item())")
    end)
    it("dtype, requires_grad and is_leaf", function()
      assert.equal("float32", t.dtype)
      assert.is_false(t.requires_grad)
      assert.is_true(t.is_leaf)
      assert.is_nil(t.grad)
    end)
  end)

  describe("item()", function()
    it("reads the only element, of any rank", function()
      assert.equal(7, mg.tensor{{7}}:item())
      assert.equal(true, mg.tensor{true}:item())
      assert.equal("integer", math.type(mg.tensor({3}, {dtype = "int64"}):item()))
    end)
    it("refuses more than one element", function()
      H.errors(function() return mg.tensor{1, 2}:item() end,
        "a tensor with 2 elements cannot be converted to a number (item needs exactly 1)")
    end)
  end)

  describe("totable()", function()
    it("round-trips tensor -> table -> tensor", function()
      local data = {{{1.5, -2}, {0, 3}}, {{4, 5}, {6, 7.25}}}
      local back = mg.tensor(mg.tensor(data):totable())
      assert.same(data, back:totable())
      assert.equal(5, mg.tensor(5):totable())
    end)
    it("reads int64 as Lua integers and bool as booleans", function()
      local i = mg.tensor({1, -2}, {dtype = "int64"})
      assert.equal("integer", math.type(i:totable()[2]))
      assert.equal("integer", math.type(i[1]))
      assert.equal("float", math.type(mg.tensor{1}[1]))
      assert.equal(false, mg.tensor{true, false}[2])
      -- 2^53 + 1 survives in int64 (it would not in a double)
      assert.equal(9007199254740993, mg.tensor({9007199254740993}, {dtype = "int64"}):item())
    end)
  end)

  describe("conversions", function()
    it("to(), float(), double(), long(), bool()", function()
      local t = mg.tensor{-1.7, 0, 2.9}
      assert.equal("float64", t:to("float64").dtype)
      assert.equal("float64", t:double().dtype)
      assert.equal("float32", t:double():float().dtype)
      -- torch.tensor([-1.7, 0., 2.9]).long().tolist() == [-1, 0, 2]: truncation toward zero
      assert.same({-1, 0, 2}, t:long():totable())
      assert.same({-1, 0, 2}, mg.to(t, "int64"):totable())
      assert.same({true, false, true}, t:bool():totable())
      assert.same({1, 0}, mg.tensor{true, false}:float():totable())
    end)
    it("returns the tensor itself when the dtype already matches, a copy otherwise", function()
      local t = mg.tensor{1, 2}
      assert.equal(t, t:float())
      local d = t:double()
      d[1] = 5
      assert.same({1, 2}, t:totable())
    end)
    it("converts strided tensors", function()
      local t = mg.tensor{{1.5, 2.5}, {3.5, 4.5}}:t()
      assert.same({{1, 3}, {2, 4}}, t:long():totable())
    end)
    it("names an unknown dtype", function()
      H.errors(function() return mg.tensor{1}:to("half") end,
        "bad argument #1 to 'to' (unknown dtype 'half', expected 'float32', 'float64', 'int64' or 'bool')")
    end)
  end)

  describe("set_default_dtype()", function()
    after_each(function() mg.set_default_dtype("float32") end)
    it("changes what numbers become, and back", function()
      mg.set_default_dtype("float64")
      assert.equal("float64", mg.get_default_dtype())
      assert.equal("float64", mg.tensor{1, 2}.dtype)
      assert.equal(0.1, mg.tensor(0.1):item())
      mg.set_default_dtype("float32")
      assert.equal("float32", mg.tensor{1, 2}.dtype)
    end)
    it("only takes floating dtypes", function()
      H.errors(function() mg.set_default_dtype("int64") end,
        "bad argument #1 to 'set_default_dtype' (the default dtype must be 'float32' or 'float64')")
    end)
  end)

  describe("memory", function()
    it("names the function and the element count of a tensor too large for the address space", function()
      -- 2^62 elements pass the shape check; their bytes do not fit in a size_t
      H.errors(function() return mg.zeros(1 << 40, 1 << 22) end,
        "'zeros': not enough memory for a tensor of 4611686018427387904 elements")
      H.errors(function() return mg.ones({(1 << 61) - 1}, {dtype = "float64"}) end,
        "'ones': not enough memory for a tensor of 2305843009213693951 elements")
    end)
  end)
  describe("an empty tensor with a huge dim (found by the fuzzer: mg.eye(0, 2^62))", function()
    it("goes through every kind of kernel without overflowing its strides in bytes", function()
      local z = mg.zeros(0, 1 << 62)
      assert.same({0, 1 << 62}, mg.eye(0, 1 << 62).shape)
      assert.equal(0, z:sum():item())
      assert.same({0}, z:sum(2).shape)
      assert.same({0}, z:max(2).shape)
      for _, t in ipairs{z:cumsum(2), z:t():contiguous(), z:clone(), z:double(), z:exp(), z + z, z:gt(0),
                         mg.where(z:gt(0), z, 0), mg.cat({z, z}), mg.F.softmax(z, 2), z:nonzero()} do
        assert.equal(0, t:numel())
      end
      assert.equal(0, z:matmul(mg.zeros(1 << 62, 0)):numel())
      assert.truthy(z:mean():item() ~= z:mean():item()) -- nan, as PyTorch
      H.errors(function() return z:sum(1) end, "not enough memory for a tensor of 4611686018427387904 elements")
    end)
  end)
end)
