-- W1 (hand-derived gradient with mg.F.grad_fn) and W2 (autograd): the book's loop, lr 1e-2,
-- 5000 epochs on t_un; and the same W1 loop over plain Lua tables, the floor for any library.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
B.setup(mg)

local EPOCHS = 5000
local T_C = {0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0}
local T_U = {35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4}
local t_c, t_un = mg.tensor(T_C), 0.1 * mg.tensor(T_U)
local F = mg.F

local function manual()
  local params = mg.tensor{1.0, 0.0}
  for _ = 1, EPOCHS do
    local w, b = params[1], params[2]
    local t_p = F.model(t_un, w, b)
    params = params - 1e-2 * F.grad_fn(t_un, t_c, t_p, w, b)
  end
  return params
end

local function autograd()
  local params = mg.tensor({1.0, 0.0}, {requires_grad = true})
  local loss
  for _ = 1, EPOCHS do
    if params.grad then params.grad:zero_() end
    loss = F.loss_fn(F.model(t_un, params[1], params[2]), t_c)
    loss:backward()
    mg.no_grad(function() params:sub_(params.grad * 1e-2) end)
  end
  return params, loss
end

local function tables()
  local un = {}
  for i = 1, #T_U do un[i] = 0.1 * T_U[i] end
  local w, b = 1.0, 0.0
  for _ = 1, EPOCHS do
    local gw, gb, n = 0.0, 0.0, #un
    for i = 1, n do
      local d = 2 * ((w * un[i] + b) - T_C[i])
      gw, gb = gw + d * un[i], gb + d
    end
    w, b = w - 1e-2 * gw / n, b - 1e-2 * gb / n
  end
  return {w, b}
end

local function report(name, fn)
  local t, params, loss = B.median_time(fn, "auto")
  local p = mg.is_tensor(params) and params:detach():totable() or params
  local nums = {p[1], p[2], loss and loss:item() or nil}
  B.result{name = name, value = t / EPOCHS * 1e6, unit = "us/epoch", nums = nums,
    check = string.format("w=%.4f,b=%.4f", p[1], p[2])}
end
report("W1_thermo_manual", manual)
report("W2_thermo_autograd", autograd)
report("W1_plain_lua_tables", tables)
