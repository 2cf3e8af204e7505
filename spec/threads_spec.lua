-- Threads: mg.set_num_threads / get_num_threads, results that do not depend on the number of
-- threads nor on which thread ran which chunk (each output element is computed by one chunk, with
-- the same code wherever the chunk boundaries fall; partial sums combined in a fixed order), and
-- workers that never outlive the Lua state.
-- #notsan: tests that start processes (`make tsan` preloads its runtime into the interpreter, and
-- a shell crashes with it); `make tsan` runs a busy loop of its own instead.
local mg = require "moongrad"
local H = require "helper"

-- runs `code` in a child Lua process with this one's module paths (under `prefix`, a command such
-- as taskset's, when given); returns its output
local function child(code, prefix)
  local cmd = string.format("%slua5.4 -e %q 2>&1", prefix or "", string.format("package.path = %q; package.cpath = %q; %s",
    package.path, package.cpath, code))
  local pipe = assert(io.popen(cmd))
  local out = pipe:read("a")
  pipe:close()
  return out
end

describe("threads", function()
  local saved
  before_each(function() saved = mg.get_num_threads() end)
  after_each(function() mg.set_num_threads(saved) end)

  describe("set_num_threads()", function()
    it("sets what get_num_threads() reads", function()
      mg.set_num_threads(1)
      assert.equal(1, mg.get_num_threads())
      mg.set_num_threads(2)
      assert.equal(2, mg.get_num_threads())
    end)
    it("refuses a count outside 1..64", function()
      H.errors(function() mg.set_num_threads(0) end,
        "bad argument #1 to 'set_num_threads' (number of threads must be in 1..64, got 0)")
      H.errors(function() mg.set_num_threads(65) end, "number of threads must be in 1..64, got 65")
    end)
  end)

  describe("results", function()
    -- large enough that the work is split between threads, in several chunks per thread, with
    -- sizes that put the chunk boundaries at odd places (not multiples of a vector width)
    local function compute()
      mg.manual_seed(11)
      local a, b = mg.randn(700, 1100), mg.randn(1100)
      local odd = mg.randn(2 * 65536 * 3 + 7, {dtype = "float64"})
      local big = mg.randn(600, 300)
      local wide = mg.randn(40, 700) -- a product split by micro-columns (few rows)
      local tall = mg.randn(100003, 5) -- X^T g with few outputs and a long K: K blocks summed
      local g = mg.randn(100003)
      -- optimizer updates of parameters large enough to be split
      local p, q = mg.randn(300001):requires_grad_(), mg.randn(300001):requires_grad_()
      p.grad, q.grad = mg.randn(300001), mg.randn(300001)
      local sgd = mg.optim.SGD({p}, {lr = 0.1, momentum = 0.9})
      local adam = mg.optim.Adam({q}, {lr = 0.01})
      for _ = 1, 3 do sgd:step(); adam:step() end
      return {
        a + b, a * 3 - b, (a:t() + 1):t(), a:exp(), a:sigmoid(), a:clamp(-0.5, 0.5),
        a:double(), mg.where(a:gt(0), a, b), a:sum(2), a:mean(1), big:matmul(big:t()),
        p:detach(), q:detach(), odd * odd + 1, odd:tanh(), odd:float(),
        wide:matmul(mg.randn(700, 2000)), big:double():matmul(big:t():double()),
        tall:t():matmul(g), g:matmul(tall), (a:t() * 2):contiguous(),
      }
    end

    local function same(one, other, what)
      for i = 1, #one do
        assert.is_true(mg.equal(one[i], other[i]), "result " .. i .. " differs with " .. what)
      end
    end

    it("are bit-identical with 1, 2, 3, 4 and 8 threads", function()
      mg.set_num_threads(1)
      local one = compute()
      for _, n in ipairs{2, 3, 4, 8} do
        mg.set_num_threads(n)
        same(one, compute(), n .. " threads")
      end
    end)

    it("are bit-identical whatever the schedule: repeated runs, fewer threads after more", function()
      mg.set_num_threads(1)
      local one = compute()
      for _, n in ipairs{8, 2, 2, 2, 3} do
        mg.set_num_threads(n)
        same(one, compute(), n .. " threads")
      end
    end)

    it("are bit-identical while another process keeps a core busy #notsan", function()
      mg.set_num_threads(1)
      local one = compute()
      -- a busy loop for a few seconds at most (killed below; it ends by itself otherwise)
      local pidf = os.tmpname()
      os.execute(string.format(
        "sh -c 'echo $$ > %s; end=$(($(date +%%s) + 20)); while [ $(date +%%s) -lt $end ]; do :; done' &", pidf))
      local ok, err = pcall(function()
        for _, n in ipairs{2, 4} do
          mg.set_num_threads(n)
          same(one, compute(), n .. " threads and a busy core")
        end
      end)
      local f = io.open(pidf)
      local pid = f and f:read("n")
      if f then f:close() end
      if pid then os.execute("kill " .. math.tointeger(pid) .. " 2>/dev/null") end
      os.remove(pidf)
      assert(ok, err)
    end)

    -- confined to one CPU, a woken worker finds itself on the caller's CPU, leaves the job and
    -- sends the next ones to the caller alone (pool.c), and the gemm then plans for one thread
    -- (x W^T with W read in place): the same bits as a 1-thread run and as 2 free threads, and the
    -- workers take next to no CPU time (the pool before took 7 ticks to the caller's 12 there)
    it("are bit-identical in a process confined to one CPU, its workers leaving jobs to the caller #notsan", function()
      local code = "local mg = require 'moongrad'; mg.manual_seed(3); " ..
        "local x, W, v = mg.randn(64, 784), mg.randn(256, 784), mg.randn(3 * 65536 + 5); " ..
        "local function run() return {x:matmul(W:t()), (v * 2 + 1):exp(), v:sum(), x:matmul(W:t()):relu():sum(1)} end; " ..
        "mg.set_num_threads(1); local one = run(); mg.set_num_threads(2); local same = 0; " ..
        "for _ = 1, 200 do local r = run(); local ok = true; " ..
        "for i = 1, #one do ok = ok and mg.equal(one[i], r[i]) end; if ok then same = same + 1 end end; " ..
        -- utime + stime of the main thread and of the others, from /proc/<pid>/task/<tid>/stat
        "local pid = io.open('/proc/self/stat'):read('l'):match('^(%d+)'); local main, workers = 0, 0; " ..
        "for tid in io.popen('ls /proc/' .. pid .. '/task'):lines() do " ..
        "local f = io.open('/proc/' .. pid .. '/task/' .. tid .. '/stat'); if f then " ..
        "local u, s = f:read('a'):match('%) %S+' .. string.rep(' %S+', 10) .. ' (%d+) (%d+)'); f:close(); " ..
        "if tid == pid then main = main + u + s else workers = workers + u + s end end end; " ..
        "io.write('same ', same, ' of 200; ', string.format('%a', one[3]:item()), '\\n', main, ' ', workers)"
      local free = child(code)
      assert.matches("^same 200 of 200; ", free)
      if os.execute("command -v taskset >/dev/null 2>&1") then
        local confined = child(code, "taskset -c 0 ")
        -- every run the same bits, the same sum
        assert.equal(free:match("^[^\n]*"), confined:match("^[^\n]*"))
        local main, workers = confined:match("\n(%d+) (%d+)$")
        assert.truthy(main, confined)
        assert.is_true(tonumber(workers) * 5 <= tonumber(main),
          "on one CPU the workers took " .. workers .. " ticks, the caller " .. main)
      end
    end)
  end)

  describe("workers", function()
    -- the number of threads of a child process, read from /proc in a finalizer that runs after
    -- the module's own at lua_close (finalizers run in the reverse order of their marking)
    -- (the child code is one line for the shell: no comments in it)
    local function threads_at_close(setup)
      return child([[
        local mg
        KEEP = setmetatable({}, {__gc = function()
          mg.set_num_threads(2)
          local s = (mg.ones(1000000) + 1):sum():item()
          local f = io.open("/proc/self/status")
          local n = f:read("a"):match("Threads:%s*(%d+)")
          f:close()
          io.write("threads ", n, " sum ", s)
        end})
        mg = require "moongrad"
        ]] .. setup)
    end

    it("are stopped when the state closes, and a later finalizer runs its ops on one thread #notsan", function()
      if not io.open("/proc/self/status") then return end -- Linux only
      assert.equal("threads 1 sum 2000000", threads_at_close("mg.set_num_threads(4); local _ = mg.ones(1000000) + 1"))
      assert.equal("threads 1 sum 2000000", threads_at_close("")) -- the pool was never started
    end)
  end)
end)
