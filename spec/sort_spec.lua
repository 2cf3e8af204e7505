-- Ordering and triangle ops of issue 13: sort, argsort, topk (1-based int64 indices, stable, NaN
-- the largest), flip, tril, triu, cumprod (zeros included) and the t.T property; values and
-- gradients against PyTorch (spec/fixtures/gen_ops13.py), gradcheck in float64, exact errors.
local mg = require "moongrad"
local H = require "helper"
local fixtures = require "ops13_helper"

describe("ordering ops against PyTorch", function()
  fixtures.describe_cases(it, {"sort", "argsort", "topk", "flip", "tril", "triu", "cumprod", "T:"})
end)

describe("ordering ops", function()
  before_each(function() mg.manual_seed(13) end)
  local gradcheck = mg.autograd.gradcheck
  local i64 = function(v) return mg.tensor(v, {dtype = "int64"}) end

  it("gradcheck in float64: sort, topk, flip, tril, triu, cumprod (zeros too), T", function()
    assert.is_true(gradcheck(function(x) return (x:sort(1)) end, {H.leaf{4, 3}}))
    assert.is_true(gradcheck(function(x) return (x:t():sort(-1, true)) end, {H.leaf{4, 3}}))
    assert.is_true(gradcheck(function(x) return (x:topk(2, 2)) end, {H.leaf{3, 5}}))
    assert.is_true(gradcheck(function(x) return (x:topk(3, 1, false)) end, {H.leaf{4, 2, 3}}))
    assert.is_true(gradcheck(function(x) return x:flip{1, 3} end, {H.leaf{2, 3, 4}}))
    assert.is_true(gradcheck(function(x) return x:t():flip(1) end, {H.leaf{2, 3}}))
    assert.is_true(gradcheck(function(x) return x:tril(1) end, {H.leaf{2, 3, 4}}))
    assert.is_true(gradcheck(function(x) return x:t():triu(-1) end, {H.leaf{4, 3}}))
    assert.is_true(gradcheck(function(x) return x:cumprod(2) end, {H.leaf{3, 4}}))
    assert.is_true(gradcheck(function(x) return x:t():cumprod(-1) end, {H.leaf{4, 3}}))
    local z = mg.tensor({{1.5, 0, 2, -1}, {0, 0.5, 0, 2}, {3, 1, 0.7, 0}}, {dtype = "float64", requires_grad = true})
    assert.is_true(gradcheck(function(x) return x:cumprod(2) end, {z}))
    assert.is_true(gradcheck(function(x) return x:cumprod(1) end, {z}))
    assert.is_true(gradcheck(function(x) return x.T end, {H.leaf{2, 3, 4}}))
    assert.is_true(gradcheck(function(x) return x:cumprod(1) end, {H.leaf{}}))
  end)

  it("sort and argsort of int64 and bool, stable, 0-d and empty inputs", function()
    local v, i = i64{3, -1, 3, 2, -1}:sort()
    assert.same({-1, -1, 2, 3, 3}, v:totable())
    assert.same({2, 5, 4, 1, 3}, i:totable())
    assert.equal("int64", v.dtype)
    assert.same({1, 3, 4, 2, 5}, i64{3, -1, 3, 2, -1}:argsort(1, true):totable())
    local bv, bi = mg.tensor{true, false, true}:sort()
    assert.same({false, true, true}, bv:totable())
    assert.same({2, 1, 3}, bi:totable())
    local sv, si = mg.tensor(2.5):sort()
    assert.same({}, sv.shape)
    assert.equal(1, si:item())
    local ev, ei = mg.zeros(0, 3):sort(1)
    assert.same({0, 3}, ev.shape)
    assert.same({0, 3}, ei.shape)
    assert.same({2, 0}, select(1, mg.randn(2, 5):topk(0)).shape)
  end)

  it("indices are int64 and have no gradient; sort's values record a gather", function()
    local x = mg.randn(3, 4, {requires_grad = true})
    local v, i = x:sort(2, true)
    assert.equal("int64", i.dtype)
    assert.is_false(i.requires_grad)
    assert.is_true(v.requires_grad)
    assert.is_true(v:equal(x:gather(2, i)))
    assert.is_false(x:argsort().requires_grad)
  end)

  it("topk's sorted = false still gives them sorted; largest = false the smallest first", function()
    local x = mg.tensor{4, 1, 3, 2}
    local v, i = x:topk(2, 1, true, false)
    assert.same({4, 3}, v:totable())
    assert.same({1, 3}, i:totable())
    v = mg.topk(x, 3, -1, false)
    assert.same({1, 2, 3}, v:totable())
  end)

  it("cumprod of int64 and bool gives int64, as prod", function()
    local y = i64{2, 3, -4}:cumprod(1)
    assert.equal("int64", y.dtype)
    assert.same({2, 6, -24}, y:totable())
    assert.same({1, 0, 0}, mg.tensor{true, false, true}:cumprod(1):totable())
  end)

  it("flip and tril / triu of int64 and bool; T of 0-d and 1-D tensors is a view of the same", function()
    assert.same({{3, 2, 1}}, i64{{1, 2, 3}}:flip(2):totable())
    assert.same({{true, false}, {true, true}}, mg.ones({2, 2}, {dtype = "bool"}):tril():totable())
    assert.same({{1, 2}, {0, 4}}, i64{{1, 2}, {3, 4}}:triu():totable())
    assert.same({{0, 2}, {0, 0}}, i64{{1, 2}, {3, 4}}:triu(1):totable())
    assert.same({{0, 0}, {0, 0}}, i64{{1, 2}, {3, 4}}:triu(5):totable())
    assert.same({{1, 2}, {3, 4}}, i64{{1, 2}, {3, 4}}:tril(5):totable())
    assert.same({{1, 2}, {3, 4}}, i64{{1, 2}, {3, 4}}:triu(-5):totable())
    assert.same({{0, 0}, {0, 0}}, i64{{1, 2}, {3, 4}}:triu(math.maxinteger):totable())
    assert.same({{1, 2}, {3, 4}}, i64{{1, 2}, {3, 4}}:tril(math.maxinteger):totable())
    assert.same({{0, 0}, {0, 0}}, i64{{1, 2}, {3, 4}}:tril(math.mininteger):totable())
    assert.same({{1, 2}, {3, 4}}, i64{{1, 2}, {3, 4}}:triu(math.mininteger):totable())
    assert.same({3}, mg.randn(3).T.shape)
    local m = mg.randn(2, 3)
    assert.same({3, 2}, m.T.shape)
    assert.is_true(m.T:equal(m:t()))
    assert.same({4, 3, 2}, mg.randn(2, 3, 4).T.shape)
  end)

  it("refuses bad arguments with exact messages", function()
    local x = mg.randn(3, 4)
    H.errors(function() mg.topk(x, 5) end,
      "bad argument #2 to 'topk' (k (5) out of range for dimension 2 of size 4)")
    H.errors(function() mg.topk(x, -1, 1) end,
      "bad argument #2 to 'topk' (k (-1) out of range for dimension 1 of size 3)")
    H.errors(function() mg.sort(x, 3) end,
      "bad argument #2 to 'sort' (dimension 3 out of range (expected 1..2 or -2..-1))")
    H.errors(function() mg.sort(x, 0) end,
      "bad argument #2 to 'sort' (dimension 0 out of range (expected 1..2 or -2..-1))")
    H.errors(function() mg.argsort(x, 1, "yes") end,
      "bad argument #3 to 'argsort' (descending must be a boolean, got string)")
    H.errors(function() mg.topk(x, 1, 1, 1) end, "bad argument #4 to 'topk' (largest must be a boolean, got number)")
    H.errors(function() mg.flip(x, 1, -2) end, "bad argument #3 to 'flip' (dim 1 appears more than once)")
    H.errors(function() mg.flip(x, {2, 2}) end, "bad argument #2 to 'flip' (dim 2 appears more than once)")
    H.errors(function() mg.flip(x, {3}) end,
      "bad argument #2 to 'flip' (dims[1] is 3: dimension 3 out of range (expected 1..2 or -2..-1))")
    H.errors(function() mg.flip(x) end, "bad argument #2 to 'flip' (dims expected (a dim or a list of dims))")
    H.errors(function() mg.tril(mg.randn(3)) end,
      "bad argument #1 to 'tril' (expected a tensor of at least 2 dims (a matrix or a batch of them), got shape {3})")
    H.errors(function() mg.triu(x, 0.5) end, "bad argument #2 to 'triu'")
    H.errors(function() mg.cumprod(x, 3) end,
      "bad argument #2 to 'cumprod' (dimension 3 out of range (expected 1..2 or -2..-1))")
    H.errors(function() mg.cumprod(x) end, "bad argument #2 to 'cumprod'")
  end)
end)
