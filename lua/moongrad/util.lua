-- moongrad.util: what the Lua layer's files share (kept small: one helper per job).
local core = require "moongrad.core"

local M = {}

local is_tensor = core.is_tensor

-- Copies `opts` over `defaults` (which name every valid key; `false` stands for "not given") into a
-- fresh table; an unknown key is an error that names it and every valid key. `level` is error()'s,
-- counted from the function that calls options.
function M.options(fname, argn, opts, defaults, level)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  if opts == nil then return o end
  level = (level or 2) + 1
  if type(opts) ~= "table" or is_tensor(opts) then
    error(string.format("bad argument #%d to '%s' (options table expected, got %s)", argn, fname,
      is_tensor(opts) and "tensor" or type(opts)), level)
  end
  for k, v in pairs(opts) do
    if defaults[k] == nil then
      local valid = {}
      for name in pairs(defaults) do valid[#valid + 1] = name end
      table.sort(valid)
      error(string.format("bad argument #%d to '%s' (unknown option '%s' (%s))", argn, fname, tostring(k),
        #valid > 0 and "valid: " .. table.concat(valid, ", ") or "it takes no options"), level)
    end
    o[k] = v
  end
  return o
end

return M
