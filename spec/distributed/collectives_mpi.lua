-- moongrad.distributed's collectives, run by every rank under mpirun (make test-mpi: -np 1, 2, 3 and
-- 4 --oversubscribe). Every `it` runs the same collectives in the same order on every rank.
local mg = require "moongrad"
local dist = require "moongrad.distributed"

if not dist.is_initialized() then dist.init_process_group{ backend = "mpi", timeout = 30 } end
local rank, world = dist.get_rank(), dist.get_world_size()

-- every rank's copy of t (a list, rank 0's first)
local function gathered(t) return dist.all_gather({}, t) end

-- t is the same, bit for bit, on every rank
local function same_everywhere(t)
  for _, u in ipairs(gathered(t)) do assert.same(t:totable(), u:totable()) end
end

describe("process group", function()
  it("numbers ranks from 0 as mpirun does", function()
    assert.equal(tonumber(os.getenv("OMPI_COMM_WORLD_SIZE") or 1), world)
    assert.equal(tonumber(os.getenv("OMPI_COMM_WORLD_RANK") or 0), rank)
    assert.is_true(dist.is_initialized())
  end)

  it("refuses a second init_process_group", function()
    assert.has_error(function() dist.init_process_group() end,
      "'init_process_group': the default process group is already initialized")
  end)
end)

describe("all_reduce", function()
  local n = world
  local tri = n * (n + 1) / 2 -- sum over ranks of (rank + 1)

  it("sum, max, min, avg on float32 and float64", function()
    for _, dtype in ipairs({ "float32", "float64" }) do
      local base = mg.tensor({ 1.5, -2, 0.25 }, { dtype = dtype })
      local t = base * (rank + 1)
      dist.all_reduce(t)
      assert.same((base * tri):totable(), t:totable())
      t = base * (rank + 1)
      dist.all_reduce(t, { op = "max" })
      assert.same({ 1.5 * n, -2, 0.25 * n }, t:totable())
      t = base * (rank + 1)
      dist.all_reduce(t, { op = "min" })
      assert.same({ 1.5, -2 * n, 0.25 }, t:totable())
      t = base * (rank + 1)
      dist.all_reduce(t, { op = "avg" })
      assert.same((base * tri / n):totable(), t:totable())
      assert.equal(dtype, t.dtype)
    end
  end)

  it("int64 and bool (sum and max are or, min is and)", function()
    local t = mg.tensor({ rank, -rank, 7 }, { dtype = "int64" })
    dist.all_reduce(t)
    assert.same({ tri - n, n - tri, 7 * n }, t:totable())
    t = mg.tensor({ rank, 5 }, { dtype = "int64" })
    dist.all_reduce(t, { op = "max" })
    assert.same({ n - 1, 5 }, t:totable())
    local b = mg.tensor({ rank == 0, true, false })
    dist.all_reduce(b)
    assert.same({ true, true, false }, b:totable())
    b = mg.tensor({ rank == 0, true, false })
    dist.all_reduce(b, { op = "min" })
    assert.same({ n == 1, true, false }, b:totable())
  end)

  it("works in place on a non-contiguous view, leaving the rest of its storage alone", function()
    local m = mg.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, { dtype = "float64" }) * (rank + 1)
    local view = m:t() -- {3,2}, not contiguous
    assert.is_false(view:is_contiguous())
    dist.all_reduce(view)
    assert.same({ { 1 * tri, 4 * tri }, { 2 * tri, 5 * tri }, { 3 * tri, 6 * tri } }, view:totable())
    assert.same({ { 1 * tri, 2 * tri, 3 * tri }, { 4 * tri, 5 * tri, 6 * tri } }, m:totable())
    local big = mg.zeros(4, 3)
    local col = big:narrow(2, 2, 1)
    col:fill_(rank + 1)
    dist.all_reduce(col)
    assert.same({ 0, tri, 0 }, big[1]:totable())
  end)

  it("gives the same bits on every rank (random float32 and float64 values, sum and avg)", function()
    mg.manual_seed(100 + rank)
    for _, dtype in ipairs({ "float32", "float64" }) do
      for _, op in ipairs({ "sum", "avg" }) do
        local t = mg.randn(1000, { dtype = dtype })
        dist.all_reduce(t, { op = op })
        same_everywhere(t)
      end
    end
  end)

  it("sums in rank order, ((rank 0 + rank 1) + rank 2) + ..., on one node (the shared-memory path)", function()
    -- values whose float32 sum depends on the order: the reference adds every rank's, in rank order
    if os.getenv("MOONGRAD_DIST_SHM_KB") == "0" then return end
    local function mine(r)
      mg.manual_seed(300 + r)
      return mg.randn(5000) * (10 ^ (r % 3 * 3))
    end
    local t = mine(rank)
    dist.all_reduce(t)
    local want = mine(0)
    for r = 1, world - 1 do want = want + mine(r) end
    assert.same(want:totable(), t:totable())
  end)

  it("a tensor larger than the shared-memory chunk (1 MiB) goes through in pieces, each element once", function()
    for _, dtype in ipairs({ "float32", "float64", "int64" }) do
      local t = mg.arange(0, 700001, { dtype = dtype }) + rank
      dist.all_reduce(t)
      local want = mg.arange(0, 700001, { dtype = dtype }) * world + (world * (world - 1) // 2)
      assert.is_true(mg.equal(want, t), dtype)
      t = mg.arange(0, 700001, { dtype = dtype }) * (rank + 1)
      dist.all_reduce(t, { op = "max" })
      assert.is_true(mg.equal(mg.arange(0, 700001, { dtype = dtype }) * world, t), dtype)
    end
  end)

  it("mismatched shapes, dtypes or ops across ranks: the same error on every rank", function()
    if world == 1 then return end
    local ok, err = pcall(dist.all_reduce, mg.zeros(rank == 1 and 3 or 2))
    assert.is_false(ok)
    assert.matches("'all_reduce': rank 1 passed a float32 tensor of shape {3} where rank 0 passed float32 {2} "
      .. "(every rank must pass the same dtype and shape)", err, 1, true)
    ok, err = pcall(dist.all_reduce, mg.zeros(2, { dtype = rank == 1 and "float64" or "float32" }))
    assert.is_false(ok)
    assert.matches("rank 1 passed a float64 tensor of shape {2} where rank 0 passed float32 {2}", err, 1, true)
    ok, err = pcall(dist.all_reduce, mg.zeros(2), { op = rank == 1 and "max" or "sum" })
    assert.is_false(ok)
    assert.matches("'all_reduce': rank 1 passed op 1 where rank 0 passed 0", err, 1, true)
    -- and the group still works
    local t = mg.ones(2)
    dist.all_reduce(t)
    assert.same({ world, world }, t:totable())
  end)

  it("errors: not a tensor, an unknown op, avg of an integer tensor", function()
    assert.has_error(function() dist.all_reduce(3) end, "bad argument #1 to 'all_reduce' (tensor expected, got number)")
    assert.has_error(function() dist.all_reduce(mg.ones(1), { op = "prod" }) end,
      "bad argument #2 to 'all_reduce' (op must be \"sum\", \"max\", \"min\" or \"avg\", got prod)")
    assert.has_error(function() dist.all_reduce(mg.ones(1), { opp = "sum" }) end,
      "bad argument #2 to 'all_reduce' (unknown option 'opp' (valid: op))")
    local ok, err = pcall(dist.all_reduce, mg.ones(1, { dtype = "int64" }), { op = "avg" })
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'all_reduce' (op avg needs a floating point tensor, got int64)", err, 1, true)
  end)
end)

describe("broadcast", function()
  it("copies rank src's tensor to every rank, for every src, any dtype, non-contiguous too", function()
    for src = 0, world - 1 do
      local t = mg.tensor({ { rank, 1 }, { 2, rank } }, { dtype = "int64" })
      dist.broadcast(t, src)
      assert.same({ { src, 1 }, { 2, src } }, t:totable())
      local f = (mg.arange(6, { dtype = "float64" }):view(2, 3) + rank):t()
      dist.broadcast(f, src)
      assert.same((mg.arange(6, { dtype = "float64" }):view(2, 3) + src):t():totable(), f:totable())
    end
  end)

  it("errors: a rank that does not exist, a src that is not an integer, different srcs", function()
    assert.has_error(function() dist.broadcast(mg.ones(1), world) end,
      string.format("bad argument #2 to 'broadcast' (src %d is not a rank of the group (0 to %d))", world, world - 1))
    assert.has_error(function() dist.broadcast(mg.ones(1), -1) end,
      string.format("bad argument #2 to 'broadcast' (src -1 is not a rank of the group (0 to %d))", world - 1))
    assert.has_error(function() dist.broadcast(mg.ones(1), 0.5) end,
      "bad argument #2 to 'broadcast' (src must be an integer rank, got number)")
    if world > 1 then
      local ok, err = pcall(dist.broadcast, mg.ones(1), rank == 1 and 1 or 0)
      assert.is_false(ok)
      assert.matches("'broadcast': rank 1 passed src 1 where rank 0 passed 0", err, 1, true)
    end
  end)
end)

describe("all_gather", function()
  it("list[r + 1] is rank r's tensor: into an empty list, or into the list's tensors", function()
    local t = mg.tensor({ rank, rank * 2 }, { dtype = "float64" })
    local list = dist.all_gather({}, t)
    assert.equal(world, #list)
    for r = 0, world - 1 do assert.same({ r, 2 * r }, list[r + 1]:totable()) end
    local pre = {}
    for r = 1, world do pre[r] = mg.zeros(2, { dtype = "float64" }) end
    local keep = pre[1]
    dist.all_gather(pre, t:view(2))
    assert.equal(keep, pre[1])
    assert.same({ 0, 0 }, keep:totable())
    local b = dist.all_gather({}, mg.tensor({ rank % 2 == 0 }))
    for r = 0, world - 1 do assert.same({ r % 2 == 0 }, b[r + 1]:totable()) end
  end)

  it("errors: a list tensor of another shape", function()
    assert.has_error(function() dist.all_gather({ mg.zeros(3) }, mg.zeros(2)) end,
      "bad argument #1 to 'all_gather' (list[1] must be a float32 tensor of shape {2} (or nil))")
    assert.has_error(function() dist.all_gather(mg.zeros(3), mg.zeros(2)) end,
      "bad argument #1 to 'all_gather' (a list (table) expected, got tensor)")
  end)
end)

describe("barrier", function()
  it("returns on every rank", function()
    dist.barrier()
    dist.barrier()
  end)
end)
