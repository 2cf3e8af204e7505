-- Activations of issue 13: gelu (erf and tanh forms), silu, leaky_relu, elu, softplus as tensor
-- methods, mg.* functions, in-place forms and mg.F functions; values and gradients against PyTorch
-- (spec/fixtures/gen_ops13.py), gradcheck in float64, errors; and their nn modules.
local mg = require "moongrad"
local H = require "helper"
local fixtures = require "ops13_helper"

describe("activations against PyTorch", function()
  fixtures.describe_cases(it, {"gelu", "silu", "leaky_relu", "elu", "softplus", "softmax module", "log_softmax module", "NLLLoss"})
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

  it("gives the same bits with 1 and 2 threads (values and gradients)", function()
    local x = mg.randn(300000)
    local before = mg.get_num_threads()
    local function run(threads)
      mg.set_num_threads(threads)
      local t = x:clone():requires_grad_()
      local y = t:gelu() + t:silu() + t:softplus(2, 3) + t:elu(0.5) + t:leaky_relu(0.1)
      y:sum():backward()
      mg.set_num_threads(before)
      return y:detach(), t.grad
    end
    local y1, g1 = run(1)
    local y2, g2 = run(2)
    assert.is_true(y1:equal(y2))
    assert.is_true(g1:equal(g2))
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

describe("nn activation and loss modules", function()
  local nn = mg.nn
  before_each(function() mg.manual_seed(13) end)

  it("print as PyTorch's reprs", function()
    -- repr(torch.nn.LeakyReLU()) etc.
    local cases = {
      {nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"},
      {nn.LeakyReLU(0.2), "LeakyReLU(negative_slope=0.2)"},
      {nn.GELU(), "GELU(approximate='none')"},
      {nn.GELU{approximate = "tanh"}, "GELU(approximate='tanh')"},
      {nn.ELU(), "ELU(alpha=1.0)"},
      {nn.ELU(0.5), "ELU(alpha=0.5)"},
      {nn.SiLU(), "SiLU()"},
      {nn.Softplus(), "Softplus(beta=1, threshold=20)"},
      {nn.Softplus{beta = 2, threshold = 10}, "Softplus(beta=2, threshold=10)"},
      {nn.Softmax(2), "Softmax(dim=2)"},
      {nn.LogSoftmax{dim = -1}, "LogSoftmax(dim=-1)"},
      {nn.NLLLoss(), "NLLLoss()"},
      {nn.BCELoss(), "BCELoss()"},
      {nn.SmoothL1Loss(), "SmoothL1Loss()"},
      {nn.HuberLoss{delta = 2}, "HuberLoss()"},
    }
    for _, c in ipairs(cases) do assert.equal(c[2], tostring(c[1])) end
    assert.equal("Sequential(\n  (1): Linear(in_features=2, out_features=3, bias=True)\n  (2): GELU(approximate='none')\n)",
      tostring(nn.Sequential(nn.Linear(2, 3), nn.GELU())))
  end)

  it("compute what mg.F computes with their options", function()
    local x = mg.randn(4, 3)
    assert.is_true(nn.LeakyReLU(0.3)(x):equal(mg.F.leaky_relu(x, 0.3)))
    assert.is_true(nn.GELU("tanh")(x):equal(x:gelu("tanh")))
    assert.is_true(nn.ELU{alpha = 2}(x):equal(x:elu(2)))
    assert.is_true(nn.SiLU()(x):equal(x:silu()))
    assert.is_true(nn.Softplus(2, 1)(x):equal(x:softplus(2, 1)))
    assert.is_true(nn.Softmax(1)(x):equal(mg.F.softmax(x, 1)))
    local t = mg.tensor({1, 3, 2, 2}, {dtype = "int64"})
    local w = mg.tensor{0.2, 1, 3}
    assert.is_true(nn.NLLLoss{weight = w, ignore_index = 2, reduction = "sum"}(x, t)
      :equal(mg.F.nll_loss(x, t, {weight = w, ignore_index = 2, reduction = "sum"})))
    local p, y = mg.rand(4, 3), mg.rand(4, 3)
    assert.is_true(nn.BCELoss{weight = w}(p, y):equal(mg.F.binary_cross_entropy(p, y, {weight = w})))
    assert.is_true(nn.SmoothL1Loss{beta = 0.5, reduction = "none"}(p, y)
      :equal(mg.F.smooth_l1_loss(p, y, {beta = 0.5, reduction = "none"})))
    assert.is_true(nn.HuberLoss{delta = 0.5}(p, y):equal(mg.F.huber_loss(p, y, {delta = 0.5})))
  end)

  it("a loss's class weight is a buffer in state_dict, as PyTorch's (key 'weight'); no parameters", function()
    local l = nn.NLLLoss{weight = mg.tensor{1, 2}}
    local sd = l:state_dict()
    assert.same({1, 2}, sd.weight:totable())
    assert.equal(0, #l:parameters())
    local keys = {}
    for k in pairs(nn.BCELoss():state_dict()) do keys[#keys + 1] = k end
    assert.same({}, keys)
    assert.equal(0, #nn.LeakyReLU():parameters())
  end)

  it("train a tiny classifier with LogSoftmax + NLLLoss as with CrossEntropyLoss", function()
    local x = mg.randn(8, 4)
    local t = mg.tensor({1, 2, 3, 1, 2, 3, 1, 2}, {dtype = "int64"})
    local lin = nn.Linear(4, 3)
    local a = nn.NLLLoss()(nn.LogSoftmax(2)(lin(x)), t)
    local b = nn.CrossEntropyLoss()(lin(x), t)
    H.near(b:item(), a, 1e-6)
  end)

  it("refuse bad arguments with exact messages", function()
    H.errors(function() nn.LeakyReLU("0.1") end,
      "bad argument #1 to 'LeakyReLU' (negative_slope must be a number, got string)")
    H.errors(function() nn.GELU("exact") end,
      "bad argument #1 to 'GELU' (approximate must be 'none' or 'tanh', got 'exact')")
    H.errors(function() nn.ELU{alpha = 1, inplace = true} end, "unknown option 'inplace'")
    H.errors(function() nn.Softplus(1, 2, 3) end, "bad argument #3 to 'Softplus' (takes at most 2 arguments, got 3)")
    H.errors(function() nn.Softmax() end,
      "bad argument #1 to 'Softmax' (dim expected (1-based, as mg.F.softmax's; PyTorch's implicit dim is deprecated))")
    H.errors(function() nn.LogSoftmax(1.5) end, "bad argument #1 to 'LogSoftmax' (dim must be an integer, got 1.5)")
    H.errors(function() nn.NLLLoss{reduction = "avg"} end,
      "bad argument #1 to 'NLLLoss' (unknown reduction 'avg', expected 'mean', 'sum' or 'none')")
    H.errors(function() nn.NLLLoss{weight = {1, 2}} end, "bad argument #1 to 'NLLLoss' (weight must be a tensor, got table)")
    H.errors(function() nn.HuberLoss{delta = "1"} end, "bad argument #1 to 'HuberLoss' (delta must be a number, got string)")
    H.errors(function() nn.BCELoss{beta = 1} end, "unknown option 'beta'")
  end)

  it("constructor errors point at the caller's line", function()
    for _, make in ipairs{
      -- not as tail calls (`return nn.X()`), whose frame Lua drops
      function() local m = nn.LeakyReLU("x"); return m end, function() local m = nn.Softmax(); return m end,
      function() local m = nn.NLLLoss{reduction = "avg"}; return m end,
      function() local m = nn.GELU("exact"); return m end,
    } do
      local ok, err = pcall(make)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("activation_spec%.lua:%d+: bad argument"), tostring(err))
    end
  end)
end)
