-- Autograd's graphs are Lua data the collector sees: a training loop of 10^5 forward/backward
-- steps stays bounded in resident size with no collectgarbage() call anywhere. Linux: reads /proc.
-- (#noasan: AddressSanitizer keeps freed memory in quarantine, so resident size means nothing there)
local mg = require "moongrad"
local H = require "helper"

local resident_mb = H.resident_mb

describe("autograd memory", function()
  it("stays bounded over 10^5 forward/backward steps of the book's loop #slow #noasan", function()
    local t_c = mg.tensor{0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0}
    local t_un = 0.1 * mg.tensor{35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4}
    local params = mg.tensor({1.0, 0.0}, {requires_grad = true})
    local function step()
      if params.grad then params.grad:zero_() end
      local t_p = params[1] * t_un + params[2]
      local loss = ((t_p - t_c) ^ 2):mean()
      loss:backward()
      mg.no_grad(function() params:sub_(1e-2 * params.grad) end)
      return loss
    end
    for _ = 1, 1000 do step() end -- let the heap reach its working size first
    local before = resident_mb()
    local peak = 0
    local loss
    for i = 1, 100000 do
      loss = step()
      if i % 1000 == 0 then peak = math.max(peak, resident_mb() - before) end
    end
    -- each step makes ~12 tensors and ~8 graph nodes (~3 KB): 10^5 steps would be ~300 MB if
    -- graphs were not collected
    assert.is_true(peak < 20, "grew by " .. peak .. " MB")
    -- and the loop converged where PyTorch's does (same data, 5000 epochs: 5.3671, -17.3012)
    H.near({5.3671, -17.3012}, params, 1e-3)
    H.near(2.9276, loss:item(), 1e-3)
  end)

  it("stays bounded when every step keeps its graph with retain_graph #slow #noasan", function()
    local x = mg.tensor({1.0, 2.0, 3.0}, {requires_grad = true})
    local before = resident_mb()
    local peak = 0
    for i = 1, 100000 do
      local loss = (x * x + x):sum()
      loss:backward({retain_graph = true})
      loss:backward()
      if i % 1000 == 0 then peak = math.max(peak, resident_mb() - before) end
    end
    assert.is_true(peak < 20, "grew by " .. peak .. " MB")
    H.near({600000, 1000000, 1400000}, x.grad) -- 2 * 10^5 * (2x + 1)
  end)
end)
