/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Cleanup: reclaim what crashes and removals left behind — trash/ entries,
 * tmp/ work in progress (new-*), templates/new-* (a template mkfs that died),
 * and snapshots/<id> directories that have no row. It runs under the root
 * lock held exclusively, so no prepare is half-way through (they hold it
 * shared while they own files in tmp/). A directory that is a mountpoint
 * (a commit's temporary mount that a crash left) is unmounted first; the
 * engine never deletes where something might still be mounted.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "loop/loop.h"
#include "snapshot/snapshot-internal.h"

static bool id_live(const int64_t *ids, size_t n, int64_t id)
{
        for (size_t k = 0; k < n; k++)
                if (ids[k] == id)
                        return true;
        return false;
}

/* Removes `path` if it is one of the shapes loopsnap makes: a file, or a
 * directory of snapshot files. Returns 1 when something went. */
static int remove_entry(const char *path)
{
        struct stat st;

        if (lstat(path, &st) < 0)
                return 0;
        if (!S_ISDIR(st.st_mode))
                return unlink(path) == 0;
        if (mount_is_mountpoint(path, NULL) == 1)
                (void)mount_unmount_all(path, NULL);
        /* new-skel-* (a template skeleton): upper/ and work/. */
        char p[4200 + 16];
        snprintf(p, sizeof(p), "%s/upper", path);
        (void)rmdir(p);
        snprintf(p, sizeof(p), "%s/work", path);
        (void)rmdir(p);
        /* An apply's jail (snapshot/apply.c): the image at layer/, the
         * parent layers at lower/, either maybe still mounted by a crash. */
        static const char *const jail[] = {"lower", "layer"};
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(jail); k++) {
                snprintf(p, sizeof(p), "%s/%s", path, jail[k]);
                if (mount_is_mountpoint(p, NULL) == 1)
                        (void)mount_unmount_all(p, NULL);
                (void)rmdir(p);
        }
        snap_files_remove(path);
        return access(path, F_OK) != 0;
}

static int sweep(struct snap_root *r, const char *sub, const char *prefix, const int64_t *ids,
                 size_t n_ids, struct util_err *err)
{
        _cleanup_free_ char *dir = snap_path(r, "%s", sub);
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int n = 0;

        if (!dir)
                return util_err_set(err, ENOMEM, "cleanup");
        d = opendir(dir);
        if (!d)
                return util_err_set(err, errno, "open '%s'", dir);
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (prefix && strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                        continue;
                if (ids) {
                        uint64_t id;
                        if (util_parse_u64(de->d_name, &id) < 0 || id_live(ids, n_ids, (int64_t)id))
                                continue;
                }
                char p[4200];
                snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                n += remove_entry(p);
        }
        return n;
}

/*
 * trash/rm-<id>-*: a remove that crashed before its transaction committed
 * left the row in place and its files here. Those go back, never away:
 * deleting them would leave a row without its image. (They are not counted
 * as removed.)
 */
static void trash_restore_live(struct snap_root *r, const int64_t *ids, size_t n_ids)
{
        _cleanup_free_ char *dir = snap_path(r, "trash");
        _cleanup_(closedirp) DIR *d = dir ? opendir(dir) : NULL;
        struct dirent *de;

        while (d && (de = readdir(d))) {
                long long id;
                int used = 0;
                if (sscanf(de->d_name, "rm-%lld-%*x%n", &id, &used) != 1 || used == 0 ||
                    !id_live(ids, n_ids, id))
                        continue;
                _cleanup_free_ char *from = snap_path(r, "trash/%s", de->d_name);
                _cleanup_free_ char *to = snap_path(r, "snapshots/%lld", id);
                if (from && to && access(to, F_OK) != 0 && rename(from, to) == 0)
                        util_debug(UTIL_DBG_SNAP, "cleanup: put back %s (its row exists)", to);
        }
}

static const struct snap_info *row_of(const struct snap_info *rows, size_t n, int64_t id)
{
        for (size_t k = 0; k < n; k++)
                if (rows[k].id == id)
                        return &rows[k];
        return NULL;
}

/*
 * Files of live snapshots that their kind does not use any more: a commit
 * that converted the layer (erofs, or an image made from a directory upper)
 * and died between its transaction and deleting the writable part, or died
 * before its transaction after placing the new layer.
 */
static int sweep_stale_files(struct snap_root *r, const struct snap_info *rows, size_t n)
{
        bool erofs = strcmp(r->committed_format, "erofs") == 0;
        int total = 0;

        for (size_t k = 0; k < n; k++) {
                const struct snap_info *i = &rows[k];
                const char *stale[2] = {NULL, NULL};
                if (i->kind == SNAP_KIND_COMMITTED && erofs)
                        stale[0] = r->upper_dir ? "fs" : "fs.img";
                else if (i->kind == SNAP_KIND_COMMITTED && r->upper_dir)
                        stale[0] = "fs";
                else if (i->kind == SNAP_KIND_ACTIVE && erofs)
                        stale[0] = "layer.erofs";
                else if (i->kind == SNAP_KIND_ACTIVE && r->upper_dir)
                        stale[0] = "fs.img";
                for (size_t s = 0; s < 2 && stale[s]; s++) {
                        _cleanup_free_ char *p =
                                snap_path(r, "snapshots/%lld/%s", (long long)i->id, stale[s]);
                        struct stat st;
                        if (!p || lstat(p, &st) < 0)
                                continue;
                        if (S_ISDIR(st.st_mode))
                                snap_tree_remove(p);
                        else
                                (void)unlink(p);
                        total += access(p, F_OK) != 0;
                }
        }
        return total;
}

/* Whether committed `id` is stacked by a live active snapshot or view. */
static bool layer_needed(const struct snap_info *rows, size_t n, int64_t id)
{
        for (size_t k = 0; k < n; k++) {
                if (rows[k].kind == SNAP_KIND_COMMITTED)
                        continue;
                /* Walk up the chain (bounded: a chain cannot be longer
                 * than the number of rows). */
                int64_t p = rows[k].parent_id;
                for (size_t hops = 0; p && hops <= n; hops++) {
                        if (p == id)
                                return true;
                        const struct snap_info *pi = row_of(rows, n, p);
                        p = pi ? pi->parent_id : 0;
                }
        }
        return false;
}

/*
 * m/<id>: activations of layers that are gone or not committed are removed
 * (and counted); those of layers that no active snapshot or view stacks
 * any more are unmounted too (the cache's garbage collection; not counted,
 * they were not wrong), their empty directory kept for the layer's next
 * activation: making one is a new inode on the host (~0.2 ms on an ext4
 * without a journal after many deletions), paid by every layer of a cold
 * start. The layer's removal removes it.
 */
static int sweep_activations(struct snap_root *r, const struct snap_info *rows, size_t n)
{
        _cleanup_free_ char *dir = snap_path(r, "m");
        _cleanup_(closedirp) DIR *d = dir ? opendir(dir) : NULL;
        struct dirent *de;
        int total = 0;

        while (d && (de = readdir(d))) {
                uint64_t id;
                if (de->d_name[0] == '.' || util_parse_u64(de->d_name, &id) < 0)
                        continue;
                const struct snap_info *i = row_of(rows, n, (int64_t)id);
                bool valid = i && i->kind == SNAP_KIND_COMMITTED;
                if (valid && layer_needed(rows, n, (int64_t)id))
                        continue;
                struct util_err e = {0};
                int rc = snap_deactivate(r, (int64_t)id, valid, &e);
                if (rc < 0)
                        util_debug(UTIL_DBG_SNAP, "cleanup: %s", e.msg);
                else if (!valid)
                        total++;
        }
        return total;
}

struct rows {
        const struct snap_info *v;
        size_t n;
};

static bool row_active(void *data, int64_t id)
{
        const struct rows *rs = data;
        const struct snap_info *i = row_of(rs->v, rs->n, id);
        return i && i->kind == SNAP_KIND_ACTIVE;
}

int snap_cleanup(struct snap_root *r, struct util_err *err)
{
        struct snap_info *rows = NULL;
        size_t n_rows = 0;
        _cleanup_free_ int64_t *ids = NULL;
        size_t n_ids = 0;
        int total = 0, rc;

        if (flock(r->lock_fd, LOCK_EX) < 0)
                return util_err_set(err, errno, "cleanup: lock the root");
        rc = snap_store_ids(r->store, &ids, &n_ids, err);
        if (rc >= 0)
                trash_restore_live(r, ids, n_ids);
        if (rc >= 0 && (rc = sweep(r, "trash", NULL, NULL, 0, err)) >= 0)
                total += rc;
        if (rc >= 0 && (rc = sweep(r, "tmp", "new-", NULL, 0, err)) >= 0)
                total += rc;
        if (rc >= 0 && (rc = sweep(r, "templates", "new-", NULL, 0, err)) >= 0)
                total += rc;
        if (rc >= 0 && (rc = sweep(r, "snapshots", NULL, ids ? ids : (int64_t[]){0},
                                   ids ? n_ids : 0, err)) >= 0)
                total += rc;
        if (rc >= 0 && (rc = snap_store_list(r->store, &rows, &n_rows, err)) >= 0) {
                total += sweep_stale_files(r, rows, n_rows);
                total += sweep_activations(r, rows, n_rows);
                /* Spares are a cache: cleanup gives their space back. */
                struct rows rs = {rows, n_rows};
                snap_pool_sweep(r, row_active, &rs);
                snap_info_list_free(rows, n_rows);
        }
        (void)flock(r->lock_fd, LOCK_UN);
        /* Not this root's alone (the registry is the host's), so not counted;
         * best effort: a stale record only costs a lookup. */
        struct util_err e2 = {0};
        if (rc >= 0 && loop_share_sweep(NULL, &e2) < 0)
                util_debug(UTIL_DBG_SNAP, "cleanup: %s", e2.msg);
        return rc < 0 ? util_err_prefix(err, "cleanup '%s'", r->path) : total;
}
