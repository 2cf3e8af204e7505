-- examples/digits_cnn.lua (issue 13: BatchNorm2d + Dropout + CosineAnnealingLR + early stopping
-- together) runs as written, and each piece is seen doing its job in what it returns and prints.
local H = require "helper"

local function run_quiet(path)
  -- no progress bar when busted runs in a terminal: the per-epoch lines are printed instead
  local core = require "moongrad.core"
  local isatty = core._isatty
  core._isatty = function() return false end
  local results = table.pack(pcall(H.run, assert(loadfile(path))))
  core._isatty = isatty
  assert(results[1], results[2])
  return table.unpack(results, 2, results.n)
end

describe("examples/digits_cnn.lua", function()
  local lines, accuracy, history, best, lrs, model
  setup(function()
    os.remove("examples/out/digits_cnn_loss.svg")
    lines, accuracy, history, best, lrs, model = run_quiet("examples/digits_cnn.lua")
  end)

  it("classifies at least 97% of the held-out fifth with the best epoch's weights", function()
    assert.is_true(accuracy >= 0.97, "accuracy " .. accuracy)
    assert.equal(string.format("held-out accuracy: %.2f%% (359 images), weights of epoch %d", 100 * accuracy,
      best.epoch), lines[#lines - 1])
    assert.truthy(H.read_file("examples/out/digits_cnn_loss.svg"):find("</svg>", 1, true))
  end)

  it("stops early, PATIENCE (4) epochs after the best validation loss, and says so", function()
    local stop = history.stopped_epoch
    assert.is_number(stop)
    assert.is_true(stop < 40, "ran all 40 epochs")
    assert.equal(stop, #history.train_loss)
    assert.equal(best.epoch + 4, stop)
    local min_epoch = 1
    for e = 1, stop do
      if history.val_loss[e] < history.val_loss[min_epoch] then min_epoch = e end
    end
    assert.equal(min_epoch, best.epoch)
    assert.equal(history.val_loss[best.epoch], best.loss)
    local said
    for _, l in ipairs(lines) do
      if l:find("^early stop at epoch") then said = l end
    end
    assert.equal(string.format("early stop at epoch %d: no better validation loss for 4 epochs (best %.4f at epoch %d)",
      stop, best.loss, best.epoch), said)
  end)

  it("follows CosineAnnealingLR: lr at epoch e is 0.01 (1 + cos(pi (e - 1) / 40)) / 2", function()
    for e = 1, history.stopped_epoch do
      assert.near(0.01 * (1 + math.cos(math.pi * (e - 1) / 40)) / 2, lrs[e], 1e-12)
    end
  end)

  it("restores the best epoch's BatchNorm statistics and evaluates with them (eval mode, no dropout)", function()
    local sd = model:state_dict()
    -- 1438 training images in batches of 32: 45 batches an epoch, each a training forward pass
    assert.equal(45 * best.epoch, sd["1.num_batches_tracked"]:item())
    assert.equal(45 * best.epoch, sd["5.num_batches_tracked"]:item())
    assert.is_true(sd["1.running_var"]:min():item() > 0)
    assert.is_false(model.training)
    local mg = require "moongrad"
    local x = mg.rand(5, 1, 8, 8)
    local a, b = mg.no_grad(function() return model(x), model(x) end)
    assert.is_true(mg.equal(a, b)) -- no dropout, and the running statistics, not the batch's
  end)
end)
