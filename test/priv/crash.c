/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Crash tests of the snapshotter: every named fault point of the operations
 * (snapshot/ops.c, snapshot/image.c) is hit in a forked child, which dies
 * there with UTIL_FAULT_EXIT like a kill -9; the parent then checks that
 * snap_fsck finds the leftovers, repairs them, that nothing committed is
 * lost, nothing stays attached or mounted, and that the operation can be
 * done again. Plus a concurrency test: many processes on one root.
 *
 * A child never calls criterion: it opens its own root handle (the parent
 * closes its own before the fork: an SQLite connection must not cross a
 * fork, and a shared lock file description would hide the child's lock),
 * runs the operation and reports through its exit status only.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "loop/loop.h"
#include "mount/mount.h"
#include "snapshot/fsck.h"
#include "snapshot/snapshot-internal.h"
#include "test/priv/priv.h"

#define MIB        (UINT64_C(1) << 20)
#define IMAGE_SIZE (64 * MIB)

/* Exit statuses of a child that did not reach its fault point. */
#define CHILD_OP_DONE    0
#define CHILD_OPEN_FAIL  10
#define CHILD_OP_FAILED  11
#define CHILD_BAD_ERRORS 1

static struct snap_root *R;
static char root_path[PATH_MAX];
static unsigned n_targets;

static void close_root(void *p)
{
        (void)p;
        R = snap_root_close(R);
}

static void spec_free(void *p)
{
        mount_spec_free(p);
}

static void crash_setup(void)
{
        R = NULL;
        n_targets = 0;
        priv_setup();
        priv_private_mount_ns();
        snprintf(root_path, sizeof(root_path), "%s/root", priv_tmpdir());
        priv_defer(close_root, NULL);
}

static void crash_teardown(void)
{
        priv_teardown();
        R = NULL;
}

TestSuite(crash, .init = crash_setup, .fini = crash_teardown, .timeout = 120);

/* The root's kind: CTest runs this suite again with LOOPSNAP_TEST_VARIANT
 * "erofs" and "dir" (the commits that convert a layer have more steps). */
static struct snap_root_opts root_opts(void)
{
        const char *v = getenv("LOOPSNAP_TEST_VARIANT");
        struct snap_root_opts o = {.path = root_path, .writable_size = IMAGE_SIZE};
        if (v && strstr(v, "erofs"))
                o.committed_format = "erofs";
        if (v && strncmp(v, "dir", 3) == 0)
                o.upper_dir = true;
        return o;
}

static void reopen(void)
{
        struct snap_root_opts o = root_opts();
        struct util_err err = {0};
        R = snap_root_close(R);
        int rc = snap_root_open(&o, &R, &err);
        cr_assert_eq(rc, 0, "snap_root_open(%s): %d %s", root_path, rc, err.msg);
}

/* ---- mounting, with the test's loop owner ---- */

static const char *mount_key(const char *key)
{
        struct mount_spec *m = NULL;
        struct util_err err = {0};
        int rc = snap_mounts(R, key, &m, &err);
        cr_assert_eq(rc, 0, "mounts '%s': %d %s", key, rc, err.msg);
        priv_defer(spec_free, m);
        const char *t = priv_keep(priv_path("%s/t%u", priv_tmpdir(), n_targets++));
        cr_assert_eq(mkdir(t, 0755), 0, "mkdir %s: %m", t);
        err = (struct util_err){0};
        rc = mount_engine_apply(priv_engine(), m, t, NULL, NULL, &err);
        cr_assert_eq(rc, 0, "mount '%s': %d %s", key, rc, err.msg);
        return t;
}

static void unmount(const char *t)
{
        struct util_err err = {0};
        int n = mount_unmount_all(t, &err);
        cr_assert_eq(n, 1, "unmount %s: %d mounts removed (want 1) %s", t, n, err.msg);
}

static void write_file(const char *dir, const char *name, const char *text)
{
        const char *p = priv_path("%s/%s", dir, name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0, "create %s: %m", p);
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text), "write %s: %m", p);
        cr_assert_eq(close(fd), 0, "close %s: %m", p);
}

static void expect_file(const char *dir, const char *name, const char *text)
{
        char buf[256];
        const char *p = priv_path("%s/%s", dir, name);
        ssize_t n = util_read_small_file(p, buf, sizeof(buf));
        cr_assert_geq(n, 0, "read %s: %s", p, strerror((int)-n));
        cr_assert_eq((size_t)n, strlen(text), "%s: %zd bytes", p, n);
        cr_assert_eq(memcmp(buf, text, (size_t)n), 0, "%s: wrong content", p);
}

/* ---- operations that must succeed ---- */

static void prepare_ok(const char *key, const char *parent, const struct snap_label *l, size_t n)
{
        struct util_err err = {0};
        int rc = snap_prepare(R, key, parent, l, n, NULL, &err);
        cr_assert_eq(rc, 0, "prepare '%s': %d %s", key, rc, err.msg);
}

static void commit_ok(const char *name, const char *key)
{
        struct util_err err = {0};
        int rc = snap_commit(R, name, key, NULL, 0, &err);
        cr_assert_eq(rc, 0, "commit '%s' as '%s': %d %s", key, name, rc, err.msg);
}

static void remove_ok(const char *key)
{
        struct util_err err = {0};
        int rc = snap_remove(R, key, &err);
        cr_assert_eq(rc, 0, "remove '%s': %d %s", key, rc, err.msg);
}

/* The kind of `key`, SNAP_KIND_UNKNOWN when it does not exist. */
static enum snap_kind kind_of(const char *key)
{
        struct snap_info i = {0};
        struct util_err err = {0};
        int rc = snap_stat(R, key, &i, &err);
        enum snap_kind k = i.kind;
        snap_info_done(&i);
        if (rc == -ENOENT)
                return SNAP_KIND_UNKNOWN;
        cr_assert_eq(rc, 0, "stat '%s': %d %s", key, rc, err.msg);
        return k;
}

/* A committed "base" holding base.txt. */
static void make_base(void)
{
        prepare_ok("b0", NULL, NULL, 0);
        const char *t = mount_key("b0");
        write_file(t, "base.txt", "base");
        unmount(t);
        commit_ok("base", "b0");
}

/* `name` is committed and a view of it shows base.txt (and `file`). */
static void check_committed(const char *name, const char *file, const char *text)
{
        cr_assert_eq(kind_of(name), SNAP_KIND_COMMITTED, "'%s' is not committed", name);
        char key[64];
        snprintf(key, sizeof(key), "check-%u", n_targets);
        struct util_err err = {0};
        int rc = snap_view(R, key, name, NULL, 0, NULL, &err);
        cr_assert_eq(rc, 0, "view on '%s': %d %s", name, rc, err.msg);
        const char *t = mount_key(key);
        expect_file(t, "base.txt", "base");
        if (file)
                expect_file(t, file, text);
        unmount(t);
        remove_ok(key);
}

/* ---- leftovers ---- */

/* Devices and mounts of the root: the activation cache (m/<id>) holds
 * committed layers on purpose, not a leak as long as fsck (run before every
 * check below) finds every activation valid; it is dropped first, so that
 * what remains is exactly what would leak. */
static size_t root_devices(void)
{
        priv_drop_activations(root_path);
        return priv_devices_tagged(snap_root_tag_owner(R));
}

static size_t mounts_under_root(void)
{
        char real[PATH_MAX], line[8192];
        size_t n = 0;
        priv_drop_activations(root_path);
        cr_assert_not_null(realpath(root_path, real), "realpath %s: %m", root_path);
        size_t len = strlen(real);
        FILE *f = fopen("/proc/self/mountinfo", "re");
        cr_assert_not_null(f, "%m");
        while (fgets(line, sizeof(line), f)) {
                char target[4096];
                if (sscanf(line, "%*s %*s %*s %*s %4095s", target) == 1 &&
                    strncmp(target, real, len) == 0 && (target[len] == '/' || !target[len]))
                        n++;
        }
        (void)fclose(f); /* read only */
        return n;
}

static void log_line(void *data, const char *line)
{
        cr_log_info("%s: %s", (const char *)data, line);
}

static struct snap_fsck_report fsck(bool repair, const char *what)
{
        struct snap_fsck_report rep;
        struct util_err err = {0};
        int rc = snap_fsck(R, repair, log_line, (void *)what, &rep, &err);
        cr_assert_eq(rc, 0, "%s: fsck: %d %s", what, rc, err.msg);
        cr_log_info("%s: fsck%s: orphan_dirs %u tmp %u trash %u templates %u rows_without_files "
                    "%u bad_images %u leaked_loops %u leaked_mounts %u fixed %u",
                    what, repair ? " --repair" : "", rep.orphan_dirs, rep.tmp_leftovers,
                    rep.trash_leftovers, rep.template_leftovers, rep.rows_without_files,
                    rep.bad_images, rep.leaked_loops, rep.leaked_mounts, rep.fixed);
        return rep;
}

static void integrity_ok(void)
{
        struct util_err err = {0};
        int rc = snap_store_integrity_check(R->store, &err);
        cr_assert_eq(rc, 0, "integrity check: %d %s", rc, err.msg);
}

/* ---- fault points ---- */

enum op { OP_PREPARE, OP_COMMIT, OP_REMOVE, OP_TEMPLATE };

enum {
        W_ORPHAN = 1u << 0,
        W_TMP = 1u << 1,
        W_TRASH = 1u << 2,
        W_TEMPLATE = 1u << 3,
        W_ROWS = 1u << 4,
        W_LOOPS = 1u << 5,
        W_MOUNTS = 1u << 6,
};

struct fault_case {
        const char *point;
        enum op op;
        unsigned want; /* the kinds of leftovers fsck must find (and only those) */
        bool done;     /* the crash left the new state (else the old) */
        /* More kinds where commit makes a compact layer image (the default
         * root: ext4 image uppers), which waits in tmp/ until after the
         * transaction. */
        unsigned want_compact;
};

/* The max-size label that makes a template of a size no one made yet. */
static const struct snap_label new_size[] = {
        {(char *)SNAP_LABEL_MAX_SIZE, (char *)"33554432"},
};

static int child_op(enum op op, struct util_err *err)
{
        switch (op) {
        case OP_PREPARE:
                return snap_prepare(R, "k", "base", NULL, 0, NULL, err);
        case OP_TEMPLATE:
                return snap_prepare(R, "k", "base", new_size, 1, NULL, err);
        case OP_COMMIT:
                return snap_commit(R, "K", "k", NULL, 0, err);
        case OP_REMOVE:
                return snap_remove(R, "leaf", err);
        }
        return -EINVAL;
}

/* Runs `op` in a child with LOOPSNAP_FAULT=point; returns its exit status. */
static int run_crashing(const char *point, enum op op)
{
        R = snap_root_close(R);
        (void)fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
                struct snap_root_opts o = root_opts();
                struct util_err err = {0};
                if (setenv("LOOPSNAP_FAULT", point, 1) < 0 || snap_root_open(&o, &R, &err) < 0)
                        _exit(CHILD_OPEN_FAIL);
                int rc = child_op(op, &err);
                if (rc < 0)
                        fprintf(stderr, "child (%s): %s\n", point, err.msg);
                _exit(rc < 0 ? CHILD_OP_FAILED : CHILD_OP_DONE);
        }
        cr_assert_gt(pid, 0, "fork: %m");
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid, "waitpid: %m");
        reopen();
        cr_assert(WIFEXITED(status), "%s: the child died of signal %d", point,
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return WEXITSTATUS(status);
}

static bool variant_compacts(void);

static void check_found(const struct fault_case *c, const struct snap_fsck_report *rep)
{
        unsigned want = c->want | (variant_compacts() ? c->want_compact : 0);
        const struct {
                unsigned bit;
                unsigned n;
                const char *name;
        } kinds[] = {
                {W_ORPHAN, rep->orphan_dirs, "orphan_dirs"},
                {W_TMP, rep->tmp_leftovers, "tmp_leftovers"},
                {W_TRASH, rep->trash_leftovers, "trash_leftovers"},
                {W_TEMPLATE, rep->template_leftovers, "template_leftovers"},
                {W_ROWS, rep->rows_without_files, "rows_without_files"},
                {0, rep->bad_images, "bad_images"},
                {W_LOOPS, rep->leaked_loops, "leaked_loops"},
                {W_MOUNTS, rep->leaked_mounts, "leaked_mounts"},
        };
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(kinds); k++) {
                if (want & kinds[k].bit)
                        cr_assert_gt(kinds[k].n, 0, "%s: fsck found no %s", c->point,
                                     kinds[k].name);
                else
                        cr_assert_eq(kinds[k].n, 0, "%s: fsck found %u %s (none expected)",
                                     c->point, kinds[k].n, kinds[k].name);
        }
}

static void run_fault_case(const struct fault_case *c)
{
        reopen();
        make_base();
        if (c->op == OP_COMMIT) {
                prepare_ok("k", "base", NULL, 0);
                const char *t = mount_key("k");
                write_file(t, "k.txt", "k");
                unmount(t);
        } else if (c->op == OP_REMOVE) {
                prepare_ok("l", "base", NULL, 0);
                const char *t = mount_key("l");
                write_file(t, "leaf.txt", "leaf");
                unmount(t);
                commit_ok("leaf", "l");
        }
        struct snap_fsck_report before = fsck(false, "before the crash");
        cr_assert_eq(snap_fsck_problems(&before), 0, "problems before the crash");

        int status = run_crashing(c->point, c->op);
        cr_assert_eq(status, UTIL_FAULT_EXIT, "%s: the child exited %d, not %d (%s)", c->point,
                     status, UTIL_FAULT_EXIT,
                     status == CHILD_OP_DONE ? "the fault point was not reached"
                                             : "the operation failed");

        struct snap_fsck_report found = fsck(false, c->point);
        check_found(c, &found);
        struct snap_fsck_report repaired = fsck(true, c->point);
        check_found(c, &repaired);
        if (snap_fsck_problems(&found) > 0)
                cr_assert_gt(repaired.fixed, 0, "%s: fsck repaired nothing", c->point);
        struct snap_fsck_report after = fsck(false, c->point);
        cr_assert_eq(snap_fsck_problems(&after), 0, "%s: %u problems left after the repair",
                     c->point, snap_fsck_problems(&after));
        integrity_ok();
        cr_assert_eq(root_devices(), 0, "%s: a loop device of the root is left", c->point);
        cr_assert_eq(mounts_under_root(), 0, "%s: a mount under the root is left", c->point);

        /* Nothing committed is lost. */
        check_committed("base", NULL, NULL);

        /* The old or the new state, and the operation can be done (again). */
        switch (c->op) {
        case OP_PREPARE:
        case OP_TEMPLATE: {
                const struct snap_label *l = c->op == OP_TEMPLATE ? new_size : NULL;
                size_t n = c->op == OP_TEMPLATE ? 1 : 0;
                cr_assert_eq(kind_of("k"), c->done ? SNAP_KIND_ACTIVE : SNAP_KIND_UNKNOWN);
                if (c->done)
                        remove_ok("k");
                prepare_ok("k", "base", l, n);
                const char *t = mount_key("k");
                expect_file(t, "base.txt", "base");
                write_file(t, "k.txt", "again");
                unmount(t);
                break;
        }
        case OP_COMMIT:
                cr_assert_eq(kind_of("k"), c->done ? SNAP_KIND_UNKNOWN : SNAP_KIND_ACTIVE);
                cr_assert_eq(kind_of("K"), c->done ? SNAP_KIND_COMMITTED : SNAP_KIND_UNKNOWN);
                if (c->done) {
                        check_committed("K", "k.txt", "k");
                        remove_ok("K");
                        prepare_ok("k", "base", NULL, 0);
                        const char *t = mount_key("k");
                        write_file(t, "k.txt", "k");
                        unmount(t);
                }
                commit_ok("K", "k");
                check_committed("K", "k.txt", "k");
                break;
        case OP_REMOVE:
                cr_assert_eq(kind_of("leaf"), c->done ? SNAP_KIND_UNKNOWN : SNAP_KIND_COMMITTED);
                if (c->done) {
                        prepare_ok("l", "base", NULL, 0);
                        const char *t = mount_key("l");
                        write_file(t, "leaf.txt", "leaf");
                        unmount(t);
                        commit_ok("leaf", "l");
                }
                check_committed("leaf", "leaf.txt", "leaf");
                remove_ok("leaf");
                cr_assert_eq(kind_of("leaf"), SNAP_KIND_UNKNOWN);
                break;
        }
        struct snap_fsck_report end = fsck(false, "after redoing");
        cr_assert_eq(snap_fsck_problems(&end), 0, "%s: problems after redoing the operation",
                     c->point);
        cr_assert_eq(root_devices(), 0, "%s: a loop device of the root is left", c->point);
        cr_assert_eq(mounts_under_root(), 0, "%s: a mount under the root is left", c->point);
}

static const struct fault_case cases[] = {
        {"prepare-after-clone", OP_PREPARE, W_TMP, false, 0},
        {"create-before-db-commit", OP_PREPARE, W_ORPHAN, false, 0},
        {"create-after-db-commit", OP_PREPARE, 0, true, 0},
        {"commit-while-mounted", OP_COMMIT, W_TMP | W_LOOPS | W_MOUNTS, false, 0},
        {"commit-before-db-commit", OP_COMMIT, 0, false, W_TMP},
        {"commit-after-db-commit", OP_COMMIT, 0, true, 0},
        {"remove-before-db-commit", OP_REMOVE, W_TRASH | W_ROWS, false, 0},
        {"remove-after-db-commit", OP_REMOVE, W_TRASH, true, 0},
        {"template-after-mkfs", OP_TEMPLATE, W_TEMPLATE, false, 0},
        {"commit-after-layer-image", OP_COMMIT, W_TMP, false, 0},
        {"commit-before-compact-rename", OP_COMMIT, W_TMP, true, 0},
};

/* A case whose step the root variant does not have: clean up by hand (a
 * skipped test gets no .fini) and skip visibly. */
static void skip_unless_variant_has(bool has, const char *point)
{
        if (has)
                return;
        const char *v = getenv("LOOPSNAP_TEST_VARIANT");
        crash_teardown();
        cr_skip_test("variant '%s' has no step '%s'", v ? v : "", point);
}

/* Whether commit makes a compact ext4 copy of an image upper (the default
 * root); every variant makes a new layer image (erofs, from a directory
 * upper, or that copy). */
static bool variant_compacts(void)
{
        struct snap_root_opts o = root_opts();
        return !o.upper_dir && !o.committed_format;
}

static const struct fault_case *case_of(const char *point)
{
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(cases); k++)
                if (strcmp(cases[k].point, point) == 0)
                        return &cases[k];
        cr_assert_fail("no case for '%s'", point);
        return NULL;
}

Test(crash, prepare_after_clone)
{
        run_fault_case(case_of("prepare-after-clone"));
}

Test(crash, create_before_db_commit)
{
        run_fault_case(case_of("create-before-db-commit"));
}

Test(crash, create_after_db_commit)
{
        run_fault_case(case_of("create-after-db-commit"));
}

Test(crash, commit_while_mounted)
{
        skip_unless_variant_has(!root_opts().upper_dir, "commit-while-mounted");
        run_fault_case(case_of("commit-while-mounted"));
}

Test(crash, commit_after_layer_image)
{
        run_fault_case(case_of("commit-after-layer-image"));
}

Test(crash, commit_before_compact_rename)
{
        skip_unless_variant_has(variant_compacts(), "commit-before-compact-rename");
        run_fault_case(case_of("commit-before-compact-rename"));
}

Test(crash, commit_before_db_commit)
{
        run_fault_case(case_of("commit-before-db-commit"));
}

Test(crash, commit_after_db_commit)
{
        run_fault_case(case_of("commit-after-db-commit"));
}

Test(crash, remove_before_db_commit)
{
        run_fault_case(case_of("remove-before-db-commit"));
}

Test(crash, remove_after_db_commit)
{
        run_fault_case(case_of("remove-after-db-commit"));
}

/* cleanup alone (no fsck) after a remove that died before its commit: the
 * row is still there, so its files go back from trash/, never away. */
Test(crash, cleanup_puts_back_files_of_a_rolled_back_remove)
{
        reopen();
        make_base();
        prepare_ok("l", "base", NULL, 0);
        const char *t = mount_key("l");
        write_file(t, "leaf.txt", "leaf");
        unmount(t);
        commit_ok("leaf", "l");
        cr_assert_eq(run_crashing("remove-before-db-commit", OP_REMOVE), UTIL_FAULT_EXIT);
        struct util_err err = {0};
        cr_assert_geq(snap_cleanup(R, &err), 0, "%s", err.msg);
        check_committed("leaf", "leaf.txt", "leaf");
        struct snap_fsck_report rep = fsck(false, "after cleanup");
        cr_assert_eq(snap_fsck_problems(&rep), 0, "nothing left for fsck");
        remove_ok("leaf");
}

Test(crash, template_after_mkfs)
{
        skip_unless_variant_has(!root_opts().upper_dir, "template-after-mkfs");
        run_fault_case(case_of("template-after-mkfs"));
}

/* ---- concurrency ---- */

#define N_PROCS 8
#define N_OPS   100
#define MAX_OWN N_OPS

struct own {
        char key[32];
        enum snap_kind kind;
        int parent; /* index into own[], -1: base */
        int children;
        bool alive;
};

struct worker {
        int proc;
        struct own own[MAX_OWN];
        int n_own;
        unsigned serial;
        unsigned bad;
};

static void bad_error(struct worker *w, const char *what, const char *key, int rc,
                      const struct util_err *err)
{
        fprintf(stderr, "worker %d: %s '%s': %d %s\n", w->proc, what, key, rc, err->msg);
        w->bad++;
}

/* A random live own snapshot of `kind` (SNAP_KIND_UNKNOWN: any), or -1. */
static int pick(struct worker *w, enum snap_kind kind)
{
        int cand[MAX_OWN], n = 0;
        for (int k = 0; k < w->n_own; k++)
                if (w->own[k].alive && (kind == SNAP_KIND_UNKNOWN || w->own[k].kind == kind))
                        cand[n++] = k;
        return n ? cand[util_random_u32() % (unsigned)n] : -1;
}

static int walk_count(const struct snap_info *i, void *data, struct util_err *err)
{
        (void)i;
        (void)err;
        (*(unsigned *)data)++;
        return 0;
}

static void worker_create(struct worker *w, bool active)
{
        if (w->n_own >= MAX_OWN)
                return;
        int parent = util_random_u32() % 2 ? pick(w, SNAP_KIND_COMMITTED) : -1;
        struct own *o = &w->own[w->n_own];
        snprintf(o->key, sizeof(o->key), "p%d-%c%u", w->proc, active ? 'k' : 'v', w->serial++);
        struct util_err err = {0};
        const char *pk = parent < 0 ? "base" : w->own[parent].key;
        int rc = active ? snap_prepare(R, o->key, pk, NULL, 0, NULL, &err)
                        : snap_view(R, o->key, pk, NULL, 0, NULL, &err);
        if (rc < 0) {
                bad_error(w, active ? "prepare" : "view", o->key, rc, &err);
                return;
        }
        *o = (struct own){.kind = active ? SNAP_KIND_ACTIVE : SNAP_KIND_VIEW,
                          .parent = parent,
                          .alive = true};
        snprintf(o->key, sizeof(o->key), "p%d-%c%u", w->proc, active ? 'k' : 'v', w->serial - 1);
        if (parent >= 0)
                w->own[parent].children++;
        w->n_own++;
}

static void worker_commit(struct worker *w)
{
        int k = pick(w, SNAP_KIND_ACTIVE);
        if (k < 0)
                return;
        char name[32];
        snprintf(name, sizeof(name), "p%d-c%u", w->proc, w->serial++);
        struct util_err err = {0};
        int rc = snap_commit(R, name, w->own[k].key, NULL, 0, &err);
        if (rc < 0) {
                bad_error(w, "commit", w->own[k].key, rc, &err);
                return;
        }
        snprintf(w->own[k].key, sizeof(w->own[k].key), "%s", name);
        w->own[k].kind = SNAP_KIND_COMMITTED;
}

static void worker_remove(struct worker *w)
{
        int k = pick(w, SNAP_KIND_UNKNOWN);
        if (k < 0)
                return;
        struct own *o = &w->own[k];
        struct util_err err = {0};
        int rc = snap_remove(R, o->key, &err);
        if (o->children > 0) {
                if (rc != -EBUSY)
                        bad_error(w, "remove (has children: want EBUSY)", o->key, rc, &err);
                return;
        }
        if (rc < 0) {
                bad_error(w, "remove", o->key, rc, &err);
                return;
        }
        o->alive = false;
        if (o->parent >= 0)
                w->own[o->parent].children--;
}

static void worker_read(struct worker *w, unsigned what)
{
        int k = pick(w, SNAP_KIND_UNKNOWN);
        const char *key = k < 0 ? "base" : w->own[k].key;
        enum snap_kind want = k < 0 ? SNAP_KIND_COMMITTED : w->own[k].kind;
        struct util_err err = {0};
        int rc;

        if (what == 0) {
                struct snap_info i = {0};
                rc = snap_stat(R, key, &i, &err);
                if (rc == 0 && i.kind != want) {
                        fprintf(stderr, "worker %d: stat '%s': kind %s, want %s\n", w->proc, key,
                                snap_kind_name(i.kind), snap_kind_name(want));
                        w->bad++;
                }
                snap_info_done(&i);
                if (rc < 0)
                        bad_error(w, "stat", key, rc, &err);
        } else if (what == 1) {
                char filter[64];
                snprintf(filter, sizeof(filter), "name~=^p%d-", w->proc);
                const char *filters[] = {filter};
                unsigned n = 0, live = 0;
                rc = snap_walk(R, filters, 1, walk_count, &n, &err);
                for (int j = 0; j < w->n_own; j++)
                        live += w->own[j].alive;
                if (rc < 0)
                        bad_error(w, "walk", filter, rc, &err);
                else if (n != live) {
                        fprintf(stderr, "worker %d: walk found %u, want %u\n", w->proc, n, live);
                        w->bad++;
                }
        } else {
                struct snap_usage u;
                rc = snap_usage(R, key, &u, &err);
                if (rc < 0)
                        bad_error(w, "usage", key, rc, &err);
        }
}

static int worker_main(int proc)
{
        struct snap_root_opts o = root_opts();
        struct util_err err = {0};
        struct worker *w = calloc(1, sizeof(*w));
        if (!w || snap_root_open(&o, &R, &err) < 0)
                return 100;
        w->proc = proc;
        for (int n = 0; n < N_OPS; n++) {
                unsigned x = util_random_u32() % 100;
                if (x < 25)
                        worker_create(w, true);
                else if (x < 40)
                        worker_commit(w);
                else if (x < 50)
                        worker_create(w, false);
                else if (x < 65)
                        worker_remove(w);
                else
                        worker_read(w, x % 3);
        }
        unsigned bad = w->bad;
        R = snap_root_close(R);
        free(w);
        return bad > 99 ? 99 : (int)bad;
}

Test(crash, concurrency, .timeout = 300)
{
        reopen();
        make_base();
        R = snap_root_close(R);
        (void)fflush(NULL);

        uint64_t t0 = util_now_ns();
        pid_t pids[N_PROCS];
        for (int p = 0; p < N_PROCS; p++) {
                pids[p] = fork();
                if (pids[p] == 0)
                        _exit(worker_main(p));
                cr_assert_gt(pids[p], 0, "fork: %m");
        }
        for (int p = 0; p < N_PROCS; p++) {
                int status;
                cr_assert_eq(waitpid(pids[p], &status, 0), pids[p], "waitpid: %m");
                cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                          "worker %d: %s %d (unexpected errors)", p,
                          WIFEXITED(status) ? "exit" : "signal",
                          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
        cr_log_info("%d processes x %d operations: %.1f s", N_PROCS, N_OPS,
                    (double)(util_now_ns() - t0) / 1e9);

        reopen();
        integrity_ok();
        struct snap_info *rows = NULL;
        size_t n_rows = 0;
        struct util_err err = {0};
        cr_assert_eq(snap_store_list(R->store, &rows, &n_rows, &err), 0, "%s", err.msg);
        unsigned mounted = 0;
        for (size_t k = 0; k < n_rows && mounted < 20; k++) {
                if (rows[k].kind == SNAP_KIND_COMMITTED)
                        continue;
                const char *t = mount_key(rows[k].name);
                expect_file(t, "base.txt", "base");
                unmount(t);
                mounted++;
        }
        cr_log_info("%zu snapshots survive; mounted %u of them", n_rows, mounted);
        snap_info_list_free(rows, n_rows);
        check_committed("base", NULL, NULL);

        struct snap_fsck_report rep = fsck(false, "after the concurrency run");
        cr_assert_eq(snap_fsck_problems(&rep), 0, "fsck found %u problems",
                     snap_fsck_problems(&rep));
        cr_assert_eq(root_devices(), 0, "a loop device of the root is left");
        cr_assert_eq(mounts_under_root(), 0, "a mount under the root is left");
}

/* ---- what fsck reports but does not repair ---- */

static int64_t id_of(const char *key)
{
        struct snap_info i = {0};
        struct util_err err = {0};
        cr_assert_eq(snap_stat(R, key, &i, &err), 0, "stat '%s': %s", key, err.msg);
        int64_t id = i.id;
        snap_info_done(&i);
        return id;
}

Test(crash, fsck_bad_image_and_row_with_children)
{
        skip_unless_variant_has(!root_opts().upper_dir, "a superblock in the active snapshot");
        reopen();
        make_base();
        prepare_ok("c", "base", NULL, 0);

        /* c's superblock is gone; base's image is gone while c needs it. */
        const char *img = priv_path("%s/snapshots/%lld/fs.img", root_path, (long long)id_of("c"));
        int fd = open(img, O_WRONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0, "open %s: %m", img);
        char zero[2048] = {0};
        cr_assert_eq(pwrite(fd, zero, sizeof(zero), 0), (ssize_t)sizeof(zero), "%m");
        close(fd);
        const char *base_img =
                priv_path("%s/snapshots/%lld/%s", root_path, (long long)id_of("base"),
                          root_opts().committed_format ? "layer.erofs" : "fs.img");
        cr_assert_eq(unlink(base_img), 0, "unlink %s: %m", base_img);

        struct snap_fsck_report rep = fsck(false, "damaged");
        cr_assert_eq(rep.bad_images, 1);
        cr_assert_eq(rep.rows_without_files, 1);
        cr_assert_eq(snap_fsck_problems(&rep), 2);
        rep = fsck(true, "damaged");
        cr_assert_eq(snap_fsck_problems(&rep), 2);
        cr_assert_eq(rep.fixed, 0, "a row with children or a bad image was 'repaired'");
        cr_assert_eq(kind_of("base"), SNAP_KIND_COMMITTED);
        cr_assert_eq(kind_of("c"), SNAP_KIND_ACTIVE);

        /* Without its child, the row without files goes. */
        remove_ok("c");
        rep = fsck(true, "childless");
        cr_assert_eq(rep.rows_without_files, 1);
        cr_assert_geq(rep.fixed, 1);
        cr_assert_eq(kind_of("base"), SNAP_KIND_UNKNOWN);
        rep = fsck(false, "repaired");
        cr_assert_eq(snap_fsck_problems(&rep), 0);
        integrity_ok();
}
