-- Which moongrad/core.so the specs run against (this file sorts after the examples' specs, which
-- load examples/paths.lua). A sanitizer run that loads the plain build checks
-- nothing of moongrad's C code (it happened: .busted's cpath put build/?.so before LUA_CPATH), so
-- `make asan` and `make tsan` name the library they built in MOONGRAD_EXPECT_CORE, and this spec
-- compares it with the one mapped into the process. Without the variable: the first core.so on
-- package.cpath, as require finds it.
local mg = require "moongrad"

local function realpath(path)
  local p = assert(io.popen("realpath '" .. path:gsub("'", "'\\''") .. "'"))
  local out = p:read("l")
  p:close()
  return out
end

-- every moongrad/core.so mapped into this process (a spec that loaded a second one would run it)
local function mapped_cores()
  local f = io.open("/proc/self/maps")
  if not f then return nil end
  local seen, list = {}, {}
  for line in f:lines() do
    local path = line:match("(/%S*moongrad/core%.so)$")
    if path and not seen[path] then seen[path], list[#list + 1] = true, path end
  end
  f:close()
  return list
end

describe("the loaded moongrad/core.so", function()
  it("is the build this run asked for, and the only one", function()
    assert.truthy(mg.tensor) -- loaded
    local mapped = mapped_cores()
    if not mapped then return pending("no /proc/self/maps here") end
    local want = os.getenv("MOONGRAD_EXPECT_CORE") or package.searchpath("moongrad.core", package.cpath)
    assert.truthy(want, "moongrad.core not on package.cpath")
    local real = {}
    for i, path in ipairs(mapped) do real[i] = realpath(path) end
    assert.same({ realpath(want) }, real)
  end)
end)
