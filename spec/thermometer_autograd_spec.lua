-- examples/thermometer_autograd.lua: the book's autograd loop over mg.F.model / mg.F.loss_fn, and
-- the hand-derived loop over mg.F.grad_fn, end at PyTorch's params.
local H = require "helper"

local run = H.run -- print captured; returns the lines and the chunk's results

describe("examples/thermometer_autograd.lua", function()
  local lines, params, hand
  setup(function()
    lines, params, hand = run(assert(loadfile("examples/thermometer_autograd.lua")))
  end)

  it("ends at the book's params with autograd (PyTorch: tensor([  5.3671, -17.3012], requires_grad=True))", function()
    -- PyTorch 1.13, float32:
    --   params = torch.tensor([1.0, 0.0], requires_grad=True)
    --   for _ in range(5000): params.grad = None if ...; loss = ((params[0]*t_un + params[1] - t_c)**2).mean()
    --     loss.backward(); with torch.no_grad(): params -= 1e-2 * params.grad
    --   -> tensor([  5.3671, -17.3012], requires_grad=True)  (5.367084, -17.30119)
    H.near({5.367084, -17.30119}, params:detach(), 1e-4)
    assert.is_true(params.requires_grad)
    assert.equal("tensor([  5.3671, -17.3012], requires_grad=true)", lines[1])
  end)

  it("ends at the same params with the hand-derived grad_fn, to float32 precision", function()
    H.near(params:detach():totable(), hand, 1e-5)
    assert.equal("hand-derived grad_fn: tensor([  5.3671, -17.3012]) (the same params)", lines[2])
    assert.equal(2, #lines)
  end)
end)
