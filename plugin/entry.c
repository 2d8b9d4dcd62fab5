/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one exported symbol of libloopsnap.so.1 (STYLE R6): it checks the
 * host's ABI version and hands out the const table of operations. Everything
 * else in the library is hidden (-fvisibility=hidden and libloopsnap.sym).
 * A later minor version appends operations to the table and raises
 * abi_minor; a new major version is a new entry symbol (loopsnap_plugin_v2)
 * in a new version node of the script, next to this one.
 */
#include <stdio.h>

#include "plugin/plugin-internal.h"

#define LOOPSNAP_EXPORT __attribute__((visibility("default")))

static const struct loopsnap_ops ops_v1 = {
        .struct_size = sizeof(struct loopsnap_ops),
        .abi_major = LOOPSNAP_ABI_MAJOR,
        .abi_minor = LOOPSNAP_ABI_MINOR,
        .version = LOOPSNAP_VERSION,

        .root_open = plugin_root_open,
        .root_close = plugin_root_close,
        .prepare = plugin_op_prepare,
        .view = plugin_op_view,
        .mounts = plugin_op_mounts,
        .commit = plugin_op_commit,
        .remove = plugin_op_remove,
        .stat = plugin_op_stat,
        .update = plugin_op_update,
        .usage = plugin_op_usage,
        .walk = plugin_op_walk,
        .cleanup = plugin_op_cleanup,
        .fsck = plugin_op_fsck,
        .mount_apply = plugin_op_mount_apply,
        .unmount = plugin_op_unmount,
        .loops_list = plugin_op_loops_list,
        .features = plugin_op_features,
        .apply_layer = plugin_op_apply_layer,
        .import_oci = plugin_op_import_oci,
        .info_free = plugin_info_free,
        .mounts_free = plugin_mounts_free,
        .loops_free = plugin_loops_free,
        .features_free = plugin_features_free,
        .string_free = plugin_string_free,
};

static int entry(const struct loopsnap_host *host, const struct loopsnap_ops **ret_ops,
                 struct util_err *e)
{
        int rc;

        rc = plugin_struct_check(host, false, PLUGIN_V1_SIZE(struct loopsnap_host, flags),
                                 sizeof(*host), "host", e);
        if (rc < 0)
                return rc;
        if ((rc = plugin_arg_check(ret_ops, "ret_ops", e)) < 0)
                return rc;
        if (host->abi_major != LOOPSNAP_ABI_MAJOR)
                return util_err_setx(e, EPROTONOSUPPORT,
                                     "the host asks for plugin ABI %u.%u; this libloopsnap (%s) "
                                     "implements ABI %d.%d",
                                     host->abi_major, host->abi_minor, LOOPSNAP_VERSION,
                                     LOOPSNAP_ABI_MAJOR, LOOPSNAP_ABI_MINOR);
        if (host->flags)
                return util_err_setx(e, EINVAL, "host: unknown flags 0x%x", host->flags);
        *ret_ops = &ops_v1;
        return 0;
}

LOOPSNAP_EXPORT int loopsnap_plugin_v1(const struct loopsnap_host *host,
                                       const struct loopsnap_ops **ret_ops,
                                       struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, entry(host, ret_ops, &e));
}
