#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The demo (README, command 1), on a fresh Debian 12 machine as root:
# installs what it needs, builds, makes a small OCI image layout locally
# from busybox-static (three layers, with a deleted file and an opaque
# directory; no network), imports it into a snapshotter root, prepares a
# container snapshot on it, mounts it, runs a command inside (chroot),
# shows `snapctl tree` and `usage`, and cleans everything up.
#
#   LOOPSNAP_DEMO_ROOT   the snapshotter root (default /var/tmp/loopsnap-demo;
#                        removed at the end unless it existed before)
set -euo pipefail
cd "$(dirname "$0")"

./setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null

snapctl=$PWD/build/bin/snapctl
root=${LOOPSNAP_DEMO_ROOT:-/var/tmp/loopsnap-demo}
work=$(mktemp -d /var/tmp/loopsnap-demo-work.XXXXXX)
made_root=0
[ -e "$root" ] || made_root=1
mnt=$work/rootfs
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
snap() { echo "+ snapctl $*" >&2; "$snapctl" --root "$root" "$@"; }

cleanup() {
  set +e
  "$snapctl" --root "$root" umount --all "$mnt" >/dev/null 2>&1
  "$snapctl" --root "$root" rm demo-ctr >/dev/null 2>&1
  "$snapctl" --root "$root" cleanup >/dev/null 2>&1
  [ "$made_root" = 1 ] && rm -rf "$root"
  rm -rf "$work"
}
trap cleanup EXIT

say "an OCI image layout from busybox-static (3 layers)"
test/e2e/make-oci-layout.sh "$work/oci"
find "$work/oci" -type f -printf '%P  %s bytes\n'

say "import it (every blob's sha256 and every diff id checked)"
top=$(snap import "$work/oci" demo)
echo "top layer: $top"

say "prepare a container snapshot on it and mount it"
snap prepare demo-ctr "$top" >/dev/null
mkdir -p "$mnt"
snap mount demo-ctr "$mnt"
findmnt -R -o TARGET,FSTYPE,SOURCE "$mnt" | head -3

say "run a command inside (chroot)"
chroot "$mnt" /bin/sh -c '
  echo "motd:      $(cat /etc/motd)"
  echo "hello:     $(cat /hello.txt)"
  echo "/opt:      $(ls /opt)   (layer 2 made /opt opaque: old/ is gone)"
  echo "/tmp:      [$(ls /tmp)]   (layer 2 deleted /tmp/deleteme)"
  echo "container writes" > /written-in-the-container
  echo "wrote:     $(cat /written-in-the-container)"'

say "snapctl tree"
snap tree
say "snapctl usage"
snap usage

say "unmount and clean up"
snap umount --all "$mnt"
snap rm demo-ctr
echo "the image's layers stay mounted read-only under the root's m/ (activation"
echo "cache: the next container starts faster); cleanup drops what nobody stacks:"
snap loops
snap cleanup
snap loops
echo "done: nothing mounted, no loop device of the demo left"
