-- The thermometer of "Deep Learning with PyTorch", chapter 5, with autograd: the same fit of
-- t_c = w * t_u + b as examples/thermometer.lua, but the gradient comes from loss:backward()
-- instead of the hand-derived grad_fn. Both loops run, with the book's functions from mg.F, and
-- end at the same parameters.
--   lua5.4 examples/thermometer_autograd.lua
-- PyTorch ends at tensor([  5.3671, -17.3012], requires_grad=True).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "" -- this script's directory
dofile(here .. "paths.lua") -- this clone's moongrad once `make` has built it, else the installed one
local mg = require "moongrad"
local F = mg.F

local t_c = mg.tensor{0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0}
local t_u = mg.tensor{35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4}
local t_un = 0.1 * t_u

-- The book's autograd loop: params[1], params[2] are differentiable 0-d tensors (w, b = params).
local function training_loop(n_epochs, learning_rate, params, u, c)
  for _ = 1, n_epochs do
    if params.grad then params.grad:zero_() end
    local t_p = F.model(u, params[1], params[2])
    local loss = F.loss_fn(t_p, c)
    loss:backward()
    mg.no_grad(function() params:sub_(params.grad * learning_rate) end)
  end
  return params
end

-- The hand-derived loop: grad_fn is {mean(dloss * dmodel_dw), mean(dloss * dmodel_db)}.
local function hand_loop(n_epochs, learning_rate, params, u, c)
  for _ = 1, n_epochs do
    local w, b = params[1], params[2]
    local t_p = F.model(u, w, b)
    params = params - learning_rate * F.grad_fn(u, c, t_p, w, b)
  end
  return params
end

local params = training_loop(5000, 1e-2, mg.tensor({1.0, 0.0}, {requires_grad = true}), t_un, t_c)
print(params)

local hand = hand_loop(5000, 1e-2, mg.tensor{1.0, 0.0}, t_un, t_c)
local same = mg.allclose(params:detach(), hand, 1e-5, 1e-5)
print(string.format("hand-derived grad_fn: %s (%s)", tostring(hand),
  same and "the same params" or "DIFFERENT params"))
return params, hand
