-- moongrad.train (being written)
local M = {}
return M
