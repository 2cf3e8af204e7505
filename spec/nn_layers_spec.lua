-- nn modules of chapters 7-8 (lua/moongrad/nn/layers.lua): PyTorch's state_dict keys and shapes,
-- repr and default initialisation; a PyTorch state_dict (Conv2d + BatchNorm2d, saved as
-- safetensors by spec/fixtures/gen_conv.py) loaded gives PyTorch's outputs; train() / eval()
-- switch batch norm; errors.
local mg = require "moongrad"
local H = require "helper"
local nn = mg.nn

local fixture = dofile("spec/fixtures/conv_cases.lua")

describe("layer modules", function()
  before_each(function() mg.manual_seed(2) end)

  describe("match PyTorch's state_dict keys, shapes and repr", function()
    for _, m in ipairs(fixture.modules) do
      it(m.name, function()
        local mod = assert(load("local nn = ...; return " .. m.expr))(nn)
        assert.equal(m.repr, tostring(mod))
        local sd = mod:state_dict()
        local n = 0
        for _ in pairs(sd) do n = n + 1 end
        assert.equal(#m.keys, n)
        for i, k in ipairs(m.keys) do
          assert.is_truthy(sd[k], k)
          assert.same(m.shapes[i], sd[k].shape)
        end
        -- PyTorch's order (parameters, then buffers)
        local names = {}
        for name in mod:named_parameters() do names[#names + 1] = name end
        for i, name in ipairs(names) do assert.equal(m.keys[i], name) end
      end)
    end
  end)

  it("initialise conv weights and bias in U(-1/sqrt(fan_in), 1/sqrt(fan_in))", function()
    local c = nn.Conv2d(4, 8, { 3, 2 }, { groups = 2 })
    local bound = 1 / math.sqrt(2 * 3 * 2)
    for _, p in ipairs({ c.weight, c.bias }) do
      assert.is_true(p.requires_grad)
      assert.is_true(p:abs():max():item() <= bound)
    end
    assert.is_true(c.weight:abs():max():item() > 0.8 * bound) -- 96 draws: the range is used
    local bn = nn.BatchNorm2d(3)
    H.near({ 1, 1, 1 }, bn.weight)
    H.near({ 0, 0, 0 }, bn.bias)
    H.near({ 0, 0, 0 }, bn.running_mean)
    H.near({ 1, 1, 1 }, bn.running_var)
    assert.equal("int64", bn.num_batches_tracked.dtype)
    local e = nn.Embedding(50, 40)
    local sd = e.weight:std():item()
    assert.is_true(sd > 0.9 and sd < 1.1)
  end)

  it("load a PyTorch state_dict and give PyTorch's eval output", function()
    local t = mg.load("spec/fixtures/conv_modules.safetensors")
    local model = nn.Sequential(nn.Conv2d(2, 3, 3, { padding = 1 }), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2))
    local sd = {}
    for k, v in pairs(t) do
      if k ~= "x" and k ~= "eval_out" then sd[k] = v end
    end
    model:load_state_dict(sd)
    model:eval()
    H.near(t.eval_out:totable(), model(t.x), 1e-5)
    assert.equal(3, model[2].num_batches_tracked:item())
  end)

  it("BatchNorm2d updates its running statistics in train() and uses them in eval()", function()
    local s = fixture.bn_steps
    local bn = nn.BatchNorm2d(3, { momentum = 0.2, dtype = "float64" })
    mg.no_grad(function() -- (leaves requiring grad: copy_ under no_grad)
      bn.weight:copy_(mg.tensor(s.weight))
      bn.bias:copy_(mg.tensor(s.bias))
    end)
    for i, x in ipairs(s.xs) do
      H.near(s.train_out[i], bn(mg.tensor(x, { dtype = "float64" })), 1e-10)
    end
    H.near(s.running_mean, bn.running_mean, 1e-12)
    H.near(s.running_var, bn.running_var, 1e-12)
    assert.equal(s.num_batches_tracked, bn.num_batches_tracked:item())
    bn:eval()
    H.near(s.eval_out, bn(mg.tensor(s.x_eval, { dtype = "float64" })), 1e-10)
    H.near(s.running_mean, bn.running_mean, 1e-12) -- unchanged in eval
  end)

  it("BatchNorm1d without running statistics normalizes with the batch's in eval too", function()
    local bn = nn.BatchNorm1d(2, { track_running_stats = false, affine = false })
    bn:eval()
    local y = bn(mg.tensor({ { 1, 10 }, { 3, 30 } }))
    H.near({ { -1, -1 }, { 1, 1 } }, y, 1e-4)
    assert.is_nil(bn:state_dict().running_mean)
  end)

  it("run forward with the shapes PyTorch gives", function()
    local x = mg.randn({ 2, 3, 9, 8 })
    assert.same({ 2, 5, 9, 8 }, nn.Conv2d(3, 5, 3, { padding = 1 })(x).shape)
    assert.same({ 2, 3, 4, 4 }, nn.MaxPool2d(2)(x).shape)
    assert.same({ 2, 3, 5, 4 }, nn.MaxPool2d(3, { stride = 2, padding = 1 })(x).shape)
    assert.same({ 2, 3, 4, 4 }, nn.AvgPool2d(2)(x).shape)
    assert.same({ 2, 3, 1, 1 }, nn.AdaptiveAvgPool2d(1)(x).shape)
    assert.same({ 2, 3, 9, 8 }, nn.BatchNorm2d(3)(x).shape)
    assert.same({ 2, 3, 9, 8 }, nn.LayerNorm({ 9, 8 })(x).shape)
    assert.same({ 4, 6, 4 }, nn.Conv1d(3, 6, 3, { stride = 2 })(mg.randn({ 4, 3, 9 })).shape)
    assert.same({ 2, 3, 7 }, nn.Embedding(10, 7)(mg.tensor({ { 1, 2, 10 }, { 4, 4, 4 } }, { dtype = "int64" })).shape)
  end)

  it("train a small CNN: the loss goes down", function()
    local model = nn.Sequential(nn.Conv2d(1, 4, 3, { padding = 1 }), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(4, 4, 3, { padding = 1 }), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    local head = nn.Linear(4, 2)
    local x = mg.randn({ 16, 1, 8, 8 })
    local y = mg.tensor({ 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2 }, { dtype = "int64" })
    for i = 1, 16, 2 do x[i] = x[i] + 1 end
    local params = model:parameters()
    for _, p in ipairs(head:parameters()) do params[#params + 1] = p end
    local opt = mg.optim.SGD(params, { lr = 0.1 })
    local first, last
    for _ = 1, 30 do
      opt:zero_grad()
      local loss = mg.F.cross_entropy(head(model(x):flatten(2)), y)
      loss:backward()
      opt:step()
      first = first or loss:item()
      last = loss:item()
    end
    assert.is_true(last < first * 0.7, string.format("%g -> %g", first, last))
  end)

  describe("errors", function()
    local cases = {
      { function() nn.Conv2d(3, 4, 3, { groups = 2 }) end, "bad argument #4 to 'Conv2d' (in_channels 3 must be divisible by groups 2)" },
      { function() nn.Conv2d(4, 3, 3, { groups = 2 }) end, "bad argument #4 to 'Conv2d' (out_channels 3 must be divisible by groups 2)" },
      { function() nn.Conv2d(0, 4, 3) end, "bad argument #1 to 'Conv2d' (in_channels must be a positive integer, got 0)" },
      { function() nn.Conv2d(3, 4, { 3, 3, 3 }) end, "bad argument #3 to 'Conv2d' (kernel_size must be a number or a list of 2, got a list of 3)" },
      { function() nn.Conv1d(3, 4, 3, { padding = -1 }) end, "bad argument #4 to 'Conv1d' (padding must be a non-negative integer, got -1)" },
      { function() nn.Conv2d(3, 4, 3, { stride = 0 }) end, "bad argument #4 to 'Conv2d' (stride must be a positive integer, got 0)" },
      { function() nn.Conv2d(3, 4, 3, { pad = 1 }) end, "bad argument #4 to 'Conv2d' (unknown option 'pad'" },
      { function() nn.MaxPool2d() end, "bad argument #1 to 'MaxPool2d' (kernel_size expected)" },
      { function() nn.BatchNorm2d(3)(mg.randn({ 2, 3, 4 })) end, "bad argument #1 to 'forward' (BatchNorm2d expects 4-d {N,C,H,W} input, got shape {2,3,4})" },
      { function() nn.BatchNorm1d(3)(mg.randn({ 2, 4 })) end, "bad argument #1 to 'forward' (BatchNorm1d(3) expects 3 channels in dim 2, got shape {2,4})" },
      { function() nn.Conv2d(3, 4, 3)(mg.randn({ 1, 2, 5, 5 })) end, "bad argument #1 to 'conv2d' (input has 2 channels, but weight {4,3,3,3} with groups 1 expects 3 (shape {1,2,5,5}))" },
      { function() nn.Embedding(3, 2)(mg.tensor({ 0 }, { dtype = "int64" })) end, "(index 0 is out of range for 3 embeddings (indices count from 1))" },
    }
    for i, c in ipairs(cases) do
      it("#" .. i .. ": " .. c[2], function() H.errors(c[1], c[2]) end)
    end
  end)
end)
