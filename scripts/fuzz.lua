--[[
fuzz.lua: calls every public function and method of moongrad with hostile arguments.

    lua5.4 scripts/fuzz.lua [--seed N] [--calls N] [--seconds N] [--log FILE]

What it calls is enumerated, not listed: every function reachable from the module table (mg.F,
mg.nn, mg.optim, ...), every function of moongrad.core (the private _* ones too: a script can reach
them), every tensor method (core._methods) and metamethod. So a new name is fuzzed without editing
this file. Arguments come from a pool of hostile values: nil and every Lua type, NaN and infinities,
integer extremes, huge and negative sizes, tensors of every dtype that are 0-d, empty, transposed,
expanded (stride 0), closed by <close>, requiring grad; ragged and deep tables, tables whose
metamethods raise errors. Also results of earlier calls, so that outputs feed back as inputs.

A Lua error is the expected outcome of most calls. A failure is a crash or a sanitizer report (the
process dies: the log's last line names the call), a hang (the caller's `timeout` ends the run;
the log names the call), or a broken invariant after a call: a tensor whose sizes, strides and
offset reach outside its storage, or a view that no longer aliases its base. Run it in an empty
directory (functions that write files get names like "x"), with a memory limit (ulimit -v, or
ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=...).
]]
local mg = require "moongrad"
local core = require "moongrad.core"

local opts = {seed = 1, calls = 10000, seconds = math.huge, log = nil}
do
  local i = 1
  while arg[i] do
    local k = arg[i]:match("^%-%-(%w+)$")
    if not k or opts[k] == nil and k ~= "log" then
      error("usage: fuzz.lua [--seed N] [--calls N] [--seconds N] [--log FILE]")
    end
    opts[k] = k == "log" and arg[i + 1] or tonumber(arg[i + 1])
    i = i + 2
  end
end

-- the generator of the fuzzer itself: xorshift, not math.random (the script under test may seed it)
local state = opts.seed * 2654435761 % 2^32 + 1
local function rand(n)
  state = state ~ (state << 13); state = state ~ (state >> 7); state = state ~ (state << 17)
  return (state & 0x7fffffff) % n + 1
end
local function pick(list) return list[rand(#list)] end

-- ---- the targets ----------------------------------------------------------------------------
local targets, seen = {}, {}
local function collect(tbl, prefix, depth)
  if seen[tbl] or depth > 3 then return end
  seen[tbl] = true
  local keys = {}
  for k in pairs(tbl) do if type(k) == "string" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = tbl[k]
    if type(v) == "function" then targets[#targets + 1] = {name = prefix .. k, fn = v}
    elseif type(v) == "table" and not getmetatable(v) then collect(v, prefix .. k .. ".", depth + 1) end
  end
end
collect(mg, "mg.", 1)
collect(core, "core.", 1)
collect(core._methods, "t:", 1)
local mt = getmetatable(mg.ones(1))
for _, k in ipairs{"__add", "__sub", "__mul", "__div", "__pow", "__unm", "__len", "__index", "__newindex",
                   "__tostring", "__close"} do
  if type(mt[k]) == "function" then targets[#targets + 1] = {name = "mt." .. k, fn = mt[k]} end
end
-- calls that would only measure the machine: mg.set_num_threads(huge) is fuzzed with a cap below
local skip = {["mg.train"] = true, ["mg.training_loop"] = true, -- loops of user-given length
  ["mg.data.fashion_mnist"] = true} -- reads Debian's 30 MB data set: the same file every call

-- ---- the argument pool ------------------------------------------------------------------------
local function raising_table()
  return setmetatable({}, {__index = function() error("__index raised") end,
    __len = function() error("__len raised") end, __pairs = function() error("__pairs raised") end,
    __newindex = function() error("__newindex raised") end})
end
local function deep(n)
  local t = {1}
  for _ = 1, n do t = {t} end
  return t
end
local function closed(t)
  do local _ <close> = t end
  return t
end
local made = {} -- results of earlier calls (bounded ring)
local function tensors(retried)
  local ok, list = pcall(function()
    local dims16 = {}
    for i = 1, 16 do dims16[i] = 1 end
    return {
      mg.tensor(3.5), mg.tensor({}), mg.zeros(0, 3), mg.ones(2, 3), mg.arange(6):reshape(2, 3):t(),
      mg.ones(3):expand(4, 3), mg.tensor({1, 2, 3}, {dtype = "int64"}), mg.tensor({true, false}),
      mg.tensor({0 / 0, 1 / 0, -1 / 0}, {dtype = "float64"}), mg.ones(2, {requires_grad = true}),
      closed(mg.ones(2)), closed(mg.ones(4):narrow(1, 2, 2)), mg.zeros(dims16),
      mg.tensor({math.maxinteger, math.mininteger}, {dtype = "int64"}), mg.randn(3, 4):narrow(2, 2, 2),
    }
  end)
  if not ok and not retried then -- a fuzzed mg.set_memory_limit(1), say: undo it
    mg.set_memory_limit(1 << 30)
    return tensors(true)
  end
  assert(ok, list)
  return list
end
local scalars = {true, false, 0, 1, -1, 2, 3, 0.5, -0.0, 0 / 0, 1 / 0, -1 / 0, 1e308, 2 ^ 53,
  math.maxinteger, math.mininteger, 1 << 31, 1 << 62, -(1 << 62), 16, 17, "", "x", "float32", "int64",
  "bool", "sum", "mean", "none", "fro", string.rep("a", 300), print, coroutine.create(print), io.stdout}
local function value()
  local r = rand(100)
  if r <= 3 then return nil end
  if r <= 35 then return pick(scalars) end
  if r <= 70 then return pick(tensors()) end
  if r <= 78 and #made > 0 then return pick(made) end
  local tables = {
    function() return {} end, function() return {1, 2, 3} end, function() return {{1, 2}, {3}} end,
    function() return {2, 3} end, function() return {-1} end, function() return {math.maxinteger, 2} end,
    function() return {dtype = "float64"} end, function() return {dtype = "nope"} end,
    function() return {requires_grad = true} end, function() return {lr = 0.1} end,
    function() return {lr = -1, momentum = 0 / 0} end, function() return {1, "a", {}} end,
    function() return {{mg.ones(2)}} end, function() return {mg.ones(2), mg.ones(3)} end,
    function() return deep(300) end, raising_table, function() return {[1.5] = 1, [true] = 2} end,
    function() return setmetatable({}, {__index = function(_, k) return k == "dtype" and 5 or nil end}) end,
  }
  return pick(tables)()
end

-- ---- invariants -------------------------------------------------------------------------------
local function check_tensor(t, what)
  if not core.is_tensor(t) then return end
  local ok, err = pcall(core._check_invariants, t)
  if not ok then error(string.format("INVARIANT broken after %s: %s", what, err), 0) end
end

-- ---- the run ----------------------------------------------------------------------------------
local log = opts.log and assert(io.open(opts.log, "w"))
local function describe_args(args, n)
  local parts = {}
  for i = 1, n do
    local v = args[i]
    parts[i] = core.is_tensor(v) and ("tensor" .. (pcall(function() return v.shape end) and
      "{" .. table.concat(v.shape, ",") .. "}" .. v.dtype or "(closed)")) or type(v) == "string" and
      string.format("%q", v:sub(1, 20)) or tostring(v)
  end
  return table.concat(parts, ", ")
end

mg.set_memory_limit(1 << 30) -- a budget of 1 GB: huge sizes are errors, not the machine's memory
local start, errors, calls = os.clock(), 0, 0
for i = 1, opts.calls do
  if os.clock() - start > opts.seconds then break end
  local target = pick(targets)
  if not skip[target.name] then
    local n = rand(5) - 1
    local args = {}
    for k = 1, n do args[k] = value() end
    -- half the calls are well-shaped where it matters most, so that they get past the argument
    -- checks into the kernels: a live tensor first (methods take self), small dims and sizes after
    if rand(2) == 1 then
      n = math.max(n, 1)
      args[1] = pick(tensors())
      for k = 2, n do
        if rand(2) == 1 then args[k] = rand(3) - (rand(4) == 1 and 4 or 0) -- 1..3, or -3..-1
        elseif rand(2) == 1 then args[k] = pick(tensors()) end
      end
    end
    if target.name:find("set_num_threads") and math.type(args[1]) == "integer" then
      args[1] = math.max(-2, math.min(args[1], 8))
    end
    if log then
      log:write(i, " ", target.name, "(", describe_args(args, n), ")\n")
      log:flush()
    end
    local results = table.pack(pcall(target.fn, table.unpack(args, 1, n)))
    calls = calls + 1
    if target.name:find("memory_limit", 1, true) then mg.set_memory_limit(1 << 30) end -- its effect is done
    if not results[1] then
      errors = errors + 1
      if type(results[2]) == "string" and results[2]:find("INVARIANT", 1, true) then error(results[2], 0) end
    else
      for k = 2, math.min(results.n, 4) do
        check_tensor(results[k], target.name)
        if core.is_tensor(results[k]) then made[(i % 32) + 1] = results[k] end
      end
    end
    for k = 1, n do check_tensor(args[k], target.name .. " (argument " .. k .. ")") end
  end
  if i % 1000 == 0 then -- undo what fuzzed settings calls did, now and then
    mg.set_num_threads(1 + i // 1000 % 2)
    mg.set_memory_limit(1 << 30)
  end
end
io.stderr:write(string.format("fuzz: seed %d, %d calls of %d functions, %d raised a Lua error, 0 crashes, %.1f s",
  opts.seed, calls, #targets, errors, os.clock() - start), "\n")
