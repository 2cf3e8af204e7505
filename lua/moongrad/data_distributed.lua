-- mg.data.DistributedSampler (PyTorch's torch.utils.data.distributed.DistributedSampler): each
-- rank its own shard of a dataset's indices, reshuffled every epoch from a seed all ranks share.
--
--   local sampler = mg.data.DistributedSampler(X:size(1), {shuffle = true, seed = 0})
--   local loader = mg.data.DataLoader(sampler:dataset({X, y}), {batch_size = 32})
--   for epoch = 1, 10 do
--     sampler:set_epoch(epoch)      -- mg.train does this itself
--     for xb, yb in loader do ... end
--   end
--
-- As PyTorch: the indices (shuffled with seed + epoch, or in order) are padded by repeating their
-- start until they divide evenly by the number of ranks (or cut down with drop_last), and rank r
-- takes every num_replicas-th one from position r, so every rank has the same number of samples
-- and takes the same number of steps. The shuffle is a Fisher-Yates over a splitmix64 stream of
-- its own: the same on every rank and every platform, and mg's random generator is left alone
-- (so the permutation differs from torch's, whose generator is another).
local util = require "moongrad.util"
local core = require "moongrad.core"

local M = {}

local Sampler = {}
Sampler.__index = Sampler

-- splitmix64 (wrapping 64-bit integer arithmetic), an integer in [0, n)
local function stream(seed)
  local state = seed
  return function(n)
    state = state + 0x9E3779B97F4A7C15
    local z = state
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    z = z ~ (z >> 31)
    return (z >> 1) % n -- >> 1: non-negative
  end
end

local function default_group(fname, what)
  local dist = package.loaded["moongrad.distributed"]
  local g = dist and dist._group()
  if not g then
    util.argerror(fname, 2, "%s not given and no process group is initialized (dist.init_process_group)", what)
  end
  return g
end

--- `DistributedSampler(n_or_dataset [, {num_replicas, rank, shuffle = true, seed = 0, drop_last = false}])`
function M.DistributedSampler(source, opts)
  local fname = "DistributedSampler"
  local o = util.options(fname, 2, opts, { num_replicas = false, rank = false, shuffle = true, seed = 0,
    drop_last = false })
  local n
  if math.type(source) == "integer" then
    n = source
  elseif core.is_tensor(source) then
    n = source:dim() > 0 and source:size(1) or 0
  elseif type(source) == "table" and core.is_tensor(source[1]) then
    n = source[1]:size(1)
  elseif type(source) == "table" or type(source) == "userdata" then
    local ok, len = pcall(function() return #source end)
    n = ok and math.tointeger(len) or nil
  end
  if not n or n < 0 then
    util.argerror(fname, 1, "a number of samples, a tensor, a list of tensors or a dataset expected, got %s",
      type(source))
  end
  local replicas = o.num_replicas or default_group(fname, "num_replicas"):size()
  local rank = o.rank
  if rank == false then rank = default_group(fname, "rank"):rank() end
  if math.type(replicas) ~= "integer" or replicas < 1 then
    util.argerror(fname, 2, "num_replicas must be a positive integer, got %s", tostring(replicas))
  end
  if math.type(rank) ~= "integer" or rank < 0 or rank >= replicas then
    util.argerror(fname, 2, "invalid rank %s, rank should be in the interval [0, %d]", tostring(rank), replicas - 1)
  end
  if math.type(o.seed) ~= "integer" then
    util.argerror(fname, 2, "seed must be an integer, got %s", tostring(o.seed))
  end
  local num_samples
  if o.drop_last and n % replicas ~= 0 then
    num_samples = (n - replicas) // replicas + 1 -- PyTorch's ceil((n - R) / R)
    if n < replicas then num_samples = 0 end
  else
    num_samples = (n + replicas - 1) // replicas
  end
  return setmetatable({ n = n, num_replicas = replicas, rank = rank, shuffle = not not o.shuffle, seed = o.seed,
    drop_last = not not o.drop_last, epoch = 0, num_samples = num_samples,
    total_size = num_samples * replicas }, Sampler)
end

function Sampler:__len() return self.num_samples end

function Sampler:__tostring()
  return string.format("DistributedSampler(%d samples, rank %d of %d: %d each, shuffle=%s, seed=%d, epoch %d)",
    self.n, self.rank, self.num_replicas, self.num_samples, tostring(self.shuffle), self.seed, self.epoch)
end

--- `sampler:set_epoch(epoch)`: the epoch whose shuffle indices() gives (every rank the same)
function Sampler:set_epoch(epoch)
  if math.type(epoch) ~= "integer" then util.argerror("set_epoch", 1, "integer expected, got %s", type(epoch)) end
  self.epoch = epoch
  self.cache = nil
end

--- `sampler:indices()`: this rank's 1-based sample indices for the current epoch (a Lua list)
function Sampler:indices()
  if self.cache then return self.cache end
  local all = {}
  for i = 1, self.n do all[i] = i end
  if self.shuffle then
    local rand = stream(self.seed + self.epoch)
    for i = self.n, 2, -1 do
      local j = rand(i) + 1
      all[i], all[j] = all[j], all[i]
    end
  end
  if #all < self.total_size and self.n > 0 then -- pad with the start, repeated as often as needed
    local k = 1
    for i = self.n + 1, self.total_size do
      all[i] = all[k]
      k = k % self.n + 1
    end
  end
  local mine = {}
  for i = self.rank + 1, self.total_size, self.num_replicas do mine[#mine + 1] = all[i] end
  self.cache = mine
  return mine
end

--- `sampler:dataset(source)`: a dataset (for mg.data.DataLoader) of this rank's samples of source
-- (a tensor, a list of tensors, or a dataset with get(i)), in the current epoch's order
function Sampler:dataset(source)
  if core.is_tensor(source) then source = { source } end
  if type(source) ~= "table" then
    util.argerror("dataset", 1, "a tensor, a list of tensors or a dataset expected, got %s", type(source))
  end
  local sampler = self
  local ds = { _sampler = sampler }
  if core.is_tensor(source[1]) then
    for i, t in ipairs(source) do
      if t:dim() == 0 or t:size(1) ~= self.n then
        util.argerror("dataset", 1, "tensor %d has %d samples, the sampler %d", i,
          t:dim() > 0 and t:size(1) or 0, self.n)
      end
    end
    function ds.get(_, i)
      local k = sampler:indices()[i]
      local out = {}
      for j, t in ipairs(source) do out[j] = t[k] end
      return table.unpack(out, 1, #source)
    end
  elseif type(source.get) == "function" then
    function ds.get(_, i) return source:get(sampler:indices()[i]) end
  else
    util.argerror("dataset", 1, "a tensor, a list of tensors or a dataset with get(i) expected")
  end
  return setmetatable(ds, { __len = function() return sampler.num_samples end })
end

return M
