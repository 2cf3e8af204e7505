-- Faults end the job, never hang it (make test-mpi runs this file with plain busted: each case
-- starts its own `mpirun -np 2` of spec/distributed/fault_script.lua, whose rank 1 fails while
-- rank 0 is in an all_reduce). Every process must be gone within the deadline plus a few seconds.
local MPIRUN = os.getenv("MOONGRAD_MPIRUN")
  or "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun"
local TIMEOUT = 3

local function now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

-- runs the job with rank 1 in `mode`; its output, exit status and the seconds it took
local function job(mode)
  local log = os.tmpname()
  local start = now()
  -- `timeout` only guards the spec itself: a hang shows as status 124 after 60 s
  local ok, _, status = os.execute(string.format("timeout -s KILL 60 %s -np 2 lua5.4 spec/distributed/fault_script.lua %s %d > %s 2>&1",
    MPIRUN, mode, TIMEOUT, log))
  local took = now() - start
  local f = io.open(log)
  local out = f:read("a")
  f:close()
  os.remove(log)
  return out, ok and 0 or status, took
end

local function no_process_left(mode)
  local p = io.popen("pgrep -f 'fault_scrip[t].lua " .. mode .. "'") -- [t]: not pgrep's own shell
  local left = p:read("a")
  p:close()
  assert.equal("", left)
end

-- runs the job with rank 1 in `mode` and checks that it failed, ended within the deadline plus a
-- few seconds, and left no process; its output
local function ended(mode)
  local out, status, took = job(mode)
  assert.are_not.equal(0, status)
  assert.is_true(took < TIMEOUT + 5, "took " .. took .. " s")
  no_process_left(mode)
  return out
end

describe("a failing rank ends the whole job within the deadline", function()
  it("a rank stopped by SIGSTOP: the others abort when the deadline passes, naming the collective", function()
    local out = ended("stop")
    assert.matches("rank 0 of 2: all_reduce (checking that every rank passed the same kind of input) did not "
      .. "complete within the deadline of 3.0 s (init_process_group's timeout): a rank died, stopped, or did not "
      .. "call it; aborting the job (MPI_Abort)", out, 1, true)
  end)

  it("a rank stopped before init_process_group: the others' start watchdog ends the job", function()
    local out = ended("stop_before_init")
    assert.matches("moongrad.distributed: init_process_group (MPI_Init, MPI_Comm_dup) did not complete within the "
      .. "deadline of 3.0 s (its timeout): a rank died, stopped, or did not call it; ending this process", out, 1, true)
  end)

  it("a rank killed by SIGKILL: mpirun ends the job", function()
    local out = ended("kill")
    assert.is_nil(out:find("finished", 1, true))
  end)

  it("a rank stopped while the other waits for DDP's gradient buckets (shared memory): the deadline ends the job", function()
    local out = ended("stop_in_backward")
    assert.matches("rank 0 of 2: all_reduce (of a gradient bucket) did not complete within the deadline of 3.0 s "
      .. "(init_process_group's timeout): a rank died, stopped, or did not call it; aborting the job (MPI_Abort)",
      out, 1, true)
    assert.is_nil(out:find("finished", 1, true))
  end)

  it("a rank killed while the other waits for DDP's gradient buckets: the job ends", function()
    local out = ended("kill_in_backward")
    assert.is_nil(out:find("finished", 1, true))
  end)

  it("a Lua error on one rank: its message, and the job ends", function()
    local out = ended("error")
    assert.matches("rank 1 failed on purpose", out, 1, true)
    assert.is_nil(out:find("finished", 1, true))
  end)

  it("mismatched shapes: the same clear error on both ranks, no hang", function()
    local out = ended("mismatch")
    assert.matches("rank 0: [^\n]*'all_reduce': rank 1 passed a float32 tensor of shape {5} where rank 0 passed float32 {4}", out)
    assert.matches("rank 1: [^\n]*'all_reduce': rank 1 passed a float32 tensor of shape {5} where rank 0 passed float32 {4}", out)
  end)
end)
