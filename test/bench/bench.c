/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * loopsnap-bench: micro-benchmarks of the loopsnap modules against the
 * performance targets, on the real kernel (root only). Each suite is one
 * entry in a table keyed by name; `loopsnap-bench <suite> [--json]` runs it
 * and prints one figure per line, or exactly one JSON object on stdout.
 *
 * The `loop` suite measures, on a 64 MiB sparse image in a private directory
 * under /var/tmp:
 *   - loop_attach_path + loop_device_detach (read-only), median and p90;
 *   - the `losetup --find --show -r` + `losetup -d` process pair it replaces,
 *     as the baseline for the speedup;
 *   - 64 threads attaching at once from a barrier (each its own device),
 *     time from the release to the last successful attach, five rounds.
 * The `mount` suite runs in a private mount namespace of its own (nothing it
 * mounts can reach the host, even if it crashes) on plain directories in a
 * private directory under /var/tmp, and measures:
 *   - overlay mount and unmount time through the engine for 1, 20, 100 and
 *     500 lowers, on the fd and the legacy API, against a bare mount(2) of the
 *     same directories where its options fit (research/limits.md §4);
 *   - `chown -R` of a tree of 10,101 entries, both ways, against an idmapped
 *     bind of the same tree through the engine, with a new user namespace per
 *     mount and with the engine's cached one (limits.md §5).
 * Every first mount of a kind is checked (an overlay with its upper and its
 * top and bottom layers; ids that really shift); a failed check exits 1.
 *
 * A benchmark reports, it does not assert: a missed target still exits 0.
 * Exit 1 means the run could not be set up, left loop devices behind, or a
 * mount failed or did not do what was asked.
 *
 * Only devices this process attached are ever detached: our own handles, and
 * what `losetup --find --show` printed for our image.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop/loop.h"
#include "mount/mount.h"
#include "snapshot/snapshot.h"
#include "test/bench/bench-hook.h"
#include "util/util.h"

#define BENCH_NAME               "loopsnap-bench"
#define BENCH_DEFAULT_ITERATIONS 200u
#define BENCH_MAX_ITERATIONS     1000000u
#define BENCH_TMP_TEMPLATE       "/var/tmp/loopsnap-bench.XXXXXX"
#define BENCH_IMG_NAME           "bench.img"
#define BENCH_IMG_SIZE           (64ull << 20)
#define BENCH_OWNER              "bench"
#define BENCH_TAG_PREFIX         LOOP_TAG_PREFIX BENCH_OWNER ":"

#define BENCH_WARMUP         10u
#define BENCH_LOSETUP_WARMUP 3u
#define BENCH_LOSETUP_MIN    20u
#define BENCH_CONC_THREADS   64u
#define BENCH_CONC_ROUNDS    5u

#define TARGET_ATTACH_DETACH_US 250.0
#define TARGET_SPEEDUP          10.0
#define TARGET_CONC_MS          25.0

struct bench_opts {
        bool json;
        unsigned iterations;
        bool iterations_given; /* --iterations: else each suite's defaults */
};

struct bench_suite {
        const char *name;
        /* Returns 0 when the run completed (targets missed or not), -errno
         * when it could not be set up, left devices behind, or a check
         * failed (reported). */
        int (*run)(const struct bench_opts *o);
        const char *summary;
};

/* ---- small helpers ------------------------------------------------------ */

static void bench_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bench_warn(const char *fmt, ...)
{
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        fprintf(stderr, BENCH_NAME ": %s\n", line);
}

/* Prints a failure of `phase` the first time only; the rest are counted. */
static void report_failure(bool *printed, const char *phase, const char *msg)
{
        if (*printed)
                return;
        *printed = true;
        bench_warn("%s: %s (further failures of this phase are only counted)", phase, msg);
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return (x > y) - (x < y);
}

/* Median and p90 (nearest rank) of `n` > 0 samples in ns, in microseconds.
 * Sorts `ns` in place. */
static void stats_us(uint64_t *ns, size_t n, double *ret_median, double *ret_p90)
{
        qsort(ns, n, sizeof(*ns), cmp_u64);
        size_t mid = n / 2;
        double median = n % 2 ? (double)ns[mid] : ((double)ns[mid - 1] + (double)ns[mid]) / 2;
        size_t rank = (n * 9 + 9) / 10; /* ceil(0.9 * n), >= 1 */
        *ret_median = median / 1000.0;
        *ret_p90 = (double)ns[rank - 1] / 1000.0;
}

static double median_double(double *v, size_t n)
{
        /* n is small (rounds): insertion sort. */
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
                        double t = v[j];
                        v[j] = v[j - 1];
                        v[j - 1] = t;
                }
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- the temporary directory and image ---------------------------------- */

struct bench_tmp {
        char dir[sizeof(BENCH_TMP_TEMPLATE)];
        char img[sizeof(BENCH_TMP_TEMPLATE) + sizeof(BENCH_IMG_NAME) + 1];
        bool have_dir;
        bool have_img;
};

static void bench_tmp_done(struct bench_tmp *t)
{
        if (t->have_img && unlink(t->img) < 0)
                bench_warn("remove '%s': %s", t->img, strerror(errno));
        t->have_img = false;
        if (t->have_dir && rmdir(t->dir) < 0)
                bench_warn("remove '%s': %s", t->dir, strerror(errno));
        t->have_dir = false;
}

/* A private directory under /var/tmp (disk-backed, unlike a tmpfs /tmp, so
 * direct I/O behaves as it would for real images) with a sparse image. */
static int bench_tmp_init(struct bench_tmp *t)
{
        _cleanup_close_ int fd = -EBADF;

        memcpy(t->dir, BENCH_TMP_TEMPLATE, sizeof(BENCH_TMP_TEMPLATE));
        if (!mkdtemp(t->dir)) {
                int r = -errno;
                bench_warn("create a directory from '%s': %s", BENCH_TMP_TEMPLATE, strerror(-r));
                return r;
        }
        t->have_dir = true;
        snprintf(t->img, sizeof(t->img), "%s/" BENCH_IMG_NAME, t->dir);

        fd = open(t->img, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                int r = -errno;
                bench_warn("create '%s': %s", t->img, strerror(-r));
                return r;
        }
        t->have_img = true;
        if (ftruncate(fd, (off_t)BENCH_IMG_SIZE) < 0) {
                int r = -errno;
                bench_warn("resize '%s' to %llu bytes: %s", t->img, BENCH_IMG_SIZE, strerror(-r));
                return r;
        }
        return 0;
}

/* ---- results ------------------------------------------------------------ */

struct loop_results {
        unsigned iterations;
        bool have_attach_detach; /* at least one successful iteration */
        double attach_detach_median_us;
        double attach_detach_p90_us;
        unsigned attach_detach_failures; /* warm-up included */

        bool have_losetup; /* installed and at least one successful pair */
        bool losetup_installed;
        unsigned losetup_iterations;
        double losetup_pair_median_us;
        double losetup_pair_p90_us;
        unsigned losetup_failures;

        double concurrent64_ms;       /* median over the rounds */
        double concurrent64_first_ms; /* round 1: devices may need creating */
        unsigned concurrent64_failures;

        size_t leaked_devices;
        bool direct_io;
        int configure; /* loop_feature_configure(): 1, 0, -1 not probed */
};

static bool results_have_speedup(const struct loop_results *res)
{
        return res->have_losetup && res->have_attach_detach && res->attach_detach_median_us > 0;
}

static double results_speedup(const struct loop_results *res)
{
        return results_have_speedup(res)
                       ? res->losetup_pair_median_us / res->attach_detach_median_us
                       : 0.0;
}

static bool target_attach_detach_met(const struct loop_results *res)
{
        return res->have_attach_detach && res->attach_detach_failures == 0 &&
               res->attach_detach_median_us <= TARGET_ATTACH_DETACH_US;
}

/* Without losetup the speedup cannot be shown, so the target is not met. */
static bool target_speedup_met(const struct loop_results *res)
{
        return results_have_speedup(res) && results_speedup(res) >= TARGET_SPEEDUP;
}

static bool target_concurrent_met(const struct loop_results *res)
{
        return res->concurrent64_failures == 0 && res->concurrent64_ms <= TARGET_CONC_MS;
}

static bool targets_met(const struct loop_results *res)
{
        return target_attach_detach_met(res) && target_speedup_met(res) &&
               target_concurrent_met(res);
}

/* ---- 1. attach + detach of our code -------------------------------------- */

static int bench_attach_detach(const char *img, struct loop_results *res)
{
        _cleanup_free_ uint64_t *samples = NULL;
        char id[32];
        size_t n_samples = 0;
        bool printed = false, first = true;

        samples = calloc(res->iterations, sizeof(*samples));
        if (!samples) {
                bench_warn("allocate %u samples: %s", res->iterations, strerror(ENOMEM));
                return -ENOMEM;
        }
        snprintf(id, sizeof(id), "%d", (int)getpid());
        const struct loop_attach_opts opts = {
                .flags = LOOP_ATTACH_READ_ONLY,
                .owner = BENCH_OWNER,
                .id = id,
        };

        for (unsigned i = 0; i < BENCH_WARMUP + res->iterations; i++) {
                struct util_err err = {0};
                struct loop_device *d = NULL;
                bool dio = false;

                uint64_t t0 = util_now_ns();
                int r = loop_attach_path(img, &opts, &d, &err);
                if (r >= 0) {
                        dio = loop_device_is_direct_io(d);
                        r = loop_device_detach(TAKE_PTR(d), &err);
                }
                uint64_t t1 = util_now_ns();

                if (r != LOOP_DETACHED) {
                        res->attach_detach_failures++;
                        report_failure(&printed, "attach+detach",
                                       r < 0 ? err.msg
                                             : "detach deferred: the device was still in use");
                        continue;
                }
                if (first) {
                        res->direct_io = dio;
                        first = false;
                }
                if (i >= BENCH_WARMUP)
                        samples[n_samples++] = t1 - t0;
        }
        if (n_samples > 0) {
                stats_us(samples, n_samples, &res->attach_detach_median_us,
                         &res->attach_detach_p90_us);
                res->have_attach_detach = true;
        }
        return 0;
}

/* ---- 2. the losetup baseline ---------------------------------------------- */

/* /usr/sbin/losetup, /sbin/losetup, or the first match on PATH. */
static int find_program(const char *name, char *buf, size_t size)
{
        static const char *const fixed[] = {"/usr/sbin", "/sbin"};
        const char *path = getenv("PATH");

        for (size_t i = 0; i < UTIL_ARRAY_SIZE(fixed); i++) {
                snprintf(buf, size, "%s/%s", fixed[i], name);
                if (access(buf, X_OK) == 0)
                        return 0;
        }
        while (path && *path) {
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

/*
 * Runs `prog` with `argv` as a child (posix_spawn), its stdout captured
 * through a pipe into `out` (NUL-terminated; the rest is read and dropped),
 * stderr inherited. Returns the exit status (>= 0; 128 + N for signal N), or
 * -errno with `err` filled when it could not be run.
 */
static int run_capture(const char *prog, char *const argv[], char *out, size_t out_size,
                       struct util_err *err)
{
        _cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
        posix_spawn_file_actions_t fa;
        int p[2], status = 0, read_errno = 0;
        size_t len = 0;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return util_err_set(err, errno, "pipe");
        rfd = p[0];
        wfd = p[1];

        int r = posix_spawn_file_actions_init(&fa);
        if (r != 0)
                return util_err_set(err, r, "spawn '%s'", prog);
        /* dup2 clears O_CLOEXEC on the child's stdout only. */
        r = posix_spawn_file_actions_adddup2(&fa, wfd, STDOUT_FILENO);
        if (r == 0)
                r = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                return util_err_set(err, r, "spawn '%s'", prog);
        util_closep(&wfd);
        wfd = -EBADF;

        for (;;) {
                char drop[256];
                bool room = len + 1 < out_size;
                ssize_t k = room ? read(rfd, out + len, out_size - 1 - len)
                                 : read(rfd, drop, sizeof(drop));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        read_errno = errno;
                        break;
                }
                if (k == 0)
                        break;
                if (room)
                        len += (size_t)k;
        }
        out[len] = '\0';
        /* Close before waiting: a child still writing gets EPIPE, not stuck. */
        util_closep(&rfd);
        rfd = -EBADF;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return util_err_set(err, errno, "wait for '%s'", prog);
        if (read_errno != 0)
                return util_err_set(err, read_errno, "read the output of '%s'", prog);
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Whether `s` is "/dev/loopN" (after the trailing newline is cut). */
static bool is_loop_path(char *s)
{
        s[strcspn(s, "\n")] = '\0';
        if (strncmp(s, "/dev/loop", strlen("/dev/loop")) != 0)
                return false;
        const char *n = s + strlen("/dev/loop");
        return *n && strspn(n, "0123456789") == strlen(n);
}

/* `losetup -d` of a device losetup attached for us. 0 or -errno (err filled). */
static int losetup_detach(const char *losetup, const char *dev, struct util_err *err)
{
        char *const argv[] = {"losetup", "-d", (char *)dev, NULL};
        char out[256];

        int st = run_capture(losetup, argv, out, sizeof(out), err);
        if (st < 0)
                return st;
        if (st != 0)
                return util_err_setx(err, EIO, "'losetup -d %s' exited with status %d", dev, st);
        return 0;
}

static int bench_losetup(const char *img, struct loop_results *res)
{
        _cleanup_free_ uint64_t *samples = NULL;
        char losetup[PATH_MAX];
        size_t n_samples = 0;
        bool printed = false;

        if (find_program("losetup", losetup, sizeof(losetup)) < 0) {
                bench_warn("losetup not found: no baseline (reported as n/a)");
                return 0;
        }
        res->losetup_installed = true;
        res->losetup_iterations = res->iterations / 4;
        if (res->losetup_iterations < BENCH_LOSETUP_MIN)
                res->losetup_iterations = BENCH_LOSETUP_MIN;
        samples = calloc(res->losetup_iterations, sizeof(*samples));
        if (!samples) {
                bench_warn("allocate %u samples: %s", res->losetup_iterations, strerror(ENOMEM));
                return -ENOMEM;
        }

        for (unsigned i = 0; i < BENCH_LOSETUP_WARMUP + res->losetup_iterations; i++) {
                char *const argv[] = {"losetup", "--find", "--show", "-r", (char *)img, NULL};
                struct util_err err = {0};
                char dev[256];

                uint64_t t0 = util_now_ns();
                int r = run_capture(losetup, argv, dev, sizeof(dev), &err);
                if (r > 0)
                        r = util_err_setx(&err, EIO,
                                          "'losetup --find --show -r %s' exited with "
                                          "status %d",
                                          img, r);
                else if (r == 0 && !is_loop_path(dev))
                        /* Something may be bound that we cannot name: the
                         * leak check at the end finds it by backing file. */
                        r = util_err_setx(&err, EIO, "unexpected output of losetup: '%s'", dev);
                if (r == 0)
                        r = losetup_detach(losetup, dev, &err);
                uint64_t t1 = util_now_ns();

                if (r < 0) {
                        res->losetup_failures++;
                        report_failure(&printed, "losetup pair", err.msg);
                        continue;
                }
                if (i >= BENCH_LOSETUP_WARMUP)
                        samples[n_samples++] = t1 - t0;
        }
        if (n_samples > 0) {
                stats_us(samples, n_samples, &res->losetup_pair_median_us,
                         &res->losetup_pair_p90_us);
                res->have_losetup = true;
        }
        return 0;
}

/* ---- 3. 64 concurrent attaches --------------------------------------------- */

struct conc_round {
        const char *img;
        char id[32];
        /* Held by the main thread while it creates the threads; they pass it
         * before the barrier, which is only set up once all exist. */
        pthread_mutex_t gate;
        pthread_barrier_t barrier;
        bool abort; /* not every thread could be created: skip the barrier */
};

struct conc_slot {
        struct conc_round *round;
        uint64_t start_ns;
        uint64_t end_ns;
        struct loop_device *dev;
        int r;
        struct util_err err;
};

static void *conc_thread(void *arg)
{
        struct conc_slot *s = arg;
        struct conc_round *rd = s->round;

        pthread_mutex_lock(&rd->gate);
        bool aborted = rd->abort;
        pthread_mutex_unlock(&rd->gate);
        if (aborted) {
                s->r = -ECANCELED;
                return NULL;
        }

        /* Not shared: every thread must bind a device of its own. */
        const struct loop_attach_opts opts = {
                .flags = LOOP_ATTACH_READ_ONLY,
                .owner = BENCH_OWNER,
                .id = rd->id,
        };
        pthread_barrier_wait(&rd->barrier);
        s->start_ns = util_now_ns();
        s->r = loop_attach_path(rd->img, &opts, &s->dev, &s->err);
        s->end_ns = util_now_ns();
        return NULL;
}

static int cmp_int(const void *a, const void *b)
{
        int x = *(const int *)a, y = *(const int *)b;
        return (x > y) - (x < y);
}

/*
 * One round: BENCH_CONC_THREADS threads attach from one barrier, then every
 * device is detached. *ret_ms is from the barrier release (the first thread
 * out of it) to the last successful attach. Failed attaches, duplicate
 * device numbers and detaches that did not detach add to *failures.
 * Returns 0, or -errno when the threads could not be set up.
 */
static int conc_round_run(const char *img, double *ret_ms, unsigned *failures, bool *printed)
{
        struct conc_round rd = {.img = img};
        struct conc_slot slots[BENCH_CONC_THREADS];
        pthread_t tids[BENCH_CONC_THREADS];
        int nrs[BENCH_CONC_THREADS];
        size_t n_nrs = 0;
        unsigned created;
        int r = 0;

        snprintf(rd.id, sizeof(rd.id), "%d-c", (int)getpid());
        memset(slots, 0, sizeof(slots));
        pthread_mutex_init(&rd.gate, NULL);

        pthread_mutex_lock(&rd.gate);
        for (created = 0; created < BENCH_CONC_THREADS; created++) {
                slots[created].round = &rd;
                r = pthread_create(&tids[created], NULL, conc_thread, &slots[created]);
                if (r != 0)
                        break;
        }
        if (r == 0)
                r = pthread_barrier_init(&rd.barrier, NULL, BENCH_CONC_THREADS);
        if (r != 0)
                rd.abort = true;
        pthread_mutex_unlock(&rd.gate);
        for (unsigned i = 0; i < created; i++)
                pthread_join(tids[i], NULL);
        pthread_mutex_destroy(&rd.gate);
        if (rd.abort) {
                bench_warn("set up %u threads: %s", BENCH_CONC_THREADS, strerror(r));
                return -r;
        }
        pthread_barrier_destroy(&rd.barrier);

        uint64_t start = UINT64_MAX, end = 0;
        for (unsigned i = 0; i < BENCH_CONC_THREADS; i++) {
                struct conc_slot *s = &slots[i];
                if (s->start_ns < start)
                        start = s->start_ns;
                if (s->r < 0) {
                        (*failures)++;
                        report_failure(printed, "concurrent attach", s->err.msg);
                        continue;
                }
                if (s->end_ns > end)
                        end = s->end_ns;
                nrs[n_nrs++] = loop_device_get_nr(s->dev);
        }
        *ret_ms = end > start ? (double)(end - start) / 1e6 : 0.0;

        qsort(nrs, n_nrs, sizeof(*nrs), cmp_int);
        for (size_t i = 1; i < n_nrs; i++)
                if (nrs[i] == nrs[i - 1]) {
                        char msg[96];
                        (*failures)++;
                        snprintf(msg, sizeof(msg), "two attaches got the same device loop%d",
                                 nrs[i]);
                        report_failure(printed, "concurrent attach", msg);
                }

        for (unsigned i = 0; i < BENCH_CONC_THREADS; i++) {
                struct util_err err = {0};
                if (!slots[i].dev)
                        continue;
                r = loop_device_detach(TAKE_PTR(slots[i].dev), &err);
                if (r != LOOP_DETACHED) {
                        (*failures)++;
                        report_failure(printed, "concurrent detach",
                                       r < 0 ? err.msg
                                             : "detach deferred: the device was still in use");
                }
        }
        return 0;
}

static int bench_concurrent(const char *img, struct loop_results *res)
{
        double ms[BENCH_CONC_ROUNDS];
        bool printed = false;

        for (unsigned i = 0; i < BENCH_CONC_ROUNDS; i++) {
                int r = conc_round_run(img, &ms[i], &res->concurrent64_failures, &printed);
                if (r < 0)
                        return r;
        }
        res->concurrent64_first_ms = ms[0];
        res->concurrent64_ms = median_double(ms, BENCH_CONC_ROUNDS);
        return 0;
}

/* ---- leak check --------------------------------------------------------- */

/*
 * Counts what is left: every device tagged "loopsnap:bench:" (ours or of
 * another bench run), and untagged devices on our image (losetup's). What is
 * provably ours is detached: our exact tags, and anything bound to our
 * image, which only this process knows. Returns 0, or -errno.
 */
static int bench_leak_check(const char *img, const char *losetup, size_t *ret_leaked)
{
        _cleanup_free_ struct loop_status *tagged = NULL, *on_img = NULL;
        const struct loop_filter by_tag = {.tag_prefix = BENCH_TAG_PREFIX};
        const struct loop_filter by_img = {.backing_path = img};
        size_t n_tagged = 0, n_on_img = 0, leaked = 0;
        struct util_err err = {0};
        char tag_pid[LOOP_TAG_MAX + 1], tag_conc[LOOP_TAG_MAX + 1];

        if (loop_list(&by_tag, &tagged, &n_tagged, &err) < 0 ||
            loop_list(&by_img, &on_img, &n_on_img, &err) < 0) {
                bench_warn("leak check: %s", err.msg);
                return -err.errnum;
        }
        snprintf(tag_pid, sizeof(tag_pid), BENCH_TAG_PREFIX "%d", (int)getpid());
        snprintf(tag_conc, sizeof(tag_conc), BENCH_TAG_PREFIX "%d-c", (int)getpid());

        for (size_t i = 0; i < n_tagged; i++) {
                const struct loop_status *st = &tagged[i];
                bool ours = strcmp(st->tag, tag_pid) == 0 || strcmp(st->tag, tag_conc) == 0;
                leaked++;
                bench_warn("leaked: %s (tag '%s'%s)", st->path, st->tag,
                           ours ? "" : ", not from this run: left alone");
                if (ours && loop_detach_tagged(st->path, BENCH_OWNER, &err) < 0) {
                        bench_warn("detach %s: %s", st->path, err.msg);
                        util_err_clear(&err);
                }
        }
        for (size_t i = 0; i < n_on_img; i++) {
                const struct loop_status *st = &on_img[i];
                if (strncmp(st->tag, BENCH_TAG_PREFIX, strlen(BENCH_TAG_PREFIX)) == 0)
                        continue; /* counted above */
                leaked++;
                bench_warn("leaked: %s (bound to '%s' by losetup)", st->path, img);
                if (losetup && losetup_detach(losetup, st->path, &err) < 0) {
                        bench_warn("detach %s: %s", st->path, err.msg);
                        util_err_clear(&err);
                }
        }
        *ret_leaked = leaked;
        return 0;
}

/* ---- output ------------------------------------------------------------- */

static const char *pass_miss(bool met)
{
        return met ? "PASS" : "MISS";
}

/* One figure per line: the label padded so that the values line up. */
static void text_line(const char *label, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void text_line(const char *label, const char *fmt, ...)
{
        va_list ap;

        printf("%-28s ", label);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
}

static void print_text(const struct loop_results *res)
{
        char med[32], p90[32];

        text_line("iterations:", "%u (losetup: %u, concurrent rounds: %u)", res->iterations,
                  res->losetup_iterations, BENCH_CONC_ROUNDS);

        snprintf(med, sizeof(med), "n/a");
        snprintf(p90, sizeof(p90), "n/a");
        if (res->have_attach_detach) {
                snprintf(med, sizeof(med), "%.1f us", res->attach_detach_median_us);
                snprintf(p90, sizeof(p90), "%.1f us", res->attach_detach_p90_us);
        }
        text_line("attach+detach median:", "%-10s (target <= %.0f us, 0 failures: %s)", med,
                  TARGET_ATTACH_DETACH_US, pass_miss(target_attach_detach_met(res)));
        text_line("attach+detach p90:", "%s", p90);
        text_line("attach+detach failures:", "%u", res->attach_detach_failures);

        snprintf(med, sizeof(med), "n/a");
        snprintf(p90, sizeof(p90), "n/a");
        if (res->have_losetup) {
                snprintf(med, sizeof(med), "%.1f us", res->losetup_pair_median_us);
                snprintf(p90, sizeof(p90), "%.1f us", res->losetup_pair_p90_us);
        }
        text_line("losetup pair median:", "%s", med);
        text_line("losetup pair p90:", "%s", p90);
        if (res->losetup_installed)
                text_line("losetup pair failures:", "%u", res->losetup_failures);

        snprintf(med, sizeof(med), "n/a");
        if (results_have_speedup(res))
                snprintf(med, sizeof(med), "%.1fx", results_speedup(res));
        text_line("speedup vs losetup:", "%-10s (target >= %.0fx: %s)", med, TARGET_SPEEDUP,
                  pass_miss(target_speedup_met(res)));

        snprintf(med, sizeof(med), "%.1f ms", res->concurrent64_ms);
        text_line("concurrent64 median:", "%-10s (target <= %.0f ms, 0 failures: %s)", med,
                  TARGET_CONC_MS, pass_miss(target_concurrent_met(res)));
        text_line("concurrent64 first round:", "%.1f ms", res->concurrent64_first_ms);
        text_line("concurrent64 failures:", "%u", res->concurrent64_failures);
        text_line("direct I/O:", "%s", res->direct_io ? "on" : "off");
        text_line("LOOP_CONFIGURE:", "%s",
                  res->configure > 0    ? "yes"
                  : res->configure == 0 ? "no"
                                        : "not probed");
        text_line("leaked devices:", "%zu", res->leaked_devices);
        text_line("targets:", "%s", targets_met(res) ? "all met" : "MISSED");
}

/* A number, or null when it was not measured. */
static void json_number(const char *key, bool have, double v)
{
        if (have)
                printf("  \"%s\": %.1f,\n", key, v);
        else
                printf("  \"%s\": null,\n", key);
}

static const char *json_bool(bool v)
{
        return v ? "true" : "false";
}

static void print_json(const struct loop_results *res)
{
        printf("{\n");
        printf("  \"suite\": \"loop\",\n");
        printf("  \"iterations\": %u,\n", res->iterations);
        json_number("attach_detach_median_us", res->have_attach_detach,
                    res->attach_detach_median_us);
        json_number("attach_detach_p90_us", res->have_attach_detach, res->attach_detach_p90_us);
        printf("  \"attach_detach_failures\": %u,\n", res->attach_detach_failures);
        json_number("losetup_pair_median_us", res->have_losetup, res->losetup_pair_median_us);
        json_number("losetup_pair_p90_us", res->have_losetup, res->losetup_pair_p90_us);
        if (res->losetup_installed) {
                printf("  \"losetup_iterations\": %u,\n", res->losetup_iterations);
                printf("  \"losetup_failures\": %u,\n", res->losetup_failures);
        } else {
                printf("  \"losetup_iterations\": null,\n");
                printf("  \"losetup_failures\": null,\n");
        }
        json_number("speedup_vs_losetup", results_have_speedup(res), results_speedup(res));
        json_number("concurrent64_ms", true, res->concurrent64_ms);
        json_number("concurrent64_first_ms", true, res->concurrent64_first_ms);
        printf("  \"concurrent64_rounds\": %u,\n", BENCH_CONC_ROUNDS);
        printf("  \"concurrent64_failures\": %u,\n", res->concurrent64_failures);
        printf("  \"leaked_devices\": %zu,\n", res->leaked_devices);
        printf("  \"direct_io\": %s,\n", json_bool(res->direct_io));
        printf("  \"configure\": %s,\n",
               res->configure < 0 ? "null" : json_bool(res->configure > 0));
        printf("  \"targets_met\": %s\n", json_bool(targets_met(res)));
        printf("}\n");
}

/* ---- the loop suite ------------------------------------------------------- */

static int bench_loop(const struct bench_opts *o)
{
        _cleanup_(bench_tmp_done) struct bench_tmp tmp = {0};
        struct loop_results res = {.iterations = o->iterations};
        char losetup[PATH_MAX];

        int r = bench_tmp_init(&tmp);
        if (r < 0)
                return r;
        r = bench_attach_detach(tmp.img, &res);
        if (r >= 0)
                r = bench_losetup(tmp.img, &res);
        if (r >= 0)
                r = bench_concurrent(tmp.img, &res);
        res.configure = loop_feature_configure();

        /* Also after a setup error: whatever was bound is found and undone. */
        bool have_losetup = find_program("losetup", losetup, sizeof(losetup)) == 0;
        int k = bench_leak_check(tmp.img, have_losetup ? losetup : NULL, &res.leaked_devices);
        if (r < 0)
                return r;
        if (k < 0)
                return k;

        if (o->json)
                print_json(&res);
        else
                print_text(&res);
        (void)fflush(stdout);

        if (res.leaked_devices > 0) {
                bench_warn("%zu loop device(s) left behind", res.leaked_devices);
                return -EBUSY;
        }
        return 0;
}

/* ---- the mount suite ------------------------------------------------------ */

#define BENCH_OVL_ITERATIONS   30u
#define BENCH_IDMAP_ITERATIONS 50u
#define BENCH_MOUNT_WARMUP     2u
#define BENCH_OVL_LAYERS       500u /* the kernel's maximum (OVL_MAX_STACK) */
#define BENCH_TREE_DIRS        100u
#define BENCH_TREE_FILES       100u /* per directory */
#define BENCH_CHOWN_ROUNDS     5u
#define BENCH_CHOWN_WARMUP     1u
#define BENCH_IDMAP_RANGE      "0:100000:65536"
#define BENCH_IDMAP_HOST_ROOT  100000u
/* mount(2) silently cuts its data page here (research/limits.md §4): the
 * bare mount(2) baseline is only run when its options fit. */
#define BENCH_MOUNT2_DATA_MAX 4095u
#define BENCH_RM_DEPTH_MAX    8u
#define BENCH_PATH_SIZE       128u

#define TARGET_OVL500_MS          6.0
#define TARGET_IDMAP_RATIO        100.0
#define TARGET_IDMAP_CACHED_RATIO 1000.0

#ifndef OVERLAYFS_SUPER_MAGIC
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#endif

static const unsigned ovl_sizes[] = {1, 20, 100, BENCH_OVL_LAYERS};
#define OVL_SIZES UTIL_ARRAY_SIZE(ovl_sizes)

static int bench_warn_errno(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* bench_warn("<fmt>: <strerror(errnum)>"); returns -errnum. */
static int bench_warn_errno(int errnum, const char *fmt, ...)
{
        char line[768];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        bench_warn("%s: %s", line, strerror(errnum));
        return -errnum;
}

static int path_fmt(char *buf, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* snprintf into a path buffer; -ENAMETOOLONG (reported) when it does not fit. */
static int path_fmt(char *buf, size_t size, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        int n = vsnprintf(buf, size, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= size) {
                bench_warn("path too long for %zu bytes: '%s...'", size, buf);
                return -ENAMETOOLONG;
        }
        return 0;
}

/* Samples of one figure, in ns; room for `cap` (the measured iterations). */
struct series {
        uint64_t *ns;
        size_t n;
        size_t cap;
};

static void series_add(struct series *s, uint64_t ns)
{
        if (s->n < s->cap)
                s->ns[s->n++] = ns;
}

struct figure {
        bool have;
        double median_ms;
        double p90_ms;
};

/* Median and p90 of the samples in ms (sorts them); `have` when there are any. */
static void figure_from(struct figure *f, struct series *s)
{
        if (s->n == 0)
                return;
        stats_us(s->ns, s->n, &f->median_ms, &f->p90_ms);
        f->median_ms /= 1000.0;
        f->p90_ms /= 1000.0;
        f->have = true;
}

enum ovl_way {
        OVL_FD,     /* the engine, MOUNT_API_FD */
        OVL_LEGACY, /* the engine, MOUNT_API_LEGACY */
        OVL_MOUNT2, /* a bare mount(2) with absolute paths: the baseline */
        OVL_WAYS,
};

static const char *const ovl_way_names[OVL_WAYS] = {"fd", "legacy", "mount(2)"};

struct ovl_way_result {
        struct figure mount;
        struct figure umount;
        /* Not measured: the options do not fit mount(2)'s page (legacy: the
         * engine refused with E2BIG; mount(2): longer than 4095 bytes). */
        bool too_big;
        size_t data_len; /* mount(2): the length of its options */
        unsigned failures;
};

struct ovl_result {
        unsigned lowers;
        struct ovl_way_result way[OVL_WAYS];
};

struct mount_results {
        unsigned ovl_iterations;
        unsigned idmap_iterations;
        enum mount_api api_probed;
        struct ovl_result ovl[OVL_SIZES];

        size_t chown_entries; /* what chown -R walks: the root, the dirs, the files */
        bool chown_installed;
        struct figure chown;      /* both directions */
        struct figure chown_up;   /* 0:0 -> 100000:100000 */
        struct figure chown_down; /* and back */
        unsigned chown_failures;

        struct figure idmap_new;    /* a new engine per apply: makes the userns */
        struct figure idmap_cached; /* one engine: its cached userns */
        struct figure idmap_umount;
        unsigned idmap_failures;

        size_t leaked_mounts; /* still mounted below our directory at the end */
};

static const struct ovl_result *ovl_result_for(const struct mount_results *res, unsigned lowers)
{
        for (size_t i = 0; i < OVL_SIZES; i++)
                if (res->ovl[i].lowers == lowers)
                        return &res->ovl[i];
        return NULL;
}

static bool have_ovl_ratio(const struct mount_results *res)
{
        const struct ovl_result *r = ovl_result_for(res, 20);
        return r && r->way[OVL_FD].mount.have && r->way[OVL_MOUNT2].mount.have &&
               r->way[OVL_MOUNT2].mount.median_ms > 0;
}

/* The engine's fd mount over a bare mount(2) of the same 20 directories. */
static double ovl_ratio(const struct mount_results *res)
{
        const struct ovl_result *r = ovl_result_for(res, 20);
        return have_ovl_ratio(res)
                       ? r->way[OVL_FD].mount.median_ms / r->way[OVL_MOUNT2].mount.median_ms
                       : 0.0;
}

static const struct figure *ovl500_fd(const struct mount_results *res)
{
        return &ovl_result_for(res, BENCH_OVL_LAYERS)->way[OVL_FD].mount;
}

static bool have_idmap_ratio(const struct mount_results *res, const struct figure *idmap)
{
        return res->chown.have && idmap->have && idmap->median_ms > 0;
}

static double idmap_ratio(const struct mount_results *res, const struct figure *idmap)
{
        return have_idmap_ratio(res, idmap) ? res->chown.median_ms / idmap->median_ms : 0.0;
}

static bool target_ovl500_met(const struct mount_results *res)
{
        return ovl500_fd(res)->have && ovl500_fd(res)->median_ms <= TARGET_OVL500_MS;
}

/* Without chown the ratios cannot be shown, so the targets are not met. */
static bool target_idmap_met(const struct mount_results *res)
{
        return have_idmap_ratio(res, &res->idmap_new) &&
               idmap_ratio(res, &res->idmap_new) >= TARGET_IDMAP_RATIO;
}

static bool target_idmap_cached_met(const struct mount_results *res)
{
        return have_idmap_ratio(res, &res->idmap_cached) &&
               idmap_ratio(res, &res->idmap_cached) >= TARGET_IDMAP_CACHED_RATIO;
}

static bool mount_targets_met(const struct mount_results *res)
{
        return target_ovl500_met(res) && target_idmap_met(res) && target_idmap_cached_met(res);
}

static unsigned mount_failures(const struct mount_results *res)
{
        unsigned n = res->chown_failures + res->idmap_failures;
        for (size_t i = 0; i < OVL_SIZES; i++)
                for (size_t w = 0; w < OVL_WAYS; w++)
                        n += res->ovl[i].way[w].failures;
        return n;
}

/* ---- the directory: layers, targets, the chown tree ----------------------- */

struct mnt_bench {
        char dir[sizeof(BENCH_TMP_TEMPLATE)];
        char layers[BENCH_PATH_SIZE];  /* <dir>/L: layers 0..499, u/upper, u/work */
        char upper[BENCH_PATH_SIZE];   /* <dir>/L/u/upper */
        char work[BENCH_PATH_SIZE];    /* <dir>/L/u/work */
        char target[BENCH_PATH_SIZE];  /* <dir>/target: the overlays */
        char tree[BENCH_PATH_SIZE];    /* <dir>/T: the chown and idmap tree */
        char itarget[BENCH_PATH_SIZE]; /* <dir>/itarget: the idmapped binds */
        char scratch[BENCH_PATH_SIZE]; /* the engines' scratch_dir */
        char id[32];                   /* loop_id of the applies (no loop is used) */
        bool have_dir;
};

/*
 * Removes `name` (in `parent_fd`) and everything below it, but never crosses
 * into a mount: a directory that is the root of a mount fails with -EBUSY and
 * is left alone, so a mount that could not be undone never leads the removal
 * into what it shows (the idmapped bind shows the tree, on the same st_dev).
 */
static int rm_tree_at(int parent_fd, const char *name, unsigned depth)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        struct statx stx;
        int ret = 0;

        if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode))
                return unlinkat(parent_fd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
        if (depth >= BENCH_RM_DEPTH_MAX)
                return -ELOOP;

        fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE, &stx) < 0)
                return -errno;
        /* No answer (kernel < 5.8) is treated as "maybe a mount": refused. */
        if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) ||
            (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
                return -EBUSY;
        DIR *d = fdopendir(fd);
        if (!d)
                return -errno;
        fd = -EBADF; /* closedir closes it. NOLINT(clang-analyzer-deadcode.DeadStores): cleanup */
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0 && ret == 0)
                                ret = -errno;
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                int r = rm_tree_at(dirfd(d), de->d_name, depth + 1);
                if (r < 0 && ret == 0)
                        ret = r;
        }
        closedir(d);
        if (ret < 0)
                return ret;
        return unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

/* Undoes mountinfo's octal escapes ("\040" for a space) in place. */
static void unescape_octal(char *s)
{
        char *o = s;

        for (; *s; s++) {
                if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
                    s[3] >= '0' && s[3] <= '7') {
                        *o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
                        s += 3;
                } else {
                        *o++ = *s;
                }
        }
        *o = '\0';
}

/* The targets of every mount below `dir`, in mountinfo's order (the last
 * mounted last): *ret (free each and it), *ret_n. 0 or -errno (reported). */
static int mounts_below(const char *dir, char ***ret, size_t *ret_n)
{
        _cleanup_free_ char *line = NULL;
        char **found = NULL;
        size_t cap = 0, n = 0, len = strlen(dir);
        int ret_r = 0;

        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return bench_warn_errno(errno, "open /proc/self/mountinfo");
        while (getline(&line, &cap, f) > 0) {
                /* "id parent major:minor root mountpoint options ..." */
                char *field = line;
                for (int k = 0; k < 4 && field; k++) {
                        field = strchr(field, ' ');
                        field = field ? field + 1 : NULL;
                }
                if (!field)
                        continue;
                field[strcspn(field, " \n")] = '\0';
                unescape_octal(field);
                if (strncmp(field, dir, len) != 0 || field[len] != '/')
                        continue;
                char **v = realloc(found, (n + 1) * sizeof(*found));
                if (v)
                        found = v;
                if (!v || !(found[n] = strdup(field))) {
                        ret_r = bench_warn_errno(ENOMEM, "list mounts");
                        break;
                }
                n++;
        }
        (void)fclose(f); /* read only */
        *ret = found;
        *ret_n = n;
        return ret_r;
}

/*
 * Detaches every mount still below `dir` in our private namespace, the last
 * mounted first, each one reported. Once the targets are unmounted there
 * should be none: one found here was left behind by the engine (an
 * intermediate or a compaction bind in the scratch dir).
 * Returns how many there were, or -errno.
 */
static int sweep_mounts(const char *dir)
{
        char **found = NULL;
        size_t n = 0;
        int ret = mounts_below(dir, &found, &n);
        for (size_t i = n; i-- > 0;) {
                bench_warn("leaked mount: '%s' (detached now)", found[i]);
                if (umount2(found[i], MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && ret == 0)
                        ret = bench_warn_errno(errno, "detach '%s'", found[i]);
                free(found[i]);
        }
        free(found);
        return ret < 0 ? ret : (int)n;
}

/*
 * Unmounts what is left on `targets` (n of them, "" = unused), then sweeps
 * any other mount under `dir`; the count of swept mounts (leaks) goes to
 * *ret_leaked (may be NULL). Returns 0 or the first -errno (reported).
 */
static int bench_unmount_leftovers(const char *const *targets, size_t n, const char *dir,
                                   size_t *ret_leaked)
{
        int ret = 0;

        for (size_t i = 0; i < n; i++) {
                struct util_err err = {0};
                if (!targets[i][0])
                        continue;
                int r = mount_unmount_all(targets[i], &err);
                if (r > 0)
                        bench_warn("cleanup: unmounted %d mount(s) left on '%s'", r, targets[i]);
                if (r < 0 && r != -ENOENT) {
                        bench_warn("cleanup: %s", err.msg);
                        if (ret == 0)
                                ret = r;
                }
        }
        int r = sweep_mounts(dir);
        if (r < 0 && ret == 0)
                ret = r;
        if (r > 0 && ret_leaked)
                *ret_leaked = (size_t)r;
        return ret;
}

/*
 * Unmounts whatever is still on our targets (only after a failure), detaches
 * anything else left below the directory (*ret_leaked, may be NULL: how
 * many), then removes the directory. Idempotent. Returns 0 or the first
 * -errno (reported).
 */
static int mnt_bench_cleanup(struct mnt_bench *b, size_t *ret_leaked)
{
        const char *const targets[] = {b->target, b->itarget};

        if (!b->have_dir)
                return 0;
        int ret = bench_unmount_leftovers(targets, UTIL_ARRAY_SIZE(targets), b->dir, ret_leaked);
        int r = rm_tree_at(AT_FDCWD, b->dir, 0);
        if (r < 0) {
                bench_warn("remove '%s': %s%s", b->dir, strerror(-r),
                           r == -EBUSY ? " (a mount is still inside: left alone)" : "");
                return ret == 0 ? r : ret;
        }
        b->have_dir = false;
        return ret;
}

static void mnt_bench_done(struct mnt_bench *b)
{
        (void)mnt_bench_cleanup(b, NULL);
}

/* Creates `name` in `at_fd` with `content`. Returns 0 or -errno (reported). */
static int write_file_at(int at_fd, const char *dir, const char *name, const char *content)
{
        _cleanup_close_ int fd = -EBADF;
        size_t len = strlen(content);

        fd = openat(at_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return bench_warn_errno(errno, "create '%s/%s'", dir, name);
        ssize_t w = len > 0 ? write(fd, content, len) : 0;
        if (w < 0)
                return bench_warn_errno(errno, "write '%s/%s'", dir, name);
        if ((size_t)w != len)
                return bench_warn_errno(EIO, "write '%s/%s': short write", dir, name);
        return 0;
}

static int mkdir_at(int at_fd, const char *dir, const char *name)
{
        if (mkdirat(at_fd, name, 0755) < 0)
                return bench_warn_errno(errno, "create '%s/%s'", dir, name);
        return 0;
}

/* <L>/<k>/f<k> ("k\n") for every layer, and the empty <L>/u/{upper,work}. */
static int make_layers(const struct mnt_bench *b)
{
        _cleanup_close_ int lfd = -EBADF;
        int r;

        if (mkdir(b->layers, 0755) < 0)
                return bench_warn_errno(errno, "create '%s'", b->layers);
        lfd = open(b->layers, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (lfd < 0)
                return bench_warn_errno(errno, "open '%s'", b->layers);
        for (unsigned k = 0; k < BENCH_OVL_LAYERS; k++) {
                char name[16], file[32], content[16];
                snprintf(name, sizeof(name), "%u", k);
                snprintf(file, sizeof(file), "%u/f%u", k, k);
                snprintf(content, sizeof(content), "%u\n", k);
                if ((r = mkdir_at(lfd, b->layers, name)) < 0 ||
                    (r = write_file_at(lfd, b->layers, file, content)) < 0)
                        return r;
        }
        if ((r = mkdir_at(lfd, b->layers, "u")) < 0 ||
            (r = mkdir_at(lfd, b->layers, "u/upper")) < 0 ||
            (r = mkdir_at(lfd, b->layers, "u/work")) < 0)
                return r;
        return 0;
}

/* <T>/d<i>/f<j>, empty files. *ret_entries: what chown -R walks. */
static int make_tree(const struct mnt_bench *b, size_t *ret_entries)
{
        _cleanup_close_ int tfd = -EBADF;
        size_t entries = 1;
        int r;

        if (mkdir(b->tree, 0755) < 0)
                return bench_warn_errno(errno, "create '%s'", b->tree);
        tfd = open(b->tree, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (tfd < 0)
                return bench_warn_errno(errno, "open '%s'", b->tree);
        for (unsigned i = 0; i < BENCH_TREE_DIRS; i++) {
                _cleanup_close_ int dfd = -EBADF;
                char name[16];
                snprintf(name, sizeof(name), "d%u", i);
                if ((r = mkdir_at(tfd, b->tree, name)) < 0)
                        return r;
                entries++;
                dfd = openat(tfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (dfd < 0)
                        return bench_warn_errno(errno, "open '%s/%s'", b->tree, name);
                for (unsigned j = 0; j < BENCH_TREE_FILES; j++) {
                        char file[16];
                        snprintf(file, sizeof(file), "f%u", j);
                        if ((r = write_file_at(dfd, b->tree, file, "")) < 0)
                                return r;
                        entries++;
                }
        }
        *ret_entries = entries;
        return 0;
}

/* A private mount namespace first, so that nothing of ours can reach the
 * host's mount table, not even when we crash; then the directory. */
static int mnt_bench_init(struct mnt_bench *b, size_t *ret_entries)
{
        int r;

        if (unshare(CLONE_NEWNS) < 0)
                return bench_warn_errno(errno, "unshare(CLONE_NEWNS)");
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return bench_warn_errno(errno, "make / private in our mount namespace");

        memcpy(b->dir, BENCH_TMP_TEMPLATE, sizeof(BENCH_TMP_TEMPLATE));
        if (!mkdtemp(b->dir))
                return bench_warn_errno(errno, "create a directory from '%s'", BENCH_TMP_TEMPLATE);
        b->have_dir = true;
        snprintf(b->id, sizeof(b->id), "%d", (int)getpid());
        if ((r = path_fmt(b->layers, sizeof(b->layers), "%s/L", b->dir)) < 0 ||
            (r = path_fmt(b->upper, sizeof(b->upper), "%s/u/upper", b->layers)) < 0 ||
            (r = path_fmt(b->work, sizeof(b->work), "%s/u/work", b->layers)) < 0 ||
            (r = path_fmt(b->target, sizeof(b->target), "%s/target", b->dir)) < 0 ||
            (r = path_fmt(b->tree, sizeof(b->tree), "%s/T", b->dir)) < 0 ||
            (r = path_fmt(b->itarget, sizeof(b->itarget), "%s/itarget", b->dir)) < 0 ||
            (r = path_fmt(b->scratch, sizeof(b->scratch), "%s/scratch", b->dir)) < 0)
                return r;
        const char *const dirs[] = {b->target, b->itarget, b->scratch};
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(dirs); i++)
                if (mkdir(dirs[i], 0755) < 0)
                        return bench_warn_errno(errno, "create '%s'", dirs[i]);
        if ((r = make_layers(b)) < 0)
                return r;
        return make_tree(b, ret_entries);
}

/* ---- 1. overlay mount time vs the number of lowers ------------------------ */

/*
 * One overlay of the `n` bottom layers, top first (lowerdir=<L>/<n-1>:...:<L>/0)
 * with the upper and work dirs, as a spec, and as the data of a bare mount(2)
 * with the index=off the engine adds (*ret_data).
 */
static int ovl_spec_build(const struct mnt_bench *b, unsigned n, struct mount_spec **ret_spec,
                          char **ret_data)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        _cleanup_free_ char *lower = NULL;
        char upper[BENCH_PATH_SIZE + 16], work[BENCH_PATH_SIZE + 16];
        struct util_err err = {0};
        /* Per layer: the path, '/', at most 3 digits, ':'. */
        size_t size = strlen("lowerdir=") + (size_t)n * (strlen(b->layers) + 5) + 1, len = 0;

        lower = malloc(size);
        if (!lower)
                return bench_warn_errno(ENOMEM, "overlay options");
        len = (size_t)snprintf(lower, size, "lowerdir=");
        for (unsigned k = n; k-- > 0;)
                len += (size_t)snprintf(lower + len, size - len, "%s%s/%u", k == n - 1 ? "" : ":",
                                        b->layers, k);
        snprintf(upper, sizeof(upper), "upperdir=%s", b->upper);
        snprintf(work, sizeof(work), "workdir=%s", b->work);

        const char *const opts[] = {lower, upper, work, NULL};
        int r = mount_spec_new(&spec);
        if (r < 0)
                return bench_warn_errno(-r, "mount spec");
        r = mount_spec_add(spec, "overlay", "overlay", NULL, opts, &err);
        if (r < 0) {
                bench_warn("overlay spec of %u lowers: %s", n, err.msg);
                return r;
        }
        if (asprintf(ret_data, "%s,%s,%s,index=off", lower, upper, work) < 0)
                return bench_warn_errno(ENOMEM, "overlay options");
        *ret_spec = TAKE_PTR(spec);
        return 0;
}

/*
 * The overlay on the target is the one asked for: an overlay, writable (so it
 * has its upper, which a mount(2) cut short can silently drop), showing the
 * top and the bottom layer's files (a cut lowerdir loses the bottom ones).
 * Returns 0, or -EIO (reported).
 */
static int ovl_verify(const struct mnt_bench *b, unsigned n, const char *what)
{
        const unsigned check[] = {n - 1, 0};
        struct statfs sf;
        struct statvfs sv;

        if (statfs(b->target, &sf) < 0 || statvfs(b->target, &sv) < 0)
                return bench_warn_errno(errno, "%s: statfs '%s'", what, b->target);
        if ((unsigned long)sf.f_type != OVERLAYFS_SUPER_MAGIC) {
                bench_warn("%s: '%s' is not an overlay after the mount (f_type 0x%lx)", what,
                           b->target, (unsigned long)sf.f_type);
                return -EIO;
        }
        if (sv.f_flag & ST_RDONLY) {
                bench_warn("%s: the overlay is read-only: its upper layer was lost", what);
                return -EIO;
        }
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(check); i++) {
                char p[BENCH_PATH_SIZE + 16];
                struct stat st;
                if (path_fmt(p, sizeof(p), "%s/f%u", b->target, check[i]) < 0)
                        return -EIO;
                if (stat(p, &st) < 0) {
                        bench_warn("%s: layer %u is missing from the overlay: stat '%s': %s", what,
                                   check[i], p, strerror(errno));
                        return -EIO;
                }
        }
        return 0;
}

static int mount2_overlay(const char *target, const char *data, struct util_err *err)
{
        if (mount("overlay", target, "overlay", 0, data) < 0)
                return util_err_set(err, errno, "mount(2) overlay on '%s'", target);
        return 0;
}

/*
 * Overlays of `n` lowers, `iterations` times each way (after
 * BENCH_MOUNT_WARMUP), the ways interleaved so that load drifts hit all
 * alike: the mount timed (engine apply, or bare mount(2)), then
 * mount_unmount_all timed. The first mount of each way is verified.
 * Returns 0 (failed mounts are counted), or -errno on setup failure or a
 * failed check.
 */
static int ovl_measure(const struct mnt_bench *b, struct mount_engine *const engines[2], unsigned n,
                       unsigned iterations, struct ovl_result *res)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        _cleanup_free_ char *data = NULL;
        _cleanup_free_ uint64_t *buf = NULL;
        struct series mnt[OVL_WAYS], um[OVL_WAYS];
        bool printed[OVL_WAYS] = {false}, verified[OVL_WAYS] = {false};

        int r = ovl_spec_build(b, n, &spec, &data);
        if (r < 0)
                return r;
        buf = calloc((size_t)2 * OVL_WAYS * iterations, sizeof(*buf));
        if (!buf)
                return bench_warn_errno(ENOMEM, "allocate samples");
        for (size_t w = 0; w < OVL_WAYS; w++) {
                mnt[w] = (struct series){.ns = buf + (2 * w) * iterations, .cap = iterations};
                um[w] = (struct series){.ns = buf + (2 * w + 1) * iterations, .cap = iterations};
        }
        /* ovl_spec_build() set data (r >= 0); the analyzer does not follow the
         * variadic bench_warn_errno() to see that it returns < 0. */
        /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
        res->way[OVL_MOUNT2].data_len = strlen(data);
        res->way[OVL_MOUNT2].too_big = strlen(data) > BENCH_MOUNT2_DATA_MAX;

        for (unsigned i = 0; i < BENCH_MOUNT_WARMUP + iterations; i++)
                for (size_t w = 0; w < OVL_WAYS; w++) {
                        struct ovl_way_result *wr = &res->way[w];
                        struct util_err err = {0};
                        char what[64];

                        if (wr->too_big)
                                continue;
                        snprintf(what, sizeof(what), "overlay of %u lowers via %s", n,
                                 ovl_way_names[w]);
                        uint64_t t0 = util_now_ns();
                        r = w == OVL_MOUNT2 ? mount2_overlay(b->target, data, &err)
                                            : mount_engine_apply(engines[w], spec, b->target, b->id,
                                                                 NULL, &err);
                        uint64_t t1 = util_now_ns();
                        if (r == -E2BIG && w == OVL_LEGACY) {
                                /* The engine's refusal of what mount(2) would cut. */
                                wr->too_big = true;
                                bench_warn("%s: %s (reported as null)", what, err.msg);
                                continue;
                        }
                        if (r < 0) {
                                wr->failures++;
                                report_failure(&printed[w], what, err.msg);
                                continue;
                        }
                        if (!verified[w]) {
                                r = ovl_verify(b, n, what);
                                if (r < 0)
                                        return r; /* the cleanup unmounts it */
                                verified[w] = true;
                        }
                        uint64_t t2 = util_now_ns();
                        int u = mount_unmount_all(b->target, &err);
                        uint64_t t3 = util_now_ns();
                        if (u != 1) {
                                char msg[96];
                                snprintf(msg, sizeof(msg), "unmount removed %d mounts, not 1", u);
                                wr->failures++;
                                report_failure(&printed[w], what, u < 0 ? err.msg : msg);
                                continue;
                        }
                        if (i >= BENCH_MOUNT_WARMUP) {
                                series_add(&mnt[w], t1 - t0);
                                series_add(&um[w], t3 - t2);
                        }
                }
        for (size_t w = 0; w < OVL_WAYS; w++) {
                figure_from(&res->way[w].mount, &mnt[w]);
                figure_from(&res->way[w].umount, &um[w]);
        }
        return 0;
}

static int bench_overlays(const struct mnt_bench *b, struct mount_results *res)
{
        _cleanup_(mount_engine_freep) struct mount_engine *fd_engine = NULL;
        _cleanup_(mount_engine_freep) struct mount_engine *legacy_engine = NULL;
        struct mount_engine_opts eo = {
                .loop_owner = BENCH_OWNER,
                .scratch_dir = b->scratch,
                .api = MOUNT_API_FD,
        };
        struct util_err err = {0};

        if (mount_engine_new(&eo, &fd_engine, &err) < 0) {
                bench_warn("mount engine (fd): %s", err.msg);
                return -err.errnum;
        }
        eo.api = MOUNT_API_LEGACY;
        if (mount_engine_new(&eo, &legacy_engine, &err) < 0) {
                bench_warn("mount engine (legacy): %s", err.msg);
                return -err.errnum;
        }
        struct mount_engine *const engines[2] = {
                [OVL_FD] = fd_engine, [OVL_LEGACY] = legacy_engine};
        for (size_t i = 0; i < OVL_SIZES; i++) {
                int r = ovl_measure(b, engines, ovl_sizes[i], res->ovl_iterations, &res->ovl[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- 2. chown -R, the baseline of the idmapped mount ------------------------ */

/* `chown -R <ids> <tree>` as a child process. Returns 0, -ENOENT when chown
 * could not be found, or -errno (err filled). */
static int run_chown(const char *ids, const char *tree, struct util_err *err)
{
        char *const argv[] = {"chown", "-R", (char *)ids, (char *)tree, NULL};
        int status = 0;
        pid_t pid;

        int r = posix_spawnp(&pid, "chown", NULL, NULL, argv, environ);
        if (r != 0)
                return util_err_set(err, r, "spawn 'chown'");
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return util_err_set(err, errno, "wait for 'chown'");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return util_err_setx(err, EIO, "'chown -R %s %s' %s %d", ids, tree,
                                     WIFEXITED(status) ? "exited with status" : "killed by signal",
                                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return 0;
}

static int bench_chown(const struct mnt_bench *b, struct mount_results *res)
{
        static const char *const ids[2] = {"100000:100000", "0:0"};
        /* cppcheck-suppress constVariable ; written through dir[].ns */
        uint64_t all_ns[2 * BENCH_CHOWN_ROUNDS], dir_ns[2][BENCH_CHOWN_ROUNDS];
        struct series all = {.ns = all_ns, .cap = UTIL_ARRAY_SIZE(all_ns)};
        struct series dir[2] = {
                {.ns = dir_ns[0], .cap = BENCH_CHOWN_ROUNDS},
                {.ns = dir_ns[1], .cap = BENCH_CHOWN_ROUNDS},
        };
        bool printed = false;

        res->chown_installed = true;
        for (unsigned round = 0; round < BENCH_CHOWN_WARMUP + BENCH_CHOWN_ROUNDS; round++)
                for (size_t d = 0; d < 2; d++) {
                        struct util_err err = {0};
                        uint64_t t0 = util_now_ns();
                        int r = run_chown(ids[d], b->tree, &err);
                        uint64_t t1 = util_now_ns();
                        if (r == -ENOENT) {
                                bench_warn("chown not found: no baseline (reported as null)");
                                res->chown_installed = false;
                                return 0;
                        }
                        if (r < 0) {
                                res->chown_failures++;
                                report_failure(&printed, "chown -R", err.msg);
                                continue;
                        }
                        if (round >= BENCH_CHOWN_WARMUP) {
                                series_add(&all, t1 - t0);
                                series_add(&dir[d], t1 - t0);
                        }
                }
        figure_from(&res->chown, &all);
        figure_from(&res->chown_up, &dir[0]);
        figure_from(&res->chown_down, &dir[1]);
        return 0;
}

/* ---- 3. the idmapped bind through the engine -------------------------------- */

static int idmap_spec_build(const struct mnt_bench *b, struct mount_spec **ret)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        static const char *const opts[] = {"rbind", "uidmap=" BENCH_IDMAP_RANGE,
                                           "gidmap=" BENCH_IDMAP_RANGE, NULL};
        struct util_err err = {0};

        int r = mount_spec_new(&spec);
        if (r < 0)
                return bench_warn_errno(-r, "mount spec");
        r = mount_spec_add(spec, "bind", b->tree, NULL, opts, &err);
        if (r < 0) {
                bench_warn("idmap spec: %s", err.msg);
                return r;
        }
        *ret = TAKE_PTR(spec);
        return 0;
}

/* The ids of `path` are `uid`:`gid`. Returns 0 or -EIO (reported). */
static int expect_owner(const char *path, unsigned uid, unsigned gid, const char *why)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return bench_warn_errno(errno, "idmap check: stat '%s'", path);
        if (st.st_uid != uid || st.st_gid != gid) {
                bench_warn("idmap check: '%s' is %u:%u, expected %u:%u (%s)", path,
                           (unsigned)st.st_uid, (unsigned)st.st_gid, uid, gid, why);
                return -EIO;
        }
        return 0;
}

/* The bind is really idmapped: a file the tree has as 0:0 shows as
 * 100000:100000 through the target. */
static int idmap_verify(const struct mnt_bench *b)
{
        char src[BENCH_PATH_SIZE + 16], seen[BENCH_PATH_SIZE + 16];
        int r;

        if ((r = path_fmt(src, sizeof(src), "%s/d%u/f%u", b->tree, BENCH_TREE_DIRS - 1,
                          BENCH_TREE_FILES - 1)) < 0 ||
            (r = path_fmt(seen, sizeof(seen), "%s/d%u/f%u", b->itarget, BENCH_TREE_DIRS - 1,
                          BENCH_TREE_FILES - 1)) < 0)
                return r;
        if ((r = expect_owner(src, 0, 0, "the tree itself, after chown -R 0:0")) < 0)
                return r;
        return expect_owner(seen, BENCH_IDMAP_HOST_ROOT, BENCH_IDMAP_HOST_ROOT,
                            "through the idmapped mount");
}

/*
 * One timed apply of the idmapped bind onto the target, checked the first
 * time, then the timed unmount. Samples are kept when `keep`.
 * Returns 0 (a failure is counted), or -errno for a failed check.
 */
static int idmap_once(const struct mnt_bench *b, struct mount_engine *e,
                      const struct mount_spec *spec, const char *what, bool keep,
                      struct series *mnt, struct series *um, bool *verified, bool *printed,
                      struct mount_results *res)
{
        struct util_err err = {0};

        uint64_t t0 = util_now_ns();
        int r = mount_engine_apply(e, spec, b->itarget, b->id, NULL, &err);
        uint64_t t1 = util_now_ns();
        if (r < 0) {
                res->idmap_failures++;
                report_failure(printed, what, err.msg);
                return 0;
        }
        if (!*verified) {
                r = idmap_verify(b);
                if (r < 0)
                        return r; /* the cleanup unmounts it */
                *verified = true;
        }
        uint64_t t2 = util_now_ns();
        int u = mount_unmount_all(b->itarget, &err);
        uint64_t t3 = util_now_ns();
        if (u != 1) {
                char msg[96];
                snprintf(msg, sizeof(msg), "unmount removed %d mounts, not 1", u);
                res->idmap_failures++;
                report_failure(printed, what, u < 0 ? err.msg : msg);
                return 0;
        }
        if (keep) {
                series_add(mnt, t1 - t0);
                if (um)
                        series_add(um, t3 - t2);
        }
        return 0;
}

static int bench_idmap(const struct mnt_bench *b, struct mount_results *res)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        _cleanup_(mount_engine_freep) struct mount_engine *cached = NULL;
        _cleanup_free_ uint64_t *buf = NULL;
        const unsigned n = res->idmap_iterations;
        const struct mount_engine_opts eo = {
                .loop_owner = BENCH_OWNER,
                .scratch_dir = b->scratch,
                .api = MOUNT_API_FD,
        };
        bool printed_new = false, printed_cached = false, verified = false;
        struct util_err err = {0};

        int r = idmap_spec_build(b, &spec);
        if (r < 0)
                return r;
        buf = calloc((size_t)3 * n, sizeof(*buf));
        if (!buf)
                return bench_warn_errno(ENOMEM, "allocate samples");
        struct series new_s = {.ns = buf, .cap = n};
        struct series cached_s = {.ns = buf + n, .cap = n};
        struct series um_s = {.ns = buf + 2 * n, .cap = n};

        /* (a) A new engine for every apply, made outside the timed region: its
         * cache is empty, so the apply makes the user namespace. */
        for (unsigned i = 0; i < BENCH_MOUNT_WARMUP + n; i++) {
                _cleanup_(mount_engine_freep) struct mount_engine *e = NULL;
                if (mount_engine_new(&eo, &e, &err) < 0) {
                        bench_warn("mount engine: %s", err.msg);
                        return -err.errnum;
                }
                r = idmap_once(b, e, spec, "idmapped bind, new userns", i >= BENCH_MOUNT_WARMUP,
                               &new_s, &um_s, &verified, &printed_new, res);
                if (r < 0)
                        return r;
                if (i == 0 && mount_engine_userns_cached(e) != 1) {
                        bench_warn("idmap check: a fresh engine holds %zu user namespaces after "
                                   "one apply, expected 1",
                                   mount_engine_userns_cached(e));
                        return -EIO;
                }
        }

        /* (b) One engine: the warm-up makes and caches the namespace, the
         * timed applies reuse it. */
        if (mount_engine_new(&eo, &cached, &err) < 0) {
                bench_warn("mount engine: %s", err.msg);
                return -err.errnum;
        }
        for (unsigned i = 0; i < BENCH_MOUNT_WARMUP + n; i++) {
                r = idmap_once(b, cached, spec, "idmapped bind, cached userns",
                               i >= BENCH_MOUNT_WARMUP, &cached_s, NULL, &verified, &printed_cached,
                               res);
                if (r < 0)
                        return r;
        }
        if (mount_engine_userns_cached(cached) != 1) {
                bench_warn("idmap check: the engine holds %zu user namespaces after %u applies of "
                           "one mapping, expected 1",
                           mount_engine_userns_cached(cached), BENCH_MOUNT_WARMUP + n);
                return -EIO;
        }
        figure_from(&res->idmap_new, &new_s);
        figure_from(&res->idmap_cached, &cached_s);
        figure_from(&res->idmap_umount, &um_s);
        return 0;
}

/* ---- output of the mount suite ---------------------------------------------- */

static const char *ms_or_na(char *buf, size_t size, const struct figure *f, bool p90)
{
        if (!f->have)
                snprintf(buf, size, "n/a");
        else
                snprintf(buf, size, "%.3f ms", p90 ? f->p90_ms : f->median_ms);
        return buf;
}

static void print_mount_text(const struct mount_results *res)
{
        char a[48], c[48], d[48];

        text_line("overlay API probed:", "%s", mount_api_name(res->api_probed));
        text_line("iterations:", "%u per overlay case, %u per idmap case (after %u warm-up)",
                  res->ovl_iterations, res->idmap_iterations, BENCH_MOUNT_WARMUP);
        for (size_t i = 0; i < OVL_SIZES; i++) {
                const struct ovl_result *o = &res->ovl[i];
                for (size_t w = 0; w < OVL_WAYS; w++) {
                        const struct ovl_way_result *wr = &o->way[w];
                        char label[48];
                        snprintf(label, sizeof(label), "overlay %u %s:", o->lowers,
                                 ovl_way_names[w]);
                        if (wr->too_big && w == OVL_MOUNT2)
                                text_line(label, "n/a (options are %zu bytes; mount(2) takes %u)",
                                          wr->data_len, BENCH_MOUNT2_DATA_MAX);
                        else if (wr->too_big)
                                text_line(label, "n/a (refused with E2BIG: too long for mount(2))");
                        else
                                text_line(label, "%-10s (p90 %s, umount %s, failures %u)",
                                          ms_or_na(a, sizeof(a), &wr->mount, false),
                                          ms_or_na(c, sizeof(c), &wr->mount, true),
                                          ms_or_na(d, sizeof(d), &wr->umount, false), wr->failures);
                }
        }
        text_line("overlay 500 fd mount:", "%-10s (target <= %.0f ms: %s)",
                  ms_or_na(a, sizeof(a), ovl500_fd(res), false), TARGET_OVL500_MS,
                  pass_miss(target_ovl500_met(res)));
        snprintf(a, sizeof(a), "n/a");
        if (have_ovl_ratio(res))
                snprintf(a, sizeof(a), "%.2fx", ovl_ratio(res));
        text_line("overlay 20 fd / mount(2):",
                  "%-10s (engine fd mount over a bare mount(2) of "
                  "the same dirs; 1 = parity, > 1 = the engine is slower)",
                  a);

        snprintf(a, sizeof(a), res->chown_installed ? "n/a" : "n/a (no chown)");
        if (res->chown.have)
                snprintf(a, sizeof(a), "%.1f ms", res->chown.median_ms);
        text_line("chown -R median:",
                  "%-10s (%zu entries; up %s, down %s, %u rounds each, "
                  "failures %u)",
                  a, res->chown_entries, ms_or_na(c, sizeof(c), &res->chown_up, false),
                  ms_or_na(d, sizeof(d), &res->chown_down, false), BENCH_CHOWN_ROUNDS,
                  res->chown_failures);
        text_line("idmap new userns:", "%-10s (p90 %s)",
                  ms_or_na(a, sizeof(a), &res->idmap_new, false),
                  ms_or_na(c, sizeof(c), &res->idmap_new, true));
        text_line("idmap cached userns:", "%-10s (p90 %s)",
                  ms_or_na(a, sizeof(a), &res->idmap_cached, false),
                  ms_or_na(c, sizeof(c), &res->idmap_cached, true));
        text_line("idmap umount:", "%s", ms_or_na(a, sizeof(a), &res->idmap_umount, false));
        text_line("idmap failures:", "%u", res->idmap_failures);

        snprintf(a, sizeof(a), "n/a");
        if (have_idmap_ratio(res, &res->idmap_new))
                snprintf(a, sizeof(a), "%.0fx", idmap_ratio(res, &res->idmap_new));
        text_line("chown / idmap new userns:", "%-10s (target >= %.0fx: %s)", a, TARGET_IDMAP_RATIO,
                  pass_miss(target_idmap_met(res)));
        snprintf(a, sizeof(a), "n/a");
        if (have_idmap_ratio(res, &res->idmap_cached))
                snprintf(a, sizeof(a), "%.0fx", idmap_ratio(res, &res->idmap_cached));
        text_line("chown / idmap cached:", "%-10s (target >= %.0fx: %s)", a,
                  TARGET_IDMAP_CACHED_RATIO, pass_miss(target_idmap_cached_met(res)));
        text_line("failures:", "%u", mount_failures(res));
        text_line("leaked mounts:", "%zu", res->leaked_mounts);
        text_line("targets:", "%s", mount_targets_met(res) ? "all met" : "MISSED");
}

/* `"key": v` (or null) with `prec` decimals, then `sep`. */
static void json_fixed(const char *key, bool have, double v, int prec, const char *sep)
{
        if (have)
                printf("\"%s\": %.*f%s", key, prec, v, sep);
        else
                printf("\"%s\": null%s", key, sep);
}

static void json_figure(const char *key, const struct figure *f, const char *sep)
{
        json_fixed(key, f->have, f->median_ms, 4, sep);
}

static void print_mount_json(const struct mount_results *res)
{
        printf("{\n");
        printf("  \"suite\": \"mount\",\n");
        printf("  \"api_probed\": \"%s\",\n", mount_api_name(res->api_probed));
        printf("  \"overlay_iterations\": %u,\n", res->ovl_iterations);
        printf("  \"idmap_iterations\": %u,\n", res->idmap_iterations);
        printf("  \"overlay\": {\n");
        for (size_t i = 0; i < OVL_SIZES; i++) {
                const struct ovl_result *o = &res->ovl[i];
                const struct ovl_way_result *fd = &o->way[OVL_FD], *lg = &o->way[OVL_LEGACY],
                                            *m2 = &o->way[OVL_MOUNT2];
                printf("    \"%u\": {", o->lowers);
                json_figure("fd_ms", &fd->mount, ", ");
                json_fixed("fd_p90_ms", fd->mount.have, fd->mount.p90_ms, 4, ", ");
                json_figure("legacy_ms", &lg->mount, ", ");
                json_fixed("legacy_p90_ms", lg->mount.have, lg->mount.p90_ms, 4, ", ");
                json_figure("mount2_ms", &m2->mount, ", ");
                json_figure("umount_ms", &fd->umount, ", ");
                json_figure("legacy_umount_ms", &lg->umount, ", ");
                json_figure("mount2_umount_ms", &m2->umount, ", ");
                printf("\"mount2_data_bytes\": %zu, ", m2->data_len);
                printf("\"failures\": %u}%s\n", fd->failures + lg->failures + m2->failures,
                       i + 1 < OVL_SIZES ? "," : "");
        }
        printf("  },\n  ");
        json_figure("overlay_500_mount_ms", ovl500_fd(res), ",\n  ");
        json_figure("mount2_20_ms", &ovl_result_for(res, 20)->way[OVL_MOUNT2].mount, ",\n  ");
        json_fixed("overlay_20_fd_vs_legacy_ratio", have_ovl_ratio(res), ovl_ratio(res), 3,
                   ",\n  ");
        printf("\"chown_tree_files\": %zu,\n  ", res->chown_entries);
        json_figure("chown_ms", &res->chown, ",\n  ");
        json_figure("chown_up_ms", &res->chown_up, ",\n  ");
        json_figure("chown_down_ms", &res->chown_down, ",\n  ");
        printf("\"chown_rounds\": %u,\n  ", BENCH_CHOWN_ROUNDS);
        json_figure("idmap_new_userns_ms", &res->idmap_new, ",\n  ");
        json_fixed("idmap_new_userns_p90_ms", res->idmap_new.have, res->idmap_new.p90_ms, 4,
                   ",\n  ");
        json_figure("idmap_cached_ms", &res->idmap_cached, ",\n  ");
        json_fixed("idmap_cached_p90_ms", res->idmap_cached.have, res->idmap_cached.p90_ms, 4,
                   ",\n  ");
        json_figure("idmap_umount_ms", &res->idmap_umount, ",\n  ");
        json_fixed("idmap_vs_chown_ratio", have_idmap_ratio(res, &res->idmap_new),
                   idmap_ratio(res, &res->idmap_new), 1, ",\n  ");
        json_fixed("idmap_cached_vs_chown_ratio", have_idmap_ratio(res, &res->idmap_cached),
                   idmap_ratio(res, &res->idmap_cached), 1, ",\n");
        printf("  \"failures\": %u,\n", mount_failures(res));
        printf("  \"leaked_mounts\": %zu,\n", res->leaked_mounts);
        printf("  \"targets_met\": %s\n", json_bool(mount_targets_met(res)));
        printf("}\n");
}

/* ---- the mount suite -------------------------------------------------------- */

static int bench_mount(const struct bench_opts *o)
{
        _cleanup_(mnt_bench_done) struct mnt_bench b = {0};
        struct mount_results res = {
                .ovl_iterations = o->iterations_given ? o->iterations : BENCH_OVL_ITERATIONS,
                .idmap_iterations = o->iterations_given ? o->iterations : BENCH_IDMAP_ITERATIONS,
        };

        for (size_t i = 0; i < OVL_SIZES; i++)
                res.ovl[i].lowers = ovl_sizes[i];
        int r = mnt_bench_init(&b, &res.chown_entries);
        res.api_probed = mount_api_probe();
        if (r >= 0)
                r = bench_overlays(&b, &res);
        if (r >= 0)
                r = bench_chown(&b, &res);
        if (r >= 0)
                r = bench_idmap(&b, &res);
        /* Also after a failure: nothing mounted stays, the directory goes. */
        int k = mnt_bench_cleanup(&b, &res.leaked_mounts);
        if (r < 0)
                return r;
        if (k < 0)
                return k;

        if (o->json)
                print_mount_json(&res);
        else
                print_mount_text(&res);
        (void)fflush(stdout);

        unsigned failures = mount_failures(&res);
        if (failures > 0) {
                bench_warn("%u mount, unmount or chown operation(s) failed", failures);
                return -EIO;
        }
        if (res.leaked_mounts > 0) {
                bench_warn("%zu mount(s) left behind by the engine", res.leaked_mounts);
                return -EBUSY;
        }
        return 0;
}

/* ---- the snapshot suite ------------------------------------------------------ */

/*
 * Container cycles on a snapshotter root in a private mount namespace: a
 * chain of BENCH_SNAP_LAYERS committed layers is built once per layout (each
 * layer: prepare, mount its own image only, write one file, unmount, commit),
 * and the parent of an N-layer cycle is layer N-1 of that chain. A cycle is
 * snap_prepare + snap_mounts + mount_engine_apply onto a target +
 * mount_unmount_all + snap_remove, each step timed on its own. The baseline
 * is the same overlay of N plain directories with a plain upper.
 */

#define BENCH_SNAP_ITERATIONS   30u
#define BENCH_SNAP_WARMUP       2u
#define BENCH_SNAP_COLD_SAMPLES 9u
#define BENCH_SNAP_LAYERS       100u /* the largest N */
#define BENCH_SNAP_COMMIT_TRIES 200u /* EBUSY: the layer's loop device still going */
#define BENCH_SNAP_STEPS        5u

#define TARGET_SNAP_WARM_MS    2.0
#define TARGET_SNAP_WARM_RATIO 4.0
#define TARGET_SNAP_COLD_MS    10.0
#define TARGET_SNAP_DIR_RATIO  1.5
#define TARGET_SNAP_FRESH_MIB  8.0
#define TARGET_SNAP_BLOCK_MS   5.0

static const unsigned snap_sizes[] = {1, 20, BENCH_SNAP_LAYERS};
#define SNAP_SIZES UTIL_ARRAY_SIZE(snap_sizes)

enum snap_mode {
        /* The default root: ext4 writable images of 10 GiB, and the
         * writable pool of 4 spares (the library's, snapctl's and the
         * hook's default). */
        SNAP_MODE_QUOTA,
        SNAP_MODE_DIR,     /* upper_dir: a plain-directory writable upper */
        SNAP_MODE_BLOCK,   /* SNAP_LAYOUT_BLOCK */
        SNAP_MODE_NO_POOL, /* the quota'd image upper without the writable pool */
        /* The pool, and containers' snapshots labelled io.loopsnap.volatile
         * (removed after their one mount): what the OCI hook does for a
         * container without keep-after-stop. */
        SNAP_MODE_POOL_VOLATILE,
        SNAP_MODES,
};

static const char *const snap_mode_names[SNAP_MODES] = {
        "quota'd image upper (default: writable pool)", "directory upper", "block layout",
        "quota'd upper, no writable pool", "writable pool, volatile"};
static const char *const snap_mode_keys[SNAP_MODES] = {"quota", "dir_upper", "block",
                                                       "quota_no_pool", "quota_pool_volatile"};
static const char *const snap_mode_dirs[SNAP_MODES] = {"q", "d", "b", "n", "v"};

enum snap_step { STEP_PREPARE, STEP_MOUNTS, STEP_APPLY, STEP_UMOUNT, STEP_REMOVE };
static const char *const snap_step_names[BENCH_SNAP_STEPS] = {"prepare", "mounts", "apply",
                                                              "umount", "remove"};

struct snap_n_result {
        unsigned n;
        struct figure cycle;
        struct figure step[BENCH_SNAP_STEPS];
        /* quota and quota_no_pool only. cold: the first use of the image's
         * layers (their activations unmounted, the writable pool as the
         * warm cycles left it); cold_host: the first container after
         * snap_cleanup (no activation, no spare: its writable filesystem is
         * made anew). */
        struct figure cold, cold_host;
        struct figure cold_step[BENCH_SNAP_STEPS], cold_host_step[BENCH_SNAP_STEPS];
        unsigned cold_samples, cold_host_samples;
        /* The baseline. res->plain: measured once, first, on a quiet host
         * filesystem. A mode's per[]: plain cycles interleaved with the
         * mode's warm cycles (one each, alternating which goes first), so
         * that both meet the same state of the host's filesystem. */
        struct figure plain;
        bool plain_fd; /* the baseline went through the engine's fd API */
        size_t plain_data_len;
};

struct snap_mode_result {
        bool supported;
        char why[512];   /* !supported: snap_root_open's message */
        double build_ms; /* the chain of BENCH_SNAP_LAYERS layers */
        struct snap_n_result per[SNAP_SIZES];
        unsigned failures;
};

struct snap_results {
        unsigned iterations;
        enum mount_api api;
        struct snap_mode_result mode[SNAP_MODES];
        struct snap_n_result plain[SNAP_SIZES]; /* only .n, .plain, .plain_fd, .plain_data_len */
        /* A fresh active's allocation: the larger of the two below. */
        bool have_fresh;
        double fresh_mib;
        /* Made from the template (the root without the pool), and on the
         * default root after its warm cycles (a spare from the pool). */
        double fresh_template_mib, fresh_spare_mib;
        bool have_fresh_template, have_fresh_spare;
        /* The floor under a cold N=20 cycle: its 20 layer images bound and
         * mounted with no snapshot code (snap_cold_floor). */
        struct figure cold_floor;
        unsigned cold_floor_failures;
        unsigned plain_failures;
        size_t leaked_devices;
        size_t leaked_mounts;
};

struct snap_bench {
        char dir[sizeof(BENCH_TMP_TEMPLATE)];
        char target[BENCH_PATH_SIZE];  /* the container cycles' target */
        char wtarget[BENCH_PATH_SIZE]; /* where a layer's image is mounted to write it */
        char scratch[BENCH_PATH_SIZE];
        char plain[BENCH_PATH_SIZE];  /* <dir>/p/<k>/f<k> */
        char pupper[BENCH_PATH_SIZE]; /* <dir>/pu/u */
        char pwork[BENCH_PATH_SIZE];  /* <dir>/pu/w */
        char roots[SNAP_MODES][BENCH_PATH_SIZE];
        char owners[SNAP_MODES][LOOP_TAG_MAX + 1]; /* tag owners of the roots opened */
        char id[32];
        struct mount_engine *engine; /* loop owner "bench", the API the kernel has best */
        /* What a container's mount uses: the engine a root hands out
         * (snap_root_engine_opts: its tag owner, activation reuse). */
        struct mount_engine *root_engine;
        const struct snap_root *root_engine_for;
        /* The plain baseline's overlay per N (snap_plain_setup): mount(2)
         * options, or a spec for the engine's fd API when they are too long. */
        struct plain_case {
                char *data;
                struct mount_spec *spec;
        } pcase[SNAP_SIZES];
        struct mount_engine *plain_fd_engine;
        bool have_dir;
};

static const struct snap_n_result *snap_n(const struct snap_mode_result *m, unsigned n)
{
        for (size_t i = 0; i < SNAP_SIZES; i++)
                if (m->per[i].n == n)
                        return &m->per[i];
        return NULL;
}

/* The plain baseline at N=20 measured first, on a quiet host filesystem. */
static const struct figure *plain20(const struct snap_results *res)
{
        for (size_t i = 0; i < SNAP_SIZES; i++)
                if (res->plain[i].n == 20)
                        return &res->plain[i].plain;
        return NULL;
}

/* The plain baseline at N=20 interleaved with `mode`'s warm cycles. */
static const struct figure *mode_plain20(const struct snap_results *res, enum snap_mode mode)
{
        static const struct figure none;
        const struct snap_mode_result *m = &res->mode[mode];
        return m->supported ? &snap_n(m, 20)->plain : &none;
}

static bool have_ratio(const struct figure *a, const struct figure *b)
{
        return a->have && b->have && b->median_ms > 0;
}

static double ratio_of(const struct figure *a, const struct figure *b)
{
        return have_ratio(a, b) ? a->median_ms / b->median_ms : 0.0;
}

/* The median cycle of `mode` at N=20 over the plain baseline at N=20
 * interleaved with it. */
static bool snap_have_ratio(const struct snap_results *res, enum snap_mode mode)
{
        const struct snap_mode_result *m = &res->mode[mode];
        return m->supported && have_ratio(&snap_n(m, 20)->cycle, mode_plain20(res, mode));
}

static double snap_ratio(const struct snap_results *res, enum snap_mode mode)
{
        return snap_have_ratio(res, mode)
                       ? ratio_of(&snap_n(&res->mode[mode], 20)->cycle, mode_plain20(res, mode))
                       : 0.0;
}

/* The same over the quiet baseline measured first (for comparison). */
static double snap_quiet_ratio(const struct snap_results *res, enum snap_mode mode)
{
        const struct snap_mode_result *m = &res->mode[mode];
        return m->supported ? ratio_of(&snap_n(m, 20)->cycle, plain20(res)) : 0.0;
}

static const struct figure *quota20(const struct snap_results *res)
{
        return &snap_n(&res->mode[SNAP_MODE_QUOTA], 20)->cycle;
}

static const struct figure *cold20(const struct snap_results *res)
{
        return &snap_n(&res->mode[SNAP_MODE_QUOTA], 20)->cold;
}

/* The first container after snap_cleanup, N=20, default root. */
static const struct figure *cold_host20(const struct snap_results *res)
{
        return &snap_n(&res->mode[SNAP_MODE_QUOTA], 20)->cold_host;
}

static const struct figure *block20(const struct snap_results *res)
{
        return &snap_n(&res->mode[SNAP_MODE_BLOCK], 20)->step[STEP_PREPARE];
}

static bool target_snap_warm_met(const struct snap_results *res)
{
        return quota20(res)->have && quota20(res)->median_ms <= TARGET_SNAP_WARM_MS &&
               snap_have_ratio(res, SNAP_MODE_QUOTA) &&
               snap_ratio(res, SNAP_MODE_QUOTA) <= TARGET_SNAP_WARM_RATIO;
}

static bool target_snap_cold_met(const struct snap_results *res)
{
        return cold20(res)->have && cold20(res)->median_ms <= TARGET_SNAP_COLD_MS;
}

static bool target_snap_dir_met(const struct snap_results *res)
{
        return snap_have_ratio(res, SNAP_MODE_DIR) &&
               snap_ratio(res, SNAP_MODE_DIR) <= TARGET_SNAP_DIR_RATIO;
}

static bool target_snap_fresh_met(const struct snap_results *res)
{
        return res->have_fresh && res->fresh_mib <= TARGET_SNAP_FRESH_MIB;
}

static bool target_snap_block_met(const struct snap_results *res)
{
        return res->mode[SNAP_MODE_BLOCK].supported && block20(res)->have &&
               block20(res)->median_ms <= TARGET_SNAP_BLOCK_MS;
}

static bool snap_targets_met(const struct snap_results *res)
{
        return target_snap_warm_met(res) && target_snap_cold_met(res) && target_snap_dir_met(res) &&
               target_snap_fresh_met(res) && target_snap_block_met(res);
}

static unsigned snap_failures(const struct snap_results *res)
{
        unsigned n = res->plain_failures + res->cold_floor_failures;
        for (size_t m = 0; m < SNAP_MODES; m++)
                n += res->mode[m].failures;
        return n;
}

/* ---- the directory and the roots -------------------------------------------- */

static int snap_bench_init(struct snap_bench *b)
{
        struct mount_engine_opts eo = {.loop_owner = BENCH_OWNER};
        struct util_err err = {0};
        int r;

        if (unshare(CLONE_NEWNS) < 0)
                return bench_warn_errno(errno, "unshare(CLONE_NEWNS)");
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return bench_warn_errno(errno, "make / private in our mount namespace");

        memcpy(b->dir, BENCH_TMP_TEMPLATE, sizeof(BENCH_TMP_TEMPLATE));
        if (!mkdtemp(b->dir))
                return bench_warn_errno(errno, "create a directory from '%s'", BENCH_TMP_TEMPLATE);
        b->have_dir = true;
        snprintf(b->id, sizeof(b->id), "%d", (int)getpid());
        if ((r = path_fmt(b->target, sizeof(b->target), "%s/target", b->dir)) < 0 ||
            (r = path_fmt(b->wtarget, sizeof(b->wtarget), "%s/w", b->dir)) < 0 ||
            (r = path_fmt(b->scratch, sizeof(b->scratch), "%s/scratch", b->dir)) < 0 ||
            (r = path_fmt(b->plain, sizeof(b->plain), "%s/p", b->dir)) < 0 ||
            (r = path_fmt(b->pupper, sizeof(b->pupper), "%s/pu/u", b->dir)) < 0 ||
            (r = path_fmt(b->pwork, sizeof(b->pwork), "%s/pu/w", b->dir)) < 0)
                return r;
        for (size_t m = 0; m < SNAP_MODES; m++)
                if ((r = path_fmt(b->roots[m], sizeof(b->roots[m]), "%s/%s", b->dir,
                                  snap_mode_dirs[m])) < 0)
                        return r;
        char pu[BENCH_PATH_SIZE];
        if ((r = path_fmt(pu, sizeof(pu), "%s/pu", b->dir)) < 0)
                return r;
        const char *const dirs[] = {b->target, b->wtarget, b->scratch, b->plain, pu};
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(dirs); i++)
                if (mkdir(dirs[i], 0755) < 0)
                        return bench_warn_errno(errno, "create '%s'", dirs[i]);

        /* The plain layers: <p>/<k>/f<k> ("k\n"). */
        _cleanup_close_ int pfd = open(b->plain, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
                return bench_warn_errno(errno, "open '%s'", b->plain);
        for (unsigned k = 0; k < BENCH_SNAP_LAYERS; k++) {
                char name[16], file[32], content[16];
                snprintf(name, sizeof(name), "%u", k);
                snprintf(file, sizeof(file), "%u/f%u", k, k);
                snprintf(content, sizeof(content), "%u\n", k);
                if ((r = mkdir_at(pfd, b->plain, name)) < 0 ||
                    (r = write_file_at(pfd, b->plain, file, content)) < 0)
                        return r;
        }

        eo.scratch_dir = b->scratch;
        if (mount_engine_new(&eo, &b->engine, &err) < 0) {
                bench_warn("mount engine: %s", err.msg);
                return -err.errnum;
        }
        return 0;
}

struct name_list {
        char **v;
        size_t n;
};

static int collect_name(const struct snap_info *i, void *data, struct util_err *err)
{
        struct name_list *l = data;
        char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
        if (!v)
                return util_err_set(err, ENOMEM, "collect snapshots");
        l->v = v;
        if (!(l->v[l->n] = strdup(i->name)))
                return util_err_set(err, ENOMEM, "collect snapshots");
        l->n++;
        return 0;
}

/*
 * snap_remove of everything in the root, children first (a parent with
 * children is EBUSY: retried once they are gone). Returns 0 or -errno.
 */
static int snap_remove_all(struct snap_root *root)
{
        struct name_list l = {0};
        struct util_err err = {0};
        int ret = 0;

        if (snap_walk(root, NULL, 0, collect_name, &l, &err) < 0) {
                bench_warn("cleanup: walk '%s': %s", snap_root_path(root), err.msg);
                ret = -err.errnum;
        }
        for (bool progress = true; progress && l.n > 0;) {
                progress = false;
                for (size_t i = 0; i < l.n; i++) {
                        if (!l.v[i])
                                continue;
                        util_err_clear(&err);
                        int r = snap_remove(root, l.v[i], &err);
                        if (r == -EBUSY)
                                continue;
                        if (r < 0 && r != -ENOENT) {
                                bench_warn("cleanup: %s", err.msg);
                                if (ret == 0)
                                        ret = r;
                        }
                        free(l.v[i]);
                        l.v[i] = NULL;
                        progress = true;
                }
        }
        for (size_t i = 0; i < l.n; i++)
                if (l.v[i]) {
                        bench_warn("cleanup: could not remove snapshot '%s'", l.v[i]);
                        free(l.v[i]);
                        if (ret == 0)
                                ret = -EBUSY;
                }
        free(l.v);
        return ret;
}

/*
 * Counts (and detaches) loop devices left by this run: tagged with the
 * engine's owner and our id, or with a root's owner. Returns 0 or -errno.
 */
static int snap_leak_check(const struct snap_bench *b, size_t *ret_leaked)
{
        struct util_err err = {0};
        size_t leaked = 0;

        for (size_t m = 0; m <= SNAP_MODES; m++) {
                _cleanup_free_ struct loop_status *st = NULL;
                char prefix[LOOP_TAG_MAX + 16], owner[LOOP_TAG_MAX + 1];
                size_t n = 0;

                if (m < SNAP_MODES && !b->owners[m][0])
                        continue;
                snprintf(owner, sizeof(owner), "%s", m < SNAP_MODES ? b->owners[m] : BENCH_OWNER);
                snprintf(prefix, sizeof(prefix), LOOP_TAG_PREFIX "%s:", owner);
                const struct loop_filter f = {.tag_prefix = prefix};
                if (loop_list(&f, &st, &n, &err) < 0) {
                        bench_warn("leak check: %s", err.msg);
                        return -err.errnum;
                }
                for (size_t i = 0; i < n; i++) {
                        char mine[LOOP_TAG_MAX + 1];
                        snprintf(mine, sizeof(mine), BENCH_TAG_PREFIX "%s", b->id);
                        bool ours = m < SNAP_MODES || strcmp(st[i].tag, mine) == 0;
                        if (!ours)
                                continue; /* another bench run's: not counted */
                        leaked++;
                        bench_warn("leaked: %s (tag '%s')", st[i].path, st[i].tag);
                        if (loop_detach_tagged(st[i].path, owner, &err) < 0) {
                                bench_warn("detach %s: %s", st[i].path, err.msg);
                                util_err_clear(&err);
                        }
                }
        }
        *ret_leaked = leaked;
        return 0;
}

/*
 * Unmounts our targets, detaches anything else below the directory, removes
 * every snapshot of every root (`roots`, may hold NULLs, closed here), then
 * the directory. Returns 0 or the first -errno (reported).
 */
static int snap_bench_cleanup(struct snap_bench *b, struct snap_root *roots[SNAP_MODES],
                              size_t *ret_leaked_mounts)
{
        const char *const targets[] = {b->target, b->wtarget};

        if (!b->have_dir)
                return 0;
        int ret = 0, r;
        /* First: removing the layers also drops their activations (m/<id>),
         * which are mounts below the directory but not leaks. */
        for (size_t m = 0; m < SNAP_MODES && roots; m++) {
                if (!roots[m])
                        continue;
                r = snap_remove_all(roots[m]);
                if (r < 0 && ret == 0)
                        ret = r;
                /* The writable pool's spares (a cache) go with cleanup. */
                struct util_err e = {0};
                if (r >= 0 && (r = snap_cleanup(roots[m], &e)) < 0) {
                        bench_warn("cleanup '%s': %s", b->roots[m], e.msg);
                        if (ret == 0)
                                ret = r;
                }
                roots[m] = snap_root_close(roots[m]);
        }
        r = bench_unmount_leftovers(targets, UTIL_ARRAY_SIZE(targets), b->dir, ret_leaked_mounts);
        if (r < 0 && ret == 0)
                ret = r;
        b->engine = mount_engine_free(b->engine);
        b->root_engine = mount_engine_free(b->root_engine);
        r = rm_tree_at(AT_FDCWD, b->dir, 0);
        if (r < 0) {
                bench_warn("remove '%s': %s%s", b->dir, strerror(-r),
                           r == -EBUSY ? " (a mount is still inside: left alone)" : "");
                return ret == 0 ? r : ret;
        }
        b->have_dir = false;
        return ret;
}

/* Opens (creating) the root of `mode`. 0, -EOPNOTSUPP (why in `err`), or -errno. */
static int snap_root_open_mode(struct snap_bench *b, enum snap_mode mode, struct snap_root **ret,
                               struct util_err *err)
{
        const struct snap_root_opts opts = {
                .path = b->roots[mode],
                .layout = mode == SNAP_MODE_BLOCK ? SNAP_LAYOUT_BLOCK : SNAP_LAYOUT_OVERLAY,
                .writable_size = SNAP_DEFAULT_WRITABLE_SIZE,
                .upper_dir = mode == SNAP_MODE_DIR,
                /* The default (on) but where a mode is the root without it. */
                .writable_pool = mode == SNAP_MODE_NO_POOL ? 0 : SNAP_DEFAULT_WRITABLE_POOL,
        };
        int r = snap_root_open(&opts, ret, err);
        if (r >= 0)
                snprintf(b->owners[mode], sizeof(b->owners[mode]), "%s", snap_root_tag_owner(*ret));
        return r;
}

/* ---- building the chain ------------------------------------------------------ */

/*
 * The spec that makes a layer's writable part visible: for the overlay layout
 * its own image alone (mounts[n-2]: the image before the overlay or the
 * bind), written at "upper/"; otherwise the whole spec, written at its root.
 */
static int layer_write_spec(const struct mount_spec *spec, bool own_image, struct mount_spec **ret,
                            const char **ret_sub, struct util_err *err)
{
        _cleanup_(mount_spec_freep) struct mount_spec *s = NULL;

        if (!own_image || spec->n < 2) {
                *ret_sub = "";
                return 0; /* the caller uses `spec` itself */
        }
        const struct mount_entry *e = &spec->mounts[spec->n - 2];
        _cleanup_free_ const char **opts = calloc(e->n_options + 1, sizeof(*opts));
        if (!opts || mount_spec_new(&s) < 0)
                return util_err_set(err, ENOMEM, "layer spec");
        for (size_t i = 0; i < e->n_options; i++)
                opts[i] = e->options[i];
        int r = mount_spec_add(s, e->type, e->source, NULL, opts, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        *ret_sub = "upper/";
        return 0;
}

static int commit_retry(struct snap_root *root, const char *name, const char *key,
                        struct util_err *err)
{
        int r = -EBUSY;
        for (unsigned t = 0; t < BENCH_SNAP_COMMIT_TRIES && r == -EBUSY; t++) {
                if (t > 0) {
                        util_err_clear(err);
                        usleep(1000);
                }
                r = snap_commit(root, name, key, NULL, 0, err);
        }
        return r;
}

/* Layers c0..c<BENCH_SNAP_LAYERS-1>, c<k> holding f<k> ("k\n"). */
static int snap_build_chain(struct snap_bench *b, struct snap_root *root, enum snap_mode mode,
                            struct snap_mode_result *res)
{
        uint64_t t0 = util_now_ns();

        for (unsigned k = 0; k < BENCH_SNAP_LAYERS; k++) {
                _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL, *own = NULL;
                struct util_err err = {0};
                char key[32], name[32], parent[32], file[BENCH_PATH_SIZE + 32], content[16];
                const char *sub = "";

                snprintf(key, sizeof(key), "a%u", k);
                snprintf(name, sizeof(name), "c%u", k);
                snprintf(parent, sizeof(parent), "c%u", k - 1);
                snprintf(content, sizeof(content), "%u\n", k);
                int r = snap_prepare(root, key, k ? parent : NULL, NULL, 0, &spec, &err);
                if (r >= 0)
                        r = layer_write_spec(spec, mode != SNAP_MODE_DIR && mode != SNAP_MODE_BLOCK,
                                             &own, &sub, &err);
                if (r >= 0)
                        r = mount_engine_apply(b->engine, own ? own : spec, b->wtarget, b->id, NULL,
                                               &err);
                if (r < 0) {
                        bench_warn("%s: layer %u: %s", snap_mode_names[mode], k, err.msg);
                        return r;
                }
                r = path_fmt(file, sizeof(file), "%s/%sf%u", b->wtarget, sub, k);
                if (r >= 0) {
                        _cleanup_close_ int fd =
                                open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                        if (fd < 0 ||
                            write(fd, content, strlen(content)) != (ssize_t)strlen(content))
                                r = bench_warn_errno(fd < 0 ? errno : EIO, "write '%s'", file);
                }
                int u = mount_unmount_all(b->wtarget, &err);
                if (u < 0) {
                        bench_warn("%s: layer %u: %s", snap_mode_names[mode], k, err.msg);
                        return u;
                }
                if (r < 0)
                        return r;
                r = commit_retry(root, name, key, &err);
                if (r < 0) {
                        bench_warn("%s: layer %u: %s", snap_mode_names[mode], k, err.msg);
                        return r;
                }
        }
        res->build_ms = (double)(util_now_ns() - t0) / 1e6;
        return 0;
}

/* ---- one container cycle ------------------------------------------------------ */

/* The target shows the top and the bottom layer (f<n-1>, f0) and is writable. */
static int snap_verify(const struct snap_bench *b, unsigned n, const char *what)
{
        const unsigned check[] = {n - 1, 0};
        struct statvfs sv;

        if (statvfs(b->target, &sv) < 0)
                return bench_warn_errno(errno, "%s: statvfs '%s'", what, b->target);
        if (sv.f_flag & ST_RDONLY) {
                bench_warn("%s: '%s' is read-only", what, b->target);
                return -EIO;
        }
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(check); i++) {
                char p[BENCH_PATH_SIZE + 16];
                struct stat st;
                if (path_fmt(p, sizeof(p), "%s/f%u", b->target, check[i]) < 0)
                        return -EIO;
                if (stat(p, &st) < 0) {
                        bench_warn("%s: layer %u is missing: stat '%s': %s", what, check[i], p,
                                   strerror(errno));
                        return -EIO;
                }
        }
        return 0;
}

/*
 * prepare(key, parent) + mounts + apply + unmount_all + remove, each step's
 * time in ns[]. `verify` > 0: check the mount shows `verify` layers (not
 * timed). On failure what was done is undone: returns -errno with `err`, or
 * the -EIO of a failed check (reported).
 */
static int snap_cycle(struct snap_bench *b, struct snap_root *root, const char *key,
                      const char *parent, const struct snap_label *labels, size_t n_labels,
                      unsigned verify, const char *what, uint64_t ns[BENCH_SNAP_STEPS],
                      struct util_err *err)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        struct util_err e2 = {0};
        bool mounted = false;
        uint64_t t[BENCH_SNAP_STEPS + 1];

        if (b->root_engine_for != root) {
                struct mount_engine_opts eo;
                b->root_engine = mount_engine_free(b->root_engine);
                b->root_engine_for = NULL;
                snap_root_engine_opts(root, &eo);
                eo.scratch_dir = b->scratch;
                int r = mount_engine_new(&eo, &b->root_engine, err);
                if (r < 0)
                        return r;
                b->root_engine_for = root;
        }
        t[0] = util_now_ns();
        int r = snap_prepare(root, key, parent, labels, n_labels, NULL, err);
        if (r < 0)
                return r;
        t[1] = util_now_ns();
        r = snap_mounts(root, key, &spec, err);
        t[2] = util_now_ns();
        if (r >= 0) {
                r = mount_engine_apply(b->root_engine, spec, b->target, b->id, NULL, err);
                t[3] = util_now_ns();
                mounted = r >= 0;
        }
        if (r >= 0 && verify > 0)
                r = snap_verify(b, verify, what);
        if (mounted) {
                /* The check is not timed: the unmount is timed from here. */
                uint64_t tu = util_now_ns();
                int u = mount_unmount_all(b->target, r >= 0 ? err : &e2);
                t[4] = util_now_ns();
                ns[STEP_UMOUNT] = t[4] - tu;
                if (u < 1 && r >= 0)
                        r = u < 0 ? u
                                  : util_err_setx(err, EIO, "nothing was mounted on '%s'",
                                                  b->target);
        }
        util_err_clear(&e2);
        uint64_t tr = util_now_ns();
        int k = snap_remove(root, key, r >= 0 ? err : &e2);
        t[5] = util_now_ns();
        if (r < 0)
                return r;
        if (k < 0)
                return k;
        ns[STEP_PREPARE] = t[1] - t[0];
        ns[STEP_MOUNTS] = t[2] - t[1];
        ns[STEP_APPLY] = t[3] - t[2];
        ns[STEP_REMOVE] = t[5] - tr;
        return 0;
}

static uint64_t steps_sum(const uint64_t ns[BENCH_SNAP_STEPS])
{
        uint64_t s = 0;
        for (size_t i = 0; i < BENCH_SNAP_STEPS; i++)
                s += ns[i];
        return s;
}

static int plain_cycle_n(struct snap_bench *b, size_t i, uint64_t *ret_ns, struct util_err *err);

/* A plain cycle of size index `i` next to warm round `it` of a mode: its
 * time goes to `plain` after the warm-up, a failure to the mode's. */
static void warm_plain(struct snap_bench *b, size_t i, unsigned it, struct series *plain,
                       bool *printed, struct snap_mode_result *res)
{
        struct util_err err = {0};
        uint64_t ns = 0;
        if (plain_cycle_n(b, i, &ns, &err) < 0) {
                res->failures++;
                report_failure(printed, "plain overlay next to it", err.msg);
        } else if (it >= BENCH_SNAP_WARMUP) {
                series_add(plain, ns);
        }
}

/* Warm cycles of every N on a built chain, each next to a plain cycle of
 * the same N (alternately before and after it): the mode's baseline. */
static int snap_warm(struct snap_bench *b, struct snap_root *root, enum snap_mode mode,
                     unsigned iterations, struct snap_mode_result *res)
{
        _cleanup_free_ uint64_t *buf = NULL;
        bool printed = false;

        buf = calloc((size_t)(BENCH_SNAP_STEPS + 2) * iterations, sizeof(*buf));
        if (!buf)
                return bench_warn_errno(ENOMEM, "allocate samples");
        for (size_t i = 0; i < SNAP_SIZES; i++) {
                struct snap_n_result *nr = &res->per[i];
                struct series cyc = {.ns = buf, .cap = iterations};
                struct series plain = {.ns = buf + (BENCH_SNAP_STEPS + 1) * iterations,
                                       .cap = iterations};
                struct series st[BENCH_SNAP_STEPS];
                char parent[32], what[96];

                for (size_t s = 0; s < BENCH_SNAP_STEPS; s++)
                        st[s] = (struct series){.ns = buf + (s + 1) * iterations,
                                                .cap = iterations};
                snprintf(parent, sizeof(parent), "c%u", nr->n - 1);
                snprintf(what, sizeof(what), "%s, %u layers", snap_mode_names[mode], nr->n);
                for (unsigned it = 0; it < BENCH_SNAP_WARMUP + iterations; it++) {
                        struct util_err err = {0};
                        uint64_t ns[BENCH_SNAP_STEPS] = {0};
                        /* The plain cycle before the mode's on even rounds,
                         * after it on odd ones. */
                        if (it % 2 == 0)
                                warm_plain(b, i, it, &plain, &printed, res);
                        struct snap_label vol = {.key = SNAP_LABEL_VOLATILE, .value = "true"};
                        bool v = mode == SNAP_MODE_POOL_VOLATILE;
                        int r = snap_cycle(b, root, "ctr", parent, v ? &vol : NULL, v ? 1 : 0,
                                           it == 0 ? nr->n : 0, what, ns, &err);
                        if (r == -EIO && it == 0)
                                return r; /* the check failed (reported) */
                        if (r < 0) {
                                res->failures++;
                                report_failure(&printed, what, err.msg);
                                continue;
                        }
                        if (it % 2 == 1)
                                warm_plain(b, i, it, &plain, &printed, res);
                        if (it < BENCH_SNAP_WARMUP)
                                continue;
                        series_add(&cyc, steps_sum(ns));
                        for (size_t s = 0; s < BENCH_SNAP_STEPS; s++)
                                series_add(&st[s], ns[s]);
                }
                figure_from(&nr->cycle, &cyc);
                figure_from(&nr->plain, &plain);
                for (size_t s = 0; s < BENCH_SNAP_STEPS; s++)
                        figure_from(&nr->step[s], &st[s]);
        }
        return 0;
}

/*
 * Unmounts every activation of `root` (the mounts at <root>/m/<id>, not
 * detached: their devices go with them), as if its layers had never been
 * used: what a cold cycle of the image starts from. The empty directories
 * stay, as snap_cleanup leaves them. Returns how many, or -errno.
 */
static int drop_activations(struct snap_root *root)
{
        char dir[PATH_MAX], **found = NULL;
        size_t n = 0;
        int r = path_fmt(dir, sizeof(dir), "%s/m", snap_root_path(root));
        if (r >= 0)
                r = mounts_below(dir, &found, &n);
        for (size_t i = n; i-- > 0;) {
                if (r >= 0 && umount2(found[i], UMOUNT_NOFOLLOW) < 0)
                        r = bench_warn_errno(errno, "unmount '%s'", found[i]);
                free(found[i]);
        }
        free(found);
        return r < 0 ? r : (int)n;
}

/*
 * Waits (up to 2 s) until no loop device whose tag starts with `prefix`
 * (and, with `digits`, goes on with digits only) is bound any more: an
 * unmount frees an autoclear device in the kernel's own time (its rundown
 * runs on a workqueue), and a cold cycle must not measure that rundown
 * competing with it, nor find a layer's device still bound. Not timed.
 * 0, or -errno (reported).
 */
static int settle_devices(const char *prefix, bool digits)
{
        const struct loop_filter f = {.tag_prefix = prefix};
        size_t plen = strlen(prefix);

        for (unsigned k = 0; k < 1000; k++) {
                _cleanup_free_ struct loop_status *st = NULL;
                struct util_err err = {0};
                size_t n = 0, left = 0;
                if (loop_list(&f, &st, &n, &err) < 0) {
                        bench_warn("cold cycle: %s", err.msg);
                        return -err.errnum;
                }
                for (size_t i = 0; i < n; i++) {
                        const char *id = st[i].tag + plen;
                        left += !digits || (*id && id[strspn(id, "0123456789")] == '\0');
                }
                if (left == 0)
                        return 0;
                util_sleep_ms(2);
        }
        bench_warn("cold cycle: devices tagged '%s' still bound after 2 s", prefix);
        return 0;
}

/* settle_devices for the layers of `root`: tagged "loopsnap:<root's
 * owner>:<layer id>" (a writable pool keeper's id starts with 'w'). */
static int settle_layer_devices(struct snap_root *root)
{
        char prefix[LOOP_TAG_MAX + 16];
        snprintf(prefix, sizeof(prefix), LOOP_TAG_PREFIX "%s:", snap_root_tag_owner(root));
        return settle_devices(prefix, true);
}

/*
 * Cold cycles (quota, quota_no_pool), two kinds, alternately:
 * - image: the first use of the image's layers. Every activation is
 *   unmounted first (drop_activations), so the prepare binds every layer's
 *   loop device and reads its filesystem again; the writable pool keeps the
 *   spares earlier containers left (any container of any image leaves
 *   one), so the writable part is the warm one. The cold target's figure.
 * - host: the first container after snap_cleanup, which also deletes the
 *   spares: the cycle makes its writable filesystem anew as well.
 * The template exists either way (a root makes it on first use).
 */
static int snap_cold(struct snap_bench *b, struct snap_root **root, struct snap_mode_result *res)
{
        /* cppcheck-suppress constVariable ; written through the series */
        uint64_t buf[2][(BENCH_SNAP_STEPS + 1) * BENCH_SNAP_COLD_SAMPLES];
        bool printed = false;

        for (size_t i = 0; i < SNAP_SIZES; i++) {
                struct snap_n_result *nr = &res->per[i];
                struct series s[2], st[2][BENCH_SNAP_STEPS];
                char parent[32], what[96];

                for (size_t h = 0; h < 2; h++) {
                        s[h] = (struct series){.ns = buf[h], .cap = BENCH_SNAP_COLD_SAMPLES};
                        for (size_t j = 0; j < BENCH_SNAP_STEPS; j++)
                                st[h][j] = (struct series){.ns = buf[h] +
                                                                 (j + 1) * BENCH_SNAP_COLD_SAMPLES,
                                                           .cap = BENCH_SNAP_COLD_SAMPLES};
                }
                snprintf(parent, sizeof(parent), "c%u", nr->n - 1);
                for (unsigned k = 0; k < 2 * BENCH_SNAP_COLD_SAMPLES; k++) {
                        struct util_err err = {0};
                        uint64_t ns[BENCH_SNAP_STEPS] = {0};
                        size_t h = k % 2; /* 0: image, 1: host */
                        int r;

                        snprintf(what, sizeof(what), "cold cycle (%s), %u layers",
                                 h ? "after cleanup" : "layers not activated", nr->n);
                        if (h && (r = snap_cleanup(*root, &err)) < 0) {
                                bench_warn("cleanup: %s", err.msg);
                                return r;
                        }
                        if (!h && (r = drop_activations(*root)) < 0)
                                return r;
                        if ((r = settle_layer_devices(*root)) < 0)
                                return r;
                        r = snap_cycle(b, *root, "ctr", parent, NULL, 0, 0, what, ns, &err);
                        if (r < 0) {
                                res->failures++;
                                report_failure(&printed, what, err.msg);
                                continue;
                        }
                        series_add(&s[h], steps_sum(ns));
                        for (size_t j = 0; j < BENCH_SNAP_STEPS; j++)
                                series_add(&st[h][j], ns[j]);
                }
                nr->cold_samples = (unsigned)s[0].n;
                nr->cold_host_samples = (unsigned)s[1].n;
                figure_from(&nr->cold, &s[0]);
                figure_from(&nr->cold_host, &s[1]);
                for (size_t j = 0; j < BENCH_SNAP_STEPS; j++) {
                        figure_from(&nr->cold_step[j], &st[0][j]);
                        figure_from(&nr->cold_host_step[j], &st[1][j]);
                }
        }
        return 0;
}

/*
 * The floor under a cold N=20 cycle, on this machine: the chain's first 20
 * layer images bound to loop devices (loop_attach_path: LOOP_CONFIGURE under
 * the allocation lock, read-only, direct I/O, no sharing) and mounted
 * read-only (mount(2), ext4 with noload, as the engine does) by as many
 * threads as snap_activate uses, with no snapshot code around them: what
 * any cold start of these layers pays before its container's own mounts.
 * Measured right after snap_cleanup, as the cold cycles are.
 */
#define BENCH_FLOOR_LAYERS  20u
#define BENCH_FLOOR_THREADS 8u

struct floor_job {
        char img[BENCH_FLOOR_LAYERS][PATH_MAX];
        char point[BENCH_FLOOR_LAYERS][BENCH_PATH_SIZE + 16];
        struct loop_device *dev[BENCH_FLOOR_LAYERS];
        bool mounted[BENCH_FLOOR_LAYERS];
        size_t next;  /* atomic */
        unsigned bad; /* atomic */
        char id[32];
};

static void *floor_worker(void *data)
{
        struct floor_job *j = data;
        const struct loop_attach_opts opts = {
                .flags = LOOP_ATTACH_READ_ONLY, .owner = BENCH_OWNER, .id = j->id};
        size_t k;

        while ((k = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < BENCH_FLOOR_LAYERS) {
                struct util_err err = {0};
                if (loop_attach_path(j->img[k], &opts, &j->dev[k], &err) < 0 ||
                    mount(loop_device_get_path(j->dev[k]), j->point[k], "ext4", MS_RDONLY,
                          "noload") < 0)
                        __atomic_fetch_add(&j->bad, 1, __ATOMIC_RELAXED);
                else
                        j->mounted[k] = true;
        }
        return NULL;
}

static int snap_cold_floor(struct snap_bench *b, struct snap_root *root, struct snap_results *res)
{
        _cleanup_free_ struct floor_job *j = calloc(1, sizeof(*j));
        /* cppcheck-suppress unassignedVariable ; written through s.ns */
        uint64_t buf[BENCH_SNAP_COLD_SAMPLES];
        struct series s = {.ns = buf, .cap = BENCH_SNAP_COLD_SAMPLES};
        int r = 0;

        if (!j)
                return bench_warn_errno(ENOMEM, "cold floor");
        snprintf(j->id, sizeof(j->id), "floor-%d", (int)getpid());
        for (unsigned k = 0; k < BENCH_FLOOR_LAYERS && r >= 0; k++) {
                struct util_err err = {0};
                struct snap_info info = {0};
                char name[32];
                snprintf(name, sizeof(name), "c%u", k);
                if ((r = snap_stat(root, name, &info, &err)) < 0)
                        bench_warn("cold floor: %s", err.msg);
                else if ((r = path_fmt(j->img[k], sizeof(j->img[k]), "%s/snapshots/%lld/fs.img",
                                       snap_root_path(root), (long long)info.id)) >= 0 &&
                         (r = path_fmt(j->point[k], sizeof(j->point[k]), "%s/floor-%u", b->dir,
                                       k)) >= 0 &&
                         mkdir(j->point[k], 0700) < 0 && errno != EEXIST)
                        r = bench_warn_errno(errno, "create '%s'", j->point[k]);
                snap_info_done(&info);
        }
        for (unsigned it = 0; it < BENCH_SNAP_COLD_SAMPLES && r >= 0; it++) {
                struct util_err err = {0};
                pthread_t th[BENCH_FLOOR_THREADS - 1];
                size_t started = 0;

                if ((r = snap_cleanup(root, &err)) < 0) {
                        bench_warn("cleanup: %s", err.msg);
                        break;
                }
                /* Also the devices of the floor's previous round. */
                char floor_tag[LOOP_TAG_MAX + 1];
                snprintf(floor_tag, sizeof(floor_tag), BENCH_TAG_PREFIX "%s", j->id);
                if ((r = settle_layer_devices(root)) < 0 ||
                    (r = settle_devices(floor_tag, false)) < 0)
                        break;
                j->next = 0;
                j->bad = 0;
                uint64_t t0 = util_now_ns();
                while (started < BENCH_FLOOR_THREADS - 1 &&
                       pthread_create(&th[started], NULL, floor_worker, j) == 0)
                        started++;
                floor_worker(j);
                for (size_t k = 0; k < started; k++)
                        pthread_join(th[k], NULL);
                uint64_t t1 = util_now_ns();
                for (unsigned k = 0; k < BENCH_FLOOR_LAYERS; k++) {
                        if (j->mounted[k] && umount2(j->point[k], UMOUNT_NOFOLLOW) < 0)
                                r = bench_warn_errno(errno, "unmount '%s'", j->point[k]);
                        j->mounted[k] = false;
                        j->dev[k] = loop_device_free(j->dev[k]); /* autoclear: detached */
                }
                if (j->bad) {
                        res->cold_floor_failures += j->bad;
                        continue;
                }
                series_add(&s, t1 - t0);
        }
        for (unsigned k = 0; k < BENCH_FLOOR_LAYERS; k++)
                if (j->point[k][0])
                        (void)rmdir(j->point[k]);
        figure_from(&res->cold_floor, &s);
        return r;
}

/* st_blocks of a fresh active's image on the N=20 chain, at the 10 GiB
 * default: a template clone, or (`spare`: the default root after its warm
 * cycles) an emptied image taken from the writable pool. */
static int snap_fresh(struct snap_root *root, bool spare, struct snap_results *res)
{
        struct util_err err = {0};
        struct snap_info info = {0};
        char img[PATH_MAX];
        struct stat st;

        int r = snap_prepare(root, "fresh", "c19", NULL, 0, NULL, &err);
        if (r < 0) {
                bench_warn("fresh active: %s", err.msg);
                return r;
        }
        r = snap_stat(root, "fresh", &info, &err);
        if (r >= 0) {
                r = path_fmt(img, sizeof(img), "%s/snapshots/%lld/fs.img", snap_root_path(root),
                             (long long)info.id);
                if (r >= 0 && stat(img, &st) < 0)
                        r = bench_warn_errno(errno, "stat '%s'", img);
                if (r >= 0) {
                        double mib = (double)st.st_blocks * 512.0 / (1024.0 * 1024.0);
                        *(spare ? &res->fresh_spare_mib : &res->fresh_template_mib) = mib;
                        *(spare ? &res->have_fresh_spare : &res->have_fresh_template) = true;
                        if (!res->have_fresh || mib > res->fresh_mib)
                                res->fresh_mib = mib;
                        res->have_fresh = true;
                }
        } else {
                bench_warn("fresh active: %s", err.msg);
        }
        snap_info_done(&info);
        util_err_clear(&err);
        int k = snap_remove(root, "fresh", &err);
        if (k < 0)
                bench_warn("fresh active: %s", err.msg);
        return r < 0 ? r : k;
}

/* ---- the plain-directory baseline -------------------------------------------- */

static int plain_cycle(struct snap_bench *b, struct mount_engine *fd_engine,
                       const struct mount_spec *spec, const char *data, uint64_t *ret_ns,
                       struct util_err *err)
{
        uint64_t t0 = util_now_ns();
        if (mkdir(b->pupper, 0755) < 0 || mkdir(b->pwork, 0755) < 0)
                return util_err_set(err, errno, "create the plain upper");
        int r = fd_engine ? mount_engine_apply(fd_engine, spec, b->target, b->id, NULL, err)
                          : mount2_overlay(b->target, data, err);
        int u = r >= 0 ? mount_unmount_all(b->target, err) : 0;
        int k = rm_tree_at(AT_FDCWD, b->pupper, 0);
        int w = rm_tree_at(AT_FDCWD, b->pwork, 0);
        uint64_t t1 = util_now_ns();
        if (r < 0)
                return r;
        if (u < 1)
                return u < 0 ? u : util_err_setx(err, EIO, "nothing mounted on '%s'", b->target);
        if (k < 0 || w < 0)
                return util_err_set(err, k < 0 ? -k : -w, "remove the plain upper");
        *ret_ns = t1 - t0;
        return 0;
}

/* Builds the plain baseline's overlay of every N (b->pcase). */
static int snap_plain_setup(struct snap_bench *b, struct snap_results *res)
{
        for (size_t i = 0; i < SNAP_SIZES; i++) {
                _cleanup_free_ char *lower = NULL;
                struct snap_n_result *nr = &res->plain[i];
                struct plain_case *pc = &b->pcase[i];
                struct util_err err = {0};
                char upper[BENCH_PATH_SIZE + 16], work[BENCH_PATH_SIZE + 16];
                size_t size = strlen("lowerdir=") + (size_t)nr->n * (strlen(b->plain) + 5) + 1;
                size_t len;

                if (!(lower = malloc(size)))
                        return bench_warn_errno(ENOMEM, "overlay options");
                len = (size_t)snprintf(lower, size, "lowerdir=");
                for (unsigned k = nr->n; k-- > 0;)
                        len += (size_t)snprintf(lower + len, size - len, "%s%s/%u",
                                                k == nr->n - 1 ? "" : ":", b->plain, k);
                snprintf(upper, sizeof(upper), "upperdir=%s", b->pupper);
                snprintf(work, sizeof(work), "workdir=%s", b->pwork);
                if (asprintf(&pc->data, "%s,%s,%s,index=off", lower, upper, work) < 0) {
                        pc->data = NULL;
                        return bench_warn_errno(ENOMEM, "overlay options");
                }
                nr->plain_data_len = strlen(pc->data);
                nr->plain_fd = nr->plain_data_len > BENCH_MOUNT2_DATA_MAX;
                if (nr->plain_fd) {
                        const char *const opts[] = {lower, upper, work, NULL};
                        struct mount_engine_opts eo = {.loop_owner = BENCH_OWNER,
                                                       .scratch_dir = b->scratch,
                                                       .api = MOUNT_API_FD};
                        if ((!b->plain_fd_engine &&
                             mount_engine_new(&eo, &b->plain_fd_engine, &err) < 0) ||
                            mount_spec_new(&pc->spec) < 0 ||
                            mount_spec_add(pc->spec, "overlay", "overlay", NULL, opts, &err) < 0) {
                                bench_warn("plain baseline: %s", err.msg);
                                return err.errnum ? -err.errnum : -ENOMEM;
                        }
                }
        }
        return 0;
}

static void snap_plain_free(struct snap_bench *b)
{
        for (size_t i = 0; i < SNAP_SIZES; i++) {
                free(b->pcase[i].data);
                mount_spec_free(b->pcase[i].spec);
                b->pcase[i] = (struct plain_case){0};
        }
        b->plain_fd_engine = mount_engine_free(b->plain_fd_engine);
}

/* One plain cycle of size index `i`. */
static int plain_cycle_n(struct snap_bench *b, size_t i, uint64_t *ret_ns, struct util_err *err)
{
        const struct plain_case *pc = &b->pcase[i];
        return plain_cycle(b, pc->spec ? b->plain_fd_engine : NULL, pc->spec, pc->data, ret_ns,
                           err);
}

/* The baseline measured first, before any chain is built. */
static int snap_plain(struct snap_bench *b, unsigned iterations, struct snap_results *res)
{
        _cleanup_free_ uint64_t *buf = calloc(iterations, sizeof(*buf));
        bool printed = false;

        if (!buf)
                return bench_warn_errno(ENOMEM, "allocate samples");
        for (size_t i = 0; i < SNAP_SIZES; i++) {
                struct snap_n_result *nr = &res->plain[i];
                struct series s = {.ns = buf, .cap = iterations};
                struct util_err err = {0};
                char what[64];

                snprintf(what, sizeof(what), "plain overlay of %u dirs", nr->n);
                for (unsigned it = 0; it < BENCH_SNAP_WARMUP + iterations; it++) {
                        uint64_t ns = 0;
                        util_err_clear(&err);
                        if (plain_cycle_n(b, i, &ns, &err) < 0) {
                                res->plain_failures++;
                                report_failure(&printed, what, err.msg);
                                continue;
                        }
                        if (it >= BENCH_SNAP_WARMUP)
                                series_add(&s, ns);
                }
                figure_from(&nr->plain, &s);
        }
        return 0;
}

/* ---- output of the snapshot suite --------------------------------------------- */

static void print_snap_text(const struct snap_results *res)
{
        char a[48], c[48], d[48];

        text_line("overlay API:", "%s", mount_api_name(res->api));
        text_line("iterations:", "%u warm cycles per N (after %u warm-up), %u cold",
                  res->iterations, BENCH_SNAP_WARMUP, BENCH_SNAP_COLD_SAMPLES);
        for (size_t i = 0; i < SNAP_SIZES; i++) {
                const struct snap_n_result *p = &res->plain[i];
                char label[48];
                snprintf(label, sizeof(label), "plain %u dirs, first:", p->n);
                text_line(label, "%-10s (p90 %s; via %s, options %zu bytes)",
                          ms_or_na(a, sizeof(a), &p->plain, false),
                          ms_or_na(c, sizeof(c), &p->plain, true),
                          p->plain_fd ? "the engine's fd API" : "mount(2)", p->plain_data_len);
        }
        for (size_t m = 0; m < SNAP_MODES; m++) {
                const struct snap_mode_result *mr = &res->mode[m];
                if (!mr->supported) {
                        text_line(snap_mode_names[m], "not supported yet (%s)", mr->why);
                        continue;
                }
                text_line(snap_mode_names[m], "chain of %u layers built in %.0f ms, failures %u",
                          BENCH_SNAP_LAYERS, mr->build_ms, mr->failures);
                for (size_t i = 0; i < SNAP_SIZES; i++) {
                        const struct snap_n_result *nr = &mr->per[i];
                        char label[48];
                        snprintf(label, sizeof(label), "  N=%u warm cycle:", nr->n);
                        text_line(label, "%-10s (p90 %s; plain next to it %s)",
                                  ms_or_na(a, sizeof(a), &nr->cycle, false),
                                  ms_or_na(c, sizeof(c), &nr->cycle, true),
                                  ms_or_na(d, sizeof(d), &nr->plain, false));
                        for (size_t s = 0; s < BENCH_SNAP_STEPS; s++) {
                                snprintf(label, sizeof(label), "    %s:", snap_step_names[s]);
                                text_line(label, "%-10s (p90 %s)",
                                          ms_or_na(a, sizeof(a), &nr->step[s], false),
                                          ms_or_na(c, sizeof(c), &nr->step[s], true));
                        }
                        if (m == SNAP_MODE_QUOTA || m == SNAP_MODE_NO_POOL) {
                                snprintf(label, sizeof(label), "  N=%u cold cycle:", nr->n);
                                text_line(label, "%-10s (%u samples, layers not activated)",
                                          ms_or_na(a, sizeof(a), &nr->cold, false),
                                          nr->cold_samples);
                                snprintf(label, sizeof(label), "  N=%u after cleanup:", nr->n);
                                text_line(label, "%-10s (%u samples, no activation, no spare)",
                                          ms_or_na(a, sizeof(a), &nr->cold_host, false),
                                          nr->cold_host_samples);
                        }
                }
        }

        snprintf(c, sizeof(c), "n/a");
        if (snap_have_ratio(res, SNAP_MODE_QUOTA))
                snprintf(c, sizeof(c), "%.2fx", snap_ratio(res, SNAP_MODE_QUOTA));
        text_line("N=20 warm quota cycle:", "%-10s %s plain (target <= %.1f ms, <= %.0fx: %s)",
                  ms_or_na(a, sizeof(a), quota20(res), false), c, TARGET_SNAP_WARM_MS,
                  TARGET_SNAP_WARM_RATIO, pass_miss(target_snap_warm_met(res)));
        text_line("N=20 cold quota cycle:", "%-10s (target <= %.0f ms: %s)",
                  ms_or_na(a, sizeof(a), cold20(res), false), TARGET_SNAP_COLD_MS,
                  pass_miss(target_snap_cold_met(res)));
        text_line("  after cleanup:", "%-10s (no activation, no spare in the pool)",
                  ms_or_na(a, sizeof(a), cold_host20(res), false));
        text_line("  its floor here:",
                  "%-10s (20 layer images bound and mounted by %u threads, "
                  "no snapshot code; %u failures)",
                  ms_or_na(a, sizeof(a), &res->cold_floor, false), BENCH_FLOOR_THREADS,
                  res->cold_floor_failures);
        if (!res->mode[SNAP_MODE_DIR].supported) {
                text_line("N=20 dir upper / plain:", "not supported yet (target <= %.1fx)",
                          TARGET_SNAP_DIR_RATIO);
        } else {
                snprintf(a, sizeof(a), "n/a");
                if (snap_have_ratio(res, SNAP_MODE_DIR))
                        snprintf(a, sizeof(a), "%.2fx", snap_ratio(res, SNAP_MODE_DIR));
                text_line("N=20 dir upper / plain:", "%-10s (target <= %.1fx: %s)", a,
                          TARGET_SNAP_DIR_RATIO, pass_miss(target_snap_dir_met(res)));
        }
        snprintf(a, sizeof(a), "n/a");
        if (res->have_fresh)
                snprintf(a, sizeof(a), "%.2f MiB", res->fresh_mib);
        text_line("fresh active allocated:", "%-10s (10 GiB quota; target <= %.0f MiB: %s)", a,
                  TARGET_SNAP_FRESH_MIB, pass_miss(target_snap_fresh_met(res)));
        if (res->have_fresh_template && res->have_fresh_spare)
                text_line("",
                          "the larger of: template clone %.2f MiB, spare from the pool %.2f MiB",
                          res->fresh_template_mib, res->fresh_spare_mib);
        if (!res->mode[SNAP_MODE_BLOCK].supported)
                text_line("N=20 block prepare:", "not supported yet (target <= %.0f ms)",
                          TARGET_SNAP_BLOCK_MS);
        else
                text_line("N=20 block prepare:", "%-10s (target <= %.0f ms: %s)",
                          ms_or_na(d, sizeof(d), block20(res), false), TARGET_SNAP_BLOCK_MS,
                          pass_miss(target_snap_block_met(res)));
        text_line("failures:", "%u", snap_failures(res));
        text_line("leaked devices:", "%zu", res->leaked_devices);
        text_line("leaked mounts:", "%zu", res->leaked_mounts);
        text_line("targets:", "%s", snap_targets_met(res) ? "all met" : "MISSED");
}

static void print_snap_json(const struct snap_results *res)
{
        const struct snap_mode_result *dir = &res->mode[SNAP_MODE_DIR];

        printf("{\n");
        printf("  \"suite\": \"snapshot\",\n");
        printf("  \"api\": \"%s\",\n", mount_api_name(res->api));
        printf("  \"iterations\": %u,\n", res->iterations);
        printf("  \"cold_samples\": %u,\n", BENCH_SNAP_COLD_SAMPLES);
        printf("  \"plain\": {\n");
        for (size_t i = 0; i < SNAP_SIZES; i++) {
                const struct snap_n_result *p = &res->plain[i];
                printf("    \"%u\": {", p->n);
                json_figure("cycle_ms", &p->plain, ", ");
                json_fixed("cycle_p90_ms", p->plain.have, p->plain.p90_ms, 4, ", ");
                printf("\"via\": \"%s\", \"data_bytes\": %zu}%s\n",
                       p->plain_fd ? "engine-fd" : "mount2", p->plain_data_len,
                       i + 1 < SNAP_SIZES ? "," : "");
        }
        printf("  },\n");
        for (size_t m = 0; m < SNAP_MODES; m++) {
                const struct snap_mode_result *mr = &res->mode[m];
                if (!mr->supported) {
                        printf("  \"%s\": null,\n", snap_mode_keys[m]);
                        continue;
                }
                printf("  \"%s\": {\n", snap_mode_keys[m]);
                printf("    \"chain_build_ms\": %.1f,\n", mr->build_ms);
                printf("    \"failures\": %u,\n", mr->failures);
                for (size_t i = 0; i < SNAP_SIZES; i++) {
                        const struct snap_n_result *nr = &mr->per[i];
                        printf("    \"%u\": {", nr->n);
                        json_figure("warm_cycle_ms", &nr->cycle, ", ");
                        json_fixed("warm_cycle_p90_ms", nr->cycle.have, nr->cycle.p90_ms, 4, ", ");
                        for (size_t s = 0; s < BENCH_SNAP_STEPS; s++) {
                                char key[32];
                                snprintf(key, sizeof(key), "%s_ms", snap_step_names[s]);
                                json_figure(key, &nr->step[s], ", ");
                                snprintf(key, sizeof(key), "%s_p90_ms", snap_step_names[s]);
                                json_fixed(key, nr->step[s].have, nr->step[s].p90_ms, 4, ", ");
                        }
                        if (m == SNAP_MODE_QUOTA || m == SNAP_MODE_NO_POOL) {
                                json_figure("cold_cycle_ms", &nr->cold, ", ");
                                json_fixed("cold_cycle_p90_ms", nr->cold.have, nr->cold.p90_ms, 4,
                                           ", ");
                                json_figure("cold_host_cycle_ms", &nr->cold_host, ", ");
                                json_fixed("cold_host_cycle_p90_ms", nr->cold_host.have,
                                           nr->cold_host.p90_ms, 4, ", ");
                                for (size_t s = 0; s < BENCH_SNAP_STEPS; s++) {
                                        char key[40];
                                        snprintf(key, sizeof(key), "cold_%s_ms",
                                                 snap_step_names[s]);
                                        json_figure(key, &nr->cold_step[s], ", ");
                                        snprintf(key, sizeof(key), "cold_host_%s_ms",
                                                 snap_step_names[s]);
                                        json_figure(key, &nr->cold_host_step[s], ", ");
                                }
                        }
                        json_figure("plain_cycle_ms", &nr->plain, ", ");
                        json_fixed("vs_plain_ratio", have_ratio(&nr->cycle, &nr->plain),
                                   ratio_of(&nr->cycle, &nr->plain), 3, ", ");
                        json_fixed("vs_quiet_plain_ratio",
                                   have_ratio(&nr->cycle, &res->plain[i].plain),
                                   ratio_of(&nr->cycle, &res->plain[i].plain), 3, "}");
                        printf("%s\n", i + 1 < SNAP_SIZES ? "," : "");
                }
                printf("  },\n");
        }
        printf("  ");
        json_figure("n20_warm_quota_cycle_ms", quota20(res), ",\n  ");
        json_fixed("n20_warm_quota_cycle_p90_ms", quota20(res)->have, quota20(res)->p90_ms, 4,
                   ",\n  ");
        json_fixed("n20_warm_quota_vs_plain_ratio", snap_have_ratio(res, SNAP_MODE_QUOTA),
                   snap_ratio(res, SNAP_MODE_QUOTA), 3, ",\n  ");
        json_fixed("n20_warm_quota_vs_quiet_plain_ratio", have_ratio(quota20(res), plain20(res)),
                   snap_quiet_ratio(res, SNAP_MODE_QUOTA), 3, ",\n  ");
        const struct snap_mode_result *np = &res->mode[SNAP_MODE_NO_POOL];
        json_figure("n20_warm_quota_no_pool_cycle_ms",
                    np->supported ? &snap_n(np, 20)->cycle : &(struct figure){0}, ",\n  ");
        json_fixed("n20_warm_quota_no_pool_vs_plain_ratio", snap_have_ratio(res, SNAP_MODE_NO_POOL),
                   snap_ratio(res, SNAP_MODE_NO_POOL), 3, ",\n  ");
        json_figure("n20_cold_quota_no_pool_cycle_ms",
                    np->supported ? &snap_n(np, 20)->cold : &(struct figure){0}, ",\n  ");
        const struct snap_mode_result *pv = &res->mode[SNAP_MODE_POOL_VOLATILE];
        json_figure("n20_warm_quota_pool_volatile_cycle_ms",
                    pv->supported ? &snap_n(pv, 20)->cycle : &(struct figure){0}, ",\n  ");
        json_fixed("n20_warm_quota_pool_volatile_vs_plain_ratio",
                   snap_have_ratio(res, SNAP_MODE_POOL_VOLATILE),
                   snap_ratio(res, SNAP_MODE_POOL_VOLATILE), 3, ",\n  ");
        json_figure("n20_cold_quota_cycle_ms", cold20(res), ",\n  ");
        json_figure("n20_cold_host_quota_cycle_ms", cold_host20(res), ",\n  ");
        json_figure("n20_cold_layers_floor_ms", &res->cold_floor, ",\n  ");
        json_fixed("n20_cold_quota_cycle_p90_ms", cold20(res)->have, cold20(res)->p90_ms, 4,
                   ",\n  ");
        json_figure("n20_dir_upper_cycle_ms",
                    dir->supported ? &snap_n(dir, 20)->cycle : &(struct figure){0}, ",\n  ");
        json_fixed("n20_dir_upper_vs_plain_ratio", snap_have_ratio(res, SNAP_MODE_DIR),
                   snap_ratio(res, SNAP_MODE_DIR), 3, ",\n  ");
        json_figure("n20_dir_upper_plain_cycle_ms", mode_plain20(res, SNAP_MODE_DIR), ",\n  ");
        json_fixed("n20_dir_upper_vs_quiet_plain_ratio",
                   have_ratio(&snap_n(dir, 20)->cycle, plain20(res)),
                   snap_quiet_ratio(res, SNAP_MODE_DIR), 3, ",\n  ");
        json_fixed("fresh_active_allocated_mib", res->have_fresh, res->fresh_mib, 2, ",\n  ");
        json_fixed("fresh_active_template_mib", res->have_fresh_template, res->fresh_template_mib,
                   2, ",\n  ");
        json_fixed("fresh_active_spare_mib", res->have_fresh_spare, res->fresh_spare_mib, 2,
                   ",\n  ");
        json_figure("block_prepare_ms",
                    res->mode[SNAP_MODE_BLOCK].supported ? block20(res) : &(struct figure){0},
                    ",\n  ");
        /* The baseline of the warm quota target: interleaved with it. */
        const struct figure *qp = mode_plain20(res, SNAP_MODE_QUOTA);
        json_figure("plain_baseline_cycle_ms", qp, ",\n  ");
        json_fixed("plain_baseline_cycle_p90_ms", qp->have, qp->p90_ms, 4, ",\n  ");
        json_figure("plain_quiet_cycle_ms", plain20(res), ",\n  ");
        json_fixed("plain_quiet_cycle_p90_ms", plain20(res)->have, plain20(res)->p90_ms, 4, ",\n");
        printf("  \"targets\": {\"n20_warm_quota\": %s, \"n20_cold_quota\": %s, "
               "\"n20_dir_upper\": %s, \"fresh_active\": %s, \"block_prepare\": %s},\n",
               json_bool(target_snap_warm_met(res)), json_bool(target_snap_cold_met(res)),
               json_bool(target_snap_dir_met(res)), json_bool(target_snap_fresh_met(res)),
               json_bool(target_snap_block_met(res)));
        printf("  \"failures\": %u,\n", snap_failures(res));
        printf("  \"leaked_devices\": %zu,\n", res->leaked_devices);
        printf("  \"leaked_mounts\": %zu,\n", res->leaked_mounts);
        printf("  \"targets_met\": %s\n", json_bool(snap_targets_met(res)));
        printf("}\n");
}

/* ---- the snapshot suite -------------------------------------------------------- */

static int snap_run_mode(struct snap_bench *b, struct snap_root **roots, enum snap_mode mode,
                         struct snap_results *res)
{
        struct snap_mode_result *mr = &res->mode[mode];
        struct util_err err = {0};

        for (size_t i = 0; i < SNAP_SIZES; i++)
                mr->per[i].n = snap_sizes[i];
        int r = snap_root_open_mode(b, mode, &roots[mode], &err);
        if (r == -EOPNOTSUPP) {
                snprintf(mr->why, sizeof(mr->why), "%s", err.msg);
                return 0;
        }
        if (r < 0) {
                bench_warn("%s: %s", snap_mode_names[mode], err.msg);
                return r;
        }
        mr->supported = true;
        r = snap_build_chain(b, roots[mode], mode, mr);
        if (r >= 0)
                r = snap_warm(b, roots[mode], mode, res->iterations, mr);
        if (r >= 0 && (mode == SNAP_MODE_QUOTA || mode == SNAP_MODE_NO_POOL))
                r = snap_fresh(roots[mode], mode == SNAP_MODE_QUOTA, res);
        if (r >= 0 && (mode == SNAP_MODE_QUOTA || mode == SNAP_MODE_NO_POOL))
                r = snap_cold(b, &roots[mode], mr);
        if (r >= 0 && mode == SNAP_MODE_QUOTA)
                r = snap_cold_floor(b, roots[mode], res);
        return r;
}

static int bench_snapshot(const struct bench_opts *o)
{
        struct snap_bench b = {0};
        struct snap_root *roots[SNAP_MODES] = {NULL};
        struct snap_results res = {
                .iterations = o->iterations_given ? o->iterations : BENCH_SNAP_ITERATIONS,
        };

        for (size_t i = 0; i < SNAP_SIZES; i++)
                res.plain[i].n = snap_sizes[i];
        int r = snap_bench_init(&b);
        res.api = b.engine ? mount_engine_api(b.engine) : mount_api_probe();
        if (r >= 0)
                r = snap_plain_setup(&b, &res);
        if (r >= 0)
                r = snap_plain(&b, res.iterations, &res);
        for (size_t m = 0; m < SNAP_MODES && r >= 0; m++)
                r = snap_run_mode(&b, roots, (enum snap_mode)m, &res);
        /* Also after a failure: nothing mounted stays, every snapshot and the
         * directory go, then no device may be left. */
        int k = snap_bench_cleanup(&b, roots, &res.leaked_mounts);
        snap_plain_free(&b);
        for (size_t m = 0; m < SNAP_MODES; m++)
                snap_root_close(roots[m]);
        mount_engine_free(b.engine);
        int l = snap_leak_check(&b, &res.leaked_devices);
        if (r < 0)
                return r;
        if (k < 0)
                return k;
        if (l < 0)
                return l;

        if (o->json)
                print_snap_json(&res);
        else
                print_snap_text(&res);
        (void)fflush(stdout);

        if (snap_failures(&res) > 0) {
                bench_warn("%u snapshot cycle(s) failed", snap_failures(&res));
                return -EIO;
        }
        if (res.leaked_devices > 0 || res.leaked_mounts > 0) {
                bench_warn("%zu loop device(s) and %zu mount(s) left behind", res.leaked_devices,
                           res.leaked_mounts);
                return -EBUSY;
        }
        return 0;
}

/* ---- the hook suite (hook.c) ------------------------------------------------ */

static int bench_hook_suite(const struct bench_opts *o)
{
        return bench_hook(o->json, o->iterations_given ? o->iterations : BENCH_HOOK_ITERATIONS);
}

/* ---- main ----------------------------------------------------------------- */

static const struct bench_suite suites[] = {
        {"loop", bench_loop, "attach+detach latency, the losetup baseline, 64 concurrent attaches"},
        {"mount", bench_mount,
         "overlay mount time vs lowers (fd, legacy, mount(2)); idmap vs chown -R"},
        {"snapshot", bench_snapshot,
         "container cycle on 1/20/100 committed layers (warm, cold) vs plain overlay"},
        {"hook", bench_hook_suite, "crun run with the OCI hook vs a plain directory root"},
};

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: " BENCH_NAME " SUITE [--json] [--iterations N]\n"
                "\n"
                "Runs a benchmark suite against the real kernel (needs root).\n"
                "\n"
                "Options:\n"
                "  --json           print exactly one JSON object on stdout\n"
                "  --iterations N   measured iterations (default: loop %u; mount %u per\n"
                "                   overlay case and %u per idmap case; snapshot %u\n"
                "                   warm cycles per N; hook %u crun runs each way)\n"
                "  -h, --help       show this help\n"
                "\n"
                "Suites:\n",
                BENCH_DEFAULT_ITERATIONS, BENCH_OVL_ITERATIONS, BENCH_IDMAP_ITERATIONS,
                BENCH_SNAP_ITERATIONS, BENCH_HOOK_ITERATIONS);
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(suites); i++)
                fprintf(f, "  %-8s %s\n", suites[i].name, suites[i].summary);
        fprintf(f, "\nExit status: 0 the run completed (targets met or not), 1 it could not\n"
                   "be set up, left loop devices behind, or a mount failed its check.\n");
}

static const struct bench_suite *suite_find(const char *name)
{
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(suites); i++)
                if (strcmp(suites[i].name, name) == 0)
                        return &suites[i];
        return NULL;
}

int main(int argc, char *argv[])
{
        static const struct option longopts[] = {
                {"json", no_argument, NULL, 'j'},
                {"iterations", required_argument, NULL, 'n'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct bench_opts o = {.iterations = BENCH_DEFAULT_ITERATIONS};
        uint64_t v;
        int c;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case 'j':
                        o.json = true;
                        break;
                case 'n':
                        if (util_parse_u64(optarg, &v) < 0 || v == 0 || v > BENCH_MAX_ITERATIONS) {
                                bench_warn("--iterations: '%s' is not a number from 1 to %u",
                                           optarg, BENCH_MAX_ITERATIONS);
                                return EXIT_FAILURE;
                        }
                        o.iterations = (unsigned)v;
                        o.iterations_given = true;
                        break;
                case 'h':
                        usage(stdout);
                        return EXIT_SUCCESS;
                default:
                        usage(stderr);
                        return EXIT_FAILURE;
                }
        }
        if (optind >= argc) {
                bench_warn("no suite given (try --help)");
                return EXIT_FAILURE;
        }
        if (argc - optind > 1) {
                bench_warn("one suite per run, got %d", argc - optind);
                return EXIT_FAILURE;
        }
        const struct bench_suite *suite = suite_find(argv[optind]);
        if (!suite) {
                char known[256] = "";
                for (size_t i = 0; i < UTIL_ARRAY_SIZE(suites); i++) {
                        size_t len = strlen(known);
                        snprintf(known + len, sizeof(known) - len, "%s%s", i ? ", " : "",
                                 suites[i].name);
                }
                bench_warn("unknown suite '%s' (known: %s; try --help)", argv[optind], known);
                return EXIT_FAILURE;
        }
        if (geteuid() != 0) {
                bench_warn("must run as root: loop devices and mounts need CAP_SYS_ADMIN");
                return EXIT_FAILURE;
        }
        return suite->run(&o) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
