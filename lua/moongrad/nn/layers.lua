-- moongrad.nn.layers: the layers of chapters 7-8 as nn modules, over the C kernels of mg.F
-- (src/ops/conv.c, norm.c): Conv1d Conv2d MaxPool2d AvgPool2d AdaptiveAvgPool2d BatchNorm1d
-- BatchNorm2d LayerNorm Embedding. nn.lua requires this file at its end and passes its table, which
-- these classes are added to.
--
-- Each follows PyTorch: the same arguments (sizes as a number or a {h, w} list, options in a
-- table), the same default initialisation (conv weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
-- what kaiming_uniform_(a = sqrt(5)) gives; batch norm weight 1, bias 0; layer norm likewise;
-- embedding N(0, 1)), the same state_dict keys (batch norm's buffers running_mean, running_var,
-- num_batches_tracked included) and the same repr.
local core = require "moongrad.core"
local util = require "moongrad.util"

local F = core.F
local is_tensor = core.is_tensor
local options, argerror, argerror_at = util.options, util.argerror, util.argerror_at

return function(nn)
  local Module = nn.Module

  local function shape_str(t) return "{" .. table.concat(t.shape, ",") .. "}" end

  -- a positive (or, with zero_ok, non-negative) integer
  local function check_int(fname, argn, v, what, zero_ok)
    if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v))
        or v < (zero_ok and 0 or 1) then
      argerror_at(4, fname, argn, "%s must be a %s integer, got %s", what, zero_ok and "non-negative" or "positive",
        tostring(v))
    end
    return math.tointeger(v)
  end

  -- a number or a list of n numbers -> a list of n integers (checked)
  local function tuple(fname, argn, v, n, what, zero_ok)
    if type(v) == "table" and not is_tensor(v) then
      if #v ~= n then
        argerror_at(4, fname, argn, "%s must be a number or a list of %d, got a list of %d", what, n, #v)
      end
      local out = {}
      for i = 1, n do out[i] = check_int(fname, argn, v[i], what, zero_ok) end
      return out
    end
    local x = check_int(fname, argn, v, what, zero_ok)
    local out = {}
    for i = 1, n do out[i] = x end
    return out
  end

  -- Python's repr of a tuple of ints: "(3,)", "(3, 3)"; of a number or list as given: "2", "(3, 2)"
  local function pytuple(t)
    if #t == 1 then return "(" .. t[1] .. ",)" end
    return "(" .. table.concat(t, ", ") .. ")"
  end
  local function pyvalue(v)
    if type(v) == "table" then return pytuple(v) end
    return tostring(math.tointeger(v) or v)
  end
  local function pybool(b) return b and "True" or "False" end
  local function all_equal(t, x)
    for _, v in ipairs(t) do if v ~= x then return false end end
    return true
  end

  -- ============================================================ convolutions

  -- ConvNd(in_channels, out_channels, kernel_size [, {stride = 1, padding = 0, dilation = 1,
  -- groups = 1, bias = true, dtype}]); padding may be "valid" or "same" (stride 1)
  local function conv_class(name, nd)
    local C = Module:extend(name)
    nn[name] = C
    function C:init(in_channels, out_channels, kernel_size, opts)
      in_channels = check_int(name, 1, in_channels, "in_channels")
      out_channels = check_int(name, 2, out_channels, "out_channels")
      if kernel_size == nil then argerror_at(3, name, 3, "kernel_size expected") end
      local ks = tuple(name, 3, kernel_size, nd, "kernel_size")
      local o = options(name, 4, opts,
        { stride = 1, padding = 0, dilation = 1, groups = 1, bias = true, dtype = false }, 3)
      local groups = check_int(name, 4, o.groups, "groups")
      if in_channels % groups ~= 0 then
        argerror_at(3, name, 4, "in_channels %d must be divisible by groups %d", in_channels, groups)
      end
      if out_channels % groups ~= 0 then
        argerror_at(3, name, 4, "out_channels %d must be divisible by groups %d", out_channels, groups)
      end
      self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, ks
      self.stride = tuple(name, 4, o.stride, nd, "stride")
      if type(o.padding) == "string" then -- "valid" or "same" (stride 1), as F.conv2d takes them
        if o.padding ~= "valid" and o.padding ~= "same" then
          argerror_at(3, name, 4, 'invalid padding string "%s", should be "valid" or "same"', o.padding)
        end
        if o.padding == "same" and not all_equal(self.stride, 1) then
          argerror_at(3, name, 4, 'padding = "same" is not supported for strided convolutions')
        end
        self.padding = o.padding
      else
        self.padding = tuple(name, 4, o.padding, nd, "padding", true)
      end
      self.dilation = tuple(name, 4, o.dilation, nd, "dilation")
      self.groups = groups
      self._opts = { stride = self.stride, padding = self.padding, dilation = self.dilation, groups = groups }
      local dt = { dtype = o.dtype or core.get_default_dtype() }
      local shape = { out_channels, in_channels // groups }
      local fan_in = in_channels // groups
      for i = 1, nd do
        shape[#shape + 1] = ks[i]
        fan_in = fan_in * ks[i]
      end
      local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
      self.weight = core.empty(shape, dt):uniform_(-bound, bound):requires_grad_()
      if o.bias then
        self.bias = core.empty({ out_channels }, dt):uniform_(-bound, bound):requires_grad_()
      else
        self:register_parameter("bias", nil)
      end
    end
    function C:extra_repr()
      local s = string.format("%d, %d, kernel_size=%s, stride=%s", self.in_channels, self.out_channels,
        pytuple(self.kernel_size), pytuple(self.stride))
      if type(self.padding) == "string" then s = s .. ", padding=" .. self.padding
      elseif not all_equal(self.padding, 0) then s = s .. ", padding=" .. pytuple(self.padding) end
      if not all_equal(self.dilation, 1) then s = s .. ", dilation=" .. pytuple(self.dilation) end
      if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
      if self.bias == nil then s = s .. ", bias=False" end
      return s
    end
    return C
  end
  -- (F.conv1d / F.conv2d called by name, not through a variable: their errors name them)
  local Conv1d, Conv2d = conv_class("Conv1d", 1), conv_class("Conv2d", 2)
  function Conv1d:forward(x)
    local params = rawget(self, "_parameters")
    local y = F.conv1d(x, params.weight, params.bias, self._opts)
    return y
  end
  function Conv2d:forward(x)
    local params = rawget(self, "_parameters")
    local y = F.conv2d(x, params.weight, params.bias, self._opts)
    return y
  end

  -- ============================================================ pooling

  -- a size option as given (number or {h, w}), checked
  local function size_opt(fname, argn, v, what, zero_ok)
    tuple(fname, argn, v, 2, what, zero_ok)
    return v
  end

  -- a boolean option
  local function flag(fname, argn, v, what)
    if type(v) ~= "boolean" then argerror_at(4, fname, argn, "%s must be a boolean, got %s", what, type(v)) end
    return v
  end

  -- MaxPool2d(kernel_size [, {stride = kernel_size, padding = 0, dilation = 1, ceil_mode = false,
  -- return_indices = false}]); with return_indices, forward returns the values and the 1-based
  -- flat indices (h W + w + 1) of the maxima in their planes
  local MaxPool2d = Module:extend("MaxPool2d")
  nn.MaxPool2d = MaxPool2d
  function MaxPool2d:init(kernel_size, opts)
    if kernel_size == nil then argerror_at(3, "MaxPool2d", 1, "kernel_size expected") end
    self.kernel_size = size_opt("MaxPool2d", 1, kernel_size, "kernel_size")
    local o = options("MaxPool2d", 2, opts,
      { stride = false, padding = 0, dilation = 1, ceil_mode = false, return_indices = false }, 3)
    self.stride = o.stride and size_opt("MaxPool2d", 2, o.stride, "stride") or kernel_size
    self.padding = size_opt("MaxPool2d", 2, o.padding, "padding", true)
    self.dilation = size_opt("MaxPool2d", 2, o.dilation, "dilation")
    self.ceil_mode = flag("MaxPool2d", 2, o.ceil_mode, "ceil_mode")
    self.return_indices = flag("MaxPool2d", 2, o.return_indices, "return_indices")
    self._opts = { stride = self.stride, padding = self.padding, dilation = self.dilation, ceil_mode = self.ceil_mode,
      return_indices = self.return_indices }
  end
  function MaxPool2d:forward(x)
    local y, i = F.max_pool2d(x, self.kernel_size, self._opts)
    if self.return_indices then return y, i end
    return y
  end
  -- forward(relu(x)) as one op (nn.Sequential's fusion of ReLU then MaxPool2d; not with
  -- return_indices): the options made once, not at every step
  function MaxPool2d:_forward_after_relu(x)
    local o = rawget(self, "_relu_opts")
    if not o then
      o = { relu = true }
      for k, v in pairs(self._opts) do if k ~= "return_indices" then o[k] = v end end
      rawset(self, "_relu_opts", o)
    end
    return F.max_pool2d(x, self.kernel_size, o)
  end
  function MaxPool2d:extra_repr()
    return string.format("kernel_size=%s, stride=%s, padding=%s, dilation=%s, ceil_mode=%s",
      pyvalue(self.kernel_size), pyvalue(self.stride), pyvalue(self.padding), pyvalue(self.dilation),
      pybool(self.ceil_mode))
  end

  -- AvgPool2d(kernel_size [, {stride = kernel_size, padding = 0, ceil_mode = false,
  -- count_include_pad = true, divisor_override}]): padded zeros counted unless count_include_pad
  -- is false; divisor_override (a non-zero integer) replaces the divisor
  local AvgPool2d = Module:extend("AvgPool2d")
  nn.AvgPool2d = AvgPool2d
  function AvgPool2d:init(kernel_size, opts)
    if kernel_size == nil then argerror_at(3, "AvgPool2d", 1, "kernel_size expected") end
    self.kernel_size = size_opt("AvgPool2d", 1, kernel_size, "kernel_size")
    local o = options("AvgPool2d", 2, opts,
      { stride = false, padding = 0, ceil_mode = false, count_include_pad = true, divisor_override = false }, 3)
    self.stride = o.stride and size_opt("AvgPool2d", 2, o.stride, "stride") or kernel_size
    self.padding = size_opt("AvgPool2d", 2, o.padding, "padding", true)
    self.ceil_mode = flag("AvgPool2d", 2, o.ceil_mode, "ceil_mode")
    self.count_include_pad = flag("AvgPool2d", 2, o.count_include_pad, "count_include_pad")
    if o.divisor_override then
      if math.type(o.divisor_override) ~= "integer" or o.divisor_override == 0 then
        argerror_at(3, "AvgPool2d", 2, "divisor_override must be a non-zero integer, got %s",
          tostring(o.divisor_override))
      end
      self.divisor_override = o.divisor_override
    end
    self._opts = { stride = self.stride, padding = self.padding, ceil_mode = self.ceil_mode,
      count_include_pad = self.count_include_pad, divisor_override = self.divisor_override }
  end
  function AvgPool2d:forward(x)
    local y = F.avg_pool2d(x, self.kernel_size, self._opts)
    return y
  end
  function AvgPool2d:extra_repr()
    return string.format("kernel_size=%s, stride=%s, padding=%s", pyvalue(self.kernel_size), pyvalue(self.stride),
      pyvalue(self.padding))
  end

  -- AdaptiveAvgPool2d(output_size): a number or {h, w}
  local AdaptiveAvgPool2d = Module:extend("AdaptiveAvgPool2d")
  nn.AdaptiveAvgPool2d = AdaptiveAvgPool2d
  function AdaptiveAvgPool2d:init(output_size)
    if output_size == nil then argerror_at(3, "AdaptiveAvgPool2d", 1, "output_size expected") end
    self.output_size = size_opt("AdaptiveAvgPool2d", 1, output_size, "output_size")
  end
  function AdaptiveAvgPool2d:forward(x)
    local y = F.adaptive_avg_pool2d(x, self.output_size)
    return y
  end
  function AdaptiveAvgPool2d:extra_repr()
    return "output_size=" .. pyvalue(self.output_size)
  end

  -- ============================================================ normalization

  -- BatchNorm1d / BatchNorm2d(num_features [, {eps = 1e-5, momentum = 0.1, affine = true,
  -- track_running_stats = true, dtype}]). Training (model:train()) normalizes with the batch's
  -- statistics and updates the running ones in place; eval() uses the running ones. momentum =
  -- false is PyTorch's momentum=None: the running statistics are the plain (cumulative) average of
  -- every batch's, by the factor 1 / num_batches_tracked.
  local function batch_norm_class(name, dims, expected)
    local B = Module:extend(name)
    nn[name] = B
    function B:init(num_features, opts)
      num_features = check_int(name, 1, num_features, "num_features")
      local o = options(name, 2, opts,
        { eps = 1e-5, momentum = 0.1, affine = true, track_running_stats = true, dtype = false }, 3)
      if type(o.eps) ~= "number" then argerror_at(3, name, 2, "eps must be a number, got %s", type(o.eps)) end
      if o.momentum ~= false and type(o.momentum) ~= "number" then
        argerror_at(3, name, 2, "momentum must be a number or false, got %s", type(o.momentum))
      end
      self.num_features, self.eps, self.momentum = num_features, o.eps, o.momentum
      self.affine, self.track_running_stats = o.affine and true or false, o.track_running_stats and true or false
      local dt = { dtype = o.dtype or core.get_default_dtype() }
      if self.affine then
        self.weight = core.ones({ num_features }, dt):requires_grad_()
        self.bias = core.zeros({ num_features }, dt):requires_grad_()
      end
      if self.track_running_stats then
        self:register_buffer("running_mean", core.zeros({ num_features }, dt))
        self:register_buffer("running_var", core.ones({ num_features }, dt))
        self:register_buffer("num_batches_tracked", core.tensor(0, { dtype = "int64" }))
      end
    end
    function B:forward(x)
      if not is_tensor(x) then argerror("forward", 1, "tensor expected, got %s", type(x)) end
      if not dims[x.ndim] then
        argerror("forward", 1, "%s expects %s input, got shape %s", name, expected, shape_str(x))
      end
      if x.shape[2] ~= self.num_features then
        argerror("forward", 1, "%s(%d) expects %d channels in dim 2, got shape %s", name, self.num_features,
          self.num_features, shape_str(x))
      end
      local params, bufs = rawget(self, "_parameters"), rawget(self, "_buffers")
      local training = rawget(self, "training")
      local momentum = self.momentum
      if training and self.track_running_stats then
        core.no_grad(function() bufs.num_batches_tracked:add_(1) end)
        -- momentum = false: the cumulative average, each step's factor 1 / num_batches_tracked
        if momentum == false then momentum = 1 / bufs.num_batches_tracked:item() end
      end
      if momentum == false then momentum = 0 end -- (not training: unused)
      local use_batch = training or not self.track_running_stats
      local y = F.batch_norm(x, bufs.running_mean, bufs.running_var,
        { weight = params.weight, bias = params.bias, training = use_batch, momentum = momentum, eps = self.eps })
      return y
    end
    function B:extra_repr()
      return string.format("%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s", self.num_features,
        tostring(self.eps), self.momentum == false and "None" or tostring(self.momentum), pybool(self.affine),
        pybool(self.track_running_stats))
    end
    return B
  end
  batch_norm_class("BatchNorm1d", { [2] = true, [3] = true }, "2-d {N,C} or 3-d {N,C,L}")
  batch_norm_class("BatchNorm2d", { [4] = true }, "4-d {N,C,H,W}")

  -- LayerNorm(normalized_shape [, {eps = 1e-5, elementwise_affine = true, dtype}]): over the last
  -- dims of the input, whose sizes are normalized_shape (a number or a list)
  local LayerNorm = Module:extend("LayerNorm")
  nn.LayerNorm = LayerNorm
  function LayerNorm:init(normalized_shape, opts)
    local shape = {}
    if type(normalized_shape) == "table" and not is_tensor(normalized_shape) then
      for i, v in ipairs(normalized_shape) do
        shape[i] = check_int("LayerNorm", 1, v, "normalized_shape[" .. i .. "]")
      end
      if #shape == 0 then argerror_at(3, "LayerNorm", 1, "normalized_shape must not be empty") end
    else
      shape[1] = check_int("LayerNorm", 1, normalized_shape, "normalized_shape")
    end
    local o = options("LayerNorm", 2, opts, { eps = 1e-5, elementwise_affine = true, dtype = false }, 3)
    self.normalized_shape, self.eps = shape, o.eps
    self.elementwise_affine = o.elementwise_affine and true or false
    self._opts = { eps = o.eps }
    if self.elementwise_affine then
      local dt = { dtype = o.dtype or core.get_default_dtype() }
      self.weight = core.ones(shape, dt):requires_grad_()
      self.bias = core.zeros(shape, dt):requires_grad_()
    end
  end
  function LayerNorm:forward(x)
    local params = rawget(self, "_parameters")
    local y = F.layer_norm(x, self.normalized_shape, { weight = params.weight, bias = params.bias, eps = self.eps })
    return y
  end
  function LayerNorm:extra_repr()
    return string.format("%s, eps=%s, elementwise_affine=%s", pytuple(self.normalized_shape), tostring(self.eps),
      pybool(self.elementwise_affine))
  end

  -- Embedding(num_embeddings, embedding_dim [, {padding_idx, dtype}]): weight N(0, 1); forward(idx)
  -- takes 1-based int64 indices. padding_idx (1-based; negative counts from the end, -1 the last
  -- row, kept as the positive row) starts as zeros and gets no gradient.
  local Embedding = Module:extend("Embedding")
  nn.Embedding = Embedding
  function Embedding:init(num_embeddings, embedding_dim, opts)
    self.num_embeddings = check_int("Embedding", 1, num_embeddings, "num_embeddings")
    self.embedding_dim = check_int("Embedding", 2, embedding_dim, "embedding_dim")
    local o = options("Embedding", 3, opts, { padding_idx = false, dtype = false }, 3)
    local pad = o.padding_idx
    if pad then
      if math.type(pad) ~= "integer" and not (type(pad) == "number" and pad == math.floor(pad)) then
        argerror_at(3, "Embedding", 3, "padding_idx must be an integer, got %s", tostring(pad))
      end
      pad = math.tointeger(pad)
      if pad == 0 then argerror_at(3, "Embedding", 3, "padding_idx 0 is not a row (indices count from 1)") end
      if pad > self.num_embeddings or pad < -self.num_embeddings then
        argerror_at(3, "Embedding", 3, "padding_idx %d is out of range for %d embeddings", pad, self.num_embeddings)
      end
      if pad < 0 then pad = pad + self.num_embeddings + 1 end
      self.padding_idx = pad
      self._opts = { padding_idx = pad }
    end
    local dt = { dtype = o.dtype or core.get_default_dtype() }
    local w = core.empty({ self.num_embeddings, self.embedding_dim }, dt):normal_()
    if pad then w[pad]:zero_() end
    self.weight = w:requires_grad_()
  end
  function Embedding:forward(idx)
    local y = F.embedding(idx, rawget(self, "_parameters").weight, self._opts)
    return y
  end
  function Embedding:extra_repr()
    local s = string.format("%d, %d", self.num_embeddings, self.embedding_dim)
    if self.padding_idx then s = s .. ", padding_idx=" .. self.padding_idx end
    return s
  end

  return nn
end
