/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mount/ — the bundled mount engine (DESIGN §7). It applies a mount spec
 * (mount/spec.h) onto a target directory or returns the final mount as a
 * detached fd. No front door mounts anything itself.
 *
 * Which mounts go where: a mount referenced by a template of a later mount
 * ({{ mount N }}, {{ overlay A B }}) is *intermediate*: it is never visible
 * at the target (a detached mount on the fd API; a private scratch
 * mountpoint, unmounted once the spec is applied, on the others). Every other
 * mount is applied onto the target in order — at target/<mount.target> when
 * the mount names a sub-target.
 *
 * Overlay is mounted one of three ways, probed once per process and forcible
 * with LOOPSNAP_MOUNT_API=fd|lowerdir+|legacy:
 *   fd         every layer an fd (detached mounts, O_PATH dirs) passed with
 *              fsconfig(FSCONFIG_SET_FD, "lowerdir+"); no temp dirs, no length
 *              limits, idmapped lowers;
 *   lowerdir+  one fsconfig(FSCONFIG_SET_STRING, "lowerdir+") per layer, each
 *              path at most 255 bytes;
 *   legacy     mount(2) with lowerdir compaction (relative paths after chdir
 *              in a thread that did unshare(CLONE_FS)) and a hard check that
 *              the data fits 4095 bytes: mount(2) silently truncates.
 *
 * Consumed options (never passed to the kernel): loop, direct-io, uidmap=,
 * gidmap=, X-loopsnap.*. Overlay gets index=off unless the spec sets index.
 * Read-only ext4 gets noload. Every error names the mount ("mounts[2]") and
 * carries the kernel's fs-context messages where the new API gave any.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mount/spec.h"
#include "util/util.h"

enum mount_api {
        MOUNT_API_AUTO = 0, /* LOOPSNAP_MOUNT_API, else the best the kernel has */
        MOUNT_API_FD,
        MOUNT_API_LOWERDIR_PLUS,
        MOUNT_API_LEGACY,
};

/* "fd", "lowerdir+", "legacy" ("auto" for MOUNT_API_AUTO). */
const char *mount_api_name(enum mount_api api);
/* Parses a LOOPSNAP_MOUNT_API value. Returns 0 or -EINVAL. */
int mount_api_parse(const char *s, enum mount_api *ret);
/* What the kernel supports (probed once per process): the best of
 * MOUNT_API_FD / MOUNT_API_LOWERDIR_PLUS / MOUNT_API_LEGACY. */
enum mount_api mount_api_probe(void);

struct mount_engine_opts {
        /* Owner part of the tag of loop devices the engine attaches
         * ("loopsnap:<owner>:<id>"); NULL = "mount". */
        const char *loop_owner;
        /* Where the lowerdir+ and legacy paths make intermediate mountpoints
         * (a private directory is created inside and removed again);
         * NULL = /run/loopsnap. */
        const char *scratch_dir;
        /* MOUNT_API_AUTO = LOOPSNAP_MOUNT_API, else probe. */
        enum mount_api api;
        /*
         * Optional, new mount API only: for a loop mount of image `source`
         * as `type` (read-write when `rw`), an existing mount of exactly
         * that filesystem to use instead of binding a device and mounting
         * it again. The callback returns 1 with a detached clone (open_tree)
         * in *ret_fd, or 0 when it has none (the engine then mounts as
         * usual). It must verify what it hands out: the spec stays the only
         * truth, a cache only saves time. The engine applies the spec's
         * per-mount flags and id mapping to the clone.
         *
         * `borrow`: the mount is only a layer of overlays that are not
         * id-mapped, which clone their layers privately when they are
         * created. The callback may then return 2 with an O_PATH fd of the
         * existing mount's root instead: no clone to make, and none to
         * dissolve after the apply (closing a detached clone waits for an
         * RCU grace period, ~35 us here, per layer). The engine never
         * changes a lent mount: it uses it only when its flags are already
         * the spec's, and asks again without `borrow` otherwise. Should the
         * lent mount be unmounted before the overlay exists, the apply is
         * made once more without borrowing.
         */
        int (*reuse)(void *data, const char *type, const char *source, bool rw, bool borrow,
                     int *ret_fd);
        void *reuse_data;
};

struct mount_engine;

/* A new engine (it caches user namespaces per id mapping). Thread-safe
 * apart from mount_engine_free. `o` may be NULL. */
int mount_engine_new(const struct mount_engine_opts *o, struct mount_engine **ret,
                     struct util_err *err);
struct mount_engine *mount_engine_free(struct mount_engine *e);
UTIL_DEFINE_FREE_FUNC(struct mount_engine, mount_engine_free)

/* The overlay API this engine uses. */
enum mount_api mount_engine_api(const struct mount_engine *e);
/* How many user namespaces the engine has cached. */
size_t mount_engine_userns_cached(const struct mount_engine *e);
/* How many mounts the engine took from mount_engine_opts.reuse, cloned or
 * lent (instead of attaching and mounting). */
size_t mount_engine_reused(const struct mount_engine *e);
/* How many of those were lent as they are (`borrow`), not cloned. */
size_t mount_engine_borrowed(const struct mount_engine *e);
/* How many applies failed with a lent mount and were made again without. */
size_t mount_engine_retried(const struct mount_engine *e);

/*
 * mount_engine_apply: apply `spec`.
 * - `target` a directory: the mounts land there; `ret_fd` must be NULL.
 * - `target` NULL: the spec must end in exactly one non-intermediate mount,
 *   returned as a detached mount fd in *ret_fd (fd and lowerdir+ APIs only).
 * `loop_id` is the id part of the tags of loop devices attached for the spec
 * (NULL = "spec"). On failure nothing stays mounted or attached.
 * Returns: 0, or -errno with `err` naming the mount at fault.
 */
int mount_engine_apply(struct mount_engine *e, const struct mount_spec *spec, const char *target,
                       const char *loop_id, int *ret_fd, struct util_err *err);

/*
 * mount_unmount: unmount `target` once (UMOUNT_NOFOLLOW), retrying EBUSY a
 * bounded number of times with short sleeps.
 * Returns: 0, -EINVAL when `target` is not a mountpoint, or -errno.
 */
int mount_unmount(const char *target, struct util_err *err);

/*
 * mount_unmount_all: peel every mount stacked on `target` until it is no
 * longer a mountpoint. Returns: the number of mounts removed (>= 0), or
 * -errno with `err`.
 */
int mount_unmount_all(const char *target, struct util_err *err);

/* ---- moving mount trees (move.c; the OCI hook, DESIGN §8) -------------- */

/* mount_attach: attach the detached mount tree `mnt_fd` (from
 * mount_engine_apply with target NULL) at directory `target` of the
 * caller's current mount namespace (move_mount). The fd stays the caller's.
 * Returns: 0, or -errno with `err`. */
int mount_attach(int mnt_fd, const char *target, struct util_err *err);

/* mount_move: move the mount at `from` (with everything mounted below it)
 * onto `to`. Returns: 0, or -errno with `err` (EINVAL: not a mount point, or
 * its parent mount is shared). */
int mount_move(const char *from, const char *to, struct util_err *err);

/*
 * mount_move_children: move every direct child mount of the topmost mount at
 * `from` (with what is mounted below each) into the tree at `to`, at the same
 * path relative to the tree's root, in mountinfo (creation) order. Paths in
 * `to` are resolved with RESOLVE_IN_ROOT (symlinks stay inside the tree);
 * missing mount points are created: directories (0755) on the way, the last
 * one as a directory or an empty file (0644) like the mount it receives.
 * Returns: the number of mounts moved (>= 0), or -errno with `err` naming
 * the mount at fault; mounts moved before a failure stay moved.
 */
int mount_move_children(const char *from, const char *to, struct util_err *err);

/* mount_set_readonly: make the mount at `target` read-only, not the mounts
 * below it (mount_setattr). Returns: 0, or -errno with `err`. */
int mount_set_readonly(const char *target, struct util_err *err);

/* mount_make_containing_private: make the mount that contains `path` (or is
 * mounted on it) private, not recursively, so that what is mounted below it
 * next does not propagate to peers. Returns: 0, or -errno with `err`. */
int mount_make_containing_private(const char *path, struct util_err *err);

/* ---- mountinfo queries (libmount) --------------------------------------- */

struct mount_info {
        char target[4096];
        char source[4096];
        char fstype[64];
        char options[1024]; /* VFS and fs options, comma-joined */
        dev_t devno;
        int id;
        int parent_id;
};

/* Whether `path` is a mountpoint (the root of a mount). Returns 1, 0, or
 * -errno. */
int mount_is_mountpoint(const char *path, struct util_err *err);

/* The topmost mount at `target` (exact match) or below when `target` is not
 * a mountpoint: the mount that contains it. Returns 0, -ENOENT, or -errno. */
int mount_find_by_target(const char *target, struct mount_info *ret, struct util_err *err);

/* The first mount (in mountinfo order) whose source is `source`.
 * Returns 0, -ENOENT, or -errno. */
int mount_find_by_source(const char *source, struct mount_info *ret, struct util_err *err);

/* The device number of the filesystem holding `path` (st_dev; for a device
 * node, its st_rdev). Returns 0 or -errno. */
int mount_backing_device(const char *path, dev_t *ret, struct util_err *err);

enum mount_blockdev_kind {
        MOUNT_BLOCKDEV_OTHER = 0,
        MOUNT_BLOCKDEV_LOOP,
        MOUNT_BLOCKDEV_DM,
};
/* What kind of block device `dev` is (through /sys/dev/block). Returns the
 * kind (>= 0), -ENOENT when it is not a block device, or -errno. */
int mount_blockdev_kind(dev_t dev);
