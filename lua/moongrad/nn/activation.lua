-- moongrad.nn.activation: the activation and classification-loss modules of chapter 6, over the C
-- kernels of mg.F (src/ops/unary.c, functional.c): LeakyReLU GELU ELU SiLU Softplus Softmax
-- LogSoftmax and NLLLoss BCELoss SmoothL1Loss HuberLoss. nn.lua requires this file at its end and
-- passes its table, which these classes are added to.
--
-- Each takes PyTorch's constructor arguments, positionally or as one options table with PyTorch's
-- keyword names (`LeakyReLU(0.2)` or `LeakyReLU{negative_slope = 0.2}`), and prints as PyTorch's
-- repr does. Softmax and LogSoftmax take their dim 1-based, as mg.F.softmax does, and require it
-- (PyTorch's implicit dim is deprecated there). A loss's class weight is a buffer named `weight`,
-- as PyTorch registers it (so it is in state_dict).
local core = require "moongrad.core"
local util = require "moongrad.util"

local F = core.F
local is_tensor = core.is_tensor
local options, argerror_at = util.options, util.argerror_at

-- Python's str() of a number as PyTorch's reprs print it: 1.0 for a float, 20 for an integer
local function num(v)
  if math.type(v) == "integer" then return tostring(v) end
  local s = string.format("%.17g", v)
  for p = 1, 17 do -- the shortest form that reads back, as Python's repr
    local short = string.format("%." .. p .. "g", v)
    if tonumber(short) == v then s = short; break end
  end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

return function(nn)
  local Module = nn.Module

  -- positional arguments (names in order, with defaults) or one options table of the same names;
  -- each value checked to be a number (or a string for `strings`)
  local function args(name, spec, ...)
    local first = ...
    local o
    if type(first) == "table" and not is_tensor(first) and select("#", ...) == 1 then
      o = options(name, 1, first, spec, 4)
    else
      o = {}
      for i, d in ipairs(spec) do
        local v = select(i, ...)
        if v == nil then v = d[2] end
        o[d[1]] = v
      end
      if select("#", ...) > #spec then
        argerror_at(4, name, #spec + 1, "takes at most %d arguments, got %d", #spec, select("#", ...))
      end
    end
    for i, d in ipairs(spec) do
      local v, want = o[d[1]], d[3] or "number"
      if v ~= nil and type(v) ~= want then
        argerror_at(4, name, i, "%s must be a %s, got %s", d[1], want, type(v))
      end
    end
    return o
  end

  -- ------------------------------------------------------------ activations
  local function activation(name, spec, forward, repr)
    local A = Module:extend(name)
    function A:init(...)
      local o = args(name, spec, ...)
      for _, d in ipairs(spec) do self[d[1]] = o[d[1]] end
    end
    A.forward = forward
    A.extra_repr = repr
    nn[name] = A
    return A
  end

  activation("LeakyReLU", {{"negative_slope", 0.01}},
    function(self, x) return F.leaky_relu(x, self.negative_slope) end,
    function(self) return "negative_slope=" .. num(self.negative_slope) end)

  activation("GELU", {{"approximate", "none", "string"}},
    function(self, x) return F.gelu(x, self.approximate) end,
    function(self) return "approximate='" .. self.approximate .. "'" end)
  local gelu_init = nn.GELU.init
  function nn.GELU:init(...)
    gelu_init(self, ...)
    if self.approximate ~= "none" and self.approximate ~= "tanh" then
      argerror_at(3, "GELU", 1, "approximate must be 'none' or 'tanh', got '%s'", self.approximate)
    end
  end

  activation("ELU", {{"alpha", 1.0}},
    function(self, x) return F.elu(x, self.alpha) end,
    function(self) return "alpha=" .. num(self.alpha) end)

  activation("SiLU", {},
    function(_, x) return F.silu(x) end,
    function() return "" end)

  activation("Softplus", {{"beta", 1}, {"threshold", 20}},
    function(self, x) return F.softplus(x, self.beta, self.threshold) end,
    function(self) return "beta=" .. num(self.beta) .. ", threshold=" .. num(self.threshold) end)

  -- Softmax(dim) / LogSoftmax(dim): dim required, 1-based (negative from the end)
  local function softmax(name, fn)
    local S = Module:extend(name)
    function S:init(...)
      local o = args(name, {{"dim", nil}}, ...)
      if o.dim == nil then
        argerror_at(3, name, 1, "dim expected (1-based, as mg.F.%s's; PyTorch's implicit dim is deprecated)",
          name == "Softmax" and "softmax" or "log_softmax")
      end
      if math.type(o.dim) ~= "integer" then
        argerror_at(3, name, 1, "dim must be an integer, got %s", tostring(o.dim))
      end
      self.dim = o.dim
    end
    function S:forward(x) return fn(x, self.dim) end
    function S:extra_repr() return "dim=" .. self.dim end
    nn[name] = S
  end
  softmax("Softmax", F.softmax)
  softmax("LogSoftmax", F.log_softmax)

  -- ------------------------------------------------------------ losses
  local REDUCTIONS = { mean = true, sum = true, none = true }

  -- Loss([{reduction = "mean", <its own options>}]); forward(input, target) = fn(input, target,
  -- {reduction = ..., <options>}); a `weight` option becomes the buffer self.weight
  local function loss(name, spec, fn)
    local L = Module:extend(name)
    function L:init(opts)
      local o = options(name, 1, opts, spec, 3)
      if not REDUCTIONS[o.reduction] then
        argerror_at(3, name, 1, "unknown reduction '%s', expected 'mean', 'sum' or 'none'", tostring(o.reduction))
      end
      self.reduction = o.reduction
      self._loss_options = {}
      for _, d in ipairs(spec) do
        local k = d[1]
        if k == "weight" then
          if o.weight ~= nil then
            if not is_tensor(o.weight) then
              argerror_at(3, name, 1, "weight must be a tensor, got %s", type(o.weight))
            end
            self:register_buffer("weight", o.weight)
          end
        elseif k ~= "reduction" then
          if type(o[k]) ~= "number" then argerror_at(3, name, 1, "%s must be a number, got %s", k, type(o[k])) end
          self[k] = o[k]
          self._loss_options[#self._loss_options + 1] = k
        end
      end
    end
    function L:forward(input, target)
      local o = { reduction = self.reduction }
      for _, k in ipairs(self._loss_options) do o[k] = self[k] end
      if self._buffers.weight ~= nil then o.weight = self._buffers.weight end
      return fn(input, target, o)
    end
    nn[name] = L
    return L
  end
  loss("NLLLoss", {{"weight", nil}, {"ignore_index", -100}, {"reduction", "mean"}}, F.nll_loss)
  loss("BCELoss", {{"weight", nil}, {"reduction", "mean"}}, F.binary_cross_entropy)
  loss("SmoothL1Loss", {{"reduction", "mean"}, {"beta", 1.0}}, F.smooth_l1_loss)
  loss("HuberLoss", {{"reduction", "mean"}, {"delta", 1.0}}, F.huber_loss)

  return nn
end
