/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The JSON form of a mount spec, read from untrusted input (a spec file, a
 * label, the plugin boundary) and written for state files and snapctl.
 *
 * Reading is strict: the tree comes from util_json_parse with the spec's
 * size limit and a nesting limit of 8 (a spec needs 4), every key must be
 * known (case-insensitively: Go's encoding writes "Type", protobuf JSON
 * "type"), a key may appear once in any spelling, and every error names the
 * element ("mount spec: mounts[2].options[1]: expected a string"). The
 * strings themselves are checked by mount_spec_add (spec.c), so a spec read
 * from JSON passes exactly the checks of one built in C.
 *
 * One gap of yajl is closed here: an escaped NUL ("\u0000") is decoded into
 * the tree's NUL-terminated strings, which silently cuts the string there
 * ("lowerdir=/a\u0000,upperdir=/etc" would read as "lowerdir=/a"). Such
 * input is refused instead of being shortened.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mount/spec.h"
#include "util/json.h"

#define SPEC_JSON_MAX_DEPTH 8u

/* Copies at most ~64 bytes of `s` into `buf` for an error message, control
 * characters shown as '?', "..." appended when cut. Returns `buf`. */
/* Offset of the first "\u0000" escape inside a JSON string of `text`
 * (already parsed, so well-formed), or -1. */
static ssize_t find_escaped_nul(const char *text, size_t len)
{
        bool in_str = false;

        for (size_t i = 0; i < len; i++) {
                if (!in_str) {
                        in_str = text[i] == '"';
                        continue;
                }
                if (text[i] == '"') {
                        in_str = false;
                } else if (text[i] == '\\' && i + 1 < len) {
                        if (text[i + 1] == 'u' && i + 5 < len &&
                            memcmp(text + i + 2, "0000", 4) == 0)
                                return (ssize_t)i;
                        i++; /* skip the escaped character ('"' or '\\' included) */
                }
        }
        return -1;
}

enum spec_key { KEY_TYPE, KEY_SOURCE, KEY_TARGET, KEY_OPTIONS, KEY_COUNT };
static const char *const spec_key_names[KEY_COUNT] = {"type", "source", "target", "options"};

/* Sorts the keys of mount object `obj` into vals[] (NULL when absent);
 * unknown and repeated keys are errors. */
static int mount_keys(yajl_val obj, size_t idx, yajl_val vals[static KEY_COUNT],
                      struct util_err *err)
{
        char q[UTIL_PREVIEW_SIZE];

        for (size_t k = 0; k < KEY_COUNT; k++)
                vals[k] = NULL;
        for (size_t i = 0; i < obj->u.object.len; i++) {
                const char *key = obj->u.object.keys[i];
                size_t k = 0;
                while (k < KEY_COUNT && strcasecmp(key, spec_key_names[k]) != 0)
                        k++;
                if (k == KEY_COUNT)
                        return util_err_setx(err, EINVAL, "mounts[%zu]: unknown key '%s'", idx,
                                             util_preview(q, key, SIZE_MAX));
                if (vals[k])
                        return util_err_setx(err, EINVAL, "mounts[%zu]: key '%s' given twice", idx,
                                             util_preview(q, key, SIZE_MAX));
                vals[k] = obj->u.object.values[i]; /* a JSON null is a node too */
        }
        return 0;
}

/* The value of a key, with JSON null (or absence) as NULL. */
static yajl_val key_value(yajl_val v)
{
        return v && !YAJL_IS_NULL(v) ? v : NULL;
}

static int parse_mount(struct mount_spec *s, yajl_val obj, size_t idx, struct util_err *err)
{
        _cleanup_free_ const char **opts = NULL;
        const char *type = NULL, *source = NULL, *target = NULL;
        yajl_val vals[KEY_COUNT];
        char what[64];
        int r;

        if (!YAJL_IS_OBJECT(obj))
                return util_err_setx(err, EINVAL, "mounts[%zu]: expected an object", idx);
        r = mount_keys(obj, idx, vals, err);
        if (r < 0)
                return r;

        if (!vals[KEY_TYPE])
                return util_err_setx(err, EINVAL, "mounts[%zu]: missing 'type'", idx);
        snprintf(what, sizeof(what), "mounts[%zu].type", idx);
        r = util_json_string(key_value(vals[KEY_TYPE]), what, &type, err);
        if (r < 0)
                return r;

        if (!vals[KEY_SOURCE])
                return util_err_setx(err, EINVAL, "mounts[%zu]: missing 'source'", idx);
        snprintf(what, sizeof(what), "mounts[%zu].source", idx);
        r = util_json_string(key_value(vals[KEY_SOURCE]), what, &source, err);
        if (r < 0)
                return r;

        yajl_val t = key_value(vals[KEY_TARGET]);
        if (t) {
                snprintf(what, sizeof(what), "mounts[%zu].target", idx);
                r = util_json_string(t, what, &target, err);
                if (r < 0)
                        return r;
        }

        yajl_val o = key_value(vals[KEY_OPTIONS]);
        size_t n = 0;
        if (o) {
                if (!YAJL_IS_ARRAY(o))
                        return util_err_setx(err, EINVAL,
                                             "mounts[%zu].options: expected an array of strings",
                                             idx);
                n = o->u.array.len;
                if (n > MOUNT_SPEC_MAX_OPTIONS)
                        return util_err_setx(err, EINVAL,
                                             "mounts[%zu].options: %zu options, more than the "
                                             "limit of %u",
                                             idx, n, MOUNT_SPEC_MAX_OPTIONS);
        }
        opts = calloc(n + 1, sizeof(*opts));
        if (!opts)
                return util_err_set(err, ENOMEM, "mounts[%zu]", idx);
        for (size_t j = 0; j < n; j++) {
                snprintf(what, sizeof(what), "mounts[%zu].options[%zu]", idx, j);
                r = util_json_string(o->u.array.values[j], what, &opts[j], err);
                if (r < 0)
                        return r;
        }
        return mount_spec_add(s, type, source, target, opts, err);
}

/* The mounts array of the document: the root, or the root's "mounts". */
static int find_mounts(yajl_val root, yajl_val *ret, struct util_err *err)
{
        yajl_val mounts = NULL;
        char q[UTIL_PREVIEW_SIZE];

        if (YAJL_IS_ARRAY(root)) {
                *ret = root;
                return 0;
        }
        if (!YAJL_IS_OBJECT(root))
                return util_err_setx(err, EINVAL,
                                     "expected an array of mounts or an object with 'mounts'");
        for (size_t i = 0; i < root->u.object.len; i++) {
                const char *key = root->u.object.keys[i];
                if (strcasecmp(key, "mounts") != 0)
                        return util_err_setx(err, EINVAL, "unknown key '%s'",
                                             util_preview(q, key, SIZE_MAX));
                if (mounts)
                        return util_err_setx(err, EINVAL, "key '%s' given twice",
                                             util_preview(q, key, SIZE_MAX));
                mounts = root->u.object.values[i];
                if (!YAJL_IS_ARRAY(mounts))
                        return util_err_setx(err, EINVAL, "mounts: expected an array");
        }
        if (!mounts)
                return util_err_setx(err, EINVAL, "missing 'mounts'");
        *ret = mounts;
        return 0;
}

int mount_spec_from_json(const char *json, size_t len, struct mount_spec **ret,
                         struct util_err *err)
{
        const struct util_json_limits lim = {
                .max_bytes = MOUNT_SPEC_MAX_JSON_BYTES,
                .max_depth = SPEC_JSON_MAX_DEPTH,
        };
        _cleanup_(mount_spec_freep) struct mount_spec *s = NULL;
        _cleanup_json_ yajl_val root = NULL;
        yajl_val mounts = NULL;
        ssize_t nul;
        int r;

        r = util_json_parse(json, len, "mount spec", &lim, &root, err);
        if (r < 0)
                return r;
        nul = find_escaped_nul(json, len);
        if (nul >= 0)
                return util_err_setx(err, EINVAL,
                                     "mount spec: escaped NUL (\\u0000) in a string at offset %zd",
                                     nul);

        r = find_mounts(root, &mounts, err);
        if (r < 0)
                return util_err_prefix(err, "mount spec");
        if (mounts->u.array.len > MOUNT_SPEC_MAX_MOUNTS)
                return util_err_setx(err, EINVAL,
                                     "mount spec: %zu mounts, more than the limit of %u",
                                     mounts->u.array.len, MOUNT_SPEC_MAX_MOUNTS);

        r = mount_spec_new(&s);
        if (r < 0)
                return util_err_set(err, r, "mount spec");
        for (size_t i = 0; i < mounts->u.array.len; i++) {
                r = parse_mount(s, mounts->u.array.values[i], i, err);
                if (r < 0)
                        return util_err_prefix(err, "mount spec");
        }
        *ret = TAKE_PTR(s);
        return 0;
}

/* yajl_gen status to -errno; a string that is not UTF-8 is the usual cause. */
static int gen_check(yajl_gen_status st)
{
        switch (st) {
        case yajl_gen_status_ok:
                return 0;
        case yajl_gen_invalid_string:
                return -EINVAL;
        default:
                return -EIO; /* generator misuse: a bug here, not bad input */
        }
}

static int gen_key_str(yajl_gen g, const char *key, const char *val)
{
        int r = util_json_gen_str(g, key);
        return r < 0 ? r : util_json_gen_str(g, val);
}

static int gen_mount(yajl_gen g, const struct mount_entry *e, size_t idx, struct util_err *err)
{
        int r;

        r = gen_check(yajl_gen_map_open(g));
        if (r < 0)
                return util_err_setx(err, -r, "mounts[%zu]: JSON generator failed", idx);
        r = gen_key_str(g, "type", e->type);
        if (r < 0)
                return util_err_setx(err, -r, "mounts[%zu].type: not valid UTF-8", idx);
        r = gen_key_str(g, "source", e->source);
        if (r < 0)
                return util_err_setx(err, -r, "mounts[%zu].source: not valid UTF-8", idx);
        if (e->target && *e->target) {
                r = gen_key_str(g, "target", e->target);
                if (r < 0)
                        return util_err_setx(err, -r, "mounts[%zu].target: not valid UTF-8", idx);
        }
        r = util_json_gen_str(g, "options");
        if (r >= 0)
                r = gen_check(yajl_gen_array_open(g));
        if (r < 0)
                return util_err_setx(err, -r, "mounts[%zu].options: JSON generator failed", idx);
        for (size_t j = 0; j < e->n_options; j++) {
                r = util_json_gen_str(g, e->options[j]);
                if (r < 0)
                        return util_err_setx(err, -r, "mounts[%zu].options[%zu]: not valid UTF-8",
                                             idx, j);
        }
        r = gen_check(yajl_gen_array_close(g));
        if (r >= 0)
                r = gen_check(yajl_gen_map_close(g));
        if (r < 0)
                return util_err_setx(err, -r, "mounts[%zu]: JSON generator failed", idx);
        return 0;
}

int mount_spec_to_json(const struct mount_spec *s, bool pretty, char **ret, struct util_err *err)
{
        _cleanup_json_gen_ yajl_gen g = NULL;
        char *out = NULL;
        int r;

        if (!s)
                return util_err_setx(err, EINVAL, "mount spec: no spec");
        g = util_json_gen_new(pretty);
        if (!g)
                return util_err_set(err, ENOMEM, "mount spec");
        r = gen_check(yajl_gen_array_open(g));
        if (r < 0)
                return util_err_setx(err, -r, "mount spec: JSON generator failed");
        for (size_t i = 0; i < s->n; i++) {
                r = gen_mount(g, &s->mounts[i], i, err);
                if (r < 0)
                        return util_err_prefix(err, "mount spec");
        }
        r = gen_check(yajl_gen_array_close(g));
        if (r < 0)
                return util_err_setx(err, -r, "mount spec: JSON generator failed");
        r = util_json_gen_finish(g, &out);
        if (r < 0)
                return util_err_set(err, r, "mount spec");
        *ret = out;
        return 0;
}
