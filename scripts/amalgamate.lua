--[[
amalgamate.lua: writes moongrad as one C file (build/moongrad.c), for a host that drops it into
its tree instead of linking build/libmoongrad.a.

    lua5.4 scripts/amalgamate.lua OUT CC "CPPFLAGS" "CFLAGS" src/core/a.c src/ops/b.c ...
    (`make amalgamation` runs it with the Makefile's CC, include flags, the flags every build of
    moongrad is compiled with (MG_CFLAGS), and source list; CFLAGS is only written into the
    result's first comment)

Compile the result with those flags, -O3 -fno-math-errno -ffp-contract=off (the last one keeps
the numbers the same on every build: GCC's default in gnu modes, -ffp-contract=fast, fuses a*b+c
on FMA targets such as -march=native), and link -llua5.4 -lm -lpthread:

    cc -std=gnu11 -O3 -fno-math-errno -ffp-contract=off -c moongrad.c $(pkg-config --cflags lua5.4)

How the files are joined (the simplest approach that survives new files and new macros):
  1. Headers first. Every `#include "..."` of every source is followed and the header's text is
     inlined once, at its first use, in dependency order (include/moongrad.h comes first). Headers
     are inlined before any .c file, so nothing below renames a token inside a header.
  2. Then each .c file, whole, its `#include "..."` lines blanked (line numbers stay right).
     One `#line` directive per file (and after each inlined header) points diagnostics and
     debuggers at the original files.
  3. Names private to a file (static functions and variables, typedefs, struct/union/enum tags,
     enum constants) that another file also uses, as its own private name or as a local variable
     (which -Wshadow would report), are renamed for that file only:
     `#define name mgA_<dir>_<file>_name` before it and `#undef name` after. The declarations are
     found in the preprocessor's output (`CC -E`), so names made by macros such as
     DEFINE_BINARY(add_f32, ...) are seen too; stringized names (`#name`) keep their spelling.
  4. GCC's -Wmaybe-uninitialized is switched off in the file (a pragma at the top): once it sees
     every file it inlines across them and reports out-parameters set on every MG_OK path.
  5. Every macro a .c file #defines (and no header defines) is #undef'd at the end of that file,
     so DEFINE_BINARY, WRAP, MAX_NAN, ... of one file cannot meet another file's.
spec/embed_spec.lua compiles the result with -Wall -Wextra and runs examples/embed.c against it.
]]

local out_path, cc, cppflags, cflags = arg[1], arg[2], arg[3], arg[4]
local sources = table.move(arg, 5, #arg, 1, {})
assert(out_path and cc and cppflags and cflags and #sources > 0,
  "usage: amalgamate.lua OUT CC CPPFLAGS CFLAGS file.c...")

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function lines(text)
  local t = {}
  for l in (text:gsub("\n?$", "\n")):gmatch("(.-)\n") do t[#t + 1] = l end
  return t
end

local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end

-- "a/b/../c.h" -> "a/c.h"
local function normalize(p)
  local parts = {}
  for seg in p:gmatch("[^/]+") do
    if seg == ".." and #parts > 0 and parts[#parts] ~= ".." then parts[#parts] = nil
    elseif seg ~= "." then parts[#parts + 1] = seg end
  end
  return table.concat(parts, "/")
end

local include_dirs = {}
for d in cppflags:gmatch("%-I%s*(%S+)") do include_dirs[#include_dirs + 1] = d end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

-- a quoted include: next to the includer, then the -I directories (as the compiler does)
local function resolve(name, from)
  local cand = normalize(dirname(from) .. "/" .. name)
  if exists(cand) then return cand end
  for _, d in ipairs(include_dirs) do
    cand = normalize(d .. "/" .. name)
    if exists(cand) then return cand end
  end
  return nil
end

local out = {}
local function emit(s) out[#out + 1] = s end
local function line_directive(n, path) emit(string.format('#line %d "%s"', n, path)) end

-- ---- 1. headers ------------------------------------------------------------------------------
local inlined = {}     -- path -> true once emitted
local header_macros = {}

local function scan_defines(text, into)
  for name in text:gmatch("\n[ \t]*#[ \t]*define[ \t]+([%a_][%w_]*)") do into[name] = true end
  local first = text:match("^[ \t]*#[ \t]*define[ \t]+([%a_][%w_]*)")
  if first then into[first] = true end
end

local function inline_header(path)
  if inlined[path] then return end
  inlined[path] = true
  local text = read(path)
  scan_defines(text, header_macros)
  line_directive(1, path)
  for i, l in ipairs(lines(text)) do
    local name = l:match('^%s*#%s*include%s*"([^"]+)"')
    local dep = name and resolve(name, path)
    if dep then
      emit("/* #include \"" .. name .. "\": inlined above */")
      if not inlined[dep] then
        inline_header(dep)
        line_directive(i + 1, path)
      end
    else
      emit(l)
    end
  end
end

emit("/* moongrad.c: moongrad in one file, generated by scripts/amalgamate.lua; do not edit.")
emit(" * Compile with " .. cflags .. " (the flags of every build of moongrad: the same")
emit(" * numbers with any -march); link -llua5.4 -lm -lpthread.")
emit(" * Sources: " .. table.concat(sources, " "))
emit(" */")
emit("#if defined(__GNUC__) && !defined(__clang__)")
emit("/* Seeing every file, GCC inlines across them and then reports -Wmaybe-uninitialized for")
emit(" * out-parameters that are set on every MG_OK path (false positives); the per-file build,")
emit(" * `make check-werror`, keeps the warning on. */")
emit("#pragma GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
emit("#endif")
if exists("include/moongrad.h") then inline_header("include/moongrad.h") end
for _, src in ipairs(sources) do
  for _, l in ipairs(lines(read(src))) do
    local name = l:match('^%s*#%s*include%s*"([^"]+)"')
    local dep = name and resolve(name, src)
    if name and not dep then error(src .. ": cannot find \"" .. name .. "\"") end
    if dep then inline_header(dep) end
  end
end

-- ---- 2. file-scope names of each .c file, from the preprocessor's output ---------------------
local keywords = {}
for k in ([[void char short int long float double signed unsigned _Bool _Complex const volatile
  restrict __restrict __restrict__ static inline __inline __inline__ extern typedef struct union
  enum register auto _Noreturn _Thread_local __thread __extension__ _Atomic]]):gmatch("%S+") do
  keywords[k] = true
end

local function tokenize(code)
  local toks, i, n = {}, 1, #code
  while i <= n do
    local c = code:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c:match("[%a_]") then
      local s, e = code:find("^[%w_]+", i)
      toks[#toks + 1] = code:sub(s, e)
      i = e + 1
    elseif c:match("%d") then
      local _, e = code:find("^[%w_%.]+", i)
      toks[#toks + 1] = "0"
      i = e + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n and code:sub(j, j) ~= c do
        if code:sub(j, j) == "\\" then j = j + 1 end
        j = j + 1
      end
      toks[#toks + 1] = "0"
      i = j + 1
    else
      toks[#toks + 1] = c
      i = i + 1
    end
  end
  return toks
end

-- the tokens of `src` itself (not of its headers), after macro expansion
local function own_tokens(src)
  local cmd = string.format("%s -E %s %s", cc, cppflags, src)
  local p = assert(io.popen(cmd, "r"))
  local text = p:read("a")
  local ok = p:close()
  assert(ok and #text > 0, "amalgamate: `" .. cmd .. "` failed")
  local mine, cur = {}, nil
  for l in text:gmatch("[^\n]*") do
    local f = l:match('^#%s*%d+%s+"([^"]*)"')
    if f then cur = normalize(f)
    elseif not l:match("^%s*#") and cur == normalize(src) then mine[#mine + 1] = l end
  end
  return tokenize(table.concat(mine, "\n"))
end

-- drops __attribute__((...)), __asm__(...), _Alignas(...)
local function strip_attributes(toks)
  local r, i = {}, 1
  while i <= #toks do
    local t = toks[i]
    if (t == "__attribute__" or t == "__asm__" or t == "asm" or t == "__asm" or t == "_Alignas")
        and toks[i + 1] == "(" then
      local depth = 0
      repeat
        i = i + 1
        if toks[i] == "(" then depth = depth + 1 elseif toks[i] == ")" then depth = depth - 1 end
      until depth == 0 or i > #toks
      i = i + 1
    else
      r[#r + 1] = t
      i = i + 1
    end
  end
  return r
end

-- the name a declarator declares: the first non-keyword identifier followed by ( ) [ = , or the
-- end, except a type followed by a grouping "(*"
local function declarator_name(toks, first)
  for i = first, #toks do
    local t, nx = toks[i], toks[i + 1]
    if t:match("^[%a_][%w_]*$") and not keywords[t] then
      if nx == nil or nx == ")" or nx == "[" or nx == "=" or nx == "," or nx == ";" or nx == ":" then
        return t
      elseif nx == "(" and toks[i + 2] ~= "*" and toks[i + 2] ~= "^" then
        return t
      end
    end
  end
end

-- file-scope names that src declares: set name -> true
local function declared_names(src)
  local toks = strip_attributes(own_tokens(src))
  local names, used = {}, {}
  for _, t in ipairs(toks) do
    if t:match("^[%a_][%w_]*$") then used[t] = true end
  end
  local decl = {}           -- the current depth-0 declaration, brace bodies left out
  local i = 1
  local function finish()
    if #decl == 0 then return end
    local is_static, is_typedef = false, false
    for _, t in ipairs(decl) do
      if t == "static" then is_static = true elseif t == "typedef" then is_typedef = true end
    end
    if is_static or is_typedef then
      -- split into declarators at depth-0 commas (brace bodies are already gone)
      local start, depth = 1, 0
      for j = 1, #decl + 1 do
        local t = decl[j]
        if t == "(" or t == "[" then depth = depth + 1
        elseif t == ")" or t == "]" then depth = depth - 1 end
        if t == nil or (t == "," and depth == 0) then
          local part = table.move(decl, start, j - 1, 1, {})
          local eq
          for k, u in ipairs(part) do if u == "=" then eq = k break end end
          if eq then part = table.move(part, 1, eq - 1, 1, {}) end
          local name = declarator_name(part, 1)
          if name then names[name] = true end
          start = j + 1
        end
      end
    end
    decl = {}
  end
  while i <= #toks do
    local t = toks[i]
    if t == "{" then
      local prev = decl[#decl]
      local tag_kw, tag = decl[#decl - 1], decl[#decl]
      if tag_kw == "struct" or tag_kw == "union" or tag_kw == "enum" then names[tag] = true end
      local is_enum = prev == "enum" or tag_kw == "enum"
      -- skip the body; an enum's constants are names too
      local depth, j = 1, i + 1
      local expect_const = true
      while j <= #toks and depth > 0 do
        local u = toks[j]
        if u == "{" or u == "(" or u == "[" then depth = depth + 1
        elseif u == "}" or u == ")" or u == "]" then depth = depth - 1 end
        if is_enum and depth == 1 then
          if expect_const and u:match("^[%a_][%w_]*$") then names[u] = true expect_const = false
          elseif u == "," then expect_const = true end
        end
        j = j + 1
      end
      i = j
      if prev == ")" then finish() end   -- a function body ends the declaration
    elseif t == ";" then
      finish()
      i = i + 1
    else
      decl[#decl + 1] = t
      i = i + 1
    end
  end
  return names, used
end

-- how many files use each identifier (declare it, or name it in their own code)
local per_file, count = {}, {}
for _, src in ipairs(sources) do
  local names, used = declared_names(src)
  per_file[src] = names
  for name in pairs(used) do count[name] = (count[name] or 0) + 1 end
end

-- ---- 3. the .c files -------------------------------------------------------------------------
local function sorted(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

for _, src in ipairs(sources) do
  local text = read(src)
  local prefix = "mgA_" .. src:gsub("^src/", ""):gsub("%.c$", ""):gsub("[^%w]", "_") .. "_"
  local renamed = {}
  for _, name in ipairs(sorted(per_file[src])) do
    if count[name] > 1 then renamed[#renamed + 1] = name end
  end
  emit("")
  emit("/* ======== " .. src .. " ======== */")
  for _, name in ipairs(renamed) do emit("#define " .. name .. " " .. prefix .. name) end
  line_directive(1, src)
  for _, l in ipairs(lines(text)) do
    local name = l:match('^%s*#%s*include%s*"([^"]+)"')
    if name then
      emit("/* #include \"" .. name .. "\": inlined above */")
    else
      emit(l)
    end
  end
  local own = {}
  scan_defines("\n" .. text, own)
  for _, name in ipairs(renamed) do own[name] = true end
  for _, name in ipairs(sorted(own)) do
    if not header_macros[name] then emit("#undef " .. name) end
  end
end

local f = assert(io.open(out_path, "wb"))
f:write(table.concat(out, "\n"), "\n")
f:close()
