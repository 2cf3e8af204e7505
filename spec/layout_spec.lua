-- The tree's layering and its op lists (docs/HACKING.md): the core knows neither Lua nor the ops,
-- the ops know no Lua, and every op of a list reaches Lua users, in the forms its row says.
local mg = require "moongrad"

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local function files(pattern)
  local p = assert(io.popen("ls " .. pattern))
  local out = {}
  for path in p:lines() do out[#out + 1] = path end
  p:close()
  return out
end

-- The quoted includes of every file matching pattern whose target matches `bad`.
local function includes_matching(pattern, bad)
  local found = {}
  for _, path in ipairs(files(pattern)) do
    for target in read(path):gmatch('#include%s*[<"]([^>"]+)[>"]') do
      if target:match(bad) then found[#found + 1] = path .. " -> " .. target end
    end
  end
  return found
end

-- The rows of an X-list macro: {OP, name, col3, ...} for each `X(...)` line of `#define LIST(X)`.
local function list_rows(header, list)
  local rows, inside = {}, false
  for line in read(header):gmatch("[^\n]*") do
    if line:find("#define " .. list .. "(X)", 1, true) then inside = true end
    if inside then
      local args = line:match("X%(([^)]*)%)")
      if args then
        local row = {}
        for col in args:gmatch("[^,%s]+") do row[#row + 1] = col end
        rows[#rows + 1] = row
      end
      if not line:find("\\%s*$") then break end -- the macro's last line
    end
  end
  return rows
end

describe("layering", function()
  it("src/core includes nothing from src/ops or src/bind, and no Lua header", function()
    assert.same({}, includes_matching("src/core/*.[ch]", "ops/"))
    assert.same({}, includes_matching("src/core/*.[ch]", "bind"))
    assert.same({}, includes_matching("src/core/*.[ch]", "^lua"))
    assert.same({}, includes_matching("src/core/*.[ch]", "lauxlib"))
  end)

  it("src/ops includes nothing from src/bind, and no Lua header", function()
    assert.same({}, includes_matching("src/ops/*.[ch]", "bind"))
    assert.same({}, includes_matching("src/ops/*.[ch]", "^lua"))
    assert.same({}, includes_matching("src/ops/*.[ch]", "lauxlib"))
  end)
end)

describe("op lists", function()
  local t = mg.ones(2)
  local reference = read("docs/reference.md")

  local function documented(name)
    return reference:find("t:" .. name .. "[_(]") or reference:find("mg%." .. name .. "[_(]")
  end

  it("MG_UNARY_OPS: t:op, mg.op and t:op_ for every row, each documented", function()
    local rows = list_rows("src/ops/unary.h", "MG_UNARY_OPS")
    assert.equal(23, #rows)
    for _, row in ipairs(rows) do
      local name = row[2]
      assert.is_function(t[name], name)
      assert.is_function(mg[name], name)
      assert.is_function(t[name .. "_"], name .. "_")
      assert.truthy(documented(name), name .. " is not in docs/reference.md")
    end
  end)

  it("MG_BINARY_OPS: a method for every row; operators also in place and as metamethods", function()
    local rows = list_rows("src/ops/ops.h", "MG_BINARY_OPS")
    assert.equal(13, #rows)
    local mt = getmetatable(t)
    for _, row in ipairs(rows) do
      local name, kind = row[2], row[4]
      assert.is_function(t[name], name)
      assert.is_function(mg[name], name)
      assert.equal(kind == "OPERATOR", t[name .. "_"] ~= nil, name .. "_")
      assert.equal(kind == "OPERATOR", mt["__" .. name] ~= nil, "__" .. name)
      assert.truthy(documented(name), name .. " is not in docs/reference.md")
    end
    assert.same({1, 1, 2}, {(mg.tensor{3} - 2):item(), (mg.tensor{6} / 6):item(), (mg.tensor{4} ^ 0.5):item()})
  end)

  it("MG_REDUCE_OPS: a method for every row; only DIFF rows record a graph node", function()
    local rows = list_rows("src/ops/reduce.h", "MG_REDUCE_OPS")
    assert.equal(12, #rows)
    local x = mg.tensor({{1, 2}, {3, 4}}, {requires_grad = true})
    for _, row in ipairs(rows) do
      local name, grad = row[2], row[6]
      assert.is_function(t[name], name)
      assert.is_function(mg[name], name)
      assert.truthy(documented(name), name .. " is not in docs/reference.md")
      local y = x[name](x)
      assert.equal(grad == "DIFF", y.requires_grad, name)
    end
  end)
end)
