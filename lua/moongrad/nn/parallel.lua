-- mg.nn.parallel: DistributedDataParallel (PyTorch's torch.nn.parallel.DistributedDataParallel),
-- over moongrad.distributed's default process group.
--
-- At construction every parameter and buffer is broadcast from rank 0, so all ranks start equal.
-- After loss:backward() every parameter's .grad is the average of the ranks' gradients, the same
-- bits on every rank. How: the parameters are packed, in reverse order (the order backward makes
-- their gradients), into flat buckets of at most bucket_cap_mb megabytes per dtype; each parameter
-- has a hook (t:register_post_accumulate_grad_hook) that copies its gradient into its bucket when
-- backward has finished it, and a bucket whose gradients are all in starts its allreduce at once
-- (nonblocking, in bucket order on every rank), so communication overlaps the rest of backward.
-- Open MPI has no progress thread here: each hook also tests the started buckets, which drives
-- them. When the last node has run (an end-of-pass callback) the remaining buckets start, all are
-- waited for, and the averages are written to .grad before backward returns.
-- gradient_as_bucket_view = true (PyTorch's option of that name): after the first pass each .grad
-- IS a view into its bucket, so later passes accumulate straight into the bucket (opt:zero_grad()
-- zeroes in place) and neither the copy into the bucket nor the copy back out is made.
-- When the ranks share a node, each bucket is this rank's slot of a shared-memory segment
-- (group:shared_tensor) and its allreduce runs in place, dividing by the world size in the same pass
-- (iallreduce then says so); elsewhere the division follows the wait. The same bits either way.
-- A bucket carries one more slot per parameter: 1 when this rank produced a gradient for it. A
-- parameter that no rank gave a gradient keeps its .grad (nil stays nil); one that some ranks used
-- gets the average with zeros from the others, as PyTorch's DDP does.
local M = {}

local DDP -- the class, made on first use (moongrad.nn is still loading when this file is)

local function make_class()
  local mg = require "moongrad"
  local util = require "moongrad.util"
  local dist = require "moongrad.distributed"
  local core = require "moongrad.core"
  local class = mg.nn.Module:extend("DistributedDataParallel")

  local function state(self) return rawget(self, "_ddp") end

  -- every buffer of the module tree, each once, in named_modules order
  local function buffers(module)
    local out, seen = {}, {}
    for _, m in ipairs(module:modules()) do
      for _, n in ipairs(rawget(m, "_buffer_order")) do
        local b = rawget(m, "_buffers")[n]
        if b ~= nil and not seen[b] then
          seen[b] = true
          out[#out + 1] = b
        end
      end
    end
    return out
  end

  -- Starts every bucket whose turn it is (bucket order: every rank starts the same collectives in
  -- the same order), then tests the started ones (MPI's progress).
  local function launch(s, force)
    while s.next <= #s.buckets and (force or s.buckets[s.next].pending == 0) do
      local b = s.buckets[s.next]
      if b.pending > 0 then -- entries without a gradient on this rank contribute zeros
        for j, e in ipairs(b.entries) do
          if not e.got then
            local region = b.flat:narrow(1, e.offset, e.numel)
            if s.as_view and rawequal(e.param.grad, e.view) then e.saved = region:clone() end
            region:zero_()
            b.flat[b.used_at + j] = 0
          end
        end
      end
      b.averaged = s.group:iallreduce(s.next - 1, b.flat, "sum", s.world)
      b.started = true
      s.next = s.next + 1
    end
    for i = s.tested + 1, s.next - 1 do
      if not s.group:test(i - 1) then break end
      s.tested = i
    end
  end

  -- end of the backward pass: start what is left, wait for all, write the averages to .grad
  local function finish(s)
    s.early = s.next - 1 -- buckets started while backward was still running (the overlap)
    launch(s, true)
    local n = s.world
    mg.no_grad(function()
      for i, b in ipairs(s.buckets) do
        s.group:wait(i - 1)
        -- the average (the used flags stay > 0); for a power of two, x * (1 / n) is x / n to the bit
        -- (both are the correctly rounded x / n, 1 / n being exact) and a multiply is ~2.5x faster
        if n > 1 and not b.averaged then -- a bucket in shared memory comes back averaged
          if n & (n - 1) == 0 then b.flat:mul_(1 / n) else b.flat:div_(n) end
        end
        for j, e in ipairs(b.entries) do
          local used = b.flat[b.used_at + j]
          local g = e.param.grad
          if used > 0 then
            if s.as_view then
              if not rawequal(g, e.view) then e.param.grad = e.view end
            elseif g == nil then
              e.param.grad = e.view:clone()
            else
              g:copy_(e.view)
            end
          elseif e.saved then -- no rank had a gradient: the view gets back what it held
            e.view:copy_(e.saved)
          end
          e.saved = nil
        end
      end
    end)
    s.active = false
  end

  -- the hook of parameter e.param: its gradient is complete for this pass
  local function ready(s, e)
    if not s.sync then return end
    if not s.active then -- the first gradient of this pass
      s.active = true
      s.next, s.tested = 1, 0
      for _, b in ipairs(s.buckets) do
        b.pending = #b.entries
        b.started = false
        for _, entry in ipairs(b.entries) do entry.got = false end
      end
      core._queue_backward_callback(function() finish(s) end)
    end
    local b = s.buckets[e.bucket]
    if b.started then error("DistributedDataParallel: a parameter's hook ran twice in one backward pass", 0) end
    local g = e.param.grad
    if not rawequal(g, e.view) then e.view:copy_(g) end -- a bucket view already holds it
    e.got = true
    b.flat[b.used_at + e.index] = 1
    b.pending = b.pending - 1
    launch(s, false)
  end

  function class:init(module, opts)
    if not mg.nn.is_module(module) then
      util.argerror("DistributedDataParallel", 1, "Module expected, got %s", type(module))
    end
    local o = util.options("DistributedDataParallel", 2, opts,
      { bucket_cap_mb = 25, broadcast_buffers = true, gradient_as_bucket_view = false })
    if type(o.bucket_cap_mb) ~= "number" or o.bucket_cap_mb <= 0 or o.bucket_cap_mb ~= o.bucket_cap_mb then
      util.argerror("DistributedDataParallel", 2, "bucket_cap_mb must be a positive number, got %s",
        tostring(o.bucket_cap_mb))
    end
    if type(o.gradient_as_bucket_view) ~= "boolean" then
      util.argerror("DistributedDataParallel", 2, "gradient_as_bucket_view must be a boolean, got %s",
        type(o.gradient_as_bucket_view))
    end
    local group = dist._group()
    if not group then
      error("DistributedDataParallel: the default process group has not been initialized (call "
        .. "dist.init_process_group first)", 3)
    end
    self:register_module("module", module)
    local params = module:parameters()
    local bufs = buffers(module)
    -- the same model on every rank: the number of parameters and buffers (checked), then each one
    -- (shape and dtype, checked by broadcast), from rank 0
    group:check("DistributedDataParallel", mg.zeros(#params, #bufs + 1))
    for _, t in ipairs(params) do dist.broadcast(t, 0) end
    for _, t in ipairs(bufs) do dist.broadcast(t, 0) end
    -- buckets: parameters that require grad, last first, by dtype, each up to the cap
    local cap = o.bucket_cap_mb * 1024 * 1024
    local s = { group = group, world = group:size(), buckets = {}, sync = true, active = false,
      next = 1, tested = 0, hooks = {} }
    local open = {} -- dtype -> the bucket being filled
    local layouts = {}
    for i = #params, 1, -1 do
      local p = params[i]
      if p.requires_grad then
        local b = open[p.dtype]
        local bytes = p:numel() * (p.dtype == "float32" and 4 or 8)
        if b == nil or (b.bytes > 0 and b.bytes + bytes > cap) then
          b = { dtype = p.dtype, entries = {}, bytes = 0, numel = 0 }
          s.buckets[#s.buckets + 1] = b
          open[p.dtype] = b
        end
        local e = { param = p, bucket = #s.buckets, index = #b.entries + 1, offset = b.numel + 1, numel = p:numel() }
        for k, bb in ipairs(s.buckets) do if bb == b then e.bucket = k end end
        b.entries[#b.entries + 1] = e
        b.bytes, b.numel = b.bytes + bytes, b.numel + p:numel()
        layouts[#layouts + 1] = e
      end
    end
    local C = require "moongrad.distributed_core" -- loaded: the process group exists
    if #s.buckets > C.max_pending then
      util.argerror("DistributedDataParallel", 2, "%d buckets: at most %d (raise bucket_cap_mb)", #s.buckets,
        C.max_pending)
    end
    for _, b in ipairs(s.buckets) do
      b.used_at = b.numel -- flat[used_at + j]: 1 when this rank has a gradient for entry j
      -- in shared memory when the ranks share a node (the allreduce then runs in place, averaging
      -- in the same pass): a collective, the same buckets on every rank; else a tensor of its own
      b.flat = group:shared_tensor(b.numel + #b.entries, mg.zeros(0, { dtype = b.dtype }))
      b.shared = b.flat ~= nil
      b.flat = b.flat or mg.zeros(b.numel + #b.entries, { dtype = b.dtype })
      for _, e in ipairs(b.entries) do e.view = b.flat:narrow(1, e.offset, e.numel):view(e.param.shape) end
    end
    s.as_view = o.gradient_as_bucket_view and true or false
    for _, e in ipairs(layouts) do
      s.hooks[#s.hooks + 1] = e.param:register_post_accumulate_grad_hook(function() ready(s, e) end)
    end
    s.broadcast_buffers, s.buffers = o.broadcast_buffers, bufs
    rawset(self, "_ddp", s)
  end

  function class:forward(...)
    local s = state(self)
    if s.active then
      error("DistributedDataParallel: expected to have finished reduction in the prior iteration before "
        .. "starting a new one (the last backward did not run to its end)", 2)
    end
    if s.broadcast_buffers then
      for _, b in ipairs(s.buffers) do dist.broadcast(b, 0) end
    end
    return self.module(...)
  end

  -- ddp:no_sync(): a guard for a <close> variable; ddp:no_sync(fn, ...): runs fn. Inside, backward
  -- only accumulates local gradients (no communication); the first backward after it averages the
  -- accumulated .grad.
  function class:no_sync(fn, ...)
    local s = state(self)
    local previous = s.sync
    s.sync = false
    if fn == nil then
      return setmetatable({}, { __close = function() s.sync = previous end })
    end
    if type(fn) ~= "function" then util.argerror("no_sync", 1, "function or nothing expected, got %s", type(fn)) end
    local res = table.pack(pcall(fn, ...))
    s.sync = previous
    if not res[1] then error(res[2], 0) end
    return table.unpack(res, 2, res.n)
  end

  -- the buckets, for tests and tuning: a list of {dtype = , numel = , params = n, shared = in shared memory}
  function class:_buckets()
    local out = {}
    for i, b in ipairs(state(self).buckets) do
      out[i] = { dtype = b.dtype, numel = b.numel, params = #b.entries, shared = b.shared }
    end
    return out
  end

  -- the last backward pass: {early = buckets started before its last node ran, buckets = all}
  function class:_last_pass()
    local s = state(self)
    return { early = s.early, buckets = #s.buckets }
  end

  function class:extra_repr()
    return string.format("world_size=%d, buckets=%d", state(self).world, #state(self).buckets)
  end

  return class
end

-- mg.nn.parallel.DistributedDataParallel(module [, {bucket_cap_mb = 25, broadcast_buffers = true,
-- gradient_as_bucket_view = false}])
function M.DistributedDataParallel(module, opts)
  DDP = DDP or make_class()
  return DDP(module, opts)
end

return M
