-- The fused relu + max pool (issue 13): F.max_pool2d(x, k, {relu = true}) against the unfused
-- F.max_pool2d(F.relu(x), k), bit for bit (every value's 64 bits as a double, so the sign of a zero
-- and a NaN's sign and payload count), values and gradients, over data full of ties, zeros of both
-- signs, negative-only windows, NaN and infinities; every geometry (the 2x2 stride-2 fast path, the
-- general windows, padding, ceil_mode, dilation, stride != kernel, non-contiguous and unbatched
-- inputs), float32 and float64, 1 and 2 threads, and each MOONGRAD_ISA level in a child process.
-- Then nn.Sequential: a stock ReLU right before a stock MaxPool2d runs fused, nothing else does.
local mg = require "moongrad"
local H = require "helper"
local F, nn = mg.F, mg.nn

-- The comparison, a chunk run here and in the children: compare(mg) returns the list of
-- mismatches (empty when all agree) and a digest of the fused results' bits.
local SCRIPT = [==[
local mg = ...
local F = mg.F
local CASES = {
  { "2x2 stride 2, 28x28 (the fast path)", { 3, 4, 28, 28 }, 2, {} },
  { "2x2 stride 2, many rows a block", { 1, 2, 140, 8 }, 2, {} },
  { "2x2 stride 2, a row over the block", { 1, 1, 4, 600 }, 2, {} },
  { "2x2 stride 2, odd sizes", { 2, 3, 7, 9 }, 2, {} },
  { "2x2 stride 2, an odd last row (its gradient zero)", { 2, 3, 7, 10 }, 2, {} },
  { "2x2 stride 2, rows of 20 windows (two vectors a row)", { 2, 2, 6, 40 }, 2, {} },
  { "2x2 stride 2, rows of 16 windows", { 1, 3, 4, 32 }, 2, {} },
  { "2x2 stride 2, ceil_mode", { 2, 2, 7, 9 }, 2, { ceil_mode = true } },
  { "3x3 stride 2 padding 1", { 2, 3, 9, 8 }, 3, { stride = 2, padding = 1 } },
  { "3x3 stride 1 (overlapping windows)", { 2, 2, 6, 7 }, 3, { stride = 1 } },
  { "{2,3} stride {1,2} dilation {2,1}", { 2, 2, 9, 10 }, { 2, 3 }, { stride = { 1, 2 }, dilation = { 2, 1 } } },
  { "3x3 stride 2 padding 1 ceil_mode", { 1, 3, 8, 8 }, 3, { stride = 2, padding = 1, ceil_mode = true } },
  { "2x2 stride 2, transposed input", { 2, 3, 10, 8 }, 2, {}, "transpose" },
  { "3x3 stride 2, a channel slice", { 2, 6, 9, 9 }, 3, { stride = 2 }, "slice" },
  { "2x2 stride 2, unbatched", { 3, 8, 6 }, 2, {} },
  -- enough planes for 2 threads to split them (a chunk is 32768 / (OH OW kh kw) planes)
  { "2x2 stride 2, 96 planes of 28x28", { 8, 12, 28, 28 }, 2, {} },
  { "3x3 stride 2 padding 1, 128 planes", { 8, 16, 16, 16 }, 3, { stride = 2, padding = 1 } },
}
local NAN = 0.0 / 0.0
local POOL = { -2.0, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.0, math.huge, -math.huge, NAN, -NAN }
-- mode 1: all of POOL (NaN rare); 2: no NaN; 3: only values <= 0 (negative and zero windows);
-- 4: standard normal values
local function values(n, mode)
  local v = {}
  for i = 1, n do
    local r = math.random()
    if mode == 4 then
      v[i] = math.sqrt(-2 * math.log(1 - r)) * math.cos(2 * math.pi * math.random())
    elseif mode == 3 then
      v[i] = POOL[math.random(1, 4)]
    elseif mode == 2 or r < 0.97 then
      v[i] = POOL[math.random(1, 10)]
    else
      v[i] = POOL[math.random(11, 12)]
    end
  end
  return v
end
local function numel(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end
local function input(c, dtype, mode)
  local shape = { table.unpack(c[2]) }
  if c[5] == "transpose" then shape[3], shape[4] = shape[4], shape[3] end
  local x = mg.tensor(values(numel(shape), mode), { dtype = dtype }):reshape(shape)
  if c[5] == "transpose" then x = x:transpose(3, 4) end
  if c[5] == "slice" then x = x:narrow(2, 2, 3) end
  return x
end
local function bits(t)
  local v = t:contiguous():reshape(-1):totable()
  for i = 1, #v do v[i] = string.pack("<d", v[i]) end
  return v
end
local function differ(what, a, b)
  if table.concat(a.shape, ",") ~= table.concat(b.shape, ",") then return what .. ": shapes differ" end
  local x, y = bits(a), bits(b)
  for i = 1, #x do
    if x[i] ~= y[i] then
      return string.format("%s: element %d is %a (%s), unfused %a (%s)", what, i, string.unpack("<d", x[i]),
        (x[i]):gsub(".", function(ch) return string.format("%02x", ch:byte()) end),
        string.unpack("<d", y[i]), (y[i]):gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
    end
  end
end
return function()
  math.randomseed(1313)
  local bad, digest = {}, {}
  for _, c in ipairs(CASES) do
    for _, dtype in ipairs({ "float32", "float64" }) do
      for mode = 1, 4 do
        local x = input(c, dtype, mode)
        local opts, fopts = {}, { relu = true }
        for k, v in pairs(c[4]) do opts[k], fopts[k] = v, v end
        local xl = x:detach():requires_grad_(true)
        local yf = F.max_pool2d(xl, c[3], fopts)
        local yu = F.max_pool2d(F.relu(xl), c[3], opts)
        local g = input({ c[1], yu.shape, 0, {} }, dtype, mode == 4 and 4 or 2)
        local gf = mg.autograd.grad(yf, xl, g)[1]
        local gu = mg.autograd.grad(yu, xl, g)[1]
        local label = string.format("%s, %s, data %d", c[1], dtype, mode)
        local e = differ(label .. " values", yf, yu) or differ(label .. " gradient", gf, gu)
        if e then bad[#bad + 1] = e end
        if tostring(yf.grad_fn) ~= "<grad_fn conv max_pool2d_relu>" then bad[#bad + 1] = label .. ": grad_fn" end
        digest[#digest + 1] = table.concat(bits(yf)) .. table.concat(bits(gf))
      end
    end
  end
  local sum = 0
  local s = table.concat(digest)
  for i = 1, #s do sum = (sum * 31 + s:byte(i)) % 4294967291 end
  return bad, string.format("%d bytes, hash %d", #s, sum)
end
]==]

local compare = assert(load(SCRIPT, "=relu_pool compare"))(mg)

describe("F.max_pool2d(x, k, {relu = true})", function()
  it("gives the bits of F.max_pool2d(F.relu(x), k), values and gradients, with 1 and 2 threads", function()
    local saved = mg.get_num_threads()
    local results = {}
    for _, n in ipairs({ 1, 2 }) do
      mg.set_num_threads(n)
      local ok, bad, digest = pcall(compare)
      mg.set_num_threads(saved)
      assert(ok, bad)
      assert.same({}, bad)
      results[n] = digest
    end
    assert.equal(results[1], results[2])
  end)

  it("decides the zero's sign as the unfused pair: the window's first element, not its max", function()
    -- max(-1, -0.0) is -0.0 but relu(-1) = +0.0 comes first and wins the tie of zeros
    local x = mg.tensor({ { { -1.0, -0.0 }, { -3.0, -2.0 } } })
    local y = F.max_pool2d(x, 2, { relu = true }):item()
    assert.equal("0x0p+0", string.format("%a", y))
    local x2 = mg.tensor({ { { -0.0, -1.0 }, { 0.0, -2.0 } } })
    assert.equal("-0x0p+0", string.format("%a", F.max_pool2d(x2, 2, { relu = true }):item()))
    assert.equal("-0x0p+0", string.format("%a", F.max_pool2d(F.relu(x2), 2):item()))
  end)

  it("sends the gradient only to a positive maximum (none through NaN or a window <= 0)", function()
    local x = mg.tensor({ { { 1.0, 3.0, -1.0, -2.0, 0 / 0, 5.0 }, { 3.0, 2.0, -0.0, 0.0, 7.0, 1.0 } } },
      { dtype = "float64" }):requires_grad_(true)
    local y = F.max_pool2d(x, 2, { relu = true })
    assert.equal(3, y:reshape(-1):totable()[1])
    assert.equal(0, y:reshape(-1):totable()[2])
    assert.is_true(y:reshape(-1):totable()[3] ~= y:reshape(-1):totable()[3])
    y:backward(mg.tensor({ { { 10.0, 20.0, 30.0 } } }, { dtype = "float64" }))
    assert.same({ { { 0, 10, 0, 0, 0, 0 }, { 0, 0, 0, 0, 0, 0 } } }, x.grad:totable())
  end)

  it("refuses a backward after its input changed in place (every input's version is checked)", function()
    local x = mg.randn(2, 3, 8, 8, { requires_grad = true }) * 1
    local y = F.max_pool2d(x, 2, { relu = true })
    x:detach():add_(1) -- the same storage
    local ok, err = pcall(function() y:sum():backward() end)
    assert.is_false(ok)
    assert.matches("a tensor needed to compute gradients was changed in place after it was used (version 1, expected 0)", tostring(err), 1, true)
  end)

  it("passes gradcheck in float64", function()
    mg.manual_seed(7)
    local x = mg.randn(2, 3, 7, 8, { dtype = "float64" }):requires_grad_(true)
    assert.is_true(mg.autograd.gradcheck(function(a) return F.max_pool2d(a, 2, { relu = true }) end, { x }))
    assert.is_true(mg.autograd.gradcheck(function(a)
      return F.max_pool2d(a, 3, { stride = 2, padding = 1, relu = true })
    end, { x }))
    assert.is_true(mg.autograd.gradcheck(function(a)
      return F.max_pool2d(a:transpose(3, 4), { 2, 3 }, { dilation = 2, ceil_mode = true, relu = true })
    end, { x }))
  end)

  it("errors: relu must be a boolean, not with return_indices, not an avg_pool2d option", function()
    local x = mg.randn(1, 1, 4, 4)
    assert.has_error(function() F.max_pool2d(x, 2, { relu = 1 }) end,
      "bad argument #3 to 'max_pool2d' (relu must be a boolean, got number)")
    assert.has_error(function() F.max_pool2d(x, 2, { relu = true, return_indices = true }) end,
      "bad argument #3 to 'max_pool2d' (relu and return_indices cannot be combined)")
    assert.has_error(function() F.avg_pool2d(x, 2, { relu = true }) end,
      "bad argument #3 to 'avg_pool2d' (unknown option 'relu' (valid: stride, padding, ceil_mode, " ..
      "count_include_pad, divisor_override))")
    assert.equal("<grad_fn conv max_pool2d>",
      tostring(F.max_pool2d(x:requires_grad_(true), 2, { relu = false }).grad_fn))
  end)
end)

-- each ISA level in a child: its own fused == unfused check, and the same digest everywhere
local CHILD = [[
local mg = require "moongrad"
local compare = assert(load(io.read("a"), "=relu_pool compare"))(mg)
local bad, digest = compare()
for _, b in ipairs(bad) do print("MISMATCH " .. b) end
print(#bad, digest)
]]
local function run_at(isa, threads)
  local script = H.tmpfile(SCRIPT)
  local child = H.tmpfile(string.format("package.path = %q; package.cpath = %q\n", package.path, package.cpath) .. CHILD)
  local cmd = string.format("MOONGRAD_ISA=%s MOONGRAD_NUM_THREADS=%d lua5.4 %s < %s 2>&1", isa, threads, child, script)
  local pipe = assert(io.popen(cmd))
  local out = pipe:read("a")
  local ok = pipe:close()
  os.remove(script)
  os.remove(child)
  assert(ok, "the child failed at " .. isa .. ": " .. out)
  return out
end

describe("the fused relu + max pool at each instruction-set level", function()
  local levels = H.cpu_levels()
  local avx2, avx512 = levels.avx2, levels.avx512
  local here = select(2, compare())
  local isas = { "baseline" }
  if avx2 then isas[#isas + 1] = "avx2" end
  if avx512 then isas[#isas + 1] = "avx512" end
  for _, isa in ipairs(isas) do
    it(isa .. ": the unfused bits, and the same fused bits as every level", function()
      local out = run_at(isa, isa == "baseline" and 2 or 1)
      assert.equal("0\t" .. here .. "\n", out)
    end)
  end
  if not avx512 then pending("AVX-512 not on this CPU") end
end)

describe("nn.Sequential with ReLU then MaxPool2d", function()
  local function same_bits(a, b)
    assert.same(a.shape, b.shape)
    local x, y = a:contiguous():reshape(-1):totable(), b:contiguous():reshape(-1):totable()
    for i = 1, #x do assert.equal(string.pack("<d", y[i]), string.pack("<d", x[i])) end
  end

  it("runs them fused: the pair's values and parameter gradients, grad_fn max_pool2d_relu", function()
    mg.manual_seed(3)
    local model = nn.Sequential(nn.Conv2d(2, 4, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(4, 3, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(3, { stride = 2, padding = 1 }))
    local x = mg.randn(3, 2, 12, 10)
    local y = model(x)
    assert.equal("<grad_fn conv max_pool2d_relu>", tostring(y.grad_fn))
    y:backward(y:cos())
    local grads = {}
    for i, p in ipairs(model:parameters()) do grads[i] = p.grad:clone(); p.grad = nil end
    local h = F.max_pool2d(F.relu(model[1](x)), 2)
    local yu = F.max_pool2d(F.relu(model[4](h)), 3, { stride = 2, padding = 1 })
    assert.equal("<grad_fn conv max_pool2d>", tostring(yu.grad_fn))
    same_bits(y, yu)
    yu:backward(yu:cos())
    for i, p in ipairs(model:parameters()) do same_bits(grads[i], p.grad) end
  end)

  it("an input's gradient hook sees the unfused pair's gradient", function()
    local x = mg.tensor({ { { { -1.0, 2.0, 0.0, -0.0 }, { 2.0, 1.0, -3.0, -1.0 } } } }):requires_grad_(true)
    local seen = {}
    x:register_post_accumulate_grad_hook(function(t) seen[#seen + 1] = t.grad:clone() end)
    local y = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))(x)
    assert.equal("<grad_fn conv max_pool2d_relu>", tostring(y.grad_fn))
    y:backward(mg.tensor({ { { { 5.0, 6.0 } } } }))
    local xu = x:detach():requires_grad_(true)
    local yu = F.max_pool2d(F.relu(xu), 2)
    yu:backward(mg.tensor({ { { { 5.0, 6.0 } } } }))
    assert.equal(1, #seen)
    same_bits(seen[1], xu.grad)
    same_bits(y, yu)
  end)

  it("does not fuse another order, a subclass, a replaced forward, return_indices or an int input", function()
    local x = mg.randn(1, 2, 4, 4):requires_grad_(true)
    assert.equal("<grad_fn unary relu>", tostring(nn.Sequential(nn.MaxPool2d(2), nn.ReLU())(x).grad_fn))
    assert.equal("<grad_fn conv max_pool2d>",
      tostring(nn.Sequential(nn.ReLU(), nn.Identity(), nn.MaxPool2d(2))(x).grad_fn))
    assert.equal("<grad_fn conv max_pool2d>",
      tostring(nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, { return_indices = true }))(x).grad_fn))
    local MyReLU = nn.ReLU:extend("MyReLU")
    assert.equal("<grad_fn conv max_pool2d>", tostring(nn.Sequential(MyReLU(), nn.MaxPool2d(2))(x).grad_fn))
    local MyPool = nn.MaxPool2d:extend("MyPool")
    assert.equal("<grad_fn conv max_pool2d>", tostring(nn.Sequential(nn.ReLU(), MyPool(2))(x).grad_fn))
    -- the class's forward replaced: the replacement runs
    local stock = nn.ReLU.forward
    nn.ReLU.forward = function(_, t) return F.relu(t) * 2 end
    local ok, y = pcall(function() return nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))(x) end)
    nn.ReLU.forward = stock
    assert(ok, y)
    assert.equal("<grad_fn conv max_pool2d>", tostring(y.grad_fn))
    same_bits(y, F.max_pool2d(F.relu(x) * 2, 2))
    -- an int64 input gets the pair (relu on the integers, then the pool's float32)
    local xi = mg.tensor({ { { { -1, 2 }, { -3, 4 } }, { { -1, -2 }, { -3, -4 } } } })
    local yi = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))(xi)
    assert.equal("float32", yi.dtype)
    same_bits(yi, F.max_pool2d(F.relu(xi), 2))
  end)
end)
