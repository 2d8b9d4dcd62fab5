/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Directory trees of a plain-directory upper: how much they use, and
 * removing them; and, in a mounted image, files with inode attributes a
 * copy would lose. All stay on the tree's filesystem (a mount inside is
 * neither counted nor entered) and never follow symbolic links; removal
 * works through directory fds (unlinkat), so a rename of a parent during
 * the walk cannot redirect it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "snapshot/snapshot-internal.h"

/* Deep enough for any real image; deeper trees are left to fsck's report. */
#define TREE_MAX_DEPTH 4096

/* A DIR for walking directory fd `dfd`, which it then owns; NULL with
 * errno (and `dfd` closed) on failure. */
static DIR *dir_of(int dfd)
{
        DIR *d = fdopendir(dfd);
        if (!d) {
                int e = errno;
                close(dfd);
                errno = e;
        }
        return d;
}

/* Directory `name` of `d`, `depth` levels down, opened to walk: an fd, or
 * -errno (-ELOOP past TREE_MAX_DEPTH). */
static int open_subdir(DIR *d, const char *name, unsigned depth)
{
        if (depth >= TREE_MAX_DEPTH)
                return -ELOOP;
        int fd = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd >= 0 ? fd : -errno;
}

static int usage_at(int dfd, dev_t dev, unsigned depth, uint64_t *bytes, uint64_t *inodes)
{
        DIR *d = dir_of(dfd);
        struct dirent *de;
        int r = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                struct stat st;
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = -errno;
                        break;
                }
                if (st.st_dev != dev)
                        continue;
                *bytes += (uint64_t)st.st_blocks * 512;
                (*inodes)++;
                if (!S_ISDIR(st.st_mode))
                        continue;
                int sub = open_subdir(d, de->d_name, depth);
                if (sub < 0) {
                        r = sub;
                        break;
                }
                r = usage_at(sub, dev, depth + 1, bytes, inodes);
                if (r < 0)
                        break;
        }
        closedir(d);
        return r;
}

int snap_tree_usage(const char *dir, uint64_t *bytes, uint64_t *inodes, struct util_err *err)
{
        struct stat st;
        uint64_t b = 0, i = 1;
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0)
                return util_err_set(err, errno, "open '%s'", dir);
        if (fstat(fd, &st) < 0) {
                int e = errno;
                close(fd);
                return util_err_set(err, e, "stat '%s'", dir);
        }
        b = (uint64_t)st.st_blocks * 512;
        int r = usage_at(fd, st.st_dev, 0, &b, &i);
        if (r < 0)
                return util_err_set(err, -r, "measure '%s'", dir);
        *bytes = b;
        *inodes = i;
        return 0;
}

/* The first entry under `dfd` (on device `dev`) with any attribute of
 * `attrs` set, as a path relative to the walk's top in `path` (`len`
 * bytes used so far): 1, 0 for none, or -errno. */
static int attr_at(int dfd, dev_t dev, unsigned depth, uint64_t attrs, char *path, size_t size,
                   size_t len)
{
        DIR *d = dir_of(dfd);
        struct dirent *de;
        int r = 0;

        if (!d)
                return -errno;
        while (r == 0 && (de = readdir(d))) {
                struct statx stx;
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (statx(dirfd(d), de->d_name, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) < 0) {
                        r = -errno;
                        break;
                }
                if (makedev(stx.stx_dev_major, stx.stx_dev_minor) != dev)
                        continue;
                int n = snprintf(path + len, size - len, "%s%s", len ? "/" : "", de->d_name);
                size_t sub_len = n > 0 && (size_t)n < size - len ? len + (size_t)n : len;
                if (stx.stx_attributes & stx.stx_attributes_mask & attrs) {
                        r = 1;
                        break;
                }
                if (!S_ISDIR(stx.stx_mode))
                        continue;
                int sub = open_subdir(d, de->d_name, depth);
                if (sub < 0) {
                        r = sub;
                        break;
                }
                r = attr_at(sub, dev, depth + 1, attrs, path, size, sub_len);
        }
        if (r == 0)
                path[len] = '\0';
        closedir(d);
        return r;
}

int snap_tree_find_attr(const char *dir, uint64_t attrs, char *path, size_t size)
{
        struct stat st;

        if (size == 0)
                return -EINVAL;
        path[0] = '\0';
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return attr_at(fd, st.st_dev, 0, attrs, path, size, 0);
}

static void remove_at(int dfd, dev_t dev, unsigned depth)
{
        DIR *d = dir_of(dfd);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                struct stat st;
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (!S_ISDIR(st.st_mode)) {
                        (void)unlinkat(dirfd(d), de->d_name, 0);
                        continue;
                }
                if (st.st_dev != dev || depth >= TREE_MAX_DEPTH)
                        continue; /* a mount inside, or absurdly deep: left alone */
                int sub = openat(dirfd(d), de->d_name,
                                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0)
                        remove_at(sub, dev, depth + 1);
                (void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
        }
        closedir(d);
}

void snap_tree_remove(const char *dir)
{
        struct stat st;
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0)
                return;
        if (fstat(fd, &st) < 0) {
                close(fd);
                return;
        }
        remove_at(fd, st.st_dev, 0);
        (void)rmdir(dir);
}
