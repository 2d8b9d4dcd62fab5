/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-idmap: id mappings in both outside forms (idmap/idmap.h): the
 * containerd label / mount option string ("0:100000:65536,...", also with
 * the spaces the uidmap= mount option uses, mount/simple.c) and the OCI JSON
 * array (linux.uidMappings, found as the document itself, under
 * "uidMappings"/"gidMappings", or under "linux" of a whole config).
 *
 * Checks, for every accepted map: idmap_map_check agrees; the text form has
 * only digits, ':' and ','; the canonical text (idmap_format) and the OCI
 * JSON written from the map both parse back to the same map; idmap_format
 * refuses a buffer one byte short without touching it; idmap_map_to_host
 * agrees with a reference lookup at every range edge. For every refused
 * input: *ret untouched, the error contract (fuzz.h). And for the JSON
 * reader underneath (util_json_parse): what it accepts is JSON to yajl's
 * event parser too (jsonscan.h), nested no deeper than its limit.
 */
#include <inttypes.h>

#include "idmap/idmap.h"
#include "test/fuzz/fuzz.h"
#include "test/fuzz/jsonscan.h"
#include "util/json.h"

/* The text of a map that fits the kernel's page: 340 ranges of 3 x 10 digits
 * would not (idmap_map_check), so this is ample. */
#define TEXT_MAX 8192

static void fill_sentinel(struct idmap_map *m)
{
        memset(m, 0xa5, sizeof(*m));
}

static bool is_sentinel(const struct idmap_map *m)
{
        const unsigned char *p = (const unsigned char *)m;
        for (size_t i = 0; i < sizeof(*m); i++)
                if (p[i] != 0xa5)
                        return false;
        return true;
}

/* Reference lookup: the range that holds `id` (ranges do not overlap once
 * checked, so there is at most one). */
static bool ref_to_host(const struct idmap_map *m, uint32_t id, uint32_t *ret)
{
        for (size_t i = 0; i < m->n; i++) {
                const struct idmap_range *r = &m->r[i];
                if ((uint64_t)id >= r->container &&
                    (uint64_t)id < (uint64_t)r->container + r->size) {
                        *ret = (uint32_t)((uint64_t)r->host + (id - r->container));
                        return true;
                }
        }
        return false;
}

static void check_lookup(const struct idmap_map *m, uint32_t id)
{
        uint32_t got = 0, want = 0;
        bool g = idmap_map_to_host(m, id, &got), w = ref_to_host(m, id, &want);

        FUZZ_CHECK(g == w, "idmap_map_to_host(%" PRIu32 ") says %s", id, g ? "mapped" : "unmapped");
        if (g)
                FUZZ_CHECK(got == want,
                           "idmap_map_to_host(%" PRIu32 ") = %" PRIu32 ", not %" PRIu32, id, got,
                           want);
}

/* The OCI JSON form of `m`. */
static char *oci_json(const struct idmap_map *m)
{
        size_t cap = 64 + m->n * 80, o = 0;
        char *s = fuzz_oom(malloc(cap));

        o += (size_t)snprintf(s + o, cap - o, "[");
        for (size_t i = 0; i < m->n; i++)
                o += (size_t)snprintf(s + o, cap - o,
                                      "%s{\"containerID\":%" PRIu32 ",\"hostID\":%" PRIu32
                                      ",\"size\":%" PRIu32 "}",
                                      i ? "," : "", m->r[i].container, m->r[i].host, m->r[i].size);
        snprintf(s + o, cap - o, "]");
        return s;
}

/* Everything that must hold of a map that was accepted. */
static void check_map(const struct idmap_map *m)
{
        struct util_err err = {0};
        char text[TEXT_MAX], small[TEXT_MAX];
        int r;

        FUZZ_CHECK(m->n >= 1 && m->n <= IDMAP_MAX_RANGES, "accepted a map of %zu ranges", m->n);
        r = idmap_map_check(m, "fuzz", &err);
        FUZZ_CHECK(r == 0, "an accepted map fails idmap_map_check: %s", err.msg);
        FUZZ_CHECK(idmap_map_equal(m, m), "a map is not equal to itself");

        /* Canonical text, and a buffer one byte short of it. */
        r = idmap_format(m, text, sizeof(text));
        FUZZ_CHECK(r == 0, "idmap_format of an accepted map: %d", r);
        size_t len = strlen(text);
        memset(small, 'Q', len + 1);
        r = idmap_format(m, small, len);
        FUZZ_CHECK(r == -ENOSPC, "idmap_format into %zu bytes for '%s': %d", len, text, r);
        for (size_t i = 0; i <= len; i++)
                FUZZ_CHECK(small[i] == 'Q', "idmap_format wrote a buffer it refused");

        struct idmap_map *back = fuzz_oom(malloc(sizeof(*back)));
        r = idmap_parse(text, "fuzz", back, &err);
        FUZZ_CHECK(r == 0, "the canonical text '%s' does not parse: %s", text, err.msg);
        FUZZ_CHECK(idmap_map_equal(m, back), "'%s' parses to another map", text);

        /* The OCI form. */
        char *json = oci_json(m);
        yajl_val root = NULL;
        r = util_json_parse(json, strlen(json), "fuzz", NULL, &root, &err);
        FUZZ_CHECK(r == 0, "our own OCI JSON does not parse: %s", err.msg);
        fill_sentinel(back);
        r = idmap_parse_oci(root, "fuzz", back, &err);
        FUZZ_CHECK(r == 0, "the OCI form of '%s' is refused: %s", text, err.msg);
        FUZZ_CHECK(idmap_map_equal(m, back), "the OCI form of '%s' parses to another map", text);
        yajl_tree_free(root);
        free(json);
        free(back);

        /* Lookups at every edge of every range, and at the ends of the id space. */
        check_lookup(m, 0);
        check_lookup(m, UINT32_MAX);
        for (size_t i = 0; i < m->n; i++) {
                const struct idmap_range *x = &m->r[i];
                uint64_t last = (uint64_t)x->container + x->size - 1;
                check_lookup(m, x->container);
                check_lookup(m, (uint32_t)last);
                if (x->container > 0)
                        check_lookup(m, x->container - 1);
                if (last < UINT32_MAX)
                        check_lookup(m, (uint32_t)last + 1);
        }
}

static void fuzz_text(const char *s, bool option_form)
{
        struct util_err err = {0};
        struct idmap_map *m = fuzz_oom(malloc(sizeof(*m)));
        char *copy = fuzz_oom(strdup(s));
        int r;

        /* The uidmap= mount option separates ranges with spaces (a ','
         * would end the option); the engine turns them into ','. */
        if (option_form) {
                if (strchr(copy, ',') || !strchr(copy, ' ')) {
                        free(copy);
                        free(m);
                        return;
                }
                for (char *p = copy; *p; p++)
                        if (*p == ' ')
                                *p = ',';
        }
        fill_sentinel(m);
        r = idmap_parse(copy, "uidmap", m, &err);
        fuzz_check_err(r, &err, "idmap_parse");
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL || r == -ERANGE || r == -E2BIG, "idmap_parse: %d", r);
                FUZZ_CHECK(is_sentinel(m), "idmap_parse wrote *ret on failure");
        } else {
                FUZZ_CHECK(strspn(copy, "0123456789:,") == strlen(copy),
                           "idmap_parse accepted '%s'", copy);
                size_t commas = 0;
                for (const char *p = copy; *p; p++)
                        commas += *p == ',';
                FUZZ_CHECK(m->n == commas + 1, "%zu ranges from %zu commas", m->n, commas);
                check_map(m);
        }
        free(copy);
        free(m);
}

/* The mappings array of an OCI document: the root, root.uidMappings /
 * gidMappings, or root.linux.uidMappings / gidMappings. */
static yajl_val find_array(yajl_val root, const char *key)
{
        if (YAJL_IS_ARRAY(root))
                return root;
        yajl_val v = util_json_get(root, key, false);
        if (v)
                return v;
        return util_json_get(util_json_get(root, "linux", false), key, false);
}

static void fuzz_oci(const uint8_t *data, size_t size)
{
        static const char *const keys[2] = {"uidMappings", "gidMappings"};
        struct util_err err = {0};
        yajl_val root = NULL;
        int r;

        r = util_json_parse((const char *)data, size, "config.json", NULL, &root, &err);
        fuzz_check_err(r, &err, "util_json_parse");
        if (r < 0)
                return;
        /* util/json.h: the default nesting limit holds for what it accepts. */
        struct jsonscan j = jsonscan(data, size);
        FUZZ_CHECK(j.ok, "util_json_parse accepted what yajl's event parser refuses");
        FUZZ_CHECK(j.max <= UTIL_JSON_DEFAULT_MAX_DEPTH, "util_json_parse accepted nesting %u",
                   j.max);
        for (size_t k = 0; k < 2; k++) {
                yajl_val arr = find_array(root, keys[k]);
                struct idmap_map *m = fuzz_oom(malloc(sizeof(*m)));

                err = (struct util_err){0};
                fill_sentinel(m);
                r = idmap_parse_oci(arr, "linux.uidMappings", m, &err);
                fuzz_check_err(r, &err, "idmap_parse_oci");
                if (r < 0) {
                        FUZZ_CHECK(is_sentinel(m), "idmap_parse_oci wrote *ret on failure");
                } else {
                        FUZZ_CHECK(YAJL_IS_ARRAY(arr) && arr->u.array.len == m->n,
                                   "%zu ranges from an array of %zu", m->n,
                                   YAJL_IS_ARRAY(arr) ? arr->u.array.len : 0);
                        for (size_t i = 0; i < m->n; i++) {
                                yajl_val o = arr->u.array.values[i];
                                FUZZ_CHECK(YAJL_IS_OBJECT(o) && o->u.object.len == 3,
                                           "range %zu is not an object of three keys", i);
                        }
                        check_map(m);
                }
                free(m);
        }
        yajl_tree_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = fuzz_cstr(data, size);

        fuzz_text(s, false);
        fuzz_text(s, true);
        fuzz_oci(data, size);
        free(s);
        return 0;
}
