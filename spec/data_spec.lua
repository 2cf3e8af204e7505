local mg = require "moongrad"
local H = require "helper"
local data = mg.data

-- all batches of one pass, as Lua tables
local function pass(loader)
  local out = {}
  for xb, yb in loader do out[#out + 1] = { xb:totable(), yb and yb:totable() } end
  return out
end

describe("mg.data.DataLoader", function()
  local x = mg.arange(1, 11):view(5, 2) -- rows {1,2} {3,4} ... {9,10}
  local y = mg.tensor({ 10, 20, 30, 40, 50 }, { dtype = "int64" })

  it("batches a list of tensors in order, keeping the last partial batch", function()
    local loader = data.DataLoader({ x, y }, { batch_size = 2 })
    assert.equal(3, #loader)
    assert.same({
      { { { 1, 2 }, { 3, 4 } }, { 10, 20 } },
      { { { 5, 6 }, { 7, 8 } }, { 30, 40 } },
      { { { 9, 10 } }, { 50 } },
    }, pass(loader))
    for _, yb in loader do assert.equal("int64", yb.dtype) end
  end)

  it("drops the last partial batch with drop_last", function()
    local loader = data.DataLoader({ x, y }, { batch_size = 2, drop_last = true })
    assert.equal(2, #loader)
    local batches = pass(loader)
    assert.equal(2, #batches)
    assert.same({ 30, 40 }, batches[2][2])
  end)

  it("defaults to batches of one, and takes a single tensor", function()
    local loader = data.DataLoader(y)
    assert.equal(5, #loader)
    local seen = {}
    for yb, extra in loader do
      assert.is_nil(extra)
      assert.same({ 1 }, yb.shape)
      seen[#seen + 1] = yb[1]
    end
    assert.same({ 10, 20, 30, 40, 50 }, seen)
  end)

  it("gives views without shuffle", function()
    local t = mg.zeros(4, 3)
    for xb in data.DataLoader({ t }, { batch_size = 3 }) do
      if #xb == 3 then xb:fill_(7) end
    end
    H.near({ { 7, 7, 7 }, { 7, 7, 7 }, { 7, 7, 7 }, { 0, 0, 0 } }, t)
  end)

  it("has a batch count for every size", function()
    for n = 0, 7 do
      local t = mg.zeros(n, 1)
      assert.equal((n + 2) // 3, #data.DataLoader({ t }, { batch_size = 3 }))
      assert.equal(n // 3, #data.DataLoader({ t }, { batch_size = 3, drop_last = true }))
      local count = 0
      for _ in data.DataLoader({ t }, { batch_size = 3 }) do count = count + 1 end
      assert.equal((n + 2) // 3, count)
    end
  end)

  it("shuffles with mg.randperm: reproducible from mg.manual_seed, reshuffled every pass", function()
    local loader = data.DataLoader({ x, y }, { batch_size = 2, shuffle = true })
    mg.manual_seed(42)
    local first, second = pass(loader), pass(loader)
    mg.manual_seed(42)
    assert.same(first, pass(loader))
    assert.same(second, pass(loader))
    -- the order is mg.randperm's, drawn when the pass starts
    mg.manual_seed(42)
    local perm = mg.randperm(5):totable()
    local ys = {}
    for _, b in ipairs(first) do for _, v in ipairs(b[2]) do ys[#ys + 1] = v end end
    for i = 1, 5 do assert.equal(perm[i] * 10, ys[i]) end
    assert.same({ 2, 2, 1 }, { #first[1][2], #first[2][2], #first[3][2] })
    -- rows stay paired with their labels, and every sample comes once per pass
    local all = {}
    for _, b in ipairs(second) do
      for i, row in ipairs(b[1]) do
        assert.equal(row[2] * 5, b[2][i])
        all[#all + 1] = b[2][i]
      end
    end
    table.sort(all)
    assert.same({ 10, 20, 30, 40, 50 }, all)
    -- with 5! orders, two passes in a row differing is what a fixed seed gives here
    local function order(p)
      local s = {}
      for _, b in ipairs(p) do for _, v in ipairs(b[2]) do s[#s + 1] = v end end
      return table.concat(s, ",")
    end
    assert.are_not.equal(order(first), order(second))
  end)

  it("lets two loops over one loader run at once", function()
    local loader = data.DataLoader({ y }, { batch_size = 2 })
    local pairs_seen = {}
    for a in loader do
      for b in loader do pairs_seen[#pairs_seen + 1] = a[1] .. ":" .. b[1] end
    end
    assert.same({ "10:10", "10:30", "10:50", "30:10", "30:30", "30:50", "50:10", "50:30", "50:50" }, pairs_seen)
    -- a loop left with break does not disturb the next one
    for _ in loader do break end -- luacheck: ignore 512
    assert.equal(3, #pass(loader))
  end)

  it("returns a plain iterator from loader() and loader:iter()", function()
    local loader = data.DataLoader({ x, y }, { batch_size = 2 })
    for _, it in ipairs({ loader(), loader:iter() }) do
      local ys = {}
      for xb, yb in it do
        assert.equal(#xb, #yb)
        ys[#ys + 1] = yb:totable()
      end
      assert.same({ { 10, 20 }, { 30, 40 }, { 50 } }, ys)
    end
  end)

  it("batches a dataset object with __len and get(i), stacking with mg.stack", function()
    local Squares = {}
    Squares.__index = Squares
    Squares.__len = function(self) return self.n end
    function Squares.get(_, i) return mg.tensor({ i, i * i }), mg.tensor(i % 2) end
    local ds = setmetatable({ n = 7 }, Squares)
    local loader = data.DataLoader(ds, { batch_size = 3 })
    assert.equal(3, #loader)
    local batches = pass(loader)
    assert.same({ { 1, 1 }, { 2, 4 }, { 3, 9 } }, batches[1][1])
    assert.same({ 1, 0, 1 }, batches[1][2])
    assert.same({ { 7, 49 } }, batches[3][1])
    mg.manual_seed(3)
    local perm = mg.randperm(7):totable()
    mg.manual_seed(3)
    local shuffled = pass(data.DataLoader(ds, { batch_size = 4, shuffle = true }))
    assert.same({ perm[1], perm[1] ^ 2 }, shuffled[1][1][1])
    assert.same({ perm[5], perm[5] ^ 2 }, shuffled[2][1][1])
  end)

  it("collates numbers from a dataset into tensors (integers as int64)", function()
    local ds = setmetatable({}, { __len = function() return 3 end,
      __index = { get = function(_, i) return mg.tensor({ i }), i, i / 2 end } })
    for xb, label, half in data.DataLoader(ds, { batch_size = 3 }) do
      H.near({ { 1 }, { 2 }, { 3 } }, xb)
      assert.equal("int64", label.dtype)
      assert.same({ 1, 2, 3 }, label:totable())
      H.near({ 0.5, 1, 1.5 }, half)
    end
  end)

  it("reports mismatching sizes, bad sources and bad options", function()
    H.errors(function() data.DataLoader({ x, mg.zeros(4) }) end,
      "bad argument #1 to 'DataLoader' (tensors must have the same size in dim 1: tensor 1 has 5 ({5,2}), tensor 2 has 4 ({4}))")
    H.errors(function() data.DataLoader(42) end, "bad argument #1 to 'DataLoader' (expected a tensor")
    H.errors(function() data.DataLoader({ a = 1 }) end, "dataset with __len and get(i)")
    H.errors(function() data.DataLoader({ x, "y" }) end, "element 2 of the list is a string, not a tensor")
    H.errors(function() data.DataLoader({ mg.tensor(1) }) end, "tensor 1 is 0-d")
    H.errors(function() data.DataLoader({ x }, { batch = 2 }) end,
      "bad argument #2 to 'DataLoader' (unknown option 'batch' (valid: batch_size, drop_last, shuffle))")
    H.errors(function() data.DataLoader({ x }, { batch_size = 0 }) end, "batch_size must be a positive integer, got 0")
    H.errors(function() data.DataLoader({ x }, { batch_size = 1.5 }) end, "got 1.5")
  end)

  it("prints a summary", function()
    assert.equal("DataLoader(5 samples, batch_size=2, shuffle=false, drop_last=false: 3 batches)",
      tostring(data.DataLoader({ x, y }, { batch_size = 2 })))
  end)
end)

describe("mg.data.random_split", function()
  local function check_partition(parts, n)
    local seen, total = {}, 0
    for _, p in ipairs(parts) do
      assert.equal("int64", p.dtype)
      for _, v in ipairs(p:totable()) do
        assert.is_true(v >= 1 and v <= n)
        assert.is_nil(seen[v])
        seen[v] = true
        total = total + 1
      end
    end
    assert.equal(n, total)
  end

  it("splits by fractions into disjoint 1-based index tensors", function()
    mg.manual_seed(1)
    local parts = data.random_split(10, { 0.8, 0.2 })
    assert.equal(2, #parts)
    assert.same({ 8 }, parts[1].shape)
    assert.same({ 2 }, parts[2].shape)
    check_partition(parts, 10)
  end)

  it("gives the rest of a fraction split to the first parts, as PyTorch", function()
    local parts = data.random_split(10, { 1 / 3, 1 / 3, 1 / 3 })
    assert.same({ 4, 3, 3 }, { #parts[1], #parts[2], #parts[3] })
    check_partition(parts, 10)
    parts = data.random_split(1797, { 0.8, 0.2 })
    assert.same({ 1438, 359 }, { #parts[1], #parts[2] })
    check_partition(parts, 1797)
  end)

  it("splits by counts", function()
    local parts = data.random_split(7, { 2, 0, 5 })
    assert.same({ 2, 0, 5 }, { #parts[1], #parts[2], #parts[3] })
    check_partition(parts, 7)
  end)

  it("refuses a size too large to permute, without hanging", function()
    H.errors(function() data.random_split(math.maxinteger, { 0.5, 0.5, 0 }) end,
      "bad argument #1 to 'random_split' (9223372036854775807 samples are too many to permute: " ..
      "shape {9223372036854775807} has more than 2^62 elements)")
  end)

  it("follows mg.randperm, so the seed reproduces it (the book's split)", function()
    mg.manual_seed(5)
    local perm = mg.randperm(6):totable()
    mg.manual_seed(5)
    local parts = data.random_split(6, { 4, 2 })
    assert.same({ perm[1], perm[2], perm[3], perm[4] }, parts[1]:totable())
    assert.same({ perm[5], perm[6] }, parts[2]:totable())
    -- usable with index_select; a tensor stands for its size in dim 1
    local t = mg.arange(0, 6)
    local a = data.random_split(t, { 0.5, 0.5 })
    assert.equal(3, #t:index_select(1, a[1]))
  end)

  it("rejects fractions that sum to neither 1 nor n", function()
    H.errors(function() data.random_split(10, { 0.5, 0.3 }) end,
      "bad argument #2 to 'random_split' ({0.5,0.3} sums to 0.8: expected fractions summing to 1 or counts summing to 10)")
    H.errors(function() data.random_split(10, { 3, 4 }) end, "sums to 7")
    H.errors(function() data.random_split(10, { -0.5, 1.5 }) end, "element 1 is -0.5")
    H.errors(function() data.random_split(2.5, { 1 }) end, "bad argument #1 to 'random_split'")
    H.errors(function() data.random_split(10, {}) end, "bad argument #2 to 'random_split'")
  end)
end)

describe("mg.data.normalize", function()
  local X = mg.tensor({ { 1, 10, 5 }, { 3, 30, 5 }, { 2, 20, 5 } })

  it("scales all elements to [0, 1] without a dim, and undoes it", function()
    local t = mg.tensor({ 2, 4, 6, 10 })
    local n, stats = data.normalize(t)
    H.near({ 0, 0.25, 0.5, 1 }, n)
    H.near(2, stats.min)
    H.near(10, stats.max)
    H.near({ 2, 4, 6, 10 }, stats.undo(n))
    H.near({ 2, 4, 6, 10 }, stats:undo(n))
    H.near({ 1.5 }, stats.apply(mg.tensor({ 14 })))
  end)

  it("scales each column with dim = 1; a constant column maps to low", function()
    local n, stats = data.normalize(X, 1)
    H.near({ { 0, 0, 0 }, { 1, 1, 0 }, { 0.5, 0.5, 0 } }, n)
    H.near({ { 1, 10, 5 } }, stats.min)
    H.near({ { 3, 30, 5 } }, stats.max)
    H.near(X:totable(), stats.undo(n))
  end)

  it("scales to [-1, 1] on request", function()
    local n, stats = data.normalize(X, 1, { low = -1, high = 1 })
    H.near({ { -1, -1, -1 }, { 1, 1, -1 }, { 0, 0, -1 } }, n)
    H.near(X:totable(), stats.undo(n))
    n = data.normalize(mg.tensor({ 0, 5, 10 }), { low = -1 })
    H.near({ -1, 0, 1 }, n)
  end)

  it("takes integer tensors and returns floats", function()
    local n = data.normalize(mg.tensor({ 0, 8, 16 }, { dtype = "int64" }))
    assert.equal("float32", n.dtype)
    H.near({ 0, 0.5, 1 }, n)
  end)

  it("reports bad arguments", function()
    H.errors(function() data.normalize({ 1, 2 }) end, "bad argument #1 to 'normalize' (expected a tensor, got table)")
    H.errors(function() data.normalize(X, 1, { lo = 0 }) end,
      "bad argument #3 to 'normalize' (unknown option 'lo' (valid: high, low))")
    H.errors(function() data.normalize(X, 1, { low = 1, high = 0 }) end, "low must be a number below high")
    H.errors(function() data.normalize(mg.zeros(0)) end, "the tensor is empty")
  end)
end)

describe("mg.data.standardize", function()
  it("gives mean 0 and std 1 over all elements, and undoes it", function()
    local t = mg.tensor({ 1, 2, 3, 4 })
    local z, stats = data.standardize(t)
    local s = math.sqrt(5 / 3) -- the unbiased std
    H.near({ -1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s }, z)
    H.near(2.5, stats.mean)
    H.near(s, stats.std)
    H.near(0, z:mean():item())
    H.near(1, z:std():item())
    H.near({ 1, 2, 3, 4 }, stats.undo(z))
    H.near({ 1, 2, 3, 4 }, stats:undo(z))
  end)

  it("standardizes each column with dim = 1, centring a constant column", function()
    local X = mg.tensor({ { 1, 10, 5 }, { 3, 30, 5 }, { 2, 20, 5 } })
    local z, stats = data.standardize(X, 1)
    H.near({ { -1, -1, 0 }, { 1, 1, 0 }, { 0, 0, 0 } }, z)
    H.near({ { 2, 20, 5 } }, stats.mean)
    H.near({ { 1, 10, 1 } }, stats.std)
    H.near(X:totable(), stats.undo(z))
    -- new data with the training set's stats
    H.near({ { 2, 2, 1 } }, stats.apply(mg.tensor({ { 4, 40, 6 } })))
  end)

  it("reports bad arguments", function()
    H.errors(function() data.standardize("x") end, "bad argument #1 to 'standardize' (expected a tensor, got string)")
    H.errors(function() data.standardize(mg.ones(2), "a") end, "bad argument #2 to 'standardize'")
  end)
end)

describe("mg.data.read_csv", function()
  it("reads a header and rows into a float32 tensor", function()
    local path = H.tmpfile("a,b,c\n1,2,3\n4.5,-5,6e2\n\n\n")
    local t, names = data.read_csv(path)
    os.remove(path)
    assert.equal("float32", t.dtype)
    assert.same({ "a", "b", "c" }, names)
    H.near({ { 1, 2, 3 }, { 4.5, -5, 600 } }, t)
  end)

  it("handles CRLF, quotes, spaces, nan/inf and files without a header", function()
    local path = H.tmpfile('"x", "y"\r\n 1 ,"2"\r\nnan,-inf\r\n')
    local t, names = data.read_csv(path)
    assert.same({ "x", "y" }, names)
    H.near({ { 1, 2 }, { 0 / 0, -math.huge } }, t)
    os.remove(path)
    path = H.tmpfile("1;2\n3;4")
    t, names = data.read_csv(path, { header = false, delimiter = ";", dtype = "float64" })
    os.remove(path)
    assert.same({}, names)
    assert.equal("float64", t.dtype)
    H.near({ { 1, 2 }, { 3, 4 } }, t)
  end)

  it("keeps the listed columns, by name or number, and leaves the others unparsed", function()
    local path = H.tmpfile("len,species,width\n1.5,setosa,0.2\n4.7,virginica,1.4\n")
    local t, names = data.read_csv(path, { columns = { "width", 1 } })
    assert.same({ "width", "len" }, names)
    H.near({ { 0.2, 1.5 }, { 1.4, 4.7 } }, t)
    H.errors(function() data.read_csv(path, { columns = { "height" } }) end,
      "has no column 'height' (its columns: 'len', 'species', 'width')")
    H.errors(function() data.read_csv(path, { columns = { 4 } }) end, "has 3 columns, there is no column 4")
    H.errors(function() data.read_csv(path) end,
      "read_csv: " .. path .. " line 2, column 'species' (2): 'setosa' is not a number")
    os.remove(path)
  end)

  it("reads int64", function()
    local path = H.tmpfile("k\n3\n-7\n")
    local t = data.read_csv(path, { dtype = "int64" })
    assert.equal("int64", t.dtype)
    assert.same({ { 3 }, { -7 } }, t:totable())
    os.remove(path)
    path = H.tmpfile("k\n3\n2.5\n")
    H.errors(function() data.read_csv(path, { dtype = "int64" }) end,
      "line 3, column 'k' (1): '2.5' is not an integer (dtype int64)")
    os.remove(path)
  end)

  it("reads a header-only file as zero rows", function()
    local path = H.tmpfile("a,b\n")
    local t, names = data.read_csv(path)
    os.remove(path)
    assert.same({ 0, 2 }, t.shape)
    assert.same({ "a", "b" }, names)
  end)

  it("reads data/digits.csv: 1797 rows, 65 columns", function()
    local t, names = data.read_csv("data/digits.csv")
    assert.same({ 1797, 65 }, t.shape)
    assert.equal(65, #names)
    assert.equal("pixel_0_0", names[1])
    assert.equal("pixel_7_7", names[64])
    assert.equal("digit", names[65])
    -- the first image is a 0, the labels are 0..9 and the pixels 0..16
    assert.equal(0, t[1][65])
    H.near({ 0, 0, 5, 13, 9, 1, 0, 0 }, t[1]:narrow(1, 1, 8))
    assert.equal(0, t:select(2, 65):min():item())
    assert.equal(9, t:select(2, 65):max():item())
    assert.equal(16, t:narrow(2, 1, 64):max():item())
  end)

  it("names the line (counting the header), the column's name and number in errors", function()
    local path = H.tmpfile("pixel1,pixel2,pixel3,pixel4\n1,2,3,4\n1,2,3,4\n1,2,3,4\n1,2,3,abc\n")
    H.errors(function() data.read_csv(path) end,
      "read_csv: " .. path .. " line 5, column 'pixel4' (4): 'abc' is not a number")
    os.remove(path)
    path = H.tmpfile("1,2\n3,x\n")
    H.errors(function() data.read_csv(path, { header = false }) end, "line 2, column 2: 'x' is not a number")
    os.remove(path)
    path = H.tmpfile("a,b\n1,2\n3\n")
    H.errors(function() data.read_csv(path) end, "line 3 has 1 field, expected 2 (as the header)")
    os.remove(path)
    path = H.tmpfile("a,b\n1,2\n\n3,4\n")
    H.errors(function() data.read_csv(path) end, "line 3 is empty (expected 2 fields)")
    os.remove(path)
    path = H.tmpfile("a,b\n1,\n")
    H.errors(function() data.read_csv(path) end, "line 2, column 'b' (2): '' is not a number")
    os.remove(path)
    path = H.tmpfile("\n\n")
    H.errors(function() data.read_csv(path) end, "read_csv: " .. path .. " is empty")
    os.remove(path)
  end)

  it("names a missing file, and checks its options", function()
    H.errors(function() data.read_csv("no/such/file.csv") end, "read_csv: cannot open 'no/such/file.csv'")
    H.errors(function() data.read_csv("spec") end, "read_csv: cannot read 'spec' (Is a directory)")
    H.errors(function() data.read_csv("data/digits.csv", { headers = true }) end,
      "bad argument #2 to 'read_csv' (unknown option 'headers' (valid: columns, delimiter, dtype, header))")
    H.errors(function() data.read_csv("data/digits.csv", { dtype = "bool" }) end,
      "dtype 'bool' is not one of float32, float64, int64")
    H.errors(function() data.read_csv(42) end, "bad argument #1 to 'read_csv' (expected a file name, got number)")
  end)
end)
