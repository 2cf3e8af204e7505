-- W6: MLP 784-256-10 (Linear, ReLU, Linear), cross-entropy, optim.SGD lr 0.05 momentum 0.9,
-- batch 64, in order, on 1 thread (BENCH_THREADS). The epoch is 60000 samples; W6_SAMPLES (default
-- 6400, 100 batches) trains on the first rows only and the s/epoch figure is extrapolated to 60000.
-- Data from the shared generator: X[i, j] = 0.1 normal(61, 784i + j) (float32),
-- W_true[j, c] = normal(62, 10j + c) (float64), label[i] = argmax_c X[i] . W_true[:, c] (float64);
-- init W1[o, i] = a1 (2 uniform(63, 784o + i) - 1), b1[o] = a1 (2 uniform(64, o) - 1), a1 = 1/28,
-- W2, b2 likewise from seeds 65, 66 with a2 = 1/16.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local mg = require "moongrad"
local B = require "common"
B.setup(mg)

local EPOCH, DIN, DH, DOUT, BATCH, LR, MOM = 60000, 784, 256, 10, 64, 0.05, 0.9
local N = tonumber(os.getenv("W6_SAMPLES") or "6400")
local FLOP_PER_SAMPLE = 2 * (DIN * DH + DH * DOUT) + 2 * DIN * DH + 2 * 2 * DH * DOUT
local W_true = mg.tensor(B.normals(62, 0, DIN * DOUT), {dtype = "float64"}):view(DIN, DOUT)
local X, Y = mg.empty(N, DIN), mg.empty(N, {dtype = "int64"})
for r = 0, N - 1, 256 do
  local n = math.min(256, N - r)
  local xc = mg.tensor(B.normals(61, r * DIN, n * DIN, 0.1)):view(n, DIN)
  X:narrow(1, r + 1, n):copy_(xc)
  Y:narrow(1, r + 1, n):copy_(xc:double():matmul(W_true):argmax(2))
end
local init = {
  mg.tensor(B.uniforms(63, 0, DH * DIN, 1 / math.sqrt(DIN))):view(DH, DIN),
  mg.tensor(B.uniforms(64, 0, DH, 1 / math.sqrt(DIN))),
  mg.tensor(B.uniforms(65, 0, DOUT * DH, 1 / math.sqrt(DH))):view(DOUT, DH),
  mg.tensor(B.uniforms(66, 0, DOUT, 1 / math.sqrt(DH))),
}
local loss_fn = mg.nn.CrossEntropyLoss()

local t, model, mean_loss = B.median_time(function()
  local model = mg.nn.Sequential(mg.nn.Linear(DIN, DH), mg.nn.ReLU(), mg.nn.Linear(DH, DOUT))
  local params = model:parameters()
  mg.no_grad(function() for i, p in ipairs(params) do p:copy_(init[i]) end end)
  local opt = mg.optim.SGD(params, {lr = LR, momentum = MOM})
  local total, nb = 0.0, 0
  for s = 1, N, BATCH do
    local n = math.min(BATCH, N - s + 1)
    local xb, yb = X:narrow(1, s, n), Y:narrow(1, s, n)
    opt:zero_grad()
    local loss = loss_fn(model(xb), yb)
    loss:backward()
    opt:step()
    total, nb = total + loss:item(), nb + 1
  end
  return model, total / nb
end)
local final, acc = mg.no_grad(function()
  local out = model(X)
  return loss_fn(out, Y):item(), out:argmax(2):eq(Y):double():mean():item()
end)
B.result{name = string.format("W6_mlp_%dof%d", N, EPOCH), value = t * EPOCH / N, unit = "s/epoch",
  derived = FLOP_PER_SAMPLE * N / t / 1e9, dunit = "GFLOP/s", limit = "fma_peak",
  nums = {mean_loss, final, acc}, tol = "1e-3:1e-5",
  check = string.format("epoch_loss=%.5f,acc=%.4f", mean_loss, acc)}
