/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mount table queries through libmount (/proc/self/mountinfo), and the
 * device questions Kata's helpers answer: which device backs a path, and
 * whether a block device is a loop or device-mapper device.
 */
#include <libmount.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "mount/mount-internal.h"

UTIL_DEFINE_FREE_FUNC(struct libmnt_table, mnt_unref_table)

static int load_table(struct libmnt_table **ret, struct util_err *err)
{
        struct libmnt_table *tb = mnt_new_table();
        if (!tb)
                return util_err_set(err, ENOMEM, "mountinfo");
        int r = mnt_table_parse_file(tb, "/proc/self/mountinfo");
        if (r < 0) {
                mnt_unref_table(tb);
                return util_err_set(err, -r, "read '/proc/self/mountinfo'");
        }
        *ret = tb;
        return 0;
}

static void fill_info(struct libmnt_fs *fs, struct mount_info *ret)
{
        const char *s;

        memset(ret, 0, sizeof(*ret));
        snprintf(ret->target, sizeof(ret->target), "%s", (s = mnt_fs_get_target(fs)) ? s : "");
        snprintf(ret->source, sizeof(ret->source), "%s", (s = mnt_fs_get_source(fs)) ? s : "");
        snprintf(ret->fstype, sizeof(ret->fstype), "%s", (s = mnt_fs_get_fstype(fs)) ? s : "");
        snprintf(ret->options, sizeof(ret->options), "%s", (s = mnt_fs_get_options(fs)) ? s : "");
        ret->devno = mnt_fs_get_devno(fs);
        ret->id = mnt_fs_get_id(fs);
        ret->parent_id = mnt_fs_get_parent_id(fs);
}

int mount_is_mountpoint(const char *path, struct util_err *err)
{
        _cleanup_(mnt_unref_tablep) struct libmnt_table *tb = NULL;
        _cleanup_free_ char *abs = realpath(path, NULL);

        if (!abs)
                return util_err_set(err, errno, "'%s'", path);
        int r = load_table(&tb, err);
        if (r < 0)
                return r;
        return mnt_table_find_target(tb, abs, MNT_ITER_BACKWARD) ? 1 : 0;
}

int mount_find_by_target(const char *target, struct mount_info *ret, struct util_err *err)
{
        _cleanup_(mnt_unref_tablep) struct libmnt_table *tb = NULL;
        _cleanup_free_ char *abs = realpath(target, NULL);
        char *mp = NULL;

        if (!abs)
                return util_err_set(err, errno, "'%s'", target);
        int r = load_table(&tb, err);
        if (r < 0)
                return r;
        struct libmnt_fs *fs = mnt_table_find_target(tb, abs, MNT_ITER_BACKWARD);
        if (!fs) {
                /* Not a mountpoint: the mount that contains it. */
                mp = mnt_get_mountpoint(abs);
                if (mp)
                        fs = mnt_table_find_target(tb, mp, MNT_ITER_BACKWARD);
                free(mp);
        }
        if (!fs)
                return util_err_setx(err, ENOENT, "no mount at or above '%s'", target);
        fill_info(fs, ret);
        return 0;
}

int mount_find_by_source(const char *source, struct mount_info *ret, struct util_err *err)
{
        _cleanup_(mnt_unref_tablep) struct libmnt_table *tb = NULL;
        int r = load_table(&tb, err);

        if (r < 0)
                return r;
        struct libmnt_fs *fs = mnt_table_find_source(tb, source, MNT_ITER_FORWARD);
        if (!fs)
                return util_err_setx(err, ENOENT, "no mount of '%s'", source);
        fill_info(fs, ret);
        return 0;
}

int mount_backing_device(const char *path, dev_t *ret, struct util_err *err)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", path);
        *ret = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
        return 0;
}

int mount_blockdev_kind(dev_t dev)
{
        char path[96];
        struct stat st;

        snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(dev), minor(dev));
        if (stat(path, &st) < 0)
                return errno == ENOENT ? -ENOENT : -errno;
        snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/loop", major(dev), minor(dev));
        if (access(path, F_OK) == 0)
                return MOUNT_BLOCKDEV_LOOP;
        /* A loop device that is not bound has no loop/ directory. */
        char link[300], target[300];
        snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(dev), minor(dev));
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
                target[n] = '\0';
                const char *base = strrchr(target, '/');
                base = base ? base + 1 : target;
                if (strncmp(base, "loop", 4) == 0)
                        return MOUNT_BLOCKDEV_LOOP;
        }
        snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/dm", major(dev), minor(dev));
        if (access(path, F_OK) == 0)
                return MOUNT_BLOCKDEV_DM;
        return MOUNT_BLOCKDEV_OTHER;
}
