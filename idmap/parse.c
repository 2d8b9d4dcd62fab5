/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Id mappings as text and JSON. Both forms are untrusted (containerd labels,
 * OCI config), so parsing is strict: decimal digits only (no sign, no
 * spaces, no hex), exactly three fields per range, every number within 32
 * bits. A parsed mapping is then checked the way the kernel's map_write()
 * (kernel/user_namespace.c) checks a uid_map write, so that a bad mapping is
 * refused here with a message naming the input and the range, instead of
 * as a bare EINVAL from a /proc write later:
 *   - 1..340 ranges (UID_GID_MAP_MAX_EXTENTS, since 4.15),
 *   - size > 0, and first + size must not wrap a u32 — so the last id of a
 *     range is at most 4294967294; 4294967295 is (uid_t)-1, never an id,
 *   - no two ranges overlap, neither inside (container) nor outside (host),
 *   - the text written to uid_map is shorter than a page (the kernel takes
 *     one write of less than PAGE_SIZE bytes).
 * Range indexes in messages count from 0, like the OCI array indexes.
 */
#include <stdio.h>
#include <string.h>

#include "idmap/idmap.h"
#include "util/json.h"

/* What error messages quote of an untrusted range: at most this many input
 * bytes, non-printable bytes as \xNN. */
#define QUOTE_MAX 48

static void quote(const char *s, size_t len, char *buf, size_t size)
{
        size_t o = 0;
        bool cut = len > QUOTE_MAX;

        if (cut)
                len = QUOTE_MAX;
        for (size_t i = 0; i < len && o + 5 < size; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
                        buf[o++] = (char)c;
                else
                        o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        }
        if (cut && o + 4 < size) {
                memcpy(buf + o, "...", 3);
                o += 3;
        }
        buf[o] = '\0';
}

/* Parses the decimal number in s[0..len). Returns 0, -EINVAL or -ERANGE. */
static int parse_u32(const char *s, size_t len, uint32_t *ret)
{
        uint64_t v = 0;

        if (len == 0)
                return -EINVAL;
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                v = v * 10 + (uint64_t)(s[i] - '0');
                if (v > UINT32_MAX)
                        return -ERANGE;
        }
        *ret = (uint32_t)v;
        return 0;
}

static int parse_range(const char *s, size_t len, const char *what, size_t idx,
                       struct idmap_range *ret, struct util_err *err)
{
        static const char *const field_names[3] = {"container id", "host id", "size"};
        uint32_t v[3];
        char q[QUOTE_MAX * 4 + 8];
        const char *p = s, *end = s + len;

        quote(s, len, q, sizeof(q));
        for (size_t f = 0; f < 3; f++) {
                const char *colon = memchr(p, ':', (size_t)(end - p));
                const char *fend = colon ? colon : end;

                if ((f < 2 && !colon) || (f == 2 && colon))
                        return util_err_setx(err, EINVAL,
                                             "%s: range %zu '%s': expected container:host:size",
                                             what, idx, q);
                int r = parse_u32(p, (size_t)(fend - p), &v[f]);
                if (r == -ERANGE)
                        return util_err_setx(err, ERANGE,
                                             "%s: range %zu '%s': %s does not fit 32 bits", what,
                                             idx, q, field_names[f]);
                if (r < 0)
                        return util_err_setx(err, EINVAL, "%s: range %zu '%s': %s is not a number",
                                             what, idx, q, field_names[f]);
                p = fend + 1;
        }
        *ret = (struct idmap_range){.container = v[0], .host = v[1], .size = v[2]};
        return 0;
}

int idmap_parse(const char *s, const char *what, struct idmap_map *ret, struct util_err *err)
{
        struct idmap_map m = {.n = 0};
        const char *p = s;

        if (!what)
                what = "id map";
        if (!s)
                return util_err_setx(err, EINVAL, "%s: no mapping given", what);
        if (!*s)
                return util_err_setx(err, EINVAL, "%s: empty mapping", what);

        for (;;) {
                size_t len = strcspn(p, ",");

                if (m.n == IDMAP_MAX_RANGES)
                        return util_err_setx(err, E2BIG,
                                             "%s: more than %d ranges (the kernel's limit)", what,
                                             IDMAP_MAX_RANGES);
                if (len == 0)
                        return util_err_setx(err, EINVAL, "%s: range %zu is empty", what, m.n);
                int r = parse_range(p, len, what, m.n, &m.r[m.n], err);
                if (r < 0)
                        return r;
                m.n++;
                p += len;
                if (!*p)
                        break;
                p++; /* the comma; a trailing one yields an empty range above */
        }

        int r = idmap_map_check(&m, what, err);
        if (r < 0)
                return r;
        *ret = m;
        return 0;
}

int idmap_parse_oci(yajl_val arr, const char *what, struct idmap_map *ret, struct util_err *err)
{
        static const char *const keys[3] = {"containerID", "hostID", "size"};
        struct idmap_map m = {.n = 0};

        if (!what)
                what = "idMappings";
        if (!YAJL_IS_ARRAY(arr))
                return util_err_setx(err, EINVAL, "%s: expected an array", what);
        if (arr->u.array.len > IDMAP_MAX_RANGES)
                return util_err_setx(err, E2BIG, "%s: %zu ranges, the kernel takes at most %d",
                                     what, arr->u.array.len, IDMAP_MAX_RANGES);

        for (size_t i = 0; i < arr->u.array.len; i++) {
                yajl_val obj = arr->u.array.values[i];
                uint32_t v[3];
                bool seen[3] = {false, false, false};
                char elem[256];

                if (!YAJL_IS_OBJECT(obj))
                        return util_err_setx(err, EINVAL, "%s[%zu]: expected an object", what, i);
                for (size_t k = 0; k < obj->u.object.len; k++) {
                        const char *key = obj->u.object.keys[k];
                        size_t f = 0;

                        while (f < 3 && strcmp(key, keys[f]) != 0)
                                f++;
                        if (f == 3) {
                                char q[QUOTE_MAX * 4 + 8];
                                quote(key, strlen(key), q, sizeof(q));
                                return util_err_setx(err, EINVAL, "%s[%zu]: unknown key '%s'", what,
                                                     i, q);
                        }
                        if (seen[f])
                                return util_err_setx(err, EINVAL, "%s[%zu]: duplicate key '%s'",
                                                     what, i, keys[f]);
                        seen[f] = true;
                        snprintf(elem, sizeof(elem), "%s[%zu].%s", what, i, keys[f]);
                        int r = util_json_u32(obj->u.object.values[k], elem, &v[f], err);
                        if (r < 0)
                                return r;
                }
                for (size_t f = 0; f < 3; f++)
                        if (!seen[f])
                                return util_err_setx(err, EINVAL, "%s[%zu]: missing key '%s'", what,
                                                     i, keys[f]);
                m.r[m.n++] = (struct idmap_range){.container = v[0], .host = v[1], .size = v[2]};
        }

        int r = idmap_map_check(&m, what, err);
        if (r < 0)
                return r;
        *ret = m;
        return 0;
}

static size_t decimal_len(uint32_t v)
{
        size_t n = 1;

        while (v >= 10) {
                v /= 10;
                n++;
        }
        return n;
}

/* Whether [a, a+as) and [b, b+bs) share an id (64-bit: no wrap). */
static bool spans_overlap(uint32_t a, uint32_t as, uint32_t b, uint32_t bs)
{
        return (uint64_t)a < (uint64_t)b + bs && (uint64_t)b < (uint64_t)a + as;
}

int idmap_map_check(const struct idmap_map *m, const char *what, struct util_err *err)
{
        long page = sysconf(_SC_PAGESIZE);
        size_t text = 0;

        if (!what)
                what = "id map";
        if (!m || m->n == 0)
                return util_err_setx(err, EINVAL, "%s: no ranges", what);
        if (m->n > IDMAP_MAX_RANGES)
                return util_err_setx(err, E2BIG, "%s: %zu ranges, the kernel takes at most %d",
                                     what, m->n, IDMAP_MAX_RANGES);

        for (size_t i = 0; i < m->n; i++) {
                const struct idmap_range *a = &m->r[i];

                if (a->size == 0)
                        return util_err_setx(err, EINVAL, "%s: range %zu (%u:%u:%u): size is 0",
                                             what, i, a->container, a->host, a->size);
                /* map_write() refuses first + count that wraps a u32. */
                if ((uint64_t)a->container + a->size > UINT32_MAX)
                        return util_err_setx(err, ERANGE,
                                             "%s: range %zu (%u:%u:%u): container ids go past "
                                             "4294967294",
                                             what, i, a->container, a->host, a->size);
                if ((uint64_t)a->host + a->size > UINT32_MAX)
                        return util_err_setx(err, ERANGE,
                                             "%s: range %zu (%u:%u:%u): host ids go past "
                                             "4294967294",
                                             what, i, a->container, a->host, a->size);
                for (size_t j = 0; j < i; j++) {
                        const struct idmap_range *b = &m->r[j];

                        if (spans_overlap(a->container, a->size, b->container, b->size))
                                return util_err_setx(err, EINVAL,
                                                     "%s: ranges %zu (%u:%u:%u) and %zu "
                                                     "(%u:%u:%u) overlap on the container side",
                                                     what, j, b->container, b->host, b->size, i,
                                                     a->container, a->host, a->size);
                        if (spans_overlap(a->host, a->size, b->host, b->size))
                                return util_err_setx(err, EINVAL,
                                                     "%s: ranges %zu (%u:%u:%u) and %zu "
                                                     "(%u:%u:%u) overlap on the host side",
                                                     what, j, b->container, b->host, b->size, i,
                                                     a->container, a->host, a->size);
                }
                /* "container host size\n", as idmap_userns_new() writes it. */
                text += decimal_len(a->container) + decimal_len(a->host) + decimal_len(a->size) + 3;
        }
        if (page <= 0)
                page = 4096;
        if (text >= (size_t)page)
                return util_err_setx(err, E2BIG,
                                     "%s: %zu ranges take %zu bytes in uid_map/gid_map, the "
                                     "kernel takes less than %ld in its one write",
                                     what, m->n, text, page);
        return 0;
}

int idmap_format(const struct idmap_map *m, char *buf, size_t size)
{
        size_t need = 0;

        if (!m || m->n > IDMAP_MAX_RANGES)
                return -EINVAL;
        for (size_t i = 0; i < m->n; i++)
                need += (i ? 1 : 0) + decimal_len(m->r[i].container) + decimal_len(m->r[i].host) +
                        decimal_len(m->r[i].size) + 2;
        if (!buf || need >= size)
                return -ENOSPC;

        size_t o = 0;
        for (size_t i = 0; i < m->n; i++)
                o += (size_t)snprintf(buf + o, size - o, "%s%u:%u:%u", i ? "," : "",
                                      m->r[i].container, m->r[i].host, m->r[i].size);
        buf[o] = '\0';
        return 0;
}

bool idmap_map_equal(const struct idmap_map *a, const struct idmap_map *b)
{
        if (a == b)
                return true;
        if (!a || !b || a->n != b->n || a->n > IDMAP_MAX_RANGES)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (a->r[i].container != b->r[i].container || a->r[i].host != b->r[i].host ||
                    a->r[i].size != b->r[i].size)
                        return false;
        return true;
}

bool idmap_map_to_host(const struct idmap_map *m, uint32_t id, uint32_t *ret)
{
        if (!m)
                return false;
        for (size_t i = 0; i < m->n && i < IDMAP_MAX_RANGES; i++) {
                const struct idmap_range *r = &m->r[i];
                if (id >= r->container && id - r->container < r->size) {
                        uint64_t host = (uint64_t)r->host + (id - r->container);
                        if (host > UINT32_MAX)
                                return false; /* only in an unchecked map */
                        if (ret)
                                *ret = (uint32_t)host;
                        return true;
                }
        }
        return false;
}
