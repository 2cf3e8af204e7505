-- Tensor memory is visible to Lua's collector: long loops stay bounded with no collectgarbage()
-- call anywhere (the collector runs on its own, as for any Lua value). Linux: reads /proc.
-- (#noasan: AddressSanitizer keeps freed memory in quarantine, so resident size means nothing there)
local mg = require "moongrad"
local H = require "helper"

local resident_mb = H.resident_mb

describe("memory", function()
  it("stays bounded over 10^6 small additions (c = a + b, 11 elements) #slow #noasan", function()
    local a = mg.tensor{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
    local b = mg.tensor{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
    local before = resident_mb()
    local c
    for _ = 1, 1000000 do c = a + b end
    assert.same({2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22}, c:totable())
    -- 10^6 results of ~150 bytes would be ~150 MB if nothing were collected
    assert.is_true(resident_mb() - before < 20, "grew by " .. (resident_mb() - before) .. " MB")
  end)

  it("stays bounded over 10^3 tensors of 8 MB (their bytes are counted by the collector) #noasan", function()
    local before = resident_mb()
    local peak = 0
    for i = 1, 1000 do
      local t = mg.zeros(2 * 1024 * 1024) -- 8 MB of float32
      t[1] = i
      peak = math.max(peak, resident_mb() - before)
    end
    -- 8 GB if nothing were freed; the collector keeps a few generations alive at most
    assert.is_true(peak < 200, "peak growth " .. peak .. " MB")
  end)

  it("ends a tensor's storage at the end of a <close> scope", function()
    local kept
    do
      local t <close> = mg.zeros(100000)
      t[1] = 5
      assert.equal(5, t[1])
      kept = t
    end
    H.errors(function() return kept + 1 end, "tensor used after its storage was released (by <close>)")
  end)
end)
