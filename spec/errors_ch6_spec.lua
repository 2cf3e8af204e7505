-- The errors a new user hit going into chapters 6-8 (issue 13), each with its exact message and
-- the caller's line: a loss module given float targets, a class or index 0, an optimizer given the
-- module itself, t:mean({dim = 1}), and mse_loss with shapes that only broadcast (a warning).
local mg = require "moongrad"
local H = require "helper"
local nn = mg.nn
local util = require "moongrad.util"

-- the error of fn, which must point at this file
local function error_here(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert.truthy(err:match("^spec/errors_ch6_spec%.lua:%d+: "), err)
  return err:gsub("^spec/errors_ch6_spec%.lua:%d+: ", "")
end

describe("a loss module's errors", function()
  local x = mg.randn(4, 3)

  it("name the module, not 'fn', at the caller's line", function()
    local old = mg.set_warn_handler(function() end) -- {4,3} against {5} warns before it fails
    finally(function() mg.set_warn_handler(old) end)
    assert.equal("bad argument #2 to 'CrossEntropyLoss' (target must be an int64 tensor of class indices, got float32)",
      error_here(function() local _ = nn.CrossEntropyLoss()(x, mg.tensor{ 1, 2, 3, 1 }) end))
    assert.equal("bad argument #2 to 'cross_entropy' (target must be an int64 tensor of class indices, got float32)",
      error_here(function() local _ = mg.F.cross_entropy(x, mg.tensor{ 1, 2, 3, 1 }) end))
    assert.equal("bad argument #2 to 'BCEWithLogitsLoss' (target must be a float tensor, got int64)",
      error_here(function() local _ = nn.BCEWithLogitsLoss()(x, mg.zeros(4, 3, { dtype = "int64" })) end))
    assert.equal("bad argument #2 to 'CrossEntropyLoss' (int64 tensor or list of integers expected, got nil)",
      error_here(function() local _ = nn.CrossEntropyLoss()(x) end))
    assert.equal("bad argument #2 to 'MSELoss' (shapes {4,3} and {5} cannot broadcast)",
      error_here(function() local _ = nn.MSELoss()(x, mg.zeros(5)) end))
    assert.equal("bad argument #2 to 'mse_loss' (shapes {4,3} and {5} cannot broadcast)",
      error_here(function() local _ = mg.F.mse_loss(x, mg.zeros(5)) end))
  end)

  it("inside a model's forward, point at the forward's line", function()
    local Net = nn.Module:extend("Net")
    function Net:init() self.loss = nn.CrossEntropyLoss() end
    function Net:forward(a, b)
      local l = self.loss(a, b) -- this line
      return l
    end
    local err = select(2, pcall(function() local _ = Net()(x, mg.tensor{ 1, 1, 1, 1 }) end))
    assert.truthy(err:match("^spec/errors_ch6_spec%.lua:%d+: bad argument #2 to 'CrossEntropyLoss'"), err)
  end)

  it("still compute and record as before", function()
    local logits = mg.tensor({ { 1, 2, 3 }, { 1, 0, 0 } }, { requires_grad = true })
    local loss = nn.CrossEntropyLoss()(logits, mg.tensor({ 3, 1 }, { dtype = "int64" }))
    -- torch.nn.CrossEntropyLoss()(torch.tensor([[1.,2,3],[1,0,0]]), torch.tensor([2,0])) = 0.47952529788017273
    assert.is_true(math.abs(loss:item() - 0.47952529788017273) < 1e-6)
    loss:backward()
    assert.same({ 2, 3 }, logits.grad.shape)
  end)
end)

describe("a class or an index 0", function()
  local x = mg.randn(4, 3)

  it("says that classes and indices count from 1", function()
    assert.equal("bad argument #2 to 'CrossEntropyLoss' (target 0 out of range for 3 classes (classes count from 1: "
      .. "add 1 to 0-based labels))",
      error_here(function() local _ = nn.CrossEntropyLoss()(x, mg.tensor({ 0, 2, 3, 1 }, { dtype = "int64" })) end))
    assert.equal("bad argument #2 to 'cross_entropy' (target 0 out of range for 3 classes (classes count from 1: "
      .. "add 1 to 0-based labels))",
      error_here(function() local _ = mg.F.cross_entropy(x, { 1, 0, 1, 1 }) end))
    -- past the last class: no hint
    assert.equal("bad argument #2 to 'CrossEntropyLoss' (target 4 out of range for 3 classes)",
      error_here(function() local _ = nn.CrossEntropyLoss()(x, mg.tensor({ 4, 2, 3, 1 }, { dtype = "int64" })) end))
    assert.equal("bad argument #2 to 'index' (index 0 out of range for dimension of size 4 (indices count from 1))",
      error_here(function() local _ = x[0] end))
    assert.equal("bad argument #2 to 'select' (index 0 out of range for dimension of size 4 (indices count from 1))",
      error_here(function() local _ = x:select(1, 0) end))
    assert.equal("bad argument #2 to 'select' (index 5 out of range for dimension of size 4)",
      error_here(function() local _ = x:select(1, 5) end))
    assert.equal("bad argument #2 to 'index_select' (index 0 out of range for dimension 1 of size 4 (indices are "
      .. "1-based and cannot be negative here))", error_here(function() local _ = x:index_select(1, { 0 }) end))
  end)
end)

describe("an optimizer given a module", function()
  it("says to pass model:parameters()", function()
    local model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert.equal("bad argument #1 to 'SGD' (params must be a list of tensors, got a Module (Sequential): pass "
      .. "model:parameters())", error_here(function() local _ = mg.optim.SGD(model, { lr = 0.1 }) end))
    assert.equal("bad argument #1 to 'Adam' (params must be a list of tensors, got a Module (Linear): pass "
      .. "model:parameters())", error_here(function() local _ = mg.optim.Adam(nn.Linear(1, 1)) end))
    -- what it should have been works
    assert.equal(2, #mg.optim.SGD(model:parameters(), { lr = 0.1 }).param_groups[1].params)
  end)
end)

describe("an options table where a dim is expected", function()
  local x = mg.tensor{ { 1, 2 }, { 3, 4 } }

  it("is an error, not a reduction over everything", function()
    local msg = "a dim or a list of dims expected, got an options table (dims and keepdim are positional here: "
      .. "(1, true) for PyTorch's dim=0, keepdim=True)"
    assert.equal("bad argument #1 to 'mean' (" .. msg .. ")", error_here(function() local _ = x:mean({ dim = 1 }) end))
    assert.equal("bad argument #1 to 'sum' (" .. msg .. ")", error_here(function() local _ = x:sum({ dim = 1 }) end))
    assert.equal("bad argument #2 to 'mean' (" .. msg .. ")",
      error_here(function() local _ = mg.mean(x, { dim = 1, keepdim = true }) end))
    -- dims as numbers and lists still work, {} is every dim (PyTorch's dim=[])
    assert.same({ 2, 3 }, x:mean(1):totable())
    assert.same({ { 3 }, { 7 } }, x:sum(2, true):totable())
    assert.equal(10, x:sum({ 1, 2 }):item())
    assert.equal(10, x:sum({}):item())
    assert.same({ 1, 1 }, x:var(1, { unbiased = false }):totable())
  end)
end)

describe("mse_loss with shapes that broadcast", function()
  local seen
  local old
  before_each(function()
    seen = {}
    util.reset_warnings()
    old = mg.set_warn_handler(function(msg) seen[#seen + 1] = msg end)
  end)
  after_each(function()
    mg.set_warn_handler(old)
    util.reset_warnings()
  end)

  it("warns once, as PyTorch's UserWarning, and still computes the broadcast loss", function()
    local pred, target = mg.zeros(5, 1), mg.tensor{ 1, 2, 3, 4, 5 }
    local loss = mg.F.mse_loss(pred, target)
    assert.equal(11, loss:item()) -- the mean over the {5,5} broadcast: (1+4+9+16+25)/5
    assert.same({ "'mse_loss': using a target size ({5}) that is different to the input size ({5,1}). This will "
      .. "likely lead to incorrect results due to broadcasting. Please ensure they have the same size." }, seen)
    mg.F.mse_loss(pred, target)
    nn.MSELoss()(pred, target)
    assert.equal(1, #seen) -- once per message
    nn.L1Loss()(pred, target)
    assert.equal(2, #seen)
    assert.truthy(seen[2]:find("'l1_loss': using a target size ({5}) that is different to the input size ({5,1})", 1, true))
  end)

  it("does not warn for equal shapes", function()
    mg.F.mse_loss(mg.zeros(5), mg.ones(5))
    nn.MSELoss()(mg.zeros(2, 3), mg.ones(2, 3))
    assert.same({}, seen)
  end)

  it("writes to stderr without a handler", function()
    mg.set_warn_handler(nil)
    local out = H.run_lua([[
      local mg = require "moongrad"
      mg.F.mse_loss(mg.zeros(3, 1), mg.zeros(3))
      mg.F.mse_loss(mg.zeros(3, 1), mg.zeros(3))
      io.write("done\n")
    ]])
    assert.equal("moongrad warning: 'mse_loss': using a target size ({3}) that is different to the input size ({3,1}). "
      .. "This will likely lead to incorrect results due to broadcasting. Please ensure they have the same size.\ndone\n",
      out)
  end)

  it("set_warn_handler checks its argument", function()
    H.errors(function() mg.set_warn_handler(3) end,
      "bad argument #1 to 'set_warn_handler' (function or nil expected, got number)")
  end)
end)
