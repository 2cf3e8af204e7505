-- mg.nn.init: PyTorch's gains and fans (spec/fixtures/gen_init.py writes init_cases.lua from real
-- PyTorch), the exact bound / std each initializer draws with (the same seeded draw made by hand),
-- the distributions over large samples, in-place filling without recording, and the errors.
local mg = require "moongrad"
local H = require "helper"
local init = mg.nn.init

local CASES = dofile("spec/fixtures/init_cases.lua")

-- mean and (biased) std of a tensor, in float64
local function moments(t)
  local d = t:double()
  local mean = d:mean():item()
  local std = ((d - mean) ^ 2):mean():sqrt():item()
  return mean, std
end

describe("mg.nn.init.calculate_gain", function()
  it("gives PyTorch's gains exactly", function()
    for _, g in ipairs(CASES.gains) do
      assert.equal(g[3], init.calculate_gain(g[1], g[2]), g[1] .. " " .. tostring(g[2]))
    end
  end)

  it("rejects an unknown nonlinearity and a bad slope", function()
    H.errors(function() init.calculate_gain("swish") end,
      "bad argument #1 to 'calculate_gain' (unsupported nonlinearity swish (expected linear, conv1d, conv2d, "
      .. "conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d, sigmoid, tanh, relu, leaky_relu or selu))")
    H.errors(function() init.calculate_gain("leaky_relu", "x") end,
      "bad argument #2 to 'calculate_gain' (negative_slope x not a valid number)")
  end)
end)

describe("fans and bounds as PyTorch's", function()
  for _, c in ipairs(CASES.shapes) do
    local label = "{" .. table.concat(c.shape, ",") .. "}"
    it("for a weight of shape " .. label, function()
      local w = mg.empty(c.shape)
      local fan_in, fan_out = init.calculate_fan_in_and_fan_out(w)
      assert.equal(c.fan_in, fan_in)
      assert.equal(c.fan_out, fan_out)
      -- each initializer draws what t:uniform_ / t:normal_ draw from the same seed with PyTorch's bound
      local function same(fill, reference)
        mg.manual_seed(7)
        local got = fill(mg.empty(c.shape, { dtype = "float64" }))
        mg.manual_seed(7)
        local want = reference(mg.empty(c.shape, { dtype = "float64" }))
        assert.is_true(mg.allclose(got, want, 1e-12, 1e-15), label)
      end
      same(function(t) return init.xavier_uniform_(t) end,
        function(t) return t:uniform_(-c.xavier_bound, c.xavier_bound) end)
      same(function(t) return init.xavier_normal_(t) end, function(t) return t:normal_(0, c.xavier_std) end)
      same(function(t) return init.xavier_uniform_(t, 2.5) end,
        function(t) return t:uniform_(-2.5 * c.xavier_bound, 2.5 * c.xavier_bound) end)
      for _, k in ipairs(c.kaiming) do
        same(function(t) return init.kaiming_uniform_(t, k.a, k.mode, k.nonlinearity) end,
          function(t) return t:uniform_(-k.bound, k.bound) end)
        same(function(t) return init.kaiming_normal_(t, { a = k.a, mode = k.mode, nonlinearity = k.nonlinearity }) end,
          function(t) return t:normal_(0, k.std) end)
      end
    end)
  end
end)

describe("distributions over large samples", function()
  local N = { 500, 400 } -- 200000 samples: 1 % on a std is many standard errors

  it("uniform_ and the uniform initializers stay within their bound and fill it evenly", function()
    mg.manual_seed(1)
    local t = init.uniform_(mg.empty(N), -2, 3)
    assert.is_true(t:min():item() >= -2 and t:max():item() <= 3)
    local mean, std = moments(t)
    assert.is_true(math.abs(mean - 0.5) < 0.01, mean)
    assert.is_true(math.abs(std - 5 / math.sqrt(12)) < 0.01, std)
    local defaults = init.uniform_(mg.empty(N))
    assert.is_true(defaults:min():item() >= 0 and defaults:max():item() <= 1)
    -- kaiming_uniform_ with Linear's a = sqrt(5) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    local w = init.kaiming_uniform_(mg.empty(N), math.sqrt(5))
    local bound = 1 / math.sqrt(400)
    assert.is_true(w:abs():max():item() <= bound * (1 + 1e-6))
    assert.is_true(w:abs():max():item() > 0.999 * bound)
    local _, wstd = moments(w)
    assert.is_true(math.abs(wstd / (bound / math.sqrt(3)) - 1) < 0.01, wstd)
    local x = init.xavier_uniform_(mg.empty(N))
    local xb = math.sqrt(6 / 900)
    assert.is_true(x:abs():max():item() <= xb * (1 + 1e-6) and x:abs():max():item() > 0.999 * xb)
  end)

  it("normal_ and the normal initializers have the asked mean and std", function()
    mg.manual_seed(2)
    local t = init.normal_(mg.empty(N), 3, 0.5)
    local mean, std = moments(t)
    assert.is_true(math.abs(mean - 3) < 0.005, mean)
    assert.is_true(math.abs(std / 0.5 - 1) < 0.01, std)
    local k = init.kaiming_normal_(mg.empty(N), 0, "fan_out", "relu")
    local _, kstd = moments(k)
    assert.is_true(math.abs(kstd / math.sqrt(2 / 500) - 1) < 0.01, kstd)
    local x = init.xavier_normal_(mg.empty(N), init.calculate_gain("tanh"))
    local _, xstd = moments(x)
    assert.is_true(math.abs(xstd / (5 / 3 * math.sqrt(2 / 900)) - 1) < 0.01, xstd)
  end)

  it("constant_, zeros_ and ones_ fill every element", function()
    local t = mg.empty(3, 4, { dtype = "float64" })
    assert.same({ { 2.5, 2.5 }, { 2.5, 2.5 } }, init.constant_(mg.empty(2, 2), 2.5):totable())
    assert.is_true(mg.equal(init.zeros_(t), mg.zeros(3, 4, { dtype = "float64" })))
    assert.is_true(mg.equal(init.ones_(t), mg.ones(3, 4, { dtype = "float64" })))
  end)
end)

describe("filling parameters", function()
  it("works in place on a leaf that requires grad, records nothing and returns the tensor", function()
    local lin = mg.nn.Linear(4, 3)
    local w = lin.weight
    assert.equal(w, init.xavier_uniform_(w))
    assert.equal(lin.bias, init.zeros_(lin.bias))
    assert.is_true(w.is_leaf and w.requires_grad)
    assert.is_nil(w.grad_fn)
    assert.same({ 0, 0, 0 }, lin.bias:totable())
    -- the model still trains
    local loss = lin(mg.ones(2, 4)):sum()
    loss:backward()
    assert.same({ 2, 2, 2 }, lin.bias.grad:totable())
  end)

  it("works on a non-contiguous view", function()
    local t = mg.zeros(4, 6)
    local v = t:t()
    init.constant_(v, 1)
    assert.is_true(mg.equal(t, mg.ones(4, 6)))
  end)

  it("kaiming_* leave a tensor without elements as it is", function()
    local t = mg.empty(0, 3)
    assert.equal(t, init.kaiming_uniform_(t))
    assert.equal(t, init.kaiming_normal_(t))
  end)
end)

describe("mg.nn.init errors", function()
  it("name the function and the argument, at the caller's line", function()
    H.errors(function() init.xavier_uniform_(mg.empty(5)) end,
      "bad argument #1 to 'xavier_uniform_' (fan in and fan out can not be computed for a tensor with fewer "
      .. "than 2 dimensions (got shape {5}))")
    H.errors(function() init.kaiming_normal_(mg.empty(5)) end,
      "bad argument #1 to 'kaiming_normal_' (fan in and fan out can not be computed")
    H.errors(function() init.kaiming_uniform_(mg.empty(2, 2), 0, "fan_mid") end,
      "bad argument #3 to 'kaiming_uniform_' (mode fan_mid not supported, please use one of fan_in, fan_out)")
    H.errors(function() init.kaiming_uniform_(mg.empty(2, 2), { mode = "fan_in", gain = 1 }) end,
      "bad argument #2 to 'kaiming_uniform_' (unknown option 'gain' (valid: a, mode, nonlinearity))")
    H.errors(function() init.kaiming_uniform_(mg.empty(2, 2), 0, "fan_in", "swish") end,
      "bad argument #1 to 'kaiming_uniform_' (unsupported nonlinearity swish")
    H.errors(function() init.normal_(mg.empty(2), 0, -1) end,
      "bad argument #3 to 'normal_' (std must be non-negative, got -1)")
    H.errors(function() init.uniform_(mg.empty(2), 1, 0) end,
      "bad argument #2 to 'uniform_' (lower bound 1 is greater than upper bound 0)")
    H.errors(function() init.uniform_(mg.empty(2), "a") end,
      "bad argument #2 to 'uniform_' (a must be a number, got string)")
    H.errors(function() init.ones_({}) end, "bad argument #1 to 'ones_' (tensor expected, got table)")
    H.errors(function() init.zeros_(mg.zeros(2, { dtype = "int64" })) end,
      "bad argument #1 to 'zeros_' (a float32 or float64 tensor expected, got int64)")
    H.errors(function() init.constant_(mg.empty(2)) end,
      "bad argument #2 to 'constant_' (val must be a number, got nil)")
    H.errors(function() init.xavier_uniform_(mg.empty(2, 2), 1, 2) end,
      "bad argument #3 to 'xavier_uniform_' (at most 1 arguments after the tensor, got 2)")
    local ok, err = pcall(function() init.kaiming_uniform_(mg.empty(3)) end)
    assert.is_false(ok)
    assert.truthy(err:match("^spec/nn_init_spec%.lua:%d+: bad argument #1 to 'kaiming_uniform_'"), err)
  end)
end)
