-- mg.train: on_epoch returning false stops training (early stopping on a validation metric); the
-- progress line fits the terminal's width (COLUMNS, else `tput cols`, else 80) and never wraps, and
-- each epoch leaves one summary line with the validation loss, as printed logs do.
local mg = require "moongrad"
local H = require "helper"

local function problem()
  mg.manual_seed(0)
  local X = mg.randn(64, 3)
  local y = X:sum(2, true) + 0.1 * mg.randn(64, 1)
  local model = mg.nn.Linear(3, 1)
  return X, y, model, mg.optim.SGD(model:parameters(), { lr = 0.05 })
end

describe("mg.train's on_epoch", function()
  it("stops training when it returns false, after that epoch", function()
    local X, y, model, opt = problem()
    local calls = {}
    local lines, h = H.run(function()
      return mg.train{ model = model, loss_fn = mg.nn.MSELoss(), optimizer = opt, data = { X, y },
        val_data = { X, y }, epochs = 20, batch_size = 16, progress = false,
        on_epoch = function(epoch, train_loss, val_loss)
          calls[#calls + 1] = { epoch, type(train_loss), type(val_loss) }
          if epoch == 3 then return false end
        end }
    end)
    assert.same({ { 1, "number", "number" }, { 2, "number", "number" }, { 3, "number", "number" } }, calls)
    assert.equal(3, #h.train_loss)
    assert.equal(3, #h.val_loss)
    assert.equal(3, h.stopped_epoch)
    assert.equal(3, #lines)
    assert.truthy(lines[3]:match("^Epoch 3, Training loss %d%.%d+, Validation loss %d%.%d+$"), lines[3])
  end)

  it("keeps going when it returns nil or true; the stopped epoch is logged even between log_every", function()
    local X, y, model, opt = problem()
    local lines, h = H.run(function()
      return mg.train{ model = model, loss_fn = mg.nn.MSELoss(), optimizer = opt, data = { X, y }, epochs = 5,
        progress = false, log_every = 2, on_epoch = function(epoch) return epoch % 2 == 0 or nil end }
    end)
    assert.equal(5, #h.train_loss)
    assert.is_nil(h.stopped_epoch)
    assert.same({ "Epoch 2,", "Epoch 4,", "Epoch 5," }, { lines[1]:sub(1, 8), lines[2]:sub(1, 8), lines[3]:sub(1, 8) })
    local _, h2 = H.run(function()
      return mg.train{ model = model, loss_fn = mg.nn.MSELoss(), optimizer = opt, data = { X, y }, epochs = 9,
        progress = false, log_every = 4, on_epoch = function(epoch) return epoch < 3 end }
    end)
    assert.equal(3, #h2.train_loss)
  end)

  it("does early stopping on the validation loss (the reference's example)", function()
    mg.manual_seed(1)
    local X = mg.randn(200, 8)
    local y = (X:narrow(2, 1, 1) * 2):tanh() + 0.3 * mg.randn(200, 1)
    local train, val = { X:narrow(1, 1, 40), y:narrow(1, 1, 40) }, { X:narrow(1, 41, 160), y:narrow(1, 41, 160) }
    local model = mg.nn.Sequential(mg.nn.Linear(8, 64), mg.nn.Tanh(), mg.nn.Linear(64, 1))
    local opt = mg.optim.Adam(model:parameters(), { lr = 0.02 })
    local best, best_epoch, best_state, patience = math.huge, 0, nil, 5
    local _, h = H.run(function()
      return mg.train{ model = model, loss_fn = mg.nn.MSELoss(), optimizer = opt, data = train, val_data = val,
        epochs = 500, progress = false,
        on_epoch = function(epoch, _, val_loss)
          if val_loss < best then
            best, best_epoch = val_loss, epoch
            best_state = mg.no_grad(function()
              local copy = {}
              for k, v in pairs(model:state_dict()) do copy[k] = v:clone() end
              return copy
            end)
          elseif epoch - best_epoch >= patience then
            return false -- no improvement for `patience` epochs
          end
        end }
    end)
    -- it overfits 40 samples long before 500 epochs, and stops `patience` epochs after its best
    assert.is_true(h.stopped_epoch < 500)
    assert.equal(best_epoch + patience, h.stopped_epoch)
    assert.equal(best, math.min(table.unpack(h.val_loss)))
    model:load_state_dict(best_state)
    local v = mg.no_grad(function() return mg.F.mse_loss(model(val[1]), val[2]):item() end)
    assert.is_true(math.abs(v - best) < 1e-5 * (1 + best))
  end)
end)

describe("mg.train's progress line", function()
  -- runs a training with progress = true in a fresh process with `env` (e.g. "COLUMNS=40"); returns
  -- its stdout
  local function run(env, epochs)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(string.format("package.path, package.cpath = %q, %q\n", package.path, package.cpath), [[
      local mg = require "moongrad"
      mg.manual_seed(0)
      local X = mg.randn(96, 3)
      local y = X:sum(2, true)
      local model = mg.nn.Linear(3, 1)
      local opt = mg.optim.SGD(model:parameters(), {lr = 0.05})
      local h = mg.train{model = model, loss_fn = mg.nn.MSELoss(), optimizer = opt, data = {X, y},
        val_data = {X, y}, epochs = ]] .. epochs .. [[, batch_size = 8, progress = true}
      io.stderr:write("VAL ", table.concat(h.val_loss, " "), "\n")
    ]])
    f:close()
    local errpath = os.tmpname()
    local p = assert(io.popen(env .. " lua5.4 " .. path .. " 2>" .. errpath))
    local out = p:read("a")
    p:close()
    os.remove(path)
    local val = {}
    for v in H.read_file(errpath):match("VAL ([^\n]*)"):gmatch("%S+") do val[#val + 1] = tonumber(v) end
    os.remove(errpath)
    return out, val
  end

  -- the segments written between carriage returns and newlines, and the lines that stay
  local function screen(out)
    local segments, kept = {}, {}
    for line in out:gmatch("([^\n]*)\n") do
      for seg in (line .. "\r"):gmatch("([^\r]*)\r") do segments[#segments + 1] = seg end
      kept[#kept + 1] = line:match("([^\r]*)$"):gsub("%s+$", "")
    end
    return segments, kept
  end

  for _, width in ipairs({ 40, 20, 200 }) do
    it("fits " .. width .. " columns and leaves one line per epoch with the validation loss", function()
      local out, val = run("COLUMNS=" .. width, 3)
      local segments, kept = screen(out)
      assert.is_true(#segments > 3 * 12, out) -- 12 batches per epoch
      for _, seg in ipairs(segments) do
        assert.is_true(#seg <= width - 1, string.format("%d columns: %q", #seg, seg))
      end
      assert.equal(3, #kept)
      for e, line in ipairs(kept) do
        -- the validation loss shown is the epoch's, with fewer digits when narrow, never cut short
        local shown = tonumber(line:match("[Vv]al[%a ]* ([%d.e-]+)$"))
        if width >= 40 then
          assert.is_true(shown and math.abs(shown - val[e]) <= 1e-3 * val[e], line .. " vs " .. tostring(val[e]))
        end
        if width >= 60 then
          assert.truthy(line:match("^Epoch " .. e .. ", Training loss %d%.%d+, Validation loss %d%.%d+$"), line)
        elseif width >= 40 then
          assert.truthy(line:match("^Epoch " .. e .. ": train [%d.e-]+, val [%d.e-]+$"), line)
        else
          assert.truthy(line:match("^Epoch " .. e .. ": "), line)
        end
      end
      if width >= 40 then
        assert.truthy(segments[2]:match("^epoch 1/3  "), segments[2]) -- the epoch and the loss stay
        assert.truthy(segments[2]:find("  loss ", 1, true), segments[2])
      end
      if width == 200 then
        assert.truthy(segments[2]:match("^epoch 1/3  batch 1/12  loss [%d.e-]+  %d+ batches/s  [%d.hms]+ left$"),
          segments[2])
      end
    end)
  end

  it("falls back to tput or 80 columns without COLUMNS", function()
    local segments = screen((run("env -u COLUMNS TERM=dumb", 2)))
    for _, seg in ipairs(segments) do assert.is_true(#seg <= 79, seg) end
  end)
end)
