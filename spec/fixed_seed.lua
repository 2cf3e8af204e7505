-- A fixed-seed workload whose every result must be bit-identical in every build of moongrad:
-- `make`, a build with the user's CFLAGS=-march=native, `make static` linked into a host, the
-- luarocks install (spec/builds_spec.lua and spec/install_check.lua compare them). Not a spec itself:
--   lua5.4 -e 'io.write(dofile "spec/fixed_seed.lua")'     (with moongrad on the paths)
-- Returns the report as text: per quantity its element count, the first element and a Lua-side sum
-- as hex floats (%a), and an FNV-1a hash of every element's bytes, so one differing bit shows.
local mg = require "moongrad"
local nn, optim, F = mg.nn, mg.optim, mg.F

mg.set_num_threads(1)
local lines = {}

local function flat(t, out)
  for _, v in ipairs(t) do
    if type(v) == "table" then flat(v, out) else out[#out + 1] = v end
  end
  return out
end

local function report(name, x)
  local values
  if mg.is_tensor(x) then
    values = x:dim() == 0 and {x:item()} or flat(x:detach():to("float64"):totable(), {})
  else
    values = {x}
  end
  local hash, sum = -3750763034362895579, 0.0 -- FNV-1a offset basis (0xcbf29ce484222325)
  for _, v in ipairs(values) do
    for i = 1, 8 do
      hash = (hash ~ string.byte(string.pack("<d", v), i)) * 1099511628211
    end
    sum = sum + v
  end
  lines[#lines + 1] = string.format("%-24s n=%-5d first=%-24a sum=%-24a fnv=%016x",
    name, #values, values[1], sum, hash)
end

-- the generator, in both float dtypes and the integer draws
mg.manual_seed(42)
local r64 = mg.randn(1000, {dtype = "float64"})
report("randn f64", r64)
report("randn f64 :sum()", r64:sum())
local r32 = mg.randn(1000)
report("randn f32", r32)
report("randn f32 :sum()", r32:sum())
report("rand f32", mg.rand(257))
report("rand f64", mg.rand(257, {dtype = "float64"}))
report("randint", mg.randint(0, 1000, {64}):to("float64"))
report("randperm", mg.randperm(50):to("float64"))
report("normal_", mg.empty(300, {dtype = "float64"}):normal_(2, 3))
report("uniform_", mg.empty(300):uniform_(-1, 1))

-- reductions and elementwise math
local a = mg.randn(37, 53)
report("sum/mean/var", mg.stack{a:sum(), a:mean(), a:var(), a:std(), a:norm()})
report("sum(dim)", a:sum(2))
report("cumsum", a:cumsum(1))
report("prod", (a:narrow(1, 1, 3) * 0.5 + 1):prod(1))
report("exp/log/tanh", a:exp() + (a:abs() + 1):log() * a:tanh() - a:sigmoid():sqrt())
report("a * b + c", a * a:t():contiguous():t() + a:sin())

-- products: the gemm at sizes with edges, a gemv, float64
local b = mg.randn(53, 71)
report("matmul f32", a:matmul(b))
report("matmul f64", a:double():matmul(b:double()))
report("gemv", a:matmul(mg.randn(53)))
report("matmul 128x96x80", mg.randn(128, 96):matmul(mg.randn(96, 80)))

-- softmax / cross-entropy
local logits = mg.randn(32, 10) * 3
report("softmax", F.softmax(logits, 2))
report("log_softmax", F.log_softmax(logits, 1))
local target = mg.randint(1, 11, {32})
report("cross_entropy", F.cross_entropy(logits, target))

-- a few Adam steps of a small MLP
mg.manual_seed(7)
local model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4))
local opt = optim.Adam(model:parameters(), {lr = 1e-2})
local X, y = mg.randn(64, 16), mg.randint(1, 5, {64})
local losses = {}
for step = 1, 5 do
  local loss = F.cross_entropy(model(X), y)
  opt:zero_grad()
  loss:backward()
  opt:step()
  losses[step] = loss:item()
end
report("MLP losses", mg.tensor(losses, {dtype = "float64"}))
for i, p in ipairs(model:parameters()) do report("MLP param " .. i, p) end

return table.concat(lines, "\n") .. "\n"
