-- Threads: mg.set_num_threads / get_num_threads, and results that do not depend on the number of
-- threads (each output element is computed by one thread, in a fixed order).
local mg = require "moongrad"
local H = require "helper"

describe("threads", function()
  local saved
  before_each(function() saved = mg.get_num_threads() end)
  after_each(function() mg.set_num_threads(saved) end)

  describe("set_num_threads()", function()
    it("sets what get_num_threads() reads", function()
      mg.set_num_threads(1)
      assert.equal(1, mg.get_num_threads())
      mg.set_num_threads(2)
      assert.equal(2, mg.get_num_threads())
    end)
    it("refuses a count outside 1..64", function()
      H.errors(function() mg.set_num_threads(0) end,
        "bad argument #1 to 'set_num_threads' (number of threads must be in 1..64, got 0)")
      H.errors(function() mg.set_num_threads(65) end, "number of threads must be in 1..64, got 65")
    end)
  end)

  describe("results", function()
    -- large enough that the work is split between threads
    local function compute()
      mg.manual_seed(11)
      local a, b = mg.randn(700, 1100), mg.randn(1100)
      local big = mg.randn(600, 300)
      -- optimizer updates of a parameter large enough to be split
      local p, q = mg.randn(300000):requires_grad_(), mg.randn(300000):requires_grad_()
      p.grad, q.grad = mg.randn(300000), mg.randn(300000)
      local sgd = mg.optim.SGD({p}, {lr = 0.1, momentum = 0.9})
      local adam = mg.optim.Adam({q}, {lr = 0.01})
      for _ = 1, 3 do sgd:step(); adam:step() end
      return {
        a + b, a * 3 - b, (a:t() + 1):t(), a:exp(), a:sigmoid(), a:clamp(-0.5, 0.5),
        a:double(), mg.where(a:gt(0), a, b), a:sum(2), a:mean(1), big:matmul(big:t()),
        p:detach(), q:detach(),
      }
    end

    it("are bit-identical with 1 and 2 threads", function()
      mg.set_num_threads(1)
      local one = compute()
      mg.set_num_threads(2)
      local two = compute()
      for i = 1, #one do
        assert.is_true(mg.equal(one[i], two[i]), "result " .. i .. " differs")
      end
    end)
  end)
end)
