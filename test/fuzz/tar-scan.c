/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-tar-scan: the framing check of an uncompressed layer stream
 * (snapshot/tar-scan.c), the one part of layer application that reads
 * untrusted tar headers before the extraction sandbox's libarchive does.
 * The input is the uncompressed stream.
 *
 * Checks: the verdict (result and message) does not depend on how the
 * stream is cut into pieces: all at once, one byte at a time, and in pieces
 * of pseudo-random sizes (the extractor feeds whatever the decompressor
 * returns); once refused, further input and the end are refused too; an
 * accepted stream was consumed whole. And the reason the scan exists: when
 * it accepts a stream that libarchive's tar reader (configured as the
 * extractor's) also reads without a warning, both saw the same number of
 * entries, so they agree on where every entry starts.
 */
#include <archive.h>
#include <archive_entry.h>

#include "snapshot/apply-internal.h"
#include "test/fuzz/fuzz.h"

#define BLOCK 512u

struct verdict {
        int r;
        struct util_err err;
        uint64_t entries; /* entry headers seen (byte-wise run only) */
};

/* Feeds `data` in pieces chosen by `next` (NULL: all at once). */
static struct verdict scan(const uint8_t *data, size_t size, size_t (*next)(uint64_t *),
                           uint64_t seed)
{
        struct snap_tar_scan s;
        struct verdict v = {0};
        size_t pos = 0;

        snap_tar_scan_init(&s);
        while (pos < size) {
                size_t n = next ? next(&seed) : size - pos;
                if (n > size - pos)
                        n = size - pos;
                v.r = snap_tar_scan_feed(&s, data + pos, n, &v.err);
                fuzz_check_err(v.r, &v.err, "snap_tar_scan_feed");
                if (v.r < 0)
                        break;
                pos += n;
        }
        if (v.r == 0) {
                v.r = snap_tar_scan_finish(&s, &v.err);
                fuzz_check_err(v.r, &v.err, "snap_tar_scan_finish");
        }
        if (v.r == 0) {
                FUZZ_CHECK(s.offset == size, "accepted after %llu of %zu bytes",
                           (unsigned long long)s.offset, size);
        } else {
                struct util_err again = {0};
                FUZZ_CHECK(snap_tar_scan_feed(&s, "\0", 1, &again) < 0,
                           "more input accepted after a refusal");
                again = (struct util_err){0};
                FUZZ_CHECK(snap_tar_scan_finish(&s, &again) < 0,
                           "the end accepted after a refusal");
        }
        snap_tar_scan_done(&s);
        return v;
}

/* Byte-wise, counting entry headers: a 512-byte header block completed, not
 * all zeros (the end mark), after which no extended header is pending. */
static struct verdict scan_counting(const uint8_t *data, size_t size)
{
        struct snap_tar_scan s;
        struct verdict v = {0};

        snap_tar_scan_init(&s);
        for (size_t pos = 0; pos < size; pos++) {
                /* hdr_len is only non-zero while a header is collected. */
                bool completing = s.hdr_len == BLOCK - 1;
                v.r = snap_tar_scan_feed(&s, data + pos, 1, &v.err);
                if (v.r < 0)
                        break;
                if (completing && s.hdr_len == 0 && s.n_ext == 0) {
                        bool zero = true;
                        for (size_t i = 0; i < BLOCK && zero; i++)
                                zero = s.hdr[i] == 0;
                        v.entries += !zero;
                }
        }
        if (v.r == 0)
                v.r = snap_tar_scan_finish(&s, &v.err);
        snap_tar_scan_done(&s);
        return v;
}

/* xorshift64: pieces of 1..1536 bytes, often across block boundaries. */
static size_t next_random(uint64_t *seed)
{
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        return (size_t)(*seed % (3 * BLOCK)) + 1;
}

static void check_same(const struct verdict *a, const struct verdict *b, const char *how)
{
        FUZZ_CHECK(a->r == b->r && strcmp(a->err.msg, b->err.msg) == 0,
                   "fed %s: %d '%s'; at once: %d '%s'", how, b->r, b->err.msg, a->r, a->err.msg);
}

/* Entries libarchive's tar reader returns, configured as the extractor's
 * inner reader; -1 when it fails or warns (the extractor refuses those). */
static long long libarchive_entries(const uint8_t *data, size_t size)
{
        struct archive *a = fuzz_oom(archive_read_new());
        struct archive_entry *e;
        long long n = 0;
        int r;

        FUZZ_CHECK(archive_read_support_format_tar(a) == ARCHIVE_OK, "no tar in libarchive");
        if (archive_read_open_memory(a, data, size) != ARCHIVE_OK) {
                archive_read_free(a);
                return -1;
        }
        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK)
                n++;
        archive_read_free(a);
        return r == ARCHIVE_EOF ? n : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint64_t seed = 0x9e3779b97f4a7c15ull ^ size;

        for (size_t i = 0; i < size && i < 64; i++)
                seed = (seed ^ data[i]) * 0x100000001b3ull;
        if (!seed)
                seed = 1;

        struct verdict whole = scan(data, size, NULL, 0);
        struct verdict bytes = scan_counting(data, size);
        struct verdict pieces = scan(data, size, next_random, seed);
        check_same(&whole, &bytes, "byte by byte");
        check_same(&whole, &pieces, "in pieces");

        if (whole.r == 0 && size > 0) {
                long long lib = libarchive_entries(data, size);
                if (lib >= 0)
                        FUZZ_CHECK((uint64_t)lib == bytes.entries,
                                   "the scan accepted %llu entries, libarchive read %lld",
                                   (unsigned long long)bytes.entries, lib);
        }
        return 0;
}
