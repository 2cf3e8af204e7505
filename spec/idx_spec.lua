-- mg.data.read_idx (IDX files, the MNIST family's format, plain or gzip-compressed; the file half in
-- ext/idx.c, moongrad.idx) and mg.data.fashion_mnist: files written here byte by byte (every
-- element type, big-endian), their gzip twins, and each malformed file's exact message.
local mg = require "moongrad"
local H = require "helper"

local dir
local function path(name) return dir .. "/" .. name end

local function write(name, bytes)
  local f = assert(io.open(path(name), "wb"))
  f:write(bytes)
  f:close()
  return path(name)
end

-- an IDX file: type byte, dims, then the elements packed with `fmt` (string.pack, big-endian)
local function idx_bytes(type_byte, dims, fmt, values)
  local parts = { string.char(0, 0, type_byte, #dims) }
  for _, d in ipairs(dims) do parts[#parts + 1] = string.pack(">I4", d) end
  for _, v in ipairs(values) do parts[#parts + 1] = string.pack(fmt, v) end
  return table.concat(parts)
end

local function gzip(name)
  assert(os.execute("gzip -kf " .. path(name)))
  return path(name) .. ".gz"
end

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
end)

teardown(function()
  os.execute("rm -rf " .. dir)
end)

describe("mg.data.read_idx", function()
  it("reads uint8 data as float32 (values as they are) or int64, plain and gzip alike", function()
    local values = {}
    for i = 1, 24 do values[i] = (i * 37) % 256 end
    local p = write("u8.idx", idx_bytes(0x08, { 2, 3, 4 }, "B", values))
    local gz = gzip("u8.idx")
    for _, file in ipairs({ p, gz }) do
      local t = mg.data.read_idx(file)
      assert.equal("float32", t.dtype)
      assert.same({ 2, 3, 4 }, t.shape)
      assert.same(values, t:view(-1):totable())
      local l = mg.data.read_idx(file, { dtype = "int64" })
      assert.equal("int64", l.dtype)
      assert.same(values, l:view(-1):totable())
      assert.same(values, mg.data.read_idx(file, { dtype = "float64" }):view(-1):totable())
    end
  end)

  it("reads labels as 1-based class indices with + 1", function()
    local p = gzip((function()
      write("labels.idx", idx_bytes(0x08, { 5 }, "B", { 9, 0, 0, 3, 1 }))
      return "labels.idx"
    end)())
    local y = mg.data.read_idx(p, { dtype = "int64" }) + 1
    assert.equal("int64", y.dtype)
    assert.same({ 10, 1, 1, 4, 2 }, y:totable())
    -- usable as cross_entropy targets right away
    local loss = mg.F.cross_entropy(mg.zeros(5, 10), y)
    assert.is_true(math.abs(loss:item() - math.log(10)) < 1e-6)
  end)

  it("reads int8, int16, int32 (signed, big-endian), float32 and float64", function()
    local cases = {
      { 0x09, ">i1", { -128, -1, 0, 127 }, "float32" },
      { 0x0B, ">i2", { -32768, -2, 258, 32767 }, "float32" },
      { 0x0C, ">i4", { -2147483648, -70000, 1, 2147483647 }, "float64" },
      { 0x0D, ">f", { -1.5, 0.25, 3e10, 1 / 3 }, "float32" },
      { 0x0E, ">d", { -1.5, 0.1, 1e300, 1 / 3 }, "float64" },
    }
    for _, c in ipairs(cases) do
      local name = string.format("t%02x.idx", c[1])
      local p = write(name, idx_bytes(c[1], { 2, 2 }, c[2], c[3]))
      for _, file in ipairs({ p, gzip(name) }) do
        local t = mg.data.read_idx(file, c[1] <= 0x0C and { dtype = c[4] } or nil)
        assert.equal(c[4], t.dtype, name)
        local want = mg.tensor(c[3], { dtype = c[4] }):view(2, 2)
        assert.is_true(mg.equal(want, t), name)
      end
      if c[1] <= 0x0C then
        assert.same(c[3], mg.data.read_idx(p, { dtype = "int64" }):view(-1):totable())
      end
    end
    -- float32 data reads as float32 by default, float64 as float64
    assert.equal("float32", mg.data.read_idx(path("t0d.idx")).dtype)
    assert.equal("float64", mg.data.read_idx(path("t0e.idx")).dtype)
    assert.equal("float32", mg.data.read_idx(path("t0e.idx"), { dtype = "float32" }).dtype)
  end)

  it("reads files without elements, and files larger than one chunk", function()
    local p = write("empty.idx", idx_bytes(0x08, { 0, 28, 28 }, "B", {}))
    assert.same({ 0, 28, 28 }, mg.data.read_idx(p).shape)
    local n = (1 << 20) + 77 -- one chunk and a bit
    local bytes = {}
    for i = 1, n do bytes[i] = string.char(i % 251) end
    local big = write("big.idx", string.char(0, 0, 8, 1) .. string.pack(">I4", n) .. table.concat(bytes))
    local gz = gzip("big.idx")
    for _, file in ipairs({ big, gz }) do
      local t = mg.data.read_idx(file, { dtype = "int64" })
      assert.equal(n, t:numel())
      assert.equal(1, t[1])
      assert.equal(n % 251, t[n])
      assert.equal((1 << 20) % 251, t[1 << 20])
      -- sum of i % 251 over 1..n
      local want = 0
      for i = 1, n do want = want + i % 251 end
      assert.equal(want, t:sum():item())
    end
  end)

  it("explains every malformed file, naming it", function()
    local p
    H.errors(function() mg.data.read_idx(path("nope.idx")) end,
      "'read_idx': " .. path("nope.idx") .. ": cannot open (No such file or directory)")
    p = write("text.idx", "hello, world")
    H.errors(function() mg.data.read_idx(p) end,
      "'read_idx': " .. p .. ": not an IDX file (it starts with 68 65 6c 6c; IDX starts with 00 00, a type and the number of dims)")
    p = write("short.idx", "\0\0")
    H.errors(function() mg.data.read_idx(p) end, "'read_idx': " .. p .. ": truncated: 2 bytes, an IDX header has at least 4")
    p = write("type.idx", string.char(0, 0, 0x0A, 1) .. string.pack(">I4", 0))
    H.errors(function() mg.data.read_idx(p) end, "'read_idx': " .. p .. ": unknown IDX element type 0x0A (expected "
      .. "0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32 or 0x0E float64)")
    p = write("dims0.idx", string.char(0, 0, 8, 0))
    H.errors(function() mg.data.read_idx(p) end, "'read_idx': " .. p .. ": 0 dims in the header (1 to 16 supported)")
    p = write("dimcut.idx", string.char(0, 0, 8, 3) .. string.pack(">I4", 2))
    H.errors(function() mg.data.read_idx(p) end,
      "'read_idx': " .. p .. ": truncated: the header names 3 dims, the file ends inside them")
    p = write("cut.idx", idx_bytes(0x08, { 2, 3 }, "B", { 1, 2, 3, 4, 5 }))
    H.errors(function() mg.data.read_idx(p) end,
      "'read_idx': " .. p .. ": truncated: its header claims {2,3} uint8 elements (6), which need 18 bytes, the file has 17")
    p = write("extra.idx", idx_bytes(0x0B, { 2 }, ">i2", { 1, 2 }) .. "xyz")
    H.errors(function() mg.data.read_idx(p) end,
      "'read_idx': " .. p .. ": 3 bytes after the {2} int16 elements of its header (the file has 15 bytes, the data 12)")
    -- a header claiming 10^12 elements: an error before any allocation, naming the size
    p = write("huge.idx", string.char(0, 0, 8, 2) .. string.pack(">I4>I4", 1000000, 1000000) .. "abcdefgh")
    H.errors(function() mg.data.read_idx(p) end,
      "'read_idx': " .. p .. ": truncated: its header claims {1000000,1000000} uint8 elements (1000000000000), "
      .. "which need 1000000000012 bytes, the file has 20")
    p = write("huge2.idx", string.char(0, 0, 0x0E, 4) .. string.pack(">I4>I4>I4>I4", 4294967295, 4294967295, 4294967295, 7))
    H.errors(function() mg.data.read_idx(p) end,
      "'read_idx': " .. p .. ": truncated: its header claims {4294967295,4294967295,4294967295,7} float64 elements "
      .. "(more than 2^59), which need more than 2^59 bytes, the file has 20")
    write("hugegz.idx", string.char(0, 0, 8, 2) .. string.pack(">I4>I4", 1000000, 1000000) .. string.rep("\0", 1000))
    local gz = gzip("hugegz.idx")
    local size = #H.read_file(gz)
    H.errors(function() mg.data.read_idx(gz) end,
      "'read_idx': " .. gz .. ": its header claims {1000000,1000000} uint8 elements (1000000000012 bytes of data), "
      .. "more than a gzip file of " .. size .. " bytes can hold")
    H.errors(function() mg.data.read_idx(path("t0d.idx"), { dtype = "int64" }) end,
      "bad argument #2 to 'read_idx' (dtype int64 needs integer data, " .. path("t0d.idx") .. " holds float32)")
    H.errors(function() mg.data.read_idx(path("t0d.idx"), { dtype = "bool" }) end,
      "bad argument #2 to 'read_idx' (dtype 'bool' is not one of float32, float64, int64)")
    H.errors(function() mg.data.read_idx(3) end, "bad argument #1 to 'read_idx' (expected a file name, got number)")
    local ok, err = pcall(function() mg.data.read_idx(path("nope.idx")) end)
    assert.is_false(ok)
    assert.truthy(err:match("^spec/idx_spec%.lua:%d+: 'read_idx'"), err)
  end)

  it("explains truncated and corrupt gzip files", function()
    local values = {}
    for i = 1, 4000 do values[i] = (i * i) % 256 end
    write("data.idx", idx_bytes(0x08, { 40, 100 }, "B", values))
    local good = H.read_file(gzip("data.idx"))
    -- cut in the middle: the trailer read is not this file's, its size disagrees with the header
    local p = write("cut.idx.gz", good:sub(1, #good // 2))
    H.errors(function() mg.data.read_idx(p) end, "'read_idx': " .. p .. ": corrupt or truncated gzip file: its header "
      .. "claims {40,100} uint8 elements (4012 bytes of IDX data), its gzip trailer says ")
    -- a byte flipped inside the deflate stream (the trailer intact): zlib's own message
    local mid = #good // 2
    local bad = good:sub(1, mid - 1) .. string.char((good:byte(mid) + 85) % 256) .. good:sub(mid + 1)
    p = write("bad.idx.gz", bad)
    local ok, err = pcall(mg.data.read_idx, p)
    assert.is_false(ok)
    assert.truthy(err:find("'read_idx': " .. p .. ": ", 1, true), err)
    assert.is_nil(err:find(p .. ": " .. p, 1, true), err) -- zlib's own "path: " is dropped
    assert.truthy(err:find("corrupt gzip data (", 1, true) or err:find("truncated: the data ends after", 1, true), err)
  end)
end)

describe("mg.data.fashion_mnist", function()
  local have = io.open(mg.data.FASHION_MNIST_DIR .. "/train-labels-idx1-ubyte.gz", "rb")
  if have then have:close() end

  it("says which package to install when the files are missing", function()
    H.errors(function() mg.data.fashion_mnist{ dir = dir .. "/none" } end,
      "'fashion_mnist': no train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] in " .. dir .. "/none: "
      .. "install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) or pass {dir = ...}")
    H.errors(function() mg.data.fashion_mnist{ split = "val" } end,
      "bad argument #1 to 'fashion_mnist' (split must be 'train' or 'test', got 'val')")
  end)

  it("reads a hand-made set in another dir", function()
    local d = dir .. "/fm"
    os.execute("mkdir -p " .. d)
    local pixels = {}
    for i = 1, 2 * 28 * 28 do pixels[i] = i % 256 end
    local f = assert(io.open(d .. "/t10k-images-idx3-ubyte", "wb"))
    f:write(idx_bytes(0x08, { 2, 28, 28 }, "B", pixels))
    f:close()
    f = assert(io.open(d .. "/t10k-labels-idx1-ubyte", "wb"))
    f:write(idx_bytes(0x08, { 2 }, "B", { 9, 0 }))
    f:close()
    local x, y, classes = mg.data.fashion_mnist{ split = "test", dir = d }
    assert.same({ 2, 1, 28, 28 }, x.shape)
    assert.same({ 10, 1 }, y:totable())
    assert.equal("Ankle boot", classes[y[1]])
    assert.equal("T-shirt/top", classes[y[2]])
    assert.equal(mg.tensor(5, { dtype = "float32" }):div(255):item(), x[1][1][1][5])
  end)

  -- Debian's dataset-fashion-mnist (scripts/deps.sh installs it when root)
  local real = have and it or pending
  real("reads Debian's Fashion-MNIST: 60000 training images in well under 2 s of CPU #noasan", function()
    local t0 = os.clock()
    local x, y = mg.data.fashion_mnist()
    local seconds = os.clock() - t0
    assert.same({ 60000, 1, 28, 28 }, x.shape)
    assert.same({ 60000 }, y.shape)
    assert.is_true(seconds < 2, seconds .. " s")
    -- the first labels (Ankle boot, T-shirt/top, T-shirt/top, Dress, ...) and the pixel range
    assert.same({ 10, 1, 1, 4, 1, 3, 8, 3, 6, 6 }, y:narrow(1, 1, 10):totable())
    assert.equal(0, x:min():item())
    assert.equal(1, x:max():item())
    -- every class 6000 times (the set is balanced)
    local counts = mg.zeros(10, { dtype = "int64" })
    for c = 1, 10 do counts[c] = y:eq(c):sum():item() end
    assert.same({ 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000 }, counts:totable())
    local xt, yt = mg.data.fashion_mnist{ split = "test" }
    assert.same({ 10000, 1, 28, 28 }, xt.shape)
    assert.same({ 10, 3, 2, 2, 7 }, yt:narrow(1, 1, 5):totable())
  end)
end)
