-- Fashion-MNIST (Zalando's 28x28 grey clothing images, 10 classes) classified by the network shape
-- of "Deep Learning with PyTorch" chapter 8: two 3x3 convolutions, each with an activation and 2x2
-- max pooling, then two linear layers, trained with mg.train (Adam, mini-batches of 64, early
-- stopping on a held-out part of the training set).
--   lua5.4 examples/fashion_cnn.lua [--epochs N] [--train N] [--threads N]
-- (after `make`, with Debian's dataset-fashion-mnist installed: scripts/deps.sh installs it as root).
-- --train N trains on the first N training images (the spec uses a subset to stay fast).
-- Writes examples/out/fashion_loss.svg (loss curves) and examples/out/fashion_errors.svg (a grid of
-- misclassified test images, each with its true and predicted class).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "" -- this script's directory
dofile(here .. "paths.lua") -- this clone's moongrad once `make` has built it, else the installed one
local mg = require "moongrad"
local nn, optim = mg.nn, mg.optim

-- ---- options ------------------------------------------------------------------------------------
local opts = { epochs = 15, train = 60000, threads = nil, val = 5000 }
do
  local args = arg or {}
  local i = 1
  while i <= #args do
    local key = args[i]:match("^%-%-(%w+)$")
    if not key or opts[key] == nil and key ~= "threads" then
      error("usage: lua5.4 examples/fashion_cnn.lua [--epochs N] [--train N] [--threads N]")
    end
    opts[key] = math.tointeger(tonumber(args[i + 1])) or error("--" .. key .. " needs a whole number")
    i = i + 2
  end
end
if opts.threads then mg.set_num_threads(opts.threads) end

-- ---- data: images {N, 1, 28, 28} in 0..1, labels 1..10 ---------------------------------------
local X, y, classes = mg.data.fashion_mnist{ split = "train" }
local X_test, y_test = mg.data.fashion_mnist{ split = "test" }
local n = math.min(opts.train, X:size(1))
local n_val = math.min(opts.val, n // 10)
mg.manual_seed(0)
local order = mg.randperm(X:size(1)):narrow(1, 1, n)
local val_idx, train_idx = order:narrow(1, 1, n_val), order:narrow(1, n_val + 1, n - n_val)
local X_train, y_train = X:index_select(1, train_idx), y:index_select(1, train_idx)
local X_val, y_val = X:index_select(1, val_idx), y:index_select(1, val_idx)

-- ---- the network: chapter 8's shape, sized for 28x28 grey images --------------------------------
-- conv 1 -> 16 (28x28), pool -> 14x14, conv 16 -> 32, pool -> 7x7, 32 * 7 * 7 -> 64 -> 10
local model = nn.Sequential(
  nn.Conv2d(1, 16, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Conv2d(16, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Flatten(),
  nn.Linear(32 * 7 * 7, 64), nn.ReLU(),
  nn.Linear(64, 10))
print(model)

-- ---- training with early stopping on the validation loss ---------------------------------------
local best, best_epoch, best_state, patience = math.huge, 0, nil, 3
local history = mg.train{
  model = model,
  loss_fn = nn.CrossEntropyLoss(),
  optimizer = optim.Adam(model:parameters(), { lr = 1e-3 }),
  data = { X_train, y_train },
  val_data = { X_val, y_val },
  batch_size = 64,
  shuffle = true,
  epochs = opts.epochs,
  on_epoch = function(epoch, _, val_loss)
    if val_loss < best then
      best, best_epoch, best_state = val_loss, epoch, {}
      for k, v in pairs(model:state_dict()) do best_state[k] = v:clone() end
    elseif epoch - best_epoch >= patience then
      print(string.format("no improvement for %d epochs: stopping, back to epoch %d", patience, best_epoch))
      return false
    end
  end,
}
model:load_state_dict(best_state)

-- ---- test accuracy, in batches (a forward over 10000 images at once would hold ~0.5 GB) ---------
local predicted = mg.no_grad(function()
  model:eval()
  local parts = {}
  for start = 1, X_test:size(1), 1000 do
    local len = math.min(1000, X_test:size(1) - start + 1)
    parts[#parts + 1] = model(X_test:narrow(1, start, len)):argmax(2)
  end
  return mg.cat(parts)
end)
local correct = predicted:eq(y_test)
local accuracy = correct:float():mean():item()
print(string.format("test accuracy: %.2f%% (%d images; best epoch %d of %d)", 100 * accuracy, y_test:size(1),
  best_epoch, #history.train_loss))

-- ---- pictures ----------------------------------------------------------------------------------
os.execute('mkdir -p "' .. here .. 'out"')
mg.plot.loss_curve(history, here .. "out/fashion_loss.svg", { title = "Fashion-MNIST CNN: cross-entropy loss" })

-- misclassified test images as an SVG grid: each pixel row drawn as runs of one grey (16 levels)
local function errors_svg(path, cols, rows)
  local idx = predicted:ne(y_test):nonzero():view(-1)
  local count = math.min(cols * rows, idx:size(1))
  local scale, cell_w, cell_h = 3, 28 * 3 + 16, 28 * 3 + 34
  local out = { string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
    .. 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="9" shape-rendering="crispEdges">',
    cols * cell_w, rows * cell_h + 24) }
  out[#out + 1] = string.format('<rect width="100%%" height="100%%" fill="white"/><text x="8" y="16" '
    .. 'font-size="13">Misclassified test images (%d of %d): true / predicted</text>', count, idx:size(1))
  for k = 1, count do
    local i = idx[k]
    local img = X_test[i][1]:totable()
    local ox, oy = ((k - 1) % cols) * cell_w + 8, ((k - 1) // cols) * cell_h + 28
    out[#out + 1] = string.format('<g transform="translate(%d,%d)">', ox, oy)
    for r = 1, 28 do
      local c = 1
      while c <= 28 do
        local level = math.floor(img[r][c] * 15 + 0.5)
        local stop = c
        while stop < 28 and math.floor(img[r][stop + 1] * 15 + 0.5) == level do stop = stop + 1 end
        local grey = 255 - level * 17 -- ink dark on white (white runs are the background)
        if level > 0 then out[#out + 1] = string.format(
          '<rect x="%d" y="%d" width="%d" height="%d" fill="rgb(%d,%d,%d)"/>',
          (c - 1) * scale, (r - 1) * scale, (stop - c + 1) * scale, scale, grey, grey, grey) end
        c = stop + 1
      end
    end
    out[#out + 1] = string.format('<text x="0" y="%d">%s</text><text x="0" y="%d" fill="#d62728">%s</text></g>',
      28 * scale + 11, mg.plot.escape(classes[y_test[i]]), 28 * scale + 22,
      mg.plot.escape(classes[predicted[i]]))
  end
  out[#out + 1] = "</svg>\n"
  local f = assert(io.open(path, "w"))
  f:write(table.concat(out, "\n"))
  f:close()
end
errors_svg(here .. "out/fashion_errors.svg", 8, 5)
print("plots: " .. here .. "out/fashion_loss.svg, " .. here .. "out/fashion_errors.svg")

return accuracy, history
