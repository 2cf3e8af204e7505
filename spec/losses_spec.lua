-- Losses of issue 13: nll_loss (class weights, ignore_index, (N,C,d...) inputs),
-- binary_cross_entropy (log clamped at -100, weights), smooth_l1_loss (beta), huber_loss
-- (delta), each reduction; values and gradients against PyTorch (spec/fixtures/gen_ops13.py),
-- gradcheck in float64, exact errors; and one_hot.
local mg = require "moongrad"
local H = require "helper"
local fixtures = require "ops13_helper"

describe("losses against PyTorch", function()
  fixtures.describe_cases(it, {"nll_loss", "binary_cross_entropy", "smooth_l1_loss", "huber_loss", "one_hot"})
end)

describe("losses", function()
  before_each(function() mg.manual_seed(13) end)
  local gradcheck = mg.autograd.gradcheck
  local i64 = function(v) return mg.tensor(v, {dtype = "int64"}) end

  it("gradcheck in float64: every reduction, weights, ignore_index, (N,C,d) inputs", function()
    local t = i64{2, 1, 3, 3}
    local w = mg.tensor({0.5, 2, 1.5}, {dtype = "float64"})
    for _, red in ipairs{"mean", "sum", "none"} do
      assert.is_true(gradcheck(function(x) return mg.F.nll_loss(x, t, red) end, {H.leaf{4, 3}}))
      assert.is_true(gradcheck(function(x)
        return mg.F.nll_loss(x, t, {reduction = red, weight = w, ignore_index = 1})
      end, {H.leaf{4, 3}}))
      assert.is_true(gradcheck(function(x) return mg.F.nll_loss(x:t(), i64{1, 3}, red) end, {H.leaf{3, 2}}))
      local p = (mg.rand(3, 4, {dtype = "float64"}) * 0.8 + 0.1):requires_grad_()
      local y = (mg.rand(3, 4, {dtype = "float64"})):requires_grad_()
      assert.is_true(gradcheck(function(a, b) return mg.F.binary_cross_entropy(a, b, red) end, {p, y}))
      assert.is_true(gradcheck(function(a, b)
        return mg.F.binary_cross_entropy(a, b, {reduction = red, weight = w:narrow(1, 1, 1)})
      end, {p, y}))
      assert.is_true(gradcheck(function(a, b) return mg.F.smooth_l1_loss(a, b, {reduction = red, beta = 0.7}) end,
        {H.leaf{3, 4}, H.leaf{4}}))
      assert.is_true(gradcheck(function(a, b) return mg.F.huber_loss(a:t(), b, {reduction = red, delta = 0.6}) end,
        {H.leaf{4, 3}, H.leaf{3, 4}}))
    end
    assert.is_true(gradcheck(function(x) return mg.F.nll_loss(x, i64{{1, 3}, {2, 2}}) end, {H.leaf{2, 3, 2}}))
  end)

  it("nll_loss: mean over only ignored targets is NaN, as PyTorch; none gives 0 there", function()
    local x = mg.randn(2, 3)
    local l = mg.F.nll_loss(x, i64{2, 2}, {ignore_index = 2})
    assert.is_true(l:item() ~= l:item())
    H.near({0, -x[2][3]}, mg.F.nll_loss(x, i64{2, 3}, {ignore_index = 2, reduction = "none"}))
    assert.equal(0, mg.F.nll_loss(x, i64{2, 2}, {ignore_index = 2, reduction = "sum"}):item())
  end)

  it("nll_loss takes a Lua list of targets or an integer for 1-D input, as cross_entropy", function()
    local x = mg.randn(3, 4)
    assert.is_true(mg.F.nll_loss(x, {1, 4, 2}):equal(mg.F.nll_loss(x, i64{1, 4, 2})))
    local v = mg.randn(4)
    H.near(-v[3], mg.F.nll_loss(v, 3))
  end)

  it("smooth_l1_loss with beta 0 is l1_loss; huber_loss is beta * smooth_l1_loss with beta = delta", function()
    local a, b = mg.randn(5, 3), mg.randn(5, 3)
    H.near(mg.F.l1_loss(a, b):item(), mg.F.smooth_l1_loss(a, b, {beta = 0}))
    H.near((mg.F.smooth_l1_loss(a, b, {beta = 0.5}) * 0.5):item(), mg.F.huber_loss(a, b, {delta = 0.5}))
  end)

  it("binary_cross_entropy: a target of another float dtype promotes; the result is 0-d", function()
    local p = mg.tensor({0.2, 0.9})
    local y = mg.tensor({0, 1}, {dtype = "float64"})
    local l = mg.F.binary_cross_entropy(p, y)
    assert.equal("float64", l.dtype)
    assert.same({}, l.shape)
  end)

  it("refuses bad input with exact messages", function()
    local x = mg.randn(3, 4)
    H.errors(function() mg.F.nll_loss(x, i64{1, 5, 2}) end,
      "bad argument #2 to 'nll_loss' (target 5 out of range for 4 classes)")
    H.errors(function() mg.F.nll_loss(x, i64{1, 0, 2}) end,
      "bad argument #2 to 'nll_loss' (target 0 out of range for 4 classes: classes count from 1)")
    H.errors(function() mg.F.nll_loss(x, mg.tensor{1, 2, 3}) end,
      "bad argument #2 to 'nll_loss' (target must be an int64 tensor of class indices, got float32)")
    H.errors(function() mg.F.nll_loss(x, i64{1, 2}) end,
      "bad argument #2 to 'nll_loss' (target shape {2} does not match input shape {3,4} (expected {3}))")
    H.errors(function() mg.F.nll_loss(x, i64{1, 2, 3}, {weight = mg.ones(3)}) end,
      "bad argument #3 to 'nll_loss' (weight must be a 1-D tensor of 4 elements (one per class), got shape {3})")
    H.errors(function() mg.F.nll_loss(x, i64{1, 2, 3}, {weight = mg.ones({4}, {dtype = "int64"})}) end,
      "bad argument #3 to 'nll_loss' (weight must be a float tensor, got int64)")
    H.errors(function() mg.F.nll_loss(x, i64{1, 2, 3}, {ignore_index = 1.5}) end,
      "bad argument #3 to 'nll_loss' (ignore_index must be an integer, got number)")
    H.errors(function() mg.F.nll_loss(x, i64{1, 2, 3}, {weights = 1}) end, "unknown option 'weights'")
    H.errors(function() mg.F.nll_loss(x, i64{1, 2, 3}, "avg") end,
      "bad argument #3 to 'nll_loss' (unknown reduction 'avg', expected 'mean', 'sum' or 'none')")
    H.errors(function() mg.F.nll_loss(mg.tensor(1.5), i64{1}) end,
      "bad argument #1 to 'nll_loss' (input must be {N,C}, {C} or {N,C,d...}, got shape {})")
    local p = mg.tensor{0.5, 1.5}
    H.errors(function() mg.F.binary_cross_entropy(p, mg.tensor{0, 1}) end,
      "bad argument #1 to 'binary_cross_entropy' (all elements of input should be between 0 and 1)")
    H.errors(function() mg.F.binary_cross_entropy(mg.tensor{0 / 0}, mg.tensor{0}) end,
      "bad argument #1 to 'binary_cross_entropy' (all elements of input should be between 0 and 1)")
    H.errors(function() mg.F.binary_cross_entropy(mg.tensor{0.5}, mg.tensor({1}, {dtype = "int64"})) end,
      "bad argument #2 to 'binary_cross_entropy' (target must be a float tensor, got int64)")
    H.errors(function() mg.F.binary_cross_entropy(mg.tensor{0.5, 0.5}, mg.tensor{1}) end,
      "bad argument #2 to 'binary_cross_entropy' (target shape {1} does not match input shape {2})")
    H.errors(function() mg.F.binary_cross_entropy(mg.tensor{0.5, 0.5}, mg.tensor{1, 0}, {weight = mg.ones(3)}) end,
      "bad argument #3 to 'binary_cross_entropy' (weight shape {3} does not broadcast to input shape {2})")
    H.errors(function() mg.F.smooth_l1_loss(x, x, {beta = -1}) end,
      "bad argument #3 to 'smooth_l1_loss' (beta must be non-negative, got -1.0)")
    H.errors(function() mg.F.huber_loss(x, x, {delta = 0}) end,
      "bad argument #3 to 'huber_loss' (delta must be positive, got 0.0)")
    H.errors(function() mg.F.huber_loss(x, x, {beta = 1}) end, "unknown option 'beta'")
    H.errors(function() mg.F.huber_loss(x, mg.ones(3)) end,
      "bad argument #2 to 'huber_loss' (shapes {3,4} and {3} cannot broadcast)")
    H.errors(function() mg.F.smooth_l1_loss(i64{1, 2}, mg.tensor{1, 2}) end,
      "bad argument #1 to 'smooth_l1_loss' (expected a float32 or float64 tensor, got int64)")
    H.errors(function() mg.F.nll_loss(i64{{1, 2}}, i64{1}) end,
      "bad argument #1 to 'nll_loss' (expected a float32 or float64 tensor, got int64)")
    H.errors(function() mg.F.binary_cross_entropy(mg.tensor{true}, mg.tensor{1}) end,
      "bad argument #1 to 'binary_cross_entropy' (expected a float32 or float64 tensor, got bool)")
    H.errors(function() mg.F.smooth_l1_loss(x, mg.tensor{true}) end,
      "bad argument #2 to 'smooth_l1_loss' (target must be a float tensor, got bool)")
  end)

  it("the target of nll_loss has no gradient", function()
    local x = mg.randn(2, 3, {requires_grad = true})
    local l = mg.F.nll_loss(x, i64{1, 2})
    l:backward()
    H.near({{-0.5, 0, 0}, {0, -0.5, 0}}, x.grad)
  end)
end)

describe("one_hot", function()
  local i64 = function(v) return mg.tensor(v, {dtype = "int64"}) end
  it("infers the number of classes from the largest index; column idx is 1", function()
    assert.same({{0, 1, 0}, {1, 0, 0}, {0, 0, 1}}, mg.F.one_hot(i64{2, 1, 3}):totable())
    assert.same({{0, 1, 0, 0}}, mg.F.one_hot(i64{2}, 4):totable())
    assert.same({{{1, 0}}, {{0, 1}}}, mg.F.one_hot(i64{{1}, {2}}:t():t(), -1):totable())
    assert.same({3}, mg.F.one_hot(i64(2), 3).shape)
    assert.same({0, 5}, mg.F.one_hot(mg.zeros({0}, {dtype = "int64"}), 5).shape)
    assert.equal("int64", mg.F.one_hot(i64{1}).dtype)
  end)
  it("refuses bad input with exact messages", function()
    H.errors(function() mg.F.one_hot(i64{1, 0}) end,
      "bad argument #1 to 'one_hot' (class 0 out of range for 1 classes: classes count from 1)")
    H.errors(function() mg.F.one_hot(i64{1, 4}, 3) end,
      "bad argument #1 to 'one_hot' (class 4 out of range for 3 classes)")
    H.errors(function() mg.F.one_hot(mg.tensor{1, 2}) end,
      "bad argument #1 to 'one_hot' (expected an int64 tensor of 1-based class indices, got float32)")
    H.errors(function() mg.F.one_hot(mg.zeros({0}, {dtype = "int64"})) end,
      "bad argument #1 to 'one_hot' (cannot infer the number of classes from an empty tensor)")
    H.errors(function() mg.F.one_hot(i64{1}, 0) end,
      "bad argument #2 to 'one_hot' (num_classes must be positive or -1, got 0)")
  end)
end)

describe("mse_loss and l1_loss reduced over 64 terms or more (8 interleaved partials)", function()
  -- Each term in double, rounded to the dtype, then summed in double: terms i into partial i % 8,
  -- the partials added in order, then the rest; fewer than 64 terms one after the other. Replayed
  -- here in Lua's doubles (float32 rounding through a 0-d tensor): the bits must be the same.
  local function to_f32(v) return mg.tensor(v, { dtype = "float32" }):item() end
  local function expected(xs, ys, term, round)
    return H.interleaved_sum(#xs, function(j) return round(term(xs[j], ys[j])) end)
  end
  local function sq(a, b) return (a - b) * (a - b) end
  local function ab(a, b) return math.abs(a - b) end
  for _, dt in ipairs({ "float32", "float64" }) do
    for _, n in ipairs({ 10, 64, 203 }) do
      it(string.format("%s, %d terms: mean and sum have the documented order's bits", dt, n), function()
        mg.manual_seed(n)
        local x, y = mg.randn(n, { dtype = dt }) * 3, mg.randn(n, { dtype = dt })
        local xs, ys = x:double():totable(), y:double():totable()
        local round = dt == "float32" and to_f32 or function(v) return v end
        for _, case in ipairs({ { "mse_loss", sq }, { "l1_loss", ab } }) do
          local s = expected(xs, ys, case[2], round)
          local want_sum = mg.tensor(s, { dtype = dt }):item()
          local want_mean = dt == "float32" and to_f32(to_f32(s) / to_f32(n)) or s / n
          assert.equal(want_sum, mg.F[case[1]](x, y, "sum"):item(), case[1] .. " sum")
          assert.equal(want_mean, mg.F[case[1]](x, y, "mean"):item(), case[1] .. " mean")
        end
      end)
    end
  end
end)

describe("cross_entropy over long rows of classes", function()
  -- 64 classes or more: the row's max on integer keys, its exponentials summed over 8 interleaved
  -- partials (src/ops/functional.c row_max_f32, piece_sum); 300 classes cross a piece of 256
  for _, C in ipairs({ 64, 131, 300 }) do
    it(string.format("%d classes: each row's loss near float64's, and its gradient", C), function()
      mg.manual_seed(C)
      local x = mg.randn(5, C) * 4
      local t = mg.tensor({ 1, C, 7, C // 2, 3 }, { dtype = "int64" })
      local l32 = mg.F.cross_entropy(x, t, "none")
      local l64 = mg.F.cross_entropy(x:double(), t, "none")
      assert.is_true((l32:double() - l64):abs():max():item() < 1e-5)
      local x32, x64 = x:clone():requires_grad_(), x:double():requires_grad_()
      mg.F.cross_entropy(x32, t):backward()
      mg.F.cross_entropy(x64, t):backward()
      assert.is_true((x32.grad:double() - x64.grad):abs():max():item() < 1e-7)
      -- a NaN in a row gives that row's loss NaN and leaves the others
      local xn = x:clone()
      xn[2][5] = 0 / 0
      local ln = mg.F.cross_entropy(xn, t, "none"):totable()
      assert.is_true(ln[2] ~= ln[2])
      assert.is_true(ln[1] == ln[1] and ln[3] == ln[3])
    end)
  end
end)

describe("binary_cross_entropy_with_logits in float32 (the vectorized form)", function()
  -- x = torch.tensor([-1000., -20., -1.5, 0., 0.3, 2., 20., 1000.], requires_grad=True)
  -- y = torch.tensor([0., 1., 0.25, 1., 0., 1., 0., 1.])
  -- F.binary_cross_entropy_with_logits(x, y, reduction='none'); the mean and its x.grad
  local xs = { -1000, -20, -1.5, 0, 0.3, 2, 20, 1000 }
  local ys = { 0, 1, 0.25, 1, 0, 1, 0, 1 }
  local none = { 0.0, 20.0, 0.5764133334159851, 0.6931471824645996, 0.8543552756309509, 0.12692804634571075,
    20.0, 0.0 }
  local grad = { 0.0, -0.125, -0.008446808904409409, -0.0625, 0.07180531322956085, -0.014900371432304382,
    0.125, 0.0 }
  local function close(a, b) return math.abs(a - b) <= 2e-7 * math.max(1, math.abs(b)) end
  it("gives PyTorch's values and gradient to float32 precision, logits of +-1000 finite", function()
    local x, y = mg.tensor(xs, { requires_grad = true }), mg.tensor(ys)
    local l = mg.F.binary_cross_entropy_with_logits(x, y, "none"):totable()
    for i = 1, 8 do assert.is_true(close(l[i], none[i]), i .. ": " .. l[i]) end
    local m = mg.F.binary_cross_entropy_with_logits(x, y)
    assert.is_true(close(m:item(), 5.281355857849121))
    m:backward()
    local g = x.grad:totable()
    for i = 1, 8 do assert.is_true(close(g[i], grad[i]), "grad " .. i .. ": " .. g[i]) end
  end)
  it("stays near float64 over a long run, NaN where a logit is NaN", function()
    mg.manual_seed(4)
    local x, y = mg.randn(3000) * 6, mg.rand(3000)
    local l32 = mg.F.binary_cross_entropy_with_logits(x, y, "none"):double()
    local l64 = mg.F.binary_cross_entropy_with_logits(x:double(), y:double(), "none")
    assert.is_true(((l32 - l64):abs() / (l64:abs() + 1e-3)):max():item() < 1e-5)
    local s32 = mg.F.binary_cross_entropy_with_logits(x, y, "sum"):item()
    local s64 = mg.F.binary_cross_entropy_with_logits(x:double(), y:double(), "sum"):item()
    assert.is_true(math.abs(s32 - s64) < 1e-5 * s64)
    local xn = x:clone()
    xn[7] = 0 / 0
    local ln = mg.F.binary_cross_entropy_with_logits(xn, y, "none"):totable()
    assert.is_true(ln[7] ~= ln[7] and ln[6] == ln[6])
  end)
end)
