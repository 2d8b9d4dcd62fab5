/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fsck: reconcile a root's metadata with its files, loop devices and mounts
 * (DESIGN §5; docs/fsck.md has the list of checks and repairs).
 *
 * Order: under the root lock held exclusively (no prepare has files in tmp/),
 * everything is looked at first — this root's loop devices, mounts under
 * tmp/, the rows, the directories — and only then repaired: leftover mounts
 * are unmounted, leaked loop devices detached, rows whose files are missing
 * restored from the trash (a remove that died before its commit) or deleted
 * (when they have no children), and finally snap_cleanup sweeps the files.
 * The counts are the same with and without repair.
 */
#include <fcntl.h>
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "loop/loop.h"
#include "snapshot/fsck.h"
#include "snapshot/snapshot-internal.h"

UTIL_DEFINE_FREE_FUNC(FILE, fclose)

struct leaked_loop {
        char path[32];
};

struct ctx {
        struct snap_root *r;
        bool repair;
        void (*fn)(void *data, const char *line);
        void *data;
        struct snap_fsck_report rep;
        char real[PATH_MAX]; /* the root, resolved (what sysfs and mountinfo show) */
        struct snap_info *rows;
        size_t n_rows;
        char (*mounts)[PATH_MAX]; /* leftover mount targets, mountinfo order */
        size_t n_mounts;
        struct leaked_loop *loops;
        size_t n_loops;
};

unsigned snap_fsck_problems(const struct snap_fsck_report *rep)
{
        return rep->orphan_dirs + rep->tmp_leftovers + rep->trash_leftovers +
               rep->template_leftovers + rep->rows_without_files + rep->bad_images +
               rep->stale_files + rep->leaked_loops + rep->leaked_mounts;
}

static void say(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct ctx *c, const char *fmt, ...)
{
        char line[PATH_MAX + 1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        util_debug(UTIL_DBG_SNAP, "fsck '%s': %s", c->r->path, line);
        if (c->fn)
                c->fn(c->data, line);
}

static const struct snap_info *row_by_id(const struct ctx *c, int64_t id)
{
        for (size_t k = 0; k < c->n_rows; k++)
                if (c->rows[k].id == id)
                        return &c->rows[k];
        return NULL;
}

static bool has_children(const struct ctx *c, int64_t id)
{
        for (size_t k = 0; k < c->n_rows; k++)
                if (c->rows[k].parent_id == id)
                        return true;
        return false;
}

/* `path` relative to the root, or NULL when it is not below it. */
static const char *below_root(const struct ctx *c, const char *path)
{
        size_t len = strlen(c->real);
        if (strncmp(path, c->real, len) != 0 || path[len] != '/')
                return NULL;
        return path + len + 1;
}

static bool fsck_row_active(void *data, int64_t id)
{
        const struct snap_info *i = row_by_id(data, id);
        return i && i->kind == SNAP_KIND_ACTIVE;
}

/* Mounts whose target is under <root>/tmp/ (commit's temporary mounts),
 * activations (m/<id>) of layers that are gone or not committed, and
 * writable pool keepers (w/<ino>) of images that are neither an active
 * snapshot's nor a spare. */
static int find_mounts(struct ctx *c, struct util_err *err)
{
        _cleanup_(fclosep) FILE *f = fopen("/proc/self/mountinfo", "re");
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;

        if (!f)
                return util_err_set(err, errno, "open /proc/self/mountinfo");
        while (getline(&line, &cap, f) > 0) {
                char target[PATH_MAX];
                if (sscanf(line, "%*s %*s %*s %*s %4095s", target) != 1)
                        continue;
                snap_mountinfo_unescape(target);
                const char *rel = below_root(c, target);
                if (!rel)
                        continue;
                const char *why = NULL;
                uint64_t id;
                if (strncmp(rel, "tmp/", 4) == 0) {
                        why = "a commit's temporary mount";
                } else if (strncmp(rel, "m/", 2) == 0 && util_parse_u64(rel + 2, &id) == 0) {
                        const struct snap_info *i = row_by_id(c, (int64_t)id);
                        if (!i)
                                why = "an activation of a layer that has no row";
                        else if (i->kind != SNAP_KIND_COMMITTED)
                                why = "an activation of a snapshot that is not committed";
                } else if (strncmp(rel, "w/", 2) == 0 && !strchr(rel + 2, '/')) {
                        why = snap_pool_keeper_unneeded(c->r, rel + 2, fsck_row_active, c);
                }
                if (!why)
                        continue;
                bool seen = false;
                for (size_t k = 0; k < c->n_mounts; k++)
                        seen = seen || strcmp(c->mounts[k], target) == 0;
                if (seen)
                        continue;
                void *p = realloc(c->mounts, (c->n_mounts + 1) * sizeof(*c->mounts));
                if (!p)
                        return util_err_set(err, ENOMEM, "fsck");
                c->mounts = p;
                snprintf(c->mounts[c->n_mounts++], PATH_MAX, "%s", target);
                c->rep.leaked_mounts++;
                say(c, "leftover mount on %s (%s)", rel, why);
        }
        return 0;
}

/* Whether a filesystem (or anything else) holds block device `dev`: a
 * mounted filesystem claims its device exclusively, also when the mount is
 * detached or only an overlay's private clone, which mountinfo never shows.
 * The probe is an O_EXCL open, which does not claim the device beyond the
 * open itself. */
static bool device_in_use(const char *dev)
{
        int fd = open(dev, O_RDONLY | O_EXCL | O_CLOEXEC | O_NONBLOCK);
        if (fd >= 0) {
                close(fd);
                return false;
        }
        return errno == EBUSY;
}

/* Why a device of this root is leaked, or NULL when it is not. commit's
 * device and images in tmp/ are only ever held by a crashed operation's
 * mount, itself a leftover that repair unmounts first. A removed image (in
 * the trash, or of a snapshot without a row) counts only while nothing
 * holds its device: a container that still has it mounted keeps it until
 * its mounts go, and repair could not detach it anyway. */
static const char *loop_leak_reason(const struct ctx *c, const struct loop_status *s,
                                    const char *id, const char *rel)
{
        const char *why;
        long long sid;
        int end = 0;

        if (strncmp(id, "commit-", 7) == 0)
                return "commit's temporary device";
        if (strncmp(rel, "tmp/", 4) == 0)
                return "its image is in tmp/";
        if (strncmp(rel, "trash/", 6) == 0) {
                why = "its image is in the trash";
        } else if (sscanf(rel, "snapshots/%lld/%n", &sid, &end) == 1 && end > 0 &&
                   (strcmp(rel + end, "fs.img") == 0 || strcmp(rel + end, "layer.erofs") == 0)) {
                if (row_by_id(c, sid))
                        return NULL;
                why = "its snapshot has no row";
        } else if (strncmp(rel, "pool/", 5) == 0) {
                why = "a writable pool spare without its mount";
        } else if (strncmp(rel, "templates/", 10) == 0) {
                struct mount_info mi;
                return mount_find_by_source(s->path, &mi, NULL) == 0 ? NULL
                                                                     : "its image is a template";
        } else {
                return NULL;
        }
        return device_in_use(s->path) ? NULL : why;
}

static int find_loops(struct ctx *c, struct util_err *err)
{
        _cleanup_free_ struct loop_status *list = NULL;
        char prefix[LOOP_TAG_MAX + 1];
        size_t n = 0;
        int rc;

        snprintf(prefix, sizeof(prefix), LOOP_TAG_PREFIX "%s:", c->r->owner);
        struct loop_filter f = {.tag_prefix = prefix};
        if ((rc = loop_list(&f, &list, &n, err)) < 0)
                return rc;
        c->loops = calloc(n ? n : 1, sizeof(*c->loops));
        if (!c->loops)
                return util_err_set(err, ENOMEM, "fsck");
        for (size_t k = 0; k < n; k++) {
                struct loop_status *s = &list[k];
                char owner[LOOP_TAG_MAX + 1], id[LOOP_TAG_MAX + 1];
                if (loop_tag_parse(s->tag, owner, sizeof(owner), id, sizeof(id)) < 0)
                        continue;
                char *deleted = strstr(s->backing_file, " (deleted)");
                if (deleted && deleted[strlen(" (deleted)")] == '\0')
                        *deleted = '\0';
                const char *rel = below_root(c, s->backing_file);
                if (!rel)
                        continue;
                const char *why = loop_leak_reason(c, s, id, rel);
                if (!why)
                        continue;
                c->rep.leaked_loops++;
                snprintf(c->loops[c->n_loops++].path, sizeof(c->loops[0].path), "%s", s->path);
                say(c, "leaked loop device %s (tag '%s') on %s%s: %s", s->path, s->tag, rel,
                    deleted ? " (deleted)" : "", why);
        }
        return 0;
}

/* The entries of <root>/<sub> (names starting with `prefix`, NULL: all). */
static int scan_dir(struct ctx *c, const char *sub, const char *prefix, struct util_err *err)
{
        _cleanup_free_ char *dir = snap_path(c->r, "%s", sub);
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        if (!dir)
                return util_err_set(err, ENOMEM, "fsck");
        d = opendir(dir);
        if (!d)
                return util_err_set(err, errno, "open '%s'", dir);
        while ((errno = 0, de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (prefix && strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                        continue;
                if (strcmp(sub, "snapshots") == 0) {
                        uint64_t id;
                        if (util_parse_u64(de->d_name, &id) < 0 || row_by_id(c, (int64_t)id))
                                continue;
                        c->rep.orphan_dirs++;
                        say(c, "orphan directory snapshots/%s (no row)", de->d_name);
                } else if (strcmp(sub, "tmp") == 0) {
                        c->rep.tmp_leftovers++;
                        say(c, "leftover tmp/%s (work of an operation that did not finish)",
                            de->d_name);
                } else if (strcmp(sub, "trash") == 0) {
                        c->rep.trash_leftovers++;
                        say(c, "leftover trash/%s (a removal that did not finish)", de->d_name);
                } else {
                        c->rep.template_leftovers++;
                        say(c, "leftover templates/%s (a template mkfs that did not finish)",
                            de->d_name);
                }
        }
        if (errno != 0)
                return util_err_set(err, errno, "read '%s'", dir);
        return 0;
}

/* A remove that died before its commit: the row is still there and its
 * files are in trash/rm-<id>-*. Moves them back (the old state). 1 when
 * restored, 0 when there is nothing to restore. */
static int restore_from_trash(struct ctx *c, const struct snap_info *i, const char *file)
{
        _cleanup_free_ char *trash = snap_path(c->r, "trash");
        _cleanup_free_ char *dir = snap_path(c->r, "snapshots/%lld", (long long)i->id);
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        char prefix[64];

        if (!trash || !dir || access(dir, F_OK) == 0)
                return 0;
        d = opendir(trash);
        if (!d)
                return 0;
        snprintf(prefix, sizeof(prefix), "rm-%lld-", (long long)i->id);
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                        continue;
                char from[PATH_MAX], probe[PATH_MAX + 16];
                struct stat st;
                snprintf(from, sizeof(from), "%s/%s", trash, de->d_name);
                snprintf(probe, sizeof(probe), "%s/%s", from, file);
                if (lstat(probe, &st) < 0)
                        continue;
                if (rename(from, dir) < 0) {
                        say(c, "row '%s' (id %lld): could not restore trash/%s: %s", i->name,
                            (long long)i->id, de->d_name, strerror(errno));
                        return 0;
                }
                say(c, "row '%s' (id %lld): restored its files from trash/%s", i->name,
                    (long long)i->id, de->d_name);
                return 1;
        }
        return 0;
}

static void remove_row(struct ctx *c, const struct snap_info *i)
{
        struct util_err e = {0};
        int rc = snap_store_begin(c->r->store, true, &e);
        if (rc >= 0) {
                rc = snap_store_remove(c->r->store, i->name, NULL, &e);
                if (rc >= 0)
                        rc = snap_store_commit(c->r->store, &e);
                else
                        snap_store_rollback(c->r->store);
        }
        if (rc >= 0) {
                c->rep.fixed++;
                say(c, "row '%s' (id %lld): removed (its files are gone)", i->name,
                    (long long)i->id);
        } else if (rc != -ENOENT) {
                say(c, "row '%s' (id %lld): could not remove it: %s", i->name, (long long)i->id,
                    e.msg);
        }
}

/* The file (or directory) a row of this kind owns, and its image type
 * (NULL: a directory). */
static const char *row_file(const struct ctx *c, const struct snap_info *i, const char **type)
{
        struct snap_root *r = c->r;
        *type = NULL;
        if (i->kind == SNAP_KIND_VIEW && r->layout != SNAP_LAYOUT_BLOCK)
                return "empty";
        if (i->kind == SNAP_KIND_COMMITTED) {
                *type = snap_committed_type(r);
                return strcmp(r->committed_format, "erofs") == 0 ? "layer.erofs" : "fs.img";
        }
        if (i->kind == SNAP_KIND_ACTIVE && r->upper_dir)
                return "fs";
        *type = r->writable_fs;
        return "fs.img";
}

/* The writable part or new layer a converting commit left (cleanup removes
 * them; see sweep_stale_files). */
static void check_stale(struct ctx *c, const struct snap_info *i)
{
        struct snap_root *r = c->r;
        bool erofs = strcmp(r->committed_format, "erofs") == 0;
        const char *stale = NULL;
        if (i->kind == SNAP_KIND_COMMITTED && (erofs || r->upper_dir))
                stale = r->upper_dir ? "fs" : "fs.img";
        else if (i->kind == SNAP_KIND_ACTIVE && erofs)
                stale = "layer.erofs";
        else if (i->kind == SNAP_KIND_ACTIVE && r->upper_dir)
                stale = "fs.img";
        if (!stale)
                return;
        _cleanup_free_ char *p = snap_path(r, "snapshots/%lld/%s", (long long)i->id, stale);
        struct stat st;
        if (!p || lstat(p, &st) < 0)
                return;
        c->rep.stale_files++;
        say(c, "row '%s' (id %lld): stale snapshots/%lld/%s (a commit that did not finish)",
            i->name, (long long)i->id, (long long)i->id, stale);
}

static int check_rows(struct ctx *c, struct util_err *err)
{
        for (size_t k = 0; k < c->n_rows; k++) {
                const struct snap_info *i = &c->rows[k];
                const char *type;
                const char *file = row_file(c, i, &type);
                check_stale(c, i);
                bool view = type == NULL;
                _cleanup_free_ char *path =
                        snap_path(c->r, "snapshots/%lld/%s", (long long)i->id, file);
                struct stat st;

                if (!path)
                        return util_err_set(err, ENOMEM, "fsck");
                if (lstat(path, &st) == 0 && (view ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode))) {
                        struct util_err e = {0};
                        if (!view && snap_image_verify(path, type, &e) < 0) {
                                c->rep.bad_images++;
                                say(c, "row '%s' (id %lld): snapshots/%lld/%s is bad: %s", i->name,
                                    (long long)i->id, (long long)i->id, file, e.msg);
                        }
                        continue;
                }
                /* Removed meanwhile (remove does not take the root lock)? */
                struct snap_info now = {0};
                struct util_err e = {0};
                int rc = snap_store_get_id(c->r->store, i->id, &now, &e);
                snap_info_done(&now);
                if (rc == -ENOENT)
                        continue;
                c->rep.rows_without_files++;
                say(c, "row '%s' (id %lld): snapshots/%lld/%s is missing", i->name,
                    (long long)i->id, (long long)i->id, file);
                if (!c->repair)
                        continue;
                if (restore_from_trash(c, i, file) > 0)
                        c->rep.fixed++;
                else if (has_children(c, i->id))
                        say(c, "row '%s' (id %lld): has children, left as it is", i->name,
                            (long long)i->id);
                else
                        remove_row(c, i);
        }
        return 0;
}

static void repair_mounts_and_loops(struct ctx *c)
{
        /* Deepest (latest) first. */
        for (size_t k = c->n_mounts; k > 0; k--) {
                struct util_err e = {0};
                const char *t = c->mounts[k - 1];
                int rc = mount_unmount_all(t, &e);
                if (rc >= 0)
                        c->rep.fixed++;
                else
                        say(c, "could not unmount %s: %s", t, e.msg);
        }
        for (size_t k = 0; k < c->n_loops; k++) {
                struct util_err e = {0};
                int rc = loop_detach_tagged(c->loops[k].path, c->r->owner, &e);
                if (rc == LOOP_DETACHED)
                        c->rep.fixed++;
                else if (rc == LOOP_DEFERRED)
                        say(c, "%s is still in use: it goes when its last user does",
                            c->loops[k].path);
                else
                        say(c, "could not detach %s: %s", c->loops[k].path, e.msg);
        }
}

int snap_fsck(struct snap_root *r, bool repair, void (*fn)(void *data, const char *line),
              void *data, struct snap_fsck_report *ret, struct util_err *err)
{
        struct ctx c = {.r = r, .repair = repair, .fn = fn, .data = data};
        int rc;

        if (!realpath(r->path, c.real))
                return util_err_set(err, errno, "fsck: resolve '%s'", r->path);
        if (flock(r->lock_fd, LOCK_EX) < 0)
                return util_err_set(err, errno, "fsck '%s': lock the root", r->path);

        rc = snap_store_list(r->store, &c.rows, &c.n_rows, err);
        if (rc >= 0)
                rc = find_mounts(&c, err);
        if (rc >= 0)
                rc = find_loops(&c, err);
        if (rc >= 0)
                rc = scan_dir(&c, "snapshots", NULL, err);
        if (rc >= 0)
                rc = scan_dir(&c, "tmp", "new-", err);
        if (rc >= 0)
                rc = scan_dir(&c, "trash", NULL, err);
        if (rc >= 0)
                rc = scan_dir(&c, "templates", "new-", err);
        if (rc >= 0 && repair)
                repair_mounts_and_loops(&c);
        if (rc >= 0)
                rc = check_rows(&c, err);
        if (rc >= 0 && repair) {
                /* snap_cleanup takes the lock we hold (a no-op on the same
                 * open file) and releases it when done. */
                struct util_err e = {0};
                int n = snap_cleanup(r, &e);
                if (n >= 0)
                        c.rep.fixed += (unsigned)n;
                else
                        say(&c, "cleanup failed: %s", e.msg);
        }
        (void)flock(r->lock_fd, LOCK_UN);

        snap_info_list_free(c.rows, c.n_rows);
        free(c.mounts);
        free(c.loops);
        if (rc < 0)
                return util_err_prefix(err, "fsck '%s'", r->path);
        if (ret)
                *ret = c.rep;
        return 0;
}
