/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Privileged tests of the snapshotter (snapshot/snapshot.h) on the real
 * kernel: containerd's snapshotter testsuite cases (research/anchors.md §1.5)
 * restated for the overlay layout with ext4 writable images, plus what
 * loopsnap adds (quota, idmapped snapshots, validation, cleanup, reopen).
 *
 * Every test opens a fresh root under the test's directory with small
 * writable images (64 MiB) and mounts the specs the snapshotter returns with
 * the bundled engine, its loop devices tagged with the test's owner so the
 * suite's leak check finds anything left attached.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>

#include "loop/loop.h"
#include "mount/mount.h"
#include "snapshot/fsck.h"
#include "snapshot/snapshot.h"
#include "test/priv/priv.h"

#define MIB        (UINT64_C(1) << 20)
#define IMAGE_SIZE (64 * MIB)

/* A label literal (struct snap_label has non-const members). */
#define LABEL(k, v)                      \
        {                                \
                (char *)(k), (char *)(v) \
        }

static void spec_free(void *p)
{
        mount_spec_free(p);
}

static void root_free(void *p)
{
        snap_root_close(p);
}

static void info_free(void *p)
{
        snap_info_done(p);
        free(p);
}

static unsigned n_targets;

static void snap_setup(void)
{
        n_targets = 0;
        priv_setup();
        priv_private_mount_ns();
}

static void snap_teardown(void)
{
        priv_teardown();
}

TestSuite(snapshot, .init = snap_setup, .fini = snap_teardown, .timeout = 120);

/* ---- roots ---- */

static const char *root_dir(void)
{
        return priv_keep(priv_path("%s/root", priv_tmpdir()));
}

static struct snap_root *open_root_opts(const struct snap_root_opts *o)
{
        struct snap_root *r = NULL;
        struct util_err err = {0};
        int rc = snap_root_open(o, &r, &err);
        cr_assert_eq(rc, 0, "snap_root_open(%s): %d %s", o->path, rc, err.msg);
        cr_assert_not_null(r);
        return priv_defer(root_free, r);
}

/*
 * The conformance cases run once per root variant (CTest sets
 * LOOPSNAP_TEST_VARIANT): "" (overlay layout, ext4 image upper, ext4
 * layers), "erofs" (erofs committed layers), "dir" (a plain-directory upper,
 * layers made with mkfs.ext4 -d), "dir-erofs", and "block".
 */
static const char *variant(void)
{
        const char *v = getenv("LOOPSNAP_TEST_VARIANT");
        return v ? v : "";
}

static bool variant_is(const char *v)
{
        return strcmp(variant(), v) == 0;
}

static bool variant_dir(void)
{
        return variant_is("dir") || variant_is("dir-erofs");
}

static bool variant_erofs(void)
{
        return variant_is("erofs") || variant_is("dir-erofs");
}

/* Skips a case that is about the default variant's spec shapes or images. */
__attribute__((unused)) static void only_default_variant(const char *why)
{
        if (variant()[0])
                cr_skip_test("%s: not in variant '%s'", why, variant());
}

static struct snap_root_opts variant_opts(void)
{
        struct snap_root_opts o = {.path = root_dir(), .writable_size = IMAGE_SIZE};
        if (variant_erofs())
                o.committed_format = "erofs";
        if (variant_dir())
                o.upper_dir = true;
        if (variant_is("block"))
                o.layout = SNAP_LAYOUT_BLOCK;
        return o;
}

static struct snap_root *open_root(void)
{
        struct snap_root_opts o = variant_opts();
        return open_root_opts(&o);
}

/* ---- snapshot operations that must succeed ---- */

static struct mount_spec *prepare_l(struct snap_root *r, const char *key, const char *parent,
                                    const struct snap_label *labels, size_t n)
{
        struct mount_spec *m = NULL;
        struct util_err err = {0};
        int rc = snap_prepare(r, key, parent, labels, n, &m, &err);
        cr_assert_eq(rc, 0, "prepare '%s' on '%s': %d %s", key, parent ? parent : "", rc, err.msg);
        cr_assert_not_null(m, "prepare '%s' returned no mounts", key);
        return priv_defer(spec_free, m);
}

static struct mount_spec *prepare(struct snap_root *r, const char *key, const char *parent)
{
        return prepare_l(r, key, parent, NULL, 0);
}

static struct mount_spec *view(struct snap_root *r, const char *key, const char *parent)
{
        struct mount_spec *m = NULL;
        struct util_err err = {0};
        int rc = snap_view(r, key, parent, NULL, 0, &m, &err);
        cr_assert_eq(rc, 0, "view '%s' on '%s': %d %s", key, parent ? parent : "", rc, err.msg);
        cr_assert_not_null(m, "view '%s' returned no mounts", key);
        return priv_defer(spec_free, m);
}

static void commit_l(struct snap_root *r, const char *name, const char *key,
                     const struct snap_label *labels, size_t n)
{
        struct util_err err = {0};
        int rc = snap_commit(r, name, key, labels, n, &err);
        cr_assert_eq(rc, 0, "commit '%s' as '%s': %d %s", key, name, rc, err.msg);
}

static void commit(struct snap_root *r, const char *name, const char *key)
{
        commit_l(r, name, key, NULL, 0);
}

static void remove_ok(struct snap_root *r, const char *key)
{
        struct util_err err = {0};
        int rc = snap_remove(r, key, &err);
        cr_assert_eq(rc, 0, "remove '%s': %d %s", key, rc, err.msg);
}

static struct snap_info *stat_ok(struct snap_root *r, const char *key)
{
        struct snap_info *i = calloc(1, sizeof(*i));
        struct util_err err = {0};
        cr_assert_not_null(i);
        int rc = snap_stat(r, key, i, &err);
        if (rc < 0) {
                free(i);
                cr_assert_fail("stat '%s': %d %s", key, rc, err.msg);
        }
        return priv_defer(info_free, i);
}

static struct mount_spec *mounts_ok(struct snap_root *r, const char *key)
{
        struct mount_spec *m = NULL;
        struct util_err err = {0};
        int rc = snap_mounts(r, key, &m, &err);
        cr_assert_eq(rc, 0, "mounts '%s': %d %s", key, rc, err.msg);
        return priv_defer(spec_free, m);
}

/* A failure with the expected errno whose message names `key` (or `alt`). */
static void expect_fail(int rc, int want, const struct util_err *err, const char *what,
                        const char *key, const char *alt)
{
        cr_assert_eq(rc, -want, "%s: returned %d (%s), want -%s (%s)", what, rc,
                     rc < 0 ? err->msg : "success", strerrorname_np(want), strerror(want));
        cr_assert_eq(err->errnum, want, "%s: err.errnum %d, want %d", what, err->errnum, want);
        if (key && *key)
                cr_assert(strstr(err->msg, key) || (alt && strstr(err->msg, alt)),
                          "%s: the message names '%s': \"%s\"", what, key, err->msg);
}

static void expect_absent(struct snap_root *r, const char *key)
{
        struct snap_info i = {0};
        struct util_err err = {0};
        int rc = snap_stat(r, key, &i, &err);
        snap_info_done(&i);
        expect_fail(rc, ENOENT, &err, priv_path("stat '%s'", key), key, NULL);
}

/* ---- mounting ---- */

static const char *spec_json(const struct mount_spec *s)
{
        char *json = NULL;
        struct util_err err = {0};
        if (mount_spec_to_json(s, false, &json, &err) < 0)
                return priv_keep(err.msg);
        return priv_defer(free, json);
}

/* Applies `spec` onto a fresh target directory; returns the target. */
static const char *mount_spec_at(const struct mount_spec *spec, const char *what)
{
        const char *t = priv_keep(priv_path("%s/t%u", priv_tmpdir(), n_targets++));
        struct util_err err = {0};
        cr_assert_eq(mkdir(t, 0755), 0, "mkdir %s: %m", t);
        int rc = mount_engine_apply(priv_engine(), spec, t, NULL, NULL, &err);
        cr_assert_eq(rc, 0, "mount '%s': %d %s\nspec: %s", what, rc, err.msg, spec_json(spec));
        return t;
}

/* Mounts(key) applied onto a fresh target. */
static const char *mount_key(struct snap_root *r, const char *key)
{
        return mount_spec_at(mounts_ok(r, key), key);
}

static void unmount(const char *t)
{
        struct util_err err = {0};
        int n = mount_unmount_all(t, &err);
        cr_assert_eq(n, 1, "unmount %s: %d mounts removed (want 1) %s", t, n, err.msg);
}

/* Once everything is unmounted (and the activation cache dropped), no loop
 * device of the test or the root. */
static void no_devices_left(struct snap_root *r)
{
        (void)priv_drop_activations(snap_root_path(r));
        cr_assert_eq(priv_devices_tagged(priv_owner()), 0,
                     "loop devices of the test's mounts left");
        cr_assert_eq(priv_devices_tagged(snap_root_tag_owner(r)), 0,
                     "loop devices tagged with the root's owner '%s' left", snap_root_tag_owner(r));
}

/* ---- files ---- */

static const char *at(const char *dir, const char *name)
{
        return priv_path("%s/%s", dir, name);
}

static void write_file(const char *dir, const char *name, const char *content)
{
        const char *p = at(dir, name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0, "create %s: %m", p);
        cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content), "write %s: %m",
                     p);
        cr_assert_eq(close(fd), 0, "close %s: %m", p);
}

static void make_dir(const char *dir, const char *name, mode_t mode)
{
        const char *p = at(dir, name);
        cr_assert_eq(mkdir(p, mode), 0, "mkdir %s: %m", p);
        cr_assert_eq(chmod(p, mode), 0, "chmod %s: %m", p);
}

/* The content of dir/name, or NULL when it cannot be opened. */
static const char *read_file(const char *dir, const char *name)
{
        static char buf[256];
        int fd = open(at(dir, name), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

static void expect_content(const char *dir, const char *name, const char *want)
{
        const char *got = read_file(dir, name);
        cr_assert_not_null(got, "%s is missing (%m)", at(dir, name));
        cr_assert_str_eq(got, want, "content of %s", at(dir, name));
}

static void expect_missing(const char *dir, const char *name)
{
        struct stat st;
        cr_assert_eq(lstat(at(dir, name), &st), -1, "%s should not exist", at(dir, name));
        cr_assert_eq(errno, ENOENT, "%s: %m", at(dir, name));
}

static struct stat stat_of(const char *dir, const char *name)
{
        struct stat st;
        cr_assert_eq(lstat(at(dir, name), &st), 0, "stat %s: %m", at(dir, name));
        return st;
}

/* Creating a file in a read-only mount fails with EROFS. */
static void expect_readonly(const char *dir)
{
        int fd = open(at(dir, "ro-probe"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        int e = errno;
        if (fd >= 0)
                close(fd);
        cr_assert_lt(fd, 0, "created a file in read-only %s", dir);
        cr_assert_eq(e, EROFS, "create in %s: %s (want EROFS)", dir, strerror(e));
        cr_assert_eq(mkdir(at(dir, "ro-dir"), 0755), -1, "mkdir in read-only %s", dir);
        cr_assert_eq(errno, EROFS, "mkdir in %s: %m (want EROFS)", dir);
}

/* The writable image of snapshot `key`: <root>/snapshots/<id>/fs.img. */
static const char *image_of(struct snap_root *r, const char *key)
{
        struct snap_info *i = stat_ok(r, key);
        const char *file =
                i->kind == SNAP_KIND_COMMITTED && variant_erofs() ? "layer.erofs" : "fs.img";
        return priv_keep(
                priv_path("%s/snapshots/%lld/%s", snap_root_path(r), (long long)i->id, file));
}

/* A committed snapshot `name` on `parent` holding `file` = `content`. */
static void committed_with(struct snap_root *r, const char *name, const char *parent,
                           const char *file, const char *content)
{
        const char *key = priv_keep(priv_path("%s-active", name));
        prepare(r, key, parent);
        const char *t = mount_key(r, key);
        write_file(t, file, content);
        unmount(t);
        commit(r, name, key);
}

/* Committed layers c1 (no parent) to c<n>, each c<k> on c<k-1> holding
 * f<k> = "<k>". */
static void committed_chain(struct snap_root *r, unsigned n)
{
        for (unsigned k = 1; k <= n; k++)
                committed_with(r, priv_keep(priv_path("c%u", k)),
                               k > 1 ? priv_keep(priv_path("c%u", k - 1)) : NULL,
                               priv_keep(priv_path("f%u", k)), priv_keep(priv_path("%u", k)));
}

/* The variant's root, for a test of stacked layers (skipped for the block
 * layout, which stacks none). */
static struct snap_root *open_layered_root(void)
{
        if (variant_is("block"))
                cr_skip_test("the block layout stacks no layers (variant '%s')", variant());
        return open_root();
}

/* "k=v,k=v" of the labels, in their order. */
static const char *labels_str(const struct snap_info *i)
{
        static char buf[1024];
        size_t off = 0;
        buf[0] = '\0';
        for (size_t k = 0; k < i->n_labels; k++)
                off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s=%s", k ? "," : "",
                                        i->labels[k].key, i->labels[k].value);
        return buf;
}

/* ---- containerd's testsuite ---- */

Test(snapshot, basic)
{
        struct snap_root *r = open_root();

        prepare(r, "p1", NULL);
        const char *t = mount_key(r, "p1");
        if (!variant_dir())
                cr_assert_geq(priv_devices_tagged(priv_owner()), 1,
                              "the mount's device carries the test tag");
        write_file(t, "foo", "foo");
        make_dir(t, "a", 0755);
        write_file(t, "a/b", "b");
        make_dir(t, "a/c", 0755);
        unmount(t);
        commit(r, "c1", "p1");
        expect_absent(r, "p1");

        prepare(r, "p2", "c1");
        t = mount_key(r, "p2");
        expect_content(t, "foo", "foo");
        expect_content(t, "a/b", "b");
        cr_assert(S_ISDIR(stat_of(t, "a/c").st_mode));
        write_file(t, "bar", "bar");
        write_file(t, "a/d", "d");
        unmount(t);
        commit(r, "c2", "p2");

        view(r, "v", "c2");
        t = mount_key(r, "v");
        expect_content(t, "foo", "foo");
        expect_content(t, "a/b", "b");
        expect_content(t, "bar", "bar");
        expect_content(t, "a/d", "d");
        expect_readonly(t);
        unmount(t);

        /* The parent did not see its child's files. */
        view(r, "v1", "c1");
        t = mount_key(r, "v1");
        expect_content(t, "foo", "foo");
        expect_missing(t, "bar");
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, stat_active)
{
        struct snap_root *r = open_root();
        prepare(r, "base-a", NULL);
        commit(r, "base", "base-a");

        struct snap_label l[] = {LABEL("x", "1"), LABEL("a", "2")};
        prepare_l(r, "act", "base", l, 2);
        struct snap_info *i = stat_ok(r, "act");
        struct snap_info *b = stat_ok(r, "base");
        cr_assert_eq(i->kind, SNAP_KIND_ACTIVE, "kind %s", snap_kind_name(i->kind));
        cr_assert_str_eq(i->name, "act");
        cr_assert_not_null(i->parent);
        cr_assert_str_eq(i->parent, "base");
        cr_assert_eq(i->parent_id, b->id);
        cr_assert_str_eq(labels_str(i), "a=2,x=1", "labels sorted by key");
        cr_assert_gt(i->created_ns, 0);
        cr_assert_geq(i->updated_ns, i->created_ns);
        cr_assert_eq(i->size, 0);

        /* No parent; ret_mounts may be NULL. */
        struct util_err e0 = {0};
        cr_assert_eq(snap_prepare(r, "lone", NULL, NULL, 0, NULL, &e0), 0, "%s", e0.msg);
        i = stat_ok(r, "lone");
        cr_assert_eq(i->kind, SNAP_KIND_ACTIVE);
        cr_assert_null(i->parent);
        cr_assert_eq(i->parent_id, 0);
        cr_assert_eq(i->n_labels, 0);

        view(r, "vw", "base");
        i = stat_ok(r, "vw");
        cr_assert_eq(i->kind, SNAP_KIND_VIEW, "kind %s", snap_kind_name(i->kind));
        cr_assert_str_eq(i->parent, "base");

        struct snap_info none = {0};
        struct util_err err = {0};
        int rc = snap_stat(r, "nope", &none, &err);
        expect_fail(rc, ENOENT, &err, "stat missing", "nope", NULL);
}

Test(snapshot, stat_committed)
{
        struct snap_root *r = open_root();
        prepare(r, "base-a", NULL);
        commit(r, "base", "base-a");

        struct snap_label al[] = {LABEL("from", "active")};
        prepare_l(r, "act", "base", al, 1);
        int64_t id = stat_ok(r, "act")->id;
        struct snap_label cl[] = {LABEL("z", "3"), LABEL("containerd.io/snapshot.ref", "ref")};
        commit_l(r, "done", "act", cl, 2);

        struct snap_info *i = stat_ok(r, "done");
        cr_assert_eq(i->kind, SNAP_KIND_COMMITTED, "kind %s", snap_kind_name(i->kind));
        cr_assert_str_eq(i->name, "done");
        cr_assert_str_eq(i->parent, "base");
        cr_assert_eq(i->id, id, "commit keeps the id");
        cr_assert_str_eq(labels_str(i), "containerd.io/snapshot.ref=ref,z=3",
                         "labels are replaced by the commit's");
        expect_absent(r, "act");

        i = stat_ok(r, "base");
        cr_assert_eq(i->kind, SNAP_KIND_COMMITTED);
        cr_assert_null(i->parent);
}

Test(snapshot, transitivity)
{
        struct snap_root *r = open_root();
        committed_with(r, "l1", NULL, "f1", "1");

        prepare(r, "l2-a", "l1");
        const char *t = mount_key(r, "l2-a");
        expect_content(t, "f1", "1");
        write_file(t, "f2", "2");
        write_file(t, "x", "from l2");
        unmount(t);
        commit(r, "l2", "l2-a");

        prepare(r, "l3-a", "l2");
        t = mount_key(r, "l3-a");
        expect_content(t, "f1", "1");
        expect_content(t, "f2", "2");
        write_file(t, "f3", "3");
        write_file(t, "x", "from l3");
        unmount(t);
        commit(r, "l3", "l3-a");

        cr_assert_str_eq(stat_ok(r, "l3")->parent, "l2");
        cr_assert_str_eq(stat_ok(r, "l2")->parent, "l1");
        cr_assert_null(stat_ok(r, "l1")->parent);

        view(r, "top", "l3");
        t = mount_key(r, "top");
        expect_content(t, "f1", "1");
        expect_content(t, "f2", "2");
        expect_content(t, "f3", "3");
        expect_content(t, "x", "from l3");
        unmount(t);

        view(r, "mid", "l2");
        t = mount_key(r, "mid");
        expect_content(t, "x", "from l2");
        expect_missing(t, "f3");
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, prepare_view_failures)
{
        struct snap_root *r = open_root();
        struct util_err err = {0};
        struct mount_spec *m = NULL;
        int rc;

        prepare(r, "c1-a", NULL);
        commit(r, "c1", "c1-a");
        prepare(r, "k", "c1");
        view(r, "v", "c1");

        /* The key space is shared by every kind. */
        rc = snap_prepare(r, "k", "c1", NULL, 0, &m, &err);
        expect_fail(rc, EEXIST, &err, "prepare an existing active key", "k", NULL);
        cr_assert_null(m);
        err = (struct util_err){0};
        rc = snap_prepare(r, "k", NULL, NULL, 0, &m, &err);
        expect_fail(rc, EEXIST, &err, "prepare an existing key without parent", "k", NULL);
        err = (struct util_err){0};
        rc = snap_view(r, "k", "c1", NULL, 0, &m, &err);
        expect_fail(rc, EEXIST, &err, "view on an existing active key", "k", NULL);
        err = (struct util_err){0};
        rc = snap_prepare(r, "c1", NULL, NULL, 0, &m, &err);
        expect_fail(rc, EEXIST, &err, "prepare a committed name", "c1", NULL);
        err = (struct util_err){0};
        rc = snap_view(r, "v", "c1", NULL, 0, &m, &err);
        expect_fail(rc, EEXIST, &err, "view an existing view key", "v", NULL);

        /* Parent missing. */
        err = (struct util_err){0};
        rc = snap_prepare(r, "x", "nope", NULL, 0, &m, &err);
        expect_fail(rc, ENOENT, &err, "prepare on a missing parent", "x", "nope");
        err = (struct util_err){0};
        rc = snap_view(r, "x", "nope", NULL, 0, &m, &err);
        expect_fail(rc, ENOENT, &err, "view on a missing parent", "x", "nope");
        expect_absent(r, "x");

        /* Parent not committed. */
        err = (struct util_err){0};
        rc = snap_prepare(r, "y", "k", NULL, 0, &m, &err);
        expect_fail(rc, EINVAL, &err, "prepare on an active parent", "y", "k");
        err = (struct util_err){0};
        rc = snap_view(r, "y", "k", NULL, 0, &m, &err);
        expect_fail(rc, EINVAL, &err, "view on an active parent", "y", "k");
        err = (struct util_err){0};
        rc = snap_prepare(r, "y", "v", NULL, 0, &m, &err);
        expect_fail(rc, EINVAL, &err, "prepare on a view parent", "y", "v");
        expect_absent(r, "y");
        cr_assert_null(m, "no mounts returned on failure");

        /* Committing a view. */
        err = (struct util_err){0};
        rc = snap_commit(r, "vc", "v", NULL, 0, &err);
        expect_fail(rc, EBUSY, &err, "commit a view", "v", NULL);
        expect_absent(r, "vc");
        cr_assert_eq(stat_ok(r, "v")->kind, SNAP_KIND_VIEW);

        /* Committing what is not there, or onto a taken name. */
        err = (struct util_err){0};
        rc = snap_commit(r, "zc", "missing", NULL, 0, &err);
        expect_fail(rc, ENOENT, &err, "commit a missing key", "missing", NULL);
        err = (struct util_err){0};
        rc = snap_commit(r, "c1", "k", NULL, 0, &err);
        expect_fail(rc, EEXIST, &err, "commit onto a taken name", "c1", "k");
        cr_assert_eq(stat_ok(r, "k")->kind, SNAP_KIND_ACTIVE, "still active");

        /* Mounts of a committed snapshot, or a missing one. */
        err = (struct util_err){0};
        rc = snap_mounts(r, "c1", &m, &err);
        expect_fail(rc, EBUSY, &err, "mounts of a committed snapshot", "c1", NULL);
        cr_assert_null(m);
        err = (struct util_err){0};
        rc = snap_mounts(r, "missing", &m, &err);
        expect_fail(rc, ENOENT, &err, "mounts of a missing key", "missing", NULL);
        cr_assert_null(m);
}

Test(snapshot, update)
{
        struct snap_root *r = open_root();
        struct util_err err = {0};
        prepare(r, "c-a", NULL);
        struct snap_label cl[] = {LABEL("a", "1"), LABEL("b", "2")};
        commit_l(r, "c", "c-a", cl, 2);
        struct snap_info *before = stat_ok(r, "c");
        struct timespec ms = {0, 2000000};
        nanosleep(&ms, NULL);

        /* No field paths: replace every label. */
        struct snap_label rl[] = {LABEL("x", "9")};
        struct snap_info *i = priv_defer(info_free, calloc(1, sizeof(*i)));
        cr_assert_eq(snap_update(r, "c", rl, 1, NULL, 0, i, &err), 0, "%s", err.msg);
        cr_assert_str_eq(labels_str(i), "x=9");
        cr_assert_str_eq(labels_str(stat_ok(r, "c")), "x=9");
        cr_assert_gt(i->updated_ns, before->updated_ns, "updated is bumped");
        cr_assert_eq(i->created_ns, before->created_ns, "created is kept");
        cr_assert_eq(i->kind, SNAP_KIND_COMMITTED);

        /* labels.<k>: set one. */
        struct snap_label yl[] = {LABEL("y", "5"), LABEL("ignored", "z")};
        const char *fy[] = {"labels.y"};
        cr_assert_eq(snap_update(r, "c", yl, 2, fy, 1, NULL, &err), 0, "%s", err.msg);
        cr_assert_str_eq(labels_str(stat_ok(r, "c")), "x=9,y=5");

        /* labels.<k> absent from the labels: delete it. */
        const char *fx[] = {"labels.x"};
        cr_assert_eq(snap_update(r, "c", NULL, 0, fx, 1, NULL, &err), 0, "%s", err.msg);
        cr_assert_str_eq(labels_str(stat_ok(r, "c")), "y=5");

        /* "labels": replace all. */
        struct snap_label ql[] = {LABEL("q", "1")};
        const char *fl[] = {"labels"};
        cr_assert_eq(snap_update(r, "c", ql, 1, fl, 1, NULL, &err), 0, "%s", err.msg);
        cr_assert_str_eq(labels_str(stat_ok(r, "c")), "q=1");

        /* Anything else is refused and changes nothing. */
        const char *fn[] = {"name"};
        int rc = snap_update(r, "c", rl, 1, fn, 1, NULL, &err);
        expect_fail(rc, EINVAL, &err, "update field 'name'", NULL, NULL);
        err = (struct util_err){0};
        const char *fbad[] = {"labels.q", "parent"};
        rc = snap_update(r, "c", rl, 1, fbad, 2, NULL, &err);
        expect_fail(rc, EINVAL, &err, "update field 'parent'", NULL, NULL);
        cr_assert_str_eq(labels_str(stat_ok(r, "c")), "q=1");
        err = (struct util_err){0};
        rc = snap_update(r, "missing", rl, 1, NULL, 0, NULL, &err);
        expect_fail(rc, ENOENT, &err, "update a missing key", "missing", NULL);

        /* An active snapshot's labels too. */
        prepare(r, "act", "c");
        cr_assert_eq(snap_update(r, "act", rl, 1, NULL, 0, NULL, &err), 0, "%s", err.msg);
        cr_assert_str_eq(labels_str(stat_ok(r, "act")), "x=9");
}

Test(snapshot, remove)
{
        struct snap_root *r = open_root();
        struct util_err err = {0};
        prepare(r, "c1-a", NULL);
        commit(r, "c1", "c1-a");
        prepare(r, "c2-a", "c1");
        commit(r, "c2", "c2-a");
        prepare(r, "act", "c2");
        const char *act_img = image_of(r, "act");
        const char *act_dir = priv_keep(priv_path("%s/snapshots/%lld", snap_root_path(r),
                                                  (long long)stat_ok(r, "act")->id));
        int64_t c1_id = stat_ok(r, "c1")->id;
        if (!variant_dir())
                cr_assert_eq(access(act_img, F_OK), 0, "the active's image %s: %m", act_img);

        int rc = snap_remove(r, "c1", &err);
        expect_fail(rc, EBUSY, &err, "remove a parent", "c1", NULL);
        err = (struct util_err){0};
        rc = snap_remove(r, "c2", &err);
        expect_fail(rc, EBUSY, &err, "remove the parent of an active", "c2", NULL);
        stat_ok(r, "c1");
        stat_ok(r, "c2");

        remove_ok(r, "act");
        expect_absent(r, "act");
        cr_assert_neq(access(act_img, F_OK), 0, "the removed snapshot's image is gone");
        cr_assert_neq(access(act_dir, F_OK), 0, "the removed snapshot's directory is gone");
        remove_ok(r, "c2");
        remove_ok(r, "c1");
        expect_absent(r, "c1");

        err = (struct util_err){0};
        rc = snap_remove(r, "c1", &err);
        expect_fail(rc, ENOENT, &err, "remove twice", "c1", NULL);
        err = (struct util_err){0};
        rc = snap_remove(r, "never", &err);
        expect_fail(rc, ENOENT, &err, "remove a missing key", "never", NULL);

        /* The key is free again; the id is not reused. */
        prepare(r, "c1", NULL);
        cr_assert_gt(stat_ok(r, "c1")->id, c1_id);
        const char *t = mount_key(r, "c1");
        write_file(t, "f", "f");
        unmount(t);
        remove_ok(r, "c1");

        /* trash/ holds nothing once the removals are done. */
        const char *trash = priv_path("%s/trash", snap_root_path(r));
        if (access(trash, F_OK) == 0)
                cr_assert_eq(rmdir(trash) == 0 || errno == ENOENT, true, "%s is not empty", trash);
        no_devices_left(r);
}

/* ---- walk ---- */

struct walk_acc {
        struct snap_root *r;
        char names[512];
        size_t calls;
        bool stat_inside;
        int stop_after; /* 0: never */
};

static int walk_collect(const struct snap_info *i, void *data, struct util_err *err)
{
        struct walk_acc *a = data;
        size_t len = strlen(a->names);
        snprintf(a->names + len, sizeof(a->names) - len, "%s%s", len ? "," : "", i->name);
        a->calls++;
        if (a->stat_inside) {
                struct snap_info s = {0};
                struct util_err e = {0};
                int rc = snap_stat(a->r, i->name, &s, &e);
                cr_assert_eq(rc, 0, "stat '%s' inside walk: %d %s", i->name, rc, e.msg);
                cr_assert_eq(s.kind, i->kind);
                cr_assert_eq(s.id, i->id);
                if (i->parent) {
                        struct snap_info p = {0};
                        rc = snap_stat(a->r, i->parent, &p, &e);
                        cr_assert_eq(rc, 0, "stat parent '%s' inside walk: %s", i->parent, e.msg);
                        cr_assert_eq(p.kind, SNAP_KIND_COMMITTED);
                        snap_info_done(&p);
                }
                snap_info_done(&s);
        }
        if (a->stop_after && a->calls == (size_t)a->stop_after)
                return util_err_setx(err, -ECANCELED, "stop");
        return 0;
}

static const char *walk_names(struct snap_root *r, const char *const *filters, size_t n)
{
        struct walk_acc a = {.r = r};
        struct util_err err = {0};
        int rc = snap_walk(r, filters, n, walk_collect, &a, &err);
        cr_assert_eq(rc, 0, "walk %s: %d %s", n ? filters[0] : "(all)", rc, err.msg);
        return priv_keep(a.names);
}

/* base (a=b) <- c2 (committed) <- act (a=c); v: a view on base. */
static struct snap_root *walk_fixture(void)
{
        struct snap_root *r = open_root();
        prepare(r, "base-a", NULL);
        struct snap_label bl[] = {LABEL("a", "b"), LABEL("containerd.io/gc.root", "yes")};
        commit_l(r, "base", "base-a", bl, 2);
        prepare(r, "c2-a", "base");
        commit(r, "c2", "c2-a");
        struct snap_label al[] = {LABEL("a", "c")};
        prepare_l(r, "act", "c2", al, 1);
        view(r, "v", "base");
        return r;
}

Test(snapshot, walk)
{
        struct snap_root *r = walk_fixture();
        cr_assert_str_eq(walk_names(r, NULL, 0), "base,c2,act,v");

        const char *f1[] = {"kind==committed"};
        cr_assert_str_eq(walk_names(r, f1, 1), "base,c2");
        const char *f2[] = {"parent==base"};
        cr_assert_str_eq(walk_names(r, f2, 1), "c2,v");
        const char *f3[] = {"labels.\"a\"==b"};
        cr_assert_str_eq(walk_names(r, f3, 1), "base");
        const char *f4[] = {"kind==view", "labels.\"a\"==c"};
        cr_assert_str_eq(walk_names(r, f4, 2), "act,v", "two filters are ORed");
        const char *f5[] = {"kind==committed,parent==base"};
        cr_assert_str_eq(walk_names(r, f5, 1), "c2", "a comma is AND");
        const char *f6[] = {"labels.\"containerd.io/gc.root\""};
        cr_assert_str_eq(walk_names(r, f6, 1), "base");
        const char *f7[] = {"name~=^c"};
        cr_assert_str_eq(walk_names(r, f7, 1), "c2");
        const char *f8[] = {"kind==active"};
        cr_assert_str_eq(walk_names(r, f8, 1), "act");

        /* A bad filter. */
        struct walk_acc a = {.r = r};
        struct util_err err = {0};
        const char *bad[] = {"foo==bar"};
        int rc = snap_walk(r, bad, 1, walk_collect, &a, &err);
        cr_assert_eq(rc, -EINVAL, "bad filter: %d %s", rc, err.msg);
        cr_assert_eq(a.calls, 0);

        /* A callback's error stops the walk and is returned. */
        a = (struct walk_acc){.r = r, .stop_after = 2};
        err = (struct util_err){0};
        rc = snap_walk(r, NULL, 0, walk_collect, &a, &err);
        cr_assert_eq(rc, -ECANCELED, "%d %s", rc, err.msg);
        cr_assert_eq(a.calls, 2);
}

Test(snapshot, stat_in_walk)
{
        struct snap_root *r = walk_fixture();
        struct walk_acc a = {.r = r, .stat_inside = true};
        struct util_err err = {0};
        int rc = snap_walk(r, NULL, 0, walk_collect, &a, &err);
        cr_assert_eq(rc, 0, "%d %s", rc, err.msg);
        cr_assert_eq(a.calls, 4);
}

/* ---- views, handles, permissions ---- */

Test(snapshot, view_readonly)
{
        struct snap_root *r = open_root();
        committed_with(r, "base", NULL, "f", "base");

        view(r, "v", "base");
        const char *t = mount_key(r, "v");
        expect_content(t, "f", "base");
        expect_readonly(t);
        int fd = open(at(t, "f"), O_WRONLY | O_CLOEXEC);
        cr_assert_lt(fd, 0, "opened a file of a view for writing");
        cr_assert_eq(errno, EROFS, "%m");
        cr_assert_eq(unlink(at(t, "f")), -1);
        cr_assert_eq(errno, EROFS, "%m");
        unmount(t);

        /* A view without parent: an empty read-only directory. */
        view(r, "empty", NULL);
        t = mount_key(r, "empty");
        expect_missing(t, "f");
        expect_readonly(t);
        unmount(t);

        /* A view on a two-level chain is read-only too. */
        prepare(r, "c-a", "base");
        commit(r, "c", "c-a");
        view(r, "v2", "c");
        t = mount_key(r, "v2");
        expect_content(t, "f", "base");
        expect_readonly(t);
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, close_twice)
{
        struct snap_root_opts o = {.path = root_dir(), .writable_size = IMAGE_SIZE};
        struct snap_root *r = NULL;
        struct util_err err = {0};
        cr_assert_eq(snap_root_open(&o, &r, &err), 0, "%s", err.msg);
        r = snap_root_close(r);
        cr_assert_null(r, "close returns NULL");
        cr_assert_null(snap_root_close(r), "closing NULL is fine");
        cr_assert_null(snap_root_close(NULL));

        /* And the root opens again. */
        cr_assert_eq(snap_root_open(&o, &r, &err), 0, "%s", err.msg);
        cr_assert_null(snap_root_close(r));
}

Test(snapshot, root_permissions)
{
        const char *dir = root_dir();
        umask(0);
        struct snap_root *r = open_root();
        umask(022);
        struct stat st;
        cr_assert_eq(stat(dir, &st), 0, "%m");
        cr_assert(S_ISDIR(st.st_mode));
        cr_assert_eq(st.st_mode & 07777, 0700, "root mode %o", st.st_mode & 07777);
        cr_assert_str_eq(snap_root_path(r), dir);
        cr_assert_not_null(snap_root_tag_owner(r));
        cr_assert_gt(strlen(snap_root_tag_owner(r)), 0);
}

/* ---- file-level regressions ---- */

Test(snapshot, layer_file_update)
{
        struct snap_root *r = open_root();
        committed_with(r, "base", NULL, "foo", "1");

        prepare(r, "child", "base");
        const char *t = mount_key(r, "child");
        expect_content(t, "foo", "1");
        write_file(t, "foo", "2");
        unmount(t);
        commit(r, "child-c", "child");

        view(r, "vc", "child-c");
        t = mount_key(r, "vc");
        expect_content(t, "foo", "2");
        unmount(t);
        view(r, "vb", "base");
        t = mount_key(r, "vb");
        expect_content(t, "foo", "1");
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, remove_dir_in_lower)
{
        struct snap_root *r = open_root();
        prepare(r, "base-a", NULL);
        const char *t = mount_key(r, "base-a");
        make_dir(t, "d", 0755);
        make_dir(t, "d/sub", 0755);
        write_file(t, "d/f", "f");
        write_file(t, "d/sub/g", "g");
        write_file(t, "other", "o");
        unmount(t);
        commit(r, "base", "base-a");

        prepare(r, "child", "base");
        t = mount_key(r, "child");
        cr_assert_eq(unlink(at(t, "d/sub/g")), 0, "%m");
        cr_assert_eq(rmdir(at(t, "d/sub")), 0, "%m");
        cr_assert_eq(unlink(at(t, "d/f")), 0, "%m");
        cr_assert_eq(rmdir(at(t, "d")), 0, "%m");
        expect_missing(t, "d");
        unmount(t);
        commit(r, "child-c", "child");

        view(r, "vc", "child-c");
        t = mount_key(r, "vc");
        expect_missing(t, "d");
        expect_content(t, "other", "o");
        unmount(t);
        view(r, "vb", "base");
        t = mount_key(r, "vb");
        expect_content(t, "d/f", "f");
        expect_content(t, "d/sub/g", "g");
        unmount(t);

        /* Recreating the directory in a grandchild: empty (opaque). */
        prepare(r, "gc", "child-c");
        t = mount_key(r, "gc");
        make_dir(t, "d", 0755);
        expect_missing(t, "d/f");
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, chown_in_child)
{
        struct snap_root *r = open_root();
        prepare(r, "base-a", NULL);
        const char *t = mount_key(r, "base-a");
        write_file(t, "f", "f");
        make_dir(t, "d", 0755);
        unmount(t);
        commit(r, "base", "base-a");

        prepare(r, "child", "base");
        t = mount_key(r, "child");
        cr_assert_eq(chown(at(t, "f"), 1000, 1000), 0, "%m");
        cr_assert_eq(chown(at(t, "d"), 1001, 1002), 0, "%m");
        unmount(t);
        commit(r, "child-c", "child");

        view(r, "vc", "child-c");
        t = mount_key(r, "vc");
        struct stat st = stat_of(t, "f");
        cr_assert_eq(st.st_uid, 1000);
        cr_assert_eq(st.st_gid, 1000);
        expect_content(t, "f", "f");
        st = stat_of(t, "d");
        cr_assert_eq(st.st_uid, 1001);
        cr_assert_eq(st.st_gid, 1002);
        unmount(t);

        view(r, "vb", "base");
        t = mount_key(r, "vb");
        cr_assert_eq(stat_of(t, "f").st_uid, 0, "the parent keeps its owner");
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, dir_permissions_on_commit)
{
        struct snap_root *r = open_root();
        prepare(r, "base-a", NULL);
        const char *t = mount_key(r, "base-a");
        make_dir(t, "d711", 0711);
        make_dir(t, "d700", 0700);
        make_dir(t, "sticky", 01777);
        write_file(t, "f", "f");
        cr_assert_eq(chmod(at(t, "f"), 0640), 0, "%m");
        unmount(t);
        commit(r, "base", "base-a");

        view(r, "vb", "base");
        t = mount_key(r, "vb");
        cr_assert_eq(stat_of(t, "d711").st_mode & 07777, 0711);
        cr_assert_eq(stat_of(t, "d700").st_mode & 07777, 0700);
        cr_assert_eq(stat_of(t, "sticky").st_mode & 07777, 01777);
        cr_assert_eq(stat_of(t, "f").st_mode & 07777, 0640);
        unmount(t);

        prepare(r, "child", "base");
        t = mount_key(r, "child");
        cr_assert_eq(stat_of(t, "d711").st_mode & 07777, 0711);
        cr_assert_eq(chmod(at(t, "d711"), 0750), 0, "%m");
        make_dir(t, "d755", 0755);
        unmount(t);
        commit(r, "child-c", "child");

        view(r, "vc", "child-c");
        t = mount_key(r, "vc");
        cr_assert_eq(stat_of(t, "d711").st_mode & 07777, 0750);
        cr_assert_eq(stat_of(t, "d755").st_mode & 07777, 0755);
        cr_assert_eq(stat_of(t, "d700").st_mode & 07777, 0700);
        unmount(t);
        view(r, "vb2", "base");
        t = mount_key(r, "vb2");
        cr_assert_eq(stat_of(t, "d711").st_mode & 07777, 0711, "the parent is unchanged");
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, remove_intermediate)
{
        struct snap_root *r = open_root();
        committed_with(r, "l1", NULL, "f1", "1");
        committed_with(r, "l2", "l1", "f2", "2");
        committed_with(r, "l3", "l2", "f3", "3");
        struct util_err err = {0};

        int rc = snap_remove(r, "l2", &err);
        expect_fail(rc, EBUSY, &err, "remove an intermediate layer", "l2", NULL);
        err = (struct util_err){0};
        rc = snap_remove(r, "l1", &err);
        expect_fail(rc, EBUSY, &err, "remove the bottom layer", "l1", NULL);

        /* The chain is intact. */
        view(r, "v", "l3");
        const char *t = mount_key(r, "v");
        expect_content(t, "f1", "1");
        expect_content(t, "f2", "2");
        expect_content(t, "f3", "3");
        unmount(t);

        err = (struct util_err){0};
        rc = snap_remove(r, "l3", &err);
        expect_fail(rc, EBUSY, &err, "remove a layer with a view on it", "l3", NULL);
        remove_ok(r, "v");
        remove_ok(r, "l3");
        remove_ok(r, "l2");
        remove_ok(r, "l1");
        cr_assert_str_eq(walk_names(r, NULL, 0), "");
        no_devices_left(r);
}

Test(snapshot, deleted_files_in_child)
{
        struct snap_root *r = open_root();
        prepare(r, "base-a", NULL);
        const char *t = mount_key(r, "base-a");
        write_file(t, "f1", "1");
        write_file(t, "f2", "2");
        make_dir(t, "d", 0755);
        write_file(t, "d/x", "x");
        write_file(t, "d/y", "y");
        unmount(t);
        commit(r, "base", "base-a");

        prepare(r, "child", "base");
        t = mount_key(r, "child");
        cr_assert_eq(unlink(at(t, "f1")), 0, "%m");
        cr_assert_eq(unlink(at(t, "d/x")), 0, "%m");
        unmount(t);
        commit(r, "child-c", "child");

        view(r, "vc", "child-c");
        t = mount_key(r, "vc");
        expect_missing(t, "f1");
        expect_missing(t, "d/x");
        expect_content(t, "f2", "2");
        expect_content(t, "d/y", "y");
        unmount(t);
        view(r, "vb", "base");
        t = mount_key(r, "vb");
        expect_content(t, "f1", "1");
        expect_content(t, "d/x", "x");
        unmount(t);

        /* Recreated in a grandchild: the new content shows. */
        prepare(r, "gc", "child-c");
        t = mount_key(r, "gc");
        expect_missing(t, "f1");
        write_file(t, "f1", "again");
        unmount(t);
        commit(r, "gc-c", "gc");
        view(r, "vg", "gc-c");
        t = mount_key(r, "vg");
        expect_content(t, "f1", "again");
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, move_file_from_lower)
{
        struct snap_root *r = open_root();
        prepare(r, "base-a", NULL);
        const char *t = mount_key(r, "base-a");
        make_dir(t, "a", 0755);
        write_file(t, "a/f", "moved");
        write_file(t, "g", "renamed");
        unmount(t);
        commit(r, "base", "base-a");

        prepare(r, "child", "base");
        t = mount_key(r, "child");
        make_dir(t, "b", 0755);
        cr_assert_eq(rename(at(t, "a/f"), at(t, "b/f")), 0, "%m");
        cr_assert_eq(rename(at(t, "g"), at(t, "h")), 0, "%m");
        unmount(t);
        commit(r, "child-c", "child");

        view(r, "vc", "child-c");
        t = mount_key(r, "vc");
        expect_missing(t, "a/f");
        expect_content(t, "b/f", "moved");
        expect_missing(t, "g");
        expect_content(t, "h", "renamed");
        unmount(t);
        view(r, "vb", "base");
        t = mount_key(r, "vb");
        expect_content(t, "a/f", "moved");
        expect_content(t, "g", "renamed");
        expect_missing(t, "b");
        unmount(t);
        no_devices_left(r);
}

/*
 * 128 layers. Writing each layer through its full overlay would mount k
 * lowers for layer k (8256 layer mounts in all); instead each layer's files
 * are written straight into its writable image's upper/ — the overlay's
 * upper — by mounting only the spec's own image, with the bind of the
 * parentless layer 0's spec. The view of the top then mounts all 128.
 */
#define N_LAYERS 128

/* The spec's own writable image: the last mount before the final one that
 * is a "loop" mount without "ro". */
static const struct mount_entry *own_image(const struct mount_spec *s)
{
        for (size_t k = s->n - 1; k-- > 0;) {
                const struct mount_entry *m = &s->mounts[k];
                bool loop = false, ro = false;
                for (size_t o = 0; o < m->n_options; o++) {
                        loop |= strcmp(m->options[o], "loop") == 0;
                        ro |= strcmp(m->options[o], "ro") == 0;
                }
                if (loop && !ro)
                        return m;
        }
        cr_assert_fail("no writable image in %s", spec_json(s));
        return NULL;
}

/* Appends a copy of `m` to `w` (mount_spec_add wants NULL-terminated
 * options). */
static void add_entry(struct mount_spec *w, const struct mount_entry *m)
{
        const char *opts[MOUNT_SPEC_MAX_OPTIONS + 1] = {0};
        struct util_err err = {0};
        cr_assert_leq(m->n_options, MOUNT_SPEC_MAX_OPTIONS);
        for (size_t o = 0; o < m->n_options; o++)
                opts[o] = m->options[o];
        cr_assert_eq(mount_spec_add(w, m->type, m->source, m->target, opts, &err), 0, "%s",
                     err.msg);
}

Test(snapshot, layers_128, .timeout = 300)
{
        struct snap_root *r = open_root();
        const struct mount_entry *bind = NULL;
        char parent[32] = "", key[32], name[32];

        for (int k = 0; k < N_LAYERS; k++) {
                snprintf(key, sizeof(key), "a%d", k);
                snprintf(name, sizeof(name), "l%d", k);
                struct mount_spec *m = prepare(r, key, k ? parent : NULL);
                const char *t;
                if (variant_dir() || variant_is("block")) {
                        /* The whole spec: a directory upper has no image of
                         * its own, a block snapshot is one image anyway. */
                        t = mount_key(r, key);
                } else {
                        /* Just the writable image (quicker than stacking
                         * up to 127 lowers 128 times). */
                        if (k == 0) {
                                cr_assert_eq(m->n, 2, "a parentless active: image + bind: %s",
                                             spec_json(m));
                                bind = &m->mounts[1];
                        }
                        const struct mount_entry *img = own_image(m);
                        struct mount_spec *w = NULL;
                        cr_assert_eq(mount_spec_new(&w), 0);
                        priv_defer(spec_free, w);
                        add_entry(w, img);
                        add_entry(w, bind);
                        t = mount_spec_at(w, key);
                }
                char c[16];
                snprintf(c, sizeof(c), "%d", k);
                write_file(t, priv_path("f%d", k), c);
                write_file(t, "top", c);
                unmount(t);
                commit(r, name, key);
                snprintf(parent, sizeof(parent), "%s", name);
        }

        view(r, "v", parent);
        const char *t = mount_key(r, "v");
        for (int k = 0; k < N_LAYERS; k++) {
                char c[16];
                snprintf(c, sizeof(c), "%d", k);
                expect_content(t, priv_path("f%d", k), c);
        }
        expect_content(t, "top", "127");
        expect_readonly(t);
        unmount(t);

        /* An active on all 128: writable, every layer visible. */
        prepare(r, "act", parent);
        t = mount_key(r, "act");
        expect_content(t, "f0", "0");
        expect_content(t, "f127", "127");
        write_file(t, "f0", "changed");
        expect_content(t, "f0", "changed");
        unmount(t);
        no_devices_left(r);
}

/* ---- loopsnap specifics ---- */

Test(snapshot, commit_refused_while_mounted)
{
        struct snap_root *r = open_root();
        committed_with(r, "base", NULL, "f", "f");
        prepare(r, "busy", "base");
        const char *t = mount_key(r, "busy");
        write_file(t, "g", "g");

        struct util_err err = {0};
        int rc = snap_commit(r, "busy-c", "busy", NULL, 0, &err);
        expect_fail(rc, EBUSY, &err, "commit while mounted", "busy", NULL);
        cr_assert(strstr(err.msg, variant_dir() ? "still mounted on" : "/dev/loop"),
                  "the message names the device or mountpoint: \"%s\"", err.msg);
        cr_assert_eq(stat_ok(r, "busy")->kind, SNAP_KIND_ACTIVE, "still active");
        expect_absent(r, "busy-c");
        expect_content(t, "g", "g");
        unmount(t);

        commit(r, "busy-c", "busy");
        view(r, "v", "busy-c");
        t = mount_key(r, "v");
        expect_content(t, "g", "g");
        unmount(t);

        /* A parentless active (image + bind) too. */
        prepare(r, "lone", NULL);
        t = mount_key(r, "lone");
        err = (struct util_err){0};
        rc = snap_commit(r, "lone-c", "lone", NULL, 0, &err);
        expect_fail(rc, EBUSY, &err, "commit a mounted parentless active", "lone", NULL);
        cr_assert(strstr(err.msg, variant_dir() ? t : "/dev/loop"), "\"%s\"", err.msg);
        unmount(t);
        commit(r, "lone-c", "lone");
        no_devices_left(r);
}

Test(snapshot, usage)
{
        struct snap_root *r = open_root();
        struct util_err err = {0};
        struct snap_usage u = {0};

        prepare(r, "u", NULL);
        cr_assert_eq(snap_usage(r, "u", &u, &err), 0, "%s", err.msg);
        cr_assert_gt(u.size, 0, "an active's image has allocated blocks");
        if (variant_dir())
                cr_assert_gt(u.inodes, 0, "a directory upper is walked");
        else
                cr_assert_eq(u.inodes, 0, "not measured for an active");
        cr_assert_leq(u.size, IMAGE_SIZE);

        const char *t = mount_key(r, "u");
        char *buf = priv_defer(free, malloc(MIB));
        for (size_t k = 0; k < MIB; k++)
                buf[k] = (char)(k * 2654435761u >> 13);
        int fd = open(at(t, "big"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0, "%m");
        cr_assert_eq(write(fd, buf, MIB), (ssize_t)MIB, "%m");
        cr_assert_eq(fsync(fd), 0, "%m");
        close(fd);
        make_dir(t, "d", 0755);
        write_file(t, "d/small", "s");
        unmount(t);

        struct snap_usage active = {0};
        cr_assert_eq(snap_usage(r, "u", &active, &err), 0, "%s", err.msg);
        cr_assert_geq(active.size, u.size + MIB,
                      "the image grew by the 1 MiB written (%llu -> %llu)",
                      (unsigned long long)u.size, (unsigned long long)active.size);

        commit(r, "uc", "u");
        struct snap_usage c = {0};
        cr_assert_eq(snap_usage(r, "uc", &c, &err), 0, "%s", err.msg);
        cr_assert_geq(c.size, MIB, "committed size %llu after writing 1 MiB",
                      (unsigned long long)c.size);
        cr_assert_gt(c.inodes, 0, "committed inodes recorded");
        struct snap_info *i = stat_ok(r, "uc");
        cr_assert_eq(i->size, c.size, "stat and usage agree");
        cr_assert_eq(i->inodes, c.inodes);

        /* A view owns nothing writable; a missing key is not found. */
        view(r, "v", "uc");
        cr_assert_eq(snap_usage(r, "v", &u, &err), 0, "%s", err.msg);
        err = (struct util_err){0};
        int rc = snap_usage(r, "missing", &u, &err);
        expect_fail(rc, ENOENT, &err, "usage of a missing key", "missing", NULL);
}

Test(snapshot, quota)
{
        if (variant_dir())
                cr_skip_test("a plain-directory upper has no quota (variant '%s')", variant());
        struct snap_root *r = open_root();
        prepare(r, "q", NULL);
        const char *img = image_of(r, "q");
        const char *t = mount_key(r, "q");

        char *buf = priv_defer(free, calloc(1, MIB));
        memset(buf, 'q', MIB);
        int fd = open(at(t, "fill"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0, "%m");
        uint64_t total = 0;
        int e = 0;
        while (total < 2 * IMAGE_SIZE) {
                ssize_t n = write(fd, buf, MIB);
                if (n < 0) {
                        e = errno;
                        break;
                }
                total += (uint64_t)n;
        }
        if (!e && fsync(fd) < 0)
                e = errno;
        close(fd);
        cr_assert_eq(e, ENOSPC, "writing past the quota: %s after %llu bytes (want ENOSPC)",
                     e ? strerror(e) : "no error", (unsigned long long)total);
        cr_assert_lt(total, IMAGE_SIZE, "wrote %llu bytes", (unsigned long long)total);
        cr_assert_gt(total, IMAGE_SIZE / 2, "only %llu bytes fit", (unsigned long long)total);
        cr_log_info("quota: %llu MiB fit in a %llu MiB image", (unsigned long long)(total / MIB),
                    (unsigned long long)(IMAGE_SIZE / MIB));

        /* The file system still works after ENOSPC: removing frees space. */
        cr_assert_eq(unlink(at(t, "fill")), 0, "%m");
        write_file(t, "after", "ok");
        unmount(t);

        struct stat st;
        cr_assert_eq(stat(img, &st), 0, "%s: %m", img);
        cr_assert_eq((uint64_t)st.st_size, IMAGE_SIZE, "image size %lld", (long long)st.st_size);
        cr_assert_leq((uint64_t)st.st_blocks * 512, IMAGE_SIZE, "allocated %lld bytes",
                      (long long)st.st_blocks * 512);
        commit(r, "qc", "q");
        no_devices_left(r);
}

/* Sets inode flag `flag` (FS_*_FL) on `path`: true, or false with errno. */
static bool set_inode_flag(const char *path, int flag)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        int flags = 0;
        cr_assert_geq(fd, 0, "open %s: %m", path);
        bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
        flags |= flag;
        ok = ok && ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
        int e = errno;
        close(fd);
        errno = e;
        return ok;
}

/* Mounts ext4 image `img` itself (`mode`: "ro" or "rw") on a fresh
 * target; returns the target. */
static const char *mount_image(const char *img, const char *mode)
{
        struct mount_spec *m = NULL;
        struct util_err err = {0};
        const char *opts[] = {mode, "loop", NULL};
        cr_assert_eq(mount_spec_new(&m), 0);
        cr_assert_eq(mount_spec_add(m, "ext4", img, NULL, opts, &err), 0, "%s", err.msg);
        const char *t = mount_spec_at(m, img);
        mount_spec_free(m);
        return t;
}

static bool has_statx_attr(const char *path, uint64_t attr)
{
        struct statx sx;
        cr_assert_eq(statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx), 0,
                     "statx %s: %m", path);
        return (sx.stx_attributes & attr) != 0;
}

/* An ext4 image upper is committed as a compact copy of its tree: a file of
 * a few MiB instead of the writable size, with everything a layer carries
 * (hard links, xattrs, whiteouts, owners, modes), put in place of the
 * image after the transaction. LOOPSNAP_COMPACT_LAYERS=0 keeps the image. */
Test(snapshot, commit_makes_a_compact_layer_image)
{
        if (variant()[0])
                cr_skip_test("layers of image uppers on an overlay root with ext4 layers only "
                             "(variant '%s')",
                             variant());
        struct snap_root *r = open_root();
        prepare(r, "b", NULL);
        const char *t = mount_key(r, "b");
        write_file(t, "gone", "gone");
        write_file(t, "kept", "kept");
        unmount(t);
        commit(r, "base", "b");

        /* 1 GiB: 8 block groups, where the compact copy needs one. */
        struct snap_label l[] = {LABEL(SNAP_LABEL_MAX_SIZE, "1073741824")};
        prepare_l(r, "c", "base", l, 1);
        t = mount_key(r, "c");
        make_dir(t, "d", 0750);
        write_file(t, "d/f", "data");
        cr_assert_eq(link(at(t, "d/f"), at(t, "d/hl")), 0, "%m");
        cr_assert_eq(chown(at(t, "d/f"), 1234, 5678), 0, "%m");
        cr_assert_eq(setxattr(at(t, "d/f"), "user.loopsnap", "v", 1, 0), 0, "%m");
        cr_assert_eq(unlink(at(t, "gone")), 0, "%m"); /* a whiteout in the upper */
        unmount(t);
        struct stat active, layer;
        const char *img = image_of(r, "c");
        cr_assert_eq(stat(img, &active), 0, "%m");
        cr_assert_eq((uint64_t)active.st_size, 1024 * MIB);
        commit(r, "child", "c");
        cr_assert_eq(stat(img, &layer), 0, "%m");
        cr_assert_neq(layer.st_ino, active.st_ino, "the image itself became the layer");
        cr_assert_lt((uint64_t)layer.st_size, 32 * MIB, "a layer of %lld bytes",
                     (long long)layer.st_size);
        cr_assert_eq(layer.st_mode & 07777, 0400, "layer mode %o", layer.st_mode & 07777);
        cr_log_info("layer image: %lld bytes (the writable image: %lld)", (long long)layer.st_size,
                    (long long)active.st_size);

        view(r, "v", "child");
        t = mount_key(r, "v");
        expect_content(t, "d/f", "data");
        expect_content(t, "kept", "kept");
        expect_missing(t, "gone");
        struct stat f, hl;
        cr_assert_eq(stat(at(t, "d/f"), &f), 0, "%m");
        cr_assert_eq(stat(at(t, "d/hl"), &hl), 0, "%m");
        cr_assert_eq(f.st_ino, hl.st_ino, "the hard link was split");
        cr_assert_eq(f.st_nlink, 2);
        cr_assert(f.st_uid == 1234 && f.st_gid == 5678, "owner %u:%u", f.st_uid, f.st_gid);
        char v[8] = "";
        cr_assert_eq(getxattr(at(t, "d/f"), "user.loopsnap", v, sizeof(v)), 1, "%m");
        cr_assert_eq(v[0], 'v');
        struct stat d;
        cr_assert_eq(stat(at(t, "d"), &d), 0, "%m");
        cr_assert_eq(d.st_mode & 07777, 0750, "dir mode %o", d.st_mode & 07777);
        unmount(t);

        /* Inode flags. Through overlayfs (5.15+) immutable and append-only
         * are kept in an xattr of the upper file (trusted.overlay.protattr;
         * overlayfs honours it only in an upper layer, so no snapshotter's
         * commit keeps the flag in effect), which the copy carries as it
         * carries every xattr. Set on the image's own inode (a writer other
         * than overlayfs), mkfs.ext4 -d would drop the flag: the image
         * stays the layer. */
        prepare(r, "i", "child");
        t = mount_key(r, "i");
        write_file(t, "frozen", "frozen");
        bool via_overlay = set_inode_flag(at(t, "frozen"), FS_IMMUTABLE_FL);
        unmount(t);
        commit(r, "immutable", "i");
        if (via_overlay) {
                t = mount_image(image_of(r, "immutable"), "ro");
                char pa[16];
                cr_assert_gt(
                        getxattr(at(t, "upper/frozen"), "trusted.overlay.protattr", pa, sizeof(pa)),
                        0, "the copy lost overlayfs's protattr xattr: %m");
                unmount(t);
        } else {
                cr_log_warn("FS_IOC_SETFLAGS through overlayfs is refused by this kernel");
        }

        prepare(r, "j", "child");
        img = image_of(r, "j");
        t = mount_image(img, "rw");
        write_file(t, "upper/frozen", "frozen");
        cr_assert(set_inode_flag(at(t, "upper/frozen"), FS_IMMUTABLE_FL),
                  "FS_IOC_SETFLAGS on ext4: %m");
        unmount(t);
        cr_assert_eq(stat(img, &active), 0, "%m");
        commit(r, "immutable-inode", "j");
        cr_assert_eq(stat(img, &layer), 0, "%m");
        cr_assert_eq(layer.st_ino, active.st_ino, "a copy lost the inode flag");
        view(r, "vj", "immutable-inode");
        t = mount_key(r, "vj");
        cr_assert(has_statx_attr(at(t, "frozen"), STATX_ATTR_IMMUTABLE), "the flag was lost");
        unmount(t);

        cr_assert_eq(setenv("LOOPSNAP_COMPACT_LAYERS", "0", 1), 0);
        prepare(r, "k", "child");
        img = image_of(r, "k");
        cr_assert_eq(stat(img, &active), 0, "%m");
        commit(r, "kept-as-is", "k");
        cr_assert_eq(unsetenv("LOOPSNAP_COMPACT_LAYERS"), 0);
        cr_assert_eq(stat(img, &layer), 0, "%m");
        cr_assert_eq(layer.st_ino, active.st_ino, "LOOPSNAP_COMPACT_LAYERS=0 replaced the image");
        cr_assert_eq((uint64_t)layer.st_size, IMAGE_SIZE);
        no_devices_left(r);
}

Test(snapshot, max_size_label_sets_the_image_size)
{
        if (variant_dir())
                cr_skip_test("a plain-directory upper has no image (variant '%s')", variant());
        struct snap_root *r = open_root();
        struct snap_label l[] = {LABEL(SNAP_LABEL_MAX_SIZE, "33554432")};
        prepare_l(r, "small", NULL, l, 1);
        struct stat st;
        const char *img = image_of(r, "small");
        cr_assert_eq(stat(img, &st), 0, "%s: %m", img);
        cr_assert_eq((uint64_t)st.st_size, 32 * MIB, "image of %lld bytes for max-size 32 MiB",
                     (long long)st.st_size);
        const char *t = mount_key(r, "small");
        write_file(t, "f", "f");
        unmount(t);
        prepare(r, "default", NULL);
        cr_assert_eq(stat(image_of(r, "default"), &st), 0, "%m");
        cr_assert_eq((uint64_t)st.st_size, IMAGE_SIZE);
        no_devices_left(r);
}

/* fork, chdir(dir), setfsgid/setfsuid(id), create `name`: 0 or the errno.
 * No criterion call in the child. */
static int create_as(const char *dir, const char *name, uid_t id)
{
        int status;
        pid_t pid = fork();
        if (pid == 0) {
                if (chdir(dir) < 0)
                        _exit(201);
                setfsgid(id);
                setfsuid(id);
                if ((uid_t)setfsuid((uid_t)-1) != id || (gid_t)setfsgid((gid_t)-1) != id)
                        _exit(200);
                int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (fd < 0)
                        _exit(errno);
                if (write(fd, "mapped", 6) != 6)
                        _exit(202);
                _exit(close(fd) < 0 ? 203 : 0);
        }
        cr_assert_gt(pid, 0, "fork: %m");
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status), "child died: status %#x", status);
        cr_assert_lt(WEXITSTATUS(status), 200, "child setup failed: %d", WEXITSTATUS(status));
        return WEXITSTATUS(status);
}

Test(snapshot, idmapped_snapshot)
{
        /* Decided before anything creates the test's directory: a skipped
         * test gets no .fini. */
        enum mount_api api = MOUNT_API_AUTO;
        const char *env = getenv("LOOPSNAP_MOUNT_API");
        if (!env || mount_api_parse(env, &api) < 0 || api == MOUNT_API_AUTO)
                api = mount_api_probe();
        if (api != MOUNT_API_FD)
                cr_skip_test("idmapped lowers need the fd mount API (the engine uses %s)",
                             mount_api_name(api));
        struct snap_root *r = open_root();
        prepare(r, "base-a", NULL);
        const char *t = mount_key(r, "base-a");
        write_file(t, "f", "base");
        make_dir(t, "d", 0755);
        unmount(t);
        commit(r, "base", "base-a");

        struct snap_label l[] = {LABEL(SNAP_LABEL_UIDMAPPING, "0:100000:65536"),
                                 LABEL(SNAP_LABEL_GIDMAPPING, "0:100000:65536")};
        struct mount_spec *m = prepare_l(r, "idm", "base", l, 2);
        cr_log_info("idmapped spec: %s", spec_json(m));
        t = mount_key(r, "idm");
        struct stat st = stat_of(t, "f");
        cr_assert_eq(st.st_uid, 100000, "a parent's root-owned file shows uid %u", st.st_uid);
        cr_assert_eq(st.st_gid, 100000, "gid %u", st.st_gid);
        st = stat_of(t, "d");
        cr_assert_eq(st.st_uid, 100000, "a parent's dir shows uid %u", st.st_uid);
        st = stat_of(t, ".");
        cr_assert_eq(st.st_uid, 100000, "the overlay's root (upper/) is owned by the mapped root");
        cr_assert_eq(st.st_gid, 100000);
        expect_content(t, "f", "base");

        /* The mapped root can write at the top and in a lower's directory. */
        int rc = create_as(t, "new", 100000);
        cr_assert_eq(rc, 0, "create as uid 100000 in the idmapped snapshot: %s", strerror(rc));
        rc = create_as(t, "d/new", 100000);
        cr_assert_eq(rc, 0, "create as uid 100000 in a lower's dir: %s", strerror(rc));
        st = stat_of(t, "new");
        cr_assert_eq(st.st_uid, 100000, "new file uid %u", st.st_uid);
        cr_assert_eq(st.st_gid, 100000, "new file gid %u", st.st_gid);
        /* An unmapped uid cannot. */
        rc = create_as(t, "intruder", 1000);
        /* Block layout: the mount itself is idmapped, and an id outside
         * the mapping cannot be written at all (EOVERFLOW). */
        cr_assert_eq(rc, variant_is("block") ? EOVERFLOW : EACCES, "create as uid 1000: %s",
                     strerror(rc));
        unmount(t);

        /* The file landed in the writable image with the mapped ids. */
        commit(r, "idm-c", "idm");
        view(r, "v", "idm-c");
        t = mount_key(r, "v");
        expect_content(t, "new", "mapped");
        st = stat_of(t, "new");
        /* Overlay: the upper is not idmapped, files land with host ids.
         * Block: the image holds the container's ids. */
        uid_t on_disk = variant_is("block") ? 0 : 100000;
        cr_assert_eq(st.st_uid, on_disk, "on disk uid %u", st.st_uid);
        cr_assert_eq(st.st_gid, on_disk, "on disk gid %u", st.st_gid);
        cr_assert_eq(stat_of(t, "d/new").st_uid, on_disk);
        cr_assert_eq(stat_of(t, "f").st_uid, 0, "the unmapped view shows the parent's ids");
        unmount(t);

        /* A view with the mapping: its one layer (a bind) is idmapped. */
        struct mount_spec *vm = NULL;
        struct util_err err = {0};
        cr_assert_eq(snap_view(r, "vmap", "base", l, 2, &vm, &err), 0, "%s", err.msg);
        priv_defer(spec_free, vm);
        t = mount_key(r, "vmap");
        cr_assert_eq(stat_of(t, "f").st_uid, 100000, "idmapped view: uid %u",
                     stat_of(t, "f").st_uid);
        expect_readonly(t);
        unmount(t);

        /* A parentless active with the mapping: upper/ is the mapped root's. */
        prepare_l(r, "idm0", NULL, l, 2);
        t = mount_key(r, "idm0");
        st = stat_of(t, ".");
        cr_assert_eq(st.st_uid, 100000, "parentless idmapped upper/ uid %u", st.st_uid);
        cr_assert_eq(st.st_gid, 100000, "parentless idmapped upper/ gid %u", st.st_gid);
        rc = create_as(t, "new", 100000);
        cr_assert_eq(rc, 0, "create as uid 100000 in a parentless idmapped active: %s",
                     strerror(rc));
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, key_and_label_validation)
{
        struct snap_root *r = open_root();
        prepare(r, "base-a", NULL);
        commit(r, "base", "base-a");
        struct util_err err = {0};
        struct mount_spec *m = NULL;
        int rc;

        rc = snap_prepare(r, "", NULL, NULL, 0, &m, &err);
        expect_fail(rc, EINVAL, &err, "empty key", NULL, NULL);
        err = (struct util_err){0};
        rc = snap_view(r, "", "base", NULL, 0, &m, &err);
        expect_fail(rc, EINVAL, &err, "empty view key", NULL, NULL);
        err = (struct util_err){0};
        rc = snap_prepare(r, "a\001b", NULL, NULL, 0, &m, &err);
        expect_fail(rc, EINVAL, &err, "key with a control character", NULL, NULL);
        err = (struct util_err){0};
        rc = snap_prepare(r, "a\nb", "base", NULL, 0, &m, &err);
        expect_fail(rc, EINVAL, &err, "key with a newline", NULL, NULL);
        err = (struct util_err){0};
        prepare(r, "good", "base");
        rc = snap_commit(r, "bad\x7fname", "good", NULL, 0, &err);
        expect_fail(rc, EINVAL, &err, "commit to a name with DEL", NULL, NULL);
        cr_assert_eq(stat_ok(r, "good")->kind, SNAP_KIND_ACTIVE, "still active");

        struct snap_label inj[] = {LABEL(SNAP_LABEL_UIDMAPPING, "0:1:1,upperdir=/etc"),
                                   LABEL(SNAP_LABEL_GIDMAPPING, "0:1:1")};
        err = (struct util_err){0};
        rc = snap_prepare(r, "inj", "base", inj, 2, &m, &err);
        expect_fail(rc, EINVAL, &err, "uidmapping with a comma", "inj", NULL);
        expect_absent(r, "inj");
        err = (struct util_err){0};
        rc = snap_view(r, "inj", "base", inj, 2, &m, &err);
        expect_fail(rc, EINVAL, &err, "view: uidmapping with a comma", "inj", NULL);
        expect_absent(r, "inj");

        struct snap_label gbad[] = {LABEL(SNAP_LABEL_UIDMAPPING, "0:100000:65536"),
                                    LABEL(SNAP_LABEL_GIDMAPPING, "garbage")};
        err = (struct util_err){0};
        rc = snap_prepare(r, "gbad", "base", gbad, 2, &m, &err);
        expect_fail(rc, EINVAL, &err, "gidmapping 'garbage'", "gbad", NULL);

        struct snap_label ms[] = {LABEL(SNAP_LABEL_MAX_SIZE, "abc")};
        err = (struct util_err){0};
        rc = snap_prepare(r, "ms", NULL, ms, 1, &m, &err);
        expect_fail(rc, EINVAL, &err, "max-size 'abc'", "ms", NULL);
        expect_absent(r, "ms");
        const char *bad_sizes[] = {"", "-1", "12abc", "1024", "99999999999999999999999"};
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(bad_sizes); k++) {
                /* Too small for a filesystem: only an image upper has one. */
                if (variant_dir() && strcmp(bad_sizes[k], "1024") == 0)
                        continue;
                struct snap_label bs[] = {LABEL(SNAP_LABEL_MAX_SIZE, bad_sizes[k])};
                err = (struct util_err){0};
                rc = snap_prepare(r, "ms", NULL, bs, 1, &m, &err);
                expect_fail(rc, EINVAL, &err, priv_path("max-size '%s'", bad_sizes[k]), "ms", NULL);
        }
        expect_absent(r, "ms");

        struct snap_label ctl[] = {LABEL("k", "v\001")};
        err = (struct util_err){0};
        rc = snap_prepare(r, "ctl", NULL, ctl, 1, &m, &err);
        expect_fail(rc, EINVAL, &err, "label value with a control character", "ctl", NULL);
        cr_assert_null(m, "no mounts returned on failure");

        /* Nothing was left behind by the refused calls. */
        cr_assert_str_eq(walk_names(r, NULL, 0), "base,good");
        err = (struct util_err){0};
        rc = snap_cleanup(r, &err);
        cr_assert_eq(rc, 0, "refused calls left %d things for cleanup (%s)", rc, err.msg);
}

Test(snapshot, cleanup)
{
        struct snap_root *r = open_root();
        committed_with(r, "keep", NULL, "f", "kept");
        prepare(r, "act", "keep");
        const char *root = snap_root_path(r);
        const char *act_img = image_of(r, "act");

        const char *tmp = priv_keep(priv_path("%s/tmp", root));
        const char *trash = priv_keep(priv_path("%s/trash", root));
        cr_assert(mkdir(tmp, 0700) == 0 || errno == EEXIST, "%m");
        cr_assert(mkdir(trash, 0700) == 0 || errno == EEXIST, "%m");
        write_file(tmp, "new-x", "leftover");
        write_file(trash, "rm-77", "trash");
        const char *orphan = priv_keep(priv_path("%s/snapshots/999", root));
        cr_assert_eq(mkdir(orphan, 0700), 0, "%s: %m", orphan);
        write_file(orphan, "fs.img", "orphan");
        const char *templates = priv_keep(priv_path("%s/templates", root));
        cr_assert_eq(access(templates, F_OK), 0, "%s: %m", templates);
        write_file(templates, "new-abc", "half a mkfs");

        struct util_err err = {0};
        int rc = snap_cleanup(r, &err);
        cr_assert_geq(rc, 4,
                      "cleanup removed %d (want >= 4: tmp/new-x, trash/rm-77, "
                      "templates/new-abc, snapshots/999): %s",
                      rc, err.msg);
        expect_missing(templates, "new-abc");
        expect_missing(tmp, "new-x");
        expect_missing(trash, "rm-77");
        cr_assert_neq(access(orphan, F_OK), 0, "%s survived cleanup", orphan);

        /* What metadata references is untouched. */
        if (!variant_dir())
                cr_assert_eq(access(act_img, F_OK), 0, "%s: %m", act_img);
        rc = snap_cleanup(r, &err);
        cr_assert_eq(rc, 0, "a second cleanup: %d %s", rc, err.msg);
        const char *t = mount_key(r, "act");
        expect_content(t, "f", "kept");
        unmount(t);
        view(r, "v", "keep");
        t = mount_key(r, "v");
        expect_content(t, "f", "kept");
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, reopen)
{
        const char *dir = root_dir();
        struct snap_root_opts o = {.path = dir, .writable_size = IMAGE_SIZE};
        struct snap_root *r = NULL;
        struct util_err err = {0};
        cr_assert_eq(snap_root_open(&o, &r, &err), 0, "%s", err.msg);
        committed_with(r, "base", NULL, "f", "persisted");
        struct snap_label l[] = {LABEL("x", "y")};
        prepare_l(r, "act", "base", l, 1);
        view(r, "v", "base");
        const char *spec_act = priv_keep(spec_json(mounts_ok(r, "act")));
        const char *spec_v = priv_keep(spec_json(mounts_ok(r, "v")));
        char *owner = priv_keep(snap_root_tag_owner(r));
        r = snap_root_close(r);

        /* Settings not given: the recorded ones. */
        struct snap_root_opts plain = {.path = dir};
        r = open_root_opts(&plain);
        cr_assert_str_eq(snap_root_tag_owner(r), owner, "the root id is kept");
        cr_assert_str_eq(walk_names(r, NULL, 0), "base,act,v");
        struct snap_info *i = stat_ok(r, "act");
        cr_assert_eq(i->kind, SNAP_KIND_ACTIVE);
        cr_assert_str_eq(i->parent, "base");
        cr_assert_str_eq(labels_str(i), "x=y");
        cr_assert_str_eq(spec_json(mounts_ok(r, "act")), spec_act, "mounts unchanged by reopen");
        cr_assert_str_eq(spec_json(mounts_ok(r, "v")), spec_v);
        const char *t = mount_key(r, "v");
        expect_content(t, "f", "persisted");
        unmount(t);
        prepare(r, "new", NULL);
        struct stat st;
        cr_assert_eq(stat(image_of(r, "new"), &st), 0, "%m");
        cr_assert_eq((uint64_t)st.st_size, IMAGE_SIZE, "the recorded writable size is used");

        /* The same explicit settings are fine. */
        struct snap_root_opts same = {
                .path = dir, .writable_fs = "ext4", .writable_size = IMAGE_SIZE};
        struct snap_root *r2 = NULL;
        cr_assert_eq(snap_root_open(&same, &r2, &err), 0, "%s", err.msg);
        r2 = snap_root_close(r2);

        /* Different explicit ones are refused, naming the setting. */
        struct snap_root_opts xfs = {.path = dir, .writable_fs = "xfs"};
        err = (struct util_err){0};
        int rc = snap_root_open(&xfs, &r2, &err);
        cr_assert_eq(rc, -EINVAL, "reopen an ext4 root as xfs: %d %s", rc, err.msg);
        cr_assert_null(r2);
        cr_assert(strstr(err.msg, "writable_fs") || strstr(err.msg, "writable-fs") ||
                          strstr(err.msg, "writable fs"),
                  "the message names the setting: \"%s\"", err.msg);
        struct snap_root_opts size = {.path = dir, .writable_size = 2 * IMAGE_SIZE};
        err = (struct util_err){0};
        rc = snap_root_open(&size, &r2, &err);
        cr_assert_eq(rc, -EINVAL, "reopen with another writable size: %d %s", rc, err.msg);
        cr_assert(strstr(err.msg, "writable_size") || strstr(err.msg, "writable-size") ||
                          strstr(err.msg, "writable size"),
                  "the message names the setting: \"%s\"", err.msg);

        /* The refused opens changed nothing. */
        cr_assert_str_eq(walk_names(r, NULL, 0), "base,act,v,new");
        no_devices_left(r);
}

Test(snapshot, mounts_are_stable)
{
        struct snap_root *r = open_root();
        committed_with(r, "base", NULL, "f", "f");
        struct mount_spec *p = prepare(r, "s1", "base");
        struct mount_spec *a = mounts_ok(r, "s1");
        struct mount_spec *b = mounts_ok(r, "s1");
        cr_assert(mount_spec_equal(p, a), "prepare vs mounts:\n%s\n%s", spec_json(p), spec_json(a));
        cr_assert(mount_spec_equal(a, b), "mounts twice:\n%s\n%s", spec_json(a), spec_json(b));
        struct mount_spec *vp = view(r, "v1", "base");
        cr_assert(mount_spec_equal(vp, mounts_ok(r, "v1")), "view vs mounts");

        /* Committing a sibling, mounting and other snapshots change nothing. */
        prepare(r, "s2", "base");
        const char *t = mount_key(r, "s2");
        write_file(t, "g", "g");
        unmount(t);
        commit(r, "s2c", "s2");
        prepare(r, "s3", "s2c");
        t = mount_key(r, "s1");
        unmount(t);
        struct mount_spec *c = mounts_ok(r, "s1");
        cr_assert(mount_spec_equal(p, c), "after a sibling's commit:\n%s\n%s", spec_json(p),
                  spec_json(c));
        cr_assert(mount_spec_equal(vp, mounts_ok(r, "v1")), "view after a sibling's commit");
        if (variant_is("block")) {
                cr_assert_eq(p->n, 1, "block: one image: %s", spec_json(p));
                no_devices_left(r);
                return;
        }
        cr_assert_eq(p->n, variant_dir() ? 2 : 3,
                     "active on one parent: parent, own image, overlay: %s", spec_json(p));
        cr_assert_str_eq(p->mounts[p->n - 1].type, "overlay");
        cr_assert_eq(vp->n, 2, "view on one parent: parent image, bind: %s", spec_json(vp));
        no_devices_left(r);
}

static bool has_option(const struct mount_entry *m, const char *opt)
{
        for (size_t o = 0; o < m->n_options; o++)
                if (strcmp(m->options[o], opt) == 0)
                        return true;
        return false;
}

/* The spec shapes of snapshot.h; a view owns no writable image. */
Test(snapshot, spec_shapes)
{
        if (variant_dir() || variant_is("block"))
                cr_skip_test("the image-upper overlay shapes (variant '%s' has its own)",
                             variant());
        struct snap_root *r = open_root();
        committed_with(r, "p2", NULL, "f", "2");
        committed_with(r, "p1", "p2", "g", "1");

        struct mount_spec *m = prepare(r, "a0", NULL);
        cr_assert_eq(m->n, 2, "%s", spec_json(m));
        cr_assert(has_option(&m->mounts[0], "rw") && has_option(&m->mounts[0], "loop"), "%s",
                  spec_json(m));
        cr_assert_str_eq(m->mounts[1].source, "{{ mount 0 }}/upper", "%s", spec_json(m));

        m = prepare(r, "a2", "p1");
        cr_assert_eq(m->n, 4, "two parents, own image, overlay: %s", spec_json(m));
        for (size_t k = 0; k < 2; k++)
                cr_assert(has_option(&m->mounts[k], "ro") && has_option(&m->mounts[k], "loop"),
                          "layer %zu: %s", k, spec_json(m));
        cr_assert_str_eq(m->mounts[0].source, image_of(r, "p1"), "nearest parent first");
        cr_assert_str_eq(m->mounts[1].source, image_of(r, "p2"));
        cr_assert_str_eq(m->mounts[2].source, image_of(r, "a2"));
        cr_assert_str_eq(m->mounts[3].type, "overlay");

        m = view(r, "v2", "p1");
        cr_assert_eq(m->n, 3, "two parents, overlay: %s", spec_json(m));
        cr_assert_str_eq(m->mounts[2].type, "overlay");
        cr_assert(has_option(&m->mounts[2], "ro"), "%s", spec_json(m));
        const char *t = mount_key(r, "v2");
        expect_content(t, "f", "2");
        expect_content(t, "g", "1");
        expect_readonly(t);
        unmount(t);

        m = view(r, "v0", NULL);
        cr_assert_eq(m->n, 1, "a parentless view is one bind: %s", spec_json(m));
        cr_assert(has_option(&m->mounts[0], "ro"), "%s", spec_json(m));

        for (size_t k = 0; k < 2; k++) {
                const char *key = k ? "v0" : "v2";
                const char *img = priv_path("%s/snapshots/%lld/fs.img", snap_root_path(r),
                                            (long long)stat_ok(r, key)->id);
                cr_assert_neq(access(img, F_OK), 0, "view '%s' owns an image %s", key, img);
        }
        no_devices_left(r);
}

/* Whether the mount at `target` (the topmost) lists `opt` in mountinfo. */
static bool mountinfo_has(const char *target, const char *opt)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char *line = NULL, point[4200];
        size_t size = 0;
        bool found = false;
        snprintf(point, sizeof(point), " %s ", target);
        while (f && getline(&line, &size, f) > 0)
                if (strstr(line, point))
                        found = strstr(line, opt) != NULL; /* the last one is on top */
        free(line);
        if (f)
                (void)fclose(f);
        return found;
}

/* io.loopsnap.volatile: the writable overlay is mounted "volatile", once;
 * other values are refused naming the label; a commit is still whole. */
Test(snapshot, volatile_label)
{
        if (variant_is("block"))
                cr_skip_test("the block layout has no overlay (variant '%s')", variant());
        struct snap_root *r = open_root();
        struct util_err err = {0};
        struct mount_spec *none = NULL;
        committed_with(r, "p", NULL, "f", "1");

        struct snap_label bad = {.key = SNAP_LABEL_VOLATILE, .value = "yes"};
        cr_assert_eq(snap_prepare(r, "b", "p", &bad, 1, &none, &err), -EINVAL);
        cr_assert(strstr(err.msg, SNAP_LABEL_VOLATILE) && strstr(err.msg, "'yes'"), "%s", err.msg);
        util_err_clear(&err);

        struct snap_label no = {.key = SNAP_LABEL_VOLATILE, .value = "false"};
        struct mount_spec *m = prepare_l(r, "n", "p", &no, 1);
        cr_assert(!has_option(&m->mounts[m->n - 1], "volatile"), "%s", spec_json(m));

        struct snap_label yes = {.key = SNAP_LABEL_VOLATILE, .value = "true"};
        m = prepare_l(r, "v", "p", &yes, 1);
        const struct mount_entry *ov = &m->mounts[m->n - 1];
        cr_assert_str_eq(ov->type, "overlay", "%s", spec_json(m));
        cr_assert(has_option(ov, "volatile"), "%s", spec_json(m));
        const char *t = mount_key(r, "v");
        cr_assert(mountinfo_has(t, "fsync=volatile"), "the kernel's overlay at %s is not volatile",
                  t);
        expect_content(t, "f", "1");
        write_file(t, "g", "2");
        unmount(t);
        /* Once: overlayfs refuses the upper of a volatile mount again. */
        struct mount_spec *again = mounts_ok(r, "v");
        const char *t2 = priv_path("%s/again", priv_tmpdir());
        cr_assert_eq(mkdir(t2, 0700), 0, "%m");
        cr_assert_lt(mount_engine_apply(priv_engine(), again, t2, NULL, NULL, &err), 0,
                     "a volatile upper mounted twice");
        util_err_clear(&err);
        commit(r, "c", "v");
        view(r, "cv", "c");
        t = mount_key(r, "cv");
        expect_content(t, "g", "2");
        expect_content(t, "f", "1");
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, invalid_settings)
{
        struct {
                const char *what;
                struct snap_root_opts o;
                const char *says;
        } cases[] = {
                {"erofs with the block layout",
                 {.committed_format = "erofs", .layout = SNAP_LAYOUT_BLOCK},
                 "needs layout 'overlay'"},
                {"a directory upper with the block layout",
                 {.upper_dir = true, .layout = SNAP_LAYOUT_BLOCK},
                 "needs layout 'overlay'"},
                {"an unknown committed format", {.committed_format = "squashfs"}, "squashfs"},
        };
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(cases); k++) {
                struct snap_root *r = NULL;
                struct util_err err = {0};
                cases[k].o.path = priv_keep(priv_path("%s/invalid-%zu", priv_tmpdir(), k));
                cases[k].o.writable_size = IMAGE_SIZE;
                int rc = snap_root_open(&cases[k].o, &r, &err);
                cr_assert_eq(rc, -EINVAL, "%s: %d %s", cases[k].what, rc, err.msg);
                cr_assert(strstr(err.msg, cases[k].says), "%s: %s", cases[k].what, err.msg);
                cr_assert_null(r);
                cr_assert_gt(strlen(err.msg), 0);
                cr_log_info("%s: %s", cases[k].what, err.msg);
        }
}

Test(snapshot, xfs_basic, .timeout = 120)
{
        priv_require_prog("mkfs.xfs");
        struct snap_root_opts o = {
                .path = root_dir(), .writable_fs = "xfs", .writable_size = 320 * MIB};
        struct snap_root *r = open_root_opts(&o);

        struct mount_spec *m = prepare(r, "p1", NULL);
        cr_assert_str_eq(own_image(m)->type, "xfs", "%s", spec_json(m));
        const char *t = mount_key(r, "p1");
        write_file(t, "foo", "foo");
        make_dir(t, "d", 0750);
        unmount(t);
        commit(r, "c1", "p1");

        prepare(r, "p2", "c1");
        t = mount_key(r, "p2");
        expect_content(t, "foo", "foo");
        write_file(t, "bar", "bar");
        unmount(t);
        commit(r, "c2", "p2");

        view(r, "v", "c2");
        t = mount_key(r, "v");
        expect_content(t, "foo", "foo");
        expect_content(t, "bar", "bar");
        cr_assert_eq(stat_of(t, "d").st_mode & 07777, 0750);
        expect_readonly(t);
        unmount(t);
        no_devices_left(r);
}

/* ---- block layout: every snapshot a whole image cloned from its parent ---- */

static void expect_single_image(const struct mount_spec *m, const char *rw)
{
        cr_assert_eq(m->n, 1, "one mount in the block layout: %s", spec_json(m));
        cr_assert_str_eq(m->mounts[0].type, "ext4");
        cr_assert_str_eq(m->mounts[0].options[0], rw, "%s", spec_json(m));
        cr_assert_str_eq(m->mounts[0].options[1], "loop");
}

Test(snapshot, block_layout_basic)
{
        struct snap_root_opts o = {
                .path = root_dir(), .layout = SNAP_LAYOUT_BLOCK, .writable_size = IMAGE_SIZE};
        struct snap_root *r = open_root_opts(&o);

        expect_single_image(prepare(r, "p1", NULL), "rw");
        const char *t = mount_key(r, "p1");
        write_file(t, "foo", "foo");
        unmount(t);
        commit(r, "c1", "p1");

        expect_single_image(prepare(r, "p2", "c1"), "rw");
        t = mount_key(r, "p2");
        expect_content(t, "foo", "foo");
        write_file(t, "bar", "bar");
        unmount(t);
        commit(r, "c2", "p2");

        expect_single_image(view(r, "v", "c2"), "ro");
        t = mount_key(r, "v");
        expect_content(t, "foo", "foo");
        expect_content(t, "bar", "bar");
        expect_readonly(t);
        unmount(t);

        /* The parent's image is untouched by its child. */
        view(r, "v1", "c1");
        t = mount_key(r, "v1");
        expect_content(t, "foo", "foo");
        cr_assert_neq(access(priv_path("%s/bar", t), F_OK), 0, "c1 has no 'bar'");
        unmount(t);
        no_devices_left(r);
}

Test(snapshot, block_layout_idmapped_and_settings_kept)
{
        struct snap_root_opts o = {
                .path = root_dir(), .layout = SNAP_LAYOUT_BLOCK, .writable_size = IMAGE_SIZE};
        struct snap_root *r = open_root_opts(&o);
        prepare(r, "p1", NULL);
        const char *t = mount_key(r, "p1");
        write_file(t, "foo", "foo");
        unmount(t);
        commit(r, "c1", "p1");

        struct snap_label l[] = {LABEL(SNAP_LABEL_UIDMAPPING, "0:100000:65536"),
                                 LABEL(SNAP_LABEL_GIDMAPPING, "0:100000:65536")};
        struct mount_spec *m = prepare_l(r, "p2", "c1", l, 2);
        cr_assert_eq(m->n, 1, "%s", spec_json(m));
        t = mount_key(r, "p2");
        cr_assert_eq(stat_of(t, "foo").st_uid, 100000, "the block mount itself is idmapped");
        unmount(t);
        no_devices_left(r);

        /* Reopening as overlay (the default) keeps block; asking for block on
         * an overlay root is refused. */
        struct snap_root_opts ov = {.path = priv_keep(priv_path("%s/ovl", priv_tmpdir())),
                                    .writable_size = IMAGE_SIZE};
        struct snap_root *r2 = NULL;
        struct util_err err = {0};
        cr_assert_eq(snap_root_open(&ov, &r2, &err), 0, "%s", err.msg);
        snap_root_close(r2);
        ov.layout = SNAP_LAYOUT_BLOCK;
        cr_assert_eq(snap_root_open(&ov, &r2, &err), -EINVAL);
        cr_assert(strstr(err.msg, "layout"), "%s", err.msg);
}

/* ---- the activation cache (m/<id>) ---- */

/* m/<id> of committed `name`. */
static const char *activation_dir(struct snap_root *r, const char *name)
{
        return priv_path("%s/m/%lld", snap_root_path(r), (long long)stat_ok(r, name)->id);
}

static bool activated(struct snap_root *r, const char *name)
{
        const char *p = activation_dir(r, name);
        struct util_err err = {0};
        return access(p, F_OK) == 0 && mount_is_mountpoint(p, &err) == 1;
}

Test(snapshot, activation_cache)
{
        struct snap_root *r = open_layered_root();
        committed_chain(r, 2);
        cr_assert_not(activated(r, "c2"), "a commit alone activates nothing");

        /* A prepare keeps its layers mounted: their devices stay bound and
         * a container's mount joins them. */
        prepare(r, "a", "c2");
        cr_assert(activated(r, "c1") && activated(r, "c2"));
        size_t layers = priv_devices_tagged(snap_root_tag_owner(r));
        cr_assert_eq(layers, 2, "one device per activated layer, not %zu", layers);
        const char *t = mount_key(r, "a");
        expect_content(t, "f1", "1");
        expect_content(t, "f2", "2");
        cr_assert_eq(priv_devices_tagged(snap_root_tag_owner(r)), layers,
                     "the container's lowers joined the activated devices");
        unmount(t);
        remove_ok(r, "a");
        cr_assert(activated(r, "c2"), "the cache outlives the container");

        /* Cleanup drops activations nobody stacks (not counted as problems). */
        struct util_err err = {0};
        cr_assert_eq(snap_cleanup(r, &err), 0, "%s", err.msg);
        cr_assert_not(activated(r, "c2"));
        cr_assert_not(activated(r, "c1"));
        cr_assert_eq(priv_devices_tagged(snap_root_tag_owner(r)), 0);
        /* Their directories stay, empty, for the next activation. */
        cr_assert_eq(access(activation_dir(r, "c2"), F_OK), 0,
                     "m/<id> of a layer that stays was removed");

        /* A view activates too; removing a layer drops its activation. */
        view(r, "v", "c2");
        cr_assert(activated(r, "c2"));
        remove_ok(r, "v");
        int64_t id2 = stat_ok(r, "c2")->id;
        remove_ok(r, "c2");
        cr_assert_neq(access(priv_path("%s/m/%lld", snap_root_path(r), (long long)id2), F_OK), 0,
                      "m/<id> of a removed layer is gone");
        no_devices_left(r);
}

/* Correctness never depends on the cache: a wrong mount at m/<id> changes
 * nothing a container sees, and fsck finds activations of missing rows. */
Test(snapshot, activation_is_only_a_cache)
{
        struct snap_root *r = open_layered_root();
        committed_with(r, "c1", NULL, "f1", "1");
        const char *m1 = activation_dir(r, "c1");
        cr_assert_eq(mkdir(m1, 0700), 0, "%m");
        cr_assert_eq(mount("tmpfs", m1, "tmpfs", 0, "size=1m"), 0, "%m");
        prepare(r, "a", "c1");
        const char *t = mount_key(r, "a");
        expect_content(t, "f1", "1");
        unmount(t);
        cr_assert_eq(umount2(m1, 0), 0, "%m");
        prepare(r, "b", "c1");
        cr_assert(activated(r, "c1"), "a later prepare activates the layer for real");

        const char *ghost = priv_path("%s/m/9999", snap_root_path(r));
        cr_assert_eq(mkdir(ghost, 0700), 0, "%m");
        cr_assert_eq(mount("tmpfs", ghost, "tmpfs", 0, "size=1m"), 0, "%m");
        struct snap_fsck_report rep = {0};
        struct util_err err = {0};
        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(rep.leaked_mounts, 1, "m/9999 (no row) is a leftover");
        cr_assert_eq(snap_fsck(r, true, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_fsck_problems(&rep), 0);
        cr_assert_neq(access(ghost, F_OK), 0, "repair removed m/9999");
        cr_assert(activated(r, "c1"), "the valid activation stays");
        no_devices_left(r);
}

/* Mounts(key) applied onto a fresh target through an engine made with the
 * root's options (what snapctl, the ABI and the hook use); returns how many
 * mounts were clones of activations. */
static size_t last_retried;

static const char *mount_key_engine(struct snap_root *r, const char *key,
                                    const struct mount_engine_opts *eo, size_t *ret_reused,
                                    size_t *ret_borrowed)
{
        struct mount_engine *e = NULL;
        struct util_err err = {0};
        const char *t = priv_keep(priv_path("%s/t%u", priv_tmpdir(), n_targets++));

        cr_assert_eq(mount_engine_new(eo, &e, &err), 0, "%s", err.msg);
        cr_assert_eq(mkdir(t, 0755), 0, "mkdir %s: %m", t);
        int rc = mount_engine_apply(e, mounts_ok(r, key), t, NULL, NULL, &err);
        cr_assert_eq(rc, 0, "mount '%s': %d %s", key, rc, err.msg);
        *ret_reused = mount_engine_reused(e);
        if (ret_borrowed)
                *ret_borrowed = mount_engine_borrowed(e);
        last_retried = mount_engine_retried(e);
        mount_engine_free(e);
        return t;
}

static const char *mount_key_reusing(struct snap_root *r, const char *key, size_t *ret_reused)
{
        struct mount_engine_opts eo;
        snap_root_engine_opts(r, &eo);
        return mount_key_engine(r, key, &eo, ret_reused, NULL);
}

/* An activation is remembered as checked by the mount that it is, not by
 * its place: another mount put at m/<id> (here a bind of the next layer's
 * activation) is checked again, found wrong, and not used. */
Test(snapshot, a_replaced_activation_is_checked_again)
{
        struct snap_root *r = open_layered_root();
        size_t reused = 0;
        committed_chain(r, 2);
        prepare(r, "a", "c2");
        cr_assert(activated(r, "c1") && activated(r, "c2"));
        const char *t = mount_key_reusing(r, "a", &reused);
        cr_assert_eq(reused, 2, "both activations used, not %zu", reused);
        expect_content(t, "f1", "1");
        unmount(t);

        const char *m1 = activation_dir(r, "c1");
        cr_assert_eq(umount2(m1, UMOUNT_NOFOLLOW), 0, "%m");
        cr_assert_eq(mount(activation_dir(r, "c2"), m1, NULL, MS_BIND, NULL), 0, "%m");
        t = mount_key_reusing(r, "a", &reused);
        cr_assert_eq(reused, 1, "the bind at m/<c1> was used (%zu reused)", reused);
        expect_content(t, "f1", "1");
        expect_content(t, "f2", "2");
        unmount(t);
        remove_ok(r, "a");
        cr_assert_eq(umount2(m1, UMOUNT_NOFOLLOW), 0, "%m");
        struct util_err err = {0};
        cr_assert_eq(snap_cleanup(r, &err), 0, "%s", err.msg);
        no_devices_left(r);
}

/* The per-mount flags of the mount at `path` (statfs f_flags, ST_*). */
static unsigned long mount_flags_at(const char *path)
{
        struct statfs sf;
        cr_assert_eq(statfs(path, &sf), 0, "statfs %s: %m", path);
        return (unsigned long)sf.f_flags &
               (ST_RDONLY | ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_NOATIME | ST_RELATIME);
}

/* Layers of an overlay that is not id-mapped are lent as they are (the
 * overlay clones them privately): no clone per layer, and the activation
 * keeps its flags. An activation whose flags are not the spec's is cloned
 * and the clone given the spec's flags; the activation is not touched. */
Test(snapshot, activations_are_lent_to_overlays)
{
        struct snap_root *r = open_layered_root();
        size_t reused = 0, borrowed = 0;
        struct mount_engine_opts eo;
        committed_chain(r, 6);
        /* Dropped, so that the prepare activates the six layers at once
         * (on several threads): each must be its own layer's image. */
        struct util_err err = {0};
        cr_assert_eq(snap_cleanup(r, &err), 0, "%s", err.msg);
        cr_assert_not(activated(r, "c3"));
        prepare(r, "a", "c6");
        prepare(r, "b", "c2");
        const char *m1 = priv_keep(activation_dir(r, "c1"));
        const char *m2 = priv_keep(activation_dir(r, "c2"));
        unsigned long f1 = mount_flags_at(m1);
        cr_assert(f1 & ST_RDONLY, "an activation is read-only");

        snap_root_engine_opts(r, &eo);
        const char *t = mount_key_engine(r, "a", &eo, &reused, &borrowed);
        cr_assert_eq(borrowed, 6, "all six layers lent, %zu were", borrowed);
        cr_assert_eq(last_retried, 0);
        cr_assert_eq(reused, borrowed, "%zu reused, %zu lent", reused, borrowed);
        expect_content(t, "f1", "1");
        expect_content(t, "f2", "2");
        expect_content(t, "f6", "6");
        cr_assert_eq(mount_flags_at(m1), f1, "the lent activation keeps its flags");
        unmount(t);
        cr_assert(activated(r, "c1") && activated(r, "c2"), "the activations stay");

        /* m/<c2> made nosuid behind the root's back: not the spec's flags,
         * so a clone is used; m/<c2> stays nosuid. */
        cr_assert_eq(mount(NULL, m2, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, NULL), 0,
                     "%m");
        t = mount_key_engine(r, "b", &eo, &reused, &borrowed);
        cr_assert_eq(borrowed, 1, "only c1's activation lent, %zu were", borrowed);
        cr_assert_geq(reused, 2, "c2's activation cloned instead");
        expect_content(t, "f2", "2");
        unsigned long f2 = mount_flags_at(m2);
        cr_assert((f2 & ST_NOSUID) != 0, "m/<c2> left as it was (flags %#lx)", f2);
        unmount(t);
        no_devices_left(r);
}

/* A reuse callback that lends a mount and then has it unmounted under the
 * engine (what a concurrent deactivation does between the two). */
static struct mount_engine_opts racy_inner;
static unsigned racy_unmounted;

static int racy_reuse(void *data, const char *type, const char *source, bool rw, bool borrow,
                      int *ret_fd)
{
        int got = racy_inner.reuse(data, type, source, rw, borrow, ret_fd);
        if (got == 2) {
                char mnt[PATH_MAX];
                snprintf(mnt, sizeof(mnt), "/proc/self/fd/%d", *ret_fd);
                char point[PATH_MAX];
                ssize_t n = readlink(mnt, point, sizeof(point) - 1);
                cr_assert_gt(n, 0, "%m");
                point[n] = 0;
                cr_assert_eq(umount2(point, MNT_DETACH), 0, "unmount %s: %m", point);
                racy_unmounted++;
        }
        return got;
}

/* A lent mount unmounted before the overlay exists: the kernel refuses the
 * layer, and the engine applies the spec once more without borrowing
 * (here: mounting the layer images itself). Nothing is left behind. */
Test(snapshot, lent_mount_gone_before_the_overlay)
{
        struct snap_root *r = open_layered_root();
        size_t reused = 0, borrowed = 0;
        struct mount_engine_opts eo;
        committed_chain(r, 2);
        prepare(r, "a", "c2");
        cr_assert(activated(r, "c1") && activated(r, "c2"));

        snap_root_engine_opts(r, &racy_inner);
        eo = racy_inner;
        eo.reuse = racy_reuse;
        racy_unmounted = 0;
        const char *t = mount_key_engine(r, "a", &eo, &reused, &borrowed);
        cr_assert_geq(racy_unmounted, 1, "the test unmounted a lent mount");
        cr_assert_eq(borrowed, racy_unmounted, "%zu lent", borrowed);
        cr_assert_eq(last_retried, 1, "the overlay refused the gone layer; applied again");
        expect_content(t, "f1", "1");
        expect_content(t, "f2", "2");
        unmount(t);
        cr_assert_not(activated(r, "c1"), "the test's unmount took");
        no_devices_left(r);
}

/* The root's engines clone an activation instead of mounting the layer
 * again, but only one whose device is backed by that very layer's image:
 * another layer's filesystem bound at m/<id> is not used. */
Test(snapshot, activation_reuse_checks_the_image)
{
        struct snap_root *r = open_layered_root();
        size_t reused = 0;
        committed_chain(r, 2);
        committed_with(r, "d1", NULL, "g1", "other");

        prepare(r, "a", "c2");
        size_t before = priv_devices_tagged(snap_root_tag_owner(r));
        const char *t = mount_key_reusing(r, "a", &reused);
        cr_assert_eq(reused, 2, "both activated layers cloned, not %zu", reused);
        expect_content(t, "f1", "1");
        expect_content(t, "f2", "2");
        size_t own = variant_is("dir") || variant_is("dir-erofs") ? 0 : 1;
        cr_assert_eq(priv_devices_tagged(snap_root_tag_owner(r)), before + own,
                     "a device only for the writable image");
        unmount(t);

        /* d1's activation bound over c1's: same type, a loop device, but
         * backed by d1's image. */
        prepare(r, "x", "d1");
        const char *md = activation_dir(r, "d1");
        const char *mc = activation_dir(r, "c1");
        cr_assert_eq(umount2(mc, MNT_DETACH), 0, "%m");
        cr_assert_eq(mount(md, mc, NULL, MS_BIND, NULL), 0, "%m");
        prepare(r, "b", "c1");
        t = mount_key_reusing(r, "b", &reused);
        cr_assert_eq(reused, 0, "a mount of another image at m/<c1> is never cloned");
        expect_content(t, "f1", "1");
        cr_assert_neq(access(at(t, "g1"), F_OK), 0, "d1's file must not show");
        unmount(t);
        cr_assert_eq(umount2(mc, MNT_DETACH), 0, "%m");
        no_devices_left(r);
}

/* A snapshot removed while a container still has it mounted keeps its
 * devices (the overlay's lowers are private clones mountinfo never shows):
 * fsck does not call them leaked, and they go with the mount. */
Test(snapshot, fsck_spares_devices_of_a_removed_snapshot_still_mounted)
{
        struct snap_root *r = open_root();
        struct snap_fsck_report rep = {0};
        struct util_err err = {0};
        committed_with(r, "c1", NULL, "f1", "1");
        size_t reused;
        prepare(r, "a", "c1");
        /* The root's engine: its devices carry the root's tag, which fsck
         * looks at. */
        const char *t = mount_key_reusing(r, "a", &reused);
        remove_ok(r, "a");
        expect_content(t, "f1", "1");
        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(rep.leaked_loops, 0, "devices in use counted as leaked");
        cr_assert_eq(snap_fsck_problems(&rep), 0);
        unmount(t);
        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_fsck_problems(&rep), 0);
        no_devices_left(r);
}

Test(snapshot, activation_can_be_switched_off)
{
        struct snap_root_opts o = variant_opts();
        o.no_activation_cache = true;
        struct snap_root *r = open_root_opts(&o);
        committed_with(r, "c1", NULL, "f1", "1");
        prepare(r, "a", "c1");
        cr_assert_not(activated(r, "c1"));
        cr_assert_eq(priv_devices_tagged(snap_root_tag_owner(r)), 0);
        const char *t = mount_key(r, "a");
        expect_content(t, "f1", "1");
        unmount(t);
        no_devices_left(r);
}

/* How many of <root>/<sub>'s entries are mount roots (keepers under w/) or
 * directories (spares under pool/). */
static unsigned count_in(struct snap_root *r, const char *sub, bool mounts)
{
        const char *dir = priv_path("%s/%s", snap_root_path(r), sub);
        DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;
        cr_assert_not_null(d, "open %s: %m", dir);
        while ((de = readdir(d))) {
                struct statx stx;
                if (de->d_name[0] == '.')
                        continue;
                if (!mounts) {
                        n++;
                        continue;
                }
                cr_assert_eq(
                        statx(dirfd(d), de->d_name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx),
                        0, "%m");
                n += (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
        }
        closedir(d);
        return n;
}

/* The inode of snapshot `key`'s directory, or of the image in it. */
static ino_t snapshot_ino(struct snap_root *r, const char *key, const char *name)
{
        const char *p = priv_path("%s/snapshots/%lld%s", snap_root_path(r),
                                  (long long)stat_ok(r, key)->id, name);
        struct stat st;
        cr_assert_eq(stat(p, &st), 0, "stat %s: %m", p);
        return st.st_ino;
}

static ino_t image_ino(struct snap_root *r, const char *key)
{
        return snapshot_ino(r, key, "/fs.img");
}

/* The pool of a root with directory uppers: a removed snapshot's directory
 * comes back with an empty fs/ (the container's files deleted), and the next
 * prepare takes it with new upper/ and work/, owned by its own root; the
 * next tenant sees nothing of the last one. fsck is clean throughout;
 * cleanup deletes the spares. */
Test(snapshot, writable_pool_keeps_empty_directories)
{
        if (!variant_is("dir"))
                cr_skip_test("spare directories serve directory uppers (variant '%s')", variant());
        struct snap_root_opts o = variant_opts();
        o.writable_pool = 1;
        struct snap_root *r = open_root_opts(&o);
        struct snap_fsck_report rep = {0};
        struct util_err err = {0};
        committed_with(r, "c1", NULL, "f1", "1");

        prepare(r, "a", "c1");
        prepare(r, "x", "c1");
        const char *t = mount_key(r, "a");
        write_file(t, "secret", "tenant a");
        make_dir(t, "d", 0700);
        write_file(at(t, "d"), "g", "deep");
        cr_assert_eq(setxattr(t, "user.tenant", "a", 1, 0), 0, "%m");
        unmount(t);
        ino_t dir_a = snapshot_ino(r, "a", "");
        remove_ok(r, "a");
        remove_ok(r, "x"); /* the pool (1) is full: x's directory is deleted */
        cr_assert_eq(count_in(r, "pool", false), 1);
        cr_assert_eq(count_in(r, "trash", false), 0, "nothing left in the trash");
        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_fsck_problems(&rep), 0, "a spare is not a leftover");

        struct snap_label l[] = {LABEL(SNAP_LABEL_UIDMAPPING, "0:100000:65536"),
                                 LABEL(SNAP_LABEL_GIDMAPPING, "0:100000:65536")};
        prepare_l(r, "b", "c1", l, 2);
        cr_assert_eq(count_in(r, "pool", false), 0);
        cr_assert_eq(snapshot_ino(r, "b", ""), dir_a, "the spare's directory is b's");
        const char *fs = priv_path("%s/snapshots/%lld/fs", snap_root_path(r),
                                   (long long)stat_ok(r, "b")->id);
        struct stat st = stat_of(fs, "upper");
        cr_assert_eq(st.st_uid, 100000, "upper/ owned by b's mapped root, not %u", st.st_uid);
        st = stat_of(fs, "work");
        cr_assert_eq(st.st_gid, 100000, "work/ owned by b's mapped root, not %u", st.st_gid);
        char v[8];
        /* A new upper/ (inode numbers may come back: its metadata says). */
        cr_assert_lt(getxattr(priv_path("%s/upper", fs), "user.tenant", v, sizeof(v)), 0,
                     "the last tenant's xattr shows");
        t = mount_key(r, "b");
        expect_content(t, "f1", "1");
        cr_assert_neq(access(at(t, "secret"), F_OK), 0, "the last tenant's file shows");
        cr_assert_neq(access(at(t, "d"), F_OK), 0, "the last tenant's directory shows");
        unmount(t);

        /* A prepare that fails after claiming the spare gives it back. */
        remove_ok(r, "b");
        cr_assert_eq(count_in(r, "pool", false), 1);
        struct mount_spec *none = NULL;
        cr_assert_eq(snap_prepare(r, "c1", "c1", NULL, 0, &none, &err), -EEXIST, "%s", err.msg);
        util_err_clear(&err);
        cr_assert_eq(count_in(r, "pool", false), 1, "the failed prepare gave the spare back");

        /* A snapshot whose fs/ holds more than upper/ and work/ is not
         * kept: deleted, as without the pool. */
        prepare(r, "y", "c1");
        cr_assert_eq(count_in(r, "pool", false), 0, "y took the spare");
        const char *extra = priv_path("%s/snapshots/%lld/fs/extra", snap_root_path(r),
                                      (long long)stat_ok(r, "y")->id);
        cr_assert_eq(mkdir(extra, 0700), 0, "%m");
        remove_ok(r, "y");
        cr_assert_eq(count_in(r, "pool", false), 0, "y's directory was not kept");
        cr_assert_eq(count_in(r, "trash", false), 0, "y's directory was deleted");

        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_fsck_problems(&rep), 0);
        cr_assert_geq(snap_cleanup(r, &err), 0, "%s", err.msg);
        cr_assert_eq(count_in(r, "pool", false), 0, "cleanup keeps no spare");
        no_devices_left(r);
}

/* A root of the default variant with a writable pool of one spare and a
 * committed layer c1 (f1 = "1"); skipped for the other variants. */
static struct snap_root *open_pool_root(void)
{
        if (!variant_is(""))
                cr_skip_test("the pool serves image uppers of the overlay layout (variant '%s')",
                             variant());
        struct snap_root_opts o = variant_opts();
        o.writable_pool = 1;
        struct snap_root *r = open_root_opts(&o);
        committed_with(r, "c1", NULL, "f1", "1");
        return r;
}

/* A keeper is remembered as checked by the mount that it is: another mount
 * put at w/<ino> after the check (a tmpfs) makes the spare unusable, and
 * the next prepare drops it rather than give the tenant that filesystem. */
Test(snapshot, a_replaced_keeper_is_checked_again)
{
        struct snap_root *r = open_pool_root();
        struct util_err err = {0};
        size_t reused;

        prepare(r, "a", "c1");
        ino_t ino_a = image_ino(r, "a");
        const char *t = mount_key_reusing(r, "a", &reused);
        unmount(t);
        remove_ok(r, "a"); /* checks the keeper, and keeps the spare */
        prepare(r, "b", "c1");
        cr_assert_eq(image_ino(r, "b"), ino_a, "the spare was taken");
        remove_ok(r, "b");
        cr_assert_eq(count_in(r, "pool", false), 1);

        const char *keeper = priv_path("%s/w/%llu", snap_root_path(r), (unsigned long long)ino_a);
        cr_assert_eq(umount2(keeper, UMOUNT_NOFOLLOW), 0, "%s: %m", keeper);
        cr_assert_eq(mount("tmpfs", keeper, "tmpfs", 0, "size=1m"), 0, "%m");
        prepare(r, "c", "c1");
        /* Taken, the spare would have kept the tmpfs as c's keeper. (The
         * image cloned instead may well get the dropped one's inode.) */
        cr_assert_neq(access(keeper, F_OK), 0, "the tmpfs at %s stays", keeper);
        cr_assert_eq(count_in(r, "pool", false), 0, "the unusable spare stays in the pool");
        t = mount_key_reusing(r, "c", &reused);
        expect_content(t, "f1", "1");
        unmount(t);
        remove_ok(r, "c");
        cr_assert_geq(snap_cleanup(r, &err), 0, "%s", err.msg);
        no_devices_left(r);
}

/* The writable pool: a removed active's image comes back, emptied and still
 * mounted, for the next prepare; the next tenant sees nothing of the last
 * one; a full pool drops what it cannot keep; commit drops the keeper (the
 * device goes, the content is committed); fsck is clean throughout; cleanup
 * gives every spare back. */
Test(snapshot, writable_pool_recycles_emptied_images)
{
        struct snap_root *r = open_pool_root();
        struct snap_fsck_report rep = {0};
        struct util_err err = {0};
        size_t reused;

        prepare(r, "a", "c1");
        prepare(r, "x", "c1");
        const char *t = mount_key_reusing(r, "a", &reused);
        const char *tx = mount_key_reusing(r, "x", &reused);
        cr_assert_eq(count_in(r, "w", true), 2, "a keeper per mounted writable image");
        write_file(t, "secret", "tenant a");
        make_dir(t, "d", 0700);
        write_file(at(t, "d"), "g", "deep");
        unmount(t);
        unmount(tx);
        ino_t ino_a = image_ino(r, "a"), dir_a = snapshot_ino(r, "a", "");
        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_fsck_problems(&rep), 0, "keepers of active snapshots are not leftovers");
        remove_ok(r, "a");
        remove_ok(r, "x"); /* the pool (1) is full: x's keeper goes */
        cr_assert_eq(count_in(r, "pool", false), 1);
        cr_assert_eq(count_in(r, "w", true), 1, "only the spare's keeper stays");
        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_fsck_problems(&rep), 0, "a spare is not a leftover");

        prepare(r, "b", "c1");
        cr_assert_eq(image_ino(r, "b"), ino_a, "the spare was taken");
        cr_assert_eq(snapshot_ino(r, "b", ""), dir_a,
                     "the spare's directory is b's (no directory made on the host)");
        cr_assert_eq(count_in(r, "pool", false), 0);
        t = mount_key_reusing(r, "b", &reused);
        cr_assert_eq(reused, 2, "the layer's activation and the writable keeper cloned");
        expect_content(t, "f1", "1");
        cr_assert_neq(access(at(t, "secret"), F_OK), 0, "the last tenant's file shows");
        cr_assert_neq(access(at(t, "d"), F_OK), 0, "the last tenant's directory shows");
        write_file(t, "mine", "b");
        unmount(t);

        /* Commit drops the keeper; the content is committed. */
        commit(r, "c2", "b");
        cr_assert_eq(count_in(r, "w", true), 0);
        view(r, "v", "c2");
        t = mount_key(r, "v");
        expect_content(t, "mine", "b");
        expect_content(t, "f1", "1");
        unmount(t);
        remove_ok(r, "v");

        /* A snapshot removed while still mounted: the next tenant gets a
         * new upper, never the old one. */
        prepare(r, "y", "c1");
        t = mount_key_reusing(r, "y", &reused);
        write_file(t, "old", "y");
        remove_ok(r, "y");
        prepare(r, "z", "c1");
        const char *tz = mount_key_reusing(r, "z", &reused);
        cr_assert_neq(access(at(tz, "old"), F_OK), 0, "the removed tenant's file shows");
        write_file(tz, "new", "z");
        cr_assert_neq(access(at(t, "new"), F_OK), 0, "the new tenant's file shows to the old");
        unmount(t);
        unmount(tz);
        remove_ok(r, "z");

        /* A prepare that fails after claiming a spare (its key exists, its
         * parent does not) gives it back: no keeper of a deleted file. */
        struct mount_spec *none = NULL;
        cr_assert_eq(count_in(r, "pool", false), 1);
        cr_assert_eq(snap_prepare(r, "c1", "c1", NULL, 0, &none, &err), -EEXIST, "%s", err.msg);
        util_err_clear(&err);
        cr_assert_eq(snap_prepare(r, "orphan", "no-such", NULL, 0, &none, &err), -ENOENT, "%s",
                     err.msg);
        util_err_clear(&err);
        cr_assert_null(none);
        cr_assert_eq(count_in(r, "pool", false), 1, "the failed prepares gave the spare back");
        cr_assert_eq(count_in(r, "w", true), 1, "one keeper: the spare's");
        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_fsck_problems(&rep), 0, "a failed prepare left something behind");

        /* A prepare that died after claiming a spare: its image in tmp/,
         * the keeper still mounted. fsck finds both and repairs them. */
        cr_assert_eq(count_in(r, "pool", false), 1);
        const char *pool = priv_path("%s/pool", snap_root_path(r));
        DIR *d = opendir(pool);
        struct dirent *de;
        cr_assert_not_null(d, "%m");
        while ((de = readdir(d)) && de->d_name[0] == '.')
                ;
        cr_assert_not_null(de);
        const char *claimed = priv_path("%s/%s", pool, de->d_name);
        closedir(d);
        cr_assert_eq(rename(claimed, priv_path("%s/tmp/new-crashed", snap_root_path(r))), 0, "%m");
        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_gt(rep.tmp_leftovers, 0);
        cr_assert_gt(rep.leaked_mounts, 0, "the keeper of an image in tmp/ is a leftover");
        cr_assert_eq(snap_fsck(r, true, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_fsck_problems(&rep), 0, "left after the repair");
        cr_assert_eq(count_in(r, "w", true), 0);

        prepare(r, "z", "c1");
        t = mount_key_reusing(r, "z", &reused);
        unmount(t);
        remove_ok(r, "z");
        cr_assert_eq(count_in(r, "pool", false), 1);
        /* A spare as an older version left it: the image itself, not its
         * directory. The next prepare drops it (and its keeper) and clones
         * the template instead. */
        d = opendir(pool);
        cr_assert_not_null(d, "%m");
        while ((de = readdir(d)) && de->d_name[0] == '.')
                ;
        cr_assert_not_null(de);
        const char *spare = priv_path("%s/%s", pool, de->d_name);
        const char *legacy = priv_path("%s.img", spare);
        closedir(d);
        cr_assert_eq(rename(priv_path("%s/fs.img", spare), legacy), 0, "%m");
        cr_assert_eq(rmdir(spare), 0, "%m");
        prepare(r, "old", "c1");
        cr_assert_eq(count_in(r, "pool", false), 0, "the old-style spare is gone");
        cr_assert_eq(count_in(r, "w", true), 0, "with its keeper");
        t = mount_key_reusing(r, "old", &reused);
        expect_content(t, "f1", "1");
        unmount(t);
        remove_ok(r, "old");
        cr_assert_eq(count_in(r, "pool", false), 1);
        cr_assert_geq(snap_cleanup(r, &err), 0, "%s", err.msg);
        cr_assert_eq(count_in(r, "pool", false), 0, "cleanup keeps no spare");
        cr_assert_eq(count_in(r, "w", true), 0, "cleanup keeps no keeper");
        cr_assert_eq(snap_fsck(r, false, NULL, NULL, &rep, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_fsck_problems(&rep), 0);
        no_devices_left(r);
}
