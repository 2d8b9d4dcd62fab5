/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the pure parts of layer application: digests and OCI chain
 * ids (snapshot/digest.c; expected values computed independently with
 * Python's hashlib), and the framing check of tar streams
 * (snapshot/tar-scan.c) on archives built block by block, each fed whole
 * and again one byte at a time (the result must not depend on how the
 * stream is cut).
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "snapshot/apply-internal.h"
#include "test/common/tar.h"

/* ---- digests and chain ids ---- */

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B64 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

Test(digest, check)
{
        static const struct {
                const char *d;
                int want;
        } cases[] = {
                {"sha256:" A64, 0},
                {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0},
                {"sha256:" A64 "a", -EINVAL},
                {"sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                 -EINVAL},
                {"sha256:", -EINVAL},
                {"sha256" A64, -EINVAL},
                {":" A64, -EINVAL},
                {"", -EINVAL},
                {"sha512:" A64 A64, -EOPNOTSUPP},
                {"SHA256:" A64, -EINVAL},
                {"sha256:../../../etc/passwd", -EINVAL},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                cr_expect_eq(snap_digest_check(cases[i].d), cases[i].want, "'%s'", cases[i].d);
        cr_expect_eq(snap_digest_check(NULL), -EINVAL);
}

Test(digest, sha256_of_nothing_and_of_pieces)
{
        struct snap_sha256 *h = NULL;
        char out[SNAP_DIGEST_MAX];

        cr_assert_eq(snap_sha256_new(&h), 0);
        cr_assert_eq(snap_sha256_final(h, out), 0);
        cr_expect_str_eq(out,
                         "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        snap_sha256_free(h);

        /* "layer-c" fed in two pieces. */
        cr_assert_eq(snap_sha256_new(&h), 0);
        snap_sha256_update(h, "layer", 5);
        snap_sha256_update(h, "-c", 2);
        cr_assert_eq(snap_sha256_final(h, out), 0);
        cr_expect_str_eq(out,
                         "sha256:e6c65c655ca8172ab7a2b634dab3220a45472dd6571b6efd956ccc05e229a201");
        snap_sha256_free(h);
}

Test(digest, chain_ids)
{
        const char *c = "sha256:e6c65c655ca8172ab7a2b634dab3220a45472dd6571b6efd956ccc05e229a201";
        char c1[SNAP_DIGEST_MAX], c2[SNAP_DIGEST_MAX], c3[SNAP_DIGEST_MAX];

        /* ChainID(L0) = DiffID(L0), with NULL and "" as "no parent". */
        cr_assert_eq(snap_chain_id(NULL, "sha256:" A64, c1), 0);
        cr_expect_str_eq(c1, "sha256:" A64);
        cr_assert_eq(snap_chain_id("", "sha256:" A64, c1), 0);
        cr_expect_str_eq(c1, "sha256:" A64);
        /* ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)). */
        cr_assert_eq(snap_chain_id(c1, "sha256:" B64, c2), 0);
        cr_expect_str_eq(c2,
                         "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
        cr_assert_eq(snap_chain_id(c2, c, c3), 0);
        cr_expect_str_eq(c3,
                         "sha256:5ff14aa3a90276cf4e8905981c4955b1193c055135e1e53437815c598c92752b");

        char untouched[SNAP_DIGEST_MAX] = "untouched";
        cr_expect_eq(snap_chain_id(c1, "sha256:xyz", untouched), -EINVAL);
        cr_expect_eq(snap_chain_id("bad", "sha256:" B64, untouched), -EINVAL);
        cr_expect_eq(snap_chain_id(NULL, "sha512:" A64 A64, untouched), -EOPNOTSUPP);
        cr_expect_str_eq(untouched, "untouched", "outputs are left alone on failure");
}

/* ---- the tar framing check ---- */

/* Scans `t` whole, or byte by byte; returns the result, the message in `msg`. */
static int scan(const struct ttar *t, bool bytewise, char msg[UTIL_ERR_MSG_MAX])
{
        struct snap_tar_scan s;
        struct util_err err = {0};
        int r = 0;

        snap_tar_scan_init(&s);
        if (bytewise) {
                for (size_t i = 0; i < t->len && r == 0; i++)
                        r = snap_tar_scan_feed(&s, t->buf + i, 1, &err);
        } else {
                r = snap_tar_scan_feed(&s, t->buf, t->len, &err);
        }
        if (r == 0)
                r = snap_tar_scan_finish(&s, &err);
        snap_tar_scan_done(&s);
        strcpy(msg, err.msg);
        if (r < 0)
                cr_expect_eq(err.errnum, -r, "errnum %d vs return %d", err.errnum, r);
        return r;
}

/* Both ways of feeding give `want` and a message holding `needle`. */
static void expect_scan(const struct ttar *t, int want, const char *needle)
{
        char whole[UTIL_ERR_MSG_MAX], bytes[UTIL_ERR_MSG_MAX];
        int a = scan(t, false, whole), b = scan(t, true, bytes);

        cr_expect_eq(a, want, "whole: %d (%s), want %d", a, whole, want);
        cr_expect_eq(b, want, "bytewise: %d (%s), want %d", b, bytes, want);
        cr_expect_str_eq(whole, bytes, "the same message however the stream is cut");
        if (needle)
                cr_expect(strstr(whole, needle), "message '%s' lacks '%s'", whole, needle);
}

Test(tar_scan, plain_archive_with_extensions)
{
        struct ttar t = {0};
        char big[300];

        ttar_header(&t, "dir/", '5', 0, NULL);
        ttar_file(&t, "dir/a", "hello");
        ttar_header(&t, "dir/l", '2', 0, "a");
        ttar_header(&t, "dir/h", '1', 0, "dir/a");
        /* A GNU long name and a pax path with a long value. */
        memset(big, 'n', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        ttar_header(&t, "././@LongLink", 'L', strlen(big) + 1, NULL);
        ttar_data(&t, big, strlen(big) + 1);
        ttar_file(&t, "short", "x");
        ttar_pax(&t, 'x', "path", big, strlen(big));
        ttar_file(&t, "short2", "y");
        /* A global header with a comment (git archive writes these). */
        ttar_pax(&t, 'g', "comment", "abc", 3);
        /* pax size overrides the header's: 600 bytes follow, not 0. */
        char data[600];
        memset(data, 'd', sizeof(data));
        ttar_pax(&t, 'x', "size", "600", 3);
        ttar_header(&t, "sized", '0', 0, NULL);
        ttar_data(&t, data, sizeof(data));
        ttar_file(&t, "after", "z");
        ttar_end(&t);
        expect_scan(&t, 0, NULL);
        ttar_free(&t);
}

Test(tar_scan, end_and_truncation)
{
        struct ttar t = {0};
        ttar_file(&t, "a", "hello");
        /* No end blocks, stream stops between entries: accepted. */
        expect_scan(&t, 0, NULL);
        /* Cut inside the data. */
        t.len -= 300;
        expect_scan(&t, -EINVAL, "truncated archive: it ends inside entry 'a'");
        ttar_free(&t);

        ttar_file(&t, "a", "hello");
        ttar_end(&t);
        unsigned char pad[8192] = {0};
        ttar_raw(&t, pad, sizeof(pad)); /* GNU tar pads the record with zeros */
        expect_scan(&t, 0, NULL);
        ttar_raw(&t, "X", 1);
        expect_scan(&t, -EINVAL, "data after the end of the archive");
        ttar_free(&t);

        /* A hidden entry behind a single zero block. */
        ttar_file(&t, "a", "hello");
        unsigned char zero[512] = {0};
        ttar_raw(&t, zero, sizeof(zero));
        ttar_file(&t, "hidden", "x");
        expect_scan(&t, -EINVAL, "data after the end of the archive");
        ttar_free(&t);
}

Test(tar_scan, nul_in_names)
{
        struct ttar t = {0};
        static const char v[] = "ok\0../../escape";

        ttar_pax(&t, 'x', "path", v, sizeof(v) - 1);
        ttar_file(&t, "ok", "x");
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "entry 'ok?../../escape': the pax path holds a NUL byte");
        ttar_free(&t);

        ttar_pax(&t, 'x', "linkpath", v, sizeof(v) - 1);
        ttar_header(&t, "l", '2', 0, "ok");
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "the pax linkpath holds a NUL byte");
        ttar_free(&t);

        ttar_header(&t, "././@LongLink", 'L', sizeof(v), NULL);
        ttar_data(&t, v, sizeof(v));
        ttar_file(&t, "ok", "x");
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "the GNU long name holds a NUL byte");
        ttar_free(&t);
}

Test(tar_scan, limits)
{
        struct ttar t = {0};
        size_t n = 1u << 20;
        char *big = malloc(n);
        cr_assert_not_null(big);
        memset(big, 'a', n);

        ttar_pax(&t, 'x', "comment", big, n);
        ttar_file(&t, "a", "x");
        ttar_end(&t);
        expect_scan(&t, -E2BIG,
                    "entry 'PaxHeaders/entry': a pax header of 1048593 bytes is over "
                    "the limit of 262144");
        ttar_free(&t);

        /* A pax path of PATH_MAX bytes. */
        ttar_pax(&t, 'x', "path", big, PATH_MAX);
        ttar_file(&t, "a", "x");
        ttar_end(&t);
        expect_scan(&t, -E2BIG, "is longer than PATH_MAX");
        ttar_free(&t);

        /* A GNU long name over 4096 bytes. */
        ttar_header(&t, "././@LongLink", 'L', 5000, NULL);
        ttar_data(&t, big, 5000);
        ttar_file(&t, "a", "x");
        ttar_end(&t);
        expect_scan(&t, -E2BIG, "a GNU long name of 5000 bytes is over the limit of 4096");
        ttar_free(&t);

        /* Five extended headers before one entry. */
        ttar_pax(&t, 'g', "comment", "1", 1);
        ttar_pax(&t, 'g', "comment", "2", 1);
        ttar_pax(&t, 'g', "comment", "3", 1);
        ttar_pax(&t, 'g', "comment", "4", 1);
        ttar_pax(&t, 'x', "comment", "5", 1);
        ttar_file(&t, "a", "x");
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "more than 4 extended headers before one entry");
        ttar_free(&t);

        /* Two pax headers for one entry. */
        ttar_pax(&t, 'x', "path", "p1", 2);
        ttar_pax(&t, 'x', "path", "p2", 2);
        ttar_file(&t, "a", "x");
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "two 'x' headers for one entry");
        ttar_free(&t);
        free(big);
}

Test(tar_scan, types_and_sizes)
{
        struct ttar t = {0};

        ttar_header(&t, "weird", 'Z', 0, NULL);
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "entry 'weird': unknown entry type 'Z'");
        ttar_free(&t);

        ttar_header(&t, "sparse", 'S', 0, NULL);
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "entry 'sparse': sparse entries are not supported");
        ttar_free(&t);

        ttar_pax(&t, 'x', "GNU.sparse.major", "1", 1);
        ttar_file(&t, "a", "x");
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "sparse entries are not supported");
        ttar_free(&t);

        /* Readers disagree on whether data follows a link with a size. */
        ttar_header(&t, "h", '1', 5, "a");
        ttar_data(&t, "hello", 5);
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "entry 'h': a hard link entry with a data size (5 bytes)");
        ttar_free(&t);

        ttar_pax(&t, 'x', "size", "512", 3);
        ttar_header(&t, "l", '2', 0, "a");
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "entry 'l': a symlink entry with a data size (512 bytes)");
        ttar_free(&t);

        ttar_pax(&t, 'g', "path", "x", 1);
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "a global pax header sets 'path'");
        ttar_free(&t);

        static const char bad[] = "5 x\n";
        ttar_header(&t, "PaxHeaders/a", 'x', sizeof(bad) - 1, NULL);
        ttar_data(&t, bad, sizeof(bad) - 1);
        ttar_file(&t, "a", "x");
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "malformed pax header record");
        ttar_free(&t);

        ttar_pax(&t, 'x', "path", "p", 1);
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "an extended header is not followed by an entry");
        ttar_free(&t);
}

Test(tar_scan, checksum_and_numbers)
{
        struct ttar t = {0};

        ttar_file(&t, "a", "hello");
        t.buf[0] = 'b'; /* the checksum no longer matches */
        ttar_end(&t);
        expect_scan(&t, -EINVAL, "damaged tar header at offset 0 (bad checksum)");
        ttar_free(&t);

        /* A base-256 size (GNU): 0x80 then big-endian 700. */
        ttar_header(&t, "b256", '0', 0, NULL);
        unsigned char *h = t.buf;
        memset(h + 124, 0, 12);
        h[124] = 0x80;
        h[134] = 700 >> 8;
        h[135] = 700 & 0xff;
        unsigned sum = 0;
        memset(h + 148, ' ', 8);
        for (int i = 0; i < 512; i++)
                sum += h[i];
        snprintf((char *)h + 148, 8, "%06o", sum);
        h[155] = ' ';
        char data[700];
        memset(data, 'q', sizeof(data));
        ttar_data(&t, data, sizeof(data));
        ttar_file(&t, "next", "x");
        ttar_end(&t);
        expect_scan(&t, 0, NULL);
        ttar_free(&t);
}
