-- The thermometer of "Deep Learning with PyTorch", chapter 5: learn t_c = w * t_u + b from
-- readings of an unknown thermometer, by gradient descent with the hand-derived gradient.
--   lua5.4 examples/thermometer.lua        (or: make demo)
-- The three runs of section 5.4: a learning rate of 1e-2 on raw readings blows up, 1e-4 crawls,
-- and normalized readings (0.1 * t_u) converge to PyTorch's w = 5.3671, b = -17.3012.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "" -- this script's directory
dofile(here .. "paths.lua") -- this clone's moongrad once `make` has built it, else the installed one
local mg = require "moongrad"

local t_c = mg.tensor{0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0} -- Celsius
local t_u = mg.tensor{35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4} -- unknown units

print("== learning rate 1e-2 on the raw readings")
local ok, err = pcall(mg.training_loop, {n_epochs = 100, learning_rate = 1e-2,
  params = mg.tensor{1.0, 0.0}, t_u = t_u, t_c = t_c, print_detail = true})
print(ok and "(no divergence?)" or err)

print("\n== learning rate 1e-4: stable, but the params barely move")
mg.training_loop{n_epochs = 100, learning_rate = 1e-4, params = mg.tensor{1.0, 0.0},
  t_u = t_u, t_c = t_c, print_detail = true}

print("\n== normalized readings, t_un = 0.1 * t_u, learning rate 1e-2, 5000 epochs")
local t_un = 0.1 * t_u
local params = mg.training_loop{n_epochs = 5000, learning_rate = 1e-2, params = mg.tensor{1.0, 0.0},
  t_u = t_un, t_c = t_c, print_detail = true}
print(params)
local loss = mg.F.loss_fn(mg.F.model(t_un, params[1], params[2]), t_c):item()

-- the book's figure: the data and the fitted line, in the thermometer's units
os.execute('mkdir -p "' .. here .. 'out"')
local xs = mg.linspace(20, 85, 2)
local fig = mg.plot.figure{title = "Thermometer: fitted line", xlabel = "Temperature (°Fahrenheit)",
  ylabel = "Temperature (°Celsius)"}
fig:line(xs, mg.F.model(0.1 * xs, params[1], params[2]), {label = "model"})
fig:scatter(t_u, t_c, {label = "measurements"})
fig:save(here .. "out/thermometer.svg")
print("plot: " .. here .. "out/thermometer.svg")

return params, loss
