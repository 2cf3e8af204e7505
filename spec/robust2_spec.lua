-- Issue 11's last two gaps (robust2): long matrix products that can be stopped, and out-of-memory
-- errors that name the function and the bytes when the host set a budget.
-- Stopping itself (mg_interrupt, mg.set_time_limit) is in spec/interrupt_spec.lua and
-- spec/hosts/interrupt_host.c; here: a product that runs to its end gives the bits it gave before
-- it was watched (cut into pieces between which it looks at the request: src/ops/gemm.c), on any
-- number of threads, and the allocation-failure sweep with a budget (spec/hosts/oom_host.c).
local mg = require "moongrad"
local H = require "helper"

describe("watched products (2^20 multiply-adds and more) that run to their end", function()
  local threads
  setup(function() threads = mg.get_num_threads() end)
  teardown(function() mg.set_num_threads(threads) end)

  -- each product on 1 and on 2 threads: the same bits
  local function both(f)
    mg.set_num_threads(1)
    mg.manual_seed(11)
    local one = f()
    mg.set_num_threads(2)
    mg.manual_seed(11)
    local two = f()
    assert.truthy(mg.equal(one, two))
    return one
  end

  it("sum K past 2^22 in pieces (one kc block at a time after the first) to the exact values", function()
    -- float32: integer partial sums below 2^24 are exact, whatever the order
    local n = (1 << 22) + 3
    assert.equal(n, both(function() return mg.ones(1):expand(n):dot(mg.ones(1):expand(n)) end):item())
    local m = (1 << 22) + 5
    -- float64 through the naive path, a stride-0 matrix times a vector: 8 outputs, 2 x 3 x m each
    local mv = both(function()
      return mg.full({1, 1}, 2, {dtype = "float64"}):expand(8, m):matmul(mg.full({1}, 3, {dtype = "float64"}):expand(m))
    end)
    assert.same({8}, mv.shape)
    for i = 1, 8 do assert.equal(6 * m, mv[i]) end
    -- int64 (wrapping sums: pieces of 2^20 multiply-adds)
    local mm = both(function()
      local a = mg.full({1, 1}, 3, {dtype = "int64"}):expand(4, m)
      return a:mm(mg.full({1, 1}, -2, {dtype = "int64"}):expand(m, 3))
    end)
    assert.same({4, 3}, mm.shape)
    assert.equal(-6 * m * 12, mm:sum():item())
    assert.equal(-6 * m, mm[4][3])
  end)

  it("give the same bits on 1 and 2 threads on every path (gemv rows and columns, naive, blocked, batched)", function()
    both(function() return mg.randn((1 << 22) + 300):dot(mg.randn((1 << 22) + 300)) end)
    both(function() return mg.randn(4100, 1024):matmul(mg.randn(1024)) end)             -- gemv rows
    both(function() return mg.randn(40000):matmul(mg.randn(40000, 70)) end)             -- gemv columns
    both(function() return mg.randn(30001, 90):t():matmul(mg.randn(30001)) end)         -- naive
    both(function() return mg.randn(300, 700):matmul(mg.randn(700, 500)) end)           -- blocked
    both(function() return mg.randn(3000, 4, 4):bmm(mg.randn(3000, 4, 4)) end)          -- many small
    both(function()
      return mg.randn(9000):to("float64"):matmul(mg.randn(9000, 200):to("float64"))     -- float64 naive
    end)
  end)

  it("a product stopped by the time limit leaves the next ones right", function()
    mg.set_time_limit(0.05)
    local ok, err = pcall(function()
      return mg.zeros(1, 1):expand(256, 1 << 30):mm(mg.zeros(1, 1):expand(1 << 30, 256))
    end)
    mg.set_time_limit(nil)
    assert.truthy(not ok and err:find("'mm': interrupted (over the time limit of 0.05 s)", 1, true), err)
    local a = mg.arange(12):view(3, 4):to("float32")
    assert.same({{14, 38, 62}, {38, 126, 214}, {62, 214, 366}}, a:matmul(a:t()):totable())
  end)
end)

describe("the allocation-failure sweep with a memory budget #noasan", function()
  it("names the function and bytes for every failure inside a tensor's allocation, and survives every N", function()
    local out = H.shell("make -s build/oom_host && OOM_SITES=1 build/oom_host --jobs 2 --budget 1073741824 "
      .. "spec/hosts/oom_script.lua lua")
    local survived, total = out:match("oom: (%d+) survived / (%d+) total")
    assert.truthy(survived and survived == total, out)
    assert.truthy(out:find("oom: full run: %d+ allocations, succeeded, 0 bytes live after lua_close"), out)
    assert.truthy(out:find("\nrc=0", 1, true), out)
    -- named: "'add': not enough memory for a tensor of 44 bytes" (was Lua's bare message: 170 of them)
    local named = tonumber(out:match("memory errors: (%d+) name the function and bytes"))
    -- (fewer since backward computes a small non-leaf's gradient in its node, not in a new tensor)
    assert.truthy(named and named >= 180, out)
    -- no bare "not enough memory" comes from a tensor's, a view's or an autograd node's allocation
    for _, fn in ipairs({"init_header", "lt_push_header", "lt_push_new", "lt_push_view", "lt_push_named",
                         "push_header", "push_block", "new_userdata", "lt_record"}) do
      assert.falsy(out:find("allocated under " .. fn .. "\n", 1, true), fn .. "\n" .. out)
    end
  end)
end)

describe("the memory budget's errors", function()
  after_each(function() mg.set_memory_limit(nil) end)

  it("name the function and the bytes past the budget, small tensors too", function()
    -- twice: the first cycle runs the finalizers of dead blocks' owners, the second frees them
    collectgarbage()
    collectgarbage()
    local used = collectgarbage("count") * 1024
    mg.set_memory_limit(math.floor(used) + 4096)
    H.errors(function() return mg.zeros(2000) end,
      "'zeros': not enough memory for a tensor of 8000 bytes: the memory limit is")
    mg.set_memory_limit(nil)
    assert.equal(2000, mg.zeros(2000):numel())
  end)
end)
