-- soak.lua: memory stays bounded in long loops, without collectgarbage(). Runs 10^5 steps of the
-- digits MLP (64-64-10, Adam, batch 32) and 10^5 epochs of the book's autograd loop, and prints the
-- resident memory every 10^4 steps and its growth after warm-up (the first 10^4 steps).
--   lua5.4 bench/soak.lua [steps = 100000]      (make soak)
local here = arg[0]:match("(.-)[^/]*$")
package.path = here .. "../lua/?.lua;" .. here .. "../lua/?/init.lua;" .. package.path
local mg = require "moongrad"

local STEPS = tonumber(arg[1]) or 100000
local EVERY = STEPS // 10

local function resident_mb()
  local f = assert(io.open("/proc/self/statm"))
  local _, rss = f:read("n", "n")
  f:close()
  return rss * 4096 / 2 ^ 20
end

-- Runs step(i) STEPS times; prints RSS every EVERY steps; returns the growth after warm-up (MB).
local function soak(name, step)
  local marks = {}
  for i = 1, STEPS do
    step(i)
    if i % EVERY == 0 then marks[#marks + 1] = string.format("%.1f", resident_mb()) end
  end
  local growth = tonumber(marks[#marks]) - tonumber(marks[1])
  print(string.format("%-26s RSS MB every %d steps: %s", name, EVERY, table.concat(marks, " ")))
  print(string.format("RESULT name=soak_%s value=%.1f unit=MB_after_warmup threads=%d", name, growth,
    mg.get_num_threads()))
  return growth
end

mg.manual_seed(0)
local d = mg.data.read_csv(here .. "../data/digits.csv")
local X, Y = d:narrow(2, 1, 64) / 16.0, (d:select(2, 65) + 1):to("int64")
local model = mg.nn.Sequential(mg.nn.Linear(64, 64), mg.nn.ReLU(), mg.nn.Linear(64, 10))
local opt = mg.optim.Adam(model:parameters(), {lr = 1e-3})
local loss_fn, rows = mg.nn.CrossEntropyLoss(), X:size(1)
local mlp = soak("digits_mlp_adam", function(i)
  local s = (i * 32) % (rows - 32) + 1
  opt:zero_grad()
  local loss = loss_fn(model(X:narrow(1, s, 32)), Y:narrow(1, s, 32))
  loss:backward()
  opt:step()
end)

local t_c = mg.tensor{0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0}
local t_un = 0.1 * mg.tensor{35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4}
local params = mg.tensor({1.0, 0.0}, {requires_grad = true})
local book = soak("book_autograd_loop", function()
  if params.grad then params.grad:zero_() end
  local t_p = params[1] * t_un + params[2]
  local loss = ((t_p - t_c) ^ 2):mean()
  loss:backward()
  mg.no_grad(function() params:sub_(params.grad * 1e-2) end)
end)
print(string.format("soak: growth after warm-up %.1f MB (MLP) and %.1f MB (book loop) over %d steps each",
  mlp, book, STEPS))
