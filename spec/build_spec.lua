-- The build's bookkeeping: LuaRocks builds through the Makefile, the Makefile compiles every C file
-- of src/ with the flags of every build AFTER the caller's CFLAGS, and installs every Lua file.
-- (spec/builds_spec.lua compiles the builds and compares their numbers.)

local H = require "helper"
local capture = H.shell -- its last line is "rc=N"

local function find_all(pattern)
  local p = assert(io.popen("find " .. pattern .. " | sort"))
  local list = {}
  for path in p:lines() do list[#list + 1] = path end
  p:close()
  assert.truthy(#list > 0, pattern)
  return list
end

-- the last occurrence of a flag matching `pattern` on a command line: the one the compiler obeys
local function last_flag(line, pattern)
  local last
  for flag in line:gmatch("%S+") do
    if flag:match(pattern) then last = flag end
  end
  return last
end

describe("rockspec/moongrad-scm-1.rockspec", function()
  local rockspec = {}
  setup(function()
    assert(loadfile("rockspec/moongrad-scm-1.rockspec", "t", rockspec))()
  end)

  it("builds with the Makefile, passing LuaRocks' compiler settings and install directories", function()
    local build = rockspec.build
    assert.equal("make", build.type)
    local vars = build.variables or {}
    assert.equal("$(CFLAGS)", vars.CFLAGS)
    assert.equal("$(LUA_INCDIR)", vars.LUA_INCDIR)
    assert.equal("$(LIBFLAG)", vars.LIBFLAG)
    assert.equal("$(LIBDIR)", build.install_variables.LIBDIR)
    assert.equal("$(LUADIR)", build.install_variables.LUADIR)
  end)
end)

describe("the Makefile", function()
  -- a dry run (nothing is compiled) with LuaRocks' CFLAGS and a user's additions
  local user = "-O2 -fPIC -march=native -ffp-contract=fast -fmath-errno"
  local lines = {}
  setup(function()
    local out = capture("make -n -B BUILD=build/dry-run CFLAGS='" .. user .. "' build/dry-run/moongrad/core.so")
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  end)

  local function compile_line(src)
    for _, l in ipairs(lines) do
      if l:find(" -c ", 1, true) and l:sub(-#src - 1) == " " .. src then return l end
    end
  end

  it("compiles every C file of src/ with -O3 -fno-math-errno -ffp-contract=off after the user's CFLAGS", function()
    local wrong = {}
    for _, src in ipairs(find_all("src -name '*.c'")) do
      local l = compile_line(src)
      if not l then
        wrong[#wrong + 1] = src .. ": not compiled"
      else
        assert.truthy(l:find(user, 1, true), l) -- the user's flags are there, before ours
        local o, contract = last_flag(l, "^%-O"), last_flag(l, "^%-ffp%-contract=")
        local errno = last_flag(l, "^%-f[no%-]*math%-errno$")
        if o ~= "-O3" or contract ~= "-ffp-contract=off" or errno ~= "-fno-math-errno" then
          wrong[#wrong + 1] = src .. ": " .. l
        end
      end
    end
    assert.same({}, wrong)
  end)

  it("installs core.so and every Lua file of lua/moongrad/ (what LuaRocks' install pass runs)", function()
    local out = capture("make -n install BUILD=build LIBDIR=/L LUADIR=/D")
    assert.truthy(out:find("build/moongrad/core.so /L/moongrad/core.so", 1, true), out)
    -- moongrad.idx (mg.data.read_idx, ext/idx.c) beside it, when zlib's header is there
    if io.open("/usr/include/zlib.h") then
      assert.truthy(out:find("build/moongrad/idx.so /L/moongrad/idx.so", 1, true), out)
    end
    local missing = {}
    for _, path in ipairs(find_all("lua/moongrad -name '*.lua'")) do
      if not out:find(" " .. path .. " ", 1, true) then missing[#missing + 1] = path end
    end
    assert.same({}, missing)
  end)
end)
