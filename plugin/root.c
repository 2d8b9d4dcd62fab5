/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The root handle of the ABI: a snapshotter root (snapshot/), a mount engine
 * tagging loop devices with that root's owner, the host's log callback, and
 * the mutex that makes the handle safe to share between threads. The
 * snapshotter's own handle is "one thread at a time"; every operation of the
 * table takes the mutex first, so hosts need not serialise.
 */
#include <string.h>

#include "plugin/plugin-internal.h"

struct loopsnap_root *plugin_root_lock(struct loopsnap_root *h, struct util_err *e)
{
        if (!h) {
                util_err_setx(e, EINVAL, "root handle is NULL");
                return NULL;
        }
        pthread_mutex_lock(&h->lock);
        return h;
}

void plugin_root_close(struct loopsnap_root *h)
{
        if (!h)
                return;
        snap_root_close(h->r);
        mount_engine_free(h->engine);
        pthread_mutex_destroy(&h->lock);
        free(h);
}

static void root_freep(struct loopsnap_root **h)
{
        plugin_root_close(*h);
}

static int layout_parse(const char *s, enum snap_layout *ret, struct util_err *e)
{
        if (!s || strcmp(s, "overlay") == 0)
                *ret = SNAP_LAYOUT_OVERLAY;
        else if (strcmp(s, "block") == 0)
                *ret = SNAP_LAYOUT_BLOCK;
        else {
                char p[UTIL_PREVIEW_SIZE];
                return util_err_setx(e, EINVAL, "layout '%s': expected overlay or block",
                                     util_preview(p, s, SIZE_MAX));
        }
        return 0;
}

static int root_open(const struct loopsnap_root_opts *o, struct loopsnap_root **ret,
                     struct util_err *e)
{
        static const uint32_t known_flags = LOOPSNAP_ROOT_UPPER_DIR | LOOPSNAP_ROOT_WRITABLE_POOL |
                                            LOOPSNAP_ROOT_NO_WRITABLE_POOL;
        _cleanup_(root_freep) struct loopsnap_root *h = NULL;
        pthread_mutexattr_t attr;
        struct snap_root_opts so = {0};
        int rc;

        rc = plugin_struct_check(o, false, PLUGIN_V1_SIZE(struct loopsnap_root_opts, log_data),
                                 sizeof(*o), "root options", e);
        if (rc < 0)
                return rc;
        if ((rc = plugin_arg_check(ret, "ret", e)) < 0)
                return rc;
        if (o->flags & ~known_flags)
                return util_err_setx(e, EINVAL, "root options: unknown flags 0x%x",
                                     o->flags & ~known_flags);
        if ((o->flags & LOOPSNAP_ROOT_WRITABLE_POOL) && (o->flags & LOOPSNAP_ROOT_NO_WRITABLE_POOL))
                return util_err_setx(e, EINVAL,
                                     "root options: flags LOOPSNAP_ROOT_WRITABLE_POOL and "
                                     "LOOPSNAP_ROOT_NO_WRITABLE_POOL together");
        if ((rc = layout_parse(o->layout, &so.layout, e)) < 0)
                return rc;
        so.path = o->path;
        so.writable_fs = o->writable_fs;
        so.writable_size = o->writable_size;
        so.committed_format = o->committed_format;
        so.upper_dir = o->flags & LOOPSNAP_ROOT_UPPER_DIR;
        /* On unless turned off (the flag that asks for it is 1.0's). */
        so.writable_pool =
                o->flags & LOOPSNAP_ROOT_NO_WRITABLE_POOL ? 0 : SNAP_DEFAULT_WRITABLE_POOL;

        h = calloc(1, sizeof(*h));
        if (!h)
                return util_err_set(e, ENOMEM, "open root");
        if ((rc = pthread_mutexattr_init(&attr)) != 0)
                return util_err_set(e, rc, "open root: mutex");
        rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
        if (rc == 0)
                rc = pthread_mutex_init(&h->lock, &attr);
        pthread_mutexattr_destroy(&attr);
        if (rc != 0) {
                free(TAKE_PTR(h));
                return util_err_set(e, rc, "open root: mutex");
        }
        h->log = o->log;
        h->log_data = o->log_data;

        rc = snap_root_open(&so, &h->r, e);
        if (rc < 0)
                return rc;
        /* mount_apply's engine: the root's tag owner and activation reuse
         * (snap_root_engine_opts), and the default scratch directory,
         * /run/loopsnap, outside the root: fsck counts mounts under
         * <root>/tmp as leftovers of crashed commits and applies, and a
         * host's mount_apply holds no root lock. (The snapshotter's own
         * engine, made by snap_root_open, uses <root>/tmp: it mounts there
         * only with the root lock held shared.) */
        struct mount_engine_opts eo;
        snap_root_engine_opts(h->r, &eo);
        rc = mount_engine_new(&eo, &h->engine, e);
        if (rc < 0)
                return util_err_prefix(e, "open root '%s'", snap_root_path(h->r));
        plugin_log(h, LOOPSNAP_LOG_DEBUG, "opened root '%s' (loop tag owner %s, overlay API %s)",
                   snap_root_path(h->r), snap_root_tag_owner(h->r),
                   mount_api_name(mount_engine_api(h->engine)));
        *ret = TAKE_PTR(h);
        return 0;
}

int plugin_root_open(const struct loopsnap_root_opts *opts, struct loopsnap_root **ret,
                     struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, root_open(opts, ret, &e));
}
