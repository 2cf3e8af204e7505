-- Fashion-MNIST (Zalando's 28x28 grey clothing images, 10 classes) classified by the network shape
-- of "Deep Learning with PyTorch" chapter 8: two 3x3 convolutions, each with a ReLU and 2x2 max
-- pooling, then two linear layers; trained with mg.train on the 60000 training images (Adam,
-- mini-batches of 64, a cosine learning-rate schedule), tested on the 10000 test images.
--
--   lua5.4 examples/fashion_cnn.lua [--epochs 12] [--subset N] [--test N] [--threads N] ...
--
-- needs `make` and Debian's dataset-fashion-mnist (scripts/deps.sh installs it). Options (each also
-- read from the environment as FASHION_<NAME>, e.g. FASHION_EPOCHS=2; the command line wins):
--   --epochs N   passes over the training set (12)
--   --subset N   train on the first N training images only (a fast run; the spec uses 2000)
--   --test N     test on the first N test images only (all 10000)
--   --batch N    mini-batch size (64)       --lr X     Adam's initial learning rate (1e-3)
--   --width1 N   channels of the first convolution (32)   --width2 N   of the second (32)
--   --hidden N   width of the hidden linear layer (64)    --seed N     mg.manual_seed (1)
--   --threads N  mg.set_num_threads (moongrad's default otherwise)
--   --out DIR    where the pictures go (examples/out)
-- Prints one line per epoch (training loss, test loss, test accuracy, learning rate, seconds) and
-- the final test accuracy; writes DIR/fashion_loss.svg (loss curves) and DIR/fashion_errors.svg (the
-- first 24 misclassified test images, with their true and predicted class).
-- Returns a table of its numbers (accuracy, history, ...).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "" -- this script's directory
dofile(here .. "paths.lua") -- this clone's moongrad once `make` has built it, else the installed one
local mg = require "moongrad"
local nn, optim = mg.nn, mg.optim

-- ---- options -------------------------------------------------------------------------------------
local DEFAULTS = { epochs = 12, subset = 0, test = 0, batch = 64, lr = 1e-3, width1 = 32, width2 = 32,
  hidden = 64, seed = 1, threads = 0, out = here .. "out" }
local USAGE = "usage: lua5.4 examples/fashion_cnn.lua [--epochs N] [--subset N] [--test N] [--batch N] "
  .. "[--lr X] [--width1 N] [--width2 N] [--hidden N] [--seed N] [--threads N] [--out DIR]"

local AT_LEAST_1 = { epochs = true, batch = true, width1 = true, width2 = true, hidden = true }
local function option_value(key, text, where)
  if key == "out" then return text end
  local v = tonumber(text)
  if key ~= "lr" then v = v and math.tointeger(v) end
  local least = AT_LEAST_1[key] and 1 or 0
  if not v or v < least or (key == "lr" and v == 0) then
    error(string.format("%s: --%s needs a %s, got '%s'\n%s", where, key,
      key == "lr" and "positive number" or "whole number >= " .. least, tostring(text), USAGE), 0)
  end
  return v
end

local opts = {}
for key, default in pairs(DEFAULTS) do
  local env = os.getenv("FASHION_" .. key:upper())
  opts[key] = env and env ~= "" and option_value(key, env, "FASHION_" .. key:upper()) or default
end
do
  local args, i = arg or {}, 1
  while i <= #args do
    local key = args[i]:match("^%-%-([%w]+)$")
    if not key or DEFAULTS[key] == nil then error("unknown option '" .. args[i] .. "'\n" .. USAGE, 0) end
    if args[i + 1] == nil then error("--" .. key .. " needs a value\n" .. USAGE, 0) end
    opts[key] = option_value(key, args[i + 1], "fashion_cnn")
    i = i + 2
  end
end
if opts.threads > 0 then mg.set_num_threads(opts.threads) end
local clock = os.time
do
  local ok, system = pcall(require, "system") -- luasystem (busted's dependency): a wall clock in ms
  if ok then clock = system.gettime or system.monotime end
end
local started, cpu_started = clock(), os.clock()

-- ---- data: images {N, 1, 28, 28} in 0..1, labels 1..10 -------------------------------------------
local X_train, y_train, classes = mg.data.fashion_mnist{ split = "train" }
local X_test, y_test = mg.data.fashion_mnist{ split = "test" }
if opts.subset > 0 and opts.subset < X_train:size(1) then
  X_train, y_train = X_train:narrow(1, 1, opts.subset), y_train:narrow(1, 1, opts.subset)
end
if opts.test > 0 and opts.test < X_test:size(1) then
  X_test, y_test = X_test:narrow(1, 1, opts.test), y_test:narrow(1, 1, opts.test)
end
-- normalized as the book does (chapter 7): minus the training set's mean, over its standard deviation
local mean, std = X_train:mean():item(), X_train:std():item()
local train_in = X_train:sub_(mean):div_(std) -- in place: 188 MB the run need not hold twice
local test_in = (X_test - mean) / std -- a copy: the error grid draws the test images as they are
print(string.format("Fashion-MNIST: %d training images, %d test images; pixel mean %.4f, std %.4f",
  train_in:size(1), X_test:size(1), mean, std))

-- ---- the network: chapter 8's shape, sized for 28x28 grey images ---------------------------------
-- conv 1 -> width1 (28x28), pool -> 14x14, conv width1 -> width2, pool -> 7x7, linear, linear
mg.manual_seed(opts.seed)
local model = nn.Sequential(
  nn.Conv2d(1, opts.width1, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Conv2d(opts.width1, opts.width2, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Flatten(),
  nn.Linear(opts.width2 * 7 * 7, opts.hidden), nn.ReLU(),
  nn.Linear(opts.hidden, 10))
local n_params = 0
for _, p in ipairs(model:parameters()) do n_params = n_params + p:numel() end
print(model)
print(string.format("%d parameters; Adam lr %g, cosine schedule over %d epoch%s, batches of %d, %d thread%s",
  n_params, opts.lr, opts.epochs, opts.epochs == 1 and "" or "s", opts.batch, mg.get_num_threads(),
  mg.get_num_threads() == 1 and "" or "s"))

-- ---- evaluation: loss, predicted classes and their probabilities, 100 images at a time ----------
-- (small pieces: 1000 images at a time make 100-200 MB intermediates, whose fresh pages cost more
-- system time than the whole evaluation's arithmetic: 3.4 s against 2.7 s per pass over 10000)
local function evaluate(X, y)
  return mg.no_grad(function()
    model:eval()
    local loss, predicted, confidence = 0, {}, {}
    for start = 1, X:size(1), 100 do
      local len = math.min(100, X:size(1) - start + 1)
      local logits = model(X:narrow(1, start, len))
      loss = loss + mg.F.cross_entropy(logits, y:narrow(1, start, len)):item() * len
      local p = mg.F.softmax(logits, 2)
      predicted[#predicted + 1], confidence[#confidence + 1] = p:argmax(2), p:max(2)
    end
    model:train()
    local pred = mg.cat(predicted)
    return loss / X:size(1), pred, mg.cat(confidence), pred:eq(y):sum():item()
  end)
end

-- ---- training ---------------------------------------------------------------------------------
local loss_fn = nn.CrossEntropyLoss()
local batch_losses = {} -- every mini-batch's training loss, for the curve
local function recording_loss(logits, target)
  local loss = loss_fn(logits, target)
  batch_losses[#batch_losses + 1] = loss:item()
  return loss
end
local optimizer = optim.Adam(model:parameters(), { lr = opts.lr })
local schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, { T_max = opts.epochs })
local test_loss, test_acc, epoch_secs = {}, {}, {}
local epoch_start = clock()
local history = mg.train{
  model = model,
  loss_fn = recording_loss,
  optimizer = optimizer,
  data = { train_in, y_train },
  batch_size = opts.batch,
  shuffle = true,
  epochs = opts.epochs,
  log_every = 0, -- the line below, with the test accuracy, instead of mg.train's summary
  on_epoch = function(epoch, train_loss)
    local lr = optimizer.lr
    schedule:step()
    local loss, _, _, correct = evaluate(test_in, y_test)
    test_loss[epoch], test_acc[epoch] = loss, correct / X_test:size(1)
    epoch_secs[epoch] = clock() - epoch_start
    -- (on a terminal, mg.train has cleared its progress line before calling on_epoch)
    print(string.format(
      "Epoch %d/%d, Training loss %.4f, Test loss %.4f, Test accuracy %.2f%%, lr %.2e, %.1f s",
      epoch, opts.epochs, train_loss, loss, 100 * test_acc[epoch], lr, epoch_secs[epoch]))
    io.flush()
    epoch_start = clock()
  end,
}
local train_secs = 0
for _, s in ipairs(epoch_secs) do train_secs = train_secs + s end

-- ---- final test accuracy ----------------------------------------------------------------------
local final_loss, predicted, confidence, correct = evaluate(test_in, y_test)
local n_test = X_test:size(1)
local accuracy = correct / n_test
print(string.format("Test accuracy: %.2f%% (%d of %d test images), test loss %.4f", 100 * accuracy, correct,
  n_test, final_loss))

-- the class pairs confused most often
local pred_list, true_list, conf_list = predicted:totable(), y_test:totable(), confidence:totable()
local confusion, wrong = {}, {}
for i = 1, n_test do
  if pred_list[i] ~= true_list[i] then
    local key = true_list[i] * 100 + pred_list[i]
    confusion[key] = (confusion[key] or 0) + 1
    wrong[#wrong + 1] = i
  end
end
local pairs_list = {}
for key, count in pairs(confusion) do pairs_list[#pairs_list + 1] = { key // 100, key % 100, count } end
table.sort(pairs_list, function(a, b) return a[3] > b[3] or a[3] == b[3] and a[1] * 100 + a[2] < b[1] * 100 + b[2] end)
local most = {}
for k = 1, math.min(3, #pairs_list) do
  local p = pairs_list[k]
  most[k] = string.format("%s taken for %s %d times", classes[p[1]], classes[p[2]], p[3])
end
if #most > 0 then print("Most confused: " .. table.concat(most, "; ")) end

-- ---- pictures ---------------------------------------------------------------------------------
os.execute('mkdir -p "' .. opts.out .. '"')
local loss_path, errors_path = opts.out .. "/fashion_loss.svg", opts.out .. "/fashion_errors.svg"

-- loss curves: the training loss of the batches (a running mean over 100 batches, drawn every 10th
-- batch), the training loss of each epoch, the test loss after each epoch
local per_epoch = #batch_losses / math.max(#history.train_loss, 1)
local xs, smooth, sum = {}, {}, 0
for i, v in ipairs(batch_losses) do
  sum = sum + v - (batch_losses[i - 100] or 0)
  if i % 10 == 0 or i == 1 or i == #batch_losses then
    xs[#xs + 1], smooth[#smooth + 1] = i / per_epoch, sum / math.min(i, 100)
  end
end
local epochs_x = {}
for e = 1, #test_loss do epochs_x[e] = e end
local fig = mg.plot.figure{ title = string.format("Fashion-MNIST CNN: cross-entropy loss (test accuracy %.2f%%)",
  100 * accuracy), xlabel = "epoch", ylabel = "loss", logy = true, width = 720, height = 420 }
fig:line(xs, smooth, { label = "training (running mean of 100 batches)", width = 1.5 })
fig:line(epochs_x, history.train_loss, { label = "training, epoch mean", dash = "dashed" })
fig:line(epochs_x, test_loss, { label = "test", color = "#2ca02c" })
fig:scatter(epochs_x, test_loss, { color = "#2ca02c" })
fig:save(loss_path)

-- misclassified test images as an SVG grid: the first 24 in the test set (a fair sample of the
-- mistakes, with the probability the network gave its wrong answer). Each is a framed <g> in pixel
-- units with one <path> per grey (16 greys, white left out) made of the runs of that grey along the
-- pixel rows.
local function errors_svg(path, cols, rows)
  local count = math.min(cols * rows, #wrong)
  local scale, cell_w, cell_h, top = 3, 28 * 3 + 36, 28 * 3 + 40, 34
  local out = { string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
    .. 'viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="10">',
    cols * cell_w + 12, rows * cell_h + top, cols * cell_w + 12, rows * cell_h + top) }
  out[#out + 1] = '<rect width="100%" height="100%" fill="white"/>'
  out[#out + 1] = string.format('<text x="10" y="20" font-size="14">%d of the %d misclassified test images '
    .. '(the first ones): true class, <tspan fill="#d62728">predicted class (probability)</tspan></text>',
    count, #wrong)
  for k = 1, count do
    local i = wrong[k]
    local img = X_test[i][1]:totable()
    local ox, oy = ((k - 1) % cols) * cell_w + 12, ((k - 1) // cols) * cell_h + top
    out[#out + 1] = string.format('<g transform="translate(%d,%d)"><rect width="%d" height="%d" fill="white" '
      .. 'stroke="#bbb"/><g transform="scale(%d)" shape-rendering="crispEdges">', ox, oy, 28 * scale, 28 * scale, scale)
    local runs = {} -- runs[level]: the path data of that grey's runs ("M x y h w v1 h-w z" each)
    for r = 1, 28 do
      local row, c = img[r], 1
      while c <= 28 do
        local level = math.floor(row[c] * 15 + 0.5)
        local stop = c
        while stop < 28 and math.floor(row[stop + 1] * 15 + 0.5) == level do stop = stop + 1 end
        if level > 0 then
          local list = runs[level] or {}
          runs[level] = list
          list[#list + 1] = string.format("M%d %dh%dv1h-%dz", c - 1, r - 1, stop - c + 1, stop - c + 1)
        end
        c = stop + 1
      end
    end
    for level = 1, 15 do -- ink on paper: pixel value 1 (level 15) is #000, level 1 #eee
      if runs[level] then
        local hex = string.format("%x", 15 - level)
        out[#out + 1] = string.format('<path fill="#%s%s%s" d="%s"/>', hex, hex, hex, table.concat(runs[level]))
      end
    end
    out[#out + 1] = "</g>"
    out[#out + 1] = string.format('<text x="0" y="%d">%s</text>'
      .. '<text x="0" y="%d" fill="#d62728">%s (%.0f%%)</text></g>',
      28 * scale + 13, mg.plot.escape(classes[true_list[i]]), 28 * scale + 26,
      mg.plot.escape(classes[pred_list[i]]), 100 * conf_list[i])
  end
  out[#out + 1] = "</svg>\n"
  local f = assert(io.open(path, "w"))
  f:write(table.concat(out, "\n"))
  f:close()
  return count
end
local shown = errors_svg(errors_path, 8, 3)
local total_secs = clock() - started
print(string.format("Pictures: %s, %s (%d misclassified images)", loss_path, errors_path, shown))
print(string.format("Time: %.1f s training and testing (%d epoch%s), %.1f s in all, %.1f s of CPU", train_secs,
  #history.train_loss, #history.train_loss == 1 and "" or "s", total_secs, os.clock() - cpu_started))

return { accuracy = accuracy, correct = correct, n_test = n_test, test_loss = test_loss, test_acc = test_acc,
  history = history, epoch_secs = epoch_secs, seconds = total_secs, cpu_seconds = os.clock() - cpu_started,
  shown = shown, wrong = #wrong, mean = mean, std = std }
