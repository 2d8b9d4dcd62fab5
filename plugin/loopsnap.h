/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * loopsnap.h — the loopsnap plugin ABI, major version 1 (docs/abi.md).
 *
 * libloopsnap.so.1 exports exactly one symbol, loopsnap_plugin_v1. A host
 * dlopen()s the library, looks the symbol up, and calls it with a
 * struct loopsnap_host saying which ABI it was built for; the plugin answers
 * with a pointer to a const table of operations (struct loopsnap_ops) that
 * stays valid until the library is unloaded. Everything else goes through
 * that table: containerd's snapshot operations on a root whose layers are
 * image files, the mount engine, loop-device listing, fsck and the feature
 * report for `snapctl doctor`.
 *
 * Rules every call follows:
 *   - Every struct that crosses the boundary starts with uint32_t
 *     struct_size. A host sets it to sizeof() of the struct it was built
 *     with; the plugin reads (and, for output structs the host provides,
 *     writes) only what that size covers. A size below the first version of
 *     a struct is refused (invalid-argument); a size above what the plugin
 *     knows is accepted only when the unknown tail is all zero bytes, so a
 *     newer host's option is never silently ignored. Structs the plugin
 *     allocates carry the plugin's own size: read a field only when
 *     struct_size covers it (LOOPSNAP_HAS_FIELD).
 *   - Arrays of records are arrays of pointers (each record has its own
 *     struct_size); labels are flat string arrays, key then value.
 *   - Every operation returns >= 0 on success or a negative errno, and fills
 *     *err (if not NULL) on failure with a kind, the errno and a message that
 *     names the key or file at fault. err is untouched on success. Output
 *     parameters are not written on failure.
 *   - Memory the plugin allocates is freed with the plugin's free functions
 *     in the table, never with the host's free().
 *   - A root handle may be used from several threads: the plugin serialises
 *     the calls on one handle with a mutex. Several handles (and processes)
 *     may use one root directory at once. Never close a handle while another
 *     thread uses it, nor from inside a callback.
 *   - The plugin keeps no global mutable state of its own, installs no signal
 *     handlers, never calls exit(), and opens every descriptor O_CLOEXEC.
 *     Helpers it runs (mkfs, mount.fuse3, the user-namespace helper) are
 *     reaped before the call returns; a FUSE filesystem's daemon, started by
 *     its helper, lives on as the server of that mount.
 *
 * This header is self-contained: it includes only <stddef.h> and <stdint.h>.
 */
#ifndef LOOPSNAP_H
#define LOOPSNAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOOPSNAP_ABI_MAJOR 1
/* Raised when the table gains operations or a struct gains fields. */
#define LOOPSNAP_ABI_MINOR 1

/* The entry symbol and the file a host loads. */
#define LOOPSNAP_ENTRY_SYMBOL "loopsnap_plugin_v1"
#define LOOPSNAP_SONAME       "libloopsnap.so.1"

/* Whether a struct the plugin filled covers `field` (a host built against a
 * newer header reading an older plugin's struct). */
#define LOOPSNAP_HAS_FIELD(ptr, field) \
        ((ptr)->struct_size >=         \
         (uint32_t)((const char *)&(ptr)->field - (const char *)(ptr) + sizeof((ptr)->field)))

/* ---- errors --------------------------------------------------------------- */

/* containerd's error kinds (errdefs), from the errno of a failure:
 *   ENOENT                      not-found
 *   EEXIST                      already-exists
 *   EBUSY                       failed-precondition (children exist, committed
 *                               key has no mounts, image still mounted...)
 *   EINVAL E2BIG ERANGE         invalid-argument
 *   ENAMETOOLONG
 *   EAGAIN                      unavailable (database locked past the timeout)
 *   EOPNOTSUPP ENOSYS           not-supported (a capability not built in,
 *   EPROTONOSUPPORT             another ABI major)
 *   anything else               internal */
enum loopsnap_err_kind {
        LOOPSNAP_ERR_NONE = 0,
        LOOPSNAP_ERR_NOT_FOUND = 1,
        LOOPSNAP_ERR_ALREADY_EXISTS = 2,
        LOOPSNAP_ERR_FAILED_PRECONDITION = 3,
        LOOPSNAP_ERR_INVALID_ARGUMENT = 4,
        LOOPSNAP_ERR_UNAVAILABLE = 5,
        LOOPSNAP_ERR_INTERNAL = 6,
        LOOPSNAP_ERR_NOT_SUPPORTED = 7,
};

#define LOOPSNAP_ERROR_MESSAGE_MAX 512

/* Owned by the host (no memory to free). A call given an err whose
 * struct_size is smaller than this struct is refused with -EINVAL and
 * cannot say why: always set struct_size = sizeof(struct loopsnap_error). */
struct loopsnap_error {
        uint32_t struct_size;
        int32_t kind;                             /* enum loopsnap_err_kind */
        int32_t errnum;                           /* positive errno */
        char message[LOOPSNAP_ERROR_MESSAGE_MAX]; /* NUL-terminated, outermost context first */
};

/* ---- entry ---------------------------------------------------------------- */

/* What the host passes to the entry point. */
struct loopsnap_host {
        uint32_t struct_size;
        uint32_t abi_major; /* LOOPSNAP_ABI_MAJOR the host was built with: must match */
        uint32_t abi_minor; /* LOOPSNAP_ABI_MINOR the host was built with */
        uint32_t flags;     /* none defined: 0 */
};

struct loopsnap_ops;

/*
 * loopsnap_plugin_v1: check the host's ABI version and return the table.
 * Refused: a host struct smaller than version 1 (invalid-argument, EINVAL),
 * another major version (not-supported, EPROTONOSUPPORT), flags it does not
 * know (invalid-argument). A host built with a newer minor version gets the
 * table all the same: it must check ops->abi_minor / ops->struct_size before
 * calling an operation newer than what the plugin reports.
 * Returns 0 and *ret_ops, or -errno with *err.
 */
typedef int (*loopsnap_plugin_v1_fn)(const struct loopsnap_host *host,
                                     const struct loopsnap_ops **ret_ops,
                                     struct loopsnap_error *err);
int loopsnap_plugin_v1(const struct loopsnap_host *host, const struct loopsnap_ops **ret_ops,
                       struct loopsnap_error *err);

/* ---- roots ---------------------------------------------------------------- */

/* An open snapshotter root. Opaque. */
struct loopsnap_root;

enum loopsnap_log_level {
        LOOPSNAP_LOG_ERROR = 3,
        LOOPSNAP_LOG_WARNING = 4,
        LOOPSNAP_LOG_INFO = 6,
        LOOPSNAP_LOG_DEBUG = 7,
};

/* Called with one line of text (no newline) per event; the host decides
 * whether and where to show it. Called on the thread making the call, with
 * the handle's mutex held: it must not call back into the plugin. */
typedef void (*loopsnap_log_fn)(void *log_data, int level, const char *message);

enum loopsnap_root_flags {
        /* The writable upper as a plain directory instead of an image. */
        LOOPSNAP_ROOT_UPPER_DIR = 1u << 0,
        /* The writable pool: keep up to 4 emptied writable images of removed
         * active snapshots attached and mounted for the next prepares
         * (faster container starts and stops; docs/snapshot.md). On by
         * default since 1.1 (this flag asks for it explicitly, as 1.0 had
         * to). Per open, not recorded; ignored by the block layout and
         * UPPER_DIR roots. */
        LOOPSNAP_ROOT_WRITABLE_POOL = 1u << 1,
        /* No writable pool: every removed active snapshot's image is
         * unmounted, detached and deleted at once. Invalid with
         * LOOPSNAP_ROOT_WRITABLE_POOL. */
        LOOPSNAP_ROOT_NO_WRITABLE_POOL = 1u << 2,
};

/* Settings are fixed when a root is created (recorded in its config.json);
 * opening an existing root with different explicit settings is refused
 * (invalid-argument naming the setting). NULL/0 = keep or default. */
struct loopsnap_root_opts {
        uint32_t struct_size;
        uint32_t flags;               /* enum loopsnap_root_flags */
        const char *path;             /* NULL: /var/lib/loopsnap */
        const char *layout;           /* NULL or "overlay"; "block" (one image per snapshot) */
        const char *writable_fs;      /* NULL: "ext4"; "xfs" */
        uint64_t writable_size;       /* bytes; 0: 10 GiB */
        const char *committed_format; /* NULL: "ext4"; "erofs" */
        loopsnap_log_fn log;          /* may be NULL */
        void *log_data;
};

/* ---- snapshots ------------------------------------------------------------ */

enum loopsnap_kind {
        LOOPSNAP_KIND_UNKNOWN = 0,
        LOOPSNAP_KIND_VIEW = 1,
        LOOPSNAP_KIND_ACTIVE = 2,
        LOOPSNAP_KIND_COMMITTED = 3,
};

/* One snapshot (plugin-owned: from stat/update, freed with info_free; or
 * passed to a walk callback, valid during the callback only). */
struct loopsnap_info {
        uint32_t struct_size;
        int32_t kind; /* enum loopsnap_kind */
        int64_t id;   /* small integer, never reused */
        const char *name;
        const char *parent;        /* NULL: no parent */
        const char *const *labels; /* 2 * n_labels strings: key, value, ... (sorted by key) */
        size_t n_labels;
        int64_t created_ns; /* CLOCK_REALTIME */
        int64_t updated_ns;
        uint64_t size;   /* committed: bytes recorded at commit; else 0 */
        uint64_t inodes; /* committed: inodes recorded at commit; else 0 */
};

/* One mount of a spec (containerd's Mount). */
struct loopsnap_mount {
        uint32_t struct_size;
        uint32_t n_options;
        const char *type;
        const char *source;
        const char *target; /* NULL: the spec's target itself */
        const char *const *options;
};

/* A mount spec, as records and as JSON (plugin-owned, mounts_free). */
struct loopsnap_mounts {
        uint32_t struct_size;
        uint32_t n;
        const struct loopsnap_mount *const *mounts;
        /* The same spec as containerd-compatible JSON: an array of
         * {"type","source","target","options"}, what mount_apply takes. */
        const char *json;
};

/* Host-provided output of usage. */
struct loopsnap_usage {
        uint32_t struct_size;
        uint32_t reserved; /* 0 */
        uint64_t size;     /* bytes */
        uint64_t inodes;
};

/* Walk callback: 0 continues, > 0 stops the walk (walk returns 0), < 0
 * (a negative errno) stops it and walk returns that value with *err saying
 * the callback stopped it. stat and usage on the same handle work inside it. */
typedef int (*loopsnap_walk_fn)(void *data, const struct loopsnap_info *info);

/* ---- fsck ------------------------------------------------------------------- */

enum loopsnap_fsck_flags {
        LOOPSNAP_FSCK_REPAIR = 1u << 0,
};

struct loopsnap_fsck_opts {
        uint32_t struct_size;
        uint32_t flags; /* enum loopsnap_fsck_flags */
        /* One line per problem or repair; may be NULL. Same rules as log. */
        void (*report)(void *data, const char *line);
        void *report_data;
};

/* Host-provided output of fsck: problems found, by kind. */
struct loopsnap_fsck_report {
        uint32_t struct_size;
        uint32_t problems;           /* sum of the counts below */
        uint32_t fixed;              /* repairs made (LOOPSNAP_FSCK_REPAIR) */
        uint32_t orphan_dirs;        /* snapshots/<id> without a row */
        uint32_t tmp_leftovers;      /* tmp/new-* */
        uint32_t trash_leftovers;    /* trash/ entries */
        uint32_t template_leftovers; /* templates/new-* */
        uint32_t rows_without_files; /* a row whose image or directory is missing */
        uint32_t bad_images;         /* superblock check failed */
        uint32_t leaked_loops;       /* this root's loop devices nothing should hold */
        uint32_t leaked_mounts;      /* leftover temporary mounts / activations under the root */
        uint32_t stale_files;        /* a converting commit's leftover part (erofs, upper_dir) */
};

/* ---- the mount engine ------------------------------------------------------ */

struct loopsnap_mount_opts {
        uint32_t struct_size;
        uint32_t flags; /* none defined: 0 */
        /* The id part of the tags of loop devices attached for the spec
         * ("loopsnap:<root>:<loop_id>"; [A-Za-z0-9._:-]+); NULL: "spec". */
        const char *loop_id;
};

enum loopsnap_unmount_flags {
        /* Peel every mount stacked on the target, not just the top one. */
        LOOPSNAP_UNMOUNT_ALL = 1u << 0,
};

enum loopsnap_loop_flags {
        LOOPSNAP_LOOP_READ_ONLY = 1u << 0,
        LOOPSNAP_LOOP_AUTOCLEAR = 1u << 1,
        LOOPSNAP_LOOP_DIRECT_IO = 1u << 2,
};

/* A bound loop device carrying a loopsnap tag. */
struct loopsnap_loop {
        uint32_t struct_size;
        int32_t nr;        /* N of /dev/loopN */
        uint32_t flags;    /* enum loopsnap_loop_flags */
        uint32_t reserved; /* 0 */
        const char *path;  /* "/dev/loopN" */
        const char *tag;   /* "loopsnap:<owner>:<id>" */
        const char *owner; /* the tag's owner (a root's, or another user's) */
        const char *id;    /* the tag's id */
        const char *backing_file;
        uint64_t offset;
        uint64_t size_limit; /* 0: to the end of the file */
};

/* Plugin-owned list (loops_free). */
struct loopsnap_loops {
        uint32_t struct_size;
        uint32_t n;
        const struct loopsnap_loop *const *loops;
};

/* ---- features (`snapctl doctor`) --------------------------------------------- */

enum loopsnap_features_flags {
        /* Find out what is not known yet by trying it: attach a 1 MiB
         * temporary file to a loop device (LOOP_CONFIGURE or its fallback),
         * create a user namespace. Without it, undecided answers are -1. */
        LOOPSNAP_FEATURES_PROBE = 1u << 0,
};

/* Plugin-owned (features_free). Tri-states: 1 yes, 0 no, -1 not known. */
struct loopsnap_features {
        uint32_t struct_size;
        uint32_t reserved;             /* 0 */
        const char *version;           /* the library's version */
        const char *overlay_api;       /* the kernel's best: "fd", "lowerdir+", "legacy" */
        const char *overlay_api_used;  /* what the engine uses (LOOPSNAP_MOUNT_API may force) */
        int32_t overlay_fd;            /* overlay layers as fds (fsconfig lowerdir+ FD) */
        int32_t overlay_lowerdir_plus; /* lowerdir+ strings */
        int32_t loop_configure;        /* LOOP_CONFIGURE (else LOOP_SET_FD + SET_STATUS64) */
        int32_t idmapped_mounts;       /* mount_setattr(MOUNT_ATTR_IDMAP) */
        int32_t user_namespaces;       /* a user namespace could be created */
        int32_t fs_overlay;            /* listed in /proc/filesystems (a module may load later) */
        int32_t fs_ext4;
        int32_t fs_xfs;
        int32_t fs_erofs;
        int32_t fs_fuse;
        /* Tools, found where loopsnap looks (/usr/sbin /sbin /usr/bin /bin);
         * NULL: not found. */
        const char *mkfs_ext4;
        const char *mkfs_xfs;
        const char *mkfs_erofs;
        const char *mount_fuse3;
};

/* ---- layers (apply_layer, import_oci) ------------------------------------------ */

/* Progress of a long operation, passed to a loopsnap_progress_fn. */
struct loopsnap_progress {
        uint32_t struct_size;
        uint32_t step;     /* 1-based: the layer being worked on */
        uint32_t n_steps;  /* layers in all; 0: not known */
        uint32_t reserved; /* 0 */
        uint64_t done;     /* bytes of input read so far in this step */
        uint64_t total;    /* bytes of input in this step; 0: not known */
        const char *what;  /* the input being read (file or digest) */
};

/* Called from the thread making the call, at most a few times per second and
 * once at the end of each step. Must not call back into the plugin. */
typedef void (*loopsnap_progress_fn)(void *data, const struct loopsnap_progress *p);

struct loopsnap_apply_opts {
        uint32_t struct_size;
        uint32_t flags;                /* none defined: 0 */
        const char *tar_path;          /* a layer tarball: .tar, .tar.gz, .tar.zst */
        loopsnap_progress_fn progress; /* may be NULL */
        void *progress_data;
};

struct loopsnap_import_opts {
        uint32_t struct_size;
        uint32_t flags;                /* none defined: 0 */
        const char *layout_dir;        /* an OCI image layout directory */
        const char *ref;               /* org.opencontainers.image.ref.name; NULL: the only image */
        loopsnap_progress_fn progress; /* may be NULL */
        void *progress_data;
};

/* ---- the table ---------------------------------------------------------------- */

/*
 * Every operation returns >= 0 on success, -errno on failure with *err
 * filled (err may be NULL). Keys, names, labels, filters and specs are
 * untrusted input, checked before anything is touched. Operations are
 * appended at the end in later minor versions, never reordered.
 */
struct loopsnap_ops {
        uint32_t struct_size;
        uint32_t abi_major;
        uint32_t abi_minor;
        uint32_t reserved0;
        const char *version; /* the library's version string */

        /* Opens (creating mode 0700) the root. *ret is freed by root_close. */
        int (*root_open)(const struct loopsnap_root_opts *opts, struct loopsnap_root **ret,
                         struct loopsnap_error *err);
        /* Closes a handle; NULL is fine. */
        void (*root_close)(struct loopsnap_root *root);

        /* A new active (prepare) or view snapshot `key` on committed `parent`
         * (NULL or "": none) with `labels` (2 * n_labels strings). Its spec in
         * *ret_mounts when not NULL. already-exists, not-found (parent),
         * invalid-argument (parent not committed, bad key/label). */
        int (*prepare)(struct loopsnap_root *root, const char *key, const char *parent,
                       const char *const *labels, size_t n_labels,
                       struct loopsnap_mounts **ret_mounts, struct loopsnap_error *err);
        int (*view)(struct loopsnap_root *root, const char *key, const char *parent,
                    const char *const *labels, size_t n_labels, struct loopsnap_mounts **ret_mounts,
                    struct loopsnap_error *err);
        /* The spec of an active or view snapshot (failed-precondition for a
         * committed one). The same key always yields the same spec. */
        int (*mounts)(struct loopsnap_root *root, const char *key, struct loopsnap_mounts **ret,
                      struct loopsnap_error *err);
        /* Commits active `key` as `name`, labels replaced by `labels`.
         * failed-precondition while it is mounted or when it is a view. */
        int (*commit)(struct loopsnap_root *root, const char *name, const char *key,
                      const char *const *labels, size_t n_labels, struct loopsnap_error *err);
        /* failed-precondition while it has children. */
        int (*remove)(struct loopsnap_root *root, const char *key, struct loopsnap_error *err);
        int (*stat)(struct loopsnap_root *root, const char *key, struct loopsnap_info **ret,
                    struct loopsnap_error *err);
        /* Labels only. fieldpaths NULL/empty or "labels": replace all labels;
         * "labels.<k>": set <k> from `labels`, or delete it when absent. */
        int (*update)(struct loopsnap_root *root, const char *name, const char *const *labels,
                      size_t n_labels, const char *const *fieldpaths, size_t n_fieldpaths,
                      struct loopsnap_info **ret, struct loopsnap_error *err);
        int (*usage)(struct loopsnap_root *root, const char *key, struct loopsnap_usage *ret,
                     struct loopsnap_error *err);
        /* containerd filters: within one filter "," is AND, several filters
         * are ORed ("kind==committed", "labels.\"a/b\"==x", "name~=^sha"). */
        int (*walk)(struct loopsnap_root *root, const char *const *filters, size_t n_filters,
                    loopsnap_walk_fn fn, void *data, struct loopsnap_error *err);
        /* Removes crash leftovers; returns how many. */
        int (*cleanup)(struct loopsnap_root *root, struct loopsnap_error *err);
        /* Reconciles metadata, files, loop devices and mounts (problems are
         * not errors: they are counted in *ret, which may be NULL). */
        int (*fsck)(struct loopsnap_root *root, const struct loopsnap_fsck_opts *opts,
                    struct loopsnap_fsck_report *ret, struct loopsnap_error *err);

        /* Applies a spec (JSON, as in loopsnap_mounts.json) with the bundled
         * engine onto the directory `target`; returns 0. With target NULL the
         * spec must end in exactly one final mount, returned as a detached
         * mount fd (O_CLOEXEC, the host closes it) as the return value.
         * Nothing stays mounted or attached on failure. opts may be NULL. */
        int (*mount_apply)(struct loopsnap_root *root, const char *spec_json, const char *target,
                           const struct loopsnap_mount_opts *opts, struct loopsnap_error *err);
        /* Unmounts `target` (retrying EBUSY a few times); returns how many
         * mounts went. invalid-argument when it is not a mountpoint. root may
         * be NULL. */
        int (*unmount)(struct loopsnap_root *root, const char *target, uint32_t flags,
                       struct loopsnap_error *err);
        /* Loop devices tagged by this root (root NULL: by any loopsnap user). */
        int (*loops_list)(struct loopsnap_root *root, struct loopsnap_loops **ret,
                          struct loopsnap_error *err);
        /* What the kernel and the system offer. root may be NULL (the probe
         * file then goes to /var/tmp). flags: enum loopsnap_features_flags. */
        int (*features)(struct loopsnap_root *root, uint32_t flags, struct loopsnap_features **ret,
                        struct loopsnap_error *err);

        /* Applies a layer tarball to active snapshot `key` (unpacked in a
         * sandboxed child; whiteouts become overlay whiteouts). */
        int (*apply_layer)(struct loopsnap_root *root, const char *key,
                           const struct loopsnap_apply_opts *opts, struct loopsnap_error *err);
        /* Imports an image from an OCI layout: one committed snapshot per
         * layer, named by chain id; *ret_chain_id (string_free) is the top. */
        int (*import_oci)(struct loopsnap_root *root, const struct loopsnap_import_opts *opts,
                          char **ret_chain_id, struct loopsnap_error *err);

        /* Free functions for plugin-owned memory; NULL is fine. */
        void (*info_free)(struct loopsnap_info *info);
        void (*mounts_free)(struct loopsnap_mounts *mounts);
        void (*loops_free)(struct loopsnap_loops *loops);
        void (*features_free)(struct loopsnap_features *features);
        void (*string_free)(char *s);

        /* Room for operations of later minor versions (NULL until then). */
        void (*reserved[16])(void);
};

#ifdef __cplusplus
}
#endif

#endif /* LOOPSNAP_H */
