/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fd and path helpers. Every open here uses O_CLOEXEC: the library is loaded
 * into container runtimes that fork and exec, and a leaked loop-device or
 * image fd in a child would pin the device (autoclear never fires).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

int util_fd_reopen(int fd, int flags)
{
        char path[64];

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        int r = open(path, flags | O_CLOEXEC);
        return r < 0 ? -errno : r;
}

int util_fd_get_path(int fd, char *buf, size_t size)
{
        char path[64];

        if (size == 0)
                return -ENAMETOOLONG;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, buf, size);
        if (n < 0)
                return -errno;
        if ((size_t)n >= size)
                return -ENAMETOOLONG;
        buf[n] = '\0';
        return 0;
}

int util_open_regular(const char *path, int flags, int *ret_fd, struct util_err *err)
{
        _cleanup_close_ int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        struct stat st;

        if (fd < 0)
                return util_err_set(err, errno, "open '%s'", path);
        if (fstat(fd, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", path);
        if (!S_ISREG(st.st_mode))
                return util_err_setx(err, EINVAL, "'%s' is not a regular file", path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

ssize_t util_read_small_file(const char *path, char *buf, size_t size)
{
        _cleanup_close_ int fd = -EBADF;

        if (size == 0)
                return -EFBIG;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;

        size_t len = 0;
        for (;;) {
                if (len == size - 1) {
                        /* Full: fine only if we are at the end of the file. */
                        char c;
                        ssize_t n = read(fd, &c, 1);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return -errno;
                        if (n > 0)
                                return -EFBIG;
                        break;
                }
                ssize_t n = read(fd, buf + len, size - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        while (len > 0 && buf[len - 1] == '\n')
                len--;
        buf[len] = '\0';
        return (ssize_t)len;
}

int util_parse_u64(const char *s, uint64_t *ret)
{
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                unsigned d = (unsigned)(*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

int util_parse_size(const char *s, uint64_t *ret)
{
        static const char units[] = "kmgt";
        size_t n = 0;
        unsigned shift = 0;
        uint64_t v = 0;

        if (!s)
                return -EINVAL;
        /* The digits are read in place, any number of them (leading zeros
         * included, as util_parse_u64 reads them); only the value is bounded. */
        for (; s[n] >= '0' && s[n] <= '9'; n++) {
                unsigned d = (unsigned)(s[n] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
        }
        if (n == 0)
                return -EINVAL;
        const char *rest = s + n;
        if (*rest) {
                const char *u = strchr(units, *rest | 0x20);
                if (!u || !*u)
                        return -EINVAL;
                shift = 10 * (unsigned)(u - units + 1);
                rest++;
                if (*rest && strcmp(rest, "B") != 0 && strcmp(rest, "iB") != 0)
                        return -EINVAL;
        }
        if (shift && v > (UINT64_MAX >> shift))
                return -EINVAL;
        *ret = v << shift;
        return 0;
}

int util_read_u64_file(const char *path, uint64_t *ret)
{
        /* Initialised for clang-tidy, which assumes that errno may be 0
         * after a failed open() (-errno == 0, "success" with buf unset). */
        char buf[32] = "";
        ssize_t n = util_read_small_file(path, buf, sizeof(buf));
        if (n < 0)
                return (int)n;
        return util_parse_u64(buf, ret);
}

const char *util_preview(char buf[static UTIL_PREVIEW_SIZE], const char *s, size_t len)
{
        size_t i = 0;

        for (; i < len && s[i] && i < 64; i++) {
                unsigned char c = (unsigned char)s[i];
                buf[i] = (char)((c < 0x20 || c == 0x7f) ? '?' : c);
        }
        if (i < len && s[i]) {
                memcpy(buf + i, "...", 3);
                i += 3;
        }
        buf[i] = '\0';
        return buf;
}
