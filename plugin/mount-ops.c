/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mount engine and loop devices through the table: apply a spec (JSON,
 * untrusted: parsed with the spec module's limits) onto a target or into a
 * detached mount fd, unmount, and list the loop devices loopsnap tagged.
 * The handle's engine tags the loop devices it attaches with the root's
 * owner, so fsck and loops_list of that root see them.
 */
#include <stdio.h>
#include <string.h>

#include "loop/loop.h"
#include "plugin/plugin-internal.h"

/* ---- mount_apply ------------------------------------------------------------ */

static int mount_apply(struct loopsnap_root *h0, const char *json, const char *target,
                       const struct loopsnap_mount_opts *o, struct util_err *e)
{
        PLUGIN_LOCK_OR_RETURN(h, h0, e);
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        const char *loop_id = NULL;
        int fd = -EBADF;
        int rc;

        if ((rc = plugin_arg_check(json, "mount spec", e)) < 0)
                return rc;
        rc = plugin_struct_check(o, true, PLUGIN_V1_SIZE(struct loopsnap_mount_opts, loop_id),
                                 sizeof(*o), "mount options", e);
        if (rc < 0)
                return rc;
        if (rc > 0) {
                if (o->flags)
                        return util_err_setx(e, EINVAL, "mount options: unknown flags 0x%x",
                                             o->flags);
                loop_id = o->loop_id;
        }
        /* strnlen: the spec is untrusted, its size limit applies before the
         * parser sees it (one byte over is enough to be refused). */
        size_t len = strnlen(json, MOUNT_SPEC_MAX_JSON_BYTES + 1);
        if ((rc = mount_spec_from_json(json, len, &spec, e)) < 0)
                return rc;
        rc = mount_engine_apply(h->engine, spec, target, loop_id, target ? NULL : &fd, e);
        if (rc < 0)
                return rc;
        plugin_log(h, LOOPSNAP_LOG_INFO, "mounted %zu mounts %s%s", spec->n,
                   target ? "on " : "as a detached mount", target ? target : "");
        return target ? 0 : fd;
}

int plugin_op_mount_apply(struct loopsnap_root *h, const char *spec_json, const char *target,
                          const struct loopsnap_mount_opts *opts, struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, mount_apply(h, spec_json, target, opts, &e));
}

/* ---- unmount ------------------------------------------------------------------ */

static int unmount(struct loopsnap_root *h0, const char *target, uint32_t flags, struct util_err *e)
{
        /* The root is optional here: unmounting needs no snapshotter. */
        _cleanup_root_unlock_ struct loopsnap_root *h = h0 ? plugin_root_lock(h0, e) : NULL;
        int rc;

        if ((rc = plugin_arg_check(target, "target", e)) < 0)
                return rc;
        if (flags & ~(uint32_t)LOOPSNAP_UNMOUNT_ALL)
                return util_err_setx(e, EINVAL, "unmount '%s': unknown flags 0x%x", target,
                                     flags & ~(uint32_t)LOOPSNAP_UNMOUNT_ALL);
        if (flags & LOOPSNAP_UNMOUNT_ALL)
                rc = mount_unmount_all(target, e);
        else if ((rc = mount_unmount(target, e)) == 0)
                rc = 1;
        if (rc >= 0)
                plugin_log(h, LOOPSNAP_LOG_INFO, "unmounted %d mounts from %s", rc, target);
        return rc;
}

int plugin_op_unmount(struct loopsnap_root *h, const char *target, uint32_t flags,
                      struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, unmount(h, target, flags, &e));
}

/* ---- loops_list ---------------------------------------------------------------- */

static void loops_freep(struct loopsnap_loops **l)
{
        plugin_loops_free(*l);
}

static int loop_new(const struct loop_status *s, struct loopsnap_loop **ret)
{
        char owner[LOOP_TAG_MAX + 1] = "", id[LOOP_TAG_MAX + 1] = "";
        struct loopsnap_loop *d = calloc(1, sizeof(*d));

        if (!d)
                return -ENOMEM;
        /* The listing filtered on the prefix; a tag that does not parse
         * (an empty id) is still listed, with empty parts. */
        (void)loop_tag_parse(s->tag, owner, sizeof(owner), id, sizeof(id));
        *d = (struct loopsnap_loop){
                .struct_size = sizeof(*d),
                .nr = s->nr,
                .flags = (s->read_only ? LOOPSNAP_LOOP_READ_ONLY : 0) |
                         (s->autoclear ? LOOPSNAP_LOOP_AUTOCLEAR : 0) |
                         (s->direct_io ? LOOPSNAP_LOOP_DIRECT_IO : 0),
                .path = strdup(s->path),
                .tag = strdup(s->tag),
                .owner = strdup(owner),
                .id = strdup(id),
                .backing_file = strdup(s->backing_file),
                .offset = s->offset,
                .size_limit = s->size_limit,
        };
        *ret = d;
        if (!d->path || !d->tag || !d->owner || !d->id || !d->backing_file)
                return -ENOMEM; /* *ret is in the list already: freed with it */
        return 0;
}

static int loops_list(struct loopsnap_root *h0, struct loopsnap_loops **ret, struct util_err *e)
{
        _cleanup_root_unlock_ struct loopsnap_root *h = h0 ? plugin_root_lock(h0, e) : NULL;
        _cleanup_free_ struct loop_status *list = NULL;
        _cleanup_(loops_freep) struct loopsnap_loops *out = NULL;
        struct loopsnap_loop **arr = NULL;
        char prefix[LOOP_TAG_MAX + 1];
        size_t n = 0;
        int rc;

        if ((rc = plugin_arg_check(ret, "ret", e)) < 0)
                return rc;
        if (h)
                snprintf(prefix, sizeof(prefix), LOOP_TAG_PREFIX "%s:", snap_root_tag_owner(h->r));
        else
                snprintf(prefix, sizeof(prefix), LOOP_TAG_PREFIX);
        struct loop_filter f = {.tag_prefix = prefix};
        if ((rc = loop_list(&f, &list, &n, e)) < 0)
                return rc;
        out = calloc(1, sizeof(*out));
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        if (!out || (n && !(arr = calloc(n, sizeof(*arr)))))
                return util_err_set(e, ENOMEM, "loop devices");
        out->struct_size = sizeof(*out);
        out->loops = (const struct loopsnap_loop *const *)arr;
        for (size_t k = 0; k < n; k++) {
                rc = loop_new(&list[k], &arr[k]);
                if (arr[k])
                        out->n = (uint32_t)k + 1;
                if (rc < 0)
                        return util_err_set(e, rc, "loop devices: %s", list[k].path);
        }
        *ret = TAKE_PTR(out);
        return 0;
}

int plugin_op_loops_list(struct loopsnap_root *h, struct loopsnap_loops **ret,
                         struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, loops_list(h, ret, &e));
}
