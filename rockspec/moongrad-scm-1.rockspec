-- luarocks --lua-version=5.4 make rockspec/moongrad-scm-1.rockspec   (from the repository root)
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
  type = "builtin",
  modules = {
    ["moongrad"] = "lua/moongrad/init.lua",
    ["moongrad.autograd"] = "lua/moongrad/autograd.lua",
    ["moongrad.nn"] = "lua/moongrad/nn.lua",
    ["moongrad.optim"] = "lua/moongrad/optim.lua",
    ["moongrad.data"] = "lua/moongrad/data.lua",
    ["moongrad.plot"] = "lua/moongrad/plot.lua",
    ["moongrad.train"] = "lua/moongrad/train.lua",
    ["moongrad.serialize"] = "lua/moongrad/serialize.lua",
    ["moongrad.util"] = "lua/moongrad/util.lua",
    ["moongrad.core"] = {
      -- every C file of src/ (spec/build_spec.lua checks that none is missing)
      sources = {
        "src/bind/args.c",
        "src/bind/autograd.c",
        "src/bind/binary.c",
        "src/bind/convert.c",
        "src/bind/debug.c",
        "src/bind/factory.c",
        "src/bind/functional.c",
        "src/bind/host.c",
        "src/bind/index.c",
        "src/bind/linalg.c",
        "src/bind/module.c",
        "src/bind/optim.c",
        "src/bind/print.c",
        "src/bind/random.c",
        "src/bind/reduce.c",
        "src/bind/serialize.c",
        "src/bind/tensor.c",
        "src/bind/unary.c",
        "src/bind/view.c",
        "src/core/autograd.c",
        "src/core/ctx.c",
        "src/core/iter.c",
        "src/core/pool.c",
        "src/core/print.c",
        "src/core/rng.c",
        "src/core/shape.c",
        "src/core/view.c",
        "src/ops/binary.c",
        "src/ops/copy.c",
        "src/ops/fill.c",
        "src/ops/functional.c",
        "src/ops/gemm.c",
        "src/ops/grad.c",
        "src/ops/index.c",
        "src/ops/linalg.c",
        "src/ops/optim.c",
        "src/ops/reduce.c",
        "src/ops/shape.c",
        "src/ops/unary.c",
      },
      incdirs = { "include" },
      libraries = { "m", "pthread" },
    },
  },
}
