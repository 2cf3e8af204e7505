-- The per-sample path's fast variants of conv2d (src/ops/conv.c), each against a reference:
--   * the float32 forward at stride 1 without a column buffer (forward_rows, mg_gemm_rows_f32, and
--     for at most 32 taps a group forward_direct): the same bits as the batched path (a batch of 1
--     takes it) and as the same sample in a batch;
--   * the float32 input gradient at stride 1 as a forward convolution of gout (dx_rows): near
--     float64, the same bits for a sample alone and in a batch, the unfolded path's answer where a
--     weight is infinite or the padding reaches past the kernel;
--   * the float32 weight gradient at stride 1 read from the samples' frames in 16 lanes (dwf_*),
--     and at other strides, for at most 16 taps a group, as dot products (dot_nt_*): their own
--     order of sums, checked against float64, exactly where every sum is exact, infinities and
--     NaN where float64 has them, and the same bits at AVX2 and AVX-512;
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

-- d loss / d x of loss = sum(out * g)
local function dx_of(x, w, opt, g)
  local xl = x:clone()
  xl:requires_grad_(true)
  F.conv2d(xl, w, nil, opt):backward(g)
  return xl.grad
end

describe("conv2d input gradient at stride 1 as a convolution of gout (float32)", function()
  local cases = {table.unpack(CASES)}
  cases[#cases + 1] = {name = "1x1, padding 1 (past the kernel: unfolded)", N = 4, C = 3, H = 5, W = 6,
    O = 2, k = 1, opt = {padding = 1}}
  cases[#cases + 1] = {name = "stride {2,1} (unfolded)", N = 5, C = 4, H = 9, W = 7, O = 6, k = 3,
    opt = {padding = 1, stride = {2, 1}}}
  for _, c in ipairs(cases) do
    it(c.name .. ": near float64, the same bits for each sample alone", function()
      local x, w = inputs(c, "float32")
      mg.manual_seed(14)
      local g = mg.randn(table.unpack(F.conv2d(x, w, nil, c.opt).shape))
      local dx = dx_of(x, w, c.opt, g)
      local dx64 = dx_of(x:to("float64"), w:to("float64"), c.opt, g:to("float64"))
      assert.is_true(max_abs(dx:to("float64") - dx64) <= 2e-6 * (1 + max_abs(dx64)))
      for n = 1, c.N do
        same_bits(dx_of(x:narrow(1, n, 1), w, c.opt, g:narrow(1, n, 1)), dx:narrow(1, n, 1))
      end
    end)
  end

  it("an infinite weight gives the unfolded sums' infinities, not a NaN from the padding", function()
    -- gout all ones: dx sums w over the taps that reach each input; one tap +inf makes +inf
    -- exactly where that tap reaches, and every other element stays the finite count
    local x = mg.ones(4, 2, 5, 5)
    local w = mg.ones(3, 2, 3, 3)
    w[2][1][1][1] = math.huge
    local dx = dx_of(x, w, {padding = 1}, mg.ones(4, 3, 5, 5))
    local dx64 = dx_of(x:to("float64"), w:to("float64"), {padding = 1}, mg.ones(4, 3, 5, 5, {dtype = "float64"}))
    same_bits(dx64, dx:to("float64"))
    assert.equal(math.huge, dx[1][1][1][1]) -- reached by tap (1, 1) of channel 1
    assert.equal(12, dx[1][1][5][5])         -- not reached by it: 3 output channels x 2 x 2 taps
  end)

  it("a known result: all-ones gout counts the taps that reach each input", function()
    local dx = dx_of(mg.ones(4, 1, 3, 4), mg.ones(1, 1, 3, 3), {padding = 1}, mg.ones(4, 1, 3, 4))
    for n = 1, 4 do assert.same({{4, 6, 6, 4}, {6, 9, 9, 6}, {4, 6, 6, 4}}, dx[n][1]:totable()) end
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

describe("conv2d weight gradient from the frames or as dot products (float32) and bias gradient", function()
  local small = {CASES[1], CASES[2], CASES[3], CASES[4], CASES[5], CASES[6], CASES[8], CASES[9],
    {name = "1 channel, 2x2, 9x9", N = 5, C = 1, H = 9, W = 9, O = 3, k = 2, opt = {}},
    {name = "rows of 40 (three vectors, the last masked)", N = 9, C = 2, H = 3, W = 40, O = 5, k = 3,
     opt = {padding = 1}},
    {name = "stride 2 (dot products)", N = 6, C = 2, H = 9, W = 9, O = 3, k = 3, opt = {stride = 2}},
    {name = "depthwise 3x3: nine taps a group, one output channel each", N = 5, C = 3, H = 9, W = 20, O = 3,
     k = 3, opt = {groups = 3, padding = 1}},
    {name = "nine taps, 5 output channels (a lone last one)", N = 6, C = 1, H = 11, W = 33, O = 5, k = 3,
     opt = {padding = 1}},
    {name = "64 samples (8 chunks)", N = 64, C = 16, H = 14, W = 14, O = 8, k = 3, opt = {padding = 1}}}
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

  it("infinity and NaN in the input give float64's infinities and NaN", function()
    local c = CASES[2]
    local x, w, b = inputs(c, "float32")
    x[2][3][1][14] = math.huge  -- the last column: the frame's next entries are padding
    x[5][1][7][1] = -math.huge
    x[7][16][14][14] = 0 / 0
    local g = mg.ones(c.N, c.O, 14, 14)
    local dw = grads(x, w, b, c.opt, g)
    local dw64 = grads(x:to("float64"), w:to("float64"), b:to("float64"), c.opt, g:to("float64"))
    local a, e = dw:to("float64"):reshape(-1):totable(), dw64:reshape(-1):totable()
    local nonfinite = 0
    for i = 1, #a do
      if e[i] ~= e[i] then assert.is_true(a[i] ~= a[i], "NaN expected at " .. i)
      elseif math.abs(e[i]) == math.huge then assert.equal(e[i], a[i]) nonfinite = nonfinite + 1
      else assert.is_true(math.abs(a[i] - e[i]) <= 1e-4 * (1 + math.abs(e[i]))) end
    end
    assert.is_true(nonfinite > 0)
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
  x:requires_grad_(true)
  local y = F.conv2d(x, w, b, {padding = c[4]})
  y:backward(y:cos())
  dump("y" .. c[1], y)
  dump("dx" .. c[1], x.grad)
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
    assert.equal(12, #lines)
  end)
  if avx2 and avx512 then
    it("give the same bits at AVX2 and AVX-512", function()
      local a, b = run_at("avx2"), run_at("avx512")
      assert.equal(12, #a)
      for i = 1, #a do assert.equal(a[i], b[i]) end
    end)
  else
    pending("AVX2 and AVX-512 not both on this CPU")
  end
end)
