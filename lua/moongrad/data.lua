-- moongrad.data: batches (DataLoader), index splits (random_split), feature scaling (normalize,
-- standardize) and reading numeric CSV files (read_csv). The tensor work is done by the C core;
-- this file only orchestrates it (read_csv is the one place that reads text field by field).
local core = require "moongrad.core"

local M = {}

local is_tensor = core.is_tensor

-- options(fname, argn, opts, defaults): fills defaults in, refuses unknown keys; argerror and
-- argerror_at: an argument's error, at the caller's line or at a given level (moongrad.util)
local util = require "moongrad.util"
local options, argerror, argerror_at = util.options, util.argerror, util.argerror_at

local function shape_str(t)
  return "{" .. table.concat(t.shape, ",") .. "}"
end

---------------------------------------------------------------------------------------------------
-- DataLoader
---------------------------------------------------------------------------------------------------

local DataLoader = {}
DataLoader.__index = DataLoader

-- The optional booleans of DataLoader are `false` here, not nil, so that they count as known keys.
local LOADER_DEFAULTS = { batch_size = 1, shuffle = false, drop_last = false }

-- Collates the i-th values that a dataset's get returned for each sample of a batch: tensors are
-- stacked along a new dim 1; Lua numbers become a 1-D tensor (int64 when all are integers, as
-- PyTorch's default_collate does for Python ints, else the default float dtype).
local function collate(values, pos)
  local first = values[1]
  if is_tensor(first) then return core.stack(values) end
  if type(first) == "number" then
    local all_int = true
    for _, v in ipairs(values) do
      if type(v) ~= "number" then all_int = nil break end
      if math.type(v) ~= "integer" then all_int = false end
    end
    if all_int == nil then
      error(string.format("DataLoader: the dataset's get returned a number and a %s as value %d",
        type(values[#values]), pos), 0)
    end
    return core.tensor(values, all_int and { dtype = "int64" } or nil)
  end
  error(string.format("DataLoader: the dataset's get returned a %s as value %d (expected tensors or numbers)",
    type(first), pos), 0)
end

--- `DataLoader(tensors_or_dataset [, {batch_size = 1, shuffle = false, drop_last = false}])`.
-- The source is a tensor, a list of tensors with equal sizes in dim 1 (one batch value per tensor),
-- or a dataset: an object whose `#` is its number of samples and whose `get(i)` (1-based, called as
-- `ds:get(i)`) returns the sample's tensors or numbers (stacked into batches with mg.stack).
-- Iterate it directly: `for xb, yb in loader do ... end`; every loop is a new pass, reshuffled
-- with mg.randperm (so reproducible from mg.manual_seed) when `shuffle`. Without shuffle the
-- batches of tensors are views (narrow); with shuffle they are copies (index_select).
-- `#loader` is the number of batches per pass.
function M.DataLoader(source, opts)
  local o = options("DataLoader", 2, opts, LOADER_DEFAULTS)
  local bs = type(o.batch_size) == "number" and math.tointeger(o.batch_size)
  if not bs or bs < 1 then
    argerror("DataLoader", 2, "batch_size must be a positive integer, got %s", tostring(o.batch_size))
  end
  local self = setmetatable({
    batch_size = bs, shuffle = not not o.shuffle, drop_last = not not o.drop_last,
    passes = setmetatable({}, { __mode = "k" }), -- the last batch returned -> its pass's state
  }, DataLoader)

  if is_tensor(source) then source = { source } end
  if type(source) ~= "table" then
    argerror("DataLoader", 1, "expected a tensor, a list of tensors or a dataset, got %s", type(source))
  end
  if is_tensor(source[1]) then
    local n
    for i, t in ipairs(source) do
      if not is_tensor(t) then
        argerror("DataLoader", 1, "element %d of the list is a %s, not a tensor", i, type(t))
      end
      if t:dim() == 0 then
        argerror("DataLoader", 1, "tensor %d is 0-d: it has no dim 1 to batch over", i)
      end
      local size = t:size(1)
      if n == nil then
        n = size
      elseif size ~= n then
        argerror("DataLoader", 1, "tensors must have the same size in dim 1: "
          .. "tensor 1 has %d (%s), tensor %d has %d (%s)", n, shape_str(source[1]), i, size, shape_str(t))
      end
    end
    self.tensors = { table.unpack(source) }
    self.n = n
  elseif type(source.get) == "function" then
    self.dataset = source
    self.n = #source
  else
    argerror("DataLoader", 1, "expected a tensor, a list of tensors, or a dataset with __len and get(i)")
  end
  local n = self.n
  self.num_batches = self.drop_last and n // self.batch_size or (n + self.batch_size - 1) // self.batch_size
  return self
end

function DataLoader:__len() return self.num_batches end

function DataLoader:__tostring()
  return string.format("DataLoader(%d samples, batch_size=%d, shuffle=%s, drop_last=%s: %d batches)",
    self.n, self.batch_size, tostring(self.shuffle), tostring(self.drop_last), self.num_batches)
end

-- Builds batch number b (1-based) of a pass; returns its values as a list.
local function make_batch(self, pass, b)
  local start = (b - 1) * self.batch_size + 1
  local len = math.min(self.batch_size, self.n - start + 1)
  local idx = pass.perm and pass.perm:narrow(1, start, len)
  if self.tensors then
    local out = {}
    for i, t in ipairs(self.tensors) do
      out[i] = idx and t:index_select(1, idx) or t:narrow(1, start, len)
    end
    return out
  end
  local ds = self.dataset
  local columns, count = {}, 0
  for j = 1, len do
    local k = idx and idx[j] or start + j - 1
    local sample = table.pack(ds:get(k))
    if j == 1 then
      count = sample.n
      for p = 1, count do columns[p] = {} end
    elseif sample.n ~= count then
      error(string.format("DataLoader: the dataset's get(%d) returned %d values, get(%d) returned %d",
        idx and idx[1] or start, count, k, sample.n), 0)
    end
    for p = 1, count do columns[p][j] = sample[p] end
  end
  local out = {}
  for p = 1, count do out[p] = collate(columns[p], p) end
  return out
end

local function start_pass(self)
  return { next = 1, perm = self.shuffle and self.n > 0 and core.randperm(self.n) or nil }
end

-- The next batch of a pass, as multiple values (nothing at the end of the pass).
local function next_batch(self, pass)
  local b = pass.next
  if b > self.num_batches then return nil end
  pass.next = b + 1
  return table.unpack(make_batch(self, pass, b))
end

--- `loader:iter()`: an iterator over the batches of a new pass (`for xb, yb in loader:iter()`),
-- for code that wants a plain function; `loader()` with no arguments returns the same.
function DataLoader:iter()
  local pass = start_pass(self)
  return function() return next_batch(self, pass) end
end

-- The generic for calls the loader with two arguments, (nil, control): control is nil on a loop's
-- first call (a new pass) and afterwards the first value of the previous batch, which keys its
-- pass's state, so two loops over one loader (nested, or one left by break) do not disturb each
-- other. Called with no arguments, the loader returns an iterator over a new pass instead.
function DataLoader:__call(...)
  if select("#", ...) == 0 then return self:iter() end
  local _, prev = ...
  local pass
  if prev == nil then
    pass = start_pass(self)
  else
    pass = self.passes[prev]
    if pass == nil then
      error("DataLoader: iterate it with a generic for: for xb, yb in loader do ... end", 2)
    end
    self.passes[prev] = nil
  end
  local batch = table.pack(next_batch(self, pass))
  if batch[1] == nil then return nil end -- the end of the pass (or a dataset's get returned nothing)
  self.passes[batch[1]] = pass
  return table.unpack(batch, 1, batch.n)
end

---------------------------------------------------------------------------------------------------
-- random_split
---------------------------------------------------------------------------------------------------

--- `random_split(n, fractions)`: shuffles 1..n (mg.randperm) and cuts the permutation into parts,
-- returned as a Lua list of 1-D int64 index tensors (1-based, disjoint, covering 1..n), ready for
-- index_select. `fractions` are fractions summing to 1 (`{0.8, 0.2}`; the parts get floor(n * f)
-- samples and the rest go one each to the first parts, as PyTorch does) or integer counts summing
-- to n (`{1438, 359}`). `n` may also be a tensor (its size in dim 1).
function M.random_split(n, fractions)
  if is_tensor(n) then n = n:size(1) end
  if math.type(n) ~= "integer" or n < 0 then
    argerror("random_split", 1, "expected a non-negative integer, got %s", tostring(n))
  end
  if type(fractions) ~= "table" or #fractions == 0 then
    argerror("random_split", 2, "expected a list of fractions or counts")
  end
  local counts, sum, all_int = {}, 0, true
  for i, f in ipairs(fractions) do
    if type(f) ~= "number" or f < 0 or f ~= f then
      argerror("random_split", 2, "element %d is %s: expected a non-negative number", i, tostring(f))
    end
    if math.type(f) ~= "integer" then all_int = false end
    sum = sum + f
  end
  local as_counts = all_int and sum == n
  if not as_counts and math.abs(sum - 1) > 1e-6 then
    local list = {}
    for i, f in ipairs(fractions) do list[i] = tostring(f) end
    argerror("random_split", 2, "{%s} sums to %s: expected fractions summing to 1 or counts summing to %d",
      table.concat(list, ","), tostring(sum), n)
  end
  -- the permutation first: a size too large to permute is an error here, before any arithmetic
  -- on it could overflow
  local ok, perm = pcall(core.randperm, n)
  if not ok then -- randperm's own detail, without its frame ("'randperm': ..." or "bad argument ...")
    local why = tostring(perm)
    why = why:match("^bad argument #%d+ to '[^']*' %((.*)%)$") or why:gsub("^'[^']*': ", "")
    argerror("random_split", 1, "%d samples are too many to permute: %s", n, why)
  end
  if as_counts then
    for i, f in ipairs(fractions) do counts[i] = f end
  else
    local total = 0
    for i, f in ipairs(fractions) do
      counts[i] = math.floor(n * f + 1e-9)
      total = total + counts[i]
    end
    local i = 1
    while total < n do -- the remainder (fewer than #counts), round-robin from the first part
      counts[i] = counts[i] + 1
      total = total + 1
      i = i % #counts + 1
    end
  end
  local parts, start = {}, 1
  for i, c in ipairs(counts) do
    parts[i] = perm:narrow(1, start, c)
    start = start + c
  end
  return parts
end

---------------------------------------------------------------------------------------------------
-- normalize / standardize
---------------------------------------------------------------------------------------------------

-- A stats table: apply(x) scales new data with these stats (e.g. a validation set with the training
-- set's), undo(y) inverts. Both also work called as methods (stats:undo(y)).
local function with_functions(stats, apply, undo)
  stats.apply = function(a, b)
    if a == stats then a = b end
    return apply(a)
  end
  stats.undo = function(a, b)
    if a == stats then a = b end
    return undo(a)
  end
  return stats
end

local function check_input(fname, t, dim)
  if not is_tensor(t) then
    argerror_at(3, fname, 1, "expected a tensor, got %s", type(t))
  end
  if t:numel() == 0 then
    argerror_at(3, fname, 1, "the tensor is empty: %s", shape_str(t))
  end
  if t.dtype == "bool" or t.dtype == "int64" then t = t:float() end
  if dim ~= nil and math.type(dim) ~= "integer" then
    argerror_at(3, fname, 2, "expected a dim (an integer), got %s", tostring(dim))
  end
  return t
end

--- `normalize(t [, dim] [, {low = 0, high = 1}])`: min-max scaling, `low + (t - min) * (high - low)
-- / (max - min)`, to [0, 1] by default (pass `{low = -1, high = 1}` for [-1, 1]). Without dim the
-- min and max are those of all elements; with dim they are taken over that dim (keepdim), so
-- `normalize(X, 1)` scales each column of a samples x features matrix on its own. A constant slice
-- (max == min) maps to `low`. Returns the scaled tensor (float; integer input becomes float32) and
-- the stats `{min, max, low, high, apply = fn(x), undo = fn(y)}`.
function M.normalize(t, dim, opts)
  if type(dim) == "table" and opts == nil then dim, opts = nil, dim end
  t = check_input("normalize", t, dim)
  local o = options("normalize", 3, opts, { low = 0, high = 1 })
  local low, high = o.low, o.high
  if type(low) ~= "number" or type(high) ~= "number" or low >= high or low ~= low or high ~= high then
    argerror("normalize", 3, "low must be a number below high, got %s and %s", tostring(low), tostring(high))
  end
  local lo, hi
  if dim == nil then
    lo, hi = t:min(), t:max()
  else
    lo, hi = (t:min(dim, true)), (t:max(dim, true))
  end
  local range = hi - lo
  range = range:masked_fill(range:eq(0), 1)
  local scale = (high - low) / range
  local stats = { min = lo, max = hi, low = low, high = high }
  with_functions(stats,
    function(x) return (x - lo) * scale + low end,
    function(y) return (y - low) / scale + lo end)
  return stats.apply(t), stats
end

--- `standardize(t [, dim])`: `(t - mean) / std` (std unbiased, as t:std). Without dim the stats
-- are over all elements, with dim over that dim (keepdim: `standardize(X, 1)` standardizes each
-- column). A slice with std 0 is only centred. Returns the standardized tensor and the stats
-- `{mean, std, apply = fn(x), undo = fn(y)}`.
function M.standardize(t, dim)
  t = check_input("standardize", t, dim)
  local mean, std
  if dim == nil then
    mean, std = t:mean(), t:std()
  else
    mean, std = t:mean(dim, true), t:std(dim, true)
  end
  std = std:masked_fill(std:eq(0), 1)
  if std:ne(std):any():item() then -- one element: no unbiased std
    std = std:masked_fill(std:ne(std), 1)
  end
  local stats = { mean = mean, std = std }
  with_functions(stats,
    function(x) return (x - mean) / std end,
    function(y) return y * std + mean end)
  return stats.apply(t), stats
end

---------------------------------------------------------------------------------------------------
-- read_csv
---------------------------------------------------------------------------------------------------

local CSV_DEFAULTS = { header = true, dtype = "float32", columns = false, delimiter = "," }
local CSV_DTYPES = { float32 = true, float64 = true, int64 = true }
local SPECIAL = { nan = 0 / 0, ["+nan"] = 0 / 0, ["-nan"] = 0 / 0, inf = math.huge, ["+inf"] = math.huge,
  ["-inf"] = -math.huge, infinity = math.huge, ["-infinity"] = -math.huge }

local function split_fields(line, delim)
  local fields, pos = {}, 1
  while true do
    local s, e = line:find(delim, pos, true)
    if not s then
      fields[#fields + 1] = line:sub(pos)
      return fields
    end
    fields[#fields + 1] = line:sub(pos, s - 1)
    pos = e + 1
  end
end

local function clean(field)
  field = field:match("^%s*(.-)%s*$")
  local q = field:match('^"(.*)"$') or field:match("^'(.*)'$")
  return q or field
end

local function summary(names)
  local quoted = {}
  for i, name in ipairs(names) do quoted[i] = "'" .. name .. "'" end
  if #quoted <= 10 then return table.concat(quoted, ", ") end
  return table.concat(quoted, ", ", 1, 5) .. ", ..., " .. table.concat(quoted, ", ", #quoted - 1, #quoted)
end

--- `read_csv(path [, {header = true, dtype = "float32", columns = nil, delimiter = ","}])`: reads a
-- file of numbers, one row per line, and returns a 2-D tensor (rows x columns, float32 unless
-- `dtype` says float64 or int64) and the list of column names (empty without a header).
-- `columns` keeps only the listed columns, in the list's order (names, or 1-based numbers); the
-- other columns are not parsed, so they may hold text. Fields may be quoted and padded with spaces;
-- `nan` and `inf` are read. Empty lines at the end are ignored. Errors give the file's line number
-- (counting the header) and the column's name and 1-based number.
function M.read_csv(path, opts)
  if type(path) ~= "string" then
    argerror("read_csv", 1, "expected a file name, got %s", type(path))
  end
  local o = options("read_csv", 2, opts, CSV_DEFAULTS)
  if not CSV_DTYPES[o.dtype] then
    argerror("read_csv", 2, "dtype '%s' is not one of float32, float64, int64", tostring(o.dtype))
  end
  if type(o.delimiter) ~= "string" or #o.delimiter == 0 then
    argerror("read_csv", 2, "delimiter must be a non-empty string")
  end
  local f, why = io.open(path, "rb")
  if not f then error(string.format("read_csv: cannot open '%s' (%s)", path, why), 2) end
  local text, rerr = f:read("a")
  f:close()
  if not text then error(string.format("read_csv: cannot read '%s' (%s)", path, rerr), 2) end
  text = text:gsub("^\239\187\191", "") -- a UTF-8 byte order mark

  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = (line:gsub("\r$", "")) end
  while #lines > 0 and lines[#lines]:match("^%s*$") do lines[#lines] = nil end
  if #lines == 0 then error(string.format("read_csv: %s is empty", path), 2) end

  local function fail(lineno, fmt, ...)
    error(string.format("read_csv: %s line %d", path, lineno) .. string.format(fmt, ...), 3)
  end

  local names, first = {}, 1
  local ncols = #split_fields(lines[1], o.delimiter)
  if o.header then
    for i, name in ipairs(split_fields(lines[1], o.delimiter)) do names[i] = clean(name) end
    first = 2
  end
  local function colname(j)
    if names[j] then return string.format("column '%s' (%d)", names[j], j) end
    return string.format("column %d", j)
  end

  -- the columns to parse, in output order
  local sel = {}
  if o.columns then
    if type(o.columns) ~= "table" or #o.columns == 0 then
      argerror("read_csv", 2, "columns must be a non-empty list of column names or numbers")
    end
    for i, c in ipairs(o.columns) do
      local j
      if math.type(c) == "integer" then
        if c >= 1 and c <= ncols then j = c end
        if not j then
          error(string.format("read_csv: %s has %d columns, there is no column %d", path, ncols, c), 2)
        end
      else
        for k, name in ipairs(names) do if name == c then j = k break end end
        if not j then
          error(string.format("read_csv: %s has no column '%s' (its columns: %s)", path, tostring(c),
            #names > 0 and summary(names) or "none named: header = false"), 2)
        end
      end
      sel[i] = j
    end
  else
    for j = 1, ncols do sel[j] = j end
  end
  local out_names = {}
  if o.header then for i, j in ipairs(sel) do out_names[i] = names[j] end end

  local int = o.dtype == "int64"
  local rows = {}
  for lineno = first, #lines do
    local line = lines[lineno]
    if line:match("^%s*$") then fail(lineno, " is empty (expected %d fields)", ncols) end
    local fields = split_fields(line, o.delimiter)
    if #fields ~= ncols then
      fail(lineno, " has %d field%s, expected %d (as %s)", #fields, #fields == 1 and "" or "s", ncols,
        o.header and "the header" or "line 1")
    end
    local row = {}
    for i, j in ipairs(sel) do
      local s = clean(fields[j])
      local v = tonumber(s) or SPECIAL[s:lower()]
      if v == nil then fail(lineno, ", %s: '%s' is not a number", colname(j), s) end
      if int then
        local iv = math.tointeger(v)
        if iv == nil then fail(lineno, ", %s: '%s' is not an integer (dtype int64)", colname(j), s) end
        v = iv
      end
      row[i] = v
    end
    rows[#rows + 1] = row
  end
  if #rows == 0 then return core.zeros(0, #sel, { dtype = o.dtype }), out_names end
  return core.tensor(rows, { dtype = o.dtype }), out_names
end

---------------------------------------------------------------------------------------------------
-- IDX files (the MNIST family) and Fashion-MNIST
---------------------------------------------------------------------------------------------------

-- moongrad.idx (ext/idx.c) reads the file: a module of its own, because gzip needs zlib and the
-- core needs nothing but libc. Loaded on first use, so that everything else works without it.
local idx_module
local function load_idx(fname)
  if idx_module then return idx_module end
  local ok, mod = pcall(require, "moongrad.idx")
  if not ok then
    error(string.format("'%s': the IDX reader (moongrad.idx) is not built: it needs zlib's header "
      .. "(Debian: apt-get install zlib1g-dev), then rebuild moongrad (%s)", fname, tostring(mod)), 3)
  end
  idx_module = mod
  return mod
end

local IDX_FLOAT = { float32 = true, float64 = true }
local IDX_CHUNK = 1 << 20 -- elements converted per call: bounds the memory beside the tensor

-- read_idx(path [, {dtype}]): the tensor an IDX file holds (0x08 uint8, 0x09 int8, 0x0B int16,
-- 0x0C int32, 0x0D float32, 0x0E float64; big-endian dims), gzip-compressed or not. Integer data
-- reads as float32 by default (pixels 0..255 as they are, not scaled) or as asked: {dtype =
-- "int64"} for labels (then + 1 makes them moongrad's 1-based class indices), "float64".
-- float64 data reads as float64 unless asked otherwise.
function M.read_idx(path, opts)
  if type(path) ~= "string" then argerror("read_idx", 1, "expected a file name, got %s", type(path)) end
  local o = options("read_idx", 2, opts, { dtype = false })
  local idx = load_idx("read_idx")
  local r <close>, why = idx.open(path) -- closed on return and on error
  if not r then error(string.format("'read_idx': %s: %s", path, why), 2) end
  local kind, dims = r:info()
  local dtype = o.dtype or (kind == "float64" and "float64" or "float32")
  if dtype ~= "float32" and dtype ~= "float64" and dtype ~= "int64" then
    argerror("read_idx", 2, "dtype '%s' is not one of float32, float64, int64", tostring(dtype))
  end
  if dtype == "int64" and IDX_FLOAT[kind] then
    argerror("read_idx", 2, "dtype int64 needs integer data, %s holds %s", path, kind)
  end
  local t = core.empty(dims, { dtype = dtype })
  local n = t:numel()
  local flat = t:view(-1)
  local done = 0
  while done < n do
    local k = math.min(IDX_CHUNK, n - done)
    local bytes, err = r:read(k, dtype)
    if not bytes then error(string.format("'read_idx': %s: %s", path, err), 2) end
    flat:narrow(1, done + 1, k):copy_(core._tensor_from_bytes(bytes, 0, dtype, { k }))
    done = done + k
  end
  return t
end

M.FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
M.FASHION_MNIST_CLASSES = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
  "Sneaker", "Bag", "Ankle boot" }

local function find_file(dir, base)
  for _, name in ipairs({ base .. ".gz", base }) do
    local path = dir .. "/" .. name
    local f = io.open(path, "rb")
    if f then
      f:close()
      return path
    end
  end
end

-- fashion_mnist([{split = "train", dir}]): the images as float32 {N, 1, 28, 28} scaled to 0..1
-- (PyTorch's ToTensor), the labels as int64 class indices 1..10 (moongrad's classes count from 1),
-- and the list of class names (FASHION_MNIST_CLASSES, label i is classes[i]). The files are
-- Debian's dataset-fashion-mnist (under /usr/share/datasets/fashion-mnist), or in `dir`.
function M.fashion_mnist(opts)
  local o = options("fashion_mnist", 1, opts, { split = "train", dir = false })
  if o.split ~= "train" and o.split ~= "test" then
    argerror("fashion_mnist", 1, "split must be 'train' or 'test', got '%s'", tostring(o.split))
  end
  local dir = o.dir or M.FASHION_MNIST_DIR
  local prefix = o.split == "train" and "train" or "t10k"
  local images_path = find_file(dir, prefix .. "-images-idx3-ubyte")
  local labels_path = find_file(dir, prefix .. "-labels-idx1-ubyte")
  if not images_path or not labels_path then
    error(string.format("'fashion_mnist': no %s-images-idx3-ubyte[.gz] and %s-labels-idx1-ubyte[.gz] in %s: "
      .. "install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) or pass {dir = ...}",
      prefix, prefix, dir), 2)
  end
  local images = M.read_idx(images_path)
  local labels = M.read_idx(labels_path, { dtype = "int64" })
  if images:dim() ~= 3 or labels:dim() ~= 1 or images:size(1) ~= labels:size(1) then
    error(string.format("'fashion_mnist': %s holds %s and %s holds %s: expected {N,28,28} images and N labels",
      images_path, shape_str(images), labels_path, shape_str(labels)), 2)
  end
  images = images:unsqueeze(2):div_(255)
  labels:add_(1)
  return images, labels, { table.unpack(M.FASHION_MNIST_CLASSES) }
end

return M
