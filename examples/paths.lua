-- Each example starts with dofile(here .. "paths.lua"): once `make` has built this clone, its
-- moongrad (lua/ and build/) comes before any installed one, from whichever directory the example
-- is run (`lua5.4 examples/optimizers.lua`, or `lua5.4 optimizers.lua` inside examples/).
-- Without a build, `require "moongrad"` finds the installed module (luarocks; see the README).
-- A process that has loaded moongrad already (a spec, a host) keeps the one it chose.
local root = (debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "../"
local built = not package.loaded.moongrad and io.open(root .. "build/moongrad/core.so")
if built then
  built:close()
  if not package.path:find(root .. "lua/", 1, true) then
    package.path = root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. package.path
    package.cpath = root .. "build/?.so;" .. package.cpath
  end
end
