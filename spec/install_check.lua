-- Run by .ci/run against a luarocks install in a throwaway tree (MOONGRAD_TREE): checks that
-- the installed module, not the source tree, is the one loaded, and that it works.
local tree = assert(os.getenv("MOONGRAD_TREE"), "MOONGRAD_TREE is not set")

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
end)
