#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Installs every Debian package that loopsnap's build, tests and demo need.
# Idempotent: runs `apt-get update` (once) and `apt-get install` only when a
# package is missing. Must run as root (the tests need loop devices anyway).
set -euo pipefail

packages=(
  # build
  gcc make cmake pkg-config
  # libraries (DESIGN.md: libmount, yajl, libseccomp, sqlite3, libarchive; criterion for tests;
  # OpenSSL's libcrypto for the sha256 of OCI blobs)
  libmount-dev libyajl-dev libseccomp-dev libsqlite3-dev libarchive-dev libcriterion-dev libssl-dev
  # style check run by the test suite
  clang-format
  # static checks (test/static/check.sh, run by CI): clang-tidy 14, cppcheck, valgrind
  clang-tidy cppcheck valgrind
  # kernel tools used by tests and the benchmark baseline (losetup, mkfs.ext4)
  util-linux mount e2fsprogs xfsprogs erofs-utils
  # FUSE mounts go through mount.fuse3; the tests mount with bindfs
  fuse3 bindfs
  # the demo's and the end-to-end tests' image (busybox), JSON checks in e2e tests
  busybox-static python3
  # the OCI hook's end-to-end test and benchmark run busybox containers under crun
  crun
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
