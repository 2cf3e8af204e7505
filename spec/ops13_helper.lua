-- Runs the PyTorch fixtures of spec/fixtures/ops13_cases.lua (spec/fixtures/gen_ops13.py), or of
-- another list of cases in the same format (ops13b_cases.lua), whose names start with one of the
-- given prefixes: values (float32 within a few ulps, float64 within
-- 1e-12, integers exactly, NaN and inf as they are) and the gradient of sum(out * w).
local mg = require "moongrad"
local H = require "helper"
local assert = require "luassert"

local cases = dofile("spec/fixtures/ops13_cases.lua")

local M = {}

local TOL = {float32 = 2e-6, float64 = 1e-12}
local GRAD_TOL = {float32 = 1e-5, float64 = 1e-11}

local function tensor_of(e)
  return mg.tensor(e.values, {dtype = e.dtype, requires_grad = e.requires_grad or nil})
end

local function check(expected, got, tol, what)
  assert.is_true(mg.is_tensor(got), what .. " is not a tensor")
  assert.equal(expected.dtype, got.dtype, what .. " dtype")
  assert.same(expected.shape, got.shape, what .. " shape")
  if expected.dtype == "int64" or expected.dtype == "bool" then
    local v = got:totable()
    assert.same(expected.values, v, what .. " values")
  else
    local ok, err = pcall(H.near, expected.values, got, tol)
    if not ok then error(what .. ": " .. tostring(err), 0) end
  end
end

function M.run(case)
  local fn = assert(load("return " .. case.fn))()
  local inputs = {}
  for k, e in ipairs(case.inputs) do inputs[k] = tensor_of(e) end
  local outs = table.pack(fn(mg, table.unpack(inputs)))
  assert.equal(#case.outputs, outs.n, "number of results")
  local loss
  for k, e in ipairs(case.outputs) do
    check(e, outs[k], TOL[e.dtype], "output " .. k)
    if e.w then
      local term = (outs[k] * mg.tensor(e.w, {dtype = e.dtype})):sum()
      loss = loss and loss + term or term
    end
  end
  if loss and loss.requires_grad then
    loss:backward()
    for k, g in ipairs(case.grads) do
      if g then check(g, inputs[k].grad, GRAD_TOL[g.dtype], "gradient of input " .. k) end
    end
  end
end

-- One `it` per case whose name starts with a prefix in the list (of `list`, by default the cases of
-- ops13_cases.lua).
function M.describe_cases(it, prefixes, list)
  local n = 0
  for _, case in ipairs(list or cases) do
    for _, p in ipairs(prefixes) do
      if case.name:sub(1, #p) == p then
        n = n + 1
        it(case.name .. " (" .. case.dtype .. ") matches PyTorch", function() M.run(case) end)
        break
      end
    end
  end
  assert(n > 0, "no fixture case for " .. table.concat(prefixes, ", "))
  return n
end

return M
