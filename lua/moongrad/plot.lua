-- moongrad.plot: line and scatter figures written as standalone SVG files (no dependency).
--   local fig = mg.plot.figure{title = "Fit", xlabel = "x", ylabel = "y"}
--   fig:line(xs, ys, {label = "model"}):scatter(xs, ys, {label = "data"}):save("fit.svg")
--   mg.plot.loss_curve(history, "loss.svg")
-- Writing SVG is text work, so this file loops over the points it draws.
local core = require "moongrad.core"

local M = {}

-- Tableau 10, the palette of matplotlib's default cycle: distinct, and readable on white.
M.palette = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" }

local FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
local TEXT_COLOR, AXIS_COLOR, GRID_COLOR = "#222222", "#555555", "#e6e6e6"
local TITLE_SIZE, LABEL_SIZE, TICK_SIZE, LEGEND_SIZE = 16, 13, 11, 12
local DASHES = { dashed = "7,4", dotted = "2,3", dashdot = "7,3,2,3" }

-- options(fname, argn, opts, defaults): fills defaults in, refuses unknown keys; argerror and
-- argerror_at: an argument's error, at the caller's line or at a given level (moongrad.util)
local util = require "moongrad.util"
local options, argerror, argerror_at = util.options, util.argerror, util.argerror_at

--- Escapes text for SVG content and attribute values.
function M.escape(s)
  return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
    ['"'] = "&quot;", ["'"] = "&#39;" }))
end
local esc = M.escape

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

-- Rounds away binary noise (0.30000000000000004 -> 0.3) from computed tick values.
local function clean(v)
  local r = tonumber(string.format("%.12g", v))
  if r == 0 then r = 0.0 end -- no -0
  return r
end

--- `ticks(lo, hi [, n = 6 [, min_step]])`: about n "nice" tick values covering [lo, hi]: multiples
-- of a step of 1, 2 or 5 times a power of ten (at least min_step: 1 keeps epochs whole). Returns
-- the list of ticks inside [lo, hi] and the step.
function M.ticks(lo, hi, n, min_step)
  n = n or 6
  if not (finite(lo) and finite(hi)) then argerror("ticks", 1, "bounds must be finite") end
  -- (a count of 9e15 made a list of that many ticks: found by scripts/fuzz.lua)
  if type(n) ~= "number" or not (n >= 1 and n <= 1000) then
    argerror("ticks", 3, "a count of ticks from 1 to 1000 expected, got %s", tostring(n))
  end
  if hi < lo then lo, hi = hi, lo end
  if hi == lo then return { clean(lo) }, 0 end
  -- the 1-2-5 step whose count of ticks inside [lo, hi] is nearest n (ties: the smaller step)
  local raw = (hi - lo) / math.max(n - 1, 1)
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step, best
  for _, m in ipairs({ 0.5, 1, 2, 5, 10, 20 }) do
    local st = math.max(m * mag, min_step or 0)
    local count = math.floor(hi / st + 1e-9) - math.ceil(lo / st - 1e-9) + 1
    local miss = math.abs(count - n)
    if best == nil or miss < best then step, best = st, miss end
  end
  local first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
  -- a range too narrow for any step (subnormal bounds: the step underflows to 0) or a min_step
  -- that gives no usable count: the bounds themselves are the ticks
  if not (step > 0 and finite(first) and finite(last)) or last - first > 10 * n + 10 then
    return { clean(lo), clean(hi) }, hi - lo
  end
  local out = {}
  for i = first, last do out[#out + 1] = clean(i * step) end
  return out, step
end

--- `log_ticks(lo, hi)`: ticks of a log axis covering [lo, hi] (both > 0): the decades 10^k, every
-- second (or third...) one when there are more than 8, between bounds at whole decades around the
-- data. Over at most two decades the bounds are the 1-2-5 values around the data instead, and the
-- 1s, 2s and 5s are labelled (or every m x 10^k if that gives fewer than three labels). Returns the
-- labelled ticks, the minor ticks (unlabelled m x 10^k up to six decades, unlabelled decades), and
-- the axis bounds.
function M.log_ticks(lo, hi)
  if not (finite(lo) and finite(hi) and lo > 0 and hi > 0) then
    argerror("log_ticks", 1, "bounds must be finite and positive")
  end
  if hi < lo then lo, hi = hi, lo end
  local e0 = math.floor(math.log(lo, 10) + 1e-9)
  local e1 = math.ceil(math.log(hi, 10) - 1e-9)
  if e1 <= e0 then e1 = e0 + 1 end
  local decades = e1 - e0
  if decades <= 2 then
    -- a short range: bounds on the 1-2-5 grid around the data, the 1s, 2s and 5s labelled (all the
    -- integers times 10^k when that gives fewer than three labels)
    local grid = {}
    for e = e0, e1 do
      for _, m in ipairs({ 1, 2, 5 }) do grid[#grid + 1] = clean(m * 10.0 ^ e) end
    end
    local ilo, ihi = 1, #grid
    for i, v in ipairs(grid) do if v <= lo * (1 + 1e-9) then ilo = i end end
    for i = #grid, 1, -1 do if grid[i] >= hi * (1 - 1e-9) then ihi = i end end
    if ihi <= ilo then ihi = ilo + 1 end -- lo == hi on the grid
    local blo, bhi = grid[ilo], grid[ihi]
    local major, minor, all = {}, {}, {}
    for e = e0, e1 + 1 do
      for m = 1, 9 do
        local v = clean(m * 10.0 ^ e)
        if v >= blo and v <= bhi then
          all[#all + 1] = v
          if m == 1 or m == 2 or m == 5 then major[#major + 1] = v else minor[#minor + 1] = v end
        end
      end
    end
    if #major < 3 then major, minor = all, {} end
    return major, minor, blo, bhi
  end
  local stride = 1
  while decades / stride > 8 do stride = stride + 1 end
  local major, minor = {}, {}
  for e = e0, e1 do
    if (e - e0) % stride == 0 then major[#major + 1] = clean(10.0 ^ e) else minor[#minor + 1] = clean(10.0 ^ e) end
    if e < e1 and decades <= 6 then
      for m = 2, 9 do minor[#minor + 1] = clean(m * 10.0 ^ e) end
    end
  end
  return major, minor, 10.0 ^ e0, 10.0 ^ e1
end

-- Tick label text for a linear axis with this step.
local function format_linear(v, step)
  local a = math.abs(v)
  if a >= 1e6 or (step > 0 and step < 1e-4) then
    local s = string.format("%.3g", v):gsub("e%+?(%-?)0*(%d)", "e%1%2")
    return (s:gsub("%-", "\u{2212}"))
  end
  local decimals = step > 0 and math.max(0, -math.floor(math.log(step, 10) + 1e-9)) or 2
  local s = string.format("%." .. decimals .. "f", v)
  return (s:gsub("^%-", "\u{2212}")) -- a real minus sign
end

-- Tick label for a log axis: plain decimals from 0.001 to 10000, else 10 with a superscript.
-- Returns the SVG content (escaped) and its approximate length in characters.
local function format_log(v)
  local e = math.log(v, 10)
  local ie = math.floor(e + 0.5)
  if math.abs(e - ie) < 1e-9 and (ie < -3 or ie > 4) then
    local exp = (ie < 0 and "\u{2212}" or "") .. tostring(math.abs(ie))
    return '10<tspan dy="-0.45em" font-size="0.75em">' .. exp .. "</tspan>", 2 + 0.75 * #exp
  end
  local s = string.format("%.12g", v)
  if s:find("e") then s = string.format("%.1e", v) end
  return esc(s), #s
end

-- Converts xs/ys (a tensor, or a Lua list of numbers) to a Lua list.
local function to_list(v, fname, argn)
  if core.is_tensor(v) then
    if v:dim() ~= 1 then v = v:reshape(-1) end
    v = v:detach():double():totable()
    return v
  end
  if type(v) ~= "table" then
    argerror_at(3, fname, argn, "expected a tensor or a list of numbers, got %s", type(v))
  end
  for i = 1, #v do
    if type(v[i]) ~= "number" then
      argerror_at(3, fname, argn, "element %d is a %s, not a number", i, type(v[i]))
    end
  end
  return v
end

---------------------------------------------------------------------------------------------------
-- Figure
---------------------------------------------------------------------------------------------------

local Figure = {}
Figure.__index = Figure

local FIGURE_DEFAULTS = { title = false, xlabel = false, ylabel = false, width = 640, height = 400,
  logy = false, xlim = false, ylim = false, grid = true }

--- `figure{title, xlabel, ylabel, width = 640, height = 400, logy = false, xlim, ylim, grid = true}`:
-- a new figure; `xlim`/`ylim` = `{lo, hi}` fix an axis range (otherwise it fits the data).
function M.figure(opts)
  local o = options("figure", 1, opts, FIGURE_DEFAULTS)
  for _, k in ipairs({ "width", "height" }) do
    if type(o[k]) ~= "number" or o[k] < 100 then
      argerror("figure", 1, "%s must be a number of pixels >= 100, got %s", k, tostring(o[k]))
    end
  end
  for _, k in ipairs({ "xlim", "ylim" }) do
    local lim = o[k]
    if lim and (type(lim) ~= "table" or type(lim[1]) ~= "number" or type(lim[2]) ~= "number"
        or lim[1] >= lim[2]) then
      argerror("figure", 1, "%s must be {lo, hi} with lo < hi", k)
    end
    if lim and k == "ylim" and o.logy and lim[1] <= 0 then
      argerror("figure", 1, "ylim must be positive on a log axis (logy = true)")
    end
  end
  o.series = {}
  return setmetatable(o, Figure)
end

local function add_series(self, kind, xs, ys, style, fname)
  if getmetatable(self) ~= Figure then
    argerror_at(3, fname, 1, "expected a figure: call it as fig:%s(...)", fname)
  end
  if ys == nil or (type(ys) == "table" and not core.is_tensor(ys) and ys[1] == nil and next(ys) ~= nil) then
    -- fig:line(ys [, style]): x is 1..n
    style = ys
    ys = to_list(xs, fname, 1)
    xs = {}
    for i = 1, #ys do xs[i] = i end
  else
    xs, ys = to_list(xs, fname, 1), to_list(ys, fname, 2)
  end
  if #xs ~= #ys then
    argerror_at(3, fname, 2, "xs has %d values and ys %d", #xs, #ys)
  end
  local defaults = kind == "line" and { label = false, color = false, dash = false, width = 2 }
    or { label = false, color = false, size = 3.5 }
  local s = options(fname, 3, style, defaults)
  if s.dash == true then s.dash = "dashed" end
  if s.dash then s.dash = DASHES[s.dash] or s.dash end
  s.kind, s.xs, s.ys = kind, xs, ys
  s.color = s.color or M.palette[(#self.series) % #M.palette + 1]
  self.series[#self.series + 1] = s
  return self
end

--- `fig:line(xs, ys [, {label, color, dash, width = 2}])` (or `fig:line(ys)` against 1..n): a line
-- through the points. `dash` is true, "dashed", "dotted", "dashdot" or an SVG dash array "6,3".
-- Non-finite points (and points <= 0 on a log axis) leave a gap. Returns the figure.
function Figure:line(xs, ys, style) return add_series(self, "line", xs, ys, style, "line") end

--- `fig:scatter(xs, ys [, {label, color, size = 3.5}])`: one dot per point. Returns the figure.
function Figure:scatter(xs, ys, style) return add_series(self, "scatter", xs, ys, style, "scatter") end

-- The range of the data on one axis ("x" or "y"), of usable points only.
local function data_range(self, axis)
  local lo, hi = math.huge, -math.huge
  for _, s in ipairs(self.series) do
    local vs = axis == "x" and s.xs or s.ys
    for i = 1, #vs do
      local x, y = s.xs[i], s.ys[i]
      if finite(x) and finite(y) and not (self.logy and y <= 0) then
        local v = vs[i]
        if v < lo then lo = v end
        if v > hi then hi = v end
      end
    end
  end
  if lo > hi then return nil end
  return lo, hi
end

-- A linear axis: bounds (the data range padded by 5%, or the given limits) and labelled ticks.
local function linear_axis(lim, lo, hi, pixels, integers)
  if lim then
    lo, hi = lim[1], lim[2]
  else
    if lo == nil then lo, hi = 0, 1 end
    if lo == hi then
      local d = lo == 0 and 1 or math.abs(lo) * 0.1
      lo, hi = lo - d, hi + d
    else
      local pad = (hi - lo) * 0.05
      lo, hi = lo - pad, hi + pad
    end
  end
  local ticks, step = M.ticks(lo, hi, math.max(3, math.min(8, math.floor(pixels / 70))), integers and 1 or nil)
  local labels = {}
  for i, v in ipairs(ticks) do
    local s = format_linear(v, step)
    labels[i] = { value = v, svg = esc(s), chars = utf8.len(s) }
  end
  return { lo = lo, hi = hi, labels = labels, minor = {} }
end

local function log_axis(lim, lo, hi)
  if lo == nil then lo, hi = 0.1, 1 end
  local major, minor, alo, ahi = M.log_ticks(lo, hi)
  if lim then alo, ahi = lim[1], lim[2] end
  local labels, keep = {}, {}
  for _, v in ipairs(major) do
    if v >= alo * (1 - 1e-9) and v <= ahi * (1 + 1e-9) then
      local svg, chars = format_log(v)
      labels[#labels + 1] = { value = v, svg = svg, chars = chars }
    end
  end
  for _, v in ipairs(minor) do
    if v > alo and v < ahi then keep[#keep + 1] = v end
  end
  return { lo = alo, hi = ahi, labels = labels, minor = keep, log = true }
end

local function fmt(v) return string.format("%.2f", v):gsub("%.?0+$", "") end

--- `fig:svg()`: the figure as an SVG document (a string).
function Figure:svg()
  local W, H = self.width, self.height
  local xlo, xhi = data_range(self, "x")
  local ylo, yhi = data_range(self, "y")
  local integers = #self.series > 0 -- x values all whole (epochs): whole ticks
  for _, s in ipairs(self.series) do
    for i = 1, #s.xs do
      if math.type(s.xs[i]) ~= "integer" and s.xs[i] ~= math.floor(s.xs[i]) then integers = false break end
    end
  end
  local xa = linear_axis(self.xlim, xlo, xhi, W - 120, integers)
  local ya = self.logy and log_axis(self.ylim, ylo, yhi) or linear_axis(self.ylim, ylo, yhi, H - 110)

  -- margins from the text they hold
  local ychars = 0
  for _, l in ipairs(ya.labels) do ychars = math.max(ychars, l.chars) end
  local left = 14 + (self.ylabel and LABEL_SIZE + 12 or 0) + ychars * TICK_SIZE * 0.6 + 10
  local top = self.title and 20 + TITLE_SIZE + 12 or 20
  local bottom = 10 + TICK_SIZE + 8 + (self.xlabel and LABEL_SIZE + 14 or 0) + 6
  local last = xa.labels[#xa.labels]
  local right = math.max(24, last and last.chars * TICK_SIZE * 0.3 + 8 or 0)
  local pw, ph = W - left - right, H - top - bottom

  local function px(x) return left + (x - xa.lo) / (xa.hi - xa.lo) * pw end
  local py
  if ya.log then
    local l0, l1 = math.log(ya.lo, 10), math.log(ya.hi, 10)
    py = function(y) return top + ph - (math.log(y, 10) - l0) / (l1 - l0) * ph end
  else
    py = function(y) return top + ph - (y - ya.lo) / (ya.hi - ya.lo) * ph end
  end

  local out = {}
  local function add(...) out[#out + 1] = string.format(...) end
  add('<?xml version="1.0" encoding="UTF-8"?>\n')
  add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d"'
    .. ' font-family="%s" fill="%s">\n',
    W, H, W, H, FONT, TEXT_COLOR)
  if self.title then add("<title>%s</title>\n", esc(self.title)) end
  add('<defs><clipPath id="plot-area"><rect x="%s" y="%s" width="%s" height="%s"/></clipPath></defs>\n',
    fmt(left), fmt(top), fmt(pw), fmt(ph))
  add('<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>\n', W, H)

  -- grid and ticks
  add('<g class="grid" stroke="%s" stroke-width="1">\n', GRID_COLOR)
  if self.grid then
    for _, l in ipairs(xa.labels) do
      local x = fmt(px(l.value))
      add('<line x1="%s" y1="%s" x2="%s" y2="%s"/>\n', x, fmt(top), x, fmt(top + ph))
    end
    for _, l in ipairs(ya.labels) do
      local y = fmt(py(l.value))
      add('<line x1="%s" y1="%s" x2="%s" y2="%s"/>\n', fmt(left), y, fmt(left + pw), y)
    end
    for _, v in ipairs(ya.minor) do
      local y = fmt(py(v))
      add('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke-opacity="0.45"/>\n', fmt(left), y, fmt(left + pw), y)
    end
  end
  add("</g>\n")
  add('<rect class="frame" x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s" stroke-width="1"/>\n',
    fmt(left), fmt(top), fmt(pw), fmt(ph), AXIS_COLOR)
  add('<g class="ticks" stroke="%s" stroke-width="1">\n', AXIS_COLOR)
  for _, l in ipairs(xa.labels) do
    local x = fmt(px(l.value))
    add('<line x1="%s" y1="%s" x2="%s" y2="%s"/>\n', x, fmt(top + ph), x, fmt(top + ph + 5))
  end
  for _, l in ipairs(ya.labels) do
    local y = fmt(py(l.value))
    add('<line x1="%s" y1="%s" x2="%s" y2="%s"/>\n', fmt(left - 5), y, fmt(left), y)
  end
  for _, v in ipairs(ya.minor) do
    local y = fmt(py(v))
    add('<line x1="%s" y1="%s" x2="%s" y2="%s"/>\n', fmt(left - 3), y, fmt(left), y)
  end
  add("</g>\n")
  add('<g class="tick-labels" font-size="%d">\n', TICK_SIZE)
  for _, l in ipairs(xa.labels) do
    add('<text x="%s" y="%s" text-anchor="middle">%s</text>\n', fmt(px(l.value)), fmt(top + ph + 8 + TICK_SIZE),
      l.svg)
  end
  for _, l in ipairs(ya.labels) do
    add('<text x="%s" y="%s" text-anchor="end">%s</text>\n', fmt(left - 8), fmt(py(l.value) + TICK_SIZE * 0.35),
      l.svg)
  end
  add("</g>\n")

  -- title and axis labels
  if self.title then
    add('<text class="title" x="%s" y="%s" text-anchor="middle" font-size="%d" font-weight="bold">%s</text>\n',
      fmt(left + pw / 2), fmt(20 + TITLE_SIZE * 0.8), TITLE_SIZE, esc(self.title))
  end
  if self.xlabel then
    add('<text class="xlabel" x="%s" y="%s" text-anchor="middle" font-size="%d">%s</text>\n',
      fmt(left + pw / 2), fmt(H - 12), LABEL_SIZE, esc(self.xlabel))
  end
  if self.ylabel then
    local x, y = 14 + LABEL_SIZE * 0.8, top + ph / 2
    add('<text class="ylabel" x="%s" y="%s" text-anchor="middle" font-size="%d"'
      .. ' transform="rotate(-90 %s %s)">%s</text>\n',
      fmt(x), fmt(y), LABEL_SIZE, fmt(x), fmt(y), esc(self.ylabel))
  end

  -- the data
  add('<g class="data" clip-path="url(#plot-area)">\n')
  for _, s in ipairs(self.series) do
    local usable = function(i)
      local x, y = s.xs[i], s.ys[i]
      return finite(x) and finite(y) and not (ya.log and y <= 0)
    end
    if s.kind == "line" then
      local d, pen = {}, "M"
      for i = 1, #s.xs do
        if usable(i) then
          d[#d + 1] = pen .. fmt(px(s.xs[i])) .. "," .. fmt(py(s.ys[i]))
          pen = "L"
        else
          pen = "M"
        end
      end
      add('<path d="%s" fill="none" stroke="%s" stroke-width="%s" stroke-linejoin="round" stroke-linecap="round"%s/>\n',
        table.concat(d, " "), esc(s.color), fmt(s.width),
        s.dash and string.format(' stroke-dasharray="%s"', esc(s.dash)) or "")
    else
      add('<g fill="%s" fill-opacity="0.8" stroke="#ffffff" stroke-width="0.6">\n', esc(s.color))
      for i = 1, #s.xs do
        if usable(i) then
          add('<circle cx="%s" cy="%s" r="%s"/>\n', fmt(px(s.xs[i])), fmt(py(s.ys[i])), fmt(s.size))
        end
      end
      add("</g>\n")
    end
  end
  add("</g>\n")

  -- legend, in the corner of the plot area that hides the fewest points
  local entries = {}
  for _, s in ipairs(self.series) do if s.label then entries[#entries + 1] = s end end
  if #entries > 0 then
    local chars = 0
    for _, s in ipairs(entries) do chars = math.max(chars, utf8.len(tostring(s.label))) end
    local row = LEGEND_SIZE + 8
    local bw, bh = 12 + 28 + 8 + chars * LEGEND_SIZE * 0.6 + 10, 8 + #entries * row
    local best, best_count
    for _, corner in ipairs({ { 1, 0 }, { 0, 0 }, { 1, 1 }, { 0, 1 } }) do
      local bx = corner[1] == 1 and left + pw - bw - 10 or left + 10
      local by = corner[2] == 1 and top + ph - bh - 10 or top + 10
      local count = 0
      local function hit(X, Y)
        if X >= bx - 4 and X <= bx + bw + 4 and Y >= by - 4 and Y <= by + bh + 4 then count = count + 1 end
      end
      for _, s in ipairs(self.series) do
        local pX, pY -- the previous point of a line: its segments are sampled too
        for i = 1, #s.xs do
          local x, y = s.xs[i], s.ys[i]
          if finite(x) and finite(y) and not (ya.log and y <= 0) then
            local X, Y = px(x), py(y)
            if pX and s.kind == "line" then
              for k = 1, 9 do hit(pX + (X - pX) * k / 10, pY + (Y - pY) * k / 10) end
            end
            hit(X, Y)
            pX, pY = X, Y
          else
            pX = nil
          end
        end
      end
      if best_count == nil or count < best_count then best, best_count = { bx, by }, count end
    end
    local bx, by = best[1], best[2]
    add('<g class="legend" font-size="%d">\n', LEGEND_SIZE)
    add('<rect x="%s" y="%s" width="%s" height="%s" rx="3" fill="#ffffff" fill-opacity="0.9" stroke="#cccccc"/>\n',
      fmt(bx), fmt(by), fmt(bw), fmt(bh))
    for i, s in ipairs(entries) do
      local cy = by + 4 + (i - 0.5) * row
      local x0 = bx + 12
      if s.kind == "line" then
        add('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s"%s/>\n', fmt(x0), fmt(cy),
          fmt(x0 + 28), fmt(cy), esc(s.color), fmt(s.width),
          s.dash and string.format(' stroke-dasharray="%s"', esc(s.dash)) or "")
      else
        -- a round rect, so that the document holds exactly one <circle> per scatter point
        add('<rect x="%s" y="%s" width="%s" height="%s" rx="%s" fill="%s" fill-opacity="0.8"/>\n',
          fmt(x0 + 14 - s.size), fmt(cy - s.size), fmt(2 * s.size), fmt(2 * s.size), fmt(s.size), esc(s.color))
      end
      add('<text x="%s" y="%s">%s</text>\n', fmt(x0 + 36), fmt(cy + LEGEND_SIZE * 0.35), esc(s.label))
    end
    add("</g>\n")
  end
  add("</svg>\n")
  return table.concat(out)
end

--- `fig:save(path)`: writes the SVG file. Returns the figure.
function Figure:save(path)
  if type(path) ~= "string" then
    argerror("save", 1, "expected a file name, got %s", type(path))
  end
  local f, why = io.open(path, "w")
  if not f then error(string.format("save: cannot write '%s' (%s)", path, why), 2) end
  f:write(self:svg())
  f:close()
  return self
end

Figure.__tostring = function(self)
  return string.format("Figure(%dx%d, %d series)", self.width, self.height, #self.series)
end

---------------------------------------------------------------------------------------------------
-- loss_curve
---------------------------------------------------------------------------------------------------

--- `loss_curve(history, path [, {title = "Loss", xlabel = "epoch", ylabel = "loss", logy = true}])`:
-- plots `history.train_loss` (and `history.val_loss` when present) against the epoch, as mg.train
-- returns it, and saves the SVG. The y axis is logarithmic unless a loss is <= 0. Returns the figure.
function M.loss_curve(history, path, opts)
  if type(history) ~= "table" then
    argerror("loss_curve", 1, "expected a history table, got %s", type(history))
  end
  if history.train_loss == nil then
    argerror("loss_curve", 1, "the history has no train_loss")
  end
  if type(path) ~= "string" then
    argerror("loss_curve", 2, "expected a file name, got %s", type(path))
  end
  local o = options("loss_curve", 3, opts, { title = "Loss", xlabel = "epoch", ylabel = "loss", logy = true,
    width = 640, height = 400 })
  local train = to_list(history.train_loss, "loss_curve", 1)
  local val = history.val_loss and to_list(history.val_loss, "loss_curve", 1)
  local logy = o.logy
  for _, list in ipairs({ train, val or {} }) do
    for i = 1, #list do if list[i] <= 0 then logy = false end end
  end
  local fig = M.figure{ title = o.title, xlabel = o.xlabel, ylabel = o.ylabel, logy = logy,
    width = o.width, height = o.height }
  fig:line(train, { label = "training" })
  if val then fig:line(val, { label = "validation" }) end
  return fig:save(path)
end

return M
