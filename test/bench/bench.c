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
 * A benchmark reports, it does not assert: a missed target still exits 0.
 * Exit 1 means the run could not be set up, or left loop devices behind.
 *
 * Only devices this process attached are ever detached: our own handles, and
 * what `losetup --find --show` printed for our image.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop/loop.h"
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
};

struct bench_suite {
        const char *name;
        /* Returns 0 when the run completed (targets missed or not), -errno
         * when it could not be set up or left devices behind (reported). */
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
        double median = n % 2 ? (double)ns[n / 2] : ((double)ns[n / 2 - 1] + (double)ns[n / 2]) / 2;
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
        fflush(stdout);

        if (res.leaked_devices > 0) {
                bench_warn("%zu loop device(s) left behind", res.leaked_devices);
                return -EBUSY;
        }
        return 0;
}

/* ---- main ----------------------------------------------------------------- */

static const struct bench_suite suites[] = {
        {"loop", bench_loop, "attach+detach latency, the losetup baseline, 64 concurrent attaches"},
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
                "  --iterations N   measured iterations (default %u)\n"
                "  -h, --help       show this help\n"
                "\n"
                "Suites:\n",
                BENCH_DEFAULT_ITERATIONS);
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(suites); i++)
                fprintf(f, "  %-8s %s\n", suites[i].name, suites[i].summary);
        fprintf(f, "\nExit status: 0 the run completed (targets met or not), 1 it could not\n"
                   "be set up or left loop devices behind.\n");
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
                bench_warn("must run as root: loop devices need CAP_SYS_ADMIN");
                return EXIT_FAILURE;
        }
        return suite->run(&o) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
