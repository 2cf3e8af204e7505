-- moongrad.nn.containers: the shape and container modules of mg.nn, added to it by nn.lua
-- (`require("moongrad.nn.containers")(M)`: this file returns a function of the nn table, so that it
-- can extend Module without requiring moongrad.nn while that is still loading).
--
--   Flatten([start_dim = 2 [, end_dim = -1]])   x:flatten(start_dim, end_dim), dims 1-based
--   Unflatten(dim, sizes)                        dim (1-based) of x becomes the dims `sizes`
--   Identity(...)                                returns its input (arguments are ignored, as PyTorch)
--   ModuleList{m1, m2, ...}                      children "0", "1", ... (PyTorch's state_dict keys),
--                                                reached as ml[1], ml[2], #ml; no forward
--   ModuleDict{name = m, ...}                    children by name (md.enc, md["enc"]), sorted by name
--                                                when given as a map; {{"name", m}, ...} keeps order
local core = require "moongrad.core"
local util = require "moongrad.util"

local argerror, argerror_at = util.argerror, util.argerror_at
local is_tensor = core.is_tensor

local function shape_str(shape)
  return "{" .. table.concat(shape, ",") .. "}"
end

return function(M)
  local Module, is_module = M.Module, M.is_module
  local instance_index, instance_newindex = Module.__index, Module.__newindex

  local function what(v)
    if is_tensor(v) then return "tensor" end
    return type(v)
  end

  local function check_dim_arg(fname, argn, v, name)
    if math.type(v) ~= "integer" then
      argerror_at(4, fname, argn, "%s must be an integer, got %s", name, math.type(v) or type(v))
    end
    if v == 0 then
      argerror_at(4, fname, argn, "%s must not be 0 (dims count from 1; -1 is the last)", name)
    end
    return v
  end

  -- ============================================================ Flatten, Unflatten, Identity

  local Flatten = Module:extend("Flatten")
  M.Flatten = Flatten

  function Flatten:init(start_dim, end_dim)
    if start_dim == nil then start_dim = 2 end
    if end_dim == nil then end_dim = -1 end
    self.start_dim = check_dim_arg("Flatten", 1, start_dim, "start_dim")
    self.end_dim = check_dim_arg("Flatten", 2, end_dim, "end_dim")
  end

  function Flatten:forward(x)
    if not is_tensor(x) then argerror("forward", 1, "tensor expected, got %s", type(x)) end
    return x:flatten(self.start_dim, self.end_dim)
  end

  function Flatten:extra_repr()
    return string.format("start_dim=%d, end_dim=%d", self.start_dim, self.end_dim)
  end

  local Unflatten = Module:extend("Unflatten")
  M.Unflatten = Unflatten

  function Unflatten:init(dim, sizes)
    self.dim = check_dim_arg("Unflatten", 1, dim, "dim")
    if type(sizes) ~= "table" or is_tensor(sizes) or #sizes == 0 then
      argerror_at(3, "Unflatten", 2, "a non-empty list of sizes expected, got %s", what(sizes))
    end
    local list, free = {}, 0
    for i, s in ipairs(sizes) do
      if math.type(s) ~= "integer" or (s < 0 and s ~= -1) then
        argerror_at(3, "Unflatten", 2, "size %d must be a non-negative integer or -1, got %s", i, tostring(s))
      end
      if s == -1 then free = free + 1 end
      list[i] = s
    end
    if free > 1 then argerror_at(3, "Unflatten", 2, "only one size can be -1, got %s", shape_str(list)) end
    self.unflattened_size = list
  end

  function Unflatten:forward(x)
    if not is_tensor(x) then argerror("forward", 1, "tensor expected, got %s", type(x)) end
    local shape = x.shape
    local n = #shape
    local d = self.dim < 0 and n + 1 + self.dim or self.dim
    if d < 1 or d > n then
      argerror("Unflatten", 1, "dim %d out of range for an input of shape %s", self.dim, shape_str(shape))
    end
    local prod, free = 1, nil
    for i, s in ipairs(self.unflattened_size) do
      if s == -1 then free = i else prod = prod * s end
    end
    local sizes = { table.unpack(self.unflattened_size) }
    if free and prod > 0 and shape[d] % prod == 0 then sizes[free] = shape[d] // prod end
    if (free and sizes[free] == -1) or (not free and prod ~= shape[d]) then
      argerror("Unflatten", 2, "sizes %s don't multiply up to the size of dim %d (%d) of the input %s",
        shape_str(self.unflattened_size), d, shape[d], shape_str(shape))
    end
    local new = {}
    for i = 1, d - 1 do new[#new + 1] = shape[i] end
    for _, s in ipairs(sizes) do new[#new + 1] = s end
    for i = d + 1, n do new[#new + 1] = shape[i] end
    return x:reshape(new)
  end

  function Unflatten:extra_repr()
    return string.format("dim=%d, unflattened_size=(%s)", self.dim, table.concat(self.unflattened_size, ", "))
  end

  local Identity = Module:extend("Identity")
  M.Identity = Identity

  function Identity.init() end
  function Identity.forward(_, x) return x end

  -- ============================================================ ModuleList

  local ModuleList = Module:extend("ModuleList")
  M.ModuleList = ModuleList

  -- the children as a Lua list, in order
  local function list_of(self)
    local mods, out = rawget(self, "_modules"), {}
    for i, n in ipairs(rawget(self, "_module_order")) do out[i] = mods[n] end
    return out
  end

  -- replaces every child by `list`, named "0", "1", ... (as PyTorch renumbers after insert / del)
  local function set_list(self, list)
    local mods, order = {}, {}
    for i, m in ipairs(list) do
      mods[tostring(i - 1)], order[i] = m, tostring(i - 1)
    end
    rawset(self, "_modules", mods)
    rawset(self, "_module_order", order)
  end

  local function check_module(fname, argn, m, level)
    if not is_module(m) then
      argerror_at(level + 1, fname, argn, "Module expected, got %s", what(m))
    end
    return m
  end

  function ModuleList:init(modules)
    if modules == nil then return end
    if type(modules) ~= "table" or is_tensor(modules) or is_module(modules) then
      argerror_at(3, "ModuleList", 1, "a list of modules expected, got %s", is_module(modules) and "Module"
        or what(modules))
    end
    for i, m in ipairs(modules) do
      if not is_module(m) then argerror_at(3, "ModuleList", 1, "element %d is a %s, not a Module", i, what(m)) end
      self:register_module(tostring(i - 1), m)
    end
  end

  local function position(self, k, allow_end)
    local n = #rawget(self, "_module_order")
    if k < 0 then k = n + 1 + k end
    if k >= 1 and (k <= n or (allow_end and k == n + 1)) then return k end
  end

  function ModuleList.__index(self, k)
    if math.type(k) == "integer" then
      local i = position(self, k)
      return i and rawget(self, "_modules")[rawget(self, "_module_order")[i]]
    end
    return instance_index(self, k)
  end

  function ModuleList.__newindex(self, k, v)
    if math.type(k) == "integer" then
      local i = position(self, k)
      if not i then
        argerror("ModuleList", 1, "index %d out of range for %d modules", k, #rawget(self, "_module_order"))
      end
      if not is_module(v) then argerror("ModuleList", 2, "Module expected, got %s", what(v)) end
      rawget(self, "_modules")[rawget(self, "_module_order")[i]] = v
      return
    end
    return instance_newindex(self, k, v)
  end

  function ModuleList.__len(self)
    return #rawget(self, "_module_order")
  end

  -- append(m): adds m at the end; returns self
  function ModuleList:append(m)
    check_module("append", 1, m, 2)
    self:register_module(tostring(#rawget(self, "_module_order")), m)
    return self
  end

  -- extend(list): appends every module of a list (or of another ModuleList / Sequential); returns self
  function ModuleList:extend(modules)
    local list
    if is_module(modules) then
      list = list_of(modules)
    elseif type(modules) == "table" and not is_tensor(modules) then
      list = modules
    else
      argerror("extend", 1, "a list of modules expected, got %s", what(modules))
    end
    for i, m in ipairs(list) do
      if not is_module(m) then argerror("extend", 1, "element %d is a %s, not a Module", i, what(m)) end
    end
    for _, m in ipairs(list) do self:append(m) end
    return self
  end

  -- insert(index, m): m becomes ml[index] (1-based; negative counts from the end, as PyTorch's
  -- insert), the later ones move up one place and are renamed
  function ModuleList:insert(index, m)
    if math.type(index) ~= "integer" then
      argerror("insert", 1, "integer index expected, got %s", math.type(index) or type(index))
    end
    check_module("insert", 2, m, 2)
    local list = list_of(self)
    local n = #list
    local i
    if index < 0 then i = math.max(n + 1 + index, 1) else i = math.min(math.max(index, 1), n + 1) end
    table.insert(list, i, m)
    set_list(self, list)
  end

  -- pop([index = -1]): removes ml[index] and returns it; the later ones move down and are renamed
  function ModuleList:pop(index)
    if index == nil then index = -1 end
    if math.type(index) ~= "integer" then
      argerror("pop", 1, "integer index expected, got %s", math.type(index) or type(index))
    end
    local i = position(self, index)
    if not i then argerror("pop", 1, "index %d out of range for %d modules", index, #self) end
    local list = list_of(self)
    local m = table.remove(list, i)
    set_list(self, list)
    return m
  end

  function ModuleList._child_label(_, name, i)
    if name == tostring(i - 1) then return tostring(i) end
    return name
  end

  -- ============================================================ ModuleDict

  local ModuleDict = Module:extend("ModuleDict")
  M.ModuleDict = ModuleDict

  -- the (name, module) pairs of a map (sorted by name) or of a list of {name, module} pairs (in order)
  local function named_pairs(fname, argn, modules, level)
    if is_module(modules) and getmetatable(modules) == ModuleDict then
      local out = {}
      for _, n in ipairs(rawget(modules, "_module_order")) do out[#out + 1] = { n, rawget(modules, "_modules")[n] } end
      return out
    end
    if type(modules) ~= "table" or is_tensor(modules) or is_module(modules) then
      argerror_at(level + 1, fname, argn, "a table of name = Module expected, got %s",
        is_module(modules) and "Module" or what(modules))
    end
    local out = {}
    if #modules > 0 then
      for i, pair in ipairs(modules) do
        if type(pair) ~= "table" or type(pair[1]) ~= "string" or not is_module(pair[2]) then
          argerror_at(level + 1, fname, argn, "element %d must be a {name, Module} pair", i)
        end
        out[i] = { pair[1], pair[2] }
      end
      return out
    end
    for k, v in pairs(modules) do
      if type(k) ~= "string" then
        argerror_at(level + 1, fname, argn, "module names must be strings, got a %s key", type(k))
      end
      if not is_module(v) then
        argerror_at(level + 1, fname, argn, "'%s' is a %s, not a Module", k, what(v))
      end
      out[#out + 1] = { k, v }
    end
    table.sort(out, function(a, b) return a[1] < b[1] end)
    return out
  end

  function ModuleDict:init(modules)
    if modules == nil then return end
    for _, pair in ipairs(named_pairs("ModuleDict", 1, modules, 3)) do
      self:register_module(pair[1], pair[2])
    end
  end

  function ModuleDict.__len(self)
    return #rawget(self, "_module_order")
  end

  -- keys(), values(): Lua lists in order; items(): an iterator of name, module
  function ModuleDict:keys()
    local out = {}
    for i, n in ipairs(rawget(self, "_module_order")) do out[i] = n end
    return out
  end

  function ModuleDict:values()
    local out = {}
    for i, n in ipairs(rawget(self, "_module_order")) do out[i] = rawget(self, "_modules")[n] end
    return out
  end

  function ModuleDict:items()
    return self:named_children()
  end

  -- contains(name): whether a child of that name exists
  function ModuleDict:contains(name)
    return rawget(self, "_modules")[name] ~= nil
  end

  -- update(modules): adds or replaces children (a map or a list of pairs, as the constructor)
  function ModuleDict:update(modules)
    for _, pair in ipairs(named_pairs("update", 1, modules, 2)) do
      self:register_module(pair[1], pair[2])
    end
  end

  -- pop(name): removes the child and returns it
  function ModuleDict:pop(name)
    local m = rawget(self, "_modules")[name]
    if m == nil then argerror("pop", 1, "no module named '%s'", tostring(name)) end
    self[name] = nil
    return m
  end

  -- clear(): removes every child
  function ModuleDict:clear()
    rawset(self, "_modules", {})
    rawset(self, "_module_order", {})
  end
end
