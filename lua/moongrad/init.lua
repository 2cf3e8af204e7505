-- moongrad: tensors and training for Lua 5.4. This file is the Lua layer: it loads the C core
-- (moongrad.core) and adds what is best written in Lua. Every tensor operation is in C.
local core = require "moongrad.core"

local M = {}
for k, v in pairs(core) do
  if k:sub(1, 1) ~= "_" then M[k] = v end
end

M._VERSION = "moongrad scm"
M.autograd = require "moongrad.autograd"
M.nn = require "moongrad.nn"
M.optim = require "moongrad.optim"
M.data = require "moongrad.data"
M.plot = require "moongrad.plot"
-- warnings (mse_loss with shapes that broadcast, ...): to stderr, or to a handler (moongrad.util)
M.set_warn_handler = require("moongrad.util").set_warn_handler

-- the training loops (training_loop, train) are functions of mg itself
for k, v in pairs(require "moongrad.train") do M[k] = v end
-- mg.save / mg.load (safetensors)
M.save, M.load = require("moongrad.serialize").save, require("moongrad.serialize").load

return M
