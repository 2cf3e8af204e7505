-- mg.autograd: gradients without touching .grad (the engine is in C), and gradcheck, which
-- compares autograd's gradients with central differences in float64.
--
-- grad(outputs, inputs [, grad_outputs] [, {retain_graph = false}]): outputs, inputs and
-- grad_outputs are tensors or lists of tensors; returns the list of d sum(outputs) / d inputs[i], in
-- the inputs' order, without touching any .grad. An input the outputs do not depend on gets zeros
-- of its shape (PyTorch raises, or gives None with allow_unused; zeros keep the list free of holes).
local core = require "moongrad.core"
local util = require "moongrad.util"

local argerror = util.argerror

local M = {}

M.grad = core._autograd_grad

local DEFAULTS = { eps = 1e-6, atol = 1e-5, rtol = 1e-3 }

-- The scalar that is differentiated: sum(out * w) over every tensor output, w fixed random weights
-- (so the whole Jacobian is exercised, not only its column sums).
local function projected(fn, inputs, weights)
  local outs = table.pack(fn(table.unpack(inputs, 1, inputs.n)))
  local total
  for i = 1, outs.n do
    local out = outs[i]
    if core.is_tensor(out) and (out.dtype == "float64" or out.dtype == "float32") then
      if not weights[i] then
        weights[i] = core.randn(out.shape, { dtype = "float64" })
      end
      local term = (out:double() * weights[i]):sum()
      total = total and total + term or term
    end
  end
  if not total then error("'gradcheck': the function returned no floating point tensor", 3) end
  return total
end

-- gradcheck(fn, inputs [, {eps, atol, rtol}]): calls fn(inputs[1], inputs[2], ...); the inputs
-- that are float64 tensors with requires_grad are checked. Returns true, or raises an error naming
-- the input and the worst element with both values.
function M.gradcheck(fn, inputs, opts)
  if type(fn) ~= "function" then argerror("gradcheck", 1, "function expected") end
  if type(inputs) ~= "table" or core.is_tensor(inputs) then inputs = { inputs } end
  local o = util.options("gradcheck", 3, opts or nil, DEFAULTS, 2) -- it has always taken false for none
  local args = table.pack(table.unpack(inputs))
  local checked = {}
  for i = 1, args.n do
    local x = args[i]
    if core.is_tensor(x) and x.requires_grad then
      if x.dtype ~= "float64" then
        argerror("gradcheck", 2, "inputs[%d] is %s: gradcheck needs float64", i, x.dtype)
      end
      checked[#checked + 1] = i
    end
  end
  if #checked == 0 then argerror("gradcheck", 2, "no input requires grad") end

  local weights = {}
  local s = projected(fn, args, weights)
  local wrt = {}
  for k, i in ipairs(checked) do wrt[k] = args[i] end
  local analytic = M.grad({ s }, wrt)

  -- the perturbations write into the inputs, so they run without recording; the error is raised
  -- out here, so that it names the caller's line
  local failure = core.no_grad(function()
    for k, i in ipairs(checked) do
      local x = args[i]
      local flat = x:view(-1)
      local a = analytic[k]:reshape(-1)
      local worst, worst_j, worst_a, worst_n = -1, nil, nil, nil
      for j = 1, flat:numel() do
        local v = flat[j]
        flat[j] = v + o.eps
        local plus = projected(fn, args, weights):item()
        flat[j] = v - o.eps
        local minus = projected(fn, args, weights):item()
        flat[j] = v
        local numeric = (plus - minus) / (2 * o.eps)
        local err = math.abs(a[j] - numeric) - (o.atol + o.rtol * math.abs(numeric))
        if err > worst then worst, worst_j, worst_a, worst_n = err, j, a[j], numeric end
      end
      if worst > 0 then
        return string.format("'gradcheck': gradient of inputs[%d] (shape {%s}) is wrong at element %d: "
          .. "autograd %.10g, finite differences %.10g", i, table.concat(x.shape, ","), worst_j,
          worst_a, worst_n)
      end
    end
  end)
  if failure then error(failure, 2) end
  return true
end

return M
