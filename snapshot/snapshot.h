/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * snapshot/snapshot.h — the snapshotter: containerd's snapshot operations on
 * a root whose layers are image files (DESIGN §1, §3–§5).
 *
 * Overlay layout: an active snapshot owns snapshots/<id>/fs.img, a clone of
 * a formatted template holding upper/ and work/ (owned by the mapped root
 * when the snapshot has uid/gid mapping labels); committing it freezes that
 * image, whose upper/ is then a read-only lower layer for its children. A
 * view owns no writable part. Mounts(key) is a pure function of committed
 * metadata (ids, kinds, parent chain, mapping labels) and the root's
 * settings, which are fixed when the root is created (config.json).
 *
 * Spec shapes (ids nearest parent first; every layer image "ro,loop"):
 *   active, parents p1..pn: [p1 .. pn images], own image rw, overlay
 *       lowerdir={{ overlay 0 n-1 }}/upper, upperdir/workdir={{ mount n }}/...
 *   active, no parent:      own image rw, bind {{ mount 0 }}/upper
 *   view, one parent:       p1 image, bind {{ mount 0 }}/upper ro
 *   view, parents p1..pn:   [p1 .. pn images], overlay of their upper/, ro
 *   view, no parent:        bind of an empty directory, ro
 * uid/gid mapping labels add uidmap=/gidmap= (idmapped lowers, or the bind).
 *
 * Block layout (for VM runtimes that take an image as a disk): every
 * snapshot, view or active, is a whole filesystem image cloned from its
 * parent's (reflink or sparse copy), or from an empty template; its spec is
 * one mount {ext4|xfs, snapshots/<id>/fs.img, [rw|ro, loop]}, idmapped
 * itself when the labels ask. A child has its parent's size (max-size
 * applies to snapshots without a parent).
 *
 * Errors: the errno -> containerd error kind mapping of store.h (ENOENT
 * not-found, EEXIST already-exists, EINVAL invalid-argument, EBUSY
 * failed-precondition, EAGAIN unavailable, EOPNOTSUPP not supported).
 * Every message names the key.
 *
 * Root variants (fixed at creation, docs/snapshot.md): committed layers as
 * the trimmed writable image (ext4, default) or converted to erofs at
 * commit (snapshots/<id>/layer.erofs); the writable upper as an image
 * (default, quota) or as plain directories snapshots/<id>/fs/{upper,work}
 * (upper_dir: no quota; commit makes the layer image from the directory).
 * Both need the overlay layout (EINVAL otherwise).
 *
 * Activation cache: prepare and view keep the committed layers they stack
 * mounted read-only at m/<id> (snapshot-internal.h); specs never name it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mount/spec.h"
#include "snapshot/store.h"
#include "util/util.h"

#define SNAP_DEFAULT_ROOT          "/var/lib/loopsnap"
#define SNAP_DEFAULT_WRITABLE_SIZE (10ull << 30)

/* Labels the snapshotter honours. */
#define SNAP_LABEL_UIDMAPPING "containerd.io/snapshot/uidmapping"
#define SNAP_LABEL_GIDMAPPING "containerd.io/snapshot/gidmapping"
#define SNAP_LABEL_MAX_SIZE   "containerd.io/snapshot/max-size"
#define SNAP_LABEL_REF        "containerd.io/snapshot.ref"
/* "true": a disposable active snapshot, mounted once and then removed (the
 * hook's containers without keep-after-stop). Its overlay is mounted
 * "volatile": no sync of the upper filesystem at unmount (~1.2 ms of a
 * container's stop on an image upper), and after that first mount
 * overlayfs refuses to mount its upper again (docs/snapshot.md). */
#define SNAP_LABEL_VOLATILE "io.loopsnap.volatile"

enum snap_layout {
        SNAP_LAYOUT_OVERLAY = 0,
        SNAP_LAYOUT_BLOCK,
};

struct snap_root_opts {
        const char *path;             /* NULL: SNAP_DEFAULT_ROOT */
        enum snap_layout layout;      /* overlay (default) */
        const char *writable_fs;      /* NULL: "ext4"; or "xfs" */
        uint64_t writable_size;       /* 0: SNAP_DEFAULT_WRITABLE_SIZE */
        const char *committed_format; /* NULL: "ext4" (docs/snapshot.md: compact); "erofs" */
        bool upper_dir;               /* writable upper as a plain directory (no quota) */
        /* Do not keep committed layers mounted under m/<id> (not recorded:
         * the cache never changes a spec). LOOPSNAP_ACTIVATION=0 does too. */
        bool no_activation_cache;
        /* Keep up to this many emptied writable images of removed active
         * snapshots attached and mounted for the next prepares (the
         * writable pool, docs/snapshot.md); with directory uppers, their
         * emptied snapshot directories; 0: off. Overlay layout only; not
         * recorded. LOOPSNAP_WRITABLE_POOL=N overrides it. */
        unsigned writable_pool;
};

/* A writable pool's size when one is asked for without a size. */
#define SNAP_DEFAULT_WRITABLE_POOL 4

struct snap_root;

/*
 * snap_root_open: open (creating, mode 0700) a snapshotter root. A new root
 * records its settings in config.json; an existing root keeps its recorded
 * settings and refuses different explicit ones (EINVAL naming the setting).
 * Returns 0 and a handle (one thread at a time), or -errno with `err`.
 */
int snap_root_open(const struct snap_root_opts *o, struct snap_root **ret, struct util_err *err);
/* Closes the handle; NULL is fine; returns NULL. */
struct snap_root *snap_root_close(struct snap_root *r);
UTIL_DEFINE_FREE_FUNC(struct snap_root, snap_root_close)

/* The id used in loop-device tags of this root ("loopsnap:<root-id>:<id>"). */
const char *snap_root_tag_owner(const struct snap_root *r);

/*
 * snap_root_engine_opts: options for a mount engine that applies this
 * root's specs: its loop-device tag owner, and (overlay layout) reuse of
 * the activation cache: a committed layer kept mounted at m/<id> is cloned
 * (open_tree) instead of mounted again, after checking that the mount's
 * device is backed by that layer's image. `r` must outlive the engine.
 */
struct mount_engine_opts;
void snap_root_engine_opts(struct snap_root *r, struct mount_engine_opts *o);
/* The root's directory. */
const char *snap_root_path(const struct snap_root *r);

/*
 * snap_prepare / snap_view: a new active (writable) or view (read-only)
 * snapshot `key` on committed `parent` (NULL or "": none), with `labels`.
 * Returns 0 and its mount spec in *ret_mounts (may be NULL; free with
 * mount_spec_free), or -errno: EEXIST, ENOENT (parent), EINVAL (parent not
 * committed, bad key/label/mapping/max-size).
 */
int snap_prepare(struct snap_root *r, const char *key, const char *parent,
                 const struct snap_label *labels, size_t n_labels, struct mount_spec **ret_mounts,
                 struct util_err *err);
int snap_view(struct snap_root *r, const char *key, const char *parent,
              const struct snap_label *labels, size_t n_labels, struct mount_spec **ret_mounts,
              struct util_err *err);

/* The mount spec of an active or view snapshot; EBUSY for a committed one. */
int snap_mounts(struct snap_root *r, const char *key, struct mount_spec **ret,
                struct util_err *err);

/*
 * snap_commit: commit active `key` as `name` (labels replaced by `labels`).
 * EBUSY while its image is still attached to a loop device (mounted),
 * naming the device, or when `key` is a view. Records size and inodes.
 */
int snap_commit(struct snap_root *r, const char *name, const char *key,
                const struct snap_label *labels, size_t n_labels, struct util_err *err);

/* snap_remove: remove `key`; EBUSY while it has children. Its files go to
 * trash/ inside the transaction and are deleted after it. */
int snap_remove(struct snap_root *r, const char *key, struct util_err *err);

/* snap_release_writable: drop the writable pool's mount of active `key`'s
 * image (its "keeper", made when the root has a writable pool), so that the
 * image's loop device goes as soon as no one else has it mounted: what a
 * caller that decides "in use?" by that device needs first. Nothing to do
 * without a keeper, for a view, or with directory uppers.
 * Returns: 0, or -errno with `err` (ENOENT: no such snapshot). */
int snap_release_writable(struct snap_root *r, const char *key, struct util_err *err);

int snap_stat(struct snap_root *r, const char *key, struct snap_info *ret, struct util_err *err);
int snap_update(struct snap_root *r, const char *name, const struct snap_label *labels,
                size_t n_labels, const char *const *fieldpaths, size_t n_fieldpaths,
                struct snap_info *ret, struct util_err *err);

struct snap_usage {
        uint64_t size;   /* bytes: committed, recorded at commit; active, allocated by
                            its image file */
        uint64_t inodes; /* committed: recorded at commit; active: 0 (not measured
                            while it may be mounted) */
};
int snap_usage(struct snap_root *r, const char *key, struct snap_usage *ret, struct util_err *err);

/* Walk with containerd filters (store.h); fn may call snap_stat. */
int snap_walk(struct snap_root *r, const char *const *filters, size_t n_filters, snap_walk_fn fn,
              void *data, struct util_err *err);

/*
 * snap_cleanup: under the root's exclusive lock (no create in progress),
 * delete trash/ entries, tmp/ leftovers, templates/new-*, snapshots/<id>
 * directories without a row, stale files of converting commits and
 * activations (m/<id>) of layers that are gone; also drop activations of
 * layers no active snapshot or view stacks (not counted). Returns the
 * number removed.
 */
int snap_cleanup(struct snap_root *r, struct util_err *err);

/* ---- applying layers and importing OCI images (docs/apply.md) ---------- */

/* "sha256:" + 64 lower-case hex digits + NUL. */
#define SNAP_DIGEST_MAX 72

/*
 * snap_digest_check: whether `digest` is "sha256:<64 lower-case hex>".
 * Returns 0, -EOPNOTSUPP for another algorithm ("sha512:..."), or -EINVAL.
 */
int snap_digest_check(const char *digest);

/*
 * snap_chain_id: the OCI chain id of a layer whose uncompressed digest is
 * `diff_id` on top of the layers whose chain id is `parent` (NULL or "":
 * the bottom layer): ChainID(L0) = DiffID(L0),
 * ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)), "sha256:<hex>".
 * Returns 0 and the id in `ret`, or -EINVAL (a digest is malformed) /
 * -EOPNOTSUPP (not sha256) / -ENOMEM.
 */
int snap_chain_id(const char *parent, const char *diff_id, char ret[SNAP_DIGEST_MAX]);

enum snap_apply_mode {
        /* Onto a whole filesystem (the block layout's images): `.wh.<name>`
         * deletes <name>, `.wh..wh..opq` deletes what the directory held
         * before this layer. */
        SNAP_APPLY_MERGED = 0,
        /* Into an overlay upper directory: `.wh.<name>` becomes an overlay
         * whiteout (character device 0:0), `.wh..wh..opq` sets
         * trusted.overlay.opaque=y on its directory. */
        SNAP_APPLY_OVERLAY,
};

/* Progress of an apply or import: `done` of `total` bytes of layer blobs
 * read (compressed, as stored). Called from the calling thread. */
typedef void (*snap_progress_fn)(uint64_t done, uint64_t total, void *data);

struct snap_apply_result {
        char digest[SNAP_DIGEST_MAX];  /* sha256 of the file as read */
        char diff_id[SNAP_DIGEST_MAX]; /* sha256 of the uncompressed tar */
        uint64_t size;                 /* bytes of the file */
        uint64_t uncompressed_size;    /* bytes of the uncompressed tar */
        uint64_t entries;              /* tar entries applied */
};

/*
 * snap_apply_dir: extract the layer tarball `tar_path` (tar, gzip or zstd,
 * detected from the content) into the directory `dir` in `mode`.
 *
 * Extraction runs in a forked child confined to `dir` (chroot, every fd but
 * its own closed, capabilities cut to what file creation needs,
 * no_new_privs, a seccomp allow-list) that resolves every path beneath
 * `dir` with openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV)
 * and never follows the final component. Each entry is checked before
 * anything is written for it; refused (EINVAL unless said otherwise, the
 * message naming the entry): absolute names, `..` components, names over
 * PATH_MAX/NAME_MAX or holding a NUL byte, paths that resolve out of `dir`
 * (through a symlink), hard links to anything but a regular file extracted
 * earlier from the same layer, device nodes and sockets (FIFOs are made),
 * unknown entry types, sparse entries, extended headers over their limits,
 * xattrs outside user.*, security.*, trusted.* and system.posix_acl_* and
 * the overlay namespaces (trusted.overlay.*, user.overlay.*), a damaged or
 * truncated archive, data after its end. Modes (with setuid/setgid/sticky),
 * numeric owners, xattrs (security.capability too), hard links, symlinks
 * and times (directories' after their contents) are preserved.
 *
 * On failure what was extracted before the refused entry stays: the caller
 * throws the directory away. `progress` may be NULL. `ret` may be NULL.
 * Returns 0, or -errno with `err` ("apply '<tar>': entry '../x': path
 * escapes the layer root").
 */
int snap_apply_dir(const char *dir, enum snap_apply_mode mode, const char *tar_path,
                   snap_progress_fn progress, void *progress_data, struct snap_apply_result *ret,
                   struct util_err *err);

/*
 * snap_apply: apply the layer tarball `tar_path` to active snapshot `key`:
 * its writable image is mounted alone at a private point in tmp/ (the root
 * lock held shared meanwhile, like commit's measuring mount); the overlay
 * layout extracts into its upper/ in SNAP_APPLY_OVERLAY mode (directories
 * the layer does not carry are made with the attributes they have in the
 * parent layers, which are mounted read-only for that), the block layout
 * onto the image's root in SNAP_APPLY_MERGED mode. The image is synced and
 * unmounted before returning, whatever happened.
 *
 * Refused: `key` not active (EBUSY), mounted (EBUSY, naming the device),
 * with uid/gid mapping labels (EOPNOTSUPP: layers are applied to unmapped
 * snapshots). On any failure nothing is committed, but the active
 * snapshot's content is undefined: remove it (snap_import_oci does).
 * Returns 0 (and *ret, may be NULL) or -errno with `err`.
 */
int snap_apply(struct snap_root *r, const char *key, const char *tar_path,
               snap_progress_fn progress, void *progress_data, struct snap_apply_result *ret,
               struct util_err *err);

/*
 * snap_import_oci: import an image from the OCI image layout in
 * `layout_dir` (oci-layout, index.json, blobs/sha256/): the manifest whose
 * org.opencontainers.image.ref.name annotation in index.json is `ref`, or,
 * with `ref` NULL, the only one (nested indexes are followed; where several
 * manifests remain, the one for linux and this machine's architecture).
 * Every blob read is checked against its descriptor (size and sha256);
 * every layer's uncompressed digest against the config's rootfs.diff_ids.
 * Layer n becomes a committed snapshot named by its chain id, on layer n-1;
 * one that exists already (same parent) is kept and skipped. Each new layer
 * is prepared under a temporary key ("import-<random>"), applied, checked
 * and committed; on failure the temporary snapshot is removed, so nothing
 * of a bad layer is left (the layers below it stay committed: they are
 * correct). Layer media types: OCI tar, tar+gzip, tar+zstd and Docker's
 * rootfs.diff.tar(.gzip). `progress` counts the bytes of all layer blobs.
 * Returns 0 and the top layer's chain id in *ret_chain_id (malloc'ed;
 * may be NULL), or -errno with `err` naming the file or layer at fault.
 */
int snap_import_oci(struct snap_root *r, const char *layout_dir, const char *ref,
                    snap_progress_fn progress, void *progress_data, char **ret_chain_id,
                    struct util_err *err);
