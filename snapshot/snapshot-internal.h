/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private to snapshot/: the root handle and helpers shared by its files. */
#pragma once

#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>

#include "mount/mount.h"
#include "snapshot/image.h"
#include "snapshot/snapshot.h"

UTIL_DEFINE_FREE_FUNC(DIR, closedir)

/* A mount at m/<id> or w/<ino> this process has checked (activate.c):
 * the kernel's unique id of the mount, and the image it is backed by. */
struct snap_verified {
        uint64_t mnt_id; /* STATX_MNT_ID_UNIQUE; 0: empty slot */
        dev_t dev;
        ino_t ino;
};
#define SNAP_VERIFIED_SLOTS 128

struct snap_root {
        char *path;
        struct snap_store *store;
        struct mount_engine *engine; /* for commit's temporary mount */
        /* For activations (activate.c): no reuse callback, which could only
         * find the m/<id> that the activation is about to mount, and ask
         * ~10 syscalls a layer to say so. NULL without the cache. */
        struct mount_engine *act_engine;
        int lock_fd; /* <root>/lock: LOCK_SH while creating, LOCK_EX in cleanup */
        enum snap_layout layout;
        char *writable_fs;
        uint64_t writable_size;
        char *committed_format; /* "ext4" or "erofs" */
        bool upper_dir;         /* active snapshots' upper is snapshots/<id>/fs/ */
        bool activation;        /* keep committed layers mounted under m/<id> */
        int m_lock_fd;          /* <root>/m/.lock: LOCK_EX while activating */
        int w_lock_fd;          /* <root>/w/.lock: LOCK_EX while making a keeper */
        unsigned pool_max;      /* spare writable images kept (pool.c); 0: off */
        bool pool_quiet;        /* the root engine is mounting a keeper / measuring */
        char owner[24];         /* loop tag owner of this root */
        pthread_mutex_t verified_lock;
        struct snap_verified verified[SNAP_VERIFIED_SLOTS]; /* by mount id, direct-mapped */
};

/* "<root>/<fmt...>" into a malloc'ed string; NULL on ENOMEM. */
char *snap_path(const struct snap_root *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* The mount spec of snapshot `i` (active or view) from metadata alone. */
int snap_layout_spec(struct snap_root *r, const struct snap_info *i, struct mount_spec **ret,
                     struct util_err *err);

/* The type of committed layers' images: erofs, ext4 for a directory upper
 * (made with mkfs.ext4 -d at commit), else the writable image's type. */
const char *snap_committed_type(const struct snap_root *r);
/* The image of snapshot `id` as a layer: "snapshots/<id>/layer.erofs" for
 * erofs roots, else "snapshots/<id>/fs.img". malloc'ed; NULL on ENOMEM. */
char *snap_layer_image(const struct snap_root *r, int64_t id);

/* Activation cache (activate.c): makes sure committed layers `ids` are
 * mounted read-only at m/<id>. Best effort: failures are traced, never
 * returned (correctness never depends on the cache). */
void snap_activate(struct snap_root *r, const int64_t *ids, size_t n);
/* Unmounts m/<id> (all stacked mounts) and removes the directory, unless
 * `keep_dir` (the layer stays: its next activation needs no new directory
 * on the host). Returns 1 when something was mounted, 0 when not, -errno. */
int snap_deactivate(struct snap_root *r, int64_t id, bool keep_dir, struct util_err *err);
/* Whether m/<id> is a mount point. */
bool snap_is_active(struct snap_root *r, int64_t id);

/* Whether `fd` (a mount's root: O_PATH or a detached clone) is a `type`
 * filesystem on a loop device whose backing file is `want` (st_dev and
 * st_ino, as the kernel reports the device's backing file). */
bool snap_mount_backed_by(int fd, const char *type, const struct stat *want);
/* snap_mount_backed_by for an O_PATH fd of a mount's root, remembered by the
 * mount's unique id (Linux 6.8): a mount checked once is not checked again
 * while it stays the same mount and `want` the same file. */
bool snap_mount_backed_by_cached(struct snap_root *r, int fd, const char *type,
                                 const struct stat *want);
/* When the mount at `point` is a `type` filesystem backed by image `want`
 * (snap_mount_backed_by_cached): an O_PATH fd of its root when `borrow` (the
 * engine lends it to an overlay as it is; returns 2), else a detached clone
 * of it (1). 0 when there is no such mount. */
int snap_take_mount(struct snap_root *r, const char *point, const char *type,
                    const struct stat *want, bool borrow, int *ret_fd);

/* The writable pool (pool.c). Whether `source` as `type` is an active
 * snapshot's writable image of this root (snapshots/<id>/fs.img, overlay
 * layout with an image upper). */
bool snap_pool_is_writable_image(const struct snap_root *r, const char *type, const char *source);
/* The reuse callback's read-write half: a verified clone of the keeper of
 * `source` in *ret_fd (1), or the keeper itself when `borrow` (2),
 * mounting the keeper first when the pool is on; 0 when there is none. */
int snap_pool_reuse(struct snap_root *r, const char *source, bool borrow, int *ret_fd);
/* Prepare: renames a spare (a directory holding fs.img) of this root's
 * writable fs and `size` to directory `dst` and gives its image new upper/
 * and work/ owned by uid:gid. 1 when taken, 0 when the pool had none. */
int snap_pool_take(struct snap_root *r, uint64_t size, uint32_t uid, uint32_t gid, const char *dst);
/* Remove (or a failed prepare): active snapshot directory `dir`, its row
 * gone, goes back to the pool emptied when the pool has room and `dir`
 * holds only what a spare may: true. An image upper's needs its keeper
 * (else the keeper is dropped); a directory upper's loses fs/upper and
 * fs/work either way. false: the caller deletes what is left. */
bool snap_pool_recycle(struct snap_root *r, const char *dir);
/* Prepare, plain-directory uppers: renames a spare to directory `dst` and
 * makes new fs/upper and fs/work owned by uid:gid in it. 1 when taken, 0
 * when the pool had none. */
int snap_pool_take_dir(struct snap_root *r, uint32_t uid, uint32_t gid, const char *dst);
/* Commit: unmounts the keeper of `img` if it has one. */
void snap_pool_release(struct snap_root *r, const char *img);
/* Why keeper w/<name> is not needed (NULL: it is): `is_active` says whether
 * snapshot <id> is active. */
const char *snap_pool_keeper_unneeded(struct snap_root *r, const char *name,
                                      bool (*is_active)(void *data, int64_t id), void *data);
/* Cleanup: deletes every spare and drops every keeper not needed. */
void snap_pool_sweep(struct snap_root *r, bool (*is_active)(void *data, int64_t id), void *data);

/* Bytes allocated (st_blocks) and inodes of a directory tree, not crossing
 * mounts or following links. */
int snap_tree_usage(const char *dir, uint64_t *bytes, uint64_t *inodes, struct util_err *err);
/* Removes a directory tree (not following links, not crossing mounts);
 * best effort. */
void snap_tree_remove(const char *dir);
/* Whether an entry of the tree at `dir` (not following links, not crossing
 * mounts) has any of the statx attributes `attrs` (STATX_ATTR_*) set: 1
 * with its path, relative to `dir`, in `path`; 0 for none; or -errno. */
int snap_tree_find_attr(const char *dir, uint64_t attrs, char *path, size_t size);

/* Undoes mountinfo's escapes (blanks, tabs, newlines and backslashes are
 * written as \ooo), in place. */
void snap_mountinfo_unescape(char *s);

/* For a plain-directory upper (`fsdir` = snapshots/<id>/fs): 0 when its
 * upper/ is not mounted in this mount namespace (as an overlay's upperdir,
 * or bound itself), else -EBUSY naming snapshot `key` and the mountpoint,
 * or -errno. */
int snap_dir_upper_check_free(const char *fsdir, const char *key, struct util_err *err);

/* For writable image `img` of active `key`: drops the writable pool's own
 * mount of it (its keeper), then 0 when no loop device is left on it, else
 * -EBUSY naming `key` and the device (a mount the user still holds), or
 * -errno. A second read-write mount would corrupt the image: commit and
 * apply check this first. */
int snap_image_check_free(struct snap_root *r, const char *img, const char *key,
                          struct util_err *err);

/* mount_engine_apply of `spec` at `point` with this root's engine, never
 * through (nor making) a writable pool keeper: a private mount of
 * loopsnap's own (commit's measure, apply's jail). */
int snap_mount_private(struct snap_root *r, const struct mount_spec *spec, const char *point,
                       const char *tagid, struct util_err *err);

/* Removes what a snapshot left on disk (fs.img, empty/, the directory
 * itself), without following links or crossing mounts. Best effort. */
void snap_files_remove(const char *dir);

/*
 * The filesystem option a mount of one of this root's images needs, or NULL:
 * xfs "nouuid" (every clone of a template shares its UUID, and xfs refuses a
 * second mount of a UUID unless told not to check); for a writable ext4
 * image "noinit_itable": the clone's unused inode tables are holes that read
 * as zeros already, so the kernel's background zeroing would only write
 * (and later flush at unmount) blocks that change nothing.
 */
const char *snap_fs_option(const char *type, bool rw);
