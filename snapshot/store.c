/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The metadata store: one SQLite database per snapshotter root, the only
 * source of truth (DESIGN §3). This file owns the schema and its migrations,
 * the transaction discipline (every call in its own transaction, or inside
 * the caller's), the mapping of SQLite results to the errno kinds of
 * store.h, and containerd's snapshot semantics (research/anchors.md §1.2):
 * one key space for all kinds, committed-only parents, commit keeping the id,
 * remove refused while children exist, update of labels only.
 *
 * Every rule is checked explicitly inside the transaction before anything is
 * written, so errors carry a precise message; the schema's constraints
 * (UNIQUE name, foreign keys) are the safety net behind those checks. All SQL
 * is constant text with bound parameters; statements are prepared once per
 * handle and cached.
 */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "snapshot/store.h"

/* "LSNP": marks a database as ours, so a foreign SQLite file is refused. */
#define STORE_APPLICATION_ID  0x4c534e50
#define STORE_BUSY_MS_DEFAULT 10000
/* A commit that finds the WAL longer than this (pages of 4 KiB) checkpoints
 * it and restarts it (wal_hook): the bound for a long-lived connection. */
#define STORE_WAL_CHECKPOINT_PAGES 256
/* A connection that committed and leaves at least this many pages in the
 * WAL checkpoints it when it closes: what the next first opener replays. */
#define STORE_WAL_CLOSE_PAGES 32

/* ---- kinds, info --------------------------------------------------------- */

const char *snap_kind_name(enum snap_kind k)
{
        switch (k) {
        case SNAP_KIND_VIEW:
                return "view";
        case SNAP_KIND_ACTIVE:
                return "active";
        case SNAP_KIND_COMMITTED:
                return "committed";
        default:
                return "unknown";
        }
}

enum snap_kind snap_kind_parse(const char *s)
{
        if (!s)
                return SNAP_KIND_UNKNOWN;
        for (enum snap_kind k = SNAP_KIND_VIEW; k <= SNAP_KIND_COMMITTED; k++)
                if (strcasecmp(s, snap_kind_name(k)) == 0)
                        return k;
        return SNAP_KIND_UNKNOWN;
}

const char *snap_info_label(const struct snap_info *i, const char *key)
{
        for (size_t k = 0; k < i->n_labels; k++)
                if (strcmp(i->labels[k].key, key) == 0)
                        return i->labels[k].value;
        return NULL;
}

void snap_info_done(struct snap_info *i)
{
        if (!i)
                return;
        free(i->name);
        free(i->parent);
        for (size_t n = 0; n < i->n_labels; n++) {
                free(i->labels[n].key);
                free(i->labels[n].value);
        }
        free(i->labels);
        *i = (struct snap_info){0};
}

void snap_info_list_free(struct snap_info *list, size_t n)
{
        if (!list)
                return;
        for (size_t i = 0; i < n; i++)
                snap_info_done(&list[i]);
        free(list);
}

/* ---- validation of untrusted text ----------------------------------------- */

enum text_problem {
        TEXT_OK = 0,
        TEXT_BAD_UTF8,
        TEXT_CONTROL,
};

/*
 * Checks `len` bytes of `s`: valid UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF) without control characters (C0, DEL and C1:
 * a key or label may end up in a mount option, a log line or a terminal).
 * On a problem, *ret_off is its byte offset and *ret_cp the control
 * character's code point.
 */
static enum text_problem text_check(const char *s, size_t len, size_t *ret_off, uint32_t *ret_cp)
{
        const unsigned char *p = (const unsigned char *)s;

        for (size_t i = 0; i < len;) {
                uint32_t cp;
                size_t n;
                unsigned char c = p[i];

                if (c < 0x80) {
                        cp = c;
                        n = 1;
                } else if (c >= 0xc2 && c <= 0xdf) {
                        cp = c & 0x1f;
                        n = 2;
                } else if (c >= 0xe0 && c <= 0xef) {
                        cp = c & 0x0f;
                        n = 3;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        cp = c & 0x07;
                        n = 4;
                } else {
                        *ret_off = i;
                        return TEXT_BAD_UTF8;
                }
                if (i + n > len) {
                        *ret_off = i;
                        return TEXT_BAD_UTF8;
                }
                for (size_t k = 1; k < n; k++) {
                        if ((p[i + k] & 0xc0) != 0x80) {
                                *ret_off = i;
                                return TEXT_BAD_UTF8;
                        }
                        cp = (cp << 6) | (p[i + k] & 0x3f);
                }
                /* Overlong 3- and 4-byte forms, surrogates, beyond U+10FFFF
                 * (2-byte overlongs are excluded by the 0xc2 lower bound). */
                if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff)) {
                        *ret_off = i;
                        return TEXT_BAD_UTF8;
                }
                if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
                        *ret_off = i;
                        *ret_cp = cp;
                        return TEXT_CONTROL;
                }
                i += n;
        }
        return TEXT_OK;
}

#define PREVIEW_MAX  32
#define PREVIEW_SIZE (PREVIEW_MAX * 4 + 4)

/* A printable excerpt of untrusted `s` for an error message: its first
 * PREVIEW_MAX bytes, anything but printable ASCII as \xNN, "..." when cut. */
static const char *preview(const char *s, char buf[static PREVIEW_SIZE])
{
        size_t i = 0, o = 0;

        for (; i < PREVIEW_MAX && s[i]; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x20 && c < 0x7f)
                        buf[o++] = (char)c;
                else
                        o += (size_t)snprintf(buf + o, 5, "\\x%02x", c);
        }
        if (s[i]) {
                memcpy(buf + o, "...", 3);
                o += 3;
        }
        buf[o] = '\0';
        return buf;
}

static int text_report(const char *what, const char *name, const char *where, enum text_problem p,
                       size_t off, uint32_t cp, struct util_err *err)
{
        char pv[PREVIEW_SIZE];

        if (p == TEXT_BAD_UTF8)
                return util_err_setx(err, EINVAL, "%s '%s': invalid UTF-8%s at byte %zu", what,
                                     preview(name, pv), where, off);
        if (cp < 0x80)
                return util_err_setx(err, EINVAL, "%s '%s': control character 0x%02x%s at byte %zu",
                                     what, preview(name, pv), (unsigned)cp, where, off);
        return util_err_setx(err, EINVAL, "%s '%s': control character U+%04X%s at byte %zu", what,
                             preview(name, pv), (unsigned)cp, where, off);
}

int snap_key_check(const char *key, struct util_err *err)
{
        char pv[PREVIEW_SIZE];
        size_t len, off = 0;
        uint32_t cp = 0;
        enum text_problem p;

        if (!key || !*key)
                return util_err_setx(err, EINVAL, "key is empty");
        len = strnlen(key, SNAP_KEY_MAX + 1);
        if (len > SNAP_KEY_MAX)
                return util_err_setx(err, EINVAL, "key '%s' is longer than %u bytes",
                                     preview(key, pv), SNAP_KEY_MAX);
        p = text_check(key, len, &off, &cp);
        if (p != TEXT_OK)
                return text_report("key", key, "", p, off, cp, err);
        return 0;
}

int snap_labels_check(const struct snap_label *labels, size_t n, struct util_err *err)
{
        char pv[PREVIEW_SIZE];

        if (n > SNAP_LABELS_MAX_COUNT)
                return util_err_setx(err, EINVAL, "%zu labels, more than %u", n,
                                     SNAP_LABELS_MAX_COUNT);
        if (n > 0 && !labels)
                return util_err_setx(err, EINVAL, "labels: %zu announced, none given", n);
        for (size_t i = 0; i < n; i++) {
                const char *k = labels[i].key, *v = labels[i].value;
                size_t klen, vlen, off = 0;
                uint32_t cp = 0;
                enum text_problem p;

                if (!k || !*k)
                        return util_err_setx(err, EINVAL, "labels[%zu]: empty key", i);
                if (!v)
                        return util_err_setx(err, EINVAL, "label '%s': no value", preview(k, pv));
                klen = strnlen(k, SNAP_LABEL_MAX + 1);
                vlen = strnlen(v, SNAP_LABEL_MAX + 1);
                if (klen + vlen > SNAP_LABEL_MAX)
                        return util_err_setx(err, EINVAL,
                                             "label '%s': key and value are longer than %u bytes",
                                             preview(k, pv), SNAP_LABEL_MAX);
                p = text_check(k, klen, &off, &cp);
                if (p != TEXT_OK)
                        return text_report("label", k, " in the key", p, off, cp, err);
                p = text_check(v, vlen, &off, &cp);
                if (p != TEXT_OK)
                        return text_report("label", k, " in the value", p, off, cp, err);
                /* n <= 256: the quadratic scan is cheaper than a sorted copy. */
                for (size_t j = 0; j < i; j++)
                        if (strcmp(labels[j].key, k) == 0)
                                return util_err_setx(err, EINVAL, "label '%s' is given twice", k);
        }
        return 0;
}

/* ---- the handle, statements, errors --------------------------------------- */

enum stmt_id {
        ST_BEGIN_READ,
        ST_BEGIN_WRITE,
        ST_COMMIT,
        ST_ROLLBACK,
        ST_SAVEPOINT,
        ST_RELEASE,
        ST_ROLLBACK_TO,
        ST_BY_NAME,
        ST_BY_ID,
        ST_ALL,
        ST_LABELS_OF,
        ST_ALL_LABELS,
        ST_FIND,
        ST_INSERT,
        ST_INSERT_LABEL,
        ST_DELETE_LABELS,
        ST_DELETE_LABEL,
        ST_COUNT_LABELS,
        ST_COMMIT_ROW,
        ST_TOUCH,
        ST_CHILD,
        ST_DELETE,
        ST_PARENTS,
        ST_IDS,
        ST__MAX,
};

#define ROW_COLUMNS                                                                       \
        "s.id, s.kind, s.name, p.name, s.parent_id, s.created_ns, s.updated_ns, s.size, " \
        "s.inodes FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id"

/* Constant SQL only: every value from outside is a bound parameter. */
static const char *const stmt_sql[ST__MAX] = {
        [ST_BEGIN_READ] = "BEGIN",
        [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
        [ST_COMMIT] = "COMMIT",
        [ST_ROLLBACK] = "ROLLBACK",
        /* A call inside the caller's write transaction runs under a savepoint,
         * so a failed call leaves that transaction as it was. */
        [ST_SAVEPOINT] = "SAVEPOINT snap_op",
        [ST_RELEASE] = "RELEASE snap_op",
        [ST_ROLLBACK_TO] = "ROLLBACK TO snap_op",
        [ST_BY_NAME] = "SELECT " ROW_COLUMNS " WHERE s.name = ?1",
        [ST_BY_ID] = "SELECT " ROW_COLUMNS " WHERE s.id = ?1",
        [ST_ALL] = "SELECT " ROW_COLUMNS " ORDER BY s.id",
        [ST_LABELS_OF] = "SELECT key, value FROM labels WHERE snapshot_id = ?1 ORDER BY key",
        [ST_ALL_LABELS] = "SELECT snapshot_id, key, value FROM labels ORDER BY snapshot_id, key",
        [ST_FIND] = "SELECT id, kind FROM snapshots WHERE name = ?1",
        [ST_INSERT] = "INSERT INTO snapshots (name, kind, parent_id, created_ns, updated_ns) "
                      "VALUES (?1, ?2, ?3, ?4, ?4)",
        [ST_INSERT_LABEL] = "INSERT OR REPLACE INTO labels (snapshot_id, key, value) "
                            "VALUES (?1, ?2, ?3)",
        [ST_DELETE_LABELS] = "DELETE FROM labels WHERE snapshot_id = ?1",
        [ST_DELETE_LABEL] = "DELETE FROM labels WHERE snapshot_id = ?1 AND key = ?2",
        [ST_COUNT_LABELS] = "SELECT count(*) FROM labels WHERE snapshot_id = ?1",
        [ST_COMMIT_ROW] = "UPDATE snapshots SET name = ?2, kind = 3, updated_ns = ?3, size = ?4, "
                          "inodes = ?5 WHERE id = ?1",
        [ST_TOUCH] = "UPDATE snapshots SET updated_ns = ?2 WHERE id = ?1",
        [ST_CHILD] = "SELECT name, (SELECT count(*) FROM snapshots WHERE parent_id = ?1) "
                     "FROM snapshots WHERE parent_id = ?1 ORDER BY id LIMIT 1",
        [ST_DELETE] = "DELETE FROM snapshots WHERE id = ?1",
        /* Nearest parent first; the depth cap only guards against a cycle,
         * which the schema cannot express (parents exist before children). */
        [ST_PARENTS] = "WITH RECURSIVE chain(id, parent_id, depth) AS ("
                       " SELECT id, parent_id, 0 FROM snapshots WHERE id = ?1"
                       " UNION ALL SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s"
                       " JOIN chain c ON s.id = c.parent_id WHERE c.depth < 100000)"
                       " SELECT id FROM chain WHERE depth > 0 ORDER BY depth",
        [ST_IDS] = "SELECT id FROM snapshots ORDER BY id",
};

enum tx_state {
        TX_NONE = 0,
        TX_READ,
        TX_WRITE,
};

struct snap_store {
        sqlite3 *db;
        char *path;
        enum tx_state tx; /* the caller's transaction (snap_store_begin) */
        long busy_ms;
        bool relaxed;   /* PRAGMA synchronous = NORMAL in effect (else FULL) */
        int wal_frames; /* in the WAL after our last commit (wal_hook) */
        sqlite3_stmt *stmt[ST__MAX];
};

/*
 * Maps a failed SQLite call (`rc`, extended codes on) to an errno and a
 * message naming the database file. Busy and locked mean the busy timeout
 * ran out: EAGAIN, "unavailable" — the caller may retry.
 */
static int db_fail(struct snap_store *s, int rc, const char *what, struct util_err *err)
{
        int errnum;

        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return util_err_setx(err, EAGAIN,
                                     "database '%s': %s: still locked by another process after "
                                     "%ld ms",
                                     s->path, what, s->busy_ms);
        case SQLITE_NOMEM:
                errnum = ENOMEM;
                break;
        case SQLITE_FULL:
                errnum = ENOSPC;
                break;
        case SQLITE_READONLY:
                errnum = EROFS;
                break;
        case SQLITE_CANTOPEN:
                errnum = sqlite3_system_errno(s->db);
                if (errnum <= 0)
                        errnum = EIO;
                break;
        default:
                errnum = EIO;
                break;
        }
        return util_err_setx(err, errnum, "database '%s': %s: %s", s->path, what,
                             sqlite3_errmsg(s->db));
}

static void stmt_resetp(sqlite3_stmt **st)
{
        if (*st) {
                sqlite3_reset(*st);
                sqlite3_clear_bindings(*st);
        }
}
#define _cleanup_reset_ _cleanup_(stmt_resetp)

/* The cached statement `id` (prepared on first use). Reset it after use:
 * declare the variable with _cleanup_reset_. */
static int stmt_get(struct snap_store *s, enum stmt_id id, sqlite3_stmt **ret, struct util_err *err)
{
        if (!s->stmt[id]) {
                int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                            &s->stmt[id], NULL);
                if (rc != SQLITE_OK)
                        return db_fail(s, rc, "prepare", err);
        }
        *ret = s->stmt[id];
        return 0;
}

/* Runs a statement that returns no rows (or whose rows are not needed). */
static int stmt_run(struct snap_store *s, sqlite3_stmt *st, const char *what, struct util_err *err)
{
        int rc;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ;
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, what, err);
        return 0;
}

static int exec_simple(struct snap_store *s, enum stmt_id id, struct util_err *err)
{
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r = stmt_get(s, id, &st, err);
        if (r < 0)
                return r;
        return stmt_run(s, st, stmt_sql[id], err);
}

static int bind_text(struct snap_store *s, sqlite3_stmt *st, int idx, const char *v,
                     struct util_err *err)
{
        int rc = sqlite3_bind_text(st, idx, v, -1, SQLITE_STATIC);
        return rc == SQLITE_OK ? 0 : db_fail(s, rc, "bind", err);
}

static int bind_int(struct snap_store *s, sqlite3_stmt *st, int idx, int64_t v,
                    struct util_err *err)
{
        int rc = sqlite3_bind_int64(st, idx, v);
        return rc == SQLITE_OK ? 0 : db_fail(s, rc, "bind", err);
}

static int64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- transactions ------------------------------------------------------- */

/* How one API call runs: in its own transaction, under a savepoint of the
 * caller's write transaction, or plainly inside the caller's transaction. */
struct op {
        bool own;
        bool savepoint;
};

/*
 * Durability of the next write transactions: FULL (the default) syncs the WAL
 * at every commit; NORMAL only at checkpoints, so a power loss (never a
 * process crash) may roll the newest commits back. Changed only between
 * transactions; a no-op when already in effect.
 */
static int set_sync(struct snap_store *s, bool full, struct util_err *err)
{
        if (s->relaxed != full)
                return 0;
        int rc = sqlite3_exec(s->db,
                              full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                              NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return db_fail(s, rc, "synchronous", err);
        s->relaxed = !full;
        return 0;
}

static int op_begin(struct snap_store *s, bool write, struct op *op, struct util_err *err)
{
        *op = (struct op){0};
        if (s->tx == TX_NONE) {
                int r = write ? set_sync(s, true, err) : 0;
                if (r < 0)
                        return r;
                r = exec_simple(s, write ? ST_BEGIN_WRITE : ST_BEGIN_READ, err);
                if (r < 0)
                        return r;
                op->own = true;
                return 0;
        }
        if (!write)
                return 0;
        /* A deferred (read) transaction would have to upgrade its lock, which
         * SQLite refuses with SQLITE_BUSY when another writer came first, half
         * way through an operation. Writers must say so up front. */
        if (s->tx == TX_READ)
                return util_err_setx(err, EBUSY,
                                     "a read transaction is open; writes need "
                                     "snap_store_begin(write=true)");
        int r = exec_simple(s, ST_SAVEPOINT, err);
        if (r < 0)
                return r;
        op->savepoint = true;
        return 0;
}

/* Ends what op_begin started: commits when r >= 0, else undoes. Returns r,
 * or the commit's failure. */
static int op_end(struct snap_store *s, struct op *op, int r, struct util_err *err)
{
        if (op->own) {
                if (r >= 0) {
                        r = exec_simple(s, ST_COMMIT, err);
                        if (r >= 0)
                                return r;
                }
                /* Also after a failed COMMIT: SQLite may keep the transaction
                 * open (SQLITE_BUSY), and the handle must end up idle. */
                if (!sqlite3_get_autocommit(s->db))
                        (void)exec_simple(s, ST_ROLLBACK, NULL);
                return r;
        }
        if (op->savepoint) {
                if (r < 0 && !sqlite3_get_autocommit(s->db))
                        (void)exec_simple(s, ST_ROLLBACK_TO, NULL);
                if (!sqlite3_get_autocommit(s->db)) {
                        int q = exec_simple(s, ST_RELEASE, r < 0 ? NULL : err);
                        if (r >= 0 && q < 0)
                                r = q;
                }
        }
        return r;
}

static int begin(struct snap_store *s, bool write, bool full, struct util_err *err)
{
        if (s->tx != TX_NONE)
                return util_err_setx(err, EBUSY, "begin transaction: one is already open on '%s'",
                                     s->path);
        int r = write ? set_sync(s, full, err) : 0;
        if (r < 0)
                return util_err_prefix(err, "begin transaction");
        r = exec_simple(s, write ? ST_BEGIN_WRITE : ST_BEGIN_READ, err);
        if (r < 0)
                return util_err_prefix(err, "begin transaction");
        s->tx = write ? TX_WRITE : TX_READ;
        return 0;
}

int snap_store_begin(struct snap_store *s, bool write, struct util_err *err)
{
        return begin(s, write, true, err);
}

int snap_store_begin_relaxed(struct snap_store *s, struct util_err *err)
{
        return begin(s, true, false, err);
}

int snap_store_commit(struct snap_store *s, struct util_err *err)
{
        if (s->tx == TX_NONE)
                return util_err_setx(err, EINVAL, "commit transaction: none is open");
        s->tx = TX_NONE;
        /* SQLite rolls a transaction back by itself after some errors (disk
         * full, I/O error, out of memory); committing then must not pretend. */
        if (sqlite3_get_autocommit(s->db))
                return util_err_setx(err, EIO,
                                     "commit transaction: database '%s': it was rolled back "
                                     "after an earlier error",
                                     s->path);
        int r = exec_simple(s, ST_COMMIT, err);
        if (r < 0) {
                if (!sqlite3_get_autocommit(s->db))
                        (void)exec_simple(s, ST_ROLLBACK, NULL);
                return util_err_prefix(err, "commit transaction");
        }
        return 0;
}

void snap_store_rollback(struct snap_store *s)
{
        if (!s || s->tx == TX_NONE)
                return;
        s->tx = TX_NONE;
        if (!sqlite3_get_autocommit(s->db))
                (void)exec_simple(s, ST_ROLLBACK, NULL);
}

/* ---- schema --------------------------------------------------------------- */

/*
 * v0 is an empty file. Ids use AUTOINCREMENT, so an id is never handed out
 * twice, even after the row with the highest id was removed: ids name files
 * on disk, and a reused id could meet a not-yet-cleaned leftover.
 */
static const char schema_v1[] =
        "CREATE TABLE snapshots ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " name TEXT UNIQUE NOT NULL,"
        " kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),"
        " parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,"
        " created_ns INTEGER NOT NULL,"
        " updated_ns INTEGER NOT NULL,"
        " size INTEGER NOT NULL DEFAULT 0,"
        " inodes INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE labels ("
        " snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,"
        " key TEXT NOT NULL,"
        " value TEXT NOT NULL,"
        " PRIMARY KEY (snapshot_id, key)) WITHOUT ROWID;"
        "CREATE INDEX snapshots_parent ON snapshots(parent_id);"
        "PRAGMA application_id = 1280527952;"; /* STORE_APPLICATION_ID */

static int pragma_int(struct snap_store *s, const char *sql, int64_t *ret, struct util_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        *ret = sqlite3_column_int64(st, 0);
                        rc = SQLITE_OK;
                }
        }
        if (rc != SQLITE_OK) {
                int r = db_fail(s, rc, sql, err);
                sqlite3_finalize(st);
                return r;
        }
        sqlite3_finalize(st);
        return 0;
}

static int migrate_v0_v1(struct snap_store *s, struct util_err *err)
{
        int64_t n = 0;
        int r = pragma_int(s, "SELECT count(*) FROM sqlite_schema", &n, err);
        if (r < 0)
                return r;
        if (n != 0)
                return util_err_setx(err, EINVAL,
                                     "'%s' is not a loopsnap database (it has tables but no "
                                     "schema version)",
                                     s->path);
        int rc = sqlite3_exec(s->db, schema_v1, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return db_fail(s, rc, "create schema v1", err);
        return 0;
}

/* migrations[N] turns schema version N into N + 1, inside one transaction. */
static int (*const migrations[SNAP_STORE_SCHEMA_VERSION])(struct snap_store *s,
                                                          struct util_err *err) = {
        migrate_v0_v1,
};

static int set_user_version(struct snap_store *s, int v, struct util_err *err)
{
        /* PRAGMA takes no parameters; `v` is our own small integer. */
        char sql[48];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : db_fail(s, rc, sql, err);
}

static int schema_check_owner(struct snap_store *s, int64_t version, struct util_err *err)
{
        int64_t app = 0;
        int r = pragma_int(s, "PRAGMA application_id", &app, err);
        if (r < 0)
                return r;
        if (version > 0 && app != STORE_APPLICATION_ID)
                return util_err_setx(err, EINVAL,
                                     "'%s' is not a loopsnap database (application id 0x%llx)",
                                     s->path, (unsigned long long)app);
        return 0;
}

/*
 * Brings the schema to SNAP_STORE_SCHEMA_VERSION, one migration per
 * transaction. The version is re-read under the write lock: several
 * processes may open a fresh database at once, and only one migrates.
 */
static int schema_migrate(struct snap_store *s, struct util_err *err)
{
        for (;;) {
                int64_t v = 0;
                int r = pragma_int(s, "PRAGMA user_version", &v, err);
                if (r < 0)
                        return r;
                if (v < 0)
                        return util_err_setx(err, EINVAL, "'%s': unknown schema version %lld",
                                             s->path, (long long)v);
                if (v > SNAP_STORE_SCHEMA_VERSION)
                        return util_err_setx(err, EINVAL,
                                             "'%s' was created by a newer loopsnap (schema "
                                             "version %lld, this build knows up to %d)",
                                             s->path, (long long)v, SNAP_STORE_SCHEMA_VERSION);
                r = schema_check_owner(s, v, err);
                if (r < 0)
                        return r;
                if (v == SNAP_STORE_SCHEMA_VERSION)
                        return 0;

                r = exec_simple(s, ST_BEGIN_WRITE, err);
                if (r < 0)
                        return r;
                int64_t again = 0;
                r = pragma_int(s, "PRAGMA user_version", &again, err);
                if (r >= 0 && again == v) {
                        util_debug(UTIL_DBG_SNAP, "store '%s': schema v%lld -> v%lld", s->path,
                                   (long long)v, (long long)v + 1);
                        r = migrations[v](s, err);
                        if (r >= 0)
                                r = set_user_version(s, (int)v + 1, err);
                }
                struct op own = {.own = true};
                r = op_end(s, &own, r, err);
                if (r < 0)
                        return util_err_prefix(err, "migrate schema v%lld to v%lld", (long long)v,
                                               (long long)v + 1);
        }
}

/* ---- open / close --------------------------------------------------------- */

static void wal_checkpoint(struct snap_store *s, sqlite3 *db, const char *name, int frames,
                           int mode);

struct snap_store *snap_store_close(struct snap_store *s)
{
        if (!s)
                return NULL;
        snap_store_rollback(s);
        if (s->wal_frames >= STORE_WAL_CLOSE_PAGES)
                wal_checkpoint(s, s->db, "main", s->wal_frames, SQLITE_CHECKPOINT_TRUNCATE);
        for (size_t i = 0; i < ST__MAX; i++)
                sqlite3_finalize(s->stmt[i]);
        sqlite3_close_v2(s->db);
        free(s->path);
        free(s);
        return NULL;
}

/*
 * Creates the database file with mode 0600 whatever the umask, before SQLite
 * sees it: SQLite would create it 0644 & ~umask, and it gives its -wal and
 * -shm files the mode of the database file. An existing file keeps its mode.
 */
static int create_file(const char *path, struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;

        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd >= 0) {
                if (fchmod(fd, 0600) < 0)
                        return util_err_set(err, errno, "chmod '%s'", path);
                return 0;
        }
        if (errno != EEXIST)
                return util_err_set(err, errno, "create '%s'", path);
        return util_open_regular(path, O_RDONLY, &fd, err);
}

/*
 * Copies the WAL's frames into the database, without waiting for readers
 * (busy timeout 0 meanwhile): with one in the way the checkpoint copies what
 * it can, and a later commit or close tries again.
 *
 * TRUNCATE (at close) also empties the file. RESTART (the WAL hook) leaves
 * it as it is, and this connection's next commit writes its frames over the
 * old ones from the start, under a new salt: an opener that rebuilds the
 * WAL index stops at the first old frame. Overwriting the file's blocks
 * costs the host filesystem nothing more at its next sync; appending to an
 * emptied file costs it new blocks, hence its bitmaps and the file's extent
 * tree, at every directory-upper container's unmount (overlayfs syncs the
 * upper's filesystem, which holds the root). After a RESTART wal_frames
 * keeps its count until the next commit sets it: a close before one
 * truncates.
 */
static void wal_checkpoint(struct snap_store *s, sqlite3 *db, const char *name, int frames,
                           int mode)
{
        (void)sqlite3_busy_timeout(db, 0);
        int rc = sqlite3_wal_checkpoint_v2(db, name, mode, NULL, NULL);
        (void)sqlite3_busy_timeout(db, (int)s->busy_ms);
        if (rc == SQLITE_OK && mode == SQLITE_CHECKPOINT_TRUNCATE)
                s->wal_frames = 0;
        util_debug(UTIL_DBG_SNAP, "store '%s': checkpoint of %d WAL frames: %s", s->path, frames,
                   rc != SQLITE_OK                      ? sqlite3_errstr(rc)
                   : mode == SQLITE_CHECKPOINT_TRUNCATE ? "truncated"
                                                        : "restarts");
}

/*
 * After each commit (SQLite's wal hook): once the WAL holds
 * STORE_WAL_CHECKPOINT_PAGES frames, checkpoint it and restart it; a
 * connection that committed checkpoints and truncates it at close once it
 * holds STORE_WAL_CLOSE_PAGES (snap_store_close). SQLite's own
 * autocheckpoint (PASSIVE) is not enough here: it leaves the frames in the
 * file for the next writer to overwrite, but a process that opens the
 * database first rebuilds the WAL index from the file and counts every
 * frame as not yet copied, so the WAL of a root used by short processes
 * never restarts; it grows with every commit, and every first open replays
 * all of it.
 *
 * Two bounds because a checkpoint costs two syncs (the WAL, then the
 * database): a long-lived connection (a runtime with the library loaded)
 * pays them once per ~30 container cycles instead of every third, and a
 * short one (a hook stage, snapctl) still leaves at most a few dozen pages
 * for the next first opener to replay. While any connection is open, a new
 * one replays nothing: it maps the live WAL index.
 */
static int wal_hook(void *data, sqlite3 *db, const char *name, int frames)
{
        struct snap_store *s = data;

        s->wal_frames = frames;
        if (frames >= STORE_WAL_CHECKPOINT_PAGES)
                wal_checkpoint(s, db, name, frames, SQLITE_CHECKPOINT_RESTART);
        /* The commit happened whatever this says. */
        return SQLITE_OK;
}

static int store_setup(struct snap_store *s, struct util_err *err)
{
        int rc;
        int r;

        rc = sqlite3_extended_result_codes(s->db, 1);
        if (rc == SQLITE_OK)
                rc = sqlite3_busy_timeout(s->db, (int)s->busy_ms);
        if (rc != SQLITE_OK)
                return db_fail(s, rc, "configure", err);

        /* Per connection; foreign_keys is a no-op inside a transaction, and
         * none is open yet. When the WAL restarts (wal_checkpoint) SQLite
         * cuts the file back to 2 MiB, above the hook's bound: only a
         * transaction larger than that leaves a larger file behind. */
        rc = sqlite3_exec(s->db,
                          "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; "
                          "PRAGMA journal_size_limit = 2097152",
                          NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return db_fail(s, rc, "pragmas", err);

        /* Persistent once set; returns the mode in effect, which must be WAL
         * (readers never block the writer, one fsync per commit). */
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                r = db_fail(s, rc, "journal_mode = WAL", err);
                sqlite3_finalize(st);
                return r;
        }
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        bool wal = mode && strcasecmp(mode, "wal") == 0;
        char got[16];
        snprintf(got, sizeof(got), "%s", mode ? mode : "?");
        sqlite3_finalize(st);
        if (!wal)
                return util_err_setx(err, EIO, "database '%s': cannot use WAL (journal mode '%s')",
                                     s->path, got);

        /*
         * Most users of a root are short processes (the hook's stages,
         * snapctl): by default each would create the -wal file (and fsync
         * the directory for it), then checkpoint at close (fsync the WAL,
         * write and fsync the database) and delete it again — four syncs
         * per process on top of its own commits. The WAL stays instead
         * (PERSIST_WAL) and is checkpointed by whichever commit finds it
         * over STORE_WAL_CHECKPOINT_PAGES (wal_hook), not at every close.
         * Durability is unchanged: a commit is in the WAL, synced as its
         * transaction asks (FULL, or NORMAL for the relaxed ones: store.h);
         * a later opener replays the WAL (bounded by the checkpoint size).
         */
        int one = 1;
        if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &one) != SQLITE_OK ||
            sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL) != SQLITE_OK)
                util_debug(UTIL_DBG_SNAP, "store '%s': keeping the WAL between opens: %s", s->path,
                           sqlite3_errmsg(s->db));
        (void)sqlite3_wal_hook(s->db, wal_hook, s);

        return schema_migrate(s, err);
}

int snap_store_open(const char *path, struct snap_store **ret, struct util_err *err)
{
        _cleanup_(snap_store_closep) struct snap_store *s = NULL;
        int r, rc;

        if (!path || !*path)
                return util_err_setx(err, EINVAL, "open store: no path");
        r = create_file(path, err);
        if (r < 0)
                return util_err_prefix(err, "open store");

        s = calloc(1, sizeof(*s));
        if (!s)
                return util_err_set(err, ENOMEM, "open store '%s'", path);
        s->path = strdup(path);
        if (!s->path)
                return util_err_set(err, ENOMEM, "open store '%s'", path);
        s->busy_ms = util_env_long("LOOPSNAP_STORE_BUSY_MS", STORE_BUSY_MS_DEFAULT);
        if (s->busy_ms < 0 || s->busy_ms > 3600 * 1000)
                s->busy_ms = STORE_BUSY_MS_DEFAULT;

        /*
         * NOMUTEX: a handle is used by one thread at a time (store.h). SQLite
         * opens the database, -wal and -shm with O_CLOEXEC (os_unix.c
         * robust_open, where the libc has it), so no fd leaks into the
         * mount helpers we exec; test/unit/store.c checks it.
         */
        rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
                                     SQLITE_OPEN_EXRESCODE,
                             NULL);
        if (rc != SQLITE_OK) {
                if (!s->db)
                        return util_err_set(err, ENOMEM, "open store '%s'", path);
                (void)db_fail(s, rc, "open", err);
                return util_err_prefix(err, "open store");
        }
        r = store_setup(s, err);
        if (r < 0)
                return util_err_prefix(err, "open store");

        util_debug(UTIL_DBG_SNAP, "store '%s': open", path);
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- reading rows ------------------------------------------------------- */

static char *column_strdup(sqlite3_stmt *st, int col)
{
        const unsigned char *t = sqlite3_column_text(st, col);
        return t ? strdup((const char *)t) : NULL;
}

/* Fills `i` (zeroed by the caller) from a ROW_COLUMNS row, without labels. */
static int row_read(sqlite3_stmt *st, struct snap_info *i)
{
        i->id = sqlite3_column_int64(st, 0);
        i->kind = (enum snap_kind)sqlite3_column_int(st, 1);
        i->name = column_strdup(st, 2);
        if (!i->name)
                return -ENOMEM;
        if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
                i->parent = column_strdup(st, 3);
                if (!i->parent)
                        return -ENOMEM;
        }
        i->parent_id = sqlite3_column_int64(st, 4);
        i->created_ns = sqlite3_column_int64(st, 5);
        i->updated_ns = sqlite3_column_int64(st, 6);
        /* Stored as a signed 64-bit integer; the bits round-trip. */
        i->size = (uint64_t)sqlite3_column_int64(st, 7);
        i->inodes = (uint64_t)sqlite3_column_int64(st, 8);
        return 0;
}

/* Appends (key, value) from columns kcol, kcol + 1 to i->labels. */
static int label_append(sqlite3_stmt *st, int kcol, struct snap_info *i)
{
        if (i->n_labels % 8 == 0) {
                struct snap_label *l = reallocarray(i->labels, i->n_labels + 8, sizeof(*l));
                if (!l)
                        return -ENOMEM;
                i->labels = l;
        }
        struct snap_label *l = &i->labels[i->n_labels];
        l->key = column_strdup(st, kcol);
        l->value = column_strdup(st, kcol + 1);
        if (!l->key || !l->value) {
                free(l->key);
                free(l->value);
                return -ENOMEM;
        }
        i->n_labels++;
        return 0;
}

static int labels_read(struct snap_store *s, struct snap_info *i, struct util_err *err)
{
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = stmt_get(s, ST_LABELS_OF, &st, err);
        if (r < 0)
                return r;
        r = bind_int(s, st, 1, i->id, err);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                if (label_append(st, 0, i) < 0)
                        return util_err_set(err, ENOMEM, "read labels");
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "read labels", err);
        return 0;
}

/*
 * Reads one snapshot by name (`name` != NULL) or id into *ret (labels
 * included). Returns 1 and *ret, 0 when there is none (*ret untouched), or
 * -errno.
 */
static int info_read(struct snap_store *s, const char *name, int64_t id, struct snap_info *ret,
                     struct util_err *err)
{
        _cleanup_(snap_info_done) struct snap_info i = {0};
        int r, rc;

        {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                r = stmt_get(s, name ? ST_BY_NAME : ST_BY_ID, &st, err);
                if (r < 0)
                        return r;
                r = name ? bind_text(s, st, 1, name, err) : bind_int(s, st, 1, id, err);
                if (r < 0)
                        return r;
                rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        return 0;
                if (rc != SQLITE_ROW)
                        return db_fail(s, rc, "read snapshot", err);
                if (row_read(st, &i) < 0)
                        return util_err_set(err, ENOMEM, "read snapshot");
        }
        r = labels_read(s, &i, err);
        if (r < 0)
                return r;
        *ret = i;
        i = (struct snap_info){0};
        return 1;
}

/* Looks a name up: 1 with its id and kind, 0 when there is none. */
static int find(struct snap_store *s, const char *name, int64_t *ret_id, enum snap_kind *ret_kind,
                struct util_err *err)
{
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r = stmt_get(s, ST_FIND, &st, err);
        if (r < 0)
                return r;
        r = bind_text(s, st, 1, name, err);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return 0;
        if (rc != SQLITE_ROW)
                return db_fail(s, rc, "look up", err);
        if (ret_id)
                *ret_id = sqlite3_column_int64(st, 0);
        if (ret_kind)
                *ret_kind = (enum snap_kind)sqlite3_column_int(st, 1);
        return 1;
}

/* For the `ret` of a write call: the row as it is now, inside the
 * transaction. NULL `ret`: nothing to do. */
static int info_read_back(struct snap_store *s, int64_t id, struct snap_info *ret,
                          struct util_err *err)
{
        if (!ret)
                return 0;
        int r = info_read(s, NULL, id, ret, err);
        if (r == 0)
                return util_err_setx(err, EIO, "id %lld vanished inside the transaction",
                                     (long long)id);
        return r < 0 ? r : 0;
}

/* ---- writes ------------------------------------------------------------- */

static int labels_insert(struct snap_store *s, int64_t id, const struct snap_label *labels,
                         size_t n, struct util_err *err)
{
        for (size_t i = 0; i < n; i++) {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                int r = stmt_get(s, ST_INSERT_LABEL, &st, err);
                if (r >= 0)
                        r = bind_int(s, st, 1, id, err);
                if (r >= 0)
                        r = bind_text(s, st, 2, labels[i].key, err);
                if (r >= 0)
                        r = bind_text(s, st, 3, labels[i].value, err);
                if (r >= 0)
                        r = stmt_run(s, st, "insert label", err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int labels_delete(struct snap_store *s, int64_t id, const char *key, struct util_err *err)
{
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r = stmt_get(s, key ? ST_DELETE_LABEL : ST_DELETE_LABELS, &st, err);
        if (r >= 0)
                r = bind_int(s, st, 1, id, err);
        if (r >= 0 && key)
                r = bind_text(s, st, 2, key, err);
        if (r >= 0)
                r = stmt_run(s, st, "delete labels", err);
        return r;
}

static int do_create(struct snap_store *s, enum snap_kind kind, const char *key, const char *parent,
                     const struct snap_label *labels, size_t n_labels, struct snap_info *ret,
                     struct util_err *err)
{
        enum snap_kind k = SNAP_KIND_UNKNOWN;
        int64_t parent_id = 0, id;
        int r;

        r = find(s, key, NULL, &k, err);
        if (r < 0)
                return r;
        if (r > 0)
                return util_err_setx(err, EEXIST, "already exists (%s)", snap_kind_name(k));
        if (parent) {
                r = find(s, parent, &parent_id, &k, err);
                if (r < 0)
                        return r;
                if (r == 0)
                        return util_err_setx(err, ENOENT, "parent '%s' does not exist", parent);
                if (k != SNAP_KIND_COMMITTED)
                        return util_err_setx(err, EINVAL, "parent '%s' is not committed (%s)",
                                             parent, snap_kind_name(k));
        }

        {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                r = stmt_get(s, ST_INSERT, &st, err);
                if (r >= 0)
                        r = bind_text(s, st, 1, key, err);
                if (r >= 0)
                        r = bind_int(s, st, 2, kind, err);
                /* cppcheck-suppress knownConditionTrueFalse ; find() sets k */
                if (r >= 0 && parent)
                        r = bind_int(s, st, 3, parent_id, err);
                if (r >= 0)
                        r = bind_int(s, st, 4, now_ns(), err);
                if (r >= 0)
                        r = stmt_run(s, st, "insert", err);
                if (r < 0)
                        return r;
                id = sqlite3_last_insert_rowid(s->db);
        }
        r = labels_insert(s, id, labels, n_labels, err);
        if (r < 0)
                return r;
        return info_read_back(s, id, ret, err);
}

int snap_store_create(struct snap_store *s, enum snap_kind kind, const char *key,
                      const char *parent, const struct snap_label *labels, size_t n_labels,
                      struct snap_info *ret, struct util_err *err)
{
        struct snap_info out = {0};
        struct op op;
        int r;

        if (kind != SNAP_KIND_VIEW && kind != SNAP_KIND_ACTIVE)
                return util_err_setx(err, EINVAL, "create: kind must be view or active, not %s",
                                     snap_kind_name(kind));
        if (parent && !*parent)
                parent = NULL;
        r = snap_key_check(key, err);
        if (r >= 0 && parent)
                r = snap_key_check(parent, err);
        if (r >= 0)
                r = snap_labels_check(labels, n_labels, err);
        if (r < 0)
                return util_err_prefix(err, "create %s", snap_kind_name(kind));

        r = op_begin(s, /* write= */ true, &op, err);
        if (r >= 0)
                r = do_create(s, kind, key, parent, labels, n_labels, ret ? &out : NULL, err);
        r = op_end(s, &op, r, err);
        if (r < 0) {
                snap_info_done(&out);
                return util_err_prefix(err, "create %s '%s'", snap_kind_name(kind), key);
        }
        util_debug(UTIL_DBG_SNAP, "store: created %s '%s' on '%s'", snap_kind_name(kind), key,
                   parent ? parent : "");
        if (ret)
                *ret = out;
        return 0;
}

int snap_store_get(struct snap_store *s, const char *name, struct snap_info *ret,
                   struct util_err *err)
{
        struct snap_info out = {0};
        struct op op;
        int r;

        r = snap_key_check(name, err);
        if (r < 0)
                return util_err_prefix(err, "get");
        r = op_begin(s, /* write= */ false, &op, err);
        if (r >= 0) {
                r = info_read(s, name, 0, &out, err);
                if (r == 0)
                        r = util_err_setx(err, ENOENT, "does not exist");
        }
        r = op_end(s, &op, r, err);
        if (r < 0) {
                snap_info_done(&out);
                return util_err_prefix(err, "get '%s'", name);
        }
        *ret = out;
        return 0;
}

int snap_store_get_id(struct snap_store *s, int64_t id, struct snap_info *ret, struct util_err *err)
{
        struct snap_info out = {0};
        struct op op;
        int r;

        r = op_begin(s, /* write= */ false, &op, err);
        if (r >= 0) {
                r = info_read(s, NULL, id, &out, err);
                if (r == 0)
                        r = util_err_setx(err, ENOENT, "does not exist");
        }
        r = op_end(s, &op, r, err);
        if (r < 0) {
                snap_info_done(&out);
                return util_err_prefix(err, "get id %lld", (long long)id);
        }
        *ret = out;
        return 0;
}

static int do_commit(struct snap_store *s, const char *name, const char *key,
                     const struct snap_label *labels, size_t n_labels, uint64_t size,
                     uint64_t inodes, struct snap_info *ret, struct util_err *err)
{
        enum snap_kind k = SNAP_KIND_UNKNOWN;
        int64_t id = 0;
        int r;

        /* containerd's order (storage.CommitActive): the name first. */
        r = find(s, name, NULL, &k, err);
        if (r < 0)
                return r;
        if (r > 0)
                return util_err_setx(err, EEXIST, "'%s' already exists (%s)", name,
                                     snap_kind_name(k));
        r = find(s, key, &id, &k, err);
        if (r < 0)
                return r;
        if (r == 0)
                return util_err_setx(err, ENOENT, "'%s' does not exist", key);
        if (k != SNAP_KIND_ACTIVE)
                return util_err_setx(err, EBUSY,
                                     "'%s' is %s %s; only active snapshots can be committed", key,
                                     k == SNAP_KIND_VIEW ? "a" : "already", snap_kind_name(k));

        {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                r = stmt_get(s, ST_COMMIT_ROW, &st, err);
                if (r >= 0)
                        r = bind_int(s, st, 1, id, err);
                if (r >= 0)
                        r = bind_text(s, st, 2, name, err);
                if (r >= 0)
                        r = bind_int(s, st, 3, now_ns(), err);
                if (r >= 0)
                        r = bind_int(s, st, 4, (int64_t)size, err);
                if (r >= 0)
                        r = bind_int(s, st, 5, (int64_t)inodes, err);
                if (r >= 0)
                        r = stmt_run(s, st, "commit row", err);
                if (r < 0)
                        return r;
        }
        /* Labels are replaced, not inherited (containerd's Commit). */
        r = labels_delete(s, id, NULL, err);
        if (r >= 0)
                r = labels_insert(s, id, labels, n_labels, err);
        if (r < 0)
                return r;
        return info_read_back(s, id, ret, err);
}

int snap_store_commit_active(struct snap_store *s, const char *name, const char *key,
                             const struct snap_label *labels, size_t n_labels, uint64_t size,
                             uint64_t inodes, struct snap_info *ret, struct util_err *err)
{
        struct snap_info out = {0};
        struct op op;
        int r;

        r = snap_key_check(key, err);
        if (r >= 0)
                r = snap_key_check(name, err);
        if (r >= 0)
                r = snap_labels_check(labels, n_labels, err);
        if (r < 0)
                return util_err_prefix(err, "commit");

        r = op_begin(s, /* write= */ true, &op, err);
        if (r >= 0)
                r = do_commit(s, name, key, labels, n_labels, size, inodes, ret ? &out : NULL, err);
        r = op_end(s, &op, r, err);
        if (r < 0) {
                snap_info_done(&out);
                return util_err_prefix(err, "commit '%s' as '%s'", key, name);
        }
        util_debug(UTIL_DBG_SNAP, "store: committed '%s' as '%s'", key, name);
        if (ret)
                *ret = out;
        return 0;
}

static int do_remove(struct snap_store *s, const char *key, struct snap_info *ret,
                     struct util_err *err)
{
        int64_t id = 0;
        int r;

        r = find(s, key, &id, NULL, err);
        if (r < 0)
                return r;
        if (r == 0)
                return util_err_setx(err, ENOENT, "does not exist");

        {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                r = stmt_get(s, ST_CHILD, &st, err);
                if (r >= 0)
                        r = bind_int(s, st, 1, id, err);
                if (r < 0)
                        return r;
                int rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        int64_t more = sqlite3_column_int64(st, 1) - 1;
                        if (more > 0)
                                return util_err_setx(
                                        err, EBUSY, "is the parent of '%s' and %lld more",
                                        (const char *)sqlite3_column_text(st, 0), (long long)more);
                        return util_err_setx(err, EBUSY, "is the parent of '%s'",
                                             (const char *)sqlite3_column_text(st, 0));
                }
                if (rc != SQLITE_DONE)
                        return db_fail(s, rc, "look up children", err);
        }

        if (ret) {
                r = info_read_back(s, id, ret, err);
                if (r < 0)
                        return r;
        }
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        r = stmt_get(s, ST_DELETE, &st, err);
        if (r >= 0)
                r = bind_int(s, st, 1, id, err);
        if (r >= 0)
                r = stmt_run(s, st, "delete", err);
        return r;
}

int snap_store_remove(struct snap_store *s, const char *key, struct snap_info *ret,
                      struct util_err *err)
{
        struct snap_info out = {0};
        struct op op;
        int r;

        r = snap_key_check(key, err);
        if (r < 0)
                return util_err_prefix(err, "remove");
        r = op_begin(s, /* write= */ true, &op, err);
        if (r >= 0)
                r = do_remove(s, key, ret ? &out : NULL, err);
        r = op_end(s, &op, r, err);
        if (r < 0) {
                snap_info_done(&out);
                return util_err_prefix(err, "remove '%s'", key);
        }
        util_debug(UTIL_DBG_SNAP, "store: removed '%s'", key);
        if (ret)
                *ret = out;
        return 0;
}

static const struct snap_label *label_find(const struct snap_label *labels, size_t n,
                                           const char *key)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(labels[i].key, key) == 0)
                        return &labels[i];
        return NULL;
}

static int do_update(struct snap_store *s, const char *name, const struct snap_label *labels,
                     size_t n_labels, const char *const *fieldpaths, size_t n_fieldpaths,
                     bool replace_all, struct snap_info *ret, struct util_err *err)
{
        int64_t id = 0;
        int r;

        r = find(s, name, &id, NULL, err);
        if (r < 0)
                return r;
        if (r == 0)
                return util_err_setx(err, ENOENT, "does not exist");

        if (replace_all) {
                r = labels_delete(s, id, NULL, err);
                if (r >= 0)
                        r = labels_insert(s, id, labels, n_labels, err);
                if (r < 0)
                        return r;
        } else {
                for (size_t i = 0; i < n_fieldpaths; i++) {
                        const char *k = fieldpaths[i] + strlen("labels.");
                        const struct snap_label *l = label_find(labels, n_labels, k);
                        r = l ? labels_insert(s, id, l, 1, err) : labels_delete(s, id, k, err);
                        if (r < 0)
                                return r;
                }
                /* Setting single labels can push the total over the limit. */
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                r = stmt_get(s, ST_COUNT_LABELS, &st, err);
                if (r >= 0)
                        r = bind_int(s, st, 1, id, err);
                if (r < 0)
                        return r;
                int rc = sqlite3_step(st);
                if (rc != SQLITE_ROW)
                        return db_fail(s, rc, "count labels", err);
                int64_t total = sqlite3_column_int64(st, 0);
                if (total > (int64_t)SNAP_LABELS_MAX_COUNT)
                        return util_err_setx(err, EINVAL, "%lld labels, more than %u",
                                             (long long)total, SNAP_LABELS_MAX_COUNT);
        }

        {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                r = stmt_get(s, ST_TOUCH, &st, err);
                if (r >= 0)
                        r = bind_int(s, st, 1, id, err);
                if (r >= 0)
                        r = bind_int(s, st, 2, now_ns(), err);
                if (r >= 0)
                        r = stmt_run(s, st, "touch", err);
                if (r < 0)
                        return r;
        }
        return info_read_back(s, id, ret, err);
}

int snap_store_update(struct snap_store *s, const char *name, const struct snap_label *labels,
                      size_t n_labels, const char *const *fieldpaths, size_t n_fieldpaths,
                      struct snap_info *ret, struct util_err *err)
{
        struct snap_info out = {0};
        bool replace_all = !fieldpaths || n_fieldpaths == 0;
        struct op op;
        char pv[PREVIEW_SIZE];
        int r;

        r = snap_key_check(name, err);
        if (r >= 0)
                r = snap_labels_check(labels, n_labels, err);
        if (r < 0)
                return util_err_prefix(err, "update");
        /* containerd's rule: labels (all of them) or labels.<key>, nothing
         * else is mutable. "labels" anywhere means the whole set. */
        for (size_t i = 0; !replace_all && i < n_fieldpaths; i++) {
                const char *p = fieldpaths[i];
                if (p && strcmp(p, "labels") == 0)
                        replace_all = true;
                else if (!p || strncmp(p, "labels.", strlen("labels.")) != 0 ||
                         !p[strlen("labels.")])
                        return util_err_setx(err, EINVAL,
                                             "update '%s': cannot update field '%s' (only "
                                             "labels and labels.<key>)",
                                             name, p ? preview(p, pv) : "");
        }

        r = op_begin(s, /* write= */ true, &op, err);
        if (r >= 0)
                r = do_update(s, name, labels, n_labels, fieldpaths, n_fieldpaths, replace_all,
                              ret ? &out : NULL, err);
        r = op_end(s, &op, r, err);
        if (r < 0) {
                snap_info_done(&out);
                return util_err_prefix(err, "update '%s'", name);
        }
        if (ret)
                *ret = out;
        return 0;
}

/* ---- lists ---------------------------------------------------------------- */

/* Appends v to a growing array. */
static int id_append(int64_t **a, size_t *n, int64_t v)
{
        /* Capacity implied by n: 8, then the next power of two. */
        if (*n == 0 || (*n >= 8 && (*n & (*n - 1)) == 0)) {
                int64_t *b = reallocarray(*a, *n ? *n * 2 : 8, sizeof(**a));
                if (!b)
                        return -ENOMEM;
                *a = b;
        }
        (*a)[(*n)++] = v;
        return 0;
}

static int ids_collect(struct snap_store *s, sqlite3_stmt *st, int64_t **ret, size_t *ret_n,
                       struct util_err *err)
{
        _cleanup_free_ int64_t *a = NULL;
        size_t n = 0;
        int rc;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                if (id_append(&a, &n, sqlite3_column_int64(st, 0)) < 0)
                        return util_err_set(err, ENOMEM, "read ids");
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "read ids", err);
        *ret = n ? TAKE_PTR(a) : NULL;
        *ret_n = n;
        return 0;
}

static int do_parents(struct snap_store *s, int64_t id, int64_t **ret, size_t *ret_n,
                      struct util_err *err)
{
        int r;

        {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                r = stmt_get(s, ST_BY_ID, &st, err);
                if (r >= 0)
                        r = bind_int(s, st, 1, id, err);
                if (r < 0)
                        return r;
                int rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        return util_err_setx(err, ENOENT, "does not exist");
                if (rc != SQLITE_ROW)
                        return db_fail(s, rc, "look up", err);
        }
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        r = stmt_get(s, ST_PARENTS, &st, err);
        if (r >= 0)
                r = bind_int(s, st, 1, id, err);
        if (r < 0)
                return r;
        return ids_collect(s, st, ret, ret_n, err);
}

int snap_store_parents(struct snap_store *s, int64_t id, int64_t **ret, size_t *ret_n,
                       struct util_err *err)
{
        _cleanup_free_ int64_t *a = NULL;
        size_t n = 0;
        struct op op;
        int r;

        r = op_begin(s, /* write= */ false, &op, err);
        if (r >= 0)
                r = do_parents(s, id, &a, &n, err);
        r = op_end(s, &op, r, err);
        if (r < 0)
                return util_err_prefix(err, "parents of id %lld", (long long)id);
        *ret = TAKE_PTR(a);
        *ret_n = n;
        return 0;
}

int snap_store_ids(struct snap_store *s, int64_t **ret, size_t *ret_n, struct util_err *err)
{
        _cleanup_free_ int64_t *a = NULL;
        size_t n = 0;
        struct op op;
        int r;

        r = op_begin(s, /* write= */ false, &op, err);
        if (r >= 0) {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                r = stmt_get(s, ST_IDS, &st, err);
                if (r >= 0)
                        r = ids_collect(s, st, &a, &n, err);
        }
        r = op_end(s, &op, r, err);
        if (r < 0)
                return util_err_prefix(err, "list ids");
        *ret = TAKE_PTR(a);
        *ret_n = n;
        return 0;
}

static int do_list(struct snap_store *s, struct snap_info **ret, size_t *ret_n,
                   struct util_err *err)
{
        struct snap_info *list = NULL;
        size_t n = 0, cap = 0;
        int r, rc;

        /* Rows and labels in two ordered scans, merged by id. */
        {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                r = stmt_get(s, ST_ALL, &st, err);
                if (r < 0)
                        return r;
                while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                        if (n == cap) {
                                struct snap_info *l =
                                        reallocarray(list, cap ? cap * 2 : 16, sizeof(*l));
                                if (!l)
                                        goto nomem;
                                list = l;
                                cap = cap ? cap * 2 : 16;
                        }
                        list[n] = (struct snap_info){0};
                        n++;
                        if (row_read(st, &list[n - 1]) < 0)
                                goto nomem;
                }
                if (rc != SQLITE_DONE) {
                        r = db_fail(s, rc, "read snapshots", err);
                        goto fail;
                }
        }
        {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                size_t at = 0;
                r = stmt_get(s, ST_ALL_LABELS, &st, err);
                if (r < 0)
                        goto fail;
                while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                        int64_t id = sqlite3_column_int64(st, 0);
                        while (at < n && list[at].id < id)
                                at++;
                        if (at == n || list[at].id != id)
                                continue; /* cannot happen: foreign key */
                        if (label_append(st, 1, &list[at]) < 0)
                                goto nomem;
                }
                if (rc != SQLITE_DONE) {
                        r = db_fail(s, rc, "read labels", err);
                        goto fail;
                }
        }
        *ret = list;
        *ret_n = n;
        return 0;

nomem:
        r = util_err_set(err, ENOMEM, "read snapshots");
fail:
        snap_info_list_free(list, n);
        return r;
}

int snap_store_list(struct snap_store *s, struct snap_info **ret, size_t *ret_n,
                    struct util_err *err)
{
        struct snap_info *list = NULL;
        size_t n = 0;
        struct op op;
        int r;

        r = op_begin(s, /* write= */ false, &op, err);
        if (r >= 0)
                r = do_list(s, &list, &n, err);
        r = op_end(s, &op, r, err);
        if (r < 0) {
                snap_info_list_free(list, n);
                return util_err_prefix(err, "list");
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int snap_store_integrity_check(struct snap_store *s, struct util_err *err)
{
        static const char *const checks[] = {"PRAGMA integrity_check", "PRAGMA foreign_key_check"};
        struct op op;
        int r;

        r = op_begin(s, /* write= */ false, &op, err);
        for (size_t c = 0; r >= 0 && c < UTIL_ARRAY_SIZE(checks); c++) {
                sqlite3_stmt *st = NULL;
                int rc = sqlite3_prepare_v2(s->db, checks[c], -1, &st, NULL);
                if (rc == SQLITE_OK)
                        rc = sqlite3_step(st);
                if (c == 0 && rc == SQLITE_ROW) {
                        const char *res = (const char *)sqlite3_column_text(st, 0);
                        if (!res || strcmp(res, "ok") != 0)
                                r = util_err_setx(err, EIO, "%s", res ? res : "no result");
                } else if (c == 1 && rc == SQLITE_ROW) {
                        /* table, rowid, parent table, foreign key index */
                        r = util_err_setx(err, EIO, "row %lld of %s: foreign key to %s broken",
                                          (long long)sqlite3_column_int64(st, 1),
                                          (const char *)sqlite3_column_text(st, 0),
                                          (const char *)sqlite3_column_text(st, 2));
                } else if (rc != SQLITE_DONE) {
                        r = db_fail(s, rc, checks[c], err);
                }
                sqlite3_finalize(st);
        }
        r = op_end(s, &op, r, err);
        if (r < 0)
                return util_err_prefix(err, "integrity check of '%s'", s->path);
        return 0;
}
