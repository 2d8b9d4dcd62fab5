/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The framing check of an uncompressed tar stream (apply-internal.h): a
 * second, deliberately narrow reading of the headers, run on every byte
 * before libarchive parses it. It exists for what libarchive accepts but a
 * layer must not hold, or only reports as a warning, or quietly shortens:
 * a pax path with a NUL byte inside is cut at the NUL by libarchive (the
 * entry would land under another name); pax records over 1 MB are dropped
 * with a warning; hard links may or may not carry data depending on a
 * look-ahead heuristic. Refusing all of these here, with the entry's name,
 * keeps the two readings of the stream in step: whenever they could
 * disagree on where an entry starts, the scan fails instead.
 *
 * Formats: ustar, pax ('x' per entry, 'g' global), GNU ('L'/'K' long
 * names, base-256 numbers). Refused: sparse entries (GNU 'S' and pax
 * GNU.sparse.*; no image tool writes them), types it does not know, a data
 * size on any entry but a regular file, a global header that sets a path or
 * size, more than SNAP_TAR_EXT_MAX extended headers in front of one entry.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "snapshot/apply-internal.h"

enum {
        SCAN_HEADER = 0, /* collecting a 512-byte header */
        SCAN_DATA,       /* an entry's data (collected when it is an extended header) */
        SCAN_PAD,        /* the padding to the next 512-byte block */
        SCAN_END,        /* after the end-of-archive block: zeros only */
        SCAN_FAILED,
};

#define BLOCK 512u

void snap_tar_scan_init(struct snap_tar_scan *s)
{
        *s = (struct snap_tar_scan){.state = SCAN_HEADER};
}

void snap_tar_scan_done(struct snap_tar_scan *s)
{
        free(s->ext);
        s->ext = NULL;
}

/* A preview of `len` bytes of untrusted text that may hold NUL bytes:
 * control characters (NUL too) shown as '?', cut at 64 with "...". */
static void preview(char out[UTIL_PREVIEW_SIZE], const char *s, size_t len)
{
        size_t i = 0;

        for (; i < len && i < 64; i++) {
                unsigned char c = (unsigned char)s[i];
                out[i] = (char)((c < 0x20 || c == 0x7f) ? '?' : c);
        }
        if (i < len) {
                memcpy(out + i, "...", 3);
                i += 3;
        }
        out[i] = '\0';
}

static uint64_t padding(uint64_t size)
{
        return (BLOCK - size % BLOCK) % BLOCK;
}

static bool all_zero(const unsigned char *b, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (b[i])
                        return false;
        return true;
}

/* An octal field: optional leading blanks, digits, then blanks/NULs only. */
static int parse_octal(const unsigned char *f, size_t n, uint64_t *ret)
{
        size_t i = 0;
        uint64_t v = 0;

        while (i < n && f[i] == ' ')
                i++;
        for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
                if (v > (UINT64_MAX >> 3))
                        return -ERANGE;
                v = (v << 3) | (uint64_t)(f[i] - '0');
        }
        for (; i < n; i++)
                if (f[i] != ' ' && f[i] != '\0')
                        return -EINVAL;
        *ret = v;
        return 0;
}

/* A numeric field: octal, or GNU base-256 (high bit of the first byte). */
static int parse_number(const unsigned char *f, size_t n, uint64_t *ret)
{
        if (!(f[0] & 0x80))
                return parse_octal(f, n, ret);
        if (f[0] & 0x40)
                return -ERANGE; /* negative */
        uint64_t v = f[0] & 0x3f;
        for (size_t i = 1; i < n; i++) {
                if (v > (UINT64_MAX >> 8))
                        return -ERANGE;
                v = (v << 8) | f[i];
        }
        if (v > INT64_MAX)
                return -ERANGE;
        *ret = v;
        return 0;
}

/* The checksum: the sum of the header's bytes with its own field read as
 * blanks; historic writers summed signed chars, which readers accept too. */
static bool checksum_ok(const unsigned char *h)
{
        uint64_t stored;
        uint64_t usum = 0;
        int64_t ssum = 0;

        if (parse_octal(h + 148, 8, &stored) < 0 || all_zero(h + 148, 8))
                return false;
        for (size_t i = 0; i < BLOCK; i++) {
                unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
                usum += c;
                ssum += (signed char)c;
        }
        return stored == usum || (int64_t)stored == ssum;
}

/* The name in a ustar/GNU header, for messages. */
static void header_name(const unsigned char *h, char out[UTIL_PREVIEW_SIZE])
{
        char buf[256 + 2];
        size_t n = 0;

        /* POSIX ustar ("ustar\0"): a prefix field; GNU ("ustar  ") has none. */
        if (memcmp(h + 257, "ustar\0", 6) == 0 && h[345]) {
                size_t pl = strnlen((const char *)h + 345, 155);
                memcpy(buf, h + 345, pl);
                n = pl;
                buf[n++] = '/';
        }
        size_t nl = strnlen((const char *)h, 100);
        memcpy(buf + n, h, nl);
        n += nl;
        preview(out, buf, n);
}

static int fail(struct snap_tar_scan *s, struct util_err *err, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int fail(struct snap_tar_scan *s, struct util_err *err, int errnum, const char *fmt, ...)
{
        char msg[UTIL_ERR_MSG_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        s->state = SCAN_FAILED;
        return util_err_setx(err, errnum, "%s", msg);
}

/* Parses a decimal number that fills [p, p+n) exactly. */
static int parse_decimal(const char *p, size_t n, uint64_t *ret)
{
        uint64_t v = 0;

        if (n == 0 || n > 20)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return -EINVAL;
                unsigned d = (unsigned)(p[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* The records of a pax header: "<len> <key>=<value>\n", <len> counting the
 * whole record. Trailing NUL padding is tolerated, nothing else. */
static int pax_done(struct snap_tar_scan *s, struct util_err *err)
{
        const char *p = s->ext;
        size_t n = s->ext_len, pos = 0;
        bool global = s->ext_type == 'g';
        const char *kind = global ? "global pax header" : "pax header";

        while (pos < n) {
                if (p[pos] == '\0') {
                        if (!all_zero((const unsigned char *)p + pos, n - pos))
                                break;
                        return 0;
                }
                size_t digits = 0;
                while (pos + digits < n && p[pos + digits] >= '0' && p[pos + digits] <= '9')
                        digits++;
                uint64_t len;
                if (pos + digits >= n || p[pos + digits] != ' ' ||
                    parse_decimal(p + pos, digits, &len) < 0 || len > n - pos || len < digits + 4 ||
                    p[pos + len - 1] != '\n')
                        break;
                const char *key = p + pos + digits + 1;
                const char *end = p + pos + len - 1; /* the '\n' */
                const char *eq = memchr(key, '=', (size_t)(end - key));
                if (!eq || eq == key || memchr(key, '\0', (size_t)(eq - key)))
                        break;
                size_t klen = (size_t)(eq - key);
                const char *val = eq + 1;
                size_t vlen = (size_t)(end - val);

#define KEY_IS(k) (klen == strlen(k) && memcmp(key, k, klen) == 0)
                if (KEY_IS("path") || KEY_IS("linkpath")) {
                        const char *what = KEY_IS("path") ? "path" : "linkpath";
                        char pv[UTIL_PREVIEW_SIZE];
                        preview(pv, val, vlen);
                        if (global)
                                return fail(s, err, EINVAL, "entry '%s': a %s sets '%s'", s->name,
                                            kind, what);
                        if (memchr(val, '\0', vlen))
                                return fail(s, err, EINVAL,
                                            "entry '%s': the pax %s holds a NUL byte", pv, what);
                        if (vlen == 0)
                                return fail(s, err, EINVAL, "entry '%s': an empty pax %s", s->name,
                                            what);
                        if (vlen >= PATH_MAX)
                                return fail(s, err, E2BIG,
                                            "entry '%s': the pax %s of %zu bytes is longer than "
                                            "PATH_MAX",
                                            pv, what, vlen);
                        if (KEY_IS("path"))
                                memcpy(s->pending, pv, sizeof(s->pending));
                } else if (KEY_IS("size")) {
                        if (global)
                                return fail(s, err, EINVAL, "entry '%s': a %s sets 'size'", s->name,
                                            kind);
                        if (parse_decimal(val, vlen, &s->size) < 0 || s->size > INT64_MAX)
                                return fail(s, err, EINVAL, "entry '%s': bad pax size", s->name);
                        s->have_size = true;
                } else if (klen >= 11 && memcmp(key, "GNU.sparse.", 11) == 0) {
                        return fail(s, err, EINVAL,
                                    "entry '%s': sparse entries are not supported (pax "
                                    "GNU.sparse.*)",
                                    s->name);
                }
#undef KEY_IS
                pos += (size_t)len;
        }
        if (pos >= n)
                return 0;
        return fail(s, err, EINVAL, "entry '%s': malformed %s record at byte %zu", s->name, kind,
                    pos);
}

/* A GNU long name ('L') or link name ('K'): a name and a NUL, nothing after. */
static int longname_done(struct snap_tar_scan *s, struct util_err *err)
{
        size_t n = strnlen(s->ext, s->ext_len);
        char pv[UTIL_PREVIEW_SIZE];

        preview(pv, s->ext, s->ext_len);
        if (n == 0)
                return fail(s, err, EINVAL, "entry '%s': an empty GNU long name", s->name);
        if (!all_zero((const unsigned char *)s->ext + n, s->ext_len - n))
                return fail(s, err, EINVAL, "entry '%s': the GNU long %s holds a NUL byte", pv,
                            s->ext_type == 'L' ? "name" : "link name");
        if (s->ext_type == 'L' && !s->pending[0])
                memcpy(s->pending, pv, sizeof(s->pending));
        return 0;
}

static int ext_done(struct snap_tar_scan *s, struct util_err *err)
{
        int r = s->ext_type == 'x' || s->ext_type == 'g' ? pax_done(s, err) : longname_done(s, err);
        free(s->ext);
        s->ext = NULL;
        s->ext_len = 0;
        s->ext_type = 0;
        return r;
}

/* After a header: `size` bytes of data, then padding. */
static int start_data(struct snap_tar_scan *s, uint64_t size, struct util_err *err)
{
        s->left = size;
        s->pad = padding(size);
        s->state = size > 0 ? SCAN_DATA : SCAN_HEADER;
        if (size == 0 && s->ext_type)
                return ext_done(s, err);
        return 0;
}

static int header(struct snap_tar_scan *s, struct util_err *err)
{
        const unsigned char *h = s->hdr;
        uint64_t size;
        char type = (char)h[156];
        char hname[UTIL_PREVIEW_SIZE];

        if (all_zero(h, BLOCK)) {
                /* The end-of-archive mark (libarchive, like GNU tar, ends at
                 * the first zero block; a second one is customary). */
                if (s->n_ext > 0)
                        return fail(s, err, EINVAL,
                                    "entry '%s': an extended header is not followed by an entry",
                                    s->name);
                s->state = SCAN_END;
                return 0;
        }
        if (!checksum_ok(h))
                return fail(s, err, EINVAL, "damaged tar header at offset %llu (bad checksum)",
                            (unsigned long long)s->header_offset);
        header_name(h, hname);
        bool ext = type == 'x' || type == 'g' || type == 'L' || type == 'K';
        /* Messages name the entry: its pax path or long name when one came
         * before, else its own header's name (an extended header's own name
         * while that one is read). */
        memcpy(s->name, !ext && s->pending[0] ? s->pending : hname, sizeof(s->name));
        if (parse_number(h + 124, 12, &size) < 0)
                return fail(s, err, EINVAL, "entry '%s': bad size field", s->name);

        if (ext) {
                if (++s->n_ext > SNAP_TAR_EXT_MAX)
                        return fail(s, err, EINVAL,
                                    "entry '%s': more than %u extended headers before one entry",
                                    s->name, SNAP_TAR_EXT_MAX);
                bool pax = type == 'x' || type == 'g';
                uint64_t limit = pax ? SNAP_TAR_PAX_MAX : SNAP_TAR_NAME_MAX;
                if (size > limit)
                        return fail(s, err, E2BIG,
                                    "entry '%s': %s of %llu bytes is over the limit of %llu",
                                    s->name, pax ? "a pax header" : "a GNU long name",
                                    (unsigned long long)size, (unsigned long long)limit);
                bool *seen = type == 'x' ? &s->seen_x : type == 'L' ? &s->seen_l : &s->seen_k;
                if (type != 'g' && *seen)
                        return fail(s, err, EINVAL, "entry '%s': two '%c' headers for one entry",
                                    s->name, type);
                if (type != 'g')
                        *seen = true;
                s->ext = malloc((size_t)size + 1);
                if (!s->ext)
                        return fail(s, err, ENOMEM, "entry '%s': out of memory", s->name);
                s->ext_len = 0;
                s->ext_type = type;
                /* The global header's records are its own, not the next entry's. */
                return start_data(s, size, err);
        }

        bool regular = type == '0' || type == '\0' || type == '7';
        uint64_t data = size;
        if (regular) {
                if (s->have_size)
                        data = s->size;
        } else if (type >= '1' && type <= '6') {
                if (size != 0 || (s->have_size && s->size != 0))
                        return fail(s, err, EINVAL,
                                    "entry '%s': a %s entry with a data size (%llu bytes)", s->name,
                                    type == '1'   ? "hard link"
                                    : type == '2' ? "symlink"
                                    : type == '5' ? "directory"
                                    : type == '6' ? "FIFO"
                                                  : "device",
                                    (unsigned long long)(size ? size : s->size));
                data = 0;
        } else if (type == 'S') {
                return fail(s, err, EINVAL, "entry '%s': sparse entries are not supported",
                            s->name);
        } else if (type > ' ' && type < 0x7f) {
                return fail(s, err, EINVAL, "entry '%s': unknown entry type '%c'", s->name, type);
        } else {
                return fail(s, err, EINVAL, "entry '%s': unknown entry type 0x%02x", s->name,
                            (unsigned char)type);
        }
        s->n_ext = 0;
        s->seen_x = s->seen_l = s->seen_k = false;
        s->have_size = false;
        s->pending[0] = '\0';
        return start_data(s, data, err);
}

int snap_tar_scan_feed(struct snap_tar_scan *s, const void *buf, size_t len, struct util_err *err)
{
        const unsigned char *p = buf;

        while (len > 0) {
                size_t take;
                switch (s->state) {
                case SCAN_HEADER:
                        if (s->hdr_len == 0)
                                s->header_offset = s->offset;
                        take = BLOCK - s->hdr_len;
                        if (take > len)
                                take = len;
                        memcpy(s->hdr + s->hdr_len, p, take);
                        s->hdr_len += take;
                        if (s->hdr_len == BLOCK) {
                                s->hdr_len = 0;
                                s->offset += take;
                                p += take;
                                len -= take;
                                int r = header(s, err);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        break;
                case SCAN_DATA:
                        take = s->left < len ? (size_t)s->left : len;
                        if (s->ext_type) {
                                memcpy(s->ext + s->ext_len, p, take);
                                s->ext_len += take;
                        }
                        s->left -= take;
                        if (s->left == 0) {
                                s->offset += take;
                                p += take;
                                len -= take;
                                s->state = s->pad ? SCAN_PAD : SCAN_HEADER;
                                if (s->ext_type) {
                                        int r = ext_done(s, err);
                                        if (r < 0)
                                                return r;
                                }
                                continue;
                        }
                        break;
                case SCAN_PAD:
                        take = s->pad < len ? (size_t)s->pad : len;
                        s->pad -= take;
                        if (s->pad == 0)
                                s->state = SCAN_HEADER;
                        break;
                case SCAN_END:
                        take = len;
                        for (size_t i = 0; i < len; i++)
                                if (p[i])
                                        return fail(s, err, EINVAL,
                                                    "data after the end of the archive at offset "
                                                    "%llu",
                                                    (unsigned long long)s->offset + i);
                        break;
                default:
                        return util_err_setx(err, EINVAL, "the tar stream was refused already");
                }
                s->offset += take;
                p += take;
                len -= take;
        }
        return 0;
}

int snap_tar_scan_finish(struct snap_tar_scan *s, struct util_err *err)
{
        if (s->state == SCAN_END)
                return 0;
        /* No end-of-archive block at all, but the stream stops between
         * entries: what libarchive (and Go's archive/tar) accept as the end. */
        if (s->state == SCAN_HEADER && s->hdr_len == 0 && s->n_ext == 0)
                return 0;
        if (s->state == SCAN_FAILED)
                return util_err_setx(err, EINVAL, "the tar stream was refused already");
        return fail(s, err, EINVAL, "truncated archive: it ends inside entry '%s' (offset %llu)",
                    s->name, (unsigned long long)s->offset);
}
