-- Every build of moongrad computes the same numbers, bit for bit: spec/fixed_seed.lua (the
-- generator, reductions, elementwise math, products, softmax / cross-entropy, Adam steps of an MLP)
-- prints hex floats and hashes, and its output from `make`'s build is compared with
--   - a build with a user's CFLAGS=-march=native (FMA, AVX-512 here), in build/native/;
--   - the amalgamation, compiled with -march=native too, in a host (build/native/host-amalg);
--   - `make static` linked into a host (build/host-static).
-- The luarocks install is compared by spec/install_check.lua, which .ci/run runs against it.
-- #slow: compiles two builds (about 30 s on 2 cores); `make asan` leaves it out.

-- the Lua layer of this tree and nothing else (LUA_PATH_5_4 would win over LUA_PATH)
local H = require "helper"
local LUA_PATH = "env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH='lua/?.lua;lua/?/init.lua' "
local SCRIPT = [['io.write(dofile "spec/fixed_seed.lua")']]
-- a make of its own: not a child of `make test`'s jobserver (its -j2 would be refused, with a warning)
local MAKE = "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s "

local function run(cmd)
  local out = H.shell(cmd)
  local body, rc = out:match("^(.-)rc=(%d+)\n$")
  assert.equal("0", rc, cmd .. "\n" .. out)
  return body
end

-- the first differing line, so a failure names the quantity
local function same_lines(expected, actual, what)
  local e, a = {}, {}
  for l in expected:gmatch("[^\n]+") do e[#e + 1] = l end
  for l in actual:gmatch("[^\n]+") do a[#a + 1] = l end
  assert.truthy(#e >= 30, "the make build printed too little:\n" .. expected)
  for i = 1, math.max(#e, #a) do
    if e[i] ~= a[i] then
      error(string.format("%s differs from the make build at line %d:\n  make: %s\n  %s: %s",
        what, i, tostring(e[i]), what, tostring(a[i])), 0)
    end
  end
end

describe("every build gives the same numbers #slow", function()
  local reference
  setup(function()
    run(MAKE .. "build/moongrad/core.so")
    reference = run(LUA_PATH .. "LUA_CPATH='build/?.so' lua5.4 -e " .. SCRIPT)
  end)

  it("with the user's CFLAGS=-march=native, as a module and as the amalgamation in a host", function()
    run(MAKE .. "-j2 BUILD=build/native CFLAGS=-march=native build/native/moongrad/core.so build/native/host-amalg")
    same_lines(reference, run(LUA_PATH .. "LUA_CPATH='build/native/?.so' lua5.4 -e " .. SCRIPT), "-march=native")
    same_lines(reference, run(LUA_PATH .. "build/native/host-amalg " .. SCRIPT), "the amalgamation (-march=native)")
  end)

  it("with `make static` linked into a host", function()
    run(MAKE .. "build/host-static")
    same_lines(reference, run(LUA_PATH .. "build/host-static " .. SCRIPT), "make static")
  end)
end)
