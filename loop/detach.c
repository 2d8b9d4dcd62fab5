/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Releasing and detaching. A loop device that is still in use is never
 * yanked: LOOP_CLR_FD on a device with other openers (a mount holds one)
 * only sets autoclear and returns 0 (kernel >= 5.x), so "detach succeeded"
 * does not mean "detached". Whether the device is really gone is read back
 * from sysfs, with diskseq telling our binding from a new one that reused
 * the number, and reported as LOOP_DETACHED or LOOP_DEFERRED.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>

#include "loop/loop-internal.h"

struct loop_device *loop_device_free(struct loop_device *d)
{
        if (!d)
                return NULL;
        util_closep(&d->fd);
        free(d);
        return NULL;
}

/* Clears the binding (or, where the kernel refuses to clear a busy device,
 * sets autoclear so the last user frees it). 0 or -errno. */
static int clear_binding(int fd, const char *dev, struct util_err *err)
{
        if (ioctl(fd, LOOP_CLR_FD, 0) == 0 || errno == ENXIO)
                return 0;
        if (errno != EBUSY)
                return util_err_set(err, errno, "%s: LOOP_CLR_FD", dev);

        /* COMPAT(kernel < 5.x): LOOP_CLR_FD on a busy device fails with EBUSY
         * instead of deferring; defer it ourselves with autoclear. */
        struct loop_info64 info;
        if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0)
                return errno == ENXIO ? 0 : util_err_set(err, errno, "%s: LOOP_GET_STATUS64", dev);
        info.lo_flags |= LO_FLAGS_AUTOCLEAR;
        if (ioctl(fd, LOOP_SET_STATUS64, &info) < 0)
                return util_err_set(err, errno, "%s: set autoclear", dev);
        return 0;
}

int loop_device_detach(struct loop_device *d, struct util_err *err)
{
        if (!d)
                return LOOP_DETACHED;
        int nr = d->nr;
        uint64_t seq = d->diskseq;
        char dev[sizeof(d->path)];
        memcpy(dev, d->path, sizeof(dev));

        /* A shared device joined from someone else is only released: its
         * other users keep it, autoclear frees it after the last one. */
        if (d->bound_by_us) {
                /* Lock 2 of 2 (see loop.h): keeps udev's probe, which takes
                 * LOCK_SH, from holding the device open while we clear it. */
                int r = loop_fd_lock(d->fd, LOCK_EX, dev, err);
                if (r == 0)
                        r = clear_binding(d->fd, dev, err);
                if (r < 0) {
                        loop_device_free(d);
                        return util_err_prefix(err, "detach %s", dev);
                }
        }
        loop_device_free(d);
        return loop_sysfs_is_bound(nr, seq) ? LOOP_DEFERRED : LOOP_DETACHED;
}

int loop_detach_tagged(const char *dev_path, const char *owner, struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;
        struct loop_status st;

        fd = open(dev_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENXIO)
                return LOOP_DETACHED; /* on its way out */
        if (fd < 0)
                return util_err_set(err, errno, "detach '%s': open", dev_path);

        int r = loop_status_query_fd(fd, dev_path, &st, err);
        if (r == -ENXIO) {
                util_err_clear(err);
                return LOOP_DETACHED;
        }
        if (r < 0)
                return util_err_prefix(err, "detach '%s'", dev_path);
        if (!loop_tag_is_ours(st.tag, owner))
                return util_err_setx(err, EPERM,
                                     "detach '%s': not attached by loopsnap%s%s (tag '%s'); "
                                     "leaving it alone",
                                     dev_path, owner ? " for " : "", owner ? owner : "", st.tag);
        r = loop_fd_lock(fd, LOCK_EX, dev_path, err);
        if (r < 0)
                return util_err_prefix(err, "detach '%s'", dev_path);
        r = clear_binding(fd, dev_path, err);
        if (r < 0)
                return util_err_prefix(err, "detach '%s'", dev_path);
        close(TAKE_FD(fd));
        return loop_sysfs_is_bound(st.nr, st.diskseq) ? LOOP_DEFERRED : LOOP_DETACHED;
}
