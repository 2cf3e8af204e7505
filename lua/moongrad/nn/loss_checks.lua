-- moongrad.nn.loss_checks: PyTorch's UserWarning for the regression losses, added to mg.F (loaded
-- by nn.lua). mse_loss and l1_loss with a target whose shape differs from the input's broadcast
-- without complaint, and a {5,1} prediction against {5} targets then averages a {5,5} matrix of
-- differences, which is almost never meant; PyTorch warns, and so does moongrad, once per message
-- (util.warn: stderr, or the handler of mg.set_warn_handler). The kernels stay the C ones; their
-- errors keep the function's name and point at the caller's line (util.call_as).
local core = require "moongrad.core"
local util = require "moongrad.util"

local F = core.F
local is_tensor = core.is_tensor
local dim, size = core.dim, core.size

local function same_shape(a, b)
  local n = dim(a)
  if n ~= dim(b) then return false end
  for d = 1, n do
    if size(a, d) ~= size(b, d) then return false end
  end
  return true
end

local function shape_str(t)
  return "{" .. table.concat(t.shape, ",") .. "}"
end

local function checked(fname)
  local kernel = F[fname]
  if type(kernel) ~= "function" then return end
  F[fname] = function(input, target, ...)
    if is_tensor(input) and is_tensor(target) and not same_shape(input, target) then
      util.warn(string.format("'%s': using a target size (%s) that is different to the input size (%s). This will "
        .. "likely lead to incorrect results due to broadcasting. Please ensure they have the same size.", fname,
        shape_str(target), shape_str(input)))
    end
    local out = util.call_as(fname, 2, kernel, input, target, ...)
    return out
  end
end

-- once per Lua state: nn.lua is loaded once, but a second load must not wrap twice
if not rawget(F, "_checked_losses") then
  checked("mse_loss")
  checked("l1_loss")
  rawset(F, "_checked_losses", true)
end

return true
