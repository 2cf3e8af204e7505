-- Indexing and joining: index_select, masked_select, nonzero, gather, scatter_, cat, stack,
-- split, chunk, unbind. Reference values from PyTorch 1.13 (0-based there, 1-based here).
local mg = require "moongrad"
local H = require "helper"

local function long(x) return mg.tensor(x, {dtype = "int64"}) end
local function m23() return mg.tensor{{1, 2, 3}, {4, 5, 6}} end

describe("index", function()
  describe("index_select()", function()
    it("picks columns in the order given, repeats allowed", function()
      -- t.index_select(1, torch.tensor([2,0,2])).tolist()
      assert.same({{3, 1, 3}, {6, 4, 6}}, m23():index_select(2, {3, 1, 3}):totable())
    end)
    it("takes an int64 tensor of indices and a negative dim", function()
      assert.same({{3, 1, 3}, {6, 4, 6}}, m23():index_select(-1, long{3, 1, 3}):totable())
      assert.same({{4, 5, 6}}, mg.index_select(m23(), 1, long{2}):totable())
    end)
    it("reads a transposed input", function()
      -- t.t().index_select(0, torch.tensor([1])).tolist()
      assert.same({{2, 5}}, m23():t():index_select(1, long{2}):totable())
    end)
    it("reads an expanded input and strided indices", function()
      local e = mg.tensor{1, 2, 3}:expand(2, 3)
      assert.same({{3, 1}, {3, 1}}, e:index_select(2, mg.tensor{3, 1}:long()):totable())
      local idx = long{{3, 9}, {1, 9}}:select(2, 1)           -- {3, 1} with stride 2
      assert.same({3, 1}, mg.tensor{1, 2, 3}:index_select(1, idx):totable())
    end)
    it("keeps every dtype", function()
      local f64 = mg.tensor({1.5, 2.5}, {dtype = "float64"}):index_select(1, {2})
      assert.equal("float64", f64.dtype)
      assert.same({2.5}, f64:totable())
      local i64 = long{10, 20, 30}:index_select(1, {3, 1})
      assert.equal("int64", i64.dtype)
      assert.same({30, 10}, i64:totable())
      assert.equal("integer", math.type(i64[1]))
      local b = mg.tensor{true, false}:index_select(1, {2, 2})
      assert.equal("bool", b.dtype)
      assert.same({false, false}, b:totable())
    end)
    it("gives an empty result for an empty index list", function()
      assert.same({2, 0}, m23():index_select(2, {}).shape)
    end)
    it("names the bad index and the size", function()
      H.errors(function() return m23():index_select(2, {1, 4}) end,
        "bad argument #2 to 'index_select' (index 4 out of range for dimension 2 of size 3)")
      H.errors(function() return mg.index_select(m23(), 2, {-1}) end,
        "bad argument #3 to 'index_select' (index -1 out of range for dimension 2 of size 3 " ..
        "(indices are 1-based and cannot be negative here))")
      H.errors(function() return m23():index_select(1, {0}) end,
        "index 0 out of range for dimension 1 of size 2")
    end)
    it("refuses float and bool index tensors, saying so", function()
      H.errors(function() return m23():index_select(2, mg.tensor{1}) end,
        "bad argument #2 to 'index_select' (indices must be an int64 tensor or a list of integers, got a float32 tensor)")
      H.errors(function() return m23():index_select(2, mg.tensor{true}) end,
        "got a bool tensor")
      H.errors(function() return m23():index_select(2, {1.5}) end,
        "bad argument #2 to 'index_select' (indices[1] is 1.5, expected an integer)")
      H.errors(function() return m23():index_select(2, long{{1}}) end,
        "indices must be 0-d or 1-D, got shape {1,1}")
      H.errors(function() return mg.tensor(1):index_select(1, {1}) end,
        "index_select() cannot be applied to a 0-d tensor")
    end)
  end)

  describe("masked_select()", function()
    it("returns the selected elements in row-major order", function()
      -- t.masked_select(t > 2).tolist()
      assert.same({3, 4, 5, 6}, m23():masked_select(m23():gt(2)):totable())
    end)
    it("broadcasts the mask, and takes a list of booleans", function()
      -- t.masked_select(torch.tensor([True, False, True])).tolist()
      assert.same({1, 3, 4, 6}, m23():masked_select({true, false, true}):totable())
      -- torch.tensor([1.,2]).masked_select(torch.tensor([[True,False],[False,True]])).tolist()
      local mask = mg.tensor{{true, false}, {false, true}}
      assert.same({1, 2}, mg.masked_select(mg.tensor{1, 2}, mask):totable())
    end)
    it("reads transposed inputs and keeps the dtype", function()
      local t = long{{1, 2, 3}, {4, 5, 6}}:t()                 -- {{1,4},{2,5},{3,6}}
      local out = t:masked_select(mg.tensor{{true, false}, {false, true}, {true, true}})
      assert.equal("int64", out.dtype)
      assert.same({1, 5, 3, 6}, out:totable())
      local b = mg.tensor{true, false, true}:masked_select({false, true, true})
      assert.same({false, true}, b:totable())
    end)
    it("gives an empty 1-D tensor when nothing is selected", function()
      assert.same({0}, m23():masked_select(m23():gt(10)).shape)
    end)
    it("refuses a float mask and shapes that do not broadcast", function()
      H.errors(function() return m23():masked_select(mg.tensor{1, 0, 1}) end,
        "bad argument #1 to 'masked_select' (mask must be a bool tensor or a list of booleans, got a float32 tensor)")
      H.errors(function() return m23():masked_select({true, false}) end,
        "bad argument #1 to 'masked_select' (shapes {2,3} and {2} cannot broadcast)")
      H.errors(function() return m23():masked_select({true, 1, false}) end,
        "mask[2] is a number, expected a boolean")
    end)
  end)

  describe("nonzero()", function()
    it("lists 1-based coordinates as int64 {n, ndim}", function()
      -- (t > 2).nonzero().tolist(), plus 1
      local nz = m23():gt(2):nonzero()
      assert.equal("int64", nz.dtype)
      assert.same({{1, 3}, {2, 1}, {2, 2}, {2, 3}}, nz:totable())
      assert.equal("integer", math.type(nz[1][1]))
    end)
    it("takes every dtype and strided input", function()
      -- torch.tensor([[0,1],[2,0]]).nonzero().tolist(), plus 1
      assert.same({{1, 2}, {2, 1}}, long{{0, 1}, {2, 0}}:nonzero():totable())
      assert.same({{1, 2}, {2, 1}}, long{{0, 2}, {1, 0}}:t():nonzero():totable())
      assert.same({{2}}, mg.tensor({0, 0.5}, {dtype = "float64"}):nonzero():totable())
      assert.same({{1}, {3}}, mg.tensor{true, false, true}:nonzero():totable())
    end)
    it("gives {n, 0} for a 0-d tensor and {0, ndim} when all are zero", function()
      assert.same({1, 0}, mg.tensor(3):nonzero().shape)           -- torch.tensor(3.).nonzero().shape
      assert.same({0, 2}, m23():gt(9):nonzero().shape)
    end)
  end)

  describe("gather()", function()
    it("collects along a dim", function()
      -- t.gather(1, torch.tensor([[2,0],[1,1]])).tolist()
      assert.same({{3, 1}, {5, 5}}, m23():gather(2, long{{3, 1}, {2, 2}}):totable())
    end)
    it("reads a transposed input", function()
      -- t.t().gather(1, torch.tensor([[1],[0],[1]])).tolist()
      assert.same({{4}, {2}, {6}}, m23():t():gather(2, long{{2}, {1}, {2}}):totable())
    end)
    it("checks the indices", function()
      H.errors(function() return m23():gather(2, long{{4}}) end,
        "bad argument #2 to 'gather' (index 4 out of range for dimension 2 of size 3)")
      H.errors(function() return m23():gather(2, long{1}) end,
        "indices of shape {1} must have as many dimensions as the tensor (shape {2,3})")
      H.errors(function() return m23():gather(2, long{{1}, {1}, {1}}) end,
        "indices of shape {3,1} are larger than the tensor's shape {2,3} at dimension 1")
    end)
  end)

  describe("scatter_()", function()
    it("writes a number at the indexed places and returns the tensor", function()
      -- t.clone().scatter_(1, torch.tensor([[2,0],[1,1]]), 0.).tolist()
      local t = m23()
      assert.equal(t, t:scatter_(2, long{{3, 1}, {2, 2}}, 0))
      assert.same({{0, 2, 0}, {4, 0, 6}}, t:totable())
    end)
    it("writes a source tensor along dim 1", function()
      -- torch.zeros(2,3).scatter_(0, torch.tensor([[1,0,1]]), torch.tensor([[7.,8,9]])).tolist()
      local t = mg.tensor{{0, 0, 0}, {0, 0, 0}}
      t:scatter_(1, long{{2, 1, 2}}, mg.tensor{{7, 8, 9}})
      assert.same({{0, 8, 0}, {7, 0, 9}}, t:totable())
    end)
    it("writes through a view into its base", function()
      local t = m23()
      t:t():scatter_(1, long{{2}}, -1)     -- t:t()[2][1] is t[1][2]
      assert.same({{1, -1, 3}, {4, 5, 6}}, t:totable())
    end)
    it("scatter() leaves its input alone", function()
      local t = m23()
      assert.same({{9, 2, 3}, {4, 5, 6}}, t:scatter(2, long{{1}}, 9):totable())
      assert.same({{1, 2, 3}, {4, 5, 6}}, t:totable())
    end)
    it("changes nothing when an index is bad", function()
      local t = m23()
      H.errors(function() t:scatter_(2, long{{1, 4}}, 0) end,
        "bad argument #2 to 'scatter_' (index 4 out of range for dimension 2 of size 3)")
      assert.same({{1, 2, 3}, {4, 5, 6}}, t:totable())
      H.errors(function() t:scatter_(2, long{{1, 2}}, mg.tensor{{1}}) end,
        "source of shape {1,1} is smaller than the indices' shape {1,2}")
    end)
  end)

  describe("cat()", function()
    it("joins along dim 1 by default", function()
      assert.same({{1, 2, 3}, {4, 5, 6}, {1, 2, 3}, {4, 5, 6}}, mg.cat{m23(), m23()}:totable())
    end)
    it("joins along another dim, promoting dtypes", function()
      -- torch.cat([t, torch.tensor([[7.],[8]], dtype=torch.float64)], 1)
      local c = mg.cat({m23(), mg.tensor({{7}, {8}}, {dtype = "float64"})}, 2)
      assert.equal("float64", c.dtype)
      assert.same({{1, 2, 3, 7}, {4, 5, 6, 8}}, c:totable())
      local i = mg.cat{long{1}, mg.tensor{true}}
      assert.equal("int64", i.dtype)
      assert.same({1, 1}, i:totable())
    end)
    it("reads transposed, expanded and narrowed inputs", function()
      local a = mg.tensor{{1, 4}, {2, 5}, {3, 6}}:t()          -- {{1,2,3},{4,5,6}}, strided
      local b = mg.tensor{7, 8, 9}:expand(2, 3)
      local c = mg.tensor{{0, 1, 2, 3}, {0, 4, 5, 6}}:narrow(2, 2, 3)
      assert.same({{1, 2, 3, 7, 8, 9, 1, 2, 3}, {4, 5, 6, 7, 8, 9, 4, 5, 6}}, mg.cat({a, b, c}, -1):totable())
    end)
    it("skips 1-D empty tensors, as PyTorch", function()
      assert.same({2, 3}, mg.cat{mg.tensor{}, m23()}.shape)  -- torch.cat([torch.zeros(0), torch.ones(2,3)])
    end)
    it("names the position and both shapes", function()
      H.errors(function() return mg.cat({m23(), m23():t()}, 2) end,
        "bad argument #1 to 'cat' (shape {3,2} of list[2] does not match shape {2,3} of list[1] outside dimension 2)")
      H.errors(function() return mg.cat{m23(), 3} end, "bad argument #1 to 'cat' (list[2] is a number, expected a tensor)")
      H.errors(function() return mg.cat{} end, "bad argument #1 to 'cat' (expected a non-empty list of tensors)")
      H.errors(function() return mg.cat{mg.tensor(1)} end, "list[1] is 0-d and cannot be concatenated (use mg.stack)")
      H.errors(function() return mg.cat({m23()}, 3) end,
        "bad argument #2 to 'cat' (dimension 3 out of range (expected 1..2 or -2..-1))")
    end)
  end)

  describe("stack()", function()
    it("joins along a new dim", function()
      assert.same({{1, 2}, {3, 4}}, mg.stack{mg.tensor{1, 2}, mg.tensor{3, 4}}:totable())
      -- torch.stack([t, t], 2).tolist()
      assert.same({{{1, 1}, {2, 2}, {3, 3}}, {{4, 4}, {5, 5}, {6, 6}}}, mg.stack({m23(), m23()}, 3):totable())
      assert.same({{1, 3}, {2, 4}}, mg.stack({mg.tensor{1, 2}, mg.tensor{3, 4}}, -1):totable())
    end)
    it("promotes dtypes and reads strided inputs", function()
      -- torch.stack([torch.tensor([1,2]), torch.tensor([3.,4])]).dtype
      local s = mg.stack{long{1, 2}, mg.tensor{3, 4}:t()}
      assert.equal("float32", s.dtype)
      assert.same({{1, 2}, {3, 4}}, s:totable())
      assert.same({{5, 5}, {1, 2}}, mg.stack{mg.tensor{5}:expand(2), mg.tensor{0, 1, 2}:narrow(1, 2, 2)}:totable())
      assert.same({1, 2}, mg.stack{mg.tensor(1), mg.tensor(2)}:totable())
    end)
    it("names the position and both shapes", function()
      H.errors(function() return mg.stack{m23(), m23():t()} end,
        "bad argument #1 to 'stack' (shape {3,2} of list[2] does not match shape {2,3} of list[1])")
    end)
  end)

  describe("split()", function()
    local r10 = function() return long{0, 1, 2, 3, 4, 5, 6, 7, 8, 9} end
    it("gives views of size, the last smaller", function()
      -- [x.tolist() for x in torch.arange(10).split(4)]
      local parts = r10():split(4)
      assert.equal(3, #parts)
      assert.same({0, 1, 2, 3}, parts[1]:totable())
      assert.same({8, 9}, parts[3]:totable())
    end)
    it("gives the whole tensor as one piece for a size past its length, however large", function()
      -- [x.tolist() for x in torch.arange(10).split(2**63 - 1)] == [list(range(10))]
      for _, size in ipairs{10, 11, 1 << 40, math.maxinteger} do
        local parts = r10():split(size)
        assert.equal(1, #parts)
        assert.same({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, parts[1]:totable())
      end
      assert.equal(1, #r10():chunk(1))
      assert.equal(10, #r10():chunk(math.maxinteger)) -- chunk gives at most size pieces
    end)
    it("takes a list of sizes and a dim", function()
      -- [x.tolist() for x in t.split([1,2],1)]
      local parts = m23():split({1, 2}, 2)
      assert.same({{1}, {4}}, parts[1]:totable())
      assert.same({{2, 3}, {5, 6}}, parts[2]:totable())
    end)
    it("returns views that write into the base", function()
      local t = m23()
      t:split(1, 2)[2][1] = mg.tensor{9}
      assert.same({{1, 9, 3}, {4, 5, 6}}, t:totable())
      local tt = m23():t()
      tt:split(2)[2][1][2] = 7                                -- tt[3][2] is t[2][3]
      assert.same({{1, 4}, {2, 5}, {3, 7}}, tt:totable())
    end)
    it("checks its sizes", function()
      H.errors(function() return r10():split({2, 2}) end,
        "bad argument #1 to 'split' (split sizes must sum to 10 (the size of dimension 1), got 4)")
      H.errors(function() return r10():split(0) end, "split size must be positive, got 0")
      H.errors(function() return mg.tensor(1):split(1) end, "split() cannot be applied to a 0-d tensor")
    end)
  end)

  describe("chunk()", function()
    it("gives at most n views, as PyTorch", function()
      -- [x.tolist() for x in torch.arange(10).chunk(4)]
      local parts = long{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}:chunk(4)
      assert.equal(4, #parts)
      assert.same({9}, parts[4]:totable())
      -- [x.tolist() for x in torch.arange(6).chunk(4)]: 3 chunks
      parts = long{0, 1, 2, 3, 4, 5}:chunk(4)
      assert.equal(3, #parts)
      assert.same({4, 5}, parts[3]:totable())
    end)
    it("splits along a dim, into views", function()
      local t = m23()
      local parts = t:chunk(2, 2)
      assert.same({{3}, {6}}, parts[2]:totable())
      parts[2][2] = 0
      assert.same({{1, 2, 3}, {4, 5, 0}}, t:totable())
    end)
    it("checks n", function()
      H.errors(function() return m23():chunk(0) end, "number of chunks must be positive, got 0")
    end)
  end)

  describe("unbind()", function()
    it("returns every slice as a separate value", function()
      local a, b, c = m23():unbind(2)
      assert.same({1, 4}, a:totable())
      assert.same({2, 5}, b:totable())
      assert.same({3, 6}, c:totable())
      assert.equal(2, select("#", m23():unbind()))
    end)
    it("returns views", function()
      local t = m23()
      local _, second = t:unbind()
      second[1] = 0
      assert.same({{1, 2, 3}, {0, 5, 6}}, t:totable())
    end)
  end)
end)

describe("index_select of contiguous tensors (slices copied as bytes)", function()
  -- both contiguous: each slice is copied as runs of bytes; every dim of a 3-d tensor, repeated
  -- and unordered indices, each dtype, against the element-by-element definition
  for _, dt in ipairs({ "float32", "float64", "int64", "bool" }) do
    it(dt .. ": out[.., k, ..] = in[.., idx[k], ..] along each dim", function()
      local x = mg.arange(0, 3 * 4 * 5):view(3, 4, 5)
      if dt == "bool" then x = x:gt(29) else x = x:to(dt) end
      local xt = x:totable()
      local idx = { 2, 1, 2, 3 }
      for dim = 1, 3 do
        local y = x:index_select(dim, mg.tensor(idx, { dtype = "int64" })):totable()
        for i = 1, dim == 1 and 4 or 3 do
          for j = 1, 4 do
            for k = 1, dim == 3 and 4 or 5 do
              local si, sj, sk = i, j, k
              if dim == 1 then si = idx[i] elseif dim == 2 then sj = idx[j] else sk = idx[k] end
              assert.equal(xt[si][sj][sk], y[i][j][k], string.format("dim %d at %d,%d,%d", dim, i, j, k))
            end
          end
        end
      end
    end)
  end
end)
