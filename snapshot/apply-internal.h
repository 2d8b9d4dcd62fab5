/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private to snapshot/: the pieces of layer application shared by apply.c
 * (the parent side: mounts, feeding the sandbox, its report),
 * apply-sandbox.c (the child that writes), tar-scan.c (the framing check of
 * the uncompressed stream), digest.c (sha256) and import.c.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <locale.h>
#include <stdint.h>

#include "snapshot/snapshot.h"

/* ---- sha256 (digest.c, OpenSSL EVP) -------------------------------------- */

struct snap_sha256;

/* A fresh sha256 context. Returns 0, or -ENOMEM / -EIO (OpenSSL failed). */
int snap_sha256_new(struct snap_sha256 **ret);
struct snap_sha256 *snap_sha256_free(struct snap_sha256 *h);
UTIL_DEFINE_FREE_FUNC(struct snap_sha256, snap_sha256_free)
void snap_sha256_update(struct snap_sha256 *h, const void *buf, size_t len);
/* "sha256:<hex>" of everything given so far. Returns 0 or -EIO. */
int snap_sha256_final(struct snap_sha256 *h, char ret[SNAP_DIGEST_MAX]);

/* ---- the framing check of a tar stream (tar-scan.c) --------------------- */

/* Limits for the extended headers that precede an entry. */
#define SNAP_TAR_PAX_MAX  (256u << 10) /* a pax 'x'/'g' header's data */
#define SNAP_TAR_NAME_MAX 4096u        /* a GNU 'L'/'K' long name, with its NUL */
#define SNAP_TAR_EXT_MAX  4u           /* extended headers before one entry */

/*
 * An independent reading of the tar framing, fed every byte of the
 * uncompressed stream before libarchive sees it, so it refuses what the
 * format allows but an image layer has no business holding — and what
 * libarchive would only warn about or silently shorten — before the entry
 * reaches the extractor: extended headers over their limits, a NUL byte
 * inside a pax path/linkpath or a GNU long name, sparse entries, unknown
 * entry types, a data size on a link/directory/device entry (readers
 * disagree on whether data follows), a bad header checksum, truncation, and
 * anything but zeros after the end-of-archive block. It parses nothing that
 * decides what is written: that is libarchive's reading, checked again by
 * the extractor.
 */
struct snap_tar_scan {
        int state;
        uint64_t offset;        /* of the next byte fed */
        unsigned char hdr[512]; /* the header being collected */
        size_t hdr_len;         /* bytes of it so far */
        uint64_t header_offset; /* where the current header started */
        uint64_t left;          /* data bytes left in the current entry */
        uint64_t pad;           /* padding after them */
        char ext_type;          /* 'x', 'g', 'L', 'K' while collecting one */
        char *ext;              /* its data (malloc'ed, up to the limit) */
        size_t ext_len;         /* bytes collected */
        unsigned n_ext;         /* extended headers since the last entry */
        bool seen_x, seen_l, seen_k;
        bool have_size; /* a pax "size" for the next entry */
        uint64_t size;
        char name[UTIL_PREVIEW_SIZE];    /* the current entry's name, for messages */
        char pending[UTIL_PREVIEW_SIZE]; /* a pax path / long name for the next entry */
};

void snap_tar_scan_init(struct snap_tar_scan *s);
void snap_tar_scan_done(struct snap_tar_scan *s);
/* Feeds the next `len` bytes. Returns 0, or -EINVAL (-E2BIG for a limit)
 * with `err` naming the entry and what is wrong with it. */
int snap_tar_scan_feed(struct snap_tar_scan *s, const void *buf, size_t len, struct util_err *err);
/* At the end of the stream: 0 when it ended where an archive may end, else
 * -EINVAL ("truncated"). */
int snap_tar_scan_finish(struct snap_tar_scan *s, struct util_err *err);
