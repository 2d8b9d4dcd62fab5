/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private to plugin/ (the library side): the root handle behind the opaque
 * struct loopsnap_root, the error and struct-size helpers every operation
 * uses, and the operations the table in entry.c points at. Nothing here is
 * exported (-fvisibility=hidden and the version script).
 */
#pragma once

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

#include "mount/mount.h"
#include "plugin/loopsnap.h"
#include "snapshot/snapshot.h"
#include "util/util.h"

/* The end of the first version of a struct: the smallest struct_size a host
 * may pass (everything after it came later and is optional). */
#define PLUGIN_V1_SIZE(type, last_field) \
        (offsetof(type, last_field) + sizeof(((type *)0)->last_field))

/* The largest struct_size a host may pass (a sanity bound: the tail past
 * what the plugin knows is read to check it is zero). */
#define PLUGIN_STRUCT_MAX 4096u

struct loopsnap_root {
        /* Recursive: a walk callback may call stat or usage on the same
         * handle from the same thread (containerd: Stat works inside Walk). */
        pthread_mutex_t lock;
        struct snap_root *r;
        /* Applies specs for mount_apply; tags loop devices with the root's
         * owner so fsck and loops_list see them. */
        struct mount_engine *engine;
        loopsnap_log_fn log;
        void *log_data;
};

/* ---- errors (error.c) ------------------------------------------------------ */

/* The containerd error kind of a positive errno (loopsnap.h has the table). */
enum loopsnap_err_kind plugin_err_kind(int errnum);

/* Whether `out` can take an error: NULL or a struct_size that covers the
 * whole version-1 struct. Returns 0 or -EINVAL (nothing can be said then). */
int plugin_err_check(const struct loopsnap_error *out);

/* Ends an operation: on rc < 0 copies `e` (or, when nothing was recorded,
 * the errno text of rc) into `out` with its kind. Returns rc. */
int plugin_err_out(struct loopsnap_error *out, const struct util_err *e, int rc);

/*
 * plugin_struct_check: a host struct `p` named `what`: not NULL (unless
 * `optional`), struct_size at least `min`, and any bytes past `known` (what
 * this plugin understands) zero. Returns 1 when checked, 0 when optional and
 * NULL, or -EINVAL/-E2BIG with `e`.
 */
int plugin_struct_check(const void *p, bool optional, size_t min, size_t known, const char *what,
                        struct util_err *e);

/* Checks an output struct the host provides: not NULL, struct_size >= min.
 * Returns 0 or -EINVAL with `e`. */
int plugin_out_check(const void *p, size_t min, const char *what, struct util_err *e);

/* Copies `n` bytes of `src` into the host's `dst` (a struct the host sized),
 * no more than its struct_size covers, keeping the host's struct_size. */
void plugin_out_copy(void *dst, const void *src, size_t n);

/* A required string argument: not NULL. Returns 0 or -EINVAL naming it. */
int plugin_arg_check(const void *p, const char *what, struct util_err *e);

/* One line to the handle's log callback (if any). */
void plugin_log(struct loopsnap_root *h, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* ---- the root handle (root.c) ---------------------------------------------- */

/* Checks `h` and takes its mutex. Returns h, or NULL with `e` (EINVAL). */
struct loopsnap_root *plugin_root_lock(struct loopsnap_root *h, struct util_err *e);
static inline void plugin_root_unlockp(struct loopsnap_root **h)
{
        if (*h)
                pthread_mutex_unlock(&(*h)->lock);
}
/* Declares a locked handle released at the end of the scope. */
#define _cleanup_root_unlock_ _cleanup_(plugin_root_unlockp)

/* Declares `h`, the locked handle `h0` (unlocked at the end of the scope),
 * or returns -EINVAL (with `e`) when `h0` is NULL. */
#define PLUGIN_LOCK_OR_RETURN(h, h0, e)                                              \
        _cleanup_root_unlock_ struct loopsnap_root *h = plugin_root_lock((h0), (e)); \
        do {                                                                         \
                if (!(h))                                                            \
                        return -EINVAL;                                              \
        } while (0)

int plugin_root_open(const struct loopsnap_root_opts *opts, struct loopsnap_root **ret,
                     struct loopsnap_error *err);
void plugin_root_close(struct loopsnap_root *h);

/* ---- conversions and free functions (convert.c) ----------------------------- */

/* 2n label strings into a snap_label array (pointers into `kv`, not copies).
 * Returns 0 and *ret (free() it; NULL when n is 0) or -EINVAL/-ENOMEM. */
int plugin_labels_in(const char *const *kv, size_t n, struct snap_label **ret, struct util_err *e);

/* A plugin-owned copy of `i`. Returns 0 or -ENOMEM with `e`. */
int plugin_info_new(const struct snap_info *i, struct loopsnap_info **ret, struct util_err *e);
/* A borrowed view of `i` (strings point into it); *labels must be free()d.
 * Returns 0 or -ENOMEM with `e`. */
int plugin_info_view(const struct snap_info *i, struct loopsnap_info *ret, const char ***labels,
                     struct util_err *e);
void plugin_info_free(struct loopsnap_info *info);

/* A plugin-owned copy of `spec` with its JSON. Returns 0 or -errno with `e`. */
int plugin_mounts_new(const struct mount_spec *spec, struct loopsnap_mounts **ret,
                      struct util_err *e);
void plugin_mounts_free(struct loopsnap_mounts *m);

void plugin_loops_free(struct loopsnap_loops *l);
void plugin_features_free(struct loopsnap_features *f);
void plugin_string_free(char *s);

/* ---- operations (snapshot-ops.c, engine.c, features.c, layer.c) -------------- */

int plugin_op_prepare(struct loopsnap_root *h, const char *key, const char *parent,
                      const char *const *labels, size_t n_labels, struct loopsnap_mounts **ret,
                      struct loopsnap_error *err);
int plugin_op_view(struct loopsnap_root *h, const char *key, const char *parent,
                   const char *const *labels, size_t n_labels, struct loopsnap_mounts **ret,
                   struct loopsnap_error *err);
int plugin_op_mounts(struct loopsnap_root *h, const char *key, struct loopsnap_mounts **ret,
                     struct loopsnap_error *err);
int plugin_op_commit(struct loopsnap_root *h, const char *name, const char *key,
                     const char *const *labels, size_t n_labels, struct loopsnap_error *err);
int plugin_op_remove(struct loopsnap_root *h, const char *key, struct loopsnap_error *err);
int plugin_op_stat(struct loopsnap_root *h, const char *key, struct loopsnap_info **ret,
                   struct loopsnap_error *err);
int plugin_op_update(struct loopsnap_root *h, const char *name, const char *const *labels,
                     size_t n_labels, const char *const *fieldpaths, size_t n_fieldpaths,
                     struct loopsnap_info **ret, struct loopsnap_error *err);
int plugin_op_usage(struct loopsnap_root *h, const char *key, struct loopsnap_usage *ret,
                    struct loopsnap_error *err);
int plugin_op_walk(struct loopsnap_root *h, const char *const *filters, size_t n_filters,
                   loopsnap_walk_fn fn, void *data, struct loopsnap_error *err);
int plugin_op_cleanup(struct loopsnap_root *h, struct loopsnap_error *err);
int plugin_op_fsck(struct loopsnap_root *h, const struct loopsnap_fsck_opts *opts,
                   struct loopsnap_fsck_report *ret, struct loopsnap_error *err);

int plugin_op_mount_apply(struct loopsnap_root *h, const char *spec_json, const char *target,
                          const struct loopsnap_mount_opts *opts, struct loopsnap_error *err);
int plugin_op_unmount(struct loopsnap_root *h, const char *target, uint32_t flags,
                      struct loopsnap_error *err);
int plugin_op_loops_list(struct loopsnap_root *h, struct loopsnap_loops **ret,
                         struct loopsnap_error *err);

int plugin_op_features(struct loopsnap_root *h, uint32_t flags, struct loopsnap_features **ret,
                       struct loopsnap_error *err);

int plugin_op_apply_layer(struct loopsnap_root *h, const char *key,
                          const struct loopsnap_apply_opts *opts, struct loopsnap_error *err);
int plugin_op_import_oci(struct loopsnap_root *h, const struct loopsnap_import_opts *opts,
                         char **ret_chain_id, struct loopsnap_error *err);
