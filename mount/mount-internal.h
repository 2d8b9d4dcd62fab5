/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private to mount/: shared between the engine's files. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "idmap/idmap.h"
#include "loop/loop.h"
#include "mount/mount.h"

/* The fs-context log of an fsopen/fspick fd: every message the kernel left,
 * joined with "; " into buf (empty when there was none). */
void mount_fc_log(int fs_fd, char *buf, size_t size);

/* Adds " (kernel: <log>)" to err when the fs context has messages, and
 * returns -err->errnum. */
int mount_err_add_log(struct util_err *err, int fs_fd);

/* MS_* mount flags -> MOUNT_ATTR_* (per-mount attributes). */
unsigned long long mount_flags_to_attr(unsigned long f);

/* fsconfig helpers that name the key in errors and add the kernel log. */
int mount_fsconfig_string(int fs_fd, const char *key, const char *value, struct util_err *err);
int mount_fsconfig_flag(int fs_fd, const char *key, struct util_err *err);
int mount_fsconfig_fd(int fs_fd, const char *key, int fd, struct util_err *err);
int mount_fsconfig_data(int fs_fd, const char *opt, struct util_err *err); /* "k=v" or "k" */
int mount_fsconfig_create(int fs_fd, struct util_err *err);

/* fsmount(FSMOUNT_CLOEXEC) with attributes from MS_* flags. */
int mount_fsmount(int fs_fd, unsigned long ms_flags, int *ret_fd, struct util_err *err);

/* Attaches a detached mount at `target` (move_mount). */
int mount_move_to(int mnt_fd, const char *target, struct util_err *err);

/* Sets propagation on `path` (legacy) or a mount fd (path "" + fd). */
int mount_set_propagation(int mnt_fd, const char *path, enum mount_propagation p, bool recursive,
                          struct util_err *err);

/* One applied mount of a spec, kept until the spec is done. */
struct mount_applied {
        int fd;         /* detached (or attached) mount fd; -EBADF */
        char *path;     /* where it is mounted (intermediate scratch or target);
                           NULL for a detached one */
        bool on_target; /* mounted on (a sub-target of) the target */
        bool is_overlay;
        bool mounted;             /* something to undo on failure */
        int idmap_ns;             /* userns fd it was idmapped with in place; -1 */
        struct loop_device *loop; /* device the mount uses, released after mounting */
        bool may_borrow;          /* in: only non-idmapped overlays use it, as a layer */
        bool borrowed;            /* out: fd is an O_PATH fd of a mount reuse lent */
};

/*
 * An O_PATH fd of directory `sub` inside earlier mount `m` (its fd, or its
 * mountpoint), resolved beneath that mount: no "..", no symlink or magic
 * link out of it, no crossing into another mount (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV). Layer images are untrusted: a
 * symlink named "upper" must not take the engine to the host's /etc.
 */
int mount_open_sub(const struct mount_applied *m, const char *sub, int *ret_fd,
                   struct util_err *err);

/* Private scratch directories of one apply (string/legacy APIs): a run
 * directory made on first use inside the engine's scratch dir. */
struct mount_scratch {
        const char *base;
        char *run_dir;
};
/* Creates <run_dir>/<name> (and the run dir on first use). */
int mount_scratch_dir(struct mount_scratch *s, const char *name, char **ret, struct util_err *err);

struct mount_engine {
        enum mount_api api;
        char *loop_owner;
        char *scratch_dir;
        struct idmap_cache *userns;
        int (*reuse)(void *data, const char *type, const char *source, bool rw, bool borrow,
                     int *ret_fd);
        void *reuse_data;
        size_t reused;   /* atomic */
        size_t borrowed; /* atomic */
        size_t retried;  /* atomic */
};

/* Applies entry `i` of `spec`: overlay.c. `done[0..i-1]` are the earlier
 * mounts. `where` is the path to mount on (NULL: return a detached fd in
 * out->fd; only on the fd and lowerdir+ APIs). */
int mount_overlay_apply(struct mount_engine *e, const struct mount_spec *spec, size_t i,
                        const struct mount_opts *o, struct mount_applied *done,
                        struct mount_scratch *scratch, const char *where, struct mount_applied *out,
                        struct util_err *err);

/* Applies a non-overlay entry (a filesystem, a loop image, a bind): simple.c. */
int mount_simple_apply(struct mount_engine *e, const struct mount_spec *spec, size_t i,
                       const struct mount_opts *o, struct mount_applied *done, const char *loop_id,
                       const char *where, struct mount_applied *out, struct util_err *err);

/* Resolves a uidmap=/gidmap= pair into a cached user-namespace fd (owned by
 * the engine). Only one of the two may be given: it is used for both. */
int mount_userns_for(struct mount_engine *e, const struct mount_opts *o, const char *what,
                     int *ret_fd, struct util_err *err);
