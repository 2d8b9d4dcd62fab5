/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Privileged tests of moving mount trees (mount/move.c), what the OCI hook
 * does inside a container's mount namespace: every direct child of a mount
 * (with what sits below it) moves into another tree at the same relative
 * path, missing mount points are created (directories, files), symlinks in
 * the destination are resolved inside it, read-only applies to the top
 * mount only, and a detached tree attaches.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "mount/mount.h"
#include "test/priv/priv.h"

static void move_setup(void)
{
        priv_setup();
        priv_private_mount_ns();
}

TestSuite(move, .init = move_setup, .fini = priv_teardown, .timeout = 60);

static void mkdir_p(const char *p)
{
        char tmp[1024];
        snprintf(tmp, sizeof(tmp), "%s", p);
        for (char *s = tmp + 1; *s; s++)
                if (*s == '/') {
                        *s = '\0';
                        (void)mkdir(tmp, 0755);
                        *s = '/';
                }
        cr_assert(mkdir(tmp, 0755) == 0 || errno == EEXIST, "mkdir %s: %m", p);
}

static void touch(const char *p)
{
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0, "create %s: %m", p);
        close(fd);
}

static void tmpfs_at(const char *p)
{
        mkdir_p(p);
        cr_assert_eq(mount("tmpfs", p, "tmpfs", 0, "size=1m"), 0, "tmpfs on %s: %m", p);
}

static bool is_mountpoint(const char *p)
{
        return mount_is_mountpoint(p, NULL) == 1;
}

/* S: a tmpfs with children a (holding a/sub), deep/x/y, and a file bind f;
 * T: an empty tmpfs. */
static void fixture(const char **ret_s, const char **ret_t)
{
        const char *s = priv_keep(priv_path("%s/src", priv_tmpdir()));
        const char *t = priv_keep(priv_path("%s/tree", priv_tmpdir()));
        const char *file = priv_keep(priv_path("%s/afile", priv_tmpdir()));

        tmpfs_at(s);
        tmpfs_at(t);
        tmpfs_at(priv_path("%s/a", s));
        tmpfs_at(priv_path("%s/a/sub", s));
        tmpfs_at(priv_path("%s/deep/x/y", s));
        touch(file);
        touch(priv_path("%s/f", s));
        cr_assert_eq(mount(file, priv_path("%s/f", s), NULL, MS_BIND, NULL), 0, "bind: %m");
        *ret_s = s;
        *ret_t = t;
}

Test(move, children_with_their_submounts)
{
        struct util_err err = {0};
        const char *s, *t;
        struct stat st;

        priv_require_loop();
        fixture(&s, &t);
        int n = mount_move_children(s, t, &err);
        cr_assert_eq(n, 3, "moved %d: %s", n, err.msg);
        cr_assert(is_mountpoint(priv_path("%s/a", t)));
        cr_assert(is_mountpoint(priv_path("%s/a/sub", t)), "a grandchild moves along");
        cr_assert(is_mountpoint(priv_path("%s/deep/x/y", t)), "missing directories are made");
        cr_assert(is_mountpoint(priv_path("%s/f", t)));
        cr_assert_eq(stat(priv_path("%s/f", t), &st), 0);
        cr_assert(S_ISREG(st.st_mode), "a file mount gets a file mount point");
        cr_assert(!is_mountpoint(priv_path("%s/a", s)), "nothing stays behind");
        cr_assert(!is_mountpoint(priv_path("%s/f", s)));
        cr_assert(is_mountpoint(s), "the source itself stays");
}

Test(move, symlinks_resolve_inside_the_tree)
{
        struct util_err err = {0};
        const char *s, *t;
        const char *host = priv_keep(priv_path("%s/host", priv_tmpdir()));

        priv_require_loop();
        fixture(&s, &t);
        mkdir_p(host);
        /* The image's /etc is an absolute symlink naming a path that exists
         * both on the host and in the image. */
        cr_assert_eq(symlink(host, priv_path("%s/etc", t)), 0, "symlink: %m");
        mkdir_p(priv_path("%s%s", t, host));
        tmpfs_at(priv_path("%s/etc/conf", s));
        int n = mount_move_children(s, t, &err);
        cr_assert_eq(n, 4, "moved %d: %s", n, err.msg);
        cr_assert(access(priv_path("%s/conf", host), F_OK) < 0 && errno == ENOENT,
                  "a mount point was made on the host");
        cr_assert(is_mountpoint(priv_path("%s%s/conf", t, host)),
                  "the symlink resolves inside the tree");
}

Test(move, readonly_top_only_then_onto_target)
{
        struct util_err err = {0};
        const char *s, *t;

        priv_require_loop();
        fixture(&s, &t);
        cr_assert_geq(mount_move_children(s, t, &err), 0, "%s", err.msg);
        cr_assert_eq(mount_set_readonly(t, &err), 0, "%s", err.msg);
        int fd = open(priv_path("%s/new", t), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        cr_assert(fd < 0 && errno == EROFS, "the top mount is read-only");
        touch(priv_path("%s/a/still-writable", t));
        /* The whole tree onto the source, as onto a container's root. */
        cr_assert_eq(mount_move(t, s, &err), 0, "%s", err.msg);
        cr_assert(is_mountpoint(priv_path("%s/a/sub", s)));
        cr_assert_eq(access(priv_path("%s/a/still-writable", s), F_OK), 0);
        cr_assert(!is_mountpoint(t));
}

Test(move, attach_a_detached_tree)
{
        struct util_err err = {0};
        const char *s, *t;

        priv_require_loop();
        fixture(&s, &t);
        int fd = open_tree(AT_FDCWD, s, OPEN_TREE_CLONE | AT_RECURSIVE | OPEN_TREE_CLOEXEC);
        cr_assert_geq(fd, 0, "open_tree: %m");
        const char *at = priv_keep(priv_path("%s/at", priv_tmpdir()));
        mkdir_p(at);
        cr_assert_eq(mount_make_containing_private(at, &err), 0, "%s", err.msg);
        cr_assert_eq(mount_attach(fd, at, &err), 0, "%s", err.msg);
        close(fd);
        cr_assert(is_mountpoint(at));
        cr_assert(is_mountpoint(priv_path("%s/a/sub", at)), "recursive clone attached whole");
}

/* What the hook needs in a container whose rootfsPropagation is shared: a
 * mount under the staging point must not show up at the peers of the mount
 * that contains it. */
Test(move, containing_mount_made_private)
{
        struct util_err err = {0};
        const char *a = priv_keep(priv_path("%s/shared-a", priv_tmpdir()));
        const char *b = priv_keep(priv_path("%s/shared-b", priv_tmpdir()));

        priv_require_loop();
        tmpfs_at(a);
        mkdir_p(b);
        cr_assert_eq(mount(NULL, a, NULL, MS_SHARED, NULL), 0, "make %s shared: %m", a);
        cr_assert_eq(mount(a, b, NULL, MS_BIND, NULL), 0, "bind %s: %m", a);
        mkdir_p(priv_path("%s/d/before", a));
        mkdir_p(priv_path("%s/d/at", a));
        /* The control: while shared, a mount below a shows up in b. */
        tmpfs_at(priv_path("%s/d/before", a));
        cr_assert(is_mountpoint(priv_path("%s/d/before", b)), "a and b are peers");

        cr_assert_eq(mount_make_containing_private(priv_path("%s/d/at", a), &err), 0, "%s",
                     err.msg);
        tmpfs_at(priv_path("%s/d/at", a));
        cr_assert(is_mountpoint(priv_path("%s/d/at", a)));
        cr_assert(!is_mountpoint(priv_path("%s/d/at", b)), "the mount propagated to a's peer");
        /* The containing mount is a's, not one below or above it: b stays
         * shared with nothing, the mount made before stays in both. */
        cr_assert(is_mountpoint(priv_path("%s/d/before", b)));
}

Test(move, not_a_mount_point)
{
        struct util_err err = {0};
        const char *d = priv_keep(priv_path("%s/plain", priv_tmpdir()));
        const char *t = priv_keep(priv_path("%s/t2", priv_tmpdir()));

        priv_require_loop();
        mkdir_p(d);
        tmpfs_at(t);
        /* A directory that is not a mount point: its containing mount's
         * children are not its own. */
        int n = mount_move_children(d, t, &err);
        cr_assert_eq(n, -ENOENT, "got %d", n);
        cr_assert(strstr(err.msg, "not a mount point"), "%s", err.msg);
}
