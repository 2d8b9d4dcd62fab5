/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers around the new mount API (fsopen/fsconfig/fsmount/move_mount,
 * open_tree, mount_setattr; kernel >= 5.2, glibc >= 2.36 wrappers). The point
 * of most of them is the error: which key failed, and what the filesystem
 * said about it in the fs-context log (read() on the fsopen fd), e.g.
 * "fsconfig 'lowerdir+': Invalid argument (kernel: overlay: too many lower
 * directories, limit is 500)".
 */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>

#include "mount/mount-internal.h"

void mount_fc_log(int fs_fd, char *buf, size_t size)
{
        size_t len = 0;

        if (size == 0)
                return;
        buf[0] = '\0';
        for (;;) {
                char msg[1024];
                ssize_t n = read(fs_fd, msg, sizeof(msg) - 1);
                if (n <= 0)
                        break;
                msg[n] = '\0';
                while (n > 0 && msg[n - 1] == '\n')
                        msg[--n] = '\0';
                /* Lines start with "e ", "w " or "i " (error/warning/info). */
                const char *text = n > 2 && msg[1] == ' ' ? msg + 2 : msg;
                int w = snprintf(buf + len, size - len, "%s%s", len ? "; " : "", text);
                if (w < 0 || (size_t)w >= size - len)
                        break; /* full: snprintf cut and terminated it */
                len += (size_t)w;
        }
}

int mount_err_add_log(struct util_err *err, int fs_fd)
{
        char log[UTIL_ERR_MSG_MAX];

        mount_fc_log(fs_fd, log, sizeof(log));
        if (err && log[0]) {
                size_t len = strlen(err->msg);
                snprintf(err->msg + len, sizeof(err->msg) - len, " (kernel: %s)", log);
        }
        return err ? -err->errnum : -EIO;
}

unsigned long long mount_flags_to_attr(unsigned long f)
{
        unsigned long long a = 0;

        if (f & MS_RDONLY)
                a |= MOUNT_ATTR_RDONLY;
        if (f & MS_NOSUID)
                a |= MOUNT_ATTR_NOSUID;
        if (f & MS_NODEV)
                a |= MOUNT_ATTR_NODEV;
        if (f & MS_NOEXEC)
                a |= MOUNT_ATTR_NOEXEC;
        if (f & MS_NODIRATIME)
                a |= MOUNT_ATTR_NODIRATIME;
        if (f & MS_NOATIME)
                a |= MOUNT_ATTR_NOATIME;
        else if (f & MS_STRICTATIME)
                a |= MOUNT_ATTR_STRICTATIME;
        /* MS_RELATIME is the default (MOUNT_ATTR_RELATIME == 0). */
        return a;
}

int mount_fsconfig_string(int fs_fd, const char *key, const char *value, struct util_err *err)
{
        if (fsconfig(fs_fd, FSCONFIG_SET_STRING, key, value, 0) == 0)
                return 0;
        util_err_set(err, errno, "fsconfig '%s=%s'", key, value);
        return mount_err_add_log(err, fs_fd);
}

int mount_fsconfig_flag(int fs_fd, const char *key, struct util_err *err)
{
        if (fsconfig(fs_fd, FSCONFIG_SET_FLAG, key, NULL, 0) == 0)
                return 0;
        util_err_set(err, errno, "fsconfig '%s'", key);
        return mount_err_add_log(err, fs_fd);
}

int mount_fsconfig_fd(int fs_fd, const char *key, int fd, struct util_err *err)
{
        if (fsconfig(fs_fd, FSCONFIG_SET_FD, key, NULL, fd) == 0)
                return 0;
        util_err_set(err, errno, "fsconfig '%s' (fd)", key);
        return mount_err_add_log(err, fs_fd);
}

int mount_fsconfig_data(int fs_fd, const char *opt, struct util_err *err)
{
        const char *eq = strchr(opt, '=');

        if (!eq)
                return mount_fsconfig_flag(fs_fd, opt, err);
        char key[256];
        size_t klen = (size_t)(eq - opt);
        if (klen == 0 || klen >= sizeof(key))
                return util_err_setx(err, EINVAL, "option '%s': bad key", opt);
        memcpy(key, opt, klen);
        key[klen] = '\0';
        return mount_fsconfig_string(fs_fd, key, eq + 1, err);
}

int mount_fsconfig_create(int fs_fd, struct util_err *err)
{
        if (fsconfig(fs_fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
                return 0;
        util_err_set(err, errno, "create the filesystem");
        return mount_err_add_log(err, fs_fd);
}

int mount_fsmount(int fs_fd, unsigned long ms_flags, int *ret_fd, struct util_err *err)
{
        int fd = fsmount(fs_fd, FSMOUNT_CLOEXEC, (unsigned)mount_flags_to_attr(ms_flags));
        if (fd < 0) {
                util_err_set(err, errno, "fsmount");
                return mount_err_add_log(err, fs_fd);
        }
        *ret_fd = fd;
        return 0;
}

int mount_move_to(int mnt_fd, const char *target, struct util_err *err)
{
        if (move_mount(mnt_fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return util_err_set(err, errno, "move_mount onto '%s'", target);
        return 0;
}

static unsigned long propagation_ms(enum mount_propagation p)
{
        switch (p) {
        case MOUNT_PROPAGATION_SHARED:
                return MS_SHARED;
        case MOUNT_PROPAGATION_SLAVE:
                return MS_SLAVE;
        case MOUNT_PROPAGATION_PRIVATE:
                return MS_PRIVATE;
        case MOUNT_PROPAGATION_UNBINDABLE:
                return MS_UNBINDABLE;
        case MOUNT_PROPAGATION_NONE:
                break;
        }
        return 0;
}

int mount_set_propagation(int mnt_fd, const char *path, enum mount_propagation p, bool recursive,
                          struct util_err *err)
{
        unsigned long ms = propagation_ms(p);

        if (!ms)
                return 0;
        if (mnt_fd >= 0) {
                struct mount_attr attr = {.propagation = ms};
                if (mount_setattr(mnt_fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr,
                                  sizeof(attr)) == 0)
                        return 0;
                return util_err_set(err, errno, "set propagation on '%s'", path ? path : "mount");
        }
        if (mount(NULL, path, NULL, ms | (recursive ? MS_REC : 0), NULL) < 0)
                return util_err_set(err, errno, "set propagation on '%s'", path);
        return 0;
}

int mount_open_sub(const struct mount_applied *m, const char *sub, int *ret_fd,
                   struct util_err *err)
{
        _cleanup_close_ int base = -EBADF;
        int dirfd = m->fd;
        struct open_how how = {
                .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        };

        if (dirfd < 0) {
                if (!m->path)
                        return util_err_setx(err, EINVAL, "'%s': the mount has no fd or path", sub);
                base = open(m->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (base < 0)
                        return util_err_set(err, errno, "open '%s'", m->path);
                dirfd = base;
        }
        int fd = (int)syscall(SYS_openat2, dirfd, sub, &how, sizeof(how));
        if (fd < 0)
                return util_err_set(
                        err, errno, "open '%s' inside the mount%s", sub,
                        errno == EXDEV || errno == ELOOP ? " (it leads out of the mount)" : "");
        *ret_fd = fd;
        return 0;
}
