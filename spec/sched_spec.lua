-- mg.optim.lr_scheduler.MultiStepLR, CosineAnnealingLR, LambdaLR, OneCycleLR: the learning rates
-- (and OneCycleLR's momentum / beta1) of PyTorch 1.13 step for step (spec/fixtures/gen_sched.py
-- writes sched_cases.lua from real PyTorch), state_dict round trips and each error's message.
local mg = require "moongrad"
local H = require "helper"
local sched_mod = mg.optim.lr_scheduler

local CASES = dofile("spec/fixtures/sched_cases.lua")

local function make_opt(case)
  local groups = {}
  for i, g in ipairs(case.groups) do
    groups[i] = { params = { mg.zeros(1, { requires_grad = true }) }, lr = g.lr }
  end
  local opts = {}
  for k, v in pairs(case.opt_opts) do opts[k] = v end
  if case.opt == "SGD" and opts.lr == nil then opts.lr = case.groups[1].lr end
  return mg.optim[case.opt](groups, opts)
end

local function momentum_of(group)
  if group.betas then return group.betas[1] end
  return group.momentum
end

-- |a - e| <= 1e-15 relative: the same formulas in the same order give the same doubles, but libm's
-- cos may differ from Python's in the last bit
local function close(e, a, what)
  if math.abs(a - e) > 1e-15 * math.max(1, math.abs(e)) then
    error(string.format("%s: expected %.17g, got %.17g", what, e, a), 2)
  end
end

describe("learning-rate schedulers against PyTorch", function()
  for _, case in ipairs(CASES) do
    it(case.name, function()
      local opt = make_opt(case)
      local sched = sched_mod[case.sched](opt, case.opts)
      for step, row in ipairs(case.lrs) do
        for g, lr in ipairs(row) do
          close(lr, opt.param_groups[g].lr, string.format("step %d group %d lr", step - 1, g))
          close(lr, sched:get_last_lr()[g], string.format("step %d group %d get_last_lr", step - 1, g))
          if case.momentum then
            close(case.momentum[step][g], momentum_of(opt.param_groups[g]),
              string.format("step %d group %d momentum", step - 1, g))
          end
        end
        if step < #case.lrs then
          opt:step()
          sched:step()
        end
      end
      assert.equal(#case.lrs - 1, sched.last_epoch)
    end)
  end
end)

describe("LambdaLR and OneCycleLR", function()
  local function sgd(lr, extra)
    local o = { lr = lr }
    for k, v in pairs(extra or {}) do o[k] = v end
    return mg.optim.SGD({ mg.zeros(1, { requires_grad = true }) }, o)
  end

  it("set the learning rate when created, as PyTorch's", function()
    local opt = sgd(0.5)
    sched_mod.LambdaLR(opt, function(e) return 0.1 * (e + 1) end)
    assert.equal(0.5 * 0.1, opt.lr)
    local opt2 = sgd(0.5, { momentum = 0.9 })
    sched_mod.OneCycleLR(opt2, { max_lr = 0.2, total_steps = 10 })
    -- the anneal at step 0 (max + (initial - max) / 2 * 2) is initial_lr up to rounding, as PyTorch's
    close(0.2 / 25, opt2.lr, "lr")
    assert.equal(0.2 / 25, opt2.param_groups[1].initial_lr)
    assert.equal(0.95, opt2.param_groups[1].momentum)
    -- the optimizer's groups hold PyTorch's keys
    assert.equal(0.2, opt2.param_groups[1].max_lr)
    assert.equal(0.2 / 25 / 1e4, opt2.param_groups[1].min_lr)
  end)

  it("LambdaLR takes {lr_lambda = fn} too", function()
    local opt = sgd(1)
    local s = sched_mod.LambdaLR(opt, { lr_lambda = function(e) return 1 / (e + 2) end })
    assert.equal(0.5, opt.lr)
    s:step()
    assert.equal(1 / 3, opt.lr)
  end)

  it("OneCycleLR stepping past total_steps is an error naming the counts", function()
    local opt = sgd(0.1, { momentum = 0.9 })
    local s = sched_mod.OneCycleLR(opt, { max_lr = 0.1, total_steps = 3 })
    for _ = 1, 3 do s:step() end
    local ok, err = pcall(s.step, s)
    assert.is_false(ok)
    assert.truthy(err:find("'OneCycleLR': tried to step 5 times; the specified number of total steps is 3", 1, true), err)
  end)

  it("state_dict / load_state_dict resume the schedule", function()
    local function run(n, resume_at)
      local opt = sgd(0.1, { momentum = 0.9 })
      local s = sched_mod.CosineAnnealingLR(opt, { T_max = 7, eta_min = 0.01 })
      local lrs = {}
      for i = 1, n do
        if i == resume_at then
          local sd, osd = s:state_dict(), opt:state_dict()
          opt = sgd(0.1, { momentum = 0.9 })
          s = sched_mod.CosineAnnealingLR(opt, { T_max = 7, eta_min = 0.01 })
          opt:load_state_dict(osd)
          s.optimizer = opt
          s:load_state_dict(sd)
        end
        s:step()
        lrs[i] = opt.lr
      end
      return lrs
    end
    assert.same(run(12), run(12, 5))
    local opt = sgd(0.1)
    local s = sched_mod.MultiStepLR(opt, { milestones = { 1 } })
    s:step()
    assert.same({ last_epoch = 1, base_lrs = { 0.1 }, _last_lr = { 0.1 * 0.1 } }, s:state_dict())
  end)
end)

describe("scheduler errors", function()
  local opt = mg.optim.SGD({ mg.zeros(1, { requires_grad = true }) }, { lr = 0.1 })
  local adagrad = mg.optim.Adagrad({ mg.zeros(1, { requires_grad = true }) })

  it("name the scheduler and the argument", function()
    H.errors(function() sched_mod.MultiStepLR(opt, {}) end,
      "bad argument #2 to 'MultiStepLR' (milestones is required)")
    H.errors(function() sched_mod.MultiStepLR(opt, { milestones = { 1.5 } }) end,
      "bad argument #2 to 'MultiStepLR' (milestones[1] must be an integer, got 1.5)")
    H.errors(function() sched_mod.MultiStepLR({}, { milestones = { 1 } }) end,
      "bad argument #1 to 'MultiStepLR' (optimizer expected, got table)")
    H.errors(function() sched_mod.CosineAnnealingLR(opt, { T_max = 0 }) end,
      "bad argument #2 to 'CosineAnnealingLR' (T_max must be positive, got 0)")
    H.errors(function() sched_mod.CosineAnnealingLR(opt, { T_max = 3, foo = 1 }) end,
      "bad argument #2 to 'CosineAnnealingLR' (unknown option 'foo' (valid: T_max, eta_min))")
    H.errors(function() sched_mod.LambdaLR(opt, 0.5) end,
      "bad argument #2 to 'LambdaLR' (a function of the epoch (or a list of one per parameter group) expected, got number)")
    H.errors(function() sched_mod.LambdaLR(opt, { function() return 1 end, function() return 1 end }) end,
      "bad argument #2 to 'LambdaLR' (expected 1 lr_lambdas, got 2)")
    H.errors(function() sched_mod.LambdaLR(opt, function() return "x" end) end,
      "'LambdaLR': lr_lambda returned a string at epoch 0, expected a number")
    H.errors(function() sched_mod.OneCycleLR(opt, { max_lr = 0.1 }) end,
      "bad argument #2 to 'OneCycleLR' (total_steps, or epochs and steps_per_epoch, must be given)")
    H.errors(function() sched_mod.OneCycleLR(opt, { max_lr = 0.1, total_steps = 2.5 }) end,
      "bad argument #2 to 'OneCycleLR' (expected a positive integer total_steps, got 2.5)")
    H.errors(function() sched_mod.OneCycleLR(opt, { max_lr = 0.1, epochs = 2 }) end,
      "bad argument #2 to 'OneCycleLR' (expected a positive integer steps_per_epoch, got nil)")
    H.errors(function() sched_mod.OneCycleLR(opt, { max_lr = 0.1, total_steps = 5, anneal_strategy = "x" }) end,
      "bad argument #2 to 'OneCycleLR' (anneal_strategy must be 'cos' or 'linear', got 'x')")
    H.errors(function() sched_mod.OneCycleLR(opt, { max_lr = 0.1, total_steps = 5, pct_start = 2 }) end,
      "bad argument #2 to 'OneCycleLR' (expected pct_start between 0 and 1, got 2)")
    H.errors(function() sched_mod.OneCycleLR(opt, { max_lr = { 0.1, 0.2 }, total_steps = 5 }) end,
      "bad argument #2 to 'OneCycleLR' (expected 1 values for max_lr, got 2)")
    H.errors(function() sched_mod.OneCycleLR(adagrad, { max_lr = 0.1, total_steps = 5 }) end,
      "bad argument #1 to 'OneCycleLR' (the optimizer has no momentum or betas to cycle: pass cycle_momentum = false)")
  end)

  it("blame the caller's line", function()
    local ok, err = pcall(function() sched_mod.CosineAnnealingLR(opt, { T_max = -1 }) end)
    assert.is_false(ok)
    assert.truthy(err:match("^spec/sched_spec%.lua:%d+: bad argument"), err)
  end)
end)
