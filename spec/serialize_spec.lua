-- mg.save / mg.load: the safetensors format. Round trips of every dtype, 0-d, empty and
-- non-contiguous tensors, a model's state_dict, the file PyTorch writes
-- (spec/fixtures/torch_tensors.safetensors, from spec/fixtures/gen_safetensors.py; that script's
-- --check mode has PyTorch read a file moongrad wrote), and an error for each corrupt file.
local mg = require "moongrad"
local H = require "helper"

local FIXTURE = "spec/fixtures/torch_tensors.safetensors"

local function tmp()
  local path = os.tmpname()
  finally(function() os.remove(path) end)
  return path
end

local read = H.read_file

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

-- a file with this header text (length prefix added) and data bytes
local function raw(path, header, data)
  write(path, string.pack("<I8", #header) .. header .. (data or ""))
  return path
end

local function same(a, b)
  assert.equal(a.dtype, b.dtype)
  assert.same(a.shape, b.shape)
  assert.same(a:totable(), b:totable())
end

describe("mg.save / mg.load", function()
  it("round-trips every dtype, 0-d and empty tensors, and a transposed view", function()
    local path = tmp()
    local base = mg.tensor({{1.5, -2, 3}, {4, 5, 6.25}})
    local ts = {
      f32 = base,
      f64 = mg.tensor({1 / 3, -1e300, 0}, {dtype = "float64"}),
      i64 = mg.tensor({{math.maxinteger, math.mininteger}, {0, -7}}, {dtype = "int64"}),
      b = mg.tensor{true, false, true},
      scalar = mg.tensor(2.5),
      scalar_i = mg.tensor(-3, {dtype = "int64"}),
      empty = mg.zeros(0, 3),
      empty_b = mg.zeros({2, 0}, {dtype = "bool"}),
      t = base:t(),
      narrowed = mg.arange(10, {dtype = "float64"}):reshape(2, 5):narrow(2, 2, 3),
      expanded = mg.tensor{1, 2}:expand(3, 2),
    }
    assert.is_false(ts.t:is_contiguous())
    mg.save(path, ts)
    local got, meta = mg.load(path)
    assert.same({}, meta)
    local keys = {}
    for k in pairs(got) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({"b", "empty", "empty_b", "expanded", "f32", "f64", "i64", "narrowed", "scalar", "scalar_i", "t"}, keys)
    for k, v in pairs(ts) do same(v, got[k]) end
    assert.same({3, 2}, got.t.shape)
    assert.is_true(got.t:is_contiguous())
    assert.same({{1.5, 4}, {-2, 5}, {3, 6.25}}, got.t:totable())
    assert.equal(2.5, got.scalar:item())
    assert.same({}, got.scalar.shape)
    -- loaded tensors are fresh copies: writing one does not touch the source
    got.f32[1][1] = 100
    assert.equal(1.5, base[1][1])
    assert.equal(100, got.f32[1][1])
  end)

  it("writes a deterministic file: keys sorted, header padded to 8 bytes", function()
    local a, b = tmp(), tmp()
    local x, y = mg.tensor{1, 2}, mg.tensor({3}, {dtype = "int64"})
    mg.save(a, {zeta = x, alpha = y, mid = x})
    mg.save(b, {mid = x, alpha = y, zeta = x})
    local bytes = read(a)
    assert.equal(bytes, read(b))
    local n = string.unpack("<I8", bytes)
    assert.equal(0, n % 8)
    assert.equal(
      '{"alpha":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' ..
      '"mid":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},' ..
      '"zeta":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}',
      bytes:sub(9, 8 + n):match("^(.-) *$"))
    assert.equal(8 + n + 24, #bytes)
    assert.equal(string.pack("<i8<f<f<f<f", 3, 1, 2, 1, 2), bytes:sub(9 + n))
  end)

  it("keeps metadata (strings, with escapes) and returns it second", function()
    local path = tmp()
    local md = {format = "pt", note = 'quote " backslash \\ newline \n tab \t é \1'}
    mg.save(path, {w = mg.ones(2)}, md)
    local got, meta = mg.load(path)
    assert.same(md, meta)
    H.near({1, 1}, got.w)
  end)

  it("saves an empty table", function()
    local path = tmp()
    mg.save(path, {})
    local got, meta = mg.load(path)
    assert.same({}, got)
    assert.same({}, meta)
  end)

  it("a model's state_dict saved and loaded into a fresh model gives identical outputs", function()
    local path = tmp()
    local function net()
      return mg.nn.Sequential(mg.nn.Linear(3, 5), mg.nn.Tanh(), mg.nn.Linear(5, 2))
    end
    mg.manual_seed(1)
    local a = net()
    mg.manual_seed(2)
    local b = net()
    local x = mg.randn(4, 3)
    assert.is_false(mg.equal(a(x), b(x)))
    mg.save(path, a:state_dict())
    local sd = mg.load(path)
    assert.same({"0.bias", "0.weight", "2.bias", "2.weight"}, (function()
      local k = {}
      for n in pairs(sd) do k[#k + 1] = n end
      table.sort(k)
      return k
    end)())
    b:load_state_dict(sd)
    assert.is_true(mg.equal(a(x), b(x)))
  end)

  it("reads the file PyTorch writes (spec/fixtures/gen_safetensors.py)", function()
    local t, meta = mg.load(FIXTURE)
    assert.same({format = "pt", note = 'written by gen_safetensors.py: é"\\'}, meta)
    -- torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4 - 0.5
    same(mg.tensor{{-0.5, -0.25, 0}, {0.25, 0.5, 0.75}}, t.f32)
    -- torch.tensor([1.0 / 3.0, -1e300, 2.5], dtype=torch.float64)
    same(mg.tensor({1 / 3, -1e300, 2.5}, {dtype = "float64"}), t.f64)
    -- torch.tensor([[2**40 + 1, -5], [0, -(2**62)]], dtype=torch.int64)
    same(mg.tensor({{(1 << 40) + 1, -5}, {0, -(1 << 62)}}, {dtype = "int64"}), t.i64)
    same(mg.tensor{true, false, true}, t.bool)
    same(mg.tensor(7.5), t.scalar)
    same(mg.zeros(0, 4), t.empty)
    -- torch.manual_seed(0); lin = nn.Linear(3, 2); the file holds lin's weights, x and lin(x)
    local lin = mg.nn.Linear(3, 2)
    lin:load_state_dict({weight = t["linear.weight"], bias = t["linear.bias"]})
    H.near(t["linear.out"]:totable(), lin(t["linear.x"]), 1e-6)
    H.near({{-0.8727859854698181, 0.5550286173820496}, {1.391813039779663, -0.4703763723373413}}, t["linear.out"])
  end)

  it("re-saves the PyTorch file byte for byte", function()
    -- same writer conventions (sorted keys, compact JSON, space padding), so the same bytes
    local path = tmp()
    local t, meta = mg.load(FIXTURE)
    mg.save(path, t, meta)
    local mine, theirs = read(path), read(FIXTURE)
    -- Python's json.dumps escapes é as \u00e9, moongrad writes UTF-8: compare the data parts
    local n1, n2 = string.unpack("<I8", mine), string.unpack("<I8", theirs)
    assert.equal(theirs:sub(9 + n2), mine:sub(9 + n1))
  end)

  describe("errors", function()
    it("bad arguments", function()
      H.errors(function() mg.save(1, {}) end, "bad argument #1 to 'save' (string path expected, got number)")
      H.errors(function() mg.save("x", nil) end, "bad argument #2 to 'save' (table of tensors expected, got nil)")
      H.errors(function() mg.save("x", mg.ones(1)) end,
        "bad argument #2 to 'save' (table of tensors expected, got tensor)")
      H.errors(function() mg.save("x", {w = print}) end,
        "bad argument #2 to 'save' (w is a function (tensors, numbers, strings, booleans and tables can be saved))")
      H.errors(function() mg.save("x", {[1.5] = mg.ones(1)}) end,
        "bad argument #2 to 'save' (key 1.5 of the table is a float (strings and integers can be saved))")
      local loop = {}
      loop.self = loop
      H.errors(function() mg.save("x", {a = loop}) end, "bad argument #2 to 'save' (a.self refers to itself)")
      H.errors(function() mg.save("x", {__metadata__ = mg.ones(1)}) end, "'__metadata__' is reserved")
      H.errors(function() mg.save("x", {["\255"] = mg.ones(1)}) end, "is not valid UTF-8")
      H.errors(function() mg.save("x", {}, 5) end, "bad argument #3 to 'save' (table of strings expected, got number)")
      H.errors(function() mg.save("x", {}, {a = 1}) end,
        "bad argument #3 to 'save' (metadata must map strings to strings, got string a -> number)")
      H.errors(function() mg.load(nil) end, "bad argument #1 to 'load' (string path expected, got nil)")
    end)

    it("names the function at the caller's line", function()
      local ok, err = pcall(mg.load, {})
      assert.is_false(ok)
      assert.is_nil(err:find("serialize.lua", 1, true))
      ok, err = pcall(function() mg.load("/nonexistent/file.safetensors") end)
      assert.is_false(ok)
      assert.truthy(err:find("serialize_spec.lua", 1, true))
    end)

    it("missing file, unwritable path", function()
      H.errors(function() mg.load("/nonexistent/file.safetensors") end,
        "mg.load: cannot open /nonexistent/file.safetensors: No such file or directory")
      H.errors(function() mg.save("/nonexistent/dir/x.safetensors", {}) end,
        "mg.save: cannot open /nonexistent/dir/x.safetensors: No such file or directory")
    end)

    it("truncated files", function()
      local path = tmp()
      write(path, "abc")
      H.errors(function() mg.load(path) end,
        "mg.load: " .. path .. ": file too short for a safetensors header (3 bytes, need at least 8)")
      write(path, string.pack("<I8", 999999) .. "{}")
      H.errors(function() mg.load(path) end,
        "mg.load: " .. path .. ": header length 999999 is past the end of the file (10 bytes)")
      write(path, string.pack("<i8", -1) .. "{}")
      H.errors(function() mg.load(path) end, "header length -1 is past the end of the file (10 bytes)")
      -- a good file cut short in its data
      mg.save(path, {w = mg.ones(4)})
      local bytes = read(path)
      write(path, bytes:sub(1, -2))
      H.errors(function() mg.load(path) end,
        "mg.load: " .. path .. ": tensor \"w\": data_offsets [0, 16] run past the end of the data (15 bytes)")
    end)

    it("bad JSON", function()
      local path = tmp()
      local cases = {
        {"{", "bad JSON header: expected a string key at byte 2 of the header"},
        {'{"a":', "bad JSON header: unexpected end at byte 6 of the header"},
        {"", "bad JSON header: unexpected end at byte 1 of the header"},
        {'{"a" 1}', "bad JSON header: expected ':' at byte 6"},
        {'{"a":1,}', "bad JSON header: expected a string key at byte 8"},
        {'{"a":1.5}', "bad JSON header: expected an integer at byte 6"},
        {'{"a":true}', "bad JSON header: unexpected character \"t\" at byte 6"},
        {'{"a":01}', "integer with a leading zero"},
        {'{"a":99999999999999999999}', "integer out of range"},
        {'{"a":"x\\q"}', "bad escape in string"},
        {'{"a":"\\ud800"}', "unpaired surrogate"},
        {'{"a":"x\ny"}', "control character in string"},
        {'{"a":"xy}', "unterminated string"},
        {'{"a":[1,2}', "expected ',' or ']'"},
        {'{"a":1} x', "trailing characters after the JSON value"},
        {'{"a":1,"a":2}', 'duplicate key "a"'},
        {"[]", "the header is not a JSON object"},
        {'"x"', "the header is not a JSON object"},
        {'{"__metadata__":{"a":1}}', "__metadata__[\"a\"] is not a string"},
        {'{"__metadata__":[]}', "__metadata__ is not an object"},
      }
      for _, c in ipairs(cases) do
        raw(path, c[1])
        H.errors(function() mg.load(path) end, c[2])
      end
      -- escapes that are fine
      raw(path, '{"__metadata__":{"k\\u00e9\\ud83d\\ude00":"\\"\\\\\\/\\b\\f\\n\\r\\t"}}')
      local _, meta = mg.load(path)
      assert.same({["ké😀"] = "\"\\/\b\f\n\r\t"}, meta)
    end)

    it("bad tensor entries", function()
      local path = tmp()
      local data = string.pack("<ffff", 1, 2, 3, 4)
      local cases = {
        {'{"w":1}', 'tensor "w": entry is not an object'},
        {'{"w":{"shape":[4],"data_offsets":[0,16]}}', 'tensor "w": missing or non-string dtype'},
        {'{"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}',
          'tensor "w" has dtype F16, which moongrad does not support (it reads F32, F64, I64 and BOOL)'},
        {'{"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}}', 'tensor "w" has dtype BF16, which moongrad'},
        {'{"w":{"dtype":"Q4","shape":[4],"data_offsets":[0,8]}}', 'tensor "w" has unknown dtype "Q4"'},
        {'{"w":{"dtype":"F32","shape":{},"data_offsets":[0,16]}}', 'tensor "w": shape is not an array'},
        {'{"w":{"dtype":"F32","data_offsets":[0,16]}}', 'tensor "w": shape is not an array'},
        {'{"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}',
          'tensor "w": shape has a bad size at position 1 (a non-negative integer expected)'},
        {'{"w":{"dtype":"F32","shape":[2,"2"],"data_offsets":[0,16]}}', 'tensor "w": shape has a bad size at position 2'},
        {'{"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}',
          'tensor "w": shape [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1] has more than 16 dimensions'},
        {'{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}',
          'tensor "w": shape [4611686018427387904, 4] is too large'},
        {'{"w":{"dtype":"F32","shape":[4]}}', 'tensor "w": data_offsets is not a pair of integers'},
        {'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0]}}', 'tensor "w": data_offsets is not a pair of integers'},
        {'{"w":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}}', 'tensor "w": bad data_offsets [8, 4]'},
        {'{"w":{"dtype":"F32","shape":[4],"data_offsets":[-4,12]}}', 'tensor "w": bad data_offsets [-4, 12]'},
        {'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,17]}}',
          'tensor "w": data_offsets [0, 17] run past the end of the data (16 bytes)'},
        {'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}',
          'tensor "w": data_offsets [0, 12] hold 12 bytes, shape [4] of F32 needs 16'},
        {'{"w":{"dtype":"F64","shape":[4],"data_offsets":[0,16]}}',
          'tensor "w": data_offsets [0, 16] hold 16 bytes, shape [4] of F64 needs 32'},
        {'{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,16]}}',
          'tensor "w": shape [4611686018427387904] of F32 is too large'},
      }
      for _, c in ipairs(cases) do
        raw(path, c[1], data)
        H.errors(function() mg.load(path) end, "mg.load: " .. path .. ": " .. c[2])
      end
      -- fields past the three are ignored, as by the reference reader
      raw(path, '{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16],"extra":[{}]}}', data)
      same(mg.tensor{{1, 2}, {3, 4}}, mg.load(path).w)
      -- nonzero bool bytes read as true
      raw(path, '{"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}', "\0\2\255")
      same(mg.tensor{false, true, true}, mg.load(path).b)
    end)

    it("every truncation and many corruptions of a good file are errors or loads, never crashes", function()
      local path = tmp()
      local good = read(FIXTURE)
      for len = 0, #good - 1 do
        write(path, good:sub(1, len))
        local ok, err = pcall(mg.load, path)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("mg.load: ", 1, true))
      end
      local n = string.unpack("<I8", good)
      for i = 1, 8 + n, 3 do
        for _, byte in ipairs({"\0", "9", "\"", "{", "]", "\255"}) do
          write(path, good:sub(1, i - 1) .. byte .. good:sub(i + 1))
          local ok, err = pcall(mg.load, path)
          if not ok then assert.truthy(tostring(err):find("mg.load: ", 1, true), tostring(err)) end
        end
      end
    end)

    it("the byte helpers check their ranges", function()
      local core = require "moongrad.core"
      H.errors(function() core._tensor_from_bytes("abcd", 0, "float32", {2}) end,
        "bad argument #1 to '_tensor_from_bytes' (2 elements of 4 bytes from offset 0 run past the end of the string (4 bytes))")
      H.errors(function() core._tensor_from_bytes("abcd", 5, "float32", {}) end,
        "bad argument #2 to '_tensor_from_bytes' (offset 5 is outside the string (4 bytes))")
      H.errors(function() core._tensor_from_bytes("abcd", -1, "float32", {}) end, "offset -1 is outside")
      H.errors(function() core._tensor_from_bytes("abcd", 0, "float16", {}) end, "unknown dtype 'float16'")
      assert.equal(string.pack("<d<d", 1, 2), core._tensor_bytes(mg.tensor({1, 2}, {dtype = "float64"})))
      same(mg.tensor{{1, 3}, {2, 4}}, core._tensor_from_bytes(string.pack("<ffff", 1, 2, 3, 4), 0, "float32", {2, 2}):t())
    end)
  end)

  describe("nested tables (an optimizer's state_dict)", function()
    it("round-trips tensors, numbers, strings and booleans at any depth", function()
      local path = os.tmpname()
      local t = {w = mg.tensor{1, 2}, n = 3, x = 0.25, s = "hi", b = false, inf = math.huge,
        list = {mg.tensor{5}, 7, {deep = mg.tensor({1}, {dtype = "int64"})}}}
      mg.save(path, t)
      local back, md = mg.load(path)
      os.remove(path)
      assert.same({1, 2}, back.w:totable())
      assert.equal(3, back.n)
      assert.equal("integer", math.type(back.n))
      assert.equal(0.25, back.x)
      assert.equal("hi", back.s)
      assert.equal(false, back.b)
      assert.equal(math.huge, back.inf)
      assert.same({5}, back.list[1]:totable())
      assert.equal(7, back.list[2])
      assert.equal("int64", back.list[3].deep.dtype)
      assert.same({}, md) -- the structure entry is the library's, not returned
    end)

    it("saves an optimizer whose reloaded copy continues the same trajectory", function()
      local path = os.tmpname()
      mg.manual_seed(3)
      local p = mg.randn(4):requires_grad_()
      p.grad = mg.randn(4)
      local opt = mg.optim.Adam({p}, {lr = 0.01, amsgrad = true})
      opt:step()
      opt:step()
      mg.save(path, opt:state_dict())
      local q = p:detach():clone():requires_grad_()
      q.grad = p.grad:clone()
      local opt2 = mg.optim.Adam({q}, {lr = 0.01, amsgrad = true})
      opt2:load_state_dict(mg.load(path))
      os.remove(path)
      opt:step()
      opt2:step()
      assert.is_true(mg.equal(p, q))
    end)

    it("keeps its tensors readable by any safetensors reader, under dotted paths", function()
      local path = os.tmpname()
      mg.save(path, {state = {[1] = {exp_avg = mg.tensor{1, 2}}}})
      local f = assert(io.open(path, "rb"))
      local header = f:read("a")
      f:close()
      os.remove(path)
      assert.truthy(header:find('"state.1.exp_avg"', 1, true))
      assert.truthy(header:find('"moongrad.structure"', 1, true))
    end)
  end)
  describe("a crafted moongrad.structure", function()
    local cases = {
      {'[1,2]', "the root is not an object"},
      {'{"x":"i:1"}', 'key "x" in  is not \'i:<integer>\' or \'s:<string>\''},
      {'{"i:1.5":"i:1"}', 'key "i:1.5" in  is not'},
      {'{"s:a":3}', "a is 3, not a tagged string"},
      {'{"s:a":null}', 'unexpected character "n"'},
      {'{"s:a":"t:nope"}', 'a is "t:nope": the file holds no such tensor'},
      {'{"s:a":"i:x"}', 'a is "i:x": not a valid value of its type'},
      {'{"s:a":"b:maybe"}', 'a is "b:maybe": not a valid value of its type'},
      {'{"s:a":"q:1"}', 'a is "q:1": an unknown type tag'},
      {'{"s:a":{"s:b":[1]}}', "a.b is not an object"},
      {string.rep('{"s:a":', 150) .. '"i:1"' .. string.rep("}", 150),
        string.rep("a", 100, ".") .. " nests deeper than 100 tables"},
    }
    for _, case in ipairs(cases) do
      it("is refused with a message: " .. case[1]:sub(1, 40), function()
        local path = tmp()
        mg.save(path, {w = mg.ones(1)}, {["moongrad.structure"] = case[1]})
        H.errors(function() mg.load(path) end, "mg.load: " .. path .. ": bad moongrad.structure metadata: " .. case[2])
      end)
    end
  end)
end)
