-- Views and indexing: view, reshape, t, transpose, permute, unsqueeze, squeeze, expand, flatten,
-- narrow, select, contiguous, clone, detach, t[i], t[i] = v, and <close>. Every view shares its
-- base's storage (as in PyTorch), so each one is checked by writing through it and reading the base.
local mg = require "moongrad"
local H = require "helper"

-- {1, 2, ..., n} as a float32 tensor of the given shape (torch.arange(1, n + 1.).view(shape))
local function range(...)
  local shape, n = {...}, 1
  for _, s in ipairs(shape) do n = n * s end
  local data = {}
  for i = 1, n do data[i] = i end
  return mg.tensor(data):view(shape)
end

describe("views", function()
  describe("view()", function()
    it("reshapes without copying, -1 inferred", function()
      local t = range(2, 3)
      assert.same({{1, 2}, {3, 4}, {5, 6}}, t:view(3, 2):totable())
      assert.same({3, 2}, t:view(-1, 2).shape)
      assert.same({6}, t:view{-1}.shape)
      assert.same({1, 6, 1}, t:view(1, -1, 1).shape)
    end)
    it("writes through to the base", function()
      local t = range(2, 3)
      t:view(6)[5] = 50
      assert.same({{1, 2, 3}, {4, 50, 6}}, t:totable())
    end)
    it("views a non-contiguous tensor when the strides allow it", function()
      local t = range(2, 3, 4)
      local v = t:narrow(2, 2, 2):view(2, 8)        -- rows stay contiguous inside each block
      assert.same({{5, 6, 7, 8, 9, 10, 11, 12}, {17, 18, 19, 20, 21, 22, 23, 24}}, v:totable())
      v[1][1] = -5
      assert.equal(-5, t[1][2][1])
    end)
    it("names both shapes when the sizes differ", function()
      H.errors(function() return range(2, 3):view(4, 2) end,
        "bad argument #1 to 'view' (shape {4,2} is invalid for a tensor of shape {2,3} (6 elements))")
      H.errors(function() return range(2, 3):view(-1, -1) end, "only one dimension can be -1")
      H.errors(function() return range(2, 3):view(-1, 4) end, "shape {-1,4} is invalid for a tensor of shape {2,3}")
    end)
    it("suggests reshape for a tensor it cannot view", function()
      H.errors(function() return range(2, 3):t():view(6) end,
        "'view': view of a non-contiguous tensor of shape {3,2} is not possible without a copy (use reshape)")
    end)
  end)

  describe("reshape()", function()
    it("is a view of a contiguous tensor", function()
      local t = range(2, 3)
      local r = t:reshape(3, 2)
      r[1][1] = 10
      assert.equal(10, t[1][1])
    end)
    it("is a view of a viewable non-contiguous tensor, as PyTorch", function()
      local t = range(2, 3)
      local r = t:t():reshape(3, 1, 2)                -- only adds a size-1 dim
      r[3][1][2] = 60
      assert.equal(60, t[2][3])
    end)
    it("copies when needed", function()
      local t = range(2, 3)
      local r = t:t():reshape(6)
      -- torch.arange(1, 7.).view(2, 3).t().reshape(6).tolist()
      assert.same({1, 4, 2, 5, 3, 6}, r:totable())
      r[1] = 100
      assert.same({{1, 2, 3}, {4, 5, 6}}, t:totable())
      assert.same({2, 3}, t:t():reshape{-1, 3}.shape)
    end)
    it("names both shapes", function()
      H.errors(function() return range(2, 3):t():reshape(4) end,
        "bad argument #1 to 'reshape' (shape {4} is invalid for a tensor of shape {3,2} (6 elements))")
    end)
  end)

  describe("t() and transpose()", function()
    it("t() swaps the dims of a matrix and writes through", function()
      local t = range(2, 3)
      local v = t:t()
      assert.same({{1, 4}, {2, 5}, {3, 6}}, v:totable())
      v[1][2] = 9
      assert.same({{1, 2, 3}, {9, 5, 6}}, t:totable())
      assert.same({1, 2}, mg.tensor{1, 2}:t():totable())
    end)
    it("t() refuses more than 2 dims", function()
      H.errors(function() return range(2, 2, 2):t() end,
        "t() expects a tensor of at most 2 dimensions, got 3 (use transpose)")
    end)
    it("transpose() swaps any two dims, negative allowed", function()
      local t = range(2, 3, 4)
      local v = t:transpose(1, -1)
      assert.same({4, 3, 2}, v.shape)
      -- torch.arange(1, 25.).view(2,3,4).transpose(0, 2)[3][1][0].item()
      assert.equal(8, v[4][2][1])
      v[4][2][1] = 0
      assert.equal(0, t[1][2][4])
      assert.same({{1, 2, 3}, {4, 5, 6}}, range(2, 3):t():t():totable())  -- transposed twice
    end)
    it("names a dim out of range", function()
      H.errors(function() return range(2, 3):transpose(1, 3) end,
        "bad argument #2 to 'transpose' (dimension 3 out of range (expected 1..2 or -2..-1))")
      H.errors(function() return range(2, 3):transpose(0, 1) end,
        "dimension 0 out of range (expected 1..2 or -2..-1)")
    end)
  end)

  describe("permute()", function()
    it("reorders dims, as varargs or a table", function()
      local t = range(2, 3, 4)
      local v = t:permute(3, 1, 2)
      assert.same({4, 2, 3}, v.shape)
      assert.same({4, 2, 3}, t:permute{-1, 1, 2}.shape)
      -- torch.arange(1, 25.).view(2,3,4).permute(2, 0, 1)[1][1][2].item()
      assert.equal(22, v[2][2][3])
      v[2][2][3] = -1
      assert.equal(-1, t[2][3][2])
    end)
    it("checks the dims", function()
      H.errors(function() return range(2, 3):permute(1, 1) end,
        "bad argument #1 to 'permute' (dims do not form a permutation of 1..2)")
      H.errors(function() return range(2, 3):permute(1) end,
        "permute needs 2 dims for a tensor of 2 dimensions, got 1")
      H.errors(function() return range(2, 3):permute{1, 3} end,
        "bad argument #1 to 'permute' (dims[2] is 3: dimension 3 out of range (expected 1..2 or -2..-1))")
    end)
  end)

  describe("unsqueeze() and squeeze()", function()
    it("unsqueeze() adds a size-1 dim anywhere, and writes through", function()
      local t = range(2, 3)
      assert.same({1, 2, 3}, t:unsqueeze(1).shape)
      assert.same({2, 1, 3}, t:unsqueeze(2).shape)
      assert.same({2, 3, 1}, t:unsqueeze(-1).shape)
      local v = t:t():unsqueeze(2)
      v[3][1][2] = 0
      assert.equal(0, t[2][3])
      H.errors(function() return t:unsqueeze(4) end, "dimension 4 out of range (expected 1..3 or -3..-1)")
    end)
    it("squeeze() drops every size-1 dim, or one", function()
      local t = range(1, 3, 1)
      assert.same({3}, t:squeeze().shape)
      assert.same({3, 1}, t:squeeze(1).shape)
      assert.same({1, 3, 1}, t:squeeze(2).shape)         -- size 3: kept, as PyTorch
      assert.same({1, 3}, t:squeeze(-1).shape)
      local v = t:squeeze()
      v[2] = 20
      assert.equal(20, t[1][2][1])
      assert.same({}, mg.tensor{{5}}:squeeze().shape)
    end)
  end)

  describe("expand()", function()
    it("repeats size-1 dims without copying", function()
      local t = mg.tensor{{1}, {2}}
      local e = t:expand(2, 3)
      assert.same({{1, 1, 1}, {2, 2, 2}}, e:totable())
      assert.same({0, 0}, {e:stride(2), mg.tensor{1}:expand(3):stride(1)})
      t[2][1] = 7
      assert.same({7, 7, 7}, e[2]:totable())
    end)
    it("takes -1 for a kept size, a table, and new leading dims", function()
      local t = mg.tensor{1, 2, 3}
      assert.same({{1, 2, 3}, {1, 2, 3}}, t:expand(2, -1):totable())
      assert.same({2, 2, 3}, t:expand{2, 2, 3}.shape)
      assert.same({2, 3}, t:expand_as(range(2, 3)).shape)
    end)
    it("names both shapes when a dim is not 1", function()
      H.errors(function() return mg.tensor{1, 2, 3}:expand(2, 4) end,
        "bad argument #1 to 'expand' (cannot expand shape {3} to {2,4} (dimension 1 of size 3 is not 1))")
      H.errors(function() return mg.tensor{1, 2, 3}:expand(-1, 3) end, "size -1 at new dimension 1 is not allowed")
      H.errors(function() return range(2, 3):expand(3) end,
        "cannot expand a tensor of shape {2,3} to fewer dimensions (1)")
    end)
  end)

  describe("flatten()", function()
    it("merges all dims, or a range of them", function()
      local t = range(2, 3, 4)
      assert.same({24}, t:flatten().shape)
      assert.same({2, 12}, t:flatten(2).shape)
      assert.same({6, 4}, t:flatten(1, 2).shape)
      assert.same({1}, mg.tensor(5):flatten().shape)
    end)
    it("is a view when it can be, and a copy of a transposed tensor", function()
      local t = range(2, 3)
      t:flatten()[2] = 20
      assert.equal(20, t[1][2])
      local f = t:t():flatten()
      assert.same({1, 4, 20, 5, 3, 6}, f:totable())
      f[1] = 0
      assert.equal(1, t[1][1])
    end)
  end)

  describe("narrow() and select()", function()
    it("narrow() keeps a range of a dim and writes through", function()
      local t = range(3, 4)
      local v = t:narrow(2, 2, 2)
      assert.same({{2, 3}, {6, 7}, {10, 11}}, v:totable())
      v[3][2] = 0
      assert.equal(0, t[3][3])
      assert.same({{5, 6, 7, 8}, {9, 10, 0, 12}}, t:narrow(1, -2, 2):totable())
    end)
    it("narrow() checks start and length", function()
      H.errors(function() return range(3, 4):narrow(2, 3, 3) end,
        "bad argument #3 to 'narrow' (length 3 from start 3 exceeds dimension 2 of size 4)")
      H.errors(function() return range(3, 4):narrow(2, 6, 1) end,
        "bad argument #2 to 'narrow' (start 6 out of range for dimension 2 of size 4)")
    end)
    it("select() drops a dim at an index and writes through", function()
      local t = range(3, 4)
      local col = t:select(2, -1)
      assert.same({4, 8, 12}, col:totable())
      col[2] = 0
      assert.equal(0, t[2][4])
      H.errors(function() return t:select(2, 5) end,
        "bad argument #2 to 'select' (index 5 out of range for dimension of size 4)")
    end)
  end)

  describe("views of views", function()
    it("all share one storage", function()
      local t = range(2, 3, 4)
      -- v[a][b] = t[a][b + 1][3]: torch.arange(1, 25.).view(2,3,4).permute(1,2,0)[1:3].select(1, 2).t()
      local v = t:permute(2, 3, 1):narrow(1, 2, 2):select(2, 3):t()
      assert.same({{7, 11}, {19, 23}}, v:totable())
      assert.same({{7, 11}, {19, 23}}, v:unsqueeze(1):squeeze(1):view(2, 2):totable())
      v[2][1] = -19
      assert.equal(-19, t[2][2][3])
      local d = t:detach():transpose(1, 2):contiguous()        -- contiguous copies a transposed view
      d[1][1][1] = 100
      assert.equal(1, t[1][1][1])
    end)
  end)

  describe("contiguous(), clone() and detach()", function()
    it("contiguous() returns a contiguous tensor itself, else a copy", function()
      local t = range(2, 3)
      assert.equal(t, t:contiguous())
      local c = t:t():contiguous()
      assert.is_true(c:is_contiguous())
      assert.same({{1, 4}, {2, 5}, {3, 6}}, c:totable())
      c[1][1] = 0
      assert.equal(1, t[1][1])
      -- an expanded tensor made dense: a big one for <close> below
      assert.same({3, 4}, mg.tensor{1, 2, 3, 4}:expand(3, 4):contiguous().shape)
    end)
    it("clone() is independent and keeps the dtype", function()
      local t = mg.tensor({1, 2}, {dtype = "int64"})
      local c = t:clone()
      c[1] = 5
      assert.same({1, 2}, t:totable())
      assert.equal("int64", c.dtype)
      assert.same({{1, 3}, {2, 4}}, mg.tensor{{1, 2}, {3, 4}}:t():clone():totable())
    end)
    it("detach() shares the data", function()
      local t = range(2, 2)
      local d = t:detach()
      d[1][1] = 9
      assert.equal(9, t[1][1])
      assert.is_false(d.requires_grad)
    end)
  end)
end)

describe("indexing", function()
  describe("t[i]", function()
    it("is a view for n-D and writes through", function()
      local t = range(3, 2)
      local row = t[2]
      assert.same({3, 4}, row:totable())
      row[1] = 30
      assert.equal(30, t[2][1])
      assert.same({2}, range(2, 3, 2)[1][3].shape)
    end)
    it("is a number for 1-D (a boolean for bool, an integer for int64)", function()
      assert.equal(2, mg.tensor{1, 2}[2])
      assert.equal("float", math.type(mg.tensor{1, 2}[2]))
      assert.equal(true, mg.tensor{false, true}[2])
      assert.equal("integer", math.type(mg.tensor({1, 2}, {dtype = "int64"})[2]))
    end)
    it("takes negative indices from the end", function()
      local t = range(3, 2)
      assert.same({5, 6}, t[-1]:totable())
      assert.equal(5, t[-1][-2])
      assert.equal(4, t:t()[-1][2])
    end)
    it("names an index out of range and the size", function()
      local t = mg.tensor{1, 2, 3}
      H.errors(function() return t[4] end, "index 4 out of range for dimension of size 3")
      H.errors(function() return t[0] end, "index 0 out of range for dimension of size 3")
      H.errors(function() return t[-4] end, "index -4 out of range for dimension of size 3")
      H.errors(function() return mg.tensor(1)[1] end, "a 0-d tensor cannot be indexed (use t:item())")
    end)
    it("gives nil for unknown names and methods for known ones", function()
      assert.is_nil(range(2).nope)
      assert.equal("function", type(range(2).view))
    end)
  end)

  describe("t[i] = v", function()
    it("fills a row with a number", function()
      local t = range(2, 3)
      t[1] = 0
      assert.same({{0, 0, 0}, {4, 5, 6}}, t:totable())
      t[-1] = 1.5
      assert.same({1.5, 1.5, 1.5}, t[2]:totable())
    end)
    it("copies a tensor, broadcast to the row", function()
      local t = range(2, 3)
      t[2] = mg.tensor{7, 8, 9}
      assert.same({{1, 2, 3}, {7, 8, 9}}, t:totable())
      t[1] = mg.tensor{5}
      assert.same({5, 5, 5}, t[1]:totable())
      local i = mg.tensor({{1, 2}, {3, 4}}, {dtype = "int64"})
      i[1] = mg.tensor{2.9, -2.9}                                 -- converted, truncated
      assert.same({{2, -2}, {3, 4}}, i:totable())
    end)
    it("reads an overlapping source before writing", function()
      local t = range(3, 3)
      t[1] = t:select(2, 1)                                       -- column 1 = {1, 4, 7} into row 1
      assert.same({{1, 4, 7}, {4, 5, 6}, {7, 8, 9}}, t:totable())
      local u = range(3, 3)
      u[2] = u:t()[2]                                             -- column 2 = {2, 5, 8} into row 2
      assert.same({{1, 2, 3}, {2, 5, 8}, {7, 8, 9}}, u:totable())
    end)
    it("writes through a view into the base", function()
      local t = range(2, 3)
      t:t()[3] = mg.tensor{30, 60}
      assert.same({{1, 2, 30}, {4, 5, 60}}, t:totable())
    end)
    it("names the shapes that do not fit", function()
      H.errors(function() range(2, 3)[1] = mg.tensor{1, 2} end,
        "'newindex': a value of shape {2} cannot be assigned to t[1] of shape {3}")
      H.errors(function() range(2, 3)[3] = 0 end, "index 3 out of range for dimension of size 2")
    end)
  end)

  describe("<close>", function()
    it("releases a large tensor's storage; using it afterwards is an error", function()
      local escaped
      do
        local big <close> = mg.tensor{1, 2, 3, 4}:expand(20000, 4):contiguous()
        assert.equal(80000, big:numel())
        assert.equal(4, big[20000][4])
        escaped = big
      end
      H.errors(function() return escaped:totable() end, "tensor used after its storage was released")
      H.errors(function() return escaped[1] end, "tensor used after its storage was released")
      H.errors(function() return escaped:view(-1) end, "tensor used after its storage was released")
      assert.same({20000, 4}, escaped.shape)                      -- the shape is still known
    end)
    it("a view of the released storage is refused too", function()
      local view
      do
        local big <close> = mg.tensor{1, 2}:expand(20000, 2):contiguous()
        view = big:t()
      end
      H.errors(function() return view:clone() end, "tensor used after its storage was released")
    end)
    it("ends a small tensor's storage too (every tensor's bytes are collector-managed alike)", function()
      local small
      do
        local t <close> = mg.tensor{1, 2}
        small = t
      end
      H.errors(function() return small:totable() end, "tensor used after its storage was released")
    end)
    it("on a view ends only the view: its base and the other views stay usable (a data set's batch)", function()
      local data = mg.arange(12):reshape(6, 2)
      local other = data:narrow(1, 5, 2)
      local closed
      do
        local batch <close> = data:narrow(1, 1, 2)
        assert.same({{0, 1}, {2, 3}}, batch:totable())
        closed = batch
      end
      H.errors(function() return closed:totable() end, "tensor used after it was closed (by <close>)")
      H.errors(function() return mg.cat({closed, data}) end, "list[1] was used after it was closed (by <close>)")
      assert.equal(66, data:sum():item())
      assert.same({{8, 9}, {10, 11}}, other:totable())
    end)
    it("never makes a running op read freed memory when a finalizer closes its input", function()
      local out, ok = H.run_lua([[
        local mg = require "moongrad"
        local finished, refused = 0, 0
        for _ = 1, 400 do
          local a = mg.randn(4000)
          setmetatable({}, {__gc = function() local _ <close> = a end}) -- runs at some allocation
          local ok, err = pcall(function() return ((a * 2 + 1):exp() - a):sum():item() end)
          if ok then
            finished = finished + 1
          elseif tostring(err):find("tensor used after its storage was released", 1, true) then
            refused = refused + 1
          else
            error(err)
          end
        end
        print("finished", finished, "refused", refused)
      ]])
      assert.truthy(ok, out) -- before the fix: a segmentation fault
      local finished, refused = out:match("finished\t(%d+)\trefused\t(%d+)")
      assert.equal(400, tonumber(finished) + tonumber(refused))
      assert.truthy(tonumber(refused) > 0, "no finalizer ran inside the expression: the test tests nothing")
    end)
  end)
end)
