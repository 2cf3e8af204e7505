-- "Deep Learning with PyTorch", section 5.5.3: hold out a fifth of the thermometer readings and
-- watch the loss on them. The validation loss is computed under mg.no_grad (no graph is recorded:
-- it must not feed the gradient), and both losses are plotted.
--   lua5.4 examples/validation.lua   (after `make`; from any directory; plot: examples/out/validation_loss.svg)
-- With 11 samples the split decides the numbers, and moongrad's generator is not PyTorch's:
-- torch.manual_seed(42); torch.randperm(11) holds out samples 6 and 5 (1-based) and ends at
-- training loss 2.9693, validation loss 3.3136, while mg.randperm(11) here holds out samples 4
-- and 1 (the hottest and a cold reading: the model must extrapolate) and ends at 2.9176, 5.6760.
-- Compare the shape of the curves with the book's, not the digits. Given this script's split,
-- PyTorch 1.13 prints the same lines as this script (epoch 3's 97.6301 is 97.6300 there).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "" -- this script's directory
dofile(here .. "paths.lua") -- this clone's moongrad once `make` has built it, else the installed one
local mg = require "moongrad"
local F, optim = mg.F, mg.optim

local t_c = mg.tensor{0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0}
local t_u = mg.tensor{35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4}

mg.manual_seed(42)
local n_samples = t_u:size(1)
local n_val = math.floor(0.2 * n_samples)
local shuffled_indices = mg.randperm(n_samples)
local train_indices = shuffled_indices:narrow(1, 1, n_samples - n_val)
local val_indices = shuffled_indices:narrow(1, n_samples - n_val + 1, n_val)

local train_t_u, train_t_c = t_u:index_select(1, train_indices), t_c:index_select(1, train_indices)
local val_t_u, val_t_c = t_u:index_select(1, val_indices), t_c:index_select(1, val_indices)
local train_t_un, val_t_un = 0.1 * train_t_u, 0.1 * val_t_u

local function training_loop(n_epochs, optimizer, params, tr_u, va_u, tr_c, va_c)
  local history = {train_loss = {}, val_loss = {}}
  for epoch = 1, n_epochs do
    local train_loss = F.loss_fn(F.model(tr_u, params[1], params[2]), tr_c)
    local val_loss = mg.no_grad(function()
      return F.loss_fn(F.model(va_u, params[1], params[2]), va_c)
    end)
    assert(not val_loss.requires_grad)
    optimizer:zero_grad()
    train_loss:backward()
    optimizer:step()
    history.train_loss[epoch], history.val_loss[epoch] = train_loss:item(), val_loss:item()
    if epoch <= 3 or epoch % 500 == 0 then
      print(string.format("Epoch %d, Training loss %.4f, Validation loss %.4f", epoch,
        history.train_loss[epoch], history.val_loss[epoch]))
    end
  end
  return params, history
end

local params = mg.tensor({1.0, 0.0}, {requires_grad = true})
local history
params, history = training_loop(3000, optim.SGD({params}, {lr = 1e-2}), params,
  train_t_un, val_t_un, train_t_c, val_t_c)
print("validation samples:", val_indices)
print(params)

os.execute('mkdir -p "' .. here .. 'out"')
mg.plot.loss_curve(history, here .. "out/validation_loss.svg",
  {title = "Thermometer: training and validation loss"})

print("plot: " .. here .. "out/validation_loss.svg")

return history, params:detach(), val_indices
