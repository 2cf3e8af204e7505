-- oom_script.lua: the work that spec/hosts/oom_host.c runs with its N-th allocation failing.
-- Tensors made, indexed and viewed; forward and backward of a small MLP with CrossEntropyLoss; an
-- Adam step; mg.save and mg.load (a relative path: the host runs it in a scratch directory); and
-- tostring. No pcall: the first error ends the run. Everything made is kept in KEEP, which
-- OOM_CHECK (run by the host after a failed run, with allocation working again) checks: every
-- tensor whole (core._check_invariants) and printable.
-- luacheck: globals KEEP OOM_CHECK
KEEP = {}
local core = require "moongrad.core"
function OOM_CHECK()
  for _, v in pairs(KEEP) do
    if core.is_tensor(v) then
      core._check_invariants(v)
      tostring(v)
    end
  end
end
local mg = require "moongrad"
mg.manual_seed(0)

-- the host's buffers (mg_push_host_tensor), when the host managed to hand them over: written in
-- place, and one closed (its release runs then, and not again at lua_close)
-- luacheck: globals frame1 frame2
if frame1 then
  frame1:add_(1)
  KEEP.frame_double = frame1 * 2
end
if frame2 then
  local f <close> = frame2
  frame2 = nil
  KEEP.frame_sum = f:sum()
end

-- making, indexing, viewing
local a = mg.tensor({{1, 2, 3}, {4, 5, 6}})
KEEP.a = a
local b = mg.arange(12):reshape(3, 4)
KEEP.b = b
KEEP.row = b[2]
KEEP.elem = b[2][3]
KEEP.t = b:t()
KEEP.slice = b:narrow(2, 2, 2)
KEEP.view = b:view(4, 3):contiguous()
KEEP.sum = (a * 2 + 1):sum(2)
KEEP.mm = a:matmul(mg.ones(3, 2))
KEEP.big = mg.randn(40, 50):matmul(mg.randn(50, 30)) -- past the small-product path of matmul
KEEP.cat = mg.cat({a, a * 3}, 1)
KEEP.stack = mg.stack({a, a}, 1)
KEEP.masked = b:masked_fill(b:gt(4), 0)
b[1] = 7
b[2][3] = -1
b[3] = mg.tensor({1, 2, 3, 4})
KEEP.gathered = b:index_select(1, mg.tensor({3, 1}, {dtype = "int64"}))
KEEP.expanded = a:sum(1):expand(4, 3)
KEEP.chunks = b:split(2, 2)

-- a small MLP, forward and backward
local nn = mg.nn
-- (sizes past 1 KB, so that backward's temporaries come from the allocator)
local model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
KEEP.model = model
local x = mg.randn(20, 16)
KEEP.x = x
local y = mg.tensor({1, 2, 3, 2, 1, 3, 3, 2, 1, 1, 2, 3, 1, 2, 3, 2, 1, 3, 3, 2}, {dtype = "int64"})
local loss = nn.CrossEntropyLoss()(model(x), y)
KEEP.loss = loss
loss:backward()

-- an optimizer step
local opt = mg.optim.Adam(model:parameters(), {lr = 0.01})
opt:step()
opt:zero_grad()

-- save and load
mg.save("oom.safetensors", model:state_dict(), {note = "oom"})
local loaded = mg.load("oom.safetensors")
KEEP.loaded = loaded
for k, v in pairs(loaded) do KEEP["loaded." .. k] = v end

-- more paths that hold memory across calls: a blocked matmul (packing buffers) and its backward,
-- nested-table conversion, dtype conversions, reductions, softmax, a data loader, SGD with momentum,
-- gradient clipping, no_grad, read_csv, and save / load of a nested table
local w = mg.randn(96, 80, {requires_grad = true})
local big = (mg.randn(160, 96):matmul(w)):tanh():mean()
big:backward()
KEEP.wgrad = w.grad
KEEP.nested = mg.tensor({{{1.5, 2}, {3, 4}}, {{5, 6}, {7, 8}}}, {dtype = "float64"})
KEEP.int = KEEP.nested:to("int64"):sum(1)
KEEP.stats = mg.stack({KEEP.nested:mean(), KEEP.nested:std(), KEEP.nested:max()})
KEEP.argmax = KEEP.nested:argmax(3)
KEEP.softmax = mg.F.softmax(mg.randn(6, 5), 2)
local sgd = mg.optim.SGD(model:parameters(), {lr = 0.1, momentum = 0.9})
local loader = mg.data.DataLoader({x, y}, {batch_size = 8, shuffle = true})
for xb, yb in loader do
  sgd:zero_grad()
  local l = nn.CrossEntropyLoss()(model(xb), yb)
  l:backward()
  nn.utils.clip_grad_norm_(model:parameters(), 1.0)
  sgd:step()
end
mg.no_grad(function() KEEP.pred = model(x):argmax(2) end)
local csv = assert(io.open("oom.csv", "w"))
csv:write("a,b,c\n1,2,3\n4,5,6\n")
csv:close()
KEEP.csv = mg.data.read_csv("oom.csv")
mg.save("oom_nested.safetensors", {model = model:state_dict(), step = 3, names = {"a", "b"}})
KEEP.nested_loaded = mg.load("oom_nested.safetensors")

-- printing
KEEP.text = tostring(b) .. tostring(loss) .. tostring(model) .. tostring(mg.randn(100, 100))
return #KEEP.text
