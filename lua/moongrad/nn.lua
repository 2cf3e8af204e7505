-- mg.nn: modules as in torch.nn, written in Lua over the C kernels of mg.F.
--
-- Holds the Module base class (parameters, state_dict, train/eval, printing, Module:extend() for
-- user classes), the layers Linear, Sequential, ReLU, Tanh, Sigmoid, Dropout, the loss modules
-- MSELoss, L1Loss, CrossEntropyLoss, BCEWithLogitsLoss, and nn.utils (clip_grad_norm_,
-- clip_grad_value_). Every numeric operation is an mg.F kernel or a tensor method: nothing here
-- loops over elements (the loops run over parameters and modules).
--
-- How registration works: a module keeps its parameters in self._parameters, its children in
-- self._modules and its buffers in self._buffers, each name also appended to an order list, as
-- PyTorch's OrderedDicts. Assigning in init (`self.fc = nn.Linear(2, 3)`, `self.w = mg.randn(3,
-- {requires_grad = true})`) registers a Module instance as a child and a leaf tensor that requires
-- grad as a parameter; anything else is a plain field. A name stays what it was registered as:
-- assigning nil removes it (Linear's bias with {bias = false}), assigning a tensor to a parameter's
-- name replaces the parameter (it keeps its place in the order).
--
-- A tensor that does not require grad when assigned stays a plain field: register_parameter and
-- register_buffer register one explicitly.
--
-- User classes: `local Net = nn.Module:extend("Net")` (the name is what tostring prints, as PyTorch
-- prints the class name), `function Net:init(...)` (the registration tables exist before init runs,
-- so it need not call the parent's init), `function Net:forward(x)`, then `Net(...)` or
-- `Net.new(...)`.
--
-- named_parameters(), named_children() and named_modules() are iterators, used as PyTorch's are:
-- `for name, p in model:named_parameters() do ... end`; parameters(), children() and modules() are
-- Lua lists.
--
-- To add a layer: `local L = Module:extend("Name")`, an `init(...)` that checks its options with
-- `options()` and assigns its parameters, a `forward`, and an `extra_repr` for tostring.
local core = require "moongrad.core"

local F = core.F
local is_tensor = core.is_tensor

local M = {}

-- ============================================================ options

local util = require "moongrad.util"
local options, argerror, argerror_at = util.options, util.argerror, util.argerror_at

-- ============================================================ Module

local Module = {}
Module._name = "Module"
M.Module = Module

local function is_module(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "_is_module_class") == true
end
M.is_module = is_module

-- instance lookup: parameters, buffers and children first (they live in their own tables so that
-- every assignment to them passes through __newindex), then the class chain
local function instance_index(self, k)
  local v = rawget(self, "_parameters")[k]
  if v ~= nil then return v end
  v = rawget(self, "_modules")[k]
  if v ~= nil then return v end
  v = rawget(self, "_buffers")[k]
  if v ~= nil then return v end
  return getmetatable(self)[k]
end

local function add_name(self, order, name)
  local list = rawget(self, order)
  for _, n in ipairs(list) do
    if n == name then return end
  end
  list[#list + 1] = name
end

local function remove_name(self, order, name)
  local list = rawget(self, order)
  for i, n in ipairs(list) do
    if n == name then table.remove(list, i) return end
  end
end

-- Registers v (a tensor or Module, or nil) as `name` in a registration table (store, e.g.
-- "_parameters", and its order list); a plain field of that name goes.
local function register(self, store, order, name, v)
  rawset(self, name, nil)
  rawget(self, store)[name] = v
  if v ~= nil then add_name(self, order, name) end
end

-- An assignment to a name already registered in (store, order): nil removes it, anything else
-- must be what that table holds (`holds`; `what` and `expected` name it in the error, which blames
-- the assignment: level 3 from here).
local function reassign(self, store, order, k, v, holds, what, expected)
  if v ~= nil and not holds(v) then
    error(string.format("cannot assign a %s as %s '%s' (%s or nil expected)", type(v), what, tostring(k),
      expected), 3)
  end
  rawget(self, store)[k] = v
  if v == nil then remove_name(self, order, k) end
end

local function instance_newindex(self, k, v)
  local params, mods, bufs = rawget(self, "_parameters"), rawget(self, "_modules"), rawget(self, "_buffers")
  if params[k] ~= nil then
    reassign(self, "_parameters", "_param_order", k, v, is_tensor, "parameter", "a tensor")
  elseif mods[k] ~= nil then
    reassign(self, "_modules", "_module_order", k, v, is_module, "child module", "a Module")
  elseif bufs[k] ~= nil then
    reassign(self, "_buffers", "_buffer_order", k, v, is_tensor, "buffer", "a tensor")
  elseif type(k) == "string" and is_tensor(v) and v.requires_grad and v.is_leaf then
    register(self, "_parameters", "_param_order", k, v)
  elseif type(k) == "string" and is_module(v) then
    register(self, "_modules", "_module_order", k, v)
  else
    rawset(self, k, v)
  end
end

-- the metamethods every class carries (Lua reads metamethods with rawget, so extend copies them)
local METAMETHODS = { "__index", "__newindex", "__call", "__tostring", "__len" }

Module.__index = instance_index
Module.__newindex = instance_newindex
Module._is_module_class = true

function Module.__call(self, ...)
  -- forward is a method of the class: look there directly (skips the instance's three tables);
  -- a tail call, so errors raised with level 2 in forward blame the caller
  return getmetatable(self).forward(self, ...)
end
Module._default_call = Module.__call

-- A class's own __call (made by extend): as Module.__call, with the class (the metatable of its
-- instances) an upvalue instead of getmetatable(self), a C call that also looks up "__metatable":
-- a third of what calling a small layer cost (W4). An instance of another class has that class's.
local function class_call(class)
  return function(self, ...)
    return class.forward(self, ...)
  end
end

-- Class(...) and Class.new(...) build an instance: the registration tables, training = true, and
-- then the class's init(...).
local function new_instance(class, ...)
  local self = {
    _parameters = {}, _param_order = {},
    _modules = {}, _module_order = {},
    _buffers = {}, _buffer_order = {},
    training = true,
  }
  setmetatable(self, class)
  self:init(...)
  return self
end

local ClassMeta = {
  __call = new_instance,
  __index = function(class, k)
    local super = rawget(class, "super")
    if super then return super[k] end
  end,
}

-- Module:extend([name]): a subclass of this class. `name` is what tostring prints (PyTorch prints
-- the class name); it defaults to the parent's.
function Module.extend(class, name)
  if name ~= nil and type(name) ~= "string" then
    argerror("extend", 1, "class name string expected, got %s", type(name))
  end
  local sub = { super = class, _name = name or class._name, _is_module_class = true }
  for _, mm in ipairs(METAMETHODS) do sub[mm] = class[mm] end
  if sub.__call == class._default_call then -- not one the parent class set itself
    sub.__call = class_call(sub)
    sub._default_call = sub.__call
  end
  sub.new = function(...) return new_instance(sub, ...) end
  return setmetatable(sub, ClassMeta)
end

setmetatable(Module, { __call = new_instance })
Module.new = function(...) return new_instance(Module, ...) end

-- Module.init(self): the base has nothing to set up (the registration tables exist before init
-- runs), so a subclass need not call it; calling it is harmless.
function Module.init() end

function Module:forward()
  error(string.format("Module '%s' is missing the required 'forward' function", self._name), 2)
end

-- register_parameter(name, tensor_or_nil), register_module(name, module), register_buffer(name, t):
-- explicit registration, for tensors that do not require grad yet, or names chosen at run time.
-- Each is made by `registrar`: its table and order list, and what it holds (`what` for errors).
local function registrar(fname, store, order, holds, what)
  return function(self, name, v)
    if type(name) ~= "string" then argerror(fname, 1, "string name expected") end
    if v ~= nil and not holds(v) then argerror(fname, 2, "%s or nil expected, got %s", what, type(v)) end
    register(self, store, order, name, v)
  end
end
Module.register_parameter = registrar("register_parameter", "_parameters", "_param_order", is_tensor, "tensor")
Module.register_module = registrar("register_module", "_modules", "_module_order", is_module, "Module")
Module.add_module = Module.register_module
Module.register_buffer = registrar("register_buffer", "_buffers", "_buffer_order", is_tensor, "tensor")

-- named_modules as PyTorch walks them: pre-order, each module once; returns lists of names and
-- modules ("" for self)
local function walk_modules(self)
  local names, mods, seen = {}, {}, {}
  local function visit(m, prefix)
    if seen[m] then return end
    seen[m] = true
    names[#names + 1], mods[#mods + 1] = prefix, m
    for _, n in ipairs(rawget(m, "_module_order")) do
      local child = rawget(m, "_modules")[n]
      if child then visit(child, prefix == "" and n or prefix .. "." .. n) end
    end
  end
  visit(self, "")
  return names, mods
end

local function list_iterator(names, values)
  local i = 0
  return function()
    i = i + 1
    if names[i] ~= nil then return names[i], values[i] end
  end
end

-- the (name, tensor) pairs of every parameter, own ones first and then each child's, without
-- duplicates (a tensor shared by two modules is listed once, under its first name)
local function collect_parameters(self)
  local names, params, seen = {}, {}, {}
  local mnames, mods = walk_modules(self)
  for i, m in ipairs(mods) do
    local prefix = mnames[i] == "" and "" or mnames[i] .. "."
    for _, n in ipairs(rawget(m, "_param_order")) do
      local p = rawget(m, "_parameters")[n]
      if p ~= nil and not seen[p] then
        seen[p] = true
        names[#names + 1], params[#params + 1] = prefix .. n, p
      end
    end
  end
  return names, params
end

-- parameters(): a Lua list of the parameter tensors, in PyTorch's order
function Module:parameters()
  local _, params = collect_parameters(self)
  return params
end

-- named_parameters(): an iterator of name, tensor: `for name, p in model:named_parameters() do`
function Module:named_parameters()
  return list_iterator(collect_parameters(self))
end

-- children(): a Lua list of the direct submodules; named_children(): an iterator of name, module
function Module:children()
  local out = {}
  for _, n in ipairs(self._module_order) do out[#out + 1] = self._modules[n] end
  return out
end

function Module:named_children()
  local names, mods = {}, {}
  for _, n in ipairs(self._module_order) do names[#names + 1], mods[#mods + 1] = n, self._modules[n] end
  return list_iterator(names, mods)
end

-- modules(): a Lua list of self and every descendant (pre-order); named_modules(): an iterator
function Module:modules()
  local _, mods = walk_modules(self)
  return mods
end

function Module:named_modules()
  return list_iterator(walk_modules(self))
end

-- apply(fn): calls fn(m) on every child (recursively) and then on self, as PyTorch; returns self
function Module:apply(fn)
  for _, child in ipairs(self:children()) do child:apply(fn) end
  fn(self)
  return self
end

-- zero_grad([{set_to_none = false}]): zeroes every parameter's .grad in place (PyTorch 1.13's
-- default), or drops it with set_to_none
function Module:zero_grad(opts)
  local o = options("zero_grad", 1, opts, { set_to_none = false })
  for _, p in ipairs(self:parameters()) do
    local g = p.grad
    if g ~= nil then
      if o.set_to_none then
        p.grad = nil
      else
        core.no_grad(function() g:zero_() end)
      end
    end
  end
end

-- train([mode = true]) and eval(): set .training on self and every descendant; return self
function Module:train(mode)
  if mode == nil then mode = true end
  if type(mode) ~= "boolean" then
    argerror("train", 1, "boolean expected, got %s", type(mode))
  end
  for _, m in ipairs(self:modules()) do rawset(m, "training", mode) end
  return self
end

function Module:eval()
  return self:train(false)
end

-- to(dtype), double(), float(): converts every floating-point parameter and buffer to dtype (a
-- parameter becomes a new leaf tensor with its requires_grad, so make optimizers after converting);
-- integer buffers (BatchNorm's num_batches_tracked) stay as they are, as in PyTorch; returns self
local FLOATING = { float32 = true, float64 = true }

function Module:to(dtype)
  if type(dtype) ~= "string" then
    argerror("to", 1, "dtype string expected, got %s", type(dtype))
  end
  if not FLOATING[dtype] then
    argerror("to", 1, "a module converts to float32 or float64, got '%s'", dtype)
  end
  core.no_grad(function()
    for _, m in ipairs(self:modules()) do
      local params, bufs = rawget(m, "_parameters"), rawget(m, "_buffers")
      for n, p in pairs(params) do
        if p.dtype ~= dtype and FLOATING[p.dtype] then
          params[n] = p:detach():to(dtype):requires_grad_(p.requires_grad)
        end
      end
      for n, b in pairs(bufs) do
        if b.dtype ~= dtype and FLOATING[b.dtype] then bufs[n] = b:to(dtype) end
      end
    end
  end)
  return self
end

function Module:double() return self:to("float64") end
function Module:float() return self:to("float32") end

-- requires_grad_([flag = true]): sets requires_grad on every parameter (freezing); returns self
function Module:requires_grad_(flag)
  if flag == nil then flag = true end
  for _, p in ipairs(self:parameters()) do p:requires_grad_(flag) end
  return self
end

-- the (key, tensor) entries of state_dict, in PyTorch's order: each module's parameters, then its
-- buffers, then its children's entries (a shared tensor appears under each of its names, as PyTorch)
local function state_entries(self)
  local keys, values = {}, {}
  local function visit(m, prefix)
    for _, n in ipairs(rawget(m, "_param_order")) do
      local p = rawget(m, "_parameters")[n]
      if p ~= nil then keys[#keys + 1], values[#values + 1] = prefix .. n, p end
    end
    for _, n in ipairs(rawget(m, "_buffer_order")) do
      local b = rawget(m, "_buffers")[n]
      if b ~= nil then keys[#keys + 1], values[#values + 1] = prefix .. n, b end
    end
    for _, n in ipairs(rawget(m, "_module_order")) do
      local child = rawget(m, "_modules")[n]
      if child then visit(child, prefix .. n .. ".") end
    end
  end
  visit(self, "")
  return keys, values
end

-- state_dict(): a table key -> tensor with PyTorch's keys ("weight", "0.bias"); the tensors are
-- detached views that share storage with the parameters, as PyTorch's are. (A Lua table has no
-- order: named_parameters() gives PyTorch's.)
function Module:state_dict()
  local keys, values = state_entries(self)
  local sd = {}
  for i, k in ipairs(keys) do sd[k] = values[i]:detach() end
  return sd
end

local function shape_str(t)
  return "{" .. table.concat(t.shape, ",") .. "}"
end

-- load_state_dict(sd [, strict = true]): copies each entry into the tensor of that key, in place and
-- without recording. With strict, missing and unexpected keys are an error that lists them; a
-- shape mismatch is always an error. Nothing is copied when any check fails. Returns the lists of
-- missing and unexpected keys, as PyTorch's result.
function Module:load_state_dict(sd, strict)
  if type(sd) ~= "table" or is_tensor(sd) or is_module(sd) then
    argerror("load_state_dict", 1, "table of tensors expected, got %s",
      is_tensor(sd) and "tensor" or is_module(sd) and "Module" or type(sd))
  end
  if strict == nil then strict = true end
  if type(strict) ~= "boolean" then
    argerror("load_state_dict", 2, "boolean strict expected, got %s", type(strict))
  end
  local keys, values = state_entries(self)
  local own = {}
  for i, k in ipairs(keys) do own[k] = values[i] end
  local missing, unexpected, problems = {}, {}, {}
  for _, k in ipairs(keys) do
    if sd[k] == nil then missing[#missing + 1] = k end
  end
  local given = {}
  for k in pairs(sd) do given[#given + 1] = k end
  table.sort(given, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(given) do
    local v = sd[k]
    if own[k] == nil then
      unexpected[#unexpected + 1] = tostring(k)
    elseif not is_tensor(v) then
      problems[#problems + 1] = string.format("for %s: expected a tensor, got %s", k, type(v))
    elseif table.concat(v.shape, ",") ~= table.concat(own[k].shape, ",") then
      problems[#problems + 1] = string.format(
        "size mismatch for %s: copying a tensor of shape %s, the shape in the current model is %s",
        k, shape_str(v), shape_str(own[k]))
    end
  end
  if strict then
    if #missing > 0 then
      problems[#problems + 1] = "missing key(s) in state_dict: \"" .. table.concat(missing, "\", \"") .. "\""
    end
    if #unexpected > 0 then
      problems[#problems + 1] = "unexpected key(s) in state_dict: \"" .. table.concat(unexpected, "\", \"") .. "\""
    end
  end
  if #problems > 0 then
    error(string.format("error(s) in loading state_dict for %s: %s", self._name, table.concat(problems, "; ")), 2)
  end
  core.no_grad(function()
    for i, k in ipairs(keys) do
      if sd[k] ~= nil then values[i]:copy_(sd[k]) end
    end
  end)
  return missing, unexpected
end

-- extra_repr(): the text inside a leaf module's parentheses, as PyTorch's
function Module.extra_repr() return "" end

-- the label of a child in tostring: its name in parentheses (Sequential shows 1-based positions)
function Module._child_label(_, name)
  return name
end

local function add_indent(s, n)
  local pad = string.rep(" ", n)
  return (s:gsub("\n", "\n" .. pad))
end

-- tostring(module) as PyTorch's repr: `Linear(in_features=1, out_features=13, bias=True)`, and for
-- a module with children one line per child, `(label): child`, indented by two spaces
function Module:__tostring()
  local lines = {}
  local extra = self:extra_repr()
  if extra ~= "" then
    for line in (extra .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  end
  for i, n in ipairs(self._module_order) do
    local child = self._modules[n]
    lines[#lines + 1] = "(" .. self:_child_label(n, i) .. "): " .. add_indent(tostring(child), 2)
  end
  local s = self._name .. "("
  if #lines == 1 and #self._module_order == 0 then
    s = s .. lines[1]
  elseif #lines > 0 then
    s = s .. "\n  " .. table.concat(lines, "\n  ") .. "\n"
  end
  return s .. ")"
end

-- ============================================================ layers

local function check_int(fname, argn, v, what)
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) or v < 0 then
    argerror_at(4, fname, argn, "%s must be a non-negative integer, got %s", what, tostring(v))
  end
  return math.tointeger(v)
end

-- Linear(in_features, out_features [, {bias = true, dtype}]): y = x W^T + b, x: (..., in) ->
-- (..., out); weight (out, in), bias (out) or nil. PyTorch's default init: kaiming_uniform_ with
-- a = sqrt(5), which is U(-1/sqrt(in), 1/sqrt(in)), then the bias from the same bound, both drawn
-- from mg's generator (so mg.manual_seed makes them reproducible).
local Linear = Module:extend("Linear")
M.Linear = Linear

function Linear:init(in_features, out_features, opts)
  in_features = check_int("Linear", 1, in_features, "in_features")
  out_features = check_int("Linear", 2, out_features, "out_features")
  local o = options("Linear", 3, opts, { bias = true, dtype = false }, 3)
  self.in_features, self.out_features = in_features, out_features
  local dt = { dtype = o.dtype or core.get_default_dtype() }
  local bound = in_features > 0 and 1 / math.sqrt(in_features) or 0
  self.weight = core.empty({ out_features, in_features }, dt):uniform_(-bound, bound):requires_grad_()
  if o.bias then
    self.bias = core.empty({ out_features }, dt):uniform_(-bound, bound):requires_grad_()
  else
    self:register_parameter("bias", nil)
  end
end

local last_dim = core._last_dim -- nil for anything but a tensor of at least one dim

function Linear:forward(x)
  -- the common case costs one C call; the message is built only when the input does not fit
  if last_dim(x) == self.in_features then
    local params = self._parameters -- a field of the instance itself: no __index (nor rawget) call
    return F.linear(x, params.weight, params.bias)
  end
  if not is_tensor(x) then
    argerror("forward", 1, "tensor expected, got %s", type(x))
  end
  argerror("forward", 1, "input of shape %s does not fit Linear(in_features=%d, out_features=%d): its last dim "
    .. "must be %d", shape_str(x), self.in_features, self.out_features, self.in_features)
end

function Linear:extra_repr()
  return string.format("in_features=%d, out_features=%d, bias=%s", self.in_features, self.out_features,
    self.bias ~= nil and "True" or "False")
end

-- Sequential(m1, m2, ...), Sequential{m1, m2, ...} or Sequential{{"name", m1}, ...} (PyTorch's
-- OrderedDict form): children named "0", "1", ... as PyTorch (so state_dict keys match), reached
-- as model[1], model[2] (and model[-1], the last), or by name for the named form; #model is their
-- number. forward runs them in order.
local Sequential = Module:extend("Sequential")
M.Sequential = Sequential

function Sequential:init(...)
  local args = table.pack(...)
  if args.n == 1 and type(args[1]) == "table" and not is_module(args[1]) then
    args = args[1]
    args.n = #args
  end
  for i = 1, args.n do
    local a = args[i]
    if is_module(a) then
      self:register_module(tostring(i - 1), a)
    elseif type(a) == "table" and type(a[1]) == "string" and is_module(a[2]) then
      self:register_module(a[1], a[2])
    else
      argerror_at(4, "Sequential", i, "Module expected, got %s", is_tensor(a) and "tensor" or type(a))
    end
  end
end

local function seq_position(self, k)
  local n = #rawget(self, "_module_order")
  if k < 0 then k = n + 1 + k end
  if k >= 1 and k <= n then return k end
end

function Sequential.__index(self, k)
  if math.type(k) == "integer" then
    local i = seq_position(self, k)
    return i and rawget(self, "_modules")[rawget(self, "_module_order")[i]]
  end
  return instance_index(self, k)
end

function Sequential.__newindex(self, k, v)
  if math.type(k) == "integer" then
    local i = seq_position(self, k)
    if not i then
      argerror("Sequential", 1, "index %d out of range for %d modules", k, #rawget(self, "_module_order"))
    end
    if not is_module(v) then argerror("Sequential", 2, "Module expected") end
    rawget(self, "_modules")[rawget(self, "_module_order")[i]] = v
    return
  end
  return instance_newindex(self, k, v)
end

function Sequential.__len(self)
  return #rawget(self, "_module_order")
end

-- append(module): adds a child at the end (named by its 0-based position); returns self
function Sequential:append(m)
  if not is_module(m) then argerror("append", 1, "Module expected") end
  self:register_module(tostring(#self._module_order), m)
  return self
end

-- A stock ReLU right before a stock MaxPool2d runs as one op, F.max_pool2d(x, k, {relu = true}):
-- the same bits as the pair (values and gradients: src/ops/conv.c, RELU_POOLED) without the
-- full-size relu output and its gradient (issue 13). Only the exact classes with their own forward
-- (not a subclass, nor a replaced class forward: Module's __call runs the class's), a pool without
-- return_indices, and a float input (anything else gets the pair and its errors). Modules have no
-- forward hooks; the result's grad_fn is `<grad_fn conv max_pool2d_relu>`.
local stock_relu_forward, stock_pool_forward -- set below, once MaxPool2d is defined
local function fuses(m, p, x)
  return getmetatable(m) == M.ReLU and M.ReLU.forward == stock_relu_forward and getmetatable(p) == M.MaxPool2d
    and M.MaxPool2d.forward == stock_pool_forward and not p.return_indices and is_tensor(x)
    and (x.dtype == "float32" or x.dtype == "float64")
end

function Sequential:forward(x)
  local order, mods = self._module_order, self._modules
  local i, n = 1, #order
  while i <= n do
    local m, p = mods[order[i]], i < n and mods[order[i + 1]]
    if p and fuses(m, p, x) then
      x = p:_forward_after_relu(x)
      i = i + 2
    else
      x = m(x)
      i = i + 1
    end
  end
  return x
end

-- children named by their position show it 1-based, as model[i]; named ones show their names
function Sequential._child_label(_, name, i)
  if name == tostring(i - 1) then return tostring(i) end
  return name
end

-- elementwise activations, no parameters
local function activation(name, fn)
  local A = Module:extend(name)
  function A.init(_, opts) options(name, 1, opts, {}, 3) end
  function A.forward(_, x) return fn(x) end
  M[name] = A
  return A
end
activation("ReLU", F.relu)
activation("Tanh", F.tanh)
activation("Sigmoid", F.sigmoid)

-- Dropout([p = 0.5]) or Dropout{p = 0.5}: F.dropout(x, p, self.training) (the identity in eval())
local Dropout = Module:extend("Dropout")
M.Dropout = Dropout

function Dropout:init(p)
  if type(p) == "table" then p = options("Dropout", 1, p, { p = 0.5 }, 3).p end
  if p == nil then p = 0.5 end
  if type(p) ~= "number" or not (p >= 0 and p <= 1) then
    argerror_at(4, "Dropout", 1, "dropout probability has to be between 0 and 1, but got %s", tostring(p))
  end
  self.p = p
end

function Dropout:forward(x)
  return F.dropout(x, self.p, self.training)
end

function Dropout:extra_repr()
  return string.format("p=%s, inplace=False", tostring(self.p))
end

-- ============================================================ losses

-- loss modules: Loss([{reduction = "mean"}]), forward(input, target) = F.<fn>(input, target, reduction)
local REDUCTIONS = { mean = true, sum = true, none = true }

-- `kernel` is a function, or the name of one in F, looked up at each call; forward reports its
-- errors under the module's name at the caller's line (util.raise_as), not as "bad argument #2 to
-- 'fn'" at this file's
local function loss(name, kernel)
  local L = Module:extend(name)
  function L:init(opts)
    local o = options(name, 1, opts, { reduction = "mean" }, 3)
    if not REDUCTIONS[o.reduction] then
      argerror_at(4, name, 1, "unknown reduction '%s', expected 'mean', 'sum' or 'none'", tostring(o.reduction))
    end
    self.reduction = o.reduction
  end
  local by_name = type(kernel) == "string" -- looked up in F at each call, as F's users expect
  function L:forward(input, target)
    local ok, out = pcall(by_name and F[kernel] or kernel, input, target, self.reduction)
    if ok then return out end
    util.raise_as(name, 2, out)
  end
  M[name] = L
  return L
end
loss("MSELoss", "mse_loss")
loss("L1Loss", "l1_loss")
loss("CrossEntropyLoss", "cross_entropy")
loss("BCEWithLogitsLoss", "binary_cross_entropy_with_logits")

-- ============================================================ utils

M.utils = {}

-- the tensors with a gradient among params (a list of tensors, one tensor, or a Module)
local function grads_of(fname, params)
  if is_tensor(params) then params = { params }
  elseif is_module(params) then params = params:parameters()
  elseif type(params) ~= "table" then
    argerror_at(3, fname, 1, "list of tensors expected, got %s", type(params))
  end
  local grads = {}
  for i, p in ipairs(params) do
    if not is_tensor(p) then
      argerror_at(3, fname, 1, "element %d is a %s, not a tensor", i, type(p))
    end
    if p.grad ~= nil then grads[#grads + 1] = p.grad end
  end
  return grads
end

-- clip_grad_norm_(params, max_norm [, norm_type = 2] [, {error_if_nonfinite = false}]): the total
-- norm is the norm_type-norm of the vector of every gradient's norm (norm_type may be math.huge
-- or "inf"); every gradient is scaled in place by min(1, max_norm / (total + 1e-6)), as PyTorch
-- 1.13. Returns the total norm as a 0-d tensor (tensor(0.) when no parameter has a gradient).
function M.utils.clip_grad_norm_(params, max_norm, norm_type, opts)
  if type(norm_type) == "table" then norm_type, opts = nil, norm_type end
  local o = options("clip_grad_norm_", 4, opts, { error_if_nonfinite = false })
  if type(max_norm) ~= "number" then
    argerror("clip_grad_norm_", 2, "number expected, got %s", type(max_norm))
  end
  if norm_type == nil then norm_type = 2 end
  if norm_type == "inf" then norm_type = math.huge end
  if type(norm_type) ~= "number" then
    argerror("clip_grad_norm_", 3, "number or 'inf' expected, got %s", tostring(norm_type))
  end
  local grads = grads_of("clip_grad_norm_", params)
  if #grads == 0 then return core.tensor(0) end
  local total = core.no_grad(function()
    local norms = {}
    for i, g in ipairs(grads) do
      norms[i] = norm_type == math.huge and g:abs():max() or g:norm(norm_type)
    end
    if #norms == 1 then return norms[1] end
    local stacked = core.stack(norms)
    return norm_type == math.huge and stacked:max() or stacked:norm(norm_type)
  end)
  local t = total:item()
  if o.error_if_nonfinite and (t ~= t or t == math.huge or t == -math.huge) then
    error(string.format("'clip_grad_norm_': the total norm of order %s of the gradients is non-finite (%s), "
      .. "so they cannot be clipped", tostring(norm_type), tostring(t)), 2)
  end
  core.no_grad(function()
    local coef = (max_norm / (total + 1e-6)):clamp(nil, 1.0)
    for _, g in ipairs(grads) do g:mul_(coef) end
  end)
  return total
end

-- clip_grad_value_(params, clip_value): clamps every gradient into [-clip_value, clip_value] in place
function M.utils.clip_grad_value_(params, clip_value)
  if type(clip_value) ~= "number" then
    argerror("clip_grad_value_", 2, "number expected, got %s", type(clip_value))
  end
  local grads = grads_of("clip_grad_value_", params)
  core.no_grad(function()
    for _, g in ipairs(grads) do g:clamp_(-clip_value, clip_value) end
  end)
end

M.init = require "moongrad.nn.initializers" -- mg.nn.init: nn/initializers.lua
require("moongrad.nn.containers")(M) -- Flatten Unflatten Identity ModuleList ModuleDict
require("moongrad.nn.layers")(M) -- Conv1d Conv2d pools BatchNorm LayerNorm Embedding
require("moongrad.nn.activation")(M) -- LeakyReLU GELU ELU SiLU Softplus Softmax LogSoftmax, 4 losses
stock_relu_forward, stock_pool_forward = M.ReLU.forward, M.MaxPool2d.forward -- Sequential's fusion
M.parallel = require "moongrad.nn.parallel" -- DistributedDataParallel (issue 12): loads MPI only when used

return M
