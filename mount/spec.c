/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mount spec model: an ordered list of containerd-shaped mounts
 * (type, source, optional target, options). This file owns the memory and
 * the checks every spec passes, whether it was built in C or read from JSON
 * (spec-json.c): a non-empty type, the count limits of spec.h, and strings
 * that are bounded and free of control characters. Control characters are
 * refused here, once, because a spec's strings end up in mount data,
 * mountinfo, logs and error messages, and none of those can carry them
 * safely. What an option *means* is checked later, by options.c.
 */
#include <stdio.h>
#include <string.h>

#include "mount/spec.h"

int mount_spec_new(struct mount_spec **ret)
{
        struct mount_spec *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static void entry_done(struct mount_entry *e)
{
        free(e->type);
        free(e->source);
        free(e->target);
        for (size_t i = 0; i < e->n_options; i++)
                free(e->options[i]);
        free(e->options);
        *e = (struct mount_entry){0};
}

struct mount_spec *mount_spec_free(struct mount_spec *s)
{
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                entry_done(&s->mounts[i]);
        free(s->mounts);
        free(s);
        return NULL;
}

/*
 * Checks one string of mount `index`; `what` is the field ("type",
 * "options[3]"). Returns 0 or -EINVAL with `err` naming the element.
 */
static int check_string(const char *str, size_t index, const char *what, struct util_err *err)
{
        size_t len = strnlen(str, MOUNT_SPEC_MAX_STRING + 1);

        if (len > MOUNT_SPEC_MAX_STRING)
                return util_err_setx(err, EINVAL, "mounts[%zu].%s: longer than %u bytes", index,
                                     what, MOUNT_SPEC_MAX_STRING);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)str[i];
                if (c < 0x20 || c == 0x7f)
                        return util_err_setx(err, EINVAL,
                                             "mounts[%zu].%s: control character 0x%02x at byte %zu",
                                             index, what, c, i);
        }
        return 0;
}

static char *dup_or_null(const char *s, bool *failed)
{
        if (!s)
                return NULL;
        char *d = strdup(s);
        if (!d)
                *failed = true;
        return d;
}

int mount_spec_add(struct mount_spec *s, const char *type, const char *source, const char *target,
                   const char *const *options, struct util_err *err)
{
        size_t idx, n_options = 0;
        char what[32];
        int r;

        if (!s)
                return util_err_setx(err, EINVAL, "mounts: no spec");
        idx = s->n;
        if (idx >= MOUNT_SPEC_MAX_MOUNTS)
                return util_err_setx(err, EINVAL, "mounts[%zu]: more than %u mounts", idx,
                                     MOUNT_SPEC_MAX_MOUNTS);
        if (!type || !*type)
                return util_err_setx(err, EINVAL, "mounts[%zu]: type is missing or empty", idx);
        if (!source)
                return util_err_setx(err, EINVAL, "mounts[%zu]: source is missing", idx);

        r = check_string(type, idx, "type", err);
        if (r < 0)
                return r;
        r = check_string(source, idx, "source", err);
        if (r < 0)
                return r;
        if (target) {
                r = check_string(target, idx, "target", err);
                if (r < 0)
                        return r;
        }
        for (; options && options[n_options]; n_options++) {
                if (n_options >= MOUNT_SPEC_MAX_OPTIONS)
                        return util_err_setx(err, EINVAL, "mounts[%zu]: more than %u options", idx,
                                             MOUNT_SPEC_MAX_OPTIONS);
                snprintf(what, sizeof(what), "options[%zu]", n_options);
                r = check_string(options[n_options], idx, what, err);
                if (r < 0)
                        return r;
        }

        /* Grow geometrically: a 1000-mount spec is built one mount at a time.
         * The capacity is implied by `n` (16, then the next power of two). */
        if (idx == 0 || (idx >= 16 && (idx & (idx - 1)) == 0)) {
                struct mount_entry *m = reallocarray(s->mounts, idx ? idx * 2 : 16, sizeof(*m));
                if (!m)
                        return util_err_set(err, ENOMEM, "mounts[%zu]", idx);
                s->mounts = m;
        }

        bool failed = false;
        struct mount_entry e = {
                .type = dup_or_null(type, &failed),
                .source = dup_or_null(source, &failed),
                /* "" and NULL mean the same (the spec's own target): keep one
                 * form, so a spec equals its JSON round trip, which omits it. */
                .target = target && *target ? dup_or_null(target, &failed) : NULL,
                .options = calloc(n_options + 1, sizeof(char *)), /* NULL-terminated too */
        };
        if (!e.options)
                failed = true;
        for (size_t i = 0; !failed && i < n_options; i++) {
                e.options[i] = dup_or_null(options[i], &failed);
                e.n_options = i + 1;
        }
        if (failed) {
                entry_done(&e);
                return util_err_set(err, ENOMEM, "mounts[%zu]", idx);
        }
        s->mounts[idx] = e;
        s->n = idx + 1;
        return 0;
}

static bool target_equal(const char *a, const char *b)
{
        return strcmp(a ? a : "", b ? b : "") == 0;
}

bool mount_spec_equal(const struct mount_spec *a, const struct mount_spec *b)
{
        if (!a || !b)
                return a == b;
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++) {
                const struct mount_entry *x = &a->mounts[i], *y = &b->mounts[i];
                if (strcmp(x->type, y->type) != 0 || strcmp(x->source, y->source) != 0 ||
                    !target_equal(x->target, y->target) || x->n_options != y->n_options)
                        return false;
                for (size_t j = 0; j < x->n_options; j++)
                        if (strcmp(x->options[j], y->options[j]) != 0)
                                return false;
        }
        return true;
}
