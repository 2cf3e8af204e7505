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

  it("keeps the values of large results of interleaved sizes", function()
    -- large results reuse freed blocks: results of interleaved sizes and shapes must never see
    -- each other's bytes (a guard for any reuse of storage between tensors)
    local a = mg.arange(0, 300000):float()       -- 1.2 MB
    local b = mg.arange(0, 600000):float()       -- 2.4 MB
    for i = 1, 30 do
      local x = a + i
      local y = (b * 2):view(2, 300000)
      local z = mg.zeros(300000)
      assert.equal(i, x[1])
      assert.equal(299999 + i, x[300000])
      assert.equal(2 * 599999, y[2][300000])
      assert.equal(0, z:sum():item())
      if i % 7 == 0 then collectgarbage() end
    end
  end)

  it("counts a large tensor's bytes against the memory limit while it lives, and not after", function()
    -- the bytes are a block outside the Lua heap (tensor.c): dead, it is cached, and given back
    -- when the limit needs it
    collectgarbage()
    local t = mg.empty(1000000) -- 4 MB
    t[1] = 1
    mg.set_memory_limit(math.floor(collectgarbage("count") * 1024) + (6 << 20))
    local ok, err = pcall(mg.empty, 1000000)
    assert.is_false(ok)
    assert.truthy(err:find("not enough memory for a tensor of 4000000 bytes", 1, true), err)
    t = nil -- luacheck: ignore 311
    collectgarbage()
    assert.equal(1000000, mg.empty(1000000):numel())
    mg.set_memory_limit(nil)
  end)

  describe("the memory limit", function()
    after_each(function() mg.set_memory_limit(nil) end)

    it("refuses a tensor past it with the function and the sizes, and frees what is dead first", function()
      collectgarbage()
      local limit = math.floor(collectgarbage("count") * 1024) + (40 << 20) -- room for ~10 x 4 MB
      assert.is_nil(mg.set_memory_limit(limit))
      assert.equal(limit, mg.get_memory_limit())
      local kept = 0
      local ok, err = pcall(function()
        local keep = {}
        for i = 1, 40 do keep[i] = mg.zeros(1000000); kept = i end
        return keep
      end)
      assert.is_false(ok)
      assert.truthy(err:find("'zeros': not enough memory for a tensor of 4000000 bytes: the memory limit is " ..
        limit .. " bytes and %d+ are in use"), err)
      assert.truthy(kept >= 8 and kept <= 10, kept)
      for _ = 1, 100 do assert.equal(1000000, (mg.ones(1000000) + 1):numel()) end -- dead ones make room
      assert.equal(limit, mg.set_memory_limit(nil))
      assert.is_nil(mg.get_memory_limit())
    end)

    it("checks its argument", function()
      H.errors(function() mg.set_memory_limit(0) end,
        "bad argument #1 to 'set_memory_limit' (memory limit must be a positive number of bytes, got 0)")
    end)

    it("names the function and the size when the allocator fails for a large tensor #noasan", function()
      H.errors(function() return mg.zeros(1 << 40) end, "not enough memory for a tensor of 4398046511104 bytes")
    end)
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
