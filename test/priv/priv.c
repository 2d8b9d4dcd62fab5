/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers for the privileged tests: see priv.h. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "mount/mount.h"
#include "test/priv/priv.h"

extern char **environ;

#define PRIV_MAX_TRACKED 256
#define PRIV_MAX_IMAGES  32

static struct loop_device *tracked[PRIV_MAX_TRACKED];
static struct {
        void (*fn)(void *);
        void *p;
} deferred[4096];
static size_t n_deferred;
static struct mount_engine *engine;
static char tmpdir[256];
static char images[PRIV_MAX_IMAGES][512];
static size_t n_images;
static char owner[32];

static bool is_init_userns_root(void)
{
        char buf[256];
        unsigned a, b, c;

        if (geteuid() != 0)
                return false;
        if (util_read_small_file("/proc/self/uid_map", buf, sizeof(buf)) < 0)
                return false;
        return sscanf(buf, "%u %u %u", &a, &b, &c) == 3 && a == 0 && b == 0 && c == 4294967295u;
}

void priv_require_loop(void)
{
        if (getenv("LOOPSNAP_TEST_SKIP_LOOP"))
                cr_skip_test("loop tests disabled by LOOPSNAP_TEST_SKIP_LOOP");
        if (!is_init_userns_root())
                cr_skip_test("needs root in the initial user namespace");
        if (access("/dev/loop-control", R_OK | W_OK) != 0)
                cr_skip_test("no usable /dev/loop-control (loop driver missing?)");
}

void priv_require_prog(const char *prog)
{
        const char *path = getenv("PATH");
        char buf[1024];

        if (!path)
                path = "/usr/sbin:/usr/bin:/sbin:/bin";
        while (*path) {
                size_t len = strcspn(path, ":");
                snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, prog);
                if (access(buf, X_OK) == 0)
                        return;
                path += len;
                if (*path == ':')
                        path++;
        }
        cr_skip_test("%s is not installed", prog);
}

void priv_private_mount_ns(void)
{
        cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare(CLONE_NEWNS): %m");
        cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "make / private: %m");
}

const char *priv_owner(void)
{
        if (!owner[0])
                snprintf(owner, sizeof(owner), PRIV_TAG_OWNER_PREFIX "%d", (int)getpid());
        return owner;
}

struct loop_attach_opts priv_opts(unsigned flags, const char *id)
{
        return (struct loop_attach_opts){.flags = flags, .owner = priv_owner(), .id = id};
}

const char *priv_tmpdir(void)
{
        if (!tmpdir[0]) {
                snprintf(tmpdir, sizeof(tmpdir), PRIV_TMP_PREFIX "XXXXXX");
                cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %m");
        }
        return tmpdir;
}

const char *priv_image(const char *name, uint64_t size)
{
        cr_assert_lt(n_images, PRIV_MAX_IMAGES);
        char *path = images[n_images++];
        snprintf(path, sizeof(images[0]), "%s/%s", priv_tmpdir(), name);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0, "create %s: %m", path);
        cr_assert_eq(ftruncate(fd, (off_t)size), 0, "truncate %s: %m", path);
        close(fd);
        return path;
}

char *priv_path(const char *fmt, ...)
{
        static char bufs[16][1024];
        static unsigned next;
        char *b = bufs[next++ % 16];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(b, sizeof(bufs[0]), fmt, ap);
        va_end(ap);
        return b;
}

int priv_run(const char *const argv[])
{
        pid_t pid;
        int status;

        if (posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ) != 0)
                return -1;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void *priv_defer(void (*fn)(void *), void *p)
{
        cr_assert_lt(n_deferred, UTIL_ARRAY_SIZE(deferred), "too many deferred frees");
        deferred[n_deferred].fn = fn;
        deferred[n_deferred++].p = p;
        return p;
}

char *priv_keep(const char *s)
{
        return priv_defer(free, strdup(s));
}

static void engine_free(void *p)
{
        mount_engine_free(p);
}

struct mount_engine *priv_engine(void)
{
        if (engine)
                return engine;
        struct mount_engine_opts o = {
                .loop_owner = priv_owner(),
                .scratch_dir = priv_keep(priv_path("%s/scratch", priv_tmpdir())),
        };
        struct util_err err = {0};
        cr_assert_eq(mount_engine_new(&o, &engine, &err), 0, "%s", err.msg);
        return priv_defer(engine_free, engine);
}

struct loop_device *priv_track(struct loop_device *d)
{
        for (size_t i = 0; i < PRIV_MAX_TRACKED; i++)
                if (!tracked[i]) {
                        tracked[i] = d;
                        return d;
                }
        cr_assert_fail("too many tracked loop devices");
        return d;
}

struct loop_device *priv_untrack(struct loop_device *d)
{
        for (size_t i = 0; i < PRIV_MAX_TRACKED; i++)
                if (tracked[i] == d)
                        tracked[i] = NULL;
        return d;
}

bool priv_is_bound(int nr, uint64_t diskseq)
{
        char path[96];
        uint64_t now;

        snprintf(path, sizeof(path), "/sys/block/loop%d/loop/backing_file", nr);
        if (access(path, F_OK) < 0)
                return false;
        snprintf(path, sizeof(path), "/sys/block/loop%d/diskseq", nr);
        if (diskseq == 0 || util_read_u64_file(path, &now) < 0)
                return true;
        return now == diskseq;
}

void priv_setup(void)
{
        priv_require_loop();
}

/* Removes the test directory without crossing into other filesystems (a
 * mount that is still there is left alone, never emptied). */
static void remove_tree(int dirfd, dev_t dev)
{
        DIR *d = fdopendir(dirfd);
        struct dirent *de;

        if (!d) {
                close(dirfd);
                return;
        }
        while ((de = readdir(d))) {
                struct stat st;
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd, de->d_name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0)
                                remove_tree(sub, dev);
                        (void)unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
                } else {
                        (void)unlinkat(dirfd, de->d_name, 0);
                }
        }
        closedir(d);
}

size_t priv_devices_tagged(const char *tag_owner)
{
        char prefix[96];
        struct loop_status *list = NULL;
        size_t n = 0;
        struct util_err err = {0};
        snprintf(prefix, sizeof(prefix), LOOP_TAG_PREFIX "%s:", tag_owner);
        struct loop_filter f = {.tag_prefix = prefix};
        cr_assert_eq(loop_list(&f, &list, &n, &err), 0, "%s", err.msg);
        free(list);
        return n;
}

unsigned priv_drop_activations(const char *root_path)
{
        char m[PATH_MAX];
        snprintf(m, sizeof(m), "%s/m", root_path);
        DIR *d = opendir(m);
        struct dirent *de;
        unsigned n = 0;

        while (d && (de = readdir(d))) {
                char p[PATH_MAX + 256];
                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "%s/%s", m, de->d_name);
                struct util_err err = {0};
                int k = mount_unmount_all(p, &err);
                cr_assert_geq(k, 0, "%s", err.msg);
                n += k > 0;
        }
        if (d)
                closedir(d);
        return n;
}

/* Unmounts what the test left mounted under its directory (deepest first);
 * tests that mount run in a private namespace, so this touches only theirs. */
static void unmount_below(const char *dir)
{
        char targets[64][512];
        size_t n = 0, len = strlen(dir);
        char line[4096];
        FILE *f = fopen("/proc/self/mountinfo", "re");

        if (!f)
                return;
        while (n < 64 && fgets(line, sizeof(line), f)) {
                char target[512];
                if (sscanf(line, "%*s %*s %*s %*s %511s", target) != 1)
                        continue;
                if (strncmp(target, dir, len) == 0 && (target[len] == '/' || !target[len]))
                        snprintf(targets[n++], sizeof(targets[0]), "%s", target);
        }
        (void)fclose(f); /* read only */
        while (n > 0)
                (void)umount2(targets[--n], MNT_DETACH);
}

void priv_teardown(void)
{
        while (n_deferred > 0) {
                n_deferred--;
                deferred[n_deferred].fn(deferred[n_deferred].p);
        }
        engine = NULL;
        for (size_t i = 0; i < PRIV_MAX_TRACKED; i++)
                if (tracked[i]) {
                        struct util_err err = {0};
                        (void)loop_device_detach(tracked[i], &err);
                        tracked[i] = NULL;
                }
        if (tmpdir[0]) {
                struct stat st;
                unmount_below(tmpdir);
                if (stat(tmpdir, &st) == 0) {
                        int fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                        if (fd >= 0)
                                remove_tree(fd, st.st_dev);
                        (void)rmdir(tmpdir);
                }
                tmpdir[0] = '\0';
        }
        n_images = 0;
}
