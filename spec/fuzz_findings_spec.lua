-- Findings of the fuzzers (scripts/fuzz.lua, fuzz/harness.c) that have no better home: one spec each.
local mg = require "moongrad"
local H = require "helper"

describe("fuzz findings", function()
  it("chunk of an empty dimension into 2^62 pieces is an error, not 8 GB of empty views (make fuzz, seed 6)", function()
    H.errors(function() return mg.zeros(0):chunk(4611686018427387904) end,
      "bad argument #1 to 'chunk' (at most 1000000 chunks of an empty dimension, got 4611686018427387904)")
    -- PyTorch's answer below the bound: that many empty pieces
    local pieces = mg.zeros(0, 3):chunk(4)
    assert.equal(4, #pieces)
    for _, p in ipairs(pieces) do assert.same({0, 3}, p.shape) end
    assert.equal(1000000, #mg.zeros(0):chunk(1000000))
  end)
end)
