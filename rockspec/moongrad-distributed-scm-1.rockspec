-- moongrad.distributed's C half (data-parallel training over Open MPI), a rock of its own so that
-- moongrad installs without MPI. Needs Open MPI's headers and mpirun (Debian 12:
-- apt-get install libopenmpi-dev openmpi-bin). From the repository root:
--   luarocks --lua-version=5.4 make rockspec/moongrad-distributed-scm-1.rockspec
-- (the Lua half, moongrad.distributed and moongrad.nn.parallel, comes with moongrad itself)
rockspec_format = "3.0"
package = "moongrad-distributed"
version = "scm-1"
source = {
  url = "git+https://github.com/moongrad/moongrad.git",
}
description = {
  summary = "Data-parallel training for moongrad over Open MPI (DistributedDataParallel, collectives)",
  detailed = [[
require "moongrad.distributed": PyTorch's torch.distributed names (init_process_group, all_reduce,
broadcast, all_gather, barrier) over Open MPI, with a deadline on every collective, for
mg.nn.parallel.DistributedDataParallel and mg.data.DistributedSampler.
]],
  homepage = "https://github.com/moongrad/moongrad",
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "moongrad",
}
build = {
  -- the Makefile's `distributed` target (MPI's flags from pkg-config ompi-c or mpicc), installed
  -- by `install-distributed` beside moongrad's core.so
  type = "make",
  build_target = "distributed",
  install_target = "install-distributed",
  variables = {
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    BUILD = "build/luarocks",
  },
  install_variables = {
    LIBDIR = "$(LIBDIR)",
    LUADIR = "$(LUADIR)",
    BUILD = "build/luarocks",
  },
}
