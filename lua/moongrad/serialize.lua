-- mg.save / mg.load: tables of named tensors in the safetensors format
-- (https://github.com/huggingface/safetensors), so weights move to and from PyTorch.
--
-- The format, whole: an 8-byte little-endian unsigned header length N, then N bytes of JSON (here
-- padded with spaces to a multiple of 8, as the reference writer does), then the data. The header
-- is an object name -> {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, offsets
-- in bytes from the start of the data, plus an optional "__metadata__" object string -> string.
-- Tensors are row-major, little-endian; BOOL is one byte per element.
--
-- This file does the file I/O, the header (a JSON writer and a small strict JSON reader: objects,
-- arrays, strings with escapes, integers; nothing else appears in a safetensors header) and every
-- check; the bytes of each tensor are copied by core._tensor_bytes / core._tensor_from_bytes
-- (src/bind/serialize.c). A file that is truncated or corrupt gives an error, never a bad tensor.
local core = require "moongrad.core"

-- argerror(fname, argn, fmt, ...): an argument's error at the caller's line (moongrad.util)
local argerror = require("moongrad.util").argerror

local M = {}

-- moongrad dtype <-> safetensors dtype
local TO_ST = { float32 = "F32", float64 = "F64", int64 = "I64", bool = "BOOL" }
local FROM_ST = { F32 = "float32", F64 = "float64", I64 = "int64", BOOL = "bool" }
local ITEM = { F32 = 4, F64 = 8, I64 = 8, BOOL = 1 }
-- the other dtypes of the format, named in the error for a file that holds one
local KNOWN_ST = { F16 = true, BF16 = true, I8 = true, I16 = true, I32 = true, U8 = true, U16 = true,
  U32 = true, U64 = true, F8_E4M3 = true, F8_E5M2 = true, C64 = true }

local MAX_HEADER = 100000000 -- the reference implementation's limit (100 MB)

-- ---- JSON writer ------------------------------------------------------------------------------

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or (c:byte() < 32 and string.format("\\u%04x", c:byte())) or c
  end) .. '"'
end

-- ---- JSON reader ------------------------------------------------------------------------------
-- read_json(text) -> value, or nil and a message with the byte position. Objects become tables
-- with string keys (duplicate keys are an error), arrays become lists marked with ARRAY_MT (so
-- that [] and {} differ); integers only.

local ARRAY_MT = {}
local function is_array(v) return getmetatable(v) == ARRAY_MT end
local function is_object(v) return type(v) == "table" and getmetatable(v) == nil end

local function read_json(text)
  local pos = 1
  local fail_msg

  local function fail(msg)
    fail_msg = fail_msg or string.format("%s at byte %d of the header", msg, pos)
    error(fail_msg, 0)
  end

  local function skip()
    pos = text:find("[^ \t\r\n]", pos) or #text + 1
  end

  local value

  local function str()
    pos = pos + 1 -- the opening quote
    local parts = {}
    while true do
      local stop = text:find('["\\%c]', pos)
      if not stop then fail("unterminated string") end
      parts[#parts + 1] = text:sub(pos, stop - 1)
      pos = stop
      local c = text:sub(pos, pos)
      if c == '"' then
        pos = pos + 1
        break
      elseif c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local simple = ({ ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r",
          t = "\t" })[e]
        if simple then
          parts[#parts + 1] = simple
          pos = pos + 2
        elseif e == "u" then
          local hex = text:match("^%x%x%x%x", pos + 2)
          if not hex then fail("bad \\u escape") end
          local cp = tonumber(hex, 16)
          pos = pos + 6
          if cp >= 0xD800 and cp <= 0xDBFF then
            local low = text:match("^\\u(%x%x%x%x)", pos)
            low = low and tonumber(low, 16)
            if not low or low < 0xDC00 or low > 0xDFFF then fail("unpaired surrogate in \\u escape") end
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00)
            pos = pos + 6
          elseif cp >= 0xDC00 and cp <= 0xDFFF then
            fail("unpaired surrogate in \\u escape")
          end
          parts[#parts + 1] = utf8.char(cp)
        else
          fail("bad escape in string")
        end
      else
        fail("control character in string")
      end
    end
    return table.concat(parts)
  end

  -- At '{' or '[': steps past it; true (and past `close` too) when the container is empty.
  local function opens_empty(close)
    pos = pos + 1
    skip()
    if text:sub(pos, pos) ~= close then return false end
    pos = pos + 1
    return true
  end

  -- After a member or an element: steps past `close` (true) or a ',' (false); else an error.
  local function closes(close)
    skip()
    local c = text:sub(pos, pos)
    if c ~= close and c ~= "," then fail(string.format("expected ',' or '%s'", close)) end
    pos = pos + 1
    return c == close
  end

  local function object()
    local t = {}
    if opens_empty("}") then return t end
    repeat
      skip()
      if text:sub(pos, pos) ~= '"' then fail("expected a string key") end
      local key_pos = pos
      local k = str()
      if t[k] ~= nil then
        pos = key_pos
        fail(string.format("duplicate key %s", json_string(k)))
      end
      skip()
      if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
      pos = pos + 1
      t[k] = value()
    until closes("}")
    return t
  end

  local function array()
    local t = setmetatable({}, ARRAY_MT)
    if opens_empty("]") then return t end
    repeat t[#t + 1] = value() until closes("]")
    return t
  end

  function value()
    skip()
    local c = text:sub(pos, pos)
    if c == "{" then return object()
    elseif c == "[" then return array()
    elseif c == '"' then return str()
    elseif c:match("[%-%d]") then
      local num = text:match("^%-?%d+", pos)
      if not num or text:match("^[%.eE]", pos + #num) then fail("expected an integer") end
      if num:match("^%-?0%d") then fail("integer with a leading zero") end
      local n = math.tointeger(tonumber(num))
      if not n or #num > 19 + (num:sub(1, 1) == "-" and 1 or 0) then fail("integer out of range") end
      pos = pos + #num
      return n
    elseif c == "" then
      fail("unexpected end")
    else
      fail(string.format("unexpected character %q", c))
    end
  end

  local ok, result = pcall(function()
    local v = value()
    skip()
    if pos <= #text then fail("trailing characters after the JSON value") end
    return v
  end)
  if ok then return result end
  if fail_msg then return nil, fail_msg end
  error(result, 0) -- not ours: a real bug
end

M._read_json = read_json

-- ---- save -------------------------------------------------------------------------------------

-- M._open is io.open; a spec may swap in a file whose writes fail, to check that a failed save
-- leaves the previous file whole.
M._open = io.open

-- Writes size, header and blobs to a temporary file beside `path` (same directory, so same file
-- system: the rename is atomic), flushes it to the disk, and only then renames it over `path`. An
-- error, a full disk or a kill -9 midway leaves the previous file as it was; the temporary is
-- removed on every error this process sees. Errors are raised at level 3: save_flat is reached
-- by tail calls from mg.save, so that is mg.save's caller.
local function write_atomically(path, size, header, blobs)
  local tmp = string.format("%s.%d.tmp", path, core._pid())
  local f, err = M._open(tmp, "wb")
  if not f then
    local reason = tostring(err):gsub("^" .. tmp:gsub("%p", "%%%0") .. ": ", "")
    error(string.format("mg.save: cannot open %s: %s", path, reason), 3)
  end
  local ok, werr = f:write(size, header)
  for _, b in ipairs(blobs) do
    if not ok then break end
    ok, werr = f:write(b)
  end
  if ok then ok, werr = core._sync(f) end
  local cok, cerr = f:close()
  if ok and cok then ok, werr = os.rename(tmp, path) end
  if not ok or not cok then
    os.remove(tmp)
    error(string.format("mg.save: %s: write failed: %s", path, werr or cerr), 3)
  end
end

-- The flat format: a table string -> tensor (what safetensors holds).
local function save_flat(path, tensors, metadata)
  if type(path) ~= "string" then argerror("save", 1, "string path expected, got %s", type(path)) end
  if type(tensors) ~= "table" or core.is_tensor(tensors) then
    argerror("save", 2, "table of tensors expected, got %s", core.is_tensor(tensors) and "tensor" or type(tensors))
  end
  if metadata ~= nil and type(metadata) ~= "table" then
    argerror("save", 3, "table of strings expected, got %s", type(metadata))
  end
  local names = {}
  for k, v in pairs(tensors) do
    if type(k) ~= "string" then
      argerror("save", 2, "keys must be strings, got %s key %s", type(k), tostring(k))
    end
    if not core.is_tensor(v) then
      argerror("save", 2, "tensors[%q] is a %s, expected a tensor", k, type(v))
    end
    if k == "__metadata__" then argerror("save", 2, "'__metadata__' is reserved and cannot name a tensor") end
    if not utf8.len(k) then argerror("save", 2, "key %q is not valid UTF-8", k) end
    names[#names + 1] = k
  end
  table.sort(names)

  local entries = {}
  if metadata ~= nil then
    local mkeys = {}
    for k, v in pairs(metadata) do
      if type(k) ~= "string" or type(v) ~= "string" then
        argerror("save", 3, "metadata must map strings to strings, got %s %s -> %s", type(k), tostring(k), type(v))
      end
      if not utf8.len(k) or not utf8.len(v) then
        argerror("save", 3, "metadata %q is not valid UTF-8", k)
      end
      mkeys[#mkeys + 1] = k
    end
    table.sort(mkeys)
    if #mkeys > 0 then
      local items = {}
      for i, k in ipairs(mkeys) do items[i] = json_string(k) .. ":" .. json_string(metadata[k]) end
      entries[#entries + 1] = '"__metadata__":{' .. table.concat(items, ",") .. "}"
    end
  end

  local blobs, offset = {}, 0
  for i, k in ipairs(names) do
    local t = tensors[k]
    local bytes = core._tensor_bytes(t)
    blobs[i] = bytes
    entries[#entries + 1] = string.format('%s:{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}',
      json_string(k), TO_ST[t.dtype], table.concat(t.shape, ","), offset, offset + #bytes)
    offset = offset + #bytes
  end
  local header = "{" .. table.concat(entries, ",") .. "}"
  header = header .. string.rep(" ", (8 - #header % 8) % 8)

  write_atomically(path, string.pack("<I8", #header), header, blobs)
end

-- ---- load -------------------------------------------------------------------------------------

local function shape_str(shape)
  local parts = {}
  for i, v in ipairs(shape) do parts[i] = math.type(v) == "integer" and tostring(v) or "?" end
  return "[" .. table.concat(parts, ", ") .. "]"
end

-- mg.load(path) -> tensors, metadata
-- Called by M.load: its errors are raised at level 3, which is M.load's caller.
local function load_flat(path)
  local f, err = io.open(path, "rb")
  if not f then error("mg.load: cannot open " .. err, 3) end
  local data = f:read("a")
  f:close()
  if not data then error("mg.load: " .. path .. ": cannot read the file", 3) end
  local function bad(fmt, ...)
    error("mg.load: " .. path .. ": " .. string.format(fmt, ...), 4)
  end

  if #data < 8 then bad("file too short for a safetensors header (%d bytes, need at least 8)", #data) end
  local n = string.unpack("<i8", data)
  if n < 0 or 8 + n > #data then bad("header length %d is past the end of the file (%d bytes)", n, #data) end
  if n > MAX_HEADER then bad("header length %d is over the limit of %d bytes", n, MAX_HEADER) end
  local header, jerr = read_json(data:sub(9, 8 + n))
  if header == nil then bad("bad JSON header: %s", jerr) end
  if not is_object(header) then
    bad("the header is not a JSON object")
  end
  local base, data_len = 8 + n, #data - 8 - n

  local metadata = {}
  local meta = header.__metadata__
  if meta ~= nil then
    if not is_object(meta) then bad("__metadata__ is not an object") end
    for k, v in pairs(meta) do
      if type(v) ~= "string" then bad("__metadata__[%q] is not a string", k) end
      metadata[k] = v
    end
  end

  local names = {}
  for k in pairs(header) do
    if k ~= "__metadata__" then names[#names + 1] = k end
  end
  table.sort(names)
  local out = {}
  for _, name in ipairs(names) do
    local info = header[name]
    if not is_object(info) then bad("tensor %q: entry is not an object", name) end
    local dt, shape, offsets = info.dtype, info.shape, info.data_offsets
    if type(dt) ~= "string" then bad("tensor %q: missing or non-string dtype", name) end
    if not FROM_ST[dt] then
      if KNOWN_ST[dt] then
        bad("tensor %q has dtype %s, which moongrad does not support (it reads F32, F64, I64 and BOOL)", name, dt)
      end
      bad("tensor %q has unknown dtype %q", name, dt)
    end
    if not is_array(shape) then bad("tensor %q: shape is not an array", name) end
    if #shape > 16 then bad("tensor %q: shape %s has more than 16 dimensions", name, shape_str(shape)) end
    local numel = 1
    for i, s in ipairs(shape) do
      if math.type(s) ~= "integer" or s < 0 then
        bad("tensor %q: shape has a bad size at position %d (a non-negative integer expected)", name, i)
      end
      if s > 0 and numel > (1 << 62) // s then bad("tensor %q: shape %s is too large", name, shape_str(shape)) end
      numel = numel * s
    end
    if not is_array(offsets) or #offsets ~= 2 or math.type(offsets[1]) ~= "integer"
        or math.type(offsets[2]) ~= "integer" then
      bad("tensor %q: data_offsets is not a pair of integers", name)
    end
    local b, e = offsets[1], offsets[2]
    if b < 0 or e < b then bad("tensor %q: bad data_offsets [%d, %d]", name, b, e) end
    if e > data_len then
      bad("tensor %q: data_offsets [%d, %d] run past the end of the data (%d bytes)", name, b, e, data_len)
    end
    if numel > (1 << 62) // ITEM[dt] then bad("tensor %q: shape %s of %s is too large", name, shape_str(shape), dt) end
    local need = numel * ITEM[dt]
    if e - b ~= need then
      bad("tensor %q: data_offsets [%d, %d] hold %d bytes, shape %s of %s needs %d", name, b, e, e - b,
        shape_str(shape), dt, need)
    end
    out[name] = core._tensor_from_bytes(data, base + b, FROM_ST[dt], shape)
  end
  return out, metadata
end

-- ---- nested tables ----------------------------------------------------------------------------
-- An optimizer's state_dict ({state = {[1] = {step = 3, exp_avg = t}}, param_groups = {...}}) is
-- more than names and tensors. Such a table is saved flat all the same, so that any safetensors
-- reader sees its tensors: each tensor under its dotted path ("state.1.exp_avg"), and the shape of
-- the table with its other values in one metadata entry, STRUCTURE, as JSON strings that carry
-- their Lua type: "t:<path>" a tensor, "i:3" an integer, "f:0.001" a float, "s:..." a string,
-- "b:true" a boolean; keys likewise "s:name" or "i:1".
local STRUCTURE = "moongrad.structure"

local function is_flat(tbl)
  for k, v in pairs(tbl) do
    if type(k) ~= "string" or not core.is_tensor(v) then return false end
  end
  return true
end

-- Encodes tbl (at dotted path `path`) into JSON, collecting its tensors; returns the JSON text,
-- or nil and the complaint about the first value it cannot save.
local function encode(tbl, path, tensors, seen)
  if seen[tbl] then return nil, string.format("%s refers to itself", path ~= "" and path or "the table") end
  seen[tbl] = true
  local items = {}
  for k, v in pairs(tbl) do
    local key
    if math.type(k) == "integer" then key = "i:" .. k
    elseif type(k) == "string" then key = "s:" .. k
    else return nil, string.format("key %s of %s is a %s (strings and integers can be saved)", tostring(k),
      path ~= "" and path or "the table", math.type(k) or type(k)) end
    local sub = (path ~= "" and path .. "." or "") .. tostring(k)
    local val
    if core.is_tensor(v) then
      if tensors[sub] then return nil, string.format("two values have the path %q", sub) end
      tensors[sub] = v
      val = json_string("t:" .. sub)
    elseif math.type(v) == "integer" then val = json_string("i:" .. v)
    elseif math.type(v) == "float" then val = json_string(string.format("f:%.17g", v))
    elseif type(v) == "string" then val = json_string("s:" .. v)
    elseif type(v) == "boolean" then val = json_string("b:" .. tostring(v))
    elseif type(v) == "table" then
      local err
      val, err = encode(v, sub, tensors, seen)
      if not val then return nil, err end
    else
      return nil, string.format("%s is a %s (tensors, numbers, strings, booleans and tables can be saved)",
        sub, type(v))
    end
    items[#items + 1] = json_string(key) .. ":" .. val
  end
  seen[tbl] = nil
  table.sort(items) -- the same table always gives the same bytes
  return "{" .. table.concat(items, ",") .. "}"
end

-- The structure `encode` wrote, rebuilt; nil and a message for anything encode would not have
-- written (a crafted file): a key or value without its type tag, an integer that is not one, a
-- tensor the file does not hold, an array, or nesting deeper than MAX_DEPTH.
local MAX_DEPTH = 100
local function decode(obj, tensors, path, depth)
  if not is_object(obj) then return nil, string.format("%s is not an object", path == "" and "the root" or path) end
  if depth > MAX_DEPTH then return nil, string.format("%s nests deeper than %d tables", path, MAX_DEPTH) end
  local out = {}
  for key, v in pairs(obj) do
    local kt, kv = key:match("^(%a):(.*)$")
    local k = (kt == "i" and math.tointeger(tonumber(kv))) or (kt == "s" and kv) or nil
    if k == nil then return nil, string.format("key %q in %s is not 'i:<integer>' or 's:<string>'", key, path) end
    local sub = path == "" and kv or path .. "." .. kv
    if type(v) == "table" then
      local err
      out[k], err = decode(v, tensors, sub, depth + 1)
      if err then return nil, err end
    else
      local t, x = tostring(v):match("^(%a):(.*)$")
      if type(v) ~= "string" or not t then
        return nil, string.format("%s is %s, not a tagged string", sub, tostring(v))
      end
      if t == "t" then out[k] = tensors[x]
      elseif t == "i" then out[k] = math.tointeger(tonumber(x))
      elseif t == "f" then
        out[k] = (tonumber(x) or (x == "inf" and math.huge) or (x == "-inf" and -math.huge) or 0 / 0) + 0.0
      elseif t == "b" then out[k] = x == "true"
      elseif t == "s" then out[k] = x
      end
      if out[k] == nil or (t == "b" and x ~= "true" and x ~= "false") then
        return nil, string.format("%s is %q: %s", sub, v, t == "t" and "the file holds no such tensor"
          or (t == "i" or t == "b" or t == "f") and "not a valid value of its type" or "an unknown type tag")
      end
    end
  end
  return out
end

-- mg.save(path, tensors [, metadata]): a table of named tensors, or any nested table of tensors,
-- numbers, strings and booleans (an optimizer's state_dict).
function M.save(path, tensors, metadata)
  if type(tensors) ~= "table" or core.is_tensor(tensors) or is_flat(tensors) then
    return save_flat(path, tensors, metadata)
  end
  if type(path) ~= "string" then argerror("save", 1, "string path expected, got %s", type(path)) end
  if metadata ~= nil and type(metadata) ~= "table" then
    argerror("save", 3, "table of strings expected, got %s", type(metadata))
  end
  local flat = {}
  local text, err = encode(tensors, "", flat, {})
  if not text then argerror("save", 2, "%s", err) end
  local md = {}
  for k, v in pairs(metadata or {}) do md[k] = v end
  md[STRUCTURE] = text
  return save_flat(path, flat, md)
end

-- mg.load(path): the table that was saved (flat, or rebuilt from its structure), and the metadata.
function M.load(path)
  if type(path) ~= "string" then argerror("load", 1, "string path expected, got %s", type(path)) end
  local tensors, metadata = load_flat(path)
  local text = metadata[STRUCTURE]
  if not text then return tensors, metadata end
  local ok, obj, jerr = pcall(read_json, text)
  if not ok or type(obj) ~= "table" then
    error(string.format("mg.load: %s: bad %s metadata: %s", path, STRUCTURE, tostring(jerr or obj)), 2)
  end
  metadata[STRUCTURE] = nil
  local out, derr = decode(obj, tensors, "", 1)
  if not out then error(string.format("mg.load: %s: bad %s metadata: %s", path, STRUCTURE, derr), 2) end
  return out, metadata
end

return M
