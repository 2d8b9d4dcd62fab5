#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the seed corpora of the fuzz targets: test/fuzz/corpus/<target>/.

The files are committed; this script is how they were made and how to
remake them (it rewrites each target's seed directory, deterministically).
Seeds are small, realistic inputs: valid ones of every shape the target's
parser takes, and near-valid ones that stop at each of its checks.
Run: test/fuzz/gen-corpus.py   (no arguments)
"""
import io
import json
import os
import shutil
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, seeds):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in seeds.items():
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def j(v):
    return json.dumps(v, indent=None, separators=(",", ":"))


# ---- util_parse_size / util_parse_u64 ---------------------------------------
write("size", {
    "64M": "64M", "1GiB": "1GiB", "10G": "10G", "4096": "4096", "zero": "0",
    "1tB": "1tB", "512k": "512k", "16EiB-overflow": "16384T",
    "u64-max": "18446744073709551615", "u64-max-plus-1": "18446744073709551616",
    "leading-zeros": "000000064M", "bad-unit": "64X", "bad-suffix": "64MiBs",
    "B-alone": "64B", "empty": "", "sign": "-1", "space": " 64M",
})

# ---- id maps: label/option strings and OCI JSON -----------------------------
oci_one = [{"containerID": 0, "hostID": 100000, "size": 65536}]
oci_two = [{"containerID": 0, "hostID": 100000, "size": 65536},
           {"containerID": 65536, "hostID": 300000, "size": 1000}]
write("idmap", {
    "label-one": "0:100000:65536",
    "label-two": "0:100000:65536,65536:300000:1000",
    "label-root-only": "0:1000:1",
    "label-top-id": "4294967294:0:1",
    "option-spaces": "0:100000:65536 65536:300000:1000",
    "injection": "0:1:1,upperdir=/etc",
    "overlap-inside": "0:0:10,5:100:10",
    "overlap-outside": "0:100:10,20:105:10",
    "wrap": "0:0:4294967295",
    "size-zero": "0:1:0",
    "too-big-number": "0:1:4294967296",
    "trailing-comma": "0:1:1,",
    "hex": "0x0:1:1",
    "oci-array": j(oci_one),
    "oci-linux-both": j({"uidMappings": oci_two, "gidMappings": oci_one}),
    "oci-config": j({"ociVersion": "1.0.2", "linux": {"uidMappings": oci_one,
                                                       "gidMappings": oci_one}}),
    "oci-unknown-key": j([{"containerID": 0, "hostID": 1, "size": 1, "extra": 1}]),
    "oci-missing-key": j([{"containerID": 0, "hostID": 1}]),
    "oci-negative": j([{"containerID": -1, "hostID": 1, "size": 1}]),
    "oci-float": '[{"containerID":0,"hostID":1.5,"size":1}]',
    "oci-duplicate": '[{"containerID":0,"containerID":1,"hostID":1,"size":1}]',
})

# ---- mount specs --------------------------------------------------------------
root = "/var/lib/loopsnap/snapshots"
overlay3 = [
    {"type": "ext4", "source": root + "/1/fs.img", "options": ["ro", "loop"]},
    {"type": "erofs", "source": root + "/2/fs.img", "options": ["ro", "loop"]},
    {"type": "ext4", "source": root + "/3/fs.img", "options": ["rw", "loop", "direct-io=on"]},
    {"type": "overlay", "source": "overlay",
     "options": ["lowerdir={{ overlay 1 0 }}", "upperdir={{ mount 2 }}/upper",
                 "workdir={{ mount 2 }}/work", "index=off"]},
]
write("mount-spec", {
    "overlay-three.json": j(overlay3),
    "overlay-pretty.json": json.dumps(overlay3, indent=2),
    "object-mounts.json": j({"mounts": overlay3[:1]}),
    "go-keys.json": j([{"Type": "bind", "Source": "/srv/data", "Target": "data",
                        "Options": ["rbind", "ro", "rprivate"]}]),
    "containerd-overlay.json": j([{"type": "overlay", "source": "overlay", "options": [
        "index=off", "workdir=/var/lib/containerd/s/9/work",
        "upperdir=/var/lib/containerd/s/9/fs", "lowerdir=/var/lib/containerd/s/2/fs:/x/1/fs"]}]),
    "idmapped.json": j([
        {"type": "ext4", "source": root + "/4/fs.img",
         "options": ["ro", "loop", "uidmap=0:100000:65536", "gidmap=0:100000:65536"]},
        {"type": "bind", "source": "{{ mount 0 }}/sub", "target": "/", "options": ["rbind"]}]),
    "tmpfs-proc.json": j([{"type": "tmpfs", "source": "tmpfs", "target": "/tmp",
                           "options": ["nosuid", "nodev", "mode=1777", "size=64m"]},
                          {"type": "proc", "source": "proc", "target": "/proc", "options": None}]),
    "empty-array.json": "[]",
    "null-target.json": '[{"type":"bind","source":"/a","target":null}]',
    "unknown-key.json": '[{"type":"bind","source":"/a","flags":1}]',
    "missing-source.json": '[{"type":"bind"}]',
    "dup-key.json": '[{"type":"bind","Type":"ext4","source":"/a"}]',
    "escaped-nul.json": '[{"type":"bind","source":"/a","options":["lowerdir=/a\\u0000,upperdir=/etc"]}]',
    "control-char.json": '[{"type":"bind","source":"/a\\u0001"}]',
    "option-not-string.json": '[{"type":"bind","source":"/a","options":[1]}]',
    "deep.json": "[" * 9 + "]" * 9,
    "forward-ref.json": j([{"type": "bind", "source": "{{ mount 1 }}"},
                           {"type": "bind", "source": "/a"}]),
    "comment.json": '[ /* a mount */ {"type":"bind","source":"/a"} ]',
    "unicode.json": j([{"type": "bind", "source": "/d\u00e9j\u00e0/\u6587"}]),
})

# ---- mount options and templates -----------------------------------------------
write("mount-opts", {
    "flags": "ro\nnosuid\nnodev\nnoexec\nrelatime\nnodiratime\nlazytime",
    "loop": "ro\nloop\ndirect-io=on\nerrors=remount-ro\nnoload",
    "overlay-templates": "#self=3\nlowerdir={{ overlay 1 0 }}\nupperdir={{ mount 2 }}/upper\n"
                         "workdir={{ mount 2 }}/work\nindex=off\nuserxattr",
    "overlay-paths": "lowerdir=/l/3:/l/2:/l/1\nupperdir=/u\nworkdir=/w\nredirect_dir=on",
    "mixed-layers": "#self=6\nlowerdir={{mount 5}}:{{ overlay 4 2 }}:/plain/layer\n"
                    "upperdir={{ mount 0 }}/a/b\nworkdir={{ mount 0 }}/a/w",
    "bind-propagation": "rbind\nrprivate\nro",
    "bind-slave": "bind\nslave\nnosuid",
    "idmap": "uidmap=0:100000:65536 65536:300000:1000\ngidmap=0:100000:65536",
    "userspace": "X-loopsnap.keep\nnoauto\n_netdev\nnofail\nx-systemd.automount\nuser",
    "atime-last-wins": "noatime\nstrictatime\nrelatime\nrw\nro",
    "refused-offset": "offset=4096",
    "refused-remount": "remount\nro",
    "refused-comma": "uidmap=0:1:1,upperdir=/etc",
    "refused-loop-value": "loop=/dev/loop0",
    "refused-twice": "uidmap=0:1:1\nuidmap=0:2:1",
    "refused-propagation": "shared\nslave",
    "bad-template": "#self=2\nlowerdir={{ mount 2 }}:{{ overlay 0 }}:{{ bogus }}",
    "subdir-escape": "#self=2\nupperdir={{ mount 0 }}/../etc",
    "relative-layer": "lowerdir=relative:/abs",
    "sizes": "size=64m\nmode=0755\nnr_inodes=1k",
})

# ---- walk filters, keys and labels -----------------------------------------------
write("filter", {
    "kind": "kind==committed",
    "parent-and-kind": "parent==sha256:0123456789abcdef,kind==active",
    "name-regex": "name~=^sha256:",
    "name-regex-slash": "name~=/k[0-9]+/",
    "name-regex-pipe": "name~=|view a\\|b|",
    "label-quoted": 'labels."containerd.io/snapshot.ref"==sha256:0123456789abcdef',
    "label-segments": "labels.a.\"b/c\"==x",
    "label-presence": "labels.foo",
    "label-ne": "labels.foo!=bar",
    "quoted-value": 'labels.foo=="bar baz"',
    "escapes": 'labels."quote\\"d"=="back\\\\slash"',
    "or": "kind==view\nname==k1\nlabels.empty",
    "empty": "\n",
    "blanks": "  kind == active ,\tname != k1 ",
    "parent-empty": 'parent==""',
    "unknown-field": "size==1",
    "unterminated": 'name=="abc',
    "bad-regex": "name~=(",
    "no-value": "name==",
    "subfield": "kind.x==1",
    "key-utf8": "sha256:\u00e9\u6587",
    "label-c1": "k=v\u0085",
    "label-pair": "containerd.io/snapshot/uidmapping=0:100000:65536",
})

# ---- OCI hook input: runtime state NUL config.json --------------------------------
def state(**kw):
    s = {"ociVersion": "1.0.2", "id": "c1", "status": "created", "pid": 0,
         "bundle": "/run/containers/c1/userdata",
         "annotations": {"run.oci.hooks.stderr": "/tmp/c1-hook.err"}}
    s.update(kw)
    return j(s)


crun_config = {
    "ociVersion": "1.0.0",
    "process": {
        "terminal": False, "user": {"uid": 0, "gid": 0},
        "args": ["/bin/sh", "-c", "true"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"],
        "cwd": "/",
        "capabilities": {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                         for k in ("bounding", "effective", "inheritable", "permitted",
                                   "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "crun",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "annotations": {
        "io.loopsnap.root": "/var/lib/loopsnap",
        "io.loopsnap.parent": "sha256:0123456789abcdef",
        "io.loopsnap.key": "c1-rootfs",
        "io.loopsnap.keep-after-stop": "false",
        "io.loopsnap.writable-size": "1G",
    },
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount",
                                             "cgroup", "user")],
        "uidMappings": oci_two, "gidMappings": oci_one,
        "maskedPaths": ["/proc/acpi", "/proc/kcore", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/sys"],
    },
}


def config(**kw):
    c = json.loads(json.dumps(crun_config))
    for k, v in kw.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return j(c)


def hook(st, cfg=None):
    return st + ("\0" + cfg if cfg is not None else "")


write("hook-input", {
    "crun-created": hook(state(), config()),
    "crun-runtime-pid": hook(state(pid=4242), config(annotations={})),
    "stopped": hook(state(status="stopped"), config(linux={"namespaces": []})),
    "creating": hook(state(status="creating", annotations=None)),
    "state-only": state(),
    "minimal-config": hook(state(), j({"root": {"path": "rootfs"}})),
    "absolute-root": hook(state(), j({"root": {"path": "/", "readonly": False},
                                      "annotations": {"io.loopsnap.keep-after-stop": "true"}})),
    "bad-id": hook(state(id="../etc"), config()),
    "bad-bundle": hook(state(bundle="relative"), config()),
    "bad-pid": hook(state(pid=-1)),
    "bad-status": hook(state(status="running")),
    "bad-keep": hook(state(), config(annotations={"io.loopsnap.keep-after-stop": "yes"})),
    "bad-size": hook(state(), config(annotations={"io.loopsnap.writable-size": "10Q"})),
    "empty-key": hook(state(), config(annotations={"io.loopsnap.key": ""})),
    "relative-snap-root": hook(state(), config(annotations={"io.loopsnap.root": "var/lib"})),
    "missing-root": hook(state(), config(root=None)),
    "readonly-string": hook(state(), config(root={"path": "rootfs", "readonly": "yes"})),
    "bad-mapping": hook(state(), config(linux={"uidMappings": [{"containerID": 0,
                                                                "hostID": 0, "size": 0}]})),
    "no-root-dir": hook(state(), config(root={"path": "nonexistent"})),
})

# ---- tar streams (uncompressed layers) --------------------------------------------
def tar(fmt, build, **kw):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kw) as t:
        build(t)
    return buf.getvalue()


def add(t, name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, pax=None):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode if kind != tarfile.DIRTYPE else 0o755
    ti.mtime = 1000000000
    ti.linkname = link
    if pax:
        ti.pax_headers = pax
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)


def basic(t):
    add(t, "etc/", tarfile.DIRTYPE)
    add(t, "etc/hostname", data=b"layer\n")
    add(t, "etc/localtime", tarfile.SYMTYPE, link="/usr/share/zoneinfo/UTC")
    add(t, "etc/hostname.bak", tarfile.LNKTYPE, link="etc/hostname")
    add(t, "dev/", tarfile.DIRTYPE)
    add(t, "run/fifo", tarfile.FIFOTYPE)


def whiteouts(t):
    add(t, "usr/", tarfile.DIRTYPE)
    add(t, "usr/.wh..wh..opq")
    add(t, "usr/.wh.old-file")
    add(t, "usr/new", data=b"x" * 600)


long_name = "very/" * 30 + "long-file-name"
long_link = "target/" * 20 + "end"


def longnames(t):
    add(t, long_name, data=b"long\n")
    add(t, "short-link", tarfile.SYMTYPE, link=long_link)
    add(t, long_name + ".hard", tarfile.LNKTYPE, link=long_name)


def paxstuff(t):
    add(t, "d\u00e9j\u00e0/\u6587\u4ef6", data=b"utf8")
    add(t, "xattrs", data=b"x", pax={"SCHILY.xattr.user.test": "value",
                                    "SCHILY.xattr.security.capability": "\x01\x00"})
    add(t, long_name, data=b"pax long name")


def raw_header(name, type_, size, link=b"", magic=b"ustar\x0000", size_field=None):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\x00"
    h[108:116] = b"0000000\x00"
    h[116:124] = b"0000000\x00"
    h[124:136] = size_field if size_field else b"%011o\x00" % size
    h[136:148] = b"%011o\x00" % 1000000000
    h[156:157] = type_
    h[157:157 + len(link)] = link
    h[257:265] = magic
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\x00 " % sum(h)
    return bytes(h)


def block(data):
    return data + b"\0" * ((512 - len(data) % 512) % 512)


def pax_record(key, value):
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


end = b"\0" * 1024
nul_path = pax_record(b"path", b"ok\0../../etc/passwd")
write("tar-scan", {
    "ustar-basic.tar": tar(tarfile.USTAR_FORMAT, basic),
    "whiteouts.tar": tar(tarfile.USTAR_FORMAT, whiteouts),
    "gnu-longnames.tar": tar(tarfile.GNU_FORMAT, longnames),
    "pax-longnames.tar": tar(tarfile.PAX_FORMAT, longnames),
    "pax-utf8-xattrs.tar": tar(tarfile.PAX_FORMAT, paxstuff),
    "pax-global.tar": tar(tarfile.PAX_FORMAT, basic, pax_headers={"comment": "layer"}),
    "no-end-blocks.tar": raw_header(b"a", b"0", 5) + block(b"hello"),
    "empty.tar": end,
    "pax-size.tar": block(raw_header(b"PaxHeaders/sized", b"x", len(pax_record(b"size", b"600")))
                          + pax_record(b"size", b"600")) + raw_header(b"sized", b"0", 0)
                    + block(b"s" * 600) + end,
    "bad-checksum.tar": raw_header(b"a", b"0", 0)[:148] + b"0000000\x00"
                        + raw_header(b"a", b"0", 0)[156:] + end,
    "truncated.tar": raw_header(b"a", b"0", 1000) + b"x" * 100,
    "garbage-after-end.tar": raw_header(b"a", b"0", 0) + end + b"X",
    "sparse.tar": raw_header(b"sparse", b"S", 0) + end,
    "unknown-type.tar": raw_header(b"weird", b"Z", 0) + end,
    "link-with-size.tar": raw_header(b"l", b"1", 5, b"a") + block(b"hello") + end,
    "dir-with-size.tar": raw_header(b"d/", b"5", 512) + block(b"x" * 512) + end,
    "pax-nul-path.tar": raw_header(b"PaxHeaders/e", b"x", len(nul_path)) + block(nul_path)
                        + raw_header(b"ok", b"0", 0) + end,
    "gnu-longname-nul.tar": raw_header(b"././@LongLink", b"L", 8, magic=b"ustar  \x00")
                            + block(b"a\0b/c\0\0\0") + raw_header(b"x", b"0", 0) + end,
    "base256-size.tar": raw_header(b"a", b"0", 5, size_field=b"\x80" + b"\0" * 10 + b"\x05")
                        + block(b"hello") + end,
    "v7-header.tar": raw_header(b"old/", b"\0", 0, magic=b"\0" * 8) + end,
})
