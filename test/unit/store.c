/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the metadata store (snapshot/store.c) and of Walk's filters
 * (snapshot/filter.c): containerd's snapshot semantics as tables, schema
 * versions, transactions, validation of untrusted keys and labels, and many
 * processes writing one database. No privileges needed; every test works in
 * its own mkdtemp directory under /tmp, removed when it ends. Every error case
 * checks the errno, the exact message, and that outputs were left alone. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "snapshot/store.h"

/* ---- fixture -------------------------------------------------------------- */

static char dir[64];
static char db[128];
static struct snap_store *st;

static void dir_remove(const char *path)
{
        DIR *d = opendir(path);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                char p[PATH_MAX];
                snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
                if (unlink(p) < 0 && errno == EISDIR)
                        dir_remove(p);
        }
        closedir(d);
        rmdir(path);
}

static void tmp_setup(void)
{
        snprintf(dir, sizeof(dir), "/tmp/loopsnap-store-XXXXXX");
        cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
        snprintf(db, sizeof(db), "%s/metadata.db", dir);
}

static void tmp_teardown(void)
{
        st = snap_store_close(st);
        dir_remove(dir);
}

static void store_setup(void)
{
        struct util_err err = {0};
        tmp_setup();
        int r = snap_store_open(db, &st, &err);
        cr_assert_eq(r, 0, "open: %d %s", r, err.msg);
}

TestSuite(store, .init = store_setup, .fini = tmp_teardown);
TestSuite(store_file, .init = tmp_setup, .fini = tmp_teardown);
TestSuite(filter);

/* ---- helpers -------------------------------------------------------------- */

#define L(k, v) ((struct snap_label){(char *)(k), (char *)(v)})

static void check_fail(int r, const struct util_err *err, int errnum, const char *msg,
                       const char *what)
{
        cr_expect_eq(r, -errnum, "%s: returned %d, expected %d (%s)", what, r, -errnum, err->msg);
        cr_expect_eq(err->errnum, errnum, "%s: errnum %d", what, err->errnum);
        if (msg)
                cr_expect_str_eq(err->msg, msg, "%s: message\n  got:  %s\n  want: %s", what,
                                 err->msg, msg);
}

static int64_t create_ok(enum snap_kind kind, const char *key, const char *parent)
{
        struct util_err err = {0};
        struct snap_info i = {0};
        int r = snap_store_create(st, kind, key, parent, NULL, 0, &i, &err);
        cr_assert_eq(r, 0, "create %s: %d %s", key, r, err.msg);
        cr_assert_eq(err.errnum, 0, "err untouched on success");
        int64_t id = i.id;
        snap_info_done(&i);
        return id;
}

static void commit_ok(const char *name, const char *key)
{
        struct util_err err = {0};
        int r = snap_store_commit_active(st, name, key, NULL, 0, 0, 0, NULL, &err);
        cr_assert_eq(r, 0, "commit %s as %s: %d %s", key, name, r, err.msg);
}

/* A committed snapshot `name` on `parent`, through a temporary active key. */
static int64_t committed_ok(const char *name, const char *parent)
{
        char key[256];
        snprintf(key, sizeof(key), "tmp-%s", name);
        int64_t id = create_ok(SNAP_KIND_ACTIVE, key, parent);
        commit_ok(name, key);
        return id;
}

static struct snap_info get_ok(const char *name)
{
        struct util_err err = {0};
        struct snap_info i = {0};
        int r = snap_store_get(st, name, &i, &err);
        cr_assert_eq(r, 0, "get %s: %d %s", name, r, err.msg);
        return i;
}

static bool exists(const char *name)
{
        struct util_err err = {0};
        struct snap_info i = {0};
        int r = snap_store_get(st, name, &i, &err);
        snap_info_done(&i);
        cr_assert(r == 0 || r == -ENOENT, "get %s: %d %s", name, r, err.msg);
        return r == 0;
}

static void assert_labels(const struct snap_info *i, const struct snap_label *want, size_t n)
{
        cr_assert_eq(i->n_labels, n, "'%s': %zu labels, want %zu", i->name, i->n_labels, n);
        for (size_t k = 0; k < n; k++) {
                cr_expect_str_eq(i->labels[k].key, want[k].key, "label %zu", k);
                cr_expect_str_eq(i->labels[k].value, want[k].value, "label %zu", k);
        }
}

static int64_t count_rows(void)
{
        struct util_err err = {0};
        int64_t *ids = NULL;
        size_t n = 0;
        int r = snap_store_ids(st, &ids, &n, &err);
        cr_assert_eq(r, 0, "ids: %s", err.msg);
        free(ids);
        return (int64_t)n;
}

/* Runs SQL on a database file directly (to build odd databases). */
static void sql_exec(const char *path, const char *sql)
{
        sqlite3 *h = NULL;
        cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
        char *msg = NULL;
        int rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
        cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(h);
}

static int64_t sql_int(const char *path, const char *sql)
{
        sqlite3 *h = NULL;
        sqlite3_stmt *s = NULL;
        cr_assert_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK, "%s", sqlite3_errmsg(h));
        cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
        int64_t v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        sqlite3_close(h);
        return v;
}

/* ---- kinds and validation ------------------------------------------------- */

Test(filter, kind_names)
{
        cr_expect_str_eq(snap_kind_name(SNAP_KIND_VIEW), "view");
        cr_expect_str_eq(snap_kind_name(SNAP_KIND_ACTIVE), "active");
        cr_expect_str_eq(snap_kind_name(SNAP_KIND_COMMITTED), "committed");
        cr_expect_str_eq(snap_kind_name(SNAP_KIND_UNKNOWN), "unknown");
        cr_expect_str_eq(snap_kind_name((enum snap_kind)42), "unknown");
        cr_expect_eq(snap_kind_parse("Committed"), SNAP_KIND_COMMITTED);
        cr_expect_eq(snap_kind_parse("VIEW"), SNAP_KIND_VIEW);
        cr_expect_eq(snap_kind_parse("active"), SNAP_KIND_ACTIVE);
        cr_expect_eq(snap_kind_parse("activ"), SNAP_KIND_UNKNOWN);
        cr_expect_eq(snap_kind_parse(""), SNAP_KIND_UNKNOWN);
        cr_expect_eq(snap_kind_parse(NULL), SNAP_KIND_UNKNOWN);
}

Test(filter, key_check_table)
{
        static char exact[SNAP_KEY_MAX + 1], over[SNAP_KEY_MAX + 2];
        memset(exact, 'k', SNAP_KEY_MAX);
        memset(over, 'k', SNAP_KEY_MAX + 1);
        static const char *const good[] = {
                "a",
                "sha256:0123abcd",
                "default/12/extract-123 sha256:abc",
                "\xe6\x97\xa5\xe6\x9c\xac", /* 日本 */
                "\xf0\x9f\x90\xae",         /* U+1F42E */
                /* NOLINTNEXTLINE(bugprone-suspicious-missing-comma): one, split after \xa0 */
                "a\xc2\xa0"
                "b", /* U+00A0, just above C1 */
                exact,
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(good); i++) {
                struct util_err err = {0};
                cr_expect_eq(snap_key_check(good[i], &err), 0, "good[%zu]: %s", i, err.msg);
                cr_expect_eq(err.errnum, 0);
        }

        static const struct {
                const char *key, *msg;
        } bad[] = {
                {NULL, "key is empty"},
                {"", "key is empty"},
                {over, "key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...' is longer than 1024 bytes"},
                {"a\nb", "key 'a\\x0ab': control character 0x0a at byte 1"},
                {"ab\x7f", "key 'ab\\x7f': control character 0x7f at byte 2"},
                {"\x1b[31m", "key '\\x1b[31m': control character 0x1b at byte 0"},
                {"a\xc2\x85", "key 'a\\xc2\\x85': control character U+0085 at byte 1"},
                {"a\xff", "key 'a\\xff': invalid UTF-8 at byte 1"},
                /* overlong '/', overlong 3-byte form, surrogate, truncated,
                 * above U+10FFFF, lone continuation byte */
                {"\xc0\xaf", "key '\\xc0\\xaf': invalid UTF-8 at byte 0"},
                {"x\xe0\x80\xaf", "key 'x\\xe0\\x80\\xaf': invalid UTF-8 at byte 1"},
                {"\xed\xa0\x80", "key '\\xed\\xa0\\x80': invalid UTF-8 at byte 0"},
                {"ab\xe6\x97", "key 'ab\\xe6\\x97': invalid UTF-8 at byte 2"},
                {"\xf4\x90\x80\x80", "key '\\xf4\\x90\\x80\\x80': invalid UTF-8 at byte 0"},
                {"a\x80", "key 'a\\x80': invalid UTF-8 at byte 1"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++) {
                struct util_err err = {0};
                char what[32];
                snprintf(what, sizeof(what), "bad[%zu]", i);
                check_fail(snap_key_check(bad[i].key, &err), &err, EINVAL, bad[i].msg, what);
        }
}

Test(filter, labels_check_table)
{
        static char k4000[4001], v96[97], v97[98];
        memset(k4000, 'k', 4000);
        memset(v96, 'v', 96);
        memset(v97, 'v', 97);
        struct snap_label ok[] = {L("b", "2"), L("a", ""), L(k4000, v96),
                                  L("containerd.io/snapshot/uidmapping", "0:100000:65536")};
        struct util_err err = {0};
        cr_expect_eq(snap_labels_check(ok, UTIL_ARRAY_SIZE(ok), &err), 0, "%s", err.msg);
        cr_expect_eq(snap_labels_check(NULL, 0, &err), 0);

        static struct snap_label many[SNAP_LABELS_MAX_COUNT + 1];
        static char keys[SNAP_LABELS_MAX_COUNT + 1][8];
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(many); i++) {
                snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
                many[i] = L(keys[i], "v");
        }
        cr_expect_eq(snap_labels_check(many, SNAP_LABELS_MAX_COUNT, &err), 0, "%s", err.msg);

        static const struct {
                struct snap_label l[2];
                size_t n;
                const char *msg;
        } bad[] = {
                {{L("", "v")}, 1, "labels[0]: empty key"},
                {{L("a", "b"), L(NULL, "v")}, 2, "labels[1]: empty key"},
                {{L("a", NULL)}, 1, "label 'a': no value"},
                {{L(k4000, v97)},
                 1,
                 "label 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...': key and value are longer than 4096 "
                 "bytes"},
                {{L("k", "ab\nc")}, 1, "label 'k': control character 0x0a in the value at byte 2"},
                {{L("k\t", "v")}, 1, "label 'k\\x09': control character 0x09 in the key at byte 1"},
                {{L("k", "\xc2\x9b")},
                 1,
                 "label 'k': control character U+009B in the value at byte 0"},
                {{L("k\xfe", "v")}, 1, "label 'k\\xfe': invalid UTF-8 in the key at byte 1"},
                {{L("k", "a\xc3")}, 1, "label 'k': invalid UTF-8 in the value at byte 1"},
                {{L("dup", "1"), L("dup", "2")}, 2, "label 'dup' is given twice"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++) {
                char what[32];
                snprintf(what, sizeof(what), "bad[%zu]", i);
                util_err_clear(&err);
                check_fail(snap_labels_check(bad[i].l, bad[i].n, &err), &err, EINVAL, bad[i].msg,
                           what);
        }
        util_err_clear(&err);
        check_fail(snap_labels_check(many, UTIL_ARRAY_SIZE(many), &err), &err, EINVAL,
                   "257 labels, more than 256", "too many");
}

/* ---- opening, schema ------------------------------------------------------ */

Test(store_file, fresh_database_is_version_1_mode_0600_cloexec)
{
        struct util_err err = {0};
        struct stat sb;

        umask(0277); /* would make a plain create 0400 */
        int r = snap_store_open(db, &st, &err);
        cr_assert_eq(r, 0, "open: %s", err.msg);
        umask(022);
        create_ok(SNAP_KIND_ACTIVE, "k", NULL); /* makes the -wal and -shm files */

        static const char *const suffix[] = {"", "-wal", "-shm"};
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(suffix); i++) {
                char p[160];
                snprintf(p, sizeof(p), "%s%s", db, suffix[i]);
                cr_assert_eq(stat(p, &sb), 0, "stat %s: %s", p, strerror(errno));
                cr_expect_eq(sb.st_mode & 07777, 0600, "%s: mode %o", p, sb.st_mode & 07777);
        }

        /* Every fd SQLite holds on our files is close-on-exec. */
        DIR *d = opendir("/proc/self/fd");
        cr_assert_not_null(d);
        struct dirent *de;
        int seen = 0;
        while ((de = readdir(d))) {
                char link[64], target[PATH_MAX];
                int fd = atoi(de->d_name);
                if (de->d_name[0] == '.' || fd == dirfd(d))
                        continue;
                snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
                ssize_t n = readlink(link, target, sizeof(target) - 1);
                if (n <= 0)
                        continue;
                target[n] = '\0';
                if (strncmp(target, dir, strlen(dir)) != 0)
                        continue;
                seen++;
                int fl = fcntl(fd, F_GETFD);
                cr_expect(fl >= 0 && (fl & FD_CLOEXEC), "fd %d (%s) is not close-on-exec", fd,
                          target);
        }
        closedir(d);
        cr_expect_geq(seen, 3, "db, -wal and -shm are open (saw %d)", seen);

        st = snap_store_close(st);
        cr_expect_eq(sql_int(db, "PRAGMA user_version"), SNAP_STORE_SCHEMA_VERSION);
        cr_expect_eq(sql_int(db, "PRAGMA application_id"), 0x4c534e50);
        cr_expect_eq(sql_int(db, "SELECT count(*) FROM sqlite_schema WHERE name IN "
                                 "('snapshots', 'labels', 'snapshots_parent')"),
                     3);
}

Test(store_file, empty_file_is_version_0_and_migrated)
{
        struct util_err err = {0};
        int fd = open(db, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
        cr_assert_geq(fd, 0);
        close(fd);
        int r = snap_store_open(db, &st, &err);
        cr_assert_eq(r, 0, "open: %s", err.msg);
        create_ok(SNAP_KIND_VIEW, "v", NULL);
        st = snap_store_close(st);
        cr_expect_eq(sql_int(db, "PRAGMA user_version"), 1);
        struct stat sb;
        cr_assert_eq(stat(db, &sb), 0);
        cr_expect_eq(sb.st_mode & 07777, 0640, "an existing file keeps its mode");
}

Test(store_file, reopen_keeps_data)
{
        struct util_err err = {0};
        cr_assert_eq(snap_store_open(db, &st, &err), 0, "%s", err.msg);
        int64_t id = committed_ok("base", NULL);
        st = snap_store_close(st);
        cr_assert_null(st);
        cr_assert_null(snap_store_close(NULL));

        cr_assert_eq(snap_store_open(db, &st, &err), 0, "%s", err.msg);
        struct snap_info i = get_ok("base");
        cr_expect_eq(i.id, id);
        cr_expect_eq(i.kind, SNAP_KIND_COMMITTED);
        snap_info_done(&i);
}

/*
 * Each open/close here is a short process's whole life (the hook's stages,
 * snapctl): the last connection's close drops SQLite's WAL index, and the
 * next open rebuilds it from the -wal file. The WAL must still be
 * checkpointed and truncated now and then instead of growing with every
 * commit (which it did with SQLite's own autocheckpoint).
 */
Test(store_file, wal_stays_bounded_across_short_connections)
{
        struct util_err err = {0};
        char wal[160];
        struct stat sb;
        off_t most = 0;

        snprintf(wal, sizeof(wal), "%s-wal", db);
        /* One commit per connection, as a hook stage makes: a create, and
         * for two keys in three a remove by the next connection. */
        for (int i = 0; i < 250; i++) {
                char key[32];
                snprintf(key, sizeof(key), "k%d", i / 2);
                cr_assert_eq(snap_store_open(db, &st, &err), 0, "open %d: %s", i, err.msg);
                if (i % 2 == 0) {
                        create_ok(SNAP_KIND_ACTIVE, key, NULL);
                } else if ((i / 2) % 3 != 0) {
                        struct snap_info gone = {0};
                        cr_assert_eq(snap_store_remove(st, key, &gone, &err), 0, "remove %s: %s",
                                     key, err.msg);
                        snap_info_done(&gone);
                }
                st = snap_store_close(st);
                cr_assert_eq(stat(wal, &sb), 0, "stat %s: %s", wal, strerror(errno));
                if (sb.st_size > most)
                        most = sb.st_size;
        }
        /* 32 frames of 4 KiB + 24 bytes trigger the checkpoint; one
         * commit adds a handful more. Without checkpoints that restart the
         * WAL, these commits leave several hundred. */
        off_t bound = 32 + 64 * (4096 + 24);
        cr_expect_leq(most, bound, "the WAL grew to %lld bytes (bound %lld)", (long long)most,
                      (long long)bound);

        cr_assert_eq(snap_store_open(db, &st, &err), 0, "%s", err.msg);
        struct snap_info i = get_ok("k123");
        cr_expect_eq(i.kind, SNAP_KIND_ACTIVE);
        snap_info_done(&i);
        cr_expect_eq(sql_int(db, "SELECT count(*) FROM snapshots"), 42);
}

/* Frames a first opener of `path` finds in its WAL (it rebuilds the WAL
 * index from the file while no other connection is open). */
static int64_t wal_frames_replayed(const char *path)
{
        sqlite3 *h = NULL;
        sqlite3_stmt *s = NULL;
        cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
        cr_assert_eq(sqlite3_prepare_v2(h, "PRAGMA wal_checkpoint(PASSIVE)", -1, &s, NULL),
                     SQLITE_OK, "%s", sqlite3_errmsg(h));
        cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
        int64_t v = sqlite3_column_int64(s, 1); /* busy, log, checkpointed */
        sqlite3_finalize(s);
        sqlite3_close(h);
        return v;
}

/* A connection that lives on (the library in a runtime) checkpoints once
 * the WAL reaches 256 frames, not at 32, and restarts it there without
 * truncating the file (its next commits overwrite the old frames). What it
 * leaves at close is a few dozen frames at most for the next opener. */
Test(store_file, long_connection_checkpoints_at_its_bound_and_at_close)
{
        struct util_err err = {0};
        const off_t frame = 4096 + 24;
        char wal[160];
        struct stat sb;
        off_t most = 0;

        snprintf(wal, sizeof(wal), "%s-wal", db);
        cr_assert_eq(snap_store_open(db, &st, &err), 0, "%s", err.msg);
        for (int i = 0; i < 400; i++) {
                char key[32];
                snprintf(key, sizeof(key), "k%d", i);
                create_ok(SNAP_KIND_ACTIVE, key, NULL);
                if (i % 4 != 0) {
                        struct snap_info gone = {0};
                        cr_assert_eq(snap_store_remove(st, key, &gone, &err), 0, "remove %s: %s",
                                     key, err.msg);
                        snap_info_done(&gone);
                }
                cr_assert_eq(stat(wal, &sb), 0, "stat %s: %s", wal, strerror(errno));
                cr_expect_geq(sb.st_size, most, "the WAL shrank from %lld to %lld bytes at %d",
                              (long long)most, (long long)sb.st_size, i);
                if (sb.st_size > most)
                        most = sb.st_size;
        }
        /* Past the short connections' 32 frames, within 256 plus a commit:
         * ~2,800 frames were written, so the WAL restarted several times. */
        cr_expect_gt(most, 64 * frame, "the WAL grew to %lld bytes only", (long long)most);
        cr_expect_leq(most, 32 + (256 + 32) * frame, "the WAL grew to %lld bytes", (long long)most);
        st = snap_store_close(st);
        int64_t left = wal_frames_replayed(db);
        cr_expect_lt(left, 32, "a first opener replays %lld frames", (long long)left);

        cr_assert_eq(snap_store_open(db, &st, &err), 0, "%s", err.msg);
        cr_expect_eq(sql_int(db, "SELECT count(*) FROM snapshots"), 100);
}

/* Closing right after the commit that restarted the WAL, before a commit
 * overwrote the old frames (which still check out), truncates it. */
Test(store_file, a_close_after_the_restart_truncates_the_wal)
{
        struct util_err err = {0};
        const off_t frame = 4096 + 24;
        char wal[160];
        struct stat sb = {0};
        int i = 0;

        snprintf(wal, sizeof(wal), "%s-wal", db);
        cr_assert_eq(snap_store_open(db, &st, &err), 0, "%s", err.msg);
        /* The commit that takes the WAL to 256 frames restarts it. */
        while (sb.st_size < 32 + 256 * frame) {
                char key[32];
                cr_assert_lt(i, 400, "the WAL reached %lld bytes only", (long long)sb.st_size);
                snprintf(key, sizeof(key), "k%d", i++);
                create_ok(SNAP_KIND_ACTIVE, key, NULL);
                cr_assert_eq(stat(wal, &sb), 0, "stat %s: %s", wal, strerror(errno));
        }
        st = snap_store_close(st);
        cr_assert_eq(stat(wal, &sb), 0, "stat %s: %s", wal, strerror(errno));
        cr_expect_eq(sb.st_size, 0, "the WAL holds %lld bytes after the close",
                     (long long)sb.st_size);
        cr_expect_eq(wal_frames_replayed(db), 0);
        cr_expect_eq(sql_int(db, "SELECT count(*) FROM snapshots"), i);
}

Test(store_file, refuses_newer_foreign_and_odd_files)
{
        struct util_err err = {0};
        struct snap_store *s = NULL;
        char msg[512];

        sql_exec(db, "PRAGMA application_id = 1280527952; PRAGMA user_version = 99");
        snprintf(msg, sizeof(msg),
                 "open store: '%s' was created by a newer loopsnap (schema version 99, this build "
                 "knows up to 1)",
                 db);
        check_fail(snap_store_open(db, &s, &err), &err, EINVAL, msg, "version 99");
        cr_expect_null(s, "ret untouched");
        unlink(db);

        util_err_clear(&err);
        sql_exec(db, "CREATE TABLE foo (x)");
        snprintf(msg, sizeof(msg),
                 "open store: migrate schema v0 to v1: '%s' is not a loopsnap database (it has "
                 "tables but no schema version)",
                 db);
        check_fail(snap_store_open(db, &s, &err), &err, EINVAL, msg, "foreign v0");
        cr_expect_eq(sql_int(db, "SELECT count(*) FROM sqlite_schema"), 1, "nothing added");
        unlink(db);

        util_err_clear(&err);
        sql_exec(db, "PRAGMA user_version = 1");
        snprintf(msg, sizeof(msg),
                 "open store: '%s' is not a loopsnap database (application id 0x0)", db);
        check_fail(snap_store_open(db, &s, &err), &err, EINVAL, msg, "foreign v1");
        unlink(db);

        util_err_clear(&err);
        char sub[128];
        snprintf(sub, sizeof(sub), "%s/d", dir);
        cr_assert_eq(mkdir(sub, 0700), 0);
        snprintf(msg, sizeof(msg), "open store: '%s' is not a regular file", sub);
        check_fail(snap_store_open(sub, &s, &err), &err, EINVAL, msg, "directory");

        util_err_clear(&err);
        char link[128];
        snprintf(link, sizeof(link), "%s/link.db", dir);
        cr_assert_eq(symlink("metadata.db", link), 0);
        snprintf(msg, sizeof(msg), "open store: open '%s': Too many levels of symbolic links",
                 link);
        check_fail(snap_store_open(link, &s, &err), &err, ELOOP, msg, "symlink");

        util_err_clear(&err);
        check_fail(snap_store_open("", &s, &err), &err, EINVAL, "open store: no path", "empty");
        cr_expect_null(s);
}

/* ---- create --------------------------------------------------------------- */

Test(store, create_returns_the_row)
{
        struct util_err err = {0};
        struct snap_info i = {0};
        struct snap_label in[] = {L("zeta", "1"), L("alpha", "2"), L("mid", "")};
        struct snap_label sorted[] = {L("alpha", "2"), L("mid", ""), L("zeta", "1")};
        int64_t base = committed_ok("base", NULL);

        int r = snap_store_create(st, SNAP_KIND_ACTIVE, "k", "base", in, 3, &i, &err);
        cr_assert_eq(r, 0, "%s", err.msg);
        cr_expect_gt(i.id, base);
        cr_expect_eq(i.kind, SNAP_KIND_ACTIVE);
        cr_expect_str_eq(i.name, "k");
        cr_expect_str_eq(i.parent, "base");
        cr_expect_eq(i.parent_id, base);
        cr_expect_gt(i.created_ns, 1600000000LL * 1000000000);
        cr_expect_eq(i.created_ns, i.updated_ns);
        cr_expect_eq(i.size, 0);
        cr_expect_eq(i.inodes, 0);
        assert_labels(&i, sorted, 3);
        snap_info_done(&i);
        cr_expect_null(i.name, "done zeroes");
        snap_info_done(NULL);

        /* The same through get, and a view without parent and ret. */
        i = get_ok("k");
        assert_labels(&i, sorted, 3);
        snap_info_done(&i);
        r = snap_store_create(st, SNAP_KIND_VIEW, "v", "", NULL, 0, NULL, &err);
        cr_assert_eq(r, 0, "%s", err.msg);
        i = get_ok("v");
        cr_expect_eq(i.kind, SNAP_KIND_VIEW);
        cr_expect_null(i.parent);
        cr_expect_eq(i.parent_id, 0);
        cr_expect_eq(i.n_labels, 0);
        cr_expect_null(i.labels);
        snap_info_done(&i);
}

Test(store, create_errors_table)
{
        committed_ok("base", NULL);
        create_ok(SNAP_KIND_ACTIVE, "a1", "base");
        create_ok(SNAP_KIND_VIEW, "v1", "base");
        struct snap_label bad_label[] = {L("x", "a\nb")};

        static const struct {
                enum snap_kind kind;
                const char *key, *parent;
                int errnum;
                const char *msg;
        } cases[] = {
                /* One key space for every kind. */
                {SNAP_KIND_ACTIVE, "base", NULL, EEXIST,
                 "create active 'base': already exists (committed)"},
                {SNAP_KIND_VIEW, "base", "base", EEXIST,
                 "create view 'base': already exists (committed)"},
                {SNAP_KIND_ACTIVE, "a1", NULL, EEXIST,
                 "create active 'a1': already exists (active)"},
                {SNAP_KIND_VIEW, "a1", "base", EEXIST, "create view 'a1': already exists (active)"},
                {SNAP_KIND_ACTIVE, "v1", NULL, EEXIST, "create active 'v1': already exists (view)"},
                {SNAP_KIND_ACTIVE, "new", "nope", ENOENT,
                 "create active 'new': parent 'nope' does not exist"},
                {SNAP_KIND_VIEW, "new", "nope", ENOENT,
                 "create view 'new': parent 'nope' does not exist"},
                {SNAP_KIND_ACTIVE, "new", "a1", EINVAL,
                 "create active 'new': parent 'a1' is not committed (active)"},
                {SNAP_KIND_VIEW, "new", "v1", EINVAL,
                 "create view 'new': parent 'v1' is not committed (view)"},
                {SNAP_KIND_COMMITTED, "new", NULL, EINVAL,
                 "create: kind must be view or active, not committed"},
                {SNAP_KIND_UNKNOWN, "new", NULL, EINVAL,
                 "create: kind must be view or active, not unknown"},
                {SNAP_KIND_ACTIVE, "", NULL, EINVAL, "create active: key is empty"},
                {SNAP_KIND_ACTIVE, "n\x01", NULL, EINVAL,
                 "create active: key 'n\\x01': control character 0x01 at byte 1"},
                {SNAP_KIND_ACTIVE, "new", "p\xff", EINVAL,
                 "create active: key 'p\\xff': invalid UTF-8 at byte 1"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                struct util_err err = {0};
                struct snap_info out = {.id = -7};
                char what[32];
                snprintf(what, sizeof(what), "case %zu", i);
                int r = snap_store_create(st, cases[i].kind, cases[i].key, cases[i].parent, NULL, 0,
                                          &out, &err);
                check_fail(r, &err, cases[i].errnum, cases[i].msg, what);
                cr_expect_eq(out.id, -7, "%s: ret untouched", what);
        }
        struct util_err err = {0};
        check_fail(snap_store_create(st, SNAP_KIND_ACTIVE, "new", NULL, bad_label, 1, NULL, &err),
                   &err, EINVAL,
                   "create active: label 'x': control character 0x0a in the value at byte 1",
                   "bad label");
        cr_expect_not(exists("new"), "nothing created by the failures");
        cr_expect_eq(count_rows(), 3);
}

/* ---- commit --------------------------------------------------------------- */

Test(store, commit_keeps_id_and_parent_replaces_labels)
{
        struct util_err err = {0};
        struct snap_info c = {0};
        struct snap_label before[] = {L("containerd.io/snapshot.ref", "x"), L("keep", "no")};
        struct snap_label after[] = {L("new", "1")};
        int64_t base = committed_ok("base", NULL);
        struct snap_info a = {0};

        int r = snap_store_create(st, SNAP_KIND_ACTIVE, "k", "base", before, 2, &a, &err);
        cr_assert_eq(r, 0, "%s", err.msg);
        usleep(2000);
        const uint64_t big = (1ULL << 63) + 5; /* round-trips through a signed column */
        r = snap_store_commit_active(st, "layer", "k", after, 1, big, 12345, &c, &err);
        cr_assert_eq(r, 0, "%s", err.msg);
        cr_expect_eq(c.id, a.id, "commit keeps the id");
        cr_expect_eq(c.kind, SNAP_KIND_COMMITTED);
        cr_expect_str_eq(c.name, "layer");
        cr_expect_str_eq(c.parent, "base");
        cr_expect_eq(c.parent_id, base);
        cr_expect_eq(c.size, big);
        cr_expect_eq(c.inodes, 12345);
        cr_expect_eq(c.created_ns, a.created_ns, "created unchanged");
        cr_expect_gt(c.updated_ns, a.updated_ns, "updated bumped");
        assert_labels(&c, after, 1);
        snap_info_done(&c);
        snap_info_done(&a);

        cr_expect_not(exists("k"), "the active key is gone");
        c = get_ok("layer");
        cr_expect_eq(c.size, big);
        assert_labels(&c, after, 1);
        snap_info_done(&c);

        /* Committed with no labels and without ret: the old ones are dropped. */
        create_ok(SNAP_KIND_ACTIVE, "k2", "layer");
        r = snap_store_update(st, "k2", before, 2, NULL, 0, NULL, &err);
        cr_assert_eq(r, 0, "%s", err.msg);
        r = snap_store_commit_active(st, "layer2", "k2", NULL, 0, 0, 0, NULL, &err);
        cr_assert_eq(r, 0, "%s", err.msg);
        c = get_ok("layer2");
        cr_expect_eq(c.n_labels, 0);
        snap_info_done(&c);
}

Test(store, commit_errors_table)
{
        committed_ok("base", NULL);
        create_ok(SNAP_KIND_ACTIVE, "a1", "base");
        create_ok(SNAP_KIND_VIEW, "v1", "base");

        static const struct {
                const char *name, *key;
                int errnum;
                const char *msg;
        } cases[] = {
                {"base", "a1", EEXIST, "commit 'a1' as 'base': 'base' already exists (committed)"},
                {"v1", "a1", EEXIST, "commit 'a1' as 'v1': 'v1' already exists (view)"},
                {"a1", "a1", EEXIST, "commit 'a1' as 'a1': 'a1' already exists (active)"},
                /* containerd checks the name before the key. */
                {"base", "nope", EEXIST,
                 "commit 'nope' as 'base': 'base' already exists (committed)"},
                {"n", "nope", ENOENT, "commit 'nope' as 'n': 'nope' does not exist"},
                {"n", "v1", EBUSY,
                 "commit 'v1' as 'n': 'v1' is a view; only active snapshots can be committed"},
                {"n", "base", EBUSY,
                 "commit 'base' as 'n': 'base' is already committed; only active snapshots can be "
                 "committed"},
                {"", "a1", EINVAL, "commit: key is empty"},
                {"n", "", EINVAL, "commit: key is empty"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                struct util_err err = {0};
                struct snap_info out = {.id = -7};
                char what[32];
                snprintf(what, sizeof(what), "case %zu", i);
                int r = snap_store_commit_active(st, cases[i].name, cases[i].key, NULL, 0, 1, 1,
                                                 &out, &err);
                check_fail(r, &err, cases[i].errnum, cases[i].msg, what);
                cr_expect_eq(out.id, -7, "%s: ret untouched", what);
        }
        cr_expect(exists("a1") && exists("v1") && !exists("n"));
        struct snap_info a = get_ok("a1");
        cr_expect_eq(a.kind, SNAP_KIND_ACTIVE);
        snap_info_done(&a);
}

/* ---- remove --------------------------------------------------------------- */

Test(store, remove_semantics)
{
        struct util_err err = {0};
        struct snap_info out = {0};
        int64_t base = committed_ok("base", NULL);
        committed_ok("c1", "base");
        int64_t v = create_ok(SNAP_KIND_VIEW, "v", "c1");

        check_fail(snap_store_remove(st, "base", &out, &err), &err, EBUSY,
                   "remove 'base': is the parent of 'c1'", "parent with a child");
        create_ok(SNAP_KIND_ACTIVE, "a2", "base");
        create_ok(SNAP_KIND_VIEW, "v2", "base");
        util_err_clear(&err);
        check_fail(snap_store_remove(st, "base", &out, &err), &err, EBUSY,
                   "remove 'base': is the parent of 'c1' and 2 more", "parent with 3 children");
        cr_expect_eq(out.id, 0, "ret untouched");
        util_err_clear(&err);
        check_fail(snap_store_remove(st, "nope", &out, &err), &err, ENOENT,
                   "remove 'nope': does not exist", "missing");
        util_err_clear(&err);
        check_fail(snap_store_remove(st, "", &out, &err), &err, EINVAL, "remove: key is empty",
                   "empty");

        /* Leaves first, then the parent (containerd's GC order). */
        cr_assert_eq(snap_store_remove(st, "v", &out, &err), 0, "%s", err.msg);
        cr_expect_eq(out.id, v);
        cr_expect_eq(out.kind, SNAP_KIND_VIEW);
        cr_expect_str_eq(out.name, "v");
        cr_expect_str_eq(out.parent, "c1");
        snap_info_done(&out);
        const char *order[] = {"c1", "a2", "v2"};
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(order); i++)
                cr_assert_eq(snap_store_remove(st, order[i], NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_store_remove(st, "base", &out, &err), 0, "%s", err.msg);
        cr_expect_eq(out.id, base);
        cr_expect_eq(out.kind, SNAP_KIND_COMMITTED);
        snap_info_done(&out);
        cr_expect_eq(count_rows(), 0);
}

Test(store, remove_drops_labels_and_ids_are_never_reused)
{
        struct util_err err = {0};
        struct snap_label l[] = {L("a", "1"), L("b", "2")};
        int64_t a = create_ok(SNAP_KIND_ACTIVE, "a", NULL);
        cr_assert_eq(snap_store_create(st, SNAP_KIND_ACTIVE, "b", NULL, l, 2, NULL, &err), 0);
        int64_t b = a + 1;
        cr_assert_eq(snap_store_remove(st, "b", NULL, &err), 0, "%s", err.msg);
        int64_t c = create_ok(SNAP_KIND_ACTIVE, "b", NULL);
        cr_expect_gt(c, b, "the highest id (%lld) is not handed out again (%lld)", (long long)b,
                     (long long)c);
        st = snap_store_close(st);
        cr_expect_eq(sql_int(db, "SELECT count(*) FROM labels"), 0, "labels cascade");
        cr_assert_eq(snap_store_open(db, &st, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_store_remove(st, "b", NULL, &err), 0);
        cr_expect_gt(create_ok(SNAP_KIND_ACTIVE, "d", NULL), c, "also across reopen");
}

/* ---- get ------------------------------------------------------------------ */

Test(store, get_and_get_id)
{
        struct util_err err = {0};
        struct snap_info i = {.id = -7};
        int64_t id = create_ok(SNAP_KIND_VIEW, "v", NULL);

        cr_assert_eq(snap_store_get_id(st, id, &i, &err), 0, "%s", err.msg);
        cr_expect_str_eq(i.name, "v");
        snap_info_done(&i);

        i.id = -7;
        check_fail(snap_store_get(st, "nope", &i, &err), &err, ENOENT, "get 'nope': does not exist",
                   "missing name");
        cr_expect_eq(i.id, -7);
        util_err_clear(&err);
        check_fail(snap_store_get_id(st, 42, &i, &err), &err, ENOENT, "get id 42: does not exist",
                   "missing id");
        util_err_clear(&err);
        check_fail(snap_store_get(st, NULL, &i, &err), &err, EINVAL, "get: key is empty", "NULL");
        cr_expect_eq(i.id, -7);
}

/* ---- update --------------------------------------------------------------- */

Test(store, update_semantics)
{
        struct util_err err = {0};
        struct snap_info i = {0}, before = {0};
        struct snap_label init[] = {L("a", "1"), L("b", "2"), L("c", "3")};
        cr_assert_eq(snap_store_create(st, SNAP_KIND_ACTIVE, "k", NULL, init, 3, &before, &err), 0);

        /* Whole set: no field paths. */
        usleep(2000);
        struct snap_label repl[] = {L("x", "9")};
        cr_assert_eq(snap_store_update(st, "k", repl, 1, NULL, 0, &i, &err), 0, "%s", err.msg);
        assert_labels(&i, repl, 1);
        cr_expect_eq(i.created_ns, before.created_ns, "created unchanged");
        cr_expect_gt(i.updated_ns, before.updated_ns, "updated bumped");
        int64_t prev = i.updated_ns;
        snap_info_done(&i);

        /* "labels": the whole set as well; empty set clears. */
        const char *all[] = {"labels"};
        usleep(2000);
        cr_assert_eq(snap_store_update(st, "k", NULL, 0, all, 1, &i, &err), 0, "%s", err.msg);
        cr_expect_eq(i.n_labels, 0);
        cr_expect_gt(i.updated_ns, prev);
        snap_info_done(&i);

        /* labels.<k>: set from `labels`, delete when absent there. */
        cr_assert_eq(snap_store_update(st, "k", init, 3, NULL, 0, NULL, &err), 0);
        struct snap_label in[] = {L("b", "two"), L("z", "26"), L("ignored", "x")};
        const char *paths[] = {"labels.b", "labels.c", "labels.z", "labels.not-there"};
        cr_assert_eq(snap_store_update(st, "k", in, 3, paths, 4, &i, &err), 0, "%s", err.msg);
        struct snap_label want[] = {L("a", "1"), L("b", "two"), L("z", "26")};
        assert_labels(&i, want, 3);
        snap_info_done(&i);

        /* "labels" among single keys means the whole set. */
        const char *mixed[] = {"labels.a", "labels"};
        cr_assert_eq(snap_store_update(st, "k", repl, 1, mixed, 2, &i, &err), 0, "%s", err.msg);
        assert_labels(&i, repl, 1);
        snap_info_done(&i);

        static const struct {
                const char *path;
                const char *msg;
        } bad[] = {
                {"name", "update 'k': cannot update field 'name' (only labels and labels.<key>)"},
                {"labels.",
                 "update 'k': cannot update field 'labels.' (only labels and labels.<key>)"},
                {"labelsx",
                 "update 'k': cannot update field 'labelsx' (only labels and labels.<key>)"},
                {"kind", "update 'k': cannot update field 'kind' (only labels and labels.<key>)"},
                {"parent",
                 "update 'k': cannot update field 'parent' (only labels and labels.<key>)"},
        };
        for (size_t n = 0; n < UTIL_ARRAY_SIZE(bad); n++) {
                const char *p[] = {"labels.x", bad[n].path};
                util_err_clear(&err);
                i.id = -7;
                check_fail(snap_store_update(st, "k", NULL, 0, p, 2, &i, &err), &err, EINVAL,
                           bad[n].msg, bad[n].path);
                cr_expect_eq(i.id, -7);
        }
        i = get_ok("k");
        assert_labels(&i, repl, 1);
        snap_info_done(&i);

        util_err_clear(&err);
        check_fail(snap_store_update(st, "nope", NULL, 0, NULL, 0, NULL, &err), &err, ENOENT,
                   "update 'nope': does not exist", "missing");
        snap_info_done(&before);
}

Test(store, update_single_labels_over_the_limit_changes_nothing)
{
        struct util_err err = {0};
        static struct snap_label many[SNAP_LABELS_MAX_COUNT];
        static char keys[SNAP_LABELS_MAX_COUNT][8];
        for (size_t i = 0; i < SNAP_LABELS_MAX_COUNT; i++) {
                snprintf(keys[i], sizeof(keys[i]), "k%03zu", i);
                many[i] = L(keys[i], "v");
        }
        cr_assert_eq(snap_store_create(st, SNAP_KIND_ACTIVE, "k", NULL, many, SNAP_LABELS_MAX_COUNT,
                                       NULL, &err),
                     0, "%s", err.msg);
        struct snap_label extra[] = {L("one-more", "v")};
        const char *p[] = {"labels.one-more"};
        check_fail(snap_store_update(st, "k", extra, 1, p, 1, NULL, &err), &err, EINVAL,
                   "update 'k': 257 labels, more than 256", "over the limit");
        struct snap_info i = get_ok("k");
        cr_expect_eq(i.n_labels, SNAP_LABELS_MAX_COUNT);
        cr_expect_str_eq(i.labels[0].key, "k000");
        snap_info_done(&i);
}

Test(store, failed_call_inside_a_write_transaction_is_undone_alone)
{
        struct util_err err = {0};
        static struct snap_label many[SNAP_LABELS_MAX_COUNT];
        static char keys[SNAP_LABELS_MAX_COUNT][8];
        for (size_t i = 0; i < SNAP_LABELS_MAX_COUNT; i++) {
                snprintf(keys[i], sizeof(keys[i]), "k%03zu", i);
                many[i] = L(keys[i], "v");
        }
        cr_assert_eq(snap_store_begin(st, true, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_store_create(st, SNAP_KIND_ACTIVE, "k", NULL, many, SNAP_LABELS_MAX_COUNT,
                                       NULL, &err),
                     0, "%s", err.msg);
        /* This update writes a label, then fails on the count: its savepoint
         * is rolled back, the caller's create stays. */
        struct snap_label extra[] = {L("one-more", "v")};
        const char *p[] = {"labels.one-more", "labels.k000"};
        check_fail(snap_store_update(st, "k", extra, 1, p, 1, NULL, &err), &err, EINVAL,
                   "update 'k': 257 labels, more than 256", "over the limit");
        util_err_clear(&err);
        cr_assert_eq(snap_store_update(st, "k", NULL, 0, p + 1, 1, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_store_commit(st, &err), 0, "%s", err.msg);
        struct snap_info i = get_ok("k");
        cr_expect_eq(i.n_labels, SNAP_LABELS_MAX_COUNT - 1);
        cr_expect_str_eq(i.labels[0].key, "k001");
        cr_expect_eq(snap_store_integrity_check(st, &err), 0, "%s", err.msg);
        snap_info_done(&i);
}

/* ---- parents, ids --------------------------------------------------------- */

Test(store, parents_nearest_first_and_ids)
{
        struct util_err err = {0};
        int64_t *p = (int64_t *)1;
        size_t n = 99;
        int64_t base = committed_ok("base", NULL);
        int64_t l1 = committed_ok("l1", "base");
        int64_t l2 = committed_ok("l2", "l1");
        int64_t a = create_ok(SNAP_KIND_ACTIVE, "a", "l2");
        int64_t other = create_ok(SNAP_KIND_VIEW, "other", NULL);

        cr_assert_eq(snap_store_parents(st, a, &p, &n, &err), 0, "%s", err.msg);
        cr_assert_eq(n, 3);
        cr_expect_eq(p[0], l2);
        cr_expect_eq(p[1], l1);
        cr_expect_eq(p[2], base);
        free(p);

        cr_assert_eq(snap_store_parents(st, base, &p, &n, &err), 0);
        cr_expect_eq(n, 0);
        cr_expect_null(p);

        p = (int64_t *)1;
        n = 99;
        check_fail(snap_store_parents(st, 999, &p, &n, &err), &err, ENOENT,
                   "parents of id 999: does not exist", "missing");
        cr_expect_eq(p, (int64_t *)1, "ret untouched");
        cr_expect_eq(n, 99);

        int64_t *ids = NULL;
        cr_assert_eq(snap_store_ids(st, &ids, &n, &err), 0, "%s", err.msg);
        int64_t want[] = {base, l1, l2, a, other};
        cr_assert_eq(n, UTIL_ARRAY_SIZE(want));
        for (size_t i = 0; i < n; i++)
                cr_expect_eq(ids[i], want[i], "ids[%zu]", i);
        free(ids);

        /* More than one growth step of the id array. */
        for (int i = 0; i < 40; i++) {
                char k[16];
                snprintf(k, sizeof(k), "x%d", i);
                create_ok(SNAP_KIND_VIEW, k, "l2");
        }
        cr_expect_eq(count_rows(), 45);
}

/* ---- transactions --------------------------------------------------------- */

Test(store, explicit_transactions)
{
        struct util_err err = {0};
        char msg[256];

        /* begin(write) + create + rollback leaves nothing. */
        cr_assert_eq(snap_store_begin(st, true, &err), 0, "%s", err.msg);
        create_ok(SNAP_KIND_ACTIVE, "gone", NULL);
        cr_expect(exists("gone"), "visible inside the transaction");
        snap_store_rollback(st);
        cr_expect_not(exists("gone"));
        snap_store_rollback(st); /* harmless when none is open */

        /* Nested begin. */
        cr_assert_eq(snap_store_begin(st, true, &err), 0);
        snprintf(msg, sizeof(msg), "begin transaction: one is already open on '%s'", db);
        check_fail(snap_store_begin(st, false, &err), &err, EBUSY, msg, "nested");
        util_err_clear(&err);

        /* A failed call inside the caller's transaction is undone alone. */
        committed_ok("base", NULL);
        check_fail(snap_store_create(st, SNAP_KIND_ACTIVE, "base", NULL, NULL, 0, NULL, &err), &err,
                   EEXIST, "create active 'base': already exists (committed)", "dup");
        util_err_clear(&err);
        create_ok(SNAP_KIND_ACTIVE, "kept", "base");
        cr_assert_eq(snap_store_commit(st, &err), 0, "%s", err.msg);

        /* Persisted: another handle sees it. */
        struct snap_store *other = NULL;
        cr_assert_eq(snap_store_open(db, &other, &err), 0, "%s", err.msg);
        struct snap_info i = {0};
        cr_expect_eq(snap_store_get(other, "kept", &i, &err), 0, "%s", err.msg);
        snap_info_done(&i);
        cr_expect_eq(snap_store_get(other, "base", &i, &err), 0, "%s", err.msg);
        snap_info_done(&i);
        snap_store_close(other);

        check_fail(snap_store_commit(st, &err), &err, EINVAL, "commit transaction: none is open",
                   "commit without begin");
        util_err_clear(&err);

        /* Writes inside a read transaction are refused; reads work. */
        cr_assert_eq(snap_store_begin(st, false, &err), 0);
        check_fail(snap_store_create(st, SNAP_KIND_VIEW, "w", NULL, NULL, 0, NULL, &err), &err,
                   EBUSY,
                   "create view 'w': a read transaction is open; writes need "
                   "snap_store_begin(write=true)",
                   "write in read tx");
        cr_expect(exists("kept"));
        cr_assert_eq(snap_store_commit(st, &err), 0, "%s", err.msg);
        cr_expect_not(exists("w"));

        /* Close with a transaction open rolls it back. */
        cr_assert_eq(snap_store_begin(st, true, &err), 0);
        create_ok(SNAP_KIND_VIEW, "uncommitted", NULL);
        st = snap_store_close(st);
        cr_assert_eq(snap_store_open(db, &st, &err), 0, "%s", err.msg);
        cr_expect_not(exists("uncommitted"));
}

Test(store, locked_past_the_busy_timeout_is_eagain)
{
        struct util_err err = {0};
        struct snap_store *a = NULL, *b = NULL;
        char msg[256];

        setenv("LOOPSNAP_STORE_BUSY_MS", "100", 1);
        cr_assert_eq(snap_store_open(db, &a, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_store_open(db, &b, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_store_begin(a, true, &err), 0, "%s", err.msg);

        uint64_t t0 = util_now_ns();
        snprintf(msg, sizeof(msg),
                 "create active 'k': database '%s': BEGIN IMMEDIATE: still locked by another "
                 "process after 100 ms",
                 db);
        check_fail(snap_store_create(b, SNAP_KIND_ACTIVE, "k", NULL, NULL, 0, NULL, &err), &err,
                   EAGAIN, msg, "locked");
        uint64_t ms = (util_now_ns() - t0) / 1000000;
        cr_expect(ms >= 90 && ms < 5000, "waited %llu ms", (unsigned long long)ms);

        util_err_clear(&err);
        snprintf(msg, sizeof(msg),
                 "begin transaction: database '%s': BEGIN IMMEDIATE: still locked by another "
                 "process after 100 ms",
                 db);
        check_fail(snap_store_begin(b, true, &err), &err, EAGAIN, msg, "begin locked");

        /* WAL: readers are not blocked by the writer. */
        struct snap_info i = {0};
        check_fail(snap_store_get(b, "k", &i, &err), &err, ENOENT, "get 'k': does not exist",
                   "read while locked");
        snap_store_rollback(a);
        util_err_clear(&err);
        cr_expect_eq(snap_store_create(b, SNAP_KIND_ACTIVE, "k", NULL, NULL, 0, NULL, &err), 0,
                     "%s", err.msg);
        snap_store_close(a);
        snap_store_close(b);
}

Test(store, integrity_check_ok)
{
        struct util_err err = {0};
        committed_ok("base", NULL);
        create_ok(SNAP_KIND_ACTIVE, "a", "base");
        cr_expect_eq(snap_store_integrity_check(st, &err), 0, "%s", err.msg);
        cr_expect_eq(err.errnum, 0);
}

/* ---- filters: parsing ----------------------------------------------------- */

Test(filter, parse_valid)
{
        static const char *const good[] = {
                "",
                "name==a",
                "  name  ==  a  ",
                "kind==committed,parent!=base",
                "kind==view , name~=^sha256:",
                "labels.foo",
                "labels.\"containerd.io/gc.root\"",
                "labels.\"a\\\"b\\\\c\"==\"x, \\\"y\\\"\"",
                "labels.a.b==c",
                "labels.\"a.b\".c~=x",
                "\"name\"==q",
                "name~=/^a\\/b$/",
                "name~=|a/b|",
                "name~=/a\\\\/",
                "parent==\"\"",
                "name==a.b-c:d/e@f",
                "name==\xe7\x89\x9b",
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(good); i++) {
                struct util_err err = {0};
                struct snap_filter *f = NULL;
                int r = snap_filter_parse(&good[i], 1, &f, &err);
                cr_expect_eq(r, 0, "good[%zu] '%s': %s", i, good[i], err.msg);
                cr_expect_not_null(f);
                snap_filter_free(f);
        }
        struct util_err err = {0};
        struct snap_filter *f = NULL;
        cr_expect_eq(snap_filter_parse(NULL, 0, &f, &err), 0);
        cr_expect_not_null(f);
        cr_expect_null(snap_filter_free(f));
        cr_expect_null(snap_filter_free(NULL));
}

Test(filter, parse_errors_table)
{
        static const struct {
                const char *f[2];
                size_t n;
                const char *msg;
        } cases[] = {
                {{"kind==view", "parent =x"},
                 2,
                 "filters[1]: offset 7: expected '==', '!=' or '~='"},
                {{"name=x"}, 1, "filters[0]: offset 4: expected '==', '!=' or '~='"},
                {{"labels.containerd.io/gc.root==x"},
                 1,
                 "filters[0]: offset 20: expected '==', '!=' or '~='"},
                {{"foo==x"},
                 1,
                 "filters[0]: offset 0: unknown field 'foo' (name, parent, kind, labels.<key>)"},
                {{"kind==view,Name==x"},
                 1,
                 "filters[0]: offset 11: unknown field 'Name' (name, parent, kind, labels.<key>)"},
                {{"labels"}, 1, "filters[0]: offset 6: 'labels' needs a key (labels.<key>)"},
                {{"labels==x"}, 1, "filters[0]: offset 6: 'labels' needs a key (labels.<key>)"},
                {{"name.x==y"}, 1, "filters[0]: offset 4: field 'name' has no subfields"},
                {{"labels.\"abc"}, 1, "filters[0]: offset 7: unterminated quoted string"},
                {{"labels.\"a\\qb\""},
                 1,
                 "filters[0]: offset 9: unknown escape '\\q' (only \\\" and \\\\)"},
                {{"labels.\"ab\\"}, 1, "filters[0]: offset 7: unterminated quoted string"},
                {{"name==\"a"}, 1, "filters[0]: offset 6: unterminated quoted string"},
                {{"name=="}, 1, "filters[0]: offset 6: expected a value"},
                {{"name== ,kind==view"}, 1, "filters[0]: offset 7: expected a value"},
                {{"name==a b"}, 1, "filters[0]: offset 8: expected ',' or the end of the filter"},
                {{"name==\"a\"b"},
                 1,
                 "filters[0]: offset 9: expected ',' or the end of the filter"},
                {{"kind==view,"}, 1, "filters[0]: offset 11: expected a field name"},
                {{",kind==view"}, 1, "filters[0]: offset 0: expected a field name"},
                {{" "}, 1, "filters[0]: offset 1: expected a field name"},
                {{"1abc"}, 1, "filters[0]: offset 0: expected a field name"},
                {{"labels._x"}, 1, "filters[0]: offset 7: expected a field name"},
                {{"labels.a..b"}, 1, "filters[0]: offset 9: expected a field name"},
                {{"name~=/abc"}, 1, "filters[0]: offset 6: unterminated quoted string"},
                {{"name==/abc"}, 1, NULL}, /* valid: alternative quotes only after ~= */
                /* Regexes that would cost gigabytes or hours (fuzz-filter). */
                {{"name~=^sha256:[0-9a-f]{64}$"}, 1, NULL},
                {{"name~=/(a|b){0,400}/"}, 1, NULL},
                {{"parent~=(a*)*\\1b"},
                 1,
                 "filters[0]: offset 8: back-references ('\\1') are not supported in a regular "
                 "expression"},
                {{"name~=/a{0,32767}/"},
                 1,
                 "filters[0]: offset 6: a repetition count over 1000 in a regular expression"},
                {{"name~=/a{,2000}/"},
                 1,
                 "filters[0]: offset 6: a repetition count over 1000 in a regular expression"},
                {{"name~=b++++++++++++++++++++++++++++++"},
                 1,
                 "filters[0]: offset 6: regular expression too complex (more than 2048 elements "
                 "once its repetitions are expanded)"},
                {{"name~=/((a{0,20}){0,20}){0,20}/"},
                 1,
                 "filters[0]: offset 6: regular expression too complex (more than 2048 elements "
                 "once its repetitions are expanded)"},
                {{"name", NULL}, 2, "filters[1]: missing"},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                struct util_err err = {0};
                struct snap_filter *f = (struct snap_filter *)1;
                char what[32];
                snprintf(what, sizeof(what), "case %zu", i);
                int r = snap_filter_parse(cases[i].f, cases[i].n, &f, &err);
                if (!cases[i].msg) {
                        cr_expect_eq(r, 0, "%s: %s", what, err.msg);
                        snap_filter_free(f);
                        continue;
                }
                check_fail(r, &err, EINVAL, cases[i].msg, what);
                cr_expect_eq(f, (struct snap_filter *)1, "%s: ret untouched", what);
        }

        /* A bad regex names the value's offset; the text after it is glibc's. */
        struct util_err err = {0};
        struct snap_filter *f = NULL;
        const char *re[] = {"kind==view", "kind==view,name~=a(b"};
        int r = snap_filter_parse(re, 2, &f, &err);
        cr_expect_eq(r, -EINVAL);
        const char *want = "filters[1]: offset 17: invalid regular expression: ";
        cr_expect(strncmp(err.msg, want, strlen(want)) == 0, "got: %s", err.msg);
        cr_expect_null(f);
}

/* ---- filters: matching ---------------------------------------------------- */

Test(filter, match_table)
{
        struct snap_label la[] = {L("containerd.io/gc.root", "1"), L("x", "y")};
        struct snap_label lc[] = {L("a.b", "dotted"), L("x", "z")};
        const struct snap_info infos[3] = {
                {.id = 1, .kind = SNAP_KIND_COMMITTED, .name = "base", .labels = la, .n_labels = 2},
                {.id = 2, .kind = SNAP_KIND_ACTIVE, .name = "k1", .parent = "base", .parent_id = 1},
                {.id = 3,
                 .kind = SNAP_KIND_VIEW,
                 .name = "v1",
                 .parent = "base",
                 .parent_id = 1,
                 .labels = lc,
                 .n_labels = 2},
        };
        enum { A = 1, B = 2, C = 4 };
        static const struct {
                const char *f[3];
                size_t n;
                unsigned want;
        } cases[] = {
                {{NULL}, 0, A | B | C},
                {{""}, 1, A | B | C},
                {{"kind==committed"}, 1, A},
                {{"kind==Committed"}, 1, 0},                /* values compare exactly */
                {{"kind==active", "kind==view"}, 2, B | C}, /* OR */
                {{"parent==base,kind==view"}, 1, C},        /* AND */
                {{"parent==base", "name==base"}, 2, A | B | C},
                {{"parent"}, 1, B | C},
                {{"parent==\"\""}, 1, A},
                {{"parent!=base"}, 1, A},
                {{"labels.\"containerd.io/gc.root\""}, 1, A},
                {{"labels.\"containerd.io/gc.root\"==1"}, 1, A},
                {{"labels.x==y"}, 1, A},
                {{"labels.x!=y"}, 1, B | C}, /* a missing label compares as "" */
                {{"labels.x!=\"\""}, 1, A | C},
                {{"labels.x~=^[yz]$"}, 1, A | C},
                {{"labels.x~=^$"}, 1, B},
                {{"labels.a.b==dotted"}, 1, C},
                {{"labels.\"a.b\""}, 1, C},
                {{"labels.nope"}, 1, 0},
                {{"labels.nope==\"\""}, 1, 0}, /* == needs the label present */
                {{"name~=^k"}, 1, B},
                {{"name~=/^(base|v1)$/"}, 1, A | C},
                {{"name~=|^k|"}, 1, B},
                {{"name"}, 1, A | B | C},
                {{"kind"}, 1, A | B | C},
                {{"name!=base,name!=k1"}, 1, C},
                {{"kind==view", "labels.x==y", "name==k1"}, 3, A | B | C},
        };
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
                struct util_err err = {0};
                struct snap_filter *f = NULL;
                int r = snap_filter_parse(cases[i].f, cases[i].n, &f, &err);
                cr_assert_eq(r, 0, "case %zu: %s", i, err.msg);
                unsigned got = 0;
                for (size_t k = 0; k < 3; k++)
                        if (snap_filter_match(f, &infos[k]))
                                got |= 1u << k;
                cr_expect_eq(got, cases[i].want, "case %zu ('%s'...): got %#x, want %#x", i,
                             cases[i].f[0] ? cases[i].f[0] : "(none)", got, cases[i].want);
                snap_filter_free(f);
        }
        for (size_t k = 0; k < 3; k++)
                cr_expect(snap_filter_match(NULL, &infos[k]), "NULL filter matches all");
}

/* ---- walk ----------------------------------------------------------------- */

struct walk_state {
        char names[16][32];
        size_t n;
        size_t stop_after; /* 0: never */
        bool stat_inside;
        bool forget_err;
};

static int walk_collect(const struct snap_info *i, void *data, struct util_err *err)
{
        struct walk_state *w = data;
        if (w->stat_inside) {
                /* Stat inside Walk: the store is usable from the callback. */
                struct snap_info again = {0};
                int r = snap_store_get(st, i->name, &again, err);
                if (r < 0)
                        return r;
                bool same = again.id == i->id && again.n_labels == i->n_labels;
                snap_info_done(&again);
                if (!same)
                        return util_err_setx(err, EIO, "stat of '%s' differs", i->name);
        }
        if (w->n < 16)
                snprintf(w->names[w->n], sizeof(w->names[0]), "%s", i->name);
        w->n++;
        if (w->stop_after && w->n == w->stop_after) {
                if (w->forget_err)
                        return -ECANCELED;
                return util_err_setx(err, ECANCELED, "stop at '%s'", i->name);
        }
        return 0;
}

static void walk_expect(const char *const *filters, size_t nf, const char *const *want, size_t n)
{
        struct util_err err = {0};
        struct snap_filter *f = NULL;
        struct walk_state w = {.stat_inside = true};
        cr_assert_eq(snap_filter_parse(filters, nf, &f, &err), 0, "%s", err.msg);
        int r = snap_store_walk(st, f, walk_collect, &w, &err);
        cr_assert_eq(r, 0, "walk: %s", err.msg);
        cr_expect_eq(w.n, n, "walk '%s': %zu results, want %zu", nf ? filters[0] : "", w.n, n);
        for (size_t i = 0; i < n && i < w.n; i++)
                cr_expect_str_eq(w.names[i], want[i], "result %zu", i);
        snap_filter_free(f);
}

Test(store, walk_filters_and_stat_inside)
{
        struct util_err err = {0};
        struct snap_label gc[] = {L("containerd.io/gc.root", "yes")};
        committed_ok("base", NULL);
        committed_ok("l1", "base");
        create_ok(SNAP_KIND_ACTIVE, "a1", "l1");
        cr_assert_eq(snap_store_create(st, SNAP_KIND_VIEW, "v1", "base", gc, 1, NULL, &err), 0);
        create_ok(SNAP_KIND_ACTIVE, "a2", NULL);

        const char *all[] = {"base", "l1", "a1", "v1", "a2"};
        walk_expect(NULL, 0, all, 5);
        const char *f1[] = {"kind==committed"};
        walk_expect(f1, 1, (const char *[]){"base", "l1"}, 2);
        const char *f2[] = {"kind==active,parent==l1", "labels.\"containerd.io/gc.root\""};
        walk_expect(f2, 2, (const char *[]){"a1", "v1"}, 2);
        const char *f3[] = {"parent==\"\""};
        walk_expect(f3, 1, (const char *[]){"base", "a2"}, 2);
        const char *f4[] = {"name~=^a", "kind==view"};
        walk_expect(f4, 2, (const char *[]){"a1", "v1", "a2"}, 3);
        const char *f5[] = {"name==none"};
        walk_expect(f5, 1, NULL, 0);

        /* NULL filter: everything; a walk inside the caller's transaction. */
        struct walk_state w = {0};
        cr_assert_eq(snap_store_begin(st, false, &err), 0);
        cr_assert_eq(snap_store_walk(st, NULL, walk_collect, &w, &err), 0, "%s", err.msg);
        snap_store_rollback(st);
        cr_expect_eq(w.n, 5);
}

Test(store, walk_callback_error_stops)
{
        struct util_err err = {0};
        for (int i = 0; i < 5; i++) {
                char k[8];
                snprintf(k, sizeof(k), "k%d", i);
                create_ok(SNAP_KIND_ACTIVE, k, NULL);
        }
        struct walk_state w = {.stop_after = 2};
        check_fail(snap_store_walk(st, NULL, walk_collect, &w, &err), &err, ECANCELED,
                   "stop at 'k1'", "callback error");
        cr_expect_eq(w.n, 2, "no call after the error");

        /* A callback that forgot err still leaves a message. */
        util_err_clear(&err);
        w = (struct walk_state){.stop_after = 3, .forget_err = true};
        check_fail(snap_store_walk(st, NULL, walk_collect, &w, &err), &err, ECANCELED,
                   "walk: callback failed at 'k2'", "silent callback");
        cr_expect_eq(w.n, 3);

        util_err_clear(&err);
        check_fail(snap_store_walk(st, NULL, NULL, NULL, &err), &err, EINVAL, "walk: no callback",
                   "no fn");
}

/* ---- many processes ------------------------------------------------------- */

#define WORKERS    8
#define ITERATIONS 100

/* One worker process: create, commit and (every other time) remove its own
 * keys on the shared base. No criterion calls here: exit status only. */
static int worker(int w)
{
        struct util_err err = {0};
        struct snap_store *s = NULL;
        if (snap_store_open(db, &s, &err) < 0) {
                fprintf(stderr, "worker %d: %s\n", w, err.msg);
                return 2;
        }
        for (int i = 0; i < ITERATIONS; i++) {
                char key[32], name[32];
                struct snap_label l[] = {L("worker", "x")};
                snprintf(key, sizeof(key), "w%d-%d", w, i);
                snprintf(name, sizeof(name), "c%d-%d", w, i);
                int r = snap_store_create(s, SNAP_KIND_ACTIVE, key, "base", l, 1, NULL, &err);
                if (r >= 0)
                        r = snap_store_commit_active(s, name, key, NULL, 0, (uint64_t)i, 1, NULL,
                                                     &err);
                if (r >= 0 && i % 2)
                        r = snap_store_remove(s, name, NULL, &err);
                if (r < 0) {
                        fprintf(stderr, "worker %d, step %d: %s\n", w, i, err.msg);
                        snap_store_close(s);
                        return 3;
                }
        }
        snap_store_close(s);
        return 0;
}

Test(store, many_processes_one_database, .timeout = 120)
{
        struct util_err err = {0};
        committed_ok("base", NULL);
        /* No SQLite handle may cross fork(). */
        st = snap_store_close(st);

        pid_t pids[WORKERS];
        for (int w = 0; w < WORKERS; w++) {
                pids[w] = fork();
                /* The child first: criterion talks to its runner even for a
                 * passing assertion, which a forked child must never do. */
                if (pids[w] == 0)
                        _exit(worker(w));
                cr_assert_geq(pids[w], 0, "fork: %s", strerror(errno));
        }
        for (int w = 0; w < WORKERS; w++) {
                int status = 0;
                cr_assert_eq(waitpid(pids[w], &status, 0), pids[w]);
                cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker %d: status %#x", w,
                          status);
        }

        cr_assert_eq(snap_store_open(db, &st, &err), 0, "%s", err.msg);
        cr_expect_eq(snap_store_integrity_check(st, &err), 0, "%s", err.msg);
        cr_expect_eq(count_rows(), 1 + WORKERS * ITERATIONS / 2);
        struct snap_info i = get_ok("c3-98");
        cr_expect_str_eq(i.parent, "base");
        cr_expect_eq(i.size, 98);
        cr_expect_eq(i.n_labels, 0);
        snap_info_done(&i);
        cr_expect_not(exists("c3-99"));
        cr_expect_not(exists("w3-98"));
        st = snap_store_close(st);
        cr_expect_eq(sql_int(db, "SELECT count(*) FROM labels"), 0);
        cr_expect_eq(sql_int(db, "SELECT seq FROM sqlite_sequence WHERE name = 'snapshots'"),
                     1 + WORKERS * ITERATIONS, "every create took a fresh id");
}
