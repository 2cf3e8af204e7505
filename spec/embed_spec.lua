-- The embedding API (include/moongrad.h) from a plain C host: examples/embed.c builds a Lua state
-- with a counting allocator, hands Lua a host array without copying, and checks that Lua's writes
-- land in it, that the release callback runs once, and that no byte is live after lua_close.
-- The same host is built three ways: against the module's objects (build/embed), against the
-- static library (build/libmoongrad.a, `make static`) and from the one-file amalgamation
-- (build/moongrad.c, `make amalgamation`).

local H = require "helper"
local run = H.shell

local function assert_host_ran(out)
  assert.truthy(out:find("frame after Lua: 2 4 6 / 8 10 12", 1, true), out)
  assert.truthy(out:find("released 1 time(s)", 1, true), out)
  assert.truthy(out:find("after lua_close: 0 bytes live", 1, true), out)
  assert.truthy(out:find("rc=0", 1, true), out)
end

local function sources()
  local list = {}
  local p = assert(io.popen("ls src/*/*.c"))
  for f in p:lines() do list[#list + 1] = f end
  p:close()
  return list
end

describe("embedding #noasan", function()
  it("runs examples/embed.c: zero-copy buffer, host allocator, release callback", function()
    assert_host_ran(run("make -s build/embed && build/embed"))
  end)

  it("links examples/embed.c against the static library (make static)", function()
    local out = run("make -s build/embed-static && build/embed-static")
    assert.falsy(out:find("warning:", 1, true), out)
    assert_host_ran(out)
    -- every source's object is in the archive
    local members = run("ar t build/libmoongrad.a")
    for _, src in ipairs(sources()) do
      assert.truthy(members:find(src:match("([^/]+)%.c$") .. ".o", 1, true), src .. "\n" .. members)
    end
  end)

  it("compiles the amalgamation warning-free and runs examples/embed.c with it", function()
    -- -O1 keeps this quick; `make build/embed-amalg` alone uses -O2
    local out = run("make -s build/embed-amalg AMALG_OPT=-O1 && build/embed-amalg")
    assert.falsy(out:find("warning:", 1, true), out)
    assert_host_ran(out)

    local f = assert(io.open("build/moongrad.c", "rb"))
    local text = f:read("a")
    f:close()
    -- one file: no quoted include left, every source once, every header once, moongrad.h first
    assert.falsy(text:find('\n%s*#%s*include%s*"'), "a quoted #include is left")
    for _, src in ipairs(sources()) do
      local _, n = text:gsub('\n#line 1 "' .. src:gsub("%p", "%%%0") .. '"', "")
      assert.are.equal(1, n, src)
    end
    local headers = {}
    for h in text:gmatch('\n#line 1 "([^"]+%.h)"') do
      assert.is_nil(headers[h], h .. " inlined twice")
      headers[h] = true
    end
    assert.truthy(headers["include/moongrad.h"] and headers["src/core/core.h"])
    assert.truthy(text:find('#line 1 "include/moongrad.h"', 1, true) < text:find('#line 1 "src/', 1, true))
  end)
end)
