/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * apply_layer and import_oci: the snapshotter's layer unpacking (snap_apply,
 * snap_import_oci; docs/apply.md) behind the ABI. The snapshotter reports
 * bytes read; the adapter below turns that into struct loopsnap_progress
 * (a new step when the byte count starts again, for import's layers) and
 * calls the host at most every 100 ms, and once at the end of each step.
 */
#include "plugin/plugin-internal.h"

struct progress_adapter {
        loopsnap_progress_fn fn;
        void *data;
        const char *what;
        uint32_t step;
        uint64_t last_done;
        uint64_t last_call_ns;
};

static void progress_adapt(uint64_t done, uint64_t total, void *data)
{
        struct progress_adapter *a = data;
        if (a->step == 0 || done < a->last_done)
                a->step++;
        a->last_done = done;
        uint64_t now = util_now_ns();
        bool end = total && done >= total;
        if (!end && now - a->last_call_ns < 100 * 1000 * 1000ull)
                return;
        a->last_call_ns = now;
        struct loopsnap_progress p = {
                .struct_size = sizeof(p),
                .step = a->step,
                .n_steps = 0,
                .done = done,
                .total = total,
                .what = a->what,
        };
        a->fn(a->data, &p);
}

static int apply_layer(struct loopsnap_root *h0, const char *key,
                       const struct loopsnap_apply_opts *o, struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        int rc;

        if ((rc = plugin_arg_check(key, "key", e)) < 0)
                return rc;
        rc = plugin_struct_check(o, false,
                                 PLUGIN_V1_SIZE(struct loopsnap_apply_opts, progress_data),
                                 sizeof(*o), "apply options", e);
        if (rc < 0)
                return rc;
        if (o->flags)
                return util_err_setx(e, EINVAL, "apply options: unknown flags 0x%x", o->flags);
        if ((rc = plugin_arg_check(o->tar_path, "apply options: tar_path", e)) < 0)
                return rc;
        struct progress_adapter a = {
                .fn = o->progress, .data = o->progress_data, .what = o->tar_path};
        return snap_apply(h->r, key, o->tar_path, o->progress ? progress_adapt : NULL, &a, NULL, e);
}

int plugin_op_apply_layer(struct loopsnap_root *h, const char *key,
                          const struct loopsnap_apply_opts *opts, struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, apply_layer(h, key, opts, &e));
}

static int import_oci(struct loopsnap_root *h0, const struct loopsnap_import_opts *o,
                      char **ret_chain_id, struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        int rc;

        rc = plugin_struct_check(o, false,
                                 PLUGIN_V1_SIZE(struct loopsnap_import_opts, progress_data),
                                 sizeof(*o), "import options", e);
        if (rc < 0)
                return rc;
        if (o->flags)
                return util_err_setx(e, EINVAL, "import options: unknown flags 0x%x", o->flags);
        if ((rc = plugin_arg_check(o->layout_dir, "import options: layout_dir", e)) < 0 ||
            (rc = plugin_arg_check(ret_chain_id, "ret_chain_id", e)) < 0)
                return rc;
        if (o->ref && (rc = plugin_arg_check(o->ref, "import options: ref", e)) < 0)
                return rc;
        struct progress_adapter a = {
                .fn = o->progress, .data = o->progress_data, .what = o->layout_dir};
        return snap_import_oci(h->r, o->layout_dir, o->ref, o->progress ? progress_adapt : NULL, &a,
                               ret_chain_id, e);
}

int plugin_op_import_oci(struct loopsnap_root *h, const struct loopsnap_import_opts *opts,
                         char **ret_chain_id, struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, import_oci(h, opts, ret_chain_id, &e));
}
