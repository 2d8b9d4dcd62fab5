/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of util/: the error chain, number parsing, small-file reads,
 * the debug-area parser, ownership transfer. No privileges needed. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "util/util.h"

Test(util_err, set_appends_errno_text_and_returns_negative)
{
        struct util_err err = {0};
        cr_assert_eq(util_err_set(&err, ENOENT, "open '%s'", "/x"), -ENOENT);
        cr_assert_eq(err.errnum, ENOENT);
        cr_assert_str_eq(err.msg, "open '/x': No such file or directory");
        cr_assert_eq(util_err_set(&err, -EBUSY, "LOOP_CONFIGURE"), -EBUSY, "negative accepted");
        cr_assert_str_eq(err.msg, "LOOP_CONFIGURE: Device or resource busy");
        cr_assert_eq(util_err_set(NULL, EPERM, "x"), -EPERM, "NULL err is fine");
        cr_assert_eq(util_err_set(&err, 0, "zero"), -EIO, "0 becomes EIO");
}

Test(util_err, prefix_chains_outermost_first)
{
        struct util_err err = {0};
        util_err_set(&err, EBUSY, "LOOP_CONFIGURE");
        cr_assert_eq(util_err_prefix(&err, "attach '%s'", "/a.img"), -EBUSY);
        cr_assert_eq(util_err_prefix(&err, "prepare '%s'", "k1"), -EBUSY);
        cr_assert_str_eq(err.msg,
                         "prepare 'k1': attach '/a.img': LOOP_CONFIGURE: Device or resource busy");
}

Test(util_err, setx_has_no_errno_text_and_clear_resets)
{
        struct util_err err = {0};
        cr_assert_eq(util_err_setx(&err, EINVAL, "bad tag '%s'", "x y"), -EINVAL);
        cr_assert_str_eq(err.msg, "bad tag 'x y'");
        util_err_clear(&err);
        cr_assert_eq(err.errnum, 0);
        cr_assert_str_eq(err.msg, "");
        util_err_clear(NULL);
}

Test(util_err, long_chains_are_truncated_not_overflowed)
{
        struct util_err err = {0};
        char big[2000];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        util_err_setx(&err, EIO, "%s", big);
        cr_assert_eq(strlen(err.msg), UTIL_ERR_MSG_MAX - 1);
        util_err_prefix(&err, "ctx");
        cr_assert_eq(strlen(err.msg), UTIL_ERR_MSG_MAX - 1);
        cr_assert_eq(strncmp(err.msg, "ctx: aaa", 8), 0);
        util_err_prefix(&err, "%s", big);
        cr_assert_eq(strlen(err.msg), UTIL_ERR_MSG_MAX - 1);
        cr_assert_eq(err.errnum, EIO);
}

Test(util_parse, u64_table)
{
        static const struct {
                const char *in;
                int r;
                uint64_t v;
        } cases[] = {
                {"0", 0, 0},
                {"42", 0, 42},
                {"18446744073709551615", 0, UINT64_MAX},
                {"18446744073709551616", -ERANGE, 0},
                {"", -EINVAL, 0},
                {"-1", -EINVAL, 0},
                {"12a", -EINVAL, 0},
                {" 1", -EINVAL, 0},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                uint64_t v = 12345;
                int r = util_parse_u64(cases[i].in, &v);
                cr_expect_eq(r, cases[i].r, "'%s': %d", cases[i].in, r);
                if (r == 0)
                        cr_expect_eq(v, cases[i].v, "'%s'", cases[i].in);
                else
                        cr_expect_eq(v, 12345, "'%s': output untouched on failure", cases[i].in);
        }
        cr_assert_eq(util_parse_u64(NULL, NULL), -EINVAL);
}

Test(util_parse, sizes_with_binary_suffixes)
{
        const struct {
                const char *in;
                int r;
                uint64_t v;
        } cases[] = {
                {"4096", 0, 4096},
                {"64M", 0, 64ull << 20},
                {"64m", 0, 64ull << 20},
                {"1GiB", 0, 1ull << 30},
                {"2KB", 0, 2048},
                {"1T", 0, 1ull << 40},
                {"0", 0, 0},
                /* 32 digits and more: leading zeros are fine (fuzz-size). */
                {"00000000000000000000000000000000064M", 0, 64ull << 20},
                {"0000000000000000000000000000000000g", 0, 0},
                {"", -EINVAL, 0},
                {"M", -EINVAL, 0},
                {"-1", -EINVAL, 0},
                {"+1", -EINVAL, 0},
                {" 1", -EINVAL, 0},
                {"1X", -EINVAL, 0},
                {"1Mb", -EINVAL, 0},
                {"1MiBx", -EINVAL, 0},
                {"17000000T", -EINVAL, 0},
                {"18446744073709551616", -EINVAL, 0},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                uint64_t v = 12345;
                int r = util_parse_size(cases[i].in, &v);
                cr_expect_eq(r, cases[i].r, "'%s': %d", cases[i].in, r);
                cr_expect_eq(v, r == 0 ? cases[i].v : 12345, "'%s'", cases[i].in);
        }
        cr_assert_eq(util_parse_size(NULL, NULL), -EINVAL);
}

Test(util_fd, small_file_read_strips_newline_and_detects_overflow)
{
        char path[] = "/tmp/loopsnap-unit.XXXXXX";
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "1234\n", 5), 5);
        close(fd);

        char buf[16];
        cr_assert_eq(util_read_small_file(path, buf, sizeof(buf)), 4);
        cr_assert_str_eq(buf, "1234");
        uint64_t v;
        cr_assert_eq(util_read_u64_file(path, &v), 0);
        cr_assert_eq(v, 1234);
        char tiny[4];
        cr_assert_eq(util_read_small_file(path, tiny, sizeof(tiny)), -EFBIG);
        char exact[6];
        cr_assert_eq(util_read_small_file(path, exact, sizeof(exact)), 4, "fits with newline");
        unlink(path);
        cr_assert_eq(util_read_small_file(path, buf, sizeof(buf)), -ENOENT);
}

Test(util_fd, reopen_and_get_path)
{
        int fd = open("/proc/self/status", O_PATH | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        int r = util_fd_reopen(fd, O_RDONLY);
        cr_assert_geq(r, 0);
        cr_assert(fcntl(r, F_GETFD) & FD_CLOEXEC, "reopened fd is O_CLOEXEC");
        char buf[8];
        cr_assert_gt(read(r, buf, sizeof(buf)), 0, "readable after reopen");
        close(r);
        char path[256];
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cr_assert_eq(util_fd_get_path(devnull, path, sizeof(path)), 0);
        cr_assert_str_eq(path, "/dev/null");
        cr_assert_eq(util_fd_get_path(devnull, path, 5), -ENAMETOOLONG);
        close(devnull);
        close(fd);
}

Test(util_cleanup, take_fd_and_take_ptr_transfer_ownership)
{
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int owner = -1;
        {
                _cleanup_close_ int tmp = fd;
                owner = TAKE_FD(tmp);
                cr_assert_eq(tmp, -EBADF);
        }
        cr_assert_geq(fcntl(owner, F_GETFD), 0, "fd survived the cleanup scope");
        close(owner);

        char *kept = NULL;
        {
                _cleanup_free_ char *p = strdup("x");
                kept = TAKE_PTR(p);
                cr_assert_null(p);
        }
        cr_assert_str_eq(kept, "x");
        free(kept);
}

Test(util_debug, area_parser)
{
        cr_assert_eq(util_debug_parse(NULL), 0);
        cr_assert_eq(util_debug_parse(""), 0);
        cr_assert_eq(util_debug_parse("loop"), UTIL_DBG_LOOP);
        cr_assert_eq(util_debug_parse("loop,mount"), UTIL_DBG_LOOP | UTIL_DBG_MOUNT);
        cr_assert_eq(util_debug_parse("mount,nonsense,idmap"), UTIL_DBG_MOUNT | UTIL_DBG_IDMAP);
        cr_assert_eq(util_debug_parse("all") & UTIL_DBG_SNAP, UTIL_DBG_SNAP);
        cr_assert_eq(util_debug_parse("loo"), 0, "no prefix matches");
}

Test(util_time, random_sleep_stays_in_bounds)
{
        for (int i = 0; i < 5; i++) {
                uint64_t t0 = util_now_ns();
                util_sleep_random_ms(2, 3);
                uint64_t dt = util_now_ns() - t0;
                cr_assert_geq(dt, 2000000u, "slept at least the minimum (%llu ns)",
                              (unsigned long long)dt);
        }
        cr_assert_neq(util_random_u32() | util_random_u32() | util_random_u32(), 0);
}

Test(util_env, long_setting)
{
        setenv("LOOPSNAP_UNIT_X", "12", 1);
        cr_assert_eq(util_env_long("LOOPSNAP_UNIT_X", 5), 12);
        setenv("LOOPSNAP_UNIT_X", "12x", 1);
        cr_assert_eq(util_env_long("LOOPSNAP_UNIT_X", 5), 5);
        unsetenv("LOOPSNAP_UNIT_X");
        cr_assert_eq(util_env_long("LOOPSNAP_UNIT_X", 5), 5);
}
