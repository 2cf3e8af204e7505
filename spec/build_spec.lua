-- The build's bookkeeping: the rockspec compiles every C file of src/.
describe("rockspec/moongrad-scm-1.rockspec", function()
  it("lists every C source under src/", function()
    local f = assert(io.open("rockspec/moongrad-scm-1.rockspec"))
    local text = f:read("a")
    f:close()
    local listed = {}
    for path in text:gmatch('"(src/[^"]+%.c)"') do listed[path] = true end
    local p = assert(io.popen("find src -name '*.c' | sort"))
    local missing = {}
    for path in p:lines() do
      if not listed[path] then missing[#missing + 1] = path end
    end
    p:close()
    assert.same({}, missing)
  end)
end)

describe("rockspec modules", function()
  it("installs every Lua file of lua/moongrad/", function()
    local f = assert(io.open("rockspec/moongrad-scm-1.rockspec"))
    local text = f:read("a")
    f:close()
    local p = assert(io.popen("ls lua/moongrad/*.lua"))
    local missing = {}
    for path in p:lines() do
      if not text:find('"' .. path .. '"', 1, true) then missing[#missing + 1] = path end
    end
    p:close()
    assert.same({}, missing)
  end)
end)
