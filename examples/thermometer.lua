-- The thermometer of "Deep Learning with PyTorch", chapter 5: fit t_c = w * t_u + b by gradient
-- descent with a hand-derived gradient, every step a tensor operation.
--   lua5.4 examples/thermometer.lua        (or: make demo)
-- PyTorch ends at w = 5.3671, b = -17.3012, loss 2.9276.
local mg = require "moongrad"

-- Celsius readings and the unknown thermometer's readings of the same temperatures.
local t_c = mg.tensor{0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0}
local t_u = mg.tensor{35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4}
local t_un = 0.1 * t_u -- the book's first normalization: inputs of the same order as the output

local function model(u, w, b) return w * u + b end
local function loss_fn(t_p, c) return ((t_p - c) ^ 2):mean() end

-- d loss / d t_p of the mean of squares, and the chain rule through the model
local function dloss_fn(t_p, c) return 2 * (t_p - c) / t_p:size(1) end
local function dmodel_dw(u) return u end
local function dmodel_db() return 1.0 end
local function grad_fn(u, c, t_p)
  local dloss_dtp = dloss_fn(t_p, c)
  local dloss_dw = dloss_dtp * dmodel_dw(u)
  local dloss_db = dloss_dtp * dmodel_db()
  return mg.stack{dloss_dw:sum(), dloss_db:sum()}
end

local function training_loop(n_epochs, learning_rate, params, u, c)
  local loss
  for _ = 1, n_epochs do
    local w, b = params[1], params[2]
    local t_p = model(u, w, b)
    loss = loss_fn(t_p, c)
    params = params - learning_rate * grad_fn(u, c, t_p)
  end
  return params, loss:item()
end

local params, loss = training_loop(5000, 1e-2, mg.tensor{1.0, 0.0}, t_un, t_c)
print(params)
print(string.format("loss %.4f", loss))
return params, loss
