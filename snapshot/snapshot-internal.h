/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private to snapshot/: the root handle and helpers shared by its files. */
#pragma once

#include "mount/mount.h"
#include "snapshot/image.h"
#include "snapshot/snapshot.h"

struct snap_root {
        char *path;
        struct snap_store *store;
        struct mount_engine *engine; /* for commit's temporary mount */
        int lock_fd;                 /* <root>/lock: LOCK_SH while creating, LOCK_EX in cleanup */
        enum snap_layout layout;
        char *writable_fs;
        uint64_t writable_size;
        char owner[24]; /* loop tag owner of this root */
};

/* "<root>/<fmt...>" into a malloc'ed string; NULL on ENOMEM. */
char *snap_path(const struct snap_root *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* The mount spec of snapshot `i` (active or view) from metadata alone. */
int snap_layout_spec(struct snap_root *r, const struct snap_info *i, struct mount_spec **ret,
                     struct util_err *err);

/* Removes what a snapshot left on disk (fs.img, empty/, the directory
 * itself), without following links or crossing mounts. Best effort. */
void snap_files_remove(const char *dir);
