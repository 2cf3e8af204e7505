-- Threads in a host (issue 11, item 4): spec/hosts/threads_host.c, a C host that trains the same
-- MLP in 4 Lua states concurrently in 4 pthreads (each with a worker pool of 2 threads) and
-- compares the parameters, printed with "%a", with one state's; then closes states whose pools
-- have workers (spinning, asleep, a finalizer running ops at lua_close, a state opened in another
-- pthread, the pool never started), one at a time and in 4 pthreads at once, and counts the
-- process's threads after each close. `make threads-host-tsan` runs the same host built with
-- -fsanitize=thread.
-- #noasan: builds and runs a program (as embed_spec); #notsan: `make tsan` runs threads_spec only.
-- (spec/helper.lua is not loaded: see the note at the end)

describe("threads in a host #noasan #notsan", function()
  it("trains 4 states in 4 pthreads bit for bit as one, and leaves no thread after lua_close", function()
    if not io.open("/proc/self/task") then return end -- Linux only (threads counted in /proc)
    local p = assert(io.popen("make -s build/threads-host 2>&1 && build/threads-host 2>&1; echo rc=$?"))
    local out = p:read("a")
    p:close()
    local function has(line) assert.truthy(out:find(line, 1, true), out) end
    has("1 state, 1 thread: bit-identical")
    has("4 states in 4 pthreads, 2 threads each: 4/4 bit-identical")
    has("threads before 1, after training 1")
    has("closes: 200 (40 of each: spinning asleep finalizer elsewhere unused), 0 failed; threads after every close = 1")
    has("concurrent closes: 160 in 4 pthreads, 0 failed; threads after 1 (before 1)")
    has("finalizers at lua_close: 72 of 72 got the right sum on the closing thread")
    has("threads host: ok")
    has("rc=0")
    -- the reference trained: its loss is a number well below the untrained ~ln 3
    local loss = out:match("reference %(1 state, 2 threads, 200 steps%): loss (%S+)")
    assert.truthy(loss and tonumber(loss) and tonumber(loss) < 0.5, out)
  end)
end)

-- Note: it does not load spec/helper.lua (busted's insulation would load moongrad's Lua layer
-- again for this file): the heap's state when the finalizer specs run (autograd_spec "a backward
-- pass started during another") decides whether a finalizer lands inside a backward pass.
