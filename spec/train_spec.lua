-- The training helpers: mg.training_loop (the book's loop) and mg.train (the general loop):
-- results, printing, options, and the divergence diagnosis.
local mg = require "moongrad"
local H = require "helper"

local T_C = {0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0}
local T_U = {35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4}

-- fn's results and its printed lines (ok, a, b, lines), or false and the error it raised
local function capture(fn)
  local ok, lines, a, b = pcall(H.run, fn)
  if not ok then return false, lines end
  return true, a, b, lines
end

describe("mg.training_loop()", function()
  local t_c, t_u = mg.tensor(T_C), mg.tensor(T_U)

  it("returns the book's params on normalized inputs and prints nothing by default", function()
    local ok, params, _, lines = capture(function()
      return mg.training_loop{n_epochs = 5000, learning_rate = 1e-2, params = mg.tensor{1.0, 0.0},
        t_u = 0.1 * t_u, t_c = t_c}
    end)
    assert.is_true(ok)
    H.near({5.367084, -17.30119}, params, 1e-4) -- PyTorch 1.13
    assert.same({}, lines)
  end)

  it("prints the book's lines with print_detail", function()
    local _, _, _, lines = capture(function()
      return mg.training_loop{n_epochs = 3, learning_rate = 1e-4, params = mg.tensor{1.0, 0.0},
        t_u = t_u, t_c = t_c, print_detail = true}
    end)
    -- the book (section 5.4.3, lr 1e-4): Epoch 1, Loss 1763.884644 / Params: tensor([ 0.5483, -0.0083]) /
    -- Epoch 2, Loss 323.090546. (PyTorch 1.13 here prints 1763.884766 and 323.090515: its float32 sum
    -- adds in another order; moongrad sums in double and rounds once, and lands on the book's digits.)
    assert.same("Epoch 1, Loss 1763.884644", lines[1])
    assert.same("    Params:\ttensor([ 0.5483, -0.0083])", lines[2])
    assert.same("Epoch 2, Loss 323.090546", lines[4])
  end)

  it("stops at the first non-finite loss with a diagnosis (#5)", function()
    H.errors(function()
      mg.training_loop{n_epochs = 100, learning_rate = 1e-2, params = mg.tensor{1.0, 0.0}, t_u = t_u, t_c = t_c}
    end, "'training_loop': the loss diverged at epoch 11 (inf); last finite loss 9.09011e+34 at epoch 10; "
      .. "the gradient of w is the largest")
  end)

  it("keeps going past the blow-up with allow_divergence", function()
    local ok, params = capture(function()
      return mg.training_loop{n_epochs = 100, learning_rate = 1e-2, params = mg.tensor{1.0, 0.0},
        t_u = t_u, t_c = t_c, allow_divergence = true}
    end)
    assert.is_true(ok)
    assert.is_true(mg.is_tensor(params))
  end)

  it("names an unknown or missing option", function()
    H.errors(function() mg.training_loop{n_epochs = 1, learning_rate = 1, params = mg.tensor{1, 0}, t_u = t_u,
      t_c = t_c, lr = 1} end, "bad argument #1 to 'training_loop' (unknown option 'lr' (valid: ")
    H.errors(function() mg.training_loop{n_epochs = 1, params = mg.tensor{1, 0}, t_u = t_u, t_c = t_c} end,
      "bad argument #1 to 'training_loop' (option 'learning_rate' is required)")
  end)
end)

describe("mg.train()", function()
  local function setup_model(seed)
    mg.manual_seed(seed or 1)
    local model = mg.nn.Linear(1, 1)
    return model, mg.nn.MSELoss(), mg.optim.SGD(model:parameters(), {lr = 1e-2})
  end
  local X = (0.1 * mg.tensor(T_U)):unsqueeze(2)
  local Y = mg.tensor(T_C):unsqueeze(2)

  it("gives the same losses as the same loop written by hand", function()
    local model, loss_fn, opt = setup_model()
    local history = mg.train{model = model, loss_fn = loss_fn, optimizer = opt, data = {X, Y}, epochs = 20,
      log_every = 0}
    local m2, l2, o2 = setup_model()
    local by_hand = {}
    for epoch = 1, 20 do
      o2:zero_grad()
      local loss = l2(m2(X), Y)
      loss:backward()
      o2:step()
      by_hand[epoch] = loss:item()
    end
    assert.same(by_hand, history.train_loss)
    assert.same(m2.weight:totable(), model.weight:totable())
  end)

  it("logs each log_every epochs, calls on_epoch and records the validation loss", function()
    local model, loss_fn, opt = setup_model()
    local seen = {}
    local ok, history, _, lines = capture(function()
      return mg.train{model = model, loss_fn = loss_fn, optimizer = opt, data = {X, Y}, epochs = 4,
        batch_size = 4, val_data = {X, Y}, log_every = 2, progress = false,
        on_epoch = function(epoch, train_loss, val_loss) seen[#seen + 1] = {epoch, train_loss, val_loss} end}
    end)
    assert.is_true(ok)
    assert.equal(2, #lines)
    assert.truthy(lines[1]:match("^Epoch 2, Training loss [%d.]+, Validation loss [%d.]+$"), lines[1])
    assert.equal(4, #history.train_loss)
    assert.equal(4, #history.val_loss)
    assert.same({4, history.train_loss[4], history.val_loss[4]}, seen[4])
  end)

  it("stops at a non-finite loss, naming the epoch and the parameter (#5)", function()
    local model, loss_fn = setup_model()
    local opt = mg.optim.SGD(model:parameters(), {lr = 10})
    local X_raw = mg.tensor(T_U):unsqueeze(2)
    local ok, err = capture(function()
      return mg.train{model = model, loss_fn = loss_fn, optimizer = opt, data = {X_raw, Y}, epochs = 100,
        log_every = 0}
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("'train': the loss diverged at epoch ", 1, true), err)
    assert.truthy(tostring(err):find("learning rate is probably too large", 1, true), err)
  end)

  it("names an unknown option", function()
    local model, loss_fn, opt = setup_model()
    H.errors(function() mg.train{model = model, loss_fn = loss_fn, optimizer = opt, data = {X, Y}, epoch = 3} end,
      "bad argument #1 to 'train' (unknown option 'epoch' (valid: ")
  end)
end)
