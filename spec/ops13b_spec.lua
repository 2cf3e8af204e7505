-- Options of the chapter 6-8 layers (issue 13, second round): conv padding "same" / "valid",
-- embedding padding_idx, BatchNorm's cumulative average (momentum = false, PyTorch's None),
-- topk's options table with sorted = false, and the pooling options (ceil_mode, return_indices,
-- count_include_pad, divisor_override). Values and gradients against PyTorch 1.13
-- (spec/fixtures/gen_ops13b.py -> ops13b_cases.lua), float64 gradcheck, exact error messages.
local mg = require "moongrad"
local H = require "helper"
local F, nn = mg.F, mg.nn
local gradcheck = mg.autograd.gradcheck

local cases = dofile("spec/fixtures/ops13b_cases.lua")
local fixture_cases = require "ops13_helper"

-- one `it` per fixture case whose name starts with prefix
local function fixtures(prefix)
  fixture_cases.describe_cases(it, { prefix }, cases)
end

local function r(...) return mg.randn({ ... }, { dtype = "float64", requires_grad = true }) end
local function errors_table(list)
  for i, c in ipairs(list) do
    it("error #" .. i .. ": " .. c[2], function() H.errors(c[1], c[2]) end)
  end
end

-- ================================================================ conv padding
describe("conv padding 'same' / 'valid'", function()
  before_each(function() mg.manual_seed(13) end)
  fixtures("conv2d same")
  fixtures("conv2d valid")
  fixtures("conv1d same")
  fixtures("conv1d valid")

  it("'same' keeps the spatial size; the odd padding goes to the bottom / right", function()
    local x, w = mg.randn(1, 2, 5, 6), mg.randn(3, 2, 2, 3)
    local y = F.conv2d(x, w, { padding = "same", dilation = { 1, 2 } })
    assert.same({ 1, 3, 5, 6 }, y.shape)
    -- total padding {1, 4}: rows 0 above and 1 below, columns 2 each side: the same as padding
    -- {0, 2} on an input with one more (zero) row at the bottom
    local xp = mg.cat({ x, mg.zeros(1, 2, 1, 6) }, 3)
    local want = F.conv2d(xp, w, { padding = { 0, 2 }, dilation = { 1, 2 } })
    assert.same(want:totable(), y:totable())
    local x1, w1 = mg.randn(2, 3, 7), mg.randn(4, 3, 4)
    local y1 = F.conv1d(x1, w1, { padding = "same" }) -- total 3: 1 left, 2 right
    local want1 = F.conv1d(mg.cat({ x1, mg.zeros(2, 3, 1) }, 3), w1, { padding = 1 })
    assert.same(want1:totable(), y1:totable())
  end)

  it("'valid' is padding 0", function()
    local x, w = mg.randn(2, 2, 7, 6), mg.randn(3, 2, 3, 2)
    assert.same(F.conv2d(x, w, { stride = 2 }):totable(), F.conv2d(x, w, { padding = "valid", stride = 2 }):totable())
  end)

  it("gradcheck (float64): 'same' with odd totals, dilation, groups, non-contiguous input", function()
    assert.is_true(gradcheck(function(x, w, b) return F.conv2d(x, w, b, { padding = "same", dilation = { 1, 2 } }) end,
      { r(2, 2, 4, 5), r(3, 2, 2, 3), r(3) }))
    assert.is_true(gradcheck(function(x, w) return F.conv2d(x:transpose(3, 4), w, { padding = "same", groups = 2 }) end,
      { r(1, 4, 5, 4), r(2, 2, 4, 3) }))
    assert.is_true(gradcheck(function(x, w, b) return F.conv2d(x, w, b, { padding = "same" }) end,
      { r(4, 2, 4, 3), r(3, 2, 2, 2), r(3) })) -- batch 4: the per-sample path
    assert.is_true(gradcheck(function(x, w, b) return F.conv1d(x, w, b, { padding = "same", dilation = 3 }) end,
      { r(2, 2, 6), r(3, 2, 2), r(3) }))
    assert.is_true(gradcheck(function(x, w) return F.conv1d(x, w, { padding = "valid", stride = 2 }) end,
      { r(3, 7), r(2, 3, 3) }))
  end)

  it("the same bits for 1 and 2 threads", function()
    local x, w = mg.randn(4, 3, 9, 8), mg.randn(5, 3, 4, 3)
    local n = mg.get_num_threads()
    mg.set_num_threads(1)
    local a = F.conv2d(x, w, { padding = "same" })
    mg.set_num_threads(2)
    local b = F.conv2d(x, w, { padding = "same" })
    mg.set_num_threads(n)
    assert.same(a:totable(), b:totable())
  end)

  it("Conv2d / Conv1d modules take padding strings", function()
    local c = nn.Conv2d(2, 3, { 2, 3 }, { padding = "same", dilation = { 1, 2 } })
    assert.equal("Conv2d(2, 3, kernel_size=(2, 3), stride=(1, 1), padding=same, dilation=(1, 2))", tostring(c))
    local x = mg.randn(2, 2, 5, 6)
    assert.same(F.conv2d(x, c.weight, c.bias, { padding = "same", dilation = { 1, 2 } }):totable(), c(x):totable())
    local v = nn.Conv1d(2, 3, 3, { padding = "valid", stride = 2 })
    assert.equal("Conv1d(2, 3, kernel_size=(3,), stride=(2,), padding=valid)", tostring(v))
    assert.same({ 2, 3, 3 }, v(mg.randn(2, 2, 7)).shape)
    assert.same({ 1, 3, 7 }, nn.Conv1d(2, 3, 4, { padding = "same" })(mg.randn(1, 2, 7)).shape)
  end)

  local x, w = mg.zeros(1, 2, 5, 5), mg.zeros(3, 2, 3, 3)
  errors_table({
    { function() F.conv2d(x, w, { padding = "same", stride = 2 }) end,
      "bad argument #4 to 'conv2d' (padding = \"same\" is not supported for strided convolutions)" },
    { function() F.conv2d(x, w, nil, { padding = "same", stride = { 1, 2 } }) end,
      "bad argument #4 to 'conv2d' (padding = \"same\" is not supported for strided convolutions)" },
    { function() F.conv1d(mg.zeros(1, 2, 5), mg.zeros(3, 2, 3), { padding = "same", stride = 3 }) end,
      "bad argument #4 to 'conv1d' (padding = \"same\" is not supported for strided convolutions)" },
    { function() F.conv2d(x, w, { padding = "full" }) end,
      "bad argument #4 to 'conv2d' (invalid padding string \"full\", should be \"valid\" or \"same\")" },
    { function() F.conv2d(x, w, { padding = "valid", stride = 0 }) end,
      "bad argument #4 to 'conv2d' (stride must be positive, got 0)" },
    { function() F.conv2d(x, mg.zeros(3, 2, 6, 1), { padding = "valid" }) end,
      "bad argument #1 to 'conv2d' (kernel size 6x1 (dilated) is larger than the padded input 5x5)" },
    { function() nn.Conv2d(2, 3, 3, { padding = "same", stride = 2 }) end,
      "bad argument #4 to 'Conv2d' (padding = \"same\" is not supported for strided convolutions)" },
    { function() nn.Conv1d(2, 3, 3, { padding = "half" }) end,
      "bad argument #4 to 'Conv1d' (invalid padding string \"half\", should be \"valid\" or \"same\")" },
  })
end)

-- ================================================================ embedding padding_idx
describe("embedding padding_idx", function()
  before_each(function() mg.manual_seed(13) end)
  fixtures("embedding padding_idx")

  it("the padding row's gradient is zero; forward still reads the row", function()
    local w = r(4, 2)
    local y = F.embedding({ 3, 1, 3 }, w, { padding_idx = 3 })
    assert.same(w:detach()[3]:totable(), y[1]:detach():totable())
    y:sum():backward()
    assert.same({ { 1, 1 }, { 0, 0 }, { 0, 0 }, { 0, 0 } }, w.grad:totable())
  end)

  it("gradcheck (float64), the padding row masked out of the forward (its gradient is 0 by design)", function()
    local idx = mg.tensor({ { 1, 2, 4 }, { 4, 4, 3 } }, { dtype = "int64" })
    local mask4 = mg.tensor({ { 1 }, { 1 }, { 1 }, { 0 } }, { dtype = "float64" })
    assert.is_true(gradcheck(function(w) return F.embedding(idx, w * mask4, { padding_idx = -1 }) end, { r(4, 3) }))
    local mask2 = mg.tensor({ { 1 }, { 0 }, { 1 }, { 1 } }, { dtype = "float64" })
    assert.is_true(gradcheck(function(w) return F.embedding(idx, w:t() * mask2, { padding_idx = 2 }) end, { r(3, 4) }))
  end)

  it("nn.Embedding zeroes the padding row at init, keeps it out of the gradient, prints it", function()
    local e = nn.Embedding(5, 3, { padding_idx = -2 })
    assert.equal(4, e.padding_idx)
    assert.equal("Embedding(5, 3, padding_idx=4)", tostring(e))
    assert.same({ 0, 0, 0 }, e.weight[4]:detach():totable())
    assert.is_true(e.weight.is_leaf)
    e(mg.tensor({ 4, 1, 4, 5 }, { dtype = "int64" })):sum():backward()
    assert.same({ { 1, 1, 1 }, { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 }, { 1, 1, 1 } }, e.weight.grad:totable())
    assert.equal("Embedding(5, 3)", tostring(nn.Embedding(5, 3)))
    assert.equal(nil, nn.Embedding(5, 3).padding_idx)
  end)

  local w = mg.zeros(3, 2)
  errors_table({
    { function() F.embedding({ 1 }, w, { padding_idx = 4 }) end,
      "bad argument #3 to 'embedding' (padding_idx 4 is out of range for 3 embeddings)" },
    { function() F.embedding({ 1 }, w, { padding_idx = -4 }) end,
      "bad argument #3 to 'embedding' (padding_idx -4 is out of range for 3 embeddings)" },
    { function() F.embedding({ 1 }, w, { padding_idx = 0 }) end,
      "bad argument #3 to 'embedding' (padding_idx 0 is not a row (indices count from 1))" },
    { function() F.embedding({ 1 }, w, { padding_idx = 1.5 }) end,
      "bad argument #3 to 'embedding' (padding_idx must be an integer, got 1.5)" },
    { function() F.embedding({ 1 }, w, { padding = 1 }) end,
      "bad argument #3 to 'embedding' (unknown option 'padding' (valid: padding_idx))" },
    { function() nn.Embedding(3, 2, { padding_idx = 4 }) end,
      "bad argument #3 to 'Embedding' (padding_idx 4 is out of range for 3 embeddings)" },
    { function() nn.Embedding(3, 2, { padding_idx = 0 }) end,
      "bad argument #3 to 'Embedding' (padding_idx 0 is not a row (indices count from 1))" },
    { function() nn.Embedding(3, 2, { padding_idx = "1" }) end,
      "bad argument #3 to 'Embedding' (padding_idx must be an integer, got 1)" },
  })
end)

-- ================================================================ batch norm momentum = false
describe("BatchNorm momentum = false (PyTorch's momentum=None: the cumulative average)", function()
  before_each(function() mg.manual_seed(13) end)
  fixtures("BatchNorm1d momentum None")
  fixtures("BatchNorm2d momentum None")

  it("the running mean is the plain average of the batches' means", function()
    local m = nn.BatchNorm1d(2, { momentum = false, dtype = "float64" })
    local xs = { mg.randn({ 4, 2 }, { dtype = "float64" }), mg.randn({ 6, 2 }, { dtype = "float64" }),
      mg.randn({ 3, 2 }, { dtype = "float64" }) }
    for _, x in ipairs(xs) do m(x) end
    local want = (xs[1]:mean(1) + xs[2]:mean(1) + xs[3]:mean(1)) / 3
    H.near(want:totable(), m.running_mean, 1e-14)
    assert.equal(3, m.num_batches_tracked:item())
  end)

  it("prints momentum=None; the state_dict is unchanged", function()
    local m = nn.BatchNorm2d(3, { momentum = false })
    assert.equal("BatchNorm2d(3, eps=1e-05, momentum=None, affine=True, track_running_stats=True)", tostring(m))
    local keys = {}
    for k in pairs(m:state_dict()) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "bias", "num_batches_tracked", "running_mean", "running_var", "weight" }, keys)
  end)

  it("gradcheck (float64) through the module in training", function()
    local m = nn.BatchNorm1d(3, { momentum = false, dtype = "float64" })
    assert.is_true(gradcheck(function(x) return m(x) end, { r(5, 3, 2) }))
  end)

  errors_table({
    { function() nn.BatchNorm1d(3, { momentum = "none" }) end,
      "bad argument #2 to 'BatchNorm1d' (momentum must be a number or false, got string)" },
    { function() F.batch_norm(mg.randn(4, 3), mg.zeros(3), mg.ones(3), { training = true, momentum = false }) end,
      "bad argument #4 to 'batch_norm' (momentum must be a number, got boolean)" },
  })
end)

-- ================================================================ topk
describe("topk's options table and sorted = false", function()
  before_each(function() mg.manual_seed(13) end)
  fixtures("topk sorted = false")

  it("sorted = false gives the sorted order (PyTorch allows any order then)", function()
    local t = mg.randn(4, 9)
    local v1, i1 = t:topk(3)
    local v2, i2 = t:topk(3, { sorted = false })
    local v3, i3 = mg.topk(t, 3, -1, true, false)
    assert.same(v1:totable(), v2:totable())
    assert.same(i1:totable(), i2:totable())
    assert.same(v1:totable(), v3:totable())
    assert.same(i1:totable(), i3:totable())
    local v4, i4 = t:topk(2, { dim = 1, largest = false })
    local v5, i5 = t:topk(2, 1, false)
    assert.same(v5:totable(), v4:totable())
    assert.same(i5:totable(), i4:totable())
  end)

  local t = mg.zeros(2, 4) -- (a method's errors count its arguments after self)
  errors_table({
    { function() t:topk(2, { dim = 1, descending = true }) end,
      "bad argument #2 to 'topk' (unknown option 'descending' (valid: dim, largest, sorted))" },
    { function() t:topk(2, { sorted = "no" }) end,
      "bad argument #2 to 'topk' (sorted must be a boolean, got string)" },
    { function() t:topk(2, { largest = 0 }) end,
      "bad argument #2 to 'topk' (largest must be a boolean, got number)" },
    { function() t:topk(5, { sorted = false }) end,
      "bad argument #1 to 'topk' (k (5) out of range for dimension 2 of size 4)" },
    { function() t:topk(2, {}, true) end,
      "bad argument #3 to 'topk' (no argument expected after the options table)" },
  })
end)

-- ================================================================ pooling options
describe("pooling options", function()
  before_each(function() mg.manual_seed(13) end)
  fixtures("max_pool2d")
  fixtures("MaxPool2d module")
  fixtures("avg_pool2d")
  fixtures("AvgPool2d module")

  it("ceil_mode sizes follow PyTorch's rule (the last window starts inside the input or left padding)", function()
    local function oh(h, k, o) return F.max_pool2d(mg.zeros(1, 1, h, h), k, o).shape[3] end
    assert.equal(3, oh(5, 2, { ceil_mode = true }))
    assert.equal(2, oh(5, 2, {}))
    assert.equal(3, oh(5, 2, { stride = 2, padding = 1, ceil_mode = true })) -- 4 rounded up, the 4th dropped
    assert.equal(4, oh(6, 3, { stride = 2, padding = 1, ceil_mode = true }))
    assert.equal(3, F.avg_pool2d(mg.zeros(1, 1, 5, 5), 2, { stride = 2, padding = 1, ceil_mode = true }).shape[3])
  end)

  it("return_indices: 1-based flat indices in each plane, which gather the maxima back", function()
    local x = mg.randn(2, 3, 7, 6)
    local y, i = F.max_pool2d(x, 3, { stride = 2, padding = 1, ceil_mode = true, return_indices = true })
    assert.equal("int64", i.dtype)
    assert.same(y.shape, i.shape)
    assert.same(y:flatten(3):totable(), x:flatten(3):gather(3, i:flatten(3)):totable())
    local _, i1 = F.max_pool2d(mg.tensor({ { { 1, 5 }, { 7, 2 } } }), 2, { return_indices = true })
    assert.same({ { { 3 } } }, i1:totable())
    -- without return_indices, one result
    assert.equal(1, select("#", F.max_pool2d(x, 2)))
  end)

  it("the 2x2 stride-2 fast path and the general path agree (ceil_mode on an even input changes nothing)", function()
    local x = mg.randn(3, 4, 8, 10)
    local a, ia = F.max_pool2d(x, 2, { return_indices = true })
    local b, ib = F.max_pool2d(x, 2, { ceil_mode = true, return_indices = true })
    assert.same(a:totable(), b:totable())
    assert.same(ia:totable(), ib:totable())
  end)

  it("count_include_pad and divisor_override: hand-computed", function()
    local ones = mg.ones(1, 1, 3, 3)
    -- padding 1, k 3: the corner window holds 4 ones of 9 (4/9), or of 4 without the padding (1)
    H.near({ { { { 4 / 9, 4 / 9 }, { 4 / 9, 4 / 9 } } } }, F.avg_pool2d(ones, 3, { stride = 2, padding = 1 }))
    H.near({ { { { 1, 1 }, { 1, 1 } } } },
      F.avg_pool2d(ones, 3, { stride = 2, padding = 1, count_include_pad = false }))
    H.near({ { { { 2, 2 }, { 2, 2 } } } }, F.avg_pool2d(ones, 3, { stride = 2, padding = 1, divisor_override = 2 }))
  end)

  it("gradcheck (float64): ceil_mode, count_include_pad = false, divisor_override, non-contiguous", function()
    assert.is_true(gradcheck(function(x) return F.max_pool2d(x, 2, { ceil_mode = true }) end, { r(2, 2, 5, 5) }))
    assert.is_true(gradcheck(function(x)
      return F.max_pool2d(x:transpose(3, 4), 3, { stride = 2, padding = 1, ceil_mode = true })
    end, { r(1, 2, 6, 7) }))
    assert.is_true(gradcheck(function(x)
      local y = F.max_pool2d(x, { 2, 3 }, { stride = { 2, 2 }, dilation = { 2, 1 }, ceil_mode = true, return_indices = true })
      return y
    end, { r(2, 1, 7, 6) }))
    assert.is_true(gradcheck(function(x) return F.avg_pool2d(x, 2, { ceil_mode = true }) end, { r(2, 2, 5, 5) }))
    assert.is_true(gradcheck(function(x)
      return F.avg_pool2d(x:transpose(3, 4), 3, { stride = 2, padding = 1, ceil_mode = true, count_include_pad = false })
    end, { r(2, 2, 6, 7) }))
    assert.is_true(gradcheck(function(x)
      return F.avg_pool2d(x, 3, { stride = 2, padding = 1, ceil_mode = true, divisor_override = 4 })
    end, { r(1, 2, 6, 5) }))
  end)

  it("the same bits for 1 and 2 threads", function()
    local x = mg.randn(4, 3, 9, 7)
    local n = mg.get_num_threads()
    local res = {}
    for t = 1, 2 do
      mg.set_num_threads(t)
      local y, i = F.max_pool2d(x, 3, { stride = 2, ceil_mode = true, return_indices = true })
      res[t] = { y:totable(), i:totable(),
        F.avg_pool2d(x, 3, { stride = 2, padding = 1, ceil_mode = true, count_include_pad = false }):totable() }
    end
    mg.set_num_threads(n)
    assert.same(res[1], res[2])
  end)

  it("modules: options, repr", function()
    local m = nn.MaxPool2d(3, { stride = 2, ceil_mode = true, return_indices = true })
    assert.equal("MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=True)", tostring(m))
    assert.equal("MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
      tostring(nn.MaxPool2d(2)))
    local y, i = m(mg.randn(1, 1, 5, 5))
    assert.same({ 1, 1, 2, 2 }, y.shape)
    assert.same({ 1, 1, 2, 2 }, i.shape)
    local a = nn.AvgPool2d(2, { ceil_mode = true, count_include_pad = false, divisor_override = 3 })
    assert.equal("AvgPool2d(kernel_size=2, stride=2, padding=0)", tostring(a)) -- as PyTorch prints it
    assert.equal(3, a.divisor_override)
  end)

  local x = mg.zeros(1, 1, 4, 4)
  errors_table({
    { function() F.avg_pool2d(x, 2, { divisor_override = 0 }) end,
      "bad argument #3 to 'avg_pool2d' (divisor_override must not be 0)" },
    { function() F.avg_pool2d(x, 2, { divisor_override = 1.5 }) end,
      "bad argument #3 to 'avg_pool2d' (divisor_override must be an integer, got 1.5)" },
    { function() F.avg_pool2d(x, 2, { count_include_pad = 0 }) end,
      "bad argument #3 to 'avg_pool2d' (count_include_pad must be a boolean, got number)" },
    { function() F.max_pool2d(x, 2, { ceil_mode = "yes" }) end,
      "bad argument #3 to 'max_pool2d' (ceil_mode must be a boolean, got string)" },
    { function() F.max_pool2d(x, 2, { count_include_pad = false }) end,
      "bad argument #3 to 'max_pool2d' (unknown option 'count_include_pad' (valid: stride, padding, dilation, ceil_mode, return_indices, relu))" },
    { function() F.avg_pool2d(x, 2, { return_indices = true }) end,
      "bad argument #3 to 'avg_pool2d' (unknown option 'return_indices' (valid: stride, padding, ceil_mode, count_include_pad, divisor_override))" },
    { function() nn.AvgPool2d(2, { divisor_override = 0 }) end,
      "bad argument #2 to 'AvgPool2d' (divisor_override must be a non-zero integer, got 0)" },
    { function() nn.MaxPool2d(2, { return_indices = 1 }) end,
      "bad argument #2 to 'MaxPool2d' (return_indices must be a boolean, got number)" },
  })
end)
