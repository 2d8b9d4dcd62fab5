#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The whole test suite from a fresh clone: installs dependencies, configures,
# builds everything (warnings are errors), and runs every test through CTest.
#
#   ./test.sh                    build into build/ and test
#   LOOPSNAP_SANITIZE=ON ./test.sh   ASan+UBSan build into build-sanitize/
set -euo pipefail
cd "$(dirname "$0")"

./setup.sh

sanitize="${LOOPSNAP_SANITIZE:-OFF}"
builddir=build
[ "$sanitize" = ON ] && builddir=build-sanitize

cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLOOPSNAP_WERROR=ON -DLOOPSNAP_SANITIZE="$sanitize" >/dev/null
cmake --build "$builddir" -j "$(nproc)"
cd "$builddir"
exec ctest --output-on-failure --verbose --timeout 900
