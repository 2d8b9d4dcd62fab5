/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * loopsnap-soak: a soak test of one snapshotter root (docs/soak.md).
 *
 *   loopsnap-soak --root DIR --minutes M [--workers N] [--seed S] [--json] ...
 *
 * The controller keeps N operation slots busy for M minutes. Every operation
 * (prepare, mount, write, umount, commit, remove, verify) is a fresh process:
 * the controller re-executes itself with `--op` (worker.c) through
 * posix_spawn, a tenth or so of them with LOOPSNAP_FAULT naming a fault point
 * of that operation, so they die there like a kill -9. The controller alone
 * knows what the root must hold: a model of every snapshot (kind, parent,
 * mounted or not, the tree a container must see, the expected hash of every
 * committed layer), kept in its own memory, never read back from the
 * snapshot database except to settle what a killed operation did.
 *
 * Every --check-every seconds and at the end it lets the running operations
 * finish and runs a checkpoint (check.c): fsck, fsck --repair, fsck clean,
 * SQLite integrity, the store against the model, leaked loop devices and
 * mounts, every committed layer's and every active snapshot's content.
 * At the end everything is removed and the root must be empty, with no loop
 * device and no mount left.
 *
 * Processes: the controller runs in its own mount namespace (everything is
 * private, so nothing the run mounts is seen by, or propagates to, the
 * host; operation processes share it, as snapctl processes share the host's)
 * and is a child subreaper, so helpers orphaned by a killed operation are
 * reparented to it and reaped. Operation processes get their own process
 * group (a ^C stops the controller, which then winds down cleanly) and the
 * default signal dispositions and an empty signal mask.
 *
 * Exit status: 0 no failure, 1 a failure (integrity, leak, lost or wrong
 * content, an operation failing that had to succeed), 2 usage, 77 skipped
 * (not root, no loop devices, no mkfs.ext4).
 */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <yajl/yajl_gen.h>

#include "test/soak/soak.h"
#include "util/json.h"

extern char **environ;

const char *const soak_op_names[SOAK_N_OPS] = {
        "prepare", "mount", "write", "umount", "commit", "remove", "verify",
};

/* The named fault points (util_fault_point in snapshot/), and whether the
 * operation had landed when a process dies there (docs/fsck.md). */
static const struct {
        const char *name;
        int new_state;
} point_table[SOAK_N_POINTS] = {
        {"prepare-after-clone", 0},     {"create-before-db-commit", 0},
        {"create-after-db-commit", 1},  {"template-after-mkfs", 0},
        {"commit-while-mounted", 0},    {"commit-after-layer-image", 0},
        {"commit-before-db-commit", 0}, {"commit-after-db-commit", 1},
        {"remove-before-db-commit", 0}, {"remove-after-db-commit", 1},
};

static volatile sig_atomic_t stop_requested;

/* ---- bookkeeping ---- */

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double soak_elapsed(const struct soak *s)
{
        return (double)(now_ns() - s->started_ns) / 1e9;
}

void soak_say(struct soak *s, bool always, const char *fmt, ...)
{
        va_list ap;
        if (!always && !s->verbose)
                return;
        fprintf(stderr, "[%6.1fs] ", soak_elapsed(s));
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

#define SOAK_MAX_FAILURES_KEPT 200

void soak_fail(struct soak *s, const char *fmt, ...)
{
        va_list ap;
        char *msg = NULL;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        s->n_failures_total++;
        fprintf(stderr, "[%6.1fs] FAILURE: %s\n", soak_elapsed(s), msg ? msg : "(no memory)");
        if (msg && s->n_failures < SOAK_MAX_FAILURES_KEPT) {
                void *p = realloc(s->failures, (s->n_failures + 1) * sizeof(*s->failures));
                if (p) {
                        s->failures = p;
                        s->failures[s->n_failures++] = msg;
                        return;
                }
        }
        free(msg);
}

struct soak_point *soak_point_get(struct soak *s, const char *name)
{
        for (size_t k = 0; k < SOAK_N_POINTS; k++)
                if (s->points[k].name && strcmp(s->points[k].name, name) == 0)
                        return &s->points[k];
        return NULL;
}

static int point_new_state(const char *name)
{
        for (size_t k = 0; k < SOAK_N_POINTS; k++)
                if (strcmp(point_table[k].name, name) == 0)
                        return point_table[k].new_state;
        return -1;
}

unsigned soak_depth(const struct soak *s, int k)
{
        unsigned d = 0;
        for (int p = s->snaps[k].parent; p >= 0; p = s->snaps[p].parent)
                d++;
        return d;
}

void soak_snap_drop(struct soak *s, int k)
{
        struct soak_snap *sn = &s->snaps[k];
        if (sn->parent >= 0)
                s->snaps[sn->parent].children--;
        soak_tree_done(&sn->tree);
        memset(sn, 0, sizeof(*sn));
        sn->parent = -1;
}

/* A new model entry (reusing a dropped one). */
static int snap_new(struct soak *s)
{
        for (size_t k = 0; k < s->n_snaps; k++)
                if (!s->snaps[k].live)
                        return (int)k;
        void *p = realloc(s->snaps, (s->n_snaps + 1) * sizeof(*s->snaps));
        if (!p)
                return -1;
        s->snaps = p;
        memset(&s->snaps[s->n_snaps], 0, sizeof(*s->snaps));
        s->snaps[s->n_snaps].parent = -1;
        return (int)s->n_snaps++;
}

/* Settled snapshots (those operations can use). What killed operations
 * left is settled at the next checkpoint, which comes early when there is
 * much of it (pending_many: rows, directories and leaked devices pile up
 * meanwhile). */
static unsigned count_live(const struct soak *s)
{
        unsigned n = 0;
        for (size_t k = 0; k < s->n_snaps; k++)
                n += s->snaps[k].live && s->snaps[k].pend == SOAK_PEND_NONE;
        return n;
}

static bool pending_many(const struct soak *s)
{
        unsigned n = 0;
        for (size_t k = 0; k < s->n_snaps; k++)
                n += s->snaps[k].live && s->snaps[k].pend != SOAK_PEND_NONE;
        return n >= 5 * s->max_snaps;
}

/* ---- operation slots ---- */

struct slot {
        int nr;
        pid_t pid; /* 0: idle */
        enum soak_op op;
        int snap;         /* the snapshot it changes or creates; -1 */
        int parent;       /* prepare / verify: the parent it holds a child count on; -1 */
        int orphan;       /* umount of an orphan mount: its index; -1 */
        int expect_errno; /* > 0: the operation must fail with it (a refusal test) */
        const char *what; /* the refusal tested */
        const char *fault;
        char target[SOAK_TARGET_MAX];
        char key[SOAK_KEY_MAX]; /* verify: the view's key; commit: the new name */
        struct soak_tree tree;  /* write: the model after the plan */
        char **plan;
        size_t n_plan;
        int fd; /* the process's stdout and stderr */
        char out[16384];
        size_t out_len;
        uint64_t started, kill_at; /* kill_at: SIGKILL then (--sigkill-pct); 0 never */
        bool sigkilled, timed_out;
        char desc[SOAK_TARGET_MAX + 128];
};

static void slot_reset(struct slot *sl)
{
        int nr = sl->nr;
        soak_tree_done(&sl->tree);
        soak_plan_free(sl->plan, sl->n_plan);
        util_closep(&sl->fd);
        memset(sl, 0, sizeof(*sl));
        sl->nr = nr;
        sl->snap = sl->parent = sl->orphan = -1;
        sl->fd = -EBADF;
}

/* Builds the environment of an operation: ours without LOOPSNAP_FAULT, plus
 * the fault point when there is one. */
static char **op_environ(const char *fault)
{
        size_t n = 0;
        while (environ[n])
                n++;
        char **env = calloc(n + 2, sizeof(*env));
        if (!env)
                return NULL;
        size_t k = 0;
        for (size_t j = 0; j < n; j++)
                if (strncmp(environ[j], "LOOPSNAP_FAULT=", 15) != 0)
                        env[k++] = environ[j];
        if (fault && asprintf(&env[k++], "LOOPSNAP_FAULT=%s", fault) < 0) {
                free(env);
                return NULL;
        }
        return env;
}

static void op_environ_free(char **env, const char *fault)
{
        if (!env)
                return;
        if (fault) {
                size_t n = 0;
                while (env[n])
                        n++;
                free(env[n - 1]);
        }
        free(env);
}

/* Starts `loopsnap-soak --op OP --root-path ROOT args...` for the slot. */
static int spawn_op(struct soak *s, struct slot *sl, const char *op, const char *const *args)
{
        const char *argv[64];
        size_t n = 0;
        int pipefd[2];
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        int rc;

        argv[n++] = s->self;
        argv[n++] = "--op";
        argv[n++] = op;
        argv[n++] = "--root-path";
        argv[n++] = s->root;
        if (s->plugin_path) {
                argv[n++] = "--plugin";
                argv[n++] = s->plugin_path;
        }
        for (size_t k = 0; args && args[k] && n < UTIL_ARRAY_SIZE(argv) - 1 - sl->n_plan - 1; k++)
                argv[n++] = args[k];
        if (sl->n_plan) {
                argv[n++] = "--";
                for (size_t k = 0; k < sl->n_plan; k++)
                        argv[n++] = sl->plan[k];
        }
        argv[n] = NULL;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        char **env = op_environ(sl->fault);
        if (!env) {
                close(pipefd[0]);
                close(pipefd[1]);
                return -ENOMEM;
        }
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                POSIX_SPAWN_SETPGROUP);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setpgroup(&attr, 0);
        rc = posix_spawn(&sl->pid, s->self, &fa, &attr, (char *const *)argv, env);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        op_environ_free(env, sl->fault);
        close(pipefd[1]);
        if (rc != 0) {
                close(pipefd[0]);
                sl->pid = 0;
                return -rc;
        }
        (void)fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
        sl->fd = pipefd[0];
        sl->started = now_ns();
        if (s->sigkill_pct && soak_chance(&s->rng, s->sigkill_pct))
                /* Most operations take 5-100 ms: somewhere inside one. */
                sl->kill_at = sl->started + (uint64_t)soak_below(&s->rng, 60) * 1000000u;
        soak_say(s, false, "slot %d: %s%s%s", sl->nr, sl->desc, sl->fault ? " FAULT " : "",
                 sl->fault ? sl->fault : "");
        return 0;
}

/* ---- choosing operations ---- */

static bool is_free(const struct soak_snap *sn)
{
        return sn->live && !sn->busy && sn->pend == SOAK_PEND_NONE;
}

enum pick_what {
        PICK_PARENT,         /* committed, free, not too deep */
        PICK_COMMITTED,      /* committed, free */
        PICK_ACTIVE_UNMOUNT, /* active, free, not mounted, content known */
        PICK_ACTIVE_MOUNTED, /* active, free, mounted */
        PICK_WRITABLE,       /* active, free, mounted, content known */
        PICK_LEAF,           /* free, no children */
        PICK_HAS_CHILD,      /* committed, free, with a free child */
};

static bool pick_ok(const struct soak *s, int k, enum pick_what w)
{
        const struct soak_snap *sn = &s->snaps[k];
        if (!is_free(sn))
                return false;
        switch (w) {
        case PICK_PARENT:
                return sn->kind == LOOPSNAP_KIND_COMMITTED && soak_depth(s, k) + 1 < s->max_depth;
        case PICK_COMMITTED:
                return sn->kind == LOOPSNAP_KIND_COMMITTED;
        case PICK_ACTIVE_UNMOUNT:
                return sn->kind == LOOPSNAP_KIND_ACTIVE && !sn->mounted && !sn->tainted;
        case PICK_ACTIVE_MOUNTED:
                return sn->kind == LOOPSNAP_KIND_ACTIVE && sn->mounted;
        case PICK_WRITABLE:
                return sn->kind == LOOPSNAP_KIND_ACTIVE && sn->mounted && !sn->tainted;
        case PICK_LEAF:
                return sn->children == 0;
        case PICK_HAS_CHILD:
                if (sn->kind != LOOPSNAP_KIND_COMMITTED)
                        return false;
                /* A child that no operation can take away meanwhile. */
                for (size_t j = 0; j < s->n_snaps; j++)
                        if (s->snaps[j].parent == k && is_free(&s->snaps[j]))
                                return true;
                return false;
        }
        return false;
}

static int pick(struct soak *s, enum pick_what w)
{
        unsigned n = 0;
        for (size_t k = 0; k < s->n_snaps; k++)
                n += pick_ok(s, (int)k, w);
        if (n == 0)
                return -1;
        unsigned want = soak_below(&s->rng, n);
        for (size_t k = 0; k < s->n_snaps; k++)
                if (pick_ok(s, (int)k, w) && want-- == 0)
                        return (int)k;
        return -1;
}

static bool variant_converts(const struct soak *s)
{
        return strstr(s->variant, "erofs") || strncmp(s->variant, "dir", 3) == 0;
}

static bool variant_dir(const struct soak *s)
{
        return strncmp(s->variant, "dir", 3) == 0;
}

/* A fault point for `op` (or NULL), honouring --fault-pct and the points
 * the root's variant has. */
static const char *pick_fault(struct soak *s, enum soak_op op)
{
        const char *c[8];
        size_t n = 0;

        if (!soak_chance(&s->rng, s->fault_pct))
                return NULL;
        switch (op) {
        case SOAK_OP_PREPARE:
                c[n++] = "prepare-after-clone";
                c[n++] = "create-before-db-commit";
                c[n++] = "create-after-db-commit";
                if (!variant_dir(s))
                        c[n++] = "template-after-mkfs";
                break;
        case SOAK_OP_COMMIT:
                if (!variant_dir(s))
                        c[n++] = "commit-while-mounted";
                if (variant_converts(s))
                        c[n++] = "commit-after-layer-image";
                c[n++] = "commit-before-db-commit";
                c[n++] = "commit-after-db-commit";
                break;
        case SOAK_OP_REMOVE:
                c[n++] = "remove-before-db-commit";
                c[n++] = "remove-after-db-commit";
                break;
        case SOAK_OP_VERIFY:
                c[n++] = "create-before-db-commit";
                c[n++] = "create-after-db-commit";
                c[n++] = "remove-before-db-commit";
                c[n++] = "remove-after-db-commit";
                break;
        default:
                return NULL;
        }
        return c[soak_below(&s->rng, (uint32_t)n)];
}

static int make_target(struct soak *s, struct slot *sl, char prefix)
{
        snprintf(sl->target, sizeof(sl->target), "%s/%c%u", s->mnt, prefix, ++s->serial);
        if (mkdir(sl->target, 0755) < 0) {
                soak_fail(s, "mkdir '%s': %s", sl->target, strerror(errno));
                return -errno;
        }
        return 0;
}

static bool start_prepare(struct soak *s, struct slot *sl)
{
        if (count_live(s) >= s->max_snaps)
                return false;
        int parent = soak_chance(&s->rng, 80) ? pick(s, PICK_PARENT) : -1;
        int k = snap_new(s);
        if (k < 0)
                return false;
        struct soak_snap *sn = &s->snaps[k];
        char size[32] = "";
        sl->fault = pick_fault(s, SOAK_OP_PREPARE);
        if (sl->fault && strcmp(sl->fault, "template-after-mkfs") == 0) {
                /* A size no template exists for yet, above the other
                 * sizes below: the point is reached. */
                snprintf(size, sizeof(size), "%" PRIu64,
                         2 * s->writable_size + (uint64_t)(++s->templates_made) * (1u << 20));
        } else if (!variant_dir(s) && soak_chance(&s->rng, 5)) {
                /* A few other sizes (1, 1.5, 2 times the default):
                 * concurrent first uses of a template. */
                snprintf(size, sizeof(size), "%" PRIu64,
                         s->writable_size / 2 * (2 + soak_below(&s->rng, 3)));
        }
        if (parent >= 0 && soak_tree_copy(&s->snaps[parent].tree, &sn->tree) < 0)
                return false;
        sn->live = true;
        snprintf(sn->key, sizeof(sn->key), "a%u", ++s->serial);
        sn->kind = LOOPSNAP_KIND_ACTIVE;
        sn->parent = parent;
        sn->busy = sl->nr + 1;
        sn->pend = SOAK_PEND_CREATE; /* until the operation says */
        if (parent >= 0)
                s->snaps[parent].children++;
        sl->op = SOAK_OP_PREPARE;
        sl->snap = k;
        snprintf(sl->desc, sizeof(sl->desc), "prepare %s on %s%s%s", sn->key,
                 parent >= 0 ? s->snaps[parent].key : "(none)", *size ? " size " : "", size);
        const char *args[8];
        size_t n = 0;
        args[n++] = "--key";
        args[n++] = sn->key;
        if (parent >= 0) {
                args[n++] = "--parent";
                args[n++] = s->snaps[parent].key;
        }
        if (*size) {
                args[n++] = "--size";
                args[n++] = size;
        }
        args[n] = NULL;
        if (spawn_op(s, sl, "prepare", args) < 0) {
                soak_fail(s, "spawn: %s", sl->desc);
                soak_snap_drop(s, k);
                return false;
        }
        return true;
}

static bool start_mount(struct soak *s, struct slot *sl)
{
        int k = pick(s, PICK_ACTIVE_UNMOUNT);
        if (k < 0 || make_target(s, sl, 'a') < 0)
                return false;
        struct soak_snap *sn = &s->snaps[k];
        sn->busy = sl->nr + 1;
        snprintf(sn->target, sizeof(sn->target), "%s", sl->target);
        sl->op = SOAK_OP_MOUNT;
        sl->snap = k;
        snprintf(sl->desc, sizeof(sl->desc), "mount %s on %s", sn->key, sl->target);
        const char *args[] = {"--key", sn->key, "--target", sl->target, NULL};
        if (spawn_op(s, sl, "mount", args) < 0) {
                sn->busy = 0;
                return false;
        }
        return true;
}

static bool start_write(struct soak *s, struct slot *sl)
{
        int k = pick(s, PICK_WRITABLE);
        if (k < 0)
                return false;
        struct soak_snap *sn = &s->snaps[k];
        if (soak_plan_make(&sn->tree, &s->rng, s->max_bytes, &sl->tree, &sl->plan, &sl->n_plan) < 0)
                return false;
        sn->busy = sl->nr + 1;
        snprintf(sl->target, sizeof(sl->target), "%s", sn->target);
        sl->op = SOAK_OP_WRITE;
        sl->snap = k;
        snprintf(sl->desc, sizeof(sl->desc), "write %zu changes into %s (%s)", sl->n_plan, sn->key,
                 sn->target);
        const char *args[] = {"--target", sl->target, NULL};
        if (spawn_op(s, sl, "write", args) < 0) {
                sn->busy = 0;
                return false;
        }
        return true;
}

static bool start_umount(struct soak *s, struct slot *sl)
{
        int k = -1, o = -1;
        unsigned n_o = 0;
        for (size_t j = 0; j < s->n_orphans; j++)
                n_o += s->orphans[j].target[0] != '\0';
        if (n_o > 0 && soak_chance(&s->rng, 50)) {
                /* The list only grows between checkpoints (indices stay);
                 * a slot takes an entry by emptying its target. */
                unsigned want = soak_below(&s->rng, n_o);
                for (size_t j = 0; j < s->n_orphans && o < 0; j++)
                        if (s->orphans[j].target[0] && want-- == 0)
                                o = (int)j;
                sl->orphan = o;
                snprintf(sl->target, sizeof(sl->target), "%s", s->orphans[o].target);
                snprintf(sl->desc, sizeof(sl->desc), "umount %s (left by an operation)",
                         sl->target);
                s->orphans[o].target[0] = '\0';
        } else {
                k = pick(s, PICK_ACTIVE_MOUNTED);
                if (k < 0)
                        return false;
                s->snaps[k].busy = sl->nr + 1;
                snprintf(sl->target, sizeof(sl->target), "%s", s->snaps[k].target);
                snprintf(sl->desc, sizeof(sl->desc), "umount %s (%s)", s->snaps[k].key, sl->target);
        }
        sl->op = SOAK_OP_UMOUNT;
        sl->snap = k;
        const char *args[] = {"--target", sl->target, NULL};
        if (spawn_op(s, sl, "umount", args) < 0) {
                if (k >= 0)
                        s->snaps[k].busy = 0;
                else
                        snprintf(s->orphans[sl->orphan].target, SOAK_TARGET_MAX, "%s", sl->target);
                return false;
        }
        return true;
}

static bool start_commit(struct soak *s, struct slot *sl)
{
        int k = pick(s, PICK_ACTIVE_UNMOUNT);
        if (k < 0)
                return false;
        struct soak_snap *sn = &s->snaps[k];
        sn->busy = sl->nr + 1;
        sl->fault = pick_fault(s, SOAK_OP_COMMIT);
        snprintf(sl->key, sizeof(sl->key), "c%u", ++s->serial);
        sl->op = SOAK_OP_COMMIT;
        sl->snap = k;
        snprintf(sl->desc, sizeof(sl->desc), "commit %s as %s", sn->key, sl->key);
        const char *args[] = {"--key", sn->key, "--name", sl->key, NULL};
        if (spawn_op(s, sl, "commit", args) < 0) {
                sn->busy = 0;
                return false;
        }
        return true;
}

static bool start_remove(struct soak *s, struct slot *sl)
{
        int k = pick(s, PICK_LEAF);
        if (k < 0)
                return false;
        struct soak_snap *sn = &s->snaps[k];
        /* Removing a mounted snapshot is allowed (its mount lives on), but
         * keep it rare: mostly the container engine unmounts first. */
        if (sn->mounted && !soak_chance(&s->rng, 20))
                return false;
        sn->busy = sl->nr + 1;
        sl->fault = pick_fault(s, SOAK_OP_REMOVE);
        sl->op = SOAK_OP_REMOVE;
        sl->snap = k;
        snprintf(sl->desc, sizeof(sl->desc), "remove %s%s", sn->key,
                 sn->mounted ? " (mounted)" : "");
        const char *args[] = {"--key", sn->key, NULL};
        if (spawn_op(s, sl, "remove", args) < 0) {
                sn->busy = 0;
                return false;
        }
        return true;
}

static bool start_verify(struct soak *s, struct slot *sl)
{
        int k = pick(s, PICK_COMMITTED);
        if (k < 0 || make_target(s, sl, 'v') < 0)
                return false;
        s->snaps[k].children++;
        sl->fault = pick_fault(s, SOAK_OP_VERIFY);
        snprintf(sl->key, sizeof(sl->key), "v%u", ++s->serial);
        sl->op = SOAK_OP_VERIFY;
        sl->parent = k;
        snprintf(sl->desc, sizeof(sl->desc), "verify %s through view %s", s->snaps[k].key, sl->key);
        const char *args[] = {"--key",    sl->key,    "--parent", s->snaps[k].key,
                              "--target", sl->target, NULL};
        if (spawn_op(s, sl, "verify", args) < 0) {
                s->snaps[k].children--;
                return false;
        }
        return true;
}

static bool spawn_or_release(struct soak *s, struct slot *sl, const char *op,
                             const char *const *args, int k)
{
        if (spawn_op(s, sl, op, args) >= 0)
                return true;
        s->snaps[k].busy = 0;
        return false;
}

/* Operations that must be refused, with the errno of containerd's kind. */
static bool start_refusal(struct soak *s, struct slot *sl)
{
        int k;
        switch (soak_below(&s->rng, 5)) {
        case 0: /* remove a parent: failed precondition */
                if ((k = pick(s, PICK_HAS_CHILD)) < 0)
                        return false;
                s->snaps[k].busy = sl->nr + 1;
                sl->op = SOAK_OP_REMOVE;
                sl->snap = k;
                sl->expect_errno = EBUSY;
                sl->what = "remove a snapshot with children";
                snprintf(sl->desc, sizeof(sl->desc), "remove %s (has children: refused)",
                         s->snaps[k].key);
                const char *a0[] = {"--key", s->snaps[k].key, NULL};
                return spawn_or_release(s, sl, "remove", a0, k);
        case 1: /* prepare an existing key: already exists */
                if ((k = pick(s, PICK_LEAF)) < 0)
                        return false;
                s->snaps[k].busy = sl->nr + 1;
                sl->op = SOAK_OP_PREPARE;
                sl->snap = k;
                sl->expect_errno = EEXIST;
                sl->what = "prepare a key that exists";
                snprintf(sl->desc, sizeof(sl->desc), "prepare %s (exists: refused)",
                         s->snaps[k].key);
                const char *a1[] = {"--key", s->snaps[k].key, NULL};
                return spawn_or_release(s, sl, "prepare", a1, k);
        case 2: /* commit a mounted active: failed precondition */
                if ((k = pick(s, PICK_WRITABLE)) < 0)
                        return false;
                s->snaps[k].busy = sl->nr + 1;
                snprintf(sl->key, sizeof(sl->key), "c%u", ++s->serial);
                sl->op = SOAK_OP_COMMIT;
                sl->snap = k;
                sl->expect_errno = EBUSY;
                sl->what = "commit a mounted snapshot";
                snprintf(sl->desc, sizeof(sl->desc), "commit %s as %s (mounted: refused)",
                         s->snaps[k].key, sl->key);
                const char *a2[] = {"--key", s->snaps[k].key, "--name", sl->key, NULL};
                return spawn_or_release(s, sl, "commit", a2, k);
        case 3: /* mount a committed snapshot: failed precondition */
                if ((k = pick(s, PICK_COMMITTED)) < 0 || make_target(s, sl, 'n') < 0)
                        return false;
                s->snaps[k].busy = sl->nr + 1;
                sl->op = SOAK_OP_MOUNT;
                sl->snap = k;
                sl->expect_errno = EBUSY;
                sl->what = "mount a committed snapshot";
                snprintf(sl->desc, sizeof(sl->desc), "mount %s (committed: refused)",
                         s->snaps[k].key);
                const char *a3[] = {"--key", s->snaps[k].key, "--target", sl->target, NULL};
                return spawn_or_release(s, sl, "mount", a3, k);
        default: /* prepare on an active parent: invalid argument */
                if ((k = pick(s, PICK_ACTIVE_UNMOUNT)) < 0)
                        return false;
                s->snaps[k].busy = sl->nr + 1;
                snprintf(sl->key, sizeof(sl->key), "a%u", ++s->serial);
                sl->op = SOAK_OP_PREPARE;
                sl->snap = k;
                sl->expect_errno = EINVAL;
                sl->what = "prepare on a parent that is not committed";
                snprintf(sl->desc, sizeof(sl->desc), "prepare %s on active %s (refused)", sl->key,
                         s->snaps[k].key);
                const char *a4[] = {"--key", sl->key, "--parent", s->snaps[k].key, NULL};
                return spawn_or_release(s, sl, "prepare", a4, k);
        }
}

/* Starts a random operation in an idle slot; false when none could start. */
static bool start_one(struct soak *s, struct slot *sl)
{
        unsigned live = count_live(s);
        bool full = live >= s->max_snaps;
        struct {
                bool (*fn)(struct soak *, struct slot *);
                unsigned weight;
        } ops[] = {
                {start_prepare, full ? 0 : 18},
                {start_mount, 14},
                {start_write, 20},
                {start_umount, 12},
                {start_commit, 12},
                {start_remove, full ? 30 : 10},
                {start_verify, 6},
                {start_refusal, 3},
        };
        unsigned total = 0;
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(ops); k++)
                total += ops[k].weight;
        for (unsigned tries = 0; tries < 24; tries++) {
                unsigned x = soak_below(&s->rng, total);
                size_t k = 0;
                while (x >= ops[k].weight)
                        x -= ops[k++].weight;
                slot_reset(sl);
                if (ops[k].fn(s, sl))
                        return true;
                if (sl->target[0] && sl->op != SOAK_OP_WRITE && sl->op != SOAK_OP_UMOUNT)
                        (void)rmdir(sl->target);
        }
        slot_reset(sl);
        return false;
}

/* ---- finishing operations ---- */

static const char *result_field(const char *line, const char *name, char *buf, size_t size)
{
        char key[32];
        snprintf(key, sizeof(key), " %s=", name);
        const char *p = strstr(line, key);
        if (!p)
                return NULL;
        p += strlen(key);
        size_t n = strcmp(name, "msg") == 0 ? strcspn(p, "\n") : strcspn(p, " \n");
        snprintf(buf, size, "%.*s", (int)n, p);
        return buf;
}

/* The process's output, for a failure's details (last 1500 bytes). */
static const char *out_tail(const struct slot *sl)
{
        return sl->out_len > 1500 ? sl->out + sl->out_len - 1500 : sl->out;
}

static void settle_later(struct soak_snap *sn, enum soak_pend pend, const char *point, int expect)
{
        sn->pend = pend;
        snprintf(sn->pend_point, sizeof(sn->pend_point), "%s", point);
        sn->pend_expect = expect;
}

static void add_scratch(struct soak *s, const char *target)
{
        if (!target[0])
                return;
        void *p = realloc(s->orphans, (s->n_orphans + 1) * sizeof(*s->orphans));
        if (!p) {
                soak_fail(s, "out of memory");
                return;
        }
        s->orphans = p;
        struct soak_orphan *o = &s->orphans[s->n_orphans++];
        memset(o, 0, sizeof(*o));
        snprintf(o->target, sizeof(o->target), "%s", target);
}

static void finish(struct soak *s, struct slot *sl, int status)
{
        struct soak_count *c = &s->count[sl->op];
        bool exited = WIFEXITED(status);
        int code = exited ? WEXITSTATUS(status) : -1;
        bool faulted = exited && code == UTIL_FAULT_EXIT && sl->fault;
        bool killed = sl->sigkilled && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        const char *res = NULL;
        char buf[LOOPSNAP_ERROR_MESSAGE_MAX + 64];

        sl->out[sl->out_len] = '\0';
        for (const char *p = sl->out; (p = strstr(p, "RESULT ")); p++)
                res = p;
        bool ok = exited && code == SOAK_OP_EXIT_OK && res && strncmp(res, "RESULT ok", 9) == 0;
        bool failed =
                exited && code == SOAK_OP_EXIT_FAILED && res && strncmp(res, "RESULT err", 10) == 0;
        int err_no = 0;
        if (failed && result_field(res, "errno", buf, sizeof(buf)))
                err_no = atoi(buf);
        /* The point is where the process died; `unknown` settles without
         * an expectation (a signal, a hang, an exit status no one gives). */
        const char *point = faulted ? sl->fault : killed ? "SIGKILL" : "unknown";
        bool unknown = !ok && !failed && !faulted;

        if (faulted) {
                c->killed++;
                struct soak_point *pt = soak_point_get(s, sl->fault);
                if (pt)
                        pt->killed++;
        } else if (killed) {
                c->sigkilled++;
        } else if (unknown) {
                c->failed++;
                if (sl->timed_out)
                        soak_fail(s, "%s: did not finish in %u s (killed); output: %s", sl->desc,
                                  s->op_timeout, out_tail(sl));
                else if (WIFSIGNALED(status))
                        soak_fail(s, "%s: died of signal %d (%s); output: %s", sl->desc,
                                  WTERMSIG(status), strsignal(WTERMSIG(status)), out_tail(sl));
                else
                        soak_fail(s, "%s: exit status %d%s; output: %s", sl->desc, code,
                                  code == UTIL_FAULT_EXIT ? " (a fault point with none set)" : "",
                                  out_tail(sl));
        } else if (ok && sl->fault) {
                c->unreached++;
        }

        /* Refusals: the operation must fail with expect_errno. */
        if (sl->expect_errno) {
                struct soak_snap *sn = &s->snaps[sl->snap];
                sn->busy = 0;
                if (failed && err_no == sl->expect_errno) {
                        c->expected++;
                } else if (failed || ok) {
                        c->failed++;
                        soak_fail(s, "%s: %s must fail with %s, got %s", sl->desc, sl->what,
                                  strerror(sl->expect_errno),
                                  ok    ? "success"
                                  : res ? res
                                        : "(no result)");
                }
                if (!failed || err_no != sl->expect_errno) {
                        /* It did something it must not: let the checkpoint
                         * compare the store with the model. */
                        if (sl->op == SOAK_OP_REMOVE)
                                settle_later(sn, SOAK_PEND_REMOVE, point, -1);
                        else if (sl->op == SOAK_OP_COMMIT) {
                                settle_later(sn, SOAK_PEND_COMMIT, point, -1);
                                snprintf(sn->pend_name, sizeof(sn->pend_name), "%s", sl->key);
                        }
                }
                if (sl->op == SOAK_OP_MOUNT && failed && err_no == sl->expect_errno)
                        (void)rmdir(sl->target);
                else if (sl->op == SOAK_OP_MOUNT)
                        add_scratch(s, sl->target);
                return;
        }

        if (failed) {
                c->failed++;
                soak_fail(s, "%s: %s", sl->desc, res);
        } else if (ok && !sl->fault) {
                c->ok++;
        } else if (ok) {
                /* counted as unreached above */
        }

        /* start_* gave every operation the model entries it uses: its own
         * (snap), but a view (its parent's) and an orphan's umount (none).
         * Checked here for clang-tidy's analyzer, which cannot see that. */
        bool own = sl->op != SOAK_OP_VERIFY && sl->op != SOAK_OP_UMOUNT;
        if (!s->snaps || (own && sl->snap < 0) || (sl->op == SOAK_OP_VERIFY && sl->parent < 0)) {
                soak_fail(s, "%s: no model entry", sl->desc);
                return;
        }
        struct soak_snap *sn = sl->snap >= 0 ? &s->snaps[sl->snap] : NULL;
        if (sn)
                sn->busy = 0;
        switch (sl->op) {
        case SOAK_OP_PREPARE:
                if (ok) {
                        sn->pend = SOAK_PEND_NONE;
                        if (result_field(res, "id", buf, sizeof(buf)))
                                sn->id = strtoll(buf, NULL, 10);
                } else {
                        /* Does the row exist? A failed prepare must leave none. */
                        int expect = faulted ? point_new_state(point) : failed ? 0 : -1;
                        settle_later(sn, SOAK_PEND_CREATE, point, expect);
                }
                break;
        case SOAK_OP_MOUNT:
                if (ok)
                        sn->mounted = true;
                else if (failed) /* nothing stays mounted on failure */
                        (void)rmdir(sn->target);
                else
                        settle_later(sn, SOAK_PEND_MOUNT, point, -1);
                break;
        case SOAK_OP_WRITE:
                if (ok) {
                        char want[SOAK_HASH_MAX];
                        if (soak_tree_hash(&sl->tree, want) < 0) {
                                soak_fail(s, "hash of the model: out of memory");
                                sn->tainted = true;
                        } else if (!result_field(res, "hash", buf, sizeof(buf)) ||
                                   strcmp(buf, want) != 0) {
                                c->failed++;
                                c->ok--;
                                soak_fail(s,
                                          "%s: the tree seen through the mount has hash %s, "
                                          "the model %s (plan: %s%s)",
                                          sl->desc, buf, want, sl->n_plan ? sl->plan[0] : "",
                                          sl->n_plan > 1 ? " ..." : "");
                                sn->tainted = true;
                        } else {
                                s->verify.write_hashes++;
                                soak_tree_done(&sn->tree);
                                sn->tree = sl->tree;
                                sl->tree = (struct soak_tree){0};
                        }
                } else {
                        sn->tainted = true;
                }
                break;
        case SOAK_OP_UMOUNT:
                if (ok && sn) {
                        sn->mounted = false;
                        (void)rmdir(sn->target);
                } else if (ok) {
                        (void)rmdir(sl->target);
                        if (result_field(res, "n", buf, sizeof(buf)) && atoi(buf) > 0)
                                s->verify.orphan_mounts++;
                } else if (sn) {
                        settle_later(sn, SOAK_PEND_MOUNT, point, -1);
                } else {
                        /* Back to the list: the checkpoint unmounts it. */
                        snprintf(s->orphans[sl->orphan].target, SOAK_TARGET_MAX, "%s", sl->target);
                }
                break;
        case SOAK_OP_COMMIT:
                if (ok) {
                        sn->kind = LOOPSNAP_KIND_COMMITTED;
                        snprintf(sn->key, sizeof(sn->key), "%s", sl->key);
                        if (soak_tree_hash(&sn->tree, sn->hash) < 0)
                                soak_fail(s, "hash of the model: out of memory");
                } else {
                        int expect = faulted ? point_new_state(point) : failed ? 0 : -1;
                        settle_later(sn, SOAK_PEND_COMMIT, point, expect);
                        snprintf(sn->pend_name, sizeof(sn->pend_name), "%s", sl->key);
                }
                break;
        case SOAK_OP_REMOVE:
                if (ok) {
                        if (sn->mounted) /* its mount lives on: an orphan */
                                add_scratch(s, sn->target);
                        soak_snap_drop(s, sl->snap);
                } else {
                        int expect = faulted ? point_new_state(point) : failed ? 0 : -1;
                        settle_later(sn, SOAK_PEND_REMOVE, point, expect);
                }
                break;
        case SOAK_OP_VERIFY: {
                struct soak_snap *p = &s->snaps[sl->parent];
                if (ok) {
                        p->children--;
                        (void)rmdir(sl->target);
                        if (!result_field(res, "hash", buf, sizeof(buf)) ||
                            strcmp(buf, p->hash) != 0) {
                                c->failed++;
                                c->ok--;
                                soak_fail(s,
                                          "%s: committed '%s' has hash %s through a view, "
                                          "the model %s",
                                          sl->desc, p->key, buf, p->hash);
                        } else {
                                s->verify.view_ops++;
                        }
                        break;
                }
                /* The view may be left (killed or failed after it was made):
                 * it becomes a model entry, settled at the checkpoint; the
                 * child count on the parent moves to it. */
                int k = snap_new(s);
                if (k < 0) {
                        soak_fail(s, "out of memory");
                        break;
                }
                struct soak_snap *v = &s->snaps[k];
                v->live = true;
                snprintf(v->key, sizeof(v->key), "%s", sl->key);
                v->kind = LOOPSNAP_KIND_VIEW;
                v->parent = sl->parent;
                /* Killed in the view's remove: did the remove land? Else:
                 * did the create? */
                bool in_remove = faulted && strncmp(point, "remove-", 7) == 0;
                settle_later(v, in_remove ? SOAK_PEND_REMOVE : SOAK_PEND_CREATE, point,
                             faulted ? point_new_state(point) : -1);
                add_scratch(s, sl->target);
                break;
        }
        default:
                break;
        }
}

/* Reads what the slot's process wrote (non-blocking). */
static void slot_drain(struct slot *sl)
{
        for (;;) {
                char buf[4096];
                ssize_t n = read(sl->fd, buf, sizeof(buf));
                if (n <= 0)
                        return;
                size_t room = sizeof(sl->out) - 1 - sl->out_len;
                if ((size_t)n > room) {
                        /* Keep the end: the RESULT line comes last. */
                        size_t drop = (size_t)n - room;
                        if (drop > sl->out_len)
                                drop = sl->out_len;
                        memmove(sl->out, sl->out + drop, sl->out_len - drop);
                        sl->out_len -= drop;
                        room = sizeof(sl->out) - 1 - sl->out_len;
                }
                size_t take = (size_t)n < room ? (size_t)n : room;
                memcpy(sl->out + sl->out_len, buf + (size_t)n - take, take);
                sl->out_len += take;
        }
}

/* Waits up to `ms` for output or a child's exit; finishes what exited. */
static void wait_events(struct soak *s, struct slot *slots, int sfd, int ms)
{
        struct pollfd pfd[65];
        int idx[65];
        nfds_t n = 0;
        uint64_t now = now_ns();

        for (unsigned k = 0; k < s->workers; k++) {
                struct slot *sl = &slots[k];
                if (!sl->pid)
                        continue;
                if (sl->kill_at && !sl->sigkilled) {
                        if (now >= sl->kill_at) {
                                (void)kill(sl->pid, SIGKILL);
                                sl->sigkilled = true;
                        } else {
                                int left = (int)((sl->kill_at - now) / 1000000u) + 1;
                                ms = left < ms ? left : ms;
                        }
                }
                if (!sl->timed_out && now - sl->started > (uint64_t)s->op_timeout * 1000000000u) {
                        (void)kill(sl->pid, SIGKILL);
                        sl->timed_out = true;
                }
                pfd[n] = (struct pollfd){.fd = sl->fd, .events = POLLIN};
                idx[n++] = (int)k;
        }
        pfd[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
        idx[n++] = -1;
        if (poll(pfd, n, ms) < 0)
                return; /* EINTR: a stop request */
        for (nfds_t j = 0; j < n; j++)
                if (idx[j] >= 0 && (pfd[j].revents & (POLLIN | POLLHUP)))
                        slot_drain(&slots[idx[j]]);
        if (pfd[n - 1].revents & POLLIN) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                        ;
        }
        /* Reap every child that is done (also helpers orphaned to us as the
         * subreaper: not ours to judge). */
        for (;;) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG);
                if (pid <= 0)
                        break;
                for (unsigned k = 0; k < s->workers; k++) {
                        struct slot *sl = &slots[k];
                        if (sl->pid != pid)
                                continue;
                        slot_drain(sl);
                        finish(s, sl, status);
                        slot_reset(sl);
                        break;
                }
        }
}

static unsigned running(const struct soak *s, const struct slot *slots)
{
        unsigned n = 0;
        for (unsigned k = 0; k < s->workers; k++)
                n += slots[k].pid != 0;
        return n;
}

/* ---- setup ---- */

static void on_stop(int sig)
{
        (void)sig;
        stop_requested = 1;
}

static int have_prog(const char *name)
{
        static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(dirs); k++) {
                char p[256];
                snprintf(p, sizeof(p), "%s/%s", dirs[k], name);
                if (access(p, X_OK) == 0)
                        return 1;
        }
        return 0;
}

/* DIR must not exist, or be an empty directory: it is removed at the end. */
static int make_work(struct soak *s, const char *dir)
{
        if (mkdir(dir, 0700) < 0) {
                if (errno != EEXIST)
                        return -errno;
                int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                DIR *d = fdopendir(fd);
                if (!d) {
                        close(fd);
                        return -errno;
                }
                struct dirent *de;
                bool empty = true;
                while ((de = readdir(d)))
                        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                                empty = false;
                closedir(d);
                if (!empty)
                        return -ENOTEMPTY;
        }
        s->made_work = true;
        if (!realpath(dir, s->work))
                return -errno;
        /* Mountpoints and loop backing files must stay well below PATH_MAX
         * (and mount options below a page). */
        if (strlen(s->work) > 256)
                return -ENAMETOOLONG;
        snprintf(s->root, sizeof(s->root), "%s/root", s->work);
        snprintf(s->mnt, sizeof(s->mnt), "%s/mnt", s->work);
        if (mkdir(s->mnt, 0755) < 0)
                return -errno;
        /* The loop module records every shared device in a registry
         * (/run/loopsnap/loop-share) and deletes a record only when a later
         * lookup finds it stale: thousands of images would leave thousands
         * of files there. Ours lives below DIR, goes with it, and is
         * counted at the end. The operations inherit the variable. */
        if (!getenv("LOOPSNAP_LOOP_SHARE_DIR")) {
                snprintf(s->share, sizeof(s->share), "%s/loop-share", s->work);
                if (setenv("LOOPSNAP_LOOP_SHARE_DIR", s->share, 1) < 0)
                        return -errno;
        }
        return 0;
}

static void usage(FILE *f)
{
        fprintf(f, "usage: loopsnap-soak --root DIR --minutes M [options]\n"
                   "\n"
                   "Random prepare/mount/write/umount/commit/remove/verify operations from\n"
                   "several processes on one snapshotter root, some killed at the named fault\n"
                   "points; fsck --repair and integrity, leak and content checks every\n"
                   "--check-every seconds and at the end (docs/soak.md).\n"
                   "\n"
                   "  --root DIR           work directory (must not exist or be empty; removed\n"
                   "                       at the end): DIR/root is the snapshotter root\n"
                   "  --minutes M          how long to run (fractions allowed)\n"
                   "  --workers N          operations running at once (default 4)\n"
                   "  --seed S             seed of the random choices (default: from the clock)\n"
                   "  --json               print the summary as JSON on standard output\n"
                   "  --check-every SEC    seconds between checkpoints (default 60)\n"
                   "  --fault-pct P        %% of operations with fault points run with one (10)\n"
                   "  --sigkill-pct P      %% of operations also SIGKILLed at a random moment (0)\n"
                   "  --variant V          ext4 (default), erofs, dir, dir-erofs: the root's kind\n"
                   "  --writable-size SIZE writable image size (default 128M)\n"
                   "  --max-snapshots N    snapshots alive at once (default 40)\n"
                   "  --max-depth N        layers in a chain (default 8)\n"
                   "  --max-tree SIZE      bytes of file content per snapshot (default 12M)\n"
                   "  --op-timeout SEC     an operation taking longer is a failure (default 120)\n"
                   "  --plugin LIB         libloopsnap.so.1 to load\n"
                   "  --keep               keep DIR (and its root) at the end\n"
                   "  -v, --verbose        one line per operation on standard error\n"
                   "\n"
                   "Exit status: 0 no failure, 1 failures, 2 usage, 77 skipped (not root, no loop\n"
                   "devices, no mkfs.ext4).\n");
}

static int parse_args(struct soak *s, int argc, char **argv, const char **work)
{
        static const struct option longopts[] = {
                {"root", required_argument, NULL, 'r'},
                {"minutes", required_argument, NULL, 'm'},
                {"workers", required_argument, NULL, 'w'},
                {"seed", required_argument, NULL, 'S'},
                {"json", no_argument, NULL, 'j'},
                {"check-every", required_argument, NULL, 'c'},
                {"fault-pct", required_argument, NULL, 'f'},
                {"sigkill-pct", required_argument, NULL, 'K'},
                {"variant", required_argument, NULL, 'V'},
                {"writable-size", required_argument, NULL, 'W'},
                {"max-snapshots", required_argument, NULL, 'N'},
                {"max-depth", required_argument, NULL, 'D'},
                {"max-tree", required_argument, NULL, 'T'},
                {"op-timeout", required_argument, NULL, 't'},
                {"plugin", required_argument, NULL, 'P'},
                {"keep", no_argument, NULL, 'k'},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        bool seeded = false;
        int c;

        while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
                uint64_t v = 0;
                char *end = NULL;
                bool num = strchr("wcfKNDt", c) && c != 0;
                if (num && util_parse_u64(optarg, &v) < 0) {
                        fprintf(stderr, "loopsnap-soak: '%s' is not a number\n", optarg);
                        return -EINVAL;
                }
                switch (c) {
                case 'r':
                        *work = optarg;
                        break;
                case 'm':
                        s->minutes = strtod(optarg, &end);
                        if (!end || *end || !(s->minutes > 0) || !isfinite(s->minutes)) {
                                fprintf(stderr, "loopsnap-soak: bad --minutes '%s'\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'w':
                        s->workers = (unsigned)v;
                        break;
                case 'S':
                        if (util_parse_u64(optarg, &s->seed) < 0) {
                                fprintf(stderr, "loopsnap-soak: bad --seed '%s'\n", optarg);
                                return -EINVAL;
                        }
                        seeded = true;
                        break;
                case 'j':
                        s->json = true;
                        break;
                case 'c':
                        s->check_every = (unsigned)v;
                        break;
                case 'f':
                        s->fault_pct = (unsigned)v;
                        break;
                case 'K':
                        s->sigkill_pct = (unsigned)v;
                        break;
                case 'V':
                        s->variant = optarg;
                        break;
                case 'W':
                case 'T':
                        if (util_parse_size(optarg, c == 'W' ? &s->writable_size : &s->max_bytes) <
                            0) {
                                fprintf(stderr, "loopsnap-soak: bad size '%s'\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'N':
                        s->max_snaps = (unsigned)v;
                        break;
                case 'D':
                        s->max_depth = (unsigned)v;
                        break;
                case 't':
                        s->op_timeout = (unsigned)v;
                        break;
                case 'P':
                        s->plugin_path = optarg;
                        break;
                case 'k':
                        s->keep = true;
                        break;
                case 'v':
                        s->verbose = true;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                default:
                        return -EINVAL;
                }
        }
        if (optind != argc || !*work || !(s->minutes > 0)) {
                fprintf(stderr, "loopsnap-soak: --root and --minutes are required\n");
                return -EINVAL;
        }
        static const char *const variants[] = {"ext4", "erofs", "dir", "dir-erofs"};
        bool known = false;
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(variants); k++)
                known = known || strcmp(s->variant, variants[k]) == 0;
        if (!known || s->workers < 1 || s->workers > 64 || s->fault_pct > 100 ||
            s->sigkill_pct > 100 || s->check_every < 5 || s->max_depth < 1 || s->max_snaps < 4 ||
            s->op_timeout < 5 || s->writable_size < (32u << 20)) {
                fprintf(stderr, "loopsnap-soak: an option is out of range (see --help)\n");
                return -EINVAL;
        }
        if (!seeded)
                s->seed = now_ns() ^ ((uint64_t)getpid() << 32);
        return 0;
}

/* ---- the report ---- */

static void report_text(struct soak *s, FILE *f)
{
        fprintf(f, "\nloopsnap-soak: %.1f min, %u workers, seed %" PRIu64 ", variant %s\n",
                soak_elapsed(s) / 60, s->workers, s->seed, s->variant);
        fprintf(f, "%-9s %8s %9s %7s %7s %10s %10s\n", "operation", "ok", "expected", "failed",
                "killed", "unreached", "sigkilled");
        unsigned total = 0;
        for (int k = 0; k < SOAK_N_OPS; k++) {
                const struct soak_count *c = &s->count[k];
                fprintf(f, "%-9s %8u %9u %7u %7u %10u %10u\n", soak_op_names[k], c->ok, c->expected,
                        c->failed, c->killed, c->unreached, c->sigkilled);
                total += c->ok + c->expected + c->failed + c->killed + c->unreached + c->sigkilled;
        }
        fprintf(f, "%-9s %8u\n", "total", total);
        fprintf(f, "\nkilled at fault points (state found afterwards: new = the operation had "
                   "landed):\n");
        for (size_t k = 0; k < SOAK_N_POINTS; k++)
                fprintf(f, "  %-26s %5u  (new %u, old %u)\n", s->points[k].name,
                        s->points[k].killed, s->points[k].new_state, s->points[k].old_state);
        const struct soak_fsck_sum *q = &s->fsck;
        fprintf(f,
                "\nfsck: %u checkpoints, repairs made %u; found (first run of each): "
                "orphan_dirs %u, tmp_leftovers %u, trash_leftovers %u, template_leftovers %u, "
                "rows_without_files %u, bad_images %u, leaked_loops %u, leaked_mounts %u, "
                "stale_files %u\n",
                q->runs, q->repairs_fixed, q->orphan_dirs, q->tmp_leftovers, q->trash_leftovers,
                q->template_leftovers, q->rows_without_files, q->bad_images, q->leaked_loops,
                q->leaked_mounts, q->stale_files);
        const struct soak_verify_sum *v = &s->verify;
        fprintf(f,
                "verified: %u checkpoints; committed layers hashed %u, actives hashed %u, "
                "writes matching the model %u, verify operations matching %u; rows compared "
                "%u, loop devices looked at %u, killed operations settled %u, integrity "
                "checks %u, mounts of removed snapshots unmounted %u\n",
                v->checkpoints, v->committed, v->active, v->write_hashes, v->view_ops, v->rows,
                v->loops, v->settled, v->integrity_runs, v->orphan_mounts);
        if (s->share_left >= 0)
                fprintf(f,
                        "note: %d share-registry records left after every device was gone "
                        "(known leak, not a failure: docs/soak.md)\n",
                        s->share_left);
        fprintf(f, "failures: %u\n", s->n_failures_total);
        for (size_t k = 0; k < s->n_failures; k++)
                fprintf(f, "  - %s\n", s->failures[k]);
        if (s->n_failures_total > s->n_failures)
                fprintf(f, "  ... and %u more\n", s->n_failures_total - (unsigned)s->n_failures);
}

static void json_uint(yajl_gen g, const char *k, uint64_t v)
{
        util_json_gen_str(g, k);
        yajl_gen_integer(g, (long long)v);
}

static int report_json(struct soak *s)
{
        _cleanup_(util_json_gen_freep) yajl_gen g = util_json_gen_new(true);
        _cleanup_free_ char *out = NULL;
        if (!g)
                return -ENOMEM;
        yajl_gen_map_open(g);
        util_json_gen_str(g, "result");
        util_json_gen_str(g, s->n_failures_total ? "fail" : "ok");
        json_uint(g, "seed", s->seed);
        util_json_gen_str(g, "variant");
        util_json_gen_str(g, s->variant);
        json_uint(g, "workers", s->workers);
        util_json_gen_str(g, "minutes");
        yajl_gen_double(g, soak_elapsed(s) / 60);
        util_json_gen_str(g, "operations");
        yajl_gen_map_open(g);
        for (int k = 0; k < SOAK_N_OPS; k++) {
                const struct soak_count *c = &s->count[k];
                util_json_gen_str(g, soak_op_names[k]);
                yajl_gen_map_open(g);
                json_uint(g, "ok", c->ok);
                json_uint(g, "failed_expected", c->expected);
                json_uint(g, "failed", c->failed);
                json_uint(g, "killed", c->killed);
                json_uint(g, "fault_unreached", c->unreached);
                json_uint(g, "sigkilled", c->sigkilled);
                yajl_gen_map_close(g);
        }
        yajl_gen_map_close(g);
        util_json_gen_str(g, "fault_points");
        yajl_gen_map_open(g);
        for (size_t k = 0; k < SOAK_N_POINTS; k++) {
                util_json_gen_str(g, s->points[k].name);
                yajl_gen_map_open(g);
                json_uint(g, "killed", s->points[k].killed);
                json_uint(g, "new_state", s->points[k].new_state);
                json_uint(g, "old_state", s->points[k].old_state);
                yajl_gen_map_close(g);
        }
        yajl_gen_map_close(g);
        const struct soak_fsck_sum *q = &s->fsck;
        util_json_gen_str(g, "fsck");
        yajl_gen_map_open(g);
        json_uint(g, "checkpoints", q->runs);
        json_uint(g, "fixed", q->repairs_fixed);
        json_uint(g, "orphan_dirs", q->orphan_dirs);
        json_uint(g, "tmp_leftovers", q->tmp_leftovers);
        json_uint(g, "trash_leftovers", q->trash_leftovers);
        json_uint(g, "template_leftovers", q->template_leftovers);
        json_uint(g, "rows_without_files", q->rows_without_files);
        json_uint(g, "bad_images", q->bad_images);
        json_uint(g, "leaked_loops", q->leaked_loops);
        json_uint(g, "leaked_mounts", q->leaked_mounts);
        json_uint(g, "stale_files", q->stale_files);
        yajl_gen_map_close(g);
        const struct soak_verify_sum *v = &s->verify;
        util_json_gen_str(g, "verified");
        yajl_gen_map_open(g);
        json_uint(g, "checkpoints", v->checkpoints);
        json_uint(g, "committed_hashed", v->committed);
        json_uint(g, "active_hashed", v->active);
        json_uint(g, "write_hashes", v->write_hashes);
        json_uint(g, "verify_ops", v->view_ops);
        json_uint(g, "rows_compared", v->rows);
        json_uint(g, "loops_looked_at", v->loops);
        json_uint(g, "killed_settled", v->settled);
        json_uint(g, "integrity_checks", v->integrity_runs);
        json_uint(g, "orphan_mounts_unmounted", v->orphan_mounts);
        yajl_gen_map_close(g);
        util_json_gen_str(g, "share_records_left");
        if (s->share_left >= 0)
                yajl_gen_integer(g, s->share_left);
        else
                yajl_gen_null(g);
        json_uint(g, "failure_count", s->n_failures_total);
        util_json_gen_str(g, "failures");
        yajl_gen_array_open(g);
        for (size_t k = 0; k < s->n_failures; k++)
                util_json_gen_str(g, s->failures[k]);
        yajl_gen_array_close(g);
        yajl_gen_map_close(g);
        int rc = util_json_gen_finish(g, &out);
        if (rc < 0)
                return rc;
        fputs(out, stdout);
        fputc('\n', stdout);
        return 0;
}

/* ---- main ---- */

static int run(struct soak *s)
{
        struct slot slots[64];
        sigset_t chld;
        unsigned idle_checks = 0;
        int sfd;

        for (unsigned k = 0; k < UTIL_ARRAY_SIZE(slots); k++) {
                memset(&slots[k], 0, sizeof(slots[k]));
                slots[k].nr = (int)k;
                slot_reset(&slots[k]);
        }
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        sigprocmask(SIG_BLOCK, &chld, NULL);
        sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
        if (sfd < 0) {
                soak_fail(s, "signalfd: %s", strerror(errno));
                return -errno;
        }

        uint64_t end = s->started_ns + (uint64_t)(s->minutes * 60e9);
        uint64_t next_check = s->started_ns + (uint64_t)s->check_every * 1000000000u;
        for (;;) {
                uint64_t now = now_ns();
                bool stopping = stop_requested || now >= end;
                bool checking = now >= next_check || pending_many(s);
                bool idle_all = false;
                if (!stopping && !checking) {
                        unsigned started = 0;
                        for (unsigned k = 0; k < s->workers; k++)
                                if (!slots[k].pid && start_one(s, &slots[k]))
                                        started++;
                        /* Nothing can start and nothing runs: every snapshot
                         * waits for a checkpoint to settle it. */
                        idle_all = started == 0 && running(s, slots) == 0;
                }
                if (running(s, slots) == 0) {
                        if (stopping)
                                break;
                        if (checking || idle_all) {
                                /* Settling everything at a checkpoint always
                                 * frees some operation (a prepare, a remove of
                                 * a leaf): three idle ones in a row is a bug
                                 * of the soak. */
                                if (idle_all && ++idle_checks >= 3) {
                                        soak_fail(s, "no operation can start after a checkpoint");
                                        break;
                                }
                                if (!idle_all)
                                        idle_checks = 0;
                                soak_check(s);
                                next_check = now_ns() + (uint64_t)s->check_every * 1000000000u;
                                continue;
                        }
                }
                if (running(s, slots) > 0)
                        idle_checks = 0;
                wait_events(s, slots, sfd, 200);
        }
        close(sfd);
        if (stop_requested)
                soak_say(s, true, "stopped by a signal: final checks");
        soak_check(s);
        return soak_teardown(s);
}

int main(int argc, char **argv)
{
        if (argc > 1 && strcmp(argv[1], "--op") == 0)
                return soak_worker_main(argc, argv);

        struct soak *s = calloc(1, sizeof(*s));
        const char *work = NULL;
        struct util_err err = {0};
        int rc;

        if (!s)
                return 1;
        *s = (struct soak){
                .workers = 4,
                .check_every = 60,
                .fault_pct = 10,
                .op_timeout = 120,
                .max_snaps = 40,
                .max_depth = 8,
                .writable_size = 128u << 20,
                .max_bytes = 12u << 20,
                .variant = "ext4",
                .share_left = -1,
        };
        for (size_t k = 0; k < SOAK_N_POINTS; k++)
                s->points[k].name = point_table[k].name;
        if (parse_args(s, argc, argv, &work) < 0) {
                usage(stderr);
                return 2;
        }
        if (geteuid() != 0 || access("/dev/loop-control", R_OK | W_OK) != 0) {
                fprintf(stderr, "loopsnap-soak: skipped: needs root and /dev/loop-control\n");
                return 77;
        }
        if (!have_prog("mkfs.ext4") || (strstr(s->variant, "erofs") && !have_prog("mkfs.erofs"))) {
                fprintf(stderr, "loopsnap-soak: skipped: mkfs.ext4 (or mkfs.erofs) missing\n");
                return 77;
        }
        ssize_t n = readlink("/proc/self/exe", s->self, sizeof(s->self) - 1);
        if (n <= 0) {
                fprintf(stderr, "loopsnap-soak: /proc/self/exe: %m\n");
                return 1;
        }
        s->self[n] = '\0';
        if (soak_plugin_load(s->plugin_path, &s->ops, &err) < 0) {
                fprintf(stderr, "loopsnap-soak: %s\n", err.msg);
                return 1;
        }
        /* Our own mount namespace, everything private (see the top). */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
                fprintf(stderr, "loopsnap-soak: private mount namespace: %m\n");
                return 1;
        }
        (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        if ((rc = make_work(s, work)) < 0) {
                fprintf(stderr, "loopsnap-soak: work directory '%s': %s\n", work, strerror(-rc));
                return 2;
        }
        struct sigaction sa = {.sa_handler = on_stop};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        (void)signal(SIGPIPE, SIG_IGN);

        s->rng.s = s->seed;
        s->started_ns = now_ns();
        soak_say(s, true,
                 "seed %" PRIu64 ", %u workers, %.2f min, variant %s, faults %u%%, sigkill "
                 "%u%%, checkpoint every %u s, root %s",
                 s->seed, s->workers, s->minutes, s->variant, s->fault_pct, s->sigkill_pct,
                 s->check_every, s->root);

        /* Create the root with the variant's settings; the operations open
         * it with the recorded ones. */
        struct loopsnap_root *root = NULL;
        struct loopsnap_error e = {.struct_size = sizeof(e)};
        if (soak_root_open(s->ops, s->root, s->variant, s->writable_size, &root, &e) < 0) {
                soak_fail(s, "create the root '%s': %s", s->root, e.message);
        } else {
                s->ops->root_close(root);
                if (!realpath(s->root, s->realroot))
                        soak_fail(s, "realpath '%s': %s", s->root, strerror(errno));
                else
                        (void)run(s);
        }

        unsigned scrubbed = soak_scrub(s);
        if (scrubbed)
                soak_fail(s,
                          "%u mounts or loop devices were still there at the very end "
                          "(removed now)",
                          scrubbed);
        if (s->json)
                (void)report_json(s);
        else
                report_text(s, stdout);
        if (!s->keep && s->made_work) {
                char cmd[PATH_MAX + 32];
                /* Nothing is mounted below it any more (scrubbed); rm
                 * -x: never into another filesystem. */
                const char *argv_rm[] = {"rm", "-rf", "--one-file-system", s->work, NULL};
                pid_t pid;
                snprintf(cmd, sizeof(cmd), "%s", s->work);
                if (posix_spawnp(&pid, "rm", NULL, NULL, (char *const *)argv_rm, environ) == 0) {
                        int status;
                        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                                ;
                        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                                fprintf(stderr, "loopsnap-soak: could not remove '%s'\n", cmd);
                }
        } else if (s->made_work) {
                fprintf(stderr, "loopsnap-soak: kept '%s'\n", s->work);
        }
        return s->n_failures_total ? 1 : 0;
}
