-- mg.nn Flatten, Unflatten, Identity, ModuleList, ModuleDict: shapes, indexing, PyTorch's
-- state_dict keys (weights move to and from PyTorch), printing; non-strict load_state_dict and
-- module:double() / float() over buffers; each error's message.
local mg = require "moongrad"
local H = require "helper"
local nn = mg.nn

describe("nn.Flatten / nn.Unflatten / nn.Identity", function()
  local x = mg.arange(0, 120):view(2, 3, 4, 5)

  it("Flatten() flattens dims 2..-1 (PyTorch's start_dim=1), other ranges 1-based", function()
    assert.same({ 2, 60 }, nn.Flatten()(x).shape)
    assert.same({ 120 }, nn.Flatten(1)(x).shape)
    assert.same({ 2, 12, 5 }, nn.Flatten(2, 3)(x).shape)
    assert.same({ 2, 3, 20 }, nn.Flatten(-2)(x).shape)
    assert.is_true(mg.equal(nn.Flatten()(x), x:reshape(2, 60)))
    assert.equal("Flatten(start_dim=2, end_dim=-1)", tostring(nn.Flatten()))
    -- a non-contiguous input
    local t = x:transpose(1, 4)
    assert.is_true(mg.equal(nn.Flatten()(t), t:contiguous():view(5, 24)))
  end)

  it("Unflatten(dim, sizes) splits a 1-based dim, -1 inferred", function()
    local y = mg.arange(0, 60):view(3, 20)
    assert.same({ 3, 4, 5 }, nn.Unflatten(2, { 4, 5 })(y).shape)
    assert.same({ 3, 2, 10 }, nn.Unflatten(-1, { 2, -1 })(y).shape)
    assert.same({ 1, 3, 20 }, nn.Unflatten(1, { 1, 3 })(y).shape)
    assert.is_true(mg.equal(nn.Unflatten(2, { 4, 5 })(y), y:view(3, 4, 5)))
    assert.equal("Unflatten(dim=2, unflattened_size=(4, 5))", tostring(nn.Unflatten(2, { 4, 5 })))
    -- Flatten then Unflatten is the identity
    assert.is_true(mg.equal(nn.Unflatten(2, { 3, 4, 5 })(nn.Flatten()(x)), x))
  end)

  it("Identity returns its input and ignores its arguments", function()
    local id = nn.Identity(54, { unused = 1 })
    assert.equal(x, id(x))
    assert.equal("Identity()", tostring(id))
    assert.same({}, id:parameters())
  end)

  it("pass gradients through", function()
    local w = mg.randn(2, 6, { requires_grad = true })
    nn.Flatten()(nn.Unflatten(2, { 2, 3 })(w) * 2):sum():backward()
    assert.is_true(mg.equal(w.grad, mg.full({ 2, 6 }, 2)))
  end)

  it("report bad arguments", function()
    H.errors(function() nn.Flatten(0) end,
      "bad argument #1 to 'Flatten' (start_dim must not be 0 (dims count from 1; -1 is the last))")
    H.errors(function() nn.Flatten(2, 1.5) end, "bad argument #2 to 'Flatten' (end_dim must be an integer, got float)")
    H.errors(function() nn.Unflatten(2, 4) end,
      "bad argument #2 to 'Unflatten' (a non-empty list of sizes expected, got number)")
    H.errors(function() nn.Unflatten(2, { -1, -1 }) end,
      "bad argument #2 to 'Unflatten' (only one size can be -1, got {-1,-1})")
    H.errors(function() nn.Unflatten(2, { 2, -3 }) end,
      "bad argument #2 to 'Unflatten' (size 2 must be a non-negative integer or -1, got -3)")
    H.errors(function() nn.Unflatten(2, { 3, 4 })(mg.zeros(3, 10)) end,
      "bad argument #2 to 'Unflatten' (sizes {3,4} don't multiply up to the size of dim 2 (10) of the input {3,10})")
    H.errors(function() nn.Unflatten(2, { 3, -1 })(mg.zeros(3, 10)) end,
      "bad argument #2 to 'Unflatten' (sizes {3,-1} don't multiply up to the size of dim 2 (10) of the input {3,10})")
    H.errors(function() nn.Unflatten(3, { 2, 5 })(mg.zeros(3, 10)) end,
      "bad argument #1 to 'Unflatten' (dim 3 out of range for an input of shape {3,10})")
    local ok, err = pcall(function() local _ = nn.Flatten(0) end)
    assert.is_false(ok)
    assert.truthy(err:match("^spec/nn_containers_spec%.lua:%d+: bad argument #1 to 'Flatten'"), err)
  end)
end)

describe("nn.ModuleList", function()
  it("is indexed from 1, has #, ipairs, and PyTorch's state_dict keys", function()
    local a, b = nn.Linear(2, 3), nn.Linear(3, 1)
    local ml = nn.ModuleList{ a, nn.ReLU(), b }
    assert.equal(3, #ml)
    assert.equal(a, ml[1])
    assert.equal(b, ml[-1])
    assert.is_nil(ml[4])
    local seen = {}
    for i, m in ipairs(ml) do seen[i] = m end
    assert.same({ a, ml[2], b }, seen)
    local keys = {}
    for k in pairs(ml:state_dict()) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "0.bias", "0.weight", "2.bias", "2.weight" }, keys)
    local names = {}
    for n in ml:named_parameters() do names[#names + 1] = n end
    assert.same({ "0.weight", "0.bias", "2.weight", "2.bias" }, names)
    assert.equal(4, #ml:parameters())
    assert.equal("ModuleList(\n  (1): Linear(in_features=2, out_features=3, bias=True)\n  (2): ReLU()\n"
      .. "  (3): Linear(in_features=3, out_features=1, bias=True)\n)", tostring(ml))
  end)

  it("append, extend, insert and pop renumber as PyTorch's", function()
    local l1, l2, l3, l4 = nn.Linear(1, 1), nn.Linear(1, 2), nn.Linear(1, 3), nn.Linear(1, 4)
    local ml = nn.ModuleList()
    assert.equal(0, #ml)
    assert.equal(ml, ml:append(l1))
    assert.equal(ml, ml:extend{ l3 })
    ml:insert(2, l2) -- PyTorch's insert(1, m)
    assert.same({ l1, l2, l3 }, { ml[1], ml[2], ml[3] })
    ml:extend(nn.ModuleList{ l4 })
    assert.equal(4, #ml)
    assert.equal(4, ml:state_dict()["3.weight"]:size(1))
    assert.equal(2, ml:state_dict()["1.weight"]:size(1))
    assert.equal(l2, ml:pop(2))
    assert.equal(l4, ml:pop())
    assert.same({ l1, l3 }, { ml[1], ml[2] })
    assert.equal(3, ml:state_dict()["1.weight"]:size(1))
    ml:insert(-1, l4) -- before the last, as PyTorch's insert(-1, m)
    assert.same({ l1, l4, l3 }, { ml[1], ml[2], ml[3] })
    ml[2] = l2
    assert.equal(l2, ml[2])
  end)

  it("registers its modules as children of a parent module (weights move to PyTorch's keys)", function()
    local Net = nn.Module:extend("Net")
    function Net:init()
      self.layers = nn.ModuleList{ nn.Linear(2, 4), nn.Linear(4, 1) }
    end
    function Net:forward(x)
      for _, l in ipairs(self.layers) do x = l(x) end
      return x
    end
    mg.manual_seed(0)
    local net = Net()
    local sd = net:state_dict()
    assert.same({ 4, 2 }, sd["layers.0.weight"].shape)
    assert.same({ 1 }, sd["layers.1.bias"].shape)
    -- a state dict written with PyTorch's names loads back
    local other = Net()
    other:load_state_dict(sd)
    local x = mg.randn(3, 2)
    assert.is_true(mg.equal(net(x), other(x)))
    H.errors(function() nn.ModuleList{ nn.Linear(1, 1) }(x) end,
      "Module 'ModuleList' is missing the required 'forward' function")
  end)

  it("reports bad arguments", function()
    H.errors(function() nn.ModuleList(3) end, "bad argument #1 to 'ModuleList' (a list of modules expected, got number)")
    H.errors(function() nn.ModuleList{ nn.ReLU(), 3 } end,
      "bad argument #1 to 'ModuleList' (element 2 is a number, not a Module)")
    local ml = nn.ModuleList{ nn.ReLU() }
    H.errors(function() ml:append(mg.zeros(1)) end, "bad argument #1 to 'append' (Module expected, got tensor)")
    H.errors(function() ml:extend{ nn.ReLU(), "x" } end, "bad argument #1 to 'extend' (element 2 is a string, not a Module)")
    H.errors(function() ml:insert(1.5, nn.ReLU()) end, "bad argument #1 to 'insert' (integer index expected, got float)")
    H.errors(function() ml:pop(3) end, "bad argument #1 to 'pop' (index 3 out of range for 1 modules)")
    H.errors(function() ml[3] = nn.ReLU() end, "bad argument #1 to 'ModuleList' (index 3 out of range for 1 modules)")
    H.errors(function() ml[1] = 5 end, "bad argument #2 to 'ModuleList' (Module expected, got number)")
    local ok, err = pcall(function() ml:append(1) end)
    assert.is_false(ok)
    assert.truthy(err:match("^spec/nn_containers_spec%.lua:%d+: bad argument #1 to 'append'"), err)
  end)
end)

describe("nn.ModuleDict", function()
  it("holds modules by name, sorted (a map) or in the given order (pairs), with PyTorch's keys", function()
    local enc, dec = nn.Linear(3, 2), nn.Linear(2, 3)
    local md = nn.ModuleDict{ enc = enc, dec = dec }
    assert.equal(enc, md.enc)
    assert.equal(dec, md["dec"])
    assert.equal(2, #md)
    assert.same({ "dec", "enc" }, md:keys())
    assert.same({ dec, enc }, md:values())
    local sd = md:state_dict()
    assert.same({ 2 }, sd["enc.bias"].shape)
    assert.same({ 3, 2 }, sd["dec.weight"].shape)
    local ordered = nn.ModuleDict{ { "enc", enc }, { "dec", dec } }
    assert.same({ "enc", "dec" }, ordered:keys())
    local items = {}
    for k, m in ordered:items() do items[#items + 1] = { k, m } end
    assert.same({ { "enc", enc }, { "dec", dec } }, items)
    assert.equal("ModuleDict(\n  (enc): Linear(in_features=3, out_features=2, bias=True)\n"
      .. "  (dec): Linear(in_features=2, out_features=3, bias=True)\n)", tostring(ordered))
  end)

  it("update, contains, pop, assignment and clear", function()
    local md = nn.ModuleDict()
    md:update{ act = nn.ReLU() }
    md.fc = nn.Linear(1, 1)
    assert.is_true(md:contains("fc"))
    assert.same({ "act", "fc" }, md:keys())
    local fc = md:pop("fc")
    assert.equal("Linear", fc._name)
    assert.is_false(md:contains("fc"))
    md:clear()
    assert.equal(0, #md)
    H.errors(function() md:pop("zz") end, "bad argument #1 to 'pop' (no module named 'zz')")
    H.errors(function() nn.ModuleDict{ a = 1 } end, "bad argument #1 to 'ModuleDict' ('a' is a number, not a Module)")
    H.errors(function() nn.ModuleDict(nn.ReLU()) end,
      "bad argument #1 to 'ModuleDict' (a table of name = Module expected, got Module)")
    H.errors(function() md:update{ { "x" } } end, "bad argument #1 to 'update' (element 1 must be a {name, Module} pair)")
  end)
end)

describe("module:load_state_dict(sd, false) and module:double()", function()
  it("non-strict loading copies the keys that match and returns the missing and unexpected ones", function()
    local model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    local w = mg.full({ 2, 2 }, 0.5)
    local missing, unexpected = model:load_state_dict({ ["0.weight"] = w, ["9.bias"] = mg.zeros(1) }, false)
    assert.same({ "0.bias", "2.weight", "2.bias" }, missing)
    assert.same({ "9.bias" }, unexpected)
    assert.is_true(mg.equal(model[1].weight, w))
    H.errors(function() model:load_state_dict({ ["0.weight"] = w }) end,
      "missing key(s) in state_dict: \"0.bias\", \"2.weight\", \"2.bias\"")
  end)

  it("double() / float() convert floating parameters and buffers; integer buffers stay", function()
    local m = nn.Linear(2, 2)
    m:register_buffer("running_mean", mg.zeros(2))
    m:register_buffer("num_batches_tracked", mg.zeros({}, { dtype = "int64" }))
    m:double()
    assert.equal("float64", m.weight.dtype)
    assert.equal("float64", m.running_mean.dtype)
    assert.equal("int64", m.num_batches_tracked.dtype)
    assert.is_true(m.weight.requires_grad)
    m:float()
    assert.equal("float32", m.running_mean.dtype)
    H.errors(function() m:to("int64") end, "bad argument #1 to 'to' (a module converts to float32 or float64, got 'int64')")
  end)
end)
