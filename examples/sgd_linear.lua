-- Stochastic gradient descent, one sample at a time: fit nn.Linear(2, 1) to synthetic data
-- y = X w + b + noise whose true w and b we know, taking each step on ONE randomly drawn sample.
-- Each step is noisy (the loss jumps around), yet w drifts towards the truth; 200 steps get close
-- but not all the way.
--   lua5.4 examples/sgd_linear.lua   (after `make`; from any directory; plot: examples/out/sgd_linear.svg)
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "" -- this script's directory
dofile(here .. "paths.lua") -- this clone's moongrad once `make` has built it, else the installed one
local mg = require "moongrad"
local nn, optim = mg.nn, mg.optim

mg.manual_seed(0)
local n = 1000
local true_w, true_b = mg.tensor{2, -3}, 1.0
local X = mg.randn(n, 2)                                           -- (n, 2)
local Y = (X:matmul(true_w) + true_b + 0.1 * mg.randn(n)):view(n, 1) -- (n, 1)

local linear = nn.Linear(2, 1)
local loss_fn = nn.MSELoss()
local optimizer = optim.SGD(linear:parameters(), {lr = 0.01})

local w0 = linear.weight:detach():view(2):clone() -- PyTorch's random init
local losses = {}
for iter = 1, 200 do
  local i = mg.randint(1, n + 1, {1})[1] -- one sample: X[i] is (2), Y[i] is (1)
  local loss = loss_fn(linear(X[i]), Y[i])
  optimizer:zero_grad()
  loss:backward()
  optimizer:step()
  losses[iter] = loss:item()
  if iter % 20 == 0 then
    print(string.format("iter %3d  loss %8.4f  w %s", iter, losses[iter], tostring(linear.weight:view(2):detach())))
  end
end

local w = linear.weight:view(2):detach()
print(string.format("true w %s, b %.4f", tostring(true_w), true_b))
print(string.format("est. w %s, b %.4f", tostring(w), linear.bias:item()))
print(string.format("|w - true_w|: %.4f at the start, %.4f after 200 steps",
  (w0 - true_w):norm():item(), (w - true_w):norm():item()))

os.execute('mkdir -p "' .. here .. 'out"')
mg.plot.figure{title = "SGD on one sample per step", xlabel = "step", ylabel = "loss of that sample"}
  :line(losses)
  :save(here .. "out/sgd_linear.svg")
print("plot: " .. here .. "out/sgd_linear.svg")

return w:clone(), w0, true_w, losses, linear.bias:item()
