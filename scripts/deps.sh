#!/bin/sh
# Installs what `make test` / `make demo` need on Debian 12, or names the packages when not root.
#   lua5.4        the interpreter the module is built for
#   liblua5.4-dev Lua's headers, to compile the C module
#   luarocks      installs the module like any rock (CI checks the rockspec)
#   lua-busted    the spec runner (runs under 5.4 as `busted --lua=lua5.4`)
#   zlib1g-dev    zlib, for moongrad.idx (mg.data.read_idx's gzip files; the core does not need it)
# and, optional (installed when root, else only named: the specs that use it are skipped without it):
#   dataset-fashion-mnist  Fashion-MNIST under /usr/share/datasets/fashion-mnist (the image examples)
optional=""
[ -d /usr/share/datasets/fashion-mnist ] || optional="$optional dataset-fashion-mnist"
missing=""
command -v lua5.4 >/dev/null 2>&1 || missing="$missing lua5.4"
[ -f /usr/include/lua5.4/lua.h ] || missing="$missing liblua5.4-dev"
command -v luarocks >/dev/null 2>&1 || missing="$missing luarocks"
command -v busted >/dev/null 2>&1 || missing="$missing lua-busted"
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
[ -f /usr/include/zlib.h ] || missing="$missing zlib1g-dev"
if [ -z "$missing" ] && { [ -z "$optional" ] || [ "$(id -u)" != 0 ]; }; then
    [ -n "$optional" ] && echo "deps: optional, for the image examples: sudo apt-get install$optional" >&2
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$missing$optional"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq $missing $optional >/dev/null || {
        echo "deps: apt-get install$missing$optional failed" >&2; [ -z "$missing" ] || exit 1; }
else
    echo "moongrad needs these Debian packages:$missing" >&2
    echo "install them with:  sudo apt-get install$missing" >&2
    exit 1
fi
