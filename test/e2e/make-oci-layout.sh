#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# make-oci-layout.sh DIR: writes a small OCI image layout to DIR (no network)
# from Debian's busybox-static, in three layers:
#   1 (tar+gzip) busybox and its applet links, /etc/motd, /tmp/deleteme,
#                /opt/old/a.txt, a hard link /etc/motd.link
#   2 (tar)      deletes /tmp/deleteme (.wh.), makes /opt opaque
#                (.wh..wh..opq) and adds /opt/new.txt
#   3 (tar+gzip) /hello.txt
# Reference name "demo". The JSON is written by hand (printf): no tools
# beyond coreutils, tar and gzip.
set -euo pipefail

out=${1:?usage: make-oci-layout.sh DIR}
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "make-oci-layout: $busybox missing (Debian package busybox-static)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/blobs/sha256"

# The layers' trees.
l1=$work/l1 l2=$work/l2 l3=$work/l3
mkdir -p "$l1/bin" "$l1/etc" "$l1/tmp" "$l1/opt/old" "$l1/proc" "$l1/dev" "$l1/sys"
cp "$busybox" "$l1/bin/busybox"
for a in sh ls cat echo id stat find; do ln -s busybox "$l1/bin/$a"; done
echo "built by loopsnap's make-oci-layout.sh" > "$l1/etc/motd"
ln "$l1/etc/motd" "$l1/etc/motd.link"
echo "this file is deleted by layer 2" > "$l1/tmp/deleteme"
echo "old" > "$l1/opt/old/a.txt"
chmod 1777 "$l1/tmp"
mkdir -p "$l2/tmp" "$l2/opt"
: > "$l2/tmp/.wh.deleteme"
: > "$l2/opt/.wh..wh..opq"
echo "new" > "$l2/opt/new.txt"
chmod 1777 "$l2/tmp"
mkdir -p "$l3"
echo "hello from layer 3" > "$l3/hello.txt"

blob() { # FILE -> prints "sha256:<hex> <size>" and stores the blob
  local hex size
  hex=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  cp "$1" "$out/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

diff_ids=() layers=()
for n in 1 2 3; do
  tar --numeric-owner --owner=0 --group=0 --sort=name -C "$work/l$n" -cf "$work/l$n.tar" .
  diff_ids+=("sha256:$(sha256sum "$work/l$n.tar" | cut -d' ' -f1)")
  if [ "$n" = 2 ]; then
    mt=application/vnd.oci.image.layer.v1.tar; f=$work/l$n.tar
  else
    mt=application/vnd.oci.image.layer.v1.tar+gzip; gzip -n -k "$work/l$n.tar"; f=$work/l$n.tar.gz
  fi
  read -r d s < <(blob "$f")
  layers+=("{\"mediaType\":\"$mt\",\"digest\":\"$d\",\"size\":$s}")
done

join() { local IFS=,; echo "$*"; }
ids=$(printf '"%s",' "${diff_ids[@]}"); ids=${ids%,}
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
  "$ids" > "$work/config.json"
read -r cd cs < <(blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
  "$cd" "$cs" "$(join "${layers[@]}")" > "$work/manifest.json"
read -r md ms < <(blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"demo"}}]}' \
  "$md" "$ms" > "$out/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
