-- W4: nn.Linear(2, 1) + nn.MSELoss + optim.SGD lr 0.01, 20000 single-sample steps.
-- Data from the shared generator: n = 1000, X[i, j] = normal(41, 2i + j) (float32), true_w = {2, -3},
-- y[i] = 2 X[i,1] - 3 X[i,2] + 0.01 normal(42, i) (float64 from the float32 X, then float32);
-- step k uses row index(43, k, 1000) (precomputed). Init: weight and bias zero.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
B.setup(mg)

local N, STEPS, LR = 1000, 20000, 0.01
local X = mg.tensor(B.normals(41, 0, 2 * N)):view(N, 2)
local xf, noise, ys = X:totable(), B.normals(42, 0, N), {}
for i = 1, N do ys[i] = 2.0 * xf[i][1] - 3.0 * xf[i][2] + 0.01 * noise[i] end
local Y = mg.tensor(ys):view(N, 1)
local idx = {}
for k = 1, STEPS do idx[k] = B.index(43, k - 1, N) + 1 end
local loss_fn = mg.nn.MSELoss()

local t, model = B.median_time(function()
  local model = mg.nn.Linear(2, 1)
  mg.no_grad(function() model.weight:zero_(); model.bias:zero_() end)
  local opt = mg.optim.SGD(model:parameters(), {lr = LR})
  for k = 1, STEPS do
    local i = idx[k]
    local xi, yi = X:narrow(1, i, 1), Y:narrow(1, i, 1)
    opt:zero_grad()
    local loss = loss_fn(model(xi), yi)
    loss:backward()
    opt:step()
  end
  return model
end, "auto")
local full = mg.no_grad(function() return loss_fn(model(X), Y):item() end)
local w = model.weight:detach():view(-1):totable()
local b = model.bias:detach():item()
B.result{name = "W4_linear_single", value = t / STEPS * 1e6, unit = "us/step",
  derived = STEPS / t, dunit = "samples/s", nums = {w[1], w[2], b, full}, tol = "1e-4:1e-6",
  check = string.format("w=%.4f,%.4f,b=%.5f", w[1], w[2], b)}
