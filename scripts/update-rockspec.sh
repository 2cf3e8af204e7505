#!/bin/sh
# Rewrites the sources list of rockspec/moongrad-scm-1.rockspec from the C files under src/
# (spec/build_spec.lua fails when one is missing). Run from the repository root.
list=$(find src -name '*.c' | sort | sed 's/.*/        "&",/')
awk -v list="$list" '
  /sources = \{/ { print; print list; skip = 1; next }
  skip && /^      \},/ { skip = 0 }
  !skip { print }
' rockspec/moongrad-scm-1.rockspec > rockspec/.tmp && mv rockspec/.tmp rockspec/moongrad-scm-1.rockspec
