-- A call in progress (issue 11): stopping a long one (mg_interrupt, include/moongrad.h), and what a
-- finalizer running inside one may do to its inputs. The C hosts are spec/hosts/interrupt_host.c
-- and spec/hosts/host_buffer_host.c (built on the static library: `make build/interrupt_host`).
local mg = require "moongrad"
local H = require "helper"

describe("mg_interrupt #noasan", function()
  local out
  setup(function() out = H.shell("make -s build/interrupt_host && build/interrupt_host lua") end)

  it("stops a sum over 2^62 expanded elements from another thread within a bounded time", function()
    assert.truthy(out:find("case thread, sum: ok %(%[string [^\n]*%]:1: 'sum': interrupted%) after %d+ ms\n"), out)
  end)
  it("stops a mean of 2^60 short rows from a signal handler (SIGALRM)", function()
    assert.truthy(out:find("case signal, mean of short rows: ok %([^\n]*'mean': interrupted%) after %d+ ms\n"), out)
  end)
  it("stops a reduction over a dim (argmax) and names it", function()
    assert.truthy(out:find("case thread, argmax over a dim: ok %([^\n]*'argmax': interrupted%) after %d+ ms\n"), out)
  end)
  it("leaves the state working; a pending request stops the next long loop; mg_interrupt_clear withdraws it", function()
    assert.truthy(out:find("case after: ok (nil)", 1, true), out)
    assert.truthy(out:find("case pending request: ok %([^\n]*'max': interrupted%) after %d+ ms\n"), out)
    assert.truthy(out:find("case cleared request: ok (nil)", 1, true), out)
    assert.truthy(out:find("case pcall in Lua: ok (nil)", 1, true), out)
    assert.truthy(out:find("interrupt host: 18 of 18 cases passed\nrc=0", 1, true), out)
  end)
  it("stops matrix products and nonzero over 2^40 expanded elements, on worker threads too, and names them", function()
    for _, case in ipairs({{"thread, dot of 2^40", "dot"}, {"thread, float64 dot of 2^40", "dot"},
                           {"thread, mv of {2^20,2^20}", "matmul"}, {"thread, int64 mm", "mm"},
                           {"thread, bmm of 2^30 products", "bmm"}, {"thread, linear", "linear"},
                           {"thread, nonzero of 2^39 rows of 2", "nonzero"}, {"signal, mm on 2 threads", "mm"},
                           {"pending request, dot", "dot"}}) do
      assert.truthy(out:find("case " .. case[1] .. ": ok %([^\n]*'" .. case[2] .. "': interrupted%) after %d+ ms\n"),
        case[1] .. "\n" .. out)
    end
    -- the products after them give the bits they gave before; the scratch of every interrupted
    -- product was given back (the host counts its allocator's bytes)
    assert.truthy(out:find("case products after, same bits: ok (nil)", 1, true), out)
    assert.truthy(out:find("interrupt host: 0 bytes live after lua_close\n", 1, true), out)
  end)
end)

describe("mg.set_time_limit", function()
  after_each(function() mg.set_time_limit(nil) end)

  it("stops a long loop of a call after that long (a script's own interruption)", function()
    assert.is_nil(mg.set_time_limit(0.2))
    local t0 = os.time()
    local ok, err = pcall(function() return mg.zeros(1):expand(1 << 62):sum() end)
    assert.is_false(ok)
    assert.truthy(err:find("'sum': interrupted (over the time limit of 0.2 s)", 1, true), err)
    assert.truthy(os.time() - t0 <= 3)
    ok, err = pcall(function() return mg.any(mg.zeros(2, 1, 1):expand(2, 1, 1 << 53)) end)
    assert.truthy(not ok and err:find("'any': interrupted (over the time limit of 0.2 s)", 1, true), err)
    -- a sum over an outer dim (its outputs side by side, src/ops/reduce.c sum_columns)
    ok, err = pcall(function() return mg.zeros(1, 16):expand(1 << 50, 16):sum(1) end)
    assert.truthy(not ok and err:find("'sum': interrupted (over the time limit of 0.2 s)", 1, true), err)
    -- short calls are not affected, and the state works on
    assert.equal(3, mg.ones(1):expand(3):sum():item())
    assert.equal(0.2, mg.set_time_limit(nil))
    assert.equal(2097152, mg.ones(1):expand(1 << 21):sum():item())
  end)
  it("stops matrix products and nonzero over expanded inputs, naming the function", function()
    mg.set_time_limit(0.1)
    local z = mg.zeros(1, 1)
    local cases = {
      dot = function() return mg.zeros(1):expand(1 << 40):dot(mg.ones(1):expand(1 << 40)) end,
      matmul = function() return z:expand(1 << 20, 1 << 20):matmul(mg.zeros(1):expand(1 << 20)) end,
      mm = function() return z:expand(256, 1 << 30):mm(z:expand(1 << 30, 256)) end,
      bmm = function() return mg.zeros(1, 1, 1):expand(1 << 26, 4, 4):bmm(mg.zeros(1, 1, 1):expand(1 << 26, 4, 1)) end,
      linear = function() return mg.F.linear(z:expand(8, 1 << 36), z:expand(3, 1 << 36)) end,
      nonzero = function() return mg.zeros(1, 2):expand(1 << 39, 2):nonzero() end,
      masked_select = function()
        return mg.zeros(1):expand(1 << 40):masked_select(mg.zeros(1, {dtype = "bool"}):expand(1 << 40))
      end,
    }
    for name, f in pairs(cases) do
      local t0 = os.time()
      local ok, err = pcall(f)
      assert.is_false(ok, name)
      assert.truthy(err:find("'" .. name .. "': interrupted (over the time limit of 0.1 s)", 1, true), err)
      assert.truthy(os.time() - t0 <= 3, name)
    end
    -- the same on two threads (the workers look at the deadline too)
    local threads = mg.get_num_threads()
    mg.set_num_threads(2)
    local ok, err = pcall(cases.mm)
    mg.set_num_threads(threads)
    assert.truthy(not ok and err:find("'mm': interrupted (over the time limit of 0.1 s)", 1, true), err)
    -- products that end in time are not affected; nor their values
    assert.equal(2097152, mg.ones(1):expand(1 << 21):dot(mg.ones(1):expand(1 << 21)):item())
    assert.equal(6, mg.tensor({0, 1, 0, 2}):expand(3, 4):nonzero():size(1))
  end)
  it("refuses what is not a positive number of seconds", function()
    H.errors(function() mg.set_time_limit(0) end,
      "bad argument #1 to 'set_time_limit' (time limit must be a positive number of seconds, got 0.0)")
    H.errors(function() mg.set_time_limit(0 / 0) end, "(time limit must be a positive number of seconds, got")
    H.errors(function() mg.set_time_limit("x") end, "bad argument #1 to 'set_time_limit' (number expected, got string)")
  end)
end)

describe("a finalizer closing an op's input #noasan", function()
  it("never frees a host's buffer under a running kernel (the release waits for the collection)", function()
    local out = H.shell("make -s build/host_buffer_host && build/host_buffer_host lua")
    assert.truthy(out:find("host buffer: 400 ops with a finalizer closing their input: %d+ finished right, %d+ refused, "
      .. "0 read released memory"), out)
    assert.truthy(out:find("host buffer: released at once by <close> outside a finalizer", 1, true), out)
    assert.truthy(out:find("host buffer: (%d+) made, %1 released after lua_close\nrc=0"), out)
  end)
end)

describe("a finalizer closing an op's input twice", function()
  it("leaves the bytes to the running op (was a NULL read: the second close dropped them)", function()
    local src = [[
      local mg = require "moongrad"
      collectgarbage("incremental", 0, 100)
      local finished, refused = 0, 0
      for _ = 1, 400 do
        local a = mg.ones(4000)
        setmetatable({}, {__gc = function() do local _ <close> = a end do local _ <close> = a end end})
        local ok, r = pcall(function() return ((a * 2 + 1):exp() - a):sum():item() end)
        if ok then
          assert(math.abs(r - 4000 * (math.exp(3) - 1)) < 1, r)
          finished = finished + 1
        else
          assert(tostring(r):find("tensor used after its storage was released", 1, true), r)
          refused = refused + 1
        end
      end
      print(finished + refused, refused > 0)
    ]]
    local output, ok = H.run_lua(src)
    assert.truthy(ok, output)
    assert.equal("400\ttrue\n", output)
  end)
  it("leaves a large tensor's block to the running op too", function()
    local src = [[
      local mg = require "moongrad"
      collectgarbage("incremental", 0, 100)
      local done = 0
      for _ = 1, 60 do
        local a = mg.ones(300000)
        setmetatable({}, {__gc = function() do local _ <close> = a end do local _ <close> = a end end})
        local ok, r = pcall(function() return ((a * 2 + 1):exp() - a):sum():item() end)
        assert(ok and math.abs(r - 300000 * (math.exp(3) - 1)) < 100 or
          tostring(r):find("tensor used after its storage was released", 1, true), r)
        done = done + 1
      end
      print(done)
    ]]
    local output, ok = H.run_lua(src)
    assert.truthy(ok, output)
    assert.equal("60\n", output)
  end)
  it("closing twice is harmless otherwise", function()
    local a = mg.ones(3)
    do local _ <close> = a end
    do local _ <close> = a end
    H.errors(function() return a + 1 end, "tensor used after")
  end)
end)
