/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The writable pool (docs/snapshot.md, "Writable pool"): writable images
 * that stay attached and mounted between containers, so that a container
 * start does not bind a loop device and read a filesystem, and its stop
 * does not flush a journal and tear both down (together ~6 ms of the ~8 ms
 * a quota'd container cycle costs without it).
 *
 *   w/<ino>       the "keeper": the image with inode <ino> mounted read-write
 *                 (its own loop device). The engine clones it (the reuse
 *                 callback, activate.c) instead of attaching the image; the
 *                 spec never changes: it still names snapshots/<id>/fs.img.
 *   pool/<fs>-<size>-<ino>/fs.img
 *                 a spare: the directory of a removed snapshot with its
 *                 image, emptied (upper/ and work/ gone), its keeper still
 *                 mounted.
 *
 * Prepare takes a spare of the same filesystem and size (a rename claims
 * it: two processes never take one spare), gives it a new upper/ and work/
 * owned by the snapshot's (mapped) root, and renames the whole directory to
 * snapshots/<id>. Remove empties the image and renames its directory back:
 * a container cycle makes and deletes no directory on the host, where each
 * new inode can cost ~0.1-0.2 ms (an ext4 without a journal skips every
 * recently deleted inode when it allocates one). When the pool is full, or
 * the container left more than
 * POOL_MAX_ALLOCATED bytes allocated even after a trim, the keeper is
 * dropped and the image deleted as without the pool. Commit drops the
 * keeper first (a committed image is never written again). Cleanup and
 * fsck --repair drop spares and every keeper no active snapshot needs.
 *
 * What the pool gives up (why it is an option): a removed snapshot's
 * writable filesystem lives on as a spare. A container that still had the
 * snapshot mounted when it was removed keeps its own (renamed, emptied)
 * upper, never the next tenant's, but shares the spare's space with it.
 *
 * Every check is on the kernel's word (the keeper's device's backing file
 * is the image: same st_dev and st_ino), never on names alone.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "snapshot/snapshot-internal.h"

/* A spare holds at most this much of the host's disk (fresh images hold
 * about 0.2 MiB): the pool never keeps a container's data around. */
#define POOL_MAX_ALLOCATED (8ull << 20)

static char *keeper_path(const struct snap_root *r, ino_t ino)
{
        return snap_path(r, "w/%" PRIu64, (uint64_t)ino);
}

/* Whether `fd` (a mount's root, O_PATH or a clone) is the keeper of image
 * `img`: the writable filesystem's type, on a loop device whose backing
 * file is `img`. Remembered by the mount's unique id, as the engine's checks
 * are: a keeper checked once is not checked again while it stays the same
 * mount (prepare and remove each asked sysfs every container). */
static bool keeper_ok(struct snap_root *r, int fd, const struct stat *img)
{
        return snap_mount_backed_by_cached(r, fd, r->writable_fs, img);
}

bool snap_pool_is_writable_image(const struct snap_root *r, const char *type, const char *source)
{
        size_t rl = strlen(r->path);
        static const char dir[] = "/snapshots/";
        long long id;
        int end = 0;

        if (r->layout != SNAP_LAYOUT_OVERLAY || r->upper_dir || strcmp(type, r->writable_fs) != 0)
                return false;
        if (strncmp(source, r->path, rl) != 0 || strncmp(source + rl, dir, sizeof(dir) - 1) != 0)
                return false;
        if (sscanf(source + rl + sizeof(dir) - 1, "%lld/fs.img%n", &id, &end) != 1 || end <= 0 ||
            source[rl + sizeof(dir) - 1 + (size_t)end] != '\0' || id <= 0)
                return false;
        return true;
}

/* Mounts image `img` (inode `st`) at its keeper point, under w/.lock. */
static int keeper_mount(struct snap_root *r, const char *img, const struct stat *st,
                        struct util_err *err)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        _cleanup_free_ char *point = keeper_path(r, st->st_ino);
        const char *opts[] = {"rw", "loop", snap_fs_option(r->writable_fs, true), NULL};
        char tagid[40];

        if (!point)
                return util_err_set(err, ENOMEM, "writable pool");
        if (mkdir(point, 0700) < 0 && errno != EEXIST)
                return util_err_set(err, errno, "create '%s'", point);
        if (mount_spec_new(&spec) < 0)
                return util_err_set(err, ENOMEM, "writable pool");
        int rc = mount_spec_add(spec, r->writable_fs, img, NULL, opts, err);
        snprintf(tagid, sizeof(tagid), "w%" PRIu64, (uint64_t)st->st_ino);
        r->pool_quiet = true; /* the root engine's own reuse must not recurse */
        if (rc >= 0)
                rc = mount_engine_apply(r->engine, spec, point, tagid, NULL, err);
        r->pool_quiet = false;
        if (rc < 0)
                (void)rmdir(point);
        return rc;
}

int snap_pool_reuse(struct snap_root *r, const char *source, bool borrow, int *ret_fd)
{
        struct stat st;

        if (r->pool_quiet || stat(source, &st) < 0 || !S_ISREG(st.st_mode))
                return 0;
        _cleanup_free_ char *point = keeper_path(r, st.st_ino);
        if (!point)
                return 0;
        for (int attempt = 0; attempt < 2; attempt++) {
                int got = snap_take_mount(r, point, r->writable_fs, &st, borrow, ret_fd);
                if (got > 0)
                        return got;
                /* No keeper: make one only when the pool is on (a keeper
                 * made now is what makes the stop and the next start cheap). */
                if (attempt > 0 || r->pool_max == 0)
                        return 0;
                if (flock(r->w_lock_fd, LOCK_EX) < 0)
                        return 0;
                struct util_err e = {0};
                _cleanup_close_ int again =
                        open(point, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (!(again >= 0 && keeper_ok(r, again, &st)) &&
                    keeper_mount(r, source, &st, &e) < 0)
                        util_debug(UTIL_DBG_SNAP, "writable pool: keep '%s' mounted: %s", source,
                                   e.msg);
                (void)flock(r->w_lock_fd, LOCK_UN);
        }
        return 0;
}

/* Unmounts (detached) keeper `point` and removes the directory. */
static void keeper_drop(const char *point)
{
        for (unsigned k = 0; k < 16; k++)
                if (umount2(point, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                        break;
        (void)rmdir(point);
}

/* The verified keeper of image `img` opened with `flags` (its stat in *st,
 * its path in *ret_point), or -1 (no keeper, or not that image's). */
static int keeper_open(struct snap_root *r, const char *img, int flags, struct stat *st,
                       char **ret_point)
{
        *ret_point = NULL;
        if (stat(img, st) < 0 || !(*ret_point = keeper_path(r, st->st_ino)))
                return -1;
        int fd = open(*ret_point, flags | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && !keeper_ok(r, fd, st)) {
                close(fd);
                fd = -1;
        }
        return fd;
}

void snap_pool_release(struct snap_root *r, const char *img)
{
        struct stat st;
        _cleanup_free_ char *point = NULL;
        _cleanup_close_ int fd = keeper_open(r, img, O_PATH, &st, &point);
        if (fd >= 0) {
                util_closep(&fd);
                fd = -EBADF;
                /* Not detached: the superblock must be gone when this
                 * returns unless something else (a container) holds it, so
                 * that commit's "still attached?" check means what it says. */
                if (umount2(point, UMOUNT_NOFOLLOW) < 0)
                        (void)umount2(point, MNT_DETACH | UMOUNT_NOFOLLOW);
                (void)rmdir(point);
        }
}

static int pool_count(const struct snap_root *r)
{
        _cleanup_free_ char *dir = snap_path(r, "pool");
        _cleanup_(closedirp) DIR *d = dir ? opendir(dir) : NULL;
        struct dirent *de;
        int n = 0;
        while (d && (de = readdir(d)))
                n += de->d_name[0] != '.';
        return n;
}

/* Removes the empty directory `name` in `dfd` and, first, its empty
 * subdirectory `sub` (NULL: none). 0, or -1 (not empty, or another error:
 * the caller's slow path handles it). */
static int rmdir_empty(int dfd, const char *name, const char *sub)
{
        if (sub) {
                _cleanup_close_ int fd =
                        openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 || (unlinkat(fd, sub, AT_REMOVEDIR) < 0 && errno != ENOENT))
                        return -1;
        }
        return unlinkat(dfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -1;
}

/* Empties keeper `kfd`'s filesystem for the next tenant. A container that
 * wrote nothing leaves an empty upper/ and a work/ holding only overlayfs's
 * empty work/: removed as they are. Otherwise upper/ and work/ are renamed
 * away first (a mount still using them keeps its own), then deleted. */
static int keeper_wipe(const char *point, int kfd)
{
        static const char *const subs[] = {"upper", "work"};
        static const char *const inner[] = {NULL, "work"};
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(subs); k++) {
                char dead[64], path[PATH_MAX];
                if (rmdir_empty(kfd, subs[k], inner[k]) == 0)
                        continue;
                snprintf(dead, sizeof(dead), ".old-%s-%08x", subs[k], util_random_u32());
                if (renameat(kfd, subs[k], kfd, dead) < 0 && errno != ENOENT)
                        return -errno;
                snprintf(path, sizeof(path), "%s/%s", point, dead);
                snap_tree_remove(path);
                if (faccessat(kfd, dead, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                        return -ENOTEMPTY;
        }
        return 0;
}

/* Whether directory `dir` holds exactly one entry, `name`, or, with `name`
 * NULL, nothing at all. */
static bool dir_holds_only(const char *dir, const char *name)
{
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;
        while (d && (de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (!name || strcmp(de->d_name, name) != 0)
                        return false;
                n++;
        }
        return d && n == (name ? 1u : 0u);
}

static bool recycle_dir(struct snap_root *r, const char *dir);

bool snap_pool_recycle(struct snap_root *r, const char *dir)
{
        if (r->upper_dir)
                return recycle_dir(r, dir);
        char img[PATH_MAX];
        struct stat st;
        if (snprintf(img, sizeof(img), "%s/fs.img", dir) >= (int)sizeof(img))
                return false;
        _cleanup_free_ char *point = NULL;
        _cleanup_close_ int kfd = keeper_open(r, img, O_RDONLY, &st, &point);
        if (kfd < 0)
                return false; /* no keeper (or not ours): the image is deleted as usual */

        const char *why = NULL;
        if (r->pool_max == 0 || pool_count(r) >= (int)r->pool_max)
                why = "the pool is full";
        else if (!dir_holds_only(dir, "fs.img"))
                why = "its directory holds more than the image";
        else if (keeper_wipe(point, kfd) < 0)
                why = "could not empty it";
        if (!why && stat(img, &st) == 0 && (uint64_t)st.st_blocks * 512 > POOL_MAX_ALLOCATED) {
                /* The container wrote and deleted data: give the blocks
                 * back (discard through the loop device punches holes). */
                struct fstrim_range trim = {.start = 0, .len = UINT64_MAX, .minlen = 0};
                if (ioctl(kfd, FITRIM, &trim) < 0 || stat(img, &st) < 0 ||
                    (uint64_t)st.st_blocks * 512 > POOL_MAX_ALLOCATED)
                        why = "it holds too much of the host's disk";
        }
        _cleanup_free_ char *spare = NULL;
        if (!why && !(spare = snap_path(r, "pool/%s-%" PRIu64 "-%" PRIu64, r->writable_fs,
                                        (uint64_t)st.st_size, (uint64_t)st.st_ino)))
                why = "out of memory";
        if (!why && rename(dir, spare) < 0)
                why = "could not move it to pool/";
        util_closep(&kfd);
        kfd = -EBADF;
        if (why) {
                util_debug(UTIL_DBG_SNAP, "writable pool: '%s' not kept: %s", img, why);
                keeper_drop(point);
                return false;
        }
        util_debug(UTIL_DBG_SNAP, "writable pool: kept %s", spare);
        return true;
}

int snap_pool_take(struct snap_root *r, uint64_t size, uint32_t uid, uint32_t gid, const char *dst)
{
        char prefix[64], img[PATH_MAX];
        int taken = 0;

        if (r->pool_max == 0)
                return 0;
        _cleanup_free_ char *dir = snap_path(r, "pool");
        _cleanup_(closedirp) DIR *d = dir ? opendir(dir) : NULL;
        struct dirent *de;
        snprintf(prefix, sizeof(prefix), "%s-%" PRIu64 "-", r->writable_fs, size);
        snprintf(img, sizeof(img), "%s/fs.img", dst);
        while (!taken && d && (de = readdir(d))) {
                char src[PATH_MAX];
                struct stat st;
                if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                        continue;
                snprintf(src, sizeof(src), "%s/%s", dir, de->d_name);
                if (rename(src, dst) < 0) /* another prepare took it first */
                        continue;
                /* A spare of an older version is the image itself (a file):
                 * its keeper is found by its inode, and it is dropped. */
                const char *path = lstat(dst, &st) == 0 && S_ISREG(st.st_mode) ? dst : img;
                _cleanup_free_ char *point = NULL;
                _cleanup_close_ int kfd = -EBADF;
                bool ok = path == img && stat(img, &st) == 0 && (uint64_t)st.st_size == size &&
                          (point = keeper_path(r, st.st_ino)) &&
                          (kfd = open(point, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0 &&
                          keeper_ok(r, kfd, &st) &&
                          snap_make_upper_work(kfd, ".", uid, gid, NULL) >= 0;
                if (ok) {
                        taken = 1;
                        util_debug(UTIL_DBG_SNAP, "writable pool: took %s", de->d_name);
                        continue;
                }
                util_debug(UTIL_DBG_SNAP, "writable pool: spare %s is unusable; dropped",
                           de->d_name);
                util_closep(&kfd);
                kfd = -EBADF;
                if (!point && lstat(path, &st) == 0)
                        point = keeper_path(r, st.st_ino);
                if (point)
                        keeper_drop(point);
                if (path == dst)
                        (void)unlink(dst);
                else
                        snap_files_remove(dst);
        }
        return taken;
}

/* ---- directory uppers ------------------------------------------------------
 *
 * A root with plain-directory uppers has no filesystem to keep, but the
 * same host cost per container: the directories snapshots/<id>/ and its fs/
 * made at prepare and deleted at remove. Its spare, pool/dir-<ino>/, is a
 * removed snapshot's directory with an empty fs/ (upper/ and work/ deleted
 * as always; fs/ is never shown to a container). Prepare claims one by a
 * rename and makes upper/ and work/ in it, both new directories: a tenant
 * never meets a directory an earlier one had (its xattrs, mode, flags), and
 * an overlayfs still mounted on the old ones cannot share the new ones. */

/* snap_pool_recycle for a root with plain-directory uppers. */
static bool recycle_dir(struct snap_root *r, const char *dir)
{
        char fs[PATH_MAX], sub[PATH_MAX];
        struct stat st;

        if (r->pool_max == 0 || snprintf(fs, sizeof(fs), "%s/fs", dir) >= (int)sizeof(fs))
                return false;
        /* The container's files go here, as without the pool; work/ of a
         * container that is gone holds overlayfs's empty work/ only. */
        static const char *const subs[] = {"upper", "work"};
        static const char *const inner[] = {NULL, "work"};
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(subs); k++) {
                if (snprintf(sub, sizeof(sub), "%s/%s", fs, subs[k]) >= (int)sizeof(sub))
                        return false;
                if (rmdir_empty(AT_FDCWD, sub, inner[k]) < 0)
                        snap_tree_remove(sub);
        }
        /* Only an empty fs/ in an otherwise empty directory is kept (the
         * caller deletes anything else). */
        if (!dir_holds_only(dir, "fs") || !dir_holds_only(fs, NULL) ||
            pool_count(r) >= (int)r->pool_max || stat(dir, &st) < 0)
                return false;
        _cleanup_free_ char *spare = snap_path(r, "pool/dir-%" PRIu64, (uint64_t)st.st_ino);
        if (!spare || rename(dir, spare) < 0)
                return false;
        util_debug(UTIL_DBG_SNAP, "writable pool: kept %s", spare);
        return true;
}

int snap_pool_take_dir(struct snap_root *r, uint32_t uid, uint32_t gid, const char *dst)
{
        if (r->pool_max == 0)
                return 0;
        _cleanup_free_ char *pool = snap_path(r, "pool");
        _cleanup_(closedirp) DIR *d = pool ? opendir(pool) : NULL;
        struct dirent *de;
        while (d && (de = readdir(d))) {
                char src[PATH_MAX];
                if (strncmp(de->d_name, "dir-", 4) != 0)
                        continue;
                snprintf(src, sizeof(src), "%s/%s", pool, de->d_name);
                if (rename(src, dst) < 0) /* another prepare took it first */
                        continue;
                char fs[PATH_MAX];
                if (snprintf(fs, sizeof(fs), "%s/fs", dst) < (int)sizeof(fs) &&
                    snap_make_upper_work(AT_FDCWD, fs, uid, gid, NULL) >= 0) {
                        util_debug(UTIL_DBG_SNAP, "writable pool: took %s", de->d_name);
                        return 1;
                }
                util_debug(UTIL_DBG_SNAP, "writable pool: spare %s is unusable; dropped",
                           de->d_name);
                snap_files_remove(dst);
        }
        return 0;
}

/* The image a keeper's device is backed by, relative to the root, or NULL. */
static const char *keeper_backing(const struct snap_root *r, const char *point, char *buf,
                                  size_t size)
{
        struct statx stx;
        char sys[96];
        if (statx(AT_FDCWD, point, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0 ||
            !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
                return NULL;
        snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/loop/backing_file", stx.stx_dev_major,
                 stx.stx_dev_minor);
        if (util_read_small_file(sys, buf, size) < 0)
                return NULL;
        buf[strcspn(buf, "\n")] = 0;
        size_t rl = strlen(r->path);
        return strncmp(buf, r->path, rl) == 0 && buf[rl] == '/' ? buf + rl + 1 : NULL;
}

const char *snap_pool_keeper_unneeded(struct snap_root *r, const char *name,
                                      bool (*is_active)(void *data, int64_t id), void *data)
{
        char buf[PATH_MAX];
        long long id;
        int end = 0;
        struct stat st;
        _cleanup_free_ char *point = snap_path(r, "w/%s", name);
        if (!point)
                return NULL;
        const char *rel = keeper_backing(r, point, buf, sizeof(buf));
        if (!rel)
                return "not a mount of one of this root's images";
        if (stat(buf, &st) < 0) /* deleted: sysfs says "<path> (deleted)" */
                return "its image is gone";
        if (strncmp(rel, "pool/", 5) == 0)
                return NULL;
        if (sscanf(rel, "snapshots/%lld/fs.img%n", &id, &end) == 1 && end > 0 && rel[end] == '\0' &&
            is_active(data, (int64_t)id))
                return NULL;
        return "its image is no active snapshot's and no spare";
}

void snap_pool_sweep(struct snap_root *r, bool (*is_active)(void *data, int64_t id), void *data)
{
        _cleanup_free_ char *pool = snap_path(r, "pool");
        _cleanup_free_ char *w = snap_path(r, "w");
        if (!pool || !w)
                return;
        /* Spares first (cleanup gives their space back), then every keeper
         * nobody needs, then what is left of the directories. */
        _cleanup_(closedirp) DIR *d = opendir(pool);
        struct dirent *de;
        while (d && (de = readdir(d))) {
                char p[PATH_MAX];
                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "%s/%s", pool, de->d_name);
                if (unlink(p) < 0 && errno == EISDIR)
                        snap_files_remove(p);
        }
        _cleanup_(closedirp) DIR *k = opendir(w);
        while (k && (de = readdir(k))) {
                char p[PATH_MAX];
                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "%s/%s", w, de->d_name);
                const char *why = snap_pool_keeper_unneeded(r, de->d_name, is_active, data);
                if (!why)
                        continue;
                util_debug(UTIL_DBG_SNAP, "writable pool: drop w/%s: %s", de->d_name, why);
                keeper_drop(p);
        }
}
