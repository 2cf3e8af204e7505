-- Autograd of the layers of chapters 7-8 (family conv: src/ops/conv.c, norm.c): every op
-- gradchecked against central differences in float64, with strides, padding, dilation, groups,
-- odd sizes and non-contiguous inputs (views made inside fn). PyTorch's own gradients are compared
-- in spec/conv_spec.lua.
local mg = require "moongrad"
local F = mg.F

local gradcheck = mg.autograd.gradcheck

local function r(...)
  return mg.randn({ ... }, { dtype = "float64", requires_grad = true })
end

describe("autograd of conv layers", function()
  before_each(function() mg.manual_seed(5) end)

  describe("conv2d", function()
    local cases = {
      { "plain", { 2, 3, 5, 6 }, { 4, 3, 3, 3 }, true, {} },
      { "stride 2, padding 1", { 2, 3, 7, 6 }, { 2, 3, 3, 2 }, true, { stride = 2, padding = 1 } },
      { "stride {2,3}, padding {0,2}, no bias", { 1, 2, 7, 8 }, { 3, 2, 2, 3 }, false, { stride = { 2, 3 }, padding = { 0, 2 } } },
      { "dilation {2,1}", { 2, 2, 7, 5 }, { 2, 2, 3, 2 }, true, { dilation = { 2, 1 }, padding = 1 } },
      { "groups 2", { 2, 4, 5, 5 }, { 6, 2, 3, 3 }, true, { groups = 2, padding = 1 } },
      { "depthwise, odd sizes", { 3, 3, 5, 3 }, { 6, 1, 2, 2 }, true, { groups = 3, stride = { 1, 2 } } },
      { "unbatched", { 2, 4, 4 }, { 3, 2, 3, 3 }, true, { padding = 2, dilation = 2 } },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local inputs = { r(table.unpack(c[2])), r(table.unpack(c[3])) }
        if c[4] then inputs[3] = r(c[3][1]) end
        assert.is_true(gradcheck(function(x, w, b) return F.conv2d(x, w, b, c[5]) end, inputs))
      end)
    end
    it("non-contiguous input and weight", function()
      assert.is_true(gradcheck(function(x, w, b)
        return F.conv2d(x:transpose(3, 4), w:permute(1, 2, 4, 3), b, { padding = 1 })
      end, { r(2, 3, 6, 5), r(2, 3, 2, 3), r(2) }))
    end)
  end)

  describe("conv1d", function()
    it("stride, padding, dilation, bias", function()
      assert.is_true(gradcheck(function(x, w, b) return F.conv1d(x, w, b, { stride = 2, padding = 1, dilation = 2 }) end,
        { r(2, 3, 9), r(4, 3, 3), r(4) }))
    end)
    it("groups, unbatched, non-contiguous", function()
      assert.is_true(gradcheck(function(x, w) return F.conv1d(x:t(), w, nil, { groups = 2 }) end,
        { r(7, 4), r(4, 2, 3) }))
    end)
  end)

  describe("pools", function()
    it("max_pool2d with overlapping windows, padding and dilation", function()
      assert.is_true(gradcheck(function(x) return F.max_pool2d(x, 3, { stride = 2, padding = 1 }) end, { r(2, 2, 7, 6) }))
      assert.is_true(gradcheck(function(x) return F.max_pool2d(x:transpose(3, 4), { 2, 3 }, { dilation = 2 }) end,
        { r(1, 2, 7, 6) }))
    end)
    it("avg_pool2d with padding", function()
      assert.is_true(gradcheck(function(x) return F.avg_pool2d(x, { 3, 2 }, { stride = { 2, 1 }, padding = 1 }) end,
        { r(2, 2, 7, 5) }))
    end)
    it("adaptive_avg_pool2d with uneven windows", function()
      assert.is_true(gradcheck(function(x) return F.adaptive_avg_pool2d(x, { 3, 4 }) end, { r(2, 2, 7, 5) }))
      assert.is_true(gradcheck(function(x) return F.adaptive_avg_pool2d(x, 2) end, { r(3, 5, 5) }))
    end)
  end)

  describe("normalization", function()
    it("batch_norm training, 4-d, 3-d and 2-d, with weight and bias", function()
      for _, shape in ipairs({ { 3, 2, 3, 2 }, { 4, 2, 3 }, { 5, 2 } }) do
        assert.is_true(gradcheck(function(x, w, b) return F.batch_norm(x, nil, nil, { weight = w, bias = b, training = true }) end,
          { r(table.unpack(shape)), r(2), r(2) }))
      end
    end)
    it("batch_norm training without weight, non-contiguous", function()
      assert.is_true(gradcheck(function(x, b) return F.batch_norm(x:transpose(3, 4), nil, nil, { bias = b, training = true }) end,
        { r(2, 3, 3, 4), r(3) }))
    end)
    it("batch_norm in eval mode", function()
      local rm = mg.randn({ 3 }, { dtype = "float64" })
      local rv = mg.rand({ 3 }, { dtype = "float64" }) + 0.5
      assert.is_true(gradcheck(function(x, w, b) return F.batch_norm(x, rm, rv, { weight = w, bias = b }) end,
        { r(2, 3, 4), r(3), r(3) }))
    end)
    it("layer_norm over one and two dims", function()
      assert.is_true(gradcheck(function(x, w, b) return F.layer_norm(x, { 5 }, { weight = w, bias = b }) end,
        { r(3, 2, 5), r(5), r(5) }))
      assert.is_true(gradcheck(function(x, w) return F.layer_norm(x:transpose(2, 3), { 3, 2 }, { weight = w }) end,
        { r(4, 2, 3), r(3, 2) }))
    end)
    it("embedding with repeated indices", function()
      local idx = mg.tensor({ { 1, 3, 1 }, { 2, 3, 3 } }, { dtype = "int64" })
      assert.is_true(gradcheck(function(w) return F.embedding(idx, w) end, { r(4, 3) }))
    end)
  end)
end)
