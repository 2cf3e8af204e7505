-- examples/fashion_cnn.lua (chapter 8's convolutional network on Fashion-MNIST) run as written on a
-- subset: the first 2000 training images, the first 1000 test images, 2 epochs, pictures written to a
-- scratch directory. Checks the printed lines, the returned numbers (an accuracy far above chance,
-- ~10 %, for so little training) and both SVG files. Pending only when Debian's
-- dataset-fashion-mnist is not installed (scripts/deps.sh and .ci/run install it).
-- The full run (60000 images, 12 epochs) reaches 91-92 %: README, docs/examples.md.
-- #slow: about 15 s of CPU (`make asan` leaves it out).
local H = require "helper"
local mg = require "moongrad"

local DATA = mg.data.FASHION_MNIST_DIR
local FILES = { "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
  "t10k-labels-idx1-ubyte" }

local function dataset_installed()
  for _, base in ipairs(FILES) do
    local f = io.open(DATA .. "/" .. base .. ".gz", "rb") or io.open(DATA .. "/" .. base, "rb")
    if not f then return false end
    f:close()
  end
  return true
end

-- Runs the example with these command-line arguments (print captured): the printed lines and its result.
local function run_example(args)
  local old = _G.arg
  _G.arg = args
  local ok, lines, result = pcall(H.run, assert(loadfile("examples/fashion_cnn.lua")))
  _G.arg = old
  assert(ok, lines)
  return lines, result
end

-- Every tag opened is closed in order (a minimal XML well-formedness check: no stray '<' or '&',
-- quoted attributes); returns the count of each element name.
local function check_xml(text)
  local stack, counts, pos = {}, {}, 1
  local decl = text:match("^<%?xml [^>]*%?>%s*") -- an XML declaration may come first
  if decl then pos = #decl + 1 end
  assert.equal("<svg ", text:sub(pos, pos + 4), "<svg first")
  while true do
    local s, e, close, name, attrs, selfclose = text:find("<(/?)([%a_][%w_:%-]*)(.-)(/?)>", pos)
    if not s then break end
    local between = text:sub(pos, s - 1)
    assert.falsy(between:find("<", 1, true), "stray '<' before position " .. s)
    assert.falsy(between:gsub("&[%a#][%w]*;", ""):find("&", 1, true), "stray '&'")
    if close == "/" then
      assert.equal(table.remove(stack), name, "closing </" .. name .. "> at " .. s)
    else
      -- attributes: name="value" pairs only
      local rest = attrs:gsub('%s+[%a_:][%w_:%-]*="[^"<]*"', "")
      assert.truthy(rest:match("^%s*$"), "attributes of <" .. name .. ">: " .. attrs)
      counts[name] = (counts[name] or 0) + 1
      if selfclose == "" then stack[#stack + 1] = name end
    end
    pos = e + 1
  end
  assert.equal(0, #stack, "unclosed: " .. table.concat(stack, ", "))
  assert.truthy(text:sub(pos):match("^%s*$"), "nothing after </svg>")
  return counts
end

local describe_data = dataset_installed() and describe or function(name)
  pending(name .. ": Debian's dataset-fashion-mnist is not installed (no " .. DATA .. "/train-images-idx3-ubyte.gz): "
    .. "apt-get install dataset-fashion-mnist, or run scripts/deps.sh as root")
end

describe("examples/fashion_cnn.lua's options", function()
  it("names a bad option and prints the usage before loading anything", function()
    for _, case in ipairs({
      { { "--epoch", "2" }, "unknown option '--epoch'\nusage: lua5.4 examples/fashion_cnn.lua [--epochs N]" },
      { { "--epochs", "two" }, "fashion_cnn: --epochs needs a whole number >= 1, got 'two'\nusage: " },
      { { "--epochs", "0" }, "fashion_cnn: --epochs needs a whole number >= 1, got '0'\nusage: " },
      { { "--subset", "1.5" }, "fashion_cnn: --subset needs a whole number >= 0, got '1.5'\nusage: " },
      { { "--lr", "0" }, "fashion_cnn: --lr needs a positive number, got '0'\nusage: " },
      { { "--epochs" }, "--epochs needs a value\nusage: " },
    }) do
      local old = _G.arg
      _G.arg = case[1]
      local ok, err = pcall(assert(loadfile("examples/fashion_cnn.lua"))) -- fails before printing anything
      _G.arg = old
      assert.is_false(ok)
      assert.equal(case[2], err:sub(1, #case[2]))
    end
  end)
end)

describe_data("examples/fashion_cnn.lua on 2000 training and 1000 test images, 2 epochs #slow", function()
  local out = os.tmpname()
  local lines, result, seconds
  setup(function()
    os.remove(out)
    local t0 = os.clock()
    lines, result = run_example({ "--subset", "2000", "--test", "1000", "--epochs", "2", "--out", out })
    seconds = os.clock() - t0
  end)
  teardown(function()
    os.remove(out .. "/fashion_loss.svg")
    os.remove(out .. "/fashion_errors.svg")
    os.remove(out)
  end)

  it("normalizes with the subset's mean and standard deviation", function()
    -- torchvision: FashionMNIST(train=True).data[:2000].float().div(255): mean 0.28393, std 0.35351
    assert.equal("Fashion-MNIST: 2000 training images, 1000 test images; pixel mean 0.2839, std 0.3535", lines[1])
    assert.near(0.283935, result.mean, 2e-5)
    assert.near(0.353508, result.std, 2e-5)
  end)

  it("prints the network: two 3x3 convolutions with ReLU and 2x2 max pooling, then two linear layers", function()
    local text = table.concat(lines, "\n")
    for _, layer in ipairs({
      "(1): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))",
      "(3): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
      "(4): Conv2d(32, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))",
      "(8): Linear(in_features=1568, out_features=64, bias=True)",
      "(10): Linear(in_features=64, out_features=10, bias=True)",
    }) do
      assert.truthy(text:find(layer, 1, true), layer)
    end
    -- 32*9+32 + 32*32*9+32 + 1568*64+64 + 64*10+10
    assert.truthy(text:find("\n110634 parameters; Adam lr 0.001, cosine schedule over 2 epochs, batches of 64", 1, true))
  end)

  it("prints one line per epoch: losses falling, test accuracy rising, the cosine learning rate", function()
    local epochs = {}
    for _, line in ipairs(lines) do
      local e, n, tr, te, acc, lr, s = line:match("^Epoch (%d+)/(%d+), Training loss (%d+%.%d%d%d%d), "
        .. "Test loss (%d+%.%d%d%d%d), Test accuracy (%d+%.%d%d)%%, lr (%d%.%d%de%-%d%d), (%d+%.%d) s$")
      if e then
        assert.equal("2", n)
        epochs[#epochs + 1] = { e = tonumber(e), train = tonumber(tr), test = tonumber(te), acc = tonumber(acc),
          lr = lr, s = tonumber(s) }
      else
        assert.falsy(line:find("Epoch", 1, true), line)
      end
    end
    assert.equal(2, #epochs)
    assert.same({ 1, 2 }, { epochs[1].e, epochs[2].e })
    assert.same({ "1.00e-03", "5.00e-04" }, { epochs[1].lr, epochs[2].lr }) -- lr at the epoch's start
    assert.is_true(epochs[2].train < epochs[1].train and epochs[1].train < 2.3026, "training loss")
    assert.is_true(epochs[2].test < epochs[1].test, "test loss")
    assert.is_true(epochs[2].acc > epochs[1].acc, "test accuracy")
    -- the numbers the example returns are the printed ones
    assert.near(result.test_loss[2], epochs[2].test, 5e-5)
    assert.near(100 * result.test_acc[2], epochs[2].acc, 5e-3)
    assert.near(result.history.train_loss[1], epochs[1].train, 5e-5)
  end)

  it("reaches well above chance: > 72 % test accuracy (76.2 % when written; chance is 10 %)", function()
    assert.is_true(result.accuracy > 0.72, "test accuracy " .. result.accuracy)
    assert.equal(1000, result.n_test)
    assert.equal(result.correct / 1000, result.accuracy)
    assert.equal(result.test_acc[2], result.accuracy) -- the last epoch's model is the final one
    local final = string.format("Test accuracy: %.2f%% (%d of 1000 test images), test loss %.4f",
      100 * result.accuracy, result.correct, result.test_loss[2])
    local found = false
    for _, line in ipairs(lines) do found = found or line == final end
    assert.is_true(found, final)
  end)

  it("names the class pairs confused most often", function()
    local text = table.concat(lines, "\n")
    local a, b, n = text:match("\nMost confused: ([%a /%-]+) taken for ([%a /%-]+) (%d+) times;")
    assert.truthy(a, "a 'Most confused:' line")
    assert.not_equal(a, b)
    assert.is_true(tonumber(n) >= 1 and tonumber(n) <= 1000 - result.correct)
  end)

  it("writes the loss curves: training per batch and per epoch, test per epoch", function()
    local text = H.read_file(out .. "/fashion_loss.svg")
    local counts = check_xml(text)
    assert.truthy(text:find("training (running mean of 100 batches)", 1, true))
    assert.truthy(text:find("training, epoch mean", 1, true))
    assert.truthy(text:find(">test<", 1, true))
    assert.truthy(text:find(string.format("test accuracy %.2f%%", 100 * result.accuracy), 1, true))
    assert.equal(2, counts.circle) -- the 2 test losses
    assert.is_true(counts.path >= 3, "3 lines")
  end)

  it("writes a grid of 24 misclassified test images, each with its true and predicted class", function()
    local text = H.read_file(out .. "/fashion_errors.svg")
    local counts = check_xml(text)
    local wrong = 1000 - result.correct
    assert.equal(wrong, result.wrong)
    assert.equal(24, result.shown)
    assert.truthy(text:find(string.format(">24 of the %d misclassified test images (the first ones)", wrong), 1, true))
    -- a white page, then per image: a frame, a group of pixel paths, two captions
    assert.equal(1 + 24, counts.rect)
    assert.equal(2 * 24, counts.g)
    assert.equal(1 + 2 * 24, counts.text)
    assert.is_true(counts.path >= 24 and counts.path <= 15 * 24, counts.path .. " paths")
    -- captions: a class name, then another one with the probability (the largest of 10: >= 10 %)
    local classes = {}
    for _, c in ipairs(mg.data.FASHION_MNIST_CLASSES) do classes[c] = true end
    local shown = 0
    for truth, guess, p in text:gmatch('<text x="0" y="%d+">([^<]+)</text><text x="0" y="%d+" fill="#d62728">'
        .. '([^<]+) %((%d+)%%%)</text>') do
      shown = shown + 1
      assert.is_true(classes[truth], truth)
      assert.is_true(classes[guess], guess)
      assert.not_equal(truth, guess)
      p = tonumber(p)
      assert.is_true(p >= 10 and p <= 100, "probability " .. p)
    end
    assert.equal(24, shown)
    -- each pixel path is runs of whole pixels inside the 28x28 image
    for d in text:gmatch(' d="([^"]+)"') do
      for x, y, w, w2 in d:gmatch("M(%d+) (%d+)h(%d+)v1h%-(%d+)z") do
        x, y, w = tonumber(x), tonumber(y), tonumber(w)
        assert.is_true(x >= 0 and y >= 0 and y < 28 and w >= 1 and x + w <= 28 and w == tonumber(w2))
      end
      assert.equal("", (d:gsub("M%d+ %d+h%d+v1h%-%d+z", "")))
    end
    assert.is_true(#text < 200000, #text .. " bytes")
  end)

  it("runs in well under a minute of CPU", function()
    assert.is_true(seconds < 60, seconds .. " s")
    assert.is_true(result.cpu_seconds <= seconds + 0.5)
  end)
end)
