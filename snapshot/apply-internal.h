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

/* ---- the extraction sandbox (apply.c parent, apply-sandbox.c child) ------ */

/* What the child is asked to do. Paths inside `jail` are relative to it. */
struct snap_apply_job {
        const char *jail;  /* the child's root directory (chroot) */
        const char *root;  /* where to extract, inside the jail ("." or "layer/upper") */
        const char *lower; /* OVERLAY: the parent layers, read-only, inside the jail; or NULL */
        enum snap_apply_mode mode;
        const char *tar_path; /* for messages */
        /* Made by the parent before the fork (see apply-sandbox.c): */
        struct snap_sha256 *sha; /* a fresh context for the diff id; the child's to use */
        locale_t utf8;           /* C.UTF-8 for the child's thread, or (locale_t)0 */
};

/* The child's answer, written once to the report pipe. */
struct snap_apply_report {
        uint32_t magic;
        int32_t errnum; /* 0: success */
        uint64_t uncompressed_size;
        uint64_t entries;
        char diff_id[SNAP_DIGEST_MAX];
        char msg[UTIL_ERR_MSG_MAX];
};
#define SNAP_APPLY_REPORT_MAGIC 0x6c736170u

/* ---- the extractor (apply-extract.c), run behind the sandbox's walls --- */

struct snap_extract;

/* Before the walls: libarchive's readers and the rest of what allocates at
 * first use. Takes over `sha` (also on failure). Returns 0 or -errno. */
int snap_extract_new(enum snap_apply_mode mode, struct snap_sha256 *sha, struct snap_extract **ret,
                     struct util_err *err);
/* Behind them: reads the layer from `data_fd`, writes it beneath `root_fd`
 * (`lower_fd`: the parent layers, read-only, or -1). Fills rep->entries,
 * ->uncompressed_size and, on success, ->diff_id. Returns 0 or -errno with
 * `err` naming the entry. */
int snap_extract_run(struct snap_extract *x, int data_fd, int root_fd, int lower_fd,
                     struct snap_apply_report *rep, struct util_err *err);
struct snap_extract *snap_extract_free(struct snap_extract *x);
UTIL_DEFINE_FREE_FUNC(struct snap_extract, snap_extract_free)

/*
 * snap_apply_child: the forked child's whole life. `jail_fd` is the jail
 * (an open directory), `data_fd` the stream of the (compressed) layer,
 * `report_fd` where the report goes. Never returns: _exit(0) after writing
 * the report (also for a refused layer), _exit(2) when even that failed.
 */
_Noreturn void snap_apply_child(const struct snap_apply_job *j, int jail_fd, int data_fd,
                                int report_fd);

/*
 * snap_apply_run: extract `tar_fd` (a regular file, read from its start) as
 * `j` says, in the child, feeding it from here while hashing and reporting
 * progress. Returns 0 and *ret, or -errno with `err` (no prefix).
 */
int snap_apply_run(const struct snap_apply_job *j, int tar_fd, snap_progress_fn progress,
                   void *progress_data, struct snap_apply_result *ret, struct util_err *err);

/*
 * snap_apply_key_fd: snap_apply with the layer already open (`tar_fd`, a
 * regular file, read from its start; `tar_path` names it in messages).
 * Messages are not prefixed. Used by snap_apply and by import, which opens
 * blobs beneath the layout directory itself.
 */
int snap_apply_key_fd(struct snap_root *r, const char *key, int tar_fd, const char *tar_path,
                      snap_progress_fn progress, void *progress_data, struct snap_apply_result *ret,
                      struct util_err *err);
