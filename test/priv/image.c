/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Privileged tests of snapshot/image.c on the real kernel: templates (ext4,
 * xfs) are created crash-safely, verified, reused, replaced when corrupted,
 * made once under concurrency, and their root has the owner asked for (seen
 * through a read-only loop mount); clones are sparse copies on ext4,
 * pread/pwrite copies across filesystems (tmpfs), reflinks on xfs, and every
 * failure leaves nothing behind.
 *
 * Every test runs in its own private mount namespace; files live under
 * priv_tmpdir() (on /var/tmp), loop devices are tracked for teardown.
 * Timings are logged with cr_log_info (shown with --verbose).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <linux/magic.h>

#include "snapshot/image.h"
#include "test/priv/priv.h"

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* xfs's minimum is 300 MiB (xfsprogs >= 5.19). */
#define XFS_TEMPLATE_SIZE (512 * MiB)

static void image_setup(void)
{
        priv_setup();
        priv_private_mount_ns();
}

TestSuite(image, .init = image_setup, .fini = priv_teardown, .timeout = 300);

/* ---- helpers ---- */

/* A fresh directory under the test's tmpdir. */
static const char *make_dir(const char *name)
{
        const char *p = priv_path("%s/%s", priv_tmpdir(), name);
        cr_assert_eq(mkdir(p, 0700), 0, "mkdir %s: %m", p);
        return p;
}

static void require_fs(const char *fstype)
{
        if (strcmp(fstype, "xfs") == 0)
                priv_require_prog("mkfs.xfs");
        else
                priv_require_prog("mkfs.ext4");
}

static uint64_t template_size(const char *fstype)
{
        return strcmp(fstype, "xfs") == 0 ? XFS_TEMPLATE_SIZE : 1 * GiB;
}

static double ms_since(uint64_t t0)
{
        return (double)(util_now_ns() - t0) / 1e6;
}

static char *make_template(const char *dir, const char *fstype, uint64_t size, uint32_t uid,
                           uint32_t gid)
{
        struct util_err err = {0};
        char *path = NULL;
        int r = snap_image_template(dir, fstype, size, uid, gid, false, &path, &err);
        cr_assert_eq(r, 0, "template %s in %s: %d %s", fstype, dir, r, err.msg);
        cr_assert_not_null(path);
        cr_assert_eq(err.errnum, 0, "err touched on success");
        return path;
}

static struct stat stat_of(const char *path)
{
        struct stat st;
        cr_assert_eq(stat(path, &st), 0, "stat %s: %m", path);
        return st;
}

static uint64_t allocated(const char *path)
{
        struct util_err err = {0};
        uint64_t n = 0;
        cr_assert_eq(snap_image_allocated(path, &n, &err), 0, "%s", err.msg);
        return n;
}

/* Counts entries of `dir` whose names start with `prefix` ("" = all). */
static int count_entries(const char *dir, const char *prefix)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        cr_assert_not_null(d, "opendir %s: %m", dir);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        closedir(d);
        return n;
}

/* Attaches `img` (read-only unless `rw`), mounts it at a fresh directory
 * `mnt_name`; returns the mountpoint. The device is tracked for teardown. */
static const char *mount_image(const char *img, const char *fstype, bool rw, const char *mnt_name,
                               struct loop_device **ret_dev)
{
        struct util_err err = {0};
        struct loop_device *d = NULL;
        struct loop_attach_opts o = priv_opts(rw ? 0 : LOOP_ATTACH_READ_ONLY, mnt_name);
        int r = loop_attach_path(img, &o, &d, &err);
        cr_assert_eq(r, 0, "attach %s: %s", img, err.msg);
        priv_track(d);
        const char *mnt = make_dir(mnt_name);
        cr_assert_eq(mount(loop_device_get_path(d), mnt, fstype, rw ? 0 : MS_RDONLY, NULL), 0,
                     "mount %s (%s) at %s: %m", loop_device_get_path(d), img, mnt);
        *ret_dev = d;
        return mnt;
}

static void unmount_image(const char *mnt, struct loop_device *d)
{
        struct util_err err = {0};
        cr_assert_eq(umount2(mnt, 0), 0, "umount %s: %m", mnt);
        int r = loop_device_detach(priv_untrack(d), &err);
        cr_assert_geq(r, 0, "detach: %s", err.msg);
}

/* Mounts `img` read-only and returns the stat of its root directory. */
static struct stat root_of(const char *img, const char *fstype)
{
        struct loop_device *d;
        const char *mnt = mount_image(img, fstype, false, "root-mnt", &d);
        struct stat st = stat_of(mnt);
        unmount_image(mnt, d);
        cr_assert_eq(rmdir(mnt), 0, "rmdir %s: %m", mnt);
        return st;
}

/* Compares [off, off + len) of two fds. */
static void compare_range(int a, int b, off_t off, off_t len, const char *what)
{
        static char ba[1 << 20], bb[1 << 20];
        while (len > 0) {
                size_t n = len < (off_t)sizeof(ba) ? (size_t)len : sizeof(ba);
                cr_assert_eq(pread(a, ba, n, off), (ssize_t)n, "read %s: %m", what);
                cr_assert_eq(pread(b, bb, n, off), (ssize_t)n, "read %s: %m", what);
                cr_assert(memcmp(ba, bb, n) == 0, "%s differs in [%lld, +%zu)", what,
                          (long long)off, n);
                off += (off_t)n;
                len -= (off_t)n;
        }
}

/* Compares every data extent of `a` against `b` at the same offsets. */
static void compare_extents_of(int a, int b, off_t size, const char *what)
{
        off_t off = 0;
        while (off < size) {
                off_t data = lseek(a, off, SEEK_DATA);
                if (data < 0 && errno == ENXIO)
                        break;
                cr_assert_geq(data, 0, "SEEK_DATA %s: %m", what);
                off_t hole = lseek(a, data, SEEK_HOLE);
                cr_assert_geq(hole, 0, "SEEK_HOLE %s: %m", what);
                compare_range(a, b, data, hole - data, what);
                off = hole;
        }
}

/* The two files read the same: same size, and every range that is data in
 * either one is equal (ranges that are holes in both read as zeros). Reading
 * 1 GiB of holes is avoided. */
static void assert_same_content(const char *p1, const char *p2)
{
        int a = open(p1, O_RDONLY | O_CLOEXEC), b = open(p2, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(a, 0, "open %s: %m", p1);
        cr_assert_geq(b, 0, "open %s: %m", p2);
        struct stat sa, sb;
        cr_assert_eq(fstat(a, &sa), 0);
        cr_assert_eq(fstat(b, &sb), 0);
        cr_assert_eq(sa.st_size, sb.st_size, "%s is %lld bytes, %s %lld", p1, (long long)sa.st_size,
                     p2, (long long)sb.st_size);
        compare_extents_of(a, b, sa.st_size, p1);
        compare_extents_of(b, a, sb.st_size, p2);
        close(a);
        close(b);
}

static void write_file(const char *p, const char *content)
{
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0, "create %s: %m", p);
        cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        close(fd);
}

/* Zeroes the superblock magic region of an image of `fstype`. */
static void corrupt_superblock(const char *img, const char *fstype)
{
        static const char zeros[4096];
        int fd = open(img, O_WRONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0, "open %s: %m", img);
        /* ext4: the primary superblock is bytes 1024..2047; xfs: sector 0. */
        off_t off = strcmp(fstype, "xfs") == 0 ? 0 : 1024;
        cr_assert_eq(pwrite(fd, zeros, 1024, off), 1024, "corrupt %s: %m", img);
        close(fd);
}

/* ---- templates ---- */

static void check_template_created(const char *fstype)
{
        require_fs(fstype);
        const char *dir = make_dir("templates");
        uint64_t size = template_size(fstype);
        struct util_err err = {0};

        uint64_t t0 = util_now_ns();
        char *path = make_template(dir, fstype, size, 1234, 5678);
        double first_ms = ms_since(t0);

        cr_assert_str_eq(
                path, priv_path("%s/%s-%llu-1234-5678.img", dir, fstype, (unsigned long long)size));
        struct stat st = stat_of(path);
        cr_assert(S_ISREG(st.st_mode));
        cr_assert_eq((uint64_t)st.st_size, size);
        cr_assert_eq(st.st_mode & 07777, 0600, "template mode %o", st.st_mode & 07777);
        cr_assert_eq(snap_image_verify(path, fstype, &err), 0, "%s", err.msg);
        cr_assert_eq(count_entries(dir, "new-"), 0, "new-* left behind");
        cr_assert_eq(count_entries(dir, ""), 1);

        struct stat root = root_of(path, fstype);
        cr_assert(S_ISDIR(root.st_mode));
        cr_assert_eq(root.st_uid, 1234, "%s root uid %u", fstype, root.st_uid);
        cr_assert_eq(root.st_gid, 5678, "%s root gid %u", fstype, root.st_gid);
        cr_assert_eq(root.st_mode & 07777, 0755, "%s root mode %o", fstype, root.st_mode & 07777);

        cr_log_info("%s template of %llu MiB: created in %.2f ms, %.2f MiB allocated", fstype,
                    (unsigned long long)(size / MiB), first_ms,
                    (double)allocated(path) / (double)MiB);
        free(path);
}

Test(image, ext4_template_is_created_verified_and_owned)
{
        check_template_created("ext4");
}

Test(image, xfs_template_is_created_verified_and_owned)
{
        check_template_created("xfs");
}

Test(image, root_owned_template_by_default_ids)
{
        require_fs("ext4");
        const char *dir = make_dir("templates");
        char *path = make_template(dir, "ext4", 64 * MiB, 0, 0);
        struct stat root = root_of(path, "ext4");
        cr_assert_eq(root.st_uid, 0);
        cr_assert_eq(root.st_gid, 0);
        free(path);
}

static void check_second_call_reuses(const char *fstype)
{
        require_fs(fstype);
        const char *dir = make_dir(fstype);
        uint64_t size = template_size(fstype);

        char *p1 = make_template(dir, fstype, size, 0, 0);
        struct stat st1 = stat_of(p1);

        uint64_t t0 = util_now_ns();
        char *p2 = make_template(dir, fstype, size, 0, 0);
        double cached_ms = ms_since(t0);

        struct stat st2 = stat_of(p2);
        cr_assert_str_eq(p1, p2);
        cr_assert_eq(st1.st_ino, st2.st_ino, "template was re-created");
        cr_assert_eq(st1.st_mtim.tv_sec, st2.st_mtim.tv_sec);
        cr_assert_eq(st1.st_mtim.tv_nsec, st2.st_mtim.tv_nsec, "template was rewritten");
        cr_assert_eq(count_entries(dir, ""), 1);

        /* A different owner or size is a different template. */
        char *p3 = make_template(dir, fstype, size, 1, 1);
        cr_assert_str_neq(p1, p3);
        cr_assert_eq(count_entries(dir, ""), 2);

        cr_log_info("%s template of %llu MiB: cached call %.3f ms", fstype,
                    (unsigned long long)(size / MiB), cached_ms);
        free(p1);
        free(p2);
        free(p3);
}

Test(image, ext4_second_call_reuses_the_file)
{
        check_second_call_reuses("ext4");
}

Test(image, xfs_second_call_reuses_the_file)
{
        check_second_call_reuses("xfs");
}

static void check_corrupt_replaced(const char *fstype)
{
        require_fs(fstype);
        const char *dir = make_dir("templates");
        uint64_t size = template_size(fstype);
        struct util_err err = {0};

        char *p1 = make_template(dir, fstype, size, 0, 0);
        struct stat st1 = stat_of(p1);
        corrupt_superblock(p1, fstype);

        int r = snap_image_verify(p1, fstype, &err);
        cr_assert_eq(r, -EUCLEAN, "verify of a corrupted %s: %d %s", fstype, r, err.msg);
        cr_assert(strstr(err.msg, p1), "message names the file: %s", err.msg);
        cr_log_info("corrupted %s: %s", fstype, err.msg);

        char *p2 = make_template(dir, fstype, size, 0, 0);
        struct stat st2 = stat_of(p2);
        cr_assert_str_eq(p1, p2);
        cr_assert_neq(st1.st_ino, st2.st_ino, "corrupted template was not replaced");
        util_err_clear(&err);
        cr_assert_eq(snap_image_verify(p2, fstype, &err), 0, "%s", err.msg);
        cr_assert_eq(count_entries(dir, ""), 1, "leftovers next to the replaced template");
        free(p1);
        free(p2);
}

Test(image, ext4_corrupted_template_is_replaced)
{
        check_corrupt_replaced("ext4");
}

Test(image, xfs_corrupted_template_is_replaced)
{
        check_corrupt_replaced("xfs");
}

Test(image, wrong_size_or_symlink_template_is_replaced)
{
        require_fs("ext4");
        const char *dir = make_dir("templates");
        const char *name = priv_path("%s/ext4-%llu-0-0.img", dir, (unsigned long long)(64 * MiB));

        /* A truncated file with a good superblock is not trusted either. */
        char *p1 = make_template(dir, "ext4", 64 * MiB, 0, 0);
        cr_assert_str_eq(p1, name);
        cr_assert_eq(truncate(p1, (off_t)(32 * MiB)), 0);
        char *p2 = make_template(dir, "ext4", 64 * MiB, 0, 0);
        cr_assert_eq((uint64_t)stat_of(p2).st_size, 64 * MiB);

        /* A symlink in its place is replaced, not followed. */
        const char *target = priv_path("%s/elsewhere.img", priv_tmpdir());
        write_file(target, "not an image");
        cr_assert_eq(unlink(p2), 0);
        cr_assert_eq(symlink(target, p2), 0);
        char *p3 = make_template(dir, "ext4", 64 * MiB, 0, 0);
        struct stat lst;
        cr_assert_eq(lstat(p3, &lst), 0);
        cr_assert(S_ISREG(lst.st_mode), "symlink still there");
        cr_assert_eq(stat_of(target).st_size, (off_t)strlen("not an image"), "target touched");
        free(p1);
        free(p2);
        free(p3);
}

Test(image, leftover_new_file_is_ignored)
{
        require_fs("ext4");
        const char *dir = make_dir("templates");
        /* What a crash between mkfs and rename leaves. */
        write_file(priv_path("%s/new-deadbeef", dir), "half-made");
        write_file(priv_path("%s/new-XXXXXX", dir), "");

        char *path = make_template(dir, "ext4", 64 * MiB, 0, 0);
        struct util_err err = {0};
        cr_assert_eq(snap_image_verify(path, "ext4", &err), 0, "%s", err.msg);
        /* Leftovers are cleanup's to sweep, not ours: untouched, and ours is
         * not among them. */
        cr_assert_eq(count_entries(dir, "new-"), 2);
        cr_assert_eq(count_entries(dir, ""), 3);
        free(path);
}

Test(image, unknown_fstype_and_bad_arguments_fail_clearly)
{
        const char *dir = make_dir("templates");
        struct util_err err = {0};
        char *path = (char *)"untouched";

        int r = snap_image_template(dir, "btrfs", 1 * GiB, 0, 0, false, &path, &err);
        cr_assert_eq(r, -EINVAL);
        cr_assert(strstr(err.msg, "'btrfs'"), "message names the type: %s", err.msg);
        cr_assert_str_eq(path, "untouched", "ret written on failure");

        util_err_clear(&err);
        r = snap_image_verify(dir, "nosuchfs", &err);
        cr_assert_eq(r, -EINVAL);
        cr_assert(strstr(err.msg, "'nosuchfs'"), "%s", err.msg);

        util_err_clear(&err);
        r = snap_image_template(dir, "ext4", 0, 0, 0, false, &path, &err);
        cr_assert_eq(r, -EINVAL, "size 0: %d %s", r, err.msg);

        /* Below the filesystem's minimum: refused before mkfs, nothing left. */
        util_err_clear(&err);
        r = snap_image_template(dir, "ext4", 1 * MiB, 0, 0, false, &path, &err);
        cr_assert_eq(r, -EINVAL, "1 MiB ext4: %d %s", r, err.msg);
        cr_log_info("refused as expected: %s", err.msg);
        util_err_clear(&err);
        r = snap_image_template(dir, "xfs", 100 * MiB, 0, 0, false, &path, &err);
        cr_assert_eq(r, -EINVAL, "100 MiB xfs: %d %s", r, err.msg);
        cr_assert(strstr(err.msg, "300 MiB"), "%s", err.msg);
        cr_log_info("refused as expected: %s", err.msg);

        util_err_clear(&err);
        const char *missing = priv_path("%s/no-such-dir", priv_tmpdir());
        r = snap_image_template(missing, "ext4", 64 * MiB, 0, 0, false, &path, &err);
        cr_assert_eq(r, -ENOENT);
        cr_assert(strstr(err.msg, missing), "message names the directory: %s", err.msg);

        cr_assert_str_eq(path, "untouched", "ret written on failure");
        cr_assert_eq(count_entries(dir, ""), 0, "failed calls left files behind");
}

Test(image, not_a_filesystem_image_fails_verification)
{
        struct util_err err = {0};
        const char *img = priv_image("plain.img", 4 * MiB);
        int r = snap_image_verify(img, "ext4", &err);
        cr_assert_eq(r, -EUCLEAN, "%d %s", r, err.msg);
        cr_assert(strstr(err.msg, img) && strstr(err.msg, "ext4"), "%s", err.msg);

        util_err_clear(&err);
        r = snap_image_verify(priv_tmpdir(), "ext4", &err);
        cr_assert_eq(r, -EINVAL, "a directory: %d %s", r, err.msg);

        util_err_clear(&err);
        const char *missing = priv_path("%s/missing.img", priv_tmpdir());
        r = snap_image_verify(missing, "xfs", &err);
        cr_assert_eq(r, -ENOENT);
        cr_assert(strstr(err.msg, missing), "%s", err.msg);
}

static int concurrent_worker(int barrier_fd, const char *dir, const char *fstype, uint64_t size)
{
        struct util_err err = {0};
        char *path = NULL;
        char c;

        /* Wait until the parent releases every worker at once (EOF). */
        while (read(barrier_fd, &c, 1) < 0 && errno == EINTR)
                ;
        int r = snap_image_template(dir, fstype, size, 7, 7, false, &path, &err);
        if (r < 0) {
                fprintf(stderr, "worker %d: %s\n", (int)getpid(), err.msg);
                return 1;
        }
        r = snap_image_verify(path, fstype, &err);
        if (r < 0) {
                fprintf(stderr, "worker %d: %s\n", (int)getpid(), err.msg);
                return 1;
        }
        free(path);
        return 0;
}

static void check_concurrent_creation(const char *fstype)
{
        enum { WORKERS = 4 };
        require_fs(fstype);
        const char *dir = make_dir("templates");
        uint64_t size = template_size(fstype);
        pid_t pids[WORKERS];
        int barrier[2];

        cr_assert_eq(pipe2(barrier, O_CLOEXEC), 0);
        for (int w = 0; w < WORKERS; w++) {
                /* No criterion call in the child: it reports even passing
                 * asserts over an IPC socket the child cannot use. */
                pids[w] = fork();
                if (pids[w] == 0) {
                        close(barrier[1]);
                        _exit(concurrent_worker(barrier[0], dir, fstype, size));
                }
                cr_assert_geq(pids[w], 0, "fork: %m");
        }
        close(barrier[0]);
        close(barrier[1]); /* go */

        int failures = 0;
        for (int w = 0; w < WORKERS; w++) {
                int status;
                cr_assert_eq(waitpid(pids[w], &status, 0), pids[w]);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        failures++;
        }
        cr_assert_eq(failures, 0, "%d of %d workers failed", failures, WORKERS);
        cr_assert_eq(count_entries(dir, "new-"), 0, "new-* left behind");
        cr_assert_eq(count_entries(dir, ""), 1, "expected exactly one template");
        struct util_err err = {0};
        const char *path = priv_path("%s/%s-%llu-7-7.img", dir, fstype, (unsigned long long)size);
        cr_assert_eq(snap_image_verify(path, fstype, &err), 0, "%s", err.msg);
}

Test(image, ext4_concurrent_creation_makes_one_template)
{
        check_concurrent_creation("ext4");
}

Test(image, xfs_concurrent_creation_makes_one_template)
{
        check_concurrent_creation("xfs");
}

/* ---- clones ---- */

Test(image, clone_on_ext4_is_sparse_and_mounts)
{
        require_fs("ext4");
        struct statfs sfs;
        cr_assert_eq(statfs(priv_tmpdir(), &sfs), 0);
        if (sfs.f_type != EXT4_SUPER_MAGIC)
                cr_skip_test("%s is not on ext4 (f_type 0x%lx)", priv_tmpdir(),
                             (unsigned long)sfs.f_type);

        const char *dir = make_dir("templates");
        char *tmpl = make_template(dir, "ext4", 1 * GiB, 1000, 1000);
        const char *dst = priv_path("%s/clone.img", priv_tmpdir());
        enum snap_clone_method method = 0;
        struct util_err err = {0};

        uint64_t t0 = util_now_ns();
        int r = snap_image_clone(tmpl, dst, &method, &err);
        double clone_ms = ms_since(t0);
        cr_assert_eq(r, 0, "%s", err.msg);
        cr_assert_eq(err.errnum, 0);
        cr_assert_eq(method, SNAP_CLONE_SPARSE);

        uint64_t a_tmpl = allocated(tmpl), a_clone = allocated(dst);
        cr_assert_eq((uint64_t)stat_of(dst).st_size, 1 * GiB);
        cr_assert_eq(stat_of(dst).st_mode & 07777, 0600);
        cr_assert_leq(a_clone, 2 * a_tmpl, "clone allocates %llu bytes, template %llu",
                      (unsigned long long)a_clone, (unsigned long long)a_tmpl);
        cr_assert_lt(a_clone, 64 * MiB, "holes were filled: %llu bytes",
                     (unsigned long long)a_clone);
        assert_same_content(tmpl, dst);
        cr_assert_eq(snap_image_verify(dst, "ext4", &err), 0, "%s", err.msg);

        /* It mounts read-write, and writing to it leaves the template alone. */
        struct loop_device *d;
        const char *mnt = mount_image(dst, "ext4", true, "clone-mnt", &d);
        cr_assert_eq(stat_of(mnt).st_uid, 1000);
        write_file(priv_path("%s/hello", mnt), "world");
        unmount_image(mnt, d);
        cr_assert_eq(snap_image_verify(tmpl, "ext4", &err), 0, "%s", err.msg);
        struct stat root = root_of(tmpl, "ext4");
        cr_assert_eq(root.st_nlink, 3, "template changed (root nlink %lu)",
                     (unsigned long)root.st_nlink);

        cr_log_info("ext4 1 GiB template cloned on ext4 (sparse) in %.2f ms; allocated: "
                    "template %.2f MiB, clone %.2f MiB",
                    clone_ms, (double)a_tmpl / (double)MiB, (double)a_clone / (double)MiB);
        free(tmpl);
}

Test(image, clone_across_filesystems_uses_the_copy_fallback)
{
        require_fs("ext4");
        const char *dir = make_dir("templates");
        char *tmpl = make_template(dir, "ext4", 1 * GiB, 0, 0);
        /* tmpfs: no FICLONE, and copy_file_range from ext4 gives EXDEV (since
         * 5.19 only within one filesystem type), so pread/pwrite copies. */
        const char *mnt = make_dir("tmpfs");
        cr_assert_eq(mount("tmpfs", mnt, "tmpfs", 0, "size=64m,mode=0700"), 0, "tmpfs: %m");
        const char *dst = priv_path("%s/clone.img", mnt);
        enum snap_clone_method method = 0;
        struct util_err err = {0};

        int r = snap_image_clone(tmpl, dst, &method, &err);
        cr_assert_eq(r, 0, "%s", err.msg);
        cr_assert_eq(method, SNAP_CLONE_SPARSE);
        cr_assert_lt(allocated(dst), 16 * MiB, "holes were filled");
        assert_same_content(tmpl, dst);
        cr_assert_eq(snap_image_verify(dst, "ext4", &err), 0, "%s", err.msg);
        cr_assert_eq(unlink(dst), 0);
        cr_assert_eq(umount2(mnt, 0), 0, "umount %s: %m", mnt);
        free(tmpl);
}

Test(image, clone_failure_removes_the_destination)
{
        require_fs("ext4");
        const char *dir = make_dir("templates");
        char *tmpl = make_template(dir, "ext4", 1 * GiB, 0, 0);
        cr_assert_gt(allocated(tmpl), 64 * 1024);
        /* Too small for the template's data: ENOSPC half-way. */
        const char *mnt = make_dir("tiny");
        cr_assert_eq(mount("tmpfs", mnt, "tmpfs", 0, "size=16k,mode=0700"), 0, "tmpfs: %m");
        const char *dst = priv_path("%s/clone.img", mnt);
        enum snap_clone_method method = 0;
        struct util_err err = {0};

        int r = snap_image_clone(tmpl, dst, &method, &err);
        cr_assert_eq(r, -ENOSPC, "%d %s", r, err.msg);
        cr_assert(strstr(err.msg, dst), "message names the destination: %s", err.msg);
        cr_assert_eq(method, 0, "ret_method written on failure");
        cr_assert_eq(access(dst, F_OK), -1, "destination left behind");
        cr_assert_eq(errno, ENOENT);
        cr_log_info("failed as expected: %s", err.msg);
        cr_assert_eq(umount2(mnt, 0), 0, "umount %s: %m", mnt);
        free(tmpl);
}

Test(image, clone_to_existing_destination_is_eexist)
{
        require_fs("ext4");
        const char *dir = make_dir("templates");
        char *tmpl = make_template(dir, "ext4", 64 * MiB, 0, 0);
        const char *dst = priv_path("%s/existing.img", priv_tmpdir());
        write_file(dst, "keep me");
        struct util_err err = {0};
        enum snap_clone_method method = 0;

        int r = snap_image_clone(tmpl, dst, &method, &err);
        cr_assert_eq(r, -EEXIST, "%d %s", r, err.msg);
        cr_assert(strstr(err.msg, dst), "message names the destination: %s", err.msg);
        cr_assert_eq(method, 0);

        char buf[32] = {0};
        int fd = open(dst, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0, "destination removed: %m");
        cr_assert_eq(read(fd, buf, sizeof(buf) - 1), (ssize_t)strlen("keep me"));
        close(fd);
        cr_assert_str_eq(buf, "keep me", "destination touched");
        free(tmpl);
}

Test(image, clone_of_missing_source_is_enoent)
{
        const char *src = priv_path("%s/no-such-template.img", priv_tmpdir());
        const char *dst = priv_path("%s/clone.img", priv_tmpdir());
        struct util_err err = {0};

        int r = snap_image_clone(src, dst, NULL, &err);
        cr_assert_eq(r, -ENOENT, "%d %s", r, err.msg);
        cr_assert(strstr(err.msg, src), "message names the source: %s", err.msg);
        cr_assert_eq(access(dst, F_OK), -1, "destination created");
}

/* Used space of the filesystem at `mnt`, after syncing it. */
static uint64_t fs_used(const char *mnt)
{
        struct statvfs sv;
        int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(fd, 0, "open %s: %m", mnt);
        cr_assert_eq(syncfs(fd), 0, "syncfs %s: %m", mnt);
        close(fd);
        cr_assert_eq(statvfs(mnt, &sv), 0, "statvfs %s: %m", mnt);
        return (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
}

Test(image, clone_on_xfs_is_a_reflink)
{
        priv_require_prog("mkfs.xfs");
        require_fs("ext4");
        const char *outer = priv_image("reflink-xfs.img", 512 * MiB);
        const char *const mkfs[] = {"mkfs.xfs", "-q", "-f", "-m", "reflink=1", outer, NULL};
        cr_assert_eq(priv_run(mkfs), 0, "mkfs.xfs -m reflink=1 %s", outer);
        struct loop_device *d;
        const char *mnt = mount_image(outer, "xfs", true, "xfs-mnt", &d);
        const char *dir = priv_path("%s/templates", mnt);
        cr_assert_eq(mkdir(dir, 0700), 0, "mkdir %s: %m", dir);

        struct {
                const char *fstype;
                uint64_t size;
        } cases[] = {{"ext4", 1 * GiB}, {"xfs", XFS_TEMPLATE_SIZE}};

        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                const char *fstype = cases[i].fstype;
                char *tmpl = make_template(dir, fstype, cases[i].size, 0, 0);
                const char *dst = priv_path("%s/clone-%s.img", mnt, fstype);
                enum snap_clone_method method = 0;
                struct util_err err = {0};

                uint64_t before = fs_used(mnt);
                uint64_t t0 = util_now_ns();
                int r = snap_image_clone(tmpl, dst, &method, &err);
                double clone_ms = ms_since(t0);
                uint64_t after = fs_used(mnt);
                cr_assert_eq(r, 0, "%s", err.msg);
                cr_assert_eq(method, SNAP_CLONE_REFLINK);
                cr_assert_eq(snap_image_verify(dst, fstype, &err), 0, "%s", err.msg);
                uint64_t a_tmpl = allocated(tmpl), a_clone = allocated(dst);
                int64_t grew = (int64_t)(after - before);
                /* Shared blocks cost nothing; only refcount-btree metadata
                 * may appear. */
                cr_assert_lt(grew, (int64_t)(a_tmpl / 4 + 64 * 1024),
                             "%s clone grew the fs by %lld bytes (template allocates %llu)", fstype,
                             (long long)grew, (unsigned long long)a_tmpl);
                cr_log_info("%s %llu MiB template cloned on xfs (reflink) in %.2f ms; "
                            "allocated: template %.2f MiB, clone %.2f MiB (shared); "
                            "fs used grew by %lld KiB",
                            fstype, (unsigned long long)(cases[i].size / MiB), clone_ms,
                            (double)a_tmpl / (double)MiB, (double)a_clone / (double)MiB,
                            (long long)(grew / 1024));
                free(tmpl);
        }
        unmount_image(mnt, d);
}
