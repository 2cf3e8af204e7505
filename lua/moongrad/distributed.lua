-- moongrad.distributed: data-parallel collectives with PyTorch's names (torch.distributed), over
-- Open MPI. A separate module: moongrad itself never loads it nor MPI. Its C half,
-- moongrad.distributed_core (distributed/), is built by `make distributed`.
--
--   local dist = require "moongrad.distributed"
--   dist.init_process_group{backend = "mpi", timeout = 60}
--   if dist.get_rank() == 0 then print("world", dist.get_world_size()) end
--
-- Ranks are numbered from 0, as MPI, mpirun and PyTorch number them. Every collective is checked
-- first (a small all_gather of what each rank passed: collective, dtype, shape, op or src), so
-- mismatched input is the same error on every rank; a collective that does not complete within
-- the timeout ends the whole job (MPI_Abort) with a message naming it and the deadline.
local mg = require "moongrad"
local util = require "moongrad.util"

local M = {}

local group -- this Lua state's default process group (a userdata of moongrad.distributed_core)

local function C()
  local ok, core = pcall(require, "moongrad.distributed_core")
  if not ok then
    error("moongrad.distributed: its C module is not built or installed (make distributed, or luarocks "
      .. "install the moongrad-distributed rock; it needs Open MPI: libopenmpi-dev openmpi-bin)\n" .. tostring(core), 3)
  end
  return core
end

local function need(fname)
  if not group then
    error(string.format("'%s': the default process group has not been initialized (call "
      .. "dist.init_process_group first)", fname), 3)
  end
  return group
end

-- dist.is_available(): whether the C module (and so Open MPI) can be loaded
function M.is_available()
  return (pcall(require, "moongrad.distributed_core"))
end

-- dist.is_initialized()
function M.is_initialized()
  return group ~= nil
end

-- dist.init_process_group{backend = "mpi", timeout = 60}: joins the job mpirun started (a process
-- run without mpirun is a world of one). backend = "host": the collective interface a host program
-- handed in (mgd_set_backend, include/moongrad_dist.h).
function M.init_process_group(opts)
  local o = util.options("init_process_group", 1, opts, { backend = "mpi", timeout = 60 })
  if o.backend ~= "mpi" and o.backend ~= "host" then
    util.argerror("init_process_group", 1, "backend must be \"mpi\" or \"host\", got %s", tostring(o.backend))
  end
  if type(o.timeout) ~= "number" or o.timeout <= 0 or o.timeout ~= o.timeout then -- NaN too
    util.argerror("init_process_group", 1, "timeout must be a positive number of seconds, got %s", tostring(o.timeout))
  end
  if group then error("'init_process_group': the default process group is already initialized", 2) end
  group = C().new_group(o.timeout, o.backend)
end

-- dist.destroy_process_group(): every rank meets in a barrier, then the group ends (MPI is
-- finalized when this module started it: it cannot start again in the same process). Also done
-- when the Lua state closes.
function M.destroy_process_group()
  local g = need("destroy_process_group")
  group = nil
  g:destroy()
end

function M.get_rank()
  return need("get_rank"):rank()
end

function M.get_world_size()
  return need("get_world_size"):size()
end

local OPS = { sum = 0, max = 1, min = 2, avg = 3 }

-- g:check(...) (every rank agrees on the collective and its input, or every rank raises the same
-- error), the error blaming the user's line `level` frames up (counted from here)
local function checked(level, g, ...)
  local ok, err = pcall(g.check, g, ...)
  if not ok then error((tostring(err):gsub("^[^\n]-:%d+: ", "")), level + 1) end
end

local function check_tensor(fname, argn, t)
  if not mg.is_tensor(t) then
    util.argerror_at(2, fname, argn, "tensor expected, got %s", type(t))
  end
end

-- Runs fn on a contiguous tensor holding t's values, and writes the result back into t when t
-- itself was not contiguous. In place, outside autograd (as torch.distributed's collectives).
local function in_place(t, fn)
  if t:is_contiguous() then
    fn(t)
  else
    local c = t:contiguous()
    fn(c)
    mg.no_grad(function() t:copy_(c) end)
  end
end

-- dist.all_reduce(t [, {op = "sum"|"max"|"min"|"avg"}]): t becomes the reduction over all ranks,
-- identical on every rank. avg needs a floating point dtype; a bool's sum and max are "or", its min
-- "and".
function M.all_reduce(t, opts)
  local g = need("all_reduce")
  check_tensor("all_reduce", 1, t)
  local o = util.options("all_reduce", 2, opts, { op = "sum" })
  if OPS[o.op] == nil then
    util.argerror("all_reduce", 2, "op must be \"sum\", \"max\", \"min\" or \"avg\", got %s", tostring(o.op))
  end
  in_place(t, function(c)
    checked(4, g, "all_reduce", c, OPS[o.op], "op")
    if o.op == "avg" and t.dtype ~= "float32" and t.dtype ~= "float64" then -- every rank alike (checked)
      util.argerror_at(3, "all_reduce", 2, "op avg needs a floating point tensor, got %s", t.dtype)
    end
    g:allreduce(c, o.op)
  end)
end

-- dist.broadcast(t, src): t becomes rank src's t on every rank
function M.broadcast(t, src)
  local g = need("broadcast")
  check_tensor("broadcast", 1, t)
  if math.type(src) ~= "integer" then
    util.argerror("broadcast", 2, "src must be an integer rank, got %s", type(src))
  end
  if src < 0 or src >= g:size() then
    util.argerror("broadcast", 2, "src %d is not a rank of the group (0 to %d)", src, g:size() - 1)
  end
  in_place(t, function(c)
    checked(4, g, "broadcast", c, src, "src")
    g:broadcast(c, src)
  end)
end

-- dist.all_gather(list, t): list[r + 1] holds rank r's t (list[1] is rank 0's). Tensors already in
-- the list (PyTorch's form) are written in place, and must have t's shape and dtype; missing ones
-- are made.
function M.all_gather(list, t)
  local g = need("all_gather")
  if type(list) ~= "table" or mg.is_tensor(list) then
    util.argerror("all_gather", 1, "a list (table) expected, got %s", mg.is_tensor(list) and "tensor" or type(list))
  end
  check_tensor("all_gather", 2, t)
  local n = g:size()
  for r = 1, n do
    local d = list[r]
    if d ~= nil and (not mg.is_tensor(d) or d.dtype ~= t.dtype or d:numel() ~= t:numel()
        or table.concat(d.shape, ",") ~= table.concat(t.shape, ",")) then
      util.argerror("all_gather", 1, "list[%d] must be a %s tensor of shape {%s} (or nil)", r, t.dtype,
        table.concat(t.shape, ","))
    end
  end
  local c = t:contiguous()
  checked(2, g, "all_gather", c)
  local shape = { n }
  for i, s in ipairs(t.shape) do shape[i + 1] = s end
  local out = mg.empty(shape, { dtype = t.dtype })
  g:allgather(c, out)
  mg.no_grad(function()
    for r = 1, n do
      if list[r] == nil then list[r] = out[r]:clone() else list[r]:copy_(out[r]) end
    end
  end)
  return list
end

-- dist.barrier(): returns when every rank has called it
function M.barrier()
  local g = need("barrier")
  checked(2, g, "barrier", nil)
  g:barrier()
end

-- internal: what mg.train asks while a process group runs (lua/moongrad/train.lua)
M._train = {
  main = function() return group:rank() == 0 end,
  -- the epoch's shuffle of a DistributedSampler behind data (a DataLoader over sampler:dataset())
  set_epoch = function(data, epoch)
    local ds = type(data) == "table" and rawget(data, "dataset")
    local sampler = type(ds) == "table" and rawget(ds, "_sampler")
    if sampler then sampler:set_epoch(epoch) end
  end,
  -- a loss total and its sample count, summed over ranks (float64)
  sum = function(total, count)
    local t = mg.tensor({ total, count }, { dtype = "float64" })
    M.all_reduce(t)
    return t[1], t[2]
  end,
  average = function(v)
    local t = mg.tensor({ v }, { dtype = "float64" })
    M.all_reduce(t, { op = "avg" })
    return t[1]
  end,
}

-- internal: the default group (DistributedDataParallel, mg.train), or nil
function M._group()
  return group
end

return M
