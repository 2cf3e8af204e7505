-- The moongrad side of the benchmarks: timing (a warm-up run, then the median of REPEATS), the
-- shared deterministic data generator (splitmix64 + Box-Muller, the same numbers as bench/common.py),
-- peak resident memory, and the RESULT lines that bench/run.sh turns into one table.
local M = {}
local ok, system = pcall(require, "system")
M.clock = (ok and system.monotime) or os.clock
M.REPEATS = tonumber(os.getenv("BENCH_REPEATS") or "5")
-- median_time(fn, "auto"): a short workload repeats until its timed runs add up to MIN_SECONDS (at
-- most MAX_REPEATS runs), as bench/common.py does: the median of five 4 ms runs (W1) moved 1.8x
-- with one burst of another tenant's work on a shared machine. Only for a fn whose every run starts
-- from the same state: a workload that trains on across runs (W8) would end elsewhere on each side,
-- whose run counts differ.
M.MIN_SECONDS = tonumber(os.getenv("BENCH_MIN_SECONDS") or "0.25")
M.MAX_REPEATS = 41
M.THREADS = tonumber(os.getenv("BENCH_THREADS") or "1")

-- the number of threads moongrad may use: run.sh also sets MOONGRAD_NUM_THREADS
function M.setup(mg)
  if mg.set_num_threads then mg.set_num_threads(M.THREADS) end
end

-- Each timed repeat starts from the same state: the previous repeat's results dropped and the
-- garbage collected (outside the timing), as bench/common.py does; otherwise the kept result's
-- block turned old in the generational collector and the next repeat took fresh pages from the
-- system for its place (W7 10^6: ~15 us an op of page faults, not the loop's steady state).
function M.median_time(fn, repeats)
  local w0 = M.clock()
  local ret = table.pack(fn())
  if repeats == "auto" then
    local warm = M.clock() - w0
    repeats = math.max(M.REPEATS, math.min(M.MAX_REPEATS, math.ceil(M.MIN_SECONDS / math.max(warm, 1e-9))))
  end
  local times = {}
  for r = 1, repeats or M.REPEATS do
    ret = nil -- luacheck: ignore 311 (dropped so that the collection frees it)
    collectgarbage()
    local t0 = M.clock()
    ret = table.pack(fn())
    times[r] = M.clock() - t0
  end
  table.sort(times)
  return times[(#times + 1) // 2], table.unpack(ret, 1, ret.n)
end

---------------------------------------------------------------------------- generator
-- All integer arithmetic mod 2^64 (Lua 5.4 integers wrap; >> is a logical shift):
--   bits(seed, k)    = mix(seed + (k + 1) * G)
--   uniform(seed, k) = (bits(seed, k) >> 11) * 2^-53
--   normal(seed, k)  = sqrt(-2 log(1 - uniform(seed, 2k))) * cos(2 pi uniform(seed, 2k+1))
--   index(seed, k, n)= (bits(seed, k) >> 11) % n
-- Values are float64, rounded to float32 when they land in a float32 tensor.
local G, M1, M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
local sqrt, log, cos, TWO_PI, SCALE = math.sqrt, math.log, math.cos, 2.0 * math.pi, 2.0^-53

local function bits(seed, k)
  local z = seed + (k + 1) * G
  z = (z ~ (z >> 30)) * M1
  z = (z ~ (z >> 27)) * M2
  return z ~ (z >> 31)
end
M.bits = bits
function M.uniform(seed, k) return (bits(seed, k) >> 11) * SCALE end
function M.index(seed, k, n) return (bits(seed, k) >> 11) % n end

function M.normal(seed, k)
  local u1, u2 = (bits(seed, 2 * k) >> 11) * SCALE, (bits(seed, 2 * k + 1) >> 11) * SCALE
  return sqrt(-2.0 * log(1.0 - u1)) * cos(TWO_PI * u2)
end

-- out[1..count] = scale * normal(seed, start + i - 1) (the mix inlined: this is the hot loop)
function M.normals(seed, start, count, scale, out)
  out = out or {}
  scale = scale or 1.0
  for i = 1, count do
    local k = 2 * (start + i - 1)
    local z = seed + (k + 1) * G
    z = (z ~ (z >> 30)) * M1
    z = (z ~ (z >> 27)) * M2
    local u1 = ((z ~ (z >> 31)) >> 11) * SCALE
    z = seed + (k + 2) * G
    z = (z ~ (z >> 30)) * M1
    z = (z ~ (z >> 27)) * M2
    local u2 = ((z ~ (z >> 31)) >> 11) * SCALE
    out[i] = scale * (sqrt(-2.0 * log(1.0 - u1)) * cos(TWO_PI * u2))
  end
  return out
end

-- out[1..count] = a * (2 * uniform(seed, start + i - 1) - 1): PyTorch's Linear init range
function M.uniforms(seed, start, count, a, out)
  out = out or {}
  for i = 1, count do out[i] = a * (2.0 * ((bits(seed, start + i - 1) >> 11) * SCALE) - 1.0) end
  return out
end

-- round a float64 to the nearest float32
function M.f32(x) return (string.unpack("f", string.pack("f", x))) end

-- A float32 tensor of `rows` x `cols` filled row-chunk by row-chunk from gen(first, count) (0-based
-- element index, a Lua list of float64): the Lua lists stay small however large the tensor is.
function M.build(mg, rows, cols, gen)
  local t = mg.empty(rows, cols)
  local chunk = math.max(1, 65536 // cols)
  for r = 0, rows - 1, chunk do
    local n = math.min(chunk, rows - r)
    t:narrow(1, r + 1, n):copy_(mg.tensor(gen(r * cols, n * cols)):view(n, cols))
  end
  return t
end

---------------------------------------------------------------------------- reporting
-- the process's peak resident memory so far, in MiB (VmHWM)
function M.peak_rss_mb()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return (tonumber(s:match("VmHWM:%s*(%d+)")) or 0) / 1024
end

-- One line per figure, parsed by bench/run.sh:
--   RESULT name= value= unit= derived= dunit= limit= tol= rss= nums= check= threads=
-- value/unit: the headline figure; derived/dunit: a second figure (GB/s, GFLOP/s, samples/s...);
-- limit: which machine limit the derived figure is a fraction of (run.sh measures it);
-- nums: the final numbers compared with the PyTorch side to within tol (rtol:atol);
-- threads: the threads the figure ran on (BENCH_THREADS unless r.threads says otherwise).
function M.result(r)
  local nums = {}
  for i, v in ipairs(r.nums or {}) do nums[i] = string.format("%.9g", v) end
  print(string.format("RESULT name=%s value=%.6g unit=%s derived=%s dunit=%s limit=%s tol=%s rss=%.0f nums=%s"
    .. " check=%s threads=%s",
    r.name, r.value, r.unit, r.derived and string.format("%.4g", r.derived) or "-", r.dunit or "-",
    r.limit or "-", r.tol or "1e-4:1e-6", M.peak_rss_mb(), #nums > 0 and table.concat(nums, ",") or "-",
    (tostring(r.check or "-"):gsub("%s", "")), tostring(r.threads or M.THREADS)))
  io.stdout:flush()
end

return M
