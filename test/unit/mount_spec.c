/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the pure part of mount/: the spec model and its JSON form,
 * templates and layer lists, option classification. No privileges needed.
 * Every error case checks the errno, the element named in the message, and
 * that the output was left alone (error contract rule 4). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

#include "mount/spec.h"

#define MAX_OPTS 16

/* ---- helpers ------------------------------------------------------------ */

static struct mount_spec *parse_ok(const char *json)
{
        struct util_err err = {0};
        struct mount_spec *s = NULL;
        int r = mount_spec_from_json(json, strlen(json), &s, &err);
        cr_assert_eq(r, 0, "parse '%.200s': %d %s", json, r, err.msg);
        cr_assert_not_null(s);
        cr_assert_eq(err.errnum, 0, "err untouched on success");
        return s;
}

static char *to_json_ok(const struct mount_spec *s, bool pretty)
{
        struct util_err err = {0};
        char *out = NULL;
        int r = mount_spec_to_json(s, pretty, &out, &err);
        cr_assert_eq(r, 0, "to_json: %d %s", r, err.msg);
        cr_assert_not_null(out);
        return out;
}

/* spec -> JSON (compact and pretty) -> spec must be the same spec. */
static void assert_round_trip(const struct mount_spec *s)
{
        for (int pretty = 0; pretty < 2; pretty++) {
                _cleanup_free_ char *json = to_json_ok(s, pretty);
                _cleanup_(mount_spec_freep) struct mount_spec *back = parse_ok(json);
                cr_assert(mount_spec_equal(s, back), "round trip (pretty=%d) differs: %.300s",
                          pretty, json);
        }
}

static void add_ok(struct mount_spec *s, const char *type, const char *source, const char *target,
                   const char *const *options)
{
        struct util_err err = {0};
        int r = mount_spec_add(s, type, source, target, options, &err);
        cr_assert_eq(r, 0, "add: %d %s", r, err.msg);
}

/* ---- spec model --------------------------------------------------------- */

Test(mount_spec, add_copies_and_normalises_empty_target)
{
        _cleanup_(mount_spec_freep) struct mount_spec *s = NULL;
        char type[] = "ext4", opt[] = "ro";
        const char *opts[] = {opt, "loop", NULL};

        cr_assert_eq(mount_spec_new(&s), 0);
        cr_assert_eq(s->n, 0);
        add_ok(s, type, "/a.img", "", opts);
        add_ok(s, "overlay", "overlay", "/sub", NULL);
        type[0] = 'X';
        opt[0] = 'X';
        cr_assert_eq(s->n, 2);
        cr_assert_str_eq(s->mounts[0].type, "ext4", "strings are copied");
        cr_assert_str_eq(s->mounts[0].options[0], "ro");
        cr_assert_null(s->mounts[0].target, "\"\" target is kept as NULL");
        cr_assert_eq(s->mounts[0].n_options, 2);
        cr_assert_null(s->mounts[0].options[2], "options are NULL-terminated");
        cr_assert_str_eq(s->mounts[1].target, "/sub");
        cr_assert_eq(s->mounts[1].n_options, 0);
        cr_assert_null(mount_spec_free(NULL));
}

Test(mount_spec, add_rejects_table)
{
        static char long_str[MOUNT_SPEC_MAX_STRING + 2];
        memset(long_str, 'a', MOUNT_SPEC_MAX_STRING + 1);
        static const char *const bad_ctl[] = {"ro", "a\tb", NULL};
        static const struct {
                const char *type, *source, *target;
                const char *const *options;
                const char *msg;
        } cases[] = {
                {"", "s", NULL, NULL, "mounts[1]: type is missing or empty"},
                {NULL, "s", NULL, NULL, "mounts[1]: type is missing or empty"},
                {"ext4", NULL, NULL, NULL, "mounts[1]: source is missing"},
                {"ext\n4", "s", NULL, NULL, "mounts[1].type: control character 0x0a at byte 3"},
                {"ext4", "s\x1b[31m", NULL, NULL,
                 "mounts[1].source: control character 0x1b at byte 1"},
                {"ext4", "s", "/t\x7f", NULL, "mounts[1].target: control character 0x7f at byte 2"},
                {"ext4", "s", NULL, bad_ctl,
                 "mounts[1].options[1]: control character 0x09 at byte 1"},
                {"ext4", long_str, NULL, NULL, "mounts[1].source: longer than 65536 bytes"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                _cleanup_(mount_spec_freep) struct mount_spec *s = NULL;
                struct util_err err = {0};
                cr_assert_eq(mount_spec_new(&s), 0);
                add_ok(s, "tmpfs", "tmpfs", NULL, NULL);
                int r = mount_spec_add(s, cases[i].type, cases[i].source, cases[i].target,
                                       cases[i].options, &err);
                cr_expect_eq(r, -EINVAL, "case %zu: %d", i, r);
                cr_expect_eq(err.errnum, EINVAL, "case %zu", i);
                cr_expect_str_eq(err.msg, cases[i].msg, "case %zu: %s", i, err.msg);
                cr_expect_eq(s->n, 1, "case %zu: nothing added", i);
        }
}

Test(mount_spec, add_limits)
{
        _cleanup_(mount_spec_freep) struct mount_spec *s = NULL;
        static char exact[MOUNT_SPEC_MAX_STRING + 1];
        static const char *opts[MOUNT_SPEC_MAX_OPTIONS + 2];
        struct util_err err = {0};

        memset(exact, 'b', MOUNT_SPEC_MAX_STRING);
        cr_assert_eq(mount_spec_new(&s), 0);
        add_ok(s, "ext4", exact, NULL, NULL); /* exactly the limit is fine */

        for (size_t i = 0; i < MOUNT_SPEC_MAX_OPTIONS; i++)
                opts[i] = "ro";
        add_ok(s, "ext4", "s", NULL, opts); /* 256 options */
        opts[MOUNT_SPEC_MAX_OPTIONS] = "ro";
        cr_assert_eq(mount_spec_add(s, "ext4", "s", NULL, opts, &err), -EINVAL);
        cr_assert_str_eq(err.msg, "mounts[2]: more than 256 options");
        cr_assert_eq(s->n, 2);

        while (s->n < MOUNT_SPEC_MAX_MOUNTS)
                add_ok(s, "tmpfs", "tmpfs", NULL, NULL);
        util_err_clear(&err);
        cr_assert_eq(mount_spec_add(s, "tmpfs", "tmpfs", NULL, NULL, &err), -EINVAL);
        cr_assert_str_eq(err.msg, "mounts[1024]: more than 1024 mounts");
        cr_assert_eq(s->n, MOUNT_SPEC_MAX_MOUNTS);
}

Test(mount_spec, equal_detects_every_difference)
{
        static const char *const o1[] = {"ro", "loop", NULL};
        static const char *const o2[] = {"loop", "ro", NULL};
        static const char *const o3[] = {"ro", NULL};
        static const char *const o4[] = {"ro", "loop", "x", NULL};
        static const struct {
                const char *type, *source, *target;
                const char *const *options;
                bool equal;
        } cases[] = {
                {"ext4", "/a", NULL, o1, true},    {"ext4", "/a", "", o1, true},
                {"xfs", "/a", NULL, o1, false},    {"ext4", "/b", NULL, o1, false},
                {"ext4", "/a", "/t", o1, false},   {"ext4", "/a", NULL, o2, false},
                {"ext4", "/a", NULL, o3, false},   {"ext4", "/a", NULL, o4, false},
                {"ext4", "/a", NULL, NULL, false},
        };
        _cleanup_(mount_spec_freep) struct mount_spec *a = NULL;
        cr_assert_eq(mount_spec_new(&a), 0);
        add_ok(a, "ext4", "/a", NULL, o1);
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                _cleanup_(mount_spec_freep) struct mount_spec *b = NULL;
                cr_assert_eq(mount_spec_new(&b), 0);
                add_ok(b, cases[i].type, cases[i].source, cases[i].target, cases[i].options);
                cr_expect_eq(mount_spec_equal(a, b), cases[i].equal, "case %zu", i);
                cr_expect_eq(mount_spec_equal(b, a), cases[i].equal, "case %zu reversed", i);
        }
        _cleanup_(mount_spec_freep) struct mount_spec *two = NULL;
        cr_assert_eq(mount_spec_new(&two), 0);
        add_ok(two, "ext4", "/a", NULL, o1);
        add_ok(two, "ext4", "/a", NULL, o1);
        cr_expect_not(mount_spec_equal(a, two), "different number of mounts");
        cr_expect_not(mount_spec_equal(a, NULL));
        cr_expect(mount_spec_equal(NULL, NULL));
}

/* ---- JSON --------------------------------------------------------------- */

Test(mount_spec_json, parse_fields_and_key_spellings)
{
        static const struct {
                const char *json;
                const char *type, *source, *target; /* of the last mount */
                size_t n, n_options;
        } cases[] = {
                {"[{\"type\":\"ext4\",\"source\":\"/a.img\",\"target\":\"/t\",\"options\":[\"ro\","
                 "\"loop\"]}]",
                 "ext4", "/a.img", "/t", 1, 2},
                {"[{\"Type\":\"ext4\",\"Source\":\"/a.img\",\"Target\":\"/"
                 "t\",\"Options\":[\"ro\"]}]",
                 "ext4", "/a.img", "/t", 1, 1},
                {"[{\"TYPE\":\"xfs\",\"sOuRcE\":\"/b\"}]", "xfs", "/b", NULL, 1, 0},
                {"{\"mounts\":[{\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":null,"
                 "\"target\":null}]}",
                 "tmpfs", "tmpfs", NULL, 1, 0},
                {"{\"Mounts\":[{\"type\":\"a\",\"source\":\"\",\"target\":\"\"},"
                 "{\"type\":\"b\",\"source\":\"s\",\"options\":[]}]}",
                 "b", "s", NULL, 2, 0},
                {"[{\"type\":\"ext4\",\"source\":\"/var/lib/\\u00fc/日本/🙂\",\"options\":"
                 "[\"x=\\u65e5\"]}]",
                 "ext4", "/var/lib/ü/日本/🙂", NULL, 1, 1},
                /* an escaped backslash followed by "u0000" is text, not NUL */
                {"[{\"type\":\"t\",\"source\":\"a\\\\u0000\"}]", "t", "a\\u0000", NULL, 1, 0},
                {"  [ ]  ", NULL, NULL, NULL, 0, 0},
                {"{\"mounts\":[]}", NULL, NULL, NULL, 0, 0},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                _cleanup_(mount_spec_freep) struct mount_spec *s = parse_ok(cases[i].json);
                cr_expect_eq(s->n, cases[i].n, "case %zu", i);
                if (s->n != cases[i].n || s->n == 0)
                        continue;
                const struct mount_entry *e = &s->mounts[s->n - 1];
                cr_expect_str_eq(e->type, cases[i].type, "case %zu", i);
                cr_expect_str_eq(e->source, cases[i].source, "case %zu", i);
                if (cases[i].target)
                        cr_expect_str_eq(e->target ? e->target : "(null)", cases[i].target,
                                         "case %zu", i);
                else
                        cr_expect_null(e->target, "case %zu", i);
                cr_expect_eq(e->n_options, cases[i].n_options, "case %zu", i);
                assert_round_trip(s);
        }
}

Test(mount_spec_json, output_form_is_exact)
{
        _cleanup_(mount_spec_freep) struct mount_spec *s = parse_ok(
                "[{\"Type\":\"ext4\",\"Source\":\"/a.img\",\"Target\":\"\",\"Options\":[\"ro\","
                "\"loop\"]},{\"type\":\"overlay\",\"source\":\"overlay\",\"target\":\"/x\"}]");
        _cleanup_free_ char *json = to_json_ok(s, false);
        cr_assert_str_eq(json, "[{\"type\":\"ext4\",\"source\":\"/a.img\",\"options\":[\"ro\","
                               "\"loop\"]},{\"type\":\"overlay\",\"source\":\"overlay\","
                               "\"target\":\"/x\",\"options\":[]}]");
        _cleanup_free_ char *pretty = to_json_ok(s, true);
        cr_assert(strchr(pretty, '\n'), "pretty output is indented");

        _cleanup_(mount_spec_freep) struct mount_spec *empty = NULL;
        cr_assert_eq(mount_spec_new(&empty), 0);
        _cleanup_free_ char *e = to_json_ok(empty, false);
        cr_assert_str_eq(e, "[]");
}

Test(mount_spec_json, to_json_rejects_invalid_utf8)
{
        _cleanup_(mount_spec_freep) struct mount_spec *s = NULL;
        static const char *const opts[] = {"ro", "x=\xff\xfe", NULL};
        struct util_err err = {0};
        char *out = (char *)"untouched";

        cr_assert_eq(mount_spec_new(&s), 0);
        add_ok(s, "ext4", "/a", NULL, NULL);
        add_ok(s, "ext4", "/a", NULL, opts);
        cr_assert_eq(mount_spec_to_json(s, false, &out, &err), -EINVAL);
        cr_assert_str_eq(err.msg, "mount spec: mounts[1].options[1]: not valid UTF-8");
        cr_assert_str_eq(out, "untouched");
}

Test(mount_spec_json, thousand_mounts_round_trip)
{
        _cleanup_(mount_spec_freep) struct mount_spec *s = NULL;
        cr_assert_eq(mount_spec_new(&s), 0);
        for (size_t i = 0; i < 1000; i++) {
                char src[64], opt[64];
                snprintf(src, sizeof(src), "/var/lib/loopsnap/images/%zu/fs.img", i);
                snprintf(opt, sizeof(opt), "X-loopsnap.layer=%zu", i);
                const char *opts[] = {"ro", "loop", opt, NULL};
                add_ok(s, "ext4", src, i % 3 ? NULL : "/sub", opts);
        }
        add_ok(s, "overlay", "overlay", NULL,
               (const char *const[]){"lowerdir={{ overlay 999 0 }}", "index=off", NULL});
        cr_assert_eq(s->n, 1001);
        assert_round_trip(s);

        /* A spec that differs in one option of one mount is not equal. */
        _cleanup_free_ char *json = to_json_ok(s, false);
        char *p = strstr(json, "X-loopsnap.layer=500\"");
        cr_assert_not_null(p);
        p[strlen("X-loopsnap.layer=")] = '6';
        _cleanup_(mount_spec_freep) struct mount_spec *changed = parse_ok(json);
        cr_assert_not(mount_spec_equal(s, changed));
}

Test(mount_spec_json, five_hundred_options_and_layers)
{
        /* 500 options over two mounts (the per-mount limit is 256), and one
         * option carrying 500 lower layers. */
        _cleanup_(mount_spec_freep) struct mount_spec *s = NULL;
        static char names[500][24];
        static const char *opts[257];
        size_t cap = 500 * 12 + 32;
        _cleanup_free_ char *lower = malloc(cap);
        size_t len = (size_t)snprintf(lower, cap, "lowerdir=");

        cr_assert_eq(mount_spec_new(&s), 0);
        for (size_t m = 0; m < 2; m++) {
                for (size_t i = 0; i < 250; i++) {
                        snprintf(names[m * 250 + i], sizeof(names[0]), "opt%zu=v", m * 250 + i);
                        opts[i] = names[m * 250 + i];
                }
                opts[250] = NULL;
                add_ok(s, "fuse.x", "src", NULL, opts);
        }
        for (size_t i = 0; i < 500; i++)
                len += (size_t)snprintf(lower + len, cap - len, "%s/l%zu", i ? ":" : "", i);
        add_ok(s, "overlay", "overlay", NULL, (const char *const[]){lower, NULL});
        assert_round_trip(s);

        struct mount_layer *layers = NULL;
        size_t n = 0;
        struct util_err err = {0};
        cr_assert_eq(mount_template_layers(lower + strlen("lowerdir="), 2, &layers, &n, &err), 0,
                     "%s", err.msg);
        cr_assert_eq(n, 500);
        cr_assert_str_eq(layers[499].path, "/l499");
        mount_layers_free(layers, n);
}

Test(mount_spec_json, options_at_the_limit_and_over)
{
        size_t cap = 600 * 8 + 100;
        _cleanup_free_ char *ok = malloc(cap);
        _cleanup_free_ char *over = malloc(cap);
        struct util_err err = {0};
        struct mount_spec *s = NULL;

        for (int pass = 0; pass < 2; pass++) {
                /* cppcheck-suppress [duplicateValueTernary,uninitdata] ; two buffers */
                char *buf = pass ? over : ok;
                size_t n = pass ? 500 : MOUNT_SPEC_MAX_OPTIONS;
                size_t len = (size_t)snprintf(buf, cap,
                                              "[{\"type\":\"t\",\"source\":\"s\",\"options\":[");
                for (size_t i = 0; i < n; i++)
                        len += (size_t)snprintf(buf + len, cap - len, "%s\"o%zu\"", i ? "," : "",
                                                i);
                snprintf(buf + len, cap - len, "]}]");
        }
        _cleanup_(mount_spec_freep) struct mount_spec *at = parse_ok(ok);
        cr_assert_eq(at->mounts[0].n_options, MOUNT_SPEC_MAX_OPTIONS);
        assert_round_trip(at);

        cr_assert_eq(mount_spec_from_json(over, strlen(over), &s, &err), -EINVAL);
        cr_assert_str_eq(err.msg,
                         "mount spec: mounts[0].options: 500 options, more than the limit of 256");
        cr_assert_null(s);
}

struct bad_json {
        const char *json;
        int r;
        const char *msg; /* expected substring */
};

static void check_bad(const char *json, size_t len, int want, const char *msg, size_t i)
{
        struct util_err err = {0};
        struct mount_spec *s = (struct mount_spec *)&err; /* sentinel: must stay */
        int r = mount_spec_from_json(json, len, &s, &err);
        cr_expect_eq(r, want, "case %zu '%.80s': %d (%s)", i, json ? json : "(null)", r, err.msg);
        cr_expect_eq(err.errnum, -want, "case %zu", i);
        cr_expect(strncmp(err.msg, "mount spec: ", 12) == 0, "case %zu: '%s'", i, err.msg);
        cr_expect(strstr(err.msg, msg), "case %zu: '%s' lacks '%s'", i, err.msg, msg);
        cr_expect_eq(s, (struct mount_spec *)&err, "case %zu: ret untouched", i);
}

Test(mount_spec_json, malformed_table)
{
        static const struct bad_json cases[] = {
                /* not JSON */
                {"", -EINVAL, "invalid JSON"},
                {"[", -EINVAL, "invalid JSON"},
                {"[{\"type\":\"ext4\",\"source\":\"/a\"}", -EINVAL, "invalid JSON"},
                {"[{\"type\":\"ext4\",\"sou", -EINVAL, "invalid JSON"},
                {"[] x", -EINVAL, "trailing garbage"},
                {"[]]", -EINVAL, "invalid JSON"},
                {"[\"\xff\"]", -EINVAL, "invalid JSON"},
                /* wrong types: top level */
                {"5", -EINVAL, "mount spec: expected an array of mounts or an object"},
                {"\"x\"", -EINVAL, "expected an array of mounts"},
                {"null", -EINVAL, "expected an array of mounts"},
                {"{}", -EINVAL, "mount spec: missing 'mounts'"},
                {"{\"mounts\":5}", -EINVAL, "mount spec: mounts: expected an array"},
                {"{\"mounts\":{}}", -EINVAL, "mount spec: mounts: expected an array"},
                {"{\"mounts\":[],\"x\":1}", -EINVAL, "mount spec: unknown key 'x'"},
                {"{\"mounts\":[],\"MOUNTS\":[]}", -EINVAL, "mount spec: key 'MOUNTS' given twice"},
                /* wrong types: a mount */
                {"[5]", -EINVAL, "mount spec: mounts[0]: expected an object"},
                {"[{\"type\":\"a\",\"source\":\"b\"},[]]", -EINVAL,
                 "mount spec: mounts[1]: expected an object"},
                {"[{\"type\":\"a\",\"source\":\"b\"},{\"type\":\"a\",\"source\":\"b\",\"Opts\":[]}"
                 "]",
                 -EINVAL, "mount spec: mounts[1]: unknown key 'Opts'"},
                {"[{\"type\":\"a\",\"Type\":\"b\",\"source\":\"b\"}]", -EINVAL,
                 "mount spec: mounts[0]: key 'Type' given twice"},
                {"[{\"source\":\"b\"}]", -EINVAL, "mount spec: mounts[0]: missing 'type'"},
                {"[{\"type\":\"a\"}]", -EINVAL, "mount spec: mounts[0]: missing 'source'"},
                {"[{\"type\":5,\"source\":\"b\"}]", -EINVAL,
                 "mount spec: mounts[0].type: expected a string"},
                {"[{\"type\":null,\"source\":\"b\"}]", -EINVAL,
                 "mount spec: mounts[0].type: expected a string"},
                {"[{\"type\":\"\",\"source\":\"b\"}]", -EINVAL,
                 "mount spec: mounts[0]: type is missing or empty"},
                {"[{\"type\":\"a\",\"source\":[\"b\"]}]", -EINVAL,
                 "mount spec: mounts[0].source: expected a string"},
                {"[{\"type\":\"a\",\"source\":null}]", -EINVAL,
                 "mount spec: mounts[0].source: expected a string"},
                {"[{\"type\":\"a\",\"source\":\"b\",\"target\":true}]", -EINVAL,
                 "mount spec: mounts[0].target: expected a string"},
                {"[{\"type\":\"a\",\"source\":\"b\",\"options\":\"ro\"}]", -EINVAL,
                 "mount spec: mounts[0].options: expected an array of strings"},
                {"[{\"type\":\"a\",\"source\":\"b\",\"options\":{}}]", -EINVAL,
                 "mount spec: mounts[0].options: expected an array of strings"},
                /* wrong types: an option */
                {"[{\"type\":\"a\",\"source\":\"b\"},{\"type\":\"a\",\"source\":\"b\"},{\"type\":"
                 "\"a\",\"source\":\"b\",\"options\":[\"ro\",1]}]",
                 -EINVAL, "mount spec: mounts[2].options[1]: expected a string"},
                {"[{\"type\":\"a\",\"source\":\"b\",\"options\":[null]}]", -EINVAL,
                 "mount spec: mounts[0].options[0]: expected a string"},
                {"[{\"type\":\"a\",\"source\":\"b\",\"options\":[[\"ro\"]]}]", -EINVAL,
                 "mount spec: mounts[0].options[0]: expected a string"},
                {"[{\"type\":\"a\",\"source\":\"b\",\"options\":[\"ro\",\"x\",{}]}]", -EINVAL,
                 "mount spec: mounts[0].options[2]: expected a string"},
                /* strings that would be cut or smuggle control characters */
                {"[{\"type\":\"a\",\"source\":\"b\",\"options\":[\"lowerdir=/a\\u0000,upperdir=/"
                 "etc\"]}]",
                 -EINVAL, "mount spec: escaped NUL (\\u0000) in a string at offset 49"},
                {"[{\"type\":\"a\",\"source\":\"b\\u0001\"}]", -EINVAL,
                 "mount spec: mounts[0].source: control character 0x01 at byte 1"},
                {"[{\"type\":\"a\",\"source\":\"b\",\"options\":[\"ro\",\"a\\nb\"]}]", -EINVAL,
                 "mount spec: mounts[0].options[1]: control character 0x0a at byte 1"},
                {"[{\"type\":\"a\",\"source\":\"b\",\"target\":\"/t\\u007f\"}]", -EINVAL,
                 "mount spec: mounts[0].target: control character 0x7f"},
                {"[{\"type\":\"a\\tb\",\"source\":\"b\"}]", -EINVAL,
                 "mount spec: mounts[0].type: control character 0x09"},
                /* unknown keys are quoted safely */
                {"[{\"type\":\"a\",\"source\":\"b\",\"x\\u001by\":1}]", -EINVAL,
                 "mount spec: mounts[0]: unknown key 'x?y'"},
                /* nesting: 8 levels are parsed (and the value is wrong), 9 are refused */
                {"{\"mounts\":[{\"type\":\"a\",\"source\":\"b\",\"options\":[[[[[\"x\"]]]]]}]}",
                 -EINVAL, "mount spec: mounts[0].options[0]: expected a string"},
                {"{\"mounts\":[{\"type\":\"a\",\"source\":\"b\",\"options\":[[[[[[\"x\"]]]]]]}]}",
                 -ELOOP, "nested deeper than 8 levels"},
                {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
                 -ELOOP, "nested deeper than 8 levels"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++)
                check_bad(cases[i].json, strlen(cases[i].json), cases[i].r, cases[i].msg, i);
}

Test(mount_spec_json, nul_byte_and_sizes)
{
        static const char with_nul[] = "[{\"type\":\"a\",\"source\":\"b\0c\"}]";
        check_bad(with_nul, sizeof(with_nul) - 1, -EINVAL, "NUL byte at offset 24", 0);

        /* Over the spec's 4 MiB limit: E2BIG. */
        size_t big = MOUNT_SPEC_MAX_JSON_BYTES + 1;
        _cleanup_free_ char *doc = malloc(big + 1);
        memset(doc, ' ', big);
        memcpy(doc, "[]", 2);
        doc[big] = '\0';
        check_bad(doc, big, -E2BIG, "more than the limit of 4194304", 1);

        /* 2 MiB (over util's 1 MiB default) is within the spec's limit. */
        doc[2 << 20] = '\0';
        _cleanup_(mount_spec_freep) struct mount_spec *s = parse_ok(doc);
        cr_assert_eq(s->n, 0);

        /* One string over 64 KiB is refused, naming it. */
        size_t n = MOUNT_SPEC_MAX_STRING + 1;
        _cleanup_free_ char *longsrc = malloc(n + 64);
        int len = snprintf(longsrc, 64, "[{\"type\":\"a\",\"source\":\"b\",\"options\":[\"");
        memset(longsrc + len, 'x', n);
        strcpy(longsrc + len + n, "\"]}]");
        check_bad(longsrc, strlen(longsrc), -EINVAL,
                  "mount spec: mounts[0].options[0]: longer than 65536 bytes", 2);

        /* 1025 mounts are refused before any is built. */
        size_t cap = 1100 * 32;
        _cleanup_free_ char *many = malloc(cap);
        size_t off = (size_t)snprintf(many, cap, "[");
        for (size_t i = 0; i < MOUNT_SPEC_MAX_MOUNTS + 1; i++)
                off += (size_t)snprintf(many + off, cap - off,
                                        "%s{\"type\":\"t\",\"source\":\"s\"}", i ? "," : "");
        snprintf(many + off, cap - off, "]");
        check_bad(many, strlen(many), -EINVAL,
                  "mount spec: 1025 mounts, more than the limit of 1024", 3);
}

Test(mount_spec_json, null_input)
{
        check_bad(NULL, 0, -EINVAL, "no input", 0);
}

/* ---- templates ---------------------------------------------------------- */

static const char *const mountpoints[] = {"/m0", "/m1", "/m2", "/m3", "/m4"};

Test(mount_template, resolve_table)
{
        static const struct {
                const char *in;
                size_t self;
                const char *out; /* NULL: error */
                const char *msg; /* the whole message */
        } cases[] = {
                {"lowerdir={{ mount 0 }}", 1, "lowerdir=/m0", NULL},
                {"{{mount 0}}", 1, "/m0", NULL},
                {"{{   mount\t1   }}", 2, "/m1", NULL},
                {"{{\tmount 00 }}", 1, "/m0", NULL},
                {"{{ overlay 0 2 }}", 3, "/m0:/m1:/m2", NULL},
                {"{{ overlay 2 0 }}", 3, "/m2:/m1:/m0", NULL},
                {"{{overlay 3  1}}", 4, "/m3:/m2:/m1", NULL},
                {"{{ overlay 1 1 }}", 2, "/m1", NULL},
                {"lowerdir={{ overlay 1 0 }},upperdir={{ mount 2 }}/u", 3,
                 "lowerdir=/m1:/m0,upperdir=/m2/u", NULL},
                {"a{{ mount 0 }}b{{ mount 1 }}c", 2, "a/m0b/m1c", NULL},
                {"{{ mount 0 }}}", 1, "/m0}", NULL},
                {"plain text", 0, "plain text", NULL},
                {"}} { }", 0, "}} { }", NULL},
                {"", 0, "", NULL},
                {"{{ mount 3 }}", 2, NULL,
                 "'{{ mount 3 }}' refers forward: mount 3 is not before mount 2"},
                {"{{ mount 2 }}", 2, NULL,
                 "'{{ mount 2 }}' refers to itself: mount 2 is not before mount 2"},
                {"{{ mount 0 }}", 0, NULL,
                 "'{{ mount 0 }}' refers to itself: mount 0 is not before mount 0"},
                {"{{ overlay 0 2 }}", 2, NULL,
                 "'{{ overlay 0 2 }}' refers to itself: mount 2 is not before mount 2"},
                {"x={{ overlay 4 0 }}", 3, NULL,
                 "'{{ overlay 4 0 }}' refers forward: mount 4 is not before mount 3"},
                {"{{ foo 1 }}", 2, NULL,
                 "'{{ foo 1 }}': unknown template 'foo' (expected 'mount N' or 'overlay A B')"},
                {"{{ MOUNT 0 }}", 2, NULL,
                 "'{{ MOUNT 0 }}': unknown template 'MOUNT' (expected 'mount N' or 'overlay A "
                 "B')"},
                {"{{mount0}}", 2, NULL,
                 "'{{mount0}}': unknown template 'mount0' (expected 'mount N' or 'overlay A B')"},
                {"{{ mount }}", 2, NULL, "'{{ mount }}': 'mount' needs one mount index"},
                {"{{ overlay 1 }}", 2, NULL,
                 "'{{ overlay 1 }}': 'overlay' needs two mount indexes"},
                {"{{ mount 0 1 }}", 2, NULL,
                 "'{{ mount 0 1 }}': 'mount' takes only one mount index"},
                {"{{ overlay 0 1 1 }}", 2, NULL,
                 "'{{ overlay 0 1 1 }}': 'overlay' takes only two mount indexes"},
                {"{{ mount -1 }}", 2, NULL, "'{{ mount -1 }}': '-1' is not a mount index"},
                {"{{ mount +1 }}", 2, NULL, "'{{ mount +1 }}': '+1' is not a mount index"},
                {"{{ mount 0x1 }}", 2, NULL, "'{{ mount 0x1 }}': '0x1' is not a mount index"},
                {"{{ mount 99999999999999999999999 }}", 2, NULL,
                 "'{{ mount 99999999999999999999999 }}': '99999999999999999999999' is not a "
                 "mount index"},
                {"{{ }}", 2, NULL, "'{{ }}': empty template"},
                {"{{}}", 2, NULL, "'{{}}': empty template"},
                {"lowerdir={{ mount 0", 2, NULL, "'{{ mount 0': '{{' without '}}'"},
                {"{{ mount 0 }} {{", 2, NULL, "'{{': '{{' without '}}'"},
                {"{{ mount 0 } }", 2, NULL, "'{{ mount 0 } }': '{{' without '}}'"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                struct util_err err = {0};
                char *out = (char *)"untouched";
                int r = mount_template_resolve(cases[i].in, cases[i].self, mountpoints, &out, &err);
                if (cases[i].out) {
                        cr_expect_eq(r, 0, "case %zu '%s': %s", i, cases[i].in, err.msg);
                        if (r == 0) {
                                cr_expect_str_eq(out, cases[i].out, "case %zu", i);
                                free(out);
                        }
                        cr_expect_eq(err.errnum, 0, "case %zu", i);
                        cr_expect_eq(mount_template_has(cases[i].in),
                                     strstr(cases[i].in, "{{") != NULL, "case %zu", i);
                } else {
                        cr_expect_eq(r, -EINVAL, "case %zu '%s': %d", i, cases[i].in, r);
                        cr_expect_str_eq(err.msg, cases[i].msg, "case %zu: '%s'", i, err.msg);
                        cr_expect_str_eq(out, "untouched", "case %zu", i);
                        cr_expect(mount_template_has(cases[i].in), "case %zu", i);
                }
        }
}

Test(mount_template, resolve_missing_mountpoint_and_long_quote)
{
        static const char *const mps[] = {"/m0", NULL};
        struct util_err err = {0};
        char *out = NULL;

        cr_assert_eq(mount_template_resolve("{{ overlay 1 0 }}", 2, mps, &out, &err), -EINVAL);
        cr_assert_str_eq(err.msg, "'{{ overlay 1 0 }}': mount 1 has no mountpoint");
        cr_assert_null(out);

        /* A long template is quoted cut, and the reason still fits. */
        char in[300];
        snprintf(in, sizeof(in), "{{ mount %0200d }}", 7);
        util_err_clear(&err);
        cr_assert_eq(mount_template_resolve(in, 1, mountpoints, &out, &err), -EINVAL);
        cr_assert(strstr(err.msg, "...' refers forward: mount 7 is not before mount 1"), "%s",
                  err.msg);
}

Test(mount_template, has_table)
{
        cr_expect(mount_template_has("{{ mount 0 }}"));
        cr_expect(mount_template_has("a{{"));
        cr_expect_not(mount_template_has("a{b}c }}"));
        cr_expect_not(mount_template_has(""));
        cr_expect_not(mount_template_has(NULL));
}

/* Layers encoded as "#N" (mount N) or the path, joined with '|'. */
static void layers_str(const struct mount_layer *l, size_t n, char *buf, size_t size)
{
        size_t len = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < n && len < size; i++) {
                if (l[i].is_mount)
                        len += (size_t)snprintf(buf + len, size - len, "%s#%zu%s%s", i ? "|" : "",
                                                l[i].index, l[i].path ? "/" : "",
                                                l[i].path ? l[i].path : "");
                else
                        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? "|" : "",
                                                l[i].path);
        }
}

Test(mount_template, layers_table)
{
        static const struct {
                const char *value;
                size_t self;
                const char *layers; /* NULL: error */
                const char *msg;    /* the whole message */
        } cases[] = {
                {"/a:/b", 0, "/a|/b", NULL},
                {"/rel/a:/b:/c/d e", 0, "/rel/a|/b|/c/d e", NULL},
                {"/only", 0, "/only", NULL},
                {"{{ mount 1 }}", 2, "#1", NULL},
                {"{{mount 0}}:{{ mount 1 }}", 2, "#0|#1", NULL},
                {"{{ overlay 2 0 }}:/base", 3, "#2|#1|#0|/base", NULL},
                {"{{ overlay 0 2 }}", 3, "#0|#1|#2", NULL},
                {"/top:{{ overlay 3 2 }}:{{ overlay 0 1 }}", 4, "/top|#3|#2|#0|#1", NULL},
                {"/a}}b", 0, "/a}}b", NULL},
                /* A directory inside a mount, as containerd writes upperdir=. */
                {"/a:{{ mount 0 }}/fs", 1, "/a|#0/fs", NULL},
                {"{{ mount 1 }}/upper:{{ mount 0 }}/a/b", 2, "#1/upper|#0/a/b", NULL},
                {"{{ overlay 1 0 }}/upper", 2, "#1/upper|#0/upper", NULL},
                {"x{{ mount 0 }}", 1, NULL,
                 "'x{{ mount 0 }}': layers[0] 'x{{ mount 0 }}': mixes text with a template (a "
                 "template must be a whole layer)"},
                {"{{ mount 0 }}{{ mount 1 }}", 2, NULL,
                 "'{{ mount 0 }}{{ mount 1 }}': layers[0] '{{ mount 0 }}{{ mount 1 }}': after a "
                 "template only '/relative/sub/dir' may follow (no '..', '.', empty parts, ',' "
                 "or '\\')"},
                {"{{ mount 0 }}/../etc", 1, NULL,
                 "'{{ mount 0 }}/../etc': layers[0] '{{ mount 0 }}/../etc': after a template "
                 "only '/relative/sub/dir' may follow (no '..', '.', empty parts, ',' or '\\')"},
                {"{{ mount 0 }}//x", 1, NULL,
                 "'{{ mount 0 }}//x': layers[0] '{{ mount 0 }}//x': after a template only "
                 "'/relative/sub/dir' may follow (no '..', '.', empty parts, ',' or '\\')"},
                {"{{ mount 0 }}/", 1, NULL,
                 "'{{ mount 0 }}/': layers[0] '{{ mount 0 }}/': after a template only "
                 "'/relative/sub/dir' may follow (no '..', '.', empty parts, ',' or '\\')"},
                {"{{ mount 0 }}upper", 1, NULL,
                 "'{{ mount 0 }}upper': layers[0] '{{ mount 0 }}upper': after a template only "
                 "'/relative/sub/dir' may follow (no '..', '.', empty parts, ',' or '\\')"},
                {"rel/a", 0, NULL,
                 "'rel/a': layers[0] 'rel/a': not an absolute path (legacy mounts resolve "
                 "layers from another directory)"},
                {"/a::/b", 0, NULL, "'/a::/b': layers[1] is empty"},
                {":/a", 0, NULL, "':/a': layers[0] is empty"},
                {"/a:", 0, NULL, "'/a:': layers[1] is empty"},
                {"", 0, NULL, "'': layers[0] is empty"},
                {":", 0, NULL, "':': layers[0] is empty"},
                {"/a,upperdir=/etc", 0, NULL,
                 "'/a,upperdir=/etc': layers[0] '/a,upperdir=/etc': contains ',' (mount data "
                 "would read it as the end of the option)"},
                {"/a\\:b", 0, NULL,
                 "'/a\\:b': layers[0] '/a\\': contains '\\' (mount data would read it as an "
                 "escape)"},
                {"/a:/b\nc", 0, NULL, "'/a:/b?c': layers[1]: control character 0x0a at byte 2"},
                {"{{ mount 3 }}", 1, NULL,
                 "'{{ mount 3 }}': layers[0]: '{{ mount 3 }}' refers forward: mount 3 is not "
                 "before mount 1"},
                {"/a:{{ overlay 0 1 }}", 1, NULL,
                 "'/a:{{ overlay 0 1 }}': layers[1]: '{{ overlay 0 1 }}' refers to itself: mount "
                 "1 is not before mount 1"},
                {"{{ overlay 0 }}", 2, NULL,
                 "'{{ overlay 0 }}': layers[0]: '{{ overlay 0 }}': 'overlay' needs two mount "
                 "indexes"},
                {"{{ mount 0:1 }}", 2, NULL,
                 "'{{ mount 0:1 }}': layers[0]: '{{ mount 0': '{{' without '}}'"},
                {"{{ lower 0 }}", 2, NULL,
                 "'{{ lower 0 }}': layers[0]: '{{ lower 0 }}': unknown template 'lower' (expected "
                 "'mount N' or 'overlay A B')"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                struct util_err err = {0};
                struct mount_layer *l = (struct mount_layer *)&err;
                size_t n = 12345;
                int r = mount_template_layers(cases[i].value, cases[i].self, &l, &n, &err);
                if (cases[i].layers) {
                        char buf[256];
                        cr_expect_eq(r, 0, "case %zu '%s': %s", i, cases[i].value, err.msg);
                        if (r < 0)
                                continue;
                        layers_str(l, n, buf, sizeof(buf));
                        cr_expect_str_eq(buf, cases[i].layers, "case %zu", i);
                        mount_layers_free(l, n);
                } else {
                        cr_expect_eq(r, -EINVAL, "case %zu '%s': %d", i, cases[i].value, r);
                        cr_expect_str_eq(err.msg, cases[i].msg, "case %zu: '%s'", i, err.msg);
                        cr_expect_eq(l, (struct mount_layer *)&err, "case %zu: ret untouched", i);
                        cr_expect_eq(n, 12345, "case %zu: ret_n untouched", i);
                }
        }
}

Test(mount_template, layers_overlay_range_of_500_and_cap)
{
        struct util_err err = {0};
        struct mount_layer *l = NULL;
        size_t n = 0;

        cr_assert_eq(mount_template_layers("{{ overlay 499 0 }}", 500, &l, &n, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(n, 500);
        for (size_t i = 0; i < n; i++) {
                cr_assert(l[i].is_mount);
                cr_assert_eq(l[i].index, 499 - i, "topmost first");
                cr_assert_null(l[i].path);
        }
        mount_layers_free(l, n);
        mount_layers_free(NULL, 0);

        /* More layers than any overlay can take are refused. */
        size_t count = MOUNT_SPEC_MAX_MOUNTS + 1;
        _cleanup_free_ char *v = malloc(count * 3);
        for (size_t i = 0; i < count; i++) {
                v[3 * i] = '/';
                v[3 * i + 1] = 'a';
                v[3 * i + 2] = ':';
        }
        v[3 * count - 1] = '\0';
        l = NULL;
        cr_assert_eq(mount_template_layers(v, 0, &l, &n, &err), -EINVAL);
        cr_assert(strstr(err.msg, "layers[1024]: more than 1024 layers"), "%s", err.msg);
        cr_assert_null(l);
}

/* ---- options ------------------------------------------------------------ */

static size_t opts_count(const char *const *v)
{
        size_t n = 0;
        while (v[n])
                n++;
        return n;
}

static void join(char *const *v, size_t n, char *buf, size_t size)
{
        size_t len = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < n && len < size; i++)
                len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? "|" : "", v[i]);
}

Test(mount_opts, classify_table)
{
        static const struct {
                const char *o[MAX_OPTS];
                unsigned long flags, cleared;
                bool bind, rbind;
                enum mount_propagation prop;
                bool rec, loop;
                const char *dio; /* NULL: not given (-1), "on" (1), "off" (0) */
                const char *uidmap, *gidmap, *x, *data;
        } cases[] = {
                /* flags and inversions; the last of a pair wins */
                {.o = {"ro"}, .flags = MS_RDONLY},
                {.o = {"ro", "rw"}, .cleared = MS_RDONLY},
                {.o = {"rw", "ro"}, .flags = MS_RDONLY},
                {.o = {"nosuid", "nodev", "noexec"}, .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC},
                {.o = {"nosuid", "suid", "dev", "exec"},
                 .cleared = MS_NOSUID | MS_NODEV | MS_NOEXEC},
                {.o = {"sync", "async"}, .cleared = MS_SYNCHRONOUS},
                {.o = {"async", "sync"}, .flags = MS_SYNCHRONOUS},
                {.o = {"dirsync", "mand", "silent"}, .flags = MS_DIRSYNC | MS_MANDLOCK | MS_SILENT},
                {.o = {"silent", "loud"}, .cleared = MS_SILENT},
                {.o = {"iversion", "noiversion"}, .cleared = MS_I_VERSION},
                /* the atime family: noatime/relatime/strictatime exclude each other */
                {.o = {"noatime"}, .flags = MS_NOATIME},
                {.o = {"noatime", "atime"}, .cleared = MS_NOATIME},
                {.o = {"noatime", "relatime"}, .flags = MS_RELATIME},
                {.o = {"relatime", "strictatime"}, .flags = MS_STRICTATIME},
                {.o = {"strictatime", "noatime"}, .flags = MS_NOATIME},
                {.o = {"relatime", "norelatime"}, .cleared = MS_RELATIME},
                {.o = {"strictatime", "nostrictatime"}, .cleared = MS_STRICTATIME},
                {.o = {"noatime", "nodiratime"}, .flags = MS_NOATIME | MS_NODIRATIME},
                {.o = {"nodiratime", "diratime"}, .cleared = MS_NODIRATIME},
                {.o = {"relatime", "lazytime"}, .flags = MS_RELATIME | MS_LAZYTIME},
                {.o = {"lazytime", "nolazytime"}, .cleared = MS_LAZYTIME},
                /* bind and propagation go to their own fields, never to flags */
                {.o = {"bind"}, .bind = true},
                {.o = {"rbind", "ro"}, .flags = MS_RDONLY, .rbind = true},
                {.o = {"shared"}, .prop = MOUNT_PROPAGATION_SHARED},
                {.o = {"rshared"}, .prop = MOUNT_PROPAGATION_SHARED, .rec = true},
                {.o = {"slave"}, .prop = MOUNT_PROPAGATION_SLAVE},
                {.o = {"rslave", "rslave"}, .prop = MOUNT_PROPAGATION_SLAVE, .rec = true},
                {.o = {"private"}, .prop = MOUNT_PROPAGATION_PRIVATE},
                {.o = {"rprivate"}, .prop = MOUNT_PROPAGATION_PRIVATE, .rec = true},
                {.o = {"unbindable"}, .prop = MOUNT_PROPAGATION_UNBINDABLE},
                {.o = {"runbindable"}, .prop = MOUNT_PROPAGATION_UNBINDABLE, .rec = true},
                /* consumed by the engine */
                {.o = {"ro", "loop"}, .flags = MS_RDONLY, .loop = true},
                {.o = {"loop", "direct-io"}, .loop = true, .dio = "on"},
                {.o = {"direct-io=on"}, .dio = "on"},
                {.o = {"direct-io=off"}, .dio = "off"},
                {.o = {"direct-io=on", "direct-io=off"}, .dio = "off"},
                {.o = {"direct-io=off", "direct-io"}, .dio = "on"},
                {.o = {"uidmap=0:100000:65536", "gidmap=0:100000:65536 1:2:3"},
                 .uidmap = "0:100000:65536",
                 .gidmap = "0:100000:65536 1:2:3"},
                {.o = {"X-loopsnap.share=no", "X-loopsnap.fs=ext4"},
                 .x = "X-loopsnap.share=no|X-loopsnap.fs=ext4"},
                /* userspace-only options are dropped */
                {.o = {"user", "nouser", "users", "owner", "group", "noauto", "auto", "_netdev",
                       "nofail", "defaults", "user=joe", "comment=hi", "x-systemd.automount",
                       "X-mount.mkdir", "helper=foo"}},
                {.o = {"x-loopsnap.share=no"}}, /* lower-case x-: libmount's, not ours */
                /* fs data, kept in order */
                {.o = {"lowerdir=/a:/b", "upperdir=/u", "ro", "workdir=/w", "index=off", "noload",
                       "errors=remount-ro"},
                 .flags = MS_RDONLY,
                 .data = "lowerdir=/a:/b|upperdir=/u|workdir=/w|index=off|noload|errors=remount-"
                         "ro"},
                /* a flag word with a value, or a longer word, is not the flag */
                {.o = {"ro=1", "bind=x", "loopy", "uidmapx=1", "direct-iox", "X-loopsnapx"},
                 .data = "ro=1|bind=x|loopy|uidmapx=1|direct-iox"},
                {.o = {"index=on", "index=off"}, .data = "index=on|index=off"},
                {.o = {"context=\"system_u:object_r:container_file_t:s0\""},
                 .data = "context=\"system_u:object_r:container_file_t:s0\""},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                struct mount_opts o;
                struct util_err err = {0};
                char buf[512];
                int r = mount_opts_parse(cases[i].o, opts_count(cases[i].o), &o, &err);
                cr_assert_eq(r, 0, "case %zu: %s", i, err.msg);
                cr_expect_eq(o.flags, cases[i].flags, "case %zu: flags %#lx", i, o.flags);
                cr_expect_eq(o.cleared, cases[i].cleared, "case %zu: cleared %#lx", i, o.cleared);
                cr_expect_eq(o.bind, cases[i].bind, "case %zu", i);
                cr_expect_eq(o.rbind, cases[i].rbind, "case %zu", i);
                cr_expect_eq(o.propagation, cases[i].prop, "case %zu", i);
                cr_expect_eq(o.propagation_recursive, cases[i].rec, "case %zu", i);
                cr_expect_eq(o.loop, cases[i].loop, "case %zu", i);
                int dio = !cases[i].dio ? -1 : strcmp(cases[i].dio, "on") == 0 ? 1 : 0;
                cr_expect_eq(o.direct_io, dio, "case %zu: direct_io %d", i, o.direct_io);
                cr_expect_str_eq(o.uidmap ? o.uidmap : "", cases[i].uidmap ? cases[i].uidmap : "",
                                 "case %zu", i);
                cr_expect_str_eq(o.gidmap ? o.gidmap : "", cases[i].gidmap ? cases[i].gidmap : "",
                                 "case %zu", i);
                join(o.x_loopsnap, o.n_x_loopsnap, buf, sizeof(buf));
                cr_expect_str_eq(buf, cases[i].x ? cases[i].x : "", "case %zu", i);
                join(o.data, o.n_data, buf, sizeof(buf));
                cr_expect_str_eq(buf, cases[i].data ? cases[i].data : "", "case %zu", i);
                mount_opts_done(&o);
                cr_expect_null(o.data, "case %zu: done resets", i);
                cr_expect_eq(o.direct_io, -1, "case %zu", i);
                mount_opts_done(&o); /* idempotent */
        }
}

Test(mount_opts, consumed_and_flags_never_reach_data)
{
        static const char *const opts[] = {
                "ro",           "loop",   "direct-io=off", "uidmap=0:1:1", "gidmap=0:1:1",
                "X-loopsnap.a", "nosuid", "bind",          "rshared",      "noatime",
                "user",         "x-foo",  "nofail",        "lowerdir=/l",
        };
        struct mount_opts o;
        struct util_err err = {0};

        cr_assert_eq(mount_opts_parse(opts, UTIL_ARRAY_SIZE(opts), &o, &err), 0, "%s", err.msg);
        cr_assert_eq(o.n_data, 1);
        cr_assert_str_eq(o.data[0], "lowerdir=/l");
        cr_assert_null(o.data[1], "data is NULL-terminated");
        cr_assert(o.loop);
        cr_assert_eq(o.direct_io, 0);
        mount_opts_done(&o);

        cr_assert_eq(mount_opts_parse(NULL, 0, &o, &err), 0, "no options at all");
        cr_assert_eq(o.n_data, 0);
        cr_assert_eq(o.flags, 0);
        cr_assert_eq(o.direct_io, -1);
        cr_assert_eq(o.propagation, MOUNT_PROPAGATION_NONE);
        mount_opts_done(&o);
}

Test(mount_opts, rejects_table)
{
        static const struct {
                const char *opts[MAX_OPTS];
                const char *msg; /* the whole message */
        } cases[] = {
                {{"ro", "uidmap=0:1:1,upperdir=/etc"},
                 "options[1] 'uidmap=0:1:1,upperdir=/etc': contains ','; one option per element"},
                {{"lowerdir=/a,upperdir=/b"},
                 "options[0] 'lowerdir=/a,upperdir=/b': contains ','; one option per element"},
                {{"ro,rw"}, "options[0] 'ro,rw': contains ','; one option per element"},
                {{"context=\"system_u:object_r:t:s0:c1,c2\""},
                 "options[0] 'context=\"system_u:object_r:t:s0:c1,c2\"': contains ','; one "
                 "option per element"},
                {{"ro", ""}, "options[1]: empty option"},
                {{"uidmap"}, "options[0] 'uidmap': needs a value (uidmap=...)"},
                {{"uidmap="}, "options[0] 'uidmap=': needs a value (uidmap=...)"},
                {{"ro", "gidmap"}, "options[1] 'gidmap': needs a value (gidmap=...)"},
                {{"uidmap=0:1:1", "uidmap=0:2:1"},
                 "options[1] 'uidmap=0:2:1': uidmap given twice (options[0])"},
                {{"loop=/dev/loop0"},
                 "options[0] 'loop=/dev/loop0': a loop device cannot be chosen; use 'loop'"},
                {{"loop="}, "options[0] 'loop=': a loop device cannot be chosen; use 'loop'"},
                {{"direct-io=maybe"},
                 "options[0] 'direct-io=maybe': expected direct-io, direct-io=on or "
                 "direct-io=off"},
                {{"ro", "remount"},
                 "options[1] 'remount': not allowed (the engine never remounts on behalf of a "
                 "spec)"},
                {{"ro", "a\x01"}, "options[1]: control character 0x01 at byte 1"},
                {{"lowerdir=/a\n"}, "options[0]: control character 0x0a at byte 11"},
                {{"x\x7f"}, "options[0]: control character 0x7f at byte 1"},
                {{"shared", "rprivate"},
                 "options[1] 'rprivate': conflicts with options[0] 'shared'"},
                {{"shared", "ro", "rshared"},
                 "options[2] 'rshared': conflicts with options[0] 'shared'"},
                {{"slave", "private"}, "options[1] 'private': conflicts with options[0] 'slave'"},
                {{"offset=512"}, "options[0] 'offset=512': not supported (it would be ignored)"},
                {{"sizelimit=1"}, "options[0] 'sizelimit=1': not supported (it would be ignored)"},
                {{"verity.roothash=ab"},
                 "options[0] 'verity.roothash=ab': not supported (it would be ignored)"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                struct mount_opts o = {.flags = 4242, .n_data = 7};
                struct util_err err = {0};
                int r = mount_opts_parse(cases[i].opts, opts_count(cases[i].opts), &o, &err);
                cr_expect_eq(r, -EINVAL, "case %zu: %d", i, r);
                cr_expect_eq(err.errnum, EINVAL, "case %zu", i);
                cr_expect_str_eq(err.msg, cases[i].msg, "case %zu: '%s'", i, err.msg);
                cr_expect(o.flags == 4242 && o.n_data == 7, "case %zu: ret untouched", i);
        }

        /* A NULL element within n is an error too. */
        static const char *const holes[] = {"ro", NULL, "rw"};
        struct mount_opts o;
        struct util_err err = {0};
        cr_expect_eq(mount_opts_parse(holes, 3, &o, &err), -EINVAL);
        cr_expect_str_eq(err.msg, "options[1]: missing (NULL)");
}

Test(mount_opts, data_get_last_wins)
{
        static const char *const opts[] = {
                "lowerdir=/a", "upperdir=/u", "lowerdir=/b", "lowerdirx=/c",
                "lowerdir",    "noload",      "empty=",
        };
        struct mount_opts o;
        struct util_err err = {0};

        cr_assert_eq(mount_opts_parse(opts, UTIL_ARRAY_SIZE(opts), &o, &err), 0, "%s", err.msg);
        cr_expect_str_eq(mount_opts_data_get(&o, "lowerdir"), "/b");
        cr_expect_str_eq(mount_opts_data_get(&o, "upperdir"), "/u");
        cr_expect_str_eq(mount_opts_data_get(&o, "lowerdirx"), "/c");
        cr_expect_str_eq(mount_opts_data_get(&o, "empty"), "");
        cr_expect_null(mount_opts_data_get(&o, "lower"), "a prefix is not a key");
        cr_expect_null(mount_opts_data_get(&o, "workdir"));
        cr_expect_null(mount_opts_data_get(&o, "noload"), "no '=': no value");
        cr_expect_null(mount_opts_data_get(NULL, "lowerdir"));
        mount_opts_done(&o);
}
