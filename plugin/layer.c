/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * apply_layer and import_oci: their ABI entries exist (so hosts can be
 * written against ABI 1 now), their arguments are checked like every other
 * operation's, and they answer not-supported (EOPNOTSUPP) until the
 * snapshotter's layer unpacking (snap_apply, snap_import_oci) is built into
 * the library. Nothing is touched: the root, the key and the files given are
 * left exactly as they were.
 */
#include "plugin/plugin-internal.h"

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
        return util_err_setx(e, EOPNOTSUPP,
                             "apply '%s' to '%s': applying layer tarballs is not built into this "
                             "libloopsnap yet",
                             o->tar_path, key);
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
        return util_err_setx(e, EOPNOTSUPP,
                             "import '%s': importing OCI image layouts is not built into this "
                             "libloopsnap yet",
                             o->layout_dir);
}

int plugin_op_import_oci(struct loopsnap_root *h, const struct loopsnap_import_opts *opts,
                         char **ret_chain_id, struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, import_oci(h, opts, ret_chain_id, &e));
}
