/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test/fuzz/ — helpers shared by the fuzz targets (docs/fuzzing.md).
 *
 * Every target is one LLVMFuzzerTestOneInput, built twice: with clang and
 * libFuzzer (-DLOOPSNAP_FUZZ=ON, test/fuzz/run.sh), and in the normal build
 * with replay.c as its main, which feeds it the committed seed corpus and
 * regression inputs once (CTest fuzz-replay-<target>). A target frees
 * everything it allocates (LeakSanitizer runs with libFuzzer) and checks
 * invariants with FUZZ_CHECK, which aborts: libFuzzer saves the input, the
 * replay test fails.
 *
 * Header-only (static functions): each target is one translation unit, and
 * the helpers must not need a library of their own.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* The libFuzzer entry point each target defines (replay.c calls it too). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                \
        do {                                                                                 \
                if (!(cond)) {                                                               \
                        fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, \
                                #cond);                                                      \
                        fprintf(stderr, __VA_ARGS__);                                        \
                        fputc('\n', stderr);                                                 \
                        abort();                                                             \
                }                                                                            \
        } while (0)

/* Aborts on ENOMEM: a target has nothing better to do. */
static inline void *fuzz_oom(void *p)
{
        if (!p) {
                fputs("fuzz: out of memory\n", stderr);
                abort();
        }
        return p;
}

/* The input as a C string, cut at its first NUL (what a caller holding a
 * C string could pass). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
        char *s = fuzz_oom(malloc(size + 1));
        memcpy(s, data, size);
        s[size] = '\0';
        return s;
}

/* Whether `s` holds no C0 control character and no DEL: what every error
 * message must be, since messages reach terminals and logs and quote
 * untrusted input only through previews (util_preview and friends). */
static inline bool fuzz_is_printable(const char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

/*
 * The error contract (util/util.h, STYLE R1) for a call that returned `r`
 * with `err` cleared before it: on failure `err` holds -r and a non-empty,
 * printable message; on success it was not touched.
 */
static inline void fuzz_check_err(int r, const struct util_err *err, const char *call)
{
        if (r >= 0) {
                FUZZ_CHECK(err->errnum == 0, "%s succeeded (%d) but left err %d '%s'", call, r,
                           err->errnum, err->msg);
                return;
        }
        FUZZ_CHECK(err->errnum == -r, "%s returned %d but err holds %d ('%s')", call, r,
                   err->errnum, err->msg);
        FUZZ_CHECK(memchr(err->msg, '\0', sizeof(err->msg)) != NULL, "%s: message not terminated",
                   call);
        FUZZ_CHECK(err->msg[0] != '\0', "%s failed (%d) without a message", call, r);
        FUZZ_CHECK(fuzz_is_printable(err->msg), "%s: message with a control character: '%s'", call,
                   err->msg);
}

/*
 * Splits the input into lines ('\n'), each cut at its first NUL, into a
 * NULL-terminated array of at most `max` strings (the rest is ignored).
 * Free with fuzz_lines_free. An empty input gives no lines.
 */
static inline char **fuzz_lines(const uint8_t *data, size_t size, size_t max, size_t *ret_n)
{
        char **v = fuzz_oom(calloc(max + 1, sizeof(char *)));
        size_t n = 0, pos = 0;

        while (pos < size && n < max) {
                const uint8_t *nl = memchr(data + pos, '\n', size - pos);
                size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
                v[n] = fuzz_oom(strndup((const char *)data + pos, len));
                n++;
                pos += len + 1;
        }
        *ret_n = n;
        return v;
}

static inline void fuzz_lines_free(char **v)
{
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

/* Whether s[0..len) is valid UTF-8 (RFC 3629: no overlongs, no surrogates,
 * nothing beyond U+10FFFF), written independently of the library's checks. */
static inline bool fuzz_is_utf8(const unsigned char *s, size_t len)
{
        size_t i = 0;

        while (i < len) {
                unsigned char c = s[i];
                size_t n;
                uint32_t cp, min;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if ((c & 0xe0) == 0xc0) {
                        n = 2;
                        cp = c & 0x1f;
                        min = 0x80;
                } else if ((c & 0xf0) == 0xe0) {
                        n = 3;
                        cp = c & 0x0f;
                        min = 0x800;
                } else if ((c & 0xf8) == 0xf0) {
                        n = 4;
                        cp = c & 0x07;
                        min = 0x10000;
                } else {
                        return false;
                }
                if (len - i < n)
                        return false;
                for (size_t k = 1; k < n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += n;
        }
        return true;
}
