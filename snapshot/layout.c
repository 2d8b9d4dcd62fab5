/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The overlay layout's mount specs (shapes in snapshot.h). A spec is built
 * from metadata alone — the snapshot's id and kind, its parent chain, its
 * mapping labels — and the root's fixed settings, so the same key yields
 * the same spec forever (a spec that changed after commit broke
 * containerd's erofs snapshotter with ESTALE).
 */
#include <stdio.h>
#include <string.h>

#include "snapshot/snapshot-internal.h"

/* "uidmap=c:h:s c:h:s": a ',' would end the option (mount.md). */
static char *map_option(const char *name, const char *label)
{
        char *s = NULL;
        if (asprintf(&s, "%s=%s", name, label) < 0)
                return NULL;
        for (char *p = s; *p; p++)
                if (*p == ',')
                        *p = ' ';
        return s;
}

struct builder {
        struct snap_root *r;
        struct mount_spec *spec;
        char *uidmap, *gidmap;    /* options, or NULL */
        const char *volatile_opt; /* "volatile" for the writable overlay, or NULL */
};

static int add(struct builder *b, const char *type, const char *source, const char *const *options,
               struct util_err *err)
{
        /* Up to 6 given options plus the two maps. */
        const char *opts[9] = {0};
        size_t n = 0;
        for (; options && options[n] && n < 6; n++)
                opts[n] = options[n];
        return mount_spec_add(b->spec, type, source, NULL, opts, err);
}

static int add_mapped(struct builder *b, const char *type, const char *source,
                      const char *const *options, struct util_err *err)
{
        const char *opts[9] = {0};
        size_t n = 0;
        for (; options && options[n] && n < 6; n++)
                opts[n] = options[n];
        if (b->uidmap)
                opts[n++] = b->uidmap;
        if (b->gidmap)
                opts[n++] = b->gidmap;
        return mount_spec_add(b->spec, type, source, NULL, opts, err);
}

const char *snap_fs_option(const char *type, bool rw)
{
        if (strcmp(type, "xfs") == 0)
                return "nouuid";
        return rw && strcmp(type, "ext4") == 0 ? "noinit_itable" : NULL;
}

/* A committed layer (rw false) or the snapshot's own writable image. */
static int add_image(struct builder *b, int64_t id, bool rw, struct util_err *err)
{
        _cleanup_free_ char *img = rw ? snap_path(b->r, "snapshots/%lld/fs.img", (long long)id)
                                      : snap_layer_image(b->r, id);
        const char *type = rw ? b->r->writable_fs : snap_committed_type(b->r);
        const char *opts[] = {rw ? "rw" : "ro", "loop", snap_fs_option(type, rw), NULL};
        if (!img)
                return util_err_set(err, ENOMEM, "mount spec");
        return add(b, type, img, opts, err);
}

/* upper_dir roots: the active snapshot's upper/ and work/ are directories
 * under snapshots/<id>/fs, named by absolute path (the root's path is fixed
 * for its lifetime, so the spec still never changes). */
static int add_dir_upper(struct builder *b, int64_t id, size_t n, const char *lower,
                         struct util_err *err)
{
        _cleanup_free_ char *up = snap_path(b->r, "snapshots/%lld/fs/upper", (long long)id);
        _cleanup_free_ char *wk = snap_path(b->r, "snapshots/%lld/fs/work", (long long)id);
        _cleanup_free_ char *upo = NULL, *wko = NULL;

        if (!up || !wk)
                return util_err_set(err, ENOMEM, "mount spec");
        if (n == 0) {
                const char *o[] = {"rbind", "rw", NULL};
                return add(b, "bind", up, o, err);
        }
        if (asprintf(&upo, "upperdir=%s", up) < 0 || asprintf(&wko, "workdir=%s", wk) < 0)
                return util_err_set(err, ENOMEM, "mount spec");
        const char *o[] = {lower, upo, wko, b->volatile_opt, NULL};
        return add_mapped(b, "overlay", "overlay", o, err);
}

/* Block layout: the snapshot's own image is a whole filesystem (a clone of
 * its parent's): one mount, idmapped itself when the labels ask. */
static int block_spec(struct snap_root *r, const struct snap_info *i, struct mount_spec **ret,
                      struct util_err *err)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        struct builder b = {.r = r};
        const char *um = snap_info_label(i, SNAP_LABEL_UIDMAPPING);
        const char *gm = snap_info_label(i, SNAP_LABEL_GIDMAPPING);
        _cleanup_free_ char *img = snap_path(r, "snapshots/%lld/fs.img", (long long)i->id);
        bool rw = i->kind == SNAP_KIND_ACTIVE;
        const char *o[] = {rw ? "rw" : "ro", "loop", snap_fs_option(r->writable_fs, rw), NULL};

        if (!img || mount_spec_new(&spec) < 0)
                return util_err_set(err, ENOMEM, "mount spec");
        b.spec = spec;
        if ((um && !(b.uidmap = map_option("uidmap", um))) ||
            (gm && !(b.gidmap = map_option("gidmap", gm)))) {
                free(b.uidmap);
                return util_err_set(err, ENOMEM, "mount spec");
        }
        int rc = add_mapped(&b, r->writable_fs, img, o, err);
        free(b.uidmap);
        free(b.gidmap);
        if (rc < 0)
                return util_err_prefix(err, "mounts of '%s'", i->name);
        *ret = TAKE_PTR(spec);
        return 0;
}

int snap_layout_spec(struct snap_root *r, const struct snap_info *i, struct mount_spec **ret,
                     struct util_err *err)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        _cleanup_free_ int64_t *parents = NULL;
        size_t n = 0;
        struct builder b = {.r = r};
        char lower[96];
        int rc;

        if (i->kind != SNAP_KIND_ACTIVE && i->kind != SNAP_KIND_VIEW)
                return util_err_setx(err, EBUSY,
                                     "'%s' is %s: only active snapshots and views "
                                     "have mounts",
                                     i->name, snap_kind_name(i->kind));
        if (r->layout == SNAP_LAYOUT_BLOCK)
                return block_spec(r, i, ret, err);
        rc = snap_store_parents(r->store, i->id, &parents, &n, err);
        if (rc < 0)
                return rc;
        if (mount_spec_new(&spec) < 0)
                return util_err_set(err, ENOMEM, "mount spec");
        b.spec = spec;
        const char *um = snap_info_label(i, SNAP_LABEL_UIDMAPPING);
        const char *gm = snap_info_label(i, SNAP_LABEL_GIDMAPPING);
        const char *vo = snap_info_label(i, SNAP_LABEL_VOLATILE);
        if (vo && strcmp(vo, "true") == 0)
                b.volatile_opt = "volatile";
        if (um && !(b.uidmap = map_option("uidmap", um)))
                return util_err_set(err, ENOMEM, "mount spec");
        if (gm && !(b.gidmap = map_option("gidmap", gm))) {
                free(b.uidmap);
                return util_err_set(err, ENOMEM, "mount spec");
        }

        /* mounts[0..n-1]: the parents' images, nearest first (= topmost). */
        for (size_t k = 0; k < n && (rc = add_image(&b, parents[k], false, err)) >= 0; k++)
                ;
        if (rc >= 0) {
                if (n == 1)
                        snprintf(lower, sizeof(lower), "lowerdir={{ mount 0 }}/upper");
                else
                        snprintf(lower, sizeof(lower), "lowerdir={{ overlay 0 %zu }}/upper",
                                 n ? n - 1 : 0);
        }
        if (rc >= 0 && i->kind == SNAP_KIND_ACTIVE && r->upper_dir) {
                rc = add_dir_upper(&b, i->id, n, lower, err);
        } else if (rc >= 0 && i->kind == SNAP_KIND_ACTIVE) {
                rc = add_image(&b, i->id, true, err);
                if (rc >= 0 && n == 0) {
                        const char *o[] = {"rbind", "rw", NULL};
                        rc = add(&b, "bind", "{{ mount 0 }}/upper", o, err);
                } else if (rc >= 0) {
                        char up[64], wk[64];
                        snprintf(up, sizeof(up), "upperdir={{ mount %zu }}/upper", n);
                        snprintf(wk, sizeof(wk), "workdir={{ mount %zu }}/work", n);
                        const char *o[] = {lower, up, wk, b.volatile_opt, NULL};
                        rc = add_mapped(&b, "overlay", "overlay", o, err);
                }
        } else if (rc >= 0) {
                if (n == 0) {
                        _cleanup_free_ char *empty =
                                snap_path(r, "snapshots/%lld/empty", (long long)i->id);
                        const char *o[] = {"rbind", "ro", NULL};
                        rc = empty ? add(&b, "bind", empty, o, err)
                                   : util_err_set(err, ENOMEM, "mount spec");
                } else if (n == 1) {
                        const char *o[] = {"rbind", "ro", NULL};
                        rc = add_mapped(&b, "bind", "{{ mount 0 }}/upper", o, err);
                } else {
                        const char *o[] = {lower, "ro", NULL};
                        rc = add_mapped(&b, "overlay", "overlay", o, err);
                }
        }
        free(b.uidmap);
        free(b.gidmap);
        if (rc < 0)
                return util_err_prefix(err, "mounts of '%s'", i->name);
        *ret = TAKE_PTR(spec);
        return 0;
}
