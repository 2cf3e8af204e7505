-- Shared spec helpers: float comparison of nested tables / tensors, and error matching.
local mg = require "moongrad"
local assert = require "luassert" -- busted's assert (a required module sees Lua's own)

local H = {}

local function flatten(x, out)
  out = out or {}
  if type(x) == "table" then
    for _, v in ipairs(x) do flatten(v, out) end
  else
    out[#out + 1] = x
  end
  return out
end

local function shape_of(x)
  local s = {}
  while type(x) == "table" do
    s[#s + 1] = #x
    x = x[1]
  end
  return s
end

-- Asserts that `actual` (a tensor, a table or a number) equals `expected` (nested tables or a
-- number) elementwise within |a - e| <= tol * (1 + |e|) (tol defaults to float32 precision), and
-- has its shape.
function H.near(expected, actual, tol)
  tol = tol or 1e-5
  if mg.is_tensor(actual) then actual = actual:totable() end
  assert.same(shape_of(expected), shape_of(actual))
  local e, a = flatten(expected), flatten(actual)
  assert.equal(#e, #a)
  for i = 1, #e do
    local ei, ai = e[i], a[i]
    local ok
    if ei ~= ei then ok = ai ~= ai
    elseif ei == math.huge or ei == -math.huge then ok = ai == ei
    else ok = math.abs(ai - ei) <= tol * (1 + math.abs(ei)) end
    if not ok then
      error(string.format("element %d: expected %.9g, got %.9g (tol %g)", i, ei, ai, tol), 2)
    end
  end
end

-- Asserts that fn raises an error whose message contains `detail` (plain text, no patterns).
function H.errors(fn, detail)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error containing: " .. detail)
  err = tostring(err)
  if not err:find(detail, 1, true) then
    error(string.format("expected an error containing\n  %s\ngot\n  %s", detail, err), 2)
  end
end

-- Runs a chunk (a function, e.g. loadfile's result) with print captured; returns the printed
-- lines (each print's arguments joined by tabs) and the chunk's results. Errors propagate.
function H.run(chunk)
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

-- A float64 tensor of `shape` (a table) with requires_grad, from the seeded generator: the leaf
-- that the autograd specs gradcheck.
function H.leaf(shape)
  return mg.randn(shape, {dtype = "float64", requires_grad = true})
end

-- The output (stdout and stderr) of a shell command, with its exit status appended as a last line
-- "rc=N" (for specs that build and run programs).
function H.shell(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo rc=$?"))
  local out = p:read("a")
  p:close()
  return out
end

-- Runs Lua source in a fresh lua5.4 process that finds moongrad as this one does; returns its
-- output and whether it exited 0. For specs whose outcome depends on the collector's timing (a
-- finalizer running inside a C call): a fresh, small heap makes that timing the same every run.
-- env: an optional prefix of VAR=value words for the child.
function H.run_lua(source, env)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(string.format("package.path, package.cpath = %q, %q\n", package.path, package.cpath), source)
  f:close()
  local p = assert(io.popen((env and env .. " " or "") .. "lua5.4 " .. path .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  return out, ok
end

-- The whole content of the file at path (binary-safe), or an error naming it.
function H.read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

-- The ISA levels this CPU runs, from /proc/cpuinfo (Linux x86): {baseline = true, avx2 = bool,
-- avx512 = bool} (AVX2 with FMA; AVX-512 F, BW, DQ and VL, as moongrad's dispatch wants), and the
-- CPU's model name; elsewhere only the baseline is known.
function H.cpu_levels()
  local f = io.open("/proc/cpuinfo")
  if not f then return { baseline = true }, "no /proc/cpuinfo" end
  local text = f:read("a")
  f:close()
  local flags = {}
  for w in (text:match("\nflags%s*:([^\n]*)") or ""):gmatch("%S+") do flags[w] = true end
  local avx2 = flags.avx2 and flags.fma or false
  return { baseline = true, avx2 = avx2, avx512 = avx2 and flags.avx512f and flags.avx512bw and
    flags.avx512dq and flags.avx512vl or false }, (text:match("model name%s*:%s*([^\n]*)") or "this CPU")
end

-- A new temporary file holding text; returns its path (the caller removes it).
function H.tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- This process's resident memory in MB (Linux: /proc), or nil elsewhere.
function H.resident_mb()
  local f = io.open("/proc/self/statm")
  if not f then return nil end
  local _, rss = f:read("n", "n")
  f:close()
  return rss * 4096 / 2 ^ 20
end

-- The sum of n terms (term(i) gives the i-th, a double) in the order the library's interleaved
-- sums take (src/ops/reduce.c SUM8_LOOP, the pointwise losses): for 64 terms or more, term i into
-- partial (i - 1) % 8 over the whole groups of 8, the partials added in order, then the rest; fewer
-- terms one after the other. Replayed in Lua's doubles, so a spec can assert the library's bits.
function H.interleaved_sum(n, term)
  local s, i = 0.0, 1
  if n >= 64 then
    local part = { 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0 }
    local full = n - n % 8
    for j = 1, full do
      local k = (j - 1) % 8 + 1
      part[k] = part[k] + term(j)
    end
    for k = 1, 8 do s = s + part[k] end
    i = full + 1
  end
  for j = i, n do s = s + term(j) end
  return s
end

return H
