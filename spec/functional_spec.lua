-- mg.F: the book's functions and the fused functional kernels (src/ops/loss.c): forward values
-- against PyTorch 1.13, gradients against finite differences (gradcheck, float64), reductions,
-- target checks and numerical stability.
-- Reference inputs (Python):
--   import torch, torch.nn.functional as F
--   x = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.8, -1.2]]); y = torch.tensor([[0.5, -1.0, 2.0], [0.0, 1.0, -1.0]])
--   yb = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.25]])
--   lg = torch.tensor([[1.0, 2.0, 0.5], [0.1, -0.3, 2.2]]); t = torch.tensor([1, 2])   # 0-based
local mg = require "moongrad"
local H = require "helper"
local F = mg.F

local X = {{1.0, -2.0, 0.5}, {0.3, 0.8, -1.2}}
local Y = {{0.5, -1.0, 2.0}, {0.0, 1.0, -1.0}}
local YB = {{1.0, 0.0, 0.5}, {0.0, 1.0, 0.25}}
local LG = {{1.0, 2.0, 0.5}, {0.1, -0.3, 2.2}}
local W = {{0.1, 0.2, 0.3}, {-0.5, 0.4, 0.0}, {1.0, -1.0, 2.0}, {0.0, 0.0, 1.0}}
local B = {0.5, -0.5, 0.0, 1.0}

local function target(list) return mg.tensor(list, {dtype = "int64"}) end
local function leaf64(data) return mg.tensor(data, {dtype = "float64", requires_grad = true}) end
local function randn64(...)
  return mg.randn({...}, {dtype = "float64"}):requires_grad_()
end

describe("mg.F", function()
  describe("the book's functions", function()
    local t_u = mg.tensor{1.0, 2.0, 3.0}
    local t_c = mg.tensor{1.0, 1.0, 1.0}

    it("model(t_u, w, b) = w * t_u + b with numbers", function()
      -- (2.0 * t_u + 0.5).tolist() -> [2.5, 4.5, 6.5]
      H.near({2.5, 4.5, 6.5}, F.model(t_u, 2, 0.5))
      assert.equal("float32", F.model(t_u, 2, 0.5).dtype)
    end)

    it("model is differentiable in t_u, w and b (0-d tensors)", function()
      -- wp = torch.tensor(2.0, requires_grad=True); bp = torch.tensor(0.5, requires_grad=True)
      -- loss = ((wp * t_u + bp - t_c)**2).mean(); loss.backward() -> 14.916667, dw 16.666668, db 7.0
      local w = mg.tensor(2.0, {requires_grad = true})
      local b = mg.tensor(0.5, {requires_grad = true})
      local loss = F.loss_fn(F.model(t_u, w, b), t_c)
      assert.near(14.916667, loss:item(), 1e-5)
      loss:backward()
      assert.near(16.666668, w.grad:item(), 1e-5)
      assert.near(7.0, b.grad:item(), 1e-6)
      assert.is_true(mg.autograd.gradcheck(function(u, ww, bb) return F.model(u, ww, bb) end,
        {randn64(5), leaf64(1.5), leaf64(-0.25)}))
    end)

    it("model takes params[1], params[2] of a tensor that requires grad", function()
      local params = mg.tensor({2.0, 0.5}, {requires_grad = true})
      F.loss_fn(F.model(t_u, params[1], params[2]), t_c):backward()
      H.near({16.666668, 7.0}, params.grad)
    end)

    it("model refuses a w with more than one element", function()
      H.errors(function() return F.model(t_u, mg.tensor{1, 2}, 0) end,
        "bad argument #2 to 'model' (w must be a number or a one-element tensor, got shape {2})")
      H.errors(function() return F.model(t_u, 1, "b") end, "bad argument #3 to 'model' (number or tensor expected")
    end)

    it("loss_fn is the mean squared error", function()
      -- ((torch.tensor([2.5, 4.5, 6.5]) - t_c)**2).mean() -> 14.916667
      assert.near(14.916667, F.loss_fn(mg.tensor{2.5, 4.5, 6.5}, t_c):item(), 1e-5)
    end)

    it("dloss_fn = 2 * (t_p - t_c), dmodel_dw = t_u, dmodel_db = 1.0", function()
      -- 2 * (torch.tensor([2.5, 4.5, 6.5]) - t_c) -> [3.0, 7.0, 11.0]
      H.near({3.0, 7.0, 11.0}, F.dloss_fn(mg.tensor{2.5, 4.5, 6.5}, t_c))
      assert.equal(t_u, F.dmodel_dw(t_u, 2, 0.5))
      assert.equal(1.0, F.dmodel_db(t_u, 2, 0.5))
      assert.equal("float", math.type(F.dmodel_db(t_u, 2, 0.5)))
    end)

    it("grad_fn gives the means of the hand-derived gradient", function()
      -- d = 2 * (t_p - t_c) / 3; torch.stack([(d * t_u).sum(), d.sum()]) -> [16.666666, 7.0]
      local t_p = F.model(t_u, 2, 0.5)
      local g = F.grad_fn(t_u, t_c, t_p, 2, 0.5)
      H.near({16.666666, 7.0}, g)
      assert.same({2}, g.shape)
    end)

    it("grad_fn works in float64 and on non-contiguous inputs", function()
      local u = mg.tensor({{1, 9}, {2, 9}, {3, 9}}, {dtype = "float64"}):select(2, 1)
      local g = F.grad_fn(u, t_c:double(), F.model(u, 2, 0.5), 2, 0.5)
      assert.equal("float64", g.dtype)
      H.near({16.666666666666668, 7.0}, g, 1e-12)
    end)

    it("grad_fn names a shape that does not match", function()
      H.errors(function() return F.grad_fn(t_u, mg.tensor{1, 2}, t_u, 1, 0) end,
        "bad argument #2 to 'grad_fn' (shape {2} does not match shape {3} of argument #1)")
    end)
  end)

  describe("mse_loss()", function()
    it("reduces by mean, sum or none", function()
      local x, y = mg.tensor(X), mg.tensor(Y)
      -- F.mse_loss(x, y) -> 0.61166662; reduction='sum' -> 3.67
      assert.near(0.6116666, F.mse_loss(x, y):item(), 1e-6)
      assert.near(3.67, F.mse_loss(x, y, "sum"):item(), 1e-6)
      assert.near(3.67, F.mse_loss(x, y, {reduction = "sum"}):item(), 1e-6)
      -- reduction='none' -> [[0.25, 1.0, 2.25], [0.09, 0.04, 0.04]]
      H.near({{0.25, 1.0, 2.25}, {0.09, 0.04, 0.04}}, F.mse_loss(x, y, "none"))
      H.near({{0.25, 1.0, 2.25}, {0.09, 0.04, 0.04}}, F.mse_loss(x, y, {reduction = "none"}))
      assert.same({}, F.mse_loss(x, y).shape)
    end)

    it("has PyTorch's gradients for both inputs", function()
      -- xg.grad -> [[0.16666667, -0.33333334, -0.5], [0.1, -0.06666666, -0.06666669]], yg.grad = -xg.grad
      local x, y = mg.tensor(X, {requires_grad = true}), mg.tensor(Y, {requires_grad = true})
      F.mse_loss(x, y):backward()
      local expected = {{0.16666667, -0.33333334, -0.5}, {0.1, -0.06666666, -0.06666669}}
      H.near(expected, x.grad)
      H.near(expected, (-y.grad))
    end)

    it("passes gradcheck for every reduction, with broadcasting and transposed inputs", function()
      for _, r in ipairs{"mean", "sum", "none"} do
        assert.is_true(mg.autograd.gradcheck(function(a, b) return F.mse_loss(a, b, r) end,
          {randn64(3, 4), randn64(3, 4)}))
        assert.is_true(mg.autograd.gradcheck(function(a, b) return F.mse_loss(a:t(), b, r) end,
          {randn64(4, 3), randn64(3, 1)}))
      end
    end)

    it("computes in float64 for float64 inputs", function()
      local l = F.mse_loss(mg.tensor(X, {dtype = "float64"}), mg.tensor(Y, {dtype = "float64"}))
      assert.equal("float64", l.dtype)
      assert.near(3.67 / 6, l:item(), 1e-12)
    end)

    it("names a bad reduction and a non-float input", function()
      local x = mg.tensor(X)
      H.errors(function() return F.mse_loss(x, x, "avg") end,
        "bad argument #3 to 'mse_loss' (unknown reduction 'avg', expected 'mean', 'sum' or 'none')")
      H.errors(function() return F.mse_loss(x, x, {reduce = "sum"}) end,
        "bad argument #3 to 'mse_loss' (unknown option 'reduce' (valid: reduction))")
      H.errors(function() return F.mse_loss(x, x, {reduction = 5}) end,
        "bad argument #3 to 'mse_loss' (reduction must be a string)")
      H.errors(function() return F.mse_loss(mg.tensor({1, 2}, {dtype = "int64"}), x) end,
        "bad argument #1 to 'mse_loss' (expected a float32 or float64 tensor, got int64)")
      H.errors(function() return F.mse_loss(mg.zeros(3, 2), mg.zeros(4)) end,
        "bad argument #2 to 'mse_loss' (shapes {3,2} and {4} cannot broadcast)")
    end)
  end)

  describe("l1_loss()", function()
    it("reduces by mean, sum or none", function()
      local x, y = mg.tensor(X), mg.tensor(Y)
      -- F.l1_loss(x, y) -> 0.61666667; 'sum' -> 3.7; 'none' -> [[0.5, 1.0, 1.5], [0.3, 0.2, 0.2]]
      assert.near(0.6166667, F.l1_loss(x, y):item(), 1e-6)
      assert.near(3.7, F.l1_loss(x, y, "sum"):item(), 1e-6)
      H.near({{0.5, 1.0, 1.5}, {0.3, 0.2, 0.2}}, F.l1_loss(x, y, "none"))
    end)

    it("passes gradcheck away from the kink", function()
      for _, r in ipairs{"mean", "sum", "none"} do
        assert.is_true(mg.autograd.gradcheck(function(a, b) return F.l1_loss(a, b, r) end,
          {leaf64(X), leaf64(Y)}))
      end
    end)
  end)

  describe("binary_cross_entropy_with_logits()", function()
    it("reduces by mean, sum or none", function()
      local x, y = mg.tensor(X), mg.tensor(YB)
      -- F.binary_cross_entropy_with_logits(x, yb) -> 0.49216756; 'sum' -> 2.9530053
      assert.near(0.49216756, F.binary_cross_entropy_with_logits(x, y):item(), 1e-6)
      assert.near(2.9530053, F.binary_cross_entropy_with_logits(x, y, "sum"):item(), 1e-6)
      -- 'none' -> [[0.31326166, 0.12692805, 0.72407699], [0.85435528, 0.37110063, 0.56328249]]
      H.near({{0.31326166, 0.12692805, 0.72407699}, {0.85435528, 0.37110063, 0.56328249}},
        F.binary_cross_entropy_with_logits(x, y, {reduction = "none"}))
    end)

    it("passes gradcheck in the input and the target", function()
      for _, r in ipairs{"mean", "sum", "none"} do
        assert.is_true(mg.autograd.gradcheck(function(a, b)
          return F.binary_cross_entropy_with_logits(a, b, r)
        end, {randn64(2, 3), leaf64(YB)}))
      end
    end)

    it("stays finite for logits of +-1000", function()
      -- bx = torch.tensor([1000.0, -1000.0, 0.0], requires_grad=True)
      -- F.binary_cross_entropy_with_logits(bx, torch.tensor([0.0, 1.0, 1.0])) -> 666.8977
      -- bx.grad -> [0.33333334, -0.33333334, -0.16666667]
      local x = mg.tensor({1000.0, -1000.0, 0.0}, {requires_grad = true})
      local l = F.binary_cross_entropy_with_logits(x, mg.tensor{0.0, 1.0, 1.0})
      assert.near(666.8977, l:item(), 1e-3)
      l:backward()
      H.near({0.33333334, -0.33333334, -0.16666667}, x.grad)
    end)

    it("needs a target of the input's shape", function()
      H.errors(function() return F.binary_cross_entropy_with_logits(mg.zeros(2, 3), mg.zeros(3)) end,
        "bad argument #2 to 'binary_cross_entropy_with_logits' (target shape {3} does not match input shape {2,3})")
    end)
  end)

  describe("cross_entropy()", function()
    it("reduces by mean, sum or none (targets are 1-based)", function()
      local lg = mg.tensor(LG)
      -- F.cross_entropy(lg, torch.tensor([1, 2])) -> 0.32523388; 'sum' -> 0.65046775
      -- 'none' -> [0.46436879, 0.18609895]
      assert.near(0.32523388, F.cross_entropy(lg, target{2, 3}):item(), 1e-6)
      assert.near(0.65046775, F.cross_entropy(lg, target{2, 3}, "sum"):item(), 1e-6)
      H.near({0.46436879, 0.18609895}, F.cross_entropy(lg, target{2, 3}, {reduction = "none"}))
      H.near({0.46436879, 0.18609895}, F.cross_entropy(lg, {2, 3}, "none"))
    end)

    it("takes one sample: logits {C} and a 0-d target", function()
      -- F.cross_entropy(torch.tensor([1.0, 2.0, 0.5]), torch.tensor(2)) -> 1.9643688
      assert.near(1.9643688, F.cross_entropy(mg.tensor{1.0, 2.0, 0.5}, 3):item(), 1e-6)
      assert.near(1.9643688, F.cross_entropy(mg.tensor{1.0, 2.0, 0.5}, mg.tensor(3, {dtype = "int64"})):item(), 1e-6)
    end)

    it("has PyTorch's gradient: softmax - onehot, over N", function()
      -- lgg.grad -> [[0.11561194, -0.18573415, 0.07012219], [0.05083113, 0.03407313, -0.08490428]]
      local lg = mg.tensor(LG, {requires_grad = true})
      F.cross_entropy(lg, target{2, 3}):backward()
      H.near({{0.11561194, -0.18573415, 0.07012219}, {0.05083113, 0.03407313, -0.08490428}}, lg.grad)
    end)

    -- The float32 kernel takes the exponentials of several short rows in one loop and a long row
    -- (over 128 classes) in pieces of 256: each shape against log-sum-exp written out in Lua.
    it("gives log-sum-exp losses and softmax - onehot gradients for short and long rows", function()
      mg.manual_seed(7)
      for _, shape in ipairs{{7, 3}, {5, 100}, {3, 129}, {3, 300}, {2, 600}} do
        local N, C = shape[1], shape[2]
        local x = (mg.randn(N, C) * 4):requires_grad_()
        local tg = {}
        for n = 1, N do tg[n] = (n * 37) % C + 1 end
        local loss = F.cross_entropy(x, target(tg), "none")
        loss:sum():backward()
        local rows, grads, losses = x:detach():double():totable(), x.grad:totable(), loss:detach():totable()
        for n = 1, N do
          local m, s = -math.huge, 0
          for c = 1, C do m = math.max(m, rows[n][c]) end
          for c = 1, C do s = s + math.exp(rows[n][c] - m) end
          local lse = m + math.log(s)
          assert.near(lse - rows[n][tg[n]], losses[n], 1e-5 * math.abs(lse) + 1e-6)
          for c = 1, C do
            local want = math.exp(rows[n][c] - lse) - (c == tg[n] and 1 or 0)
            assert.near(want, grads[n][c], 1e-6)
          end
        end
      end
    end)

    it("passes gradcheck for every reduction and on transposed logits", function()
      for _, r in ipairs{"mean", "sum", "none"} do
        assert.is_true(mg.autograd.gradcheck(function(a) return F.cross_entropy(a, target{2, 1, 4}, r) end,
          {randn64(3, 4)}))
        assert.is_true(mg.autograd.gradcheck(function(a) return F.cross_entropy(a:t(), target{2, 1, 4}, r) end,
          {randn64(4, 3)}))
      end
    end)

    it("stays finite for logits of +-1000", function()
      -- big = torch.tensor([[1000., -1000., 0.], [-1000., 1000., 0.]], requires_grad=True)
      -- F.cross_entropy(big, torch.tensor([0, 0])) -> 1000.0; big.grad -> [[0, 0, 0], [-0.5, 0.5, 0]]
      local big = mg.tensor({{1000, -1000, 0}, {-1000, 1000, 0}}, {requires_grad = true})
      local l = F.cross_entropy(big, target{1, 1})
      assert.near(1000.0, l:item(), 1e-4)
      l:backward()
      H.near({{0, 0, 0}, {-0.5, 0.5, 0}}, big.grad)
    end)

    it("names a target out of range, a float target and a target of the wrong length", function()
      local lg = mg.randn(4, 10)
      H.errors(function() return F.cross_entropy(lg, target{1, 11, 2, 3}) end,
        "bad argument #2 to 'cross_entropy' (target 11 out of range for 10 classes)")
      H.errors(function() return F.cross_entropy(lg, target{1, 0, 2, 3}) end,
        "bad argument #2 to 'cross_entropy' (target 0 out of range for 10 classes (classes count from 1: add 1 to 0-based labels))")
      H.errors(function() return F.cross_entropy(lg, mg.tensor{1, 2, 3, 4}) end,
        "bad argument #2 to 'cross_entropy' (target must be an int64 tensor of class indices, got float32)")
      H.errors(function() return F.cross_entropy(lg, target{1, 2}) end,
        "bad argument #2 to 'cross_entropy' (target shape {2} does not match logits shape {4,10} (expected {N}))")
      H.errors(function() return F.cross_entropy(lg, {1, 2.5, 3, 4}) end,
        "bad argument #2 to 'cross_entropy' (target[2] is 2.5, expected an integer class index)")
      H.errors(function() return F.cross_entropy(mg.zeros(2, 3, 4), target{1, 2}) end,
        "bad argument #1 to 'cross_entropy' (logits must be {N,C} or {C}, got shape {2,3,4})")
    end)
  end)

  describe("softmax() and log_softmax()", function()
    it("normalize along the given dim", function()
      local x = mg.tensor(X)
      -- F.softmax(x, 1) -> [[0.60374892, 0.03005889, 0.36619222], [0.34820741, 0.57409698, 0.07769558]]
      H.near({{0.60374892, 0.03005889, 0.36619222}, {0.34820741, 0.57409698, 0.07769558}}, F.softmax(x, 2))
      H.near({{0.60374892, 0.03005889, 0.36619222}, {0.34820741, 0.57409698, 0.07769558}}, F.softmax(x, -1))
      -- F.softmax(x, 0) -> [[0.66818774, 0.05732418, 0.8455348], [0.3318122, 0.94267583, 0.15446526]]
      H.near({{0.66818774, 0.05732418, 0.8455348}, {0.3318122, 0.94267583, 0.15446526}}, F.softmax(x, 1))
      -- F.log_softmax(x, 1) -> [[-0.50459689, -3.50459695, -1.00459695], [-1.05495691, -0.55495697, -2.55495691]]
      H.near({{-0.50459689, -3.50459695, -1.00459695}, {-1.05495691, -0.55495697, -2.55495691}},
        F.log_softmax(x, 2))
      -- F.log_softmax(x, 0) -> [[-0.40318608, -2.85903287, -0.16778599], [-1.10318613, -0.05903285, -1.86778605]]
      H.near({{-0.40318608, -2.85903287, -0.16778599}, {-1.10318613, -0.05903285, -1.86778605}},
        F.log_softmax(x, 1))
    end)

    it("pass gradcheck along each dim of a 3-D input", function()
      for dim = 1, 3 do
        assert.is_true(mg.autograd.gradcheck(function(a) return F.softmax(a, dim) end, {randn64(2, 3, 4)}))
        assert.is_true(mg.autograd.gradcheck(function(a) return F.log_softmax(a, dim) end, {randn64(2, 3, 4)}))
      end
      assert.is_true(mg.autograd.gradcheck(function(a) return F.log_softmax(a:t(), 2) end, {randn64(4, 3)}))
    end)

    it("are stable for +-1000", function()
      -- F.softmax(sx, 0) -> [1.0, 0.0, 0.0]; F.log_softmax(sx, 0) -> [0.0, -2000.0, -1000.0]
      local x = mg.tensor{1000, -1000, 0}
      H.near({1, 0, 0}, F.softmax(x, 1))
      H.near({0, -2000, -1000}, F.log_softmax(x, 1))
    end)

    it("name a missing or bad dim", function()
      H.errors(function() return F.softmax(mg.zeros(2, 3)) end, "bad argument #2 to 'softmax' (dim expected")
      H.errors(function() return F.log_softmax(mg.zeros(2, 3), 3) end, "bad argument #2 to 'log_softmax'")
    end)
  end)

  describe("linear()", function()
    it("computes x W^T + b for 2-D and 1-D inputs, with and without bias", function()
      local x, w, b = mg.tensor(X), mg.tensor(W), mg.tensor(B)
      -- F.linear(x, w, b) -> [[0.35, -1.8, 4.0, 1.5], [0.33, -0.33, -2.9, -0.2]]
      H.near({{0.35, -1.8, 4.0, 1.5}, {0.33, -0.33, -2.9, -0.2}}, F.linear(x, w, b))
      -- F.linear(x, w) -> [[-0.15, -1.3, 4.0, 0.5], [-0.17, 0.17, -2.9, -1.2]]
      H.near({{-0.15, -1.3, 4.0, 0.5}, {-0.17, 0.17, -2.9, -1.2}}, F.linear(x, w))
      -- F.linear(torch.tensor([1.0, -2.0, 0.5]), w, b) -> [0.35, -1.8, 4.0, 1.5]
      H.near({0.35, -1.8, 4.0, 1.5}, F.linear(mg.tensor{1.0, -2.0, 0.5}, w, b))
    end)

    it("passes gradcheck in x, weight and bias (2-D, 1-D, 3-D, transposed weight)", function()
      assert.is_true(mg.autograd.gradcheck(F.linear, {randn64(5, 3), randn64(4, 3), randn64(4)}))
      assert.is_true(mg.autograd.gradcheck(F.linear, {randn64(3), randn64(4, 3), randn64(4)}))
      assert.is_true(mg.autograd.gradcheck(F.linear, {randn64(2, 5, 3), randn64(4, 3)}))
      assert.is_true(mg.autograd.gradcheck(function(x, w) return F.linear(x, w:t()) end,
        {randn64(5, 3), randn64(3, 4)}))
    end)

    it("names shapes and dtypes that do not fit", function()
      H.errors(function() return F.linear(mg.zeros(2, 5), mg.zeros(4, 3)) end,
        "bad argument #1 to 'linear' (input shape {2,5} does not fit weight shape {4,3} (in_features 3))")
      H.errors(function() return F.linear(mg.zeros(2, 3), mg.zeros(4, 3), mg.zeros(3)) end,
        "bad argument #3 to 'linear' (bias must have shape {4}, got {3})")
      H.errors(function() return F.linear(mg.zeros(2, 3), mg.zeros(4, 3, {dtype = "float64"})) end,
        "bad argument #2 to 'linear' (weight is float64 but input is float32)")
    end)
  end)

  describe("relu(), tanh(), sigmoid()", function()
    it("match the tensor methods", function()
      local x = mg.tensor{-1.0, 0.5, 2.0}
      -- F.relu(x) -> [0, 0.5, 2]; torch.tanh(x) -> [-0.76159418, 0.46211717, 0.96402758]
      -- torch.sigmoid(x) -> [0.26894143, 0.62245935, 0.88079709]
      H.near({0, 0.5, 2}, F.relu(x))
      H.near({-0.76159418, 0.46211717, 0.96402758}, F.tanh(x))
      H.near({0.26894143, 0.62245935, 0.88079709}, F.sigmoid(x))
    end)

    it("pass gradcheck (away from relu's kink)", function()
      assert.is_true(mg.autograd.gradcheck(F.relu, {leaf64{-1.0, 0.5, 2.0, -0.3}}))
      assert.is_true(mg.autograd.gradcheck(F.tanh, {randn64(5)}))
      assert.is_true(mg.autograd.gradcheck(F.sigmoid, {randn64(5)}))
    end)
  end)

  describe("dropout()", function()
    it("zeroes elements with probability p and scales the rest by 1/(1-p)", function()
      mg.manual_seed(1)
      local x = mg.ones(1000)
      local y = F.dropout(x, 0.25, true)
      local kept = 0
      for _, v in ipairs(y:totable()) do
        assert.is_true(v == 0 or math.abs(v - 1 / 0.75) < 1e-6)
        if v ~= 0 then kept = kept + 1 end
      end
      assert.is_true(kept > 700 and kept < 800, "kept " .. kept)
    end)

    it("is reproducible from the seed", function()
      mg.manual_seed(7)
      local a = F.dropout(mg.ones(50), 0.5, true)
      mg.manual_seed(7)
      local b = F.dropout(mg.ones(50), 0.5, true)
      assert.same(a:totable(), b:totable())
    end)

    it("is the identity when not training or p = 0, and zero for p = 1", function()
      local x = mg.tensor{1, 2, 3}
      assert.equal(x, F.dropout(x, 0.5, false))
      assert.equal(x, F.dropout(x, 0, true))
      assert.same({0, 0, 0}, F.dropout(x, 1, true):totable())
    end)

    it("passes its mask to the gradient (gradcheck with a fixed seed)", function()
      local x = randn64(20)
      assert.is_true(mg.autograd.gradcheck(function(a)
        mg.manual_seed(3)
        return F.dropout(a, 0.3, true)
      end, {x}))
      mg.manual_seed(3)
      local y = F.dropout(x, 0.3, true)
      y:sum():backward()
      local yv = y:detach():totable()
      for i, v in ipairs(x.grad:totable()) do
        assert.near(yv[i] == 0 and 0 or 1 / 0.7, v, 1e-12)
      end
    end)

    it("names a bad probability", function()
      H.errors(function() return F.dropout(mg.ones(3), 1.5) end,
        "bad argument #2 to 'dropout' (dropout probability has to be between 0 and 1, but got 1.5")
    end)
  end)
end)

describe("float32 softmax and log_softmax along the last dim (the row kernels)", function()
  -- src/ops/functional.c softmax_rows_f32: vmath's float exp, sums in double over 16 interleaved
  -- partials, the max on integer keys. Rows shorter than, equal to and past 16 elements.
  local function ulps(a, b) return math.abs(a - b) / math.max(math.abs(b), 1e-30) end
  it("gives PyTorch's values to float32 precision", function()
    -- torch.softmax / log_softmax(torch.tensor([[1., 2., 3.], [0., -inf, 1.]]), 1)
    local x = mg.tensor({ { 1, 2, 3 }, { 0, -math.huge, 1 } })
    local want = { { 0.09003057330846786, 0.2447284758090973, 0.6652409434318542 },
      { 0.2689414322376251, 0.0, 0.7310585975646973 } }
    local wantl = { { -2.4076058864593506, -1.4076058864593506, -0.40760594606399536 },
      { -1.31326162815094, -math.huge, -0.31326165795326233 } }
    local y, l = mg.F.softmax(x, 2):totable(), mg.F.log_softmax(x, 2):totable()
    for r = 1, 2 do
      for c = 1, 3 do
        assert.is_true(ulps(y[r][c], want[r][c]) < 3e-7 or y[r][c] == want[r][c], y[r][c])
        assert.is_true(ulps(l[r][c], wantl[r][c]) < 3e-7 or l[r][c] == wantl[r][c], l[r][c])
      end
    end
    -- torch.softmax(torch.arange(20.).view(1, 20) * 0.37 - 3, 1)[0, [0, 7, 16, 19]]
    local z = mg.F.softmax((mg.arange(0, 20) * 0.37 - 3):view(1, 20), 2):totable()[1]
    local w20 = { [1] = 0.00027384638087823987, [8] = 0.003650310216471553, [17] = 0.10198360681533813,
      [20] = 0.30945485830307007 }
    for i, v in pairs(w20) do assert.is_true(ulps(z[i], v) < 3e-7, i) end
  end)

  for _, n in ipairs({ 1, 5, 16, 17, 131, 256 }) do
    it(string.format("rows of %d: near the float64 result, rows summing to 1, gradients near float64's", n), function()
      mg.manual_seed(n)
      local x = mg.randn(7, n) * 5
      for _, fn in ipairs({ "softmax", "log_softmax" }) do
        local x32 = x:clone():requires_grad_()
        local x64 = x:double():requires_grad_()
        local y32, y64 = mg.F[fn](x32, 2), mg.F[fn](x64, 2)
        -- x - max rounded to float32 (as PyTorch's float kernels round it) carries up to
        -- |x - max| 2^-24 into e^(x - max): logits of spread ~40 here, so ~3e-6 relative
        local err = ((y32:double() - y64):abs() / (y64:abs() + 1e-30)):max():item()
        assert.is_true(err < 4e-6, fn .. " rel err " .. err)
        local g = mg.randn(7, n)
        y32:backward(g)
        y64:backward(g:double())
        local gerr = (x32.grad:double() - x64.grad):abs():max():item()
        assert.is_true(gerr < 1e-5 * (x64.grad:abs():max():item() + 1), fn .. " grad err " .. gerr)
      end
      local s = mg.F.softmax(x, 2):double():sum(2)
      assert.is_true((s - 1):abs():max():item() < 1e-6)
    end)
  end

  it("propagates NaN to its row only, and gives NaN for a row of -inf (as PyTorch)", function()
    local x = mg.tensor({ { 1, 0 / 0, 2, 3 }, { 1, 2, 3, 4 }, { -math.huge, -math.huge, -math.huge, -math.huge } })
    for _, fn in ipairs({ "softmax", "log_softmax" }) do
      local y = mg.F[fn](x, 2):totable()
      for c = 1, 4 do
        assert.is_true(y[1][c] ~= y[1][c], fn .. " NaN row")
        assert.is_true(y[3][c] ~= y[3][c], fn .. " -inf row")
        assert.is_true(y[2][c] == y[2][c] and math.abs(y[2][c]) < math.huge, fn .. " the row without NaN")
      end
    end
  end)

  it("is stable for large logits (the max is taken out first)", function()
    local y = mg.F.softmax(mg.tensor({ { 1e30, 1e30, -1e30 }, { 3e38, 0, 0 } }), 2):totable()
    assert.same({ { 0.5, 0.5, 0 }, { 1, 0, 0 } }, y)
  end)
end)
