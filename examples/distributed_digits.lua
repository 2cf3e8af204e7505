-- The digits MLP of digits_mlp.lua trained data-parallel: one process per rank, each on its shard
-- of every batch (mg.data.DistributedSampler), gradients averaged by DistributedDataParallel.
--   make distributed && mpirun -np 2 lua5.4 examples/distributed_digits.lua
--   (as root: OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 2 ...;
--    plain `lua5.4 examples/distributed_digits.lua` is a world of one)
-- The global batch is 32 whatever the number of ranks (32 / ranks each), so the held-out accuracy
-- is the 1-rank run's within float32 noise. Rank 0 alone prints.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "" -- this script's directory
dofile(here .. "paths.lua") -- this clone's moongrad once `make` has built it, else the installed one
local mg = require "moongrad"
local dist = require "moongrad.distributed"
local nn, optim = mg.nn, mg.optim

dist.init_process_group{backend = "mpi", timeout = 60}
local rank, world = dist.get_rank(), dist.get_world_size()
local function say(...) if rank == 0 then print(string.format(...)) end end
say("ranks: %d (global batch 32, %d per rank)", world, 32 // world)

local data = mg.data.read_csv(here .. "../data/digits.csv") -- 1797 x 65: pixel_0_0 .. pixel_7_7, digit
local X = data:narrow(2, 1, 64) / 16             -- pixels 0..16 -> 0..1
local y = data:select(2, 65):to("int64") + 1     -- digit 0..9 -> class 1..10

mg.manual_seed(0) -- the same split on every rank
local parts = mg.data.random_split(X:size(1), {0.8, 0.2})
local X_train, y_train = X:index_select(1, parts[1]), y:index_select(1, parts[1])
local X_val, y_val = X:index_select(1, parts[2]), y:index_select(1, parts[2])

local sampler = mg.data.DistributedSampler(X_train:size(1), {shuffle = true, seed = 0})
local loader = mg.data.DataLoader(sampler:dataset({X_train, y_train}), {batch_size = 32 // world})

mg.manual_seed(1 + rank) -- different on purpose: DistributedDataParallel starts every rank from rank 0's
local model = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)))
local history = mg.train{
  model = model,
  loss_fn = nn.CrossEntropyLoss(),
  optimizer = optim.Adam(model:parameters(), {lr = 1e-3}),
  data = loader,            -- mg.train sets the sampler's epoch and averages the logged losses over ranks
  val_data = {X_val, y_val},
  epochs = 30,
  log_every = 5,
  progress = false,         -- per-epoch lines (mpirun's output looks like a terminal to each rank)
}

local predicted = mg.no_grad(function() return model(X_val):argmax(2) end)
local accuracy = predicted:eq(y_val):float():mean():item()
say("held-out accuracy: %.2f%% (%d images)", 100 * accuracy, y_val:size(1))

-- a checkpoint: rank 0 writes, every rank waits until it is complete before anyone reads it
local path = os.getenv("MOONGRAD_CHECKPOINT") or (here .. "out/distributed_digits.safetensors")
if rank == 0 then
  os.execute('mkdir -p "' .. here .. 'out"')
  mg.save(path, model.module:state_dict())
end
dist.barrier()
local restored = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
restored:load_state_dict((mg.load(path)))
say("checkpoint: %s (reloaded on every rank)", path)

dist.destroy_process_group()
return accuracy, history
