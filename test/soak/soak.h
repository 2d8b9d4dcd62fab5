/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * loopsnap-soak (docs/soak.md): random interleavings of snapshot operations
 * from several processes on one root, some of them killed at the named fault
 * points, with periodic checks (fsck --repair, SQLite integrity, leaked loop
 * devices and mounts, committed content by hash).
 *
 * Files:
 *   loopsnap-soak.c  options, the controller (expected state, spawning and
 *                    reaping the operation processes), the report
 *   model.c          the content model: trees of paths, modes and seeded
 *                    contents, write plans, and one canonical hash for a
 *                    model tree and for a directory on disk
 *   worker.c         `--op`: one operation in a fresh process (the
 *                    controller re-executes itself for every operation)
 *   check.c          the checkpoint and the final teardown
 *   plugin.c         loading libloopsnap.so.1 (the dlopen ABI, like snapctl)
 *
 * The controller never opens the root while operation processes run: it
 * opens its own handle only during a checkpoint (no SQLite connection ever
 * crosses a fork; processes are started with posix_spawn and exec anyway).
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "plugin/loopsnap.h"
#include "util/util.h"

#define SOAK_KEY_MAX    48
#define SOAK_PATH_MAX   64              /* a path inside a tree ("d1/e0/f3") */
#define SOAK_TARGET_MAX (PATH_MAX + 64) /* a mountpoint of the soak */
#define SOAK_HASH_MAX   65              /* sha256 in hex, NUL */

/* Exit statuses of an operation process (worker.c). The fault points exit
 * with UTIL_FAULT_EXIT (93). */
#define SOAK_OP_EXIT_OK     0
#define SOAK_OP_EXIT_FAILED 1 /* the operation failed: "RESULT err ..." */
#define SOAK_OP_EXIT_USAGE  2 /* a bad command line or no plugin: a soak bug */

/* ---- random numbers (model.c) --------------------------------------------- */

/* splitmix64: small, fast, and the same sequence for the same seed. */
struct soak_rng {
        uint64_t s;
};
uint64_t soak_rand(struct soak_rng *r);
/* Uniform in [0, n); 0 when n is 0. */
uint32_t soak_below(struct soak_rng *r, uint32_t n);
/* True with probability pct / 100. */
bool soak_chance(struct soak_rng *r, unsigned pct);

/* ---- trees (model.c) -------------------------------------------------------- */

/* A file's content: the concatenation of its segments, each the bytes
 * soak_content(seed, 0, ..., len) (a write makes one segment, an append
 * adds one). */
struct soak_seg {
        uint64_t seed;
        uint32_t len;
};

struct soak_entry {
        char path[SOAK_PATH_MAX];
        char type;     /* 'd' directory, 'f' regular file, 'l' symlink */
        unsigned mode; /* permission bits (07777) */
        struct soak_seg *segs;
        size_t n_segs;
        char target[SOAK_PATH_MAX]; /* 'l' */
        char digest[SOAK_HASH_MAX]; /* 'f': sha256 of the content, cached ("" unknown) */
};

/* The entries below the root of a snapshot's tree, sorted by path (strcmp).
 * The root directory itself is not part of it. */
struct soak_tree {
        struct soak_entry *e;
        size_t n;
};

int soak_tree_copy(const struct soak_tree *t, struct soak_tree *ret);
void soak_tree_done(struct soak_tree *t);
/* The bytes of all file contents. */
uint64_t soak_tree_bytes(const struct soak_tree *t);
/* The canonical hash (see soak_dir_hash) of the tree; fills digest caches.
 * Returns 0 or -ENOMEM / -EIO. */
int soak_tree_hash(struct soak_tree *t, char ret[SOAK_HASH_MAX]);

/* The bytes of content `seed` from offset `off`. */
void soak_content(uint64_t seed, uint64_t off, void *buf, size_t len);

/*
 * One change of a write plan, as text on the operation's command line:
 *   w:PATH:MODE:SEED:LEN  create or truncate a file (missing parents 0755)
 *   a:PATH:SEED:LEN       append to a file
 *   c:PATH:MODE           chmod a file or directory
 *   s:PATH:TARGET         make a symlink (missing parents 0755)
 *   x:PATH                unlink a file or symlink
 *   r:PATH                remove a directory tree
 *   m:PATH:MODE           make a directory (missing parents 0755)
 *   n:PATH:TO             rename a file (missing parents of TO 0755)
 * MODE is octal, SEED hex, LEN decimal. Names never contain ':'.
 */
struct soak_action {
        char op;
        char path[SOAK_PATH_MAX];
        char to[SOAK_PATH_MAX]; /* s: the link's target, n: the new path */
        unsigned mode;
        uint64_t seed;
        uint32_t len;
};
int soak_action_parse(const char *s, struct soak_action *ret);
/* Applies `a` to the model; -EINVAL when it does not fit the tree's state. */
int soak_tree_apply(struct soak_tree *t, const struct soak_action *a);

/*
 * soak_plan_make: a random write plan (1 to 8 changes) for a snapshot whose
 * tree is `base`, keeping the content at most `max_bytes`. Returns 0, the
 * plan's changes as strings in *ret_plan (*ret_n of them; free with
 * soak_plan_free) and the tree after the plan in *ret_tree; or -ENOMEM.
 */
int soak_plan_make(const struct soak_tree *base, struct soak_rng *r, uint64_t max_bytes,
                   struct soak_tree *ret_tree, char ***ret_plan, size_t *ret_n);
void soak_plan_free(char **plan, size_t n);

/* Applies plan changes to the directory `dir` (a mounted snapshot).
 * Returns 0, or -errno with `err` naming the change. */
int soak_plan_apply_dir(const char *dir, char *const *plan, size_t n, struct util_err *err);

/*
 * soak_dir_hash: the canonical hash of the tree below `dir` (not crossing
 * into other mounts): sha256 over the entries sorted by path, each
 * "PATH\0<type><mode, 4 octal digits>\0<payload>\n", the payload being
 * "<size>:<sha256 of the content>" for a file, the target for a symlink,
 * empty for a directory. Owners and times are not part of it. Returns 0 or
 * -errno with `err`.
 */
int soak_dir_hash(const char *dir, char ret[SOAK_HASH_MAX], struct util_err *err);

/* ---- the plugin (plugin.c) -------------------------------------------------- */

/* Loads libloopsnap.so.1: `path`, else $LOOPSNAP_PLUGIN, else
 * ../lib/libloopsnap.so.1 next to the executable. Returns 0 and the table,
 * or -errno with a message in `err`. */
int soak_plugin_load(const char *path, const struct loopsnap_ops **ret, struct util_err *err);

/* Opens the root at `path` with the settings of `variant` ("ext4", "erofs",
 * "dir", "dir-erofs"); variant NULL: the recorded settings. */
int soak_root_open(const struct loopsnap_ops *ops, const char *path, const char *variant,
                   uint64_t writable_size, struct loopsnap_root **ret, struct loopsnap_error *err);

/* ---- operations shared by the workers and the checkpoint (worker.c) ------ */

/*
 * soak_view_hash: the content of committed `parent` as a container sees
 * it: a view `key` on it, mounted at `target` (an existing directory),
 * hashed, unmounted, removed. The view is removed also after a failure
 * (when it was made). Returns 0 and the hash, or -errno with `err`
 * ("view", "mount", "hash", "unmount", "remove" in the message).
 */
int soak_view_hash(const struct loopsnap_ops *ops, struct loopsnap_root *root, const char *key,
                   const char *parent, const char *target, char ret[SOAK_HASH_MAX],
                   struct loopsnap_error *err);

/* Mounts active or view `key` at `target` through the engine, its loop
 * devices tagged with the snapshot's id (as `snapctl mount` does). */
int soak_mount(const struct loopsnap_ops *ops, struct loopsnap_root *root, const char *key,
               const char *target, struct loopsnap_error *err);

/* `loopsnap-soak --op ...`: one operation in this (fresh) process. */
int soak_worker_main(int argc, char **argv);

/* Sets a loopsnap_error from a util_err-style errno and text. */
void soak_err_set(struct loopsnap_error *err, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* ---- the controller's state (loopsnap-soak.c, check.c) ------------------- */

enum soak_op {
        SOAK_OP_PREPARE = 0,
        SOAK_OP_MOUNT,
        SOAK_OP_WRITE,
        SOAK_OP_UMOUNT,
        SOAK_OP_COMMIT,
        SOAK_OP_REMOVE,
        SOAK_OP_VERIFY, /* view + mount + hash + unmount + remove of a committed layer */
        SOAK_N_OPS,
};

/* What a killed operation may have changed; settled at the next checkpoint
 * by asking the store (after fsck --repair). */
enum soak_pend {
        SOAK_PEND_NONE = 0,
        SOAK_PEND_CREATE, /* a prepare, or a verify's view: does the row exist? */
        SOAK_PEND_COMMIT, /* committed under pend_name, or still active? */
        SOAK_PEND_REMOVE, /* removed or not? */
        SOAK_PEND_MOUNT,  /* (SIGKILL) mounted or not? */
};

struct soak_snap {
        bool live;
        char key[SOAK_KEY_MAX];
        int kind;     /* enum loopsnap_kind */
        int parent;   /* index in soak.snaps, -1: none */
        int children; /* live children, including creations in flight */
        int64_t id;   /* the store's id; 0 not known yet */
        int busy;     /* 1 + the slot whose operation changes it; 0: none */
        bool mounted; /* at target, by the soak (actives only) */
        char target[SOAK_TARGET_MAX];
        bool tainted; /* content unknown (a write that failed or was killed) */
        struct soak_tree tree;
        char hash[SOAK_HASH_MAX]; /* committed: the expected hash */

        enum soak_pend pend;
        char pend_name[SOAK_KEY_MAX]; /* commit: the new name */
        char pend_point[40];          /* the fault point, or "SIGKILL" */
        int pend_expect;              /* 1: the new state is documented, 0: the old, -1: any */
};

/* A mountpoint an operation left behind: a mount of a snapshot that was
 * removed while mounted (allowed: the mount lives on, its devices go with
 * it), or the target of a verify or refused mount that did not end cleanly.
 * Unmounted (if mounted) and removed by an umount operation or at the next
 * checkpoint. */
struct soak_orphan {
        char target[SOAK_TARGET_MAX]; /* "": taken by a running umount */
};

struct soak_count {
        unsigned ok;
        unsigned expected;  /* failed as it had to (failed precondition, exists, ...) */
        unsigned failed;    /* failed unexpectedly: a finding */
        unsigned killed;    /* stopped at a fault point */
        unsigned unreached; /* given a fault point the operation did not pass */
        unsigned sigkilled; /* killed with SIGKILL by the soak (--sigkill-pct) */
};

/* Per fault point: how often an operation was killed there and what the
 * store said afterwards. */
struct soak_point {
        const char *name;
        unsigned killed;
        unsigned new_state; /* the operation had landed */
        unsigned old_state; /* it had not */
};

#define SOAK_N_POINTS 10

/* fsck's counts, summed over every checkpoint's first (non-repairing) run. */
struct soak_fsck_sum {
        unsigned runs, repairs_fixed;
        unsigned orphan_dirs, tmp_leftovers, trash_leftovers, template_leftovers;
        unsigned rows_without_files, bad_images, leaked_loops, leaked_mounts, stale_files;
};

struct soak_verify_sum {
        unsigned checkpoints;
        unsigned committed;      /* committed layers hashed through a view at checkpoints */
        unsigned active;         /* actives hashed at checkpoints */
        unsigned write_hashes;   /* write operations whose tree matched the model */
        unsigned view_ops;       /* verify operations whose hash matched */
        unsigned rows;           /* rows compared with the model */
        unsigned loops;          /* loop devices of the root looked at */
        unsigned settled;        /* killed operations settled from the store */
        unsigned orphan_mounts;  /* mounts of removed snapshots unmounted */
        unsigned integrity_runs; /* PRAGMA integrity_check + foreign_key_check */
};

struct soak {
        /* options */
        double minutes;
        unsigned workers;
        uint64_t seed;
        bool json;
        bool keep;
        bool verbose;
        unsigned check_every; /* seconds */
        unsigned fault_pct;
        unsigned sigkill_pct;
        unsigned op_timeout; /* seconds */
        unsigned max_snaps;
        unsigned max_depth;
        uint64_t writable_size;
        uint64_t max_bytes; /* per tree */
        const char *variant;
        const char *plugin_path;

        const struct loopsnap_ops *ops;
        char self[PATH_MAX];      /* this executable */
        char work[PATH_MAX];      /* --root: everything of the run is below it */
        char root[PATH_MAX + 16]; /* work/root: the snapshotter root */
        char mnt[PATH_MAX + 16];  /* work/mnt: the soak's mountpoints */
        char realroot[PATH_MAX];  /* root, resolved (what sysfs and mountinfo show) */
        bool made_work;
        /* The loop module's share registry (loop/share.c), private to the
         * run unless LOOPSNAP_LOOP_SHARE_DIR was set: "" when not ours. */
        char share[PATH_MAX + 16];
        int share_left; /* records left once every device is gone; -1 not counted */
        struct soak_rng rng;
        unsigned serial;

        struct soak_snap *snaps;
        size_t n_snaps;
        struct soak_orphan *orphans;
        size_t n_orphans;

        struct soak_count count[SOAK_N_OPS];
        struct soak_point points[SOAK_N_POINTS];
        struct soak_fsck_sum fsck;
        struct soak_verify_sum verify;
        unsigned templates_made; /* fresh template sizes asked for */

        char **failures; /* the first ones, with details */
        size_t n_failures;
        unsigned n_failures_total;
        uint64_t started_ns;
};

extern const char *const soak_op_names[SOAK_N_OPS];

/* Records a failure (a finding, or the soak could not check something). */
void soak_fail(struct soak *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Progress lines on stderr (only with --verbose unless `always`). */
void soak_say(struct soak *s, bool always, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
struct soak_point *soak_point_get(struct soak *s, const char *name);
/* Seconds since the start of the run. */
double soak_elapsed(const struct soak *s);

/*
 * soak_check: a checkpoint, with no operation running: unmount orphans,
 * fsck, fsck --repair, fsck (must be clean), SQLite integrity, settle
 * killed operations from the store, compare every row with the model, look
 * at every loop device and mount of the root, hash every committed layer
 * through a view and every active. Failures go to soak_fail. Returns 0, or
 * -errno when the checkpoint itself could not run (no root handle).
 */
int soak_check(struct soak *s);
/* Unmounts everything, removes every snapshot, checks that nothing of the
 * root is left (loop devices, mounts, rows, fsck problems). */
int soak_teardown(struct soak *s);
/* Last resort, never fails: unmounts everything below the work directory
 * and detaches loop devices whose backing file is below it. Returns the
 * number of mounts and devices it had to remove. */
unsigned soak_scrub(struct soak *s);

/* The depth of snapshot `k` (0: no parent). */
unsigned soak_depth(const struct soak *s, int k);
/* Frees a model entry (tree) and marks it not live; the parent loses a
 * child. */
void soak_snap_drop(struct soak *s, int k);
