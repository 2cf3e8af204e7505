-- mg.F's layers of chapters 7-8 (src/ops/conv.c, norm.c, src/bind/conv.c): forward values and
-- gradients against real PyTorch 1.13, batch norm's running statistics over several steps, every
-- error message, and the same bits for any thread count.
-- The numbers live in spec/fixtures/conv_cases.lua, written by spec/fixtures/gen_conv.py (which
-- holds each case's Python twin):  /usr/bin/python3 spec/fixtures/gen_conv.py
local mg = require "moongrad"
local H = require "helper"
local F = mg.F

local fixture = dofile("spec/fixtures/conv_cases.lua")
local TOL = { float64 = 1e-10, float32 = 1e-5 }

local function run(case)
  local fn = assert(load("return " .. case.expr, "=" .. case.name, "t", { math = math }))()
  local inputs = {}
  for i, spec in ipairs(case.inputs) do
    inputs[i] = mg.tensor(spec.data, { dtype = spec.dtype, requires_grad = spec.requires_grad or false })
    assert.same(spec.shape, inputs[i].shape)
  end
  local out = fn(mg, table.unpack(inputs, 1, #case.inputs))
  assert.equal(case.dtype, out.dtype)
  assert.same(case.shape, out.shape)
  local tol = TOL[case.dtype]
  H.near(case.out, out, tol)
  local loss = (out * mg.tensor(case.w, { dtype = case.dtype })):sum()
  loss:backward()
  for i, spec in ipairs(case.inputs) do
    if spec.requires_grad then
      assert.same(spec.shape, inputs[i].grad.shape)
      H.near(spec.grad, inputs[i].grad, tol)
    end
  end
end

describe("mg.F layers against PyTorch", function()
  for _, case in ipairs(fixture.cases) do
    it(case.name .. " (" .. case.dtype .. ")", function() run(case) end)
  end
end)

describe("batch_norm running statistics", function()
  it("follow PyTorch over three training steps (unbiased variance), then the eval output", function()
    local s = fixture.bn_steps
    local opts64 = { dtype = "float64" }
    local rm, rv = mg.zeros({ 3 }, opts64), mg.ones({ 3 }, opts64)
    local w, b = mg.tensor(s.weight, opts64), mg.tensor(s.bias, opts64)
    for i, x in ipairs(s.xs) do
      local y = F.batch_norm(mg.tensor(x, opts64), rm, rv, { weight = w, bias = b, training = true, momentum = 0.2 })
      H.near(s.train_out[i], y, 1e-10)
    end
    H.near(s.running_mean, rm, 1e-12)
    H.near(s.running_var, rv, 1e-12)
    H.near(s.eval_out, F.batch_norm(mg.tensor(s.x_eval, opts64), rm, rv, { weight = w, bias = b }), 1e-10)
  end)

  it("leaves the running statistics alone in eval mode and bumps their version when training", function()
    local rm, rv = mg.tensor({ 1, 2 }), mg.tensor({ 3, 4 })
    local x = mg.tensor({ { 1, 2 }, { 3, 5 } })
    local y = F.batch_norm(x, rm, rv)
    H.near({ 1, 2 }, rm:totable())
    -- (x - rm) / sqrt(rv + eps)
    H.near({ { 0, 0 }, { 2 / math.sqrt(3 + 1e-5), 3 / math.sqrt(4 + 1e-5) } }, y)
    F.batch_norm(x, rm, rv, { training = true, momentum = 0.5 })
    -- mean {2, 3.5}, unbiased var {2, 4.5}
    H.near({ 1.5, 2.75 }, rm)
    H.near({ 2.5, 4.25 }, rv)
  end)
end)

describe("max_pool2d indices", function()
  it("send the gradient to the first maximum of a window, as PyTorch", function()
    local x = mg.tensor({ { { { 1, 3, 3 }, { 3, 0, 1 } } } }, { requires_grad = true })
    F.max_pool2d(x, 2, { stride = 1 }):sum():backward()
    -- windows {1,3,3,0} -> the 3 at (1,2); {3,3,0,1} -> the 3 at (1,2) as well
    H.near({ { { { 0, 2, 0 }, { 0, 0, 0 } } } }, x.grad)
  end)

  it("propagate NaN", function()
    local x = mg.tensor({ { { 1, 0 / 0 }, { 2, 3 } } })
    local y = F.max_pool2d(x, 2)
    assert.is_true(y:item() ~= y:item())
  end)
end)

describe("max_pool2d 2x2 stride 2 (the blocked fast path)", function()
  -- PyTorch's rule, tap by tap in row-major order: a later tap wins when larger or NaN
  local function reference(x)
    local N, C, IH, IW = table.unpack(x.shape)
    local v, out, grad = x:totable(), {}, {}
    for n = 1, N do
      out[n], grad[n] = {}, {}
      for c = 1, C do
        local g = {}
        for h = 1, IH do g[h] = {} for w = 1, IW do g[h][w] = 0 end end
        out[n][c] = {}
        for oh = 1, IH // 2 do
          out[n][c][oh] = {}
          for ow = 1, IW // 2 do
            local best, bh, bw
            for i = 0, 1 do
              for k = 0, 1 do
                local h, w = 2 * oh - 1 + i, 2 * ow - 1 + k
                local e = v[n][c][h][w]
                if not best or e > best or e ~= e then best, bh, bw = e, h, w end
              end
            end
            out[n][c][oh][ow] = best
            g[bh][bw] = g[bh][bw] + 1
          end
        end
        grad[n][c] = g
      end
    end
    return out, grad
  end
  local function same_with_nan(a, b)
    if type(a) == "table" then
      for i = 1, #a do same_with_nan(a[i], b[i]) end
      assert.equal(#a, #b)
    elseif a ~= a then
      assert.is_true(b ~= b)
    else
      assert.equal(a, b)
    end
  end
  for _, dtype in ipairs({ "float32", "float64" }) do
    -- 14 output columns (under one vector), 3 blocks of rows, odd sizes (the generic path),
    -- rows wider than a block (the generic path)
    -- and an odd last row (no window: zero gradient)
    for _, size in ipairs({ { 2, 3, 28, 28 }, { 1, 2, 80, 28 }, { 1, 1, 7, 9 }, { 1, 1, 4, 600 }, { 1, 2, 9, 8 } }) do
      it(dtype .. " " .. table.concat(size, "x") .. " with ties and NaNs", function()
        mg.manual_seed(7)
        local x = mg.randint(0, 3, size):to(dtype)
        x = mg.where(mg.rand(size):lt(0.05), mg.full({}, 0 / 0, { dtype = dtype }), x):requires_grad_()
        local out, grad = reference(x)
        local y = F.max_pool2d(x, 2)
        same_with_nan(out, y:totable())
        y:sum():backward()
        assert.same(grad, x.grad:totable())
      end)
    end
  end
end)

describe("embedding", function()
  it("takes a Lua list of indices and accumulates the gradient of repeated ones", function()
    local w = mg.tensor({ { 1, 2 }, { 3, 4 }, { 5, 6 } }, { requires_grad = true })
    local y = F.embedding({ 3, 1, 3 }, w)
    H.near({ { 5, 6 }, { 1, 2 }, { 5, 6 } }, y)
    y:sum():backward()
    H.near({ { 1, 1 }, { 0, 0 }, { 2, 2 } }, w.grad)
  end)
end)

describe("conv2d options", function()
  local x = mg.randn({ 1, 2, 5, 5 })
  local w = mg.randn({ 3, 2, 3, 3 })
  it("passes options without a bias as the third argument or after nil", function()
    local a = F.conv2d(x, w, { padding = 1, stride = 2 })
    local b = F.conv2d(x, w, nil, { padding = { 1, 1 }, stride = { 2, 2 } })
    assert.same({ 1, 3, 3, 3 }, a.shape)
    assert.is_true(a:equal(b))
  end)
end)

describe("layer errors", function()
  local x = mg.randn({ 2, 3, 5, 5 })
  local w = mg.randn({ 4, 3, 3, 3 })
  local cases = {
    { function() F.conv2d(mg.randn({ 3, 5 }), w) end,
      "bad argument #1 to 'conv2d' (expected a 3-d (unbatched) or 4-d (batched) input to conv2d, got shape {3,5})" },
    { function() F.conv1d(mg.randn({ 2, 3, 4, 5 }), mg.randn({ 2, 3, 3 })) end,
      "bad argument #1 to 'conv1d' (expected a 2-d (unbatched) or 3-d (batched) input to conv1d, got shape {2,3,4,5})" },
    { function() F.conv2d(x, mg.randn({ 4, 3, 3 })) end,
      "bad argument #2 to 'conv2d' (weight must be {out_channels,in_channels/groups,kH,kW}, got shape {4,3,3})" },
    { function() F.conv2d(x, w:double()) end, "bad argument #2 to 'conv2d' (weight is float64 but input is float32)" },
    { function() F.conv2d(x:long(), w) end, "bad argument #1 to 'conv2d' (input must be a float32 or float64 tensor, got int64)" },
    { function() F.conv2d(x, mg.randn({ 4, 1, 3, 3 }), nil, { groups = 3 }) end,
      "bad argument #2 to 'conv2d' (out_channels 4 (weight {4,1,3,3}) is not divisible by groups 3)" },
    { function() F.conv2d(x, mg.randn({ 4, 1, 3, 3 }), nil, { groups = 2 }) end,
      "bad argument #1 to 'conv2d' (input has 3 channels, but weight {4,1,3,3} with groups 2 expects 2 (shape {2,3,5,5}))" },
    { function() F.conv2d(x, mg.randn({ 4, 3, 7, 3 })) end,
      "bad argument #1 to 'conv2d' (kernel size 7x3 (dilated) is larger than the padded input 5x5)" },
    { function() F.conv2d(x, w, nil, { dilation = 3 }) end,
      "bad argument #1 to 'conv2d' (kernel size 7x7 (dilated) is larger than the padded input 5x5)" },
    { function() F.conv1d(mg.randn({ 1, 2, 3 }), mg.randn({ 1, 2, 5 })) end,
      "bad argument #1 to 'conv1d' (kernel size 5 (dilated) is larger than the padded input 3)" },
    { function() F.conv2d(x, w, nil, { stride = 0 }) end, "bad argument #4 to 'conv2d' (stride must be positive, got 0)" },
    { function() F.conv2d(x, w, nil, { stride = { 1, -2 } }) end,
      "bad argument #4 to 'conv2d' (stride must be positive, got -2)" },
    { function() F.conv2d(x, w, nil, { padding = -1 }) end,
      "bad argument #4 to 'conv2d' (padding must be non-negative, got -1)" },
    { function() F.conv2d(x, w, nil, { dilation = 0 }) end, "bad argument #4 to 'conv2d' (dilation must be positive, got 0)" },
    { function() F.conv2d(x, w, nil, { groups = 0 }) end, "bad argument #4 to 'conv2d' (groups must be positive, got 0)" },
    { function() F.conv2d(x, w, nil, { stride = { 1, 2, 3 } }) end,
      "bad argument #4 to 'conv2d' (stride must be a number or a {h, w} list, got a list of 3)" },
    { function() F.conv2d(x, w, nil, { stride = 1.5 }) end,
      "bad argument #4 to 'conv2d' (stride must be an integer or a {h, w} list, got 1.5)" },
    { function() F.conv2d(x, w, nil, { strides = 1 }) end, "bad argument #4 to 'conv2d' (unknown option 'strides'" },
    { function() F.conv2d(x, w, mg.randn({ 3 })) end, "bad argument #3 to 'conv2d' (bias must have shape {4}, got {3})" },
    { function() F.conv2d(x, w, mg.randn({ 4 }, { dtype = "float64" })) end,
      "bad argument #3 to 'conv2d' (bias is float64 but input is float32)" },
    { function() F.max_pool2d(x, 2, { padding = 2 }) end,
      "bad argument #3 to 'max_pool2d' (padding 2 should be at most half of the kernel size 2)" },
    { function() F.max_pool2d(x, 6) end,
      "bad argument #1 to 'max_pool2d' (kernel size 6x6 (dilated) is larger than the padded input 5x5)" },
    { function() F.max_pool2d(x, 0) end, "bad argument #2 to 'max_pool2d' (kernel_size must be positive, got 0)" },
    { function() F.max_pool2d(x) end, "bad argument #2 to 'max_pool2d' (kernel_size expected)" },
    { function() F.max_pool2d(mg.randn({ 5, 5 }), 2) end,
      "bad argument #1 to 'max_pool2d' (expected a 3-d (unbatched) or 4-d (batched) input to max_pool2d, got shape {5,5})" },
    { function() F.avg_pool2d(x, 2, { stride = 0 }) end, "bad argument #3 to 'avg_pool2d' (stride must be positive, got 0)" },
    { function() F.avg_pool2d(x, 2, { dilation = 2 }) end, "bad argument #3 to 'avg_pool2d' (unknown option 'dilation'" },
    { function() F.adaptive_avg_pool2d(x, 0) end,
      "bad argument #2 to 'adaptive_avg_pool2d' (output_size must be positive, got 0)" },
    { function() F.batch_norm(mg.randn({ 4 }), nil, nil, { training = true }) end,
      "bad argument #1 to 'batch_norm' (expected an input of 2 or more dims {N,C,...}, got shape {4})" },
    { function() F.batch_norm(x, mg.zeros(4), mg.ones(3)) end,
      "bad argument #2 to 'batch_norm' (running_mean must have shape {3}, got {4})" },
    { function() F.batch_norm(x, nil, nil) end,
      "bad argument #2 to 'batch_norm' (running_mean must be given when not training)" },
    { function() F.batch_norm(mg.randn({ 1, 3 }), nil, nil, { training = true }) end,
      "bad argument #1 to 'batch_norm' (expected more than 1 value per channel when training, got input shape {1,3})" },
    { function() F.batch_norm(x, mg.zeros(3), mg.ones(3), { weight = mg.ones(3):double() }) end,
      "bad argument #5 to 'batch_norm' (weight is float64 but input is float32)" },
    { function() F.layer_norm(x, { 4 }) end,
      "bad argument #1 to 'layer_norm' (normalized_shape {4} expects an input of shape {*,4}, got {2,3,5,5})" },
    { function() F.layer_norm(x, { 5 }, { weight = mg.ones(4) }) end,
      "bad argument #3 to 'layer_norm' (weight must have shape {5}, got {4})" },
    { function() F.embedding(mg.tensor({ 1, 0 }, { dtype = "int64" }), mg.randn({ 3, 2 })) end,
      "bad argument #1 to 'embedding' (index 0 is out of range for 3 embeddings (indices count from 1))" },
    { function() F.embedding({ 4 }, mg.randn({ 3, 2 })) end,
      "bad argument #1 to 'embedding' (index 4 is out of range for 3 embeddings)" },
    { function() F.embedding(mg.tensor({ 1, 2 }), mg.randn({ 3, 2 })) end,
      "bad argument #1 to 'embedding' (indices must be an int64 tensor, got float32)" },
    { function() F.embedding({ 1 }, mg.randn({ 3 })) end,
      "bad argument #2 to 'embedding' (weight must be {num_embeddings,embedding_dim}, got shape {3})" },
  }
  for i, c in ipairs(cases) do
    it("#" .. i .. ": " .. c[2], function() H.errors(c[1], c[2]) end)
  end
end)

describe("threads", function()
  local function bits(t)
    local out = {}
    for i, v in ipairs(t:contiguous():view(-1):totable()) do out[i] = string.pack("<d", v) end
    return table.concat(out)
  end
  local function run_all()
    mg.manual_seed(3)
    local x = mg.randn({ 8, 4, 20, 20 }, { requires_grad = true })
    local w = mg.randn({ 6, 2, 3, 3 }, { requires_grad = true })
    local b = mg.randn({ 6 }, { requires_grad = true })
    local bw = mg.randn({ 6 }, { requires_grad = true })
    local y = F.conv2d(x, w, b, { padding = 1, groups = 2 })
    y = F.batch_norm(y, nil, nil, { weight = bw, training = true })
    y = F.max_pool2d(y, 3, { stride = 2, padding = 1 }) + F.avg_pool2d(y, 3, { stride = 2, padding = 1 })
      + F.max_pool2d(y, 2)
    y = F.layer_norm(F.adaptive_avg_pool2d(y, 5), { 5 })
    local loss = (y * y):sum()
    loss:backward()
    return { bits(y), bits(x.grad), bits(w.grad), bits(b.grad), bits(bw.grad) }
  end
  it("give the same bits with 1 and 2 threads", function()
    local saved = mg.get_num_threads()
    mg.set_num_threads(1)
    local one = run_all()
    mg.set_num_threads(2)
    local two = run_all()
    mg.set_num_threads(saved)
    for i = 1, #one do assert.is_true(one[i] == two[i], "result " .. i .. " differs") end
  end)
end)

describe("max_pool2d's backward", function()
  it("gives +0, as 0 + g, where the output's gradient is -0", function()
    for _, k in ipairs({ 2, 3 }) do
      local x = mg.randn({ 1, 1, 6, 6 }, { requires_grad = true })
      local y = F.max_pool2d(x, k)
      y:backward(mg.full(y.shape, -0.0))
      for _, v in ipairs(x.grad:view(-1):totable()) do assert.equal(math.huge, 1 / v) end
    end
  end)
end)

describe("the per-sample path (a batch of 4 or more small images)", function()
  -- out and dx sum over the channels and taps only, so a sample gives the same bits alone (a
  -- batch of 1 takes the batched path) as inside a batch; dW sums over the batch in chunks
  for _, dtype in ipairs({ "float32", "float64" }) do
    it(dtype .. ": out and dx bit for bit as one sample at a time, dW to rounding", function()
      mg.manual_seed(11)
      local x = mg.randn({ 5, 4, 9, 7 }, { dtype = dtype, requires_grad = true })
      local w = mg.randn({ 6, 2, 3, 3 }, { dtype = dtype, requires_grad = true })
      local b = mg.randn({ 6 }, { dtype = dtype })
      local gout = mg.randn({ 5, 6, 5, 7 }, { dtype = dtype })
      local opts = { padding = { 1, 1 }, stride = { 2, 1 }, groups = 2 }
      local y = F.conv2d(x, w, b, opts)
      y:backward(gout)
      local dw = mg.zeros({ 6, 2, 3, 3 }, { dtype = dtype })
      for n = 1, 5 do
        local xn = x:detach():narrow(1, n, 1):requires_grad_()
        local wn = w:detach():requires_grad_()
        local yn = F.conv2d(xn, wn, b, opts)
        yn:backward(gout:narrow(1, n, 1))
        assert.is_true(yn:equal(y:narrow(1, n, 1)), "out of sample " .. n)
        assert.is_true(xn.grad:equal(x.grad:narrow(1, n, 1)), "dx of sample " .. n)
        dw = dw + wn.grad
      end
      H.near(dw:totable(), w.grad, dtype == "float64" and 1e-12 or 1e-5)
    end)
  end
end)

describe("edge cases", function()
  it("empty batches, zero channels and zero out_channels", function()
    assert.same({ 0, 4, 3, 3 }, F.conv2d(mg.zeros(0, 2, 5, 5), mg.zeros(4, 2, 3, 3)).shape)
    local x = mg.randn({ 2, 0, 5, 5 }, { requires_grad = true })
    local b = mg.randn({ 3 }, { requires_grad = true })
    local y = F.conv2d(x, mg.randn({ 3, 0, 3, 3 }), b)
    H.near(b:detach():view(1, 3, 1, 1):expand(2, 3, 3, 3):totable(), y)
    y:sum():backward()
    H.near({ 18, 18, 18 }, b.grad)
    local x2 = mg.randn({ 2, 3, 5, 5 }, { requires_grad = true })
    F.conv2d(x2, mg.zeros(0, 3, 3, 3)):sum():backward()
    H.near(mg.zeros(2, 3, 5, 5):totable(), x2.grad)
  end)
  it("a max pool window of padding only gives -inf, as PyTorch", function()
    assert.equal(-math.huge, F.max_pool2d(mg.zeros(1, 1, 0, 0), 2, { padding = 1 }):item())
  end)
  it("refuses a dilated kernel whose size overflows", function()
    H.errors(function() F.conv2d(mg.zeros(1, 2, 5, 5), mg.zeros(0, 2, 2 ^ 40, 1), nil, { dilation = 2 ^ 30 }) end,
      "(kernel size (dilated) is too large)")
  end)
end)
