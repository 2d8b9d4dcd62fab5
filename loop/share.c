/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared read-only devices: N containers of one image use one loop device
 * per layer, and so one page cache. Called under the /dev/loop-control lock,
 * so two sharers of one image never bind two devices.
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
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

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

int loop_share_find(const struct stat *backing, const struct loop_attach_opts *opts,
                    struct loop_device *ret, struct util_err *err)
{
        _cleanup_(closedirp) DIR *dir = NULL;
        struct dirent *de;

        dir = opendir("/sys/block");
        if (!dir)
                return util_err_set(err, errno, "open '/sys/block'");

        while ((de = readdir(dir))) {
                char *end;
                struct loop_info64 info;
                _cleanup_close_ int fd = -EBADF;
                dev_t devno;

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

                /* No node creation here (ctl -EBADF): a device whose node we
                 * cannot see is not one we can share. */
                if (loop_node_open(-EBADF, (int)nr, O_RDONLY, &fd, &devno, NULL) < 0)
                        continue;
                if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0)
                        continue;
                if (!status_matches(&info, backing, opts))
                        continue;
                if (opts->block_size) {
                        int bs = 0;
                        if (ioctl(fd, BLKSSZGET, &bs) < 0 || (uint32_t)bs != opts->block_size)
                                continue;
                }

                ret->fd = TAKE_FD(fd);
                ret->nr = (int)nr;
                snprintf(ret->path, sizeof(ret->path), "/dev/loop%ld", nr);
                ret->devno = devno;
                ret->diskseq = loop_read_diskseq(ret->fd, (int)nr);
                ret->bound_by_us = false;
                ret->direct_io = (info.lo_flags & LO_FLAGS_DIRECT_IO) != 0;
                return 1;
        }
        return 0;
}
