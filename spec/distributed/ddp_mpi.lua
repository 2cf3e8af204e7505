-- DistributedDataParallel under mpirun (make test-mpi: -np 1, 2, 3 and 4 --oversubscribe): N ranks,
-- each on its shard of every batch, give the parameters of 1 process on the whole batch.
local mg = require "moongrad"
local dist = require "moongrad.distributed"

if not dist.is_initialized() then dist.init_process_group{ backend = "mpi", timeout = 30 } end
local rank, world = dist.get_rank(), dist.get_world_size()
local DDP = mg.nn.parallel.DistributedDataParallel

local BATCH = 24 -- divides by 1, 2, 3, 4

local function net(dtype, seed)
  mg.manual_seed(seed)
  local m = mg.nn.Sequential(mg.nn.Linear(8, 16), mg.nn.Tanh(), mg.nn.Linear(16, 12), mg.nn.Tanh(),
    mg.nn.Linear(12, 3))
  return m:to(dtype)
end

local function data(dtype)
  mg.manual_seed(7)
  return mg.randn(BATCH, 8, { dtype = dtype }), mg.randn(BATCH, 3, { dtype = dtype })
end

-- this rank's rows of x
local function shard(x)
  local per = BATCH // world
  return x:narrow(1, rank * per + 1, per)
end

local function max_rel(a, b)
  local worst = 0
  for i = 1, #a do
    local d = (a[i] - b[i]):abs():max():item() / b[i]:abs():max():item()
    if d > worst then worst = d end
  end
  return worst
end

-- k steps of `opt_name` with DDP on shards, and with one model on the whole batch
local function train_both(dtype, opt_name, k, as_view)
  local x, y = data(dtype)
  local ref = net(dtype, 1)
  -- the broadcast makes them equal
  local model = DDP(net(dtype, 1 + rank), { bucket_cap_mb = 0.001, gradient_as_bucket_view = as_view })
  local make = function(params)
    if opt_name == "Adam" then return mg.optim.Adam(params, { lr = 0.01 }) end
    return mg.optim.SGD(params, { lr = 0.1, momentum = 0.9 })
  end
  local opt, ropt = make(model:parameters()), make(ref:parameters())
  for _ = 1, k do
    opt:zero_grad()
    mg.F.mse_loss(model(shard(x)), shard(y)):backward()
    opt:step()
    ropt:zero_grad()
    mg.F.mse_loss(ref(x), y):backward()
    ropt:step()
  end
  return model, ref
end

local function same_everywhere(params)
  for _, p in ipairs(params) do
    for _, u in ipairs(dist.all_gather({}, p:detach())) do assert.same(p:totable(), u:totable()) end
  end
end

describe("DistributedDataParallel", function()
  it("broadcasts rank 0's parameters at construction", function()
    local model = DDP(net("float32", 50 + rank))
    local expect = net("float32", 50)
    for i, p in ipairs(model:parameters()) do assert.same(expect:parameters()[i]:totable(), p:totable()) end
    same_everywhere(model:parameters())
  end)

  it("k steps of SGD and Adam on N ranks = 1 process on the whole batch (float64: 1e-12 relative)", function()
    for _, opt_name in ipairs({ "SGD", "Adam" }) do
      local model, ref = train_both("float64", opt_name, 5)
      assert.is_true(max_rel(model:parameters(), ref:parameters()) < 1e-12, opt_name)
      same_everywhere(model:parameters())
    end
  end)

  it("float32: within float32 tolerance, and the same bits on every rank", function()
    for _, opt_name in ipairs({ "SGD", "Adam" }) do
      local model, ref = train_both("float32", opt_name, 5)
      assert.is_true(max_rel(model:parameters(), ref:parameters()) < 1e-5, opt_name)
      same_everywhere(model:parameters())
    end
  end)

  it("gradient_as_bucket_view: .grad becomes a view of its bucket, the same bits as the copies", function()
    for _, opt_name in ipairs({ "SGD", "Adam" }) do
      local a = train_both("float32", opt_name, 4)
      local b = train_both("float32", opt_name, 4, true)
      for i, p in ipairs(a:parameters()) do assert.same(p:totable(), b:parameters()[i]:totable()) end
      local g = b:parameters()[1].grad
      local x, y = data("float32")
      mg.F.mse_loss(b(shard(x)), shard(y)):backward() -- accumulates in place, in the bucket
      assert.is_true(rawequal(g, b:parameters()[1].grad))
    end
    local model = DDP(net("float32", 1), { gradient_as_bucket_view = true })
    assert.is_nil(model:parameters()[1].grad) -- no gradient before the first backward
  end)

  it(".grad is the all_reduce sum of the ranks' gradients divided by the world size, to the bit", function()
    for _, dtype in ipairs({ "float32", "float64" }) do
      local x, y = data(dtype)
      local plain = net(dtype, 1)
      mg.F.mse_loss(plain(shard(x)), shard(y)):backward()
      for _, as_view in ipairs({ false, true }) do
        local model = DDP(net(dtype, 1), { gradient_as_bucket_view = as_view })
        mg.F.mse_loss(model(shard(x)), shard(y)):backward()
        for i, p in ipairs(model:parameters()) do
          local want = plain:parameters()[i].grad:clone()
          dist.all_reduce(want)
          assert.same(want:div(world):totable(), p.grad:totable())
        end
      end
    end
  end)

  it("repeated runs give bit-identical parameters", function()
    local a = train_both("float32", "Adam", 3)
    local b = train_both("float32", "Adam", 3)
    for i, p in ipairs(a:parameters()) do assert.same(p:totable(), b:parameters()[i]:totable()) end
  end)

  it("packs gradients into buckets (last parameters first) and starts some during backward", function()
    local model = DDP(net("float32", 1), { bucket_cap_mb = 0.0004 }) -- 0.0004 MB = 419 bytes
    local buckets = model:_buckets()
    assert.is_true(#buckets >= 3)
    local total = 0
    for _, b in ipairs(buckets) do total = total + b.numel end
    assert.equal(8 * 16 + 16 + 16 * 12 + 12 + 12 * 3 + 3, total)
    -- last parameters first, up to 419 bytes: the last Linear's bias and weight, the one before's bias
    -- (51 floats, 204 bytes); its 12x16 weight (768 bytes) would pass the cap
    assert.equal(3 + 12 * 3 + 12, buckets[1].numel)
    assert.equal(12 * 16, buckets[2].numel)
    local x, y = data("float32")
    mg.F.mse_loss(model(shard(x)), shard(y)):backward()
    local pass = model:_last_pass()
    assert.equal(#buckets, pass.buckets)
    assert.is_true(pass.early >= 1, "no bucket started before backward ended")
    local one = DDP(net("float32", 1)) -- 25 MB: a single bucket
    assert.equal(1, #one:_buckets())
  end)

  it("no_sync (a <close> guard and a function) accumulates locally; the next backward averages all", function()
    local x, y = data("float64")
    local model = DDP(net("float64", 1))
    local ref = net("float64", 1)
    local half = BATCH // 2
    local function micro(m, xs, ys) return mg.F.mse_loss(m(xs), ys) end
    -- 2 micro-batches per rank: the first halves of each shard without sync, the second halves synced
    local sx, sy = shard(x), shard(y)
    local h = sx.shape[1] // 2
    do
      local _ <close> = model:no_sync()
      micro(model, sx:narrow(1, 1, h), sy:narrow(1, 1, h)):backward()
    end
    local local_grad = model:parameters()[1].grad:clone()
    micro(model, sx:narrow(1, h + 1, h), sy:narrow(1, h + 1, h)):backward()
    -- the reference: the same micro-batches over every rank's rows, summed over micro-batches
    for r = 0, world - 1 do
      local per = BATCH // world
      local rx, ry = x:narrow(1, r * per + 1, per), y:narrow(1, r * per + 1, per)
      micro(ref, rx:narrow(1, 1, h), ry:narrow(1, 1, h)):backward()
      micro(ref, rx:narrow(1, h + 1, h), ry:narrow(1, h + 1, h)):backward()
    end
    for i, p in ipairs(model:parameters()) do
      local expect = ref:parameters()[i].grad / world
      assert.is_true(((p.grad - expect):abs():max():item()) <= 1e-12 * expect:abs():max():item())
    end
    assert.is_true(half > 0)
    -- the function form: no communication inside (a rank-dependent gradient stays local)
    model:zero_grad()
    model:no_sync(function() micro(model, sx, sy):backward() end)
    local g = model:parameters()[1].grad
    assert.is_true(g:abs():sum():item() > 0)
    assert.is_true(local_grad:abs():sum():item() > 0)
    model:zero_grad()
  end)

  it("parameters without a gradient: nil stays nil; used on some ranks only: averaged with zeros", function()
    local Two = mg.nn.Module:extend("Two")
    function Two:init()
      self.a = mg.nn.Linear(2, 1)
      self.b = mg.nn.Linear(2, 1)   -- used on rank 0 only
      self.c = mg.nn.Linear(2, 1)   -- never used
    end
    function Two:forward(x)
      local out = self.a(x)
      if rank == 0 then out = out + self.b(x) end
      return out
    end
    mg.manual_seed(3)
    local model = DDP(Two(), { bucket_cap_mb = 0.00001 })
    local x = mg.ones(1, 2)
    model(x):sum():backward()
    local inner = model.module
    assert.same({ { 1, 1 } }, inner.a.weight.grad:totable())
    local avg = (mg.tensor(1.0) / world):item() -- in float32, as DDP averages (3 ranks: not 1 / 3 exactly)
    assert.same({ { avg, avg } }, inner.b.weight.grad:totable())
    assert.is_nil(inner.c.weight.grad)
    assert.is_nil(inner.c.bias.grad)
    -- gradient_as_bucket_view: a parameter no rank used keeps what its .grad (a view) held
    mg.manual_seed(3)
    model = DDP(Two(), { bucket_cap_mb = 0.00001, gradient_as_bucket_view = true })
    inner = model.module
    inner.c.weight.grad = mg.full({ 1, 2 }, 5)
    model(x):sum():backward()
    model(x):sum():backward()
    assert.same({ { 2, 2 } }, inner.a.weight.grad:totable())
    -- rank 0 accumulated 1/world + 1; the others, which did not use it, contribute zeros (not the
    -- average their .grad held)
    local b = ((mg.tensor(1.0) / world + 1) / world):item()
    assert.same({ { b, b } }, inner.b.weight.grad:totable())
    assert.same({ { 5, 5 } }, inner.c.weight.grad:totable())
    assert.is_nil(inner.c.bias.grad)
  end)

  it("checkpoints: rank 0 writes model and optimizer state; after a barrier any rank, and 1 process, resume", function()
    -- a file name every rank knows: rank 0's, broadcast as bytes
    local name = rank == 0 and os.tmpname() or ""
    local len = mg.tensor({ #name }, { dtype = "int64" })
    dist.broadcast(len, 0)
    local bytes = mg.zeros(len[1], { dtype = "int64" })
    if rank == 0 then for i = 1, #name do bytes[i] = name:byte(i) end end
    dist.broadcast(bytes, 0)
    local chars = {}
    for i = 1, len[1] do chars[i] = string.char(bytes[i]) end
    local path = table.concat(chars)
    local x, y = data("float64")
    local function step(model, opt, xs, ys)
      opt:zero_grad()
      mg.F.mse_loss(model(xs), ys):backward()
      opt:step()
    end
    -- 6 steps without a break, and 3 + checkpoint + 3
    local straight = DDP(net("float64", 1))
    local sopt = mg.optim.Adam(straight:parameters(), { lr = 0.01 })
    for _ = 1, 6 do step(straight, sopt, shard(x), shard(y)) end
    local first = DDP(net("float64", 1))
    local fopt = mg.optim.Adam(first:parameters(), { lr = 0.01 })
    for _ = 1, 3 do step(first, fopt, shard(x), shard(y)) end
    if rank == 0 then mg.save(path, { model = first.module:state_dict(), optimizer = fopt:state_dict() }) end
    dist.barrier() -- nobody reads before rank 0 has written
    local ck = mg.load(path)
    -- resumed data-parallel, from a model built with another seed
    local inner = net("float64", 99)
    inner:load_state_dict(ck.model)
    local resumed = DDP(inner)
    local ropt = mg.optim.Adam(resumed:parameters(), { lr = 0.01 })
    ropt:load_state_dict(ck.optimizer)
    for _ = 1, 3 do step(resumed, ropt, shard(x), shard(y)) end
    for i, p in ipairs(straight:parameters()) do assert.same(p:totable(), resumed:parameters()[i]:totable()) end
    -- resumed by one process on the whole batch (world size 1)
    local alone = net("float64", 98)
    alone:load_state_dict(ck.model)
    local aopt = mg.optim.Adam(alone:parameters(), { lr = 0.01 })
    aopt:load_state_dict(ck.optimizer)
    for _ = 1, 3 do step(alone, aopt, x, y) end
    assert.is_true(max_rel(straight:parameters(), alone:parameters()) < 1e-12)
    dist.barrier() -- every rank has read it
    if rank == 0 then os.remove(path) end
  end)

  it("mg.train with a DDP model and a DistributedSampler: rank 0 prints, the logged losses are the whole batch's", function()
    local x, y = data("float64")
    local sampler = mg.data.DistributedSampler(BATCH, { shuffle = false })
    local per_rank = 8 // world -- a global batch of 8 rows (6 on 3 ranks)
    local loader = mg.data.DataLoader(sampler:dataset({ x, y }), { batch_size = per_rank })
    local model = DDP(net("float64", 1))
    local printed = {}
    local print0 = print
    _G.print = function(...) printed[#printed + 1] = table.concat({ ... }, " ") end
    local ok, history = pcall(mg.train, { model = model, loss_fn = mg.F.mse_loss, data = loader, epochs = 3,
      optimizer = mg.optim.SGD(model:parameters(), { lr = 0.1 }), progress = false })
    _G.print = print0
    assert(ok, history)
    -- one process, the same global batches (each rank's per_rank rows of the strided shards)
    local ref = net("float64", 1)
    local ref_history = mg.train{ model = ref, loss_fn = mg.F.mse_loss, data = { x, y }, batch_size = per_rank * world,
      epochs = 3,
      optimizer = mg.optim.SGD(ref:parameters(), { lr = 0.1 }), progress = false, log_every = 0 }
    for e = 1, 3 do
      local a, b = history.train_loss[e], ref_history.train_loss[e]
      assert.is_true(math.abs(a - b) <= 1e-12 * b, e .. ": " .. a .. " vs " .. b)
    end
    if world > 1 then -- the same global batches in another order within each: same losses, not same bits
      assert.is_true(max_rel(model:parameters(), ref:parameters()) < 1e-12)
    end
    if rank == 0 then
      assert.equal(3, #printed)
      assert.matches("^Epoch 3, Training loss ", printed[3])
    else
      assert.same({}, printed)
    end
  end)

  it("a model that differs across ranks is an error on every rank, not a hang", function()
    if world == 1 then return end
    local ok, err = pcall(DDP, mg.nn.Linear(rank == 1 and 3 or 2, 2))
    assert.is_false(ok)
    assert.matches("'broadcast': rank 1 passed a float32 tensor of shape {2,3} where rank 0 passed float32 {2,2}",
      err, 1, true)
  end)

  it("errors: not a module, a bad bucket_cap_mb, an unknown option", function()
    assert.has_error(function() DDP(3) end, "bad argument #1 to 'DistributedDataParallel' (Module expected, got number)")
    assert.has_error(function() DDP(mg.nn.Linear(1, 1), { bucket_cap_mb = 0 }) end,
      "bad argument #2 to 'DistributedDataParallel' (bucket_cap_mb must be a positive number, got 0)")
    assert.has_error(function() DDP(mg.nn.Linear(1, 1), { find_unused_parameters = true }) end,
      "bad argument #2 to 'DistributedDataParallel' (unknown option 'find_unused_parameters' (valid: "
        .. "broadcast_buffers, bucket_cap_mb, gradient_as_bucket_view))")
    assert.has_error(function() DDP(mg.nn.Linear(1, 1), { gradient_as_bucket_view = 1 }) end,
      "bad argument #2 to 'DistributedDataParallel' (gradient_as_bucket_view must be a boolean, got number)")
  end)
end)

describe("DistributedDataParallel's buckets in shared memory", function()
  local g = dist._group()
  local shm = world > 1 and os.getenv("MOONGRAD_DIST_SHM_KB") ~= "0" -- every rank of make test-mpi shares the node

  it("are made when every rank shares the node (world > 1), and not otherwise", function()
    local t = g:shared_tensor(10, mg.zeros(0, { dtype = "float64" }))
    if not shm then
      assert.is_nil(t)
    else
      assert.equal("float64", t.dtype)
      assert.same({ 10 }, t.shape)
      assert.same({ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, t:totable())
    end
    for _, b in ipairs(DDP(net("float32", 1), { bucket_cap_mb = 0.0004 }):_buckets()) do
      assert.equal(shm, b.shared)
    end
  end)

  it("reduce in place: the sum in rank order divided by the world in the same pass, max, min; " ..
     "the bits of all_reduce", function()
    if not shm then return end
    for _, dtype in ipairs({ "float32", "float64" }) do
      for _, n in ipairs({ 1, 17, 5000, 300001 }) do
        local function mine(r)
          mg.manual_seed(400 + r)
          return mg.randn(n, { dtype = dtype }) * (10 ^ (r % 3 * 3))
        end
        local want = mine(rank)
        dist.all_reduce(want) -- the staging path, rank order
        local t = g:shared_tensor(n, mg.zeros(0, { dtype = dtype }))
        t:copy_(mine(rank))
        assert.is_true(g:iallreduce(0, t, "sum", world) == (world > 1))
        g:wait(0)
        assert.same(want:div(world):totable(), t:totable())
        t:copy_(mine(rank))
        assert.is_false(g:iallreduce(1, t, "sum")) -- no divisor: the plain sum
        g:wait(1)
        local sum = mine(0)
        for r = 1, world - 1 do sum = sum + mine(r) end
        assert.same(sum:totable(), t:totable())
        for _, op in ipairs({ "max", "min" }) do
          local m = mine(rank)
          dist.all_reduce(m, { op = op })
          t:copy_(mine(rank))
          assert.is_false(g:iallreduce(2, t, op, world))
          g:wait(2)
          assert.same(m:totable(), t:totable())
        end
      end
    end
    -- an integer bucket: a plain sum (nothing divided)
    local t = g:shared_tensor(33, mg.zeros(0, { dtype = "int64" }))
    t:copy_(mg.arange(0, 33, { dtype = "int64" }) + rank)
    assert.is_false(g:iallreduce(0, t, "sum", world))
    g:wait(0)
    assert.is_true(mg.equal(mg.arange(0, 33, { dtype = "int64" }) * world + world * (world - 1) // 2, t))
  end)

  it("several in flight, interleaved with all_reduce; a view or a plain tensor takes the staging path", function()
    if not shm then return end
    local a = g:shared_tensor(1000, mg.zeros(0))
    local b = g:shared_tensor(70000, mg.zeros(0))
    a:fill_(rank + 1)
    b:fill_(2 * (rank + 1))
    assert.is_true(g:iallreduce(0, a, "sum", world))
    local plain = mg.full({ 5 }, rank + 1)
    dist.all_reduce(plain)
    assert.is_true(g:iallreduce(1, b, "sum", world))
    local part = a:narrow(1, 1, 10)
    g:wait(1)
    g:wait(0)
    local s = world * (world + 1) / 2
    assert.is_true(mg.equal(mg.full({ 5 }, s), plain))
    assert.is_true(mg.equal(mg.full({ 1000 }, s / world), a))
    assert.is_true(mg.equal(mg.full({ 70000 }, 2 * s / world), b))
    part:fill_(rank + 1) -- a view of a bucket: the staging path, not divided
    assert.is_false(g:iallreduce(0, part, "sum", world))
    g:wait(0)
    assert.is_true(mg.equal(mg.full({ 10 }, s), part))
  end)

  it("leave nothing in /dev/shm, and go away with their tensors", function()
    if not shm then return end
    for _ = 1, 20 do g:shared_tensor(100000, mg.zeros(0)) end
    collectgarbage()
    collectgarbage()
    dist.barrier()
    local ls = io.popen("ls /dev/shm")
    local names = ls:read("a")
    ls:close()
    assert.is_nil(names:find("moongrad%-dist"))
  end)

  it("errors: a size that is not positive, a bad divisor", function()
    assert.has_error(function() g:shared_tensor(0, mg.zeros(0)) end,
      "bad argument #1 to 'shared_tensor' (a positive size expected)")
    assert.has_error(function() g:iallreduce(0, mg.zeros(3), "sum", 0) end,
      "bad argument #4 to 'iallreduce' (a divisor from 1 to 2^24 expected)")
  end)
end)
