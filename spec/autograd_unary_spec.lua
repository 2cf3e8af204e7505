-- Autograd of the unary family: exp log sqrt rsqrt sin cos tanh sigmoid log1p expm1 abs relu
-- square clamp (and neg, which is 0 - x in the binary family), plus floor ceil round sign (zero
-- gradient). Each is gradchecked against central differences in float64, on contiguous inputs and
-- on views made inside fn; a few gradients are compared with PyTorch 1.13's (the Python is in a
-- comment next to each).
local mg = require "moongrad"
local H = require "helper"

local gradcheck = mg.autograd.gradcheck

local leaf = H.leaf

-- Keeps inputs of ops with a pole or a kink at 0 (log sqrt rsqrt log1p) away from it.
local function positive(t) return t:abs() + 0.5 end

local SMOOTH = {"exp", "sin", "cos", "tanh", "sigmoid", "expm1", "square"}
local POSITIVE = {"log", "sqrt", "rsqrt", "log1p"}
-- abs and relu have a kink at 0: the random inputs stay far enough from it for eps = 1e-6
local KINKED = {"abs", "relu"}

describe("autograd of unary ops", function()
  before_each(function() mg.manual_seed(7) end)

  describe("gradcheck", function()
    for _, op in ipairs(SMOOTH) do
      it(op .. " on contiguous inputs of several shapes", function()
        for _, shape in ipairs{{5}, {3, 4}, {2, 3, 2}} do
          assert.is_true(gradcheck(function(x) return x[op](x) end, {leaf(shape)}))
        end
      end)
      it(op .. " on a 0-d input", function()
        assert.is_true(gradcheck(function(x) return x[op](x) end, {leaf{}}))
      end)
      it(op .. " on transposed, expanded and narrowed views", function()
        local x = leaf{3, 4}
        assert.is_true(gradcheck(function(t) return t:t()[op](t:t()) end, {x}))
        local row = leaf{4}
        assert.is_true(gradcheck(function(t) local e = t:expand(3, 4); return e[op](e) end, {row}))
        assert.is_true(gradcheck(function(t) local n = t:narrow(2, 2, 2); return n[op](n) end, {x}))
      end)
    end

    for _, op in ipairs(POSITIVE) do
      it(op .. " on positive inputs and views", function()
        for _, shape in ipairs{{5}, {3, 4}, {2, 3, 2}} do
          assert.is_true(gradcheck(function(x) local p = positive(x); return p[op](p) end, {leaf(shape)}))
        end
        assert.is_true(gradcheck(function(x)
          local p = positive(x:t()); return p[op](p)
        end, {leaf{3, 4}}))
        assert.is_true(gradcheck(function(x)
          local p = positive(x:expand(2, 5)); return p[op](p)
        end, {leaf{5}}))
      end)
    end

    for _, op in ipairs(KINKED) do
      it(op .. " away from its kink", function()
        local x = leaf{4, 3}
        assert.is_true(gradcheck(function(t) return t[op](t) end, {x}))
        assert.is_true(gradcheck(function(t) local v = t:t():narrow(1, 1, 2); return v[op](v) end, {x}))
      end)
    end

    it("clamp with both bounds, and with each bound alone", function()
      local x = leaf{4, 5}
      assert.is_true(gradcheck(function(t) return t:clamp(-0.5, 0.5) end, {x}))
      assert.is_true(gradcheck(function(t) return t:clamp(-0.25) end, {x}))
      assert.is_true(gradcheck(function(t) return t:clamp(nil, 0.25) end, {x}))
      assert.is_true(gradcheck(function(t) return mg.clamp(t:t(), -1, 0.3) end, {x}))
    end)

    it("neg, as -x and as x:neg()", function()
      local x = leaf{3, 2}
      assert.is_true(gradcheck(function(t) return -t end, {x}))
      assert.is_true(gradcheck(function(t) return t:t():neg() end, {x}))
    end)

    it("a chain of unary ops", function()
      assert.is_true(gradcheck(function(t)
        return (t:sin():square() + 1):log():sqrt():tanh():sigmoid():exp()
      end, {leaf{3, 3}}))
    end)

    it("floor, ceil, round and sign pass a zero gradient on", function()
      local x = leaf{3, 4}
      for _, op in ipairs{"floor", "ceil", "round", "sign"} do
        assert.is_true(gradcheck(function(t) return t[op](t) + t end, {x}))
      end
    end)
  end)

  describe("gradients against PyTorch", function()
    local X = {{-1.5, -0.3, 0.2}, {0.7, 1.1, 2.0}}
    local P = {{0.5, 1.5, 2.0}, {0.25, 3.0, 4.0}}
    -- x = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    -- getattr(torch, op)(x).sum().backward(); x.grad.tolist()
    local expected = {
      exp = {{0.22313016014842982, 0.7408182206817179, 1.2214027581601699},
             {2.0137527074704766, 3.0041660239464334, 7.38905609893065}},
      sin = {{0.0707372016677029, 0.955336489125606, 0.9800665778412416},
             {0.7648421872844885, 0.4535961214255773, -0.4161468365471424}},
      cos = {{0.9974949866040544, 0.29552020666133955, -0.19866933079506122},
             {-0.644217687237691, -0.8912073600614354, -0.9092974268256817}},
      tanh = {{0.1807066389236486, 0.9151369618266292, 0.9610429829661166},
              {0.6347395899824586, 0.3592013161602749, 0.07065082485316443}},
      sigmoid = {{0.14914645207033286, 0.24445831169074586, 0.24751657271185995},
                 {0.22171287329310904, 0.18736987954752055, 0.10499358540350662}},
      expm1 = {{0.2231301601484298, 0.7408182206817179, 1.2214027581601699},
               {2.013752707470476, 3.0041660239464334, 7.38905609893065}},
      abs = {{-1, -1, 1}, {1, 1, 1}},
      relu = {{0, 0, 1}, {1, 1, 1}},
      square = {{-3.0, -0.6, 0.4}, {1.4, 2.2, 4.0}},
    }
    -- the same on x = torch.tensor(P, ...)
    local expected_positive = {
      log = {{2.0, 0.6666666666666666, 0.5}, {4.0, 0.3333333333333333, 0.25}},
      sqrt = {{0.7071067811865475, 0.4082482904638631, 0.35355339059327373},
              {1.0, 0.2886751345948129, 0.25}},
      rsqrt = {{-1.4142135623730947, -0.2721655269759088, -0.17677669529663684},
               {-4.0, -0.09622504486493767, -0.0625}},
      log1p = {{0.6666666666666666, 0.4, 0.3333333333333333}, {0.8, 0.25, 0.2}},
    }
    for op, grad in pairs(expected) do
      it(op, function()
        local x = mg.tensor(X, {dtype = "float64", requires_grad = true})
        x[op](x):sum():backward()
        H.near(grad, x.grad, 1e-12)
      end)
    end
    for op, grad in pairs(expected_positive) do
      it(op, function()
        local x = mg.tensor(P, {dtype = "float64", requires_grad = true})
        x[op](x):sum():backward()
        H.near(grad, x.grad, 1e-12)
      end)
    end

    it("clamp passes the gradient where lo <= x <= hi, bounds included", function()
      -- torch.clamp(x, -0.3, 1.1).sum().backward(); x.grad.tolist()
      local x = mg.tensor(X, {dtype = "float64", requires_grad = true})
      x:clamp(-0.3, 1.1):sum():backward()
      assert.same({{0, 1, 1}, {1, 1, 0}}, x.grad:totable())
    end)

    it("clamp with a lower bound only", function()
      -- (torch.clamp(x, min=0.2) * torch.tensor([1., 2., 3.], dtype=torch.float64)).sum().backward()
      local x = mg.tensor(X, {dtype = "float64", requires_grad = true})
      local y = x:clamp(0.2) * mg.tensor({1, 2, 3}, {dtype = "float64"})
      y:sum():backward()
      assert.same({{0, 0, 3}, {1, 2, 3}}, x.grad:totable())
    end)

    it("floor, ceil, round and sign give zeros", function()
      -- torch.floor(x).sum().backward(); x.grad -> zeros (likewise ceil, round, sign)
      for _, op in ipairs{"floor", "ceil", "round", "sign"} do
        local x = mg.tensor(X, {dtype = "float64", requires_grad = true})
        local y = x[op](x)
        assert.is_true(y.requires_grad)
        y:sum():backward()
        assert.same({{0, 0, 0}, {0, 0, 0}}, x.grad:totable())
      end
    end)

    it("float32 inputs get float32 gradients", function()
      -- x = torch.tensor(X, requires_grad=True); torch.tanh(x).sum().backward(); x.grad
      local x = mg.tensor(X, {requires_grad = true})
      x:tanh():sum():backward()
      assert.equal("float32", x.grad.dtype)
      H.near({{0.18070662021636963, 0.9151369333267212, 0.9610430002212524},
              {0.6347395777702332, 0.3592013120651245, 0.07065081596374512}}, x.grad, 1e-6)
    end)

    it("gradients accumulate over two backward passes", function()
      local x = mg.tensor({0.5, 2.0}, {dtype = "float64", requires_grad = true})
      x:square():sum():backward()
      x:square():sum():backward()
      assert.same({2.0, 8.0}, x.grad:totable())
    end)
  end)

  describe("recording", function()
    it("gives a non-leaf result that requires grad", function()
      local x = mg.tensor({1, 2}, {requires_grad = true})
      local y = x:exp()
      assert.is_true(y.requires_grad)
      assert.is_false(y.is_leaf)
      assert.is_not_nil(y.grad_fn)
      local c = x:clamp(0, 1)
      assert.is_true(c.requires_grad)
      assert.is_false(c.is_leaf)
    end)

    it("records nothing for a tensor that does not require grad", function()
      local x = mg.tensor({1, 2})
      for _, op in ipairs{"exp", "log", "relu", "floor", "sign"} do
        local y = x[op](x)
        assert.is_nil(y.grad_fn)
        assert.is_false(y.requires_grad)
        assert.is_true(y.is_leaf)
      end
      assert.is_nil(x:clamp(0, 1).grad_fn)
    end)

    it("records nothing inside no_grad", function()
      local x = mg.tensor({1, 2}, {requires_grad = true})
      local y = mg.no_grad(function() return x:sigmoid() end)
      assert.is_nil(y.grad_fn)
      assert.is_false(y.requires_grad)
    end)

    it("keeps the graph alive through the result alone", function()
      local x = mg.tensor({0.5, 1.5}, {dtype = "float64", requires_grad = true})
      local y = x:exp():sqrt():sum()
      collectgarbage()
      collectgarbage()
      y:backward()
      -- d/dx sqrt(exp(x)) = exp(x / 2) / 2
      H.near({math.exp(0.25) / 2, math.exp(0.75) / 2}, x.grad, 1e-12)
    end)

    it("refuses a backward after the output an op kept was changed in place", function()
      local x = mg.tensor({0.5, 1.5}, {dtype = "float64", requires_grad = true})
      local y = x:exp()
      local z = y:sum()
      mg.no_grad(function() y:mul_(2) end)
      H.errors(function() z:backward() end, "was changed in place after it was used")
    end)

    it("refuses in-place unary ops on a leaf that requires grad", function()
      local x = mg.tensor({0.5, 1.5}, {requires_grad = true})
      H.errors(function() x:exp_() end, "a leaf tensor that requires grad cannot be changed in place")
    end)
  end)
end)
