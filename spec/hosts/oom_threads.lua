-- oom_threads.lua: products big enough for moongrad's worker pool (and their backward), for
-- spec/oom_spec.lua's runs of spec/hosts/oom_host.c --fail N with MOONGRAD_NUM_THREADS=2: the
-- pool's own allocation may fail too.
local mg = require "moongrad"
mg.manual_seed(1)
local a = mg.randn(256, 256, {requires_grad = true})
local b = mg.randn(256, 256)
local c = a:matmul(b):relu():sum()
c:backward()
local v = mg.randn(1024, 512):matmul(mg.randn(512))
return tostring(v:sum()) .. tostring(a.grad:mean())
