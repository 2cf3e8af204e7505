-- The examples and the README's code run as written and print the book's numbers.
local H = require "helper"

local run = H.run -- print captured; returns the lines and the chunk's results

describe("examples/thermometer.lua", function()
  local lines, params, loss
  setup(function()
    lines, params, loss = run(assert(loadfile("examples/thermometer.lua")))
  end)

  local function has(line)
    for _, l in ipairs(lines) do
      if l == line then return true end
    end
    return false
  end

  it("ends at the book's params (PyTorch: w = 5.3671, b = -17.3012, loss 2.9276)", function()
    -- PyTorch 1.13, the same loop in float32: w=5.367084 b=-17.30119 loss=2.927648
    H.near({5.367084, -17.30119}, params, 1e-4)
    assert.near(2.927648, loss, 1e-4)
    assert.is_true(has("tensor([  5.3671, -17.3012])"))
  end)

  it("prints the book's epochs (section 5.4, normalized inputs)", function()
    -- the book: Epoch 1, Loss 80.364342 / Params: tensor([1.7761, 0.1064]) / Grad: tensor([-77.6140, -10.6400])
    assert.is_true(has("Epoch 1, Loss 80.364342"))
    assert.is_true(has("    Params:\ttensor([1.7761, 0.1064])"))
    assert.is_true(has("    Grad:  \ttensor([-77.6140, -10.6400])"))
    assert.is_true(has("Epoch 5000, Loss 2.927648"))
  end)

  it("shows the blow-up at lr 1e-2 on raw readings as the book does, then stops with a diagnosis", function()
    -- the book: Epoch 1, Loss 1763.884644 ... Epoch 10, Loss 9.0901e34 ... Epoch 11, Loss inf
    assert.is_true(has("Epoch 1, Loss 1763.884644"))
    local found
    for _, l in ipairs(lines) do
      if l:find("the loss diverged at epoch 11 (inf)", 1, true) then found = l end
    end
    assert.truthy(found, "no divergence message")
    assert.truthy(found:find("learning rate is probably too large", 1, true))
    assert.truthy(found:find("normalizing to roughly -1..1", 1, true))
  end)

  it("writes the book's plot", function()
    local svg = H.read_file("examples/out/thermometer.svg")
    assert.truthy(svg:find("<svg", 1, true))
    local _, points = svg:gsub("<circle", "")
    assert.equal(11, points) -- the measurements
  end)
end)

describe("README.md", function()
  it("prints what its ten-line example says it prints", function()
    local text = H.read_file("README.md")
    local code = assert(text:match("```lua\n(.-)```"), "no lua block in README.md")
    local expected = assert(code:match("%-%->%s*([^\n]+)"), "no --> comment in the README's example")
    local lines = run(assert(load(code, "=README")))
    assert.same({expected}, lines)
  end)
end)
