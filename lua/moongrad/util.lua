-- moongrad.util: what the Lua layer's files share (kept small: one helper per job).
local core = require "moongrad.core"

local M = {}

local is_tensor = core.is_tensor

-- "bad argument #argn to 'fname' (detail)", detail = string.format(fmt, ...). `level` is error()'s,
-- counted from the function that called argerror or argerror_at: + 2 steps over raise and that one.
local function raise(level, fname, argn, fmt, ...)
  error(string.format("bad argument #%d to '%s' (%s)", argn, fname, string.format(fmt, ...)), level + 2)
end

-- argerror(fname, argn, fmt, ...): blames the line that called the function calling argerror, as
-- error(msg, 2) there does. Not as a tail call (`return argerror(...)`): that frame would be gone.
function M.argerror(fname, argn, fmt, ...)
  raise(2, fname, argn, fmt, ...)
end

-- argerror_at(level, fname, argn, fmt, ...): the same at error()'s `level`, counted from the
-- function that calls it: 3 for a helper that blames its caller's caller, or a level passed down.
function M.argerror_at(level, fname, argn, fmt, ...)
  raise(level, fname, argn, fmt, ...)
end

-- The valid names for an unknown option's error: a map's sorted, a list's in its order.
local function valid_names(defaults, listed, required)
  local names = {}
  if listed then
    for i, d in ipairs(defaults) do names[i] = d[1] end
  else
    for name in pairs(defaults) do names[#names + 1] = name end
  end
  for _, name in ipairs(required) do names[#names + 1] = name end
  if not listed then table.sort(names) end
  if #names == 0 then return "it takes no options" end
  return "valid: " .. table.concat(names, ", ")
end

-- Copies `opts` over `defaults` into a fresh table; an unknown key is an error that names it and
-- every valid key. `defaults` is a map name -> default (`false` stands for "not given"), or a list
-- of {name, default, ...} whose order the error keeps. `required` lists the keys that opts must
-- give (then opts cannot be nil). `level` is error()'s, counted from the function that calls
-- options.
function M.options(fname, argn, opts, defaults, level, required)
  local listed = defaults[1] ~= nil
  local o = {}
  if listed then
    for _, d in ipairs(defaults) do o[d[1]] = d[2] end
  else
    for k, v in pairs(defaults) do o[k] = v end
  end
  if opts == nil and not required then return o end
  level = (level or 2) + 1
  required = required or {}
  if type(opts) ~= "table" or is_tensor(opts) then
    M.argerror_at(level, fname, argn, "options table expected, got %s", is_tensor(opts) and "tensor" or type(opts))
  end
  local known = {}
  if listed then
    for _, d in ipairs(defaults) do known[d[1]] = true end -- its default may be nil
  else
    for k in pairs(defaults) do known[k] = true end
  end
  for _, k in ipairs(required) do known[k] = true end
  for k, v in pairs(opts) do
    if not known[k] then
      M.argerror_at(level, fname, argn, "unknown option '%s' (%s)", tostring(k),
        valid_names(defaults, listed, required))
    end
    o[k] = v
  end
  for _, k in ipairs(required) do
    if o[k] == nil then M.argerror_at(level, fname, argn, "option '%s' is required", tostring(k)) end
  end
  return o
end

-- raise_as(fname, level, err): raises err (an error of a C function of mg.F, say, caught by the
-- caller's pcall) renamed and placed: "bad argument #N to '<any>' (detail)" becomes "... to
-- 'fname' (detail)" and "'<any>': detail" becomes "'fname': detail", at error()'s `level` counted
-- from the function that calls raise_as (2: that function's caller). So a Lua wrapper (a loss
-- module's forward) reports its own name at the user's line, not "bad argument #2 to 'fn'" at its
-- own. The caller's pcall has fixed arguments (no vararg frames): a loss module's call costs
-- ~0.1 us more than the bare C call, where the vararg call_as this replaces cost ~0.45 us (W4).
function M.raise_as(fname, level, err)
  if type(err) ~= "string" then error(err, 0) end
  err = err:gsub("^[^\n]-%.lua:%d+: ", "", 1)
  local n, detail = err:match("^bad argument #(%d+) to '[^']*' %((.*)%)$")
  if n then
    err = string.format("bad argument #%s to '%s' (%s)", n, fname, detail)
  else
    local d = err:match("^'[^']*': (.*)$")
    if d then err = string.format("'%s': %s", fname, d) end
  end
  error(err, level + 1)
end

-- Warnings (PyTorch's UserWarning), each distinct message once per Lua state: written to io.stderr
-- as "moongrad warning: <message>", or given to the handler set with set_warn_handler(fn) (nil:
-- back to stderr), which returns the previous handler. Specs capture them that way.
-- The state lives in the registry, one per Lua state: a second load of this file (busted reloads
-- the Lua modules of each spec file; the C core and mg.F stay) shares it.
local function warn_state()
  local reg = debug.getregistry()
  local st = reg["moongrad.warnings"]
  if not st then
    st = { seen = {} }
    reg["moongrad.warnings"] = st
  end
  return st
end

function M.warn(msg)
  local st = warn_state()
  if st.seen[msg] then return end
  st.seen[msg] = true
  if st.handler then
    st.handler(msg)
  else
    io.stderr:write("moongrad warning: ", msg, "\n")
  end
end

-- the C core's warnings (mse_loss's broadcast, say) come here too (src/bind/args.c: lt_warn)
debug.getregistry()["moongrad.warn"] = M.warn

function M.set_warn_handler(fn)
  if fn ~= nil and type(fn) ~= "function" then
    M.argerror("set_warn_handler", 1, "function or nil expected, got %s", type(fn))
  end
  local st = warn_state()
  local old = st.handler
  st.handler = fn
  return old
end

-- forget the messages already shown (so that a spec sees a warning again)
function M.reset_warnings()
  warn_state().seen = {}
end

return M
