-- Huge pages (src/core/ctx.c, advise_huge_pages): on Linux a new block of 2 MiB or more (a large
-- tensor's bytes) has its whole 2 MiB pages marked MADV_HUGEPAGE, which /proc/self/smaps shows as
-- the flag "hg" of the mapping the kernel splits off for them. MOONGRAD_HUGE_PAGES=0 (users) and
-- mg_set_huge_pages (hosts, include/moongrad.h) turn it off. The values never depend on it.
local H = require "helper"

-- prints how many mappings gained the "hg" flag while a 16 MB tensor was made, and its sum
local PROBE = [[
local mg = require "moongrad"
local function advised()
  local n = 0
  for line in io.lines("/proc/self/smaps") do
    if line:match("^VmFlags:") and line:match(" hg") then n = n + 1 end
  end
  return n
end
local before = advised()
local t = mg.ones(4 * 1024 * 1024)
print(advised() - before, t:sum():item())
]]

local linux = io.open("/proc/self/smaps") ~= nil
local describe_linux = linux and describe or pending

describe_linux("huge pages", function()
  it("are asked for under a new 16 MB tensor, which keeps its values", function()
    local out, ok = H.run_lua(PROBE)
    assert.is_true(ok, out)
    local gained, sum = out:match("^(%d+)\t(%S+)")
    assert.is_true(tonumber(gained) >= 1, out)
    assert.equal(4194304, tonumber(sum))
  end)

  it("are not asked for with MOONGRAD_HUGE_PAGES=0", function()
    local out, ok = H.run_lua(PROBE, "MOONGRAD_HUGE_PAGES=0")
    assert.is_true(ok, out)
    assert.equal("0\t4194304.0\n", out)
  end)

  it("are turned off by a host with mg_set_huge_pages #slow", function()
    local make = "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s build/host-static"
    assert.truthy(H.shell(make):match("rc=0\n$"))
    local probe = os.tmpname()
    local f = assert(io.open(probe, "w"))
    f:write(PROBE)
    f:close()
    local run = "env -u LUA_PATH_5_4 LUA_PATH='lua/?.lua;lua/?/init.lua' HOST_HUGE_PAGES=%d build/host-static 'dofile(%q)'"
    local off = H.shell(string.format(run, 0, probe))
    local on = H.shell(string.format(run, 1, probe))
    os.remove(probe)
    assert.equal("huge pages were 1\n0\t4194304.0\nrc=0\n", off)
    assert.truthy(on:match("^huge pages were 1\n[1-9]%d*\t4194304.0\nrc=0\n$"), on)
  end)
end)
