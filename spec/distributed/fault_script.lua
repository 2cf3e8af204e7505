-- Run by spec/distributed/faults_faults.lua under `mpirun -np 2`: rank 1 fails in the way arg[1]
-- says while rank 0 is in an all_reduce (or, for the modes ending in _in_backward, while rank 0 waits
-- for DistributedDataParallel's gradient buckets: the shared-memory path on one node); arg[2] is the
-- timeout (seconds).
local mg = require "moongrad"
local dist = require "moongrad.distributed"
local mode, timeout = arg[1], tonumber(arg[2])
local function pid() return io.open("/proc/self/stat"):read("n") end
if mode == "stop_before_init" and os.getenv("OMPI_COMM_WORLD_RANK") == "1" then
  os.execute("kill -STOP " .. pid())
end
dist.init_process_group{ timeout = timeout }
local t = mg.ones(4)
dist.all_reduce(t) -- a first one that completes
if mode:match("_in_backward$") then
  mg.manual_seed(1)
  local model = mg.nn.parallel.DistributedDataParallel(mg.nn.Linear(300, 300), { bucket_cap_mb = 0.1 })
  model(mg.randn(2, 300)):sum():backward() -- a first pass that completes
  local loss = model(mg.randn(2, 300)):sum()
  if dist.get_rank() == 1 then
    if mode == "kill_in_backward" then os.execute("kill -KILL " .. pid()) end
    if mode == "stop_in_backward" then os.execute("kill -STOP " .. pid()) end
  end
  local ok, err = pcall(loss.backward, loss)
  if not ok then
    io.stderr:write(string.format("rank %d: %s\n", dist.get_rank(), err))
    os.exit(2)
  end
  print("rank " .. dist.get_rank() .. " finished")
  os.exit(0)
end
if dist.get_rank() == 1 then
  if mode == "error" then error("rank 1 failed on purpose") end
  if mode == "kill" then os.execute("kill -KILL " .. pid()) end
  if mode == "stop" then os.execute("kill -STOP " .. pid()) end
  if mode == "mismatch" then t = mg.ones(5) end
end
local ok, err = pcall(dist.all_reduce, t)
if not ok then
  io.stderr:write(string.format("rank %d: %s\n", dist.get_rank(), err)) -- one write: lines do not mix
  os.exit(2)
end
print("rank " .. dist.get_rank() .. " finished")
dist.destroy_process_group()
