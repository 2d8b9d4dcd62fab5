/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared read-only devices: N containers of one image use one loop device
 * per layer, and so one page cache.
 *
 * Finding the device: the kernel has no lookup by backing file, and scanning
 * /sys/block costs ~3 ms per lookup on a machine with 600 loop nodes (most
 * of them unbound), i.e. 60 ms for a 20-layer overlay. So every shared device
 * we bind is recorded in a registry, one small file per (backing dev+inode,
 * offset, size limit, block size) under /run/loopsnap/loop-share holding
 * "<nr> <diskseq>" and, on a second line, the image's path. A lookup reads
 * that one file. The record is only a hint: the device it names is opened
 * and verified exactly as a scanned one would be (below), and a record that
 * no longer matches (autoclear freed the device, someone else reused it) is
 * written over by the next attach of that image. Correctness never depends
 * on a record: a missing one only costs a second device for the same image.
 *
 * One image, one device: a shared attach holds flock(LOCK_EX) on its
 * image's record from the lookup to the record's rewrite (loop_share_lock),
 * so two sharers of one image never bind two devices, while attaches of
 * different images (the 20 layers of a cold start) bind theirs side by side.
 * Where the registry directory cannot be made (read-only /run), or
 * LOOPSNAP_LOOP_SHARE_DIR is set to "", the lookup scans /sys/block instead,
 * and the attach holds the loop-control lock throughout for the same
 * guarantee.
 *
 * loop_share_sweep (snapctl cleanup, fsck --repair) removes the stale records
 * of images that are gone, and keeps the others for that rewrite: making a
 * file is a new inode, ~0.35 ms each where /run is not a tmpfs.
 *
 * Race-free reuse: the candidate is opened first and its status read through
 * that fd. While we hold the fd the device cannot be unbound (autoclear only
 * fires on the last close, and LOOP_CLR_FD of a device with other openers
 * only sets autoclear), and a device on its way out refuses the open with
 * ENXIO. So a status that matches after the open stays true for as long as
 * the handle lives.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <linux/fs.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loop/loop-internal.h"

UTIL_DEFINE_FREE_FUNC(DIR, closedir)

static bool status_matches(const struct loop_info64 *info, const struct stat *backing,
                           const struct loop_attach_opts *opts)
{
        return loop_decode_kernel_dev(info->lo_device) == backing->st_dev &&
               info->lo_inode == backing->st_ino && info->lo_offset == opts->offset &&
               info->lo_sizelimit == opts->size_limit && (info->lo_flags & LO_FLAGS_READ_ONLY) &&
               (info->lo_flags & LO_FLAGS_AUTOCLEAR) &&
               loop_tag_is_ours((const char *)info->lo_file_name, NULL);
}

static bool sysfs_u64_is(const char *dev, const char *attr, uint64_t want)
{
        char path[300];
        uint64_t v;

        snprintf(path, sizeof(path), "/sys/block/%s/%s", dev, attr);
        return util_read_u64_file(path, &v) == 0 && v == want;
}

static bool sysfs_matches(const char *dev, const struct stat *backing,
                          const struct loop_attach_opts *opts)
{
        char path[300], file[4096];
        struct stat st;

        if (!sysfs_u64_is(dev, "loop/offset", opts->offset) ||
            !sysfs_u64_is(dev, "loop/sizelimit", opts->size_limit) || !sysfs_u64_is(dev, "ro", 1) ||
            !sysfs_u64_is(dev, "loop/autoclear", 1))
                return false;
        /* The path is only a hint (the file may have been renamed); the
         * dev+inode check after the open is what counts. */
        snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", dev);
        if (util_read_small_file(path, file, sizeof(file)) < 0 || stat(file, &st) < 0)
                return false;
        return st.st_dev == backing->st_dev && st.st_ino == backing->st_ino;
}

/*
 * Opens loop `nr` and checks, through that fd, that it is bound the way a
 * shared attach of `backing` with `opts` wants (and, when `diskseq` is not 0,
 * that it is still the same binding). Returns 0 with *ret filled, or -1.
 */
static int share_open_verified(int nr, const struct stat *backing,
                               const struct loop_attach_opts *opts, uint64_t diskseq,
                               struct loop_device *ret)
{
        _cleanup_close_ int fd = -EBADF;
        struct loop_info64 info;
        dev_t devno;

        /* No node creation here (ctl -EBADF): a device whose node we cannot
         * see is not one we can share. */
        if (loop_node_open(-EBADF, nr, O_RDONLY, &fd, &devno, NULL) < 0)
                return -1;
        if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0 || !status_matches(&info, backing, opts))
                return -1;
        if (opts->block_size) {
                int bs = 0;
                if (ioctl(fd, BLKSSZGET, &bs) < 0 || (uint32_t)bs != opts->block_size)
                        return -1;
        }
        uint64_t seq = loop_read_diskseq(fd, nr);
        if (diskseq && seq && seq != diskseq)
                return -1;

        ret->fd = TAKE_FD(fd);
        ret->nr = nr;
        snprintf(ret->path, sizeof(ret->path), "/dev/loop%d", nr);
        ret->devno = devno;
        ret->diskseq = seq;
        ret->bound_by_us = false;
        ret->direct_io = (info.lo_flags & LO_FLAGS_DIRECT_IO) != 0;
        return 0;
}

static int share_scan(const struct stat *backing, const struct loop_attach_opts *opts,
                      struct loop_device *ret, struct util_err *err)
{
        _cleanup_(closedirp) DIR *dir = NULL;
        struct dirent *de;

        dir = opendir("/sys/block");
        if (!dir)
                return util_err_set(err, errno, "open '/sys/block'");

        while ((de = readdir(dir))) {
                char *end;

                if (strncmp(de->d_name, "loop", 4) != 0)
                        continue;
                long nr = strtol(de->d_name + 4, &end, 10);
                if (end == de->d_name + 4 || *end || nr < 0 || nr > INT32_MAX)
                        continue;
                /* Pre-filter through sysfs, without opening the device: an
                 * open by this scan would make a concurrent detach of an
                 * unrelated device see an extra opener and only defer. */
                if (!sysfs_matches(de->d_name, backing, opts))
                        continue;

                if (share_open_verified((int)nr, backing, opts, 0, ret) == 0)
                        return 1;
        }
        return 0;
}

/* The registry directory, or NULL when it is switched off. */
static const char *registry_dir(void)
{
        const char *d = getenv("LOOPSNAP_LOOP_SHARE_DIR");
        if (!d)
                return LOOP_SHARE_DIR_DEFAULT;
        return *d ? d : NULL;
}

/* The registry directory registry_ensure last found usable, under
 * registry_mutex; cleared when a record cannot be written, so a directory
 * removed since is made again. */
static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static char ensured[PATH_MAX];

/* Makes the registry directory (and its parent). 0, or -1: not usable. */
static int registry_ensure(const char *dir)
{
        if (strcmp(ensured, dir) == 0)
                return 0;
        if (access(dir, W_OK | X_OK) == 0) {
                snprintf(ensured, sizeof(ensured), "%s", dir);
                return 0;
        }
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
                *slash = '\0';
                if (mkdir(parent, 0700) < 0 && errno != EEXIST)
                        return -1;
        }
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -1;
        if (access(dir, W_OK | X_OK) < 0)
                return -1;
        snprintf(ensured, sizeof(ensured), "%s", dir);
        return 0;
}

static int registry_path(char *buf, size_t size, const char *dir, const struct stat *backing,
                         const struct loop_attach_opts *opts)
{
        int n = snprintf(buf, size, "%s/%" PRIx64 "-%" PRIx64 "-%" PRIx64 "-%" PRIx64 "-%" PRIx32,
                         dir, (uint64_t)backing->st_dev, (uint64_t)backing->st_ino, opts->offset,
                         opts->size_limit, opts->block_size);
        return n > 0 && (size_t)n < size ? 0 : -1;
}

int loop_share_lock(const struct stat *backing, const struct loop_attach_opts *opts)
{
        const char *dir = registry_dir();
        char path[PATH_MAX];

        if (!dir || registry_path(path, sizeof(path), dir, backing, opts) < 0)
                return -1;
        pthread_mutex_lock(&registry_mutex);
        int usable = registry_ensure(dir);
        pthread_mutex_unlock(&registry_mutex);
        if (usable < 0)
                return -1;
        for (unsigned k = 0; k < 4; k++) {
                _cleanup_close_ int fd =
                        open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
                struct stat st;
                if (fd < 0) {
                        util_debug(UTIL_DBG_LOOP, "share record '%s': %s", path, strerror(errno));
                        return -1;
                }
                if (loop_fd_lock(fd, LOCK_EX, path, NULL) < 0 || fstat(fd, &st) < 0)
                        return -1;
                /* Unlinked by a sweep while we waited: the next open makes
                 * the record anew. */
                if (st.st_nlink > 0)
                        return TAKE_FD(fd);
        }
        return -1;
}

int loop_share_find(int rec_fd, const struct stat *backing, const struct loop_attach_opts *opts,
                    struct loop_device *ret, struct util_err *err)
{
        char buf[64];
        int nr;
        uint64_t seq;

        if (rec_fd < 0)
                return share_scan(backing, opts, ret, err);
        /* The first line is all a lookup needs; a new record is empty. */
        ssize_t n = pread(rec_fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        if (n <= 0)
                return 0;
        if (sscanf(buf, "%d %" SCNu64, &nr, &seq) == 2 && nr >= 0 &&
            share_open_verified(nr, backing, opts, seq, ret) == 0)
                return 1;
        /* Rewritten by the attach that follows (loop_share_record). */
        util_debug(UTIL_DBG_LOOP, "stale share record (%s)", buf);
        return 0;
}

void loop_share_record(int rec_fd, const char *name, const struct loop_device *d)
{
        char line[PATH_MAX + 64];

        if (rec_fd < 0)
                return;
        /*
         * Written in place, over a stale record if there is one: readers and
         * writers of a record hold its lock, so no one sees the file between
         * the write and the truncate. A crash in between leaves a torn
         * record, which names no live device with that disk sequence number
         * and so is stale like any other. (Replacing the file, by a new one
         * renamed over it, costs two directory operations per layer: ~0.4 ms
         * where /run is not a tmpfs.) The path, when the caller gave an
         * absolute one, is what lets the sweep keep the record while the
         * image exists (record_is_kept).
         */
        bool with_path = name && name[0] == '/' && !strchr(name, '\n');
        int len = snprintf(line, sizeof(line), "%d %" PRIu64 "\n%s%s", d->nr, d->diskseq,
                           with_path ? name : "", with_path ? "\n" : "");
        if (len < 0 || (size_t)len >= sizeof(line))
                len = snprintf(line, sizeof(line), "%d %" PRIu64 "\n", d->nr, d->diskseq);
        if (pwrite(rec_fd, line, (size_t)len, 0) != len || ftruncate(rec_fd, len) < 0) {
                util_debug(UTIL_DBG_LOOP, "share record: %s", strerror(errno));
                (void)ftruncate(rec_fd, 0); /* an empty record names nothing */
                pthread_mutex_lock(&registry_mutex);
                ensured[0] = '\0'; /* check the directory again next time */
                pthread_mutex_unlock(&registry_mutex);
        }
}

/* A record's key back from its file name (registry_path's format). */
static bool record_key(const char *name, struct stat *ret_backing,
                       struct loop_attach_opts *ret_opts)
{
        uint64_t dev, ino, offset, size;
        uint32_t bs;
        int end = 0;

        if (sscanf(name, "%" SCNx64 "-%" SCNx64 "-%" SCNx64 "-%" SCNx64 "-%" SCNx32 "%n", &dev,
                   &ino, &offset, &size, &bs, &end) != 5 ||
            name[end] != '\0')
                return false;
        memset(ret_backing, 0, sizeof(*ret_backing));
        ret_backing->st_dev = (dev_t)dev;
        ret_backing->st_ino = (ino_t)ino;
        memset(ret_opts, 0, sizeof(*ret_opts));
        ret_opts->offset = offset;
        ret_opts->size_limit = size;
        ret_opts->block_size = bs;
        return true;
}

/* Whether the record of `backing` and `opts` whose content is `buf` stays:
 * it still names a live shared device, or the image it was written for
 * still exists (the path on its second line is that file: same st_dev and
 * st_ino as its key), so the next attach of the image rewrites it in place
 * instead of making a file. */
static bool record_is_kept(const struct stat *backing, const struct loop_attach_opts *opts,
                           char *buf)
{
        struct loop_device d;
        struct stat st;
        int nr;
        uint64_t seq;

        if (sscanf(buf, "%d %" SCNu64, &nr, &seq) != 2 || nr < 0)
                return false;
        if (share_open_verified(nr, backing, opts, seq, &d) == 0) {
                close(d.fd);
                return true;
        }
        char *img = strchr(buf, '\n');
        char *end = img ? strchr(img + 1, '\n') : NULL;
        if (!end || img[1] != '/')
                return false;
        *end = '\0';
        return stat(img + 1, &st) == 0 && S_ISREG(st.st_mode) && st.st_dev == backing->st_dev &&
               st.st_ino == backing->st_ino;
}

/* Removes record `name` of `dir_fd` when it is stale; true when it did. A
 * record whose lock is held belongs to an attach in progress: kept. The
 * unlink happens under the record's lock, and an attach that opened the
 * record before and waits for the lock sees it unlinked (loop_share_lock)
 * and makes it anew. */
static bool record_sweep(int dir_fd, const char *name)
{
        struct loop_attach_opts opts;
        struct stat backing;
        char buf[PATH_MAX + 64];

        if (!record_key(name, &backing, &opts))
                return false; /* not a record: not ours to judge */
        _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        if (n > 0 && record_is_kept(&backing, &opts, buf))
                return false;
        return unlinkat(dir_fd, name, 0) == 0;
}

int loop_share_sweep(size_t *ret_removed, struct util_err *err)
{
        const char *dir = registry_dir();
        size_t removed = 0;

        if (ret_removed)
                *ret_removed = 0;
        if (!dir)
                return 0;
        _cleanup_(closedirp) DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : util_err_set(err, errno, "open '%s'", dir);
        struct dirent *de;
        while ((de = readdir(d))) {
                const char *name = de->d_name;
                if (name[0] == '.')
                        continue;
                const char *tmp = strstr(name, ".new-");
                if (tmp) {
                        /* A writer (of an older version) that died between
                         * write and rename. */
                        long pid = strtol(tmp + 5, NULL, 10);
                        if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH &&
                            unlinkat(dirfd(d), name, 0) == 0)
                                removed++;
                } else if (record_sweep(dirfd(d), name)) {
                        removed++;
                }
        }
        util_debug(UTIL_DBG_LOOP, "share registry '%s': %zu stale records removed", dir, removed);
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}
