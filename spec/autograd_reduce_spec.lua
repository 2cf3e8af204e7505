-- Autograd through the reductions: sum prod mean max min var std norm cumsum. Every rule is checked
-- against central differences (mg.autograd.gradcheck) over all elements, one dim (keepdim or not)
-- and a list of dims, on contiguous and non-contiguous inputs; the special points (ties, zeros,
-- a norm at 0) are checked against PyTorch 1.13's gradients (the Python expression in a comment,
-- with g(f, x) = x.grad after f(torch.tensor(x, dtype=torch.float64, requires_grad=True)).backward()).
local mg = require "moongrad"
local H = require "helper"

local gradcheck = mg.autograd.gradcheck

local leaf = H.leaf

-- d(f(x))/dx for a leaf x made from `data` (float64)
local function grad_of(f, data)
  local x = mg.tensor(data, {dtype = "float64", requires_grad = true})
  f(x):backward()
  return x.grad
end

-- The ways a reduction `name` is called: all elements, each dim with and without keepdim (negative
-- too), and a list of dims when the op takes one; `extra` is appended (norm's p goes first).
local function variants(lists)
  local v = {
    {}, {1}, {2}, {3}, {2, true}, {-1, false}, {1, true},
  }
  if lists then
    v[#v + 1] = {{1, 3}}
    v[#v + 1] = {{3, 1}, true}
    v[#v + 1] = {{}}
  end
  return v
end

describe("autograd of reductions", function()
  before_each(function() mg.manual_seed(7) end)

  local cases = {
    {"sum", true}, {"mean", true}, {"prod", true}, {"var", true}, {"std", true},
  }
  for _, c in ipairs(cases) do
    local name, lists = c[1], c[2]
    it(name .. " over all elements, a dim (keepdim or not) and lists of dims", function()
      for _, args in ipairs(variants(lists)) do
        local x = leaf({2, 3, 4})
        assert.is_true(gradcheck(function(t) return t[name](t, table.unpack(args, 1, 2)) end, {x}))
      end
    end)
    it(name .. " of non-contiguous inputs made inside fn", function()
      local x = leaf({4, 3})
      assert.is_true(gradcheck(function(t) return t:t()[name](t:t(), 2) end, {x}))
      assert.is_true(gradcheck(function(t) return t:narrow(2, 2, 2)[name](t:narrow(2, 2, 2)) end, {x}))
      local y = leaf({3, 1})
      assert.is_true(gradcheck(function(t) local e = t:expand(3, 5); return e[name](e, 2, true) end, {y}))
    end)
  end

  it("var and std with unbiased = false", function()
    local x = leaf({3, 4})
    assert.is_true(gradcheck(function(t) return t:var(2, {unbiased = false}) end, {x}))
    assert.is_true(gradcheck(function(t) return t:std({1, 2}, true, {unbiased = false}) end, {x}))
  end)

  it("max and min over all elements and over a dim", function()
    for _, name in ipairs({"max", "min"}) do
      local x = leaf({3, 4})
      assert.is_true(gradcheck(function(t) return t[name](t) end, {x}))
      for _, args in ipairs({{1}, {2}, {-1, true}, {1, false}}) do
        assert.is_true(gradcheck(function(t) return (t[name](t, table.unpack(args))) end, {x}))
      end
      -- transposed inside fn: the saved indices address the view
      assert.is_true(gradcheck(function(t) return (t:t()[name](t:t(), 2)) end, {x}))
    end
  end)

  it("max and min: the indices output carries no gradient, the values do", function()
    local x = mg.tensor({{1, 5, 2}, {7, 0, 3}}, {dtype = "float64", requires_grad = true})
    local v, i = x:max(2)
    assert.is_false(i.requires_grad)
    v:sum():backward()
    H.near({{0, 1, 0}, {1, 0, 0}}, x.grad)
  end)

  it("norm for p = 2 (default, 'fro'), 1, 3, 0.5, inf, -inf and 0", function()
    local x = leaf({3, 4})
    for _, p in ipairs({2, "fro", 1, 3, 0.5, 1.5, math.huge, -math.huge}) do
      assert.is_true(gradcheck(function(t) return t:norm(p) end, {x}))
      assert.is_true(gradcheck(function(t) return t:norm(p, 2) end, {x}))
      assert.is_true(gradcheck(function(t) return t:norm(p, 1, true) end, {x}))
      assert.is_true(gradcheck(function(t) return t:t():norm(p, {1, 2}) end, {x}))
    end
    -- p = 0 counts nonzeros: gradient 0
    H.near({0, 0, 0}, grad_of(function(t) return t:norm(0) end, {1, -2, 0}))
  end)

  it("cumsum along each dim, also of non-contiguous inputs", function()
    local x = leaf({3, 4})
    assert.is_true(gradcheck(function(t) return t:cumsum(1) end, {x}))
    assert.is_true(gradcheck(function(t) return t:cumsum(2) end, {x}))
    assert.is_true(gradcheck(function(t) return t:cumsum(-1) end, {x}))
    assert.is_true(gradcheck(function(t) return t:t():cumsum(2) end, {x}))
    local v = leaf({5})
    assert.is_true(gradcheck(function(t) return t:cumsum(1) end, {v}))
    -- g(lambda x: (x.cumsum(0) * torch.tensor([1., 2, 3], dtype=torch.float64)).sum(), [1., 1, 1])
    H.near({6, 5, 3}, grad_of(function(t) return (t:cumsum(1) * mg.tensor({1, 2, 3}, {dtype = "float64"})):sum() end,
      {1, 1, 1}), 1e-12)
  end)

  it("a float32 chain reaches a float64 leaf converted inside fn", function()
    local x = leaf({2, 3})
    -- float32 rounding: finite differences need a wide step
    assert.is_true(gradcheck(function(t) return t:float():sum(2):double() end, {x}, {eps = 1e-2, atol = 1e-4}))
    assert.is_true(gradcheck(function(t) return t:float():double():prod(1) end, {x}, {eps = 1e-2, atol = 1e-4}))
  end)
end)

describe("reduction gradients match PyTorch at special points", function()
  it("max() and min() share the gradient evenly among tied elements", function()
    -- g(lambda x: x.max(), [[1., 3, 3], [0, 3, 2]])
    H.near({{0, 1 / 3, 1 / 3}, {0, 1 / 3, 0}}, grad_of(function(t) return t:max() end, {{1, 3, 3}, {0, 3, 2}}),
      1e-12)
    -- g(lambda x: x.min(), [1., 0, 0, 2])
    H.near({0, 0.5, 0.5, 0}, grad_of(function(t) return t:min() end, {1, 0, 0, 2}), 1e-12)
  end)

  it("max(dim) sends the gradient to the first maximum only (its index)", function()
    -- g(lambda x: x.max(1)[0].sum(), [[1., 3, 3], [0, 3, 2]])
    H.near({{0, 1, 0}, {0, 1, 0}}, grad_of(function(t) return (t:max(2)):sum() end, {{1, 3, 3}, {0, 3, 2}}))
  end)

  it("max() of a tensor with a NaN sends the gradient to the NaN", function()
    -- g(lambda x: x.max(), [1., float('nan'), 2])
    H.near({0, 1, 0}, grad_of(function(t) return t:max() end, {1, 0 / 0, 2}))
  end)

  it("prod with one zero, two zeros, and per dim", function()
    -- g(lambda x: x.prod(), [2., 0, 3])
    H.near({0, 6, 0}, grad_of(function(t) return t:prod() end, {2, 0, 3}))
    -- g(lambda x: x.prod(), [2., 0, 0])
    H.near({0, 0, 0}, grad_of(function(t) return t:prod() end, {2, 0, 0}))
    -- g(lambda x: x.prod(1).sum(), [[2., 0, 3], [1, 2, 3], [0, 5, 0]])
    H.near({{0, 6, 0}, {6, 3, 2}, {0, 0, 0}},
      grad_of(function(t) return t:prod(2):sum() end, {{2, 0, 3}, {1, 2, 3}, {0, 5, 0}}))
  end)

  it("norm at 0 has gradient 0 (PyTorch's masked subgradient), for p = 2, 3, 0.5 and 1", function()
    -- g(lambda x: x.norm(), [0., 0, 0])
    H.near({0, 0, 0}, grad_of(function(t) return t:norm() end, {0, 0, 0}))
    -- g(lambda x: x.norm(dim=1).sum(), [[0., 0], [3, 4]])
    H.near({{0, 0}, {0.6, 0.8}}, grad_of(function(t) return t:norm(2, 2):sum() end, {{0, 0}, {3, 4}}), 1e-12)
    -- g(lambda x: x.norm(p=3), [0., 0])
    H.near({0, 0}, grad_of(function(t) return t:norm(3) end, {0, 0}))
    -- g(lambda x: x.norm(p=0.5), [0., 1, 4])
    H.near({0, 3, 1.5}, grad_of(function(t) return t:norm(0.5) end, {0, 1, 4}), 1e-12)
    -- g(lambda x: x.norm(p=1), [0., -2, 1])
    H.near({0, -1, 1}, grad_of(function(t) return t:norm(1) end, {0, -2, 1}))
  end)

  it("the inf-norm shares the gradient among the elements of largest magnitude, with their signs", function()
    -- g(lambda x: x.norm(p=float('inf')), [-3., 3, 1])
    H.near({-0.5, 0.5, 0}, grad_of(function(t) return t:norm(math.huge) end, {-3, 3, 1}), 1e-12)
  end)

  it("var, and std of equal elements (0, not NaN)", function()
    -- g(lambda x: x.var(), [1., 2, 4])
    H.near({-4 / 3, -1 / 3, 5 / 3}, grad_of(function(t) return t:var() end, {1, 2, 4}), 1e-12)
    -- g(lambda x: x.std(), [2., 2, 2])
    H.near({0, 0, 0}, grad_of(function(t) return t:std() end, {2, 2, 2}))
  end)

  it("gradients of a broadcast binary op sum back to each input's shape ({3,1} + {1,4})", function()
    local a = mg.tensor({{1}, {2}, {3}}, {dtype = "float64", requires_grad = true})
    local b = mg.tensor({{1, 2, 3, 4}}, {dtype = "float64", requires_grad = true})
    ;((a + b) * (a * b)):sum():backward()
    -- a, b as above; ((a + b) * (a * b)).sum().backward(); a.grad, b.grad
    H.near({{50}, {70}, {90}}, a.grad, 1e-12)
    H.near({{26, 38, 50, 62}}, b.grad, 1e-12)
    mg.manual_seed(3)
    assert.is_true(gradcheck(function(x, y) return (x + y):sum(1) * (x - y) end, {leaf({3, 1}), leaf({1, 4})}))
  end)

  it("argmax, argmin, any and all record nothing", function()
    local x = mg.tensor({1, 3, 2}, {dtype = "float64", requires_grad = true})
    assert.is_false(x:argmax().requires_grad)
    assert.is_false(x:argmin().requires_grad)
    assert.is_false(x:any().requires_grad)
    assert.is_false(x:all().requires_grad)
  end)
end)

describe("the uniform gradient of a large sum or mean", function()
  -- A sum or mean of all of a large input (16384 elements or more) hands on its gradient as one
  -- value viewed at stride 0, to a node whose rule reads it elementwise (unary ops; mul, div, pow,
  -- maximum, minimum). Retaining the input's gradient takes the filled path: the leaf's gradient
  -- must have the same bits either way, and the retained one PyTorch's value.
  local function leaf_grad(f, retain)
    mg.manual_seed(5)
    local x = mg.randn(300, 70, {requires_grad = true})
    f(x, retain):backward()
    return x.grad
  end
  local cases = {
    ["(x - 0.5)^2 mean"] = function(x, retain)
      local r = (x - 0.5) ^ 2
      if retain then r:retain_grad() end
      return r:mean()
    end,
    ["exp(x) sum, float"] = function(x, retain)
      local e = (x * 0.1):exp()
      if retain then e:retain_grad() end
      return e:sum()
    end,
    ["x * x, reached twice (mean + sum)"] = function(x, retain)
      local y = x * x
      if retain then y:retain_grad() end
      return y:mean() + y:sum() * 1e-3
    end,
    ["x / 3 under a maximum"] = function(x, retain)
      local q = mg.maximum(x / 3, x * 0.25)
      if retain then q:retain_grad() end
      return q:mean()
    end,
  }
  for name, f in pairs(cases) do
    it(name .. ": the bits of the filled gradient", function()
      local viewed, filled = leaf_grad(f, false), leaf_grad(f, true)
      assert.is_true(viewed:equal(filled))
      assert.is_true(viewed:is_contiguous())
    end)
  end

  it("gives the retained gradient PyTorch's value and a dense .grad", function()
    -- x = torch.randn(300, 70, requires_grad=True); r = (x - 0.5) ** 2; r.retain_grad()
    -- r.mean().backward(); r.grad: every element 1 / 21000 in float32
    local x = mg.randn(300, 70, {requires_grad = true})
    local r = (x - 0.5) ^ 2
    r:retain_grad()
    r:mean():backward()
    assert.same({300, 70}, r.grad.shape)
    assert.is_true(r.grad:is_contiguous())
    local expected = mg.tensor(1 / 21000, {dtype = "float32"}):item()
    assert.equal(expected, r.grad:min():item())
    assert.equal(expected, r.grad:max():item())
    -- and x's gradient is 2 (x - 0.5) / 21000, rounded as PyTorch's pow backward: ((r' 2) g)
    local want = ((x:detach() - 0.5) * 2) * expected
    assert.is_true(x.grad:equal(want))
  end)

  it("is written into by nothing: a second backward through a kept graph sums into .grad", function()
    local x = mg.randn(200, 100, {requires_grad = true})
    local loss = (x ^ 2):mean()
    loss:backward({retain_graph = true})
    local once = x.grad:clone()
    loss:backward()
    assert.is_true(x.grad:equal(once * 2))
  end)
end)
