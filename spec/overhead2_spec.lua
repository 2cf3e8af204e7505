-- The per-op fast paths of the binding (W1's hand-gradient loop, W8's training step) give exactly
-- what the general paths give: the same bits, the same graph, the same errors in the same order.
-- Each case compares a fast-path call with one that takes the general path (an operand the fast
-- path does not take: a 0-d tensor for a number, a tensor needing a gradient).
local mg = require "moongrad"

-- pcall's message without the "file:line: " prefix
local function err(fn)
  local ok, msg = pcall(fn)
  assert.is_false(ok)
  return (tostring(msg):gsub("^[^:]*:%d+: ", ""))
end

-- the same dtype, shape and values: NaN where the other has NaN, zeros of the same sign
local function same_bits(expected, got)
  assert.equal(expected.dtype, got.dtype)
  assert.same(expected.shape, got.shape)
  local e, g = expected:reshape(-1):totable(), got:reshape(-1):totable()
  for i = 1, #e do
    if e[i] ~= e[i] then assert.is_true(g[i] ~= g[i])
    elseif e[i] == 0 then assert.equal(1 / e[i], 1 / g[i]) -- the zero's sign
    else assert.equal(e[i], g[i]) end
  end
end

local function closed_tensor()
  local t
  do
    local c <close> = mg.tensor{1.0, 2.0}
    t = c
  end
  return t
end

describe("number op float tensor (the binding's fast path)", function()
  local ops = {
    add = function(a, b) return a + b end, sub = function(a, b) return a - b end,
    mul = function(a, b) return a * b end, div = function(a, b) return a / b end,
    pow = function(a, b) return a ^ b end, lt = function(a, b) return mg.lt(a, b) end,
    maximum = function(a, b) return mg.maximum(a, b) end,
  }
  local function operands(dtype)
    local base = mg.tensor({{0.5, -1.25, 3.0}, {7.5, 0.1, -2.0}}, {dtype = dtype})
    return {base, base:t(), base[2], mg.tensor(0.3, {dtype = dtype}), base:narrow(2, 2, 2)}
  end
  for _, dtype in ipairs{"float32", "float64"} do
    for name, op in pairs(ops) do
      it(name .. " on " .. dtype .. " tensors (contiguous, transposed, 1-d, 0-d, narrowed) as the general path", function()
        for _, t in ipairs(operands(dtype)) do
          for _, x in ipairs{1e-2, 3, -0.7, 1 / 3} do
            -- a 0-d float64 tensor takes the general path and converts to t's dtype as a number
            -- does (next to a 0-d t, one of t's dtype: two 0-d tensors promote as tensors)
            local x0 = mg.tensor(x, {dtype = t:dim() == 0 and dtype or "float64"})
            same_bits(op(x0, t), op(x, t))
            same_bits(op(t, x0), op(t, x))
          end
        end
      end)
    end
  end

  it("keeps the dtype rules: int64 with a float number is float32, float32 with an integer float32", function()
    local i = mg.tensor({1, 2, 3}, {dtype = "int64"})
    assert.equal("float32", (0.5 * i).dtype)
    assert.same({0.5, 1.0, 1.5}, (0.5 * i):totable())
    assert.equal("float32", (mg.tensor{1.5} * 2).dtype)
    assert.equal("float64", (mg.tensor({1.5}, {dtype = "float64"}) - 2).dtype)
  end)

  it("records a tensor needing a gradient, and not under no_grad", function()
    local w = mg.tensor({1.0, 2.0}, {requires_grad = true})
    local y = 1e-2 * w
    assert.is_not_nil(y.grad_fn)
    y:sum():backward()
    assert.same(mg.tensor{0.01, 0.01}:totable(), w.grad:totable())
    mg.no_grad(function() assert.is_nil((2 * w).grad_fn) end)
  end)

  it("raises for a closed tensor as before", function()
    local t = closed_tensor()
    assert.equal("bad argument #2 to 'mul' (tensor used after its storage was released (by <close>))",
      err(function() return 2 * t end))
    assert.equal("bad argument #1 to 'sub' (tensor used after its storage was released (by <close>))",
      err(function() return t - 2 end))
  end)
end)

describe("add sub mul div of contiguous float tensors (mg_binary's one-run path, a 0-d operand read as a scalar)", function()
  local arith = {
    function(a, b) return a + b end, function(a, b) return a - b end,
    function(a, b) return a * b end, function(a, b) return a / b end,
  }
  local function values(n, seed, dtype)
    local v = {}
    for i = 1, n do v[i] = ((i * 37 + seed * 11) % 23 - 11) / 7 end
    if n >= 2 then v[1], v[2] = 0.0, -0.0 end -- x / 0, 0 / 0 and signed zeros
    return mg.tensor(v, {dtype = dtype})
  end
  for _, dtype in ipairs{"float32", "float64"} do
    it(dtype .. ": 1 to 65 elements, the same bits as the strided kernel (an expanded operand)", function()
      for _, n in ipairs{1, 2, 11, 63, 64, 65} do
        local a, b = values(n, 1, dtype), values(n, 2, dtype)
        local row = a:view(1, n) -- expanded to 2 rows: stride 0, mg_binary's general loop
        for _, op in ipairs(arith) do
          local small = op(a, b)
          local general = op(row:expand(2, n), b)[2] -- the iterator's strided loop
          same_bits(general, small)
          same_bits(op(b, row:expand(2, n))[1], op(b, a))
          -- a 0-d tensor (the general binding) and a number (its fast path) alike
          same_bits(op(mg.tensor(0.75, {dtype = dtype}), b), op(0.75, b))
          same_bits(op(b, mg.tensor(-3, {dtype = dtype})), op(b, -3))
        end
      end
    end)
  end

  it("leaves other operands to the iterator: strided, int64, comparisons, pow", function()
    local m = values(6, 3, "float32"):view(2, 3)
    same_bits(m:t():contiguous() + m:t():contiguous(), m:t() + m:t())
    assert.same({2, 4, 6}, (mg.tensor({1, 2, 3}, {dtype = "int64"}) * 2):totable())
    assert.same({false, true}, (mg.lt(mg.tensor{3.0, 1.0}, mg.tensor{2.0, 2.0})):totable())
    assert.same({4, 9}, (mg.tensor{2.0, 3.0} ^ 2):totable())
  end)
end)

describe("t[i] on a 1-d tensor", function()
  it("reads a number, and raises for a closed tensor", function()
    local t = mg.tensor{1.5, -2.0}
    assert.equal(1.5, t[1])
    assert.equal(-2.0, t[-1])
    local c = closed_tensor()
    assert.equal("bad argument #1 to 'index' (tensor used after its storage was released (by <close>))",
      err(function() return c[1] end))
    assert.equal("bad argument #2 to 'index' (index 3 out of range for dimension of size 2)",
      err(function() return t[3] end))
  end)
end)

describe("F.model and F.grad_fn", function()
  local F = mg.F
  local u = mg.tensor{3.57, 5.59, 5.82, 8.19}
  local c = mg.tensor{0.5, 14.0, 15.0, 28.0}

  it("model with number w, b equals model with 0-d float64 tensors, unrecorded", function()
    local fast = F.model(u, 1.37, -0.25)
    local general = F.model(u, mg.tensor(1.37, {dtype = "float64"}), mg.tensor(-0.25, {dtype = "float64"}))
    assert.is_true(general:equal(fast))
    assert.is_nil(fast.grad_fn)
  end)

  it("model records when an input needs a gradient", function()
    local w = mg.tensor(2.0, {requires_grad = true})
    local y = F.model(u, w, 0.5)
    assert.is_not_nil(y.grad_fn)
    y:sum():backward()
    assert.near(3.57 + 5.59 + 5.82 + 8.19, w.grad:item(), 1e-5)
    local uu = mg.tensor({1.0, 2.0}, {requires_grad = true})
    local z = F.model(uu, 3, 1)
    z:sum():backward()
    assert.same({3, 3}, uu.grad:totable())
    mg.no_grad(function() assert.is_nil(F.model(uu, 3, 1).grad_fn) end)
  end)

  it("model's errors, in argument order", function()
    assert.equal("bad argument #2 to 'model' (number or tensor expected, got boolean)",
      err(function() return F.model(u, true, 0) end))
    assert.equal("bad argument #3 to 'model' (number or tensor expected, got nil)",
      err(function() return F.model(u, 1) end))
    assert.equal("bad argument #2 to 'model' (w must be a number or a one-element tensor, got shape {2})",
      err(function() return F.model(u, mg.tensor{1, 2}, true) end))
    assert.equal("bad argument #1 to 'model' (tensor expected, got number)", err(function() return F.model(1, 1, 1) end))
    assert.equal("bad argument #1 to 'model' (tensor used after its storage was released (by <close>))",
      err(function() return F.model(closed_tensor(), 1, 1) end))
  end)

  it("grad_fn's value and errors, in argument order", function()
    local p = F.model(u, 2.0, 1.0)
    local g = F.grad_fn(u, c, p, 2.0, 1.0)
    local d, gw, gb = {}, 0, 0
    for i = 1, 4 do d[i] = 2 * (p[i] - c[i]); gw, gb = gw + d[i] * u[i], gb + d[i] end
    assert.near(gw / 4, g[1], 1e-3)
    assert.near(gb / 4, g[2], 1e-4)
    local short = mg.tensor{1.0, 2.0}
    -- t_p (arg 3) is checked before t_c (arg 2), as it always was
    assert.equal("bad argument #3 to 'grad_fn' (tensor expected, got string)", err(function() return F.grad_fn(u, short, "x") end))
    assert.equal("bad argument #2 to 'grad_fn' (shape {2} does not match shape {4} of argument #1)",
      err(function() return F.grad_fn(u, short, c) end))
    assert.equal("bad argument #3 to 'grad_fn' (tensor expected, got string)", err(function() return F.grad_fn(u, c, "x") end))
    assert.equal("bad argument #3 to 'grad_fn' (shape {2} does not match shape {4} of argument #1)",
      err(function() return F.grad_fn(u, c, short) end))
    assert.equal("bad argument #2 to 'grad_fn' (expected a float32 or float64 tensor, got int64)",
      err(function() return F.grad_fn(u, mg.tensor({1, 2, 3, 4}, {dtype = "int64"}), p) end))
    assert.equal("bad argument #3 to 'grad_fn' (tensor used after its storage was released (by <close>))",
      err(function() return F.grad_fn(short, short, closed_tensor()) end))
    assert.equal("float64", F.grad_fn(u, c, p:double()).dtype)
  end)
end)

describe("new results' shapes (lt_push_new's small-shape path)", function()
  it("numel and strides of 0-d, 1-d and 2-d results, empty ones included", function()
    local cases = {
      {{}, 1, {}}, {{5}, 5, {1}}, {{0}, 0, {1}}, {{3, 4}, 12, {4, 1}}, {{0, 5}, 0, {5, 1}},
      {{3, 0}, 0, {1, 1}}, {{2 ^ 40 // 1, 0}, 0, {1, 1}}, {{2, 3, 4}, 24, {12, 4, 1}},
    }
    for _, c in ipairs(cases) do
      local t = mg.zeros(c[1])
      assert.equal(c[2], t:numel())
      assert.same(c[3], t:stride())
      assert.same(c[1], t.shape)
      assert.equal(c[2], (t + 1):numel()) -- a result made by an op, not the factory
    end
  end)

  it("still refuses a 2-d shape past 2^62 elements, and names a size past int32 it cannot allocate", function()
    assert.equal("'zeros': shape {1099511627776,1099511627776} has more than 2^62 elements",
      err(function() return mg.zeros(2 ^ 40 // 1, 2 ^ 40 // 1) end))
    assert.equal("'zeros': not enough memory for a tensor of 4611686018427387904 elements",
      err(function() return mg.zeros(2 ^ 31 // 1, 2 ^ 31 // 1) end))
  end)
end)

describe("a gradient summed into an existing .grad (the backward engine's scratch)", function()
  -- 64 x 64 float32 (16 KiB: the stack buffer's size), one row more (from the allocator), float64
  -- (32 KiB), and a small one
  for _, c in ipairs{{64, 64, "float32"}, {65, 64, "float32"}, {64, 64, "float64"}, {3, 2, "float32"}} do
    local o, i, dtype = c[1], c[2], c[3]
    it(("%d x %d %s: into a zeroed .grad the same bits as a fresh one, then twice them"):format(o, i, dtype), function()
      mg.manual_seed(7)
      local x = mg.randn(5, i, {dtype = dtype})
      local w = mg.randn(o, i, {dtype = dtype, requires_grad = true})
      local function pass() (x:matmul(w:t()):tanh()):sum():backward() end
      pass()
      local fresh = w.grad:clone()
      w:zero_grad()
      pass()
      assert.is_true(fresh:equal(w.grad))
      pass()
      assert.is_true((fresh * 2):equal(w.grad))
    end)
  end
end)
