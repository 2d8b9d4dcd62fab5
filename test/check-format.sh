#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The one code style (.clang-format): every C source and header must be
# formatted. Run by CTest as `style-clang-format`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 77; }
mapfile -t files < <(find util loop mount idmap snapshot plugin test \
  -name '*.[ch]' -type f 2>/dev/null | sort)
echo "checking ${#files[@]} files with $(clang-format --version)"
clang-format --dry-run -Werror "${files[@]}"
echo "all ${#files[@]} files formatted"
