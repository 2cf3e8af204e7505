-- mg.nn: modules, parameters and state_dict names, printing, losses and clip_grad_norm_.
-- Reference values from PyTorch 1.13 via spec/fixtures/gen_nn.py (the Python behind each is in
-- the comment beside it).
local mg = require "moongrad"
local H = require "helper"
local nn = mg.nn

-- the book's thermometer data (chapter 5), as columns (N, 1)
local t_c = mg.tensor{0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0}:unsqueeze(2)
local t_u = mg.tensor{35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4}:unsqueeze(2)
local t_un = 0.1 * t_u

local function shapes(list)
  local out = {}
  for i, p in ipairs(list) do out[i] = p.shape end
  return out
end

local function names(model)
  local out = {}
  for name in model:named_parameters() do out[#out + 1] = name end
  return out
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- one step of the book's hand-written SGD: p = p - lr * p.grad, without recording
local function sgd_step(params, lr)
  mg.no_grad(function()
    for _, p in ipairs(params) do p:sub_(lr * p.grad) end
  end)
end

describe("nn", function()
  describe("Linear", function()
    it("holds weight (out x in) and bias (out), drawn from U(-1/sqrt(in), 1/sqrt(in))", function()
      local lin = nn.Linear(16, 50)
      assert.same({50, 16}, lin.weight.shape)
      assert.same({50}, lin.bias.shape)
      assert.is_true(lin.weight.requires_grad and lin.weight.is_leaf)
      assert.is_true(lin.bias.requires_grad)
      -- bound = 1/sqrt(16) = 0.25; 800 draws fill the interval
      assert.is_true(lin.weight:max():item() <= 0.25 and lin.weight:min():item() >= -0.25)
      assert.is_true(lin.weight:max():item() > 0.2 and lin.weight:min():item() < -0.2)
      assert.is_true(lin.bias:abs():max():item() <= 0.25)
      assert.is_true(lin.weight:std():item() > 0.12 and lin.weight:std():item() < 0.17) -- 0.25/sqrt(3) = 0.144
    end)

    it("is reproducible from mg.manual_seed", function()
      mg.manual_seed(7)
      local a = nn.Linear(3, 4)
      mg.manual_seed(7)
      local b = nn.Linear(3, 4)
      assert.is_true(mg.equal(a.weight, b.weight))
      assert.is_true(mg.equal(a.bias, b.bias))
      -- weight first, then bias, from the same stream
      mg.manual_seed(7)
      local w = mg.empty(4, 3):uniform_(-1 / math.sqrt(3), 1 / math.sqrt(3))
      local bias = mg.empty(4):uniform_(-1 / math.sqrt(3), 1 / math.sqrt(3))
      assert.is_true(mg.equal(w, a.weight))
      assert.is_true(mg.equal(bias, a.bias))
      local c = nn.Linear(3, 4)
      assert.is_false(mg.equal(a.weight, c.weight))
    end)

    it("computes x W^T + b for 2-D and 1-D inputs, as PyTorch", function()
      local lin = nn.Linear(3, 2)
      mg.no_grad(function()
        lin.weight:copy_(mg.tensor{{0.1, -0.2, 0.3}, {0.4, 0.5, -0.6}})
        lin.bias:copy_(mg.tensor{0.01, -0.02})
      end)
      -- lin(torch.tensor([[1., 2., 3.], [-1., 0.5, 2.]]))
      H.near({{0.61, -0.42}, {0.41, -1.37}}, lin(mg.tensor{{1, 2, 3}, {-1, 0.5, 2}}))
      -- lin(torch.tensor([1., 2., 3.]))
      local y = lin(mg.tensor{1, 2, 3})
      assert.same({2}, y.shape)
      H.near({0.61, -0.42}, y)
      assert.is_true(y.requires_grad)
      -- a batch of batches: (2, 2, 3) -> (2, 2, 2)
      assert.same({2, 2, 2}, lin(mg.ones(2, 2, 3)).shape)
    end)

    it("has no bias with {bias = false}", function()
      local lin = nn.Linear(3, 2, {bias = false})
      assert.is_nil(lin.bias)
      assert.equal(1, #lin:parameters())
      assert.same({"weight"}, names(lin))
      mg.no_grad(function() lin.weight:copy_(mg.tensor{{0.1, -0.2, 0.3}, {0.4, 0.5, -0.6}}) end)
      -- lin.bias = None; lin(torch.tensor([1., 2., 3.]))
      H.near({0.6, -0.4}, lin(mg.tensor{1, 2, 3}))
      assert.equal("Linear(in_features=3, out_features=2, bias=False)", tostring(lin))
    end)

    it("converts with to(), double() and float()", function()
      local model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
      local w = model[1].weight:clone()
      assert.equal(model, model:double())
      assert.equal("float64", model[1].weight.dtype)
      assert.is_true(model[3].bias.requires_grad and model[3].bias.is_leaf)
      assert.is_true(mg.allclose(w:double(), model[1].weight))
      assert.equal("float64", model(mg.ones(4, 2, {dtype = "float64"})).dtype)
      assert.equal("float32", model:float()[3].weight.dtype)
      assert.equal("float32", model:to("float32")[1].bias.dtype)
    end)

    it("takes a dtype option", function()
      local lin = nn.Linear(2, 2, {dtype = "float64"})
      assert.equal("float64", lin.weight.dtype)
      assert.equal("float64", lin.bias.dtype)
      assert.equal("float64", lin(mg.ones(2, {dtype = "float64"})).dtype)
    end)

    it("sends gradients to weight and bias", function()
      local lin = nn.Linear(2, 1, {dtype = "float64"})
      assert.is_true(mg.autograd.gradcheck(function(x, w, b) return mg.F.linear(x, w, b) end,
        {mg.randn(3, 2, {dtype = "float64", requires_grad = true}), lin.weight, lin.bias}))
      lin(mg.tensor({{1, 2}, {3, 4}}, {dtype = "float64"})):sum():backward()
      H.near({{4, 6}}, lin.weight.grad)
      H.near({2}, lin.bias.grad)
    end)

    it("names both shapes when the input does not fit in_features", function()
      local lin = nn.Linear(3, 2)
      assert.error_matches(function() return lin(mg.ones(4, 5)) end,
        "bad argument #1 to 'forward' (input of shape {4,5} does not fit Linear(in_features=3, out_features=2): its last dim must be 3)",
        1, true)
      assert.error_matches(function() return lin(mg.tensor(1)) end,
        "bad argument #1 to 'forward' (input of shape {} does not fit", 1, true)
      assert.error_matches(function() return lin({1, 2, 3}) end,
        "bad argument #1 to 'forward' (tensor expected, got table)", 1, true)
    end)

    it("blames the caller's line for a bad input", function()
      local lin = nn.Linear(3, 2)
      local ok, err = pcall(function() local y = lin(mg.ones(5)); return y end)
      assert.is_false(ok)
      assert.truthy(err:find("nn_spec.lua:%d+: bad argument #1 to 'forward'"))
    end)

    it("rejects unknown options, naming the valid ones, and bad sizes", function()
      assert.has_error(function() return nn.Linear(2, 3, {bais = true}) end,
        "bad argument #3 to 'Linear' (unknown option 'bais' (valid: bias, dtype))")
      local ok, err = pcall(function() local m = nn.Linear(2, 3, {bais = true}); return m end)
      assert.is_false(ok)
      assert.truthy(err:find("nn_spec.lua:%d+: bad argument #3 to 'Linear'"))
      assert.error_matches(function() return nn.Linear(2, 3, true) end,
        "bad argument #3 to 'Linear' (options table expected, got boolean)", 1, true)
      assert.error_matches(function() return nn.Linear(2.5, 3) end,
        "bad argument #1 to 'Linear' (in_features must be a non-negative integer, got 2.5)", 1, true)
      assert.error_matches(function() return nn.Linear(2) end,
        "bad argument #2 to 'Linear' (out_features must be a non-negative integer, got nil)", 1, true)
    end)
  end)

  describe("the book's examples", function()
    it("chapter 5/6: nn.Linear(1, 1) with MSELoss and hand-written SGD reaches PyTorch's w and b", function()
      local model = nn.Linear(1, 1)
      mg.no_grad(function()
        model.weight:fill_(1.0)
        model.bias:fill_(0.0)
      end)
      local loss_fn = nn.MSELoss()
      local losses = {}
      for epoch = 1, 5000 do
        local loss = loss_fn(model(t_un), t_c)
        model:zero_grad()
        loss:backward()
        sgd_step(model:parameters(), 1e-2)
        if epoch <= 2 or epoch == 5000 then losses[#losses + 1] = loss:item() end
      end
      -- gen_nn.py: the same loop in PyTorch, losses at epochs 1, 2 and 5000
      H.near({80.36434173583984, 37.57490921020508, 2.9276468753814697}, losses, 1e-4)
      H.near({{5.367084503173828}}, model.weight, 1e-4) -- the book: w = 5.3671, b = -17.3012
      H.near({-17.301193237304688}, model.bias, 1e-4)
    end)

    it("chapter 6: Sequential(Linear(1, 13), Tanh(), Linear(13, 1)) trains as PyTorch from PyTorch's weights", function()
      local seq_model = nn.Sequential(nn.Linear(1, 13), nn.Tanh(), nn.Linear(13, 1))
      -- [param.shape for param in seq_model.parameters()]
      assert.same({{13, 1}, {13}, {1, 13}, {1}}, shapes(seq_model:parameters()))
      -- [n for n, _ in seq_model.named_parameters()]
      assert.same({"0.weight", "0.bias", "2.weight", "2.bias"}, names(seq_model))
      -- torch.manual_seed(42); seq = nn.Sequential(...); seq.state_dict()
      seq_model:load_state_dict{
        ["0.weight"] = mg.tensor{{0.7645385265350342}, {0.8300079107284546}, {-0.23427248001098633}, {0.9186112880706787}, {-0.21910357475280762}, {0.2017906904220581}, {-0.48685503005981445}, {0.587282657623291}, {0.8815429210662842}, {-0.7336281538009644}, {0.8691961765289307}, {0.18715929985046387}, {0.7388088703155518}},
        ["0.bias"] = mg.tensor{0.13543057441711426, 0.4821881055831909, -0.1411910057067871, 0.7708858251571655, 0.14780890941619873, -0.46683990955352783, 0.2548983097076416, -0.46073663234710693, -0.11727285385131836, -0.40615832805633545, 0.6633709669113159, -0.7893701791763306, -0.4610103368759155},
        ["2.weight"] = mg.tensor{{-0.07831665873527527, -0.16676297783851624, 0.026177167892456055, -0.27393290400505066, 0.2504774034023285, -0.23560009896755219, 0.21412186324596405, 0.04615636542439461, -0.09005682915449142, 0.17138847708702087, 0.04322522506117821, 0.22408871352672577, 0.030319826677441597}},
        ["2.bias"] = mg.tensor{-0.08746878057718277},
      }
      local loss_fn = nn.MSELoss()
      local first, last
      for epoch = 1, 200 do
        local loss = loss_fn(seq_model(t_un), t_c)
        seq_model:zero_grad()
        loss:backward()
        sgd_step(seq_model:parameters(), 1e-3)
        if epoch == 1 then first = loss:item() end
        last = loss:item()
      end
      H.near(215.57968139648438, first, 1e-5)
      H.near(45.018306732177734, last, 1e-4)
      -- seq[2].bias
      H.near({0.880217432975769}, seq_model[3].bias, 1e-4)
      -- seq(torch.tensor([[3.0], [6.0]]))
      H.near({{6.799567699432373}, {11.613799095153809}}, seq_model(mg.tensor{{3.0}, {6.0}}), 1e-4)
    end)

    it("chapter 6: Sequential from named modules (PyTorch's OrderedDict form)", function()
      local seq_model = nn.Sequential{
        {"hidden_linear", nn.Linear(1, 8)},
        {"hidden_activation", nn.Tanh()},
        {"output_linear", nn.Linear(8, 1)},
      }
      assert.same({"hidden_linear.weight", "hidden_linear.bias", "output_linear.weight", "output_linear.bias"},
        names(seq_model))
      assert.same({1}, seq_model.output_linear.bias.shape)
      assert.equal(seq_model.output_linear, seq_model[3])
      assert.equal(table.concat({
        "Sequential(",
        "  (hidden_linear): Linear(in_features=1, out_features=8, bias=True)",
        "  (hidden_activation): Tanh()",
        "  (output_linear): Linear(in_features=8, out_features=1, bias=True)",
        ")"}, "\n"), tostring(seq_model))
      assert.same({11, 1}, seq_model(t_un).shape)
    end)
  end)

  describe("Sequential", function()
    it("indexes its children from 1, and from the end with negative indices", function()
      local a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
      local model = nn.Sequential(a, b, c)
      assert.equal(3, #model)
      assert.equal(a, model[1])
      assert.equal(c, model[3])
      assert.equal(c, model[-1])
      assert.is_nil(model[4])
      local seen = {}
      for i, m in ipairs(model) do seen[i] = m end
      assert.same({a, b, c}, seen)
    end)

    it("runs its children in order", function()
      local model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
      local x = mg.randn(4, 2)
      local expected = model[3](model[2](model[1](x)))
      assert.is_true(mg.equal(expected, model(x)))
      assert.is_true(mg.equal(expected, model:forward(x)))
    end)

    it("takes a list, appends, and replaces children", function()
      local model = nn.Sequential{nn.Linear(2, 3), nn.Tanh()}
      assert.equal(2, #model)
      assert.equal(model, model:append(nn.Linear(3, 1)))
      assert.same({"0.weight", "0.bias", "2.weight", "2.bias"}, names(model))
      model[2] = nn.Sigmoid()
      assert.equal("Sigmoid()", tostring(model[2]))
      assert.error_matches(function() model[5] = nn.ReLU() end, "index 5 out of range for 3 modules", 1, true)
      assert.error_matches(function() return nn.Sequential(nn.ReLU(), 3) end,
        "bad argument #2 to 'Sequential' (Module expected, got number)", 1, true)
    end)
  end)

  describe("Module", function()
    local Net = nn.Module:extend("Net")
    function Net:init()
      self.fc = nn.Linear(3, 2)
      self.scale = mg.ones(2, {requires_grad = true})
      self.head = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
      self.note = "not registered"
      self.frozen = mg.zeros(2) -- no grad: a plain field
    end
    function Net:forward(x) return self.head(self.fc(x) * self.scale) end

    it("lists parameters as PyTorch: own ones first, then each child's, in registration order", function()
      local net = Net()
      -- [n for n, _ in net.named_parameters()]
      assert.same({"scale", "fc.weight", "fc.bias", "head.0.weight", "head.0.bias"}, names(net))
      local params = net:parameters()
      assert.equal(5, #params)
      assert.equal(net.scale, params[1])
      assert.equal(net.fc.weight, params[2])
      assert.equal(net.head[1].bias, params[5])
      assert.equal("not registered", net.note)
      assert.same({2}, net.frozen.shape)
      assert.same({5, 2}, {#net:modules(), #net:children()}) -- net, fc, head, head[1], head[2]; fc, head
    end)

    it("named_parameters() is an iterator of name, tensor", function()
      local net = Net()
      local got = {}
      for name, p in net:named_parameters() do got[name] = p end
      assert.equal(net.fc.weight, got["fc.weight"])
      assert.equal(net.head[1].weight, got["head.0.weight"])
    end)

    it("lists a shared parameter once", function()
      local Tied = nn.Module:extend("Tied")
      function Tied:init()
        self.a = nn.Linear(2, 2)
        self.b = nn.Linear(2, 2)
        self.b.weight = self.a.weight
      end
      local tied = Tied()
      assert.same({"a.weight", "a.bias", "b.bias"}, names(tied))
      -- state_dict keeps both names, as PyTorch's
      assert.same({"a.bias", "a.weight", "b.bias", "b.weight"}, sorted_keys(tied:state_dict()))
    end)

    it("walks children and modules, applies a function, and freezes with requires_grad_", function()
      local net = Net()
      local child_names = {}
      for name, m in net:named_children() do
        child_names[#child_names + 1] = name
        assert.is_true(nn.is_module(m))
      end
      assert.same({"fc", "head"}, child_names)
      local module_names = {}
      for name in net:named_modules() do module_names[#module_names + 1] = name end
      -- [n for n, _ in net.named_modules()]
      assert.same({"", "fc", "head", "head.0", "head.1"}, module_names)
      local visited = {}
      assert.equal(net, net:apply(function(m) visited[#visited + 1] = m._name end))
      assert.same({"Linear", "Linear", "ReLU", "Sequential", "Net"}, visited) -- children first, as PyTorch
      assert.equal(net, net:requires_grad_(false))
      assert.is_false(net.fc.weight.requires_grad)
      assert.equal(5, #net:parameters()) -- frozen parameters are still parameters
      net:requires_grad_()
      assert.is_true(net.head[1].bias.requires_grad)
      assert.is_false(nn.is_module(mg.ones(1)))
      assert.is_false(nn.is_module({}))
      local holder = nn.Module()
      holder:add_module("inner", nn.ReLU())
      holder:register_module("lin", nn.Linear(1, 1))
      assert.same({"lin.weight", "lin.bias"}, names(holder))
      assert.equal("Linear", nn.Linear.new(2, 3)._name)
    end)

    it("calls forward through __call, and init with the constructor's arguments", function()
      local Scale = nn.Module:extend("Scale")
      function Scale:init(k) self.k = mg.tensor(k, {requires_grad = true}) end
      function Scale:forward(x) return x * self.k end
      local s = Scale(3)
      H.near({3, 6}, s(mg.tensor{1, 2}))
      H.near({3, 6}, Scale.new(3)(mg.tensor{1, 2}))
      assert.same({"k"}, names(s))
    end)

    it("extends a built-in layer", function()
      local Doubled = nn.Linear:extend("Doubled")
      function Doubled:forward(x) return 2 * nn.Linear.forward(self, x) end
      local d = Doubled(2, 1)
      assert.same({"weight", "bias"}, names(d))
      local plain = nn.Linear(2, 1)
      plain:load_state_dict(d:state_dict())
      local x = mg.randn(3, 2)
      assert.is_true(mg.allclose(2 * plain(x), d(x)))
      assert.equal("Doubled(in_features=2, out_features=1, bias=True)", tostring(d))
    end)

    it("says so when a subclass has no forward", function()
      local Empty = nn.Module:extend("Empty")
      assert.error_matches(function() return Empty()(mg.ones(1)) end,
        "Module 'Empty' is missing the required 'forward' function", 1, true)
    end)

    it("removes a parameter or child assigned nil, and refuses a non-tensor as a parameter", function()
      local net = Net()
      net.scale = nil
      net.head = nil
      assert.same({"fc.weight", "fc.bias"}, names(net))
      assert.error_matches(function() net.fc.weight = 3 end,
        "cannot assign a number as parameter 'weight' (a tensor or nil expected)", 1, true)
      assert.error_matches(function() net.fc = "x" end,
        "cannot assign a string as child module 'fc' (a Module or nil expected)", 1, true)
    end)

    it("registers tensors without grad explicitly with register_parameter and register_buffer", function()
      local M = nn.Module:extend("M")
      function M:init()
        self:register_parameter("w", mg.zeros(2))
        self:register_buffer("running", mg.ones(2))
      end
      local m = M()
      assert.same({"w"}, names(m))
      assert.same({"running", "w"}, sorted_keys(m:state_dict()))
    end)

    describe("zero_grad()", function()
      it("zeroes gradients in place, or drops them with set_to_none", function()
        local model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1))
        model(mg.ones(3, 2)):sum():backward()
        local g = model[1].weight.grad
        assert.is_true(g:abs():sum():item() > 0)
        model:zero_grad()
        assert.equal(g, model[1].weight.grad)
        assert.same({{0, 0}, {0, 0}}, g:totable())
        model:zero_grad{set_to_none = true}
        assert.is_nil(model[1].weight.grad)
        assert.is_nil(model[3].bias.grad)
        assert.error_matches(function() model:zero_grad{set_to_None = true} end,
          "bad argument #1 to 'zero_grad' (unknown option 'set_to_None' (valid: set_to_none))", 1, true)
      end)
    end)

    describe("train() and eval()", function()
      it("set .training on every module, recursively, and return self", function()
        local model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5), nn.ReLU()))
        assert.is_true(model.training and model[2][1].training)
        assert.equal(model, model:eval())
        assert.is_false(model.training)
        assert.is_false(model[1].training)
        assert.is_false(model[2].training)
        assert.is_false(model[2][1].training)
        assert.equal(model, model:train())
        assert.is_true(model[2][1].training)
        model:train(false)
        assert.is_false(model[2][2].training)
      end)

      it("switch Dropout between dropping and the identity", function()
        local drop = nn.Dropout(0.5)
        local x = mg.ones(1000)
        local y = drop(x)
        local zeros = y:eq(0):sum():item()
        assert.is_true(zeros > 400 and zeros < 600)
        -- the kept elements are scaled by 1 / (1 - p)
        H.near(2 * (1000 - zeros), y:sum():item())
        drop:eval()
        assert.is_true(mg.equal(x, drop(x)))
        assert.equal("Dropout(p=0.5, inplace=False)", tostring(drop))
        assert.equal("Dropout(p=0.2, inplace=False)", tostring(nn.Dropout{p = 0.2}))
        assert.error_matches(function() return nn.Dropout(1.5) end,
          "bad argument #1 to 'Dropout' (dropout probability has to be between 0 and 1, but got 1.5)", 1, true)
      end)
    end)

    describe("state_dict()", function()
      it("has PyTorch's keys", function()
        local model = nn.Sequential(nn.Linear(1, 13), nn.Tanh(), nn.Linear(13, 1))
        -- list(seq.state_dict().keys()) == ['0.weight', '0.bias', '2.weight', '2.bias'] (a Lua table: sorted here)
        assert.same({"0.bias", "0.weight", "2.bias", "2.weight"}, sorted_keys(model:state_dict()))
        -- list(net.state_dict().keys()) == ['scale', 'fc.weight', 'fc.bias', 'head.0.weight', 'head.0.bias']
        assert.same({"fc.bias", "fc.weight", "head.0.bias", "head.0.weight", "scale"}, sorted_keys(Net():state_dict()))
      end)

      it("holds detached views that share storage with the parameters", function()
        local lin = nn.Linear(2, 2)
        local sd = lin:state_dict()
        assert.is_false(sd.weight.requires_grad)
        assert.is_true(mg.equal(lin.weight, sd.weight))
        sd.weight:fill_(3)
        assert.same({{3, 3}, {3, 3}}, lin.weight:totable())
      end)
    end)

    describe("load_state_dict()", function()
      it("round-trips into another model, copying in place", function()
        local a = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        local b = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        local w = b[1].weight
        local missing, unexpected = b:load_state_dict(a:state_dict())
        assert.same({}, missing)
        assert.same({}, unexpected)
        assert.equal(w, b[1].weight) -- the same tensor, written in place
        assert.is_true(w.requires_grad and w.is_leaf)
        local x = mg.randn(5, 2)
        assert.is_true(mg.equal(a(x), b(x)))
        -- independent afterwards
        mg.no_grad(function() a[1].weight:fill_(0) end)
        assert.is_false(mg.equal(a[1].weight, b[1].weight))
      end)

      it("names missing and unexpected keys, and changes nothing then", function()
        local model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        local before = model[1].weight:clone()
        local sd = model:state_dict()
        sd["2.bias"] = nil
        sd["1.weight"] = mg.zeros(3)
        sd["0.weight"] = mg.zeros(3, 2)
        assert.has_error(function() model:load_state_dict(sd) end,
          "error(s) in loading state_dict for Sequential: missing key(s) in state_dict: \"2.bias\"; "
            .. "unexpected key(s) in state_dict: \"1.weight\"")
        local ok, err = pcall(function() model:load_state_dict(sd) end)
        assert.is_false(ok)
        assert.truthy(err:find("nn_spec.lua:%d+: error%(s%) in loading state_dict"))
        assert.is_true(mg.equal(before, model[1].weight))
        -- strict = false loads what matches and reports the rest
        local missing, unexpected = model:load_state_dict(sd, false)
        assert.same({"2.bias"}, missing)
        assert.same({"1.weight"}, unexpected)
        assert.same({{0, 0}, {0, 0}, {0, 0}}, model[1].weight:totable())
      end)

      it("names both shapes on a size mismatch, even when not strict", function()
        local lin = nn.Linear(2, 3)
        local sd = lin:state_dict()
        sd.weight = mg.zeros(2, 3)
        local detail = "error(s) in loading state_dict for Linear: size mismatch for weight: "
          .. "copying a tensor of shape {2,3}, the shape in the current model is {3,2}"
        assert.error_matches(function() lin:load_state_dict(sd) end, detail, 1, true)
        assert.error_matches(function() lin:load_state_dict(sd, false) end, detail, 1, true)
        assert.error_matches(function() lin:load_state_dict(lin:state_dict(), "no") end,
          "bad argument #2 to 'load_state_dict' (boolean strict expected, got string)", 1, true)
        assert.error_matches(function() lin:load_state_dict(mg.zeros(2)) end,
          "bad argument #1 to 'load_state_dict' (table of tensors expected, got tensor)", 1, true)
      end)
    end)

    describe("tostring()", function()
      it("prints the book's Sequential, numbering children from 1", function()
        local seq_model = nn.Sequential(nn.Linear(1, 13), nn.Tanh(), nn.Linear(13, 1))
        assert.equal("Sequential(\n  (1): Linear(in_features=1, out_features=13, bias=True)\n  (2): Tanh()\n"
          .. "  (3): Linear(in_features=13, out_features=1, bias=True)\n)", tostring(seq_model))
      end)

      it("prints nested modules indented, as PyTorch's print(net)", function()
        -- print(net), with Sequential's children numbered from 1
        assert.equal(table.concat({
          "Net(",
          "  (fc): Linear(in_features=3, out_features=2, bias=True)",
          "  (head): Sequential(",
          "    (1): Linear(in_features=2, out_features=2, bias=True)",
          "    (2): ReLU()",
          "  )",
          ")"}, "\n"), tostring(Net()))
        assert.equal("ReLU()", tostring(nn.ReLU()))
        assert.equal("Sigmoid()", tostring(nn.Sigmoid()))
        assert.equal("MSELoss()", tostring(nn.MSELoss()))
        assert.equal("Sequential()", tostring(nn.Sequential()))
      end)
    end)
  end)

  describe("activations", function()
    it("apply relu, tanh and sigmoid", function()
      local x = mg.tensor{-1, 0, 2}
      H.near({0, 0, 2}, nn.ReLU()(x))
      -- torch.tanh(torch.tensor([-1., 0., 2.])), torch.sigmoid(...)
      H.near({-0.7615941559557649, 0, 0.9640275800758169}, nn.Tanh()(x))
      H.near({0.2689414213699951, 0.5, 0.8807970779778823}, nn.Sigmoid()(x))
      assert.error_matches(function() return nn.ReLU{inplace = true} end,
        "bad argument #1 to 'ReLU' (unknown option 'inplace' (it takes no options))", 1, true)
    end)
  end)

  describe("losses", function()
    local x = mg.tensor{{0.2, -1.0, 3.0}, {1.5, 0.3, -0.7}}
    local y = mg.tensor{{0.0, -2.0, 1.0}, {1.0, 1.0, 1.0}}
    local classes = mg.tensor({3, 1}, {dtype = "int64"}) -- PyTorch's [2, 0]
    local probs = mg.tensor{{0.0, 1.0, 1.0}, {1.0, 0.0, 0.5}}

    it("reduce by the mean by default, as PyTorch", function()
      -- nn.MSELoss()(x, y), nn.L1Loss()(x, y), nn.CrossEntropyLoss()(x, torch.tensor([2, 0])), ...
      H.near(1.4450000524520874, nn.MSELoss()(x, y):item())
      H.near(1.0166666507720947, nn.L1Loss()(x, y):item())
      H.near(0.21057818830013275, nn.CrossEntropyLoss()(x, classes):item())
      H.near(0.6614903807640076, nn.BCEWithLogitsLoss()(x, probs):item())
    end)

    it("take {reduction = 'sum'}", function()
      H.near(8.670000076293945, nn.MSELoss{reduction = "sum"}(x, y):item())
      H.near(6.099999904632568, nn.L1Loss{reduction = "sum"}(x, y):item())
      H.near(0.4211563766002655, nn.CrossEntropyLoss{reduction = "sum"}(x, classes):item())
      H.near(3.968942403793335, nn.BCEWithLogitsLoss{reduction = "sum"}(x, probs):item())
    end)

    it("take {reduction = 'none'}", function()
      H.near({{0.04000000283122063, 1.0, 4.0}, {0.25, 0.4899999797344208, 2.890000104904175}},
        nn.MSELoss{reduction = "none"}(x, y))
      H.near({{0.2, 1.0, 2.0}, {0.5, 0.7, 1.7}}, nn.L1Loss{reduction = "none"}(x, y))
      H.near({0.07615112513303757, 0.34500524401664734}, nn.CrossEntropyLoss{reduction = "none"}(x, classes))
      H.near({{0.7981389164924622, 1.31326162815094, 0.04858732968568802},
        {0.2014133334159851, 0.8543552756309509, 0.7531861066818237}}, nn.BCEWithLogitsLoss{reduction = "none"}(x, probs))
    end)

    it("have no parameters, and reject bad options", function()
      assert.same({}, nn.CrossEntropyLoss():parameters())
      assert.error_matches(function() return nn.MSELoss{reduce = "sum"} end,
        "bad argument #1 to 'MSELoss' (unknown option 'reduce' (valid: reduction))", 1, true)
      assert.error_matches(function() return nn.L1Loss{reduction = "avg"} end,
        "bad argument #1 to 'L1Loss' (unknown reduction 'avg', expected 'mean', 'sum' or 'none')", 1, true)
    end)
  end)

  describe("utils.clip_grad_norm_()", function()
    -- grads {3, -4, 1} and {{0.5, 2}, {-1, 6}}, and a parameter without a gradient
    local function setup()
      local p1 = mg.zeros(3, {requires_grad = true})
      local p2 = mg.zeros(2, 2, {requires_grad = true})
      local p3 = mg.zeros(2, {requires_grad = true})
      local loss = (p1 * mg.tensor{3.0, -4.0, 1.0}):sum() + (p2 * mg.tensor{{0.5, 2.0}, {-1.0, 6.0}}):sum()
      loss:backward()
      return {p1, p2, p3}
    end

    it("scales the gradients to max_norm and returns the total 2-norm, as PyTorch", function()
      local params = setup()
      -- nn.utils.clip_grad_norm_([p1, p2, p3], 1.0)
      local total = nn.utils.clip_grad_norm_(params, 1.0)
      assert.equal(0, total:dim())
      H.near(8.200610160827637, total:item())
      H.near({0.36582639813423157, -0.4877685308456421, 0.12194213271141052}, params[1].grad)
      H.near({{0.06097106635570526, 0.24388426542282104}, {-0.12194213271141052, 0.7316527962684631}}, params[2].grad)
      assert.is_nil(params[3].grad)
    end)

    it("takes norm_type 1 and inf", function()
      local params = setup()
      -- nn.utils.clip_grad_norm_([p1, p2, p3], 2.5, 1)
      H.near(17.5, nn.utils.clip_grad_norm_(params, 2.5, 1):item())
      H.near({0.42857134342193604, -0.5714284777641296, 0.1428571194410324}, params[1].grad)
      params = setup()
      -- nn.utils.clip_grad_norm_([p1, p2, p3], 5.0, float("inf"))
      H.near(6.0, nn.utils.clip_grad_norm_(params, 5.0, math.huge):item())
      H.near({{0.41666659712791443, 1.6666663885116577}, {-0.8333331942558289, 4.999999046325684}}, params[2].grad)
      params = setup()
      H.near(6.0, nn.utils.clip_grad_norm_(params, 5.0, "inf"):item())
    end)

    it("leaves gradients below max_norm as they are", function()
      local params = setup()
      H.near(8.200610160827637, nn.utils.clip_grad_norm_(params, 100.0):item())
      H.near({3, -4, 1}, params[1].grad)
      H.near({{0.5, 2}, {-1, 6}}, params[2].grad)
    end)

    it("takes a module or one tensor, and returns 0 without gradients", function()
      local lin = nn.Linear(2, 1)
      assert.equal(0, nn.utils.clip_grad_norm_(lin, 1.0):item())
      lin(mg.tensor{3.0, 4.0}):backward()
      -- grads: weight {3, 4}, bias {1}: total sqrt(26)
      H.near(math.sqrt(26), nn.utils.clip_grad_norm_(lin, 1.0):item())
      H.near(1.0, math.sqrt((lin.weight.grad ^ 2):sum():item() + (lin.bias.grad ^ 2):sum():item()), 1e-5)
      local p = mg.zeros(2, {requires_grad = true})
      mg.sum(p * mg.tensor{3, 4}):backward()
      H.near(5, nn.utils.clip_grad_norm_(p, 1):item())
    end)

    it("raises on a non-finite norm when asked, and on bad arguments", function()
      local p = mg.zeros(2, {requires_grad = true})
      mg.sum(p * mg.tensor{math.huge, 1}):backward()
      assert.error_matches(function() nn.utils.clip_grad_norm_({p}, 1.0, {error_if_nonfinite = true}) end,
        "'clip_grad_norm_': the total norm of order 2 of the gradients is non-finite (inf)", 1, true)
      assert.error_matches(function() nn.utils.clip_grad_norm_({p}, "1") end,
        "bad argument #2 to 'clip_grad_norm_' (number expected, got string)", 1, true)
      assert.error_matches(function() nn.utils.clip_grad_norm_({p, 3}, 1) end,
        "bad argument #1 to 'clip_grad_norm_' (element 2 is a number, not a tensor)", 1, true)
    end)
  end)

  describe("utils.clip_grad_value_()", function()
    it("clamps every gradient into [-v, v]", function()
      local p = mg.zeros(3, {requires_grad = true})
      mg.sum(p * mg.tensor{3.0, -0.5, -4.0}):backward()
      nn.utils.clip_grad_value_({p}, 1.0)
      assert.same({1.0, -0.5, -1.0}, p.grad:totable())
    end)
  end)
end)
