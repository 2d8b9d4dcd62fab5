/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * loop/ — loop devices: attach an image file, share read-only devices, tag,
 * query, list and detach. DESIGN.md §6.
 *
 * Lock order (never the other way round, to avoid ABBA deadlocks):
 *   0. flock(LOCK_EX) on a shared attach's registry record (one image's
 *      sharers bind one device; other images go on)
 *   1. flock(LOCK_EX) on /dev/loop-control   (serialises the choice of a
 *      free device between all loopsnap processes)
 *   2. flock(LOCK_EX | LOCK_NB) on the /dev/loopN node, from the claim until
 *      the device is bound (after 1 is released): other allocators of ours
 *      skip it, udev probes and other lock-aware tools leave it alone
 *
 * Every device loopsnap attaches carries a tag in lo_file_name,
 * "loopsnap:<owner>:<id>", so that fsck can find leaks and so that detach by
 * name refuses devices loopsnap did not attach.
 *
 * Environment switches (read once per process):
 *   LOOPSNAP_LOOP_CONFIGURE=0   force the LOOP_SET_FD + LOOP_SET_STATUS64
 *                               fallback even where LOOP_CONFIGURE works.
 *   LOOPSNAP_DEBUG=loop         trace allocation, retries and fallbacks.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/util.h"

#define LOOP_TAG_PREFIX "loopsnap:"
/* lo_file_name is LO_NAME_SIZE (64) bytes including the NUL. */
#define LOOP_TAG_MAX 63

/* How many times allocation is tried before "no free loop device". Without a
 * lock and backoff a device was seen stolen 54 times in a row
 * (research/limits.md §2); with both, loopsnap processes never collide and
 * only foreign allocators (losetup, ...) can steal a device. systemd uses 64. */
#define LOOP_ATTACH_MAX_ATTEMPTS 64

enum loop_attach_flags {
        LOOP_ATTACH_READ_ONLY = 1u << 0,
        /* Autoclear is on by default: the device is freed when its last
         * opener (our handle, a mount) goes away. */
        LOOP_ATTACH_NO_AUTOCLEAR = 1u << 1,
        /* Direct I/O is on by default (no double page cache); when the kernel
         * or the backing filesystem refuses it, buffered I/O is used. */
        LOOP_ATTACH_NO_DIRECT_IO = 1u << 2,
        /* Read-only only: reuse a device already bound to the same backing
         * dev+inode with the same offset, size limit, block size and
         * read-only flag, so N containers of one image share one device. */
        LOOP_ATTACH_SHARED = 1u << 3,
};

struct loop_attach_opts {
        unsigned flags;      /* enum loop_attach_flags */
        uint64_t offset;     /* bytes into the backing file */
        uint64_t size_limit; /* bytes; 0 = up to the end of the file */
        uint32_t block_size; /* logical block size; 0 = kernel default */
        const char *owner;   /* tag owner, required: [A-Za-z0-9._-]+ */
        const char *id;      /* tag id, required: [A-Za-z0-9._:-]+ */
};

/* What the kernel says about a bound loop device. */
struct loop_status {
        int nr;            /* N of /dev/loopN */
        char path[32];     /* "/dev/loopN" */
        dev_t devno;       /* the loop block device */
        dev_t backing_dev; /* st_dev of the backing file */
        ino_t backing_ino; /* st_ino of the backing file */
        uint64_t offset;
        uint64_t size_limit;
        uint32_t block_size; /* logical block size */
        uint64_t diskseq;    /* 0 where the kernel has none */
        bool read_only;
        bool autoclear;
        bool direct_io;
        bool partscan;
        char tag[LOOP_TAG_MAX + 1]; /* lo_file_name as set at attach */
        char backing_file[4096];    /* from sysfs; may end in " (deleted)" */
};

/* An attached (or shared) device. Opaque; owns the device fd. */
struct loop_device;

/*
 * loop_attach_path / loop_attach_fd: attach `path` (or what `fd` refers to,
 * also an O_PATH fd; the caller keeps `fd`) to a loop device.
 * `opts` may not be NULL; owner and id are required (the tag).
 * Allocation retries transient failures (EBUSY, ENXIO, ENODEV, ENOENT,
 * EAGAIN) up to LOOP_ATTACH_MAX_ATTEMPTS times with a random, growing delay.
 * Returns: 0 and a new handle in *ret (free with loop_device_free or
 * loop_device_detach); -errno and `err` filled on failure, nothing bound.
 */
int loop_attach_path(const char *path, const struct loop_attach_opts *opts,
                     struct loop_device **ret, struct util_err *err);
int loop_attach_fd(int fd, const struct loop_attach_opts *opts, struct loop_device **ret,
                   struct util_err *err);

/* The device fd (O_CLOEXEC; read-only for read-only devices). Owned by the
 * handle: do not close it. */
int loop_device_get_fd(const struct loop_device *d);
/* "/dev/loopN" */
const char *loop_device_get_path(const struct loop_device *d);
int loop_device_get_nr(const struct loop_device *d);
dev_t loop_device_get_devno(const struct loop_device *d);
uint64_t loop_device_get_diskseq(const struct loop_device *d);
/* Whether direct I/O is really on (it may have fallen back). */
bool loop_device_is_direct_io(const struct loop_device *d);
/* Whether this handle joined a device another attach had bound. */
bool loop_device_is_shared_reuse(const struct loop_device *d);

/*
 * loop_device_free: release the handle (close = release). With autoclear and
 * no other opener or mount the kernel frees the device at once. NULL is fine.
 * Returns: NULL.
 */
struct loop_device *loop_device_free(struct loop_device *d);
UTIL_DEFINE_FREE_FUNC(struct loop_device, loop_device_free)
#define _cleanup_loop_device_ _cleanup_(loop_device_freep)

enum loop_detach_result {
        LOOP_DETACHED = 0, /* the device is unbound now */
        LOOP_DEFERRED = 1, /* still in use (a mount, another handle): autoclear is set
                              and the kernel frees it when the last user goes */
};

/*
 * loop_device_detach: release the handle and, if this handle bound the
 * device, clear it. A device that is still in use is never yanked: it gets
 * autoclear and the result is LOOP_DEFERRED. Consumes `d` in every case.
 * Returns: LOOP_DETACHED, LOOP_DEFERRED, or -errno with `err` filled.
 */
int loop_device_detach(struct loop_device *d, struct util_err *err);

/*
 * loop_detach_tagged: detach the device at `dev_path` only if loopsnap
 * attached it: its tag starts with "loopsnap:<owner>:" (or just "loopsnap:"
 * when owner is NULL). Refuses others with -EPERM.
 * Returns: LOOP_DETACHED (also when it was not bound), LOOP_DEFERRED, or -errno.
 */
int loop_detach_tagged(const char *dev_path, const char *owner, struct util_err *err);

/*
 * loop_device_query / loop_status_query: the kernel's view of a bound
 * device. Returns: 0, -ENXIO when the device is not bound, or -errno.
 */
int loop_device_query(const struct loop_device *d, struct loop_status *ret, struct util_err *err);
int loop_status_query(const char *dev_path, struct loop_status *ret, struct util_err *err);

struct loop_filter {
        const char *tag_prefix;   /* NULL = any tag */
        const char *backing_path; /* NULL = any; matched by dev+inode */
};

/*
 * loop_list: every bound loop device matching `filter` (NULL = all), in
 * device-number order. Devices whose /dev node cannot be opened (e.g. a
 * private /dev) are left out.
 * Returns: 0 and a malloc'ed array in *ret (free()) with *ret_n entries.
 */
int loop_list(const struct loop_filter *filter, struct loop_status **ret, size_t *ret_n,
              struct util_err *err);

/*
 * loop_tag_format: "loopsnap:<owner>:<id>" into buf (LOOP_TAG_MAX + 1 bytes
 * is always enough). Returns: 0, -EINVAL for an empty/invalid owner or id,
 * -ENAMETOOLONG when the tag is longer than LOOP_TAG_MAX.
 */
int loop_tag_format(char *buf, size_t size, const char *owner, const char *id);

/*
 * loop_tag_parse: split a tag into owner and id (both buffers at least
 * LOOP_TAG_MAX + 1 bytes). Returns: 0, or -EINVAL when `tag` is not a
 * loopsnap tag.
 */
int loop_tag_parse(const char *tag, char *ret_owner, size_t owner_size, char *ret_id,
                   size_t id_size);

/* Whether a flag set is valid, before anything touches the kernel.
 * Returns: 0 or -EINVAL with `err` naming the bad combination. */
int loop_attach_opts_check(const struct loop_attach_opts *opts, struct util_err *err);

/*
 * loop_share_sweep: remove the records of the shared-device registry
 * (/run/loopsnap/loop-share, or LOOPSNAP_LOOP_SHARE_DIR) whose device is
 * gone or bound to something else and whose image is gone too (a record of
 * an image that still exists is kept: the next attach of that image
 * rewrites it in place), and temporary records of writers that died.
 * Records are written when a shared device is bound and only a later
 * lookup of the same image would notice one is stale, so without a sweep
 * they pile up. Holds the /dev/loop-control lock while it works. Returns 0
 * (with the count in *ret_removed, may be NULL) or -errno with `err`.
 */
int loop_share_sweep(size_t *ret_removed, struct util_err *err);

/* What the loop module found out about the kernel (for `snapctl doctor`):
 * 1 yes, 0 no, -1 not probed yet. */
int loop_feature_configure(void);
