-- t:register_post_accumulate_grad_hook(fn) (PyTorch 2.x): fn(t) once per backward pass, after every
-- gradient the pass sends to the leaf t has been summed into t.grad. And the internal end-of-pass
-- callback queue (core._queue_backward_callback) that DistributedDataParallel finishes its
-- allreduces in.
local mg = require "moongrad"
local core = require "moongrad.core"

describe("register_post_accumulate_grad_hook", function()
  it("runs once per pass, when the leaf's gradient is complete (a leaf used three times)", function()
    local w = mg.tensor({ 1, 2, 3 }, { requires_grad = true })
    local b = mg.tensor({ 1.0 }, { requires_grad = true })
    local seen = {}
    w:register_post_accumulate_grad_hook(function(t)
      assert.equal(w, t)
      seen[#seen + 1] = { "w", t.grad:totable() }
    end)
    b:register_post_accumulate_grad_hook(function(t) seen[#seen + 1] = { "b", t.grad:totable() } end)
    local y = (w * w):sum() + b * 2 + (w * b):sum()
    y:backward()
    -- d/dw = 2w + b = {3, 5, 7}; d/db = 2 + sum(w) = 8
    assert.same({ { "w", { 3, 5, 7 } }, { "b", { 8 } } }, seen)
    seen = {}
    y = (w * w):sum() + b * 2 + (w * b):sum()
    y:backward() -- .grad accumulates; the hook sees the sum
    assert.same({ { "w", { 6, 10, 14 } }, { "b", { 16 } } }, seen)
  end)

  it("runs in the order backward finishes the leaves: the last layer's first", function()
    local order = {}
    local w1 = mg.randn(3, 4, { requires_grad = true })
    local w2 = mg.randn(4, 2, { requires_grad = true })
    w1:register_post_accumulate_grad_hook(function() order[#order + 1] = "w1" end)
    w2:register_post_accumulate_grad_hook(function() order[#order + 1] = "w2" end)
    local x = mg.randn(5, 3)
    x:matmul(w1):tanh():matmul(w2):sum():backward()
    assert.same({ "w2", "w1" }, order)
  end)

  it("a leaf that is the root; a leaf outside the graph; autograd.grad runs no hook", function()
    local x = mg.tensor({ 2.0 }, { requires_grad = true })
    local other = mg.tensor({ 1.0 }, { requires_grad = true })
    local count = { x = 0, other = 0 }
    x:register_post_accumulate_grad_hook(function() count.x = count.x + 1 end)
    other:register_post_accumulate_grad_hook(function() count.other = count.other + 1 end)
    x:backward()
    assert.same({ x = 1, other = 0 }, count)
    assert.same({ 1 }, x.grad:totable())
    local g = mg.autograd.grad((x * x):sum(), x)
    assert.same({ 4 }, g[1]:totable())
    assert.same({ x = 1, other = 0 }, count)
  end)

  it("the handle's remove() takes the hook off", function()
    local x = mg.tensor({ 1.0 }, { requires_grad = true })
    local n = 0
    local h = x:register_post_accumulate_grad_hook(function() n = n + 1 end)
    local h2 = x:register_post_accumulate_grad_hook(function() n = n + 10 end);
    (x * 3):sum():backward()
    assert.equal(11, n)
    h.remove();
    (x * 3):sum():backward()
    assert.equal(21, n)
    h2.remove()
    h2.remove();
    (x * 3):sum():backward()
    assert.equal(21, n)
  end)

  it("an error in a hook ends backward with it; the next pass runs normally", function()
    local x = mg.tensor({ 1.0 }, { requires_grad = true })
    local fail = true
    x:register_post_accumulate_grad_hook(function() if fail then error("hook failed", 0) end end)
    assert.has_error(function() (x * 2):sum():backward() end, "hook failed")
    fail = false
    x.grad = nil;
    (x * 2):sum():backward()
    assert.same({ 2 }, x.grad:totable())
  end)

  it("errors: a non-leaf, a tensor without grad, not a function", function()
    local x = mg.tensor({ 1.0 }, { requires_grad = true })
    assert.has_error(function() (x * 2):register_post_accumulate_grad_hook(print) end,
      "calling 'register_post_accumulate_grad_hook' on bad self (post accumulate grad hooks cannot be registered "
        .. "on non-leaf tensors)")
    assert.has_error(function() mg.ones(1):register_post_accumulate_grad_hook(print) end,
      "calling 'register_post_accumulate_grad_hook' on bad self (cannot register a hook on a tensor that does not "
        .. "require grad)")
    assert.has_error(function() mg.register_post_accumulate_grad_hook((x * 2), print) end,
      "bad argument #1 to 'register_post_accumulate_grad_hook' (post accumulate grad hooks cannot be registered "
        .. "on non-leaf tensors)")
    assert.has_error(function() x:register_post_accumulate_grad_hook(3) end,
      "bad argument #1 to 'register_post_accumulate_grad_hook' (function expected, got number)") -- a method: Lua counts from the argument after self
  end)
end)

describe("the end-of-pass callback queue (internal)", function()
  it("runs queued functions after the last node, before backward returns", function()
    local a = mg.tensor({ 1.0 }, { requires_grad = true })
    local b = mg.tensor({ 2.0 }, { requires_grad = true })
    local log = {}
    a:register_post_accumulate_grad_hook(function()
      log[#log + 1] = "a"
      core._queue_backward_callback(function() log[#log + 1] = "end:" .. tostring(b.grad:item()) end)
    end)
    b:register_post_accumulate_grad_hook(function() log[#log + 1] = "b" end);
    ((a * 3) * b):sum():backward()
    assert.equal("end:3.0", log[#log])
    assert.equal(3, #log)
    log = {}
    pcall(function() (a * mg.tensor({ 1 / 0 })):sum():backward() end)
    assert.equal(2, #log)
  end)

  it("is an error outside a backward pass", function()
    assert.has_error(function() core._queue_backward_callback(print) end,
      "'_queue_backward_callback': no backward pass is running (call it from a hook)")
  end)
end)
