-- A weight's gradient summed straight into its .grad (src/ops/functional.c, linear_weight_grad_into;
-- gemm.h's accumulate): for nn.Linear / F.linear with a batch of at most 256 rows, backward adds
-- g^T x to W.grad inside the product instead of computing it into a temporary and adding that.
-- The bits must be the temporary-and-add's: W.grad after backward equals the .grad it had plus
-- the same product computed alone, bit for bit, on every path (unpacked and blocked products, 1 and
-- 2 threads, float32 and float64, a transposed input copied first as the temporary's product copies
-- it), and where the fast path does not apply (a batch of 257, one output) the general path gives
-- the same identity.
local mg = require "moongrad"

local function check(O, I, M, dtype, x_of)
  mg.manual_seed(O * 1000 + I + M)
  local w = mg.randn(O, I, {dtype = dtype}):requires_grad_()
  local b = mg.randn(O, {dtype = dtype}):requires_grad_()
  local x = x_of and x_of(M, I, dtype) or mg.randn(M, I, {dtype = dtype})
  local g = mg.randn(M, O, {dtype = dtype})
  local before = mg.randn(O, I, {dtype = dtype})
  w.grad = before:clone()
  local y = mg.F.linear(x, w, b)
  y:backward(g)
  local expected = before + g:t():matmul(x)
  assert.is_true(w.grad:equal(expected), string.format("%s O=%d I=%d M=%d", dtype, O, I, M))
  -- a second backward sums again, onto what the first left
  y = mg.F.linear(x, w, b)
  y:backward(g)
  assert.is_true(w.grad:equal(expected + g:t():matmul(x)), "second pass")
end

describe("a Linear weight's gradient summed into .grad", function()
  for _, threads in ipairs({1, 2}) do
    it(string.format("has the bits of the product added after it, %d thread(s)", threads), function()
      local saved = mg.get_num_threads()
      mg.set_num_threads(threads)
      for _, dtype in ipairs({"float32", "float64"}) do
        for _, case in ipairs({{10, 64, 32}, {40, 70, 1}, {256, 784, 64}, {300, 50, 256}, {7, 9, 257}}) do
          check(case[1], case[2], case[3], dtype)
        end
        -- a transposed input (copied first, as for the temporary); a single output row (not taken)
        check(12, 30, 20, dtype, function(M, I, dt) return mg.randn(I, M, {dtype = dt}):t() end)
        check(1, 30, 20, dtype)
      end
      mg.set_num_threads(saved)
    end)
  end

  it("starts from a zeroed .grad as a fresh one, in nn.Linear with an optimizer", function()
    mg.manual_seed(3)
    local lin = mg.nn.Linear(64, 32)
    local opt = mg.optim.SGD(lin:parameters(), {lr = 0.1})
    local x, g = mg.randn(48, 64), mg.randn(48, 32)
    lin(x):backward(g)
    local fresh = lin.weight.grad:clone()
    assert.is_true(fresh:equal(g:t():matmul(x)))
    opt:zero_grad()
    lin(x):backward(g)
    assert.is_true(lin.weight.grad:equal(fresh))
  end)
end)
