-- moongrad.optim: optimizers (SGD, Adam, AdamW, RMSprop, Adagrad) and learning-rate schedulers
-- (lr_scheduler.StepLR, ExponentialLR, ReduceLROnPlateau), with PyTorch 1.13's semantics.
--
-- The update of one parameter is one fused C call (src/bind/optim.c, math in src/ops/optim.c), and
-- Adam's and AdamW's of a whole group one call (update_group);
-- this file keeps the parameter groups and the per-parameter state, and checks options. An
-- optimizer kind is one entry of KINDS: its options with their defaults (the one place they are
-- written), a check of a group's values, and `update`, which creates the state it needs and calls
-- the kernel (SGD has `step_group` instead: a whole group under one pcall). To add one: an entry in
-- KINDS, a kernel and a binding.
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
local grad_of = core._grad -- p.grad, without the lookup through the tensor's __index
local zero_grads = core._zero_grads

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
    -- the whole group under one pcall (Optimizer:step): for each parameter with a gradient, its
    -- momentum buffer (made zero on the first step) and the update; prog[1] names the one being
    -- updated (for the error's message)
    step_group = function(group, state, prog)
      local lr, momentum, dampening, wd, nesterov = group.lr, group.momentum, group.dampening,
        group.weight_decay, group.nesterov
      local params = group.params
      local i, p = 1, params[1]
      while p ~= nil do -- ipairs's walk, without a C call per element
        prog[1] = i
        local grad = grad_of(p)
        if grad ~= nil then
          local buf, first = nil, false
          if momentum ~= 0 then
            local st = state[p]
            buf = st.momentum_buffer
            if not buf then
              buf, first = zeros(p), true
              st.momentum_buffer = buf
            end
          end
          optim_sgd(p, grad, buf, lr, momentum, dampening, wd, nesterov, first)
        end
        i = i + 1
        p = params[i]
      end
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
  local mt = type(params) == "table" and getmetatable(params)
  if type(mt) == "table" and rawget(mt, "_is_module_class") then
    argerror_at(3, name, 1, "params must be a list of tensors, got a Module (%s): pass model:parameters()",
      tostring(rawget(params, "_name") or mt._name))
  end
  if core.is_tensor(params) or type(params) ~= "table" then
    argerror_at(3, name, 1, "params must be a list of tensors or of parameter groups, got %s",
      core.is_tensor(params) and "a tensor" or type(params))
  end
  if #params == 0 then argerror_at(3, name, 1, "optimizer got an empty parameter list") end
  local grouped = not core.is_tensor(params[1]) and type(params[1]) == "table"
  local specs = grouped and params or {{params = params}}
  local self = setmetatable({param_groups = {}, state = {}, _kind = kind, _name = name}, Optimizer_mt)
  -- the methods as the optimizer's own fields: opt:step() and opt:zero_grad() run every training
  -- step, and a method found through __index (a function, for opt.lr) cost a Lua call each time
  for k, fn in pairs(Optimizer) do rawset(self, k, fn) end
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
  local update_group, update, step_group = kind.update_group, kind.update, kind.step_group
  local groups = self.param_groups
  local g, group = 1, groups[1]
  while group ~= nil do -- ipairs's walk, without a C call per element
    if step_group then
      local prog = self._progress -- {index of the parameter being updated}, reused by every step
      if not prog then
        prog = {}
        self._progress = prog
      end
      prog[1] = nil
      local ok, err = pcall(step_group, group, state, prog)
      if not ok then step_error(self, g, prog[1], err) end
    elseif update_group then
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
    g = g + 1
    group = groups[g]
  end
  return loss
end

-- opt:zero_grad([{set_to_none = false}]): zeroes every gradient in place, as PyTorch 1.13 does;
-- set_to_none drops them instead.
function Optimizer:zero_grad(opts)
  if opts ~= nil then options("zero_grad", 1, opts, {set_to_none = false}, 2) end
  local zero_grad = core.zero_grad -- the method itself, without the lookup through the tensor
  local groups = self.param_groups
  for g = 1, #groups do
    local params = groups[g].params
    if opts == nil then -- in one C call; an element it leaves (its error) goes through zero_grad
      local from = 1
      while true do
        local i = zero_grads(params, from)
        if not i then break end
        zero_grad(params[i])
        from = i + 1
      end
    else
      for i = 1, #params do zero_grad(params[i], opts) end
    end
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
  if self._compute then
    self:_apply() -- not a tail call: the errors of _compute count this frame
    return
  end
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

-- ---- schedulers that compute each lr (PyTorch's get_lr), applied when created and at each step ----
-- self._compute(self) returns the list of the groups' new learning rates at self.last_epoch.
function Scheduler:_apply()
  local lrs = self:_compute()
  for i, group in ipairs(self.optimizer.param_groups) do group.lr = lrs[i] end
  self._last_lr = current_lrs(self.optimizer)
end

local function computed_scheduler(opt, compute)
  local self = new_scheduler(opt)
  self._compute = compute
  self:_apply() -- PyTorch's _initial_step: the lrs of epoch 0
  return self
end

-- per-group values from a number or a list of one per group (PyTorch's _format_param)
local function per_group(fname, opt, name, v, level)
  local n = #opt.param_groups
  if type(v) == "table" then
    if #v ~= n then argerror_at(level + 1, fname, 2, "expected %d values for %s, got %d", n, name, #v) end
    for i = 1, n do
      if type(v[i]) ~= "number" then argerror_at(level + 1, fname, 2, "%s[%d] must be a number", name, i) end
    end
    return copy_value(v)
  end
  local out = {}
  for i = 1, n do out[i] = v end
  return out
end

-- MultiStepLR(opt, {milestones, gamma = 0.1}): lr *= gamma at each milestone epoch (a milestone
-- listed twice multiplies by gamma^2, as PyTorch's Counter).
function lr_scheduler.MultiStepLR(opt, opts)
  local o = scheduler_opts("MultiStepLR", opt, opts, {{"milestones", REQUIRED, "table"}, {"gamma", 0.1, "number"}}, 2)
  local counts, milestones = {}, {}
  for i, m in ipairs(o.milestones) do
    if math.tointeger(m) == nil then
      argerror("MultiStepLR", 2, "milestones[%d] must be an integer, got %s", i, tostring(m))
    end
    m = math.tointeger(m)
    counts[m] = (counts[m] or 0) + 1
    milestones[i] = m
  end
  table.sort(milestones)
  local gamma = o.gamma
  local sched = computed_scheduler(opt, function(self)
    local count = counts[self.last_epoch]
    local lrs = current_lrs(self.optimizer)
    if count then
      for i, lr in ipairs(lrs) do lrs[i] = lr * gamma ^ count end
    end
    return lrs
  end)
  sched.milestones, sched.gamma = milestones, gamma
  return sched
end

-- CosineAnnealingLR(opt, {T_max, eta_min = 0}): PyTorch's recursive form, step for step (each lr
-- follows eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, and goes back up
-- after T_max epochs).
function lr_scheduler.CosineAnnealingLR(opt, opts)
  local o = scheduler_opts("CosineAnnealingLR", opt, opts, {{"T_max", REQUIRED, "number"}, {"eta_min", 0, "number"}}, 2)
  if o.T_max <= 0 then argerror("CosineAnnealingLR", 2, "T_max must be positive, got %s", tostring(o.T_max)) end
  local T_max, eta_min = o.T_max, o.eta_min
  local sched = computed_scheduler(opt, function(self)
    local epoch, lrs = self.last_epoch, current_lrs(self.optimizer)
    if epoch == 0 then return lrs end
    if (epoch - 1 - T_max) % (2 * T_max) == 0 then
      for i, lr in ipairs(lrs) do
        lrs[i] = lr + (self.base_lrs[i] - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
      end
      return lrs
    end
    for i, lr in ipairs(lrs) do
      lrs[i] = (1 + math.cos(math.pi * epoch / T_max)) / (1 + math.cos(math.pi * (epoch - 1) / T_max))
        * (lr - eta_min) + eta_min
    end
    return lrs
  end)
  sched.T_max, sched.eta_min = T_max, eta_min
  return sched
end

-- LambdaLR(opt, lr_lambda) or LambdaLR(opt, {lr_lambda = ...}): lr = initial lr * lr_lambda(epoch),
-- from epoch 0 when created; lr_lambda is a function or a list of one per parameter group.
function lr_scheduler.LambdaLR(opt, lr_lambda)
  local fname = "LambdaLR"
  if type(lr_lambda) == "table" and lr_lambda.lr_lambda ~= nil then
    lr_lambda = options(fname, 2, lr_lambda, {{"lr_lambda", false}}, 2).lr_lambda
  end
  scheduler_opts(fname, opt, nil, {}, 2)
  local n = #opt.param_groups
  local lambdas = {}
  if type(lr_lambda) == "function" then
    for i = 1, n do lambdas[i] = lr_lambda end
  elseif type(lr_lambda) == "table" and #lr_lambda > 0 then
    if #lr_lambda ~= n then argerror(fname, 2, "expected %d lr_lambdas, got %d", n, #lr_lambda) end
    for i = 1, n do
      if type(lr_lambda[i]) ~= "function" then
        argerror(fname, 2, "lr_lambda[%d] must be a function, got %s", i, type(lr_lambda[i]))
      end
      lambdas[i] = lr_lambda[i]
    end
  else
    argerror(fname, 2, "a function of the epoch (or a list of one per parameter group) expected, got %s",
      type(lr_lambda))
  end
  local sched = computed_scheduler(opt, function(self)
    local lrs = {}
    for i, base in ipairs(self.base_lrs) do
      local factor = lambdas[i](self.last_epoch)
      if type(factor) ~= "number" then
        error(string.format("'LambdaLR': lr_lambda returned a %s at epoch %d, expected a number", type(factor),
          self.last_epoch), 4)
      end
      lrs[i] = base * factor
    end
    return lrs
  end)
  sched.lr_lambdas = lambdas
  return sched
end

-- OneCycleLR(opt, {max_lr, total_steps | epochs and steps_per_epoch, pct_start = 0.3,
-- anneal_strategy = "cos", cycle_momentum = true, base_momentum = 0.85, max_momentum = 0.95,
-- div_factor = 25, final_div_factor = 1e4, three_phase = false}): the 1cycle policy, one step per
-- batch, as PyTorch's. It sets each group's lr (max_lr / div_factor) when created, and cycles the
-- momentum (SGD, RMSprop) or beta1 (Adam, AdamW) inversely to the lr.
local ONECYCLE_OPTIONS = {{"max_lr", REQUIRED, "number|table"}, {"total_steps", 0, "number"},
  {"epochs", 0, "number"}, {"steps_per_epoch", 0, "number"}, {"pct_start", 0.3, "number"},
  {"anneal_strategy", "cos", "string"}, {"cycle_momentum", true, "boolean"},
  {"base_momentum", 0.85, "number|table"}, {"max_momentum", 0.95, "number|table"},
  {"div_factor", 25, "number"}, {"final_div_factor", 1e4, "number"}, {"three_phase", false, "boolean"}}

local function anneal_cos(start, stop, pct)
  return stop + (start - stop) / 2.0 * (math.cos(math.pi * pct) + 1)
end

local function anneal_linear(start, stop, pct)
  return (stop - start) * pct + start
end

function lr_scheduler.OneCycleLR(opt, opts)
  local fname = "OneCycleLR"
  if opts ~= nil and (type(opts) ~= "table" or core.is_tensor(opts)) then
    argerror(fname, 2, "options table expected, got %s", core.is_tensor(opts) and "tensor" or type(opts))
  end
  local given = opts or {}
  local o = scheduler_opts(fname, opt, opts, ONECYCLE_OPTIONS, 2)
  local total
  if given.total_steps ~= nil then
    if math.tointeger(o.total_steps) == nil or o.total_steps <= 0 then
      argerror(fname, 2, "expected a positive integer total_steps, got %s", tostring(o.total_steps))
    end
    total = math.tointeger(o.total_steps)
  elseif given.epochs ~= nil or given.steps_per_epoch ~= nil then
    for _, k in ipairs({"epochs", "steps_per_epoch"}) do
      if math.tointeger(o[k]) == nil or o[k] <= 0 then
        argerror(fname, 2, "expected a positive integer %s, got %s", k, tostring(given[k]))
      end
    end
    total = math.tointeger(o.epochs * o.steps_per_epoch)
  else
    argerror(fname, 2, "total_steps, or epochs and steps_per_epoch, must be given")
  end
  if not (o.pct_start >= 0 and o.pct_start <= 1) then
    argerror(fname, 2, "expected pct_start between 0 and 1, got %s", tostring(o.pct_start))
  end
  local anneal
  if o.anneal_strategy == "cos" then anneal = anneal_cos
  elseif o.anneal_strategy == "linear" then anneal = anneal_linear
  else argerror(fname, 2, "anneal_strategy must be 'cos' or 'linear', got '%s'", o.anneal_strategy) end
  local pct = o.pct_start
  local phases
  if o.three_phase then
    phases = {
      {end_step = pct * total - 1, lr = {"initial_lr", "max_lr"}, mom = {"max_momentum", "base_momentum"}},
      {end_step = 2 * pct * total - 2, lr = {"max_lr", "initial_lr"}, mom = {"base_momentum", "max_momentum"}},
      {end_step = total - 1, lr = {"initial_lr", "min_lr"}, mom = {"max_momentum", "max_momentum"}},
    }
  else
    phases = {
      {end_step = pct * total - 1, lr = {"initial_lr", "max_lr"}, mom = {"max_momentum", "base_momentum"}},
      {end_step = total - 1, lr = {"max_lr", "min_lr"}, mom = {"base_momentum", "max_momentum"}},
    }
  end
  local groups = opt.param_groups
  local max_lrs = per_group(fname, opt, "max_lr", o.max_lr, 2)
  local use_beta1
  if o.cycle_momentum then
    if groups[1].momentum == nil and groups[1].betas == nil then
      argerror(fname, 1, "the optimizer has no momentum or betas to cycle: pass cycle_momentum = false")
    end
    use_beta1 = groups[1].betas ~= nil
  end
  local max_moms = o.cycle_momentum and per_group(fname, opt, "max_momentum", o.max_momentum, 2)
  local base_moms = o.cycle_momentum and per_group(fname, opt, "base_momentum", o.base_momentum, 2)
  for i, group in ipairs(groups) do
    group.initial_lr = max_lrs[i] / o.div_factor
    group.max_lr = max_lrs[i]
    group.min_lr = group.initial_lr / o.final_div_factor
    if o.cycle_momentum then
      if use_beta1 then group.betas = {max_moms[i], group.betas[2]} else group.momentum = max_moms[i] end
      group.max_momentum, group.base_momentum = max_moms[i], base_moms[i]
    end
  end
  local cycle = o.cycle_momentum
  local sched = computed_scheduler(opt, function(self)
    local step = self.last_epoch
    if step > total then
      error(string.format("'OneCycleLR': tried to step %d times; the specified number of total steps is %d",
        step + 1, total), 4)
    end
    local lrs = {}
    for i, group in ipairs(self.optimizer.param_groups) do
      local start, lr, mom = 0, nil, nil
      for p, phase in ipairs(phases) do
        local stop = phase.end_step
        if step <= stop or p == #phases then
          local frac = (step - start) / (stop - start)
          lr = anneal(group[phase.lr[1]], group[phase.lr[2]], frac)
          if cycle then mom = anneal(group[phase.mom[1]], group[phase.mom[2]], frac) end
          break
        end
        start = stop
      end
      lrs[i] = lr
      if cycle then
        if use_beta1 then group.betas = {mom, group.betas[2]} else group.momentum = mom end
      end
    end
    return lrs
  end)
  sched.total_steps = total
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
