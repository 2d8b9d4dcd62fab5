/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /dev/loop-control, device nodes and sysfs. Finding "loop device N" takes
 * more care than open("/dev/loopN"): in containers /dev is often a plain
 * tmpfs without the node (so it is created with mknod from the number sysfs
 * gives), and a stale node may point at another device (so the number of
 * what was opened is checked before anything is configured on it).
 */
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "loop/loop-internal.h"

int loop_control_open(int *ret_fd, struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;

        fd = open(LOOP_CONTROL_PATH, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return util_err_set(err, errno, "open '%s' (is the loop driver available?)",
                                            LOOP_CONTROL_PATH);
                return util_err_set(err, errno, "open '%s'", LOOP_CONTROL_PATH);
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int loop_fd_lock(int fd, int op, const char *what, struct util_err *err)
{
        /* Blocking: every holder keeps these locks for a few ioctls only. */
        while (flock(fd, op) < 0)
                if (errno != EINTR)
                        return util_err_set(err, errno, "lock '%s'", what);
        return 0;
}

int loop_sysfs_devno(int nr, dev_t *ret)
{
        char path[64], buf[32];
        unsigned maj, min;

        snprintf(path, sizeof(path), "/sys/block/loop%d/dev", nr);
        ssize_t n = util_read_small_file(path, buf, sizeof(buf));
        if (n < 0)
                return (int)n;
        if (sscanf(buf, "%u:%u", &maj, &min) != 2)
                return -EINVAL;
        *ret = makedev(maj, min);
        return 0;
}

bool loop_sysfs_is_bound(int nr, uint64_t diskseq)
{
        char path[80];

        snprintf(path, sizeof(path), "/sys/block/loop%d/loop/backing_file", nr);
        if (access(path, F_OK) < 0)
                return false;
        if (diskseq == 0)
                return true;
        /* A different diskseq means ours went away and the number was reused. */
        uint64_t now = 0;
        snprintf(path, sizeof(path), "/sys/block/loop%d/diskseq", nr);
        if (util_read_u64_file(path, &now) < 0)
                return true;
        return now == diskseq;
}

uint64_t loop_read_diskseq(int fd, int nr)
{
        uint64_t seq = 0;

#ifdef BLKGETDISKSEQ
        if (ioctl(fd, BLKGETDISKSEQ, &seq) == 0)
                return seq;
#endif
        /* COMPAT(kernel < 5.15): no diskseq at all; 0 means "unknown". */
        char path[64];
        snprintf(path, sizeof(path), "/sys/block/loop%d/diskseq", nr);
        if (util_read_u64_file(path, &seq) < 0)
                return 0;
        return seq;
}

dev_t loop_decode_kernel_dev(uint64_t v)
{
        /* huge_encode_dev() = new_encode_dev(): minor low byte in bits 0-7,
         * major in bits 8-19, rest of the minor in bits 20-31. */
        unsigned maj = (unsigned)((v & 0xfff00u) >> 8);
        unsigned min = (unsigned)((v & 0xffu) | ((v >> 12) & 0xfff00u));
        return makedev(maj, min);
}

static int node_create(int ctl_fd, int nr, const char *path, dev_t *ret_devno, struct util_err *err)
{
        dev_t devno;
        int r = loop_sysfs_devno(nr, &devno);

        if (r == -ENOENT && ctl_fd >= 0) {
                /* The kernel has no device N (removed since GET_FREE): add it. */
                util_debug(UTIL_DBG_LOOP, "loop%d: not in sysfs, LOOP_CTL_ADD", nr);
                if (ioctl(ctl_fd, LOOP_CTL_ADD, nr) < 0 && errno != EEXIST)
                        return util_err_set(err, errno, "LOOP_CTL_ADD %d", nr);
                r = loop_sysfs_devno(nr, &devno);
        }
        if (r < 0)
                return util_err_set(err, r, "read '/sys/block/loop%d/dev'", nr);

        if (access(path, F_OK) == 0) {
                *ret_devno = devno;
                return 0;
        }
        /* /dev is not devtmpfs (or udev is slow): make the node ourselves. */
        util_debug(UTIL_DBG_LOOP, "%s: missing, mknod %u:%u", path, major(devno), minor(devno));
        if (mknod(path, S_IFBLK | 0660, devno) < 0 && errno != EEXIST)
                return util_err_set(err, errno, "create device node '%s' (%u:%u)", path,
                                    major(devno), minor(devno));
        *ret_devno = devno;
        return 0;
}

/* The device numbers sysfs gave for loop N, by N: fixed while the loop
 * module is loaded (minor N << part_shift), so read once per process
 * instead of once per attach and lookup, under the allocation lock. 0:
 * not read yet. A node that does not match is checked against sysfs again
 * (and the entry replaced), so a stale entry costs one read, never an
 * error. */
#define DEVNO_CACHE_SIZE 1024
static dev_t devno_cache[DEVNO_CACHE_SIZE];

int loop_node_open(int ctl_fd, int nr, int flags, int *ret_fd, dev_t *ret_devno,
                   struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;
        char path[32];
        dev_t devno = 0;
        struct stat st;

        snprintf(path, sizeof(path), "/dev/loop%d", nr);
        fd = open(path, flags | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENOENT && ctl_fd >= 0) {
                int r = node_create(ctl_fd, nr, path, &devno, err);
                if (r < 0)
                        return r;
                fd = open(path, flags | O_CLOEXEC | O_NOCTTY);
        }
        if (fd < 0)
                return util_err_set(err, errno, "open '%s'", path);

        if (fstat(fd, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", path);
        dev_t *slot = nr >= 0 && nr < DEVNO_CACHE_SIZE ? &devno_cache[nr] : NULL;
        if (devno == 0 && slot && st.st_rdev != 0 &&
            __atomic_load_n(slot, __ATOMIC_RELAXED) == st.st_rdev) {
                devno = st.st_rdev;
        } else {
                if (devno == 0) {
                        int r = loop_sysfs_devno(nr, &devno);
                        if (r < 0)
                                return util_err_set(err, r, "read '/sys/block/loop%d/dev'", nr);
                }
                if (slot)
                        __atomic_store_n(slot, devno, __ATOMIC_RELAXED);
        }
        if (!S_ISBLK(st.st_mode) || st.st_rdev != devno)
                return util_err_setx(
                        err, ENODEV, "'%s' is not loop device %d (node %u:%u, kernel %u:%u)", path,
                        nr, major(st.st_rdev), minor(st.st_rdev), major(devno), minor(devno));
        *ret_fd = TAKE_FD(fd);
        *ret_devno = devno;
        return 0;
}
