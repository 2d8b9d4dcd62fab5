/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The three runtime stages of the OCI hook (DESIGN §8; the recipe and the
 * crun facts behind it are in research/oci-hook.md §2, §5, §6).
 *
 * Why two stages build the root: crun mounts /proc, /dev, /sys and the
 * config's mounts below root.path before createRuntime, but applies the
 * masked and read-only paths only after it, through an fd of its own bind
 * of root.path. A tree stacked on root.path in createRuntime would hide
 * those mounts and crun would mask nothing. So createRuntime only parks the
 * tree at a staging mount point inside the container's mount namespace;
 * createContainer, which runs after the masking, moves crun's finished
 * mounts into the tree and the tree onto root.path, where pivot_root finds
 * it. The loop devices are attached by createRuntime, which runs in the
 * host's cgroup: createContainer runs in the container's, whose device
 * controller denies /dev/loop*.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "loop/loop.h"
#include "mount/mount.h"
#include "plugin/hook.h"
#include "snapshot/snapshot.h"

/* How long poststop waits for the kernel to free the writable image's
 * loop device (the container's mount namespace goes with its last process;
 * the device detaches itself when its last mount goes). */
#define HOOK_RELEASE_WAIT_MS 10000
/* How long createRuntime waits for a kept snapshot's previous user to let
 * go of its writable image before calling it in use. */
#define HOOK_IN_USE_WAIT_MS 2000

/* The writable image of a spec: the one mount attached "loop" without "ro"
 * (snapshot.h: the active snapshot's own image). NULL: none (a view, or a
 * plain-directory upper). */
static const char *spec_writable_image(const struct mount_spec *s)
{
        for (size_t i = 0; i < s->n; i++) {
                bool loop = false, ro = false;
                for (size_t k = 0; k < s->mounts[i].n_options; k++) {
                        loop |= strcmp(s->mounts[i].options[k], "loop") == 0;
                        ro |= strcmp(s->mounts[i].options[k], "ro") == 0;
                }
                if (loop && !ro)
                        return s->mounts[i].source;
        }
        return NULL;
}

/* How many loop devices hold the writable image: the read-write device
 * tagged `tag` (exact; the read-only layers' devices may carry the same tag
 * and be shared with other containers), else any device on `image` (0 when
 * the file is gone). */
static int writable_loops(const char *image, const char *tag, struct util_err *err)
{
        struct loop_filter f = {.tag_prefix = tag, .backing_path = tag ? NULL : image};
        struct loop_status *v = NULL;
        size_t n = 0, count = 0;
        int r = loop_list(&f, &v, &n, err);

        if (r == -ENOENT) {
                util_err_clear(err);
                return 0;
        }
        for (size_t k = 0; r >= 0 && k < n; k++)
                count += !tag || (strcmp(v[k].tag, tag) == 0 && !v[k].read_only);
        free(v);
        return r < 0 ? r : (int)count;
}

/*
 * Whether someone has the file behind `fd` open for writing: a read lease
 * is granted only when no one does (fs/locks.c, check_conflicting_open).
 * The writable image's only writer is its loop device (the engine's own fd
 * is closed once the device is configured), so this tells in O(1) what a
 * scan of every loop device in /sys/block would — which costs milliseconds
 * on a host with hundreds of them. Root has CAP_LEASE.
 * Returns: 1 yes, 0 no, or -errno when leases do not work here
 * (fs.leases-enable = 0, a filesystem without leases).
 */
static int file_has_writers(int fd)
{
        if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
                (void)fcntl(fd, F_SETLEASE, F_UNLCK);
                return 0;
        }
        return errno == EAGAIN ? 1 : -errno;
}

/* Waits up to `ms` for the writable image to have no loop device: through
 * `fd` (the image, open read-only; -EBADF: none) with the lease probe, else
 * by scanning loop devices. Returns 0 when it has none, -EBUSY when it still
 * has one, or -errno. */
static int writable_wait_free(int fd, const char *image, const char *tag, unsigned ms,
                              struct util_err *err)
{
        uint64_t until = util_now_ns() + (uint64_t)ms * 1000000u;
        bool lease = fd >= 0;

        for (;;) {
                int n = lease ? file_has_writers(fd) : 0;
                if (n < 0) {
                        util_debug(UTIL_DBG_PLUGIN, "lease probe on '%s': %s; scanning", image,
                                   strerror(-n));
                        lease = false;
                }
                if (!lease)
                        n = writable_loops(image, tag, err);
                if (n <= 0)
                        return n;
                if (util_now_ns() >= until)
                        return util_err_setx(err, EBUSY, "'%s' is still attached to a loop device",
                                             image);
                util_sleep_ms(lease ? 1 : 5);
        }
}

/* The image, open read-only for the lease probe (-EBADF when it cannot be). */
static int image_open(const char *image)
{
        int fd = open(image, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        return fd >= 0 ? fd : -EBADF;
}

static void sweep_report(const char *line)
{
        hook_warn("%s", line);
}

/* Removes what a failed createRuntime made: the snapshot when this run
 * created it, and the staging entry. Best effort: what fails is left to a
 * later sweep (the container's init is gone by then). */
static void runtime_undo(const struct hook_entry *e, bool created)
{
        struct util_err err = {0};
        struct hook_entry copy = *e;
        int lock = hook_lock(&err);

        if (lock < 0) {
                hook_warn("undo: %s", err.msg);
                return;
        }
        /* A snapshot this run did not create stays (it was there before). */
        copy.owned = created;
        copy.keep = false;
        if (hook_entry_release(&copy, &err) < 0)
                hook_warn("undo: %s (a later run sweeps it)", err.msg);
        close(lock);
}

static void add_label(struct snap_label *l, size_t *n, const char *k, const char *v)
{
        l[*n].key = (char *)k;
        l[*n].value = (char *)v;
        (*n)++;
}

/* Stage part of createRuntime after the entry exists. *created says whether
 * this run prepared the snapshot; *attached whether the tree is at the
 * staging mount point in the container's namespace. */
static int runtime_stage(struct hook_input *in, struct snap_root *r, struct hook_entry *e,
                         bool *created, bool *attached, struct util_err *err)
{
        _cleanup_(mount_engine_freep) struct mount_engine *eng = NULL;
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        _cleanup_free_ char *point = hook_entry_mountpoint(in->id);
        /* Declared first, closed last: the image's flock outlives the
         * attach (see below). */
        _cleanup_close_ int image_fd = -EBADF;
        _cleanup_close_ int tree = -EBADF, ns = -EBADF;
        struct snap_info info = {0};
        char nspath[64], loop_id[32], size[32];
        int rc;

        if (!point)
                return util_err_set(err, ENOMEM, "createRuntime");
        rc = snap_stat(r, in->key, &info, err);
        if (rc == -ENOENT) {
                struct snap_label labels[4];
                size_t n = 0;
                util_err_clear(err);
                if (!in->parent)
                        return util_err_setx(err, EINVAL,
                                             "no snapshot '%s' in '%s' and no \"%s\" annotation "
                                             "to prepare it from",
                                             in->key, in->snap_root, HOOK_ANN_PARENT);
                if (in->size) {
                        snprintf(size, sizeof(size), "%" PRIu64, in->size);
                        add_label(labels, &n, SNAP_LABEL_MAX_SIZE, size);
                }
                if (in->uidmap)
                        add_label(labels, &n, SNAP_LABEL_UIDMAPPING, in->uidmap);
                if (in->gidmap)
                        add_label(labels, &n, SNAP_LABEL_GIDMAPPING, in->gidmap);
                /* Removed at poststop: nothing needs its upper synced when
                 * the container's mounts go. */
                if (!in->keep)
                        add_label(labels, &n, SNAP_LABEL_VOLATILE, "true");
                /* Owned before it exists: a hook killed during the prepare
                 * leaves an entry the sweep releases, snapshot included.
                 * Usually the entry was created so (hook_create_runtime). */
                if (!e->owned) {
                        e->owned = true;
                        if ((rc = hook_entry_write(e, err)) < 0)
                                return rc;
                }
                rc = snap_prepare(r, in->key, in->parent, labels, n, &spec, err);
                if (rc < 0) {
                        struct util_err ignore = {0};
                        e->owned = false;
                        (void)hook_entry_write(e, &ignore);
                        return rc;
                }
                *created = true;
                util_fault_point("hook-runtime-after-prepare");
                rc = snap_stat(r, in->key, &info, err);
        } else if (rc >= 0) {
                /* Prepared by someone else since hook_create_runtime looked:
                 * not ours until the in-use check below says so. */
                if (e->owned) {
                        e->owned = false;
                        if ((rc = hook_entry_write(e, err)) < 0) {
                                snap_info_done(&info);
                                return rc;
                        }
                }
                if (info.kind == SNAP_KIND_COMMITTED) {
                        snap_info_done(&info);
                        return util_err_setx(err, EINVAL,
                                             "snapshot '%s' is committed: name it with \"%s\" "
                                             "and give the container a key of its own",
                                             in->key, HOOK_ANN_PARENT);
                }
                const char *vo = snap_info_label(&info, SNAP_LABEL_VOLATILE);
                if (vo && strcmp(vo, "true") == 0) {
                        snap_info_done(&info);
                        return util_err_setx(err, EINVAL,
                                             "snapshot '%s' is volatile: it was made for one "
                                             "container and outlived it (a host crash?); its "
                                             "upper cannot be mounted again: remove it "
                                             "(snapctl --root %s rm %s)",
                                             in->key, in->snap_root, in->key);
                }
                if (in->uidmap || in->gidmap)
                        util_debug(UTIL_DBG_PLUGIN,
                                   "snapshot '%s' exists: its mapping labels are the ones it "
                                   "was prepared with",
                                   in->key);
                rc = snap_mounts(r, in->key, &spec, err);
        }
        if (rc < 0)
                return rc;
        snprintf(loop_id, sizeof(loop_id), "%" PRId64, info.id);
        snap_info_done(&info);

        const char *image = spec_writable_image(spec);
        if (image && !*created) {
                /* A kept snapshot: another container (or the previous one,
                 * still going) must not have its writable image. The check
                 * and the attach happen under flock on the image, so two
                 * containers starting on one key cannot both find it free;
                 * the second then sees the first's device and is refused. */
                image_fd = image_open(image);
                if (image_fd >= 0)
                        while (flock(image_fd, LOCK_EX) < 0 && errno == EINTR)
                                ;
                /* The writable pool's own mount of the image (its keeper)
                 * would hold the device forever: drop it, so that the
                 * device stays only while a container has the image. */
                if ((rc = snap_release_writable(r, in->key, err)) < 0)
                        return rc;
                rc = writable_wait_free(image_fd, image, NULL, HOOK_IN_USE_WAIT_MS, err);
                if (rc == -EBUSY)
                        return util_err_prefix(err, "snapshot '%s' is in use", in->key);
                if (rc < 0)
                        return rc;
        }
        if (!*created)
                e->owned = true;
        if (image && !(e->image = strdup(image)))
                return util_err_set(err, ENOMEM, "createRuntime");
        char tag[LOOP_TAG_MAX + 1];
        if (image && loop_tag_format(tag, sizeof(tag), snap_root_tag_owner(r), loop_id) == 0 &&
            !(e->loop_tag = strdup(tag)))
                return util_err_set(err, ENOMEM, "createRuntime");
        if ((rc = hook_entry_write(e, err)) < 0)
                return rc;

        struct mount_engine_opts eo;
        snap_root_engine_opts(r, &eo);
        if ((rc = mount_engine_new(&eo, &eng, err)) < 0)
                return rc;
        rc = mount_engine_apply(eng, spec, NULL, loop_id, &tree, err);
        if (rc < 0)
                return util_err_prefix(err, "mount snapshot '%s'", in->key);

        /* Into the container's mount namespace. The tree is a detached
         * mount: it can be attached in any namespace we can enter. The
         * hook is single-threaded, as setns(CLONE_NEWNS) requires. */
        snprintf(nspath, sizeof(nspath), "/proc/%d/ns/mnt", (int)in->pid);
        ns = open(nspath, O_RDONLY | O_CLOEXEC);
        if (ns < 0)
                return util_err_set(err, errno, "open '%s'", nspath);
        if (!hook_entry_is_alive(e))
                return util_err_setx(err, ESRCH, "container init %d is gone", (int)in->pid);
        if (setns(ns, CLONE_NEWNS) < 0)
                return util_err_set(err, errno, "setns '%s'", nspath);
        /* With rootfsPropagation "shared", crun leaves the container's copy
         * of the host's mounts peers of the host's: a mount under them would
         * show up on the host. Cut that for the staging location only (this
         * namespace's view of the host goes away at pivot_root anyway). */
        if ((rc = mount_make_containing_private(point, err)) < 0)
                return rc;
        if ((rc = mount_attach(tree, point, err)) < 0)
                return rc;
        *attached = true;
        util_fault_point("hook-runtime-after-attach");
        util_debug(UTIL_DBG_PLUGIN, "createRuntime '%s': snapshot '%s' staged at %s", in->id,
                   in->key, point);
        return 0;
}

int hook_create_runtime(struct hook_input *in, struct util_err *err)
{
        _cleanup_(snap_root_closep) struct snap_root *r = NULL;
        struct hook_entry e = {0};
        struct snap_info info = {0};
        bool created = false, attached = false;
        int rc, lock;

        if (in->pid <= 0)
                return util_err_setx(err, EINVAL,
                                     "state: no pid of the container's init (register this "
                                     "stage as createRuntime)");
        if ((rc = hook_input_read_config(in, err)) < 0)
                return rc;

        snprintf(e.id, sizeof(e.id), "%s", in->id);
        e.pid = in->pid;
        if (hook_pid_start_time(in->pid, &e.start_time) < 0)
                return util_err_setx(err, ESRCH, "container init %d is not running", (int)in->pid);
        e.root_path = in->root_path;
        e.readonly = in->readonly;
        e.snap_root = in->snap_root;
        e.key = in->key;
        e.keep = in->keep;
        e.pool = in->pool;

        /* With the activation cache (the default), a prepare keeps the
         * parent's committed layers mounted read-only at <root>/m/<id> in
         * the host's namespace: they belong to the layers, not to this
         * container (the next container on the same image clones them),
         * and go with `snapctl cleanup` or the layer's removal. Annotation
         * io.loopsnap.activation-cache=false: nothing stays mounted. */
        struct snap_root_opts ro = {.path = in->snap_root,
                                    .no_activation_cache = in->no_cache,
                                    .writable_pool = in->pool};
        if ((rc = snap_root_open(&ro, &r, err)) < 0)
                return rc;
        /* A snapshot this run is about to prepare is owned from the first
         * write of the entry (one write fewer than marking it later); the
         * stage checks again, as a stale entry's release below may remove
         * the snapshot seen here. */
        rc = snap_stat(r, in->key, &info, err);
        if (rc < 0 && rc != -ENOENT)
                return rc;
        util_err_clear(err);
        snap_info_done(&info);
        e.owned = rc == -ENOENT && in->parent;

        if ((lock = hook_lock(err)) < 0)
                return lock;
        hook_sweep(sweep_report);
        rc = hook_entry_create(&e, err);
        close(lock);
        if (rc < 0)
                return rc;
        util_fault_point("hook-runtime-after-entry");

        rc = runtime_stage(in, r, &e, &created, &attached, err);
        if (rc < 0) {
                /* crun runs no poststop after a failed create: undo here. */
                _cleanup_free_ char *point = hook_entry_mountpoint(in->id);
                if (attached && point)
                        (void)umount2(point, MNT_DETACH);
                runtime_undo(&e, created);
        }
        free(e.image);
        free(e.loop_tag);
        return rc;
}

int hook_create_container(struct hook_input *in, struct util_err *err)
{
        _cleanup_free_ char *point = hook_entry_mountpoint(in->id);
        struct hook_entry e = {0};
        int rc;

        if (!point)
                return util_err_set(err, ENOMEM, "createContainer");
        rc = hook_entry_read(in->id, &e, err);
        if (rc == -ENOENT)
                return util_err_setx(err, ENOENT,
                                     "nothing staged for container '%s' in '%s' (is this hook "
                                     "registered for createRuntime too?)",
                                     in->id, hook_run_dir());
        if (rc < 0)
                return rc;
        rc = mount_is_mountpoint(point, err);
        if (rc == 0)
                rc = util_err_setx(err, ENOENT,
                                   "'%s' is not a mount point in this mount namespace (this "
                                   "stage must run inside the container, as createContainer)",
                                   point);
        /* crun's mounts (proc, dev, sys, the config's, with the masked and
         * read-only paths applied) into the tree, then the tree onto
         * root.path: crun's pivot_root opens root.path and lands on it. */
        if (rc >= 0)
                rc = mount_move_children(e.root_path, point, err);
        if (rc >= 0) {
                util_fault_point("hook-container-after-moves");
                util_debug(UTIL_DBG_PLUGIN, "createContainer '%s': moved %d mounts", in->id, rc);
                if (e.readonly)
                        rc = mount_set_readonly(point, err);
        }
        if (rc >= 0)
                rc = mount_move(point, e.root_path, err);
        if (rc < 0) {
                /* The container will not start (crun kills its init, and
                 * its namespace takes the mounts along); the entry and the
                 * snapshot are the sweep's: this stage may run as a
                 * user namespace's root, which cannot reach the root. */
                (void)umount2(point, MNT_DETACH);
        }
        hook_entry_done(&e);
        return rc;
}

/* Drops the writable pool's mount of a kept snapshot's image, so that its
 * device goes with the container's last mount (the next container's
 * createRuntime judges "in use" by that device). Best effort: that
 * createRuntime drops it too. */
static void poststop_unkeep(const struct hook_entry *e)
{
        _cleanup_(snap_root_closep) struct snap_root *r = NULL;
        struct snap_root_opts o = {.path = e->snap_root, .no_activation_cache = true};
        struct util_err w = {0};

        if (snap_root_open(&o, &r, &w) < 0 || snap_release_writable(r, e->key, &w) < 0)
                hook_warn("poststop '%s': %s", e->id, w.msg);
}

/* Waits for the container's writable device to go; a warning when it
 * does not (something holds the container's mount namespace). */
static void poststop_wait(const struct hook_entry *e, int fd, bool removed)
{
        struct util_err w = {0};
        struct stat st;

        /* Removed, yet the file still has a name: the snapshot's removal
         * gave it back to the writable pool, whose device it is now. */
        if (removed && fd >= 0 && fstat(fd, &st) == 0 && st.st_nlink > 0) {
                util_debug(UTIL_DBG_PLUGIN, "poststop '%s': '%s' went to the writable pool", e->id,
                           e->image);
                return;
        }
        if (e->image && writable_wait_free(fd, e->image, e->loop_tag, HOOK_RELEASE_WAIT_MS, &w) < 0)
                hook_warn("poststop '%s': %s (something holds the container's mount namespace; "
                          "the device detaches itself when it goes)",
                          e->id, w.msg);
}

int hook_poststop(struct hook_input *in, struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;
        struct hook_entry e = {0};
        int rc, lock;

        if ((lock = hook_lock(err)) < 0)
                return lock;
        rc = hook_entry_read(in->id, &e, err);
        close(lock);
        if (rc == -ENOENT) {
                /* Swept already, or createRuntime never staged it. */
                util_debug(UTIL_DBG_PLUGIN, "poststop '%s': nothing staged", in->id);
                goto sweep;
        }
        if (rc < 0)
                return rc;
        /* The container's namespace went with its last process; its ext4
         * and the loop devices go a little later (the overlay's layers are
         * internal mounts, released from a workqueue). A kept snapshot
         * must be free before the next container takes it: wait first.
         * A removed one is removed meanwhile, and waited for after. */
        bool wait_first = e.keep || !e.owned;
        /* Opened before the release unlinks it. */
        fd = e.image ? image_open(e.image) : -EBADF;
        if (wait_first && e.image && e.keep)
                poststop_unkeep(&e);
        if (wait_first)
                poststop_wait(&e, fd, false);
        if ((lock = hook_lock(err)) < 0) {
                hook_entry_done(&e);
                return lock;
        }
        /* Again under the lock: a sweep may have released it meanwhile. */
        struct hook_entry now = {0};
        rc = hook_entry_read(in->id, &now, err);
        if (rc == -ENOENT) {
                rc = 0;
        } else if (rc >= 0) {
                if (hook_entry_is_alive(&now))
                        rc = util_err_setx(err, EBUSY, "container '%s' still runs (pid %d)", in->id,
                                           (int)now.pid);
                else
                        rc = hook_entry_release(&now, err);
                hook_entry_done(&now);
        }
        close(lock);
        if (rc >= 0 && !wait_first)
                poststop_wait(&e, fd, true);
        hook_entry_done(&e);
        if (rc < 0)
                return rc;
sweep:
        if ((lock = hook_lock(err)) < 0)
                return lock;
        hook_sweep(sweep_report);
        close(lock);
        return 0;
}
