-- optim: optimizers and lr schedulers against PyTorch 1.13 trajectories
-- (spec/fixtures/gen_optim.py writes spec/fixtures/optim_trajectories.lua).
local mg = require "moongrad"
local H = require "helper"
local F = require "fixtures.optim_trajectories"

-- The fixture's problem: y = X @ w + b; loss = mean((y - T)^2) + 0.1 sum(sin w) + 0.05 sum(exp(b/2))
local function loss_of(w, b)
  local X, T = mg.tensor(F.X, {dtype = w.dtype}), mg.tensor(F.T, {dtype = w.dtype})
  return function()
    local y = X:matmul(w) + b
    return ((y - T) ^ 2):mean() + 0.1 * w:sin():sum() + 0.05 * (b * 0.5):exp():sum()
  end
end

local function problem(dtype)
  local w = mg.tensor(F.w0, {dtype = dtype, requires_grad = true})
  local b = mg.tensor(F.b0, {dtype = dtype, requires_grad = true})
  return w, b, loss_of(w, b)
end

local function make(case, w, b)
  local params = {w, b}
  if case.groups then
    local named = {w = w, b = b}
    params = {}
    for i, g in ipairs(case.groups) do
      local group = {}
      for k, v in pairs(g) do group[k] = v end
      group.params = {}
      for j, name in ipairs(g.params) do group.params[j] = named[name] end
      params[i] = group
    end
  end
  local opt = mg.optim[case.optim](params, case.opts)
  local sched = case.scheduler and mg.optim.lr_scheduler[case.scheduler](opt, case.scheduler_opts)
  return opt, sched
end

local function replay(case, dtype, tol)
  local w, b, loss_fn = problem(dtype)
  local opt, sched = make(case, w, b)
  for i, expected in ipairs(case[dtype]) do
    loss_fn():backward()
    opt:step()
    opt:zero_grad()
    if sched then
      if case.scheduler == "ReduceLROnPlateau" then sched:step(F.metrics[i]) else sched:step() end
    end
    local ok, err = pcall(function()
      H.near(expected.w, w, tol)
      H.near(expected.b, b, tol)
      local lrs = {}
      for g, group in ipairs(opt.param_groups) do lrs[g] = group.lr end
      H.near(expected.lr, lrs, 1e-12)
    end)
    if not ok then error(string.format("%s, %s, step %d: %s", case.name, dtype, i, err), 2) end
  end
end

describe("optim", function()
  describe("trajectories match PyTorch", function()
    for _, case in ipairs(F.cases) do
      it(case.name .. " (float64, 1e-10)", function() replay(case, "float64", 1e-10) end)
      it(case.name .. " (float32, 1e-5)", function() replay(case, "float32", 1e-5) end)
    end
  end)

  describe("step()", function()
    it("refuses a parameter, gradient or state buffer released by <close> (Adam, AdamW), never crashes", function()
      for _, what in ipairs{"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"} do
        for _, name in ipairs{"Adam", "AdamW"} do
          local p = mg.ones(3)
          p.requires_grad = true
          local opt = mg.optim[name]({p}, {lr = 0.1, amsgrad = true})
          ;(p * p):sum():backward()
          opt:step()
          local victim = what == "param" and p or what == "grad" and p.grad or opt.state[p][what]
          do local _ <close> = victim end
          H.errors(function() opt:step() end, "tensor used after its storage was released (by <close>)")
        end
      end
    end)
    -- exact messages: step names the optimizer, the parameter (group and index) and the tensor
    it("names the optimizer, the parameter and the tensor in a parameter's error (every kind)", function()
      local buffer = {SGD = "momentum_buffer", Adam = "exp_avg", AdamW = "exp_avg", RMSprop = "square_avg",
        Adagrad = "sum"}
      for _, name in ipairs{"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"} do
        local function setup()
          local a, b, c = mg.ones(2):requires_grad_(), mg.ones(3):requires_grad_(), mg.ones(2):requires_grad_()
          local opt = mg.optim[name]({{params = {a}}, {params = {b, c}}}, {lr = 0.1, momentum = name == "SGD" and 0.9 or nil})
          for _, p in ipairs{a, b, c} do p.grad = mg.ones_like(p) end
          opt:step()
          return opt, a, b, c
        end
        local where = "'step': " .. name .. " param_groups[2].params[2]: "
        local opt, _, _, c = setup()
        do local _ <close> = c.grad end
        local ok, err = pcall(opt.step, opt)
        assert.is_false(ok)
        assert.are.equal(where .. "its .grad: tensor used after its storage was released (by <close>)",
          err:gsub("^[^:]*:%d+: ", ""))
        opt, _, _, c = setup()
        opt.state[c][buffer[name]] = mg.ones(5)
        ok, err = pcall(opt.step, opt)
        assert.is_false(ok)
        assert.are.equal(where .. "state " .. buffer[name] .. ": state buffer ({5} float32) must have the "
          .. "parameter's shape and dtype ({2} float32)", err:gsub("^[^:]*:%d+: ", ""))
        opt, _, _, c = setup()
        do local _ <close> = c end
        ok, err = pcall(opt.step, opt)
        assert.is_false(ok)
        assert.are.equal(where .. "the parameter: tensor used after its storage was released (by <close>)",
          err:gsub("^[^:]*:%d+: ", ""))
      end
    end)

    it("blames the line that called step for a parameter's error", function()
      local p = mg.ones(2):requires_grad_()
      p.grad = mg.ones(2)
      local opt = mg.optim.Adam({p})
      opt:step()
      do local _ <close> = p.grad end
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, err = pcall(function() opt:step() end)
      assert.is_false(ok)
      assert.matches("optim_spec.lua:" .. line .. ": 'step': Adam param_groups[1].params[1]: its .grad:", err, 1, true)
    end)

    it("skips parameters without a gradient", function()
      local a = mg.tensor({1.0, 2.0}, {requires_grad = true})
      local c = mg.tensor({3.0}, {requires_grad = true})
      local opt = mg.optim.SGD({a, c}, {lr = 0.5})
      local loss = (a * a):sum()
      loss:backward()
      opt:step()
      -- a - 0.5 * 2a = 0; c untouched
      H.near({0, 0}, a)
      H.near({3}, c)
    end)

    it("updates a non-contiguous parameter through its view", function()
      local base = mg.tensor({{1.0, 2.0}, {3.0, 4.0}}, {dtype = "float64"})
      local p = base:t():detach():requires_grad_()
      local opt = mg.optim.SGD({p}, {lr = 0.1})
      p:sum():backward()
      opt:step()
      H.near({{0.9, 2.9}, {1.9, 3.9}}, p, 1e-12)
    end)

    it("bumps the parameter's version: a graph that saved it cannot run backward", function()
      local p = mg.tensor({1.0, 2.0}, {requires_grad = true})
      local opt = mg.optim.SGD({p}, {lr = 0.1})
      local y = (p * p):sum()
      y:backward({retain_graph = true})
      opt:step()
      assert.has_error(function() y:backward() end)
    end)

    it("calls a closure and returns its loss", function()
      local p = mg.tensor({2.0}, {requires_grad = true})
      local opt = mg.optim.Adam({p}, {lr = 0.1})
      local loss = opt:step(function()
        opt:zero_grad()
        local l = (p * p):sum()
        l:backward()
        return l
      end)
      H.near(4, loss:item())
      H.near({1.9}, p) -- Adam's first step moves by lr * sign(g)
    end)
  end)

  describe("zero_grad()", function()
    it("zeroes gradients in place, or drops them with set_to_none", function()
      local p = mg.tensor({1.0, 2.0}, {requires_grad = true})
      local opt = mg.optim.SGD({p}, {lr = 0.1})
      p:sum():backward()
      local g = p.grad
      opt:zero_grad()
      assert.equal(g, p.grad)
      assert.same({0, 0}, g:totable())
      opt:zero_grad({set_to_none = true})
      assert.is_nil(p.grad)
    end)

    it("names an unknown option", function()
      local opt = mg.optim.SGD({mg.zeros(2, {requires_grad = true})}, {lr = 0.1})
      H.errors(function() opt:zero_grad({to_none = true}) end,
        "bad argument #1 to 'zero_grad' (unknown option 'to_none' (valid: set_to_none))")
    end)
  end)

  describe(".lr", function()
    it("reads the first group's and sets every group's", function()
      local a, c = mg.zeros(2, {requires_grad = true}), mg.zeros(2, {requires_grad = true})
      local opt = mg.optim.SGD({{params = {a}, lr = 0.5}, {params = {c}}}, {lr = 0.1})
      assert.equal(0.5, opt.lr)
      assert.equal(0.1, opt.param_groups[2].lr)
      opt.lr = 0.01
      assert.equal(0.01, opt.param_groups[1].lr)
      assert.equal(0.01, opt.param_groups[2].lr)
      opt.param_groups[2].lr = 0.2
      assert.equal(0.01, opt.lr)
      H.errors(function() opt.lr = -1 end, "'lr': the learning rate must be a non-negative number, got -1")
    end)

    it("takes a group's params as one tensor", function()
      local a = mg.zeros(2, {requires_grad = true})
      local opt = mg.optim.Adam({{params = a}})
      assert.equal(a, opt.param_groups[1].params[1])
      assert.equal(1e-3, opt.lr)
    end)
  end)

  describe("defaults", function()
    it("are PyTorch's", function()
      local p = mg.zeros(2, {requires_grad = true})
      local g = mg.optim.AdamW({p}).param_groups[1]
      assert.same({0.001, {0.9, 0.999}, 1e-8, 1e-2, false}, {g.lr, g.betas, g.eps, g.weight_decay, g.amsgrad})
      g = mg.optim.RMSprop({p}).param_groups[1]
      assert.same({0.01, 0.99, 1e-8, 0, 0, false}, {g.lr, g.alpha, g.eps, g.weight_decay, g.momentum, g.centered})
      g = mg.optim.Adagrad({p}).param_groups[1]
      assert.same({0.01, 0, 0, 0, 1e-10}, {g.lr, g.lr_decay, g.weight_decay, g.initial_accumulator_value, g.eps})
      g = mg.optim.SGD({p}, {lr = 0.1}).param_groups[1]
      assert.same({0.1, 0, 0, false, 0}, {g.lr, g.momentum, g.dampening, g.nesterov, g.weight_decay})
    end)
  end)

  describe("errors", function()
    local p = mg.zeros(2, {requires_grad = true})
    it("names an unknown option and the valid ones", function()
      H.errors(function() mg.optim.SGD({p}, {lr = 0.1, momentun = 0.9}) end,
        "bad argument #2 to 'SGD' (unknown option 'momentun' (valid: lr, momentum, dampening, nesterov, weight_decay))")
      H.errors(function() mg.optim.Adam({{params = {p}, beta = 0.9}}) end,
        "bad argument #1 to 'Adam' (unknown option 'beta' (valid: params, lr, betas, eps, weight_decay, amsgrad))")
    end)
    it("refuses a negative learning rate", function()
      H.errors(function() mg.optim.Adam({p}, {lr = -0.1}) end, "bad argument #2 to 'Adam' (invalid learning rate: -0.1)")
      H.errors(function() mg.optim.SGD({{params = {p}, lr = -1}}) end, "invalid learning rate: -1")
    end)
    it("blames the caller's line", function()
      local ok, err = pcall(function()
        local opt = mg.optim.SGD({p}, {lr = -1})
        return opt
      end)
      assert.is_false(ok)
      assert.truthy(err:find("optim_spec.lua:%d+: bad argument #2 to 'SGD'"))
    end)
    it("requires SGD's lr", function()
      H.errors(function() mg.optim.SGD({p}) end, "bad argument #2 to 'SGD' (lr is required)")
    end)
    it("refuses a param that is not a tensor", function()
      H.errors(function() mg.optim.SGD({p, 3}, {lr = 0.1}) end,
        "bad argument #1 to 'SGD' (params[2] is a number, expected a tensor)")
      H.errors(function() mg.optim.SGD(p, {lr = 0.1}) end,
        "bad argument #1 to 'SGD' (params must be a list of tensors or of parameter groups, got a tensor)")
      H.errors(function() mg.optim.SGD({}, {lr = 0.1}) end, "bad argument #1 to 'SGD' (optimizer got an empty parameter list)")
      H.errors(function() mg.optim.SGD({p * 2}, {lr = 0.1}) end, "bad argument #1 to 'SGD' (can't optimize a non-leaf tensor)")
      H.errors(function() mg.optim.SGD({{params = {p}}, {params = {p}}}, {lr = 0.1}) end,
        "some parameters appear in more than one parameter group")
    end)
    it("gives PyTorch's message for nesterov without momentum", function()
      H.errors(function() mg.optim.SGD({p}, {lr = 0.1, nesterov = true}) end,
        "bad argument #2 to 'SGD' (Nesterov momentum requires a momentum and zero dampening)")
      H.errors(function() mg.optim.SGD({p}, {lr = 0.1, nesterov = true, momentum = 0.9, dampening = 0.1}) end,
        "Nesterov momentum requires a momentum and zero dampening")
    end)
    it("checks the other hyperparameters", function()
      H.errors(function() mg.optim.Adam({p}, {betas = {0.9, 1.5}}) end, "invalid beta parameter at index 2: 1.5")
      H.errors(function() mg.optim.Adam({p}, {betas = 0.9}) end, "bad argument #2 to 'Adam' (betas must be a table, got number)")
      H.errors(function() mg.optim.Adam({p}, {betas = {0.9}}) end, "betas must be a list of two numbers")
      H.errors(function() mg.optim.RMSprop({p}, {alpha = -1}) end, "invalid alpha value: -1")
      H.errors(function() mg.optim.Adagrad({p}, {lr_decay = -1}) end, "invalid lr_decay value: -1")
      H.errors(function() mg.optim.SGD({p}, {lr = "0.1"}) end, "bad argument #2 to 'SGD' (lr must be a number, got string)")
    end)
  end)

  describe("state_dict()", function()
    local function train(opt, loss_fn, n)
      for _ = 1, n do
        loss_fn():backward()
        opt:step()
        opt:zero_grad()
      end
    end
    local configs = {
      {"SGD", {lr = 0.05, momentum = 0.9, nesterov = true}},
      {"Adam", {lr = 0.05, amsgrad = true}},
      {"AdamW", {lr = 0.05}},
      {"RMSprop", {lr = 0.01, momentum = 0.5, centered = true}},
      {"Adagrad", {lr = 0.1, lr_decay = 0.1}},
    }
    for _, c in ipairs(configs) do
      it("round-trips " .. c[1] .. ": a loaded optimizer continues the trajectory identically", function()
        local w, b, loss_fn = problem("float64")
        local opt = mg.optim[c[1]]({w, b}, c[2])
        train(opt, loss_fn, 5)
        local sd = opt:state_dict()
        assert.same({1, 2}, sd.param_groups[1].params)
        assert.is_table(sd.state[1])
        -- a second optimizer over copies of the parameters, loaded from the state dict
        local w2 = w:detach():clone():requires_grad_()
        local b2 = b:detach():clone():requires_grad_()
        local opt2 = mg.optim[c[1]]({w2, b2}, {lr = 1}) -- options come from the state dict
        opt2:load_state_dict(sd)
        assert.equal(c[2].lr, opt2.lr)
        train(opt, loss_fn, 10)
        train(opt2, loss_of(w2, b2), 10)
        assert.same(w:totable(), w2:totable())
        assert.same(b:totable(), b2:totable())
      end)
    end

    it("numbers the state from 1 across groups and keeps step counts", function()
      local a, c = mg.zeros(2, {requires_grad = true}), mg.zeros(3, {requires_grad = true})
      local opt = mg.optim.Adam({{params = {a}}, {params = {c}, lr = 0.1}})
      a:sum():backward()
      opt:step()
      local sd = opt:state_dict()
      assert.same({1}, sd.param_groups[1].params)
      assert.same({2}, sd.param_groups[2].params)
      assert.equal(1, sd.state[1].step)
      assert.is_nil(sd.state[2]) -- c had no gradient: no state yet, as PyTorch
      H.near({0.1, 0.1}, sd.state[1].exp_avg)
    end)

    it("refuses a state dict of another shape", function()
      local a = mg.zeros(2, {requires_grad = true})
      local opt = mg.optim.SGD({a}, {lr = 0.1})
      local other = mg.optim.SGD({{params = {a}}, {params = {mg.zeros(1, {requires_grad = true})}}}, {lr = 0.1})
      H.errors(function() opt:load_state_dict(other:state_dict()) end,
        "bad argument #1 to 'load_state_dict' (loaded state dict has 2 parameter groups, the optimizer 1)")
    end)
  end)

  describe("lr_scheduler", function()
    local function opt_of(lr)
      return mg.optim.SGD({mg.zeros(2, {requires_grad = true})}, {lr = lr})
    end
    it("StepLR multiplies by gamma every step_size steps", function()
      local opt = opt_of(1)
      local s = mg.optim.lr_scheduler.StepLR(opt, {step_size = 2})
      local lrs = {}
      for i = 1, 5 do s:step(); lrs[i] = opt.lr end
      H.near({1, 0.1, 0.1, 0.01, 0.01}, lrs, 1e-15)
      assert.equal(1, opt.param_groups[1].initial_lr)
    end)
    it("ExponentialLR multiplies by gamma at every step", function()
      local opt = opt_of(1)
      local s = mg.optim.lr_scheduler.ExponentialLR(opt, {gamma = 0.5})
      s:step(); s:step()
      assert.same({0.25}, s:get_last_lr())
    end)
    it("ReduceLROnPlateau takes a tensor metric", function()
      local opt = opt_of(1)
      local s = mg.optim.lr_scheduler.ReduceLROnPlateau(opt, {patience = 0, factor = 0.5})
      s:step(mg.tensor(1.0)); s:step(mg.tensor(2.0))
      assert.equal(0.5, opt.lr)
    end)
    it("checks options", function()
      local opt = opt_of(1)
      H.errors(function() mg.optim.lr_scheduler.StepLR(opt, {gamma = 0.5}) end,
        "bad argument #2 to 'StepLR' (step_size is required)")
      H.errors(function() mg.optim.lr_scheduler.StepLR(opt, {step_size = 2, gama = 0.5}) end,
        "bad argument #2 to 'StepLR' (unknown option 'gama' (valid: step_size, gamma))")
      H.errors(function() mg.optim.lr_scheduler.ExponentialLR({}, {gamma = 0.5}) end,
        "bad argument #1 to 'ExponentialLR' (optimizer expected, got table)")
      H.errors(function() mg.optim.lr_scheduler.ReduceLROnPlateau(opt, {factor = 1}) end,
        "bad argument #2 to 'ReduceLROnPlateau' (factor should be < 1.0, got 1)")
      H.errors(function() mg.optim.lr_scheduler.ReduceLROnPlateau(opt, {mode = "up"}) end,
        "mode 'up' is unknown (expected 'min' or 'max')")
      H.errors(function() mg.optim.lr_scheduler.ReduceLROnPlateau(opt, {min_lr = {0, 0}}) end,
        "expected 1 min_lrs, got 2")
    end)
  end)

  describe("_optim_* bindings", function()
    it("check the gradient's shape", function()
      local p = mg.zeros(2, {requires_grad = true})
      local core = require "moongrad.core"
      H.errors(function() core._optim_sgd(p, mg.zeros(3), nil, 0.1, 0, 0, 0, false, false) end, "bad argument #2 to '_optim_sgd' (gradient ({3} float32) must have the parameter's shape and dtype ({2} float32))")
    end)
  end)
end)
