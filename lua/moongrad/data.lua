-- moongrad.data (being written)
local M = {}
return M
