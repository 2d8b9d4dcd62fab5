/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The snapshot operations of the table: each one checks its arguments and
 * the sizes of the host's structs, takes the handle's mutex, calls
 * snapshot/ and converts the result (loopsnap.h states the contract). The
 * semantics are the snapshotter's (containerd's); nothing is added here
 * beyond the boundary's checks.
 */
#include <string.h>

#include "plugin/plugin-internal.h"
#include "snapshot/fsck.h"

static int strings_check(const char *const *v, size_t n, const char *what, struct util_err *e)
{
        if (n && !v)
                return util_err_setx(e, EINVAL, "%s is NULL but its count is %zu", what, n);
        for (size_t k = 0; k < n; k++)
                if (!v[k])
                        return util_err_setx(e, EINVAL, "%s[%zu] is NULL", what, k);
        return 0;
}

/* ---- prepare / view / mounts ------------------------------------------------ */

static int create(struct loopsnap_root *h0, bool view, const char *key, const char *parent,
                  const char *const *labels, size_t n_labels, struct loopsnap_mounts **ret,
                  struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        _cleanup_free_ struct snap_label *l = NULL;
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        const char *op = view ? "view" : "prepare";
        int rc;

        if ((rc = plugin_arg_check(key, "key", e)) < 0)
                return rc;
        if ((rc = plugin_labels_in(labels, n_labels, &l, e)) < 0)
                return util_err_prefix(e, "%s", op);
        rc = (view ? snap_view : snap_prepare)(h->r, key, parent, l, n_labels, ret ? &spec : NULL,
                                               e);
        if (rc < 0)
                return rc;
        if (ret) {
                rc = plugin_mounts_new(spec, ret, e);
                if (rc < 0) {
                        /* Do not leave a snapshot the host was told failed. */
                        struct util_err ignored = {0};
                        (void)snap_remove(h->r, key, &ignored);
                        return util_err_prefix(e, "%s '%s'", op, key);
                }
        }
        plugin_log(h, LOOPSNAP_LOG_INFO, "%s '%s'%s%s", op, key, parent && *parent ? " on " : "",
                   parent && *parent ? parent : "");
        return 0;
}

int plugin_op_prepare(struct loopsnap_root *h, const char *key, const char *parent,
                      const char *const *labels, size_t n_labels, struct loopsnap_mounts **ret,
                      struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, create(h, false, key, parent, labels, n_labels, ret, &e));
}

int plugin_op_view(struct loopsnap_root *h, const char *key, const char *parent,
                   const char *const *labels, size_t n_labels, struct loopsnap_mounts **ret,
                   struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, create(h, true, key, parent, labels, n_labels, ret, &e));
}

static int mounts(struct loopsnap_root *h0, const char *key, struct loopsnap_mounts **ret,
                  struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        int rc;

        if ((rc = plugin_arg_check(key, "key", e)) < 0 ||
            (rc = plugin_arg_check(ret, "ret", e)) < 0)
                return rc;
        if ((rc = snap_mounts(h->r, key, &spec, e)) < 0)
                return rc;
        if ((rc = plugin_mounts_new(spec, ret, e)) < 0)
                return util_err_prefix(e, "mounts '%s'", key);
        return 0;
}

int plugin_op_mounts(struct loopsnap_root *h, const char *key, struct loopsnap_mounts **ret,
                     struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, mounts(h, key, ret, &e));
}

/* ---- commit / remove ---------------------------------------------------------- */

static int commit(struct loopsnap_root *h0, const char *name, const char *key,
                  const char *const *labels, size_t n_labels, struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        _cleanup_free_ struct snap_label *l = NULL;
        int rc;

        if ((rc = plugin_arg_check(name, "name", e)) < 0 ||
            (rc = plugin_arg_check(key, "key", e)) < 0)
                return rc;
        if ((rc = plugin_labels_in(labels, n_labels, &l, e)) < 0)
                return util_err_prefix(e, "commit");
        if ((rc = snap_commit(h->r, name, key, l, n_labels, e)) < 0)
                return rc;
        plugin_log(h, LOOPSNAP_LOG_INFO, "commit '%s' as '%s'", key, name);
        return 0;
}

int plugin_op_commit(struct loopsnap_root *h, const char *name, const char *key,
                     const char *const *labels, size_t n_labels, struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, commit(h, name, key, labels, n_labels, &e));
}

static int remove_key(struct loopsnap_root *h0, const char *key, struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        int rc;

        if ((rc = plugin_arg_check(key, "key", e)) < 0)
                return rc;
        if ((rc = snap_remove(h->r, key, e)) < 0)
                return rc;
        plugin_log(h, LOOPSNAP_LOG_INFO, "remove '%s'", key);
        return 0;
}

int plugin_op_remove(struct loopsnap_root *h, const char *key, struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, remove_key(h, key, &e));
}

/* ---- stat / update / usage ---------------------------------------------------- */

static int stat_key(struct loopsnap_root *h0, const char *key, struct loopsnap_info **ret,
                    struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        struct snap_info i = {0};
        int rc;

        if ((rc = plugin_arg_check(key, "key", e)) < 0 ||
            (rc = plugin_arg_check(ret, "ret", e)) < 0)
                return rc;
        if ((rc = snap_stat(h->r, key, &i, e)) < 0)
                return rc;
        rc = plugin_info_new(&i, ret, e);
        snap_info_done(&i);
        return rc;
}

int plugin_op_stat(struct loopsnap_root *h, const char *key, struct loopsnap_info **ret,
                   struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, stat_key(h, key, ret, &e));
}

static int update(struct loopsnap_root *h0, const char *name, const char *const *labels,
                  size_t n_labels, const char *const *fieldpaths, size_t n_fieldpaths,
                  struct loopsnap_info **ret, struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        _cleanup_free_ struct snap_label *l = NULL;
        struct snap_info i = {0};
        int rc;

        if ((rc = plugin_arg_check(name, "name", e)) < 0)
                return rc;
        if ((rc = plugin_labels_in(labels, n_labels, &l, e)) < 0 ||
            (rc = strings_check(fieldpaths, n_fieldpaths, "fieldpaths", e)) < 0)
                return util_err_prefix(e, "update '%s'", name);
        rc = snap_update(h->r, name, l, n_labels, fieldpaths, n_fieldpaths, ret ? &i : NULL, e);
        if (rc < 0)
                return rc;
        plugin_log(h, LOOPSNAP_LOG_INFO, "update '%s'", name);
        if (ret) {
                rc = plugin_info_new(&i, ret, e);
                snap_info_done(&i);
        }
        return rc;
}

int plugin_op_update(struct loopsnap_root *h, const char *name, const char *const *labels,
                     size_t n_labels, const char *const *fieldpaths, size_t n_fieldpaths,
                     struct loopsnap_info **ret, struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e,
                              update(h, name, labels, n_labels, fieldpaths, n_fieldpaths, ret, &e));
}

static int usage(struct loopsnap_root *h0, const char *key, struct loopsnap_usage *ret,
                 struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        struct snap_usage u;
        int rc;

        if ((rc = plugin_arg_check(key, "key", e)) < 0 ||
            (rc = plugin_out_check(ret, PLUGIN_V1_SIZE(struct loopsnap_usage, inodes), "usage",
                                   e)) < 0)
                return rc;
        if ((rc = snap_usage(h->r, key, &u, e)) < 0)
                return rc;
        struct loopsnap_usage out = {.size = u.size, .inodes = u.inodes};
        plugin_out_copy(ret, &out, sizeof(out));
        return 0;
}

int plugin_op_usage(struct loopsnap_root *h, const char *key, struct loopsnap_usage *ret,
                    struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, usage(h, key, ret, &e));
}

/* ---- walk ------------------------------------------------------------------------- */

struct walk_ctx {
        loopsnap_walk_fn fn;
        void *data;
        bool stopped; /* the callback asked to stop (> 0) */
};

static int walk_one(const struct snap_info *i, void *data, struct util_err *e)
{
        struct walk_ctx *c = data;
        struct loopsnap_info info;
        _cleanup_free_ const char **kv = NULL;
        int rc;

        if ((rc = plugin_info_view(i, &info, &kv, e)) < 0)
                return rc;
        rc = c->fn(c->data, &info);
        if (rc > 0) {
                /* Not an error: unwound as one through the store, then
                 * forgotten by walk(). */
                c->stopped = true;
                return util_err_setx(e, ECANCELED, "walk stopped by the callback");
        }
        if (rc < 0)
                /* Not an errno (INT_MIN, -100000): reported as EIO. */
                return util_err_set(e, rc >= -4095 ? rc : -EIO, "walk: the callback failed at '%s'",
                                    i->name);
        return 0;
}

static int walk(struct loopsnap_root *h0, const char *const *filters, size_t n_filters,
                loopsnap_walk_fn fn, void *data, struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        struct walk_ctx c = {.fn = fn, .data = data};
        int rc;

        if ((rc = plugin_arg_check((const void *)fn, "walk callback", e)) < 0 ||
            (rc = strings_check(filters, n_filters, "filters", e)) < 0)
                return rc;
        rc = snap_walk(h->r, filters, n_filters, walk_one, &c, e);
        if (rc == -ECANCELED && c.stopped) {
                util_err_clear(e);
                return 0;
        }
        return rc;
}

int plugin_op_walk(struct loopsnap_root *h, const char *const *filters, size_t n_filters,
                   loopsnap_walk_fn fn, void *data, struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, walk(h, filters, n_filters, fn, data, &e));
}

/* ---- cleanup / fsck ------------------------------------------------------------- */

static int cleanup(struct loopsnap_root *h0, struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        int rc = snap_cleanup(h->r, e);
        if (rc >= 0)
                plugin_log(h, LOOPSNAP_LOG_INFO, "cleanup removed %d entries", rc);
        return rc;
}

int plugin_op_cleanup(struct loopsnap_root *h, struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, cleanup(h, &e));
}

static int fsck(struct loopsnap_root *h0, const struct loopsnap_fsck_opts *o,
                struct loopsnap_fsck_report *ret, struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        struct snap_fsck_report rep = {0};
        bool repair = false;
        void (*fn)(void *, const char *) = NULL;
        void *data = NULL;
        int rc;

        rc = plugin_struct_check(o, true, PLUGIN_V1_SIZE(struct loopsnap_fsck_opts, report_data),
                                 sizeof(*o), "fsck options", e);
        if (rc < 0)
                return rc;
        if (rc > 0) {
                if (o->flags & ~(uint32_t)LOOPSNAP_FSCK_REPAIR)
                        return util_err_setx(e, EINVAL, "fsck options: unknown flags 0x%x",
                                             o->flags & ~(uint32_t)LOOPSNAP_FSCK_REPAIR);
                repair = o->flags & LOOPSNAP_FSCK_REPAIR;
                fn = o->report;
                data = o->report_data;
        }
        if (ret &&
            (rc = plugin_out_check(ret, PLUGIN_V1_SIZE(struct loopsnap_fsck_report, leaked_mounts),
                                   "fsck report", e)) < 0)
                return rc;
        if ((rc = snap_fsck(h->r, repair, fn, data, &rep, e)) < 0)
                return rc;
        struct loopsnap_fsck_report out = {
                .problems = snap_fsck_problems(&rep),
                .fixed = rep.fixed,
                .orphan_dirs = rep.orphan_dirs,
                .tmp_leftovers = rep.tmp_leftovers,
                .trash_leftovers = rep.trash_leftovers,
                .template_leftovers = rep.template_leftovers,
                .rows_without_files = rep.rows_without_files,
                .bad_images = rep.bad_images,
                .leaked_loops = rep.leaked_loops,
                .leaked_mounts = rep.leaked_mounts,
                .stale_files = rep.stale_files,
        };
        plugin_log(h, LOOPSNAP_LOG_INFO, "fsck: %u problems, %u repairs", out.problems, out.fixed);
        if (ret)
                plugin_out_copy(ret, &out, sizeof(out));
        return 0;
}

int plugin_op_fsck(struct loopsnap_root *h, const struct loopsnap_fsck_opts *opts,
                   struct loopsnap_fsck_report *ret, struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, fsck(h, opts, ret, &e));
}
