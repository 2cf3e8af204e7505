-- The UCI digits (8x8 images, data/digits.csv) through a small convnet that uses the pieces of
-- chapters 7-8 together: Conv2d, BatchNorm2d (batch statistics while training, running ones in
-- eval), Dropout, a CosineAnnealingLR schedule, and early stopping on the validation loss with
-- mg.train's on_epoch (returning false stops training; the best weights are put back).
--   lua5.4 examples/digits_cnn.lua   (after `make`; from any directory; plot: examples/out/digits_cnn_loss.svg)
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "" -- this script's directory
dofile(here .. "paths.lua") -- this clone's moongrad once `make` has built it, else the installed one
local mg = require "moongrad"
local nn, optim = mg.nn, mg.optim

local data = mg.data.read_csv(here .. "../data/digits.csv") -- 1797 x 65: 64 pixels, digit
local X = (data:narrow(2, 1, 64) / 16):view(-1, 1, 8, 8)    -- images {N, 1, 8, 8}, pixels 0..1
local y = data:select(2, 65):to("int64") + 1                -- digit 0..9 -> class 1..10

mg.manual_seed(0)
local parts = mg.data.random_split(X:size(1), {0.8, 0.2})
local X_train, y_train = X:index_select(1, parts[1]), y:index_select(1, parts[1])
local X_val, y_val = X:index_select(1, parts[2]), y:index_select(1, parts[2])

local model = nn.Sequential(
  nn.Conv2d(1, 16, 3, {padding = 1}), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), -- {16, 4, 4}
  nn.Conv2d(16, 32, 3, {padding = 1}), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2), -- {32, 2, 2}
  nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 2 * 2, 10))

local MAX_EPOCHS, PATIENCE = 40, 4
local opt = optim.Adam(model:parameters(), {lr = 1e-2})
local schedule = optim.lr_scheduler.CosineAnnealingLR(opt, {T_max = MAX_EPOCHS})
local best = {loss = math.huge, epoch = 0}
local lrs = {}

local history = mg.train{
  model = model,
  loss_fn = nn.CrossEntropyLoss(),
  optimizer = opt,
  data = {X_train, y_train},
  val_data = {X_val, y_val}, -- evaluated in eval mode: BatchNorm's running statistics, no dropout
  batch_size = 32,
  shuffle = true,
  epochs = MAX_EPOCHS,
  log_every = 5,
  on_epoch = function(epoch, _, val_loss)
    lrs[epoch] = opt.param_groups[1].lr
    schedule:step()
    if val_loss < best.loss then -- keep the best weights so far (a copy: training changes them)
      best = {loss = val_loss, epoch = epoch, state = {}}
      for k, v in pairs(model:state_dict()) do best.state[k] = v:clone() end
    elseif epoch - best.epoch >= PATIENCE then
      print(string.format("early stop at epoch %d: no better validation loss for %d epochs (best %.4f at epoch %d)",
        epoch, PATIENCE, best.loss, best.epoch))
      return false
    end
  end,
}
model:load_state_dict(best.state)
model:eval()

local predicted = mg.no_grad(function() return model(X_val):argmax(2) end)
local accuracy = predicted:eq(y_val):float():mean():item()
print(string.format("held-out accuracy: %.2f%% (%d images), weights of epoch %d", 100 * accuracy, y_val:size(1),
  best.epoch))

os.execute('mkdir -p "' .. here .. 'out"')
mg.plot.loss_curve(history, here .. "out/digits_cnn_loss.svg", {title = "Digits convnet: cross-entropy loss"})
print("plot: " .. here .. "out/digits_cnn_loss.svg")

return accuracy, history, best, lrs, model
