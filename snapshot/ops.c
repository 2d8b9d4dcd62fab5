/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * containerd's snapshot operations on a root (DESIGN §4, §5).
 *
 * Crash safety, per operation (a crash at any instant leaves the old or the
 * new state, at worst orphans that snap_cleanup removes):
 *   prepare/view  clone the template to tmp/new-* (no fsync; nothing
 *                 re-checks the clone before a container mounts it: only
 *                 snap_apply and fsck run snap_image_verify), then in one
 *                 write transaction: insert the row, mkdir snapshots/<id>,
 *                 rename the clone into it, commit. A crash before the
 *                 commit leaves tmp/new-* or snapshots/<id> without a row.
 *   commit        refused while the image is attached; a temporary mount to
 *                 count size and inodes and, for an ext4 image upper on an
 *                 overlay root, copy its tree into a compact new ext4 image
 *                 in tmp/ (fsync'ed; else the image is trimmed and kept as
 *                 it is); then one transaction turns the row committed (same
 *                 id); then the compact image is renamed over the old one
 *                 (same content: a crash before the rename leaves a
 *                 committed layer as it was, and a tmp/ file). The image is
 *                 made read-only (0400): committed images are never written.
 *   remove        one transaction: delete the row, rename snapshots/<id> to
 *                 trash/; after the commit, delete the trash entry. A crash
 *                 leaves the trash entry (or, before the commit, everything
 *                 as it was).
 * While a prepare has files in tmp/ it holds the root lock shared; cleanup
 * takes it exclusive, so it never deletes a file a live prepare owns.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include "idmap/idmap.h"
#include "loop/loop.h"
#include "snapshot/snapshot-internal.h"

static const char *label_value(const struct snap_label *l, size_t n, const char *key)
{
        for (size_t k = 0; k < n; k++)
                if (strcmp(l[k].key, key) == 0)
                        return l[k].value;
        return NULL;
}

/* The labels that reach mount options or image sizes, checked up front. */
struct params {
        uint64_t size;
        uint32_t root_uid, root_gid;
};

static int host_root(const char *label, const char *value, uint32_t *ret, struct util_err *err)
{
        _cleanup_free_ struct idmap_map *m = calloc(1, sizeof(*m));
        if (!m)
                return util_err_set(err, ENOMEM, "label '%s'", label);
        int r = idmap_parse(value, label, m, err);
        if (r < 0)
                return r;
        if (!idmap_map_to_host(m, 0, ret))
                return util_err_setx(err, EINVAL, "label '%s': '%s' does not map root (0)", label,
                                     value);
        return 0;
}

static int params_from_labels(struct snap_root *r, const struct snap_label *l, size_t n,
                              struct params *p, struct util_err *err)
{
        const char *ms = label_value(l, n, SNAP_LABEL_MAX_SIZE);
        const char *um = label_value(l, n, SNAP_LABEL_UIDMAPPING);
        const char *gm = label_value(l, n, SNAP_LABEL_GIDMAPPING);
        const char *vo = label_value(l, n, SNAP_LABEL_VOLATILE);

        *p = (struct params){.size = r->writable_size};
        if (vo && strcmp(vo, "true") != 0 && strcmp(vo, "false") != 0)
                return util_err_setx(err, EINVAL, "label '%s': '%s' is not true or false",
                                     SNAP_LABEL_VOLATILE, vo);
        if (ms && util_parse_u64(ms, &p->size) < 0)
                return util_err_setx(err, EINVAL, "label '%s': '%s' is not a number of bytes",
                                     SNAP_LABEL_MAX_SIZE, ms);
        if (um && host_root(SNAP_LABEL_UIDMAPPING, um, &p->root_uid, err) < 0)
                return -EINVAL;
        if (gm && host_root(SNAP_LABEL_GIDMAPPING, gm, &p->root_gid, err) < 0)
                return -EINVAL;
        if (um && !gm)
                p->root_gid = p->root_uid;
        if (gm && !um)
                p->root_uid = p->root_gid;
        return 0;
}

/* tmp/new-<random>[.img]; *ret malloc'ed. */
static int tmp_name(struct snap_root *r, const char *suffix, char **ret, struct util_err *err)
{
        *ret = snap_path(r, "tmp/new-%08x%08x%s", util_random_u32(), util_random_u32(), suffix);
        return *ret ? 0 : util_err_set(err, ENOMEM, "tmp name");
}

/* A spare from the writable pool for a new active snapshot: claimed into a
 * tmp/ directory of its own, whose name replaces *tmp. 1 when taken, 0 when
 * the pool has none, or -errno. */
static int take_spare(struct snap_root *r, const struct params *p, char **tmp, struct util_err *err)
{
        _cleanup_free_ char *dir = NULL;
        int rc = tmp_name(r, "", &dir, err);
        if (rc < 0)
                return rc;
        if (snap_pool_take(r, p->size, p->root_uid, p->root_gid, dir) <= 0)
                return 0;
        free(*tmp);
        *tmp = TAKE_PTR(dir);
        return 1;
}

/* Keeps the committed layers under snapshot `id` mounted (activate.c). */
static void activate_parents(struct snap_root *r, int64_t id)
{
        _cleanup_free_ int64_t *parents = NULL;
        size_t n = 0;
        struct util_err e = {0};
        if (snap_store_parents(r->store, id, &parents, &n, &e) >= 0)
                snap_activate(r, parents, n);
}

static int create(struct snap_root *r, enum snap_kind kind, const char *key, const char *parent,
                  const struct snap_label *labels, size_t n_labels, struct mount_spec **ret_mounts,
                  struct util_err *err)
{
        _cleanup_free_ char *tmp = NULL, *tmpl = NULL, *dir = NULL, *dst = NULL;
        struct snap_info info = {0};
        struct params p;
        bool in_txn = false, moved = false;
        /* The image is a spare from the writable pool (already mounted,
         * with a new upper/ and work/), not a template's clone. */
        bool taken = false;
        int rc;

        if ((rc = snap_key_check(key, err)) < 0 ||
            (rc = snap_labels_check(labels, n_labels, err)) < 0 ||
            (rc = params_from_labels(r, labels, n_labels, &p, err)) < 0)
                goto fail;

        /* Shared: cleanup (exclusive) must not take our tmp/ files. */
        if ((rc = flock(r->lock_fd, LOCK_SH)) < 0) {
                rc = util_err_set(err, errno, "lock the root");
                goto fail;
        }
        bool block = r->layout == SNAP_LAYOUT_BLOCK;
        if (kind == SNAP_KIND_ACTIVE && r->upper_dir) {
                /* tmp/new-* becomes snapshots/<id>/fs: upper/ and work/
                 * owned by the (mapped) root, as in a template image. Or
                 * a spare from the pool becomes snapshots/<id>, new upper/
                 * and work/ made in its fs/. */
                rc = tmp_name(r, "", &tmp, err);
                if (rc >= 0 && snap_pool_take_dir(r, p.root_uid, p.root_gid, tmp) > 0)
                        taken = true;
                else if (rc >= 0 && mkdir(tmp, 0700) < 0)
                        rc = util_err_set(err, errno, "create '%s'", tmp);
                else if (rc >= 0)
                        rc = snap_make_upper_work(AT_FDCWD, tmp, p.root_uid, p.root_gid, err);
                if (rc >= 0)
                        util_fault_point("prepare-after-clone"); /* the same step */
        } else if (kind == SNAP_KIND_ACTIVE || block) {
                /* Overlay: an empty image with upper/ and work/ owned by the
                 * (mapped) root. Block: a whole filesystem, the parent's
                 * image cloned (its mount is idmapped instead: root 0:0). */
                rc = tmp_name(r, ".img", &tmp, err);
                if (rc >= 0 && block && parent && *parent) {
                        struct snap_info pi = {0};
                        rc = snap_store_get(r->store, parent, &pi, err);
                        if (rc >= 0 && pi.kind != SNAP_KIND_COMMITTED)
                                rc = util_err_setx(err, EINVAL, "parent '%s' is not committed",
                                                   parent);
                        if (rc >= 0 &&
                            !(tmpl = snap_path(r, "snapshots/%lld/fs.img", (long long)pi.id)))
                                rc = util_err_set(err, ENOMEM, "prepare");
                        snap_info_done(&pi);
                } else if (rc >= 0 && !block && (rc = take_spare(r, &p, &tmp, err)) > 0) {
                        taken = true;
                } else if (rc >= 0) {
                        _cleanup_free_ char *templates = snap_path(r, "templates");
                        rc = templates ? snap_image_template(templates, r->writable_fs, p.size,
                                                             block ? 0 : p.root_uid,
                                                             block ? 0 : p.root_gid, !block, &tmpl,
                                                             err)
                                       : util_err_set(err, ENOMEM, "templates");
                }
                if (rc >= 0 && !taken)
                        rc = snap_image_clone(tmpl, tmp, NULL, err);
                if (rc >= 0)
                        util_fault_point("prepare-after-clone");
        } else {
                rc = tmp_name(r, "", &tmp, err);
                if (rc >= 0 && mkdir(tmp, 0700) < 0)
                        rc = util_err_set(err, errno, "create '%s'", tmp);
        }
        if (rc < 0)
                goto fail;

        if ((rc = snap_store_begin_relaxed(r->store, err)) < 0)
                goto fail;
        in_txn = true;
        if ((rc = snap_store_create(r->store, kind, key, parent, labels, n_labels, &info, err)) < 0)
                goto fail;
        dir = snap_path(r, "snapshots/%lld", (long long)info.id);
        bool has_image = kind == SNAP_KIND_ACTIVE || r->layout == SNAP_LAYOUT_BLOCK;
        const char *own = !has_image                                 ? "empty"
                          : kind == SNAP_KIND_ACTIVE && r->upper_dir ? "fs"
                                                                     : "fs.img";
        dst = snap_path(r, "snapshots/%lld/%s", (long long)info.id, own);
        if (!dir || !dst) {
                rc = util_err_set(err, ENOMEM, "prepare");
                goto fail;
        }
        /* A directory without a row: a crash's orphan (ids of rolled-back
         * creations come back). Move it out of the way; cleanup deletes it. */
        if (access(dir, F_OK) == 0) {
                _cleanup_free_ char *orphan = NULL;
                if (tmp_name(r, "", &orphan, err) < 0 || rename(dir, orphan) < 0) {
                        rc = util_err_set(err, errno ? errno : ENOMEM, "move orphan '%s'", dir);
                        goto fail;
                }
        }
        if (taken) {
                /* The spare's directory, with its fs.img, becomes the
                 * snapshot's: no directory made on the host. */
                if (rename(tmp, dir) < 0) {
                        rc = util_err_set(err, errno, "rename '%s' to '%s'", tmp, dir);
                        goto fail;
                }
        } else {
                if (mkdir(dir, 0700) < 0) {
                        rc = util_err_set(err, errno, "create '%s'", dir);
                        goto fail;
                }
                if (rename(tmp, dst) < 0) {
                        rc = util_err_set(err, errno, "rename '%s' to '%s'", tmp, dst);
                        goto fail;
                }
        }
        moved = true;
        util_fault_point("create-before-db-commit");
        if ((rc = snap_store_commit(r->store, err)) < 0)
                goto fail;
        in_txn = false; /* NOLINT(clang-analyzer-deadcode.DeadStores): for a later goto fail */
        util_fault_point("create-after-db-commit");
        (void)flock(r->lock_fd, LOCK_UN);
        if (r->activation && parent && *parent)
                activate_parents(r, info.id);

        if (ret_mounts) {
                rc = snap_layout_spec(r, &info, ret_mounts, err);
                if (rc < 0)
                        goto out;
        }
        rc = 0;
        goto out;
fail:
        if (in_txn)
                snap_store_rollback(r->store);
        if (moved)
                (void)rename(taken ? dir : dst, tmp);
        if (dir && !taken)
                (void)rmdir(dir);
        /* A spare taken from the writable pool goes back to it (or its
         * keeper is dropped): deleting it would leave the keeper mounting a
         * deleted file. */
        if (tmp && taken && snap_pool_recycle(r, tmp)) {
                free(tmp);
                tmp = NULL;
        }
        if (tmp && unlink(tmp) < 0)
                snap_tree_remove(tmp);
        (void)flock(r->lock_fd, LOCK_UN);
        util_err_prefix(err, "%s '%s'", kind == SNAP_KIND_ACTIVE ? "prepare" : "view", key);
out:
        snap_info_done(&info);
        return rc;
}

int snap_prepare(struct snap_root *r, const char *key, const char *parent,
                 const struct snap_label *labels, size_t n_labels, struct mount_spec **ret_mounts,
                 struct util_err *err)
{
        return create(r, SNAP_KIND_ACTIVE, key, parent, labels, n_labels, ret_mounts, err);
}

int snap_view(struct snap_root *r, const char *key, const char *parent,
              const struct snap_label *labels, size_t n_labels, struct mount_spec **ret_mounts,
              struct util_err *err)
{
        return create(r, SNAP_KIND_VIEW, key, parent, labels, n_labels, ret_mounts, err);
}

int snap_mounts(struct snap_root *r, const char *key, struct mount_spec **ret, struct util_err *err)
{
        struct snap_info info = {0};
        int rc = snap_store_get(r->store, key, &info, err);
        if (rc >= 0)
                rc = snap_layout_spec(r, &info, ret, err);
        snap_info_done(&info);
        return rc < 0 ? util_err_prefix(err, "mounts '%s'", key) : 0;
}

#ifndef STATX_ATTR_VERITY
#define STATX_ATTR_VERITY 0x00100000
#endif
/* Inode attributes that mkfs.ext4 -d does not copy and that change what a
 * file is (statx's names for FS_IMMUTABLE_FL and friends). */
#define LAYER_ATTRS_KEPT_ONLY_AS_IS                                                  \
        ((uint64_t)STATX_ATTR_IMMUTABLE | STATX_ATTR_APPEND | STATX_ATTR_ENCRYPTED | \
         STATX_ATTR_VERITY)

/*
 * Mounts the image at a private tmp/ point and counts what is used. With
 * `erofs_out`, also writes the erofs layer image of its tree there (without
 * work/ and lost+found); with `compact_out`, tries to write a compact ext4
 * image of its tree there and says in *compacted whether it did. The image
 * is trimmed when it stays the layer: committed images stay small.
 */
static int measure(struct snap_root *r, const char *img, int64_t id, const char *erofs_out,
                   const char *compact_out, bool *compacted, uint64_t *size, uint64_t *inodes,
                   struct util_err *err)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        _cleanup_free_ char *point = NULL;
        char tagid[32];
        const char *opts[] = {"rw", "loop", snap_fs_option(r->writable_fs, true), NULL};
        int rc;

        if ((rc = tmp_name(r, "", &point, err)) < 0)
                return rc;
        if (mkdir(point, 0700) < 0)
                return util_err_set(err, errno, "create '%s'", point);
        if (mount_spec_new(&spec) < 0 ||
            (rc = mount_spec_add(spec, r->writable_fs, img, NULL, opts, err)) < 0) {
                (void)rmdir(point);
                return rc < 0 ? rc : util_err_set(err, ENOMEM, "commit");
        }
        snprintf(tagid, sizeof(tagid), "commit-%lld", (long long)id);
        rc = snap_mount_private(r, spec, point, tagid, err);
        if (rc < 0) {
                (void)rmdir(point);
                return rc;
        }
        util_fault_point("commit-while-mounted");
        _cleanup_close_ int fd = open(point, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct statvfs sv;
        if (fd >= 0 && fstatvfs(fd, &sv) == 0) {
                *size = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
                *inodes = (uint64_t)(sv.f_files - sv.f_ffree);
        } else {
                rc = util_err_set(err, errno, "statvfs '%s'", point);
        }
        if (rc >= 0 && compact_out) {
                /* The tree as it is (lost+found included: mkfs.ext4 -d
                 * keeps its own), into an image sized for it. mkfs.ext4 -d
                 * copies no inode flags: a tree with a file whose flags
                 * change what it is (immutable, append-only; encrypted and
                 * verity need features the templates lack) stays as it is.
                 * Failing that too (ENOSPC in a layer of many tiny files,
                 * say), the layer is the image itself, as before. */
                struct util_err cerr = {0};
                char odd[PATH_MAX];
                int f = snap_tree_find_attr(point, LAYER_ATTRS_KEPT_ONLY_AS_IS, odd, sizeof(odd));
                if (f > 0)
                        util_debug(UTIL_DBG_SNAP,
                                   "commit: no compact layer image: '%s' in '%s' has inode "
                                   "flags a copy would lose",
                                   odd, img);
                else if (f < 0)
                        util_debug(UTIL_DBG_SNAP, "commit: no compact layer image: walk '%s': %s",
                                   img, strerror(-f));
                *compacted = f == 0 && snap_image_from_dir("ext4", point, NULL, *size, *inodes,
                                                           compact_out, &cerr) >= 0;
                if (f == 0 && !*compacted)
                        util_debug(UTIL_DBG_SNAP, "commit: no compact layer image: %s", cerr.msg);
        }
        struct fstrim_range trim = {.start = 0, .len = UINT64_MAX, .minlen = 0};
        /* Give the blocks of deleted files back to the host file when the
         * image stays the layer. Not every setup can (EOPNOTSUPP): fine. */
        if (rc >= 0 && !*compacted && fd >= 0 && ioctl(fd, FITRIM, &trim) < 0 &&
            errno != EOPNOTSUPP)
                util_debug(UTIL_DBG_SNAP, "FITRIM '%s': %s", img, strerror(errno));
        util_closep(&fd);
        fd = -EBADF;
        if (rc >= 0 && erofs_out) {
                static const char *const leave_out[] = {"work", "lost+found", NULL};
                rc = snap_image_from_dir("erofs", point, leave_out, 0, 0, erofs_out, err);
        }
        int ur = mount_unmount_all(point, rc < 0 ? NULL : err);
        (void)rmdir(point);
        return rc < 0 ? rc : ur < 0 ? ur : 0;
}

void snap_mountinfo_unescape(char *s)
{
        char *w = s;
        for (const char *p = s; *p; p++) {
                if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
                    p[3] >= '0' && p[3] <= '7') {
                        *w++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
                        p += 3;
                } else {
                        *w++ = *p;
                }
        }
        *w = '\0';
}

/*
 * Whether a plain-directory upper is in use in this mount namespace: an
 * overlay names it as upperdir, or a mount's root is the directory itself
 * (the bind of a snapshot without parents). Returns 1 with the mountpoint
 * in `where`, 0, or -errno. Mounts of other namespaces (a container's) are
 * not visible here: docs/snapshot.md says so.
 */
static int dir_upper_in_use(const char *upper, char *where, size_t size, struct util_err *err)
{
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        struct stat up;
        FILE *f;
        int found = 0;

        if (stat(upper, &up) < 0)
                return util_err_set(err, errno, "stat '%s'", upper);
        f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return util_err_set(err, errno, "open /proc/self/mountinfo");
        while (!found && getline(&line, &cap, f) > 0) {
                unsigned maj, min;
                char target[4096];
                if (sscanf(line, "%*s %*s %u:%u %*s %4095s", &maj, &min, target) != 3)
                        continue;
                snap_mountinfo_unescape(target);
                const char *dash = strstr(line, " - ");
                const char *key = dash ? strstr(dash, "upperdir=") : NULL;
                size_t len = strlen(upper);
                bool named = key && strncmp(key + 9, upper, len) == 0 &&
                             (key[9 + len] == ',' || key[9 + len] == ' ' || key[9 + len] == '\n');
                struct stat st;
                bool bound = !named && makedev(maj, min) == up.st_dev && stat(target, &st) == 0 &&
                             st.st_dev == up.st_dev && st.st_ino == up.st_ino;
                if (named || bound) {
                        snprintf(where, size, "%s", target);
                        found = 1;
                }
        }
        (void)fclose(f); /* read only */
        return found;
}

int snap_dir_upper_check_free(const char *fsdir, const char *key, struct util_err *err)
{
        _cleanup_free_ char *upper = NULL;
        char where[4096];

        if (asprintf(&upper, "%s/upper", fsdir) < 0)
                return util_err_set(err, ENOMEM, "'%s'", key);
        int rc = dir_upper_in_use(upper, where, sizeof(where), err);
        if (rc > 0)
                return util_err_setx(err, EBUSY, "'%s' is still mounted on %s: unmount it first",
                                     key, where);
        return rc;
}

int snap_image_check_free(struct snap_root *r, const char *img, const char *key,
                          struct util_err *err)
{
        struct loop_status *devs = NULL;
        size_t n_devs = 0;
        struct loop_filter f = {.backing_path = img};

        /* The writable pool's mount is ours to drop; any other mount keeps
         * the device attached and the caller refused. */
        snap_pool_release(r, img);
        int rc = loop_list(&f, &devs, &n_devs, err);
        if (rc >= 0 && n_devs > 0)
                rc = util_err_setx(err, EBUSY,
                                   "'%s' is still attached to %s (mounted?): unmount it first", key,
                                   devs[0].path);
        free(devs);
        return rc < 0 ? rc : 0;
}

int snap_mount_private(struct snap_root *r, const struct mount_spec *spec, const char *point,
                       const char *tagid, struct util_err *err)
{
        r->pool_quiet = true;
        int rc = mount_engine_apply(r->engine, spec, point, tagid, NULL, err);
        r->pool_quiet = false;
        return rc;
}

/*
 * The committed layer image of a plain-directory upper: work/ is emptied
 * (overlay's scratch space), the tree is measured, and `type`'s image is
 * made from it at `out`.
 */
static int dir_layer_image(struct snap_root *r, const char *fsdir, const char *out, uint64_t *size,
                           uint64_t *inodes, struct util_err *err)
{
        _cleanup_free_ char *work = NULL, *upper = NULL;
        uint64_t all_bytes = 0, all_inodes = 0;
        struct stat st;
        int rc;

        if (asprintf(&work, "%s/work", fsdir) < 0 || asprintf(&upper, "%s/upper", fsdir) < 0)
                return util_err_set(err, ENOMEM, "commit");
        if (stat(upper, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", upper);
        snap_tree_remove(work);
        if (mkdir(work, 0755) < 0 || chown(work, st.st_uid, st.st_gid) < 0)
                return util_err_set(err, errno, "create '%s'", work);
        if ((rc = snap_tree_usage(upper, size, inodes, err)) < 0 ||
            (rc = snap_tree_usage(fsdir, &all_bytes, &all_inodes, err)) < 0)
                return rc;
        bool erofs = strcmp(r->committed_format, "erofs") == 0;
        static const char *const leave_out[] = {"work", NULL};
        return snap_image_from_dir(erofs ? "erofs" : "ext4", fsdir, erofs ? leave_out : NULL,
                                   all_bytes, all_inodes, out, err);
}

int snap_commit(struct snap_root *r, const char *name, const char *key,
                const struct snap_label *labels, size_t n_labels, struct util_err *err)
{
        struct snap_info info = {0};
        _cleanup_free_ char *img = NULL, *fsdir = NULL, *layer = NULL, *newlayer = NULL;
        uint64_t size = 0, inodes = 0;
        bool erofs = strcmp(r->committed_format, "erofs") == 0;
        /* Whether the layer is a new image (erofs, or made from a directory)
         * rather than the active image itself. */
        bool convert = erofs || r->upper_dir;
        bool placed = false;
        /* Whether the layer is to be a compact copy of the image's tree
         * (docs/snapshot.md, "Committed layers"), and whether it is. */
        bool compact = !convert && r->layout == SNAP_LAYOUT_OVERLAY &&
                       strcmp(r->writable_fs, "ext4") == 0 &&
                       util_env_long("LOOPSNAP_COMPACT_LAYERS", 1) != 0;
        bool compacted = false;
        bool locked = false;
        int rc;

        if ((rc = snap_key_check(name, err)) < 0 ||
            (rc = snap_labels_check(labels, n_labels, err)) < 0 ||
            (rc = snap_store_get(r->store, key, &info, err)) < 0)
                goto out;
        if (info.kind != SNAP_KIND_ACTIVE) {
                rc = util_err_setx(err, EBUSY, "'%s' is %s; only active snapshots can be committed",
                                   key, info.kind == SNAP_KIND_VIEW ? "a view" : "committed");
                goto out;
        }
        img = snap_path(r, "snapshots/%lld/fs.img", (long long)info.id);
        fsdir = snap_path(r, "snapshots/%lld/fs", (long long)info.id);
        layer = snap_layer_image(r, info.id);
        if (!img || !fsdir || !layer ||
            ((convert || compact) && tmp_name(r, erofs ? ".erofs" : ".img", &newlayer, err) < 0)) {
                rc = util_err_set(err, ENOMEM, "commit");
                goto out;
        }
        rc = r->upper_dir ? snap_dir_upper_check_free(fsdir, key, err)
                          : snap_image_check_free(r, img, key, err);
        if (rc < 0)
                goto out;
        /* Shared lock: the temporary mount and the new layer live in tmp/,
         * which cleanup (exclusive) would otherwise take for leftovers. A
         * compact layer stays there until after the transaction, so the
         * lock is held until then (on every path). */
        if (flock(r->lock_fd, LOCK_SH) < 0) {
                rc = util_err_set(err, errno, "lock the root");
                goto out;
        }
        locked = true;
        if (r->upper_dir)
                rc = dir_layer_image(r, fsdir, newlayer, &size, &inodes, err);
        else
                rc = measure(r, img, info.id, erofs ? newlayer : NULL, compact ? newlayer : NULL,
                             &compacted, &size, &inodes, err);
        if (rc >= 0 && erofs)
                rc = snap_image_allocated(newlayer, &size, err);
        if (rc >= 0 && (convert || compacted))
                util_fault_point("commit-after-layer-image");
        /* The new layer goes into place while the row is still active: a
         * crash from here leaves an active snapshot with an extra file,
         * which the next commit replaces and fsck removes. */
        /* cppcheck-suppress duplicateCondition ; the fault point above may exit */
        if (rc >= 0 && convert) {
                if (rename(newlayer, layer) < 0)
                        rc = util_err_set(err, errno, "rename '%s' to '%s'", newlayer, layer);
                else
                        placed = true;
        }
        if (rc < 0 && (convert || compacted))
                (void)unlink(newlayer);
        if (rc < 0)
                goto out;
        util_fault_point("commit-before-db-commit");
        rc = snap_store_commit_active(r->store, name, key, labels, n_labels, size, inodes, NULL,
                                      err);
        if (rc < 0) {
                if (placed)
                        (void)unlink(layer);
                if (compacted)
                        (void)unlink(newlayer);
                goto out;
        }
        if (compacted) {
                /* Committed: the image is now a layer, and the compact copy
                 * of its tree takes its place. A crash before the rename
                 * leaves the layer as it was (same files) and a tmp/ file
                 * for cleanup; a failed rename, the same without the file. */
                util_fault_point("commit-before-compact-rename");
                if (rename(newlayer, layer) < 0) {
                        util_debug(UTIL_DBG_SNAP, "commit: rename '%s' to '%s': %s", newlayer,
                                   layer, strerror(errno));
                        (void)unlink(newlayer);
                }
        }
        (void)flock(r->lock_fd, LOCK_UN);
        locked = false;
        util_fault_point("commit-after-db-commit");
        (void)chmod(layer, 0400);
        /* The writable part is not needed any more (a crash before this
         * leaves it for fsck / cleanup). */
        if (convert && r->upper_dir)
                snap_tree_remove(fsdir);
        else if (convert)
                (void)unlink(img);
out:
        if (locked)
                (void)flock(r->lock_fd, LOCK_UN);
        snap_info_done(&info);
        return rc < 0 ? util_err_prefix(err, "commit '%s' as '%s'", key, name) : 0;
}

void snap_files_remove(const char *dir)
{
        char p[4200];
        snprintf(p, sizeof(p), "%s/fs.img", dir);
        (void)unlink(p);
        snprintf(p, sizeof(p), "%s/layer.erofs", dir);
        (void)unlink(p);
        snprintf(p, sizeof(p), "%s/fs", dir);
        snap_tree_remove(p);
        snprintf(p, sizeof(p), "%s/empty", dir);
        (void)rmdir(p);
        (void)rmdir(dir);
}

int snap_remove(struct snap_root *r, const char *key, struct util_err *err)
{
        struct snap_info info = {0};
        _cleanup_free_ char *dir = NULL, *trash = NULL;
        bool moved = false;
        int rc;

        if ((rc = snap_store_begin_relaxed(r->store, err)) < 0)
                return util_err_prefix(err, "remove '%s'", key);
        rc = snap_store_remove(r->store, key, &info, err);
        if (rc >= 0) {
                dir = snap_path(r, "snapshots/%lld", (long long)info.id);
                trash = snap_path(r, "trash/rm-%lld-%08x", (long long)info.id, util_random_u32());
                if (!dir || !trash)
                        rc = util_err_set(err, ENOMEM, "remove");
        }
        if (rc >= 0 && rename(dir, trash) == 0)
                moved = true;
        else if (rc >= 0 && errno != ENOENT)
                rc = util_err_set(err, errno, "move '%s' to the trash", dir);
        if (rc >= 0) {
                util_fault_point("remove-before-db-commit");
                rc = snap_store_commit(r->store, err);
        }
        if (rc < 0) {
                snap_store_rollback(r->store);
                if (moved)
                        (void)rename(trash, dir);
                snap_info_done(&info);
                return util_err_prefix(err, "remove '%s'", key);
        }
        /* The row is gone: deleting the files is best effort from here on
         * (cleanup finishes what a crash interrupts). */
        util_fault_point("remove-after-db-commit");
        if (info.kind == SNAP_KIND_COMMITTED) {
                struct util_err e = {0};
                if (snap_deactivate(r, info.id, false, &e) < 0)
                        util_debug(UTIL_DBG_SNAP, "remove '%s': %s", key, e.msg);
        }
        /* Back to the writable pool, emptied (the whole directory goes), or
         * deleted below. */
        if (moved && info.kind == SNAP_KIND_ACTIVE && r->layout == SNAP_LAYOUT_OVERLAY &&
            snap_pool_recycle(r, trash))
                moved = false;
        if (moved)
                snap_files_remove(trash);
        snap_info_done(&info);
        return 0;
}

int snap_release_writable(struct snap_root *r, const char *key, struct util_err *err)
{
        struct snap_info info = {0};
        int rc = snap_store_get(r->store, key, &info, err);

        if (rc >= 0 && info.kind == SNAP_KIND_ACTIVE && r->layout == SNAP_LAYOUT_OVERLAY &&
            !r->upper_dir) {
                _cleanup_free_ char *img =
                        snap_path(r, "snapshots/%lld/fs.img", (long long)info.id);
                if (img)
                        snap_pool_release(r, img);
                else
                        rc = util_err_set(err, ENOMEM, "release '%s'", key);
        }
        snap_info_done(&info);
        return rc;
}

int snap_stat(struct snap_root *r, const char *key, struct snap_info *ret, struct util_err *err)
{
        return snap_store_get(r->store, key, ret, err);
}

int snap_update(struct snap_root *r, const char *name, const struct snap_label *labels,
                size_t n_labels, const char *const *fieldpaths, size_t n_fieldpaths,
                struct snap_info *ret, struct util_err *err)
{
        return snap_store_update(r->store, name, labels, n_labels, fieldpaths, n_fieldpaths, ret,
                                 err);
}

int snap_usage(struct snap_root *r, const char *key, struct snap_usage *ret, struct util_err *err)
{
        struct snap_info info = {0};
        int rc = snap_store_get(r->store, key, &info, err);
        if (rc < 0)
                return util_err_prefix(err, "usage '%s'", key);
        struct snap_usage u = {0};
        if (info.kind == SNAP_KIND_COMMITTED) {
                u.size = info.size;
                u.inodes = info.inodes;
        } else if (info.kind == SNAP_KIND_ACTIVE && r->upper_dir) {
                _cleanup_free_ char *dir = snap_path(r, "snapshots/%lld/fs", (long long)info.id);
                rc = dir ? snap_tree_usage(dir, &u.size, &u.inodes, err)
                         : util_err_set(err, ENOMEM, "usage");
        } else if (info.kind == SNAP_KIND_ACTIVE || r->layout == SNAP_LAYOUT_BLOCK) {
                _cleanup_free_ char *img =
                        snap_path(r, "snapshots/%lld/fs.img", (long long)info.id);
                rc = img ? snap_image_allocated(img, &u.size, err)
                         : util_err_set(err, ENOMEM, "usage");
        }
        snap_info_done(&info);
        if (rc < 0)
                return util_err_prefix(err, "usage '%s'", key);
        *ret = u;
        return 0;
}

int snap_walk(struct snap_root *r, const char *const *filters, size_t n_filters, snap_walk_fn fn,
              void *data, struct util_err *err)
{
        _cleanup_(snap_filter_freep) struct snap_filter *f = NULL;
        int rc = snap_filter_parse(filters, n_filters, &f, err);
        if (rc < 0)
                return rc;
        return snap_store_walk(r->store, f, fn, data, err);
}
