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
  -- data-parallel (issue 12): print on rank 0 only, losses averaged over ranks (moongrad.distributed)
  local dist = package.loaded["moongrad.distributed"]
  dist = dist and dist._group() and dist._train
  local bar = (o.progress == true or (o.progress == "auto" and core._isatty())) and not (dist and not dist.main())
  local history = { train_loss = {}, val_loss = o.val_data and {} or nil }
  local last
  local start = clock()
  if model.train then model:train() end
  for epoch = 1, o.epochs do
    local total, count, seen = 0, 0, 0
    if dist then dist.set_epoch(o.data, epoch) end
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
        io.write(string.format("\repoch %d/%d  batch %d%s  loss %.4g  %.0f batches/s  %s left   ", epoch,
          o.epochs, seen, nbatches and ("/" .. nbatches) or "", value, rate, format_time(left)))
        io.flush()
      end
    end
    if dist then total, count = dist.sum(total, count) end
    local train_loss = total / math.max(count, 1)
    history.train_loss[epoch] = train_loss
    if finite(train_loss) then last = { loss = train_loss, epoch = epoch } end
    local val_loss
    if o.val_data then
      val_loss = evaluate(model, loss_fn, o.val_data, o.batch_size or nil)
      if dist then val_loss = dist.average(val_loss) end
      history.val_loss[epoch] = val_loss
    end
    if not bar and o.log_every and o.log_every > 0 and (epoch % o.log_every == 0 or epoch == o.epochs)
        and not (dist and not dist.main()) then
      print(string.format("Epoch %d, Training loss %.6f%s", epoch, train_loss,
        val_loss and string.format(", Validation loss %.6f", val_loss) or ""))
    end
    if o.on_epoch then o.on_epoch(epoch, train_loss, val_loss) end
  end
  if bar then io.write("\n") end
  return history
end

return M
