/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Staging entries of the OCI hook: <run>/<id>/ holds state.json (what
 * createRuntime did) and root/, the mount point the container's tree is
 * attached to inside the container's mount namespace. The directories are
 * on the host's filesystem; the mounts never are. crun runs no poststop for
 * a container whose create failed (a later hook failed or timed out, our
 * hook was SIGKILLed), so every host-side run sweeps the entries of
 * containers whose init is gone (research/oci-hook.md §5.3, §6).
 *
 * Concurrency: one hook process per container stage, many containers at
 * once. Entry creation, release and the sweep run under flock(<run>/.lock);
 * an entry is built as <run>/.new-* and renamed into place, so a reader
 * never sees half an entry. createContainer only reads its own entry.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "plugin/hook.h"
#include "snapshot/snapshot.h"

/* A half-made .new-* entry older than this is a crash leftover. */
#define HOOK_NEW_STALE_SECONDS 60

void hook_entry_done(struct hook_entry *e)
{
        free(e->root_path);
        free(e->snap_root);
        free(e->key);
        free(e->image);
        free(e->loop_tag);
        *e = (struct hook_entry){0};
}

const char *hook_run_dir(void)
{
        const char *d = getenv(HOOK_RUN_DIR_ENV);
        return d && d[0] == '/' ? d : HOOK_RUN_DIR;
}

static char *entry_path(const char *id, const char *name)
{
        char *p = NULL;
        if (asprintf(&p, "%s/%s%s%s", hook_run_dir(), id, name ? "/" : "", name ? name : "") < 0)
                return NULL;
        return p;
}

char *hook_entry_mountpoint(const char *id)
{
        return entry_path(id, "root");
}

static int run_dir_make(struct util_err *err)
{
        const char *d = hook_run_dir();

        /* 0711: a user-namespace container's createContainer stage runs as
         * its mapped root and only needs to reach <id>/. */
        if (mkdir(d, 0711) < 0 && errno != EEXIST)
                return util_err_set(err, errno, "create '%s'", d);
        return 0;
}

int hook_lock(struct util_err *err)
{
        _cleanup_free_ char *p = NULL;
        int r = run_dir_make(err);

        if (r < 0)
                return r;
        if (asprintf(&p, "%s/.lock", hook_run_dir()) < 0) {
                p = NULL;
                return util_err_set(err, ENOMEM, "lock");
        }
        int fd = open(p, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return util_err_set(err, errno, "open '%s'", p);
        while (flock(fd, LOCK_EX) < 0) {
                if (errno != EINTR) {
                        r = util_err_set(err, errno, "lock '%s'", p);
                        close(fd);
                        return r;
                }
        }
        return fd;
}

int hook_pid_start_time(pid_t pid, uint64_t *ret)
{
        char path[64], buf[1024];

        if (pid <= 0)
                return -ESRCH;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        ssize_t n = util_read_small_file(path, buf, sizeof(buf));
        if (n < 0)
                return n == -ENOENT ? -ESRCH : (int)n;
        /* "pid (comm) S ppid ..." and comm may hold anything: start after
         * the last ')'. Field 3 is the state, field 22 the start time. */
        const char *p = strrchr(buf, ')');
        if (!p || p[1] != ' ')
                return -EINVAL;
        p += 2;
        if (*p == 'Z' || *p == 'X')
                return -ESRCH; /* dead, not reaped yet */
        for (int field = 3; field < 22; field++) {
                p = strchr(p, ' ');
                if (!p)
                        return -EINVAL;
                p++;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || end == p)
                return -EINVAL;
        *ret = v;
        return 0;
}

bool hook_entry_is_alive(const struct hook_entry *e)
{
        uint64_t st;
        return hook_pid_start_time(e->pid, &st) == 0 && st == e->start_time;
}

/* ---- state.json ------------------------------------------------------------ */

static int entry_json(const struct hook_entry *e, char **ret)
{
        _cleanup_json_gen_ yajl_gen g = util_json_gen_new(false);
        int bad = 0;

        if (!g)
                return -ENOMEM;
#define KEY(k)  (bad |= util_json_gen_str(g, k))
#define STR(s)  (bad |= (s) ? util_json_gen_str(g, s) : (int)yajl_gen_null(g))
#define BOOL(b) (bad |= (int)yajl_gen_bool(g, b))
#define INT(v)  (bad |= (int)yajl_gen_integer(g, (long long)(v)))
        yajl_gen_map_open(g);
        KEY("id");
        STR(e->id);
        KEY("pid");
        INT(e->pid);
        KEY("start_time");
        INT(e->start_time);
        KEY("root_path");
        STR(e->root_path);
        KEY("readonly");
        BOOL(e->readonly);
        KEY("snapshotter_root");
        STR(e->snap_root);
        KEY("key");
        STR(e->key);
        KEY("keep");
        BOOL(e->keep);
        KEY("owned");
        BOOL(e->owned);
        KEY("writable_pool");
        INT(e->pool);
        KEY("image");
        STR(e->image);
        KEY("loop_tag");
        STR(e->loop_tag);
        yajl_gen_map_close(g);
#undef KEY
#undef STR
#undef BOOL
#undef INT
        if (bad)
                return -EINVAL;
        return util_json_gen_finish(g, ret);
}

/* Writes `dir`/state.json through a temporary file and rename(2). */
static int entry_write_at(const char *dir, const struct hook_entry *e, struct util_err *err)
{
        _cleanup_free_ char *json = NULL, *tmp = NULL, *dst = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r = entry_json(e, &json);

        if (r < 0)
                return util_err_set(err, r, "staging state of '%s'", e->id);
        if (asprintf(&tmp, "%s/.state.json.tmp", dir) < 0 ||
            asprintf(&dst, "%s/state.json", dir) < 0)
                return util_err_set(err, ENOMEM, "staging state");
        /* 0644: createContainer of a user-namespace container reads it as
         * the mapped root. It holds nothing secret. */
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return util_err_set(err, errno, "create '%s'", tmp);
        size_t len = strlen(json);
        if (write(fd, json, len) != (ssize_t)len)
                return util_err_set(err, errno ? errno : EIO, "write '%s'", tmp);
        if (fchmod(fd, 0644) < 0)
                return util_err_set(err, errno, "chmod '%s'", tmp);
        if (rename(tmp, dst) < 0) {
                r = util_err_set(err, errno, "rename '%s'", tmp);
                (void)unlink(tmp);
                return r;
        }
        return 0;
}

int hook_entry_write(const struct hook_entry *e, struct util_err *err)
{
        _cleanup_free_ char *dir = entry_path(e->id, NULL);

        if (!dir)
                return util_err_set(err, ENOMEM, "staging state");
        return entry_write_at(dir, e, err);
}

static int get_str(yajl_val o, const char *k, bool nullable, char **ret, struct util_err *err)
{
        yajl_val v = util_json_get(o, k, false);
        const char *s;

        if (nullable && (!v || YAJL_IS_NULL(v)))
                return 0;
        int r = util_json_string(v, k, &s, err);
        if (r < 0)
                return r;
        *ret = strdup(s);
        return *ret ? 0 : util_err_set(err, ENOMEM, "staging state");
}

static int get_bool(yajl_val o, const char *k, bool *ret, struct util_err *err)
{
        yajl_val v = util_json_get(o, k, false);

        if (!v || (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)))
                return util_err_setx(err, EINVAL, "%s: expected a boolean", k);
        *ret = YAJL_IS_TRUE(v);
        return 0;
}

static int get_int(yajl_val o, const char *k, long long max, long long *ret, struct util_err *err)
{
        yajl_val v = util_json_get(o, k, false);

        if (!v || !YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0 || YAJL_GET_INTEGER(v) > max)
                return util_err_setx(err, EINVAL, "%s: expected an integer", k);
        *ret = YAJL_GET_INTEGER(v);
        return 0;
}

int hook_entry_read(const char *id, struct hook_entry *ret, struct util_err *err)
{
        struct util_json_limits lim = {.max_bytes = HOOK_ENTRY_MAX_BYTES};
        _cleanup_free_ char *path = entry_path(id, "state.json");
        _cleanup_json_ yajl_val root = NULL;
        struct hook_entry e = {0};
        char buf[HOOK_ENTRY_MAX_BYTES];
        long long pid = 0, st = 0, pool = 0;
        char *sid = NULL;
        int r;

        if (!path)
                return util_err_set(err, ENOMEM, "staging state");
        ssize_t n = util_read_small_file(path, buf, sizeof(buf));
        if (n == -ENOENT)
                return -ENOENT;
        if (n < 0)
                return util_err_set(err, (int)n, "read '%s'", path);
        if ((r = util_json_parse(buf, (size_t)n, path, &lim, &root, err)) < 0)
                return r;
        if ((r = get_str(root, "id", false, &sid, err)) >= 0 && strcmp(sid, id) != 0)
                r = util_err_setx(err, EINVAL, "id '%s' is not '%s'", sid, id);
        free(sid);
        snprintf(e.id, sizeof(e.id), "%s", id);
        if (r >= 0)
                r = get_int(root, "pid", INT32_MAX, &pid, err);
        if (r >= 0)
                r = get_int(root, "start_time", INT64_MAX, &st, err);
        if (r >= 0)
                r = get_str(root, "root_path", false, &e.root_path, err);
        if (r >= 0)
                r = get_bool(root, "readonly", &e.readonly, err);
        if (r >= 0)
                r = get_str(root, "snapshotter_root", false, &e.snap_root, err);
        if (r >= 0)
                r = get_str(root, "key", false, &e.key, err);
        if (r >= 0)
                r = get_bool(root, "keep", &e.keep, err);
        if (r >= 0)
                r = get_bool(root, "owned", &e.owned, err);
        /* Absent in entries of a hook from before the writable pool. */
        if (r >= 0 && util_json_get(root, "writable_pool", false))
                r = get_int(root, "writable_pool", 1024, &pool, err);
        if (r >= 0)
                r = get_str(root, "image", true, &e.image, err);
        if (r >= 0)
                r = get_str(root, "loop_tag", true, &e.loop_tag, err);
        if (r < 0) {
                hook_entry_done(&e);
                return util_err_prefix(err, "'%s'", path);
        }
        e.pid = (pid_t)pid;
        e.start_time = (uint64_t)st;
        e.pool = (unsigned)pool;
        *ret = e;
        return 0;
}

/* ---- create, remove, release ------------------------------------------------ */

/* Removes an entry directory. state.json goes last but one: a crash on the
 * way leaves an entry the sweep can still read and release again (every
 * step tolerates what is gone), or an empty directory a rename replaces. */
static int remove_dir(const char *dir, struct util_err *err)
{
        static const char *const steps[] = {".state.json.tmp", "root", "state.json"};
        char p[4200];

        for (size_t k = 0; k < UTIL_ARRAY_SIZE(steps); k++) {
                snprintf(p, sizeof(p), "%s/%s", dir, steps[k]);
                int r = strcmp(steps[k], "root") == 0 ? rmdir(p) : unlink(p);
                if (r < 0 && errno != ENOENT)
                        return util_err_set(err, errno, "remove '%s'", p);
        }
        if (rmdir(dir) < 0 && errno != ENOENT)
                return util_err_set(err, errno, "remove '%s'", dir);
        return 0;
}

int hook_entry_remove(const char *id, struct util_err *err)
{
        _cleanup_free_ char *dir = entry_path(id, NULL);

        if (!dir)
                return util_err_set(err, ENOMEM, "staging entry");
        return remove_dir(dir, err);
}

int hook_entry_release(const struct hook_entry *e, struct util_err *err)
{
        if (e->owned && !e->keep) {
                _cleanup_(snap_root_closep) struct snap_root *r = NULL;
                _cleanup_free_ char *db = NULL;
                /* The pool's size the snapshot was mounted with: its image
                 * goes back to the pool rather than away. */
                struct snap_root_opts o = {.path = e->snap_root,
                                           .no_activation_cache = true,
                                           .writable_pool = e->pool};
                int rc;

                /* Opening would create a root that is gone: nothing to remove. */
                if (asprintf(&db, "%s/metadata.db", e->snap_root) < 0) {
                        db = NULL;
                        return util_err_set(err, ENOMEM, "release");
                }
                if (access(db, F_OK) == 0) {
                        rc = snap_root_open(&o, &r, err);
                        if (rc >= 0) {
                                rc = snap_remove(r, e->key, err);
                                if (rc == -ENOENT) {
                                        util_err_clear(err);
                                        rc = 0;
                                }
                        }
                        if (rc < 0)
                                return util_err_prefix(err, "remove snapshot '%s'", e->key);
                }
        }
        return hook_entry_remove(e->id, err);
}

int hook_entry_create(const struct hook_entry *e, struct util_err *err)
{
        _cleanup_free_ char *dir = entry_path(e->id, NULL);
        _cleanup_free_ char *tmp = NULL, *point = NULL;
        struct hook_entry old = {0};
        int r;

        if (!dir)
                return util_err_set(err, ENOMEM, "staging entry");
        if ((r = run_dir_make(err)) < 0)
                return r;
        r = hook_entry_read(e->id, &old, err);
        if (r >= 0) {
                bool alive = hook_entry_is_alive(&old);
                if (!alive)
                        r = hook_entry_release(&old, err);
                hook_entry_done(&old);
                if (alive)
                        return util_err_setx(err, EBUSY,
                                             "container '%s' is staged already, by a live "
                                             "process (pid %d)",
                                             e->id, (int)old.pid);
                if (r < 0)
                        return util_err_prefix(err, "clean the stale entry of '%s'", e->id);
        } else if (r != -ENOENT) {
                return r;
        }
        if (asprintf(&tmp, "%s/.new-%s-%08x", hook_run_dir(), e->id, util_random_u32()) < 0 ||
            asprintf(&point, "%s/root", tmp) < 0)
                return util_err_set(err, ENOMEM, "staging entry");
        if (mkdir(tmp, 0711) < 0)
                return util_err_set(err, errno, "create '%s'", tmp);
        if (mkdir(point, 0755) < 0) {
                r = util_err_set(err, errno, "create '%s'", point);
                (void)remove_dir(tmp, NULL);
                return r;
        }
        r = entry_write_at(tmp, e, err);
        if (r >= 0 && rename(tmp, dir) < 0)
                r = util_err_set(err, errno, "rename '%s' to '%s'", tmp, dir);
        if (r < 0)
                (void)remove_dir(tmp, NULL);
        return r;
}

/* ---- sweep ------------------------------------------------------------------- */

static bool older_than(int dfd, const char *name, time_t seconds)
{
        struct stat st;
        return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               time(NULL) - st.st_mtime > seconds;
}

int hook_sweep(void (*report)(const char *line))
{
        const char *run = hook_run_dir();
        DIR *d = opendir(run);
        struct dirent *de;
        char line[UTIL_ERR_MSG_MAX + HOOK_ID_MAX + 64];
        int released = 0;

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                struct util_err err = {0};
                struct hook_entry e = {0};
                char path[4200];
                int r;

                if (strncmp(de->d_name, ".new-", 5) == 0) {
                        if (!older_than(dirfd(d), de->d_name, HOOK_NEW_STALE_SECONDS))
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", run, de->d_name);
                        if (remove_dir(path, &err) < 0 && report) {
                                snprintf(line, sizeof(line), "sweep: %s", err.msg);
                                report(line);
                        }
                        continue;
                }
                if (de->d_name[0] == '.' || strlen(de->d_name) > HOOK_ID_MAX)
                        continue;
                r = hook_entry_read(de->d_name, &e, &err);
                if (r == -ENOENT) {
                        continue;
                } else if (r < 0) {
                        if (report) {
                                snprintf(line, sizeof(line), "sweep: %s (left in place)", err.msg);
                                report(line);
                        }
                        continue;
                }
                if (!hook_entry_is_alive(&e)) {
                        util_debug(UTIL_DBG_PLUGIN, "sweep: container '%s' (pid %d) is gone", e.id,
                                   (int)e.pid);
                        if (hook_entry_release(&e, &err) < 0) {
                                if (report) {
                                        snprintf(line, sizeof(line), "sweep '%s': %s", e.id,
                                                 err.msg);
                                        report(line);
                                }
                        } else {
                                released++;
                        }
                }
                hook_entry_done(&e);
        }
        closedir(d);
        return released;
}
