/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Walk and its filters, in containerd's pkg/filters syntax (research/
 * anchors.md §1.2; containerd's parser.go and scanner.go were the reference):
 *
 *   filters   := one string per filter; a snapshot matches if ANY matches
 *   filter    := "" (matches everything) | selector ("," selector)*  (ALL)
 *   selector  := fieldpath [operator value]
 *   fieldpath := segment ("." segment)*
 *   segment   := [A-Za-z] [A-Za-z0-9_]* | quoted
 *   operator  := "==" | "!=" | "~="
 *   value     := quoted | [^\s,]+ | (after ~= only) /.../ or |...|
 *   quoted    := '"' chars '"', escapes \" and \\ only
 *
 * Blanks between tokens are skipped. Inside /.../ and |...| a backslash
 * before the delimiter stands for the delimiter; any other backslash is kept
 * for the regex. Fields: name, parent, kind and labels.<key>, where <key> is
 * the remaining segments joined by "." (labels.a.b is the label "a.b", as in
 * containerd's adaptor). Unlike containerd, an unknown field is a parse
 * error rather than a silent non-match: a typo should not look like an empty
 * result.
 *
 * Matching (containerd's selector.Match): presence is "label set" for
 * labels.<k>, "non-empty" for name and parent, always true for kind; "=="
 * needs the field present and equal (parent=="" selects snapshots without a
 * parent); "!=" compares the value, a missing label counting as "" — so
 * labels.x!=y matches snapshots without label x; "~=" matches the value (""
 * when missing) against a POSIX extended regex compiled once at parse time
 * (containerd uses Go's RE2; simple expressions behave the same), after a
 * check of what it would cost (regex_check: no back-references, bounded
 * counts, nesting and expanded size).
 *
 * Walk reads every row into memory before the first callback, so the
 * callback may call back into the store (Stat inside Walk) with no read
 * cursor open.
 */
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "snapshot/store.h"

enum filter_field {
        FIELD_NAME,
        FIELD_PARENT,
        FIELD_KIND,
        FIELD_LABEL,
};

enum filter_op {
        OP_PRESENT,
        OP_EQ,
        OP_NE,
        OP_MATCH,
};

struct selector {
        enum filter_field field;
        enum filter_op op;
        char *label; /* FIELD_LABEL: the key */
        char *value; /* not OP_PRESENT */
        regex_t re;  /* OP_MATCH */
        bool have_re;
};

/* One filter string: all selectors must match; none means "always". */
struct conjunction {
        struct selector *sel;
        size_t n;
};

struct snap_filter {
        struct conjunction *any;
        size_t n;
};

static void selector_done(struct selector *s)
{
        free(s->label);
        free(s->value);
        if (s->have_re)
                regfree(&s->re);
        *s = (struct selector){0};
}

struct snap_filter *snap_filter_free(struct snap_filter *f)
{
        if (!f)
                return NULL;
        for (size_t i = 0; i < f->n; i++) {
                for (size_t j = 0; j < f->any[i].n; j++)
                        selector_done(&f->any[i].sel[j]);
                free(f->any[i].sel);
        }
        free(f->any);
        free(f);
        return NULL;
}

/* ---- parsing -------------------------------------------------------------- */

struct parser {
        const char *in;
        size_t pos;
        size_t index; /* which filter string, for messages */
        struct util_err *err;
};

static int parse_fail(struct parser *p, size_t pos, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int parse_fail(struct parser *p, size_t pos, const char *fmt, ...)
{
        char msg[UTIL_ERR_MSG_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return util_err_setx(p->err, EINVAL, "filters[%zu]: offset %zu: %s", p->index, pos, msg);
}

#ifdef __clang_analyzer__
/* The analyzer does not inline a variadic function: tell it that this one
 * always fails, as util/util.h does for util_err_set(). */
#define parse_fail(...) UTIL_ERR_NEGATIVE_(parse_fail(__VA_ARGS__))
#endif

static bool is_blank(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_alpha(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_field_char(char c)
{
        return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

static void skip_blanks(struct parser *p)
{
        while (is_blank(p->in[p->pos]))
                p->pos++;
}

static char *strndup_or_fail(struct parser *p, const char *s, size_t n, int *r)
{
        char *d = strndup(s, n);
        if (!d)
                *r = util_err_set(p->err, ENOMEM, "filters[%zu]", p->index);
        return d;
}

/*
 * Reads a quoted string starting at the opening `close` character into a
 * new string. `regex_quote`: the /.../ or |...| form (see the top comment).
 */
static int parse_quoted(struct parser *p, char close, bool regex_quote, char **ret)
{
        size_t start = p->pos, n = 0;
        const char *in = p->in;
        _cleanup_free_ char *out = NULL;

        /* The unquoted text is never longer than the quoted one. */
        out = malloc(strlen(in + start) + 1);
        if (!out)
                return util_err_set(p->err, ENOMEM, "filters[%zu]", p->index);
        for (size_t i = start + 1;; i++) {
                char c = in[i];
                if (c == '\0')
                        return parse_fail(p, start, "unterminated quoted string");
                if (c == close) {
                        out[n] = '\0';
                        p->pos = i + 1;
                        *ret = TAKE_PTR(out);
                        return 0;
                }
                if (c != '\\') {
                        out[n++] = c;
                        continue;
                }
                char e = in[i + 1];
                if (regex_quote) {
                        /* \<delimiter> is the delimiter; any other pair is
                         * kept whole for regcomp (so \\ stays an escaped
                         * backslash and cannot end the string). */
                        if (e == '\0')
                                return parse_fail(p, start, "unterminated quoted string");
                        if (e != close)
                                out[n++] = '\\';
                        out[n++] = e;
                        i++;
                        continue;
                }
                if (e != '"' && e != '\\') {
                        if (e == '\0')
                                return parse_fail(p, start, "unterminated quoted string");
                        if ((unsigned char)e < 0x20 || (unsigned char)e >= 0x7f)
                                return parse_fail(p, i, "unknown escape (only \\\" and \\\\)");
                        return parse_fail(p, i, "unknown escape '\\%c' (only \\\" and \\\\)", e);
                }
                out[n++] = e;
                i++;
        }
}

/* One path segment: a bare name or a quoted string. */
static int parse_segment(struct parser *p, char **ret)
{
        const char *in = p->in;
        size_t start = p->pos;
        int r = 0;

        if (in[start] == '"')
                return parse_quoted(p, '"', false, ret);
        if (!is_alpha(in[start]))
                return parse_fail(p, start, "expected a field name");
        size_t end = start + 1;
        while (is_field_char(in[end]))
                end++;
        char *s = strndup_or_fail(p, in + start, end - start, &r);
        if (!s)
                return r;
        p->pos = end;
        *ret = s;
        return 0;
}

/* The field path: sets sel->field (and sel->label). */
static int parse_fieldpath(struct parser *p, struct selector *sel)
{
        _cleanup_free_ char *first = NULL;
        _cleanup_free_ char *label = NULL;
        size_t start = p->pos, label_len = 0;
        char q[UTIL_PREVIEW_SIZE];
        bool more;
        int r;

        r = parse_segment(p, &first);
        if (r < 0)
                return r;
        more = p->in[p->pos] == '.';

        /* parse_segment() sets `first` when it returns >= 0; the analyzer
         * does not follow it down to strndup_or_fail() to see that. */
        /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
        if (strcmp(first, "name") == 0)
                sel->field = FIELD_NAME;
        else if (strcmp(first, "parent") == 0)
                sel->field = FIELD_PARENT;
        else if (strcmp(first, "kind") == 0)
                sel->field = FIELD_KIND;
        else if (strcmp(first, "labels") == 0)
                sel->field = FIELD_LABEL;
        else
                return parse_fail(p, start, "unknown field '%s' (name, parent, kind, labels.<key>)",
                                  util_preview(q, first, SIZE_MAX));

        if (sel->field != FIELD_LABEL) {
                if (more)
                        return parse_fail(p, p->pos, "field '%s' has no subfields", first);
                return 0;
        }
        if (!more)
                return parse_fail(p, p->pos, "'labels' needs a key (labels.<key>)");

        /* labels.a."b.c".d is the label "a.b.c.d". */
        while (p->in[p->pos] == '.') {
                _cleanup_free_ char *seg = NULL;
                p->pos++;
                r = parse_segment(p, &seg);
                if (r < 0)
                        return r;
                /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): as above */
                size_t sl = strlen(seg);
                char *l = realloc(label, label_len + (label ? 1 : 0) + sl + 1);
                if (!l)
                        return util_err_set(p->err, ENOMEM, "filters[%zu]", p->index);
                if (label)
                        l[label_len++] = '.';
                memcpy(l + label_len, seg, sl + 1);
                label_len += sl;
                label = l;
        }
        sel->label = TAKE_PTR(label);
        return 0;
}

/*
 * What a regular expression may cost, checked before regcomp. glibc's
 * regcomp builds its tree by copying the operand of a repetition ("x+" is
 * "xx*", "x{0,m}" m nested copies of x), so nested repetitions multiply:
 * "b" and 30 '+' take 2^30 nodes, "a{0,32767}" (ten bytes) took 3.9 GB
 * here; its parser recurses once per group, so 100000 nested groups
 * overflow the stack; and back-references make regexec exponential in the
 * value's length ("(a*)*\1b" on 200 characters took 6 s). A walk filter
 * comes from a client, so all three are bounded: back-references are
 * refused (containerd's RE2 has none), counts are at most REGEX_DUP_MAX (as
 * in RE2), groups nest at most REGEX_DEPTH_MAX deep, and the tree, every
 * copy counted, has at most REGEX_BUDGET nodes (the worst shapes within it
 * took 30 MB and 30 ms). The count is an upper bound of glibc's: a syntax
 * error is left to regcomp to report.
 */
#define REGEX_DUP_MAX   1000u
#define REGEX_DEPTH_MAX 100u
#define REGEX_BUDGET    2048u

/* Reads the digits at re[*j] into *ret (0 when there are none). Returns
 * false for a number over REGEX_DUP_MAX. */
static bool regex_count(const char *re, size_t *j, uint64_t *ret)
{
        uint64_t v = 0;

        for (; re[*j] >= '0' && re[*j] <= '9'; (*j)++)
                if ((v = v * 10 + (uint64_t)(re[*j] - '0')) > REGEX_DUP_MAX)
                        return false;
        *ret = v;
        return true;
}

/* The size of `unit` repeated by the operator at re[*i] ('*', '+', '?' or
 * a count "{n}", "{n,}", "{n,m}", "{,m}"), with *i moved past it; 0 when
 * re[*i] is not an operator ('{' that does not form a count is a literal).
 * -1: a count over REGEX_DUP_MAX. */
static int64_t regex_repeat(const char *re, size_t *i, uint64_t unit)
{
        uint64_t n = 0, m = 0;
        size_t j = *i + 1;

        switch (re[*i]) {
        case '*':
        case '?':
                (*i)++;
                return (int64_t)(unit + 1);
        case '+':
                (*i)++;
                return (int64_t)(2 * unit + 1);
        case '{':
                break;
        default:
                return 0;
        }
        size_t digits = j;
        if (!regex_count(re, &j, &n))
                return -1;
        m = n;
        if (re[j] == ',') {
                j++;
                size_t mdigits = j;
                if (!regex_count(re, &j, &m))
                        return -1;
                if (j == mdigits)
                        m = n + 1; /* "{n,}": n copies and a star */
        } else if (j == digits) {
                return 0;
        }
        if (re[j] != '}')
                return 0;
        *i = j + 1;
        return (int64_t)((n > m ? n : m) + 1) * (int64_t)unit + 1;
}

static int regex_check(struct parser *p, size_t pos, const char *re)
{
        /* Per open group: nodes so far, and the last piece (what a
         * repetition applies to; 0 when there is none). */
        struct {
                uint64_t total, last;
        } lv[REGEX_DEPTH_MAX + 1] = {{0, 0}};
        size_t depth = 0, i = 0;

        while (re[i]) {
                uint64_t piece = 1;
                char c = re[i];

                if (c == '\\' && re[i + 1] >= '1' && re[i + 1] <= '9')
                        return parse_fail(p, pos,
                                          "back-references ('\\%c') are not supported in a "
                                          "regular expression",
                                          re[i + 1]);
                if (lv[depth].last) {
                        int64_t r = regex_repeat(re, &i, lv[depth].last);
                        if (r < 0)
                                return parse_fail(p, pos,
                                                  "a repetition count over %u in a regular "
                                                  "expression",
                                                  REGEX_DUP_MAX);
                        if (r > 0) {
                                /* Saturating: the budget is far below overflow. */
                                uint64_t n =
                                        r > (int64_t)REGEX_BUDGET ? REGEX_BUDGET + 1 : (uint64_t)r;
                                lv[depth].total += n - lv[depth].last;
                                lv[depth].last = n;
                                if (lv[depth].total > REGEX_BUDGET)
                                        break;
                                continue;
                        }
                }
                if (c == '(') {
                        if (depth == REGEX_DEPTH_MAX)
                                return parse_fail(p, pos,
                                                  "a regular expression with groups nested "
                                                  "deeper than %u",
                                                  REGEX_DEPTH_MAX);
                        lv[++depth].total = 0;
                        lv[depth].last = 0;
                        i++;
                        continue;
                }
                if (c == ')' && depth > 0) {
                        piece = lv[depth--].total + 1;
                        i++;
                } else if (c == '|') {
                        lv[depth].total++;
                        lv[depth].last = 0;
                        i++;
                        continue;
                } else if (c == '\\' && re[i + 1]) {
                        i += 2;
                } else if (c == '[') {
                        /* A bracket expression: one node, whatever it holds. */
                        size_t j = i + 1;
                        if (re[j] == '^')
                                j++;
                        if (re[j] == ']')
                                j++;
                        while (re[j] && re[j] != ']') {
                                if (re[j] == '[' && strchr(":.=", re[j + 1]) && re[j + 1]) {
                                        const char *e = re + j + 2;
                                        while (*e && !(e[0] == re[j + 1] && e[1] == ']'))
                                                e++;
                                        j = *e ? (size_t)(e - re) + 2 : (size_t)(e - re);
                                        continue;
                                }
                                j++;
                        }
                        i = re[j] ? j + 1 : j;
                } else {
                        i++;
                }
                if (piece > REGEX_BUDGET)
                        piece = REGEX_BUDGET + 1;
                lv[depth].total += piece;
                lv[depth].last = piece;
                if (lv[depth].total > REGEX_BUDGET)
                        break;
        }
        uint64_t total = 0;
        for (size_t d = 0; d <= depth; d++)
                total += lv[d].total;
        if (total > REGEX_BUDGET)
                return parse_fail(p, pos,
                                  "regular expression too complex (more than %u elements once "
                                  "its repetitions are expanded)",
                                  REGEX_BUDGET);
        return 0;
}

static int parse_selector(struct parser *p, struct selector *sel)
{
        const char *in = p->in;
        int r;

        skip_blanks(p);
        r = parse_fieldpath(p, sel);
        if (r < 0)
                return r;
        skip_blanks(p);

        if (in[p->pos] == '\0' || in[p->pos] == ',') {
                sel->op = OP_PRESENT;
                return 0;
        }
        if (strncmp(in + p->pos, "==", 2) == 0)
                sel->op = OP_EQ;
        else if (strncmp(in + p->pos, "!=", 2) == 0)
                sel->op = OP_NE;
        else if (strncmp(in + p->pos, "~=", 2) == 0)
                sel->op = OP_MATCH;
        else
                return parse_fail(p, p->pos, "expected '==', '!=' or '~='");
        p->pos += 2;
        skip_blanks(p);

        size_t vstart = p->pos;
        char c = in[vstart];
        if (c == '"') {
                r = parse_quoted(p, '"', false, &sel->value);
        } else if (sel->op == OP_MATCH && (c == '/' || c == '|')) {
                r = parse_quoted(p, c, true, &sel->value);
        } else {
                size_t end = vstart;
                while (in[end] && in[end] != ',' && !is_blank(in[end]))
                        end++;
                if (end == vstart)
                        return parse_fail(p, vstart, "expected a value");
                r = 0;
                sel->value = strndup_or_fail(p, in + vstart, end - vstart, &r);
                p->pos = end;
        }
        if (r < 0)
                return r;

        if (sel->op == OP_MATCH) {
                r = regex_check(p, vstart, sel->value);
                if (r < 0)
                        return r;
                int rc = regcomp(&sel->re, sel->value, REG_EXTENDED | REG_NOSUB);
                if (rc != 0) {
                        char buf[128];
                        regerror(rc, &sel->re, buf, sizeof(buf));
                        return parse_fail(p, vstart, "invalid regular expression: %s", buf);
                }
                sel->have_re = true;
        }
        return 0;
}

static int parse_one(struct parser *p, struct conjunction *c)
{
        if (p->in[0] == '\0')
                return 0; /* "" matches everything, as in containerd */
        for (;;) {
                if (c->n % 4 == 0) {
                        struct selector *s = reallocarray(c->sel, c->n + 4, sizeof(*s));
                        if (!s)
                                return util_err_set(p->err, ENOMEM, "filters[%zu]", p->index);
                        c->sel = s;
                }
                c->sel[c->n] = (struct selector){0};
                c->n++;
                int r = parse_selector(p, &c->sel[c->n - 1]);
                if (r < 0)
                        return r;
                skip_blanks(p);
                if (p->in[p->pos] == '\0')
                        return 0;
                if (p->in[p->pos] != ',')
                        return parse_fail(p, p->pos, "expected ',' or the end of the filter");
                p->pos++;
        }
}

int snap_filter_parse(const char *const *filters, size_t n, struct snap_filter **ret,
                      struct util_err *err)
{
        _cleanup_(snap_filter_freep) struct snap_filter *f = NULL;

        if (n > 0 && !filters)
                return util_err_setx(err, EINVAL, "filters: %zu announced, none given", n);
        f = calloc(1, sizeof(*f));
        if (!f)
                return util_err_set(err, ENOMEM, "filters");
        if (n > 0) {
                f->any = calloc(n, sizeof(*f->any));
                if (!f->any)
                        return util_err_set(err, ENOMEM, "filters");
        }
        for (size_t i = 0; i < n; i++) {
                struct parser p = {.in = filters[i], .index = i, .err = err};
                f->n = i + 1;
                if (!filters[i])
                        return util_err_setx(err, EINVAL, "filters[%zu]: missing", i);
                int r = parse_one(&p, &f->any[i]);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(f);
        return 0;
}

/* ---- matching ------------------------------------------------------------- */

static const char *label_value(const struct snap_info *i, const char *key)
{
        /* Labels are sorted by key, but there are few: a linear scan is fine. */
        for (size_t n = 0; n < i->n_labels; n++)
                if (strcmp(i->labels[n].key, key) == 0)
                        return i->labels[n].value;
        return NULL;
}

static bool selector_match(const struct selector *s, const struct snap_info *i)
{
        const char *v = NULL;
        bool present;

        switch (s->field) {
        case FIELD_NAME:
                v = i->name;
                break;
        case FIELD_PARENT:
                v = i->parent;
                break;
        case FIELD_KIND:
                v = snap_kind_name(i->kind);
                break;
        case FIELD_LABEL:
                v = label_value(i, s->label);
                break;
        }
        if (s->field == FIELD_LABEL)
                present = v != NULL;
        else
                present = s->op != OP_PRESENT || (v && *v);
        if (!v)
                v = "";

        switch (s->op) {
        case OP_PRESENT:
                return present;
        case OP_EQ:
                return present && strcmp(v, s->value) == 0;
        case OP_NE:
                return strcmp(v, s->value) != 0;
        case OP_MATCH:
                return regexec(&s->re, v, 0, NULL, 0) == 0;
        }
        return false;
}

bool snap_filter_match(const struct snap_filter *f, const struct snap_info *i)
{
        if (!f || f->n == 0)
                return true;
        for (size_t a = 0; a < f->n; a++) {
                const struct conjunction *c = &f->any[a];
                bool all = true;
                for (size_t s = 0; all && s < c->n; s++)
                        all = selector_match(&c->sel[s], i);
                if (all)
                        return true;
        }
        return false;
}

/* ---- walk ----------------------------------------------------------------- */

int snap_store_walk(struct snap_store *s, const struct snap_filter *f, snap_walk_fn fn, void *data,
                    struct util_err *err)
{
        struct snap_info *list = NULL;
        size_t n = 0;
        int r;

        if (!fn)
                return util_err_setx(err, EINVAL, "walk: no callback");
        r = snap_store_list(s, &list, &n, err);
        if (r < 0)
                return util_err_prefix(err, "walk");

        r = 0;
        for (size_t i = 0; i < n; i++) {
                if (!snap_filter_match(f, &list[i]))
                        continue;
                r = fn(&list[i], data, err);
                if (r < 0) {
                        /* Keep the contract even for a callback that forgot. */
                        if (err && err->errnum == 0)
                                util_err_setx(err, -r, "walk: callback failed at '%s'",
                                              list[i].name);
                        break;
                }
        }
        snap_info_list_free(list, n);
        return r < 0 ? r : 0;
}
