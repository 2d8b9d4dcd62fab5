#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# e2e-hook: loopsnap-oci-hook under a real runtime (Debian's crun) with
# busybox-static containers whose root comes from a committed snapshot:
# the files are there, crun's masked and read-only paths are in force, a kept
# snapshot carries writes to the next run, two containers of one image share
# its loop device, root.readonly holds, a user-namespace container writes
# files that land with mapped ids, and nothing of a container is left on the
# host (loop device, mount, staging entry, snapshot) after a normal exit,
# crun kill + delete, a failing or timed-out later hook, a createRuntime that
# fails on its own, and hook runs killed at fault points (as a timeout's
# SIGKILL would).
#
#   hook.sh PATH-TO-snapctl PATH-TO-loopsnap-oci-hook
#
# crun 1.8 refuses this VM's hybrid cgroup layout ("cgroups in hybrid mode
# not supported"), so the script re-runs itself in a private mount namespace
# with a cgroup2 filesystem on /sys/fs/cgroup (nothing changes on the host)
# and runs crun with --cgroup-manager=disabled. Consequence: the container's
# device cgroup is not exercised here (research/oci-hook.md §1 did that).
#
# Exit status: 0 passed, 1 a check failed, 77 skipped (with the reason).
set -uo pipefail

SNAPCTL=$(realpath "$1")
HOOK=$(realpath "$2")
HOOKS_JSON=$(realpath "$(dirname "$0")/../../docs/loopsnap-hook.json")

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -w /dev/loop-control ] || skip "no usable /dev/loop-control"
for t in crun python3 unshare debugfs losetup; do
  command -v "$t" >/dev/null || skip "$t is not installed (setup.sh installs it)"
done
[ -x /bin/busybox ] || skip "busybox-static is not installed (setup.sh installs it)"
if ldd /bin/busybox >/dev/null 2>&1; then
  skip "/bin/busybox is dynamically linked (install busybox-static)"
fi
[ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ] || skip "mkfs.ext4 is not installed"

if [ -z "${E2E_HOOK_NS:-}" ]; then
  E2E_HOOK_NS=1 exec unshare -m --propagation private "$0" "$@"
fi
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null ||
  skip "cannot mount cgroup2 in a private mount namespace (crun needs a non-hybrid layout)"

T=$(mktemp -d /var/tmp/loopsnap-test.hook-XXXXXX) || exit 1
# The user-namespace container's mapped root must reach its bundle and the
# run directory below $T.
chmod 0711 "$T"
ROOT=$T/root
export LOOPSNAP_HOOK_RUN_DIR=$T/run
CRUN=(crun --root "$T/crun" --cgroup-manager=disabled)
checks=0
failures=0

cleanup() {
  for c in $("${CRUN[@]}" list -q 2>/dev/null); do
    "${CRUN[@]}" delete -f "$c" >/dev/null 2>&1
  done
  mountpoint -q "$T/mnt" 2>/dev/null && "$SNAPCTL" umount --all "$T/mnt" >/dev/null 2>&1
  if grep -q " $T" /proc/self/mountinfo; then
    echo "FAIL: mounts left under $T"
    exit 1
  fi
  rm -rf "$T"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
check() { # check DESCRIPTION COMMAND...
  checks=$((checks + 1))
  local what=$1
  shift
  "$@" || fail "$what"
}
snap() { "$SNAPCTL" --root "$ROOT" --writable-size 64M "$@"; }

# ---- is crun usable here at all? ------------------------------------------------
mkdir -p "$T/plain/rootfs/bin" "$T/logs"
cp /bin/busybox "$T/plain/rootfs/bin/"
for a in $(/bin/busybox --list | grep -vx busybox); do ln -sf busybox "$T/plain/rootfs/bin/$a"; done
(cd "$T/plain" && crun spec) || skip "crun spec failed"
python3 - "$T/plain/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
json.dump(c, open(sys.argv[1], "w"))
PY
if ! out=$(cd "$T/plain" && "${CRUN[@]}" run probe 2>&1); then
  skip "crun cannot run a plain container here: $out"
fi

# ---- the parent layer: busybox in a committed snapshot --------------------------
echo "== parent layer"
snap prepare base-work >/dev/null || { fail "prepare base-work"; exit 1; }
mkdir -p "$T/mnt"
snap mount base-work "$T/mnt" || { fail "mount base-work"; exit 1; }
mkdir -p "$T/mnt/bin" "$T/mnt/etc" "$T/mnt/proc" "$T/mnt/dev" "$T/mnt/sys" "$T/mnt/tmp" "$T/mnt/data"
cp /bin/busybox "$T/mnt/bin/"
for a in $(/bin/busybox --list | grep -vx busybox); do ln -sf busybox "$T/mnt/bin/$a"; done
echo base-image >"$T/mnt/etc/origin"
snap umount "$T/mnt" || fail "umount base-work"
snap commit base base-work || { fail "commit base"; exit 1; }
BASE_IMG=$ROOT/snapshots/$(snap --json info base | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')/fs.img
[ -f "$BASE_IMG" ] || { fail "no image $BASE_IMG"; exit 1; }

# mkbundle NAME ARGS-JSON [OCI-CONFIG OPTIONS...]: a bundle $T/b/NAME with an
# empty root.path, root.readonly false, process.args ARGS-JSON, the hook
# (through snapctl oci-config --parent base) and the stderr annotation.
mkbundle() {
  local name=$1 args=$2
  shift 2
  local b=$T/b/$name
  mkdir -p "$b"
  cp "$T/plain/config.json" "$b/config.json"
  python3 - "$b/config.json" "$args" "$T/$name.err" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = json.loads(sys.argv[2])
c["root"] = {"path": "rootfs", "readonly": False}
c.setdefault("annotations", {})["run.oci.hooks.stderr"] = sys.argv[3]
json.dump(c, open(sys.argv[1], "w"))
PY
  snap oci-config "$b" --parent base --hook "$HOOK" "$@" >/dev/null || fail "oci-config $name"
}
# edit NAME PYTHON: change $T/b/NAME/config.json (c is the document).
edit() {
  python3 - "$T/b/$1/config.json" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
exec(sys.argv[2])
json.dump(c, open(sys.argv[1], "w"))
PY
}
run() { # run NAME ID: crun run in bundle NAME; output in $out, status in $rc
  out=$(cd "$T/b/$1" && "${CRUN[@]}" run "$2" 2>&1)
  rc=$?
}

# What the host must not keep of a container: its staging entry, any loop
# device of this root, any mount of the root or the run directory (in this
# namespace and in the host's), and (unless kept) its snapshot. The base
# layer's activation (<root>/m/<id>, the activation cache, on by default)
# belongs to the layer, not to a container: its device and mount are not
# counted here; the end of the test drops it with `snapctl cleanup` and
# then checks that nothing at all is left.
#
# The writable pool (on by default in the hook, docs/hook.md) keeps a
# removed container's emptied writable image mounted as a spare
# (<root>/pool/<fs>-<size>-<ino>/fs.img, its "keeper" mounted at <root>/w/<ino>) for the next
# container: a spare's device and keeper are the pool's, not a container's,
# and are not counted either (at most 4 of them, checked); `snapctl cleanup`
# drops them too. A keeper of an image that is not a spare is counted.
activation_devs() { awk -v m="$ROOT/m/" 'index($5, m) == 1 { print $(NF-1) }' /proc/self/mountinfo | sort -u; }
spare_devs() { losetup -nO NAME,BACK-FILE | awk -v p="$ROOT/pool/" 'index($2, p) == 1 { print $1 }'; }
keeper_devs() { awk -v m="$ROOT/w/" 'index($5, m) == 1 { print $(NF-1) }' /proc/self/mountinfo | sort -u; }
spares() { find "$ROOT/pool" -mindepth 2 -maxdepth 2 -name fs.img 2>/dev/null | wc -l; }
loops_but() { # loops_but DEVS...: this root's devices not among DEVS
  local skip
  skip=$(printf '%s\n' "$@" | grep .)
  losetup -nO NAME,BACK-FILE | grep " $ROOT/" | awk '{print $1}' |
    grep -c -v -x -F -e "${skip:-/nonexistent}"
}
our_loops() { loops_but $(activation_devs) $(spare_devs); }
# What a container whose snapshot is left for the sweep may keep: also the
# keeper of its (still existing) writable image, in the host's namespace.
loops_but_keepers() { loops_but $(activation_devs) $(spare_devs) $(keeper_devs); }
all_loops() { losetup -nO NAME,BACK-FILE | grep -c " $ROOT/" ; }
wait_loops_gone() { # the kernel frees devices when the container's namespace goes
  local n count=${1:-our_loops}
  for _ in $(seq 200); do
    n=$($count)
    [ "$n" = 0 ] && return 0
    sleep 0.025
  done
  echo "loop devices still bound: $(losetup -nO NAME,BACK-FILE | grep " $ROOT/")"
  return 1
}
no_entry() { [ ! -e "$T/run/$1" ]; }
# Mounts of the root or the run directory, but activations and spares'
# keepers (in this namespace; the host's has none of ours at all).
other_mounts() {
  local sp
  sp=$(spare_devs | grep .)
  grep -v " $ROOT/m/" /proc/self/mountinfo | grep -e " $ROOT" -e " $T/run" |
    awk -v m="$ROOT/w/" -v sp=" ${sp//$'\n'/ } " '!(index($5, m) == 1 && index(sp, " " $(NF-1) " ") > 0)'
  grep -e " $ROOT" -e " $T/run" /proc/1/mountinfo
}
no_mounts() { [ -z "$(other_mounts)" ]; }
no_mounts_but_keepers() { ! other_mounts | grep -v " $ROOT/w/" | grep -q .; }
pool_bounded() { [ "$(spares)" -le 4 ] && [ "$(spare_devs | wc -l)" = "$(spares)" ]; }
no_mounts_at_all() { ! grep -q -e " $ROOT" -e " $T/run" /proc/self/mountinfo /proc/1/mountinfo; }
activated() { [ -n "$(activation_devs)" ]; }
no_snapshot() { ! snap info "$1" >/dev/null 2>&1; }
has_snapshot() { snap info "$1" >/dev/null 2>&1; }
left_nothing() { # left_nothing ID [KEY]
  check "$1: loop devices released" wait_loops_gone
  check "$1: no mounts left: $(other_mounts)" no_mounts
  check "$1: at most 4 spares, each with its device ($(spares))" pool_bounded
  check "$1: staging entry removed" no_entry "$1"
  check "$1: snapshot ${2:-$1} removed" no_snapshot "${2:-$1}"
}

CHECK_SCRIPT='
echo "origin=$(cat /etc/origin)"
echo "rootfs=$(grep " / / " /proc/self/mountinfo | sed "s/.* - //" | cut -d" " -f1)"
[ -s /proc/keys ] && echo keys=visible || echo keys=masked
grep -q " /proc/keys " /proc/self/mountinfo && echo keys-mount=yes
grep " /proc/sys " /proc/self/mountinfo | grep -q " ro," && echo procsys=ro
grep " /sys " /proc/self/mountinfo | grep -q " ro," && echo sys=ro
[ -c /dev/null ] && echo devnull=ok
grep " / / " /proc/self/mountinfo | grep -q "fsync=volatile" && echo volatile=yes
echo "nmounts=$(wc -l </proc/self/mountinfo)"
[ -e /written ] || echo fresh=yes
echo hello >/written && echo root=writable
'

# ---- a basic container ------------------------------------------------------------
echo "== basic container"
mkbundle basic "$(python3 -c 'import json,sys; print(json.dumps(["sh","-c",sys.argv[1]]))' "$CHECK_SCRIPT")"
run basic c1
check "c1: crun run: rc $rc: $out" [ "$rc" = 0 ]
for want in origin=base-image rootfs=overlay keys=masked keys-mount=yes procsys=ro sys=ro \
  devnull=ok root=writable volatile=yes fresh=yes; do
  check "c1: '$want' in: $out" grep -qx "$want" <<<"$out"
done
# The same container from a plain directory has the same mounts.
cp -a "$T/plain" "$T/b/plaindir"
python3 - "$T/b/plaindir/config.json" "$CHECK_SCRIPT" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["sh", "-c", sys.argv[2]]
c["root"]["readonly"] = False
json.dump(c, open(sys.argv[1], "w"))
PY
mkdir -p "$T/b/plaindir/rootfs/etc"
echo base-image >"$T/b/plaindir/rootfs/etc/origin"
plain_out=$(cd "$T/b/plaindir" && "${CRUN[@]}" run p1 2>&1)
check "c1: mount count as with a plain directory (hook: $(grep nmounts <<<"$out"), plain: $(grep nmounts <<<"$plain_out"))" \
  [ "$(grep nmounts <<<"$out")" = "$(grep nmounts <<<"$plain_out")" ]
left_nothing c1
check "c1: the base layer stays activated (cache)" activated
check "c1: its writable image went to the writable pool ($(spares) spares)" [ "$(spares)" = 1 ]
SPARE=$(ls "$ROOT/pool")
run basic c1b
check "c1b: crun run: rc $rc: $out" [ "$rc" = 0 ]
check "c1b: a fresh upper, not c1's: $out" grep -qx fresh=yes <<<"$out"
left_nothing c1b
check "c1b: took c1's spare and gave it back ($SPARE, now $(ls "$ROOT/pool"))" \
  [ "$(ls "$ROOT/pool")" = "$SPARE" ]

# ---- io.loopsnap.activation-cache=false: nothing of the image stays mounted -----------
echo "== activation cache off"
snap cleanup >/dev/null || fail "cleanup"
check "cleanup dropped the activation" [ "$(all_loops)" = 0 ]
mkbundle nocache '["cat","/etc/origin"]'
edit nocache 'c["annotations"]["io.loopsnap.activation-cache"] = "false"'
run nocache n1
check "n1: rc $rc: $out" [ "$rc" = 0 ] && check "n1: sees the image: $out" [ "$out" = base-image ]
left_nothing n1
check "n1: nothing activated" [ -z "$(activation_devs)" ]
check "n1: no device of the root at all" [ "$(all_loops)" = 0 ]
check "n1: no mount of the root at all" no_mounts_at_all

# ---- the shipped oci-hooks(5) file: one hook, stage "auto" ----------------------------
echo "== stage auto (docs/loopsnap-hook.json)"
mkbundle auto "$(python3 -c 'import json,sys; print(json.dumps(["sh","-c",sys.argv[1]]))' "$CHECK_SCRIPT")"
edit auto 'h = json.load(open("'"$HOOKS_JSON"'")); assert h["version"] == "1.0.0"; h["hook"]["path"] = "'"$HOOK"'"; c["hooks"] = {s: [h["hook"]] for s in h["stages"]}'
run auto a1
check "a1: crun run: rc $rc: $out" [ "$rc" = 0 ]
for want in origin=base-image rootfs=overlay keys=masked procsys=ro root=writable; do
  check "a1: '$want' in: $out" grep -qx "$want" <<<"$out"
done
left_nothing a1

# ---- keep-after-stop ----------------------------------------------------------------
echo "== keep-after-stop"
mkbundle keep '["sh","-c","cat /data/x 2>/dev/null || echo none; echo run-$RUN >/data/x"]' --keep --key kept
edit keep 'c["process"]["env"].append("RUN=1")'
run keep k1
check "k1: rc $rc: $out" [ "$rc" = 0 ]
check "k1: a fresh snapshot: $out" [ "$out" = none ]
check "k1: snapshot kept" has_snapshot kept
check "k1: loop devices released" wait_loops_gone
check "k1: staging entry removed" no_entry k1
edit keep 'c["process"]["env"][-1] = "RUN=2"'
run keep k2
check "k2: rc $rc: $out" [ "$rc" = 0 ]
check "k2: sees the first run's write: $out" [ "$out" = run-1 ]
snap rm kept || fail "rm kept"
left_nothing k2 kept

echo "== a kept snapshot in use is refused"
mkbundle busy '["sleep","60"]' --keep --key shared
(cd "$T/b/busy" && "${CRUN[@]}" create b1) >"$T/b1.out" 2>&1 || fail "create b1: $(cat "$T/b1.out")"
(cd "$T/b/busy" && "${CRUN[@]}" create b2) >"$T/b2.out" 2>&1
rc=$?
check "b2: refused while b1 has the snapshot: rc $rc" [ "$rc" != 0 ]
check "b2: says so: $(cat "$T/busy.err")" grep -q "createRuntime 'b2': snapshot 'shared' is in use" "$T/busy.err"
"${CRUN[@]}" delete -f b1 || fail "delete b1"
check "b1: loop devices released" wait_loops_gone
snap rm shared || fail "rm shared"
left_nothing b1 shared
left_nothing b2 shared

# ---- two containers of one image at once; crun kill + delete ---------------------------
echo "== two containers at once, kill and delete"
mkbundle twin '["sh","-c","echo $HOSTNAME >/data/who; exec sleep 60"]'
for c in t1 t2; do
  (cd "$T/b/twin" && "${CRUN[@]}" create "$c") >"$T/$c.out" 2>&1 || fail "create $c: $(cat "$T/$c.out")"
  "${CRUN[@]}" start "$c" || fail "start $c"
done
check "t1, t2: both running" [ "$("${CRUN[@]}" list -q | grep -c '^t[12]$')" = 2 ]
check "t1, t2: one loop device for the base image ($(losetup -j "$BASE_IMG" | wc -l))" \
  [ "$(losetup -j "$BASE_IMG" | wc -l)" = 1 ]
check "t1, t2: a writable device each" [ "$(our_loops)" = 2 ]
check "t1, t2: staged; on the host only the pool's keepers: $(other_mounts)" no_mounts_but_keepers
check "t1, t2: a keeper each ($(keeper_devs | wc -l))" [ "$(keeper_devs | wc -l)" = 2 ]
for c in t1 t2; do
  "${CRUN[@]}" kill "$c" KILL || fail "kill $c"
done
for c in t1 t2; do
  for _ in $(seq 100); do
    "${CRUN[@]}" state "$c" 2>/dev/null | grep -q '"stopped"' && break
    sleep 0.05
  done
  "${CRUN[@]}" delete "$c" || fail "delete $c"
done
left_nothing t1
left_nothing t2

# ---- root.readonly -----------------------------------------------------------------------
echo "== root.readonly"
mkbundle ro '["sh","-c","grep \" / / \" /proc/self/mountinfo | cut -d\" \" -f6 | cut -d, -f1; touch /x 2>/dev/null && echo writable || echo refused; touch /tmp/x 2>/dev/null; cat /etc/origin"]'
edit ro 'c["root"]["readonly"] = True'
run ro r1
check "r1: rc $rc: $out" [ "$rc" = 0 ]
check "r1: root mounted ro, writes refused: $out" [ "$out" = "$(printf 'ro\nrefused\nbase-image')" ]
left_nothing r1

# ---- a user-namespace container ---------------------------------------------------------
echo "== user namespace"
mkbundle userns '["sh","-c","id -u; stat -c %u /bin/busybox; echo mapped >/uw && echo wrote; mkdir /ud && echo made"]' --keep --key ukey
edit userns 'c["linux"]["namespaces"].append({"type": "user"}); c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]; c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]'
# crun makes its mount points in root.path as the mapped root.
mkdir -p "$T/b/userns/rootfs" && chown 100000:200000 "$T/b/userns/rootfs"
run userns u1
check "u1: rc $rc: $out" [ "$rc" = 0 ]
check "u1: root inside, image files owned by it, writes work: $out" \
  [ "$out" = "$(printf '0\n0\nwrote\nmade')" ]
check "u1: loop devices released" wait_loops_gone
UIMG=$ROOT/snapshots/$(snap --json info ukey | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')/fs.img
owner=$(debugfs -R "stat /upper/uw" "$UIMG" 2>/dev/null | sed -n 's/^User: *\([0-9]*\) *Group: *\([0-9]*\).*/\1:\2/p')
check "u1: /uw in the writable image owned by the mapped root ($owner)" [ "$owner" = 100000:200000 ]
owner=$(debugfs -R "stat /upper/ud" "$UIMG" 2>/dev/null | sed -n 's/^User: *\([0-9]*\) *Group: *\([0-9]*\).*/\1:\2/p')
check "u1: /ud in the writable image owned by the mapped root ($owner)" [ "$owner" = 100000:200000 ]
snap rm ukey || fail "rm ukey"
left_nothing u1 ukey

# ---- failures ----------------------------------------------------------------------------
echo "== a later createContainer hook fails"
mkbundle later '["true"]'
edit later 'c["hooks"]["createContainer"].append({"path": "/bin/false", "args": ["false"]})'
run later f1
check "f1: crun run fails: rc $rc" [ "$rc" != 0 ]
check "f1: loop devices released (but its image's keeper)" wait_loops_gone loops_but_keepers
check "f1: no mounts left (but its image's keeper)" no_mounts_but_keepers
# crun runs no poststop after a failed create: the entry waits for a sweep.
check "f1: entry left for the sweep" [ -e "$T/run/f1/state.json" ]
check "f1: snapshot left for the sweep" has_snapshot f1
sweep_out=$("$HOOK" sweep 2>&1)
check "f1: sweep released it: $sweep_out" [ "$sweep_out" = "released 1 entry" ]
left_nothing f1

echo "== a later createContainer hook times out"
mkbundle slow '["true"]'
edit slow 'c["hooks"]["createContainer"].append({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1})'
run slow f2
check "f2: crun run fails: rc $rc" [ "$rc" != 0 ]
# crun 1.8 says "timeout expired for ..." or, racing the kill, "(exit code: -1)".
check "f2: crun says the hook was killed: $out" grep -qE "timeout|exit code: -1" <<<"$out"
check "f2: loop devices released (but its image's keeper)" wait_loops_gone loops_but_keepers
check "f2: no mounts left (but its image's keeper)" no_mounts_but_keepers
# This time the next container's createRuntime sweeps it.
run basic c2
check "c2: rc $rc" [ "$rc" = 0 ]
left_nothing f2
left_nothing c2

echo "== a later createRuntime hook fails"
mkbundle laterrt '["true"]'
edit laterrt 'c["hooks"]["createRuntime"].append({"path": "/bin/false", "args": ["false"]})'
run laterrt f3
check "f3: crun run fails: rc $rc" [ "$rc" != 0 ]
"$HOOK" sweep >/dev/null 2>&1
left_nothing f3

echo "== createRuntime fails on its own: no parent"
mkbundle noparent '["true"]'
edit noparent 'c["annotations"]["io.loopsnap.parent"] = "no-such-layer"'
rm -f "$T/noparent.err"
run noparent f4
check "f4: crun run fails: rc $rc" [ "$rc" != 0 ]
check "f4: the error names the parent: $(cat "$T/noparent.err" 2>&1)" \
  grep -q "loopsnap-oci-hook: createRuntime 'f4': .*no-such-layer" "$T/noparent.err"
left_nothing f4

echo "== the hook killed at fault points (as a timeout's SIGKILL)"
for point in hook-runtime-after-entry hook-runtime-after-prepare hook-runtime-after-attach \
  hook-container-after-moves; do
  id=k-${point#hook-}
  out=$(cd "$T/b/basic" && LOOPSNAP_FAULT=$point "${CRUN[@]}" run "$id" 2>&1)
  rc=$?
  check "$id: crun run fails at $point: rc $rc" [ "$rc" != 0 ]
  check "$id: loop devices released (but its image's keeper)" wait_loops_gone loops_but_keepers
  check "$id: no mounts left (but its image's keeper)" no_mounts_but_keepers
  "$HOOK" sweep >/dev/null 2>&1
  left_nothing "$id"
done

echo "== a volatile snapshot left behind (a host crash) is refused, and kept"
snap prepare vleft base --label io.loopsnap.volatile=true >/dev/null || fail "prepare vleft"
mkbundle vleft '["true"]' --key vleft
run vleft f5
check "f5: crun run fails: rc $rc" [ "$rc" != 0 ]
check "f5: the error says why: $(cat "$T/vleft.err" 2>&1)" \
  grep -q "createRuntime 'f5': snapshot 'vleft' is volatile.*remove it" "$T/vleft.err"
check "f5: the snapshot is left alone" has_snapshot vleft
snap rm vleft || fail "rm vleft"
left_nothing f5 vleft

echo "== malformed input"
checks=$((checks + 1))
msg=$(echo '{"id":"../x","bundle":"/tmp"}' | "$HOOK" createRuntime 2>&1)
[ $? = 1 ] && [[ "$msg" == *"state: id"* ]] || fail "a bad id: $msg"
checks=$((checks + 1))
msg=$(echo 'not json' | "$HOOK" poststop 2>&1)
[ $? = 1 ] && [[ "$msg" == "loopsnap-oci-hook: poststop: state"* ]] || fail "not JSON: $msg"
checks=$((checks + 1))
msg=$("$HOOK" createRuntime </dev/null 2>&1)
[ $? = 1 ] && [[ "$msg" == *"no state on stdin"* ]] || fail "no input: $msg"
checks=$((checks + 1))
msg=$(head -c 100000 /dev/zero | tr '\0' ' ' | "$HOOK" createRuntime 2>&1)
[ $? = 1 ] && [[ "$msg" == *"more than"* ]] || fail "too large: $msg"
checks=$((checks + 1))
msg=$(printf '{"id":"m1","pid":%d,"bundle":"%s","annotations":{"run.oci.hooks.stderr":"%s"}}' \
  $$ "$T/b/basic" "$T/m1.err" | "$HOOK" createContainer 2>/dev/null)
[ $? = 1 ] && grep -q "createContainer 'm1': nothing staged" "$T/m1.err" ||
  fail "the stderr annotation's file: $(cat "$T/m1.err" 2>&1)"
mkdir -p "$T/b/bad" && echo '{"root":{"path":"rootfs"},"annotations":{"io.loopsnap.keep-after-stop":"yes"}}' >"$T/b/bad/config.json"
mkdir -p "$T/b/bad/rootfs"
checks=$((checks + 1))
msg=$(printf '{"id":"m2","pid":%d,"bundle":"%s"}' $$ "$T/b/bad" | "$HOOK" createRuntime 2>&1)
[ $? = 1 ] && [[ "$msg" == *"keep-after-stop"*"expected true or false"* ]] || fail "bad annotation: $msg"
check "m2: no entry" no_entry m2
echo '{"root":{"path":"rootfs"},"annotations":{"io.loopsnap.writable-pool":"lots"}}' >"$T/b/bad/config.json"
checks=$((checks + 1))
msg=$(printf '{"id":"m3","pid":%d,"bundle":"%s"}' $$ "$T/b/bad" | "$HOOK" createRuntime 2>&1)
[ $? = 1 ] && [[ "$msg" == *"writable-pool"*"'lots'"*"0 to 1024"* ]] || fail "bad pool annotation: $msg"
check "m3: no entry" no_entry m3
checks=$((checks + 1))
[ "$("$HOOK" bogus 2>/dev/null; echo $?)" = 2 ] || fail "unknown stage: not exit 2"

echo "== no sanitizer report in any hook's stderr"
# (a sanitizer build reports there; poststop failures do not fail crun)
reports=$(grep -l -e Sanitizer -e "runtime error" "$T"/*.err 2>/dev/null)
check "sanitizer reports in: $reports" [ -z "$reports" ]

echo "== nothing of this root is left"
check "no loop device of the root" wait_loops_gone
check "no mounts" no_mounts
snap cleanup >/dev/null || fail "cleanup"
check "after cleanup, not even an activation: $(all_loops) devices" [ "$(all_loops)" = 0 ]
check "after cleanup, no mount of the root at all" no_mounts_at_all
left=$(ls -A "$T/run" 2>/dev/null | grep -v '^\.lock$')
check "run directory empty: $left" [ -z "$left" ]
left=$(snap ls | tail -n +2 | awk '{print $1}' | tr '\n' ' ')
check "only the base layer left: $left" [ "$left" = "base " ]

if [ "$failures" -gt 0 ]; then
  echo "FAIL: $failures of $checks checks failed"
  exit 1
fi
echo "PASS: $checks checks"
