/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * loopsnap-bench hook: what the OCI hook adds to a container start. One
 * container configuration, `true` as its process, run with `crun run`
 * four ways in the same run, interleaved (the order rotates, so drift hits
 * every way alike):
 *   - plain:    root.path a directory holding the busybox files;
 *   - true-hooks: the same with /bin/cat as the three hooks (it reads the
 *               state, as crun expects): what crun's hook machinery costs
 *               before a hook does anything;
 *   - hook:     root.path an empty directory, the three hook stages
 *               (createRuntime prepares a snapshot on a committed busybox
 *               layer and mounts it, createContainer moves it in place,
 *               poststop removes the snapshot and waits for its device), on
 *               a root with the defaults (the writable upper an ext4 image);
 *   - hook-dir: the same on a root whose uppers are plain directories.
 * Each figure is the wall time of the whole `crun run` (fork to exit),
 * median and p90; the overhead is the difference of the medians, against
 * the target of 10 ms.
 *
 * crun 1.8 refuses this VM's hybrid cgroup layout, so the suite runs in a
 * private mount namespace with cgroup2 on /sys/fs/cgroup and crun's cgroup
 * manager disabled (as test/e2e/hook.sh does): nothing on the host changes.
 * The hook binary is the one next to this program (build/bin), or
 * LOOPSNAP_BENCH_HOOK. Everything lives in a private directory under
 * /var/tmp (the snapshotter root, the bundles) and one under /run (the
 * staging entries, on tmpfs like the hook's default), removed at the end; a container left, a
 * staging entry left or a loop device of the bench's root left is a failure (exit 1).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <libgen.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "loop/loop.h"
#include "mount/mount.h"
#include "snapshot/snapshot.h"
#include "test/bench/bench-hook.h"
#include "util/util.h"

#define HOOK_BENCH_TEMPLATE "/var/tmp/loopsnap-bench-hook.XXXXXX"
/* The staging entries: on tmpfs, as the hook's default /run/loopsnap-hook. */
#define HOOK_BENCH_RUN_TEMPLATE "/run/loopsnap-bench-hook.XXXXXX"
#define HOOK_BENCH_WARMUP       3u
#define HOOK_TARGET_OVERHEAD    10.0
#define HOOK_BENCH_IMAGE_SIZE   (64ull << 20)

extern char **environ;

struct hook_bench {
        char dir[sizeof(HOOK_BENCH_TEMPLATE)];
        char run[sizeof(HOOK_BENCH_RUN_TEMPLATE)];
        char crun[4096];
        char hook[4096];
        struct snap_root *roots[2]; /* ROOT_IMAGE, ROOT_DIR */
        bool in_ns;
};

/* The hook's two kinds of snapshotter root: the default (the writable
 * upper an ext4 image, a quota) and a plain-directory upper (no quota, no
 * read-write filesystem per container). */
enum { ROOT_IMAGE, ROOT_DIR, ROOTS };
static const char *const root_names[ROOTS] = {"root", "root-dir"};

/* The ways a container is started: from a plain directory, with the hook on
 * either root. */
enum { WAY_PLAIN, WAY_TRUE, WAY_HOOK, WAY_HOOK_DIR, WAY_HOOK_NO_POOL, WAYS };
static const char *const way_bundles[WAYS] = {"plain", "true-hooks", "hook", "hook-dir",
                                              "hook-no-pool"};

struct hook_results {
        unsigned iterations;
        double median_ms[WAYS], p90_ms[WAYS];
};

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...)
{
        va_list ap;

        fputs("loopsnap-bench: hook: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static void stats(double *v, size_t n, double *median, double *p90)
{
        qsort(v, n, sizeof(*v), cmp_double);
        *median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
        size_t k = (n * 9 + 9) / 10;
        *p90 = v[k ? k - 1 : 0];
}

static int find_in_path(const char *name, char *buf, size_t size)
{
        const char *path = getenv("PATH");

        if (!path || !*path)
                path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
        while (*path) {
                size_t len = strcspn(path, ":");
                if (len > 0 &&
                    (size_t)snprintf(buf, size, "%.*s/%s", (int)len, path, name) < size &&
                    access(buf, X_OK) == 0)
                        return 0;
                path += len;
                if (*path == ':')
                        path++;
        }
        return -ENOENT;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
        _cleanup_close_ int fd =
                open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        size_t len = strlen(text);

        if (fd < 0 || write(fd, text, len) != (ssize_t)len)
                return -errno;
        return 0;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        char buf[1 << 16];
        ssize_t n;

        if (in < 0 || out < 0)
                return -errno;
        while ((n = read(in, buf, sizeof(buf))) > 0)
                if (write(out, buf, (size_t)n) != n)
                        return -errno;
        return n < 0 ? -errno : 0;
}

/* A busybox root in `dir`: bin/busybox, bin/sh, bin/true, empty mount
 * points. */
static int populate(const char *dir)
{
        static const char *const dirs[] = {"bin", "proc", "dev", "sys", "tmp", "etc"};
        static const char *const applets[] = {"sh", "true"};
        char p[4200];
        int r;

        for (size_t k = 0; k < UTIL_ARRAY_SIZE(dirs); k++) {
                snprintf(p, sizeof(p), "%s/%s", dir, dirs[k]);
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return -errno;
        }
        snprintf(p, sizeof(p), "%s/bin/busybox", dir);
        if ((r = copy_file("/bin/busybox", p, 0755)) < 0)
                return r;
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(applets); k++) {
                snprintf(p, sizeof(p), "%s/bin/%s", dir, applets[k]);
                if (symlink("busybox", p) < 0 && errno != EEXIST)
                        return -errno;
        }
        return 0;
}

/* The one container configuration; `root` (a snapshotter root's name)
 * adds the hooks and annotations, NULL makes rootfs a busybox directory;
 * `true_hooks` registers /bin/cat for the three stages instead (what crun's
 * hook machinery costs by itself). */
static int write_bundle(const struct hook_bench *b, const char *name, const char *root_name,
                        bool true_hooks, bool no_pool)
{
        bool hook = root_name != NULL;
        const char *hp = true_hooks ? "/bin/cat" : b->hook;
        char dir[4200], path[4300], hooks[16384] = "", root[4300];
        int r;

        snprintf(dir, sizeof(dir), "%s/%s", b->dir, name);
        snprintf(root, sizeof(root), "%s/rootfs", dir);
        if (mkdir(dir, 0755) < 0 || mkdir(root, 0755) < 0)
                return -errno;
        if ((!hook || true_hooks) && (r = populate(root)) < 0)
                return r;
        if (true_hooks)
                snprintf(hooks, sizeof(hooks),
                         ",\"hooks\":{\"createRuntime\":[{\"path\":\"%s\"}],"
                         "\"createContainer\":[{\"path\":\"%s\"}],"
                         "\"poststop\":[{\"path\":\"%s\"}]}",
                         hp, hp, hp);
        else if (hook)
                snprintf(hooks, sizeof(hooks),
                         ",\"hooks\":{"
                         "\"createRuntime\":[{\"path\":\"%s\",\"args\":[\"loopsnap-oci-hook\","
                         "\"createRuntime\"],\"timeout\":60}],"
                         "\"createContainer\":[{\"path\":\"%s\",\"args\":[\"loopsnap-oci-hook\","
                         "\"createContainer\"],\"timeout\":10}],"
                         "\"poststop\":[{\"path\":\"%s\",\"args\":[\"loopsnap-oci-hook\","
                         "\"poststop\"],\"timeout\":30}]},"
                         "\"annotations\":{\"io.loopsnap.root\":\"%s/%s\",%s"
                         "\"io.loopsnap.parent\":\"base\","
                         "\"run.oci.hooks.stderr\":\"%s/hook.err\"}",
                         hp, hp, hp, b->dir, root_name,
                         no_pool ? "\"io.loopsnap.writable-pool\":\"0\"," : "", b->dir);
        char *json = NULL;
        if (asprintf(&json,
                     "{\"ociVersion\":\"1.0.0\","
                     "\"process\":{\"terminal\":false,\"user\":{\"uid\":0,\"gid\":0},"
                     "\"args\":[\"true\"],\"env\":[\"PATH=/bin\"],\"cwd\":\"/\","
                     "\"noNewPrivileges\":true},"
                     "\"root\":{\"path\":\"rootfs\",\"readonly\":false},"
                     "\"hostname\":\"bench\","
                     "\"mounts\":["
                     "{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
                     "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
                     "\"options\":[\"nosuid\",\"strictatime\",\"mode=755\",\"size=65536k\"]},"
                     "{\"destination\":\"/dev/pts\",\"type\":\"devpts\",\"source\":\"devpts\","
                     "\"options\":[\"nosuid\",\"noexec\",\"newinstance\",\"ptmxmode=0666\","
                     "\"mode=0620\"]},"
                     "{\"destination\":\"/dev/shm\",\"type\":\"tmpfs\",\"source\":\"shm\","
                     "\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"mode=1777\","
                     "\"size=65536k\"]},"
                     "{\"destination\":\"/sys\",\"type\":\"sysfs\",\"source\":\"sysfs\","
                     "\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"ro\"]}],"
                     "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"ipc\"},"
                     "{\"type\":\"uts\"},{\"type\":\"mount\"},{\"type\":\"network\"}],"
                     "\"maskedPaths\":[\"/proc/kcore\",\"/proc/keys\",\"/sys/firmware\"],"
                     "\"readonlyPaths\":[\"/proc/sys\",\"/proc/bus\"]}%s}",
                     hooks) < 0)
                return -ENOMEM;
        snprintf(path, sizeof(path), "%s/config.json", dir);
        r = write_file(path, json, 0644);
        free(json);
        return r;
}

/* The committed busybox layer "base" in root `k`, built through the
 * snapshotter and the engine. */
static int make_base(struct hook_bench *b, int k)
{
        _cleanup_(mount_engine_freep) struct mount_engine *e = NULL;
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        struct util_err err = {0};
        char root[4200], mnt[4200];
        int r;

        snprintf(root, sizeof(root), "%s/%s", b->dir, root_names[k]);
        snprintf(mnt, sizeof(mnt), "%s/mnt", b->dir);
        struct snap_root_opts o = {
                .path = root,
                .writable_size = HOOK_BENCH_IMAGE_SIZE,
                .upper_dir = k == ROOT_DIR,
        };
        struct snap_root *sr = NULL;
        if ((r = snap_root_open(&o, &sr, &err)) < 0)
                goto out;
        b->roots[k] = sr;
        if ((r = snap_prepare(sr, "base-work", NULL, NULL, 0, &spec, &err)) < 0)
                goto out;
        struct mount_engine_opts eo;
        snap_root_engine_opts(sr, &eo);
        if ((r = mount_engine_new(&eo, &e, &err)) < 0)
                goto out;
        if (mkdir(mnt, 0700) < 0) {
                r = util_err_set(&err, errno, "create '%s'", mnt);
                goto out;
        }
        if ((r = mount_engine_apply(e, spec, mnt, "bench", NULL, &err)) < 0)
                goto out;
        r = populate(mnt);
        if (r < 0)
                util_err_set(&err, r, "populate '%s'", mnt);
        int u = mount_unmount_all(mnt, r < 0 ? NULL : &err);
        if (r >= 0 && u < 0)
                r = u;
        (void)rmdir(mnt);
        if (r >= 0)
                r = snap_commit(sr, "base", "base-work", NULL, 0, &err);
out:
        if (r < 0)
                warn("build the busybox layer in '%s': %s", root, err.msg);
        return r;
}

/* crun run of bundle `name` as container `id`; its stderr goes to
 * <dir>/crun.err. Returns the exit status (>= 0) and the wall time. */
static int crun_run(const struct hook_bench *b, const char *name, const char *id, double *ms)
{
        char bundle[4200], state[4200], errf[4200];
        char *argv[] = {"crun", "--root",   state, "--cgroup-manager=disabled", "run", "--bundle",
                        bundle, (char *)id, NULL};
        posix_spawn_file_actions_t fa;
        int status = 0, r;
        pid_t pid;

        snprintf(bundle, sizeof(bundle), "%s/%s", b->dir, name);
        snprintf(state, sizeof(state), "%s/crun", b->dir);
        snprintf(errf, sizeof(errf), "%s/crun.err", b->dir);
        if ((r = posix_spawn_file_actions_init(&fa)) != 0)
                return -r;
        r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, errf,
                                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
        uint64_t t0 = util_now_ns();
        if (r == 0)
                r = posix_spawn(&pid, b->crun, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                return -r;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        *ms = (double)(util_now_ns() - t0) / 1e6;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void show_file(const char *dir, const char *name)
{
        char p[4200], buf[2048];

        snprintf(p, sizeof(p), "%s/%s", dir, name);
        if (util_read_small_file(p, buf, sizeof(buf)) > 0)
                warn("%s: %s", name, buf);
}

static int setup(struct hook_bench *b)
{
        char self[4096];
        const char *env = getenv("LOOPSNAP_BENCH_HOOK");
        int r;

        if (find_in_path("crun", b->crun, sizeof(b->crun)) < 0) {
                warn("crun is not installed (setup.sh installs it)");
                return -ENOENT;
        }
        if (access("/bin/busybox", X_OK) < 0) {
                warn("/bin/busybox is missing (setup.sh installs busybox-static)");
                return -ENOENT;
        }
        if (env) {
                snprintf(b->hook, sizeof(b->hook), "%s", env);
        } else {
                ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
                if (n <= 0)
                        return -errno;
                self[n] = '\0';
                snprintf(b->hook, sizeof(b->hook), "%s/loopsnap-oci-hook", dirname(self));
        }
        if (b->hook[0] != '/' || access(b->hook, X_OK) < 0) {
                warn("no hook binary '%s' (build it, or set LOOPSNAP_BENCH_HOOK)", b->hook);
                return -ENOENT;
        }
        /* Private mounts, and the cgroup layout crun accepts. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
                r = -errno;
                warn("a private mount namespace: %s", strerror(-r));
                return r;
        }
        b->in_ns = true;
        if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL) < 0) {
                r = -errno;
                warn("mount cgroup2 on /sys/fs/cgroup: %s", strerror(-r));
                return r;
        }
        memcpy(b->dir, HOOK_BENCH_TEMPLATE, sizeof(HOOK_BENCH_TEMPLATE));
        if (!mkdtemp(b->dir)) {
                r = -errno;
                b->dir[0] = '\0';
                warn("create a directory from '%s': %s", HOOK_BENCH_TEMPLATE, strerror(-r));
                return r;
        }
        memcpy(b->run, HOOK_BENCH_RUN_TEMPLATE, sizeof(HOOK_BENCH_RUN_TEMPLATE));
        if (!mkdtemp(b->run)) {
                r = -errno;
                b->run[0] = '\0';
                warn("create a directory from '%s': %s", HOOK_BENCH_RUN_TEMPLATE, strerror(-r));
                return r;
        }
        if (setenv("LOOPSNAP_HOOK_RUN_DIR", b->run, 1) < 0)
                return -errno;
        for (int k = 0; k < ROOTS; k++)
                if ((r = make_base(b, k)) < 0)
                        return r;
        if ((r = write_bundle(b, way_bundles[WAY_PLAIN], NULL, false, false)) < 0 ||
            (r = write_bundle(b, way_bundles[WAY_TRUE], NULL, true, false)) < 0 ||
            (r = write_bundle(b, way_bundles[WAY_HOOK], root_names[ROOT_IMAGE], false, false)) <
                    0 ||
            (r = write_bundle(b, way_bundles[WAY_HOOK_DIR], root_names[ROOT_DIR], false, false)) <
                    0 ||
            (r = write_bundle(b, way_bundles[WAY_HOOK_NO_POOL], root_names[ROOT_IMAGE], false,
                              true)) < 0) {
                warn("write the bundles: %s", strerror(-r));
                return r;
        }
        return 0;
}

static int count_other(const struct snap_info *i, void *data, struct util_err *err)
{
        if (strcmp(i->name, "base") != 0) {
                warn("snapshot '%s' left", i->name);
                (*(unsigned *)data)++;
        }
        return 0;
}

/* What must be gone after the runs: staging entries, loop devices of the
 * bench's root, snapshots other than the base. The base layer's activation
 * (m/<id>, kept by the hook's prepares for the next container) is not a
 * leftover of a container: snap_cleanup drops it first, and must. Returns
 * the count left. */
static unsigned leftovers(const struct hook_bench *b)
{
        char prefix[LOOP_TAG_MAX + 1];
        struct loop_status *v = NULL;
        struct util_err err = {0};
        unsigned left = 0;
        size_t n = 0;

        DIR *d = opendir(b->run);
        struct dirent *de;
        while (d && (de = readdir(d)))
                if (de->d_name[0] != '.') {
                        warn("staging entry '%s' left", de->d_name);
                        left++;
                }
        if (d)
                closedir(d);
        for (int r = 0; r < ROOTS; r++) {
                if (!b->roots[r])
                        continue;
                if (snap_cleanup(b->roots[r], &err) < 0) {
                        warn("cleanup: %s", err.msg);
                        left++;
                }
                util_err_clear(&err);
                snprintf(prefix, sizeof(prefix),
                         LOOP_TAG_PREFIX "%s:", snap_root_tag_owner(b->roots[r]));
                struct loop_filter f = {.tag_prefix = prefix};
                if (loop_list(&f, &v, &n, &err) == 0) {
                        for (size_t k = 0; k < n; k++)
                                warn("loop device %s (%s) left", v[k].path, v[k].backing_file);
                        left += (unsigned)n;
                }
                free(v);
                v = NULL;
                util_err_clear(&err);
                if (snap_walk(b->roots[r], NULL, 0, count_other, &left, &err) < 0)
                        warn("list snapshots: %s", err.msg);
        }
        return left;
}

static void rm_tree(const char *path)
{
        char *argv[] = {"rm", "-rf", "--one-file-system", (char *)path, NULL};
        pid_t pid;
        int st;

        if (posix_spawn(&pid, "/bin/rm", NULL, NULL, argv, environ) == 0)
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
}

static void teardown(struct hook_bench *b)
{
        struct util_err err = {0};

        for (int k = 0; k < ROOTS; k++) {
                if (b->roots[k] && snap_remove(b->roots[k], "base", &err) < 0 &&
                    err.errnum != ENOENT)
                        warn("remove the base layer: %s", err.msg);
                util_err_clear(&err);
                b->roots[k] = snap_root_close(b->roots[k]);
        }
        if (b->dir[0]) {
                char p[4200];
                snprintf(p, sizeof(p), "%s/mnt", b->dir);
                if (mount_is_mountpoint(p, NULL) == 1)
                        (void)mount_unmount_all(p, NULL);
                rm_tree(b->dir);
        }
        if (b->run[0])
                rm_tree(b->run);
}

int bench_hook(bool json, unsigned iterations)
{
        static const char *const labels[WAYS] = {
                "crun run, plain directory:", "  with 3 /bin/cat hooks:", "crun run, hook:",
                "crun run, hook, dir upper:", "crun run, hook, no pool:"};
        static const char *const keys[WAYS] = {"crun_plain", "crun_true_hooks", "crun_hook",
                                               "crun_hook_dir_upper", "crun_hook_no_pool"};
        struct hook_bench b = {0};
        struct hook_results res = {.iterations = iterations};
        double *ms[WAYS] = {NULL};
        unsigned left = 0;
        int r = 0;

        for (int w = 0; w < WAYS; w++)
                if (!(ms[w] = calloc(iterations, sizeof(double))))
                        r = -ENOMEM;
        if (r >= 0)
                r = setup(&b);
        for (unsigned i = 0; r >= 0 && i < HOOK_BENCH_WARMUP + iterations; i++) {
                bool warm = i < HOOK_BENCH_WARMUP;
                /* Rotate which goes first: drift hits every way alike. */
                for (int j = 0; j < WAYS && r >= 0; j++) {
                        int w = (int)((i + (unsigned)j) % WAYS);
                        char id[32];
                        double t = 0;
                        snprintf(id, sizeof(id), "%c%u", "pthdn"[w], i);
                        int rc = crun_run(&b, way_bundles[w], id, &t);
                        if (rc != 0) {
                                warn("crun run of '%s' failed (%d)", way_bundles[w], rc);
                                show_file(b.dir, "crun.err");
                                show_file(b.dir, "hook.err");
                                r = -EIO;
                        } else if (!warm) {
                                ms[w][i - HOOK_BENCH_WARMUP] = t;
                        }
                }
        }
        if (r >= 0)
                for (int w = 0; w < WAYS; w++)
                        stats(ms[w], iterations, &res.median_ms[w], &res.p90_ms[w]);
        if (b.roots[0] || b.roots[1])
                left = leftovers(&b);
        teardown(&b);
        for (int w = 0; w < WAYS; w++)
                free(ms[w]);
        if (r < 0)
                return r;

        double over = res.median_ms[WAY_HOOK] - res.median_ms[WAY_PLAIN];
        double over_dir = res.median_ms[WAY_HOOK_DIR] - res.median_ms[WAY_PLAIN];
        bool met = over <= HOOK_TARGET_OVERHEAD;
        if (json) {
                printf("{\n");
                printf("  \"suite\": \"hook\",\n");
                printf("  \"iterations\": %u,\n", res.iterations);
                for (int w = 0; w < WAYS; w++) {
                        printf("  \"%s_median_ms\": %.2f,\n", keys[w], res.median_ms[w]);
                        printf("  \"%s_p90_ms\": %.2f,\n", keys[w], res.p90_ms[w]);
                }
                printf("  \"crun_overhead_ms\": %.2f,\n", over);
                printf("  \"crun_overhead_dir_upper_ms\": %.2f,\n", over_dir);
                printf("  \"crun_overhead_no_pool_ms\": %.2f,\n",
                       res.median_ms[WAY_HOOK_NO_POOL] - res.median_ms[WAY_PLAIN]);
                printf("  \"crun_hook_calls_ms\": %.2f,\n",
                       res.median_ms[WAY_TRUE] - res.median_ms[WAY_PLAIN]);
                printf("  \"target_overhead_ms\": %.1f,\n", HOOK_TARGET_OVERHEAD);
                printf("  \"targets_met\": %s,\n", met ? "true" : "false");
                printf("  \"leftovers\": %u\n", left);
                printf("}\n");
        } else {
                printf("%-28s %u each (after %u warm-up), interleaved\n", "iterations:", iterations,
                       HOOK_BENCH_WARMUP);
                for (int w = 0; w < WAYS; w++)
                        printf("%-28s %.2f ms (p90 %.2f ms)\n", labels[w], res.median_ms[w],
                               res.p90_ms[w]);
                printf("%-28s %+.2f ms (target <= %.0f ms: %s)\n", "overhead (medians):", over,
                       HOOK_TARGET_OVERHEAD, met ? "PASS" : "MISS");
                printf("%-28s %+.2f ms\n", "overhead, dir upper:", over_dir);
                printf("%-28s %+.2f ms\n", "overhead, no pool:",
                       res.median_ms[WAY_HOOK_NO_POOL] - res.median_ms[WAY_PLAIN]);
                printf("%-28s %+.2f ms\n", "of which crun's hook calls:",
                       res.median_ms[WAY_TRUE] - res.median_ms[WAY_PLAIN]);
        }
        (void)fflush(stdout);
        if (left) {
                warn("%u thing(s) left behind", left);
                return -EBUSY;
        }
        return 0;
}
