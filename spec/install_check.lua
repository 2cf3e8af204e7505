-- Run by .ci/run against a luarocks install in a throwaway tree (MOONGRAD_TREE), from outside the
-- source tree: checks that the installed module, not the source tree, is the one loaded, that it
-- works, and that it computes spec/fixed_seed.lua's numbers bit for bit as `make`'s build does.
local tree = assert(os.getenv("MOONGRAD_TREE"), "MOONGRAD_TREE is not set")
local root = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") -- the source tree

describe("the luarocks install", function()
  it("loads moongrad and moongrad.core from the tree", function()
    local core_path = package.searchpath("moongrad.core", package.cpath)
    local lua_path = package.searchpath("moongrad", package.path)
    assert.truthy(core_path and core_path:find(tree, 1, true), tostring(core_path))
    assert.truthy(lua_path and lua_path:find(tree, 1, true), tostring(lua_path))
  end)

  it("computes with tensors", function()
    local mg = require "moongrad"
    local a = mg.tensor{{1, 2}, {3, 4}}
    assert.same({{11, 22}, {13, 24}}, (a + mg.tensor{10, 20}):totable())
    assert.same("float32", a.dtype)
  end)

  it("reads IDX files with moongrad.idx from the tree (gzip through zlib)", function()
    local idx_path = package.searchpath("moongrad.idx", package.cpath)
    assert.truthy(idx_path and idx_path:find(tree, 1, true), tostring(idx_path))
    local mg = require "moongrad"
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(string.char(0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 255))
    f:close()
    os.execute("gzip -f " .. path)
    local t = mg.data.read_idx(path .. ".gz", {dtype = "int64"})
    os.remove(path .. ".gz")
    assert.same({7, 0, 255}, t:totable())
  end)

  it("prints spec/fixed_seed.lua's numbers bit for bit as `make`'s build of the same tree", function()
    assert.truthy(root, "cannot tell where the source tree is")
    local q = function(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
    local p = assert(io.popen("cd " .. q(root) .. " && make -s build/moongrad/core.so >&2 && " ..
      "env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH='lua/?.lua;lua/?/init.lua' LUA_CPATH='build/?.so' " ..
      "lua5.4 -e 'io.write(dofile \"spec/fixed_seed.lua\")'"))
    local reference = p:read("a")
    assert.truthy(p:close(), "the make build did not run spec/fixed_seed.lua")
    assert.truthy(#reference > 1000, reference)
    local installed = dofile(root .. "/spec/fixed_seed.lua")
    assert.truthy(package.searchpath("moongrad.core", package.cpath):find(tree, 1, true))
    assert.equal(reference, installed)
  end)
end)
