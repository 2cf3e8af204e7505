-- Allocation failure at any point (issue 11, item 3): spec/hosts/oom_host.c runs
-- spec/hosts/oom_script.lua (tensors made, indexed and viewed; forward and backward of an MLP with
-- CrossEntropyLoss; an Adam step; mg.save and mg.load; tostring) with its N-th allocation failing,
-- for every N from 1 to the allocation count of a full run. Every run must end in an error or
-- succeed, leave the tensors it kept whole and printable, and have 0 bytes live after lua_close.
-- `make oom-asan` runs the same sweep under ASan + UBSan + LeakSanitizer (CI does).
local H = require "helper"

local function sweep(args)
  local out = H.shell("make -s build/oom_host && build/oom_host --jobs 2 " .. args .. " spec/hosts/oom_script.lua lua")
  assert.truthy(out:find("rc=0", 1, true), out)
  assert.falsy(out:find("FAILED", 1, true), out)
  local total_allocs = tonumber(out:match("full run: (%d+) allocations, succeeded, 0 bytes live after lua_close"))
  assert.truthy(total_allocs, out)
  assert.truthy(out:find("swept every N in 1.." .. total_allocs .. "\n", 1, true), out)
  local survived, total = out:match("(%d+) survived / (%d+) total")
  survived, total = tonumber(survived), tonumber(total)
  assert.equal(total_allocs, total, out)
  assert.equal(total, survived, out)
  assert.truthy(total > 1000, out)
  return out
end

describe("allocation failure at any point #noasan", function()
  it("survives the N-th allocation failing, for every N of the script", function()
    local out = sweep("")
    -- the failures reach the script as memory errors, never as another error
    assert.truthy(out:find("(%d+) memory errors, 0 other%)"), out)
  end)

  it("survives every allocation failing from the N-th on, for every N", function()
    sweep("--sticky")
  end)

  it("with worker threads: every allocation after require 'moongrad' fails in turn (fresh runs)", function()
    local run = "MOONGRAD_NUM_THREADS=2 build/oom_host --fail %d spec/hosts/oom_threads.lua lua"
    local base = H.shell("make -s build/oom_host && echo 'require \"moongrad\"' > build/oom_require.lua && build/oom_host --fail 0 build/oom_require.lua lua")
    local first = tonumber(base:match("succeeded; (%d+) allocations"))
    local out = H.shell(run:format(0))
    local total = tonumber(out:match("succeeded; (%d+) allocations"))
    assert.truthy(first and total and total - first > 30, base .. out)
    for n = first - 5, total do
      out = H.shell(run:format(n))
      assert.truthy(out:find("rc=0", 1, true), out)
      assert.truthy(out:find("OOM_CHECK passed; 0 bytes live after lua_close", 1, true), out)
    end
  end)

  it("a single run: --fail N", function()
    local out = H.shell("make -s build/oom_host && build/oom_host --fail 100 spec/hosts/oom_script.lua lua")
    assert.truthy(out:find("oom: N=100: error: not enough memory", 1, true), out)
    assert.truthy(out:find("OOM_CHECK passed; 0 bytes live after lua_close", 1, true), out)
    assert.truthy(out:find("rc=0", 1, true), out)
  end)
end)
