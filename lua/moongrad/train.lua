-- moongrad.train: the training loops, as functions of mg itself.
--   mg.training_loop{...}: the book's loop (chapter 5), the book's model and hand-derived gradient;
--   mg.train{...}: the general loop (autograd, any model, loss and optimizer, mini-batches).
-- Both stop at the first non-finite loss with an error that says what probably went wrong.
local core = require "moongrad.core"
local F = core.F

local M = {}

-- options(fname, argn, opts, defaults, level, required): defaults in one place; an unknown key is
-- an error naming it and the valid ones, a missing required one an error naming it (moongrad.util)
local options = require("moongrad.util").options

local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

local CAUSES = "the learning rate is probably too large, or the inputs need normalizing to roughly -1..1"

-- The error (or, with allow_divergence, the warning) for a non-finite loss.
local function diverged(fn, epoch, loss, last, culprit)
  local msg = string.format("'%s': the loss diverged at epoch %d (%s)", fn, epoch, tostring(loss))
  if last then msg = msg .. string.format("; last finite loss %.6g at epoch %d", last.loss, last.epoch) end
  if culprit then msg = msg .. "; " .. culprit end
  return msg .. ": " .. CAUSES .. " (pass allow_divergence = true to keep going)"
end

-- ---------------------------------------------------------------------------------------------
-- training_loop: the book's loop

local BOOK_EPOCHS = { [1] = true, [2] = true, [3] = true, [10] = true, [11] = true, [99] = true,
  [100] = true, [4000] = true, [5000] = true }
local BOOK_ELLIPSIS = { [4] = true, [12] = true, [101] = true }

-- The element of a gradient tensor that blew up first: the first non-finite one, else the largest.
local function grad_culprit(grad, names)
  local values, worst, worst_i = grad:totable(), -1, 1
  for i, g in ipairs(values) do
    if not finite(g) then
      return string.format("the gradient of %s blew up first (%s)", names[i] or ("params[" .. i .. "]"), tostring(g))
    end
    if math.abs(g) > worst then worst, worst_i = math.abs(g), i end
  end
  return string.format("the gradient of %s is the largest (%.4g)", names[worst_i] or ("params[" .. worst_i .. "]"),
    values[worst_i])
end

function M.training_loop(opts)
  local o = options("training_loop", 1, opts, { print_detail = false, allow_divergence = false }, 2,
    { "n_epochs", "learning_rate", "params", "t_u", "t_c" })
  local params, t_u, t_c = o.params, o.t_u, o.t_c
  local last
  for epoch = 1, o.n_epochs do
    local w, b = params[1], params[2]
    local t_p = F.model(t_u, w, b)
    local loss = F.loss_fn(t_p, t_c)
    local grad = F.grad_fn(t_u, t_c, t_p, w, b)
    params = params - o.learning_rate * grad
    local value = loss:item()
    if o.print_detail and BOOK_EPOCHS[epoch] then
      print(string.format("Epoch %d, Loss %f", epoch, value))
      print("    Params:", params)
      print("    Grad:  ", grad)
    elseif o.print_detail and BOOK_ELLIPSIS[epoch] then
      print("...")
    end
    if not finite(value) then
      local msg = diverged("training_loop", epoch, value, last, grad_culprit(grad, { "w", "b" }))
      if not o.allow_divergence then error(msg, 2) end
      if o.print_detail then print(string.format("Epoch %d, Loss %f", epoch, value)) end
      break
    end
    last = { loss = value, epoch = epoch }
  end
  return params
end

-- ---------------------------------------------------------------------------------------------
-- train: the general loop

local clock
do
  local ok, system = pcall(require, "system")
  clock = ok and system.monotime or os.clock
end

-- The batches of one pass, as an iterator of (x, y). data is {X, y}, a DataLoader (anything
-- callable or with __call), or a dataset handled by mg.data.DataLoader.
local function batches(data, batch_size, shuffle)
  local loader
  if type(data) == "table" and core.is_tensor(data[1]) then
    local n = data[1]:size(1)
    if not batch_size or batch_size >= n then
      if not shuffle then
        local done = false
        return function()
          if done then return nil end
          done = true
          return data[1], data[2]
        end, 1
      end
      batch_size = n
    end
    loader = require("moongrad.data").DataLoader({ data[1], data[2] }, { batch_size = batch_size, shuffle = shuffle })
  elseif type(data) == "table" and (getmetatable(data) or {}).__call then
    loader = data
  else
    loader = require("moongrad.data").DataLoader(data, { batch_size = batch_size or 1, shuffle = shuffle })
  end
  local count = (getmetatable(loader) or {}).__len and #loader or nil
  return loader(), count
end

-- The first parameter (by name) whose gradient is not finite, for the divergence message.
local function param_culprit(model)
  if type(model) ~= "table" or not model.named_parameters then return nil end
  for name, p in model:named_parameters() do
    if p.grad then
      local norm = p.grad:double():norm():item()
      if not finite(norm) then
        return string.format("the gradient of '%s' blew up first (norm %s)", name, tostring(norm))
      end
    end
  end
  return nil
end

local function format_time(seconds)
  if seconds >= 3600 then return string.format("%dh%02dm", seconds // 3600, seconds % 3600 // 60) end
  if seconds >= 60 then return string.format("%dm%02ds", seconds // 60, math.floor(seconds % 60)) end
  return string.format("%.1fs", seconds)
end

-- The progress line (mg.train with progress): one line rewritten in place with "\r", so it must never
-- wrap (a wrapped line cannot be rewritten, and a narrow terminal fills with copies). Its width is
-- the terminal's: COLUMNS, else `tput cols`, else 80; the line takes at most width - 1 columns
-- (some terminals wrap on the last one), dropping its least useful parts first.
local function terminal_width()
  local w = tonumber(os.getenv("COLUMNS") or "")
  if not w then
    local p = io.popen("tput cols 2>/dev/null")
    if p then
      w = tonumber(p:read("a") or "")
      p:close()
    end
  end
  if not w or w < 2 then w = 80 end
  return math.floor(w)
end

-- parts: {text, priority} in display order; the lowest priorities go first until the line fits
local function fit(parts, width)
  local keep = {}
  for i = 1, #parts do keep[i] = true end
  local function line()
    local out = {}
    for i, p in ipairs(parts) do
      if keep[i] then out[#out + 1] = p[1] end
    end
    return table.concat(out, "  ")
  end
  local s = line()
  while #s > width - 1 do
    local worst
    for i, p in ipairs(parts) do
      if keep[i] and i > 1 and (not worst or p[2] < parts[worst][2]) then worst = i end
    end
    if not worst then break end
    keep[worst] = false
    s = line()
  end
  return s:sub(1, width - 1)
end

-- Writes `text` over the progress line (padded to clear a longer previous one); with `done`, ends the
-- line so it stays in the log. Returns the length written.
local function overwrite(text, last_len, done)
  local pad = last_len > #text and string.rep(" ", last_len - #text) or ""
  io.write("\r", text, pad, done and "\n" or "")
  io.flush()
  return done and 0 or #text
end

local function evaluate(model, loss_fn, data, batch_size)
  local total, count = 0, 0
  core.no_grad(function()
    if model.eval then model:eval() end
    for x, y in batches(data, batch_size, false) do
      local n = x:size(1)
      total = total + loss_fn(model(x), y):item() * n
      count = count + n
    end
    if model.train then model:train() end
  end)
  return total / count
end

function M.train(opts)
  local o = options("train", 1, opts, {
    epochs = 1, val_data = false, batch_size = false, shuffle = false, on_epoch = false,
    log_every = 1, progress = "auto", allow_divergence = false,
  }, 2, { "model", "loss_fn", "optimizer", "data" })
  local model, loss_fn, opt = o.model, o.loss_fn, o.optimizer
  local bar = o.progress == true or (o.progress == "auto" and core._isatty())
  local width = bar and terminal_width()
  local last_len = 0 -- of the progress line on screen
  local history = { train_loss = {}, val_loss = o.val_data and {} or nil }
  local last
  local start = clock()
  if model.train then model:train() end
  for epoch = 1, o.epochs do
    local total, count, seen = 0, 0, 0
    local iter, nbatches = batches(o.data, o.batch_size or nil, o.shuffle)
    for x, y in iter do
      opt:zero_grad()
      local loss = loss_fn(model(x), y)
      loss:backward()
      opt:step()
      local value = loss:item()
      if not finite(value) then
        local msg = diverged("train", epoch, value, last, param_culprit(model))
        if not o.allow_divergence then
          if bar then io.write("\n") end
          error(msg, 2)
        end
      end
      local n = x:size(1)
      total, count, seen = total + value * n, count + n, seen + 1
      if bar then
        local elapsed = clock() - start
        local done = (epoch - 1) + (nbatches and seen / nbatches or 1)
        local left = elapsed / done * (o.epochs - done)
        local rate = ((epoch - 1) * (nbatches or seen) + seen) / math.max(elapsed, 1e-9)
        last_len = overwrite(fit({
          { string.format("epoch %d/%d", epoch, o.epochs), 5 },
          { string.format("batch %d%s", seen, nbatches and ("/" .. nbatches) or ""), 2 },
          { string.format("loss %.4g", value), 4 },
          { string.format("%.0f batches/s", rate), 1 },
          { format_time(left) .. " left", 3 },
        }, width), last_len)
      end
    end
    local train_loss = total / math.max(count, 1)
    history.train_loss[epoch] = train_loss
    if finite(train_loss) then last = { loss = train_loss, epoch = epoch } end
    local val_loss
    if o.val_data then
      val_loss = evaluate(model, loss_fn, o.val_data, o.batch_size or nil)
      history.val_loss[epoch] = val_loss
    end
    -- the epoch's summary line (each log_every epochs, the last, and the one training stops at)
    local function summary()
      local line = string.format("Epoch %d, Training loss %.6f%s", epoch, train_loss,
        val_loss and string.format(", Validation loss %.6f", val_loss) or "")
      if not bar then
        print(line)
        return
      end
      -- one line per epoch stays in the log, as printed logs have; shorter when the terminal is
      -- narrow, with fewer digits rather than cut numbers
      for _, digits in ipairs({ 6, 4, 3 }) do
        if #line <= width - 1 then break end
        local g = "%." .. digits .. "g"
        line = string.format("Epoch %d: train " .. g .. "%s", epoch, train_loss,
          val_loss and string.format(", val " .. g, val_loss) or "")
      end
      last_len = overwrite(line:sub(1, width - 1), last_len, true)
    end
    local log = o.log_every and o.log_every > 0 and (epoch % o.log_every == 0 or epoch == o.epochs)
    if log then
      summary()
    elseif bar and last_len > 0 then -- clear the progress line: what on_epoch prints starts on a clean line
      last_len = overwrite("", last_len)
      io.write("\r")
    end
    -- on_epoch(epoch, train_loss, val_loss) returning false stops training after this epoch
    if o.on_epoch and o.on_epoch(epoch, train_loss, val_loss) == false then
      if not log and o.log_every and o.log_every > 0 then summary() end
      history.stopped_epoch = epoch
      break
    end
  end
  if bar and last_len > 0 then io.write("\n") end
  return history
end

return M
