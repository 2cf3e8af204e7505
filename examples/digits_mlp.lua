-- Handwritten digits (UCI, 8x8 images, data/digits.csv) classified by a small MLP trained with
-- mg.train: Adam, mini-batches of 32 reshuffled every epoch, a held-out fifth for validation.
--   lua5.4 examples/digits_mlp.lua   (after `make`; from any directory; plot: examples/out/digits_loss.svg)
-- A progress bar replaces the per-epoch lines when stdout is a terminal.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "" -- this script's directory
dofile(here .. "paths.lua") -- this clone's moongrad once `make` has built it, else the installed one
local mg = require "moongrad"
local nn, optim = mg.nn, mg.optim

local data = mg.data.read_csv(here .. "../data/digits.csv") -- 1797 x 65: pixel_0_0 .. pixel_7_7, digit
local X = data:narrow(2, 1, 64) / 16             -- pixels 0..16 -> 0..1
local y = data:select(2, 65):to("int64") + 1     -- digit 0..9 -> class 1..10

mg.manual_seed(0)
local parts = mg.data.random_split(X:size(1), {0.8, 0.2}) -- two lists of row indices
local X_train, y_train = X:index_select(1, parts[1]), y:index_select(1, parts[1])
local X_val, y_val = X:index_select(1, parts[2]), y:index_select(1, parts[2])

local model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
local history = mg.train{
  model = model,
  loss_fn = nn.CrossEntropyLoss(),
  optimizer = optim.Adam(model:parameters(), {lr = 1e-3}),
  data = {X_train, y_train},
  val_data = {X_val, y_val},
  batch_size = 32,
  shuffle = true,
  epochs = 30,
  log_every = 5,
}

-- Accuracy on the held-out fifth: the class with the largest logit against the label.
local predicted = mg.no_grad(function() return model(X_val):argmax(2) end)
local accuracy = predicted:eq(y_val):float():mean():item()
print(string.format("held-out accuracy: %.2f%% (%d images)", 100 * accuracy, y_val:size(1)))

os.execute('mkdir -p "' .. here .. 'out"')
mg.plot.loss_curve(history, here .. "out/digits_loss.svg", {title = "Digits MLP: cross-entropy loss"})
print("plot: " .. here .. "out/digits_loss.svg")

return accuracy, history
