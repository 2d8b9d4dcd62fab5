/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-mount-spec: mount specs in JSON (mount_spec_from_json), what a spec
 * file, a label or the plugin boundary hands the engine, followed by the
 * engine's pure first pass over an accepted spec: each mount's options
 * (mount_opts_parse) and the templates it refers to earlier mounts with
 * (mount_template_layers, as mount/engine.c's find_intermediates reads them).
 *
 * Checks, for an accepted spec: yajl's event parser (jsonscan.h) also
 * accepts the document, finds no string with a NUL byte in it (it would have
 * been cut at the NUL) and no nesting beyond the spec's limit of 8; the
 * limits and string rules of mount/spec.h hold; the spec round-trips through
 * mount_spec_to_json (compact and pretty) to an equal spec, and the writer's
 * output is a fixed point; every template refers only to earlier mounts.
 * The error contract (fuzz.h) for every call.
 */
#include "mount/spec.h"
#include "test/fuzz/fuzz.h"
#include "test/fuzz/jsonscan.h"

/* mount/spec-json.c: SPEC_JSON_MAX_DEPTH */
#define SPEC_MAX_DEPTH 8u

static void check_string(const char *s, const char *what, size_t i)
{
        FUZZ_CHECK(s != NULL, "mounts[%zu].%s is NULL", i, what);
        FUZZ_CHECK(strlen(s) <= MOUNT_SPEC_MAX_STRING, "mounts[%zu].%s: %zu bytes", i, what,
                   strlen(s));
        FUZZ_CHECK(fuzz_is_printable(s), "mounts[%zu].%s holds a control character", i, what);
}

static void check_shape(const struct mount_spec *s)
{
        FUZZ_CHECK(s->n <= MOUNT_SPEC_MAX_MOUNTS, "%zu mounts", s->n);
        for (size_t i = 0; i < s->n; i++) {
                const struct mount_entry *e = &s->mounts[i];
                check_string(e->type, "type", i);
                FUZZ_CHECK(e->type[0] != '\0', "mounts[%zu]: empty type", i);
                check_string(e->source, "source", i);
                /* One form for "no target": NULL (spec.c keeps "" as NULL). */
                FUZZ_CHECK(!e->target || e->target[0], "mounts[%zu]: target \"\" kept", i);
                if (e->target)
                        check_string(e->target, "target", i);
                FUZZ_CHECK(e->n_options <= MOUNT_SPEC_MAX_OPTIONS, "mounts[%zu]: %zu options", i,
                           e->n_options);
                FUZZ_CHECK(e->options && !e->options[e->n_options],
                           "mounts[%zu]: options not NULL-terminated", i);
                for (size_t k = 0; k < e->n_options; k++)
                        check_string(e->options[k], "options[]", i);
        }
}

static void roundtrip(const struct mount_spec *s, bool pretty)
{
        struct util_err err = {0};
        struct mount_spec *back = NULL;
        char *text = NULL, *again = NULL;
        int r;

        r = mount_spec_to_json(s, pretty, &text, &err);
        fuzz_check_err(r, &err, "mount_spec_to_json");
        FUZZ_CHECK(r == 0, "an accepted spec cannot be written: %s", err.msg);
        r = mount_spec_from_json(text, strlen(text), &back, &err);
        fuzz_check_err(r, &err, "mount_spec_from_json");
        FUZZ_CHECK(r == 0, "the writer's JSON is refused: %s\n%s", err.msg, text);
        FUZZ_CHECK(mount_spec_equal(s, back), "the JSON round trip changed the spec:\n%s", text);
        r = mount_spec_to_json(back, pretty, &again, &err);
        FUZZ_CHECK(r == 0 && strcmp(text, again) == 0, "the writer is not a fixed point:\n%s\n%s",
                   text, again ? again : "(failed)");
        free(again);
        free(text);
        mount_spec_free(back);
}

/* A string of mount `i` that holds a template, read as the engine's
 * find_intermediates reads it: the value after "key=" or the whole string. */
static void check_refs(const char *str, size_t i)
{
        struct util_err err = {0};
        struct mount_layer *l = NULL;
        size_t n = 0;

        if (!mount_template_has(str))
                return;
        const char *eq = strchr(str, '=');
        const char *value = eq && eq < strstr(str, "{{") ? eq + 1 : str;
        int r = mount_template_layers(value, i, &l, &n, &err);
        fuzz_check_err(r, &err, "mount_template_layers");
        if (r < 0)
                return;
        FUZZ_CHECK(n >= 1, "no layers from '%s'", value);
        for (size_t k = 0; k < n; k++)
                FUZZ_CHECK(!l[k].is_mount || l[k].index < i,
                           "mounts[%zu] refers to mount %zu, not an earlier one", i, l[k].index);
        mount_layers_free(l, n);
}

static void engine_pass(const struct mount_spec *s)
{
        for (size_t i = 0; i < s->n; i++) {
                const struct mount_entry *e = &s->mounts[i];
                struct util_err err = {0};
                struct mount_opts o;

                int r = mount_opts_parse((const char *const *)e->options, e->n_options, &o, &err);
                fuzz_check_err(r, &err, "mount_opts_parse");
                if (r == 0)
                        mount_opts_done(&o);
                check_refs(e->source, i);
                for (size_t k = 0; k < e->n_options; k++)
                        check_refs(e->options[k], i);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct util_err err = {0};
        struct mount_spec *s = NULL;
        int r;

        r = mount_spec_from_json((const char *)data, size, &s, &err);
        fuzz_check_err(r, &err, "mount_spec_from_json");
        if (r < 0) {
                FUZZ_CHECK(s == NULL, "*ret written on failure");
                return 0;
        }
        struct jsonscan j = jsonscan(data, size);
        FUZZ_CHECK(j.ok, "accepted a document yajl's event parser refuses");
        FUZZ_CHECK(!j.nul, "accepted a string with an escaped NUL (it was cut at the NUL)");
        FUZZ_CHECK(j.max <= SPEC_MAX_DEPTH, "accepted nesting %u deep, the limit is %u", j.max,
                   SPEC_MAX_DEPTH);
        check_shape(s);
        roundtrip(s, false);
        roundtrip(s, true);
        engine_pass(s);
        mount_spec_free(s);
        return 0;
}
