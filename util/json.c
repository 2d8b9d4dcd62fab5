/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * JSON through libyajl's tree API, with the limits untrusted input needs.
 * yajl_tree_parse wants a NUL-terminated string and has no nesting limit,
 * so the input is copied (after the size check) and scanned for depth first.
 *
 * yajl_tree_parse also accepts comments (C block comments and "//" line
 * comments), which JSON does not have. They are refused: a comment may hold a '"', and the scan
 * here (like mount/spec-json.c's search for "\u0000") tells strings from
 * structure by counting quotes, so a quote inside a comment would swap the
 * two for the rest of the document and hide brackets and escapes from it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/json.h"

/* Maximum nesting of arrays/objects in `s`, ignoring brackets in strings
 * (stops counting past `stop_at`). *ret_slash: the offset of the first '/'
 * outside a string, where a comment starts (valid JSON has none), or
 * SIZE_MAX. */
static unsigned json_depth(const char *s, size_t len, unsigned stop_at, size_t *ret_slash)
{
        unsigned depth = 0, max = 0;
        bool in_str = false, esc = false;

        *ret_slash = SIZE_MAX;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (in_str) {
                        if (esc)
                                esc = false;
                        else if (c == '\\')
                                esc = true;
                        else if (c == '"')
                                in_str = false;
                        continue;
                }
                if (c == '"') {
                        in_str = true;
                } else if (c == '/') {
                        *ret_slash = i;
                        return max;
                } else if (c == '[' || c == '{') {
                        if (++depth > max)
                                max = depth;
                        if (max > stop_at)
                                return max;
                } else if ((c == ']' || c == '}') && depth > 0) {
                        depth--;
                }
        }
        return max;
}

int util_json_parse(const char *text, size_t len, const char *what,
                    const struct util_json_limits *lim, yajl_val *ret, struct util_err *err)
{
        size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : UTIL_JSON_DEFAULT_MAX_BYTES;
        unsigned max_depth = lim && lim->max_depth ? lim->max_depth : UTIL_JSON_DEFAULT_MAX_DEPTH;
        _cleanup_free_ char *copy = NULL;
        char ebuf[256];

        if (!text)
                return util_err_setx(err, EINVAL, "%s: no input", what);
        if (len > max_bytes)
                return util_err_setx(err, E2BIG, "%s: %zu bytes, more than the limit of %zu", what,
                                     len, max_bytes);
        if (memchr(text, '\0', len))
                return util_err_setx(err, EINVAL, "%s: contains a NUL byte at offset %zu", what,
                                     (size_t)((const char *)memchr(text, '\0', len) - text));
        size_t slash;
        if (json_depth(text, len, max_depth, &slash) > max_depth)
                return util_err_setx(err, ELOOP, "%s: nested deeper than %u levels", what,
                                     max_depth);
        if (slash != SIZE_MAX)
                return util_err_setx(err, EINVAL,
                                     "%s: invalid JSON: '/' at offset %zu (comments are not JSON)",
                                     what, slash);
        copy = malloc(len + 1);
        if (!copy)
                return util_err_set(err, ENOMEM, "%s", what);
        memcpy(copy, text, len);
        copy[len] = '\0';

        ebuf[0] = '\0';
        yajl_val v = yajl_tree_parse(copy, ebuf, sizeof(ebuf));
        if (!v) {
                /* yajl's message spans lines (it quotes the input): keep the first. */
                ebuf[strcspn(ebuf, "\n")] = '\0';
                return util_err_setx(err, EINVAL, "%s: invalid JSON: %s", what,
                                     ebuf[0] ? ebuf : "parse error");
        }
        *ret = v;
        return 0;
}

yajl_val util_json_get(yajl_val obj, const char *key, bool icase)
{
        if (!YAJL_IS_OBJECT(obj))
                return NULL;
        for (size_t i = 0; i < obj->u.object.len; i++) {
                const char *k = obj->u.object.keys[i];
                if (icase ? strcasecmp(k, key) == 0 : strcmp(k, key) == 0)
                        return obj->u.object.values[i];
        }
        return NULL;
}

int util_json_string(yajl_val v, const char *what, const char **ret, struct util_err *err)
{
        if (!YAJL_IS_STRING(v))
                return util_err_setx(err, EINVAL, "%s: expected a string", what);
        *ret = YAJL_GET_STRING(v);
        return 0;
}

int util_json_u32(yajl_val v, const char *what, uint32_t *ret, struct util_err *err)
{
        if (!YAJL_IS_INTEGER(v))
                return util_err_setx(err, EINVAL, "%s: expected a non-negative integer", what);
        long long n = YAJL_GET_INTEGER(v);
        if (n < 0 || n > (long long)UINT32_MAX)
                return util_err_setx(err, ERANGE, "%s: %lld is out of range 0..%u", what, n,
                                     UINT32_MAX);
        *ret = (uint32_t)n;
        return 0;
}

yajl_gen util_json_gen_new(bool pretty)
{
        yajl_gen g = yajl_gen_alloc(NULL);
        if (!g)
                return NULL;
        yajl_gen_config(g, yajl_gen_validate_utf8, 1);
        if (pretty) {
                yajl_gen_config(g, yajl_gen_beautify, 1);
                yajl_gen_config(g, yajl_gen_indent_string, "  ");
        }
        return g;
}

int util_json_gen_str(yajl_gen g, const char *s)
{
        return yajl_gen_string(g, (const unsigned char *)s, strlen(s)) == yajl_gen_status_ok
                       ? 0
                       : -EINVAL;
}

int util_json_gen_finish(yajl_gen g, char **ret)
{
        const unsigned char *buf;
        size_t len;

        if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
                return -EINVAL;
        char *s = malloc(len + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, buf, len);
        s[len] = '\0';
        *ret = s;
        return 0;
}
