-- moongrad.plot (being written)
local M = {}
return M
