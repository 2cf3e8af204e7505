-- W6 data-parallel (issue 12): the MLP 784-256-10 of w6_mlp.lua, batch 64 per rank, SGD, through
-- DistributedDataParallel, on 1 thread per rank. Not part of `make bench` (it needs mpirun):
--   mpirun -np 1 lua5.4 bench/w6_ddp.lua ; mpirun -np 2 lua5.4 bench/w6_ddp.lua
-- (as root with OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1). Rank 0 prints, per
-- configuration: the step time, throughput in samples/s over all ranks, and the share of the step
-- that synchronization adds (the same steps under ddp:no_sync(), which skips all communication,
-- give the compute-only time). Configurations: one 25 MB bucket (nothing overlaps: the allreduce
-- starts when backward ends) and 0.25 MB buckets (the last layer's starts during backward), each
-- with the gradients copied into the buckets and back (the default) and as views of the buckets
-- (gradient_as_bucket_view = true, "as_view"); when the ranks share a node the buckets live in shared
-- memory and reduce in place. First, the allreduce of the 814 KB alone.
-- W6_DDP_STEPS (default 200) steps each, after 20 of warm-up; each line gives the mean step and,
-- after "|", the median step (the typical step on a machine shared with other programs, whose
-- time slices stall both ranks at once). Scaling efficiency at N ranks = throughput(N) / (N x
-- throughput(1)). MOONGRAD_DIST_SHM_KB=0 (with mpirun -x) compares MPI's own collectives.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
local dist = require "moongrad.distributed"
B.setup(mg)
dist.init_process_group{timeout = 120}
local rank, world = dist.get_rank(), dist.get_world_size()
local STEPS = tonumber(os.getenv("W6_DDP_STEPS") or "200")
local DIN, DH, DOUT, BATCH = 784, 256, 10, 64

mg.manual_seed(61 + rank) -- each rank its own data
local X = mg.randn(BATCH * 8, DIN) * 0.1
local Y = mg.randint(1, DOUT + 1, { BATCH * 8 })
local loss_fn = mg.nn.CrossEntropyLoss()

-- the median of a list of times: on a machine shared with other programs, the typical step, which
-- the mean (a program taking the core for a scheduler tick stalls both ranks) is not
local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local function run(cap, sync, as_view)
  mg.manual_seed(1)
  local model = mg.nn.parallel.DistributedDataParallel(
    mg.nn.Sequential(mg.nn.Linear(DIN, DH), mg.nn.ReLU(), mg.nn.Linear(DH, DOUT)),
    { bucket_cap_mb = cap, gradient_as_bucket_view = as_view })
  local opt = mg.optim.SGD(model:parameters(), { lr = 0.05, momentum = 0.9 })
  local function step(i)
    local s = (i % 8) * BATCH + 1
    opt:zero_grad()
    local loss = loss_fn(model(X:narrow(1, s, BATCH)), Y:narrow(1, s, BATCH))
    if sync then loss:backward() else model:no_sync(function() loss:backward() end) end
    opt:step()
  end
  for i = 1, 20 do step(i) end
  dist.barrier()
  local t0, times = B.clock(), {}
  for i = 1, STEPS do
    local t1 = B.clock()
    step(i)
    times[i] = B.clock() - t1
  end
  dist.barrier()
  return (B.clock() - t0) / STEPS, #model:_buckets(), median(times)
end

-- the allreduce alone: W6's gradient (203530 float32), blocking, as started + waited, and as DDP
-- runs it on a bucket in shared memory (in place, averaged in the same pass; when ranks share a node)
local function allreduce_alone()
  local g = dist._group()
  local t = mg.randn(203530)
  local shared = g:shared_tensor(203530, mg.zeros(0))
  if shared then shared:copy_(t) end
  local reps = math.max(20, STEPS // 2)
  local out = {}
  local calls = {
    function() g:allreduce(t, "sum") end,
    function() g:iallreduce(0, t, "sum"); g:wait(0) end,
    shared and function() g:iallreduce(0, shared, "sum", world); g:wait(0) end,
  }
  for k, call in pairs(calls) do
    for _ = 1, 5 do call() end
    dist.barrier()
    local times = {}
    for r = 1, reps do
      local t0 = B.clock()
      call()
      times[r] = B.clock() - t0
    end
    out[k] = median(times)
  end
  return out
end
local alone = allreduce_alone()
if rank == 0 then
  print(string.format(
    "W6 DDP  ranks %d  allreduce of 814 KB alone (median): blocking %.0f us, started + waited %.0f us, "
      .. "a shared bucket in place + average %s  (%s)",
    world, 1e6 * alone[1], 1e6 * alone[2], alone[3] and string.format("%.0f us", 1e6 * alone[3]) or "-",
    os.getenv("MOONGRAD_DIST_SHM_KB") == "0" and "MPI's collectives" or "shared-memory path when ranks share a node"))
end

for _, c in ipairs({ { 25, false }, { 0.25, false }, { 25, true }, { 0.25, true } }) do
  local cap, as_view = c[1], c[2]
  local t_sync, nb, m_sync = run(cap, true, as_view)
  local t_local, _, m_local = run(cap, false, as_view)
  if rank == 0 then
    print(string.format("W6 DDP  ranks %d  cap %-4g MB (%d buckets)%-9s  step %.3f ms  %.0f samples/s  "
      .. "sync adds %.1f %% (compute-only %.3f ms) | median step %.3f ms  %.0f samples/s  sync adds %.1f %% "
      .. "(compute-only %.3f ms)", world, cap, nb, as_view and "  as_view" or "", 1e3 * t_sync,
      world * BATCH / t_sync, 100 * (t_sync - t_local) / t_sync, 1e3 * t_local, 1e3 * m_sync,
      world * BATCH / m_sync, 100 * (m_sync - m_local) / m_sync, 1e3 * m_local))
  end
end
dist.destroy_process_group()
