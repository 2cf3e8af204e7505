-- Every instruction-set level gives the same bits. The kernels are compiled once per level
-- (baseline x86-64, AVX2+FMA, AVX-512; src/core/cpu.h) and a ctx runs the best level the CPU has,
-- capped by MOONGRAD_ISA. spec/fixtures/isa_script.lua prints every kernel family's results as
-- hex floats; it runs here in a child process per level and the outputs are compared line by line.
-- Levels this CPU lacks are skipped (pending, named). Matmul is the one documented exception: its
-- portable kernel (no FMA in baseline x86-64) rounds each product, the AVX2 and AVX-512 kernels
-- fuse them (src/ops/gemm.c), so its lines are compared between AVX2 and AVX-512 only.
local H = require "helper"

-- Runs the fixed script with MOONGRAD_ISA=isa (nil: unset); returns stdout's lines and stderr.
local function run(isa)
  local err = os.tmpname()
  local cmd = string.format("%sMOONGRAD_NUM_THREADS=1 lua5.4 -e %q spec/fixtures/isa_script.lua 2>%s",
    isa and ("MOONGRAD_ISA=" .. isa .. " ") or "env -u MOONGRAD_ISA ", -- nil: the CPU's best, whatever the caller's environment
    string.format("package.path = %q; package.cpath = %q", package.path, package.cpath), err)
  local pipe = assert(io.popen(cmd))
  local lines = {}
  for line in pipe:lines() do
    local name, values = line:match("^(%S+) (.*)$")
    lines[#lines + 1] = {name = name, values = values}
  end
  local ok = pipe:close()
  local f = assert(io.open(err))
  local stderr = f:read("a")
  f:close()
  os.remove(err)
  assert(ok, "the script failed with MOONGRAD_ISA=" .. tostring(isa) .. ": " .. stderr)
  return lines, stderr
end

local function is_matmul(name) return name:match("^mm") or name:match("^mv") or name:match("^vm") or
  name:match("^big") end

-- The names of the lines where a and b differ (all of them: a message that says what broke).
local function differences(a, b, skip)
  assert.equal(#a, #b)
  local diff = {}
  for i = 1, #a do
    assert.equal(a[i].name, b[i].name)
    if a[i].values ~= b[i].values and not (skip and skip(a[i].name)) then diff[#diff + 1] = a[i].name end
  end
  return diff
end

describe("MOONGRAD_ISA", function()
  local have, cpu = H.cpu_levels()
  local out = {}

  it("runs every family at the baseline level", function()
    out.baseline = run("baseline")
    assert.is_true(#out.baseline > 200) -- one line per case
  end)

  for _, isa in ipairs {"avx2", "avx512"} do
    if have[isa] then
      it("gives the baseline's bits at " .. isa .. " (every family but matmul)", function()
        out[isa] = run(isa)
        out.baseline = out.baseline or run("baseline")
        assert.same({}, differences(out.baseline, out[isa], is_matmul))
      end)
    else
      pending(isa .. " skipped: " .. cpu .. " lacks it")
    end
  end

  if have.avx2 and have.avx512 then
    it("gives the same matmul bits at avx2 and avx512", function()
      out.avx2, out.avx512 = out.avx2 or run("avx2"), out.avx512 or run("avx512")
      assert.same({}, differences(out.avx2, out.avx512))
    end)
  end

  it("ignores an unknown level, saying so on stderr, and runs the CPU's best", function()
    local lines, stderr = run("sse9")
    assert.truthy(stderr:find("moongrad: MOONGRAD_ISA=sse9 ignored: expected baseline, avx2 or avx512; using ", 1, true))
    local best, default_err = run(nil)
    assert.equal("", default_err)
    assert.same({}, differences(best, lines))
  end)

  it("caps at the CPU's level: a level above it runs what the CPU has", function()
    -- avx512 asked on a CPU without it runs avx2 or the baseline: the same bits either way
    local lines, stderr = run("avx512")
    assert.equal("", stderr)
    out.baseline = out.baseline or run("baseline")
    assert.same({}, differences(out.baseline, lines, is_matmul))
  end)
end)
