-- moongrad.nn (being written)
local M = {}
return M
