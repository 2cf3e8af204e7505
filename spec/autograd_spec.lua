-- Autograd: the graph, backward, .grad, grad mode, in-place rules and mg.autograd. Reference values
-- are PyTorch 1.13's (the Python line is in a comment) or worked out by hand.
local mg = require "moongrad"
local H = require "helper"

local function leaf(values, opts)
  opts = opts or {}
  opts.requires_grad = true
  return mg.tensor(values, opts)
end

describe("autograd", function()
  describe("requires_grad propagation", function()
    it("marks leaves: is_leaf true, grad_fn nil, grad nil", function()
      local w = leaf{1.0, 2.0}
      assert.is_true(w.requires_grad)
      assert.is_true(w.is_leaf)
      assert.is_nil(w.grad_fn)
      assert.is_nil(w.grad)
      local plain = mg.tensor{1.0, 2.0}
      assert.is_false(plain.requires_grad)
      assert.is_true(plain.is_leaf)
    end)

    it("gives a result of an input requiring grad requires_grad, a grad_fn and is_leaf false", function()
      local w = leaf{1.0, 2.0}
      local y = w * mg.tensor{3.0, 4.0}
      assert.is_true(y.requires_grad)
      assert.is_false(y.is_leaf)
      assert.is_not_nil(y.grad_fn)
      assert.is_true((2 * w + 1).requires_grad)
      assert.is_true(w:sum().requires_grad)
      assert.is_true(w:view(2, 1).requires_grad)
    end)

    it("leaves a result of inputs not requiring grad a leaf without grad", function()
      local y = mg.tensor{1.0, 2.0} * mg.tensor{3.0, 4.0}
      assert.is_false(y.requires_grad)
      assert.is_true(y.is_leaf)
      assert.is_nil(y.grad_fn)
    end)

    it("records nothing inside no_grad: results are leaves without grad", function()
      local w = leaf{1.0, 2.0}
      local y = mg.no_grad(function() return w * 2 end)
      assert.is_false(y.requires_grad)
      assert.is_true(y.is_leaf)
      assert.is_nil(y.grad_fn)
      assert.same({2, 4}, y:totable())
    end)
  end)

  describe("backward()", function()
    it("fills .grad of every leaf requiring grad, and no other", function()
      -- x = torch.tensor([1.,2.,3.], requires_grad=True); c = torch.tensor([4.,5.,6.])
      -- (x * c).sum().backward(); x.grad -> [4., 5., 6.]
      local x = leaf{1.0, 2.0, 3.0}
      local c = mg.tensor{4.0, 5.0, 6.0}
      local y = x * c
      y:sum():backward()
      assert.same({4, 5, 6}, x.grad:totable())
      assert.is_nil(c.grad)
      assert.is_nil(y.grad) -- a non-leaf keeps no .grad unless retain_grad()
      assert.is_false(x.grad.requires_grad)
    end)

    it("accumulates .grad across two backward calls", function()
      local x = leaf{1.0, 2.0, 3.0}
      ;(x * x):sum():backward()
      assert.same({2, 4, 6}, x.grad:totable())
      local first = x.grad
      ;(x * x):sum():backward()
      assert.same({4, 8, 12}, x.grad:totable())
      assert.equal(first, x.grad) -- summed in place, as PyTorch does
    end)

    it("sums the paths of a diamond (x used twice and more)", function()
      -- x = torch.tensor([1.,2.,3.], requires_grad=True); a = x*2; b = x*x
      -- (a*b + a).sum().backward(); x.grad -> [8., 26., 56.]  (6x^2 + 2)
      local x = leaf{1.0, 2.0, 3.0}
      local a = x * 2
      local b = x * x
      ;(a * b + a):sum():backward()
      assert.same({8, 26, 56}, x.grad:totable())
    end)

    it("differentiates +, -, *, /, ^ and broadcasting together", function()
      -- x = torch.tensor([[1.,2.],[3.,4.]], requires_grad=True)
      -- (x / (x[0] + 1) - 2 ** x).sum().backward()
      local x = leaf{{1.0, 2.0}, {3.0, 4.0}}
      ;(x / (x[1] + 1) - 2 ^ x):sum():backward()
      H.near({{-1.8862943649291992, -3.105922222137451}, {-5.045177459716797, -10.7570219039917}}, x.grad)
    end)

    it("differentiates maximum, minimum (ties share), where, masked_fill, mean and views", function()
      -- b = torch.tensor([1.,-2.,3.], requires_grad=True)
      local b = leaf{1.0, -2.0, 3.0}
      -- torch.maximum(b, torch.tensor([0.,0.,5.])).sum().backward() -> [1., 0., 0.]
      mg.maximum(b, mg.tensor{0.0, 0.0, 5.0}):sum():backward()
      assert.same({1, 0, 0}, b.grad:totable())
      b.grad = nil
      -- torch.minimum(b, torch.tensor([1.,0.,5.])).sum().backward() -> [0.5, 1., 1.]
      mg.minimum(b, mg.tensor{1.0, 0.0, 5.0}):sum():backward()
      assert.same({0.5, 1, 1}, b.grad:totable())
      b.grad = nil
      -- torch.where(b > 0, b*2, b*3).sum().backward() -> [2., 3., 2.]
      mg.where(b:gt(0), b * 2, b * 3):sum():backward()
      assert.same({2, 3, 2}, b.grad:totable())
      b.grad = nil
      -- y = (b*1).masked_fill(b < 0, 0); (y*y).sum().backward() -> [2., 0., 6.]
      local y = (b * 1):masked_fill(b:lt(0), 0)
      ;(y * y):sum():backward()
      assert.same({2, 0, 6}, b.grad:totable())
      -- x = torch.tensor([[1.,2.],[3.,4.]], requires_grad=True); (x.mean(0) ** 2).sum().backward()
      local x = leaf{{1.0, 2.0}, {3.0, 4.0}}
      ;(x:mean(1) ^ 2):sum():backward()
      assert.same({{2, 3}, {2, 3}}, x.grad:totable())
      -- (x.t() * torch.tensor([1.,10.])).sum().backward() -> [[1,1],[10,10]]
      x.grad = nil
      ;(x:t() * mg.tensor{1.0, 10.0}):sum():backward()
      assert.same({{1, 1}, {10, 10}}, x.grad:totable())
    end)

    it("takes an explicit gradient for a non-scalar result", function()
      -- y = x * torch.tensor([1.,2.,3.]); y.backward(torch.tensor([1.,10.,100.])) -> [1., 20., 300.]
      local x = leaf{1.0, 1.0, 1.0}
      local y = x * mg.tensor{1.0, 2.0, 3.0}
      y:backward(mg.tensor{1.0, 10.0, 100.0})
      assert.same({1, 20, 300}, x.grad:totable())
    end)

    it("converts an explicit gradient of another dtype to the result's", function()
      local x = leaf{1.0, 2.0}
      ;(x * 3):backward(mg.tensor({1, 2}, {dtype = "float64"}))
      assert.equal("float32", x.grad.dtype)
      assert.same({3, 6}, x.grad:totable())
    end)

    it("runs from a leaf: its own gradient is the one given", function()
      local x = leaf{5.0}
      x:backward()
      assert.same({1}, x.grad:totable())
    end)

    it("keeps dtypes: a float64 leaf gets a float64 .grad", function()
      local x = leaf({1.5, 2.5}, {dtype = "float64"})
      ;(x * x):sum():backward()
      assert.equal("float64", x.grad.dtype)
      assert.same({3, 5}, x.grad:totable())
    end)

    it("refuses a non-scalar result without a gradient", function()
      local y = leaf{1.0, 2.0} * 2
      H.errors(function() y:backward() end,
        "'backward' of a tensor of shape {2} needs a gradient argument (implicit only for one element, as for a loss)")
    end)

    it("refuses a gradient of another shape, or that is not a tensor", function()
      local y = leaf{1.0, 2.0} * 2
      H.errors(function() y:backward(mg.ones(3)) end,
        "bad argument #1 to 'backward' (gradient of shape {3} does not match the tensor's shape {2})")
      H.errors(function() y:backward(2) end,
        "bad argument #1 to 'backward' (tensor (the gradient) or options table expected, got number)")
      H.errors(function() y:sum():backward({retain = true}) end,
        "bad argument #1 to 'backward' (unknown option 'retain' (valid: retain_graph))")
    end)

    it("refuses a tensor that does not require grad", function()
      H.errors(function() mg.tensor{1.0}:backward() end,
        "'backward': the tensor does not require grad")
      local w = leaf{1.0}
      local y = mg.no_grad(function() return (w * 2):sum() end)
      H.errors(function() y:backward() end, "'backward': the tensor does not require grad")
    end)

    it("does not overflow the C stack on a chain of 10^4 ops", function()
      local x = leaf({1.5}, {dtype = "float64"})
      local y = x
      for _ = 1, 10000 do y = y + x end
      y:sum():backward()
      assert.same({10001}, x.grad:totable())
      assert.same({1.5 * 10001}, y:totable())
    end)
  end)

  describe("a backward pass started during another (from a finalizer)", function()
    it("is refused with a message, never a crash, and the outer pass's gradients are right", function()
      local out, ok = H.run_lua([[
      local mg = require "moongrad"
      local refused, ran = 0, 0
      for _ = 1, 300 do
        -- 8 x 8: larger than a node's own gradient buffer, so that the pass makes tensors (and
        -- the collector can run finalizers inside it)
        local w = (mg.arange(64, {dtype = "float64"}):view(8, 8) / 32 - 1):requires_grad_()
        local y = w
        for _ = 1, 10 do y = (y * 1.01):tanh() end
        setmetatable({}, {__gc = function() -- collected at some allocation, maybe inside backward
          local x = mg.ones(3, {requires_grad = true})
          local ok, err = pcall(function() (x * x * 2):sum():backward() end)
          if ok then
            ran = ran + 1
          elseif tostring(err):find("backward: another backward pass of this state is running", 1, true) then
            refused = refused + 1
          else
            error(err)
          end
        end})
        y:sum():backward()
        local expected = w:detach():clone()
        expected.requires_grad = true
        local z = expected
        for _ = 1, 10 do z = (z * 1.01):tanh() end
        z:sum():backward()
        for i = 1, 64 do
          assert(expected.grad:view(64)[i] == w.grad:view(64)[i], "the outer pass's gradient")
        end
      end
      collectgarbage()
      print("refused", refused, "ran", ran)
      ]])
      assert.truthy(ok, out) -- before the fix: a segmentation fault
      local refused, ran = out:match("refused\t(%d+)\tran\t(%d+)")
      assert.equal(300, tonumber(refused) + tonumber(ran))
      assert.truthy(tonumber(refused) > 0, "no finalizer ran inside a pass: the test tests nothing")
      local x = mg.ones(2, {requires_grad = true}) -- and backward still works afterwards
      ;(x * 3):sum():backward()
      assert.same({3, 3}, x.grad:totable())
    end)

    it("leaves backward usable after a pass that raised an error", function()
      local x = mg.ones(2, {requires_grad = true})
      local y = (x * x):sum()
      y:backward()
      assert.has_error(function() y:backward() end) -- the graph was freed
      ;(x * 2):sum():backward()
      assert.same({4, 4}, x.grad:totable())
    end)
  end)

  describe("grad_fn", function()
    it("prints its family and op", function()
      local x = mg.ones(3, {requires_grad = true})
      assert.equal("<grad_fn binary mul>", tostring((x * 2).grad_fn))
      assert.equal("<grad_fn unary exp>", tostring(x:exp().grad_fn))
      assert.equal("<grad_fn reduce cumsum>", tostring(x:cumsum(1).grad_fn))
      assert.equal("<grad_fn functional mse_loss>", tostring(mg.F.mse_loss(x, mg.zeros(3)).grad_fn))
      assert.equal("<grad_fn where where>", tostring(mg.where(x:gt(0), x, 0).grad_fn))
      assert.equal("<grad_fn where masked_fill>", tostring(x:masked_fill(x:gt(0), 0).grad_fn))
      assert.equal("<grad_fn index index_select>",
        tostring(x:index_select(1, mg.tensor({1}, {dtype = "int64"})).grad_fn))
      assert.equal("<grad_fn index cat>", tostring(mg.cat({x, x}).grad_fn))
      assert.equal("<grad_fn shape reshape>", tostring(x:view(3, 1).grad_fn))
      assert.equal("<grad_fn shape expand>", tostring(x:expand(2, 3).grad_fn))
      assert.equal("<grad_fn linalg matmul>", tostring(x:matmul(x).grad_fn))
      assert.equal("<grad_fn linalg outer>", tostring(x:outer(x).grad_fn))
      local img = mg.ones(1, 1, 4, 4, {requires_grad = true})
      assert.equal("<grad_fn conv conv>", tostring(mg.F.conv2d(img, mg.ones(1, 1, 3, 3)).grad_fn))
      assert.equal("<grad_fn conv max_pool2d>", tostring(mg.F.max_pool2d(img, 2).grad_fn))
    end)
  end)

  describe("retain_graph", function()
    it("refuses a second backward through a freed graph", function()
      local x = leaf{1.0, 2.0}
      local loss = (x * x):sum()
      loss:backward()
      H.errors(function() loss:backward() end, "cannot run 'backward' twice through a freed graph")
      -- a shared part of a freed graph is freed too
      local y = x * x
      y:sum():backward()
      H.errors(function() (y * 2):sum():backward() end, "cannot run 'backward' twice through a freed graph")
    end)

    it("runs twice with {retain_graph = true}, and the gradients add up", function()
      local x = leaf{1.0, 2.0}
      local loss = (x * x):sum()
      loss:backward({retain_graph = true})
      assert.same({2, 4}, x.grad:totable())
      loss:backward()
      assert.same({4, 8}, x.grad:totable())
      H.errors(function() loss:backward() end, "cannot run 'backward' twice through a freed graph")
    end)

    it("takes the options after an explicit gradient", function()
      local x = leaf{1.0, 2.0}
      local y = x * 3
      y:backward(mg.ones(2), {retain_graph = true})
      y:backward(mg.ones(2))
      assert.same({6, 6}, x.grad:totable())
    end)

    it("does not carry a failed pass's gradients into the next one", function()
      local x = leaf{1.0, 2.0}
      local c = mg.tensor{1.0, 1.0}
      local shared = x * 2
      local bad = shared * c
      c:add_(1) -- bad's graph can no longer be differentiated
      H.errors(function() (bad + shared):sum():backward() end, "changed in place")
      x.grad = nil
      shared:sum():backward()
      assert.same({2, 2}, x.grad:totable())
    end)
  end)

  describe(".grad", function()
    it("clears with t.grad:zero_() and t:zero_grad(), in place", function()
      local x = leaf{1.0, 2.0}
      ;(x * 3):sum():backward()
      local g = x.grad
      x.grad:zero_()
      assert.same({0, 0}, x.grad:totable())
      ;(x * 3):sum():backward()
      assert.same({3, 3}, x.grad:totable())
      assert.equal(x, x:zero_grad())
      assert.equal(g, x.grad)
      assert.same({0, 0}, g:totable())
    end)

    it("drops .grad with zero_grad{set_to_none = true}", function()
      local x = leaf{1.0, 2.0}
      ;(x * 3):sum():backward()
      x:zero_grad({set_to_none = true})
      assert.is_nil(x.grad)
      x:zero_grad() -- no .grad: nothing to do
      assert.is_nil(x.grad)
      H.errors(function() x:zero_grad({to_none = true}) end,
        "bad argument #1 to 'zero_grad' (unknown option 'to_none' (valid: set_to_none))")
    end)

    it("can be set to a tensor, which backward then adds to, or to nil", function()
      local x = leaf{1.0, 2.0}
      local g = mg.tensor{10.0, 20.0}
      x.grad = g
      assert.equal(g, x.grad)
      ;(x * 3):sum():backward()
      assert.same({13, 23}, g:totable())
      x.grad = nil
      assert.is_nil(x.grad)
      ;(x * 3):sum():backward()
      assert.same({3, 3}, x.grad:totable())
    end)

    it("adds to an assigned expanded .grad out of place", function()
      local x = leaf{1.0, 2.0}
      x.grad = mg.ones(1):expand(2)
      ;(x * 3):sum():backward()
      assert.same({4, 4}, x.grad:totable())
    end)

    it("refuses an assigned gradient of another shape or dtype, or not a tensor", function()
      local x = leaf{1.0, 2.0}
      H.errors(function() x.grad = mg.ones(3) end,
        "'grad': assigned gradient (float32 {3}) must have the tensor's shape and dtype (float32 {2})")
      H.errors(function() x.grad = mg.ones(2, {dtype = "float64"}) end,
        "'grad': assigned gradient (float64 {2}) must have the tensor's shape and dtype (float32 {2})")
      H.errors(function() x.grad = 5 end, "'grad': assigned gradient must be a tensor or nil, got number")
    end)
  end)

  describe("requires_grad_()", function()
    it("returns the tensor itself and sets the flag", function()
      local t = mg.tensor{1.0, 2.0}
      assert.equal(t, t:requires_grad_())
      assert.is_true(t.requires_grad)
      assert.equal(t, t:requires_grad_(false))
      assert.is_false(t.requires_grad)
      assert.equal(t, mg.requires_grad_(t, true))
      assert.is_true(t.requires_grad)
    end)

    it("is also the property t.requires_grad = flag", function()
      local t = mg.tensor{1.0, 2.0}
      t.requires_grad = true
      assert.is_true(t.requires_grad)
      ;(t * t):sum():backward()
      assert.same({2, 4}, t.grad:totable())
    end)

    it("accepts true on a non-leaf (it requires grad already) and refuses false", function()
      local y = leaf{1.0} * 2
      assert.equal(y, y:requires_grad_())
      H.errors(function() y:requires_grad_(false) end,
        "only leaf tensors can change requires_grad (use detach() for a tensor without history)")
      H.errors(function() y.requires_grad = false end,
        "'requires_grad': only leaf tensors can change requires_grad")
    end)

    it("refuses integer and bool tensors", function()
      local t = mg.tensor({1, 2}, {dtype = "int64"})
      H.errors(function() t:requires_grad_() end,
        "calling 'requires_grad_' on bad self (only floating point tensors can require gradients, got int64)")
      H.errors(function() t.requires_grad = true end,
        "'requires_grad': only floating point tensors can require gradients, got int64")
      H.errors(function() mg.tensor{true}:requires_grad_() end,
        "only floating point tensors can require gradients, got bool")
      H.errors(function() mg.tensor({1, 2}, {dtype = "int64", requires_grad = true}) end,
        "only floating point tensors can require gradients")
      assert.equal(t, t:requires_grad_(false))
    end)
  end)

  describe("retain_grad()", function()
    it("keeps the gradient of a non-leaf", function()
      local x = leaf{1.0, 2.0}
      local h = x * 3
      assert.equal(h, h:retain_grad())
      local other = x * 1
      ;(h * h + other):sum():backward()
      assert.same({6, 12}, h.grad:totable()) -- 2h
      assert.same({19, 37}, x.grad:totable()) -- 18x + 1
      assert.is_nil(other.grad)
    end)

    it("keeps the gradient of the root itself", function()
      local y = leaf{1.0, 2.0} * 3
      y:retain_grad()
      y:backward(mg.tensor{5.0, 7.0})
      assert.same({5, 7}, y.grad:totable())
    end)

    it("refuses a tensor that does not require grad", function()
      H.errors(function() mg.tensor{1.0}:retain_grad() end,
        "cannot retain the gradient of a tensor that does not require grad")
    end)
  end)

  describe("detach()", function()
    it("shares storage and has no grad", function()
      local w = leaf{1.0, 2.0}
      local y = w * 2
      local d = y:detach()
      assert.is_false(d.requires_grad)
      assert.is_true(d.is_leaf)
      assert.is_nil(d.grad_fn)
      assert.same({2, 4}, d:totable())
      d[1] = 100 -- a detached tensor may be written: it shares y's storage
      assert.same({100, 4}, y:totable())
      assert.is_false((d * w:detach()).requires_grad)
    end)

    it("makes a later backward fail when the shared data was changed", function()
      -- PyTorch: "one of the variables needed for gradient computation has been modified by an
      -- inplace operation"
      local w = leaf{1.0, 2.0}
      local y = w * w
      w:detach():add_(1)
      H.errors(function() y:sum():backward() end,
        "'backward': a tensor needed to compute gradients was changed in place after it was used")
    end)
  end)

  describe("grad mode", function()
    it("belongs to a coroutine: one suspended inside no_grad leaves the others recording", function()
      local x = mg.ones(2, {requires_grad = true})
      local seen = {}
      local co = coroutine.create(function()
        local _ <close> = mg.no_grad()
        seen[#seen + 1] = (x * 2).requires_grad
        coroutine.yield()
        seen[#seen + 1] = (x * 2).requires_grad
        assert.is_false(mg.is_grad_enabled())
      end)
      assert.is_true(coroutine.resume(co))
      assert.is_true(mg.is_grad_enabled())
      assert.is_true((x * 2).requires_grad)
      assert.is_true(coroutine.resume(co))
      assert.same({false, false}, seen)
      assert.is_true(mg.is_grad_enabled())
    end)

    it("is followed by a coroutine that never set its own (a generator consumed inside no_grad)", function()
      local x = mg.ones(2, {requires_grad = true})
      local inside = mg.no_grad(function()
        local gen = coroutine.wrap(function() coroutine.yield((x * 2).requires_grad) end)
        return gen()
      end)
      assert.is_false(inside)
      local gen = coroutine.wrap(function() coroutine.yield((x * 2).requires_grad) end)
      assert.is_true(gen())
    end)

    it("comes back after an error inside no_grad(fn), and no_grad(fn) returns fn's results", function()
      assert.has_error(function() mg.no_grad(function() error("boom") end) end)
      assert.is_true(mg.is_grad_enabled())
      assert.same({3, "r"}, {mg.no_grad(function(a, b) return a + b, "r" end, 1, 2)})
    end)

    it("no_grad(fn, ...) passes the arguments and returns fn's results", function()
      local a, b, c = mg.no_grad(function(x, y) return x + y, "two", nil end, 1, 2)
      assert.equal(3, a)
      assert.equal("two", b)
      assert.is_nil(c)
      assert.is_true(mg.is_grad_enabled())
      assert.is_false(mg.no_grad(mg.is_grad_enabled))
    end)

    it("restores the mode when fn raises, and passes the error on", function()
      local ok, err = pcall(mg.no_grad, function() error("boom", 0) end)
      assert.is_false(ok)
      assert.equal("boom", err)
      assert.is_true(mg.is_grad_enabled())
      local obj = {}
      local _, e = pcall(mg.no_grad, function() error(obj) end)
      assert.equal(obj, e)
      assert.is_true(mg.is_grad_enabled())
    end)

    it("refuses a non-function", function()
      H.errors(function() mg.no_grad(5) end, "bad argument #1 to 'no_grad' (function expected, got number)")
    end)

    it("is a <close> guard, nesting with enable_grad", function()
      local w = leaf{1.0}
      do
        local _ <close> = mg.no_grad()
        assert.is_false(mg.is_grad_enabled())
        assert.is_false((w * 2).requires_grad)
        do
          local _ <close> = mg.enable_grad()
          assert.is_true(mg.is_grad_enabled())
          assert.is_true((w * 2).requires_grad)
        end
        assert.is_false(mg.is_grad_enabled())
      end
      assert.is_true(mg.is_grad_enabled())
    end)

    it("the guard restores the mode when its scope raises", function()
      local ok = pcall(function()
        local _ <close> = mg.no_grad()
        error("boom")
      end)
      assert.is_false(ok)
      assert.is_true(mg.is_grad_enabled())
    end)

    it("enable_grad(fn) records inside no_grad", function()
      local w = leaf{1.0, 2.0}
      local y = mg.no_grad(function()
        return mg.enable_grad(function() return w * 2 end)
      end)
      assert.is_true(y.requires_grad)
      y:sum():backward()
      assert.same({2, 2}, w.grad:totable())
    end)

    it("backward works inside no_grad", function()
      local w = leaf{1.0, 2.0}
      local loss = (w * w):sum()
      mg.no_grad(function() loss:backward() end)
      assert.same({2, 4}, w.grad:totable())
    end)
  end)

  describe("in-place changes", function()
    it("refuse a leaf that requires grad outside no_grad", function()
      local w = leaf{1.0, 2.0}
      local detail = "a leaf tensor that requires grad cannot be changed in place (do it inside mg.no_grad)"
      H.errors(function() w:add_(1) end, "calling 'add_' on bad self (" .. detail .. ")")
      H.errors(function() mg.add_(w, 1) end, "bad argument #1 to 'add_' (" .. detail .. ")")
      H.errors(function() w:zero_() end, detail)
      H.errors(function() w[1] = 5 end, detail)
      assert.same({1, 2}, w:detach():totable())
    end)

    it("allow it inside no_grad", function()
      local w = leaf{1.0, 2.0}
      mg.no_grad(function()
        w:sub_(mg.tensor{0.5, 0.5})
        w[2] = 7
      end)
      assert.same({0.5, 7}, w:detach():totable())
      assert.is_true(w.requires_grad)
      assert.is_true(w.is_leaf)
    end)

    it("refuse a non-leaf that requires grad", function()
      local y = leaf{1.0, 2.0} * 2
      H.errors(function() y:mul_(2) end,
        "in-place changes of a tensor that is part of a graph are not supported (use the out-of-place form)")
    end)

    it("make backward fail, not give a wrong gradient, when a saved input changed (version counter)", function()
      local x = mg.tensor{1.0, 2.0}
      local w = leaf{3.0, 4.0}
      local y = x * w
      x:add_(1)
      H.errors(function() y:sum():backward() end,
        "'backward': a tensor needed to compute gradients was changed in place after it was used "
        .. "(version 1, expected 0): compute it again, or change a clone()")
      assert.is_nil(w.grad)
      -- computed again after the change, it is fine
      ;(x * w):sum():backward()
      assert.same({2, 3}, w.grad:totable())
    end)

    it("do not disturb a graph when made to a clone", function()
      local x = mg.tensor{1.0, 2.0}
      local w = leaf{3.0, 4.0}
      local y = x * w
      x:clone():add_(1)
      y:sum():backward()
      assert.same({1, 2}, w.grad:totable())
    end)
  end)

  describe("indexing a tensor that requires grad (the book's w, b = params)", function()
    it("t[i] on a 1-D tensor requiring grad is a differentiable 0-d tensor", function()
      local params = leaf{1.0, 0.0}
      local w, b = params[1], params[2]
      assert.is_true(mg.is_tensor(w))
      assert.same({}, w.shape)
      assert.equal(1, w:item())
      assert.is_true(w.requires_grad)
      assert.is_false(w.is_leaf)
      -- w, b = p; (w*3 + b).backward(); p.grad -> [3., 1.]
      ;(w * 3 + b):backward()
      assert.same({3, 1}, params.grad:totable())
    end)

    it("t[i] is a plain number without grad or inside no_grad", function()
      local params = leaf{1.5, 0.0}
      assert.equal(1.5, mg.no_grad(function() return params[1] end))
      assert.equal(1.5, mg.tensor{1.5, 0.0}[1])
      assert.equal(1.5, params:detach()[1])
    end)

    it("t[i] on a 2-D tensor requiring grad is a differentiable row", function()
      local m = leaf{{1.0, 2.0}, {3.0, 4.0}}
      local row = m[2]
      assert.is_true(row.requires_grad)
      ;(row * mg.tensor{10.0, 20.0}):sum():backward()
      assert.same({{0, 0}, {10, 20}}, m.grad:totable())
    end)

    it("unbind() gives differentiable 0-d slices", function()
      -- w, b = p.unbind(); (w*w*b + b).backward(); p.grad -> [0., 2.]
      local params = leaf{1.0, 0.0}
      local w, b = params:unbind()
      assert.same({}, w.shape)
      assert.equal(1, w:item())
      assert.equal(0, b:item())
      assert.is_true(w.requires_grad)
      ;(w * w * b + b):backward()
      assert.same({0, 2}, params.grad:totable())
    end)
  end)

  describe("mg.autograd.grad()", function()
    it("returns a list in the inputs' order without touching .grad", function()
      local x = leaf{1.0, 2.0}
      local w = leaf{3.0, 4.0}
      local y = (x * w):sum()
      local g = mg.autograd.grad({y}, {w, x})
      assert.equal(2, #g)
      assert.same({1, 2}, g[1]:totable())
      assert.same({3, 4}, g[2]:totable())
      assert.is_nil(x.grad)
      assert.is_nil(w.grad)
    end)

    it("takes single tensors for outputs and inputs", function()
      local x = leaf{1.0, 2.0}
      local g = mg.autograd.grad((x * x):sum(), x)
      assert.same({2, 4}, g[1]:totable())
    end)

    it("gives zeros of its shape for an input the outputs do not depend on", function()
      local x = leaf{1.0, 2.0}
      local unused = leaf({{5.0, 6.0, 7.0}}, {dtype = "float64"})
      local g = mg.autograd.grad((x * 2):sum(), {unused, x})
      assert.equal(2, #g)
      assert.same({{0, 0, 0}}, g[1]:totable())
      assert.equal("float64", g[1].dtype)
      assert.same({2, 2}, g[2]:totable())
    end)

    it("differentiates with respect to a non-leaf, and leaves retained grads alone", function()
      local x = leaf{1.0, 2.0}
      local h = x * 3
      h:retain_grad()
      local g = mg.autograd.grad((h * h):sum(), {h, x})
      assert.same({6, 12}, g[1]:totable())  -- 2h
      assert.same({18, 36}, g[2]:totable()) -- 18x
      assert.is_nil(h.grad)
      assert.is_nil(x.grad)
    end)

    it("takes grad_outputs, and an output that is also an input", function()
      local x = leaf{1.0, 2.0}
      local y = x * 3
      local g = mg.autograd.grad(y, {y, x}, mg.tensor{1.0, 10.0})
      assert.same({1, 10}, g[1]:totable())
      assert.same({3, 30}, g[2]:totable())
    end)

    it("sums over several outputs", function()
      local x = leaf{1.0, 2.0}
      local g = mg.autograd.grad({(x * x):sum(), (x * 5):sum()}, {x})
      assert.same({7, 9}, g[1]:totable())
    end)

    it("frees the graph unless retain_graph", function()
      local x = leaf{1.0, 2.0}
      local loss = (x * x):sum()
      mg.autograd.grad(loss, x, {retain_graph = true})
      local g = mg.autograd.grad(loss, x)
      assert.same({2, 4}, g[1]:totable())
      H.errors(function() loss:backward() end, "cannot run 'backward' twice through a freed graph")
    end)

    it("refuses outputs or inputs that do not require grad", function()
      local x = leaf{1.0}
      H.errors(function() mg.autograd.grad((x * 2):sum(), {mg.tensor{1.0}}) end,
        "bad argument #2 to 'grad' (inputs[1] is not a tensor that requires grad)")
      H.errors(function() mg.autograd.grad(mg.tensor{1.0}, {x}) end,
        "bad argument #1 to 'grad' (outputs[1] is not a tensor that requires grad)")
      H.errors(function() mg.autograd.grad(5, {x}) end,
        "bad argument #1 to 'grad' (tensor or list of tensors expected, got number)")
    end)
  end)

  describe("mg.autograd.gradcheck()", function()
    it("passes for correct gradients of several inputs and outputs", function()
      local x = leaf({1.0, 2.0, 3.0}, {dtype = "float64"})
      local y = leaf({0.5, 0.25, 2.0}, {dtype = "float64"})
      assert.is_true(mg.autograd.gradcheck(function(a, b) return a * a + b / a, a:sum() end, {x, y}))
      assert.is_nil(x.grad) -- gradcheck does not touch .grad
      assert.same({1, 2, 3}, x:detach():totable()) -- nor the inputs' values
    end)

    it("names the input and the element when a gradient is wrong", function()
      -- x * x:detach() hides one factor from autograd: d/dx is x for autograd, 2x for differences
      local x = leaf({1.0, 2.0, 3.0}, {dtype = "float64"})
      H.errors(function() mg.autograd.gradcheck(function(a) return a * a:detach() end, {x}) end,
        "'gradcheck': gradient of inputs[1] (shape {3}) is wrong at element")
    end)

    it("needs float64 inputs, and one requiring grad", function()
      H.errors(function() mg.autograd.gradcheck(function(a) return a * a end, {leaf{1.0}}) end,
        "bad argument #2 to 'gradcheck' (inputs[1] is float32: gradcheck needs float64)")
      H.errors(function() mg.autograd.gradcheck(function(a) return a * a end, {mg.tensor{1.0}}) end,
        "bad argument #2 to 'gradcheck' (no input requires grad)")
      H.errors(function() mg.autograd.gradcheck(function(a) return a end, {leaf({1.0}, {dtype = "float64"})}, {tol = 1}) end,
        "bad argument #3 to 'gradcheck' (unknown option 'tol' (valid: atol, eps, rtol))")
    end)
  end)

  describe("memory", function()
    it("a graph is collected with the results that reach it", function()
      local x = leaf{1.0, 2.0}
      local weak = setmetatable({}, {__mode = "v"})
      do
        local y = (x * 2 + 1):sum()
        weak.node = y.grad_fn
        weak.result = y
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak.node)
      assert.is_nil(weak.result)
    end)
  end)

  describe("the book's training loop (chapter 5)", function()
    it("ends at tensor([  5.3671, -17.3012], requires_grad=true) after 5000 epochs", function()
      local t_c = mg.tensor{0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0}
      local t_u = mg.tensor{35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4}
      local t_un = 0.1 * t_u
      local function model(t, w, b) return w * t + b end
      local function loss_fn(t_p, c) return ((t_p - c) ^ 2):mean() end
      local params = mg.tensor({1.0, 0.0}, {requires_grad = true})
      local losses = {}
      for epoch = 1, 5000 do
        if params.grad then params.grad:zero_() end
        local loss = loss_fn(model(t_un, params[1], params[2]), t_c)
        loss:backward()
        if epoch <= 2 then losses[epoch] = loss:item() end
        if epoch == 1 then H.near({-77.61404418945312, -10.639999389648438}, params.grad) end
        mg.no_grad(function() params:sub_(1e-2 * params.grad) end)
      end
      -- the same loop in PyTorch 1.13: epoch 1 loss 80.36434173583984, epoch 2 37.574913024902344,
      -- params [5.367084503173828, -17.301193237304688]
      H.near({80.36434173583984, 37.574913024902344}, losses)
      H.near({5.367084503173828, -17.301193237304688}, params, 1e-5)
      assert.is_true(params.requires_grad)
      assert.is_true(params.is_leaf)
      assert.equal("tensor([  5.3671, -17.3012], requires_grad=true)", tostring(params))
    end)
  end)
end)
