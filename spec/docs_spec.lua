-- docs/reference.md covers every public name, and names nothing that does not exist.
--
-- The mapping (documented at the top of docs/reference.md): a heading line (starting with "#") holds
-- names in backticks; a name is the text inside the backticks up to the first character that is not
-- a letter, digit, "_", "." or ":". An exported `mg.x` is documented by a heading `mg.x`, or, when x
-- is a tensor method, by `t:x` (every method is also mg.x(t, ...)). Tables are walked by their full
-- path (`mg.nn.utils.clip_grad_norm_`). Methods of instances use a fixed prefix: `t:` tensors,
-- `module:` mg.nn.Module, `opt:` optimizers, `sched:` schedulers, `loader:` DataLoaders, `fig:`
-- figures. Names starting with "_" are private and skipped (also _VERSION).
local mg = require "moongrad"
local H = require "helper"
local core = require "moongrad.core"

local read = H.read_file

-- the set of names in the headings of docs/reference.md, and their list in order
local function documented_names()
  local set, list = {}, {}
  local in_code = false
  for line in read("docs/reference.md"):gmatch("[^\n]*") do
    if line:match("^```") then in_code = not in_code end
    if not in_code and line:match("^#") then
      for span in line:gmatch("`([^`]+)`") do
        local name = span:match("^[%w_.:]+")
        if name and not set[name] then
          set[name] = true
          list[#list + 1] = name
        end
      end
    end
  end
  return set, list
end

local function public_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end

local function public_functions(t)
  local keys = {}
  for _, k in ipairs(public_keys(t)) do
    if type(t[k]) == "function" then keys[#keys + 1] = k end
  end
  return keys
end

-- the methods table behind an optimizer's __index function (an upvalue named Optimizer)
local function optimizer_methods()
  local opt = mg.optim.SGD({ mg.zeros(1, { requires_grad = true }) }, { lr = 0.1 })
  local index = getmetatable(opt).__index
  local i = 1
  while true do
    local name, value = debug.getupvalue(index, i)
    if name == nil then break end
    if name == "Optimizer" then return value end
    i = i + 1
  end
  error("cannot find the optimizers' methods table")
end

-- every public name, with the heading names that document it (any one will do)
local function exported()
  local out = {}
  local function add(name, ...) out[#out + 1] = { name = name, accepted = { name, ... } } end
  for _, k in ipairs(public_keys(mg)) do
    if core._methods[k] then add("mg." .. k, "t:" .. k) else add("mg." .. k) end
  end
  for _, path in ipairs({ "F", "autograd", "nn", "nn.utils", "optim", "optim.lr_scheduler", "data", "plot" }) do
    local t = mg
    for part in path:gmatch("[^.]+") do t = t[part] end
    for _, k in ipairs(public_keys(t)) do add("mg." .. path .. "." .. k) end
  end
  for _, k in ipairs(public_keys(core._methods)) do add("t:" .. k) end
  for _, k in ipairs(public_functions(mg.nn.Module)) do
    add("module:" .. k, "mg.nn.Module:" .. k, "mg.nn.Module." .. k)
  end
  for _, k in ipairs(public_functions(optimizer_methods())) do add("opt:" .. k) end
  local opt = mg.optim.SGD({ mg.zeros(1, { requires_grad = true }) }, { lr = 0.1 })
  local schedulers = { getmetatable(mg.optim.lr_scheduler.StepLR(opt, { step_size = 1 })),
    getmetatable(mg.optim.lr_scheduler.ReduceLROnPlateau(opt)) }
  for _, mt in ipairs(schedulers) do
    for _, k in ipairs(public_functions(mt)) do add("sched:" .. k) end
  end
  for _, k in ipairs(public_functions(getmetatable(mg.data.DataLoader(mg.zeros(2))))) do add("loader:" .. k) end
  for _, k in ipairs(public_functions(getmetatable(mg.plot.figure()))) do add("fig:" .. k) end
  return out
end

-- the objects a documented name refers to, or nil when it names nothing that exists
local TENSOR_PROPERTIES = { shape = true, ndim = true, dtype = true, requires_grad = true, grad = true,
  is_leaf = true, grad_fn = true, T = true }

local function resolve(name, header)
  local prefix, rest = name:match("^(%a+)[.:](.+)$")
  if name:match("^mg_") or name:match("^luaopen_") then
    return header:find(name, 1, true) ~= nil or nil
  elseif prefix == "mg" then
    local v = mg
    for part in rest:gmatch("[^.:]+") do
      if type(v) ~= "table" then return nil end
      v = v[part]
    end
    return v
  elseif prefix == "t" and name:sub(2, 2) == ":" then
    return core._methods[rest]
  elseif prefix == "t" then
    if not TENSOR_PROPERTIES[rest] then return nil end
    local x = mg.tensor({ 1.0 }, { requires_grad = true })
    local y = (x * 2):sum()
    y:retain_grad()
    y:backward()
    return y[rest] ~= nil or nil
  elseif prefix == "module" then
    return mg.nn.Module[rest]
  end
  return true -- other forms (opt:, sched:, tostring(t), #t, ...) are checked one way only
end

describe("docs/reference.md", function()
  local documented, headings = documented_names()

  it("has an entry for every exported name", function()
    local missing = {}
    for _, e in ipairs(exported()) do
      local found = false
      for _, a in ipairs(e.accepted) do found = found or documented[a] end
      if not found then missing[#missing + 1] = e.name end
    end
    assert.same({}, missing)
  end)

  it("names only things that exist", function()
    local header = read("include/moongrad.h")
    local stale = {}
    for _, name in ipairs(headings) do
      if name:match("^mg%.") or name:match("^t[.:]") or name:match("^module:") or name:match("^mg_")
        or name:match("^luaopen_") then
        if resolve(name, header) == nil then stale[#stale + 1] = name end
      end
    end
    assert.same({}, stale)
  end)

  it("enumerates a sensible number of names (the enumeration itself works)", function()
    local n = #exported()
    assert.is_true(n > 250, "only " .. n .. " exported names found")
    assert.is_true(documented["mg.zeros"] and documented["t:view"] and documented["mg.nn.Linear"])
  end)
end)
