-- Timing for the moongrad side of the benchmarks: a warm-up run, then the median of REPEATS.
local M = {}
local ok, system = pcall(require, "system")
M.clock = (ok and system.monotime) or os.clock
M.REPEATS = tonumber(os.getenv("BENCH_REPEATS") or "5")

function M.median_time(fn)
  fn()
  local times = {}
  for r = 1, M.REPEATS do
    local t0 = M.clock()
    fn()
    times[r] = M.clock() - t0
  end
  table.sort(times)
  return times[(#times + 1) // 2]
end

-- One line per figure, parsed by bench/run.sh: RESULT name=... value=... unit=...
function M.result(name, value, unit, check)
  print(string.format("RESULT name=%s value=%.6g unit=%s check=%s", name, value, unit, tostring(check or "")))
end

return M
