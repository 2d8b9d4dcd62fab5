/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * loopsnap-oci-hook — private header of the OCI hook (docs/hook.md,
 * DESIGN §8, research/oci-hook.md). One binary, one stage per run, named by
 * its first argument:
 *
 *   createRuntime    host namespace, state.pid = the container's init:
 *                    prepare the snapshot (or reuse a kept one), build its
 *                    mounts with the engine as a detached tree, setns() into
 *                    the container's mount namespace and attach the tree at
 *                    the staging directory <run>/<id>/root there;
 *   createContainer  the container's mount namespace, before pivot_root:
 *                    move crun's mounts below root.path into the tree, make
 *                    it read-only for root.readonly, move it onto root.path;
 *   poststop         host namespace: wait for the writable image's loop
 *                    device to go, remove the snapshot unless kept, remove
 *                    the staging entry;
 *   sweep            (not a runtime stage) clean entries of dead containers.
 *
 * The hook links the module libraries (snapshot/, mount/) directly: it is a
 * front door like snapctl, but a hook must not depend on where a shared
 * library is installed, and it needs one setting the ABI does not carry
 * (no activation cache: nothing of a container is mounted on the host).
 * It is the one place besides snapctl that prints: errors on stderr, one
 * line "loopsnap-oci-hook: <stage> '<id>': <message>".
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/json.h"
#include "util/util.h"

#define HOOK_NAME "loopsnap-oci-hook"

/* Staging entries live here (0711: createContainer of a user-namespace
 * container runs as its mapped root and must reach <id>/). */
#define HOOK_RUN_DIR     "/run/loopsnap-hook"
#define HOOK_RUN_DIR_ENV "LOOPSNAP_HOOK_RUN_DIR"

/* Annotations (config.json "annotations", docs/hook.md). */
#define HOOK_ANN_ROOT   "io.loopsnap.root"
#define HOOK_ANN_PARENT "io.loopsnap.parent"
#define HOOK_ANN_KEY    "io.loopsnap.key"
#define HOOK_ANN_KEEP   "io.loopsnap.keep-after-stop"
#define HOOK_ANN_SIZE   "io.loopsnap.writable-size"
#define HOOK_ANN_CACHE  "io.loopsnap.activation-cache"
#define HOOK_ANN_POOL   "io.loopsnap.writable-pool"
/* crun opens this file as the hook's stderr; other runtimes do not. */
#define HOOK_ANN_STDERR "run.oci.hooks.stderr"

/* Input limits: the state is one small line; config.json can carry a
 * seccomp profile (tens of KiB) and many mounts. */
#define HOOK_STATE_MAX_BYTES  (64u << 10)
#define HOOK_CONFIG_MAX_BYTES (4u << 20)
#define HOOK_ENTRY_MAX_BYTES  (64u << 10)
#define HOOK_ID_MAX           128

/* What the stage got on stdin (runtime-spec state), and what it needs of
 * the bundle's config.json. */
struct hook_input {
        char id[HOOK_ID_MAX + 1];
        pid_t pid;       /* container init (createRuntime, poststart); 0 elsewhere */
        char status[16]; /* "created", "stopped"...; "" when absent */
        char *bundle;
        /* From config.json (read only by the host-side stages). */
        char *root_path; /* root.path made absolute against bundle, realpath()ed */
        bool readonly;   /* root.readonly */
        char *snap_root; /* annotation or SNAP_DEFAULT_ROOT */
        char *parent;    /* annotation; NULL: none */
        char *key;       /* annotation or the container id */
        bool keep;       /* annotation keep-after-stop */
        bool no_cache;   /* annotation activation-cache "false" */
        unsigned pool;   /* annotation writable-pool; default SNAP_DEFAULT_WRITABLE_POOL,
                            0 with no_cache */
        uint64_t size;   /* annotation writable-size; 0: the root's default */
        char *uidmap;    /* linux.uidMappings as "c:h:s,..."; NULL: none */
        char *gidmap;
        char *stderr_file; /* run.oci.hooks.stderr annotation; NULL: none */
};

void hook_input_done(struct hook_input *in);

/*
 * hook_input_read_state: parse the state JSON from `fd` (to EOF, at most
 * HOOK_STATE_MAX_BYTES): id (validated: [A-Za-z0-9_.+-], not starting with
 * '.', at most HOOK_ID_MAX bytes), pid, bundle (absolute). Also takes the
 * stderr annotation from it, so that errors reading config.json reach it.
 * Returns: 0, or -errno with `err` saying what is wrong with the input.
 */
int hook_input_read_state(int fd, struct hook_input *in, struct util_err *err);

/* hook_stage_guess: the stage from the state, for "auto" (oci-hooks(5)
 * files pass the same arguments to every stage): status "stopped" is
 * poststop; "created" is createContainer when pid is 0 (crun) or when we
 * are in the init's mount namespace already, else createRuntime.
 * Returns: 0 and a static stage name, or -EINVAL for other statuses. */
int hook_stage_guess(const struct hook_input *in, const char **ret, struct util_err *err);

/* hook_input_read_config: read <bundle>/config.json (at most
 * HOOK_CONFIG_MAX_BYTES) into the rest of `in`. Returns: 0, or -errno with
 * `err` naming the field at fault ("config.json: annotations
 * \"io.loopsnap.keep-after-stop\": expected true or false"). */
int hook_input_read_config(struct hook_input *in, struct util_err *err);

/* ---- staging entries (hook-entry.c) ------------------------------------- */

/* <run>/<id>/state.json: what createRuntime did, for the later stages and
 * for the sweep. Written atomically (temp file + rename). */
struct hook_entry {
        char id[HOOK_ID_MAX + 1];
        pid_t pid;           /* the container's init */
        uint64_t start_time; /* its start time (/proc/<pid>/stat field 22) */
        char *root_path;
        bool readonly;
        char *snap_root;
        char *key;
        bool keep;
        /* The snapshot is this container's: removed at poststop/sweep unless
         * keep. Set before a prepare, so that a hook killed during it leaves
         * nothing the sweep would not remove. */
        bool owned;
        unsigned pool;  /* the writable pool's size the snapshot was mounted with */
        char *image;    /* the writable image (loop-backed); NULL: none */
        char *loop_tag; /* the tag of its read-write loop device; NULL: none */
};

void hook_entry_done(struct hook_entry *e);

/* The run directory (HOOK_RUN_DIR_ENV or HOOK_RUN_DIR). */
const char *hook_run_dir(void);

/* Takes the run directory's lock (flock on <run>/.lock, created with the
 * directory). Returns the lock fd (close to release), or -errno with `err`. */
int hook_lock(struct util_err *err);

/*
 * hook_entry_create: make <run>/<id>/ with state.json and the empty
 * mount point root/, atomically (built as <run>/.new-*, renamed). Call with
 * the lock held. An existing entry of a dead container is cleaned first;
 * one of a live container is EBUSY.
 * Returns: 0, or -errno with `err`.
 */
int hook_entry_create(const struct hook_entry *e, struct util_err *err);

/* Rewrites <run>/<id>/state.json. Returns 0 or -errno with `err`. */
int hook_entry_write(const struct hook_entry *e, struct util_err *err);

/* Reads <run>/<id>/state.json. Returns 0, -ENOENT when there is no entry,
 * or -errno with `err`. */
int hook_entry_read(const char *id, struct hook_entry *ret, struct util_err *err);

/* "<run>/<id>/root" into a malloc'ed string (NULL on ENOMEM). */
char *hook_entry_mountpoint(const char *id);

/* Whether the container `e` names is alive: its pid runs with the recorded
 * start time. */
bool hook_entry_is_alive(const struct hook_entry *e);

/*
 * hook_entry_release: what poststop and the sweep do for an entry: remove
 * the snapshot when the entry owns it and does not keep it (a missing
 * snapshot is fine), then remove <run>/<id>. Call with the lock held.
 * Returns: 0, or -errno with `err` (the entry stays for a later sweep).
 */
int hook_entry_release(const struct hook_entry *e, struct util_err *err);

/* Removes <run>/<id> (state.json, root/, the directory). 0 or -errno. */
int hook_entry_remove(const char *id, struct util_err *err);

/*
 * hook_sweep: with the lock held, release the entries of containers that
 * are gone (crun runs no poststop after a failed create or a killed hook)
 * and remove half-made <run>/.new-* older than a minute. Failures are
 * reported through `report` (one line each) and do not stop the sweep.
 * Returns: the number of entries released.
 */
int hook_sweep(void (*report)(const char *line));

/* The start time of `pid` (field 22 of /proc/<pid>/stat). 0 or -errno. */
int hook_pid_start_time(pid_t pid, uint64_t *ret);

/* ---- stages (hook-stages.c) ---------------------------------------------- */

int hook_create_runtime(struct hook_input *in, struct util_err *err);
int hook_create_container(struct hook_input *in, struct util_err *err);
int hook_poststop(struct hook_input *in, struct util_err *err);

/* Prints a warning line (stderr and the stderr annotation's file). */
void hook_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
