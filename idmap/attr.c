/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Idmapped mounts: mount_setattr(MOUNT_ATTR_IDMAP) on a detached mount
 * (Linux 5.12, commit 9caccd41541a "fs: introduce MOUNT_ATTR_IDMAP"), and
 * the once-per-process probe for it.
 *
 * The kernel's refusals, measured on 6.18 (DESIGN §7, limits.md §5):
 *   - a filesystem without FS_ALLOW_IDMAP (proc, overlay, ...): EINVAL;
 *   - a mount that is already idmapped: EINVAL;
 *   - an fd that is not a namespace, or the initial user namespace: EINVAL;
 *   - another namespace type (net): EPERM; an attached mount: EPERM (older
 *     kernels said EINVAL).
 * So EINVAL is ambiguous. The userns fd is checked first (NS_GET_NSTYPE),
 * and our callers only pass fresh detached mounts, so what is left of
 * EINVAL means "this filesystem cannot be idmapped" and is returned as
 * EOPNOTSUPP, the one value the mount engine treats as "cannot idmap here".
 *
 * glibc 2.36 declares open_tree()/mount_setattr() in <sys/mount.h>, but
 * older C libraries do not; the raw syscalls work with all of them.
 */
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <linux/mount.h>
#include <linux/nsfs.h>

#include "idmap/idmap.h"

#ifndef MOUNT_ATTR_IDMAP
/* COMPAT(uapi headers < 5.12): drop when the build baseline has them. */
#define MOUNT_ATTR_IDMAP 0x00100000
struct mount_attr {
        uint64_t attr_set;
        uint64_t attr_clr;
        uint64_t propagation;
        uint64_t userns_fd;
};
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE   1
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef NS_GET_NSTYPE
#define NS_GET_NSTYPE _IO(0xb7, 0x3)
#endif

/* -1 not probed (or undecided), 0 no, 1 yes. Shared with host threads. */
static _Atomic int idmap_supported = -1;

static int sys_mount_setattr(int dfd, const char *path, unsigned flags, struct mount_attr *attr)
{
        /* syscall() reads long arguments: widen them. */
        return (int)syscall(SYS_mount_setattr, (long)dfd, path, (unsigned long)flags, attr,
                            sizeof(*attr));
}

static int sys_open_tree(int dfd, const char *path, unsigned flags)
{
        return (int)syscall(SYS_open_tree, (long)dfd, path, (unsigned long)flags);
}

int idmap_feature_supported(void)
{
        int v = atomic_load(&idmap_supported);
        if (v >= 0)
                return v;

        /*
         * Ask the kernel without changing anything: MOUNT_ATTR_IDMAP with a
         * userns fd that cannot be open (INT_MAX is above fs.nr_open's
         * maximum). A kernel that knows the attribute looks the fd up and
         * says EBADF; one without mount_setattr says ENOSYS; one whose
         * mount_setattr lacks the attribute says EINVAL. Nothing is ever
         * modified: the call cannot succeed.
         */
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = INT_MAX};
        if (sys_mount_setattr(AT_FDCWD, "/", 0, &attr) == 0) {
                v = 1; /* cannot happen; a yes all the same */
        } else {
                switch (errno) {
                case EBADF:
                        v = 1;
                        break;
                case ENOSYS:
                case EINVAL:
                case EOPNOTSUPP:
                        v = 0;
                        break;
                default:
                        /* EPERM: no CAP_SYS_ADMIN (may_mount), or seccomp.
                         * Undecided: not remembered, asked again next time. */
                        util_debug(UTIL_DBG_IDMAP, "idmap probe: mount_setattr: %m, undecided");
                        return -1;
                }
        }
        util_debug(UTIL_DBG_IDMAP, "idmap probe: idmapped mounts %s",
                   v ? "supported" : "not supported");
        atomic_store(&idmap_supported, v);
        return v;
}

/* Checks that `fd` is a user-namespace fd. Returns 0, or -EINVAL/-errno with `err`. */
static int check_userns_fd(int fd, struct util_err *err)
{
        int type = ioctl(fd, NS_GET_NSTYPE);

        if (type < 0) {
                if (errno == ENOTTY || errno == EINVAL)
                        return util_err_setx(err, EINVAL, "fd %d is not a user namespace", fd);
                return util_err_set(err, errno, "user namespace fd %d", fd);
        }
        if (type != CLONE_NEWUSER)
                return util_err_setx(err, EINVAL,
                                     "fd %d is a namespace of another type, not a user namespace",
                                     fd);
        return 0;
}

int idmap_mount_apply(int mount_fd, int userns_fd, bool recursive, struct util_err *err)
{
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd};
        unsigned flags = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
        int r;

        if (userns_fd < 0)
                return util_err_setx(err, EBADF,
                                     "mount_setattr(MOUNT_ATTR_IDMAP): no user "
                                     "namespace fd");
        r = check_userns_fd(userns_fd, err);
        if (r < 0)
                return util_err_prefix(err, "mount_setattr(MOUNT_ATTR_IDMAP)");

        if (sys_mount_setattr(mount_fd, "", flags, &attr) == 0) {
                util_debug(UTIL_DBG_IDMAP, "mount fd %d idmapped with userns fd %d%s", mount_fd,
                           userns_fd, recursive ? " (recursive)" : "");
                return 0;
        }
        switch (errno) {
        case ENOSYS:
                atomic_store(&idmap_supported, 0);
                return util_err_setx(err, EOPNOTSUPP,
                                     "mount_setattr(MOUNT_ATTR_IDMAP): the kernel has no "
                                     "idmapped mounts (Linux 5.12 or later)");
        case EINVAL:
                if (idmap_feature_supported() == 0)
                        return util_err_setx(err, EOPNOTSUPP,
                                             "mount_setattr(MOUNT_ATTR_IDMAP): the kernel has no "
                                             "idmapped mounts");
                return util_err_setx(err, EOPNOTSUPP,
                                     "mount_setattr(MOUNT_ATTR_IDMAP): the filesystem%s cannot "
                                     "be idmapped (or the mount is already idmapped)",
                                     recursive ? " or one mounted below it" : "");
        case EPERM:
                return util_err_set(err, errno,
                                    "mount_setattr(MOUNT_ATTR_IDMAP) (needs CAP_SYS_ADMIN over "
                                    "the filesystem, and a detached mount)");
        default:
                return util_err_set(err, errno, "mount_setattr(MOUNT_ATTR_IDMAP)");
        }
}

int idmap_clone(int dirfd, const char *path, int userns_fd, bool recursive, int *ret_fd,
                struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;
        unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
        char shown[512];
        int r;

        if (!path)
                path = "";
        if (!*path) {
                flags |= AT_EMPTY_PATH;
                if (util_fd_get_path(dirfd, shown, sizeof(shown)) < 0)
                        snprintf(shown, sizeof(shown), "fd %d", dirfd);
        } else {
                snprintf(shown, sizeof(shown), "%s", path);
        }

        fd = sys_open_tree(dirfd, path, flags);
        if (fd < 0) {
                if (errno == ENOSYS)
                        return util_err_setx(err, EOPNOTSUPP,
                                             "idmap '%s': open_tree: the kernel has no new "
                                             "mount API (Linux 5.2 or later)",
                                             shown);
                return util_err_set(err, errno, "idmap '%s': open_tree(OPEN_TREE_CLONE)", shown);
        }
        r = idmap_mount_apply(fd, userns_fd, recursive, err);
        if (r < 0)
                return util_err_prefix(err, "idmap '%s'", shown);
        *ret_fd = TAKE_FD(fd);
        return 0;
}
