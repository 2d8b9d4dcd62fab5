/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-filter: what Walk and the store take from clients: walk filters in
 * containerd's syntax (snap_filter_parse, one filter per input line, several
 * lines ORed), matched against a fixed set of snapshots and one whose name
 * and label come from the input; and the key and label checks every store
 * call makes (snap_key_check, snap_labels_check) on each line.
 *
 * Checks: the error contract; a message names the filter ("filters[i]");
 * a set of filters matches exactly when one of them, parsed alone, matches
 * (OR); a filter without quotes or regex delimiters matches exactly when
 * all its ','-separated selectors, parsed alone, match (AND); no filters and
 * the empty filter match everything; an accepted key or label is valid
 * UTF-8 (checked here independently) without C0, DEL or C1 controls, within
 * the size limits.
 */
#include "snapshot/store.h"
#include "test/fuzz/fuzz.h"

#define MAX_FILTERS 8

static struct snap_label labels_a[] = {
        {.key = "a.b/c", .value = "x"},
        {.key = "containerd.io/snapshot.ref", .value = "sha256:0123456789abcdef"},
        {.key = "containerd.io/snapshot/uidmapping", .value = "0:100000:65536"},
        {.key = "empty", .value = ""},
};
static struct snap_label labels_b[] = {
        {.key = "foo", .value = "bar baz"},
        {.key = "quote\"d", .value = "back\\slash"},
};

static struct snap_info fixtures[] = {
        {.id = 1,
         .kind = SNAP_KIND_COMMITTED,
         .name = "sha256:0123456789abcdef",
         .labels = labels_a,
         .n_labels = UTIL_ARRAY_SIZE(labels_a)},
        {.id = 2,
         .kind = SNAP_KIND_ACTIVE,
         .name = "k1",
         .parent = "sha256:0123456789abcdef",
         .parent_id = 1,
         .labels = labels_b,
         .n_labels = UTIL_ARRAY_SIZE(labels_b)},
        {.id = 3, .kind = SNAP_KIND_VIEW, .name = "view a.b|c(d)*", .parent = "k1", .parent_id = 2},
        {.id = 4, .kind = SNAP_KIND_UNKNOWN, .name = "", .parent = ""},
};

static struct snap_filter *parse_ok(const char *const *f, size_t n)
{
        struct util_err err = {0};
        struct snap_filter *sf = NULL;
        int r = snap_filter_parse(f, n, &sf, &err);

        FUZZ_CHECK(r == 0, "a part of an accepted filter is refused: %s", err.msg);
        return sf;
}

/* AND: "a,b" matches when "a" and "b" do. Only for filters where ',' can
 * only separate selectors: no quoted strings or regex delimiters. */
static void check_and(const char *filter, const struct snap_info *infos, size_t n_infos,
                      const bool *whole)
{
        if (strpbrk(filter, "\"/|") || !strchr(filter, ','))
                return;
        char *copy = fuzz_oom(strdup(filter));
        bool all[UTIL_ARRAY_SIZE(fixtures) + 1];
        for (size_t k = 0; k < n_infos; k++)
                all[k] = true;
        for (char *save = NULL, *part = strtok_r(copy, ",", &save); part;
             part = strtok_r(NULL, ",", &save)) {
                const char *one = part;
                struct snap_filter *sf = parse_ok(&one, 1);
                for (size_t k = 0; k < n_infos; k++)
                        all[k] = all[k] && snap_filter_match(sf, &infos[k]);
                snap_filter_free(sf);
        }
        for (size_t k = 0; k < n_infos; k++)
                FUZZ_CHECK(all[k] == whole[k], "'%s' on '%s': %d, its selectors: %d", filter,
                           infos[k].name, whole[k], all[k]);
        free(copy);
}

static void check_filters(char *const *lines, size_t n, const struct snap_info *infos,
                          size_t n_infos)
{
        struct util_err err = {0};
        struct snap_filter *f = NULL;
        bool any[UTIL_ARRAY_SIZE(fixtures) + 1] = {false};
        int r;

        r = snap_filter_parse((const char *const *)lines, n, &f, &err);
        fuzz_check_err(r, &err, "snap_filter_parse");
        if (r < 0) {
                FUZZ_CHECK(f == NULL, "*ret written on failure");
                FUZZ_CHECK(strncmp(err.msg, "filters", 7) == 0, "message '%s'", err.msg);
                /* REG_ESPACE: a regex reached regcomp that its cost check
                 * should have refused (snapshot/filter.c, regex_check). The
                 * message ends with regerror's text; anywhere else the words
                 * may be quoted input. */
                static const char espace[] = "invalid regular expression: Memory exhausted";
                size_t ml = strlen(err.msg), el = sizeof(espace) - 1;
                FUZZ_CHECK(ml < el || strcmp(err.msg + ml - el, espace) != 0,
                           "regcomp ran out of memory: %s", err.msg);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                const char *one = lines[i];
                struct snap_filter *sf = parse_ok(&one, 1);
                bool m[UTIL_ARRAY_SIZE(fixtures) + 1];
                for (size_t k = 0; k < n_infos; k++) {
                        m[k] = snap_filter_match(sf, &infos[k]);
                        any[k] = any[k] || m[k];
                        if (!lines[i][0])
                                FUZZ_CHECK(m[k], "the empty filter does not match '%s'",
                                           infos[k].name);
                }
                snap_filter_free(sf);
                check_and(lines[i], infos, n_infos, m);
        }
        for (size_t k = 0; k < n_infos; k++) {
                bool all = snap_filter_match(f, &infos[k]);
                FUZZ_CHECK(all == (n == 0 || any[k]), "filters on '%s': %d, one by one: %d",
                           infos[k].name, all, any[k]);
                FUZZ_CHECK(snap_filter_match(NULL, &infos[k]), "no filter does not match");
        }
        snap_filter_free(f);
}

/* A key or label the store accepted: text rules of snapshot/store.h. */
static void check_text(const char *s, size_t max, const char *what)
{
        size_t len = strlen(s);
        FUZZ_CHECK(len >= 1 && len <= max, "%s of %zu bytes accepted", what, len);
        FUZZ_CHECK(fuzz_is_utf8((const unsigned char *)s, len), "%s '%s': invalid UTF-8 accepted",
                   what, s);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                FUZZ_CHECK(c >= 0x20 && c != 0x7f, "%s: control 0x%02x accepted", what, c);
                /* C1 controls are U+0080..U+009F: 0xc2 0x80..0x9f in UTF-8. */
                FUZZ_CHECK(!(c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] <= 0x9f),
                           "%s: C1 control accepted", what);
        }
}

static void check_key_and_label(const char *line)
{
        struct util_err err = {0};
        int r;

        r = snap_key_check(line, &err);
        fuzz_check_err(r, &err, "snap_key_check");
        if (r == 0)
                check_text(line, SNAP_KEY_MAX, "key");

        /* "key=value" as one label. */
        char *copy = fuzz_oom(strdup(line));
        char *eq = strchr(copy, '=');
        struct snap_label l = {.key = copy, .value = eq ? eq + 1 : ""};
        if (eq)
                *eq = '\0';
        err = (struct util_err){0};
        r = snap_labels_check(&l, 1, &err);
        fuzz_check_err(r, &err, "snap_labels_check");
        if (r == 0) {
                FUZZ_CHECK(strlen(l.key) + strlen(l.value) <= SNAP_LABEL_MAX, "label too long");
                check_text(l.key, SNAP_LABEL_MAX, "label key");
                if (l.value[0])
                        check_text(l.value, SNAP_LABEL_MAX, "label value");
        }
        free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        size_t n = 0;
        char **lines = fuzz_lines(data, size, MAX_FILTERS, &n);
        struct snap_info infos[UTIL_ARRAY_SIZE(fixtures) + 1];
        struct snap_label own = {.key = n > 1 ? lines[1] : "k", .value = n > 2 ? lines[2] : "v"};

        /* The fixtures, and a snapshot named by the first line with a label
         * from the next two: regexes run on text from the input too. */
        memcpy(infos, fixtures, sizeof(fixtures));
        infos[UTIL_ARRAY_SIZE(fixtures)] = (struct snap_info){
                .id = 5,
                .kind = SNAP_KIND_ACTIVE,
                .name = n > 0 ? lines[0] : "",
                .parent = n > 1 ? lines[1] : NULL,
                .labels = &own,
                .n_labels = 1,
        };
        check_filters(lines, n, infos, UTIL_ARRAY_SIZE(infos));
        for (size_t i = 0; i < n; i++)
                check_key_and_label(lines[i]);
        fuzz_lines_free(lines);
        return 0;
}
