#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# e2e-snapctl: every snapctl command on the real kernel, through the built
# binary and library (snapctl dlopen()s build/lib/libloopsnap.so.1): text
# output, --json output parsed by a JSON parser (python3), exit codes of the
# error kinds (docs/snapctl.1), and cleanup.
#
#   snapctl.sh PATH-TO-snapctl
#
# Exit status: 0 passed, 1 a check failed, 77 skipped. The script re-runs
# itself in a private mount namespace (unshare -m), so its mounts cannot
# outlive it; it still unmounts, removes every snapshot and its directory,
# and checks that no loop device of its roots is left.
set -uo pipefail

SNAPCTL=$(realpath "$1")

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -w /dev/loop-control ] || skip "no usable /dev/loop-control"
for t in python3 unshare; do command -v "$t" >/dev/null || skip "$t is not installed"; done
[ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ] || skip "mkfs.ext4 is not installed"

if [ -z "${E2E_SNAPCTL_NS:-}" ]; then
  E2E_SNAPCTL_NS=1 exec unshare -m --propagation private "$0" "$@"
fi

T=$(mktemp -d /var/tmp/loopsnap-test.e2e-XXXXXX) || exit 1
ROOT=$T/root
checks=0
failures=0

cleanup() {
  for m in "$T/mnt" "$T/mnt2"; do
    mountpoint -q "$m" 2>/dev/null && "$SNAPCTL" umount --all "$m" >/dev/null 2>&1
  done
  # Never delete through a mount that is still there.
  if findmnt -rno TARGET | grep -q "^$T"; then
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

# snap WANT_RC CMD...: runs snapctl on $ROOT (64 MiB writable images),
# checks the exit code; stdout in $out, stderr in $err.
snap() {
  local want=$1
  shift
  checks=$((checks + 1))
  out=$("$SNAPCTL" --root "$ROOT" --writable-size 64M "$@" 2>"$T/stderr")
  local rc=$?
  err=$(cat "$T/stderr")
  # A sanitizer build reports on stderr (and changes the exit code).
  if [[ "$err" == *Sanitizer* || "$err" == *"runtime error"* ]]; then
    fail "snapctl $*: sanitizer report: $err"
    return 1
  fi
  if [ "$rc" != "$want" ]; then
    fail "snapctl $*: exit $rc, want $want; stderr: $err"
    return 1
  fi
  # Failures say what went wrong, in one format.
  if [ "$want" != 0 ] && [[ "$err" != snapctl:* ]]; then
    fail "snapctl $*: stderr does not start with 'snapctl: ': $err"
    return 1
  fi
  return 0
}

# json PYTHON-EXPR: $out must be one JSON value; d is it, and EXPR true.
json() {
  checks=$((checks + 1))
  if ! printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
expr = sys.argv[1]
if not eval(expr):
    sys.exit("expression is false: " + expr + "\nvalue: " + json.dumps(d))
' "$1"; then
    fail "json check '$1' on: $out"
  fi
}

# contains TEXT: $out contains TEXT.
contains() {
  checks=$((checks + 1))
  [[ "$out" == *"$1"* ]] || fail "output does not contain '$1': $out"
}

mkdir -p "$T/mnt" "$T/mnt2"

echo "== help and usage errors"
snap 0 help && contains "Commands:"
snap 0 --help && contains "prepare"
snap 0 help prepare && contains "Usage: snapctl prepare KEY [PARENT]"
snap 0 prepare --help && contains "--label"
snap 0 --version && contains "libloopsnap"
snap 2 frobnicate
snap 2
snap 2 prepare
snap 2 view onlykey
snap 2 info a b
snap 2 ls --repair
snap 2 --label a=b ls
snap 2 prepare k --label novalue
snap 2 prepare k --label
snap 2 -x ls
snap 2 ls --bogus
snap 2 --writable-size lots ls
snap 2 oci-config "$T/bundle"
checks=$((checks + 1))
LOOPSNAP_PLUGIN=/nonexistent/libloopsnap.so.1 "$SNAPCTL" --root "$ROOT" ls >/dev/null 2>&1
rc=$?
[ "$rc" = 10 ] || fail "a missing plugin library: exit $rc, want 10"

echo "== doctor"
snap 0 doctor && contains "overlay API" && contains "fallbacks:"
snap 0 doctor --json
json 'd["overlay_api"] in ("fd", "lowerdir+", "legacy") and d["loop_configure"] in (True, False) and d["abi"] == 1 and "mkfs.ext4" in d["tools"]'

echo "== prepare, mounts, mount, commit"
snap 0 prepare a --label x=1
snap 0 -v prepare a2
[[ "$err" == *"[info] prepare 'a2'"* ]] || fail "--verbose shows no log: $err"
snap 4 prepare a
snap 3 prepare z nope
snap 6 prepare ""
snap 0 --json prepare j
json 'd["key"] == "j" and d["kind"] == "active" and d["parent"] is None and len(d["mounts"]) >= 1'
snap 0 mounts a
json 'isinstance(d, list) and d[0]["type"] and d[0]["source"]'
snap 0 mounts a --json
json 'isinstance(d, list) and all("options" in m for m in d)'
snap 3 mounts nope
snap 0 mount a "$T/mnt"
echo hi >"$T/mnt/hello" || fail "cannot write into the mounted snapshot"
snap 0 loops && contains "$ROOT/snapshots/"
snap 0 loops --json
json 'len(d) >= 1 and all(l["backing_file"].startswith("'"$ROOT"'/") and l["tag"].startswith("loopsnap:") for l in d)'
snap 0 loops --all --json
json 'any(l["backing_file"].startswith("'"$ROOT"'/") for l in d)'
snap 5 commit base a
snap 0 umount "$T/mnt"
snap 6 umount "$T/mnt"
snap 0 commit base a --label role=base
snap 3 info a
snap 0 --json commit base2 a2
json 'd == {"name": "base2", "key": "a2"}'
snap 5 mounts base

echo "== info, view, tree, ls"
snap 0 info base && contains "committed" && contains "role=base"
snap 0 info base --json
json 'd["kind"] == "committed" and d["labels"] == {"role": "base"} and d["size"] > 0 and d["inodes"] > 0 and d["parent"] is None'
snap 0 view v base
snap 0 mount v "$T/mnt2"
checks=$((checks + 1))
[ "$(cat "$T/mnt2/hello" 2>/dev/null)" = hi ] || fail "the view does not show hello"
snap 0 umount --all "$T/mnt2" --json
json 'd["unmounted"] >= 1 and d["target"] == "'"$T/mnt2"'"'
snap 0 prepare b base
snap 0 tree && contains "base (committed)" && contains "  b (active)" && contains "  v (view)"
snap 0 tree --json
json 'sorted(c["name"] for n in d if n["name"] == "base" for c in n["children"]) == ["b", "v"]'
snap 0 ls && contains "NAME"
snap 0 ls --json
json 'sorted(s["name"] for s in d) == ["b", "base", "base2", "j", "v"]'
snap 0 ls kind==active --json
json 'sorted(s["name"] for s in d) == ["b", "j"]'
snap 0 ls 'labels."role"==base' name==v --json
json 'sorted(s["name"] for s in d) == ["base", "v"]'
snap 6 ls 'kind=='

echo "== label, usage"
snap 0 label b k=v z=3 && contains "k=v" && contains "z=3"
snap 0 label b k= --json
json 'd["labels"] == {"z": "3"}'
snap 2 label b nokey
snap 3 label nope k=v
snap 0 usage base --json
json 'd["name"] == "base" and d["size"] > 0 and d["inodes"] > 0'
snap 0 usage && contains "total"
snap 0 usage --json
json 'd["total"]["size"] == sum(s["size"] for s in d["snapshots"]) and len(d["snapshots"]) == 5'
snap 3 usage nope

echo "== import, apply"
if [ -x /bin/busybox ]; then
  "$(dirname "$0")/make-oci-layout.sh" "$T/oci" || fail "make-oci-layout.sh"
  snap 0 import "$T/oci" demo
  top=$out
  [[ "$top" == sha256:* ]] || fail "import printed '$top', not a chain id"
  snap 0 import "$T/oci" demo
  [ "$out" = "$top" ] || fail "a second import gave '$out', not '$top'"
  snap 0 info "$top" --json
  json 'd["kind"] == "committed" and d["parent"].startswith("sha256:")'
  snap 0 prepare imp "$top"
  mkdir -p "$T/mnt"
  snap 0 mount imp "$T/mnt"
  [ "$(cat "$T/mnt/hello.txt")" = "hello from layer 3" ] || fail "hello.txt from layer 3"
  [ -e "$T/mnt/tmp/deleteme" ] && fail "layer 2's whiteout did not delete /tmp/deleteme"
  [ -e "$T/mnt/opt/old" ] && fail "layer 2's opaque /opt still shows old/"
  [ "$(cat "$T/mnt/opt/new.txt")" = "new" ] || fail "/opt/new.txt"
  [ "$(stat -c %h "$T/mnt/etc/motd")" = 2 ] || fail "hard link count of /etc/motd"
  snap 0 umount "$T/mnt"
  snap 0 rm imp
  snap 2 import
  snap 3 import "$T/nope"
  # apply: a layer tarball onto an active snapshot, then commit it.
  mkdir -p "$T/lt/etc"
  echo applied > "$T/lt/etc/applied"
  tar --numeric-owner -C "$T/lt" -czf "$T/layer.tar.gz" .
  snap 0 prepare ap "$top"
  snap 0 apply ap "$T/layer.tar.gz"
  snap 0 commit apc ap
  snap 0 view apv apc
  snap 0 mount apv "$T/mnt"
  [ "$(cat "$T/mnt/etc/applied")" = applied ] || fail "the applied layer's file"
  [ "$(cat "$T/mnt/hello.txt")" = "hello from layer 3" ] || fail "the parent under the applied layer"
  snap 0 umount "$T/mnt"
  snap 0 rm apv
  snap 0 rm apc
  snap 3 apply nope "$T/layer.tar.gz"
  snap 3 apply b "$T/missing.tar"
  # Refused input: an escaping entry is an error naming it, nothing committed.
  printf 'x' > "$T/x"
  tar -C "$T" -cf "$T/evil.tar" --transform 's,^x$,../escape,' x
  snap 0 prepare ev "$top"
  rc_ev=0
  "$SNAPCTL" --root "$ROOT" apply ev "$T/evil.tar" 2>"$T/stderr" || rc_ev=$?
  [ "$rc_ev" != 0 ] || fail "an escaping tar entry was applied"
  grep -q "escape" "$T/stderr" || fail "the refusal does not name the entry: $(cat "$T/stderr")"
  snap 0 rm ev
  # Clean the imported chain away again (nearest the top first).
  for k in 1 2 3; do
    snap 0 ls --json "name~=^sha256:"
    leaf=$(printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
names = {s["name"] for s in d}
parents = {s.get("parent") for s in d}
print(sorted(names - parents)[0])')
    snap 0 rm "$leaf"
  done
else
  echo "SKIP import/apply: /bin/busybox missing (Debian package busybox-static)"
fi

echo "== oci-config (the hook itself: test/e2e/hook.sh)"
snap 3 oci-config "$T/bundle" --parent base
mkdir -p "$T/bundle"
printf '{"ociVersion":"1.0.2","root":{"path":"rootfs"},"annotations":{"x":"y"},"n":1.50}' >"$T/bundle/config.json"
snap 0 oci-config "$T/bundle" --parent base --key k1 --keep --size 64M --json
json 'd["annotations"]["io.loopsnap.key"] == "k1" and d["annotations"]["io.loopsnap.writable-size"] == str(64 << 20) and d["created_root_path"]'
[ -d "$T/bundle/rootfs" ] || fail "oci-config did not create root.path"
snap 0 oci-config "$T/bundle" --parent base
checks=$((checks + 1))
python3 - "$T/bundle/config.json" "$(realpath "$ROOT")" <<'PY' || fail "oci-config: config.json after a second run"
import json, sys
c = json.load(open(sys.argv[1]))
a = c["annotations"]
assert a == {"x": "y", "io.loopsnap.root": sys.argv[2], "io.loopsnap.parent": "base"}, a
for s in ("createRuntime", "createContainer", "poststop"):
    assert len(c["hooks"][s]) == 1 and c["hooks"][s][0]["args"] == ["loopsnap-oci-hook", s], c["hooks"]
    assert c["hooks"][s][0]["path"].endswith("/loopsnap-oci-hook")
assert c["n"] == 1.5 and c["ociVersion"] == "1.0.2"
PY
printf '{"root":{"path":"rootfs"},"hooks":[]}' >"$T/bundle/config.json"
snap 6 oci-config "$T/bundle" --parent base
printf '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]' >"$T/bundle/config.json"
snap 6 oci-config "$T/bundle" --parent base
snap 2 oci-config "$T/bundle" --parent base --size lots
snap 2 oci-config "$T/bundle" --parent base --hook relative/path

echo "== remove, fsck, cleanup"
snap 5 rm base
snap 3 rm nope
snap 0 fsck && contains "no problems"
snap 0 fsck --json
json 'd["problems"] == 0 and d["remaining"] == 0 and d["lines"] == []'
mkdir "$ROOT/tmp/new-e2e-junk"
snap 9 fsck && contains "new-e2e-junk"
snap 9 fsck --json
json 'd["problems"] == 1 and d["counts"]["tmp_leftovers"] == 1 and len(d["lines"]) == 1'
snap 0 fsck --repair && contains "0 remain"
checks=$((checks + 1))
[ ! -e "$ROOT/tmp/new-e2e-junk" ] || fail "fsck --repair left the leftover"
mkdir "$ROOT/tmp/new-e2e-junk2"
snap 0 cleanup --json
json 'd["removed"] == 1'
snap 0 cleanup && contains "removed 0 leftovers"
snap 0 rm b v j --json
json 'd["removed"] == ["b", "v", "j"]'
snap 0 rm base base2
snap 0 ls --json
json 'd == []'

echo "== the writable pool (on by default; --no-writable-pool)"
spares() { find "$T/pooled/pool" -mindepth 2 -maxdepth 2 -name fs.img 2>/dev/null | wc -l; }
ROOT=$T/pooled
snap 0 prepare p
snap 0 mount p "$T/mnt"
snap 0 umount "$T/mnt"
snap 0 rm p
checks=$((checks + 1))
[ "$(spares)" = 1 ] || fail "default root: $(spares) spares after rm, want 1"
snap 0 --no-writable-pool prepare p2
checks=$((checks + 1))
[ "$(spares)" = 1 ] || fail "--no-writable-pool: the prepare took a spare"
snap 0 --no-writable-pool mount p2 "$T/mnt"
snap 0 --no-writable-pool umount "$T/mnt"
snap 0 --no-writable-pool rm p2
checks=$((checks + 1))
[ "$(spares)" = 1 ] || fail "--no-writable-pool: rm kept the image as a spare"
snap 0 cleanup
checks=$((checks + 1))
[ "$(spares)" = 0 ] || fail "cleanup left $(spares) spares"
ROOT=$T/root

echo "== settings of a root"
snap 6 --layout block ls
checks=$((checks + 1))
"$SNAPCTL" --root "$T/tower" --layout tower ls >/dev/null 2>"$T/stderr"
rc=$?
[ "$rc" = 6 ] || fail "--layout tower: exit $rc, want 6: $(cat "$T/stderr")"

echo "== block layout"
ROOT=$T/block
snap 0 --layout block prepare k
snap 0 mounts k --json
json 'len(d) == 1 and "loop" in d[0]["options"]'
snap 0 mount k "$T/mnt"
echo block >"$T/mnt/f" || fail "cannot write into the block snapshot"
snap 0 umount "$T/mnt"
snap 0 commit kc k
snap 0 prepare k2 kc
snap 0 rm k2 kc
snap 0 ls --json
json 'd == []'

echo "== no loop device left"
ROOT=$T/root
for r in "$T/root" "$T/block" "$T/pooled"; do
  left=1
  for _ in $(seq 50); do
    out=$("$SNAPCTL" --root "$r" loops --json) || break
    if printf '%s' "$out" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin) == [] else 1)'; then
      left=0
      break
    fi
    sleep 0.1
  done
  checks=$((checks + 1))
  [ "$left" = 0 ] || fail "loop devices of $r left: $out"
done

if [ "$failures" -ne 0 ]; then
  echo "FAIL: $failures of $checks checks failed"
  exit 1
fi
echo "PASS: $checks checks"
exit 0
