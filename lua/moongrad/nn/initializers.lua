-- moongrad.nn.initializers, reached as mg.nn.init: torch.nn.init's functions.
--
-- Each fills its tensor in place without recording (under no_grad, so a parameter that requires
-- grad can be filled) and returns it. Arguments are PyTorch's, positional or as an options table:
-- `init.kaiming_uniform_(w, math.sqrt(5))` == `init.kaiming_uniform_(w, {a = math.sqrt(5)})`.
-- The random ones draw from mg's generator (mg.manual_seed makes them reproducible).
--
-- fan_in / fan_out as PyTorch computes them for a weight of 2 dims or more: dim 2 is the inputs,
-- dim 1 the outputs, and every further dim (a convolution's kernel) multiplies both:
-- Linear (out, in) has fan_in = in; Conv2d (out, in/groups, kh, kw) has fan_in = in/groups*kh*kw.
local core = require "moongrad.core"
local util = require "moongrad.util"

local argerror_at = util.argerror_at
local is_tensor = core.is_tensor

local M = {}

-- the argument checks blame the user's line: every public function calls these directly, so
-- level 3 from a check is the caller of the public function
local function check_tensor(fname, t)
  if not is_tensor(t) then
    argerror_at(3, fname, 1, "tensor expected, got %s", type(t))
  end
  if t.dtype ~= "float32" and t.dtype ~= "float64" then
    argerror_at(3, fname, 1, "a float32 or float64 tensor expected, got %s", t.dtype)
  end
end

local function check_number(fname, argn, v, what)
  if type(v) ~= "number" then
    argerror_at(3, fname, argn, "%s must be a number, got %s", what, type(v))
  end
  return v
end

-- reads positional arguments or one options table after the tensor: returns a table by name
-- (`spec` is the ordered list of {name, default}); unknown names are an error
local function args(fname, spec, ...)
  local n = select("#", ...)
  local first = ...
  if n == 1 and type(first) == "table" and not is_tensor(first) then
    local o = util.options(fname, 2, first, spec, 3) -- not a tail call: errors count this frame
    return o
  end
  local o = {}
  for i, d in ipairs(spec) do
    local v = select(i, ...)
    if v == nil then v = d[2] end
    o[d[1]] = v
  end
  if n > #spec then
    argerror_at(3, fname, #spec + 2, "at most %d arguments after the tensor, got %d", #spec, n)
  end
  return o
end

local function fill(t, fn)
  core.no_grad(fn)
  return t
end

-- calculate_gain(nonlinearity [, param]): PyTorch's recommended gain for a nonlinearity
local LINEAR = { linear = true, conv1d = true, conv2d = true, conv3d = true, conv_transpose1d = true,
  conv_transpose2d = true, conv_transpose3d = true, sigmoid = true }

local function gain_of(fname, level, nonlinearity, param)
  if LINEAR[nonlinearity] then return 1 end
  if nonlinearity == "tanh" then return 5.0 / 3 end
  if nonlinearity == "relu" then return math.sqrt(2.0) end
  if nonlinearity == "selu" then return 3.0 / 4 end
  if nonlinearity == "leaky_relu" then
    local slope = 0.01
    if param ~= nil then
      if type(param) ~= "number" then
        argerror_at(level, fname, 2, "negative_slope %s not a valid number", tostring(param))
      end
      slope = param
    end
    return math.sqrt(2.0 / (1 + slope ^ 2))
  end
  argerror_at(level, fname, 1, "unsupported nonlinearity %s (expected linear, conv1d, conv2d, conv3d, "
    .. "conv_transpose1d, conv_transpose2d, conv_transpose3d, sigmoid, tanh, relu, leaky_relu or selu)",
    tostring(nonlinearity))
end

function M.calculate_gain(nonlinearity, param)
  local gain = gain_of("calculate_gain", 3, nonlinearity, param) -- not a tail call: errors count this frame
  return gain
end

-- fan_in, fan_out of a weight with 2 dims or more (PyTorch's _calculate_fan_in_and_fan_out)
local function fans(fname, t, level)
  local shape = t.shape
  if #shape < 2 then
    argerror_at(level or 3, fname, 1, "fan in and fan out can not be computed for a tensor with fewer than 2 "
      .. "dimensions (got shape {%s})", table.concat(shape, ","))
  end
  local receptive = 1
  for i = 3, #shape do receptive = receptive * shape[i] end
  return shape[2] * receptive, shape[1] * receptive
end

-- the public fan computation, for users writing their own initializers
function M.calculate_fan_in_and_fan_out(t)
  check_tensor("calculate_fan_in_and_fan_out", t)
  local fan_in, fan_out = fans("calculate_fan_in_and_fan_out", t)
  return fan_in, fan_out
end

-- uniform_(t [, a = 0 [, b = 1]]): U(a, b)
function M.uniform_(t, ...)
  check_tensor("uniform_", t)
  local o = args("uniform_", { { "a", 0 }, { "b", 1 } }, ...)
  check_number("uniform_", 2, o.a, "a")
  check_number("uniform_", 3, o.b, "b")
  if o.a > o.b then argerror_at(2, "uniform_", 2, "lower bound %s is greater than upper bound %s", o.a, o.b) end
  return fill(t, function() t:uniform_(o.a, o.b) end)
end

-- normal_(t [, mean = 0 [, std = 1]]): N(mean, std^2)
function M.normal_(t, ...)
  check_tensor("normal_", t)
  local o = args("normal_", { { "mean", 0 }, { "std", 1 } }, ...)
  check_number("normal_", 2, o.mean, "mean")
  check_number("normal_", 3, o.std, "std")
  if o.std < 0 then argerror_at(2, "normal_", 3, "std must be non-negative, got %s", o.std) end
  return fill(t, function() t:normal_(o.mean, o.std) end)
end

-- constant_(t, val), zeros_(t), ones_(t)
function M.constant_(t, val)
  check_tensor("constant_", t)
  check_number("constant_", 2, val, "val")
  return fill(t, function() t:fill_(val) end)
end

function M.zeros_(t)
  check_tensor("zeros_", t)
  return fill(t, function() t:fill_(0) end)
end

function M.ones_(t)
  check_tensor("ones_", t)
  return fill(t, function() t:fill_(1) end)
end

-- xavier_uniform_(t [, gain = 1]): U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))
function M.xavier_uniform_(t, ...)
  check_tensor("xavier_uniform_", t)
  local o = args("xavier_uniform_", { { "gain", 1 } }, ...)
  check_number("xavier_uniform_", 2, o.gain, "gain")
  local fan_in, fan_out = fans("xavier_uniform_", t)
  local std = o.gain * math.sqrt(2.0 / (fan_in + fan_out))
  local a = math.sqrt(3.0) * std
  return fill(t, function() t:uniform_(-a, a) end)
end

-- xavier_normal_(t [, gain = 1]): N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))
function M.xavier_normal_(t, ...)
  check_tensor("xavier_normal_", t)
  local o = args("xavier_normal_", { { "gain", 1 } }, ...)
  check_number("xavier_normal_", 2, o.gain, "gain")
  local fan_in, fan_out = fans("xavier_normal_", t)
  local std = o.gain * math.sqrt(2.0 / (fan_in + fan_out))
  return fill(t, function() t:normal_(0, std) end)
end

-- the std of kaiming_*: gain(nonlinearity, a) / sqrt(fan of mode)
local function kaiming_std(fname, t, o)
  check_number(fname, 2, o.a, "a")
  if o.mode ~= "fan_in" and o.mode ~= "fan_out" then
    argerror_at(3, fname, 3, "mode %s not supported, please use one of fan_in, fan_out", tostring(o.mode))
  end
  local fan_in, fan_out = fans(fname, t, 4)
  local fan = o.mode == "fan_in" and fan_in or fan_out
  local gain = gain_of(fname, 4, o.nonlinearity, o.a)
  return gain / math.sqrt(fan)
end

local KAIMING = { { "a", 0 }, { "mode", "fan_in" }, { "nonlinearity", "leaky_relu" } }

-- kaiming_uniform_(t [, a = 0 [, mode = "fan_in" [, nonlinearity = "leaky_relu"]]]):
-- U(-bound, bound), bound = sqrt(3) * gain / sqrt(fan). A tensor with no element is left as is.
function M.kaiming_uniform_(t, ...)
  check_tensor("kaiming_uniform_", t)
  local o = args("kaiming_uniform_", KAIMING, ...)
  if t:numel() == 0 then return t end
  local bound = math.sqrt(3.0) * kaiming_std("kaiming_uniform_", t, o)
  return fill(t, function() t:uniform_(-bound, bound) end)
end

-- kaiming_normal_(t [, a = 0 [, mode = "fan_in" [, nonlinearity = "leaky_relu"]]]): N(0, std^2)
function M.kaiming_normal_(t, ...)
  check_tensor("kaiming_normal_", t)
  local o = args("kaiming_normal_", KAIMING, ...)
  if t:numel() == 0 then return t end
  local std = kaiming_std("kaiming_normal_", t, o)
  return fill(t, function() t:normal_(0, std) end)
end

return M
