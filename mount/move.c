/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Moving whole mount trees: what the OCI hook needs to put a detached tree
 * built by the engine into a container's mount namespace and then under
 * the container's root (DESIGN §8, research/oci-hook.md §5). Attach a
 * detached tree, move a mount, move every direct child of one mount into
 * another tree at the same relative path, make a mount read-only, make the
 * mount containing a path private.
 *
 * Paths inside the destination tree are resolved with RESOLVE_IN_ROOT: the
 * tree is a container image, and before pivot_root an absolute symlink in it
 * ("/etc -> /host/etc") would otherwise lead to the host's files.
 */
#include <fcntl.h>
#include <libmount.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "mount/mount-internal.h"

UTIL_DEFINE_FREE_FUNC(struct libmnt_table, mnt_unref_table)

int mount_attach(int mnt_fd, const char *target, struct util_err *err)
{
        return mount_move_to(mnt_fd, target, err);
}

int mount_move(const char *from, const char *to, struct util_err *err)
{
        if (move_mount(AT_FDCWD, from, AT_FDCWD, to, 0) < 0)
                return util_err_set(err, errno, "move mount '%s' onto '%s'", from, to);
        return 0;
}

int mount_set_readonly(const char *target, struct util_err *err)
{
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};

        /* Not AT_RECURSIVE: the mounts below keep their own flags (crun's
         * /proc, /dev, /sys and the caller's volumes). */
        if (mount_setattr(AT_FDCWD, target, AT_SYMLINK_NOFOLLOW, &attr, sizeof(attr)) < 0)
                return util_err_set(err, errno, "make '%s' read-only", target);
        return 0;
}

/*
 * The mount containing `path` made private through an fd: from `path`
 * upwards to the first directory that is a mount's root (statx
 * STATX_ATTR_MOUNT_ROOT, kernel >= 5.8), then mount_setattr on it, which
 * takes only a mount's root. This costs a few syscalls where a mountinfo
 * scan costs one line per mount of the namespace (the hook runs this in a
 * container's copy of the host's mounts). Returns 1 done, 0 when the kernel
 * cannot tell a mount root or set propagation this way, or -errno.
 */
static int private_by_fd(const char *path)
{
        struct mount_attr attr = {.propagation = MS_PRIVATE};
        _cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        for (unsigned depth = 0; depth < 4096; depth++) {
                struct statx sx;
                if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, 0, &sx) < 0)
                        return -errno;
                if (!(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
                        return 0;
                if (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) {
                        if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0)
                                return 1;
                        return errno == ENOSYS || errno == EPERM ? 0 : -errno;
                }
                int up = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (up < 0)
                        return -errno;
                util_closep(&fd);
                fd = up;
        }
        return 0;
}

int mount_make_containing_private(const char *path, struct util_err *err)
{
        struct mount_info mi;
        int r = private_by_fd(path);

        if (r > 0)
                return 0;
        if (r < 0)
                return util_err_set(err, -r, "make the mount containing '%s' private", path);
        r = mount_find_by_target(path, &mi, err);

        if (r < 0)
                return r;
        if (mount(NULL, mi.target, NULL, MS_PRIVATE, NULL) < 0)
                return util_err_set(err, errno, "make '%s' private", mi.target);
        return 0;
}

static int open_in_root(int root_fd, const char *rel, unsigned flags, int *ret_fd)
{
        struct open_how how = {
                .flags = O_PATH | O_CLOEXEC | flags,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int)syscall(SYS_openat2, root_fd, *rel ? rel : ".", &how, sizeof(how));

        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

/*
 * Opens (O_PATH) the mount point `rel` inside the tree `root_fd`, creating
 * what is missing: directories on the way, and the last component as a
 * directory (`dir`) or an empty file. Symlinks are followed inside the tree.
 */
static int mkpoint(int root_fd, const char *rel, bool dir, int *ret_fd, struct util_err *err)
{
        _cleanup_free_ char *path = strdup(rel);
        size_t len;

        if (!path)
                return util_err_set(err, ENOMEM, "mount point");
        len = strlen(path);
        /* Each component in turn: path[0..end) is the prefix. */
        for (size_t end = 0; end < len;) {
                size_t next = end;
                while (next < len && path[next] != '/')
                        next++;
                bool last = next == len;
                char saved = path[next];
                _cleanup_close_ int fd = -EBADF;
                path[next] = '\0';
                int r = open_in_root(root_fd, path, 0, &fd);
                if (r == -ENOENT) {
                        _cleanup_close_ int parent = -EBADF;
                        char *slash = strrchr(path, '/');
                        const char *name = slash ? slash + 1 : path;
                        if (slash)
                                *slash = '\0';
                        r = open_in_root(root_fd, slash ? path : "", O_DIRECTORY, &parent);
                        if (slash)
                                *slash = '/';
                        if (r == 0) {
                                if (!last || dir) {
                                        if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST)
                                                r = -errno;
                                } else {
                                        int f = openat(parent, name,
                                                       O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC |
                                                               O_NOFOLLOW | O_NOCTTY,
                                                       0644);
                                        if (f >= 0)
                                                close(f);
                                        else if (errno != EEXIST)
                                                r = -errno;
                                }
                        }
                        if (r == 0)
                                r = open_in_root(root_fd, path, 0, &fd);
                        if (r < 0)
                                return util_err_set(err, r, "create mount point '/%s'", path);
                } else if (r < 0) {
                        return util_err_set(err, r, "mount point '/%s'", path);
                }
                path[next] = saved;
                if (last) {
                        *ret_fd = TAKE_FD(fd);
                        return 0;
                }
                end = next + 1;
        }
        /* rel is "": the tree's root itself. */
        int r = open_in_root(root_fd, "", 0, ret_fd);
        return r < 0 ? util_err_set(err, r, "open the tree's root") : 0;
}

struct child {
        char *path; /* absolute, below `from` */
        bool dir;
};

/* The topmost mount at `abs` in `tb`: one no other mount at `abs` sits on. */
static struct libmnt_fs *topmost(struct libmnt_table *tb, const char *abs)
{
        struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
        struct libmnt_fs *fs, *top = NULL;

        if (!it)
                return NULL;
        while (mnt_table_next_fs(tb, it, &fs) == 0) {
                const char *t = mnt_fs_get_target(fs);
                if (!t || strcmp(t, abs) != 0)
                        continue;
                if (!top || mnt_fs_get_parent_id(fs) == mnt_fs_get_id(top))
                        top = fs;
        }
        mnt_free_iter(it);
        return top;
}

/* The direct children of the topmost mount at `abs`, in mountinfo (creation)
 * order. */
static int children_of(const char *abs, struct child **ret, size_t *ret_n, struct util_err *err)
{
        _cleanup_(mnt_unref_tablep) struct libmnt_table *tb = mnt_new_table();
        struct libmnt_iter *it = NULL;
        struct libmnt_fs *fs, *top;
        struct child *v = NULL;
        size_t n = 0, prefix = strlen(abs);
        int r = 0;

        if (!tb)
                return util_err_set(err, ENOMEM, "mountinfo");
        r = mnt_table_parse_file(tb, "/proc/self/mountinfo");
        if (r < 0)
                return util_err_set(err, -r, "read '/proc/self/mountinfo'");
        top = topmost(tb, abs);
        if (!top)
                return util_err_setx(err, ENOENT, "'%s' is not a mount point", abs);
        it = mnt_new_iter(MNT_ITER_FORWARD);
        if (!it)
                return util_err_set(err, ENOMEM, "mountinfo");
        r = 0;
        while (r == 0 && mnt_table_next_fs(tb, it, &fs) == 0) {
                const char *t = mnt_fs_get_target(fs);
                struct stat st;
                if (mnt_fs_get_parent_id(fs) != mnt_fs_get_id(top) || !t)
                        continue;
                /* A child of `abs` is below it (also when `abs` is "/"). */
                if (strncmp(t, abs, prefix) != 0 ||
                    (t[prefix] != '/' && !(prefix == 1 && abs[0] == '/')))
                        continue;
                struct child *w = realloc(v, (n + 1) * sizeof(*v));
                if (!w) {
                        r = util_err_set(err, ENOMEM, "mountinfo");
                        break;
                }
                v = w;
                v[n].path = strdup(t);
                v[n].dir = stat(t, &st) == 0 && S_ISDIR(st.st_mode);
                if (!v[n].path) {
                        r = util_err_set(err, ENOMEM, "mountinfo");
                        break;
                }
                n++;
        }
        mnt_free_iter(it);
        if (r < 0) {
                for (size_t k = 0; k < n; k++)
                        free(v[k].path);
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int mount_move_children(const char *from, const char *to, struct util_err *err)
{
        _cleanup_free_ char *abs = realpath(from, NULL);
        _cleanup_close_ int root_fd = -EBADF;
        struct child *v = NULL;
        size_t n = 0, prefix;
        int r;

        if (!abs)
                return util_err_set(err, errno, "'%s'", from);
        root_fd = open(to, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                return util_err_set(err, errno, "open '%s'", to);
        r = children_of(abs, &v, &n, err);
        if (r < 0)
                return r;
        prefix = strcmp(abs, "/") == 0 ? 0 : strlen(abs);
        for (size_t k = 0; k < n && r >= 0; k++) {
                _cleanup_close_ int point = -EBADF;
                const char *rel = v[k].path + prefix + 1;
                r = mkpoint(root_fd, rel, v[k].dir, &point, err);
                if (r >= 0 &&
                    move_mount(AT_FDCWD, v[k].path, point, "", MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        r = util_err_set(err, errno, "move mount '%s' to '/%s' of '%s'", v[k].path,
                                         rel, to);
                util_debug(UTIL_DBG_MOUNT, "moved %s to %s/%s", v[k].path, to, rel);
        }
        for (size_t k = 0; k < n; k++)
                free(v[k].path);
        free(v);
        return r < 0 ? r : (int)n;
}
