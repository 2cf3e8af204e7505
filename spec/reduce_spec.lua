-- Reductions: sum prod mean max min argmax argmin var std norm any all cumsum.
-- Reference values come from PyTorch 1.13 (the Python expression is in the comment next to each),
-- with indices shifted to 1-based. In Python:
--   F = torch.tensor([[0.1, -2.5, 3.25], [1.5, 0.7, -0.3]])
--   D = torch.tensor([[0.1, -2.5, 3.25], [1.5, 0.7, -0.3]], dtype=torch.float64)
--   I = torch.tensor([[3, -7, 2], [9, 9, -1]])
--   B = torch.tensor([[True, False, True], [False, False, True]])
--   E = torch.tensor([1., 2, 3]).expand(2, 3);  W = torch.arange(24.).reshape(2, 3, 4)
local mg = require "moongrad"
local H = require "helper"

local F_DATA = {{0.1, -2.5, 3.25}, {1.5, 0.7, -0.3}}
local function F() return mg.tensor(F_DATA) end
local function D() return mg.tensor(F_DATA, {dtype = "float64"}) end
local function I() return mg.tensor({{3, -7, 2}, {9, 9, -1}}, {dtype = "int64"}) end
local function B() return mg.tensor{{true, false, true}, {false, false, true}} end
local function E() return mg.tensor{1, 2, 3}:expand(2, 3) end
local function W()
  local w = {}
  for i = 0, 23 do w[#w + 1] = i end
  return mg.tensor(w):view(2, 3, 4)
end

describe("reduce", function()
  describe("sum()", function()
    it("sums every element into a 0-d tensor", function()
      local s = F():sum()
      assert.same({}, s.shape)
      assert.equal("float32", s.dtype)
      H.near(2.75, s:item()) -- F.sum()
    end)

    it("sums over a dim, 1-based and negative", function()
      H.near({1.6, -1.8, 2.95}, F():sum(1)) -- F.sum(0)
      H.near({0.85, 1.9}, F():sum(2)) -- F.sum(1)
      H.near({{0.85}, {1.9}}, F():sum(-1, true)) -- F.sum(-1, keepdim=True)
      assert.same({2, 1}, F():sum(-1, true).shape)
      assert.same({1, 3}, F():sum(1, true).shape)
    end)

    it("sums over a list of dims", function()
      -- W.sum((0,2)) and W.sum((0,2), keepdim=True).shape
      assert.same({60, 92, 124}, W():sum{1, 3}:totable())
      assert.same({1, 3, 1}, W():sum({1, -1}, true).shape)
      H.near(2.75, F():sum{1, 2}:item()) -- F.sum((0,1))
      H.near(2.75, F():sum{}:item()) -- F.sum(dim=[]) reduces everything
    end)

    it("keeps float64", function()
      local s = D():sum()
      assert.equal("float64", s.dtype)
      H.near(2.75, s:item(), 1e-12) -- D.sum()
      H.near({0.8500000000000001, 1.9000000000000001}, D():sum(2), 1e-14) -- D.sum(1)
    end)

    it("keeps int64 and turns bool into int64", function()
      local s = I():sum()
      assert.equal("int64", s.dtype)
      assert.equal(15, s:item()) -- I.sum()
      assert.same({12, 2, 1}, I():sum(1):totable()) -- I.sum(0)
      local b = B():sum()
      assert.equal("int64", b.dtype)
      assert.equal(3, b:item()) -- B.sum()
      assert.same({2, 1}, B():sum(2):totable()) -- B.sum(1)
    end)

    it("reads transposed, expanded, permuted and narrowed views", function()
      H.near({1.6, -1.8, 2.95}, F():t():sum(2)) -- F.t().sum(1)
      assert.same({2, 4, 6}, E():sum(1):totable()) -- E.sum(0)
      assert.equal(12, E():sum():item()) -- E.sum()
      assert.same({{12, 15, 18, 21}, {48, 51, 54, 57}}, W():sum(2):totable()) -- W.sum(1)
      -- W.permute(2,0,1).sum(1)
      assert.same({{12, 20, 28}, {14, 22, 30}, {16, 24, 32}, {18, 26, 34}},
        W():permute(3, 1, 2):sum(2):totable())
      assert.equal(138, W():narrow(3, 2, 2):sum():item()) -- W.narrow(2,1,2).sum()
    end)

    it("accumulates float32 in double", function()
      -- PyTorch's float32 sum gives 0 here (torch.tensor([1e8, 1., -1e8]).sum()): 1e8 + 1 is not a
      -- float32; accumulating in double keeps the 1
      assert.equal(1, mg.tensor{1e8, 1, -1e8}:sum():item())
    end)

    it("gives 0 for an empty tensor", function()
      assert.equal(0, mg.tensor{}:sum():item()) -- torch.zeros(0).sum()
      local z = F():narrow(2, 1, 0) -- shape {2,0}
      assert.same({0, 0}, z:sum(2):totable()) -- torch.zeros(2,0).sum(1)
    end)

    it("is also mg.sum", function()
      assert.same({12, 2, 1}, mg.sum(I(), 1):totable())
    end)

    it("names a dim out of range", function()
      H.errors(function() return F():sum(3) end,
        "bad argument #1 to 'sum' (dimension 3 out of range (expected 1..2 or -2..-1))")
      H.errors(function() return mg.sum(F(), 0) end,
        "bad argument #2 to 'sum' (dimension 0 out of range (expected 1..2 or -2..-1))")
      H.errors(function() return F():sum{1, 1} end,
        "bad argument #1 to 'sum' (dimension 1 appears more than once in the list of dims)")
      H.errors(function() return F():sum{1, -3} end,
        "bad argument #1 to 'sum' (dimension -3 out of range (expected 1..2 or -2..-1))")
      H.errors(function() return F():sum(1, 1) end,
        "bad argument #2 to 'sum' (boolean expected, got number)")
    end)
  end)

  describe("prod()", function()
    it("multiplies all or along a dim", function()
      H.near(0.25593751668930054, F():prod():item()) -- F.prod()
      H.near({0.15, -1.75, -0.975}, F():prod(1)) -- F.prod(0)
      assert.same({-42, -81}, I():prod(2):totable()) -- I.prod(1)
      local b = B():prod()
      assert.equal("int64", b.dtype)
      assert.equal(0, b:item()) -- B.prod()
      assert.equal(1, mg.tensor{}:prod():item()) -- torch.zeros(0).prod()
    end)
  end)

  describe("mean()", function()
    it("averages all or along a dim", function()
      H.near(0.4583333432674408, F():mean():item()) -- F.mean()
      H.near({0.8, -0.9, 1.475}, F():mean(1)) -- F.mean(0)
      H.near({0.2833333333333334, 0.6333333333333334}, D():mean(2), 1e-14) -- D.mean(1)
      assert.equal("float64", D():mean().dtype)
      H.near({0.8, -0.9, 1.475}, F():t():mean(2)) -- F.t().mean(1)
      H.near({{2}, {2}}, E():mean(2, true)) -- E.mean(1, keepdim=True)
    end)

    it("gives nan for an empty tensor", function()
      local m = mg.tensor{}:mean():item() -- torch.zeros(0).mean()
      assert.is_true(m ~= m)
    end)

    it("refuses integer and bool tensors", function()
      H.errors(function() return I():mean() end,
        "mean expects a floating dtype (float32 or float64), got int64")
      H.errors(function() return mg.mean(B()) end,
        "bad argument #1 to 'mean' (mean expects a floating dtype (float32 or float64), got bool)")
    end)
  end)

  describe("max() and min()", function()
    it("give a 0-d tensor without a dim", function()
      local m = F():max()
      assert.same({}, m.shape)
      H.near(3.25, m:item()) -- F.max()
      H.near(-2.5, F():min():item()) -- F.min()
      assert.equal(-7, I():min():item()) -- I.min()
      assert.equal("int64", I():min().dtype)
      assert.equal(true, B():max():item()) -- B.max()
    end)

    it("give values and 1-based int64 indices over a dim", function()
      local v, i = F():max(2) -- F.max(1): values [3.25, 1.5], indices [2, 0]
      H.near({3.25, 1.5}, v)
      assert.equal("int64", i.dtype)
      assert.same({3, 1}, i:totable())
      v, i = F():min(1) -- F.min(0): values [0.1, -2.5, -0.3], indices [0, 0, 1]
      H.near({0.1, -2.5, -0.3}, v)
      assert.same({1, 1, 2}, i:totable())
      v, i = F():max(1, true) -- F.max(0, keepdim=True): [[1.5, 0.7, 3.25]], [[1, 1, 0]]
      H.near({{1.5, 0.7, 3.25}}, v)
      assert.same({{2, 2, 1}}, i:totable())
      v, i = D():max(-1) -- D.max(-1)
      assert.equal("float64", v.dtype)
      H.near({3.25, 1.5}, v, 1e-14)
      assert.same({3, 1}, i:totable())
    end)

    it("take int64 and bool", function()
      local v, i = I():max(2) -- I.max(1): values [3, 9], indices [0, 0] (the first of the tie)
      assert.same({3, 9}, v:totable())
      assert.same({1, 1}, i:totable())
      v, i = B():min(2) -- B.min(1): values [False, False], indices [1, 0]
      assert.same({false, false}, v:totable())
      assert.same({2, 1}, i:totable())
    end)

    it("resolve ties to the first occurrence", function()
      local v, i = mg.tensor{2, 7, 7, 1, 1}:max(1) -- T.max(0): 7., index 1
      assert.equal(7, v:item())
      assert.equal(2, i:item())
    end)

    it("propagate nan and point at the first one", function()
      local n = mg.tensor{1, 0 / 0, 3, 0 / 0}
      local m = n:max():item() -- N.max(): nan
      assert.is_true(m ~= m)
      m = n:min():item() -- N.min(): nan
      assert.is_true(m ~= m)
      local _, i = n:max(1) -- N.max(0).indices: 1
      assert.equal(2, i:item())
    end)

    it("read transposed, expanded and narrowed views", function()
      local v, i = E():max(2) -- E.max(1): values [3, 3], indices [2, 2]
      assert.same({3, 3}, v:totable())
      assert.same({3, 3}, i:totable())
      v, i = W():narrow(3, 2, 2):max(3) -- W.narrow(2,1,2).max(2)
      assert.same({{2, 6, 10}, {14, 18, 22}}, v:totable())
      assert.same({{2, 2, 2}, {2, 2, 2}}, i:totable())
      v, i = F():t():max(1) -- F.t().max(0) == F.max(1)
      H.near({3.25, 1.5}, v)
      assert.same({3, 1}, i:totable())
    end)

    it("are also mg.max and mg.min", function()
      local v, i = mg.min(I(), 1) -- I.min(0): [3, -7, -1], [0, 0, 1]
      assert.same({3, -7, -1}, v:totable())
      assert.same({1, 1, 2}, i:totable())
    end)

    it("give an empty result over a nonempty dim of an empty tensor", function()
      local v, i = F():narrow(2, 1, 0):max(1) -- torch.zeros(2,0).max(0)
      assert.same({0}, v.shape)
      assert.same({0}, i.shape)
    end)

    it("refuse to reduce an empty set", function()
      H.errors(function() return mg.tensor{}:max() end,
        "max of an empty tensor is undefined (no identity element)")
      H.errors(function() return mg.min(F():narrow(2, 1, 0), 2) end,
        "bad argument #1 to 'min' (min over dimension 2 of size 0 is undefined (no identity element))")
    end)

    it("name a dim out of range", function()
      H.errors(function() return F():max(3) end,
        "bad argument #1 to 'max' (dimension 3 out of range (expected 1..2 or -2..-1))")
    end)
  end)

  describe("argmax() and argmin()", function()
    it("give the flat 1-based index without a dim", function()
      local a = F():argmax()
      assert.equal("int64", a.dtype)
      assert.same({}, a.shape)
      assert.equal(3, a:item()) -- F.argmax(): 2
      assert.equal(2, F():argmin():item()) -- F.argmin(): 1
      assert.equal(4, I():argmax():item()) -- I.argmax(): 3 (first of the tied 9s)
      assert.equal(5, F():t():argmax():item()) -- F.t().argmax(): 4
      assert.equal(24, W():permute(3, 1, 2):argmax():item()) -- W.permute(2,0,1).argmax(): 23
      assert.equal(3, D():argmax():item()) -- D.argmax(): 2
    end)

    it("give indices along a dim", function()
      assert.same({{3}, {1}}, F():argmax(2, true):totable()) -- F.argmax(1, keepdim=True)
      assert.same({1, 1}, I():argmax(-1):totable()) -- I.argmax(1)
      assert.same({1, 1, 2}, I():argmin(1):totable()) -- I.argmin(0)
      assert.same({1, 1, 1}, E():argmax(1):totable()) -- E.argmax(0)
      assert.same({2, 1}, B():argmin(2):totable()) -- B.min(1).indices
    end)

    it("point at the first nan, and the first of ties", function()
      local n = mg.tensor{1, 0 / 0, 3, 0 / 0}
      assert.equal(2, n:argmax():item()) -- N.argmax(): 1
      assert.equal(2, n:argmin():item()) -- N.argmin(): 1
      assert.equal(2, mg.tensor{2, 7, 7, 1, 1}:argmax():item()) -- T.argmax(): 1
      assert.equal(4, mg.argmin(mg.tensor{2, 7, 7, 1, 1}):item()) -- T.argmin(): 3
    end)

    it("refuses an empty tensor", function()
      H.errors(function() return mg.tensor{}:argmax() end,
        "argmax of an empty tensor is undefined (no identity element)")
    end)
  end)

  describe("var() and std()", function()
    it("are unbiased by default", function()
      H.near(3.6784167289733887, F():var():item()) -- F.var()
      H.near(1.9179198741912842, F():std():item()) -- F.std()
      H.near({0.98, 5.12, 6.30125}, F():var(1)) -- F.var(0)
      H.near({{2.879380720455934}, {0.901849950564579}}, D():std(2, true), 1e-13) -- D.std(1, keepdim=True)
      H.near(3.6784166666666662, D():var():item(), 1e-13) -- D.var()
      assert.equal("float64", D():var().dtype)
    end)

    it("take {unbiased = false} in any trailing position", function()
      H.near(1.7508132457733154, F():std({unbiased = false}):item()) -- F.std(unbiased=False)
      H.near({5.527222156524658, 0.5422222018241882}, F():var(2, {unbiased = false})) -- F.var(1, unbiased=False)
      H.near({{5.527222156524658}, {0.5422222018241882}}, F():var(2, true, {unbiased = false}))
      H.near(3.6784167289733887, F():var({unbiased = true}):item())
    end)

    it("reduce over a list of dims and read views", function()
      H.near({6.5246782302856445, 6.5246782302856445, 6.5246782302856445}, W():std{1, 3}) -- W.std((0,2))
      H.near({0.98, 5.12, 6.30125}, F():t():var(2)) -- F.t().var(1)
      assert.same({0, 0, 0}, E():var(1):totable()) -- E.var(0)
    end)

    it("give nan for one element, unbiased", function()
      local v = mg.tensor{3}:var():item() -- torch.tensor([3.]).var()
      assert.is_true(v ~= v)
      assert.equal(0, mg.tensor{3}:var({unbiased = false}):item()) -- torch.tensor([3.]).var(unbiased=False)
    end)

    it("refuse integer tensors and unknown options", function()
      H.errors(function() return I():var() end, "var expects a floating dtype (float32 or float64), got int64")
      H.errors(function() return mg.std(B(), 1) end,
        "bad argument #1 to 'std' (std expects a floating dtype (float32 or float64), got bool)")
      H.errors(function() return F():var(1, {biased = true}) end,
        "bad argument #2 to 'var' (unknown option 'biased' (valid: unbiased))")
      H.errors(function() return F():var({unbiased = 1}) end,
        "bad argument #1 to 'var' (unbiased must be a boolean)")
    end)
  end)

  describe("norm()", function()
    it("is the 2-norm by default", function()
      H.near(4.433114051818848, F():norm():item()) -- F.norm()
      H.near(4.433114051818848, F():norm("fro"):item()) -- F.norm('fro')
      H.near({4.101524353027344, 1.6822603940963745}, F():norm(2, 2)) -- F.norm(2, 1)
      H.near({1.5033296346664429, 2.5961508750915527, 3.2638168334960938}, F():t():norm(2, 2)) -- F.t().norm(2,1)
    end)

    it("takes p = 1, inf, -inf, 0 and any other p", function()
      H.near(8.350000381469727, F():norm(1):item()) -- F.norm(1)
      H.near(3.25, F():norm(math.huge):item()) -- F.norm(float('inf'))
      H.near(0.1, F():norm(-math.huge):item()) -- F.norm(float('-inf'))
      H.near(6, F():norm(0):item()) -- F.norm(0)
      H.near(3.7727301120758057, F():norm(3):item()) -- F.norm(3)
      H.near(39.806884011863595, D():norm(0.5):item(), 1e-13) -- D.norm(0.5)
      H.near({{1.6, 3.2, 3.55}}, F():norm(1, 1, true)) -- F.norm(1, 0, keepdim=True)
    end)

    it("refuses integer tensors and a bad p", function()
      H.errors(function() return I():norm() end, "norm expects a floating dtype (float32 or float64), got int64")
      H.errors(function() return F():norm("nuc") end, "bad argument #1 to 'norm' (p must be a number or 'fro')")
    end)
  end)

  describe("any() and all()", function()
    it("give a 0-d bool tensor without a dim", function()
      local a = B():any()
      assert.equal("bool", a.dtype)
      assert.same({}, a.shape)
      assert.is_true(a:item()) -- B.any()
      assert.is_false(B():all():item()) -- B.all()
      assert.is_true(I():all():item()) -- I.all()
      local reached = false
      if B():any():item() then reached = true end
      assert.is_true(reached)
      assert.is_false(mg.tensor{}:any():item()) -- torch.zeros(0).any()
      assert.is_true(mg.tensor{}:all():item()) -- torch.zeros(0).all()
    end)

    it("give a bool tensor over a dim", function()
      assert.same({true, false, true}, B():any(1):totable()) -- B.any(0)
      assert.same({false, false}, B():all(2):totable()) -- B.all(1)
      assert.same({{true}, {true}}, F():any(2, true):totable()) -- F.any(1, keepdim=True)
      assert.same({false, false, true}, B():t():all(2):totable()) -- B.t().all(1)
    end)

    it("count nan as true", function()
      assert.is_true(mg.tensor{0 / 0, 1}:all():item()) -- torch.tensor([nan, 1.]).all()
      assert.is_false(mg.tensor{0, 0 / 0}:all():item()) -- torch.tensor([0., nan]).all()
    end)
  end)

  describe("mg.<name>(t, ...)", function()
    it("is the method under another spelling", function()
      for _, name in ipairs{"sum", "prod", "mean", "max", "min", "argmax", "argmin", "var", "std",
                            "norm", "any", "all", "cumsum"} do
        assert.is_true(mg.equal(F()[name](F(), 2), mg[name](F(), 2)), name)
      end
    end)
  end)

  describe("cumsum()", function()
    it("runs along a dim and keeps the shape", function()
      H.near({{0.1, -2.4, 0.85}, {1.5, 2.2, 1.9}}, F():cumsum(2)) -- F.cumsum(1)
      assert.same({{3, -7, 2}, {12, 2, 1}}, I():cumsum(1):totable()) -- I.cumsum(0)
      local b = B():cumsum(-1)
      assert.equal("int64", b.dtype)
      assert.same({{1, 1, 2}, {0, 0, 1}}, b:totable()) -- B.cumsum(1)
      H.near({{0.1, 1.5}, {-2.4, 2.2}, {0.85, 1.9}}, F():t():cumsum(1)) -- F.t().cumsum(0)
      assert.same({{1, 2, 3}, {2, 4, 6}}, E():cumsum(1):totable()) -- E.cumsum(0)
    end)

    it("needs a dim in range", function()
      H.errors(function() return F():cumsum(3) end,
        "bad argument #1 to 'cumsum' (dimension 3 out of range (expected 1..2 or -2..-1))")
    end)
  end)
end)

describe("sums over an outer dim (outputs side by side)", function()
  -- A sum or mean over a dim that is not the innermost runs its contiguous outputs side by side
  -- (src/ops/reduce.c sum_columns), each still summed in double in the order of its elements: every
  -- output must have the bits of its own column summed alone (a strided run, folded one element at
  -- a time), in float32 and float64, for 8 to 200 outputs (whole and partial blocks of 64), one to
  -- 100 rows, a narrowed input (rows further apart than the outputs) and two reduced dims merged
  local shapes = { { 1, 8 }, { 3, 64 }, { 100, 65 }, { 37, 200 } }
  for _, dt in ipairs({ "float32", "float64" }) do
    for _, shape in ipairs(shapes) do
      local rows, cols = table.unpack(shape)
      it(string.format("%s %dx%d: sum(1) and mean(1) give each column's own bits", dt, rows, cols), function()
        mg.manual_seed(rows * cols)
        local x = mg.randn(rows, cols + 5, { dtype = dt }):narrow(2, 3, cols) * 1000
        local s, m = x:sum(1), x:mean(1)
        assert.same({ cols }, s.shape)
        for _, j in ipairs({ 1, 2, 8, cols - 1, cols }) do
          local col = x:select(2, j)
          assert.is_true(s:narrow(1, j, 1):equal(col:sum():view(1)), "sum column " .. j)
          assert.is_true(m:narrow(1, j, 1):equal(col:mean():view(1)), "mean column " .. j)
        end
        -- and keepdim keeps the same values
        assert.is_true(x:sum(1, true):view(cols):equal(s))
      end)
    end
    it(dt .. ": two reduced dims merged into one run ([4, 5, 33] over dims 1 and 2)", function()
      mg.manual_seed(33)
      local x = mg.randn(4, 5, 33, { dtype = dt })
      local s = x:sum({ 1, 2 })
      for _, j in ipairs({ 1, 17, 33 }) do
        assert.is_true(s:narrow(1, j, 1):equal(x:select(3, j):reshape(20):sum():view(1)), "column " .. j)
      end
    end)
  end
  it("sums float32 columns in double, as every float32 sum here (1e8 + 1 + 1 - 1e8 is 2)", function()
    -- moongrad's float32 sums accumulate in double and round once; PyTorch 1.13's accumulate in
    -- float32 here: torch.tensor([[1e8], [1.], [1.], [-1e8]]).repeat(1, 16).sum(0) gives 0.
    local x = mg.tensor({ { 1e8 }, { 1 }, { 1 }, { -1e8 } }):expand(4, 16):contiguous()
    assert.same({ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2 }, x:sum(1):totable())
  end)
end)

describe("the 2- and 1-norms' sums (8 interleaved partials)", function()
  -- Over a contiguous run of 64 elements or more, the sum of squares (of absolute values) is taken
  -- in double over 8 partial sums, element i into partial i % 8, added up in order, then the rest
  -- of the run; shorter or strided runs go one element at a time. Replayed here in Lua's doubles:
  -- the bits must be the same.
  local function expected(values, p)
    local r = H.interleaved_sum(#values, function(i)
      local v = values[i]
      return p == 2 and v * v or math.abs(v)
    end)
    return p == 2 and math.sqrt(r) or r
  end
  for _, dt in ipairs({ "float32", "float64" }) do
    for _, n in ipairs({ 7, 63, 64, 1001 }) do
      it(string.format("%s, %d elements: the documented order's bits", dt, n), function()
        mg.manual_seed(n)
        local x = mg.randn(n, { dtype = dt }) * 3
        local values = x:double():totable()
        for _, p in ipairs({ 2, 1 }) do
          local want = mg.tensor(expected(values, p), { dtype = dt }):item()
          assert.equal(want, x:norm(p):item())
        end
      end)
    end
  end
end)

describe("reductions over the rows of a contiguous matrix (the direct loop)", function()
  -- the rows of a contiguous matrix are reduced one run each without fold_block's walk; the same
  -- rows inside a wider tensor (runs further apart) take the general walk: the bits must agree
  for _, dt in ipairs({ "float32", "float64" }) do
    it(dt .. ": sum, mean, prod, max, argmax and norm over dim 2, as the same rows in a wider tensor", function()
      mg.manual_seed(11)
      local wide = mg.randn(50, 300, { dtype = dt })
      local rows = wide:narrow(2, 1, 257)
      local x = rows:contiguous()
      assert.is_false(rows:is_contiguous())
      for _, op in ipairs({ "sum", "mean", "prod", "argmax" }) do
        assert.is_true(x[op](x, 2):equal(rows[op](rows, 2)), op)
      end
      assert.is_true(x:norm(2, 2):equal(rows:norm(2, 2)), "norm")
      local v1, i1 = x:max(2)
      local v2, i2 = rows:max(2)
      assert.is_true(v1:equal(v2) and i1:equal(i2), "max")
    end)
  end
end)
