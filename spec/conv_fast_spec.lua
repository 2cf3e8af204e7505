-- The per-sample path's fast variants of conv2d (src/ops/conv.c), each against a reference:
--   * the float32 forward at stride 1 without a column buffer (forward_rows, mg_gemm_rows_f32):
--     the same bits as the batched path (a batch of 1 takes it) and as the same sample in a batch;
--   * the float32 weight gradient of at most 16 taps a group as dot products (dot_nt_*): its own
--     order of sums, checked against float64, exactly where every sum is exact, and the same bits
--     at AVX2 and AVX-512;
--   * the bias gradient in 16 double lanes: exact on exact sums, near the float64 sum otherwise.
-- Every variant: the same bits for 1 and 2 threads.
local mg = require "moongrad"
local H = require "helper"
local F = mg.F

local function same_bits(a, b)
  assert.same(a.shape, b.shape)
  local x, y = a:contiguous():reshape(-1):totable(), b:contiguous():reshape(-1):totable()
  for i = 1, #x do
    if x[i] ~= y[i] and not (x[i] ~= x[i] and y[i] ~= y[i]) then
      error(string.format("element %d differs: %a vs %a", i, x[i], y[i]), 2)
    end
  end
end

local function max_abs(t) return t:abs():max():item() end

-- geometries of the book's network and around it: groups, dilation, asymmetric padding, 1x1,
-- no padding, K over the gemm's block of 256 (two K blocks), odd widths, N over the thread count
local CASES = {
  {name = "book conv1", N = 8, C = 1, H = 28, W = 28, O = 16, k = 3, opt = {padding = 1}},
  {name = "book conv2", N = 8, C = 16, H = 14, W = 14, O = 8, k = 3, opt = {padding = 1}},
  {name = "dilation, padding {2,1}", N = 5, C = 3, H = 9, W = 11, O = 7, k = 3,
   opt = {padding = {2, 1}, dilation = {2, 1}}},
  {name = "groups 2, 2x2", N = 6, C = 4, H = 10, W = 7, O = 6, k = 2, opt = {groups = 2}},
  {name = "K 360 (two K blocks)", N = 4, C = 40, H = 6, W = 6, O = 12, k = 3, opt = {padding = 1}},
  {name = "1x1, 33 channels", N = 4, C = 2, H = 5, W = 6, O = 33, k = 1, opt = {}},
  {name = "no padding, 24 channels", N = 7, C = 3, H = 8, W = 8, O = 24, k = 3, opt = {padding = 0}},
  -- an even kernel with padding = "same": one more row and column of zeros at the bottom / right
  {name = "'same', 2x2", N = 5, C = 6, H = 7, W = 9, O = 4, k = 2, opt = {padding = "same"}},
  {name = "'same', 4x4, dilation {1,2}", N = 4, C = 5, H = 6, W = 8, O = 3, k = 4,
   opt = {padding = "same", dilation = {1, 2}}},
}

local function inputs(c, dtype)
  mg.manual_seed(11)
  local x = mg.randn(c.N, c.C, c.H, c.W, {dtype = dtype})
  local w = mg.randn(c.O, c.C // (c.opt.groups or 1), c.k, c.k, {dtype = dtype})
  local b = mg.randn(c.O, {dtype = dtype})
  return x, w, b
end

-- the batched path's result: each sample alone (a batch of 1 never takes the per-sample path)
local function one_by_one(x, w, b, opt)
  local parts = {}
  for n = 1, x.shape[1] do parts[n] = F.conv2d(x:narrow(1, n, 1), w, b, opt) end
  return mg.cat(parts, 1)
end

describe("conv2d forward without a column buffer (float32, stride 1)", function()
  for _, c in ipairs(CASES) do
    it(c.name .. ": the batched path's bits, with and without bias", function()
      local x, w, b = inputs(c, "float32")
      same_bits(one_by_one(x, w, b, c.opt), F.conv2d(x, w, b, c.opt))
      same_bits(one_by_one(x, w, nil, c.opt), F.conv2d(x, w, nil, c.opt))
      -- and near float64
      local y64 = F.conv2d(x:to("float64"), w:to("float64"), b:to("float64"), c.opt)
      assert.is_true(max_abs(F.conv2d(x, w, b, c.opt):to("float64") - y64) < 1e-4)
    end)
  end

  it("reads a non-contiguous input (channels last, transposed) as a contiguous one", function()
    local c = CASES[2]
    local x, w, b = inputs(c, "float32")
    local xt = x:permute(1, 4, 3, 2):contiguous():permute(1, 4, 3, 2) -- same values, other strides
    assert.is_false(xt:is_contiguous())
    same_bits(F.conv2d(x, w, b, c.opt), F.conv2d(xt, w, b, c.opt))
    local xs = mg.randn(8, 16, 14, 28):narrow(4, 3, 14) -- a narrowed view: row stride 28
    same_bits(one_by_one(xs, w, b, c.opt), F.conv2d(xs, w, b, c.opt))
  end)

  it("keeps the padding's zeros and drops the frame's extra columns: a known result", function()
    -- all-ones input and weight: each output counts the taps inside the image
    local x = mg.ones(4, 1, 3, 4)
    local w = mg.ones(1, 1, 3, 3)
    local y = F.conv2d(x, w, nil, {padding = 1})
    local want = {{4, 6, 6, 4}, {6, 9, 9, 6}, {4, 6, 6, 4}}
    for n = 1, 4 do assert.same(want, y[n][1]:totable()) end
  end)

  it("passes NaN and infinity through as the batched path does", function()
    local c = CASES[1]
    local x, w, b = inputs(c, "float32")
    x[2][1][5][7] = 0 / 0
    x[3][1][1][1] = math.huge
    same_bits(one_by_one(x, w, b, c.opt), F.conv2d(x, w, b, c.opt))
  end)
end)

-- d loss / d weight and bias of loss = sum(out * g)
local function grads(x, w, b, opt, g)
  local wl, bl = w:clone(), b:clone()
  wl:requires_grad_(true)
  bl:requires_grad_(true)
  F.conv2d(x, wl, bl, opt):backward(g)
  return wl.grad, bl.grad
end

describe("conv2d weight gradient of a few taps (float32 dot products) and bias gradient", function()
  local small = {CASES[1], CASES[3], CASES[4], CASES[6],
    {name = "1 channel, 2x2, 9x9", N = 5, C = 1, H = 9, W = 9, O = 3, k = 2, opt = {}}}
  for _, c in ipairs(small) do
    it(c.name .. ": near float64", function()
      local x, w, b = inputs(c, "float32")
      local y = F.conv2d(x, w, b, c.opt)
      mg.manual_seed(12)
      local g = mg.randn(table.unpack(y.shape))
      local dw, db = grads(x, w, b, c.opt, g)
      local dw64, db64 = grads(x:to("float64"), w:to("float64"), b:to("float64"), c.opt, g:to("float64"))
      assert.is_true(max_abs(dw:to("float64") - dw64) <= 2e-6 * (1 + max_abs(dw64)))
      assert.is_true(max_abs(db:to("float64") - db64) <= 1e-6 * (1 + max_abs(db64)))
    end)
  end

  it("exact where every sum is exact (small integers): float64's bits", function()
    local c = CASES[1]
    mg.manual_seed(13)
    local x = (mg.rand(c.N, 1, 28, 28) * 7):floor() - 3
    local w = (mg.rand(16, 1, 3, 3) * 5):floor() - 2
    local b = mg.zeros(16)
    local g = (mg.rand(c.N, 16, 28, 28) * 9):floor() - 4
    local dw, db = grads(x, w, b, c.opt, g)
    local dw64, db64 = grads(x:to("float64"), w:to("float64"), b:to("float64"), c.opt, g:to("float64"))
    same_bits(dw64, dw:to("float64"))
    same_bits(db64, db:to("float64"))
  end)

  it("the bias gradient: the sum over the batch and the positions", function()
    local g = mg.ones(6, 3, 5, 7) * mg.tensor({1, -2, 0.5}):view(1, 3, 1, 1)
    local _, db = grads(mg.randn(6, 2, 5, 7), mg.randn(3, 2, 1, 1), mg.zeros(3), {}, g)
    assert.same({210, -420, 105}, db:totable())
  end)

  it("give the same bits with 1 and 2 threads (forward, dW, dx, db)", function()
    local saved = mg.get_num_threads()
    local function run()
      local out = {}
      for _, c in ipairs {CASES[1], CASES[2], CASES[4]} do
        local x, w, b = inputs(c, "float32")
        local xl = x:clone()
        xl:requires_grad_(true)
        local wl, bl = w:clone(), b:clone()
        wl:requires_grad_(true)
        bl:requires_grad_(true)
        local y = F.conv2d(xl, wl, bl, c.opt)
        y:backward(y * 0.5)
        for _, t in ipairs {y, xl.grad, wl.grad, bl.grad} do out[#out + 1] = t:detach() end
      end
      return out
    end
    mg.set_num_threads(1)
    local one = run()
    mg.set_num_threads(2)
    local two = run()
    mg.set_num_threads(saved)
    for i = 1, #one do same_bits(one[i], two[i]) end
  end)
end)

-- the fast paths at each instruction-set level, in a child process each (as spec/isa_spec.lua)
local SCRIPT = [[
local mg = require "moongrad"
local F = mg.F
local function dump(name, t)
  local v = t:contiguous():reshape(-1):totable()
  for i = 1, #v do v[i] = string.format("%a", v[i]) end
  io.write(name, " ", table.concat(v, ","), "\n")
end
mg.manual_seed(21)
for _, c in ipairs {{1, 16, 28, 1}, {16, 8, 14, 1}, {3, 7, 9, 0}} do
  local x = mg.randn(5, c[1], c[3], c[3] + 1)
  local w = mg.randn(c[2], c[1], 3, 3)
  local b = mg.randn(c[2])
  w:requires_grad_(true)
  b:requires_grad_(true)
  local y = F.conv2d(x, w, b, {padding = c[4]})
  y:backward(y:cos())
  dump("y" .. c[1], y)
  dump("dw" .. c[1], w.grad)
  dump("db" .. c[1], b.grad)
end
]]

local function run_at(isa)
  local path = H.tmpfile(SCRIPT)
  local cmd = string.format("MOONGRAD_ISA=%s MOONGRAD_NUM_THREADS=1 lua5.4 -e %q %s", isa,
    string.format("package.path = %q; package.cpath = %q", package.path, package.cpath), path)
  local pipe = assert(io.popen(cmd))
  local lines = {}
  for line in pipe:lines() do lines[#lines + 1] = line end
  local ok = pipe:close()
  os.remove(path)
  assert(ok, "the child failed at " .. isa)
  return lines
end

describe("conv2d's fast paths at each instruction-set level", function()
  local levels = H.cpu_levels()
  local avx2, avx512 = levels.avx2, levels.avx512
  it("the baseline runs them (its portable products round each product)", function()
    local lines = run_at("baseline")
    assert.equal(9, #lines)
  end)
  if avx2 and avx512 then
    it("give the same bits at AVX2 and AVX-512", function()
      local a, b = run_at("avx2"), run_at("avx512")
      assert.equal(9, #a)
      for i = 1, #a do assert.equal(a[i], b[i]) end
    end)
  else
    pending("AVX2 and AVX-512 not both on this CPU")
  end
end)
