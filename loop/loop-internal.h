/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private to loop/: the handle and the helpers shared between its files. */
#pragma once

#include <linux/loop.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop/loop.h"

#define LOOP_CONTROL_PATH "/dev/loop-control"

struct loop_device {
        int fd; /* the device, O_CLOEXEC; owned */
        int nr;
        char path[32]; /* /dev/loopN */
        dev_t devno;
        uint64_t diskseq;
        bool bound_by_us; /* false: joined a shared device bound by someone else */
        bool direct_io;
};

/* Opens /dev/loop-control (O_RDWR|O_CLOEXEC); the error names the path. */
int loop_control_open(int *ret_fd, struct util_err *err);

/* flock(fd, op) restarting on EINTR; `what` names the file in errors. */
int loop_fd_lock(int fd, int op, const char *what, struct util_err *err);

/*
 * Opens /dev/loopN with `flags` (| O_CLOEXEC), making sure it is really loop
 * device N: the device is created with LOOP_CTL_ADD when the kernel does not
 * have it, the node with mknod when /dev lacks it (a /dev that is not
 * devtmpfs), and a node whose device number does not match is refused with
 * -ENODEV. `ctl_fd` may be -EBADF (then nothing is created).
 */
int loop_node_open(int ctl_fd, int nr, int flags, int *ret_fd, dev_t *ret_devno,
                   struct util_err *err);

/* The device number of loop N from sysfs. Returns 0, -ENOENT when the kernel
 * has no such device, or -errno. */
int loop_sysfs_devno(int nr, dev_t *ret);

/* Whether loop N is still bound with the given diskseq (0 = any). */
bool loop_sysfs_is_bound(int nr, uint64_t diskseq);

/* Reads diskseq (BLKGETDISKSEQ, then sysfs); 0 when the kernel has none. */
uint64_t loop_read_diskseq(int fd, int nr);

/* Fills `ret` from the device fd (LOOP_GET_STATUS64 + BLKSSZGET + sysfs).
 * Returns 0, -ENXIO when unbound, or -errno (err filled). */
int loop_status_fill(int fd, int nr, dev_t devno, struct loop_status *ret, struct util_err *err);

/* Like loop_status_query, on an open fd of `dev_path`. */
int loop_status_query_fd(int fd, const char *dev_path, struct loop_status *ret,
                         struct util_err *err);

/* Kernel-encoded (huge_encode_dev) device number to a dev_t. */
dev_t loop_decode_kernel_dev(uint64_t v);

struct stat;
#define LOOP_SHARE_DIR_DEFAULT "/run/loopsnap/loop-share"
/*
 * Opens (making it when there is none) and locks the registry record of a
 * shared attach of `backing` (fstat result) with `opts`: held from the
 * lookup to the record's rewrite, so two sharers of one image never bind two
 * devices. Returns the record's fd (closing it unlocks), or -1 when there is
 * no usable registry: the caller then holds the loop-control lock across
 * loop_share_find (a scan) and the attach.
 */
int loop_share_lock(const struct stat *backing, const struct loop_attach_opts *opts);

/*
 * Looks for a device already bound to `backing` with the same parameters:
 * the one record `rec_fd` names, or, with rec_fd < 0, a scan of /sys/block.
 * Returns 1 with *ret filled (fd open, re-verified after open), 0 when there
 * is none, or -errno.
 */
int loop_share_find(int rec_fd, const struct stat *backing, const struct loop_attach_opts *opts,
                    struct loop_device *ret, struct util_err *err);

/* Writes into record `rec_fd` (none: nothing) the shared device `d` we just
 * bound to image `name` (its path; kept in the record when absolute), for
 * loop_share_find (best effort). */
void loop_share_record(int rec_fd, const char *name, const struct loop_device *d);

/* Whether the tag of a device says loopsnap attached it (for `owner`, or any
 * owner when NULL). */
bool loop_tag_is_ours(const char *tag, const char *owner);
