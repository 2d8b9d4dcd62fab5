/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Raw tar blocks for tests: see tar.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test/common/tar.h"

static unsigned char *grow(struct ttar *t, size_t n)
{
        if (t->len + n > t->cap) {
                size_t cap = t->cap ? t->cap : 4096;
                while (cap < t->len + n)
                        cap *= 2;
                unsigned char *b = realloc(t->buf, cap);
                if (!b)
                        abort();
                t->buf = b;
                t->cap = cap;
        }
        unsigned char *p = t->buf + t->len;
        memset(p, 0, n);
        t->len += n;
        return p;
}

void ttar_raw(struct ttar *t, const void *d, size_t n)
{
        memcpy(grow(t, n), d, n);
}

void ttar_header(struct ttar *t, const char *name, char type, uint64_t size, const char *link)
{
        unsigned char *h = grow(t, 512);
        unsigned sum = 0;

        strncpy((char *)h, name, 99);
        snprintf((char *)h + 100, 8, "%07o", type == '5' ? 0755 : 0644);
        snprintf((char *)h + 108, 8, "%07o", 0);
        snprintf((char *)h + 116, 8, "%07o", 0);
        snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
        snprintf((char *)h + 136, 12, "%011o", 1000000000);
        h[156] = (unsigned char)type;
        if (link)
                strncpy((char *)h + 157, link, 99);
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2); /* NOLINT(bugprone-not-null-terminated-result): a tar field */
        memset(h + 148, ' ', 8);
        for (int i = 0; i < 512; i++)
                sum += h[i];
        snprintf((char *)h + 148, 8, "%06o", sum);
        h[155] = ' ';
}

void ttar_data(struct ttar *t, const void *d, size_t n)
{
        ttar_raw(t, d, n);
        if (n % 512)
                grow(t, 512 - n % 512);
}

void ttar_file(struct ttar *t, const char *name, const char *content)
{
        ttar_header(t, name, '0', strlen(content), NULL);
        ttar_data(t, content, strlen(content));
}

void ttar_pax(struct ttar *t, char type, const char *key, const void *val, size_t vlen)
{
        /* "<len> <key>=<value>\n", <len> counting its own digits. */
        size_t body = 1 + strlen(key) + 1 + vlen + 1, len = body + 1;
        for (;;) {
                char tmp[32];
                size_t d = (size_t)snprintf(tmp, sizeof(tmp), "%zu", len);
                if (body + d == len)
                        break;
                len = body + d;
        }
        char *rec = malloc(len);
        if (!rec)
                abort();
        int off = snprintf(rec, len, "%zu %s=", len, key);
        memcpy(rec + off, val, vlen);
        rec[len - 1] = '\n';
        ttar_header(t, "PaxHeaders/entry", type, len, NULL);
        ttar_data(t, rec, len);
        free(rec);
}

void ttar_end(struct ttar *t)
{
        grow(t, 1024);
}

int ttar_write(const struct ttar *t, const char *path)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        size_t off = 0;
        while (off < t->len) {
                ssize_t n = write(fd, t->buf + off, t->len - off);
                if (n <= 0) {
                        int e = errno;
                        close(fd);
                        return -e;
                }
                off += (size_t)n;
        }
        return close(fd) < 0 ? -errno : 0;
}

void ttar_free(struct ttar *t)
{
        free(t->buf);
        *t = (struct ttar){0};
}
