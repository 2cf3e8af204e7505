-- Activations of issue 13: gelu (erf and tanh forms), silu, leaky_relu, elu, softplus as tensor
-- methods, mg.* functions, in-place forms and mg.F functions; values and gradients against PyTorch
-- (spec/fixtures/gen_ops13.py), gradcheck in float64, errors; and their nn modules.
local mg = require "moongrad"
local H = require "helper"
local fixtures = require "ops13_helper"

describe("activations against PyTorch", function()
  fixtures.describe_cases(it, {"gelu", "silu", "leaky_relu", "elu", "softplus"})
end)

describe("activations", function()
  before_each(function() mg.manual_seed(13) end)
  local gradcheck = mg.autograd.gradcheck

  local FORMS = {
    {"gelu", function(x) return x:gelu() end},
    {"gelu tanh", function(x) return x:gelu("tanh") end},
    {"silu", function(x) return x:silu() end},
    {"leaky_relu 0.3", function(x) return x:leaky_relu(0.3) end},
    {"elu 1.5", function(x) return mg.elu(x, 1.5) end},
    {"softplus beta 2 threshold 1", function(x) return x:softplus(2, 1) end},
  }
  for _, f in ipairs(FORMS) do
    it(f[1] .. ": gradcheck in float64, contiguous, transposed and 0-d", function()
      -- kinks (leaky_relu, elu at 0; softplus at threshold / beta): random inputs stay clear of them
      assert.is_true(gradcheck(f[2], {H.leaf{3, 4}}))
      assert.is_true(gradcheck(function(x) return f[2](x:t()) end, {H.leaf{4, 3}}))
      assert.is_true(gradcheck(f[2], {H.leaf{}}))
    end)
  end

  it("mg.F, mg.* and the method give one result; the in-place form writes it into t", function()
    local x = mg.randn(4, 5)
    for _, name in ipairs{"gelu", "silu", "leaky_relu", "elu", "softplus"} do
      local y = x[name](x)
      assert.is_true(mg[name](x):equal(y), name)
      assert.is_true(mg.F[name](x):equal(y), name)
      local z = x:clone()
      assert.equal(z, z[name .. "_"](z))
      assert.is_true(z:equal(y), name .. "_")
    end
    local z = x:clone()
    z:leaky_relu_(0.5)
    assert.is_true(z:equal(x:leaky_relu(0.5)))
    z = x:clone()
    z:gelu_({approximate = "tanh"})
    assert.is_true(z:equal(x:gelu("tanh")))
  end)

  it("options tables give the same as positional numbers", function()
    local x = mg.randn(6)
    assert.is_true(x:leaky_relu({negative_slope = 0.2}):equal(x:leaky_relu(0.2)))
    assert.is_true(x:elu({alpha = 0.3}):equal(x:elu(0.3)))
    assert.is_true(x:softplus({beta = 3, threshold = 4}):equal(x:softplus(3, 4)))
    assert.is_true(x:softplus({threshold = 4}):equal(x:softplus(1, 4)))
    assert.is_true(x:gelu({approximate = "none"}):equal(x:gelu()))
    assert.is_true(x:gelu("none"):equal(x:gelu()))
  end)

  it("int64 and bool inputs give the default float dtype, as exp does", function()
    local i = mg.tensor({-2, 0, 3}, {dtype = "int64"})
    -- torch.nn.functional.gelu(torch.tensor([-2., 0, 3])).tolist(); at -2, 1 + erf(-sqrt 2) cancels:
    -- PyTorch's vectorized erff and libm's differ by ~1.6e-7 there (the float64 value is
    -- -0.04550026389635842, which libm's is nearer), hence the absolute tolerance
    H.near({-0.045500099658966064, 0.0, 2.995950222015381}, i:gelu(), 2e-6)
    assert.equal("float32", i:gelu().dtype)
    assert.equal("float32", i:silu().dtype)
    assert.equal("float32", mg.tensor{true, false}:softplus().dtype)
    H.errors(function() i:silu_() end,
      "calling 'silu_' on bad self (result of dtype float32 cannot be written in place into a tensor of dtype int64)")
  end)

  it("float64 is computed in float64", function()
    local x = mg.tensor({1e-10, -30}, {dtype = "float64"})
    -- torch.nn.functional.softplus(torch.tensor([1e-10, -30.], dtype=torch.float64))
    H.near({0.6931471806099453, 9.357622968839737e-14}, x:softplus(), 1e-15)
    assert.equal("float64", x:gelu().dtype)
  end)

  it("refuses bad parameters with exact messages", function()
    local x = mg.randn(3)
    H.errors(function() mg.F.gelu(x, "exact") end,
      "bad argument #2 to 'gelu' (approximate must be 'none' or 'tanh', got 'exact')")
    -- a method call counts its arguments after self, as Lua's own errors do
    H.errors(function() x:gelu("exact") end,
      "bad argument #1 to 'gelu' (approximate must be 'none' or 'tanh', got 'exact')")
    H.errors(function() mg.F.gelu(x, {approximate = 1}) end,
      "bad argument #2 to 'gelu' (approximate must be 'none' or 'tanh', got number)")
    H.errors(function() x:gelu({approx = "tanh"}) end, "approx")
    H.errors(function() mg.leaky_relu(x, "0.1") end,
      "bad argument #2 to 'leaky_relu' (negative_slope must be a number, got string)")
    H.errors(function() mg.F.elu(x, {alpha = true}) end,
      "bad argument #2 to 'elu' (alpha must be a number, got boolean)")
    H.errors(function() mg.softplus(x, 1, "x") end,
      "bad argument #3 to 'softplus' (threshold must be a number, got string)")
    H.errors(function() mg.F.silu(3) end, "bad argument #1 to 'silu'")
  end)

  it("records one node whose gradient uses the parameters it was called with", function()
    local x = mg.tensor({-2, -1, 1}, {requires_grad = true})
    local y = x:leaky_relu(0.25)
    y:sum():backward()
    H.near({0.25, 0.25, 1}, x.grad)
    x.grad = nil
    x:elu(2):sum():backward()
    -- torch: 2 * exp(x) for x <= 0
    H.near({2 * math.exp(-2), 2 * math.exp(-1), 1}, x.grad)
  end)
end)
