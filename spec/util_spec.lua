-- moongrad.util: the argument errors and the options check that the Lua layer shares.
local mg = require "moongrad"
local util = require "moongrad.util"

-- this file's name as error positions give it
local SRC = debug.getinfo(1, "S").short_src

-- The error of fn() (which must fail), and the position prefix it must carry: this file at `line`.
local function failure(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  return err
end
local function at(line, msg) return string.format("%s:%d: %s", SRC, line, msg) end

-- functions that check their arguments as the library's do
local function needs_number(x)
  if type(x) ~= "number" then util.argerror("needs_number", 1, "number expected, got %s", type(x)) end
  return x
end
local function helper(fname, x) -- blames its caller's caller
  if x == nil then util.argerror_at(3, fname, 2, "a value is required") end
end
local function public(a, b)
  helper("public", b)
  return a
end
-- (not tail calls: those frames would be gone, and the levels would count past the caller)
local function configure(opts)
  local o = util.options("configure", 1, opts, { size = 3, name = false }, 2, { "kind" })
  return o
end
local function ordered(opts)
  local o = util.options("ordered", 2, opts, { { "step_size", 1 }, { "gamma", 0.1 } }, 2)
  return o
end

describe("util.argerror", function()
  it("formats 'bad argument #n to fname (detail)' at the caller's line", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local err = failure(function() needs_number("x") end)
    assert.equal(at(line, "bad argument #1 to 'needs_number' (number expected, got string)"), err)
  end)

  it("formats the detail with its arguments only", function()
    local err = failure(function() util.argerror("f", 3, "%d%% of %s", 50, "100%") end)
    assert.truthy(err:find("bad argument #3 to 'f' (50% of 100%)", 1, true))
  end)

  it("argerror_at takes error()'s level, counted from its caller", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local err = failure(function() public(1) end)
    assert.equal(at(line, "bad argument #2 to 'public' (a value is required)"), err)
    assert.equal(1, public(1, 2))
  end)
end)

describe("util.options", function()
  it("copies the options over the defaults into a fresh table", function()
    local defaults = { size = 3, name = false }
    local o = util.options("f", 1, { name = "a" }, defaults)
    assert.same({ size = 3, name = "a" }, o)
    assert.same({ size = 3, name = false }, util.options("f", 1, nil, defaults))
    assert.are_not.equal(defaults, util.options("f", 1, nil, defaults))
    assert.same({ step_size = 5, gamma = 0.1 }, ordered({ step_size = 5 }))
  end)

  it("names an unknown key and the valid ones, sorted, at the caller's line", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local err = failure(function() configure({ kind = "a", sise = 4 }) end)
    assert.equal(at(line, "bad argument #1 to 'configure' (unknown option 'sise' (valid: kind, name, size))"), err)
  end)

  it("keeps a list's order in the valid names", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local err = failure(function() ordered({ gama = 1 }) end)
    assert.equal(at(line, "bad argument #2 to 'ordered' (unknown option 'gama' (valid: step_size, gamma))"), err)
  end)

  it("says when a function takes no options", function()
    local err = failure(function() util.options("f", 2, { x = 1 }, {}) end)
    assert.truthy(err:find("bad argument #2 to 'f' (unknown option 'x' (it takes no options))", 1, true))
  end)

  it("wants a table (a tensor is named as one)", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local err = failure(function() ordered(mg.zeros(2)) end)
    assert.equal(at(line, "bad argument #2 to 'ordered' (options table expected, got tensor)"), err)
    err = failure(function() ordered(7) end)
    assert.truthy(err:find("bad argument #2 to 'ordered' (options table expected, got number)", 1, true))
  end)

  it("names a required key that is missing, and wants a table when there are required keys", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local err = failure(function() configure({ size = 4 }) end)
    assert.equal(at(line, "bad argument #1 to 'configure' (option 'kind' is required)"), err)
    err = failure(function() configure() end)
    assert.truthy(err:find("bad argument #1 to 'configure' (options table expected, got nil)", 1, true))
    assert.same({ kind = "a", size = 3, name = false }, configure({ kind = "a" }))
  end)
end)
