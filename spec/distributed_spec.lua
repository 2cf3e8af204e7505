-- moongrad.distributed without a job (plain `make test`, no Open MPI needed): what needs no process
-- group. The collectives themselves run under mpirun: spec/distributed/ (make test-mpi).
local mg = require "moongrad"
local dist = require "moongrad.distributed"

describe("moongrad.distributed before init_process_group", function()
  it("is loaded apart: requiring moongrad loads neither it nor MPI", function()
    assert.is_table(mg.nn.parallel)
    assert.is_function(mg.nn.parallel.DistributedDataParallel)
    assert.is_false(dist.is_initialized())
    assert.is_nil(dist._group())
  end)

  it("every collective names itself and what to call first", function()
    for _, name in ipairs({ "get_rank", "get_world_size", "barrier", "destroy_process_group" }) do
      assert.has_error(function() dist[name]() end, string.format("'%s': the default process group has not "
        .. "been initialized (call dist.init_process_group first)", name))
    end
    assert.has_error(function() dist.all_reduce(mg.ones(1)) end,
      "'all_reduce': the default process group has not been initialized (call dist.init_process_group first)")
    assert.has_error(function() mg.nn.parallel.DistributedDataParallel(mg.nn.Linear(1, 1)) end,
      "DistributedDataParallel: the default process group has not been initialized (call "
        .. "dist.init_process_group first)")
  end)

  it("init_process_group checks its options", function()
    assert.has_error(function() dist.init_process_group{ backend = "nccl" } end,
      "bad argument #1 to 'init_process_group' (backend must be \"mpi\" or \"host\", got nccl)")
    assert.has_error(function() dist.init_process_group{ timeout = 0 } end,
      "bad argument #1 to 'init_process_group' (timeout must be a positive number of seconds, got 0)")
    assert.has_error(function() dist.init_process_group{ world_size = 2 } end,
      "bad argument #1 to 'init_process_group' (unknown option 'world_size' (valid: backend, timeout))")
  end)
end)

describe("mg.data.DistributedSampler", function()
  local S = mg.data.DistributedSampler

  -- PyTorch 1.13 (checked): list(DistributedSampler(range(10), num_replicas=3, rank=r, shuffle=False)), + 1
  it("without shuffle: strided shards, padded with the start as PyTorch pads", function()
    assert.same({ 1, 4, 7, 10 }, S(10, { num_replicas = 3, rank = 0, shuffle = false }):indices())
    assert.same({ 2, 5, 8, 1 }, S(10, { num_replicas = 3, rank = 1, shuffle = false }):indices())
    assert.same({ 3, 6, 9, 2 }, S(10, { num_replicas = 3, rank = 2, shuffle = false }):indices())
    assert.equal(4, #S(10, { num_replicas = 3, rank = 2 }))
    -- padding longer than the data: range(2) on 5 ranks -> [0, 1, 0, 1, 0]
    assert.same({ 1 }, S(2, { num_replicas = 5, rank = 4, shuffle = false }):indices())
  end)

  it("drop_last: cut to a multiple of the ranks", function()
    -- PyTorch: num_samples = ceil((10 - 3) / 3) = 3
    assert.same({ 1, 4, 7 }, S(10, { num_replicas = 3, rank = 0, shuffle = false, drop_last = true }):indices())
    assert.same({ 3, 6, 9 }, S(10, { num_replicas = 3, rank = 2, shuffle = false, drop_last = true }):indices())
    assert.equal(0, #S(2, { num_replicas = 3, rank = 0, drop_last = true }))
  end)

  it("shuffle: the ranks' shards cover every sample once; a new order per epoch, the same on every rank", function()
    local function shards(epoch, seed)
      local all, seen = {}, {}
      for r = 0, 3 do
        local s = S(20, { num_replicas = 4, rank = r, seed = seed or 0 })
        s:set_epoch(epoch)
        for _, i in ipairs(s:indices()) do
          assert.is_nil(seen[i])
          seen[i] = true
          all[#all + 1] = i
        end
      end
      return all, seen
    end
    local e0, seen = shards(0)
    for i = 1, 20 do assert.is_true(seen[i]) end
    assert.same(e0, (shards(0)))
    assert.are_not.same(e0, (shards(1)))
    assert.are_not.same(e0, (shards(0, 7)))
    local sorted = { table.unpack(e0) }
    table.sort(sorted)
    assert.are_not.same(sorted, e0)
  end)

  it("leaves mg's random generator alone", function()
    mg.manual_seed(5)
    local a = mg.rand(3):totable()
    mg.manual_seed(5)
    S(100, { num_replicas = 2, rank = 1 }):indices()
    assert.same(a, mg.rand(3):totable())
  end)

  it("dataset(): this rank's rows for a DataLoader, following set_epoch", function()
    local X = mg.arange(10, { dtype = "float32" }):view(10, 1)
    local y = mg.arange(10, { dtype = "int64" })
    local s = S(X, { num_replicas = 3, rank = 1, shuffle = false })
    local loader = mg.data.DataLoader(s:dataset({ X, y }), { batch_size = 2 })
    local got = {}
    for xb, yb in loader do
      assert.same({ 2, 1 }, xb.shape)
      for _, v in ipairs(yb:totable()) do got[#got + 1] = v end
    end
    assert.same({ 1, 4, 7, 0 }, got)
    assert.equal(2, #loader)
  end)

  it("errors", function()
    assert.has_error(function() S(10, { num_replicas = 3, rank = 3 }) end,
      "bad argument #2 to 'DistributedSampler' (invalid rank 3, rank should be in the interval [0, 2])")
    assert.has_error(function() S(10, { num_replicas = 0, rank = 0 }) end,
      "bad argument #2 to 'DistributedSampler' (num_replicas must be a positive integer, got 0)")
    assert.has_error(function() S(10) end,
      "bad argument #2 to 'DistributedSampler' (num_replicas not given and no process group is initialized "
        .. "(dist.init_process_group))")
    assert.has_error(function() S("x", { num_replicas = 1, rank = 0 }) end,
      "bad argument #1 to 'DistributedSampler' (a number of samples, a tensor, a list of tensors or a dataset "
        .. "expected, got string)")
    assert.has_error(function() S(3, { num_replicas = 1, rank = 0 }):set_epoch(1.5) end,
      "bad argument #1 to 'set_epoch' (integer expected, got number)")
  end)
end)
