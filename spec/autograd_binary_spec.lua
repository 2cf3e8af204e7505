-- Gradients of the binary ops (+ - * / ^ maximum minimum), checked against finite differences
-- (mg.autograd.gradcheck, float64) with broadcasting, numbers on either side and non-contiguous
-- operands; and one broadcast case against PyTorch's numbers.
local mg = require "moongrad"
local H = require "helper"

local function leaf(shape, lo)
  local t = mg.randn(shape, {dtype = "float64"})
  if lo then t = t:abs() + lo end -- away from poles and from x^y's undefined region
  return t:requires_grad_()
end

local gradcheck = mg.autograd.gradcheck

describe("autograd of binary ops", function()
  before_each(function() mg.manual_seed(7) end)

  local shapes = {
    {"equal shapes", {2, 3}, {2, 3}},
    {"a row over rows", {2, 3}, {3}},
    {"a column and a row", {3, 1}, {1, 4}},
    {"a 0-d operand", {2, 3}, {}},
    {"leading dims", {4}, {2, 3, 4}},
  }

  for _, op in ipairs({"add", "sub", "mul", "div", "maximum", "minimum"}) do
    describe(op .. "()", function()
      for _, case in ipairs(shapes) do
        it("matches finite differences: " .. case[1], function()
          local a, b = leaf(case[2]), leaf(case[3], op == "div" and 0.5 or nil)
          assert.is_true(gradcheck(function(x, y) return mg[op](x, y) end, {a, b}))
        end)
      end
      it("matches finite differences with non-contiguous operands", function()
        local a, b = leaf({3, 2}), leaf({4, 1}, op == "div" and 0.5 or nil)
        assert.is_true(gradcheck(function(x, y)
          return mg[op](x:t():expand(4, 2, 3), y:narrow(1, 2, 2):unsqueeze(1):expand(4, 2, 1))
        end, {a, b}))
      end)
    end)
  end

  describe("pow()", function()
    it("matches finite differences for tensor ^ tensor", function()
      assert.is_true(gradcheck(function(x, y) return x ^ y end, {leaf({2, 3}, 0.5), leaf({3})}))
    end)
    it("gives x ^ 2 the gradient (x 2) g, with the bits of the two products, in one pass", function()
      mg.manual_seed(2)
      for _, dt in ipairs({"float32", "float64"}) do
        local g = mg.randn(300, 7, {dtype = dt})
        for _, x in ipairs({mg.randn(300, 7, {dtype = dt}), mg.randn(7, 300, {dtype = dt}):t()}) do
          local base = x:detach():requires_grad_()
          local y = base ^ 2
          y:backward(g)
          assert.is_true(base.grad:equal((x * 2) * g), dt)
        end
        local b = mg.randn(7, {dtype = dt}):requires_grad_() -- broadcast to the gradient's shape
        local y = b:expand(300, 7) ^ 2
        y:backward(g)
        assert.is_true(b.grad:equal(((b:detach():expand(300, 7) * 2) * g):sum(1)), dt)
      end
      -- x 2 first, as PyTorch's g (2 x): 2 x overflows float32 at 3e38 (inf, not 1.5e38); torch 1.13:
      -- z.grad -> [0, 0, inf, -0x1.93e594p-49, 2.5, inf]
      local z = mg.tensor({0, -0.0, 1e38, 1e-45, 2.5, 3e38}, {requires_grad = true})
      local y = z ^ 2
      y:backward(mg.tensor({1, -1, 2, -1e30, 0.5, 0.25}))
      assert.same({0, 0, math.huge, -0x1.93e594p-49, 2.5, math.huge}, z.grad:totable())
    end)
    it("matches finite differences for tensor ^ number and number ^ tensor", function()
      local x = leaf({2, 3}, 0.5)
      assert.is_true(gradcheck(function(t) return t ^ 3 end, {x}))
      assert.is_true(gradcheck(function(t) return t ^ 0.5 end, {x}))
      assert.is_true(gradcheck(function(t) return 2 ^ t end, {x}))
    end)
  end)

  describe("numbers on either side", function()
    it("matches finite differences", function()
      local x = leaf({2, 2}, 0.5)
      assert.is_true(gradcheck(function(t) return 3 - t * 2 + 1 / t - t / 4 end, {x}))
      assert.is_true(gradcheck(function(t) return -t end, {x}))
    end)
  end)

  describe("broadcast gradients", function()
    it("sum back to each input's shape, as PyTorch", function()
      -- a = torch.tensor([[1.],[2.],[3.]], requires_grad=True); b = torch.tensor([[1.,2.,3.,4.]], requires_grad=True)
      -- ((a * b) ** 2).sum().backward(); a.grad -> [[60],[120],[180]]; b.grad -> [[28,56,84,112]]
      local a = mg.tensor({{1}, {2}, {3}}, {requires_grad = true})
      local b = mg.tensor({{1, 2, 3, 4}}, {requires_grad = true})
      local loss = ((a * b) ^ 2):sum()
      loss:backward()
      assert.same({{60}, {120}, {180}}, a.grad:totable())
      assert.same({{28, 56, 84, 112}}, b.grad:totable())
    end)
    it("keeps each input's dtype when dtypes are mixed", function()
      local a = mg.tensor({1, 2}, {requires_grad = true})
      local b = mg.tensor({3, 4}, {dtype = "float64", requires_grad = true})
      local y = a * b
      assert.equal("float64", y.dtype)
      y:sum():backward()
      assert.equal("float32", a.grad.dtype)
      assert.equal("float64", b.grad.dtype)
      H.near({3, 4}, a.grad)
      H.near({1, 2}, b.grad)
    end)
  end)
  -- add and sub's first operand hand the output's gradient on as it is (no copy): only one
  -- holder may get that buffer, since gradients are summed into their buffers in place
  describe("gradients handed on without a copy", function()
    it("gives two leaves of one add two separate .grad tensors", function()
      local a = mg.tensor({1, 2}, {requires_grad = true})
      local b = mg.tensor({3, 4}, {requires_grad = true})
      local function loss() return ((a + b) * mg.tensor{5, 7}):sum() end
      loss():backward()
      H.near({5, 7}, a.grad)
      H.near({5, 7}, b.grad)
      a.grad:zero_()
      H.near({5, 7}, b.grad) -- not the same tensor
      loss():backward()
      H.near({5, 7}, a.grad)
      H.near({10, 14}, b.grad)
    end)
    it("sums a handed-on gradient with the input's other uses (fan-in), as PyTorch", function()
      -- x = torch.tensor([1.,2.,3.], requires_grad=True); z = x * 2; y = (z - 1) * z + z
      -- y.sum().backward(): x.grad -> [8, 16, 24] (z's gradient 2z - 1 + 1 = 2z, times 2)
      local x = mg.tensor({1, 2, 3}, {requires_grad = true})
      local z = x * 2
      local y = (z - 1) * z + z
      y:sum():backward()
      assert.same({8, 16, 24}, x.grad:totable())
    end)
    it("leaves a gradient kept by retain_grad() unchanged by later sums", function()
      local x = mg.tensor({1, 2}, {requires_grad = true})
      local s = x * 3
      local z = s + 1
      z:retain_grad()
      local y = z * z + s
      y:sum():backward()
      assert.same({8, 14}, z.grad:totable()) -- 2z
      assert.same({27, 45}, x.grad:totable()) -- 3 (2z + 1)
    end)
    it("keeps autograd.grad's results apart from the buffers it sums into", function()
      local a = mg.tensor({1, 2}, {requires_grad = true})
      local b = mg.tensor({3, 4}, {requires_grad = true})
      local c = a + b
      local y = (c * c):sum() + (a * 10):sum()
      local ga, gb = table.unpack(mg.autograd.grad(y, {a, b}))
      assert.same({18, 22}, ga:totable()) -- 2c + 10
      assert.same({8, 12}, gb:totable()) -- 2c
    end)
    it("hands the gradient to the operand of its shape when the other is broadcast (x + b)", function()
      -- x0 = torch.tensor([[1.,2,3],[4,5,6]], requires_grad=True); b = torch.tensor([10.,20,30],
      -- requires_grad=True); x = x0 * 1; y = x + b; y.retain_grad()
      -- ((y * t).sum() + (x * 3).sum()).backward(), t = [[1,2,3],[4,5,6]]:
      -- y.grad = t, x0.grad = t + 3, b.grad = t.sum(0) = [5, 7, 9]
      local t = mg.tensor({{1, 2, 3}, {4, 5, 6}})
      local x0 = mg.tensor({{1, 2, 3}, {4, 5, 6}}, {requires_grad = true})
      local b = mg.tensor({10, 20, 30}, {requires_grad = true})
      local x = x0 * 1
      local y = x + b
      y:retain_grad()
      local loss = (y * t):sum() + (x * 3):sum()
      loss:backward()
      assert.same({{1, 2, 3}, {4, 5, 6}}, y.grad:totable())
      assert.same({{4, 5, 6}, {7, 8, 9}}, x0.grad:totable())
      assert.same({5, 7, 9}, b.grad:totable())
      -- the sum's other order: x's second gradient arrives before the handed-on one
      x0.grad, b.grad = nil, nil
      local x2 = x0 * 1
      loss = (x2 * 3):sum() + ((x2 + b) * t):sum()
      loss:backward()
      assert.same({{4, 5, 6}, {7, 8, 9}}, x0.grad:totable())
      assert.same({5, 7, 9}, b.grad:totable())
    end)
    it("repeats bit for bit across backward passes of a retained graph", function()
      local w = mg.tensor({0.5, -1.5}, {requires_grad = true})
      local y = ((w + 0.25) - mg.tensor{1, 2}):pow(2):mean()
      y:backward({retain_graph = true})
      local first = w.grad:clone()
      w.grad:zero_()
      y:backward()
      assert.same(first:totable(), w.grad:totable())
      assert.same({-0.25, -3.25}, first:totable()) -- (w + 0.25 - t)
    end)
  end)
end)

describe("pow by the numbers PyTorch computes without pow()", function()
  -- PyTorch 1.13 takes x^3 as x x x, x^0.5 as sqrt(x), x^-0.5 as 1 / sqrt(x), x^-1 as 1 / x and
  -- x^-2 as 1 / (x x), forward and in the backward's x^(e-1): its numbers, bit for bit, from
  --   x = torch.tensor([-1.7, -0.0, 0.0, 0.3, 2.0, 3.3], requires_grad=True)
  --   y = x.pow(e); y.backward(torch.ones(6)); y.tolist(), x.grad.tolist()
  local NAN, INF = 0 / 0, math.huge
  local xs = { -1.7, -0.0, 0.0, 0.3, 2.0, 3.3 }
  local torch = {
    [3] = { { -4.913000106811523, -0.0, 0.0, 0.027000002562999725, 8.0, 35.93699645996094 },
      { 8.670000076293945, 0.0, 0.0, 0.27000001072883606, 12.0, 32.66999816894531 } },
    [0.5] = { { NAN, -0.0, 0.0, 0.547722578048706, 1.4142135381698608, 1.8165901899337769 },
      { NAN, -INF, INF, 0.9128708839416504, 0.3535533845424652, 0.275240957736969 } },
    [-0.5] = { { NAN, -INF, INF, 1.8257417678833008, 0.7071067690849304, 0.550481915473938 },
      { NAN, -INF, -INF, -3.042902946472168, -0.1767766922712326, -0.08340634405612946 } },
    [-1] = { { -0.5882352590560913, -INF, INF, 3.3333332538604736, 0.5, 0.3030303120613098 },
      { -0.34602075815200806, -INF, -INF, -11.11111068725586, -0.25, -0.09182737022638321 } },
    [-2] = { { 0.34602075815200806, INF, INF, 11.11111068725586, 0.25, 0.09182737022638321 },
      { 0.4070832133293152, INF, -INF, -74.07406616210938, -0.25, -0.05565294995903969 } },
    [1.5] = { { NAN, 0.0, 0.0, 0.16431677341461182, 2.8284270763397217, 5.994747638702393 },
      { NAN, -0.0, 0.0, 0.8215838670730591, 2.1213202476501465, 2.7248852252960205 } },
    [2.5] = { { NAN, 0.0, 0.0, 0.049295034259557724, 5.656854152679443, 19.78266716003418 },
      { NAN, 0.0, 0.0, 0.41079193353652954, 7.071067810058594, 14.986868858337402 } },
  }
  local function same(want, got, what)
    for i = 1, #want do
      local w, v = want[i], got[i]
      if w ~= w then
        assert.is_true(v ~= v, what .. " " .. i .. ": NaN expected, got " .. tostring(v))
      else
        assert.equal(w, v, what .. " " .. i)
        if w == 0 then assert.equal(1 / w, 1 / v, what .. " " .. i .. ": the sign of zero") end
      end
    end
  end
  for _, e in ipairs({ 3, 0.5, -0.5, -1, -2, 1.5, 2.5 }) do
    it("x^" .. e .. ": PyTorch's values and gradient, bit for bit", function()
      local x = mg.tensor(xs, { requires_grad = true })
      local y = x ^ e
      y:backward(mg.ones(6))
      same(torch[e][1], y:totable(), "value")
      same(torch[e][2], x.grad:totable(), "grad")
    end)
  end
  it("x^3 over a long run: x x x in every element (the vectorized loop)", function()
    mg.manual_seed(3)
    local x = mg.randn(1000)
    assert.is_true((x ^ 3):equal(x * x * x))
    assert.is_true((x:abs() ^ 0.5):equal(x:abs():sqrt()))
    assert.is_true((x ^ -1):equal(1 / x))
  end)
end)
