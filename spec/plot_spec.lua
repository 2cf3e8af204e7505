local mg = require "moongrad"
local H = require "helper"
local plot = mg.plot

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

local read = H.read_file

-- Checks that every element is closed, in order: a small XML well-formedness check.
local function well_formed(svg)
  local body = svg:gsub("^<%?xml[^>]*%?>%s*", "")
  local stack = {}
  for slash, name, rest in body:gmatch("<(/?)([%w:%-]+)([^>]*)>") do
    if slash == "/" then
      assert.equal(stack[#stack], name, "closing </" .. name .. "> does not match")
      stack[#stack] = nil
    elseif not rest:match("/$") then
      stack[#stack + 1] = name
    end
  end
  assert.same({}, stack)
  -- no raw & (only entities) and no < inside text
  for amp in body:gmatch("&[^;%s]*;?") do assert.truthy(amp:match("^&[#%w]+;$"), amp) end
  assert.truthy(body:match("^<svg "))
  assert.truthy(body:match("</svg>%s*$"))
end

describe("mg.plot ticks", function()
  it("chooses 1-2-5 steps", function()
    local t, step = plot.ticks(0, 1)
    H.near({ 0, 0.2, 0.4, 0.6, 0.8, 1 }, t)
    H.near(0.2, step)
    t, step = plot.ticks(0, 100, 5)
    H.near({ 0, 25 * 0 + 20, 40, 60, 80, 100 }, t)
    H.near(20, step)
    t = plot.ticks(-3.7, 12.2)
    H.near({ -2, 0, 2, 4, 6, 8, 10, 12 }, t)
    t = plot.ticks(0.001, 0.0123)
    H.near({ 0.002, 0.004, 0.006, 0.008, 0.01, 0.012 }, t)
    t = plot.ticks(1, 200, 5)
    H.near({ 50, 100, 150, 200 }, t)
    t = plot.ticks(1, 5, 8, 1) -- whole epochs
    H.near({ 1, 2, 3, 4, 5 }, t)
    t = plot.ticks(-1e6, 1e6, 3)
    H.near({ -1e6, 0, 1e6 }, t)
  end)

  it("gives the bounds as ticks when the range is too narrow for a step (subnormal numbers)", function()
    local ticks, step = plot.ticks(-1e-323, 1e-323)
    assert.same({ -1e-323, 1e-323 }, ticks)
    assert.equal(2e-323, step)
    local fig = plot.figure()
    fig:line({ 1, 2 }, { -1e-323, 1e-323 })
    assert.truthy(fig:svg():find("<svg", 1, true))
  end)

  it("gives exact decimal values", function()
    local t = plot.ticks(0.1, 0.7, 7)
    assert.same({ 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7 }, t) -- 0.3, not 0.30000000000000004
  end)

  it("gives decade ticks on a log axis", function()
    local major, minor, lo, hi = plot.log_ticks(0.03, 2.5)
    assert.same({ 0.01, 0.1, 1, 10 }, major)
    assert.equal(24, #minor)
    assert.same({ 0.01, 10 }, { lo, hi })
    major, minor, lo, hi = plot.log_ticks(1e-7, 900)
    assert.equal(5, #minor) -- the unlabelled decades
    assert.same({ 1e-7, 1e-5, 1e-3, 0.1, 10, 1000 }, major)
    assert.same({ 1e-7, 1000 }, { lo, hi })
    -- a short range: 1-2-5 bounds and labels
    major, minor, lo, hi = plot.log_ticks(0.02, 0.9)
    assert.same({ 0.02, 0.05, 0.1, 0.2, 0.5, 1 }, major)
    assert.same({ 0.02, 1 }, { lo, hi })
    assert.equal(12, #minor)
    major, minor, lo, hi = plot.log_ticks(0.58, 0.95)
    assert.same({}, minor)
    assert.same({ 0.5, 0.6, 0.7, 0.8, 0.9, 1 }, major)
    assert.same({ 0.5, 1 }, { lo, hi })
    H.errors(function() plot.log_ticks(0, 1) end, "bounds must be finite and positive")
    -- a huge count made a list of that many ticks (a hang found by scripts/fuzz.lua, seed 3)
    H.errors(function() plot.ticks(9.007199254741e+15, 4611686018427387904, 9.007199254741e+15) end,
      "bad argument #3 to 'ticks' (a count of ticks from 1 to 1000 expected, got 9.007199254741e+15)")
    H.errors(function() plot.ticks(0, 1, 0) end, "bad argument #3 to 'ticks' (a count of ticks from 1 to 1000 expected, got 0)")
    H.errors(function() plot.ticks(0, 1, 0 / 0) end, "(a count of ticks from 1 to 1000 expected, got")
    assert.same({0}, (plot.ticks(0, 1, 1)))
  end)
end)

describe("mg.plot.figure", function()
  it("writes a line and a scatter as well-formed SVG", function()
    local xs = mg.linspace(0, 1, 20)
    local fig = plot.figure{ title = "Fit", xlabel = "temperature", ylabel = "reading" }
    assert.equal(fig, fig:line(xs, xs * 2, { label = "model" }))
    fig:scatter({ 0, 0.5, 1 }, { 0.1, 0.9, 2.1 }, { label = "data" })
    local svg = fig:svg()
    well_formed(svg)
    assert.equal(1, count(svg, "<svg "))
    assert.truthy(svg:find('width="640" height="400"', 1, true))
    assert.equal(1, count(svg, "<path "))
    assert.equal(3, count(svg, "<circle "))
    assert.equal(0, count(svg, "<polyline"))
    local d = svg:match('<path d="([^"]*)"')
    assert.equal(20, count(d, "[ML]"))
    for _, text in ipairs({ ">Fit</text>", ">temperature</text>", ">reading</text>", ">model</text>", ">data</text>" }) do
      assert.truthy(svg:find(text, 1, true), text)
    end
    -- x tick labels of [0, 1] padded by 5%
    for _, text in ipairs({ ">0.0</text>", ">0.2</text>", ">1.0</text>" }) do assert.truthy(svg:find(text, 1, true), text) end
  end)

  it("draws one path per line and leaves gaps at non-finite points", function()
    local fig = plot.figure()
    fig:line({ 1, 2, 3, 4, 5 }, { 1, 2, 0 / 0, 4, 5 })
    fig:line({ 1, 2, 3 }, { 3, 2, 1 }, { dash = true, color = "#000000" })
    fig:line(mg.tensor({ 5, 4, 3 })) -- against 1..n
    local svg = fig:svg()
    well_formed(svg)
    assert.equal(3, count(svg, "<path "))
    local d = svg:match('<path d="([^"]*)"')
    assert.equal(2, count(d, "M"))
    assert.equal(2, count(d, "L"))
    assert.truthy(svg:find('stroke="#000000"', 1, true))
    assert.truthy(svg:find('stroke-dasharray="7,4"', 1, true))
    -- no legend without labels
    assert.falsy(svg:find('class="legend"', 1, true))
  end)

  it("uses the palette in order", function()
    local svg = plot.figure():line({ 1, 2 }, { 1, 2 }):line({ 1, 2 }, { 2, 1 }):svg()
    assert.truthy(svg:find('stroke="' .. plot.palette[1] .. '"', 1, true))
    assert.truthy(svg:find('stroke="' .. plot.palette[2] .. '"', 1, true))
  end)

  it("escapes & < > in title, labels and legend", function()
    local fig = plot.figure{ title = "a & b", xlabel = "x < 1", ylabel = "y > 2" }
    fig:line({ 1, 2 }, { 1, 2 }, { label = "<tag> & 'q'" })
    local svg = fig:svg()
    well_formed(svg)
    assert.truthy(svg:find(">a &amp; b</text>", 1, true))
    assert.truthy(svg:find(">x &lt; 1</text>", 1, true))
    assert.truthy(svg:find(">y &gt; 2</text>", 1, true))
    assert.truthy(svg:find(">&lt;tag&gt; &amp; &#39;q&#39;</text>", 1, true))
    assert.falsy(svg:find("<tag>", 1, true))
  end)

  it("draws a log y axis with decade labels, skipping points <= 0", function()
    local fig = plot.figure{ logy = true }
    fig:line({ 1, 2, 3, 4 }, { 100, 1, 0, 0.001 })
    local svg = fig:svg()
    well_formed(svg)
    for _, label in ipairs({ ">0.001</text>", ">0.01</text>", ">0.1</text>", ">1</text>", ">10</text>", ">100</text>" }) do
      assert.truthy(svg:find(label, 1, true), label)
    end
    local d = svg:match('<path d="([^"]*)"')
    assert.equal(2, count(d, "M"))
    -- far decades get a superscript exponent
    svg = plot.figure{ logy = true }:line({ 1, 2 }, { 1e-6, 1e2 }):svg()
    assert.truthy(svg:find('10<tspan dy="-0.45em" font-size="0.75em">\u{2212}6</tspan>', 1, true))
  end)

  it("writes the file with save", function()
    local path = os.tmpname()
    local fig = plot.figure{ title = "saved", width = 300, height = 200 }
    fig:scatter(mg.tensor({ 1, 2, 3 }), mg.tensor({ 3, 1, 2 }))
    assert.equal(fig, fig:save(path))
    local svg = read(path)
    os.remove(path)
    well_formed(svg)
    assert.truthy(svg:find('width="300" height="200"', 1, true))
    assert.equal(3, count(svg, "<circle "))
  end)

  it("handles an empty figure and a single point", function()
    well_formed(plot.figure():svg())
    local svg = plot.figure():scatter({ 2 }, { 3 }):svg()
    well_formed(svg)
    assert.equal(1, count(svg, "<circle "))
  end)

  it("reports bad arguments", function()
    H.errors(function() plot.figure{ titel = "x" } end,
      "bad argument #1 to 'figure' (unknown option 'titel' (valid: grid, height, logy, title, width, xlabel, xlim, ylabel, ylim))")
    H.errors(function() plot.figure():line({ 1, 2 }, { 1 }) end, "bad argument #2 to 'line' (xs has 2 values and ys 1)")
    H.errors(function() plot.figure():line({ 1, "a" }, { 1, 2 }) end, "bad argument #1 to 'line' (element 2 is a string")
    H.errors(function() plot.figure():scatter({ 1 }, { 1 }, { dash = true }) end,
      "bad argument #3 to 'scatter' (unknown option 'dash' (valid: color, label, size))")
    H.errors(function() plot.figure{ xlim = { 1, 0 } } end, "xlim must be {lo, hi} with lo < hi")
    H.errors(function() plot.figure():save(nil) end, "bad argument #1 to 'save'")
  end)
end)

describe("mg.plot.loss_curve", function()
  it("writes a log-scale loss curve with training and validation", function()
    local path = os.tmpname()
    local history = { train_loss = { 2.5, 1.1, 0.4, 0.2, 0.09 }, val_loss = { 2.7, 1.3, 0.6, 0.5, 0.45 } }
    local fig = plot.loss_curve(history, path, { title = "Digits" })
    assert.falsy(fig:svg():find(">1.5</text>", 1, true)) -- epochs are whole
    assert.is_true(fig.logy)
    local svg = read(path)
    os.remove(path)
    well_formed(svg)
    assert.equal(2, count(svg, "<path "))
    for _, text in ipairs({ ">Digits</text>", ">epoch</text>", ">loss</text>", ">training</text>",
      ">validation</text>", ">0.1</text>", ">1</text>", ">10</text>" }) do
      assert.truthy(svg:find(text, 1, true), text)
    end
  end)

  it("takes tensors, a history without val_loss, and falls back to linear y at a zero loss", function()
    local path = os.tmpname()
    local fig = plot.loss_curve({ train_loss = mg.tensor({ 1, 0.5, 0 }) }, path)
    assert.is_false(fig.logy)
    local svg = read(path)
    os.remove(path)
    assert.equal(1, count(svg, "<path "))
    assert.falsy(svg:find(">validation</text>", 1, true))
  end)

  it("reports bad arguments", function()
    H.errors(function() plot.loss_curve({}, "x.svg") end, "bad argument #1 to 'loss_curve' (the history has no train_loss)")
    H.errors(function() plot.loss_curve({ train_loss = { 1 } }) end, "bad argument #2 to 'loss_curve' (expected a file name")
    H.errors(function() plot.loss_curve({ train_loss = { 1 } }, "x.svg", { colour = 1 }) end,
      "unknown option 'colour'")
  end)
end)
