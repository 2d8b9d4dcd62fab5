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

#include "snapshot/snapshot-internal.h"

UTIL_DEFINE_FREE_FUNC(DIR, closedir)

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

int snap_cleanup(struct snap_root *r, struct util_err *err)
{
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
        if (rc >= 0 &&
            (rc = sweep(r, "snapshots", NULL, ids ? ids : (int64_t[]){0}, n_ids, err)) >= 0)
                total += rc;
        (void)flock(r->lock_fd, LOCK_UN);
        return rc < 0 ? util_err_prefix(err, "cleanup '%s'", r->path) : total;
}
