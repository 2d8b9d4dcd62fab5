/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mount options of a spec, classified one element at a time with libmount's
 * built-in option maps, the tables mount(8) itself uses:
 *   - MNT_LINUX_MAP entries are mount flags ("ro", "nosuid", "noatime"...;
 *     MNT_INVERT entries such as "rw" or "suid" clear their flag), except
 *     "bind"/"rbind" and the propagation words, which the engine applies in
 *     calls of their own, and "remount", which a spec may not ask for;
 *   - a few options are the engine's own and never reach the kernel:
 *     "loop", "direct-io[=on|off]", "uidmap=", "gidmap=", "X-loopsnap.*";
 *   - MNT_USERSPACE_MAP entries ("user", "noauto", "_netdev", "nofail",
 *     "x-*", "comment=") mean nothing to the kernel and are dropped, except
 *     those that would change *what* is mounted and that the engine does not
 *     implement ("offset=", "sizelimit=", "encryption=", "verity.*"):
 *     dropping those silently would mount other bytes, or mount without the
 *     verification that was asked for, so they are refused;
 *   - everything else is filesystem data, kept in the given order.
 *
 * Options are never joined and re-split: an element such as
 * "uidmap=0:1:1,upperdir=/etc" would otherwise smuggle a second option into
 * the fs data, so a ',' in any element is an error (DESIGN.md §10).
 *
 * A map entry's name tells whether it takes a value: "name" takes none,
 * "name=" needs one, "name[=]" may have one; MNT_PREFIX entries ("x-")
 * match every option that starts with them. As in libmount
 * (mnt_optstr_get_flags: "ignore name=<value> if options map expects <name>
 * only"), "name=value" does not match an entry that takes no value, so
 * "ro=1" is fs data, not a flag.
 */
#include <libmount.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

#include "mount/spec.h"

#define LOOPSNAP_X_PREFIX "X-loopsnap."

/* The exclusive atime modes: the kernel takes one (mount_setattr has them
 * as one enum, MOUNT_ATTR__ATIME), so the last one given wins, like the
 * last of "ro"/"rw". "nodiratime" and "lazytime" are independent bits. */
#define ATIME_MODES (MS_NOATIME | MS_RELATIME | MS_STRICTATIME)

#define PROPAGATION_FLAGS (MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE)

/* Userspace-map options refused rather than dropped (see the top). */
static const char *const refused_userspace[] = {
        "offset=",
        "sizelimit=",
        "encryption=",
        "verity.",
};

/* Copies at most ~64 bytes of `s` into `buf` for an error message, control
 * characters shown as '?', "..." appended when cut. Returns `buf`. */
static bool startswith(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Whether map entry `ent` matches option `opt` (name `name_len` bytes long,
 * `has_value` when followed by '='). */
static bool optmap_entry_matches(const struct libmnt_optmap *ent, const char *opt, size_t name_len,
                                 bool has_value)
{
        if (ent->mask & MNT_PREFIX)
                return startswith(opt, ent->name);
        size_t base = strcspn(ent->name, "=[");
        if (base != name_len || strncmp(ent->name, opt, name_len) != 0)
                return false;
        /* ent->name[base]: '\0' takes no value, '=' needs one, '[' may have one. */
        return !has_value || ent->name[base] != '\0';
}

static const struct libmnt_optmap *optmap_find(int map_id, const char *opt)
{
        const struct libmnt_optmap *ent = mnt_get_builtin_optmap(map_id);
        size_t name_len = strcspn(opt, "=");
        bool has_value = opt[name_len] == '=';

        for (; ent && ent->name; ent++)
                if (optmap_entry_matches(ent, opt, name_len, has_value))
                        return ent;
        return NULL;
}

static int strv_push(char ***v, size_t *n, const char *s)
{
        char *d = strdup(s);
        if (!d)
                return -ENOMEM;
        char **nv = reallocarray(*v, *n + 2, sizeof(char *)); /* NULL-terminated too */
        if (!nv) {
                free(d);
                return -ENOMEM;
        }
        nv[(*n)++] = d;
        nv[*n] = NULL;
        *v = nv;
        return 0;
}

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

void mount_opts_done(struct mount_opts *o)
{
        if (!o)
                return;
        free(o->uidmap);
        free(o->gidmap);
        strv_free(o->x_loopsnap, o->n_x_loopsnap);
        strv_free(o->data, o->n_data);
        *o = (struct mount_opts){.direct_io = -1};
}

static void mount_opts_donep(struct mount_opts *o)
{
        mount_opts_done(o);
}

/* Parse state that is not part of the result: where things were set. */
struct parse_ctx {
        size_t propagation_at; /* index of the propagation option, when set */
        const char *propagation_opt;
        size_t uidmap_at, gidmap_at;
};

/* "uidmap=VALUE" / "gidmap=VALUE"; `name` is "uidmap" or "gidmap". */
static int take_idmap(const char *opt, size_t i, const char *name, char **slot, size_t *slot_at,
                      struct util_err *err)
{
        const char *value = opt + strlen(name);
        char q[UTIL_PREVIEW_SIZE];

        if (*value != '=' || value[1] == '\0')
                return util_err_setx(err, EINVAL, "options[%zu] '%s': needs a value (%s=...)", i,
                                     util_preview(q, opt, SIZE_MAX), name);
        if (*slot)
                return util_err_setx(err, EINVAL,
                                     "options[%zu] '%s': %s given twice (options[%zu])", i,
                                     util_preview(q, opt, SIZE_MAX), name, *slot_at);
        *slot = strdup(value + 1);
        if (!*slot)
                return util_err_set(err, ENOMEM, "options[%zu]", i);
        *slot_at = i;
        return 0;
}

/* An option the engine consumes. Returns 1 when `opt` was one, 0 when not. */
static int take_consumed(struct mount_opts *o, struct parse_ctx *ctx, const char *opt, size_t i,
                         struct util_err *err)
{
        const size_t name_len = strcspn(opt, "=");
        char q[UTIL_PREVIEW_SIZE];
        int r;

        if (name_len == 4 && startswith(opt, "loop")) {
                if (opt[name_len] == '=')
                        return util_err_setx(err, EINVAL,
                                             "options[%zu] '%s': a loop device cannot be chosen; "
                                             "use 'loop'",
                                             i, util_preview(q, opt, SIZE_MAX));
                o->loop = true;
                return 1;
        }
        if (name_len == 9 && startswith(opt, "direct-io")) {
                if (strcmp(opt, "direct-io") == 0 || strcmp(opt, "direct-io=on") == 0)
                        o->direct_io = 1;
                else if (strcmp(opt, "direct-io=off") == 0)
                        o->direct_io = 0;
                else
                        return util_err_setx(err, EINVAL,
                                             "options[%zu] '%s': expected direct-io, "
                                             "direct-io=on or direct-io=off",
                                             i, util_preview(q, opt, SIZE_MAX));
                return 1;
        }
        if (name_len == 6 && startswith(opt, "uidmap")) {
                r = take_idmap(opt, i, "uidmap", &o->uidmap, &ctx->uidmap_at, err);
                return r < 0 ? r : 1;
        }
        if (name_len == 6 && startswith(opt, "gidmap")) {
                r = take_idmap(opt, i, "gidmap", &o->gidmap, &ctx->gidmap_at, err);
                return r < 0 ? r : 1;
        }
        if (startswith(opt, LOOPSNAP_X_PREFIX)) {
                if (strv_push(&o->x_loopsnap, &o->n_x_loopsnap, opt) < 0)
                        return util_err_set(err, ENOMEM, "options[%zu]", i);
                return 1;
        }
        return 0;
}

static enum mount_propagation propagation_of(unsigned long id)
{
        if (id & MS_SHARED)
                return MOUNT_PROPAGATION_SHARED;
        if (id & MS_SLAVE)
                return MOUNT_PROPAGATION_SLAVE;
        if (id & MS_PRIVATE)
                return MOUNT_PROPAGATION_PRIVATE;
        return MOUNT_PROPAGATION_UNBINDABLE;
}

/* An entry of the Linux map. */
static int take_linux(struct mount_opts *o, struct parse_ctx *ctx, const struct libmnt_optmap *ent,
                      const char *opt, size_t i, struct util_err *err)
{
        unsigned long id = (unsigned int)ent->id;
        char q[UTIL_PREVIEW_SIZE], pq[72];

        if (id & MS_REMOUNT)
                return util_err_setx(err, EINVAL,
                                     "options[%zu] '%s': not allowed (the engine never remounts "
                                     "on behalf of a spec)",
                                     i, util_preview(q, opt, SIZE_MAX));
        if (id & MS_BIND) {
                if (id & MS_REC)
                        o->rbind = true;
                else
                        o->bind = true;
                return 0;
        }
        if (id & PROPAGATION_FLAGS) {
                enum mount_propagation p = propagation_of(id);
                bool rec = id & MS_REC;
                if (o->propagation != MOUNT_PROPAGATION_NONE &&
                    (o->propagation != p || o->propagation_recursive != rec))
                        return util_err_setx(err, EINVAL,
                                             "options[%zu] '%s': conflicts with options[%zu] '%s'",
                                             i, util_preview(q, opt, SIZE_MAX), ctx->propagation_at,
                                             util_preview(pq, ctx->propagation_opt, SIZE_MAX));
                o->propagation = p;
                o->propagation_recursive = rec;
                ctx->propagation_at = i;
                ctx->propagation_opt = opt;
                return 0;
        }
        if (ent->mask & MNT_INVERT) {
                o->flags &= ~id;
                o->cleared |= id;
        } else {
                if (id & ATIME_MODES)
                        o->flags &= ~(unsigned long)ATIME_MODES;
                o->flags |= id;
                o->cleared &= ~id;
        }
        return 0;
}

/* Checks the shape of one element: non-empty, no ',' and no control
 * character. */
static int check_option(const char *opt, size_t i, struct util_err *err)
{
        char q[UTIL_PREVIEW_SIZE];

        if (!opt)
                return util_err_setx(err, EINVAL, "options[%zu]: missing (NULL)", i);
        if (!*opt)
                return util_err_setx(err, EINVAL, "options[%zu]: empty option", i);
        for (size_t j = 0; opt[j]; j++) {
                unsigned char c = (unsigned char)opt[j];
                if (c < 0x20 || c == 0x7f)
                        return util_err_setx(err, EINVAL,
                                             "options[%zu]: control character 0x%02x at byte %zu",
                                             i, c, j);
        }
        if (strchr(opt, ','))
                return util_err_setx(err, EINVAL,
                                     "options[%zu] '%s': contains ','; one option per element", i,
                                     util_preview(q, opt, SIZE_MAX));
        return 0;
}

int mount_opts_parse(const char *const *options, size_t n, struct mount_opts *ret,
                     struct util_err *err)
{
        _cleanup_(mount_opts_donep) struct mount_opts o = {.direct_io = -1};
        struct parse_ctx ctx = {0};
        const struct libmnt_optmap *ent;
        char q[UTIL_PREVIEW_SIZE];
        int r;

        if (n > 0 && !options)
                return util_err_setx(err, EINVAL, "options: missing");
        for (size_t i = 0; i < n; i++) {
                const char *opt = options[i];

                r = check_option(opt, i, err);
                if (r < 0)
                        return r;
                r = take_consumed(&o, &ctx, opt, i, err);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;

                ent = optmap_find(MNT_LINUX_MAP, opt);
                if (ent) {
                        r = take_linux(&o, &ctx, ent, opt, i, err);
                        if (r < 0)
                                return r;
                        continue;
                }

                ent = optmap_find(MNT_USERSPACE_MAP, opt);
                if (ent) {
                        for (size_t k = 0; k < UTIL_ARRAY_SIZE(refused_userspace); k++)
                                if (startswith(ent->name, refused_userspace[k]))
                                        return util_err_setx(err, EINVAL,
                                                             "options[%zu] '%s': not supported "
                                                             "(it would be ignored)",
                                                             i, util_preview(q, opt, SIZE_MAX));
                        continue; /* userspace-only: means nothing to the kernel */
                }

                if (strv_push(&o.data, &o.n_data, opt) < 0)
                        return util_err_set(err, ENOMEM, "options[%zu]", i);
        }
        *ret = o;
        o = (struct mount_opts){.direct_io = -1}; /* ownership moved to *ret */
        return 0;
}

const char *mount_opts_data_get(const struct mount_opts *o, const char *key)
{
        size_t klen;

        if (!o || !key)
                return NULL;
        klen = strlen(key);
        for (size_t i = o->n_data; i-- > 0;)
                if (strncmp(o->data[i], key, klen) == 0 && o->data[i][klen] == '=')
                        return o->data[i] + klen + 1;
        return NULL;
}
