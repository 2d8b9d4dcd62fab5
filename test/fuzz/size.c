/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-size: the number parsers of util/ that read outside input
 * (util_parse_size: the writable-size annotation of the OCI hook and
 * snapctl's --size; util_parse_u64: the max-size label, sysfs files) and
 * util_preview, through which every parser quotes untrusted text in its
 * messages.
 *
 * Checks: both parsers agree with reference parsers written here from the
 * grammar in util/util.h (value, and which inputs are refused); *ret is
 * untouched on failure; a preview is at most 64 characters plus "...",
 * printable, and a faithful prefix of its input.
 */
#include <limits.h>

#include "test/fuzz/fuzz.h"

#define SENTINEL 0x5a5a5a5a5a5a5a5aull

/* Reference for util_parse_u64: "^[0-9]+$" within 64 bits. Returns 0,
 * -EINVAL (not a number) or -ERANGE (digits only, too large). */
static int ref_u64(const char *s, uint64_t *ret)
{
        unsigned __int128 v = 0;
        bool overflow = false;

        if (!*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned)(*p - '0');
                if (v > UINT64_MAX) {
                        overflow = true;
                        v = UINT64_MAX; /* keep it bounded; the verdict is made */
                }
        }
        if (overflow)
                return -ERANGE;
        *ret = (uint64_t)v;
        return 0;
}

/* Reference for util_parse_size: digits, then optionally one of KMGT (any
 * case) and then optionally "B" or "iB"; binary multiples; -EINVAL for
 * anything else and for a result beyond 64 bits. */
static int ref_size(const char *s, uint64_t *ret)
{
        const char *p = s;
        unsigned __int128 v = 0;
        unsigned shift = 0;

        if (*p < '0' || *p > '9')
                return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                v = v * 10 + (unsigned)(*p - '0');
                if (v > UINT64_MAX)
                        return -EINVAL;
        }
        if (*p) {
                switch (*p) {
                case 'k':
                case 'K':
                        shift = 10;
                        break;
                case 'm':
                case 'M':
                        shift = 20;
                        break;
                case 'g':
                case 'G':
                        shift = 30;
                        break;
                case 't':
                case 'T':
                        shift = 40;
                        break;
                default:
                        return -EINVAL;
                }
                p++;
                if (*p && strcmp(p, "B") != 0 && strcmp(p, "iB") != 0)
                        return -EINVAL;
        }
        v <<= shift;
        if (v > UINT64_MAX)
                return -EINVAL;
        *ret = (uint64_t)v;
        return 0;
}

static void check_u64(const char *s)
{
        uint64_t got = SENTINEL, want = SENTINEL;
        int r = util_parse_u64(s, &got);
        int w = ref_u64(s, &want);

        FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE, "util_parse_u64 returned %d", r);
        if (w == 0) {
                FUZZ_CHECK(r == 0, "util_parse_u64('%s') refused (%d) a number (%llu)", s, r,
                           (unsigned long long)want);
                FUZZ_CHECK(got == want, "util_parse_u64('%s') = %llu, expected %llu", s,
                           (unsigned long long)got, (unsigned long long)want);
                return;
        }
        FUZZ_CHECK(r < 0, "util_parse_u64('%s') accepted (%llu) what is not a 64-bit number", s,
                   (unsigned long long)got);
        if (w == -ERANGE)
                FUZZ_CHECK(r == -ERANGE, "util_parse_u64('%s'): %d for digits beyond 64 bits", s,
                           r);
        FUZZ_CHECK(got == SENTINEL, "util_parse_u64('%s') wrote *ret on failure", s);
}

static void check_size(const char *s)
{
        uint64_t got = SENTINEL, want = SENTINEL;
        int r = util_parse_size(s, &got);
        int w = ref_size(s, &want);

        FUZZ_CHECK(r == 0 || r == -EINVAL, "util_parse_size returned %d", r);
        if (w == 0) {
                FUZZ_CHECK(r == 0, "util_parse_size('%s') refused a valid size (%llu)", s,
                           (unsigned long long)want);
                FUZZ_CHECK(got == want, "util_parse_size('%s') = %llu, expected %llu", s,
                           (unsigned long long)got, (unsigned long long)want);
                return;
        }
        FUZZ_CHECK(r < 0, "util_parse_size('%s') accepted (%llu) an invalid size", s,
                   (unsigned long long)got);
        FUZZ_CHECK(got == SENTINEL, "util_parse_size('%s') wrote *ret on failure", s);
}

/* util_preview of s[0..len): see util/util.h. */
static void check_preview(const char *s, size_t len)
{
        char buf[UTIL_PREVIEW_SIZE + 8];
        size_t text = strnlen(s, len), shown = text < 64 ? text : 64;

        memset(buf, 'Z', sizeof(buf));
        const char *out = util_preview(buf, s, len);
        FUZZ_CHECK(out == buf, "util_preview does not return its buffer");
        FUZZ_CHECK(buf[UTIL_PREVIEW_SIZE] == 'Z', "util_preview wrote past UTIL_PREVIEW_SIZE");
        size_t n = strlen(buf);
        FUZZ_CHECK(n == shown + (text > 64 ? 3 : 0), "preview of %zu bytes has %zu characters",
                   text, n);
        FUZZ_CHECK(fuzz_is_printable(buf), "preview with a control character");
        for (size_t i = 0; i < shown; i++) {
                unsigned char c = (unsigned char)s[i];
                char want = (char)((c < 0x20 || c == 0x7f) ? '?' : c);
                FUZZ_CHECK(buf[i] == want, "preview byte %zu is 0x%02x, input 0x%02x", i,
                           (unsigned char)buf[i], c);
        }
        if (text > 64)
                FUZZ_CHECK(memcmp(buf + 64, "...", 3) == 0, "a cut preview without '...'");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = fuzz_cstr(data, size);

        check_u64(s);
        check_size(s);
        check_preview((const char *)data, size);
        check_preview((const char *)data, size / 2);
        check_preview(s, SIZE_MAX);
        free(s);
        return 0;
}
