/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of loop/ that need no privileges: tag formatting and parsing,
 * attach option checks, the kernel device-number decoding. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "loop/loop.h"

Test(loop_tag, format_table)
{
        static const struct {
                const char *owner, *id;
                int r;
                const char *tag;
        } cases[] = {
                {"root1", "7", 0, "loopsnap:root1:7"},
                {"a.b_c-d", "sha256:abc", 0, "loopsnap:a.b_c-d:sha256:abc"},
                {"", "7", -EINVAL, NULL},
                {"r", "", -EINVAL, NULL},
                {NULL, "7", -EINVAL, NULL},
                {"r", NULL, -EINVAL, NULL},
                {"a:b", "7", -EINVAL, NULL}, /* owner may not contain the separator */
                {"r", "x y", -EINVAL, NULL},
                {"r", "x\n", -EINVAL, NULL},
                {"r", "../x", -EINVAL, NULL},
                {"owner", "0123456789012345678901234567890123456789012345678", -ENAMETOOLONG, NULL},
                {"owner", "012345678901234567890123456789012345678901234567", 0,
                 "loopsnap:owner:012345678901234567890123456789012345678901234567"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                char buf[LOOP_TAG_MAX + 1] = "";
                int r = loop_tag_format(buf, sizeof(buf), cases[i].owner, cases[i].id);
                cr_expect_eq(r, cases[i].r, "case %zu: %d", i, r);
                if (cases[i].tag) {
                        cr_expect_str_eq(buf, cases[i].tag, "case %zu", i);
                        cr_expect_leq(strlen(buf), LOOP_TAG_MAX);
                }
        }
}

Test(loop_tag, parse_table)
{
        static const struct {
                const char *tag;
                int r;
                const char *owner, *id;
        } cases[] = {
                {"loopsnap:root1:7", 0, "root1", "7"},
                {"loopsnap:r:sha256:abc", 0, "r", "sha256:abc"},
                {"loopsnap::7", -EINVAL, NULL, NULL},
                {"loopsnap:r:", -EINVAL, NULL, NULL},
                {"loopsnap:r", -EINVAL, NULL, NULL},
                {"loopsnapx:r:1", -EINVAL, NULL, NULL},
                {"other:r:1", -EINVAL, NULL, NULL},
                {"", -EINVAL, NULL, NULL},
                {"loopsnap:r:bad id", -EINVAL, NULL, NULL},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                char owner[LOOP_TAG_MAX + 1] = "untouched", id[LOOP_TAG_MAX + 1] = "untouched";
                int r = loop_tag_parse(cases[i].tag, owner, sizeof(owner), id, sizeof(id));
                cr_expect_eq(r, cases[i].r, "'%s': %d", cases[i].tag, r);
                if (r == 0) {
                        cr_expect_str_eq(owner, cases[i].owner);
                        cr_expect_str_eq(id, cases[i].id);
                } else {
                        cr_expect_str_eq(owner, "untouched", "outputs untouched on failure");
                        cr_expect_str_eq(id, "untouched");
                }
        }
        cr_assert_eq(loop_tag_parse(NULL, NULL, 0, NULL, 0), -EINVAL);
}

Test(loop_tag, round_trip)
{
        char tag[LOOP_TAG_MAX + 1], owner[LOOP_TAG_MAX + 1], id[LOOP_TAG_MAX + 1];
        cr_assert_eq(loop_tag_format(tag, sizeof(tag), "root-a", "12:34"), 0);
        cr_assert_eq(loop_tag_parse(tag, owner, sizeof(owner), id, sizeof(id)), 0);
        cr_assert_str_eq(owner, "root-a");
        cr_assert_str_eq(id, "12:34");
}

Test(loop_opts, check_table)
{
        static const struct {
                unsigned flags;
                uint32_t bs;
                const char *owner, *id;
                int r;
                const char *msg;
        } cases[] = {
                {0, 0, "o", "1", 0, NULL},
                {LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_SHARED, 4096, "o", "1", 0, NULL},
                {LOOP_ATTACH_NO_AUTOCLEAR | LOOP_ATTACH_NO_DIRECT_IO, 512, "o", "1", 0, NULL},
                {LOOP_ATTACH_SHARED, 0, "o", "1", -EINVAL, "must be read-only"},
                {LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_SHARED | LOOP_ATTACH_NO_AUTOCLEAR, 0, "o", "1",
                 -EINVAL, "autoclear"},
                {1u << 20, 0, "o", "1", -EINVAL, "unknown attach flags"},
                {0, 256, "o", "1", -EINVAL, "block size 256"},
                {0, 1536, "o", "1", -EINVAL, "block size 1536"},
                {0, 65536, "o", "1", -EINVAL, "block size 65536"},
                {0, 0, NULL, "1", -EINVAL, "invalid tag owner"},
                {0, 0, "o", "a b", -EINVAL, "'a b'"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                struct loop_attach_opts o = {.flags = cases[i].flags,
                                             .block_size = cases[i].bs,
                                             .owner = cases[i].owner,
                                             .id = cases[i].id};
                struct util_err err = {0};
                int r = loop_attach_opts_check(&o, &err);
                cr_expect_eq(r, cases[i].r, "case %zu: %d (%s)", i, r, err.msg);
                if (cases[i].msg)
                        cr_expect(strstr(err.msg, cases[i].msg), "case %zu: '%s'", i, err.msg);
                else
                        cr_expect_eq(err.errnum, 0, "success leaves err alone");
        }
        struct util_err err = {0};
        cr_assert_eq(loop_attach_opts_check(NULL, &err), -EINVAL);
}

Test(loop_opts, attach_rejects_bad_options_before_touching_anything)
{
        struct loop_attach_opts o = {.flags = LOOP_ATTACH_SHARED, .owner = "o", .id = "1"};
        struct util_err err = {0};
        struct loop_device *d = (struct loop_device *)0x1;
        cr_assert_eq(loop_attach_path("/nonexistent.img", &o, &d, &err), -EINVAL);
        cr_assert_eq(d, (struct loop_device *)0x1, "ret untouched on failure");
        cr_assert(strstr(err.msg, "/nonexistent.img"), "%s", err.msg);
        cr_assert_eq(loop_attach_path(NULL, &o, &d, &err), -EINVAL);
}

#include "loop/loop-internal.h"

Test(loop_dev, kernel_device_numbers_decode)
{
        static const struct {
                unsigned maj, min;
        } cases[] = {{8, 1}, {7, 0}, {253, 255}, {259, 300}, {4095, 1048575}};
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                unsigned maj = cases[i].maj, min = cases[i].min;
                /* The kernel's new_encode_dev(). */
                uint64_t enc = (min & 0xffu) | (maj << 8) | ((uint64_t)(min & ~0xffu) << 12);
                dev_t d = loop_decode_kernel_dev(enc);
                cr_expect_eq(major(d), maj, "case %zu", i);
                cr_expect_eq(minor(d), min, "case %zu", i);
        }
}
