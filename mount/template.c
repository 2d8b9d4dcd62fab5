/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Templates in mount specs, as containerd's mount manager writes them:
 * "{{ mount N }}" is the mountpoint of earlier mount N, "{{ overlay A B }}"
 * the mountpoints of mounts A..B joined with ':' (A > B walks backwards, so
 * the topmost layer comes first). The grammar is exactly
 *   "{{" ws* ("mount" ws+ N | "overlay" ws+ A ws+ B) ws* "}}"
 * with ws a space or a tab and N, A, B unsigned decimals; anything else
 * between the braces is an error, as is a reference to the mount itself or
 * to a later one (mounts are made in order, so that mountpoint does not exist
 * yet). Errors quote the template and say why.
 *
 * Two consumers: mount_template_resolve substitutes text (legacy mount(2)
 * data, lowerdir+ strings), mount_template_layers turns a layer list into
 * mount indexes and plain paths, which is what the fd path needs: there a
 * layer is a detached mount, so a layer cannot mix a template with text.
 */
#include <stdio.h>
#include <string.h>

#include "mount/spec.h"

/* More layers than any overlay takes (the kernel stops at 500 lowers):
 * bounds what "{{ overlay A B }}" tokens can expand to. */
#define LAYERS_MAX MOUNT_SPEC_MAX_MOUNTS

enum tmpl_kind { TMPL_MOUNT, TMPL_OVERLAY };

struct tmpl {
        enum tmpl_kind kind;
        size_t a, b; /* mount: a == b == N */
        size_t end;  /* offset just after "}}" */
};

/* Copies at most ~64 bytes of s[0..len) into `buf` for an error message,
 * control characters shown as '?', "..." appended when cut. Returns `buf`. */
static bool is_ws(char c)
{
        return c == ' ' || c == '\t';
}

/* An unsigned decimal of `len` bytes (no sign, no spaces) that fits size_t. */
static bool parse_index(const char *s, size_t len, size_t *ret)
{
        size_t v = 0;

        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                size_t d = (size_t)(s[i] - '0');
                if (v > (SIZE_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret = v;
        return true;
}

/* Checks that mount `ref` is before mount `self`. */
static int check_ref(const char *q, size_t ref, size_t self, struct util_err *err)
{
        if (ref > self)
                return util_err_setx(err, EINVAL,
                                     "'%s' refers forward: mount %zu is not before mount %zu", q,
                                     ref, self);
        if (ref == self)
                return util_err_setx(err, EINVAL,
                                     "'%s' refers to itself: mount %zu is not before mount %zu", q,
                                     ref, self);
        return 0;
}

/*
 * Parses the template that starts at in[pos] (which is "{{"). `self` is the
 * index of the mount that uses it. Returns 0 and `t`, or -EINVAL.
 */
static int tmpl_parse(const char *in, size_t pos, size_t self, struct tmpl *t, struct util_err *err)
{
        const char *close = strstr(in + pos + 2, "}}");
        struct {
                const char *s;
                size_t len;
        } w[4];
        size_t nw = 0;
        char q[UTIL_PREVIEW_SIZE], wq[72];

        if (!close)
                return util_err_setx(err, EINVAL, "'%s': '{{' without '}}'",
                                     util_preview(q, in + pos, SIZE_MAX));
        size_t end = (size_t)(close - in) + 2;
        util_preview(q, in + pos, end - pos);

        /* Split the body into at most 4 words: one more than the longest
         * form, so an extra argument is seen. */
        for (const char *p = in + pos + 2; p < close && nw < UTIL_ARRAY_SIZE(w);) {
                if (is_ws(*p)) {
                        p++;
                        continue;
                }
                const char *start = p;
                while (p < close && !is_ws(*p))
                        p++;
                w[nw].s = start;
                w[nw].len = (size_t)(p - start);
                nw++;
        }
        if (nw == 0)
                return util_err_setx(err, EINVAL, "'%s': empty template", q);

        size_t want;
        if (w[0].len == 5 && memcmp(w[0].s, "mount", 5) == 0) {
                t->kind = TMPL_MOUNT;
                want = 1;
        } else if (w[0].len == 7 && memcmp(w[0].s, "overlay", 7) == 0) {
                t->kind = TMPL_OVERLAY;
                want = 2;
        } else {
                return util_err_setx(err, EINVAL,
                                     "'%s': unknown template '%s' (expected 'mount N' or "
                                     "'overlay A B')",
                                     q, util_preview(wq, w[0].s, w[0].len));
        }
        if (nw - 1 < want)
                return util_err_setx(err, EINVAL, "'%s': '%s' needs %s", q,
                                     t->kind == TMPL_MOUNT ? "mount" : "overlay",
                                     want == 1 ? "one mount index" : "two mount indexes");
        if (nw - 1 > want)
                return util_err_setx(err, EINVAL, "'%s': '%s' takes only %s", q,
                                     t->kind == TMPL_MOUNT ? "mount" : "overlay",
                                     want == 1 ? "one mount index" : "two mount indexes");

        size_t idx[2] = {0, 0};
        for (size_t i = 0; i < want; i++)
                if (!parse_index(w[1 + i].s, w[1 + i].len, &idx[i]))
                        return util_err_setx(err, EINVAL, "'%s': '%s' is not a mount index", q,
                                             util_preview(wq, w[1 + i].s, w[1 + i].len));
        t->a = idx[0];
        t->b = want == 2 ? idx[1] : idx[0];

        /* Report the larger one: that is the reference that is wrong. */
        int r = check_ref(q, t->a > t->b ? t->a : t->b, self, err);
        if (r < 0)
                return r;
        t->end = end;
        return 0;
}

/* The mount indexes of `t`, in order: i-th of tmpl_count(t). */
static size_t tmpl_count(const struct tmpl *t)
{
        return (t->a > t->b ? t->a - t->b : t->b - t->a) + 1;
}

static size_t tmpl_at(const struct tmpl *t, size_t i)
{
        return t->a > t->b ? t->a - i : t->a + i;
}

bool mount_template_has(const char *s)
{
        return s && strstr(s, "{{");
}

/* A growing string; `failed` is sticky so callers check once. */
struct strbuf {
        char *s;
        size_t len, cap;
        bool failed;
};

static void strbuf_add(struct strbuf *b, const char *s, size_t len)
{
        if (b->failed)
                return;
        if (len >= b->cap - b->len || !b->s) {
                size_t cap = b->cap ? b->cap : 64;
                while (cap - b->len <= len) {
                        if (cap > SIZE_MAX / 2) {
                                b->failed = true;
                                return;
                        }
                        cap *= 2;
                }
                char *n = realloc(b->s, cap);
                if (!n) {
                        b->failed = true;
                        return;
                }
                b->s = n;
                b->cap = cap;
        }
        memcpy(b->s + b->len, s, len);
        b->len += len;
        b->s[b->len] = '\0';
}

int mount_template_resolve(const char *in, size_t self, const char *const *mountpoints, char **ret,
                           struct util_err *err)
{
        struct strbuf b = {0};
        size_t pos = 0;
        char q[UTIL_PREVIEW_SIZE];
        int r;

        if (!in)
                return util_err_setx(err, EINVAL, "template: no input");
        strbuf_add(&b, "", 0);
        for (;;) {
                const char *open = strstr(in + pos, "{{");
                if (!open) {
                        strbuf_add(&b, in + pos, strlen(in + pos));
                        break;
                }
                size_t at = (size_t)(open - in);
                strbuf_add(&b, in + pos, at - pos);

                struct tmpl t;
                r = tmpl_parse(in, at, self, &t, err);
                if (r < 0) {
                        free(b.s);
                        return r;
                }
                for (size_t i = 0, n = tmpl_count(&t); i < n; i++) {
                        const char *mp = mountpoints ? mountpoints[tmpl_at(&t, i)] : NULL;
                        if (!mp) {
                                free(b.s);
                                return util_err_setx(
                                        err, EINVAL, "'%s': mount %zu has no mountpoint",
                                        util_preview(q, in + at, t.end - at), tmpl_at(&t, i));
                        }
                        if (i > 0)
                                strbuf_add(&b, ":", 1);
                        strbuf_add(&b, mp, strlen(mp));
                }
                pos = t.end;
        }
        if (b.failed) {
                free(b.s);
                return util_err_set(err, ENOMEM, "template '%s'", util_preview(q, in, SIZE_MAX));
        }
        *ret = b.s;
        return 0;
}

void mount_layers_free(struct mount_layer *l, size_t n)
{
        if (!l)
                return;
        for (size_t i = 0; i < n; i++)
                free(l[i].path);
        free(l);
}

/* The layer list being built; freed by the caller on failure. */
struct layers {
        struct mount_layer *l;
        size_t n, cap;
};

static int layers_push(struct layers *ls, struct mount_layer layer, size_t idx,
                       struct util_err *err)
{
        if (ls->n >= LAYERS_MAX) {
                free(layer.path);
                return util_err_setx(err, EINVAL, "layers[%zu]: more than %u layers", idx,
                                     LAYERS_MAX);
        }
        if (ls->n == ls->cap) {
                size_t cap = ls->cap ? ls->cap * 2 : 16;
                struct mount_layer *n = reallocarray(ls->l, cap, sizeof(*n));
                if (!n) {
                        free(layer.path);
                        return util_err_set(err, ENOMEM, "layers[%zu]", idx);
                }
                ls->l = n;
                ls->cap = cap;
        }
        ls->l[ls->n++] = layer;
        return 0;
}

/* A relative path with no empty, "." or ".." parts and no byte that mount
 * data or the fd path would read differently. */
static bool subpath_ok(const char *p)
{
        if (!*p)
                return false;
        while (*p) {
                size_t len = strcspn(p, "/");
                if (len == 0 || (len == 1 && p[0] == '.') ||
                    (len == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                for (size_t i = 0; i < len; i++) {
                        unsigned char c = (unsigned char)p[i];
                        if (c < 0x20 || c == 0x7f || c == ',' || c == '\\' || c == '{' || c == '}')
                                return false;
                }
                p += len;
                if (*p == '/')
                        p++;
                if (!*p && p[-1] == '/')
                        return false;
        }
        return true;
}

/* One layer: value[0..len), the idx-th of the list. */
static int parse_layer(struct layers *ls, const char *s, size_t len, size_t idx, size_t self,
                       struct util_err *err)
{
        _cleanup_free_ char *copy = NULL;
        char q[UTIL_PREVIEW_SIZE];
        int r;

        if (len == 0)
                return util_err_setx(err, EINVAL, "layers[%zu] is empty", idx);
        copy = strndup(s, len);
        if (!copy)
                return util_err_set(err, ENOMEM, "layers[%zu]", idx);

        if (strstr(copy, "{{")) {
                struct tmpl t;
                if (strncmp(copy, "{{", 2) != 0)
                        return util_err_setx(err, EINVAL,
                                             "layers[%zu] '%s': mixes text with a template (a "
                                             "template must be a whole layer)",
                                             idx, util_preview(q, copy, len));
                r = tmpl_parse(copy, 0, self, &t, err);
                if (r < 0)
                        return util_err_prefix(err, "layers[%zu]", idx);
                /* "{{ mount N }}/sub/dir": a directory inside the mount, as
                 * containerd's snapshotters write upperdir={{ mount 0 }}/upper. */
                const char *sub = NULL;
                if (t.end != len) {
                        if (copy[t.end] != '/' || !subpath_ok(copy + t.end + 1))
                                return util_err_setx(err, EINVAL,
                                                     "layers[%zu] '%s': after a template only "
                                                     "'/relative/sub/dir' may follow (no '..', "
                                                     "'.', empty parts, ',' or '\\')",
                                                     idx, util_preview(q, copy, len));
                        sub = copy + t.end + 1;
                }
                for (size_t i = 0, n = tmpl_count(&t); i < n; i++) {
                        struct mount_layer m = {.is_mount = true, .index = tmpl_at(&t, i)};
                        if (sub && !(m.path = strdup(sub)))
                                return util_err_set(err, ENOMEM, "layers[%zu]", idx);
                        r = layers_push(ls, m, idx, err);
                        if (r < 0)
                                return r;
                }
                return 0;
        }

        if (copy[0] != '/')
                return util_err_setx(err, EINVAL,
                                     "layers[%zu] '%s': not an absolute path (legacy mounts "
                                     "resolve layers from another directory)",
                                     idx, util_preview(q, copy, len));
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)copy[i];
                if (c < 0x20 || c == 0x7f)
                        return util_err_setx(err, EINVAL,
                                             "layers[%zu]: control character 0x%02x at byte %zu",
                                             idx, c, i);
                if (c == ',' || c == '\\')
                        return util_err_setx(err, EINVAL,
                                             "layers[%zu] '%s': contains '%c' (mount data would "
                                             "read it as %s)",
                                             idx, util_preview(q, copy, len), c,
                                             c == ',' ? "the end of the option" : "an escape");
        }
        return layers_push(ls, (struct mount_layer){.path = TAKE_PTR(copy)}, idx, err);
}

int mount_template_layers(const char *value, size_t self, struct mount_layer **ret, size_t *ret_n,
                          struct util_err *err)
{
        struct layers ls = {0};
        size_t idx = 0;
        char q[UTIL_PREVIEW_SIZE];
        int r;

        if (!value)
                return util_err_setx(err, EINVAL, "layers: no input");
        for (const char *p = value;; idx++) {
                const char *colon = strchr(p, ':');
                size_t len = colon ? (size_t)(colon - p) : strlen(p);
                r = parse_layer(&ls, p, len, idx, self, err);
                if (r < 0) {
                        mount_layers_free(ls.l, ls.n);
                        return util_err_prefix(err, "'%s'", util_preview(q, value, SIZE_MAX));
                }
                if (!colon)
                        break;
                p = colon + 1;
        }
        *ret = ls.l;
        *ret_n = ls.n;
        return 0;
}
