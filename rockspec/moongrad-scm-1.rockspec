-- luarocks --lua-version=5.4 make rockspec/moongrad-scm-1.rockspec   (from the repository root)
-- or, from `make rock`: luarocks --lua-version=5.4 install build/moongrad-scm-1.src.rock
rockspec_format = "3.0"
package = "moongrad"
version = "scm-1"
source = {
  url = "git+https://github.com/moongrad/moongrad.git",
}
description = {
  summary = "Tensors, autograd and training for Lua 5.4, with a fast C core and PyTorch's semantics",
  detailed = [[
moongrad gives Lua 5.4 n-dimensional tensors (float32, float64, int64, bool) with views,
broadcasting, PyTorch-style printing and a per-state random generator, in a C core that keeps no
global state and allocates through the Lua state's allocator, so game and app engines can embed it.
]],
  homepage = "https://github.com/moongrad/moongrad",
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  -- The Makefile builds and installs, so that `luarocks make` / `luarocks install` give the library
  -- `make` gives: its flags (-O3 -fno-math-errno -ffp-contract=off) come after LuaRocks' CFLAGS and
  -- win over them. Every C file of src/ and Lua file of lua/moongrad/ is taken (spec/build_spec.lua).
  type = "make",
  -- both passes get the same compile line, so `make install` finds the objects up to date
  variables = {
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    BUILD = "build/luarocks", -- beside `make`'s build/, not over it
  },
  install_variables = {
    LIBDIR = "$(LIBDIR)",
    LUADIR = "$(LUADIR)",
  },
}
