-- moongrad.optim (being written)
local M = {}
return M
