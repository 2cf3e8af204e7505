-- W3: the book's loop with optim: optim.SGD lr 1e-2, 5000 epochs on t_un; optim.Adam lr 0.1,
-- 2000 epochs on the raw t_u. Autograd through mg.F.model / mg.F.loss_fn.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
B.setup(mg)

local T_C = {0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0}
local T_U = {35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4}
local t_c, t_u = mg.tensor(T_C), mg.tensor(T_U)
local t_un = 0.1 * t_u
local F = mg.F

local function training_loop(n_epochs, optimizer, params, x)
  local loss
  for _ = 1, n_epochs do
    local t_p = F.model(x, params[1], params[2])
    loss = F.loss_fn(t_p, t_c)
    optimizer:zero_grad()
    loss:backward()
    optimizer:step()
  end
  return params, loss
end

for _, c in ipairs{{"W3_thermo_optim_sgd", mg.optim.SGD, 1e-2, 5000, t_un},
                   {"W3_thermo_optim_adam", mg.optim.Adam, 1e-1, 2000, t_u}} do
  local name, opt, lr, epochs, x = table.unpack(c)
  local t, params, loss = B.median_time(function()
    local params = mg.tensor({1.0, 0.0}, {requires_grad = true})
    return training_loop(epochs, opt({params}, {lr = lr}), params, x)
  end, "auto")
  local p = params:detach():totable()
  B.result{name = name, value = t / epochs * 1e6, unit = "us/epoch", nums = {p[1], p[2], loss:item()},
    check = string.format("w=%.4f,b=%.4f", p[1], p[2])}
end
