/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Privileged tests of idmap/ on the real kernel: the user namespace really
 * carries the mappings (read back from inside it), the kernel takes the
 * largest map idmap_map_check lets through, no fd and no child process is
 * left over, the helper child holds no fd of ours, what an idmapped mount
 * shows and how writes through it land on disk, recursive clones, the
 * kernel's refusals, and the user-namespace cache (also under threads).
 *
 * Every test skips visibly when the kernel has no idmapped mounts, and the
 * mount tests skip when the filesystem of /var/tmp cannot be idmapped.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/nsfs.h>

#include "idmap/idmap.h"
#include "test/priv/priv.h"

TestSuite(idmap, .init = priv_setup, .fini = priv_teardown, .timeout = 120);

static void require_idmap(void)
{
        int s = idmap_feature_supported();
        if (s == 0)
                cr_skip_test("the kernel has no idmapped mounts (mount_setattr MOUNT_ATTR_IDMAP)");
        if (s < 0)
                cr_skip_test("idmapped mounts could not be probed (no CAP_SYS_ADMIN?)");
}

static struct idmap_map map(const char *s)
{
        struct idmap_map m;
        struct util_err err = {0};
        cr_assert_eq(idmap_parse(s, "test map", &m, &err), 0, "%s", err.msg);
        return m;
}

static int userns(const char *uid, const char *gid)
{
        struct idmap_map u = map(uid), g = map(gid);
        struct util_err err = {0};
        int fd = -1;
        cr_assert_eq(idmap_userns_new(&u, &g, &fd, &err), 0, "%s", err.msg);
        cr_assert_geq(fd, 0);
        return fd;
}

/* Open descriptors of this process (the directory's own fd not counted). */
static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        cr_assert_not_null(d, "opendir /proc/self/fd: %m");
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;
}

/* Whether any thread of this process has a child (zombies included). */
static bool have_children(void)
{
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        bool any = false;

        cr_assert_not_null(d);
        while ((de = readdir(d))) {
                char path[300], buf[256];
                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/proc/self/task/%s/children", de->d_name);
                if (util_read_small_file(path, buf, sizeof(buf)) > 0 && buf[0] != ' ')
                        any = true;
        }
        closedir(d);
        return any;
}

/* The uid_map/gid_map of the namespace, as "c:h:s,...", read by a child that
 * joined it: /proc/self/<file> inside the namespace shows the ranges relative
 * to the parent namespace, i.e. exactly what was written. */
static void read_ns_map(int ns_fd, const char *file, char *out, size_t size)
{
        int p[2];
        char buf[16384];
        ssize_t n, len = 0;
        int status;

        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        /* No criterion assertion may run in a forked child: it would report
         * over the worker's socket and block forever (--full-stats). */
        pid_t pid = fork();
        if (pid == 0) {
                char path[64];
                if (setns(ns_fd, CLONE_NEWUSER) < 0)
                        _exit(10);
                snprintf(path, sizeof(path), "/proc/self/%s", file);
                ssize_t r = util_read_small_file(path, buf, sizeof(buf));
                if (r < 0)
                        _exit(11);
                if (write(p[1], buf, (size_t)r) != r)
                        _exit(12);
                _exit(0);
        }
        cr_assert_gt(pid, 0, "fork: %m");
        close(p[1]);
        while ((n = read(p[0], buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
                len += n;
        close(p[0]);
        buf[len] = '\0';
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader child status %d", status);

        size_t o = 0;
        out[0] = '\0';
        char *save = NULL;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                unsigned c, h, s;
                cr_assert_eq(sscanf(line, "%u %u %u", &c, &h, &s), 3, "line '%s'", line);
                o += (size_t)snprintf(out + o, size - o, "%s%u:%u:%u", o ? "," : "", c, h, s);
        }
}

Test(idmap, probe_is_stable)
{
        require_idmap();
        cr_expect_eq(idmap_feature_supported(), 1);
        cr_expect_eq(idmap_feature_supported(), 1, "the answer is remembered");
}

Test(idmap, userns_carries_the_mappings)
{
        require_idmap();
        int fd = userns("0:100000:65536,65536:300000:1000", "0:200000:65536");
        char got[512];

        cr_expect_eq(ioctl(fd, NS_GET_NSTYPE), CLONE_NEWUSER, "a user namespace fd");
        cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC, "O_CLOEXEC");
        read_ns_map(fd, "uid_map", got, sizeof(got));
        cr_expect_str_eq(got, "0:100000:65536,65536:300000:1000");
        read_ns_map(fd, "gid_map", got, sizeof(got));
        cr_expect_str_eq(got, "0:200000:65536");
        close(fd);
}

Test(idmap, kernel_takes_the_largest_checked_map)
{
        require_idmap();
        /* 340 ranges "i:1000+i:1": accepted by idmap_map_check (text < page). */
        size_t size = IDMAP_MAX_RANGES * 40, o = 0;
        char *s = malloc(size), *got = malloc(size);
        cr_assert(s && got);
        for (size_t i = 0; i < IDMAP_MAX_RANGES; i++)
                o += (size_t)snprintf(s + o, size - o, "%s%zu:%zu:1", i ? "," : "", i, 1000 + i);
        int fd = userns(s, "0:100000:65536");
        read_ns_map(fd, "uid_map", got, size);
        /* The kernel keeps ranges sorted past 5 extents; ours are sorted already. */
        cr_expect_str_eq(got, s);
        close(fd);
        free(s);
        free(got);
}

Test(idmap, no_fd_and_no_child_left)
{
        require_idmap();
        int before = count_fds();

        int fd = userns("0:100000:65536", "0:100000:65536");
        cr_expect_eq(count_fds(), before + 1, "exactly the namespace fd is new");
        cr_expect_not(have_children(), "the helper is reaped");
        errno = 0;
        cr_expect_eq(waitpid(-1, NULL, WNOHANG | __WALL), -1);
        cr_expect_eq(errno, ECHILD, "no child at all: %m");
        close(fd);

        for (int i = 0; i < 20; i++)
                close(userns("0:100000:65536", "0:100000:65536"));
        cr_expect_eq(count_fds(), before);
        cr_expect_not(have_children());
}

Test(idmap, invalid_map_makes_no_helper)
{
        require_idmap();
        struct idmap_map u = map("0:100000:65536"), g = map("0:100000:65536");
        struct util_err err = {0};
        int before = count_fds(), fd = -42;

        u.r[u.n++] = (struct idmap_range){.container = 10, .host = 500000, .size = 1};
        cr_expect_eq(idmap_userns_new(&u, &g, &fd, &err), -EINVAL);
        cr_expect(strstr(err.msg, "create user namespace: uid map: ranges 0 (0:100000:65536) "
                                  "and 1 (10:500000:1) overlap on the container side"),
                  "%s", err.msg);
        cr_expect_eq(fd, -42, "ret_fd untouched on failure");
        cr_expect_eq(count_fds(), before);
        cr_expect_not(have_children());
}

/* ---- the helper child holds nothing of ours ------------------------------ */

struct observer {
        pid_t parent_tid;
        atomic_bool stop;
        atomic_int fds; /* > 0 once observed */
        atomic_bool only_socket;
        char other[512]; /* the first fd that is no socket (set before fds) */
};

/* Watches for the helper child of `parent_tid`. The parent writes uid_map
 * only after the helper said "ready" (after closing everything else), so a
 * helper whose uid_map is non-empty must hold exactly its socket. */
static void *observe(void *arg)
{
        struct observer *o = arg;
        char path[128], buf[256];

        snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)o->parent_tid);
        while (!atomic_load(&o->stop) && atomic_load(&o->fds) == 0) {
                int pid;
                if (util_read_small_file(path, buf, sizeof(buf)) <= 0 ||
                    sscanf(buf, "%d", &pid) != 1)
                        continue;
                char p2[64];
                snprintf(p2, sizeof(p2), "/proc/%d/uid_map", pid);
                if (util_read_small_file(p2, buf, sizeof(buf)) <= 0)
                        continue; /* not written yet, or gone */
                snprintf(p2, sizeof(p2), "/proc/%d/fd", pid);
                DIR *d = opendir(p2);
                if (!d)
                        continue;
                int n = 0;
                bool sock = true, vanished = false;
                struct dirent *de;
                while ((de = readdir(d))) {
                        char l[300], target[128];
                        if (de->d_name[0] == '.')
                                continue;
                        n++;
                        snprintf(l, sizeof(l), "/proc/%d/fd/%s", pid, de->d_name);
                        ssize_t len = readlink(l, target, sizeof(target) - 1);
                        if (len <= 0) {
                                /* The helper exited (or closed the fd)
                                 * between the listing and the readlink:
                                 * this look proves nothing either way. */
                                vanished = true;
                                break;
                        }
                        target[len] = '\0';
                        if (strncmp(target, "socket:", 7) != 0 && sock) {
                                sock = false;
                                snprintf(o->other, sizeof(o->other), "fd %s -> %s", de->d_name,
                                         target);
                        }
                }
                closedir(d);
                if (n > 0 && !vanished) { /* 0: it exited between the reads */
                        atomic_store(&o->only_socket, sock);
                        atomic_store(&o->fds, n);
                }
        }
        return NULL;
}

Test(idmap, helper_child_holds_no_fd_of_ours)
{
        require_idmap();
        char path[64];
        struct observer o = {.parent_tid = (pid_t)syscall(SYS_gettid)};
        pthread_t t;
        int tries = 0;

        snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)o.parent_tid);
        if (access(path, R_OK) != 0)
                cr_skip_test("no %s (kernel without CONFIG_PROC_CHILDREN)", path);

        /* Inheritable fds a careless fork would hand to the helper. */
        int marker1 = open("/dev/null", O_RDONLY);
        int marker2 = open(priv_tmpdir(), O_RDONLY | O_DIRECTORY);
        cr_assert(marker1 >= 0 && marker2 >= 0);

        cr_assert_eq(pthread_create(&t, NULL, observe, &o), 0);
        for (; tries < 2000 && atomic_load(&o.fds) == 0; tries++)
                close(userns("0:100000:65536", "0:100000:65536"));
        atomic_store(&o.stop, true);
        pthread_join(t, NULL);
        close(marker1);
        close(marker2);

        if (atomic_load(&o.fds) == 0)
                cr_skip_test("the helper lived too briefly to be observed in %d tries", tries);
        cr_expect_eq(atomic_load(&o.fds), 1, "the helper holds %d fds, want only its socket",
                     atomic_load(&o.fds));
        cr_expect(atomic_load(&o.only_socket), "the one fd is its socket, not %s", o.other);
        cr_log_info("helper observed after %d tries", tries);
}

/* ---- idmapped mounts ----------------------------------------------------- */

struct path {
        char s[512];
};

/* "dir/name", by value: use it inside one expression (path_at(a, "x").s). */
static struct path path_at(const char *dir, const char *name)
{
        struct path p;
        int n = snprintf(p.s, sizeof(p.s), "%s/%s", dir, name);
        cr_assert(n > 0 && (size_t)n < sizeof(p.s), "path too long");
        return p;
}

static void touch(const char *path, uid_t uid, gid_t gid)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0, "create %s: %m", path);
        close(fd);
        cr_assert_eq(chown(path, uid, gid), 0, "chown %s: %m", path);
}

static void expect_owner(const char *path, uid_t uid, gid_t gid)
{
        struct stat st;
        cr_assert_eq(stat(path, &st), 0, "stat %s: %m", path);
        cr_expect(st.st_uid == uid && st.st_gid == gid, "%s: %u:%u, want %u:%u", path, st.st_uid,
                  st.st_gid, uid, gid);
}

static unsigned overflow_id(const char *file)
{
        uint64_t v = 65534;
        (void)util_read_u64_file(file, &v);
        return (unsigned)v;
}

/* Attaches a detached mount at `target` and closes the fd. */
static void attach(int mfd, const char *target)
{
        cr_assert_eq(syscall(SYS_move_mount, (long)mfd, "", (long)AT_FDCWD, target,
                             (long)MOVE_MOUNT_F_EMPTY_PATH),
                     0, "move_mount to %s: %m", target);
        close(mfd);
}

/* idmap_clone, skipping when the filesystem cannot be idmapped. */
static int clone_or_skip(int dirfd, const char *path, int ns, bool recursive)
{
        struct util_err err = {0};
        int fd = -1;
        int r = idmap_clone(dirfd, path, ns, recursive, &fd, &err);
        if (r == -EOPNOTSUPP)
                cr_skip_test("cannot idmap here: %s", err.msg);
        cr_assert_eq(r, 0, "%s", err.msg);
        return fd;
}

/* A world-searchable test directory with src/ and tgt/: a caller whose fsuid
 * is not 0 has no CAP_DAC_OVERRIDE, and mkdtemp made the directory 0700. */
struct fixture {
        const char *dir;
        char src[512], tgt[512];
};

static void mount_fixture(struct fixture *fx)
{
        fx->dir = priv_tmpdir();
        priv_private_mount_ns();
        cr_assert_eq(chmod(fx->dir, 0755), 0);
        snprintf(fx->src, sizeof(fx->src), "%s/src", fx->dir);
        snprintf(fx->tgt, sizeof(fx->tgt), "%s/tgt", fx->dir);
        cr_assert_eq(mkdir(fx->src, 0755), 0);
        cr_assert_eq(mkdir(fx->tgt, 0755), 0);
}

/* fork, setfsgid/setfsuid(id), create `path`; returns 0 or the errno. */
static int create_as(const char *path, uid_t id)
{
        int status;
        pid_t pid = fork(); /* no assertions in the child: see read_ns_map() */
        if (pid == 0) {
                setfsgid(id);
                setfsuid(id);
                if ((uid_t)setfsuid((uid_t)-1) != id)
                        _exit(200);
                int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                _exit(fd < 0 ? errno : 0);
        }
        cr_assert_gt(pid, 0, "fork: %m");
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 200, "setfsuid(%u) failed", id);
        return WEXITSTATUS(status);
}

Test(idmap, idmapped_clone_shifts_ownership_and_writes)
{
        require_idmap();
        struct fixture fx;
        mount_fixture(&fx);
        const char *src = fx.src, *tgt = fx.tgt;
        unsigned ovu = overflow_id("/proc/sys/kernel/overflowuid");
        unsigned ovg = overflow_id("/proc/sys/kernel/overflowgid");

        touch(path_at(src, "root").s, 0, 0);
        touch(path_at(src, "k100000").s, 100000, 100000);
        touch(path_at(src, "k5").s, 5, 6);

        int ns = userns("0:100000:65536", "0:100000:65536");
        attach(clone_or_skip(AT_FDCWD, src, ns, false), tgt);

        /*
         * Reading: an on-disk id k counts as an id inside the namespace and
         * shows as what the namespace maps it to on the host: on disk 0 ->
         * 100000, 5 -> 100005. This is how a container in that namespace
         * sees its rootfs: on disk 0 = host 100000 = container 0. An on-disk
         * id outside the container side (here 100000 >= 65536) maps to
         * nothing and shows as the overflow id (65534).
         */
        expect_owner(path_at(tgt, "root").s, 100000, 100000);
        expect_owner(path_at(tgt, "k5").s, 100005, 100006);
        expect_owner(path_at(tgt, "k100000").s, ovu, ovg);
        expect_owner(tgt, 100000, 100000);
        /* No inode changed: the source still shows the ids on disk. */
        expect_owner(path_at(src, "root").s, 0, 0);
        expect_owner(path_at(src, "k100000").s, 100000, 100000);

        /*
         * Writing: the caller's fsuid is mapped back the other way. Host root
         * (0) is not in the namespace's host side [100000, 165536), so it
         * cannot be written to disk: EOVERFLOW, for files and directories.
         */
        errno = 0;
        cr_expect_lt(open(path_at(tgt, "by-root").s, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), 0);
        cr_expect_eq(errno, EOVERFLOW, "create as host root: %m");
        errno = 0;
        cr_expect_lt(mkdir(path_at(tgt, "dir-by-root").s, 0755), 0);
        cr_expect_eq(errno, EOVERFLOW, "mkdir as host root: %m");
        cr_expect_neq(access(path_at(src, "by-root").s, F_OK), 0, "nothing was created");

        /* fsuid/fsgid 100000 = container 0: lands on disk as 0:0. */
        cr_expect_eq(create_as(path_at(tgt, "by-100000").s, 100000), 0, "create as fsuid 100000");
        expect_owner(path_at(src, "by-100000").s, 0, 0);
        expect_owner(path_at(tgt, "by-100000").s, 100000, 100000);
        /* fsuid 100007 = container 7: on disk 7. */
        cr_expect_eq(create_as(path_at(tgt, "by-100007").s, 100007), EACCES,
                     "container 7 may not write a directory owned by container 0 (0755)");
        /* fsuid 165536 is just outside the mapping: EOVERFLOW. */
        cr_expect_eq(create_as(path_at(tgt, "by-165536").s, 165536), EOVERFLOW);

        cr_assert_eq(umount2(tgt, MNT_DETACH), 0);
        close(ns);
        for (const char *const *f =
                     (const char *const[]){"root", "k100000", "k5", "by-100000", NULL};
             *f; f++)
                cr_expect_eq(unlink(path_at(src, *f).s), 0, "unlink %s: %m", *f);
}

Test(idmap, clone_by_dirfd_and_empty_path)
{
        require_idmap();
        struct fixture fx;
        mount_fixture(&fx);
        const char *src = fx.src, *tgt = fx.tgt;

        touch(path_at(src, "f").s, 1, 2);
        int ns = userns("0:200000:1000", "0:300000:1000");
        int dfd = open(src, O_PATH | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(dfd, 0);
        attach(clone_or_skip(dfd, "", ns, false), tgt);
        close(dfd);
        /* uid and gid maps apply separately. */
        expect_owner(path_at(tgt, "f").s, 200001, 300002);
        cr_assert_eq(umount2(tgt, MNT_DETACH), 0);
        close(ns);
        cr_expect_eq(unlink(path_at(src, "f").s), 0);
}

Test(idmap, recursive_clone_covers_submounts)
{
        require_idmap();
        struct fixture fx;
        mount_fixture(&fx);
        const char *src = fx.src, *tgt = fx.tgt;
        struct path subp = path_at(src, "sub");
        const char *sub = subp.s;
        struct stat st;

        cr_assert_eq(mkdir(sub, 0755), 0);
        cr_assert_eq(mount("tmpfs", sub, "tmpfs", 0, "mode=0755,size=1m"), 0, "tmpfs: %m");
        touch(path_at(sub, "in-tmpfs").s, 0, 0);
        int ns = userns("0:100000:65536", "0:100000:65536");

        /* Without AT_RECURSIVE the clone holds src only: sub/ is the empty
         * mountpoint directory of the underlying filesystem. */
        attach(clone_or_skip(AT_FDCWD, src, ns, false), tgt);
        cr_expect_neq(stat(path_at(tgt, "sub/in-tmpfs").s, &st), 0, "no submount");
        cr_assert_eq(umount2(tgt, MNT_DETACH), 0);

        /* With it, the tmpfs comes along and is idmapped too (tmpfs can be
         * idmapped since Linux 6.3). */
        attach(clone_or_skip(AT_FDCWD, src, ns, true), tgt);
        expect_owner(path_at(tgt, "sub/in-tmpfs").s, 100000, 100000);
        expect_owner(path_at(tgt, "sub").s, 100000, 100000);
        cr_assert_eq(umount2(tgt, MNT_DETACH), 0);
        cr_assert_eq(umount2(sub, MNT_DETACH), 0);
        cr_expect_eq(rmdir(sub), 0);
        close(ns);
}

Test(idmap, refusals)
{
        require_idmap();
        struct fixture fx;
        mount_fixture(&fx);
        const char *dir = fx.dir, *src = fx.src;
        struct util_err err = {0};
        int ns = userns("0:100000:65536", "0:100000:65536");
        int fd = 12345;

        /* A path that does not exist: named in the error, output untouched. */
        cr_expect_eq(idmap_clone(AT_FDCWD, path_at(dir, "nope").s, ns, false, &fd, &err), -ENOENT);
        cr_expect(strstr(err.msg, "idmap '") && strstr(err.msg, "/nope': open_tree"), "%s",
                  err.msg);
        cr_expect_eq(fd, 12345);

        /* proc does not allow idmapped mounts (no FS_ALLOW_IDMAP): EINVAL
         * from the kernel, EOPNOTSUPP from us. */
        int proc = (int)syscall(SYS_open_tree, (long)AT_FDCWD, "/proc",
                                (long)(OPEN_TREE_CLONE | O_CLOEXEC));
        cr_assert_geq(proc, 0, "open_tree /proc: %m");
        util_err_clear(&err);
        cr_expect_eq(idmap_mount_apply(proc, ns, false, &err), -EOPNOTSUPP);
        cr_expect(strstr(err.msg, "cannot be idmapped"), "%s", err.msg);
        close(proc);
        util_err_clear(&err);
        cr_expect_eq(idmap_clone(AT_FDCWD, "/proc", ns, false, &fd, &err), -EOPNOTSUPP);
        cr_expect(strstr(err.msg, "idmap '/proc': mount_setattr(MOUNT_ATTR_IDMAP)"), "%s", err.msg);
        cr_expect_eq(fd, 12345);

        /* fds that are not user namespaces. */
        int m = (int)syscall(SYS_open_tree, (long)AT_FDCWD, src,
                             (long)(OPEN_TREE_CLONE | O_CLOEXEC));
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int net = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        cr_assert(m >= 0 && null >= 0 && net >= 0);
        util_err_clear(&err);
        cr_expect_eq(idmap_mount_apply(m, null, false, &err), -EINVAL);
        cr_expect(strstr(err.msg, "is not a user namespace"), "%s", err.msg);
        util_err_clear(&err);
        cr_expect_eq(idmap_mount_apply(m, net, false, &err), -EINVAL);
        cr_expect(strstr(err.msg, "not a user namespace"), "%s", err.msg);
        util_err_clear(&err);
        cr_expect_eq(idmap_mount_apply(m, -1, false, &err), -EBADF);

        /* Once is fine; a second idmapping of the same mount is refused
         * (EINVAL on 6.18 — reported as EOPNOTSUPP, see attr.c). */
        util_err_clear(&err);
        cr_expect_eq(idmap_mount_apply(m, ns, false, &err), 0, "%s", err.msg);
        cr_expect_eq(err.errnum, 0);
        cr_expect_lt(idmap_mount_apply(m, ns, false, &err), 0);
        cr_expect_gt(err.errnum, 0);

        /* The mount this test process stands on is attached: refused. */
        int attached = (int)syscall(SYS_open_tree, (long)AT_FDCWD, src, (long)O_CLOEXEC);
        cr_assert_geq(attached, 0);
        util_err_clear(&err);
        cr_expect_lt(idmap_mount_apply(attached, ns, false, &err), 0);
        cr_expect(strstr(err.msg, "mount_setattr(MOUNT_ATTR_IDMAP)"), "%s", err.msg);

        close(attached);
        close(m);
        close(null);
        close(net);
        close(ns);
}

/* ---- the cache ------------------------------------------------------------ */

Test(idmap, cache_reuses_per_pair)
{
        require_idmap();
        struct idmap_cache *c = NULL;
        struct util_err err = {0};
        struct idmap_map a = map("0:100000:65536"), b = map("0:200000:65536");
        int before = count_fds(), fd1 = -1, fd2 = -1, fd3 = -1, fd4 = -1;
        bool cached = true;

        cr_assert_eq(idmap_cache_new(&c, &err), 0, "%s", err.msg);
        cr_expect_eq(idmap_cache_size(c), 0);

        cr_assert_eq(idmap_cache_get(c, &a, &a, &fd1, &cached, &err), 0, "%s", err.msg);
        cr_expect_not(cached, "first get creates");
        cr_assert_eq(idmap_cache_get(c, &a, &a, &fd2, &cached, &err), 0, "%s", err.msg);
        cr_expect(cached, "second get reuses");
        cr_expect_eq(fd1, fd2, "same fd for the same pair");
        cr_expect_eq(idmap_cache_size(c), 1);

        /* Same uid map, other gid map: another namespace. */
        cr_assert_eq(idmap_cache_get(c, &a, &b, &fd3, &cached, &err), 0, "%s", err.msg);
        cr_expect_not(cached);
        cr_expect_neq(fd3, fd1);
        cr_assert_eq(idmap_cache_get(c, &b, &a, &fd4, NULL, &err), 0, "%s", err.msg);
        cr_expect(fd4 != fd1 && fd4 != fd3, "(uid, gid) is the key, not the set");
        cr_expect_eq(idmap_cache_size(c), 3);
        cr_expect_eq(count_fds(), before + 3);

        char got[128];
        read_ns_map(fd3, "gid_map", got, sizeof(got));
        cr_expect_str_eq(got, "0:200000:65536");

        /* A refused mapping leaves the cache as it was. */
        struct idmap_map bad = a;
        bad.r[0].size = 0;
        int fd5 = -7;
        cr_expect_eq(idmap_cache_get(c, &bad, &a, &fd5, &cached, &err), -EINVAL);
        cr_expect_eq(fd5, -7);
        cr_expect_eq(idmap_cache_size(c), 3);

        c = idmap_cache_free(c);
        cr_expect_null(c);
        cr_expect_eq(count_fds(), before, "the cache closed its fds");
        cr_expect_eq(fcntl(fd1, F_GETFD), -1);
        cr_expect_not(have_children());
        cr_expect_null(idmap_cache_free(NULL));
}

struct cache_worker {
        struct idmap_cache *c;
        const struct idmap_map *m;
        int fd;
        int r;
};

static void *cache_worker(void *arg)
{
        struct cache_worker *w = arg;
        for (int i = 0; i < 20 && w->r == 0; i++)
                w->r = idmap_cache_get(w->c, w->m, w->m, &w->fd, NULL, NULL);
        return NULL;
}

Test(idmap, cache_threads_share_one_namespace)
{
        require_idmap();
        _cleanup_(idmap_cache_freep) struct idmap_cache *c = NULL;
        struct idmap_map a = map("0:100000:65536"), b = map("0:400000:65536");
        struct cache_worker w[8];
        pthread_t t[8];

        cr_assert_eq(idmap_cache_new(&c, NULL), 0);
        for (int i = 0; i < 8; i++) {
                w[i] = (struct cache_worker){.c = c, .m = i % 2 ? &a : &b, .fd = -1};
                cr_assert_eq(pthread_create(&t[i], NULL, cache_worker, &w[i]), 0);
        }
        for (int i = 0; i < 8; i++)
                pthread_join(t[i], NULL);
        for (int i = 0; i < 8; i++) {
                cr_expect_eq(w[i].r, 0, "worker %d: %d", i, w[i].r);
                cr_expect_eq(w[i].fd, w[i % 2].fd, "worker %d got its pair's one fd", i);
        }
        cr_expect_neq(w[0].fd, w[1].fd);
        cr_expect_eq(idmap_cache_size(c), 2, "one namespace per pair");
        cr_expect_not(have_children());
}
