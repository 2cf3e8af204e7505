-- Autograd of matrix products: matmul in every torch.matmul form (1-D . 1-D, 1-D . 2-D,
-- 2-D . 1-D, 2-D . 2-D, batched, with broadcast batch dims), mm, bmm, dot and outer.
-- Each form is gradchecked against central differences in float64, on contiguous operands and on
-- views made inside fn; a few gradients are compared with PyTorch 1.13's (the Python is in a
-- comment next to each).
local mg = require "moongrad"
local H = require "helper"

local gradcheck = mg.autograd.gradcheck

local leaf = H.leaf

local function matmul(a, b) return a:matmul(b) end

local function f64(t, grad)
  return mg.tensor(t, {dtype = "float64", requires_grad = grad})
end

describe("autograd of matrix products", function()
  before_each(function() mg.manual_seed(11) end)

  describe("gradcheck of matmul", function()
    local forms = {
      {"1-D . 1-D", {4}, {4}},
      {"1-D . 2-D", {4}, {4, 3}},
      {"2-D . 1-D", {2, 4}, {4}},
      {"2-D . 2-D", {2, 4}, {4, 3}},
      {"3-D . 3-D", {2, 3, 4}, {2, 4, 3}},
      {"1-D . 3-D", {4}, {2, 4, 3}},
      {"3-D . 1-D", {2, 3, 4}, {4}},
      {"2-D . 3-D (a broadcast over the batch)", {3, 4}, {2, 4, 2}},
      {"3-D . 2-D (b broadcast over the batch)", {2, 3, 4}, {4, 2}},
      {"size-1 batch dims stretched on both sides", {2, 1, 3, 4}, {1, 5, 4, 2}},
      {"batch dims of different lengths", {2, 1, 3, 4}, {5, 4, 2}},
      {"4-D . 1-D", {2, 2, 3, 4}, {4}},
      {"an empty inner dim", {2, 0}, {0, 3}},
      {"sizes past the gemm's micro-tile", {13, 17}, {17, 9}},
    }
    for _, f in ipairs(forms) do
      it(f[1], function()
        assert.is_true(gradcheck(matmul, {leaf(f[2]), leaf(f[3])}))
      end)
    end

    it("with only one operand requiring grad", function()
      local a, b = leaf{3, 4}, mg.randn({4, 2}, {dtype = "float64"})
      assert.is_true(gradcheck(matmul, {a, b}))
      assert.is_true(gradcheck(function(x, y) return y:t():matmul(x:t()) end, {a, b}))
    end)

    it("on transposed operands", function()
      assert.is_true(gradcheck(function(a, b) return a:t():matmul(b:t()) end, {leaf{4, 2}, leaf{3, 4}}))
      assert.is_true(gradcheck(function(a, b)
        return a:transpose(2, 3):matmul(b)
      end, {leaf{2, 4, 3}, leaf{2, 4, 5}}))
    end)

    it("on expanded operands", function()
      assert.is_true(gradcheck(function(a, b) return a:expand(3, 2, 4):matmul(b) end,
        {leaf{2, 4}, leaf{3, 4, 3}}))
      assert.is_true(gradcheck(function(a, b) return a:matmul(b:expand(4, 3)) end,
        {leaf{2, 4}, leaf{1, 3}}))
    end)

    it("on narrowed operands", function()
      assert.is_true(gradcheck(function(a, b)
        return a:narrow(2, 2, 3):matmul(b:narrow(1, 1, 3))
      end, {leaf{2, 5}, leaf{4, 3}}))
      assert.is_true(gradcheck(function(a, b)
        return a:narrow(1, 2, 1):matmul(b)
      end, {leaf{3, 2, 4}, leaf{4}}))
    end)

    it("the same tensor on both sides", function()
      assert.is_true(gradcheck(function(a) return a:matmul(a:t()) end, {leaf{3, 4}}))
      assert.is_true(gradcheck(function(a) return a:dot(a) end, {leaf{5}}))
    end)

    it("inside a longer computation", function()
      assert.is_true(gradcheck(function(x, w, b)
        return (x:matmul(w:t()) + b):tanh():matmul(w):sum()
      end, {leaf{5, 3}, leaf{4, 3}, leaf{4}}))
    end)
  end)

  describe("gradcheck of mm, bmm, dot and outer", function()
    it("mm", function()
      assert.is_true(gradcheck(mg.mm, {leaf{2, 4}, leaf{4, 3}}))
      assert.is_true(gradcheck(function(a, b) return a:t():mm(b) end, {leaf{4, 2}, leaf{4, 3}}))
    end)
    it("bmm", function()
      assert.is_true(gradcheck(mg.bmm, {leaf{3, 2, 4}, leaf{3, 4, 2}}))
      assert.is_true(gradcheck(function(a, b)
        return a:bmm(b:expand(3, 4, 2))
      end, {leaf{3, 2, 4}, leaf{1, 4, 2}}))
    end)
    it("dot", function()
      assert.is_true(gradcheck(mg.dot, {leaf{6}, leaf{6}}))
      assert.is_true(gradcheck(function(a, b) return a:narrow(1, 2, 3):dot(b) end, {leaf{5}, leaf{3}}))
    end)
    it("outer", function()
      assert.is_true(gradcheck(mg.outer, {leaf{4}, leaf{3}}))
      assert.is_true(gradcheck(function(a, b) return a:select(1, 2):outer(b) end, {leaf{2, 3}, leaf{5}}))
    end)
  end)

  describe("gradients against PyTorch", function()
    it("2-D . 2-D", function()
      -- A = torch.tensor([[1.,2.,3.],[4.,5.,6.]], dtype=torch.float64, requires_grad=True)
      -- B = torch.tensor([[0.5,-1.],[2.,0.25],[-1.5,1.]], dtype=torch.float64, requires_grad=True)
      -- W = torch.tensor([[1.,-2.],[3.,0.5]], dtype=torch.float64)
      -- ((A @ B) * W).sum().backward(); A.grad.tolist(), B.grad.tolist()
      local A = f64({{1, 2, 3}, {4, 5, 6}}, true)
      local B = f64({{0.5, -1}, {2, 0.25}, {-1.5, 1}}, true)
      local W = f64{{1, -2}, {3, 0.5}}
      local loss = (A:matmul(B) * W):sum()
      loss:backward()
      H.near({{2.5, 1.5, -3.5}, {1.0, 6.125, -4.0}}, A.grad, 1e-12)
      H.near({{13.0, 0.0}, {17.0, -1.5}, {21.0, -3.0}}, B.grad, 1e-12)
    end)

    it("a batch times a matrix: the matrix's gradient is summed over the batch", function()
      -- A = torch.tensor([[[1.,2.],[3.,4.]],[[-1.,0.5],[2.,-3.]]], dtype=torch.float64, requires_grad=True)
      -- B = torch.tensor([[0.5,-1.,2.],[1.5,0.25,-0.5]], dtype=torch.float64, requires_grad=True)
      -- (A @ B).sum().backward(); A.grad.tolist(), B.grad.tolist()
      local A = f64({{{1, 2}, {3, 4}}, {{-1, 0.5}, {2, -3}}}, true)
      local B = f64({{0.5, -1, 2}, {1.5, 0.25, -0.5}}, true)
      A:matmul(B):sum():backward()
      H.near({{{1.5, 1.25}, {1.5, 1.25}}, {{1.5, 1.25}, {1.5, 1.25}}}, A.grad, 1e-12)
      H.near({{5.0, 5.0, 5.0}, {3.5, 3.5, 3.5}}, B.grad, 1e-12)
    end)

    it("1-D . 2-D", function()
      -- v = torch.tensor([1.,-2.,3.], dtype=torch.float64, requires_grad=True)
      -- M = torch.tensor([[1.,2.],[3.,4.],[5.,6.]], dtype=torch.float64, requires_grad=True)
      -- (v @ M).sum().backward(); v.grad.tolist(), M.grad.tolist()
      local v = f64({1, -2, 3}, true)
      local M = f64({{1, 2}, {3, 4}, {5, 6}}, true)
      v:matmul(M):sum():backward()
      H.near({3.0, 7.0, 11.0}, v.grad, 1e-12)
      H.near({{1, 1}, {-2, -2}, {3, 3}}, M.grad, 1e-12)
    end)

    it("outer", function()
      -- a = torch.tensor([1.,2.,3.], dtype=torch.float64, requires_grad=True)
      -- b = torch.tensor([-1.,0.5], dtype=torch.float64, requires_grad=True)
      -- (torch.outer(a, b) * torch.tensor([[1.,2.],[3.,4.],[5.,6.]], dtype=torch.float64)).sum().backward()
      local a, b = f64({1, 2, 3}, true), f64({-1, 0.5}, true)
      local loss = (a:outer(b) * f64{{1, 2}, {3, 4}, {5, 6}}):sum()
      loss:backward()
      H.near({0.0, -1.0, -2.0}, a.grad, 1e-12)
      H.near({22.0, 28.0}, b.grad, 1e-12)
    end)

    it("dot", function()
      -- a = torch.tensor([1.,2.,3.], ...); b = torch.tensor([-1.,0.5,2.], ...)
      -- torch.dot(a, b).backward(); a.grad.tolist(), b.grad.tolist()
      local a, b = f64({1, 2, 3}, true), f64({-1, 0.5, 2}, true)
      a:dot(b):backward()
      H.near({-1.0, 0.5, 2.0}, a.grad, 1e-12)
      H.near({1.0, 2.0, 3.0}, b.grad, 1e-12)
    end)
  end)

  describe("dtypes", function()
    it("float32 operands get float32 gradients", function()
      -- same A, B as "2-D . 2-D" above in float32: (A @ B).sum().backward()
      local A = mg.tensor({{1, 2, 3}, {4, 5, 6}}, {requires_grad = true})
      local B = mg.tensor({{0.5, -1}, {2, 0.25}, {-1.5, 1}}, {requires_grad = true})
      A:matmul(B):sum():backward()
      assert.equal("float32", A.grad.dtype)
      assert.equal("float32", B.grad.dtype)
      H.near({{-0.5, 2.25, -0.5}, {-0.5, 2.25, -0.5}}, A.grad)
      H.near({{5, 5}, {7, 7}, {9, 9}}, B.grad)
    end)

    it("a float32 operand times a float64 one: each gradient keeps its operand's dtype", function()
      local A = mg.tensor({{1, 2, 3}, {4, 5, 6}}, {requires_grad = true})
      local B = f64({{0.5, -1}, {2, 0.25}, {-1.5, 1}}, true)
      local C = A:matmul(B)
      assert.equal("float64", C.dtype)
      C:sum():backward()
      assert.equal("float32", A.grad.dtype)
      assert.equal("float64", B.grad.dtype)
      H.near({{-0.5, 2.25, -0.5}, {-0.5, 2.25, -0.5}}, A.grad)
      H.near({{5, 5}, {7, 7}, {9, 9}}, B.grad, 1e-12)
    end)

    it("an int64 operand gets no gradient, the float one does", function()
      local A = mg.tensor({{1, 2, 3}, {4, 5, 6}}, {dtype = "int64"})
      local B = f64({{0.5, -1}, {2, 0.25}, {-1.5, 1}}, true)
      A:matmul(B):sum():backward()
      assert.is_nil(A.grad)
      H.near({{5, 5}, {7, 7}, {9, 9}}, B.grad, 1e-12)
    end)
  end)

  describe("recording", function()
    it("gives a non-leaf result that requires grad", function()
      local a, b = mg.ones({2, 3}, {requires_grad = true}), mg.ones(3, 2)
      for _, c in ipairs{a:matmul(b), a:mm(b), a[1]:outer(mg.ones(2)),
                         a:view(1, 2, 3):bmm(b:view(1, 3, 2)), a[1]:dot(b:t()[1])} do
        assert.is_true(c.requires_grad)
        assert.is_false(c.is_leaf)
        assert.is_not_nil(c.grad_fn)
      end
    end)

    it("records nothing when no operand requires grad", function()
      local a, b = mg.ones(2, 3), mg.ones(3, 2)
      for _, c in ipairs{a:matmul(b), a:mm(b), mg.ones(2):outer(mg.ones(3)), mg.ones(3):dot(mg.ones(3))} do
        assert.is_nil(c.grad_fn)
        assert.is_false(c.requires_grad)
        assert.is_true(c.is_leaf)
      end
    end)

    it("records nothing inside no_grad", function()
      local a = mg.ones({2, 3}, {requires_grad = true})
      local c = mg.no_grad(function() return a:matmul(mg.ones(3)) end)
      assert.is_nil(c.grad_fn)
      assert.is_false(c.requires_grad)
    end)

    it("refuses a backward after an operand was changed in place", function()
      local a = mg.ones({2, 3}, {requires_grad = true})
      local b = mg.ones(3, 2)
      local c = a:matmul(b):sum()
      b:mul_(2)
      H.errors(function() c:backward() end, "was changed in place after it was used")
    end)
  end)
end)
