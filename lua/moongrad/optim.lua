-- moongrad.optim: optimizers (SGD, Adam, AdamW, RMSprop, Adagrad) and learning-rate schedulers
-- (lr_scheduler.StepLR, ExponentialLR, ReduceLROnPlateau), with PyTorch 1.13's semantics.
--
-- The update of one parameter is one fused C call (src/bind/optim.c, math in src/ops/optim.c), and
-- Adam's and AdamW's of a whole group one call (update_group);
-- this file keeps the parameter groups and the per-parameter state, and checks options. An
-- optimizer kind is one entry of KINDS: its options with their defaults (the one place they are
-- written), a check of a group's values, and `update`, which creates the state it needs and calls
-- the kernel. To add one: an entry in KINDS, a kernel and a binding.
local core = require "moongrad.core"
local util = require "moongrad.util"

local M = {}

-- ---- errors ------------------------------------------------------------------------------------
-- "bad argument #n to 'fname' (detail)", blamed on the user's line (moongrad.util): argerror from a
-- public function, argerror_at(level, ...) from a helper. Every `level` here counts from the
-- function that receives it, as error's does from its caller: a public function passes 2, and a
-- helper passes its own level + 1 to the helpers it calls.
local argerror, argerror_at, options = util.argerror, util.argerror_at, util.options

local function fmt(v)
  return type(v) == "string" and string.format("'%s'", v) or tostring(v)
end

-- ---- optimizer kinds ---------------------------------------------------------------------------
local REQUIRED = {} -- a default that must be given (SGD's lr, as PyTorch)

-- PyTorch's name for an option in "invalid <what>: <value>"
local WHAT = {lr = "learning rate", eps = "epsilon value"}

-- Each named option of the group must be >= 0; checked in the order given (PyTorch's).
local function check_nonneg(group, fname, level, ...)
  for i = 1, select("#", ...) do
    local key = select(i, ...)
    if group[key] < 0 then
      argerror_at(level + 1, fname, 2, "invalid %s: %s", WHAT[key] or key .. " value", group[key])
    end
  end
end

local function check_betas(group, fname, level)
  local betas = group.betas
  if type(betas) ~= "table" or type(betas[1]) ~= "number" or type(betas[2]) ~= "number" or #betas ~= 2 then
    argerror_at(level + 1, fname, 2, "betas must be a list of two numbers")
  end
  for i = 1, 2 do
    if betas[i] < 0 or betas[i] >= 1 then
      argerror_at(level + 1, fname, 2, "invalid beta parameter at index %d: %s", i, betas[i])
    end
  end
end

local function zeros(p) return core.zeros_like(p) end
local optim_sgd = core._optim_sgd

-- Adam and AdamW differ only in their kernel (decoupled weight decay) and default weight_decay.
local function adam_update(kernel)
  return function(p, grad, state, group)
    if not state.step then
      state.step = 0
      state.exp_avg, state.exp_avg_sq = zeros(p), zeros(p)
    end
    if group.amsgrad and not state.max_exp_avg_sq then state.max_exp_avg_sq = zeros(p) end
    state.step = state.step + 1
    kernel(p, grad, state.exp_avg, state.exp_avg_sq, group.amsgrad and state.max_exp_avg_sq or nil,
      group.lr, group.betas[1], group.betas[2], group.eps, group.weight_decay, state.step)
  end
end

-- A whole group's step in one C call (kernel: core._optim_adam_group or _adamw_group): it updates
-- every parameter it can take as it is and returns the index of one it cannot (state not created
-- yet, a strided tensor, ...), which goes through `update` (the per-parameter path, with its
-- checks and messages); then the C call resumes after it.
-- Errors go through `protect` (Optimizer:step's, below), which names the parameter.
local function adam_group_update(kernel, update)
  return function(group, state, protect)
    local params, betas, beta1, beta2 = group.params, group.betas, nil, nil
    if type(betas) == "table" then beta1, beta2 = betas[1], betas[2] end -- else: update's error
    local lr, eps, wd, amsgrad = group.lr, group.eps, group.weight_decay, group.amsgrad
    local from = 1
    while true do
      local ok, i = pcall(kernel, params, state, from, lr, beta1, beta2, eps, wd, amsgrad)
      if not ok then return i, nil end -- the kernel's own error (no parameter to blame: rare)
      if not i then return end
      local p = params[i] -- one parameter the kernel left
      local grad = p.grad
      if grad ~= nil then
        local err = protect(update, p, grad, state[p], group)
        if err then return err, i end
      end
      from = i + 1
    end
  end
end

local function adam_check(group, fname, level)
  check_nonneg(group, fname, level + 1, "lr", "eps")
  check_betas(group, fname, level + 1)
  check_nonneg(group, fname, level + 1, "weight_decay")
end

-- options: an ordered list of {name, default, type}
local KINDS = {
  SGD = {
    options = {{"lr", REQUIRED, "number"}, {"momentum", 0, "number"}, {"dampening", 0, "number"},
      {"nesterov", false, "boolean"}, {"weight_decay", 0, "number"}},
    args = {"the parameter", "its .grad", "state momentum_buffer"},
    check = function(group, fname, level)
      check_nonneg(group, fname, level + 1, "lr", "momentum", "weight_decay")
      if group.nesterov and (group.momentum <= 0 or group.dampening ~= 0) then
        argerror_at(level + 1, fname, 2, "Nesterov momentum requires a momentum and zero dampening")
      end
    end,
    update = function(p, grad, state, group)
      local first = false
      if group.momentum ~= 0 and not state.momentum_buffer then
        state.momentum_buffer, first = zeros(p), true
      end
      local momentum = group.momentum
      optim_sgd(p, grad, momentum ~= 0 and state.momentum_buffer or nil, group.lr, momentum,
        group.dampening, group.weight_decay, group.nesterov, first)
    end,
  },
  Adam = {
    options = {{"lr", 1e-3, "number"}, {"betas", {0.9, 0.999}, "table"}, {"eps", 1e-8, "number"},
      {"weight_decay", 0, "number"}, {"amsgrad", false, "boolean"}},
    args = {"the parameter", "its .grad", "state exp_avg", "state exp_avg_sq", "state max_exp_avg_sq"},
    check = adam_check,
    update = adam_update(core._optim_adam),
    update_group = adam_group_update(core._optim_adam_group, adam_update(core._optim_adam)),
  },
  AdamW = {
    options = {{"lr", 1e-3, "number"}, {"betas", {0.9, 0.999}, "table"}, {"eps", 1e-8, "number"},
      {"weight_decay", 1e-2, "number"}, {"amsgrad", false, "boolean"}},
    args = {"the parameter", "its .grad", "state exp_avg", "state exp_avg_sq", "state max_exp_avg_sq"},
    check = adam_check,
    update = adam_update(core._optim_adamw),
    update_group = adam_group_update(core._optim_adamw_group, adam_update(core._optim_adamw)),
  },
  RMSprop = {
    options = {{"lr", 1e-2, "number"}, {"alpha", 0.99, "number"}, {"eps", 1e-8, "number"},
      {"weight_decay", 0, "number"}, {"momentum", 0, "number"}, {"centered", false, "boolean"}},
    args = {"the parameter", "its .grad", "state square_avg", "state grad_avg", "state momentum_buffer"},
    check = function(group, fname, level)
      check_nonneg(group, fname, level + 1, "lr", "eps", "momentum", "weight_decay", "alpha")
    end,
    update = function(p, grad, state, group)
      if not state.step then
        state.step, state.square_avg = 0, zeros(p)
      end
      if group.momentum > 0 and not state.momentum_buffer then state.momentum_buffer = zeros(p) end
      if group.centered and not state.grad_avg then state.grad_avg = zeros(p) end
      state.step = state.step + 1
      core._optim_rmsprop(p, grad, state.square_avg, group.centered and state.grad_avg or nil,
        group.momentum > 0 and state.momentum_buffer or nil, group.lr, group.alpha, group.eps,
        group.weight_decay, group.momentum)
    end,
  },
  Adagrad = {
    options = {{"lr", 1e-2, "number"}, {"lr_decay", 0, "number"}, {"weight_decay", 0, "number"},
      {"initial_accumulator_value", 0, "number"}, {"eps", 1e-10, "number"}},
    args = {"the parameter", "its .grad", "state sum"},
    check = function(group, fname, level)
      check_nonneg(group, fname, level + 1, "lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    end,
    -- PyTorch creates Adagrad's state with the optimizer, not at the first step
    init = function(p, state, group)
      state.step, state.sum = 0, core.full_like(p, group.initial_accumulator_value)
    end,
    update = function(p, grad, state, group)
      state.step = state.step + 1
      core._optim_adagrad(p, grad, state.sum, group.lr, group.lr_decay, group.weight_decay, group.eps, state.step)
    end,
  },
}

-- the keys of a parameter group: params, then the optimizer's options (in errors, in this order)
for _, kind in pairs(KINDS) do kind.group_options = {{"params"}, table.unpack(kind.options)} end

-- An option's value, checked against its entry {name, default, type} of an options list: REQUIRED
-- still there means that nobody gave it. Returns the value.
local function check_option(fname, option, value, level)
  local name, typ = option[1], option[3]
  if value == REQUIRED then argerror_at(level + 1, fname, 2, "%s is required", name) end
  if type(value) ~= typ and not (typ == "number|table" and (type(value) == "number" or type(value) == "table")) then
    argerror_at(level + 1, fname, 2, "%s must be a %s, got %s", name, typ, type(value))
  end
  return value
end

-- ---- the optimizer object ------------------------------------------------------------------------
local Optimizer = {}

-- opt.lr reads the first group's learning rate; setting it sets every group's.
local Optimizer_mt = {
  __index = function(self, key)
    if key == "lr" then return rawget(self, "param_groups")[1].lr end
    return Optimizer[key]
  end,
  __newindex = function(self, key, value)
    if key == "lr" then
      if type(value) ~= "number" or value < 0 then
        error(string.format("'lr': the learning rate must be a non-negative number, got %s", fmt(value)), 2)
      end
      for _, group in ipairs(self.param_groups) do group.lr = value end
    else
      rawset(self, key, value)
    end
  end,
}

local function is_optimizer(x) return getmetatable(x) == Optimizer_mt end

local function copy_value(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = x end
  return t
end

-- A checked list of tensors from `params` (a tensor or a list); `where` names it in errors.
local function param_list(params, where, fname, level)
  if core.is_tensor(params) then return {params} end
  if type(params) ~= "table" then
    argerror_at(level + 1, fname, 1, "%s must be a list of tensors, got %s", where, type(params))
  end
  local list = {}
  for i, p in ipairs(params) do
    if not core.is_tensor(p) then
      argerror_at(level + 1, fname, 1, "%s[%d] is a %s, expected a tensor", where, i, type(p))
    end
    if not p.is_leaf then argerror_at(level + 1, fname, 1, "can't optimize a non-leaf tensor") end
    if p.dtype ~= "float32" and p.dtype ~= "float64" then
      argerror_at(level + 1, fname, 1, "%s[%d] is %s: optimizers update float32 or float64 tensors", where, i,
        p.dtype)
    end
    list[i] = p
  end
  return list
end

-- One parameter group: its params, then every option from the group, else from `opts` (the
-- optimizer's options over the defaults).
local function make_group(kind, spec, opts, fname, level, where)
  local group = {params = param_list(spec.params, where, fname, level + 1)}
  for _, option in ipairs(kind.options) do
    local name = option[1]
    local value = spec[name]
    if value == nil then value = opts[name] end
    group[name] = copy_value(check_option(fname, option, value, level + 1))
  end
  kind.check(group, fname, level + 1)
  return group
end

local function new_optimizer(name, params, opts)
  local kind = KINDS[name]
  opts = options(name, 2, opts, kind.options, 3)
  if core.is_tensor(params) or type(params) ~= "table" then
    argerror_at(3, name, 1, "params must be a list of tensors or of parameter groups, got %s",
      core.is_tensor(params) and "a tensor" or type(params))
  end
  if #params == 0 then argerror_at(3, name, 1, "optimizer got an empty parameter list") end
  local grouped = not core.is_tensor(params[1]) and type(params[1]) == "table"
  local specs = grouped and params or {{params = params}}
  local self = setmetatable({param_groups = {}, state = {}, _kind = kind, _name = name}, Optimizer_mt)
  local seen = {}
  for i, spec in ipairs(specs) do
    local where = grouped and string.format("params[%d].params", i) or "params"
    if type(spec) ~= "table" or core.is_tensor(spec) then
      argerror_at(3, name, 1, "params[%d] is a %s, expected a parameter group", i,
        core.is_tensor(spec) and "tensor" or type(spec))
    end
    if grouped then options(name, 1, spec, kind.group_options, 3) end
    local group = make_group(kind, spec, opts, name, 3, where)
    for _, p in ipairs(group.params) do
      if seen[p] then argerror_at(3, name, 1, "some parameters appear in more than one parameter group") end
      seen[p] = true
      self.state[p] = {}
      if kind.init then kind.init(p, self.state[p], group) end
    end
    self.param_groups[i] = group
  end
  return self
end

for name in pairs(KINDS) do
  M[name] = function(params, opts)
    local opt = new_optimizer(name, params, opts) -- not a tail call: errors count this frame
    return opt
  end
end

-- opt:step([closure]): updates every parameter that has a gradient (the others are skipped, as in
-- PyTorch). With a closure, calls it first (with grad mode on) and returns its result.
--
-- A parameter's update that fails (its .grad or a state buffer released by <close>, a state buffer
-- of another shape, ...) is reported as step's error naming the optimizer, the parameter and the
-- tensor: "'step': Adam param_groups[1].params[2]: state exp_avg: state buffer ({5} float32) must
-- have the parameter's shape and dtype ({2} float32)", not as the internal C call's bad argument.
local function protect(update, p, grad, st, group)
  local ok, err = pcall(update, p, grad, st, group)
  if not ok then return err end
end

local function step_error(self, g, i, err)
  err = tostring(err):gsub("^[^\n]-:%d+: ", "", 1) -- the position inside this file
  local n, detail = err:match("^bad argument #(%d+) to '[^']*' %((.*)%)$")
  local what = n and self._kind.args[tonumber(n)]
  if what then err = what .. ": " .. detail elseif detail then err = detail end
  if i then
    error(string.format("'step': %s param_groups[%d].params[%d]: %s", self._name, g, i, err), 3)
  end
  error(string.format("'step': %s param_groups[%d]: %s", self._name, g, err), 3)
end

function Optimizer:step(closure)
  local loss
  if closure ~= nil then
    if type(closure) ~= "function" then argerror("step", 1, "function expected, got %s", type(closure)) end
    loss = core.enable_grad(closure)
  end
  local kind, state = self._kind, self.state
  local update_group, update = kind.update_group, kind.update
  for g, group in ipairs(self.param_groups) do
    if update_group then
      local err, i = update_group(group, state, protect)
      if err then step_error(self, g, i, err) end
    else
      for i, p in ipairs(group.params) do
        local grad = p.grad
        if grad ~= nil then
          local err = protect(update, p, grad, state[p], group)
          if err then step_error(self, g, i, err) end
        end
      end
    end
  end
  return loss
end

-- opt:zero_grad([{set_to_none = false}]): zeroes every gradient in place, as PyTorch 1.13 does;
-- set_to_none drops them instead.
function Optimizer:zero_grad(opts)
  if opts ~= nil then options("zero_grad", 1, opts, {set_to_none = false}, 2) end
  local zero_grad = core.zero_grad -- the method itself, without the lookup through the tensor
  for _, group in ipairs(self.param_groups) do
    local params = group.params
    for i = 1, #params do zero_grad(params[i], opts) end
  end
end

-- opt:state_dict(): {state = {[i] = {step = n, exp_avg = t, ...}}, param_groups = {{lr = ...,
-- params = {1, 2}}, ...}}, parameters numbered from 1 across groups in order, as PyTorch numbers
-- them from 0. The state tensors are the optimizer's own (PyTorch's are too): load_state_dict copies.
function Optimizer:state_dict()
  local state, groups, index = {}, {}, 0
  for g, group in ipairs(self.param_groups) do
    local packed = {}
    for k, v in pairs(group) do
      if k ~= "params" then packed[k] = copy_value(v) end
    end
    packed.params = {}
    for i, p in ipairs(group.params) do
      index = index + 1
      packed.params[i] = index
      if next(self.state[p]) ~= nil then state[index] = copy_value(self.state[p]) end
    end
    groups[g] = packed
  end
  return {state = state, param_groups = groups}
end

-- A state value loaded for parameter p: tensors are copied in p's dtype (step stays a number).
local function load_value(p, key, v)
  if core.is_tensor(v) then
    if key == "step" then return math.tointeger(v:item()) or v:item() end
    return v:detach():to(p.dtype):clone()
  end
  return copy_value(v)
end

-- opt:load_state_dict(sd): takes the groups' options and the state of a state_dict() of an optimizer
-- with as many groups of as many parameters.
function Optimizer:load_state_dict(sd)
  if type(sd) ~= "table" or type(sd.param_groups) ~= "table" or type(sd.state) ~= "table" then
    argerror("load_state_dict", 1, "a state dict {state = ..., param_groups = ...} expected")
  end
  local groups, saved = self.param_groups, sd.param_groups
  if #groups ~= #saved then
    argerror("load_state_dict", 1, "loaded state dict has %d parameter groups, the optimizer %d", #saved, #groups)
  end
  for g, group in ipairs(groups) do
    if type(saved[g].params) ~= "table" or #saved[g].params ~= #group.params then
      argerror("load_state_dict", 1,
        "loaded state dict's parameter group %d doesn't match the size of the optimizer's group", g)
    end
  end
  local state, new_groups = {}, {}
  for g, group in ipairs(groups) do
    local new = {}
    for k, v in pairs(saved[g]) do
      if k ~= "params" then new[k] = copy_value(v) end
    end
    new.params = group.params
    for i, p in ipairs(group.params) do
      local s = {}
      for k, v in pairs(sd.state[saved[g].params[i]] or {}) do s[k] = load_value(p, k, v) end
      state[p] = s
    end
    new_groups[g] = new
  end
  self.param_groups, self.state = new_groups, state
end

Optimizer_mt.__tostring = function(self)
  local lines = {self._name .. " ("}
  for g, group in ipairs(self.param_groups) do
    lines[#lines + 1] = string.format("Parameter Group %d", g - 1)
    for _, option in ipairs(self._kind.options) do
      local v = group[option[1]]
      if type(v) == "table" then v = "{" .. table.concat(v, ", ") .. "}" end
      lines[#lines + 1] = string.format("    %s: %s", option[1], tostring(v))
    end
  end
  lines[#lines + 1] = ")"
  return table.concat(lines, "\n")
end

-- ---- learning-rate schedulers ------------------------------------------------------------------
local lr_scheduler = {}
M.lr_scheduler = lr_scheduler

-- Reads a scheduler's options against `defaults` (an ordered list of {name, default, type});
-- returns the merged table.
local function scheduler_opts(fname, opt, opts, defaults, level)
  if not is_optimizer(opt) then
    argerror_at(level + 1, fname, 1, "optimizer expected, got %s", core.is_tensor(opt) and "tensor" or type(opt))
  end
  local merged = options(fname, 2, opts, defaults, level + 1)
  for _, d in ipairs(defaults) do check_option(fname, d, merged[d[1]], level + 1) end
  return merged
end

-- StepLR and ExponentialLR: PyTorch's chainable form, each step multiplies the groups' current lr
-- (so a user's change to opt.lr carries on). Construction sets initial_lr and makes step 0.
local Scheduler = {}
Scheduler.__index = Scheduler

local function current_lrs(opt)
  local lrs = {}
  for i, group in ipairs(opt.param_groups) do lrs[i] = group.lr end
  return lrs
end

local function new_scheduler(opt, factor_at)
  local self = setmetatable({optimizer = opt, last_epoch = 0, _factor_at = factor_at, base_lrs = {}}, Scheduler)
  for i, group in ipairs(opt.param_groups) do
    if group.initial_lr == nil then group.initial_lr = group.lr end
    self.base_lrs[i] = group.initial_lr
  end
  self._last_lr = current_lrs(self.optimizer)
  return self
end


-- sched:step(): one epoch on; returns nothing.
function Scheduler:step()
  self.last_epoch = self.last_epoch + 1
  local factor = self._factor_at(self.last_epoch)
  if factor then
    for _, group in ipairs(self.optimizer.param_groups) do group.lr = group.lr * factor end
  end
  self._last_lr = current_lrs(self.optimizer)
end

-- sched:get_last_lr(): the list of the groups' learning rates after the last step.
function Scheduler:get_last_lr()
  return copy_value(self._last_lr)
end

function Scheduler:state_dict()
  return {last_epoch = self.last_epoch, base_lrs = copy_value(self.base_lrs), _last_lr = copy_value(self._last_lr)}
end

function Scheduler:load_state_dict(sd)
  self.last_epoch, self.base_lrs, self._last_lr = sd.last_epoch, copy_value(sd.base_lrs), copy_value(sd._last_lr)
end

-- StepLR(opt, {step_size, gamma = 0.1}): lr *= gamma every step_size steps.
function lr_scheduler.StepLR(opt, opts)
  local o = scheduler_opts("StepLR", opt, opts, {{"step_size", REQUIRED, "number"}, {"gamma", 0.1, "number"}}, 2)
  if math.tointeger(o.step_size) == nil or o.step_size < 1 then
    argerror("StepLR", 2, "step_size must be a positive integer, got %s", tostring(o.step_size))
  end
  local sched = new_scheduler(opt, function(epoch)
    if epoch % o.step_size == 0 then return o.gamma end
  end)
  sched.step_size, sched.gamma = o.step_size, o.gamma
  return sched
end

-- ExponentialLR(opt, {gamma}): lr *= gamma at every step.
function lr_scheduler.ExponentialLR(opt, opts)
  local o = scheduler_opts("ExponentialLR", opt, opts, {{"gamma", REQUIRED, "number"}}, 2)
  local sched = new_scheduler(opt, function() return o.gamma end)
  sched.gamma = o.gamma
  return sched
end

-- ReduceLROnPlateau(opt, {mode = "min", factor = 0.1, patience = 10, threshold = 1e-4,
-- threshold_mode = "rel", cooldown = 0, min_lr = 0, eps = 1e-8}): sched:step(metric) multiplies
-- every lr by factor once the metric has not improved for more than patience steps.
local Plateau = {}
Plateau.__index = Plateau

local PLATEAU_OPTIONS = {{"mode", "min", "string"}, {"factor", 0.1, "number"}, {"patience", 10, "number"},
  {"threshold", 1e-4, "number"}, {"threshold_mode", "rel", "string"}, {"cooldown", 0, "number"},
  {"min_lr", 0, "number|table"}, {"eps", 1e-8, "number"}}

function lr_scheduler.ReduceLROnPlateau(opt, opts)
  local fname = "ReduceLROnPlateau"
  local o = scheduler_opts(fname, opt, opts, PLATEAU_OPTIONS, 2)
  if o.factor >= 1 then argerror(fname, 2, "factor should be < 1.0, got %s", tostring(o.factor)) end
  if o.mode ~= "min" and o.mode ~= "max" then
    argerror(fname, 2, "mode '%s' is unknown (expected 'min' or 'max')", o.mode)
  end
  if o.threshold_mode ~= "rel" and o.threshold_mode ~= "abs" then
    argerror(fname, 2, "threshold mode '%s' is unknown (expected 'rel' or 'abs')", o.threshold_mode)
  end
  local min_lrs = {}
  if type(o.min_lr) == "table" then
    if #o.min_lr ~= #opt.param_groups then
      argerror(fname, 2, "expected %d min_lrs, got %d", #opt.param_groups, #o.min_lr)
    end
    for i, v in ipairs(o.min_lr) do min_lrs[i] = v end
  else
    for i = 1, #opt.param_groups do min_lrs[i] = o.min_lr end
  end
  local self = setmetatable({optimizer = opt, last_epoch = 0, cooldown_counter = 0, num_bad_epochs = 0,
    min_lrs = min_lrs}, Plateau)
  for k, v in pairs(o) do
    if k ~= "min_lr" then self[k] = v end
  end
  self.best = o.mode == "min" and math.huge or -math.huge
  return self
end

function Plateau:is_better(a, best)
  if self.mode == "min" and self.threshold_mode == "rel" then return a < best * (1 - self.threshold)
  elseif self.mode == "min" then return a < best - self.threshold
  elseif self.threshold_mode == "rel" then return a > best * (self.threshold + 1)
  else return a > best + self.threshold end
end

-- sched:step(metric): metric a number or a one-element tensor.
function Plateau:step(metric)
  if core.is_tensor(metric) then metric = metric:item() end
  if type(metric) ~= "number" then argerror("step", 1, "number expected, got %s", type(metric)) end
  self.last_epoch = self.last_epoch + 1
  if self:is_better(metric, self.best) then
    self.best, self.num_bad_epochs = metric, 0
  else
    self.num_bad_epochs = self.num_bad_epochs + 1
  end
  if self.cooldown_counter > 0 then
    self.cooldown_counter = self.cooldown_counter - 1
    self.num_bad_epochs = 0
  end
  if self.num_bad_epochs > self.patience then
    for i, group in ipairs(self.optimizer.param_groups) do
      local old = group.lr
      local new = math.max(old * self.factor, self.min_lrs[i])
      if old - new > self.eps then group.lr = new end
    end
    self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
  end
end

function Plateau:get_last_lr()
  return current_lrs(self.optimizer)
end

local PLATEAU_STATE = {"mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "eps",
  "last_epoch", "cooldown_counter", "num_bad_epochs", "best"}

function Plateau:state_dict()
  local sd = {min_lrs = copy_value(self.min_lrs)}
  for _, k in ipairs(PLATEAU_STATE) do sd[k] = self[k] end
  return sd
end

function Plateau:load_state_dict(sd)
  for _, k in ipairs(PLATEAU_STATE) do
    if sd[k] ~= nil then self[k] = sd[k] end
  end
  if sd.min_lrs then self.min_lrs = copy_value(sd.min_lrs) end
end

return M
