/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Image files: formatted empty templates, made crash-safely and shared by
 * every snapshot of the same (type, size, root owner); clones of a template
 * for each new writable image (FICLONE, else a copy of the data extents
 * only); the superblock check that runs before an image is trusted; and the
 * allocation figure used by tests and `snapctl`. DESIGN §3, §5;
 * research/limits.md §6 for the measurements behind the choices.
 *
 * Template creation, step by step (each step's crash leaves either nothing,
 * a "new-*" orphan that cleanup sweeps, or a complete verified template):
 *   1. create "new-<random>" in the templates directory (O_CREAT|O_EXCL,
 *      0600) and give it its full sparse size;
 *   2. run mkfs on it, then check the superblock magic through our fd;
 *   3. fsync the file: its data is durable before any name points at it;
 *   4. rename it to "<type>-<size>-<uid>-<gid>.img" with RENAME_NOREPLACE
 *      (a concurrent creator that got there first wins; ours is dropped);
 *   5. fsync the directory, making the rename durable.
 * Every failure before step 4 unlinks the new file.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "snapshot/image.h"

/* Attempts at finding an unused "new-*" name (32 random bits each). */
#define IMAGE_NEW_NAME_ATTEMPTS 64
/* The pread/pwrite fallback's buffer. */
#define IMAGE_COPY_BUF (1u << 20)

/* A file we created and still own: unlinked at scope exit unless the name
 * was cleared (ownership handed on). The dirfd is borrowed. */
struct image_tmp {
        int dirfd;
        char name[32];
};

static void image_tmp_unlinkp(struct image_tmp *t)
{
        if (t->name[0]) {
                int saved = errno;
                (void)unlinkat(t->dirfd, t->name, 0);
                errno = saved;
        }
}

/* The same for a path (the clone's destination). */
static void image_path_unlinkp(const char **path)
{
        if (*path) {
                int saved = errno;
                (void)unlink(*path);
                errno = saved;
        }
}

static const struct snap_fs_ops *image_fs_get(const char *fstype, struct util_err *err)
{
        const struct snap_fs_ops *ops = snap_fs_lookup(fstype);
        if (!ops)
                util_err_setx(err, EINVAL, "unknown filesystem type '%s'", fstype ? fstype : "");
        return ops;
}

int snap_image_verify(const char *path, const char *fstype, struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;
        const struct snap_fs_ops *ops;

        if (fstype && strcmp(fstype, "erofs") == 0) {
                int r = util_open_regular(path, O_RDONLY, &fd, err);
                if (r < 0)
                        return r;
                if (!snap_erofs_magic_ok(fd))
                        return util_err_setx(err, EUCLEAN, "superblock of '%s' is not erofs", path);
                return 0;
        }
        ops = image_fs_get(fstype, err);
        if (!ops)
                return -EINVAL;
        int r = util_open_regular(path, O_RDONLY, &fd, err);
        if (r < 0)
                return r;
        if (!ops->magic_ok(fd))
                return util_err_setx(err, EUCLEAN, "superblock of '%s' is not %s", path, ops->name);
        return 0;
}

int snap_image_allocated(const char *path, uint64_t *ret, struct util_err *err)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", path);
        *ret = (uint64_t)st.st_blocks * 512;
        return 0;
}

/*
 * Checks the template `name` in dirfd: a regular file (not a symlink) of
 * exactly `size` bytes with `ops`'s magic.
 * Returns: 0 when it is good, -ENOENT when it does not exist, -EUCLEAN when
 * it exists and is not good, other -errno (err filled) when it cannot be
 * checked. Does not fill err for ENOENT/EUCLEAN: the caller recovers from
 * both by creating a new template.
 */
static int template_check(int dirfd, const char *name, const struct snap_fs_ops *ops, uint64_t size,
                          struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return -ENOENT;
                if (errno == ELOOP) /* a symlink: never ours, replaced */
                        return -EUCLEAN;
                return util_err_set(err, errno, "open template '%s'", name);
        }
        if (fstat(fd, &st) < 0)
                return util_err_set(err, errno, "stat template '%s'", name);
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size || !ops->magic_ok(fd)) {
                util_debug(UTIL_DBG_SNAP, "template '%s' does not verify, replacing it", name);
                return -EUCLEAN;
        }
        return 0;
}

/* Creates "new-<random>" in dirfd (O_EXCL, 0600). Returns the fd and the
 * name in t->name, or -errno. */
static int template_new_open(struct image_tmp *t)
{
        for (unsigned i = 0; i < IMAGE_NEW_NAME_ATTEMPTS; i++) {
                char name[sizeof(t->name)];
                snprintf(name, sizeof(name), "new-%08" PRIx32, util_random_u32());
                int fd =
                        openat(t->dirfd, name,
                               O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
                if (fd >= 0) {
                        memcpy(t->name, name, sizeof(name));
                        return fd;
                }
                if (errno != EEXIST)
                        return -errno;
        }
        return -EEXIST;
}

/*
 * Moves new file `from` to `to` without replacing an existing `to`.
 * Returns 0, -EEXIST when `to` exists, or -errno.
 */
static int template_rename_noreplace(int dirfd, const char *from, const char *to)
{
        if (renameat2(dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS)
                return -errno;
        /* COMPAT(filesystems without RENAME_NOREPLACE, e.g. some FUSE and
         * network filesystems): link(2) fails with EEXIST just as atomically;
         * the second name goes away right after. ext4, xfs, btrfs and tmpfs
         * all support RENAME_NOREPLACE. */
        if (linkat(dirfd, from, dirfd, to, 0) < 0)
                return -errno;
        (void)unlinkat(dirfd, from, 0);
        return 0;
}

/*
 * Makes the template `name` in dir/dirfd. `replace`: an existing `name` did
 * not verify and is renamed over (plain rename: atomic, and a reader that
 * already opened the bad file keeps its own inode).
 */
static int template_create(const char *dir, int dirfd, const char *name,
                           const struct snap_fs_ops *ops, uint64_t size, uint32_t root_uid,
                           uint32_t root_gid, bool overlay_dirs, bool replace, struct util_err *err)
{
        /* Declared before fd: the fd is closed first, then the name unlinked
         * (order does not matter to the kernel, but it reads naturally). */
        _cleanup_(image_tmp_unlinkp) struct image_tmp tmp = {.dirfd = dirfd};
        _cleanup_close_ int fd = -EBADF;
        char path[4096];
        int r;

        fd = template_new_open(&tmp);
        if (fd < 0)
                return util_err_set(err, fd, "create 'new-*' in '%s'", dir);
        if (snprintf(path, sizeof(path), "%s/%s", dir, tmp.name) >= (int)sizeof(path))
                return util_err_setx(err, ENAMETOOLONG, "path of '%s/%s' too long", dir, tmp.name);
        if (ftruncate(fd, (off_t)size) < 0)
                return util_err_set(err, errno, "truncate '%s' to %" PRIu64, path, size);

        r = ops->mkfs(path, root_uid, root_gid, overlay_dirs, err);
        if (r < 0)
                return r;
        util_fault_point("template-after-mkfs");
        if (!ops->magic_ok(fd))
                return util_err_setx(err, EUCLEAN, "mkfs left no %s superblock in '%s'", ops->name,
                                     path);
        if (fsync(fd) < 0)
                return util_err_set(err, errno, "fsync '%s'", path);

        if (replace) {
                if (renameat(dirfd, tmp.name, dirfd, name) < 0)
                        return util_err_set(err, errno, "rename '%s' to '%s'", path, name);
        } else {
                r = template_rename_noreplace(dirfd, tmp.name, name);
                if (r == -EEXIST) {
                        /* A concurrent creator won. Use theirs if it verifies;
                         * if it does not (it was corrupted meanwhile), ours
                         * replaces it. */
                        struct util_err ignored = {0};
                        if (template_check(dirfd, name, ops, size, &ignored) == 0) {
                                util_debug(UTIL_DBG_SNAP, "template '%s/%s' made concurrently", dir,
                                           name);
                                return 0; /* tmp is unlinked on return */
                        }
                        if (renameat(dirfd, tmp.name, dirfd, name) < 0)
                                return util_err_set(err, errno, "rename '%s' to '%s'", path, name);
                } else if (r < 0) {
                        return util_err_set(err, r, "rename '%s' to '%s'", path, name);
                }
        }
        tmp.name[0] = '\0'; /* the final name owns it now */

        if (fsync(dirfd) < 0)
                return util_err_set(err, errno, "fsync '%s'", dir);
        return 0;
}

int snap_image_template(const char *templates_dir, const char *fstype, uint64_t size,
                        uint32_t root_uid, uint32_t root_gid, bool overlay_dirs, char **ret,
                        struct util_err *err)
{
        _cleanup_close_ int dirfd = -EBADF;
        _cleanup_free_ char *path = NULL;
        const struct snap_fs_ops *ops;
        char name[128];
        int r;

        ops = image_fs_get(fstype, err);
        if (!ops)
                return -EINVAL;
        if (size == 0 || size > (uint64_t)INT64_MAX)
                return util_err_setx(err, EINVAL, "template size %" PRIu64 " is out of range",
                                     size);

        dirfd = open(templates_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return util_err_set(err, errno, "open templates directory '%s'", templates_dir);
        snprintf(name, sizeof(name), "%s-%" PRIu64 "-%" PRIu32 "-%" PRIu32 "%s.img", ops->name,
                 size, root_uid, root_gid, overlay_dirs ? "-ovl" : "");
        if (asprintf(&path, "%s/%s", templates_dir, name) < 0) {
                path = NULL;
                return util_err_set(err, ENOMEM, "template '%s'", name);
        }

        r = template_check(dirfd, name, ops, size, err);
        if (r == -ENOENT || r == -EUCLEAN)
                r = template_create(templates_dir, dirfd, name, ops, size, root_uid, root_gid,
                                    overlay_dirs,
                                    /* replace= */ r == -EUCLEAN, err);
        if (r < 0)
                return util_err_prefix(err, "template %s %" PRIu64 " %" PRIu32 ":%" PRIu32,
                                       ops->name, size, root_uid, root_gid);
        *ret = TAKE_PTR(path);
        return 0;
}

/* ---- clones --------------------------------------------------------------- */

/* Copies [off, off + len) with pread/pwrite. */
static int clone_extent_rw(int src_fd, int dst_fd, off_t off, off_t len, char **buf,
                           const char *src, const char *dst, struct util_err *err)
{
        if (!*buf) {
                *buf = malloc(IMAGE_COPY_BUF);
                if (!*buf)
                        return util_err_set(err, ENOMEM, "copy '%s'", src);
        }
        while (len > 0) {
                size_t want = len < (off_t)IMAGE_COPY_BUF ? (size_t)len : IMAGE_COPY_BUF;
                ssize_t n = pread(src_fd, *buf, want, off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return util_err_set(err, errno, "read '%s'", src);
                if (n == 0)
                        return util_err_setx(err, EIO, "'%s' shrank while being copied", src);
                for (ssize_t done = 0; done < n;) {
                        ssize_t w = pwrite(dst_fd, *buf + done, (size_t)(n - done), off + done);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                return util_err_set(err, errno, "write '%s'", dst);
                        done += w;
                }
                off += n;
                len -= n;
        }
        return 0;
}

/* Copies the data extent [off, off + len) with copy_file_range (in-kernel,
 * and a reflink on filesystems that can), else with pread/pwrite. */
static int clone_extent(int src_fd, int dst_fd, off_t off, off_t len, char **buf, const char *src,
                        const char *dst, struct util_err *err)
{
        loff_t in = off, out = off;

        while (len > 0) {
                ssize_t n = copy_file_range(src_fd, &in, dst_fd, &out, (size_t)len, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP)) {
                        /* COMPAT(kernel < 5.19 across filesystems, or a
                         * filesystem without it): this extent by hand. */
                        util_debug(UTIL_DBG_SNAP, "copy_file_range '%s': errno %d; pread/pwrite",
                                   src, errno);
                        return clone_extent_rw(src_fd, dst_fd, in, len, buf, src, dst, err);
                }
                if (n < 0)
                        return util_err_set(err, errno, "copy_file_range '%s' to '%s'", src, dst);
                if (n == 0)
                        return util_err_setx(err, EIO, "'%s' shrank while being copied", src);
                len -= n;
        }
        return 0;
}

/* The sparse copy: only the extents SEEK_DATA finds (which also skips ext4's
 * unwritten extents: they read as zeros, so leaving them out is exact). */
static int clone_sparse(int src_fd, int dst_fd, off_t size, const char *src, const char *dst,
                        struct util_err *err)
{
        _cleanup_free_ char *buf = NULL;
        off_t off = 0;
        int r;

        while (off < size) {
                off_t data = lseek(src_fd, off, SEEK_DATA);
                if (data < 0) {
                        if (errno == ENXIO) /* only a hole is left */
                                break;
                        return util_err_set(err, errno, "SEEK_DATA '%s'", src);
                }
                if (data >= size)
                        break;
                off_t hole = lseek(src_fd, data, SEEK_HOLE);
                if (hole < 0)
                        return util_err_set(err, errno, "SEEK_HOLE '%s'", src);
                if (hole > size)
                        hole = size;
                r = clone_extent(src_fd, dst_fd, data, hole - data, &buf, src, dst, err);
                if (r < 0)
                        return r;
                off = hole;
        }
        /* The size last, so trailing holes stay holes. */
        if (ftruncate(dst_fd, size) < 0)
                return util_err_set(err, errno, "truncate '%s'", dst);
        return 0;
}

int snap_image_clone(const char *src, const char *dst, enum snap_clone_method *ret_method,
                     struct util_err *err)
{
        _cleanup_close_ int src_fd = -EBADF, dst_fd = -EBADF;
        /* Unlinked on every failure once we created it; cleared on success. */
        _cleanup_(image_path_unlinkp) const char *created = NULL;
        enum snap_clone_method method;
        struct stat st;
        int r;

        src_fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (src_fd < 0)
                return util_err_set(err, errno, "clone '%s': open", src);
        if (fstat(src_fd, &st) < 0)
                return util_err_set(err, errno, "clone '%s': stat", src);
        if (!S_ISREG(st.st_mode))
                return util_err_setx(err, EINVAL, "clone '%s': not a regular file", src);

        dst_fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (dst_fd < 0)
                return util_err_set(err, errno, "clone '%s': create '%s'", src, dst);
        created = dst; /* NOLINT(clang-analyzer-deadcode.DeadStores): read by cleanup */

        /* No feature cache here (STYLE R4): reflink support belongs to the
         * filesystem pair, not to the kernel, so each call asks. A refusal
         * costs one ioctl. */
        if (ioctl(dst_fd, FICLONE, src_fd) == 0) {
                method = SNAP_CLONE_REFLINK;
        } else {
                if (errno != EOPNOTSUPP && errno != EXDEV && errno != EINVAL && errno != ENOTTY)
                        return util_err_set(err, errno, "clone '%s': FICLONE to '%s'", src, dst);
                util_debug(UTIL_DBG_SNAP, "FICLONE '%s': errno %d; sparse copy", dst, errno);
                r = clone_sparse(src_fd, dst_fd, st.st_size, src, dst, err);
                if (r < 0)
                        return util_err_prefix(err, "clone '%s' to '%s'", src, dst);
                method = SNAP_CLONE_SPARSE;
        }

        created = NULL;
        if (ret_method)
                *ret_method = method;
        return 0;
}
