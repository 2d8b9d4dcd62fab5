/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of idmap/ that need no privileges: the containerd text form and
 * the OCI JSON form of id mappings (every refusal names the input and the
 * range), the kernel's rules in idmap_map_check, formatting, comparison and
 * lookup. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "idmap/idmap.h"
#include "util/json.h"

/* A map full of a marker, to check that outputs stay untouched on failure. */
static void poison(struct idmap_map *m)
{
        memset(m, 0xa5, sizeof(*m));
}

static bool is_poisoned(const struct idmap_map *m)
{
        struct idmap_map p;
        poison(&p);
        return memcmp(m, &p, sizeof(p)) == 0;
}

Test(idmap_parse, table)
{
        static const struct {
                const char *in;
                int r;
                size_t n;                /* ranges on success */
                struct idmap_range last; /* the last range on success */
                const char *msg;         /* substring of the error */
        } cases[] = {
                /* valid */
                {"0:100000:65536", 0, 1, {0, 100000, 65536}, NULL},
                {"0:100000:65536,65536:300000:1000", 0, 2, {65536, 300000, 1000}, NULL},
                {"1000:2000:1,0:100000:1000", 0, 2, {0, 100000, 1000}, NULL},
                {"0:0:4294967295", 0, 1, {0, 0, 4294967295u}, NULL},
                {"4294967294:4294967294:1", 0, 1, {4294967294u, 4294967294u, 1}, NULL},
                {"007:08:9", 0, 1, {7, 8, 9}, NULL},
                /* whitespace, signs, other bases */
                {" 0:1:1",
                 -EINVAL,
                 0,
                 {0},
                 "uidmap: range 0 ' 0:1:1': container id is not a number"},
                {"0:1:1 ", -EINVAL, 0, {0}, "size is not a number"},
                {"0: 1:1", -EINVAL, 0, {0}, "host id is not a number"},
                {"0:1:1\n", -EINVAL, 0, {0}, "'0:1:1\\x0a': size is not a number"},
                {"0:1:1\t", -EINVAL, 0, {0}, "not a number"},
                {"+0:1:1", -EINVAL, 0, {0}, "container id is not a number"},
                {"-1:1:1", -EINVAL, 0, {0}, "container id is not a number"},
                {"0:-1:1", -EINVAL, 0, {0}, "host id is not a number"},
                {"0x10:1:1", -EINVAL, 0, {0}, "not a number"},
                {"0:1:0x1", -EINVAL, 0, {0}, "size is not a number"},
                {"1e3:1:1", -EINVAL, 0, {0}, "not a number"},
                {"a:b:c", -EINVAL, 0, {0}, "container id is not a number"},
                {"0::1", -EINVAL, 0, {0}, "host id is not a number"},
                {"0:0:1,1:1:1,0:1:x",
                 -EINVAL,
                 0,
                 {0},
                 "uidmap: range 2 '0:1:x': size is not a number"},
                /* empty input and empty ranges */
                {"", -EINVAL, 0, {0}, "uidmap: empty mapping"},
                {"0:1:1,", -EINVAL, 0, {0}, "uidmap: range 1 is empty"},
                {",0:1:1", -EINVAL, 0, {0}, "uidmap: range 0 is empty"},
                {"0:1:1,,5:6:1", -EINVAL, 0, {0}, "uidmap: range 1 is empty"},
                {",", -EINVAL, 0, {0}, "range 0 is empty"},
                /* field count */
                {"0:1", -EINVAL, 0, {0}, "range 0 '0:1': expected container:host:size"},
                {"0:1:2:3", -EINVAL, 0, {0}, "expected container:host:size"},
                {"0", -EINVAL, 0, {0}, "expected container:host:size"},
                {"0:1:1;2:3:1", -EINVAL, 0, {0}, "'0:1:1;2:3:1': expected container:host:size"},
                /* 32 bits */
                {"4294967296:0:1", -ERANGE, 0, {0}, "container id does not fit 32 bits"},
                {"0:99999999999999999999999:1", -ERANGE, 0, {0}, "host id does not fit 32 bits"},
                {"0:0:4294967296", -ERANGE, 0, {0}, "size does not fit 32 bits"},
                {"4294967295:0:2", -ERANGE, 0, {0}, "container ids go past 4294967294"},
                {"4294967295:0:1", -ERANGE, 0, {0}, "container ids go past"}, /* (uid_t)-1 */
                {"0:4294967295:1", -ERANGE, 0, {0}, "host ids go past"},
                {"1:1:4294967295", -ERANGE, 0, {0}, "range 0 (1:1:4294967295)"},
                {"0:0:1,10:4294967290:6", -ERANGE, 0, {0}, "range 1 (10:4294967290:6): host ids"},
                /* the kernel's other rules */
                {"0:1:0", -EINVAL, 0, {0}, "range 0 (0:1:0): size is 0"},
                {"0:100:10,5:200:10", -EINVAL, 0, {0}, "overlap on the container side"},
                {"0:100:10,20:105:10", -EINVAL, 0, {0}, "overlap on the host side"},
                {"0:100:10,9:200:1", -EINVAL, 0, {0}, "ranges 0 (0:100:10) and 1 (9:200:1)"},
                {"0:100:10,10:110:10", 0, 2, {10, 110, 10}, NULL}, /* adjacent is fine */
                {"0:0:1,0:0:1", -EINVAL, 0, {0}, "overlap on the container side"},
                /* injection into mount options: not a range */
                {"0:1:1,upperdir=/etc",
                 -EINVAL,
                 0,
                 {0},
                 "uidmap: range 1 'upperdir=/etc': expected container:host:size"},
                {"0:1:1,lowerdir=/a:/b:/c",
                 -EINVAL,
                 0,
                 {0},
                 "range 1 'lowerdir=/a:/b:/c': container id is not a number"},
                {"0:1:1\\,x", -EINVAL, 0, {0}, "'0:1:1\\x5c': size is not a number"},
                {"0:1:\x01", -EINVAL, 0, {0}, "'0:1:\\x01'"},
        };

        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                struct idmap_map m;
                struct util_err err = {0};
                poison(&m);
                int r = idmap_parse(cases[i].in, "uidmap", &m, &err);
                cr_expect_eq(r, cases[i].r, "case %zu '%s': %d (%s)", i, cases[i].in, r, err.msg);
                if (cases[i].r == 0 && r == 0) {
                        cr_expect_eq(m.n, cases[i].n, "case %zu: %zu ranges", i, m.n);
                        const struct idmap_range *l = &m.r[m.n - 1];
                        cr_expect(l->container == cases[i].last.container &&
                                          l->host == cases[i].last.host &&
                                          l->size == cases[i].last.size,
                                  "case %zu: last range %u:%u:%u", i, l->container, l->host,
                                  l->size);
                        cr_expect_eq(err.errnum, 0, "err untouched on success");
                } else if (r < 0) {
                        cr_expect(is_poisoned(&m), "case %zu: output untouched on failure", i);
                        cr_expect_eq(err.errnum, -r, "case %zu: errnum %d", i, err.errnum);
                        /* (A valid case that fails has no message to look for.) */
                        cr_expect(cases[i].msg && strstr(err.msg, cases[i].msg),
                                  "case %zu: '%s' not in '%s'", i, cases[i].msg, err.msg);
                }
        }
}

Test(idmap_parse, null_input_and_null_err)
{
        struct idmap_map m;
        struct util_err err = {0};

        cr_assert_eq(idmap_parse(NULL, "gidmap", &m, &err), -EINVAL);
        cr_assert(strstr(err.msg, "gidmap"), "%s", err.msg);
        cr_assert_eq(idmap_parse("0:1:x", "gidmap", &m, NULL), -EINVAL, "err may be NULL");
        cr_assert_eq(idmap_parse("0:1:1", "gidmap", &m, NULL), 0);
}

/* "i:i+base:1" for i in 0..n-1, joined by commas. */
static char *many_ranges(size_t n, uint32_t base)
{
        size_t size = n * 40 + 1, o = 0;
        char *s = malloc(size);
        cr_assert_not_null(s);
        s[0] = '\0';
        for (size_t i = 0; i < n; i++)
                o += (size_t)snprintf(s + o, size - o, "%s%zu:%zu:1", i ? "," : "", i,
                                      (size_t)base + i);
        return s;
}

Test(idmap_parse, range_count_limits)
{
        struct idmap_map m;
        struct util_err err = {0};
        char *s;

        s = many_ranges(IDMAP_MAX_RANGES, 0);
        cr_expect_eq(idmap_parse(s, "uidmap", &m, &err), 0, "340 ranges: %s", err.msg);
        cr_expect_eq(m.n, IDMAP_MAX_RANGES);
        free(s);

        s = many_ranges(IDMAP_MAX_RANGES + 1, 0);
        cr_expect_eq(idmap_parse(s, "uidmap", &m, &err), -E2BIG);
        cr_expect(strstr(err.msg, "uidmap: more than 340 ranges"), "%s", err.msg);
        free(s);
        util_err_clear(&err);

        /* 300 ranges fit the count, but "N 4000000000+N 1\n" x 300 is more
         * than the kernel takes in one uid_map write (< PAGE_SIZE). */
        s = many_ranges(300, 4000000000u);
        cr_expect_eq(idmap_parse(s, "uidmap", &m, &err), -E2BIG);
        cr_expect(strstr(err.msg, "uidmap: 300 ranges take") && strstr(err.msg, "bytes"), "%s",
                  err.msg);
        free(s);
}

Test(idmap_check, direct)
{
        struct idmap_map m = {.n = 0};
        struct util_err err = {0};

        cr_expect_eq(idmap_map_check(&m, "gid map", &err), -EINVAL);
        cr_expect_str_eq(err.msg, "gid map: no ranges");
        m.n = IDMAP_MAX_RANGES + 1;
        cr_expect_eq(idmap_map_check(&m, "gid map", &err), -E2BIG);
        m.n = 1;
        m.r[0] = (struct idmap_range){.container = 0, .host = 100000, .size = 65536};
        util_err_clear(&err);
        cr_expect_eq(idmap_map_check(&m, "gid map", &err), 0);
        cr_expect_eq(err.errnum, 0);
        cr_expect_eq(idmap_map_check(NULL, "gid map", &err), -EINVAL);
}

static yajl_val json(const char *text)
{
        yajl_val v = NULL;
        struct util_err err = {0};
        cr_assert_eq(util_json_parse(text, strlen(text), "test", NULL, &v, &err), 0, "%s: %s", text,
                     err.msg);
        return v;
}

Test(idmap_parse_oci, table)
{
        static const struct {
                const char *in;
                int r;
                size_t n;
                const char *msg;
        } cases[] = {
                {"[{\"containerID\":0,\"hostID\":100000,\"size\":65536}]", 0, 1, NULL},
                {"[{\"size\":1000,\"hostID\":300000,\"containerID\":65536},"
                 "{\"containerID\":0,\"hostID\":100000,\"size\":65536}]",
                 0, 2, NULL},
                {"[]", -EINVAL, 0, "linux.uidMappings: no ranges"},
                {"{\"containerID\":0,\"hostID\":1,\"size\":1}", -EINVAL, 0,
                 "linux.uidMappings: expected an array"},
                {"\"0:1:1\"", -EINVAL, 0, "linux.uidMappings: expected an array"},
                {"null", -EINVAL, 0, "expected an array"},
                {"[1]", -EINVAL, 0, "linux.uidMappings[0]: expected an object"},
                {"[{\"containerID\":0,\"hostID\":1,\"size\":1},[]]", -EINVAL, 0,
                 "linux.uidMappings[1]: expected an object"},
                {"[{\"containerID\":0,\"hostID\":1}]", -EINVAL, 0,
                 "linux.uidMappings[0]: missing key 'size'"},
                {"[{}]", -EINVAL, 0, "linux.uidMappings[0]: missing key 'containerID'"},
                {"[{\"containerID\":0,\"hostID\":1,\"size\":1,\"extra\":1}]", -EINVAL, 0,
                 "linux.uidMappings[0]: unknown key 'extra'"},
                {"[{\"containerID\":0,\"hostId\":1,\"size\":1}]", -EINVAL, 0,
                 "unknown key 'hostId'"},
                {"[{\"containerID\":0,\"hostID\":1,\"size\":1,\"a\\nb\":1}]", -EINVAL, 0,
                 "unknown key 'a\\x0ab'"},
                {"[{\"containerID\":0,\"hostID\":1,\"size\":1},"
                 "{\"containerID\":5,\"hostID\":1.5,\"size\":1}]",
                 -EINVAL, 0, "linux.uidMappings[1].hostID: expected a non-negative integer"},
                {"[{\"containerID\":0,\"hostID\":\"1\",\"size\":1}]", -EINVAL, 0,
                 "linux.uidMappings[0].hostID: expected a non-negative integer"},
                {"[{\"containerID\":0,\"hostID\":true,\"size\":1}]", -EINVAL, 0,
                 "linux.uidMappings[0].hostID: expected a non-negative integer"},
                {"[{\"containerID\":0,\"hostID\":null,\"size\":1}]", -EINVAL, 0,
                 "linux.uidMappings[0].hostID: expected a non-negative integer"},
                {"[{\"containerID\":-1,\"hostID\":1,\"size\":1}]", -ERANGE, 0,
                 "linux.uidMappings[0].containerID: -1 is out of range"},
                {"[{\"containerID\":0,\"hostID\":4294967296,\"size\":1}]", -ERANGE, 0,
                 "linux.uidMappings[0].hostID"},
                {"[{\"containerID\":0,\"hostID\":1,\"size\":0}]", -EINVAL, 0,
                 "linux.uidMappings: range 0 (0:1:0): size is 0"},
                {"[{\"containerID\":0,\"hostID\":100,\"size\":10},"
                 "{\"containerID\":100,\"hostID\":105,\"size\":1}]",
                 -EINVAL, 0,
                 "linux.uidMappings: ranges 0 (0:100:10) and 1 (100:105:1) overlap "
                 "on the host side"},
                {"[{\"containerID\":4294967295,\"hostID\":0,\"size\":1}]", -ERANGE, 0,
                 "container ids go past"},
        };

        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                yajl_val v = json(cases[i].in);
                struct idmap_map m;
                struct util_err err = {0};
                poison(&m);
                int r = idmap_parse_oci(v, "linux.uidMappings", &m, &err);
                cr_expect_eq(r, cases[i].r, "case %zu %s: %d (%s)", i, cases[i].in, r, err.msg);
                if (r == 0)
                        cr_expect_eq(m.n, cases[i].n, "case %zu", i);
                if (r < 0) {
                        cr_expect(is_poisoned(&m), "case %zu: output untouched", i);
                        cr_expect(cases[i].msg && strstr(err.msg, cases[i].msg),
                                  "case %zu: '%s' not in '%s'", i, cases[i].msg, err.msg);
                }
                yajl_tree_free(v);
        }
}

Test(idmap_parse_oci, values_and_order_kept)
{
        yajl_val v = json("[{\"size\":1000,\"hostID\":300000,\"containerID\":65536},"
                          "{\"hostID\":100000,\"containerID\":0,\"size\":65536}]");
        struct idmap_map m, want;
        char buf[128];

        cr_assert_eq(idmap_parse_oci(v, "linux.gidMappings", &m, NULL), 0);
        cr_assert_eq(idmap_parse("65536:300000:1000,0:100000:65536", "x", &want, NULL), 0);
        cr_assert(idmap_map_equal(&m, &want));
        cr_assert_eq(idmap_format(&m, buf, sizeof(buf)), 0);
        cr_assert_str_eq(buf, "65536:300000:1000,0:100000:65536");
        yajl_tree_free(v);
        cr_assert_eq(idmap_parse_oci(NULL, "linux.gidMappings", &m, NULL), -EINVAL);
}

Test(idmap_parse_oci, duplicate_key)
{
        /* yajl's tree keeps both members; the second must not silently win. */
        yajl_val v = json("[{\"containerID\":0,\"hostID\":1,\"hostID\":2,\"size\":1}]");
        struct util_err err = {0};
        struct idmap_map m;

        cr_expect_eq(idmap_parse_oci(v, "linux.uidMappings", &m, &err), -EINVAL);
        cr_expect(strstr(err.msg, "linux.uidMappings[0]: duplicate key 'hostID'"), "%s", err.msg);
        yajl_tree_free(v);
}

Test(idmap_parse_oci, too_many_ranges)
{
        size_t n = IDMAP_MAX_RANGES + 1, size = n * 60 + 3, o = 0;
        char *s = malloc(size);
        struct util_err err = {0};
        struct idmap_map m;

        cr_assert_not_null(s);
        o += (size_t)snprintf(s + o, size - o, "[");
        for (size_t i = 0; i < n; i++)
                o += (size_t)snprintf(s + o, size - o,
                                      "%s{\"containerID\":%zu,\"hostID\":%zu,\"size\":1}",
                                      i ? "," : "", i, i);
        snprintf(s + o, size - o, "]");
        yajl_val v = json(s);
        cr_expect_eq(idmap_parse_oci(v, "linux.uidMappings", &m, &err), -E2BIG);
        cr_expect(strstr(err.msg, "linux.uidMappings: 341 ranges"), "%s", err.msg);
        yajl_tree_free(v);
        free(s);
}

Test(idmap_format, round_trip)
{
        static const char *const inputs[] = {
                "0:100000:65536", "0:100000:65536,65536:300000:1000", "1000:2000:1,0:100000:1000",
                "0:0:4294967295", "4294967294:4294967294:1",
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(inputs); i++) {
                struct idmap_map m, back;
                char buf[256];
                cr_assert_eq(idmap_parse(inputs[i], "x", &m, NULL), 0, "%s", inputs[i]);
                cr_assert_eq(idmap_format(&m, buf, sizeof(buf)), 0);
                cr_expect_str_eq(buf, inputs[i]);
                cr_assert_eq(idmap_parse(buf, "x", &back, NULL), 0);
                cr_expect(idmap_map_equal(&m, &back), "%s", inputs[i]);
        }

        /* Leading zeros are accepted and dropped: the canonical text. */
        struct idmap_map m;
        char buf[64];
        cr_assert_eq(idmap_parse("007:08:9", "x", &m, NULL), 0);
        cr_assert_eq(idmap_format(&m, buf, sizeof(buf)), 0);
        cr_expect_str_eq(buf, "7:8:9");
}

Test(idmap_format, buffer_sizes)
{
        struct idmap_map m;
        const char *text = "0:100000:65536,65536:300000:1000";
        size_t len = strlen(text);
        char buf[64];

        cr_assert_eq(idmap_parse(text, "x", &m, NULL), 0);
        memset(buf, 'z', sizeof(buf));
        cr_expect_eq(idmap_format(&m, buf, len), -ENOSPC, "no room for the NUL");
        cr_expect_eq(buf[0], 'z', "buffer untouched on failure");
        cr_expect_eq(idmap_format(&m, buf, len + 1), 0, "exact fit");
        cr_expect_str_eq(buf, text);
        cr_expect_eq(idmap_format(&m, NULL, 0), -ENOSPC);
        cr_expect_eq(idmap_format(&m, buf, 0), -ENOSPC);

        /* The largest map formats into a buffer of 340 * 33 bytes. */
        char *s = many_ranges(IDMAP_MAX_RANGES, 0);
        char *out = malloc(IDMAP_MAX_RANGES * 33);
        cr_assert_eq(idmap_parse(s, "x", &m, NULL), 0);
        cr_expect_eq(idmap_format(&m, out, IDMAP_MAX_RANGES * 33), 0);
        cr_expect_str_eq(out, s);
        free(out);
        free(s);
}

Test(idmap_map, equal)
{
        struct idmap_map a, b, c, d;

        cr_assert_eq(idmap_parse("0:100000:65536,65536:300000:1000", "x", &a, NULL), 0);
        cr_assert_eq(idmap_parse("0:100000:65536,65536:300000:1000", "x", &b, NULL), 0);
        cr_assert_eq(idmap_parse("65536:300000:1000,0:100000:65536", "x", &c, NULL), 0);
        cr_assert_eq(idmap_parse("0:100000:65536", "x", &d, NULL), 0);
        /* Bytes beyond n do not matter. */
        a.r[5].host = 1;
        b.r[5].host = 2;
        cr_expect(idmap_map_equal(&a, &b));
        cr_expect(idmap_map_equal(&a, &a));
        cr_expect_not(idmap_map_equal(&a, &c), "the order of ranges matters (same list)");
        cr_expect_not(idmap_map_equal(&a, &d));
        cr_expect_not(idmap_map_equal(&a, NULL));
}

Test(idmap_map, to_host)
{
        static const struct {
                uint32_t id;
                bool mapped;
                uint32_t host;
        } cases[] = {
                {0, true, 100000},       {1, true, 100001},     {65535, true, 165535},
                {65536, true, 300000},   {66535, true, 300999}, {66536, false, 0},
                {4294967295u, false, 0}, {100000, false, 0},
        };
        struct idmap_map m;

        cr_assert_eq(idmap_parse("0:100000:65536,65536:300000:1000", "x", &m, NULL), 0);
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                uint32_t host = 12345;
                bool ok = idmap_map_to_host(&m, cases[i].id, &host);
                cr_expect_eq(ok, cases[i].mapped, "id %u", cases[i].id);
                if (ok)
                        cr_expect_eq(host, cases[i].host, "id %u -> %u", cases[i].id, host);
                else
                        cr_expect_eq(host, 12345u, "id %u: output untouched", cases[i].id);
        }

        cr_assert_eq(idmap_parse("0:0:4294967295", "x", &m, NULL), 0);
        uint32_t host = 0;
        cr_expect(idmap_map_to_host(&m, 4294967294u, &host));
        cr_expect_eq(host, 4294967294u);
        cr_expect_not(idmap_map_to_host(&m, 4294967295u, &host));
}
