#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# abi-exports: libloopsnap.so.1 must export exactly one symbol, the ABI's
# entry point, in the version node LOOPSNAP_1, and carry the soname
# libloopsnap.so.1 (STYLE R6, docs/abi.md).
#
#   exports.sh PATH-TO-libloopsnap.so.1
set -euo pipefail
lib=$1
command -v nm >/dev/null || { echo "SKIP: nm (binutils) not installed"; exit 77; }
command -v objdump >/dev/null || { echo "SKIP: objdump (binutils) not installed"; exit 77; }

echo "nm -D --defined-only $lib:"
nm -D --defined-only "$lib" | tee /dev/stderr >/dev/null
# A version script adds its node name as an absolute symbol (type A); that
# is the version definition, not an exported symbol.
mapfile -t syms < <(nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }')
mapfile -t nodes < <(nm -D --defined-only "$lib" | awk '$2 == "A" { print $3 }')
status=0
if [ "${#syms[@]}" -ne 1 ] || [ "${syms[0]}" != "loopsnap_plugin_v1@@LOOPSNAP_1" ]; then
  echo "FAIL: expected exactly one exported symbol loopsnap_plugin_v1@@LOOPSNAP_1, got ${#syms[@]}: ${syms[*]}"
  status=1
fi
if [ "${#nodes[@]}" -ne 1 ] || [ "${nodes[0]}" != "LOOPSNAP_1" ]; then
  echo "FAIL: expected the one version node LOOPSNAP_1, got: ${nodes[*]:-none}"
  status=1
fi
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
if [ "$soname" != "libloopsnap.so.1" ]; then
  echo "FAIL: soname is '$soname', not libloopsnap.so.1"
  status=1
fi
[ "$status" -eq 0 ] && echo "PASS: one exported symbol, version node LOOPSNAP_1, soname $soname"
exit "$status"
