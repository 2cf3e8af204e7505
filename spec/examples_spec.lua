-- The examples and the README's code run as written and print the book's numbers.
local H = require "helper"

-- Runs a chunk with print captured; returns the printed lines and the chunk's results.
local function run(chunk)
  local lines, old = {}, print
  _G.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    lines[#lines + 1] = table.concat(parts, "\t")
  end
  local results = table.pack(pcall(chunk))
  _G.print = old
  assert(results[1], results[2])
  return lines, table.unpack(results, 2, results.n)
end

describe("examples/thermometer.lua", function()
  it("ends at the book's params (PyTorch: w = 5.3671, b = -17.3012, loss 2.9276)", function()
    local lines, params, loss = run(assert(loadfile("examples/thermometer.lua")))
    -- PyTorch 1.13, the same loop in float32: w=5.367084 b=-17.30119 loss=2.927648
    H.near({5.367084, -17.30119}, params, 1e-4)
    assert.near(2.927648, loss, 1e-4)
    assert.same({"tensor([  5.3671, -17.3012])", "loss 2.9276"}, lines)
  end)
end)

describe("README.md", function()
  it("prints what its ten-line example says it prints", function()
    local f = assert(io.open("README.md"))
    local text = f:read("a")
    f:close()
    local code = assert(text:match("```lua\n(.-)```"), "no lua block in README.md")
    local expected = assert(code:match("%-%->%s*([^\n]+)"), "no --> comment in the README's example")
    local lines = run(assert(load(code, "=README")))
    assert.same({expected}, lines)
  end)
end)
