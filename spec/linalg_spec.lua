-- Matrix products: matmul (every torch.matmul form), mm, bmm, dot, outer.
-- Reference values come from PyTorch 1.13 (the Python behind each is in a comment); products of
-- sizes that cross the kernel's block boundaries are checked against a naive Lua triple loop.
local mg = require "moongrad"
local H = require "helper"

-- A tensor of `shape` holding start, start + 1, ... in row-major order (torch.arange(...).reshape).
local function seq(shape, opts, start)
  local v = (start or 0) - 1
  local function build(d)
    local t = {}
    for i = 1, shape[d] do
      if d == #shape then v = v + 1; t[i] = v else t[i] = build(d + 1) end
    end
    return t
  end
  return mg.tensor(build(1), opts)
end

-- A (m, n) tensor of values drawn from math.random (the caller seeds it).
local function random_matrix(m, n, dtype)
  local t = {}
  for i = 1, m do
    local row = {}
    for j = 1, n do
      row[j] = dtype == "int64" and math.random(-50, 50) or math.random() * 2 - 1
    end
    t[i] = row
  end
  return mg.tensor(t, {dtype = dtype})
end

-- The oracle: C = A B over nested Lua tables, in Lua's doubles (or integers).
local function lua_matmul(a, b)
  local m, k, n = #a, #b, #b[1]
  local c = {}
  for i = 1, m do
    local row = {}
    for j = 1, n do
      local s = 0
      for p = 1, k do s = s + a[i][p] * b[p][j] end
      row[j] = s
    end
    c[i] = row
  end
  return c
end

describe("linalg", function()
  describe("matmul()", function()
    local x = mg.tensor{{1, 2, 3}, {4, 5, 6}}
    local y = mg.tensor{{7, 8}, {9, 10}, {11, 12}}

    it("multiplies two matrices", function()
      -- x = torch.tensor([[1.,2,3],[4,5,6]]); y = torch.tensor([[7.,8],[9,10],[11,12]]); (x @ y).tolist()
      local c = mg.matmul(x, y)
      assert.same({2, 2}, c.shape)
      assert.equal("float32", c.dtype)
      assert.same({{58, 64}, {139, 154}}, c:totable())
      assert.same({{58, 64}, {139, 154}}, x:matmul(y):totable())
    end)

    it("gives a 0-d tensor for two vectors", function()
      -- torch.matmul(torch.tensor([1.,2,3]), torch.tensor([4.,5,6])) -> tensor(32.)
      local c = mg.matmul(mg.tensor{1, 2, 3}, mg.tensor{4, 5, 6})
      assert.same({}, c.shape)
      assert.equal(32, c:item())
    end)

    it("prepends a 1 to a vector on the left and removes it", function()
      -- (torch.tensor([1.,2]) @ x).tolist() -> [9.0, 12.0, 15.0]
      local c = mg.matmul(mg.tensor{1, 2}, x)
      assert.same({3}, c.shape)
      assert.same({9, 12, 15}, c:totable())
    end)

    it("multiplies a matrix by a vector", function()
      -- (x @ torch.tensor([1.,0,-1])).tolist() -> [-2.0, -2.0]
      local c = mg.matmul(x, mg.tensor{1, 0, -1})
      assert.same({2}, c.shape)
      assert.same({-2, -2}, c:totable())
    end)

    it("broadcasts batch dimensions", function()
      -- A = torch.arange(24.).reshape(2,1,3,4); B = torch.arange(40.).reshape(5,4,2); (A @ B).tolist()
      local c = mg.matmul(seq{2, 1, 3, 4}, seq{5, 4, 2})
      assert.same({2, 5, 3, 2}, c.shape)
      assert.same({
        {{{28, 34}, {76, 98}, {124, 162}}, {{76, 82}, {252, 274}, {428, 466}},
         {{124, 130}, {428, 450}, {732, 770}}, {{172, 178}, {604, 626}, {1036, 1074}},
         {{220, 226}, {780, 802}, {1340, 1378}}},
        {{{172, 226}, {220, 290}, {268, 354}}, {{604, 658}, {780, 850}, {956, 1042}},
         {{1036, 1090}, {1340, 1410}, {1644, 1730}}, {{1468, 1522}, {1900, 1970}, {2332, 2418}},
         {{1900, 1954}, {2460, 2530}, {3020, 3106}}},
      }, c:totable())
    end)

    it("promotes a vector on the left of a batch and removes the added dim", function()
      -- (torch.tensor([1.,2,3,4]) @ torch.arange(24.).reshape(2,4,3)).tolist()
      local c = mg.matmul(mg.tensor{1, 2, 3, 4}, seq{2, 4, 3})
      assert.same({2, 3}, c.shape)
      assert.same({{60, 70, 80}, {180, 190, 200}}, c:totable())
    end)

    it("promotes a vector on the right of a batch and removes the added dim", function()
      -- (torch.arange(24.).reshape(2,3,4) @ torch.tensor([1.,0,-1,2])).tolist()
      local c = mg.matmul(seq{2, 3, 4}, mg.tensor{1, 0, -1, 2})
      assert.same({2, 3}, c.shape)
      assert.same({{4, 12, 20}, {28, 36, 44}}, c:totable())
    end)

    it("multiplies transposed views without changing the result", function()
      -- (x.t() @ x).tolist(); (x @ x.t()).tolist()
      assert.same({{17, 22, 27}, {22, 29, 36}, {27, 36, 45}}, mg.matmul(x:t(), x):totable())
      assert.same({{14, 32}, {32, 77}}, mg.matmul(x, x:t()):totable())
    end)

    it("multiplies expanded (stride 0) operands", function()
      -- e = torch.tensor([[1.],[2]]).expand(2,3); (e @ y).tolist()
      local e = mg.tensor{{1}, {2}}:expand(2, 3)
      assert.equal(0, e:stride(2))
      assert.same({{27, 30}, {54, 60}}, mg.matmul(e, y):totable())
      -- b = torch.tensor([[[1.,2],[3,4],[5,6]]]).expand(4,3,2); (torch.arange(24.).reshape(4,2,3) @ b).tolist()
      local b = mg.tensor{{{1, 2}, {3, 4}, {5, 6}}}:expand(4, 3, 2)
      assert.equal(0, b:stride(1))
      assert.same({{{13, 16}, {40, 52}}, {{67, 88}, {94, 124}}, {{121, 160}, {148, 196}},
                   {{175, 232}, {202, 268}}}, mg.matmul(seq{4, 2, 3}, b):totable())
    end)

    it("multiplies narrowed views", function()
      -- n = torch.arange(1.,7).view(2,3)[:,1:3]; (n @ torch.tensor([[1.,-1],[2,0.5]])).tolist()
      local n = seq({2, 3}, nil, 1):narrow(2, 2, 2)
      assert.same({{8, -0.5}, {17, -2}}, mg.matmul(n, mg.tensor{{1, -1}, {2, 0.5}}):totable())
    end)

    it("computes in float64", function()
      -- a = torch.tensor([[0.1,0.2],[0.3,0.4]], dtype=torch.float64)
      -- (a @ torch.tensor([[1.5,-2.5],[3.25,0.125]], dtype=torch.float64)).tolist()
      local a = mg.tensor({{0.1, 0.2}, {0.3, 0.4}}, {dtype = "float64"})
      local c = mg.matmul(a, mg.tensor({{1.5, -2.5}, {3.25, 0.125}}, {dtype = "float64"}))
      assert.equal("float64", c.dtype)
      H.near({{0.8, -0.225}, {1.75, -0.7}}, c, 1e-15)
    end)

    it("computes int64 exactly, past float precision", function()
      -- i = torch.tensor([[2**31+1, 3],[-5, 7]]); (i @ i).tolist()
      local i = mg.tensor({{2 ^ 31 + 1, 3}, {-5, 7}}, {dtype = "int64"})
      local c = mg.matmul(i, i)
      assert.equal("int64", c.dtype)
      assert.same({{4611686022722355186, 6442450968}, {-10737418280, 34}}, c:totable())
    end)

    it("promotes mixed dtypes", function()
      -- PyTorch refuses mixed dtypes in matmul; moongrad promotes as for add:
      -- (torch.tensor([[1.,2]]).double() @ torch.tensor([[0.5],[0.25]], dtype=torch.float64)).tolist()
      local c = mg.matmul(mg.tensor{{1, 2}}, mg.tensor({{0.5}, {0.25}}, {dtype = "float64"}))
      assert.equal("float64", c.dtype)
      assert.same({{1}}, c:totable())
      local d = mg.matmul(mg.tensor({{1, 2}}, {dtype = "int64"}), mg.tensor{{0.5}, {0.25}})
      assert.equal("float32", d.dtype)
      assert.same({{1}}, d:totable())
    end)

    it("gives zeros for an empty inner dimension", function()
      -- (torch.zeros(2,0) @ torch.zeros(0,3)).tolist() -> [[0,0,0],[0,0,0]]
      local c = mg.matmul(mg.tensor({}):reshape(2, 0), mg.tensor({}):reshape(0, 3))
      assert.same({{0, 0, 0}, {0, 0, 0}}, c:totable())
    end)

    it("matches a naive product across the block boundaries", function()
      math.randomseed(42)
      -- 67x45 . 45x33 is the brief's case; the others cross MC (96), KC (256) and NC (1024)
      local cases = {{67, 45, 33}, {100, 7, 9}, {7, 300, 9}, {5, 3, 1030}, {1, 70, 70}, {70, 70, 1}}
      for _ = 1, 8 do cases[#cases + 1] = {math.random(70), math.random(70), math.random(70)} end
      for _, dtype in ipairs{"float32", "float64", "int64"} do
        for _, mkn in ipairs(cases) do
          local m, k, n = mkn[1], mkn[2], mkn[3]
          local a, b = random_matrix(m, k, dtype), random_matrix(k, n, dtype)
          local expected = lua_matmul(a:totable(), b:totable())
          local c = mg.matmul(a, b)
          if dtype == "int64" then assert.same(expected, c:totable())
          else H.near(expected, c, dtype == "float32" and 1e-4 or 1e-12) end
          -- the same operands held transposed (column-major) give the same values
          local at, bt = a:t():contiguous():t(), b:t():contiguous():t()
          assert.same(c:totable(), mg.matmul(at, bt):totable())
        end
      end
    end)

    it("matches a naive product for every batch of a broadcast batch", function()
      math.randomseed(7)
      local a = random_matrix(3 * 13, 20, "float64"):view(3, 1, 13, 20)
      local b = random_matrix(2 * 20, 11, "float64"):view(2, 20, 11)
      local c = mg.matmul(a, b)
      assert.same({3, 2, 13, 11}, c.shape)
      local at, bt, ct = a:totable(), b:totable(), c:totable()
      for i = 1, 3 do
        for j = 1, 2 do H.near(lua_matmul(at[i][1], bt[j]), ct[i][j], 1e-12) end
      end
    end)

    it("names both shapes when the inner sizes differ", function()
      H.errors(function() return mg.matmul(seq{2, 3}, seq{4, 5}) end,
        "bad argument #2 to 'matmul' (shapes {2,3} and {4,5} cannot be multiplied: 3 != 4)")
      H.errors(function() return seq{2, 3}:matmul(seq{4, 5}) end,
        "bad argument #1 to 'matmul' (shapes {2,3} and {4,5} cannot be multiplied: 3 != 4)")
      H.errors(function() return mg.matmul(seq{3}, seq{2, 4, 5}) end,
        "bad argument #2 to 'matmul' (shapes {3} and {2,4,5} cannot be multiplied: 3 != 4)")
    end)

    it("refuses a 0-d operand", function()
      -- torch.matmul(torch.tensor(1.), torch.zeros(4,5)): "both arguments to matmul need to be at least 1D"
      H.errors(function() return mg.matmul(mg.tensor(1), seq{4, 5}) end,
        "bad argument #1 to 'matmul' (both arguments to matmul need at least 1 dimension, but they are 0-d and 2-d)")
      H.errors(function() return mg.matmul(seq{4}, mg.tensor(1)) end,
        "bad argument #2 to 'matmul' (both arguments to matmul need at least 1 dimension, but they are 1-d and 0-d)")
    end)

    it("refuses batch dimensions that cannot broadcast", function()
      H.errors(function() return mg.matmul(seq{2, 3, 4}, seq{5, 4, 2}) end,
        "bad argument #2 to 'matmul' (batch dimensions {2} and {5} of shapes {2,3,4} and {5,4,2} cannot broadcast)")
    end)

    it("refuses bool tensors", function()
      local t = mg.tensor{{true, false}}
      H.errors(function() return mg.matmul(t, seq{2, 1}) end,
        "bad argument #1 to 'matmul' (expected a float32, float64 or int64 tensor, got bool)")
      H.errors(function() return mg.matmul(seq{1, 1}, t) end,
        "bad argument #2 to 'matmul' (expected a float32, float64 or int64 tensor, got bool)")
    end)

    it("refuses a non-tensor", function()
      H.errors(function() return mg.matmul(seq{2, 2}, 3) end, "bad argument #2 to 'matmul' (tensor expected")
    end)
  end)

  describe("mm()", function()
    it("multiplies two matrices", function()
      -- torch.mm(x, y).tolist()
      local x = mg.tensor{{1, 2, 3}, {4, 5, 6}}
      local y = mg.tensor{{7, 8}, {9, 10}, {11, 12}}
      assert.same({{58, 64}, {139, 154}}, mg.mm(x, y):totable())
      assert.same({{58, 64}, {139, 154}}, x:mm(y):totable())
      -- torch.mm(y.t(), x.t()) == (x @ y).t()
      assert.same({{58, 139}, {64, 154}}, mg.mm(y:t(), x:t()):totable())
    end)

    it("refuses anything but matrices", function()
      -- torch.mm(torch.zeros(2,3,4), torch.zeros(4,2)): "self must be a matrix"
      H.errors(function() return mg.mm(seq{2, 3, 4}, seq{4, 2}) end,
        "bad argument #1 to 'mm' (expected a 2-d tensor, got 3-d)")
      H.errors(function() return mg.mm(seq{2, 3}, seq{3}) end,
        "bad argument #2 to 'mm' (expected a 2-d tensor, got 1-d)")
      H.errors(function() return mg.mm(seq{2, 3}, seq{2, 3}) end,
        "bad argument #2 to 'mm' (shapes {2,3} and {2,3} cannot be multiplied: 3 != 2)")
    end)
  end)

  describe("bmm()", function()
    it("multiplies batches of matrices", function()
      -- torch.bmm(torch.arange(12.).reshape(2,2,3), torch.arange(12.).reshape(2,3,2)).tolist()
      local c = mg.bmm(seq{2, 2, 3}, seq{2, 3, 2})
      assert.same({{{10, 13}, {28, 40}}, {{172, 193}, {244, 274}}}, c:totable())
      assert.same(c:totable(), seq{2, 2, 3}:bmm(seq{2, 3, 2}):totable())
    end)

    it("multiplies int64 batches", function()
      -- torch.bmm(torch.arange(12).reshape(2,2,3), torch.arange(12).reshape(2,3,2)).tolist()
      local c = mg.bmm(seq({2, 2, 3}, {dtype = "int64"}), seq({2, 3, 2}, {dtype = "int64"}))
      assert.equal("int64", c.dtype)
      assert.same({{{10, 13}, {28, 40}}, {{172, 193}, {244, 274}}}, c:totable())
    end)

    it("refuses other ranks and different batch sizes", function()
      H.errors(function() return mg.bmm(seq{2, 3}, seq{2, 3, 2}) end,
        "bad argument #1 to 'bmm' (expected a 3-d tensor, got 2-d)")
      -- torch.bmm does not broadcast: torch.bmm(torch.zeros(2,3,4), torch.zeros(1,4,2)) fails
      H.errors(function() return mg.bmm(seq{2, 3, 4}, seq{1, 4, 2}) end,
        "bad argument #2 to 'bmm' (shapes {2,3,4} and {1,4,2} cannot be multiplied: batch sizes 2 != 1)")
      H.errors(function() return mg.bmm(seq{2, 3, 4}, seq{2, 3, 2}) end,
        "bad argument #2 to 'bmm' (shapes {2,3,4} and {2,3,2} cannot be multiplied: 4 != 3)")
    end)
  end)

  describe("dot()", function()
    it("gives the 0-d dot product of two vectors", function()
      -- torch.dot(torch.tensor([1.,2,3]), torch.tensor([4.,5,6])).item() -> 32.0
      local c = mg.dot(mg.tensor{1, 2, 3}, mg.tensor{4, 5, 6})
      assert.same({}, c.shape)
      assert.equal("float32", c.dtype)
      assert.equal(32, c:item())
      -- torch.dot(torch.tensor([1,2,3]), torch.tensor([4,5,6])).item() -> 32
      local i = mg.tensor({1, 2, 3}, {dtype = "int64"}):dot(mg.tensor({4, 5, 6}, {dtype = "int64"}))
      assert.equal("int64", i.dtype)
      assert.equal(32, i:item())
      assert.is_true(math.type(i:item()) == "integer")
    end)

    it("reads strided vectors", function()
      -- m = torch.arange(6.).reshape(2,3); torch.dot(m[:,1], m[:,2]).item() -> 1*2 + 4*5 = 22
      local m = seq{2, 3}
      assert.equal(22, mg.dot(m:select(2, 2), m:select(2, 3)):item())
    end)

    it("refuses non-vectors and different lengths", function()
      H.errors(function() return mg.dot(seq{2, 3}, seq{3}) end,
        "bad argument #1 to 'dot' (expected a 1-d tensor, got 2-d)")
      -- torch.dot(torch.zeros(3), torch.zeros(4)): "inconsistent tensor size"
      H.errors(function() return mg.dot(seq{3}, seq{4}) end,
        "bad argument #2 to 'dot' (shapes {3} and {4} cannot be multiplied: 3 != 4)")
    end)
  end)

  describe("outer()", function()
    it("gives the outer product of two vectors", function()
      -- torch.outer(torch.tensor([1.,2,3]), torch.tensor([4.,5])).tolist()
      local c = mg.outer(mg.tensor{1, 2, 3}, mg.tensor{4, 5})
      assert.same({{4, 5}, {8, 10}, {12, 15}}, c:totable())
      -- torch.outer(torch.tensor([1,2]), torch.tensor([3,4,5])).tolist()
      local i = mg.tensor({1, 2}, {dtype = "int64"}):outer(mg.tensor({3, 4, 5}, {dtype = "int64"}))
      assert.equal("int64", i.dtype)
      assert.same({{3, 4, 5}, {6, 8, 10}}, i:totable())
    end)

    it("reads strided and expanded vectors", function()
      -- m = torch.arange(6.).reshape(2,3); torch.outer(m[:,1], torch.tensor([2.]).expand(3)).tolist()
      local m = seq{2, 3}
      local c = mg.outer(m:select(2, 2), mg.tensor{2}:expand(3))
      assert.same({{2, 2, 2}, {8, 8, 8}}, c:totable())
    end)

    it("refuses non-vectors", function()
      H.errors(function() return mg.outer(seq{3}, seq{2, 2}) end,
        "bad argument #2 to 'outer' (expected a 1-d tensor, got 2-d)")
    end)
  end)
end)

describe("matmul's kernels", function()
  -- C 8, 16 or 32 rows tall takes 8-row tiles on AVX-512 (others 12-row ones): every element must
  -- keep its bits, so the same rows with one more (a 12-row product) give the same results, with
  -- several blocks of K, edge tiles, and both the unpacked (small) and the blocked (large) paths
  for _, size in ipairs({ { 8, 100, 300 }, { 16, 784, 9 }, { 32, 196, 288 }, { 32, 1000, 600 }, { 8, 7, 5 } }) do
    local m, n, k = table.unpack(size)
    it(string.format("%dx%d @ %dx%d gives the bits of the same rows in a taller product", m, k, k, n), function()
      mg.manual_seed(m * n + k)
      local a, b = mg.randn(m, k), mg.randn(k, n)
      local taller = mg.cat({ a, mg.randn(1, k) }):matmul(b)
      assert.is_true(a:matmul(b):equal(taller:narrow(1, 1, m)))
      -- and the transposed layout of the weight gradient (B read as its transpose)
      local bt = mg.randn(n, k)
      assert.is_true(a:matmul(bt:t()):equal(mg.cat({ a, mg.randn(1, k) }):matmul(bt:t()):narrow(1, 1, m)))
    end)
  end
end)

describe("the blocked product (C taller than a block of A)", function()
  -- it packs several blocks of kc (256) along K at once and runs them one after the other on each
  -- tile of C: each block must stay its own sum, added to C in order, so every row keeps the bits
  -- of the same row computed alone (a vector product, summed block by block by definition), on 1
  -- and 2 threads; K 1400 is one whole packed depth (1024) and a short one (256 + 120)
  for _, threads in ipairs({1, 2}) do
    it(string.format("gives each row the bits of that row alone, %d thread(s)", threads), function()
      local saved = mg.get_num_threads()
      mg.set_num_threads(threads)
      mg.manual_seed(1400)
      local a, b = mg.randn(400, 1400), mg.randn(1400, 70)
      local c = a:matmul(b)
      for _, i in ipairs({1, 13, 200, 389, 400}) do
        assert.is_true(a:narrow(1, i, 1):matmul(b):equal(c:narrow(1, i, 1)), "row " .. i)
      end
      -- and near the float64 product (the sums are real sums)
      local c64 = a:double():matmul(b:double())
      assert.is_true((c:double() - c64):abs():max():item() < 1e-3)
      mg.set_num_threads(saved)
    end)
  end
end)

describe("a narrow C computed as its transpose", function()
  -- C a few columns wide (a last layer's 10 outputs) is computed as C^T = B^T A^T when its tiles
  -- pad less so (src/ops/gemm.c transposed_pays): the same fused multiply-adds in the same order,
  -- so each row keeps the bits of that row alone (a vector product), and each column those of that
  -- column alone; the same in float64, and for a wide C (the transposed case of the transposed)
  for _, size in ipairs({ { 32, 64, 10 }, { 64, 256, 10 }, { 300, 700, 3 }, { 10, 64, 32 } }) do
    local m, k, n = table.unpack(size)
    for _, dtype in ipairs({ "float32", "float64" }) do
      it(string.format("%dx%d @ %dx%d %s: each row and column has the bits of itself alone", m, k, k, n, dtype),
        function()
          mg.manual_seed(m * k + n)
          local a, w = mg.randn(m, k, { dtype = dtype }), mg.randn(n, k, { dtype = dtype })
          local c = a:matmul(w:t())
          for _, i in ipairs({ 1, 2, m - 1, m }) do
            assert.is_true(a:narrow(1, i, 1):matmul(w:t()):equal(c:narrow(1, i, 1)), "row " .. i)
          end
          for _, j in ipairs({ 1, n }) do
            local col = a:matmul(w:narrow(1, j, 1):t())
            assert.is_true(col:equal(c:narrow(2, j, 1)), "column " .. j)
          end
          local exact = a:double():matmul(w:double():t())
          assert.is_true((c:double() - exact):abs():max():item() < 1e-4 * math.sqrt(k))
        end)
    end
  end
end)

describe("x W^T computed as W x^T, W read in place", function()
  -- A linear layer's x W^T (both operands contiguous along K, a batch of at most two tile widths,
  -- W the larger) runs on one thread as C^T = W x^T by the direct kernels, which read W where it
  -- lies, and a full tile is stored into C a column at a time (src/ops/gemm.c in_place_pays,
  -- COLUMNS_8): each row and column keeps the bits of itself alone, on 1 and 2 threads (2 threads
  -- take the blocked path for the large ones); the shapes cover 8 x 32 and 8 x 48 tiles, edge tiles
  -- in both directions, several blocks of K with a short last one, and W6's and W8's layers
  local shapes = { { 64, 784, 256 }, { 32, 64, 64 }, { 37, 300, 250 }, { 48, 300, 200 }, { 96, 40, 104 } }
  for _, threads in ipairs({ 1, 2 }) do
    for _, size in ipairs(shapes) do
      local m, k, n = table.unpack(size)
      it(string.format("%dx%d @ (%dx%d)^T, %d thread(s): rows and columns keep their bits", m, k, n, k, threads),
        function()
          local saved = mg.get_num_threads()
          mg.set_num_threads(threads)
          mg.manual_seed(m + k + n)
          local x, w = mg.randn(m, k), mg.randn(n, k)
          local c = x:matmul(w:t())
          for _, i in ipairs({ 1, 9, m }) do
            assert.is_true(x:narrow(1, i, 1):matmul(w:t()):equal(c:narrow(1, i, 1)), "row " .. i)
          end
          for _, j in ipairs({ 1, 17, n }) do
            assert.is_true(x:matmul(w:narrow(1, j, 1):t()):equal(c:narrow(2, j, 1)), "column " .. j)
          end
          local exact = x:double():matmul(w:double():t())
          assert.is_true((c:double() - exact):abs():max():item() < 1e-4 * math.sqrt(k))
          mg.set_num_threads(saved)
        end)
    end
  end
end)

describe("matrix-vector products (the gemv kernels)", function()
  -- rows of 16 floats (constant offsets), short rows prefetched a tile ahead (32..256), longer
  -- ones; 16-row tiles and the rows left over: every row keeps its bits whichever path computed it
  for _, size in ipairs({ { 1000, 16 }, { 203, 20 }, { 131, 64 }, { 77, 128 }, { 40, 256 }, { 35, 300 } }) do
    local m, k = table.unpack(size)
    it(string.format("%dx%d @ %d: near the float64 product, and each row's bits in any row count", m, k, k), function()
      mg.manual_seed(m + k)
      local a, x = mg.randn(m, k), mg.randn(k)
      local y = a:matmul(x)
      local exact = a:double():matmul(x:double())
      assert.is_true((y:double() - exact):abs():max():item() < 1e-4 * math.sqrt(k))
      assert.is_true(y:narrow(1, 1, m - 3):equal(a:narrow(1, 1, m - 3):matmul(x)))
      assert.is_true(y:narrow(1, 4, m - 3):equal(a:narrow(1, 4, m - 3):matmul(x)))
    end)
  end
end)
