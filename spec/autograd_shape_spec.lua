-- Autograd through views, copies, joins and indexing (the shape family): every op's gradient is
-- checked against central differences (mg.autograd.gradcheck), on contiguous inputs and on
-- non-contiguous ones made inside fn (transposed, narrowed, expanded); a few against PyTorch 1.13
-- (the Python expression in a comment).
local mg = require "moongrad"
local H = require "helper"

local gradcheck = mg.autograd.gradcheck

local leaf = H.leaf

local function idx(data) return mg.tensor(data, {dtype = "int64"}) end

-- gradcheck of fn on x, then on x transposed inside fn when x is 2-D (fn sees a non-contiguous view)
local function check(fn, x)
  assert.is_true(gradcheck(fn, {x}))
  if x:dim() == 2 then
    local y = leaf({x:size(2), x:size(1)})
    assert.is_true(gradcheck(function(t) return fn(t:t()) end, {y}))
  end
end

describe("autograd of views", function()
  before_each(function() mg.manual_seed(11) end)

  it("view, reshape and flatten", function()
    assert.is_true(gradcheck(function(t) return t:view(4, 3) end, {leaf({3, 4})}))
    assert.is_true(gradcheck(function(t) return t:view(-1) end, {leaf({3, 4})}))
    assert.is_true(gradcheck(function(t) return t:t():contiguous():view(2, 2, 3) end, {leaf({3, 4})}))
    assert.is_true(gradcheck(function(t) return t:t():t():view(2, 6) end, {leaf({3, 4})}))
    check(function(t) return t:reshape(2, 6) end, leaf({3, 4}))   -- transposed: a copy, then a view
    check(function(t) return t:reshape({12}) end, leaf({3, 4}))
    check(function(t) return t:flatten() end, leaf({3, 4}))
    assert.is_true(gradcheck(function(t) return t:flatten(2, 3) end, {leaf({2, 3, 4})}))
  end)

  it("t, transpose and permute", function()
    check(function(t) return t:t() end, leaf({3, 4}))
    assert.is_true(gradcheck(function(t) return t:t() end, {leaf({5})}))
    assert.is_true(gradcheck(function(t) return t:transpose(1, 3) end, {leaf({2, 3, 4})}))
    assert.is_true(gradcheck(function(t) return t:permute(3, 1, 2) end, {leaf({2, 3, 4})}))
    assert.is_true(gradcheck(function(t) return t:permute({2, 3, 1}):permute(3, 1, 2) * 2 end, {leaf({2, 3, 4})}))
  end)

  it("unsqueeze and squeeze", function()
    check(function(t) return t:unsqueeze(2) end, leaf({3, 4}))
    check(function(t) return t:unsqueeze(-1) end, leaf({3, 4}))
    assert.is_true(gradcheck(function(t) return t:squeeze() end, {leaf({3, 1, 4, 1})}))
    assert.is_true(gradcheck(function(t) return t:squeeze(2) end, {leaf({3, 1, 4})}))
  end)

  it("expand sums the gradient back", function()
    assert.is_true(gradcheck(function(t) return t:expand(3, 4) end, {leaf({3, 1})}))
    assert.is_true(gradcheck(function(t) return t:expand(2, 3, 4) end, {leaf({4})}))
    assert.is_true(gradcheck(function(t) return t:t():expand(2, 4, 3) end, {leaf({3, 1})}))
    local x = mg.tensor({1, 2}, {dtype = "float64", requires_grad = true})
    x:expand(3, 2):sum():backward()
    H.near({3, 3}, x.grad)
  end)

  it("narrow and select", function()
    check(function(t) return t:narrow(2, 2, 2) end, leaf({3, 4}))
    check(function(t) return t:narrow(1, -2, 2) end, leaf({3, 4}))
    check(function(t) return t:select(1, 2) end, leaf({3, 4}))
    check(function(t) return t:select(2, -1) end, leaf({3, 4}))
    assert.is_true(gradcheck(function(t) return t:select(1, 3) end, {leaf({4})}))
  end)

  it("t[i]: a row of an n-D tensor, and a 0-d tensor from a 1-D one that requires grad", function()
    check(function(t) return t[2] end, leaf({3, 4}))
    assert.is_true(gradcheck(function(t) return t[2]:t()[3] end, {leaf({2, 3, 4})}))
    -- (t[i] of a 1-D tensor is a number inside no_grad, where gradcheck's finite differences run,
    -- so it is checked by hand)
    local p = mg.tensor({2, 5}, {dtype = "float64", requires_grad = true})
    local w, b = p[1], p[2]
    assert.equal(0, w:dim())
    assert.is_true(w.requires_grad)
    ;(w * 3 + b * b):backward()
    H.near({3, 10}, p.grad)
    -- x = torch.tensor([[1., 2], [3, 4]], requires_grad=True); (x[1][0] * x[0][1] + x[1][1]).backward()
    local x = mg.tensor({{1, 2}, {3, 4}}, {dtype = "float64", requires_grad = true})
    ;(x[2][1] * x[1][2] + x[2][2]):backward()
    H.near({{0, 3}, {2, 1}}, x.grad)
  end)

  it("contiguous, clone, and double / float conversions", function()
    check(function(t) return t:contiguous() end, leaf({3, 4}))
    check(function(t) return t:clone() * 2 end, leaf({3, 4}))
    check(function(t) return t:double() end, leaf({3, 4}))
    assert.is_true(gradcheck(function(t) return t:float():double() end, {leaf({3, 4})}, {eps = 1e-2, atol = 1e-4}))
    assert.is_true(gradcheck(function(t) return t:to("float32"):to("float64") * t end, {leaf({3})},
      {eps = 1e-2, atol = 1e-4, rtol = 1e-3}))
    -- the gradient of a float32 copy arrives in the leaf's dtype
    local x = mg.tensor({1, 2}, {dtype = "float64", requires_grad = true})
    x:float():sum():backward()
    assert.equal("float64", x.grad.dtype)
    H.near({1, 1}, x.grad)
  end)
end)

describe("autograd of joins and splits", function()
  before_each(function() mg.manual_seed(12) end)

  it("cat along each dim, mixing pieces that do and do not require grad", function()
    local a, b = leaf({2, 3}), leaf({1, 3})
    assert.is_true(gradcheck(function(x, y) return mg.cat({x, y, x}) end, {a, b}))
    local c = leaf({2, 4})
    assert.is_true(gradcheck(function(x, y) return mg.cat({x, y}, 2) end, {a, c}))
    assert.is_true(gradcheck(function(x, y) return mg.cat({x:t(), y:t()}, -1) end, {a, b}))
    local const = mg.ones(2, 3, {dtype = "float64"})
    assert.is_true(gradcheck(function(x) return mg.cat({const, x * x}, 1) end, {a}))
    -- a skipped empty 1-D piece
    assert.is_true(gradcheck(function(x) return mg.cat({mg.zeros(0, {dtype = "float64"}), x}) end, {a}))
  end)

  it("cat and stack of many pieces (a wide node)", function()
    local x = mg.tensor({1, 2}, {dtype = "float64", requires_grad = true})
    local pieces = {}
    for k = 1, 70 do pieces[k] = x * k end
    mg.cat(pieces):sum():backward()
    H.near({70 * 71 / 2, 70 * 71 / 2}, x.grad, 1e-12)
    x.grad = nil
    for k = 1, 70 do pieces[k] = x * k end
    mg.stack(pieces, 2):sum():backward()
    H.near({70 * 71 / 2, 70 * 71 / 2}, x.grad, 1e-12)
  end)

  it("cat promotes: a float32 piece with a float64 one gives the float64 leaf its gradient", function()
    local x = mg.tensor({1, 2}, {dtype = "float64", requires_grad = true})
    local y = mg.tensor({3}, {requires_grad = true})
    ;(mg.cat({x, y}) * mg.tensor({1, 2, 3}, {dtype = "float64"})):sum():backward()
    H.near({1, 2}, x.grad)
    assert.equal("float32", y.grad.dtype)
    H.near({3}, y.grad)
  end)

  it("stack along a new dim", function()
    local a, b = leaf({2, 3}), leaf({2, 3})
    assert.is_true(gradcheck(function(x, y) return mg.stack({x, y}) end, {a, b}))
    assert.is_true(gradcheck(function(x, y) return mg.stack({x, y, x}, 3) end, {a, b}))
    assert.is_true(gradcheck(function(x, y) return mg.stack({x:t(), y:t()}, 2) end, {a, b}))
  end)

  it("split, chunk and unbind pieces are differentiable views", function()
    local x = leaf({4, 5})
    assert.is_true(gradcheck(function(t)
      local p = t:split(2, 2)
      return p[1] * 2, p[2], p[3] * p[3]
    end, {x}))
    assert.is_true(gradcheck(function(t)
      local p = t:split({1, 3}, 1)
      return p[1], p[2]:sum(1)
    end, {x}))
    assert.is_true(gradcheck(function(t)
      local p = t:t():chunk(3, 2)
      return p[1] * p[2]:sum(), p[3]
    end, {x}))
    assert.is_true(gradcheck(function(t)
      local a, b, _, d = t:unbind(1)
      return a * b + d
    end, {x}))
    assert.is_true(gradcheck(function(t)
      return (t:unbind(2)) * 3
    end, {x}))
    -- only some pieces used: the rest get 0
    local y = mg.tensor({1, 2, 3, 4}, {dtype = "float64", requires_grad = true})
    local p = y:chunk(2);
    (p[2] * 5):sum():backward()
    H.near({0, 0, 5, 5}, y.grad)
  end)
end)

describe("autograd of indexing", function()
  before_each(function() mg.manual_seed(13) end)

  it("index_select with repeated indices (gradients add), a Lua list, a 0-d index", function()
    local x = leaf({3, 4})
    check(function(t) return t:index_select(1, idx({3, 1, 3})) end, x)
    check(function(t) return t:index_select(2, {4, 4, 2}) end, x)
    check(function(t) return t:index_select(-1, idx(2)) end, x)
    -- y = torch.tensor([1., 2, 3], requires_grad=True); y.index_select(0, torch.tensor([2, 2, 0])).sum()
    local y = mg.tensor({1, 2, 3}, {dtype = "float64", requires_grad = true})
    y:index_select(1, {3, 3, 1}):sum():backward()
    H.near({1, 0, 2}, y.grad)
  end)

  it("gather with repeated indices (gradients add)", function()
    local x = leaf({3, 4})
    check(function(t) return t:gather(2, idx({{1, 1}, {4, 2}, {3, 3}})) end, x)
    check(function(t) return t:gather(1, idx({{3, 1, 2, 2}, {1, 1, 1, 3}})) end, x)
    assert.is_true(gradcheck(function(t) return t:gather(1, idx({2, 2, 1})) end, {leaf({3})}))
    -- g(lambda x: x.gather(1, torch.tensor([[1, 1, 0]])).sum(), [[1., 2]])
    local y = mg.tensor({{1, 2}}, {dtype = "float64", requires_grad = true})
    y:gather(2, idx({{2, 2, 1}})):sum():backward()
    H.near({{1, 2}}, y.grad)
  end)

  it("masked_select, with a mask of the same shape, a broadcast mask and a Lua list", function()
    local x = leaf({3, 4})
    local m = mg.tensor({{true, false, true, false}, {false, false, false, true}, {true, true, false, false}})
    check(function(t) return t:masked_select(m) end, x)
    check(function(t) return t:masked_select(mg.tensor({false, true, true, false})) end, x)
    check(function(t) return t:masked_select({true, false, false, true}) end, x)
    -- a mask that broadcasts the input: each element is selected several times, gradients add
    local y = mg.tensor({{1}, {2}}, {dtype = "float64", requires_grad = true})
    y:masked_select(mg.tensor({{true, true, false}, {false, true, true}})):sum():backward()
    -- torch.tensor([[1.], [2]], requires_grad=True).masked_select(torch.tensor([[True, True, False], [False, True, True]])).sum()
    H.near({{2}, {2}}, y.grad)
    assert.is_true(gradcheck(function(t) return t:masked_select(mg.tensor({{true, true, false}, {false, true, true}})) end,
      {leaf({2, 1})}))
  end)

  it("where routes the gradient by the condition (and sums broadcast operands back)", function()
    local a, b = leaf({3, 4}), leaf({3, 4})
    local cond = mg.tensor({{true, false, true, false}, {false, false, true, true}, {true, true, true, false}})
    assert.is_true(gradcheck(function(x, y) return mg.where(cond, x, y) end, {a, b}))
    assert.is_true(gradcheck(function(x, y) return mg.where(cond, x:t():t(), y:narrow(1, 1, 1)) end, {a, b}))
    assert.is_true(gradcheck(function(x) return mg.where(cond, x, 0) end, {a}))
    local c = leaf({4})
    assert.is_true(gradcheck(function(x, y) return mg.where(cond, x, y) end, {a, c}))
  end)

  it("masked_fill: the filled positions get no gradient; a tensor value gets their sum", function()
    local x = leaf({3, 4})
    local m = mg.tensor({{true, false, true, false}, {false, false, false, true}, {true, true, false, false}})
    check(function(t) return t:masked_fill(m:t():t(), 2.5) end, x)
    local v = mg.tensor(1.5, {dtype = "float64", requires_grad = true})
    assert.is_true(gradcheck(function(t, s) return t:masked_fill(m, s) end, {x, v}))
    local y = mg.tensor({1, 2, 3}, {dtype = "float64", requires_grad = true})
    local w = mg.tensor(0, {dtype = "float64", requires_grad = true})
    y:masked_fill(mg.tensor({true, false, true}), w):sum():backward()
    H.near({0, 1, 0}, y.grad)
    H.near(2, w.grad:item())
  end)

  it("index tensors and masks never require grad, and ops on tensors without grad record nothing", function()
    local x = mg.randn({3, 4}, {dtype = "float64"})
    assert.is_false(x:gather(2, idx({{1}, {2}, {3}})).requires_grad)
    assert.is_false(mg.cat({x, x}).requires_grad)
    assert.is_false(x:split(2)[1].requires_grad)
    local y = leaf({3, 4})
    mg.no_grad(function()
      assert.is_false(y:index_select(1, {1}).requires_grad)
      assert.is_false(mg.stack({y, y}).requires_grad)
      assert.is_false(y:unbind(1).requires_grad)
      assert.is_false(y:masked_select(y:gt(0)).requires_grad)
    end)
  end)
  it("differentiates a permutation of 16 dims (the packed permutation's top nibble)", function()
    local size, perm = {}, {}
    for d = 1, 16 do size[d], perm[d] = d <= 2 and 2 or 1, 17 - d end
    local x = mg.arange(4, {dtype = "float64"}):reshape(size)
    x.requires_grad = true
    local y = x:permute(perm)
    assert.same({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2}, y.shape)
    ;(y * mg.arange(4, {dtype = "float64"}):reshape(y.shape)):sum():backward()
    -- y[..., i, j] = x[j, i, ...]: the weight of x[j][i] is 2 i + j (0-based)
    assert.same({0, 2, 1, 3}, x.grad:reshape(4):totable())
  end)
end)
