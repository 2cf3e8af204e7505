-- W8: the digits example's training step: MLP 64-64-10 (Linear, ReLU, Linear), cross-entropy,
-- optim.Adam lr 1e-3, batch 32, one epoch over rows 361..1797 of data/digits.csv (45 steps).
-- Pixels / 16 (float32), label = digit (class digit + 1). Init from the shared generator:
-- W1[o, i] = (2 uniform(81, 64o + i) - 1) / 8, b1 from 82, W2 from 83, b2 from 84 (a = 1/8).
-- The timed runs keep training the same model (as PyTorch's side does), so the final loss and
-- held-out accuracy agree only at the same BENCH_REPEATS.
local here = arg[0]:match("(.-)[^/]*$")
package.path = here .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
B.setup(mg)

local HOLD, BATCH, LR = 360, 32, 1e-3
local d = mg.data.read_csv(here .. "../data/digits.csv")
local X = d:narrow(2, 1, 64) / 16.0
local Y = (d:select(2, 65) + 1):to("int64")
local model = mg.nn.Sequential(mg.nn.Linear(64, 64), mg.nn.ReLU(), mg.nn.Linear(64, 10))
local init = {{81, 64 * 64, {64, 64}}, {82, 64, {64}}, {83, 10 * 64, {10, 64}}, {84, 10, {10}}}
mg.no_grad(function()
  for i, p in ipairs(model:parameters()) do
    local seed, count, shape = table.unpack(init[i])
    p:copy_(mg.tensor(B.uniforms(seed, 0, count, 1 / 8)):view(shape))
  end
end)
local opt = mg.optim.Adam(model:parameters(), {lr = LR})
local loss_fn = mg.nn.CrossEntropyLoss()
local batches, rows = {}, X:size(1)
for s = HOLD + 1, rows, BATCH do
  local n = math.min(BATCH, rows - s + 1)
  batches[#batches + 1] = {X:narrow(1, s, n), Y:narrow(1, s, n)}
end

local init0 = {} for i, p in ipairs(model:parameters()) do init0[i] = p:clone():detach() end
local t, loss = B.median_time(function()
  mg.no_grad(function() for i, p in ipairs(model:parameters()) do p:copy_(init0[i]) end end)
  local loss
  for _, xy in ipairs(batches) do
    opt:zero_grad()
    loss = loss_fn(model(xy[1]), xy[2])
    loss:backward()
    opt:step()
  end
  return loss
end)
local acc = mg.no_grad(function()
  return model(X:narrow(1, 1, HOLD)):argmax(2):eq(Y:narrow(1, 1, HOLD)):double():mean():item()
end)
B.result{name = "W8_digits_mlp", value = t / #batches * 1e6, unit = "us/step",
  derived = (rows - HOLD) / t, dunit = "samples/s", nums = {loss:item(), acc}, tol = "1e-3:1e-5",
  check = string.format("loss=%.5f,acc=%.4f", loss:item(), acc)}
