-- "Deep Learning with PyTorch", section 5.5.2: the thermometer fit with an optimizer from
-- mg.optim doing the update. optim.SGD on the normalized inputs (0.1 * t_u) reaches the book's
-- params; optim.Adam, which scales each parameter's step by its own gradient history, converges
-- on the RAW inputs t_u, where plain SGD at this learning rate would diverge.
--   lua5.4 examples/optimizers.lua   (after `make`; from any directory; plot: examples/out/optimizers.svg)
-- PyTorch 1.13 ends at w = 5.3671, b = -17.3012 (SGD) and w = 0.5367, b = -17.3021 (Adam).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "" -- this script's directory
dofile(here .. "paths.lua") -- this clone's moongrad once `make` has built it, else the installed one
local mg = require "moongrad"
local F, optim = mg.F, mg.optim

local t_c = mg.tensor{0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0}
local t_u = mg.tensor{35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4}
local t_un = 0.1 * t_u

-- The book prints these epochs, with "..." where it skips some, and then every 1000th to the end.
local SHOWN = {[1] = true, [2] = true, [3] = true, [10] = true, [11] = true, [99] = true, [100] = true}
local SKIP = {[4] = true, [12] = true, [101] = true}

local function training_loop(n_epochs, optimizer, params, u, c)
  local losses = {}
  for epoch = 1, n_epochs do
    local t_p = F.model(u, params[1], params[2]) -- w * u + b
    local loss = F.loss_fn(t_p, c)
    optimizer:zero_grad()
    loss:backward()
    optimizer:step()
    losses[epoch] = loss:item()
    if SHOWN[epoch] or (epoch % 1000 == 0 and epoch > n_epochs - 2000) then
      print(string.format("Epoch %d, Loss %f", epoch, losses[epoch]))
    elseif SKIP[epoch] then
      print("...")
    end
  end
  return params, losses
end

print("optim.SGD, lr 1e-2, on 0.1 * t_u:")
local params = mg.tensor({1.0, 0.0}, {requires_grad = true})
local sgd, sgd_losses = training_loop(5000, optim.SGD({params}, {lr = 1e-2}), params, t_un, t_c)
print(sgd)

print("optim.Adam, lr 1e-1, on the raw t_u:")
params = mg.tensor({1.0, 0.0}, {requires_grad = true})
local adam, adam_losses = training_loop(2000, optim.Adam({params}, {lr = 1e-1}), params, t_u, t_c)
print(adam)

-- Both loss curves on a log axis: Adam starts higher (raw inputs) and still gets there sooner.
os.execute('mkdir -p "' .. here .. 'out"')
mg.plot.figure{title = "SGD (normalized inputs) vs Adam (raw inputs)", xlabel = "epoch", ylabel = "loss", logy = true}
  :line(sgd_losses, {label = "SGD, lr 1e-2, 0.1 * t_u"})
  :line(adam_losses, {label = "Adam, lr 1e-1, t_u"})
  :save(here .. "out/optimizers.svg")
print("plot: " .. here .. "out/optimizers.svg")

return sgd:detach(), adam:detach(), sgd_losses, adam_losses
