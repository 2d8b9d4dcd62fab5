/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unmounting. EBUSY is retried a bounded number of times (a process may be
 * leaving the tree); "unmount all" peels stacked mounts one by one until the
 * path is no longer a mountpoint (EINVAL), never more than a fixed number.
 */
#include <sys/mount.h>

#include "mount/mount-internal.h"

#define UMOUNT_BUSY_ATTEMPTS 10
#define UMOUNT_MAX_STACK     4096

int mount_unmount(const char *target, struct util_err *err)
{
        for (unsigned attempt = 1;; attempt++) {
                if (umount2(target, UMOUNT_NOFOLLOW) == 0)
                        return 0;
                if (errno == EINVAL)
                        return util_err_setx(err, EINVAL, "unmount '%s': not a mountpoint", target);
                if (errno != EBUSY || attempt >= UMOUNT_BUSY_ATTEMPTS)
                        return util_err_set(err, errno, "unmount '%s'%s", target,
                                            errno == EBUSY ? " (still busy after retries)" : "");
                util_sleep_random_ms(5, 10 * attempt);
        }
}

int mount_unmount_all(const char *target, struct util_err *err)
{
        int n = 0;

        for (; n < UMOUNT_MAX_STACK; n++) {
                int r = mount_unmount(target, err);
                if (r == -EINVAL) {
                        util_err_clear(err);
                        return n;
                }
                if (r < 0)
                        return util_err_prefix(err, "after %d unmount(s)", n);
        }
        return util_err_setx(err, ELOOP, "unmount '%s': still a mountpoint after %d unmounts",
                             target, n);
}
