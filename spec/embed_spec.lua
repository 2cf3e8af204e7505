-- The embedding API (include/moongrad.h) from a plain C host: examples/embed.c builds a Lua state
-- with a counting allocator, hands Lua a host array without copying, and checks that Lua's writes
-- land in it, that the release callback runs once, and that no byte is live after lua_close.
describe("embedding #noasan", function()
  it("runs examples/embed.c: zero-copy buffer, host allocator, release callback", function()
    local p = assert(io.popen("make -s build/embed 2>&1 && build/embed 2>&1; echo rc=$?"))
    local out = p:read("a")
    p:close()
    assert.truthy(out:find("frame after Lua: 2 4 6 / 8 10 12", 1, true), out)
    assert.truthy(out:find("released 1 time(s)", 1, true), out)
    assert.truthy(out:find("after lua_close: 0 bytes live", 1, true), out)
    assert.truthy(out:find("rc=0", 1, true), out)
  end)
end)
