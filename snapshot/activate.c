/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The activation cache (DESIGN §3, m/<id>): committed layers that a prepare
 * or view stacks are kept mounted read-only at m/<id>. The mount holds the
 * layer's shared loop device and its superblock, so the next container's
 * mount of the same layer joins both (a registry lookup and a superblock
 * reuse, ~0.1 ms) instead of binding a device and reading a filesystem
 * (~1 ms per layer). The spec never mentions m/: a missing, stale or
 * foreign activation only costs time, never correctness, which is why every
 * failure here is traced and swallowed.
 *
 * Activations live in the mount namespace of the process that made them
 * (the host's for snapctl and the hook's createRuntime stage). They are
 * dropped when their layer is removed (with m/<id>), by snap_cleanup for
 * layers no active snapshot or view stacks (m/<id> stays, empty, for the
 * next activation), and by fsck --repair.
 *
 * Concurrency: a missing activation is made under flock(m/.lock), checked
 * again under the lock, so two processes never stack two mounts on m/<id>.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "snapshot/snapshot-internal.h"

/* Whether `path` is the root of a mount: one statx (STATX_ATTR_MOUNT_ROOT,
 * Linux 5.8), not a walk through mountinfo, because a prepare asks this
 * for every layer it stacks. Older kernels: st_dev differs from the
 * parent's (enough here: m/ and m/<id> are ours). */
static bool is_mount_root(const char *path)
{
        struct statx stx;
        if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0)
                return false;
        if (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
                return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
        char parent[4200];
        struct stat a, b;
        snprintf(parent, sizeof(parent), "%s/..", path);
        return stat(path, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

bool snap_is_active(struct snap_root *r, int64_t id)
{
        _cleanup_free_ char *path = snap_path(r, "m/%lld", (long long)id);
        return path && is_mount_root(path);
}

static uint64_t mount_unique_id(int fd);
static void remember_verified(struct snap_root *r, uint64_t mnt, const struct stat *want);

static int activate_one(struct snap_root *r, int64_t id, struct util_err *err)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        _cleanup_free_ char *img = snap_layer_image(r, id);
        _cleanup_free_ char *point = snap_path(r, "m/%lld", (long long)id);
        _cleanup_close_ int mfd = -EBADF;
        const char *type = snap_committed_type(r);
        const char *opts[] = {"ro", "loop", strcmp(type, "xfs") == 0 ? "nouuid" : NULL, NULL};
        /* The new mount API hands the mount back detached (legacy: none). */
        bool detached = mount_engine_api(r->act_engine) != MOUNT_API_LEGACY;
        struct stat want;
        char tagid[32];

        if (!img || !point)
                return util_err_set(err, ENOMEM, "activate");
        if (mkdir(point, 0700) < 0 && errno != EEXIST)
                return util_err_set(err, errno, "create '%s'", point);
        if (mount_spec_new(&spec) < 0)
                return util_err_set(err, ENOMEM, "activate");
        bool have_want = stat(img, &want) == 0;
        int rc = mount_spec_add(spec, type, img, NULL, opts, err);
        snprintf(tagid, sizeof(tagid), "%lld", (long long)id);
        if (rc >= 0)
                rc = mount_engine_apply(r->act_engine, spec, detached ? NULL : point, tagid,
                                        detached ? &mfd : NULL, err);
        if (rc >= 0 && detached)
                rc = mount_attach(mfd, point, err);
        if (rc < 0) {
                (void)rmdir(point);
                return rc;
        }
        /* Work the container's mount would do one layer after the other,
         * done here on the activation threads (~0.1 ms per layer just
         * activated): the overlay looks up every layer's upper/ (a
         * directory entry and an inode read through the device). */
        struct stat st, again;
        char up[PATH_MAX];
        if (snprintf(up, sizeof(up), "%s/upper", point) < (int)sizeof(up))
                (void)stat(up, &st);
        /* The engine checks a mount before it lends it, remembered by its
         * unique id (snap_mount_backed_by_cached). This one the engine has
         * just made of `img` (the same file before and after): remembered
         * as checked, by the id of the mount this fd holds, without the
         * sysfs read, whose kernfs locks the other threads' mounts hold
         * while they register their superblocks (~0.3-0.9 ms of 20 cold
         * layers). Otherwise the check is made here, as the engine would. */
        uint64_t mnt = detached ? mount_unique_id(mfd) : 0;
        bool now = stat(img, &again) == 0;
        if (mnt && have_want && now && again.st_dev == want.st_dev && again.st_ino == want.st_ino) {
                remember_verified(r, mnt, &want);
                return 0;
        }
        _cleanup_close_ int fd = open(point, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && now)
                (void)snap_mount_backed_by_cached(r, fd, type, &again);
        return 0;
}

/* At most this many threads (the caller's included) activate layers at
 * once: a layer is a loop device bound under the loop-control lock (~0.2
 * ms), then a filesystem read through it (~0.6-1 ms, much of it waiting
 * for the device), so the reads of several layers overlap. With 4 threads
 * the 2-core test VM still idled a third of the time; 8 activated 20 cold
 * layers 0.4-1.8 ms faster (7.8-9.0 against 8.2-9.8 ms, same runs). */
#define ACTIVATE_THREADS 8

struct activate_job {
        struct snap_root *r;
        const int64_t *ids; /* the layers still to activate */
        size_t n;
        size_t next; /* atomic: the next index to take */
};

static void *activate_worker(void *data)
{
        struct activate_job *j = data;
        size_t k;

        while ((k = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < j->n) {
                struct util_err err = {0};
                if (activate_one(j->r, j->ids[k], &err) < 0)
                        util_debug(UTIL_DBG_SNAP, "activate layer %lld: %s", (long long)j->ids[k],
                                   err.msg);
        }
        return NULL;
}

/* Threads to start besides the caller's for `n` layers: two layers a
 * thread at least (a thread costs ~30 us to start). */
static size_t activate_helpers(size_t n)
{
        size_t threads = n / 2;
        if (threads > ACTIVATE_THREADS)
                threads = ACTIVATE_THREADS;
        return threads > 1 ? threads - 1 : 0;
}

void snap_activate(struct snap_root *r, const int64_t *ids, size_t n)
{
        _cleanup_free_ int64_t *todo = NULL;
        pthread_t threads[ACTIVATE_THREADS - 1];
        size_t n_todo = 0, started = 0;

        if (!r->activation || n == 0)
                return;
        size_t k = 0;
        while (k < n && snap_is_active(r, ids[k]))
                k++;
        if (k == n)
                return; /* all there: the warm path, no lock */
        todo = malloc(n * sizeof(*todo));
        if (!todo || flock(r->m_lock_fd, LOCK_EX) < 0)
                return;
        /* Under the lock, again: another process may have made some. */
        for (k = 0; k < n; k++)
                if (!snap_is_active(r, ids[k]))
                        todo[n_todo++] = ids[k];
        struct activate_job job = {.r = r, .ids = todo, .n = n_todo};
        size_t helpers = activate_helpers(n_todo);
        while (started < helpers &&
               pthread_create(&threads[started], NULL, activate_worker, &job) == 0)
                started++;
        activate_worker(&job);
        for (k = 0; k < started; k++)
                pthread_join(threads[k], NULL);
        (void)flock(r->m_lock_fd, LOCK_UN);
}

int snap_deactivate(struct snap_root *r, int64_t id, bool keep_dir, struct util_err *err)
{
        _cleanup_free_ char *point = snap_path(r, "m/%lld", (long long)id);
        int was = 0;

        if (!point)
                return util_err_set(err, ENOMEM, "deactivate");
        /* Detach: a container may hold files of the layer open through this
         * mount's namespace view; its own mounts of the layer are separate
         * and stay. Peel stacked mounts (a crash between check and mount
         * can leave two). */
        for (unsigned k = 0; k < 16 && is_mount_root(point); k++) {
                if (umount2(point, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                        return util_err_set(err, errno, "unmount '%s'", point);
                was = 1;
        }
        if (!keep_dir && rmdir(point) < 0 && errno != ENOENT)
                return util_err_set(err, errno, "remove '%s'", point);
        return was;
}

/* The id of committed layer image `source` of root `r` ("<root>/snapshots/
 * <id>/<image name>"), or -1. */
static int64_t layer_id_of(const struct snap_root *r, const char *source)
{
        size_t rl = strlen(r->path);
        static const char dir[] = "/snapshots/";

        if (strncmp(source, r->path, rl) != 0 || strncmp(source + rl, dir, sizeof(dir) - 1) != 0)
                return -1;
        const char *p = source + rl + sizeof(dir) - 1;
        char *end;
        errno = 0;
        long long id = strtoll(p, &end, 10);
        if (errno || end == p || *end != '/' || id <= 0)
                return -1;
        _cleanup_free_ char *img = snap_layer_image(r, id);
        return img && strcmp(img, source) == 0 ? (int64_t)id : -1;
}

/* The superblock magic of a committed layer's filesystem, or 0. */
static unsigned long fs_magic(const char *type)
{
        if (strcmp(type, "ext4") == 0)
                return EXT4_SUPER_MAGIC;
        if (strcmp(type, "erofs") == 0)
                return EROFS_SUPER_MAGIC_V1;
        if (strcmp(type, "xfs") == 0)
                return XFS_SUPER_MAGIC;
        return 0;
}

bool snap_mount_backed_by(int fd, const char *type, const struct stat *want)
{
        unsigned long magic = fs_magic(type);
        char sys[96], backing[PATH_MAX];
        struct statx stx;
        struct statfs sf;
        struct stat got;

        if (magic == 0 || statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) < 0 ||
            fstatfs(fd, &sf) < 0 || (unsigned long)sf.f_type != magic)
                return false;
        /* A directory, not a mount on it (kernels that can tell). */
        if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
            !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
                return false;
        snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/loop/backing_file", stx.stx_dev_major,
                 stx.stx_dev_minor);
        if (util_read_small_file(sys, backing, sizeof(backing)) < 0)
                return false;
        backing[strcspn(backing, "\n")] = 0;
        return stat(backing, &got) == 0 && want->st_dev == got.st_dev && want->st_ino == got.st_ino;
}

#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U
#endif

/* The unique id of the mount whose root `fd` is (never reused while the
 * system runs), or 0 when the kernel has none or `fd` is no mount root. */
static uint64_t mount_unique_id(int fd)
{
        struct statx stx;
        if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID_UNIQUE, &stx) < 0 ||
            !(stx.stx_mask & STATX_MNT_ID_UNIQUE) ||
            !(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) ||
            !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
                return 0;
        return stx.stx_mnt_id;
}

bool snap_mount_backed_by_cached(struct snap_root *r, int fd, const char *type,
                                 const struct stat *want)
{
        uint64_t mnt = mount_unique_id(fd);
        struct snap_verified *v = &r->verified[mnt % SNAP_VERIFIED_SLOTS];
        bool hit;

        if (mnt == 0)
                return snap_mount_backed_by(fd, type, want);
        pthread_mutex_lock(&r->verified_lock);
        hit = v->mnt_id == mnt && v->dev == want->st_dev && v->ino == want->st_ino;
        pthread_mutex_unlock(&r->verified_lock);
        /* The same mount is the same superblock on the same device, whose
         * backing file was `want`; and the type went with the check. */
        if (hit)
                return true;
        if (!snap_mount_backed_by(fd, type, want))
                return false;
        remember_verified(r, mnt, want);
        return true;
}

static void remember_verified(struct snap_root *r, uint64_t mnt, const struct stat *want)
{
        struct snap_verified *v = &r->verified[mnt % SNAP_VERIFIED_SLOTS];
        pthread_mutex_lock(&r->verified_lock);
        *v = (struct snap_verified){.mnt_id = mnt, .dev = want->st_dev, .ino = want->st_ino};
        pthread_mutex_unlock(&r->verified_lock);
}

int snap_take_mount(struct snap_root *r, const char *point, const char *type,
                    const struct stat *want, bool borrow, int *ret_fd)
{
        _cleanup_close_ int fd = open(point, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        /* What is checked is what is used: the mount this fd holds, lent
         * as it is or cloned through the fd (had the mount been unmounted
         * since, the clone fails). A plain directory fails the check before
         * anything is cloned. */
        if (fd < 0 || !snap_mount_backed_by_cached(r, fd, type, want))
                return 0;
        if (borrow) {
                *ret_fd = TAKE_FD(fd);
                return 2;
        }
        int clone = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (clone < 0)
                return 0;
        *ret_fd = clone;
        return 1;
}

/*
 * mount_engine_opts.reuse for this root's engines: when `source` is the
 * image of committed layer <id> and m/<id> is a mount of exactly that image,
 * that mount (lent, `borrow`) or a detached clone of it. "Exactly": the
 * filesystem has the layer's type, lives on a loop device, and the kernel
 * says that device's backing file is `source` (same st_dev and st_ino). A
 * foreign or stale mount at m/<id> fails a check and the engine mounts the
 * image itself.
 */
static int activation_reuse(void *data, const char *type, const char *source, bool rw, bool borrow,
                            int *ret_fd)
{
        struct snap_root *r = data;
        int64_t id;
        char point[PATH_MAX];
        struct stat want;

        if (rw)
                return snap_pool_is_writable_image(r, type, source)
                               ? snap_pool_reuse(r, source, borrow, ret_fd)
                               : 0;
        id = layer_id_of(r, source);
        if (id < 0 || fs_magic(type) == 0 || strcmp(type, snap_committed_type(r)) != 0)
                return 0;
        if (snprintf(point, sizeof(point), "%s/m/%" PRId64, r->path, id) >= (int)sizeof(point))
                return 0;
        if (stat(source, &want) < 0)
                return 0;
        return snap_take_mount(r, point, type, &want, borrow, ret_fd);
}

void snap_root_engine_opts(struct snap_root *r, struct mount_engine_opts *o)
{
        *o = (struct mount_engine_opts){
                .loop_owner = r->owner,
                .reuse = r->layout == SNAP_LAYOUT_OVERLAY ? activation_reuse : NULL,
                .reuse_data = r,
        };
}
