/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * snapshot/fsck.h — reconcile a snapshotter root: metadata <-> files <-> loop
 * devices <-> mounts (DESIGN §5, docs/fsck.md).
 */
#pragma once

#include <stdbool.h>

#include "snapshot/snapshot.h"
#include "util/util.h"

/* What snap_fsck found (each field counts problems of one kind) and how many
 * repairs it made (`fixed`). */
struct snap_fsck_report {
        unsigned orphan_dirs;        /* snapshots/<id> without a row */
        unsigned tmp_leftovers;      /* tmp/new-* */
        unsigned trash_leftovers;    /* entries in trash/ */
        unsigned template_leftovers; /* templates/new-* */
        unsigned rows_without_files; /* fs.img (active/committed) or empty/ (view) missing */
        unsigned bad_images;         /* superblock fails snap_image_verify */
        unsigned stale_files;        /* a converting commit's leftover writable part / layer */
        unsigned leaked_loops;       /* this root's loop devices nothing should hold */
        unsigned leaked_mounts;      /* mounts under <root>/tmp/ (commit's temporary mounts),
                                        m/<id> of layers gone or not committed */
        unsigned fixed;              /* repairs made (repair=true) */
};

/* The number of problems in `rep` (every field but `fixed`). */
unsigned snap_fsck_problems(const struct snap_fsck_report *rep);

/*
 * snap_fsck: reconcile root `r`. With repair=false only count; with
 * repair=true also fix what can be fixed. Runs under the root lock held
 * exclusively (so a prepare in progress is never mistaken for a leftover);
 * run it when no commit is in progress (a live commit's temporary mount
 * looks exactly like a crashed one's). Each problem is reported through `fn`
 * (may be NULL) as one line of text. `ret` (may be NULL) gets the counts.
 * Returns 0 (problems are not errors), or -errno with `err` when the check
 * itself could not run.
 */
int snap_fsck(struct snap_root *r, bool repair, void (*fn)(void *data, const char *line),
              void *data, struct snap_fsck_report *ret, struct util_err *err);
