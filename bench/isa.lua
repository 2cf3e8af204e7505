-- isa.lua: what each instruction-set level buys on this machine. Runs a few hot kernels at the
-- level MOONGRAD_ISA names (baseline, avx2, avx512; default: the best the CPU has) and prints
-- microseconds per call, the median of several rounds. Compare levels by alternating runs:
--   for i in 1 2 3; do for isa in baseline avx2 avx512; do
--     MOONGRAD_NUM_THREADS=1 MOONGRAD_ISA=$isa lua5.4 bench/isa.lua; done; done
-- On a shared machine timings are noisy; instruction counts are steadier:
--   MOONGRAD_ISA=$isa valgrind --tool=callgrind --toggle-collect='add_f32_*' lua5.4 bench/isa.lua add1e5 20
-- Usage: lua5.4 bench/isa.lua [case [reps]]
local mg = require "moongrad"

mg.manual_seed(1)
local a4, b4 = mg.randn(10000), mg.randn(10000)
local a5, b5 = mg.randn(100000), mg.randn(100000)
local o4 = mg.empty(10000)
local logits = mg.randn(64, 1000)
local p = mg.randn(100000):requires_grad_()
p.grad = mg.randn(100000)
local adam = mg.optim.Adam({p}, {lr = 1e-3})

local cases = {
  {"add1e4", "a + b, 1e4 float32 (in place into out)", function() o4:copy_(a4):add_(b4) end},
  {"add1e5", "a + b, 1e5 float32", function() return a5 + b5 end},
  {"exp1e5", "exp, 1e5 float32", function() return a5:exp() end},
  {"sum1e5", "sum, 1e5 float32", function() return a5:sum() end},
  {"max1e5", "max, 1e5 float32", function() return a5:max() end},
  {"cast1e5", "float32 -> float64, 1e5", function() return a5:double() end},
  {"relu1e5", "relu, 1e5 float32", function() return a5:relu() end},
  {"gt1e5", "a > b, 1e5 float32", function() return a5:gt(b5) end},
  {"softmax", "softmax 64 x 1000 float32, dim 2", function() return mg.F.softmax(logits, 2) end},
  {"adam1e5", "Adam step, 1e5 float32 params", function() adam:step() end},
}

local only, reps = arg[1], tonumber(arg[2])
local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end
io.write(string.format("MOONGRAD_ISA=%s\n", os.getenv("MOONGRAD_ISA") or "(unset)"))
for _, c in ipairs(cases) do
  if not only or only == c[1] then
    local fn = c[3]
    if reps then -- a fixed number of calls (for callgrind)
      for _ = 1, reps do fn() end
    else
      for _ = 1, 20 do fn() end
      local rounds = {}
      for r = 1, 7 do
        local n, t0 = 0, os.clock()
        repeat
          for _ = 1, 10 do fn() end
          n = n + 10
        until os.clock() - t0 > 0.05
        rounds[r] = (os.clock() - t0) / n * 1e6
        collectgarbage("step", 0)
      end
      io.write(string.format("  %-8s %-42s %9.2f us\n", c[1], c[2], median(rounds)))
    end
  end
end
