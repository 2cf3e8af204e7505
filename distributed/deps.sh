#!/bin/sh
# Open MPI for moongrad.distributed (Debian 12: Open MPI 4.1.4). Installs it when missing and this
# runs as root; otherwise names the packages to install.
missing=""
for p in libopenmpi-dev openmpi-bin; do
    # installed, not merely known (a removed package keeps a dpkg -s entry for its config files)
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq $missing >/dev/null
else
    echo "moongrad.distributed needs Open MPI: install$missing (e.g. sudo apt-get install$missing)" >&2
    exit 1
fi
