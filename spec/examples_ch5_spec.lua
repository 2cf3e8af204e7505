-- The examples of chapter 5's later sections and beyond (examples/optimizers.lua, validation.lua,
-- sgd_linear.lua, digits_mlp.lua) run as written, end at PyTorch's numbers where the data are the
-- same, and write their plots. Each example returns its key numbers; print is captured.
local H = require "helper"

local run = H.run -- print captured; returns the lines and the chunk's results

-- Runs examples/NAME.lua after removing the plot it should write, and checks that it wrote it.
local function run_example(name, svg)
  local path = "examples/out/" .. svg
  os.remove(path)
  local results = table.pack(run(assert(loadfile("examples/" .. name .. ".lua"))))
  local text = H.read_file(path)
  assert.truthy(text:find("<svg", 1, true))
  assert.truthy(text:find("</svg>", 1, true))
  return table.unpack(results, 1, results.n)
end

describe("examples/optimizers.lua", function()
  local lines, sgd, adam, sgd_losses, adam_losses
  setup(function()
    lines, sgd, adam, sgd_losses, adam_losses = run_example("optimizers", "optimizers.svg")
  end)

  -- PyTorch 1.13, float32: params = torch.tensor([1.0, 0.0], requires_grad=True); each epoch
  --   loss = ((params[0] * t_u + params[1] - t_c) ** 2).mean(); opt.zero_grad(); loss.backward(); opt.step()
  it("reaches the book's params with optim.SGD on 0.1 * t_u (PyTorch: 5.367085, -17.301193)", function()
    H.near({5.367085, -17.301193}, sgd, 1e-4)
    assert.near(2.927648, sgd_losses[5000], 1e-4) -- PyTorch: Epoch 5000, Loss 2.927647
    assert.equal(5000, #sgd_losses)
  end)

  it("converges on the raw t_u with optim.Adam at lr 1e-1 (PyTorch: 0.536724, -17.302059)", function()
    H.near({0.536724, -17.302059}, adam, 1e-4)
    assert.near(2.927644, adam_losses[2000], 1e-4) -- PyTorch: Epoch 2000, Loss 2.927644
    assert.equal(2000, #adam_losses)
  end)

  it("prints the book's epochs and the final params", function()
    -- PyTorch prints the same lines but for the 6th digit of a few losses (SGD epochs 2 and 11:
    -- 37.574913, 28.941877; Adam epochs 1, 2, 3, 10, 99: 1763.884766, 1334.349121, 967.816040,
    -- 35.472935, 23.935575)
    assert.same({
      "optim.SGD, lr 1e-2, on 0.1 * t_u:",
      "Epoch 1, Loss 80.364342", "Epoch 2, Loss 37.574917", "Epoch 3, Loss 30.871077", "...",
      "Epoch 10, Loss 29.030489", "Epoch 11, Loss 28.941875", "...",
      "Epoch 99, Loss 22.214186", "Epoch 100, Loss 22.148710", "...",
      "Epoch 4000, Loss 2.927680", "Epoch 5000, Loss 2.927648",
      "tensor([  5.3671, -17.3012], requires_grad=true)",
      "optim.Adam, lr 1e-1, on the raw t_u:",
      "Epoch 1, Loss 1763.884644", "Epoch 2, Loss 1334.348999", "Epoch 3, Loss 967.815979", "...",
      "Epoch 10, Loss 35.472927", "Epoch 11, Loss 65.865608", "...",
      "Epoch 99, Loss 23.935577", "Epoch 100, Loss 23.898943", "...",
      "Epoch 1000, Loss 3.086700", "Epoch 2000, Loss 2.927644",
      "tensor([  0.5367, -17.3021], requires_grad=true)",
      "plot: examples/out/optimizers.svg",
    }, lines)
  end)
end)

describe("examples/validation.lua", function()
  local lines, history, params, val_indices
  setup(function()
    lines, history, params, val_indices = run_example("validation", "validation_loss.svg")
  end)

  it("holds out floor(0.2 * 11) = 2 samples and trains on the other 9", function()
    assert.equal(2, val_indices:numel())
    assert.equal(3000, #history.train_loss)
    assert.equal(3000, #history.val_loss)
  end)

  it("has both losses fall, with the validation loss above the training loss", function()
    local tr, va = history.train_loss, history.val_loss
    for _, e in ipairs({1, 500, 1000, 1500, 2000, 2500}) do
      assert.is_true(tr[e + 500] < tr[e], "training loss rises after epoch " .. e)
      assert.is_true(va[e + 500] < va[e], "validation loss rises after epoch " .. e)
    end
    assert.is_true(tr[3000] > 1 and tr[3000] < 5, "final training loss " .. tr[3000])
    assert.is_true(va[3000] > tr[3000] and va[3000] < 20, "final validation loss " .. va[3000])
  end)

  it("matches PyTorch given the same split", function()
    -- PyTorch 1.13 with shuffled_indices = moongrad's permutation (validation samples 4 and 1,
    -- 0-based [3, 0]): Epoch 3000, Training loss 2.9176, Validation loss 5.6760, params
    -- [4.931886, -15.093119]. (torch.randperm(11) after torch.manual_seed(42) splits differently.)
    assert.same({4, 1}, val_indices:totable())
    assert.near(2.9176, history.train_loss[3000], 1e-4)
    assert.near(5.6760, history.val_loss[3000], 1e-4)
    H.near({4.931886, -15.093119}, params, 1e-4)
    assert.equal("Epoch 1, Training loss 53.5719, Validation loss 200.9305", lines[1])
    assert.equal("Epoch 3000, Training loss 2.9176, Validation loss 5.6760", lines[9])
    assert.equal("plot: examples/out/validation_loss.svg", lines[#lines])
  end)
end)

describe("examples/sgd_linear.lua", function()
  local lines, w, w0, true_w, losses, b
  setup(function()
    lines, w, w0, true_w, losses, b = run_example("sgd_linear", "sgd_linear.svg")
  end)

  it("moves w from its random start most of the way to true_w in 200 single-sample steps", function()
    local start, final = (w0 - true_w):norm():item(), (w - true_w):norm():item()
    assert.is_true(final < 0.25 * start, string.format("|w - true_w|: %.4f -> %.4f", start, final))
    assert.is_true(final < 0.3, "w is still far from true_w: " .. tostring(w))
    assert.is_true(final > 0, "w reached true_w exactly")
    assert.near(1.0, b, 0.2) -- the true bias
  end)

  it("matches PyTorch given the same data, init and samples", function()
    -- PyTorch 1.13 fed moongrad's X, noise, initial weight and bias and sample indices:
    -- weight [[2.010317, -2.941607]], bias 0.996013, loss at step 200 0.0743
    H.near({2.010317, -2.941607}, w, 1e-4)
    assert.near(0.996013, b, 1e-4)
    assert.near(0.0743, losses[200], 1e-4)
  end)

  it("prints iter, loss and w every 20 steps, then true and estimated w", function()
    assert.equal(200, #losses)
    assert.equal(14, #lines)
    assert.equal("iter 200  loss   0.0743  w tensor([ 2.0103, -2.9416])", lines[10])
    assert.equal("true w tensor([ 2., -3.]), b 1.0000", lines[11])
    assert.equal("est. w tensor([ 2.0103, -2.9416]), b 0.9960", lines[12])
    assert.equal("plot: examples/out/sgd_linear.svg", lines[14])
  end)
end)

describe("examples/digits_mlp.lua", function()
  local lines, accuracy, history
  setup(function()
    -- no progress bar when busted runs in a terminal: the per-epoch lines are printed instead
    local core = require "moongrad.core"
    local isatty = core._isatty
    core._isatty = function() return false end
    local ok, err = pcall(function()
      lines, accuracy, history = run_example("digits_mlp", "digits_loss.svg")
    end)
    core._isatty = isatty
    assert(ok, err)
  end)

  it("classifies at least 96% of the held-out fifth correctly", function()
    -- PyTorch 1.13, the same model and training (its own split and init): 95.8% to 97.8% over
    -- seeds 0..4, final training loss 0.081 to 0.090, validation loss 0.093 to 0.134
    assert.is_true(accuracy >= 0.96, "accuracy " .. accuracy)
    assert.equal(string.format("held-out accuracy: %.2f%% (359 images)", 100 * accuracy), lines[7])
  end)

  it("records 30 epochs of falling training and validation loss", function()
    assert.equal(30, #history.train_loss)
    assert.equal(30, #history.val_loss)
    assert.is_true(history.train_loss[30] < 0.2 * history.train_loss[1])
    assert.is_true(history.val_loss[30] < 0.2 * history.val_loss[1])
    assert.is_true(history.val_loss[30] < 0.2, "final validation loss " .. history.val_loss[30])
    assert.equal("Epoch 5, Training loss", lines[1]:sub(1, 22))
    assert.equal(8, #lines) -- epochs 5, 10, ..., 30, the accuracy and the plot's name
  end)
end)
