-- mg.save never loses data: it writes a temporary file beside the target, flushes it to the disk
-- and renames it over the target only when complete. A failing writer, a full disk and a kill -9
-- in the middle each leave the previous file whole (and no temporary behind, but for the kill).
local mg = require "moongrad"
local core = require "moongrad.core"
local serialize = require "moongrad.serialize"
local H = require "helper"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function tmp_of(path) return string.format("%s.%d.tmp", path, core._pid()) end

-- a directory of its own, removed with its contents at the end of the test (after `before_rm`,
-- e.g. unmounting it: busted keeps one `finally` per test, so this is it)
local function tmpdir(before_rm)
  local p = assert(io.popen("mktemp -d"))
  local dir = p:read("l")
  p:close()
  finally(function()
    if before_rm then before_rm(dir) end
    os.execute("rm -rf '" .. dir .. "'")
  end)
  return dir
end

describe("mg.save over an existing file", function()
  it("leaves the previous file whole when a write fails midway, and removes its temporary", function()
    local open = serialize._open
    local path = tmpdir(function() serialize._open = open end) .. "/w.safetensors" -- (one finally per test)
    mg.save(path, {w = mg.full({4}, 1)})
    serialize._open = function(name, mode) -- a disk that fills up after the first write
      local f = assert(open(name, mode))
      local writes = 0
      return setmetatable({}, {__index = {
        write = function(_, ...)
          writes = writes + 1
          if writes > 1 then return nil, "No space left on device" end
          return f:write(...)
        end,
        close = function() return f:close() end,
        flush = function() return f:flush() end,
      }})
    end
    local ok, err = pcall(mg.save, path, {w = mg.full({1000}, 2)})
    assert.is_false(ok)
    assert.equal("mg.save: " .. path .. ": write failed: No space left on device", err)
    serialize._open = open
    assert.same({1, 1, 1, 1}, mg.load(path).w:totable())
    assert.is_false(exists(tmp_of(path)))
  end)

  it("names the caller's line in its error", function()
    local ok, err = pcall(function() mg.save("/nonexistent/dir/x.safetensors", {w = mg.ones(1)}) end)
    assert.is_false(ok)
    assert.truthy(err:match("^spec/save_safety_spec%.lua:%d+: mg%.save: cannot open /nonexistent/dir/x%.safetensors: "), err)
  end)

  it("leaves the previous file whole on a full disk (a 64 KB tmpfs)", function()
    local mounted = false
    local dir = tmpdir(function(d) if mounted then os.execute("umount '" .. d .. "'") end end)
    mounted = os.execute("mount -t tmpfs -o size=64k tmpfs '" .. dir .. "' 2>/dev/null")
    if not mounted then
      pending("mounting a tmpfs needs root (and a kernel that allows it): not run here")
      return
    end
    local path = dir .. "/w.safetensors"
    mg.save(path, {w = mg.arange(1000)}) -- 8 KB
    local before = H.read_file(path)
    H.errors(function() mg.save(path, {w = mg.ones(100000)}) end, -- 400 KB
      "mg.save: " .. path .. ": write failed: No space left on device")
    assert.equal(before, H.read_file(path))
    assert.is_false(exists(tmp_of(path)))
    mg.save(path, {w = mg.arange(10)}) -- and the disk is usable again
    assert.same({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, mg.load(path).w:totable())
  end)

  it("leaves a complete file, old or new, when the saving process is killed (kill -9)", function()
    local dir = tmpdir()
    local path, child = dir .. "/w.safetensors", dir .. "/child.lua"
    local f = assert(io.open(child, "w"))
    f:write(string.format("package.path, package.cpath = %q, %q\n", package.path, package.cpath), [[
      local mg = require "moongrad"
      local path, k = ..., 0
      local a, b = mg.full({2000000}, 1), mg.full({2000000}, 2)
      while true do k = k + 1; mg.save(path, {w = k % 2 == 1 and a or b}) end
    ]])
    f:close()
    for trial = 1, 4 do
      os.remove(path)
      local p = assert(io.popen(string.format("lua5.4 '%s' '%s' >/dev/null 2>&1 & echo $!", child, path)))
      local pid = p:read("l")
      p:close()
      local waited = 0
      while not exists(path) and waited < 200 do os.execute("sleep 0.05"); waited = waited + 1 end
      assert.truthy(exists(path), "the child never saved")
      os.execute(string.format("sleep 0.%d; kill -9 %s; while kill -0 %s 2>/dev/null; do sleep 0.01; done",
        trial * 2, pid, pid))
      local w = mg.load(path).w
      assert.equal(2000000, w:numel())
      local lo, hi = w:min():item(), w:max():item()
      assert.equal(lo, hi)
      assert.truthy(lo == 1 or lo == 2, tostring(lo))
    end
  end)
end)
