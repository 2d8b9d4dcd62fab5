/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * snapshot/store.h — the metadata store: SQLite, the only source of truth of
 * a snapshotter root (DESIGN §3–§5), with containerd's snapshot semantics
 * (research/anchors.md §1). Pure metadata: no files, no mounts. The
 * operations layer (a later part of snapshot/) pairs each store transaction
 * with its filesystem steps.
 *
 * Model: snapshots have a small integer id (never reused; it names the
 * on-disk files — keys never become paths), a kind (view/active/committed),
 * a name (the key of an active/view, the name of a committed one; all share
 * one key space), an optional parent (always committed), labels, created and
 * updated times, and for committed ones the size and inode count recorded at
 * commit. Commit keeps the id.
 *
 * Errors (errno → containerd error kind, used by every snapshot/ function):
 *   ENOENT  not-found            EEXIST  already-exists
 *   EINVAL  invalid-argument     EBUSY   failed-precondition
 *   EAGAIN  unavailable (database locked past the busy timeout)
 *   other   internal
 * Every message names the key (and the database file where it matters).
 *
 * Concurrency: many processes may open one database (one hook process per
 * container start). WAL, foreign keys on, a busy timeout, and BEGIN IMMEDIATE
 * for writers. A store handle is used by one thread at a time.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* The schema version this code writes; older databases are migrated on
 * open, newer ones are refused (EINVAL, "created by a newer loopsnap"). */
#define SNAP_STORE_SCHEMA_VERSION 1

/* Limits for untrusted keys and labels (containerd: key+value <= 4096). */
#define SNAP_KEY_MAX          1024u
#define SNAP_LABEL_MAX        4096u /* key + value bytes */
#define SNAP_LABELS_MAX_COUNT 256u

enum snap_kind {
        SNAP_KIND_UNKNOWN = 0,
        SNAP_KIND_VIEW,
        SNAP_KIND_ACTIVE,
        SNAP_KIND_COMMITTED,
};

/* "view", "active", "committed" ("unknown"). */
const char *snap_kind_name(enum snap_kind k);
/* Case-insensitive parse; SNAP_KIND_UNKNOWN for anything else. */
enum snap_kind snap_kind_parse(const char *s);

struct snap_label {
        char *key;
        char *value;
};

struct snap_info {
        int64_t id;
        enum snap_kind kind;
        char *name;
        char *parent;              /* NULL: no parent */
        int64_t parent_id;         /* 0: no parent */
        struct snap_label *labels; /* sorted by key */
        size_t n_labels;
        int64_t created_ns; /* CLOCK_REALTIME */
        int64_t updated_ns;
        uint64_t size;   /* committed: bytes recorded at commit; else 0 */
        uint64_t inodes; /* committed: inodes recorded at commit; else 0 */
};

/* Frees the members (not the struct) and zeroes it; NULL is fine. */
void snap_info_done(struct snap_info *i);
/* The value of label `key` of `i`, or NULL when it has none. */
const char *snap_info_label(const struct snap_info *i, const char *key);
/* Frees an array of `n` infos (snap_store_list); NULL is fine. */
void snap_info_list_free(struct snap_info *list, size_t n);

/*
 * Validation of untrusted input (also done by every store call):
 * keys: 1..SNAP_KEY_MAX bytes of valid UTF-8 without control characters;
 * labels: key non-empty, key+value <= SNAP_LABEL_MAX, valid UTF-8 without
 * control characters (a label value may end up in a mount option), at most
 * SNAP_LABELS_MAX_COUNT, no key twice, value not NULL.
 * Control characters are C0, DEL and C1 (U+0080..U+009F).
 * Returns 0 or -EINVAL with `err` naming the key or label.
 */
int snap_key_check(const char *key, struct util_err *err);
int snap_labels_check(const struct snap_label *labels, size_t n, struct util_err *err);

struct snap_store;

/*
 * snap_store_open: open (creating if needed, mode 0600) the database at
 * `path`: WAL, synchronous=FULL, foreign_keys=ON, busy timeout 10 s, schema
 * created or migrated to SNAP_STORE_SCHEMA_VERSION.
 * Returns 0 and a handle, or -errno with `err` naming the file.
 */
int snap_store_open(const char *path, struct snap_store **ret, struct util_err *err);
/* Closes the handle (rolls back an open transaction); NULL is fine. */
struct snap_store *snap_store_close(struct snap_store *s);
UTIL_DEFINE_FREE_FUNC(struct snap_store, snap_store_close)

/*
 * Transactions: every call below runs inside one when one is open, or in
 * its own otherwise (reads: a read transaction; writes: BEGIN IMMEDIATE).
 * snap_store_begin(write=true) takes the write lock at once (BEGIN
 * IMMEDIATE), so a multi-step operation never fails half-way with SQLITE_BUSY.
 * Nesting is an error (EBUSY); so is a write call inside a read transaction
 * (EBUSY: begin with write=true). Inside the caller's write transaction a
 * failed call is undone (a savepoint), the transaction stays usable.
 * snap_store_commit with no transaction open is EINVAL; the transaction is
 * closed after snap_store_commit whether it succeeded or not.
 */
int snap_store_begin(struct snap_store *s, bool write, struct util_err *err);
/*
 * A write transaction whose commit is not synced (PRAGMA synchronous =
 * NORMAL in WAL mode): atomic and safe against any process crash, but a
 * power loss may roll it back. For changes whose loss fsck turns into
 * leftovers it removes: creating and removing active snapshots and views.
 * Every other write transaction is synced, and syncing the WAL makes every
 * earlier relaxed commit durable too (the log is written in order).
 */
int snap_store_begin_relaxed(struct snap_store *s, struct util_err *err);
int snap_store_commit(struct snap_store *s, struct util_err *err);
/* Rolls back; safe to call when no transaction is open. */
void snap_store_rollback(struct snap_store *s);

/*
 * snap_store_create: a new view or active snapshot `key` on `parent`
 * (NULL or "" = none). EEXIST if the key is taken (by any kind); ENOENT if
 * the parent does not exist; EINVAL if the parent is not committed or kind
 * is not view/active. Returns 0 and the new row in *ret (may be NULL).
 */
int snap_store_create(struct snap_store *s, enum snap_kind kind, const char *key,
                      const char *parent, const struct snap_label *labels, size_t n_labels,
                      struct snap_info *ret, struct util_err *err);

/* snap_store_get / _get_id: one snapshot by name or id. ENOENT if none. */
int snap_store_get(struct snap_store *s, const char *name, struct snap_info *ret,
                   struct util_err *err);
int snap_store_get_id(struct snap_store *s, int64_t id, struct snap_info *ret,
                      struct util_err *err);

/*
 * snap_store_commit_active: turn active `key` into committed `name` keeping
 * its id and parent; its labels are replaced by `labels`; size/inodes are
 * recorded. ENOENT (no key), EEXIST (name taken), EBUSY (key is not active).
 * Returns 0 and the committed row in *ret (may be NULL).
 */
int snap_store_commit_active(struct snap_store *s, const char *name, const char *key,
                             const struct snap_label *labels, size_t n_labels, uint64_t size,
                             uint64_t inodes, struct snap_info *ret, struct util_err *err);

/*
 * snap_store_remove: delete `key`. ENOENT if missing; EBUSY if it has
 * children (naming one). Returns 0 and the removed row (for its id and kind)
 * in *ret (may be NULL).
 */
int snap_store_remove(struct snap_store *s, const char *key, struct snap_info *ret,
                      struct util_err *err);

/*
 * snap_store_update: labels only. `fieldpaths` NULL/empty: replace all
 * labels; else each entry is "labels" (replace all) or "labels.<k>" (set <k>
 * from `labels`, or delete it when `labels` has no <k>). Any other field path
 * is EINVAL. Bumps updated. Returns 0 and the new row in *ret (may be NULL).
 */
int snap_store_update(struct snap_store *s, const char *name, const struct snap_label *labels,
                      size_t n_labels, const char *const *fieldpaths, size_t n_fieldpaths,
                      struct snap_info *ret, struct util_err *err);

/*
 * snap_store_parents: the ids of the parent chain of `id`, nearest parent
 * first (not including `id`). Returns 0 and a malloc'ed array (may be empty,
 * *ret NULL when n is 0).
 */
int snap_store_parents(struct snap_store *s, int64_t id, int64_t **ret, size_t *ret_n,
                       struct util_err *err);

/* Every live id, ascending (for fsck / cleanup to find orphans). */
int snap_store_ids(struct snap_store *s, int64_t **ret, size_t *ret_n, struct util_err *err);

/*
 * snap_store_list: every snapshot with its labels, in id order, read in one
 * (read) transaction; what Walk and fsck iterate over. Returns 0 and a
 * malloc'ed array in *ret (NULL when *ret_n is 0); free it with
 * snap_info_list_free.
 */
int snap_store_list(struct snap_store *s, struct snap_info **ret, size_t *ret_n,
                    struct util_err *err);

/* ---- Walk and its filters (containerd's pkg/filters syntax) ----------- */

/*
 * A filter is a list of ","-joined (AND) selectors; several filters are
 * ORed. A selector is a field path, optionally an operator and a value:
 *   kind==committed   parent!=base   name~=^sha256:   labels."a.b/c"==x
 *   labels.foo        (presence)
 * Fields: name, parent, kind, labels.<key>. Values may be quoted ("..."
 * with \" and \\ escapes) or bare (up to the next ',' or blank, as in
 * containerd); paths may quote segments. ~= is a POSIX extended regex
 * (regcomp REG_EXTENDED|REG_NOSUB; also quoted /.../ or |...|).
 * docs/store.md has the full grammar and the matching rules.
 */
struct snap_filter;

/* Parses the filters (n may be 0: match everything). EINVAL with `err`
 * naming the filter index and the offset of the problem. */
int snap_filter_parse(const char *const *filters, size_t n, struct snap_filter **ret,
                      struct util_err *err);
struct snap_filter *snap_filter_free(struct snap_filter *f);
UTIL_DEFINE_FREE_FUNC(struct snap_filter, snap_filter_free)
bool snap_filter_match(const struct snap_filter *f, const struct snap_info *i);

/*
 * snap_store_walk: call fn for every snapshot matching `f` (NULL = all), in
 * id order. fn may call snap_store_get / _get_id on the same store (Stat
 * inside Walk); the rows are read before the first callback, so no read
 * cursor is open while fn runs. A negative return from fn stops the walk and
 * is returned (fn fills err).
 */
typedef int (*snap_walk_fn)(const struct snap_info *i, void *data, struct util_err *err);
int snap_store_walk(struct snap_store *s, const struct snap_filter *f, snap_walk_fn fn, void *data,
                    struct util_err *err);

/* "PRAGMA integrity_check" and "PRAGMA foreign_key_check": 0 when both are
 * clean, -EIO with the first problem in `err` otherwise. Only the tests call
 * it (test/unit/store.c; test/priv/crash.c after its fault-point, bad-image
 * and concurrency cases); fsck does not. */
int snap_store_integrity_check(struct snap_store *s, struct util_err *err);
