/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * snapshot/image.h — image files: formatted empty templates (crash-safe
 * mkfs), per-layer clones of a template (FICLONE, else a sparse-aware copy;
 * never a full copy), superblock checks, and allocation figures.
 * DESIGN §3 and §5; research/limits.md §6.
 *
 * Crash safety of a template: mkfs runs on "new-<random>" in the templates
 * directory, the superblock magic is checked, the file is fsync'ed, and only
 * then is it renamed to its final name (RENAME_NOREPLACE: a concurrent
 * creator that won is used instead); the directory is fsync'ed after the
 * rename so the new name is durable. A template is never trusted because
 * it merely exists: snap_image_template re-checks an existing one (size and
 * magic) on every call and makes it again when it fails. "new-*" leftovers
 * are swept by cleanup. docs/images.md has the argument.
 *
 * A clone is not fsync'ed (the prepare hot path must not pay for it): the
 * operations layer records it in metadata only after the rename into place.
 * Its superblock is not checked before a container mounts it (the kernel's
 * mount-time checks are all there is); snap_image_verify runs only before
 * snap_apply mounts an image and in fsck, which reports a bad image and
 * neither repairs nor re-clones it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

/* Filesystem backends (STYLE R5): one const ops table per type. */
struct snap_fs_ops {
        const char *name; /* "ext4", "xfs" */
        unsigned flags;   /* SNAP_FS_* */
        /*
         * Formats the file `path` (already created at its full sparse size)
         * non-interactively, with lazy initialisation where the tool has it,
         * and the root directory owned by uid:gid; with overlay_dirs also
         * the directories upper/ and work/ (0755, owned by uid:gid), which an
         * overlay layout's writable image needs. Runs the mkfs tool as a
         * child (stdin /dev/null, its stderr kept for the error message).
         */
        int (*mkfs)(const char *path, uint32_t root_uid, uint32_t root_gid, bool overlay_dirs,
                    struct util_err *err);
        /* Whether the superblock magic at the start of fd is this type's. */
        bool (*magic_ok)(int fd);
};

#define SNAP_FS_CAN_TRIM 1u /* FITRIM works on a mounted image */

/* The backend for `name`, or NULL (unknown type). */
const struct snap_fs_ops *snap_fs_lookup(const char *name);

/*
 * snap_image_template: the path (malloc'ed, in *ret) of a formatted empty
 * image of `fstype` and `size` bytes with its root owned by uid:gid, in
 * `templates_dir`, creating it crash-safely if it does not exist yet (or if
 * the existing one fails verification: it is then replaced). Safe against
 * concurrent callers in other processes.
 * The file is named "<fstype>-<size>-<uid>-<gid>-ovl.img" with
 * `overlay_dirs` (its root then also holds upper/ and work/, owned by
 * uid:gid), "<fstype>-<size>-<uid>-<gid>.img" without; an existing one is
 * used only if it is a regular file of exactly `size` bytes with the right
 * superblock magic. `templates_dir` must exist.
 * Returns 0, or -errno (EINVAL for an unknown type or a size below the
 * filesystem's minimum — 2 MiB for ext4, 300 MiB for xfs —, ENOENT when the
 * mkfs tool is missing — naming it —, EIO when the tool failed: its exit
 * status and the first line of its stderr are in `err`). On failure no
 * "new-*" file is left behind and *ret is not touched.
 */
int snap_image_template(const char *templates_dir, const char *fstype, uint64_t size,
                        uint32_t root_uid, uint32_t root_gid, bool overlay_dirs, char **ret,
                        struct util_err *err);

enum snap_clone_method {
        SNAP_CLONE_REFLINK = 1, /* FICLONE: shares every block */
        SNAP_CLONE_SPARSE,      /* copy_file_range of each data extent only */
};

/*
 * snap_image_clone: create `dst` (must not exist; mode 0600; O_EXCL) as a
 * clone of `src`: FICLONE where the filesystem supports it, else a copy of
 * the data extents only (SEEK_DATA/SEEK_HOLE + copy_file_range), the size
 * set with ftruncate so holes stay holes. On failure `dst` is removed.
 * Returns 0 and the method used in *ret_method (may be NULL), or -errno.
 */
int snap_image_clone(const char *src, const char *dst, enum snap_clone_method *ret_method,
                     struct util_err *err);

/* Checks `path` is a regular file (not a symlink) whose superblock is
 * `fstype`'s. Returns 0, or -EUCLEAN ("superblock of '%s' is not ext4"),
 * -EINVAL (unknown type, or not a regular file) / -errno. */
int snap_image_verify(const char *path, const char *fstype, struct util_err *err);

/*
 * snap_image_from_dir: a read-only layer image of the tree at `src_dir`
 * (owners, modes, times, xattrs, device nodes such as overlay whiteouts,
 * hard links kept) written to `path` (must not exist), fsync'ed.
 *   "erofs": mkfs.erofs; `exclude` names top-level entries to leave out.
 *   "ext4":  mkfs.ext4 -d into a sparse file sized from `bytes` and
 *            `inodes` (the tree's allocation and inode count), without a
 *            journal (the image is never written again); `exclude` must be
 *            NULL (mke2fs has no way to leave entries out).
 * On failure `path` is removed. Returns 0 or -errno (ENOENT naming a
 * missing tool, EIO with the tool's first line of stderr).
 */
int snap_image_from_dir(const char *type, const char *src_dir, const char *const *exclude,
                        uint64_t bytes, uint64_t inodes, const char *path, struct util_err *err);

/* Whether fd starts with an erofs superblock. */
bool snap_erofs_magic_ok(int fd);

/* 0 when the tool that snap_image_from_dir needs for `type` is installed,
 * else -ENOENT naming it and its Debian package. */
int snap_image_tool_check(const char *type, struct util_err *err);

/* Bytes allocated on disk for `path` (st_blocks * 512). */
int snap_image_allocated(const char *path, uint64_t *ret, struct util_err *err);

/* Makes <dir>/upper and <dir>/work (`dir` relative to `dfd`), 0755 and
 * owned by uid:gid, as an overlay's upper and work directories. 0 or -errno
 * with `err` naming the directory (`err` may be NULL). */
int snap_make_upper_work(int dfd, const char *dir, uint32_t uid, uint32_t gid,
                         struct util_err *err);
