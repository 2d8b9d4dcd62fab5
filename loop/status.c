/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Querying and listing bound loop devices: LOOP_GET_STATUS64 for what the
 * attach set (flags, offset, size limit, the tag in lo_file_name, backing
 * dev+inode), sysfs for the backing path, BLKGETDISKSEQ for the identity that
 * survives device-number reuse.
 */
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "loop/loop-internal.h"

UTIL_DEFINE_FREE_FUNC(DIR, closedir)

int loop_status_fill(int fd, int nr, dev_t devno, struct loop_status *ret, struct util_err *err)
{
        struct loop_info64 info;
        struct loop_status st;
        char path[80];

        if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0) {
                if (errno == ENXIO)
                        return util_err_setx(err, ENXIO, "'/dev/loop%d' is not bound", nr);
                return util_err_set(err, errno, "/dev/loop%d: LOOP_GET_STATUS64", nr);
        }
        memset(&st, 0, sizeof(st));
        st.nr = nr;
        snprintf(st.path, sizeof(st.path), "/dev/loop%d", nr);
        st.devno = devno;
        st.backing_dev = loop_decode_kernel_dev(info.lo_device);
        st.backing_ino = (ino_t)info.lo_inode;
        st.offset = info.lo_offset;
        st.size_limit = info.lo_sizelimit;
        st.read_only = info.lo_flags & LO_FLAGS_READ_ONLY;
        st.autoclear = info.lo_flags & LO_FLAGS_AUTOCLEAR;
        st.direct_io = info.lo_flags & LO_FLAGS_DIRECT_IO;
        st.partscan = info.lo_flags & LO_FLAGS_PARTSCAN;
        memcpy(st.tag, info.lo_file_name, LOOP_TAG_MAX);
        st.tag[LOOP_TAG_MAX] = '\0';
        int bs = 0;
        if (ioctl(fd, BLKSSZGET, &bs) == 0 && bs > 0)
                st.block_size = (uint32_t)bs;
        st.diskseq = loop_read_diskseq(fd, nr);
        snprintf(path, sizeof(path), "/sys/block/loop%d/loop/backing_file", nr);
        if (util_read_small_file(path, st.backing_file, sizeof(st.backing_file)) < 0)
                st.backing_file[0] = '\0';
        *ret = st;
        return 0;
}

int loop_device_query(const struct loop_device *d, struct loop_status *ret, struct util_err *err)
{
        return loop_status_fill(d->fd, d->nr, d->devno, ret, err);
}

/* Loop device number of a block device, through /sys/dev/block/M:m. */
static int nr_from_devno(dev_t rdev, int *ret)
{
        char link[80], target[256];

        snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(rdev), minor(rdev));
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
                return -errno;
        target[n] = '\0';
        const char *base = strrchr(target, '/');
        base = base ? base + 1 : target;
        char *end;
        if (strncmp(base, "loop", 4) != 0)
                return -ENOTTY;
        long nr = strtol(base + 4, &end, 10);
        if (end == base + 4 || *end || nr < 0 || nr > INT32_MAX)
                return -ENOTTY;
        *ret = (int)nr;
        return 0;
}

int loop_status_query_fd(int fd, const char *dev_path, struct loop_status *ret,
                         struct util_err *err)
{
        struct stat st;
        int nr = -1;

        if (fstat(fd, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", dev_path);
        if (!S_ISBLK(st.st_mode) || nr_from_devno(st.st_rdev, &nr) < 0)
                return util_err_setx(err, ENOTTY, "'%s' is not a loop device", dev_path);
        return loop_status_fill(fd, nr, st.st_rdev, ret, err);
}

int loop_status_query(const char *dev_path, struct loop_status *ret, struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;

        fd = open(dev_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return util_err_set(err, errno, "open '%s'", dev_path);
        return loop_status_query_fd(fd, dev_path, ret, err);
}

static int cmp_int(const void *a, const void *b)
{
        int x = *(const int *)a, y = *(const int *)b;
        return (x > y) - (x < y);
}

/* The numbers of all bound loop devices, sorted. */
static int bound_numbers(int **ret, size_t *ret_n, struct util_err *err)
{
        _cleanup_(closedirp) DIR *dir = NULL;
        _cleanup_free_ int *nrs = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;

        dir = opendir("/sys/block");
        if (!dir)
                return util_err_set(err, errno, "open '/sys/block'");
        while ((de = readdir(dir))) {
                char path[300], *end;
                if (strncmp(de->d_name, "loop", 4) != 0)
                        continue;
                long nr = strtol(de->d_name + 4, &end, 10);
                if (end == de->d_name + 4 || *end || nr < 0 || nr > INT32_MAX)
                        continue;
                snprintf(path, sizeof(path), "/sys/block/%s/loop", de->d_name);
                if (access(path, F_OK) < 0)
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        int *nn = realloc(nrs, cap * sizeof(*nrs));
                        if (!nn)
                                return util_err_set(err, ENOMEM, "list loop devices");
                        nrs = nn;
                }
                nrs[n++] = (int)nr;
        }
        if (n)
                qsort(nrs, n, sizeof(*nrs), cmp_int);
        *ret = TAKE_PTR(nrs);
        *ret_n = n;
        return 0;
}

int loop_list(const struct loop_filter *filter, struct loop_status **ret, size_t *ret_n,
              struct util_err *err)
{
        _cleanup_free_ int *nrs = NULL;
        _cleanup_free_ struct loop_status *list = NULL;
        size_t n_nrs = 0, n = 0;
        struct stat want;
        bool by_backing = filter && filter->backing_path;

        if (by_backing && stat(filter->backing_path, &want) < 0)
                return util_err_set(err, errno, "stat '%s'", filter->backing_path);
        int r = bound_numbers(&nrs, &n_nrs, err);
        if (r < 0)
                return r;
        if (n_nrs) {
                list = calloc(n_nrs, sizeof(*list));
                if (!list)
                        return util_err_set(err, ENOMEM, "list loop devices");
        }
        for (size_t i = 0; i < n_nrs; i++) {
                _cleanup_close_ int fd = -EBADF;
                dev_t devno;
                /* Gone or unbound since the scan: not listed. */
                if (loop_node_open(-EBADF, nrs[i], O_RDONLY, &fd, &devno, NULL) < 0)
                        continue;
                if (loop_status_fill(fd, nrs[i], devno, &list[n], NULL) < 0)
                        continue;
                if (filter && filter->tag_prefix &&
                    strncmp(list[n].tag, filter->tag_prefix, strlen(filter->tag_prefix)) != 0)
                        continue;
                if (by_backing &&
                    (list[n].backing_dev != want.st_dev || list[n].backing_ino != want.st_ino))
                        continue;
                n++;
        }
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}
