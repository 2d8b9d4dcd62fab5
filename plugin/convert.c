/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Marshalling between the modules' types and the ABI's: labels in (flat
 * key/value string arrays), snapshot info and mount specs out, and the free
 * functions of everything the plugin hands to a host. Records the plugin
 * allocates carry its own struct_size; hosts read only what it covers.
 */
#include <stdio.h>
#include <string.h>

#include "plugin/plugin-internal.h"

int plugin_labels_in(const char *const *kv, size_t n, struct snap_label **ret, struct util_err *e)
{
        struct snap_label *l = NULL;

        if (n == 0) {
                *ret = NULL;
                return 0;
        }
        if (!kv)
                return util_err_setx(e, EINVAL, "labels is NULL but n_labels is %zu", n);
        if (n > SNAP_LABELS_MAX_COUNT)
                return util_err_setx(e, EINVAL, "%zu labels: at most %u", n, SNAP_LABELS_MAX_COUNT);
        l = calloc(n, sizeof(*l));
        if (!l)
                return util_err_set(e, ENOMEM, "labels");
        for (size_t k = 0; k < n; k++) {
                if (!kv[2 * k] || !kv[2 * k + 1]) {
                        free(l);
                        return util_err_setx(e, EINVAL, "labels[%zu]: %s is NULL", k,
                                             kv[2 * k] ? "value" : "key");
                }
                /* The store copies; these stay the host's (hence the casts). */
                l[k].key = (char *)kv[2 * k];
                l[k].value = (char *)kv[2 * k + 1];
        }
        *ret = l;
        return 0;
}

/* ---- snapshot info ---------------------------------------------------------- */

int plugin_info_view(const struct snap_info *i, struct loopsnap_info *ret, const char ***labels,
                     struct util_err *e)
{
        const char **kv = NULL;

        if (i->n_labels) {
                kv = calloc(2 * i->n_labels, sizeof(*kv));
                if (!kv)
                        return util_err_set(e, ENOMEM, "snapshot '%s'", i->name);
                for (size_t k = 0; k < i->n_labels; k++) {
                        kv[2 * k] = i->labels[k].key;
                        kv[2 * k + 1] = i->labels[k].value;
                }
        }
        *ret = (struct loopsnap_info){
                .struct_size = sizeof(*ret),
                .kind = (int32_t)i->kind,
                .id = i->id,
                .name = i->name,
                .parent = i->parent,
                .labels = kv,
                .n_labels = i->n_labels,
                .created_ns = i->created_ns,
                .updated_ns = i->updated_ns,
                .size = i->size,
                .inodes = i->inodes,
        };
        *labels = kv;
        return 0;
}

void plugin_info_free(struct loopsnap_info *info)
{
        if (!info)
                return;
        for (size_t k = 0; info->labels && k < 2 * info->n_labels; k++)
                free((char *)info->labels[k]);
        free((void *)info->labels);
        free((char *)info->name);
        free((char *)info->parent);
        free(info);
}

static void info_freep(struct loopsnap_info **p)
{
        plugin_info_free(*p);
}

int plugin_info_new(const struct snap_info *i, struct loopsnap_info **ret, struct util_err *e)
{
        _cleanup_(info_freep) struct loopsnap_info *o = calloc(1, sizeof(*o));
        char **kv = NULL;

        if (!o)
                return util_err_set(e, ENOMEM, "snapshot '%s'", i->name);
        *o = (struct loopsnap_info){
                .struct_size = sizeof(*o),
                .kind = (int32_t)i->kind,
                .id = i->id,
                .created_ns = i->created_ns,
                .updated_ns = i->updated_ns,
                .size = i->size,
                .inodes = i->inodes,
        };
        o->name = strdup(i->name);
        if (i->parent)
                o->parent = strdup(i->parent);
        if (!o->name || (i->parent && !o->parent))
                return util_err_set(e, ENOMEM, "snapshot '%s'", i->name);
        if (i->n_labels) {
                kv = calloc(2 * i->n_labels, sizeof(*kv));
                if (!kv)
                        return util_err_set(e, ENOMEM, "snapshot '%s'", i->name);
                o->labels = (const char *const *)kv;
                for (size_t k = 0; k < i->n_labels; k++) {
                        kv[2 * k] = strdup(i->labels[k].key);
                        kv[2 * k + 1] = strdup(i->labels[k].value);
                        /* Counted now, so a failure frees what was copied. */
                        o->n_labels = k + 1;
                        if (!kv[2 * k] || !kv[2 * k + 1])
                                return util_err_set(e, ENOMEM, "snapshot '%s'", i->name);
                }
        }
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- mount specs ---------------------------------------------------------- */

static void mount_free(struct loopsnap_mount *m)
{
        if (!m)
                return;
        for (uint32_t k = 0; m->options && k < m->n_options; k++)
                free((char *)m->options[k]);
        free((void *)m->options);
        free((char *)m->type);
        free((char *)m->source);
        free((char *)m->target);
        free(m);
}

void plugin_mounts_free(struct loopsnap_mounts *m)
{
        if (!m)
                return;
        for (uint32_t k = 0; m->mounts && k < m->n; k++)
                mount_free((struct loopsnap_mount *)m->mounts[k]);
        free((void *)m->mounts);
        free((char *)m->json);
        free(m);
}

static void mounts_freep(struct loopsnap_mounts **p)
{
        plugin_mounts_free(*p);
}

static int mount_new(const struct mount_entry *in, struct loopsnap_mount **ret)
{
        struct loopsnap_mount *m = calloc(1, sizeof(*m));
        char **opts = NULL;

        if (!m)
                return -ENOMEM;
        m->struct_size = sizeof(*m);
        m->type = strdup(in->type);
        m->source = strdup(in->source);
        if (in->target && *in->target)
                m->target = strdup(in->target);
        if (!m->type || !m->source || (in->target && *in->target && !m->target))
                goto fail;
        if (in->n_options) {
                opts = calloc(in->n_options, sizeof(*opts));
                if (!opts)
                        goto fail;
                m->options = (const char *const *)opts;
                for (size_t k = 0; k < in->n_options; k++) {
                        opts[k] = strdup(in->options[k]);
                        m->n_options = (uint32_t)k + 1;
                        if (!opts[k])
                                goto fail;
                }
        }
        *ret = m;
        return 0;
fail:
        mount_free(m);
        return -ENOMEM;
}

int plugin_mounts_new(const struct mount_spec *spec, struct loopsnap_mounts **ret,
                      struct util_err *e)
{
        _cleanup_(mounts_freep) struct loopsnap_mounts *m = calloc(1, sizeof(*m));
        struct loopsnap_mount **list = NULL;
        char *json = NULL;
        int rc;

        if (!m)
                return util_err_set(e, ENOMEM, "mount spec");
        m->struct_size = sizeof(*m);
        if (spec->n) {
                /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
                list = calloc(spec->n, sizeof(*list));
                if (!list)
                        return util_err_set(e, ENOMEM, "mount spec");
                m->mounts = (const struct loopsnap_mount *const *)list;
                for (size_t k = 0; k < spec->n; k++) {
                        if ((rc = mount_new(&spec->mounts[k], &list[k])) < 0)
                                return util_err_set(e, rc, "mount spec: mounts[%zu]", k);
                        m->n = (uint32_t)k + 1;
                }
        }
        rc = mount_spec_to_json(spec, /* pretty= */ false, &json, e);
        if (rc < 0)
                return rc;
        m->json = json;
        *ret = TAKE_PTR(m);
        return 0;
}

/* ---- the rest of what hosts free ------------------------------------------ */

void plugin_loops_free(struct loopsnap_loops *l)
{
        if (!l)
                return;
        for (uint32_t k = 0; l->loops && k < l->n; k++) {
                struct loopsnap_loop *d = (struct loopsnap_loop *)l->loops[k];
                free((char *)d->path);
                free((char *)d->tag);
                free((char *)d->owner);
                free((char *)d->id);
                free((char *)d->backing_file);
                free(d);
        }
        free((void *)l->loops);
        free(l);
}

void plugin_features_free(struct loopsnap_features *f)
{
        if (!f)
                return;
        /* version and the API names are static strings. */
        free((char *)f->mkfs_ext4);
        free((char *)f->mkfs_xfs);
        free((char *)f->mkfs_erofs);
        free((char *)f->mount_fuse3);
        free(f);
}

void plugin_string_free(char *s)
{
        free(s);
}
