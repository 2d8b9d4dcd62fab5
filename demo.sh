#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The demo (README, command 1), on a fresh Debian 12 machine as root:
# installs what it needs, builds, makes a small OCI image layout locally
# from busybox-static (three layers, with a deleted file and an opaque
# directory; no network), imports it into a snapshotter root, runs a
# container on it twice with crun through loopsnap-oci-hook (the hook
# prepares the container's snapshot and mounts it as its root filesystem;
# the second run sees the first one's writes), mounts the kept snapshot on
# the host with snapctl, shows `snapctl tree` and `usage`, and cleans
# everything up.
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
  for c in demo-1 demo-2; do crun --root "$work/crun" delete -f "$c" >/dev/null 2>&1; done
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

say "a container with crun: loopsnap-oci-hook gives it its root filesystem"
# The bundle holds no files: root.path is an empty directory; the hook
# (createRuntime) prepares snapshot demo-ctr on the image and mounts it there
# inside the container's mount namespace, and poststop releases it. --keep:
# the snapshot (with what the container wrote) outlives the container.
bundle=$work/bundle
mkdir -p "$bundle/rootfs"
(cd "$bundle" && crun spec)
python3 - "$bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/sh", "-c", """
  echo "inside:    $(hostname), root filesystem $(grep ' / / ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1)"
  echo "motd:      $(cat /etc/motd)"
  echo "hello:     $(cat /hello.txt)"
  echo "/opt:      $(ls /opt)   (layer 2 made /opt opaque: old/ is gone)"
  echo "/tmp:      [$(ls /tmp)]   (layer 2 deleted /tmp/deleteme)"
  if [ -e /written-in-the-container ]; then
    echo "again:     $(cat /written-in-the-container)   (kept from the first run)"
  else
    echo "container writes" > /written-in-the-container
    echo "wrote:     $(cat /written-in-the-container)"
  fi"""]
c["root"] = {"path": "rootfs", "readonly": False}
json.dump(c, open(sys.argv[1], "w"))
PY
snap oci-config "$bundle" --parent "$top" --key demo-ctr --keep
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(json.dumps({"hooks": c["hooks"], "annotations": c["annotations"]}, indent=1))' "$bundle/config.json" | sed -n 1,40p

# crun 1.8 refuses a hybrid cgroup layout (cgroup v1 controllers next to
# the unified hierarchy, as on this kind of VM). There the container runs
# in a private mount namespace with cgroup2 mounted on /sys/fs/cgroup and
# without cgroup management; the host is not changed. On a pure cgroup v2
# host (Debian 12's default) crun runs as is.
crun_run() { # crun_run ID
  if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
    (cd "$bundle" && crun --root "$work/crun" run "$1")
  else
    unshare -m --propagation private sh -c '
      mount -t cgroup2 cgroup2 /sys/fs/cgroup &&
      cd "$0" && exec crun --root "$1" --cgroup-manager=disabled run "$2"' \
      "$bundle" "$work/crun" "$1"
  fi
}
echo "+ crun run demo-1"
crun_run demo-1
echo "+ crun run demo-2   (same key, kept snapshot)"
crun_run demo-2

say "the kept snapshot, mounted on the host with snapctl"
mkdir -p "$mnt"
snap mount demo-ctr "$mnt"
findmnt -R -o TARGET,FSTYPE,SOURCE "$mnt" | head -3
echo "written-in-the-container: $(cat "$mnt/written-in-the-container")"
ls "$mnt"

say "snapctl tree"
snap tree
say "snapctl usage"
snap usage

say "unmount and clean up"
snap umount --all "$mnt"
snap rm demo-ctr
echo "the image's layers stay mounted read-only under the root's m/ (activation"
echo "cache), and the container's emptied writable image stays attached as a"
echo "spare in pool/ (writable pool): the next container starts faster. cleanup"
echo "drops the spares and the layers nobody stacks:"
snap loops
snap cleanup
snap loops
echo "done: nothing mounted, no loop device of the demo left"
