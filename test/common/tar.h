/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Raw tar blocks for tests: hostile archives that libarchive's writer will
 * not make (a NUL inside a pax path, an oversized pax header, unknown entry
 * types, data where none belongs, garbage after the end). Built in memory,
 * header by header; every header gets a correct checksum unless the test
 * breaks it on purpose. Aborts on ENOMEM (tests only).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct ttar {
        unsigned char *buf;
        size_t len, cap;
};

/* A ustar header: `name` (< 100 bytes), `type` ('0', '1', '2', '5', ...),
 * `size` bytes of data to follow, `link` (< 100 bytes, or NULL). Mode 0644
 * (0755 for directories), owner 0:0, mtime 1000000000. */
void ttar_header(struct ttar *t, const char *name, char type, uint64_t size, const char *link);
/* `n` bytes of data and the padding to the next block. */
void ttar_data(struct ttar *t, const void *d, size_t n);
/* A regular file with `content`. */
void ttar_file(struct ttar *t, const char *name, const char *content);
/* A pax header ('x' or 'g') of one record `key`=`val` (`vlen` bytes, may
 * hold NULs). */
void ttar_pax(struct ttar *t, char type, const char *key, const void *val, size_t vlen);
/* The end-of-archive blocks (two zero blocks). */
void ttar_end(struct ttar *t);
/* Bytes as they are (no padding). */
void ttar_raw(struct ttar *t, const void *d, size_t n);
/* Writes the archive to `path` (0644). Returns 0 or -errno. */
int ttar_write(const struct ttar *t, const char *path);
void ttar_free(struct ttar *t);
