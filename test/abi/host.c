/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * abi-host: a host program that dlopen()s the built libloopsnap.so.1 and
 * drives a whole snapshot cycle through the ABI's table only (it links
 * nothing of loopsnap's; its only loopsnap include is the installed header):
 * version and size refusals at the entry, a root in a temporary directory,
 * prepare / mounts / mount_apply / write / unmount / commit / view / stat /
 * walk with filters / usage / update / remove, fsck finding and repairing a
 * leftover, the error kinds of the failure paths, concurrent calls on one
 * handle, and apply_layer / import_oci errors (snapctl's e2e test imports a
 * real layout through the same table).
 *
 *   test-abi-host [PATH-TO-libloopsnap.so.1]
 *
 * Exit status: 0 all checks passed, 1 a check failed, 77 skipped (not root,
 * no loop devices, no mkfs.ext4). It runs in a private mount namespace, so a
 * crash cannot leave mounts behind, and it unmounts, closes and removes
 * everything it made itself all the same; the last check is that no loop
 * device of its root is left.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin/loopsnap.h"

#ifndef ABI_HOST_PLUGIN
#error "ABI_HOST_PLUGIN (the built library's path) must be defined by the build"
#endif

static const struct loopsnap_ops *ops;
static char dir[] = "/var/tmp/loopsnap-test.abi-XXXXXX";
static char root_path[256], mnt[256], mnt2[256];
static int checks, failures;
static unsigned log_lines;

static void fail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(int line, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "FAIL host.c:%d: ", line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        failures++;
}

/* A check that stops the current step (each step is a function). */
#define CHECK(cond, ...)                             \
        do {                                         \
                checks++;                            \
                if (!(cond)) {                       \
                        fail(__LINE__, __VA_ARGS__); \
                        return false;                \
                }                                    \
        } while (0)

/* A call that must succeed. */
#define OK(call, e)                                                                     \
        do {                                                                            \
                int ok_rc_ = (call);                                                    \
                checks++;                                                               \
                if (ok_rc_ < 0) {                                                       \
                        fail(__LINE__, "%s: %d (kind %d) %s", #call, ok_rc_, (e)->kind, \
                             (e)->message);                                             \
                        return false;                                                   \
                }                                                                       \
        } while (0)

static struct loopsnap_error err_new(void)
{
        struct loopsnap_error e;
        memset(&e, 0, sizeof(e));
        e.struct_size = sizeof(e);
        return e;
}

/* A failure with this errno and kind, whose message contains `needle`. */
static bool expect(int line, const char *what, int rc, const struct loopsnap_error *e, int errnum,
                   int kind, const char *needle)
{
        checks++;
        if (rc != -errnum || e->errnum != errnum || e->kind != kind ||
            (needle && !strstr(e->message, needle))) {
                fail(line, "%s: want -%d kind %d with '%s', got %d errnum %d kind %d '%s'", what,
                     errnum, kind, needle ? needle : "", rc, e->errnum, e->kind, e->message);
                return false;
        }
        return true;
}
#define EXPECT(what, rc, e, errnum, kind, needle)                 \
        if (!expect(__LINE__, what, rc, e, errnum, kind, needle)) \
        return false

static void host_log(void *data, int level, const char *message)
{
        unsigned *n = data;
        (*n)++;
        if (getenv("ABI_HOST_VERBOSE"))
                fprintf(stderr, "log %d: %s\n", level, message);
}

/* ---- entry ---------------------------------------------------------------------- */

static bool step_entry(loopsnap_plugin_v1_fn entry)
{
        struct loopsnap_error e = err_new();
        const struct loopsnap_ops *t = NULL;

        /* Another major version is refused. */
        struct loopsnap_host h2 = {.struct_size = sizeof(h2), .abi_major = 2};
        EXPECT("ABI 2", entry(&h2, &t, &e), &e, EPROTONOSUPPORT, LOOPSNAP_ERR_NOT_SUPPORTED,
               "ABI 2.0");
        CHECK(t == NULL, "a refused entry wrote ret_ops");

        /* A host struct smaller than version 1. */
        e = err_new();
        struct loopsnap_host small = {.struct_size = 4, .abi_major = LOOPSNAP_ABI_MAJOR};
        EXPECT("small host", entry(&small, &t, &e), &e, EINVAL, LOOPSNAP_ERR_INVALID_ARGUMENT,
               "struct_size 4");

        /* A newer host's struct with a field this plugin does not know. */
        struct {
                struct loopsnap_host h;
                uint64_t newer;
        } big = {{.struct_size = sizeof(big), .abi_major = LOOPSNAP_ABI_MAJOR}, 1};
        e = err_new();
        EXPECT("unknown field", entry(&big.h, &t, &e), &e, E2BIG, LOOPSNAP_ERR_INVALID_ARGUMENT,
               "does not know");
        /* An absurd size is refused before the tail is read (a sanitizer
         * build would catch the over-read). */
        e = err_new();
        struct loopsnap_host huge = {.struct_size = 1u << 20, .abi_major = LOOPSNAP_ABI_MAJOR};
        EXPECT("huge host", entry(&huge, &t, &e), &e, E2BIG, LOOPSNAP_ERR_INVALID_ARGUMENT,
               "larger than");
        /* ... which is fine when zero. */
        big.newer = 0;
        OK(entry(&big.h, &t, &e), &e);

        /* An error struct too small to say anything: refused, untouched. */
        struct loopsnap_error tiny = {.struct_size = 8};
        CHECK(entry(&h2, &t, &tiny) == -EINVAL && tiny.kind == 0 && tiny.message[0] == 0,
              "a too-small error struct was written to");

        struct loopsnap_host host = {.struct_size = sizeof(host),
                                     .abi_major = LOOPSNAP_ABI_MAJOR,
                                     .abi_minor = LOOPSNAP_ABI_MINOR};
        e = err_new();
        OK(entry(&host, &ops, &e), &e);
        CHECK(ops && ops->abi_major == LOOPSNAP_ABI_MAJOR, "abi_major");
        CHECK(LOOPSNAP_HAS_FIELD(ops, string_free), "table of %u bytes", ops->struct_size);
        CHECK(ops->version && *ops->version, "version");
        return true;
}

/* ---- root -------------------------------------------------------------------------- */

static bool step_open(struct loopsnap_root **ret)
{
        struct loopsnap_error e = err_new();
        struct loopsnap_root *r = NULL;

        struct loopsnap_root_opts o = {.struct_size = 8, .path = root_path};
        EXPECT("small opts", ops->root_open(&o, &r, &e), &e, EINVAL, LOOPSNAP_ERR_INVALID_ARGUMENT,
               "root options");
        CHECK(r == NULL, "ret written on failure");
        e = err_new();
        o = (struct loopsnap_root_opts){
                .struct_size = sizeof(o), .path = root_path, .layout = "tower"};
        EXPECT("bad layout", ops->root_open(&o, &r, &e), &e, EINVAL, LOOPSNAP_ERR_INVALID_ARGUMENT,
               "tower");
        e = err_new();
        EXPECT("NULL opts", ops->root_open(NULL, &r, &e), &e, EINVAL, LOOPSNAP_ERR_INVALID_ARGUMENT,
               "NULL");

        o = (struct loopsnap_root_opts){
                .struct_size = sizeof(o),
                .path = root_path,
                .flags = LOOPSNAP_ROOT_WRITABLE_POOL | LOOPSNAP_ROOT_NO_WRITABLE_POOL,
        };
        EXPECT("pool and no pool", ops->root_open(&o, &r, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, "LOOPSNAP_ROOT_NO_WRITABLE_POOL");
        e = err_new();

        /* Without the writable pool (on by default, step_pool): the
         * devices below are the ones each mount attaches, with its tags. */
        o = (struct loopsnap_root_opts){
                .struct_size = sizeof(o),
                .flags = LOOPSNAP_ROOT_NO_WRITABLE_POOL,
                .path = root_path,
                .writable_size = 64u << 20,
                .log = host_log,
                .log_data = &log_lines,
        };
        OK(ops->root_open(&o, ret, &e), &e);
        return true;
}

/* ---- the cycle ------------------------------------------------------------------------ */

static bool write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");
        if (!f)
                return false;
        bool ok = fputs(text, f) >= 0;
        return fclose(f) == 0 && ok;
}

static bool read_file(const char *path, char *buf, size_t size)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return false;
        size_t n = fread(buf, 1, size - 1, f);
        buf[n] = '\0';
        (void)fclose(f); /* read only */
        return true;
}

static bool step_prepare_mount_commit(struct loopsnap_root *r)
{
        struct loopsnap_error e = err_new();
        struct loopsnap_mounts *m = NULL;
        const char *labels[] = {"l1", "v1", "containerd.io/snapshot.ref", "a-ref"};
        char buf[64];
        int rc;

        OK(ops->prepare(r, "a", NULL, labels, 2, &m, &e), &e);
        CHECK(m->struct_size >= sizeof(*m) && m->n >= 1 && m->json && m->json[0] == '[',
              "mounts of 'a': %u mounts, json %s", m->n, m->json ? m->json : "(null)");
        CHECK(m->mounts[0]->struct_size >= sizeof(struct loopsnap_mount) && m->mounts[0]->type &&
                      m->mounts[0]->source,
              "mounts[0]");
        CHECK(strstr(m->json, m->mounts[0]->type) != NULL, "json and records disagree");
        ops->mounts_free(m);
        m = NULL;

        /* Failure paths of prepare. */
        EXPECT("prepare a again", ops->prepare(r, "a", NULL, NULL, 0, NULL, &e), &e, EEXIST,
               LOOPSNAP_ERR_ALREADY_EXISTS, "'a'");
        e = err_new();
        EXPECT("missing parent", ops->prepare(r, "x", "nope", NULL, 0, NULL, &e), &e, ENOENT,
               LOOPSNAP_ERR_NOT_FOUND, "nope");
        e = err_new();
        EXPECT("empty key", ops->prepare(r, "", NULL, NULL, 0, NULL, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, NULL);
        e = err_new();
        EXPECT("NULL key", ops->prepare(r, NULL, NULL, NULL, 0, NULL, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, "key");
        e = err_new();
        const char *bad_labels[] = {"k", NULL};
        EXPECT("NULL label value", ops->prepare(r, "y", NULL, bad_labels, 1, NULL, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, "labels[0]");
        e = err_new();
        EXPECT("NULL handle", ops->prepare(NULL, "y", NULL, NULL, 0, NULL, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, "root");
        e = err_new();
        /* A label value that would inject a mount option is refused. */
        const char *inject[] = {"containerd.io/snapshot/uidmapping", "0:1:1,upperdir=/etc"};
        rc = ops->prepare(r, "y", NULL, inject, 1, NULL, &e);
        CHECK(rc == -EINVAL && e.kind == LOOPSNAP_ERR_INVALID_ARGUMENT,
              "uidmapping injection: %d %s", rc, e.message);

        /* Mount it, write, and commit only once unmounted. */
        e = err_new();
        OK(ops->mounts(r, "a", &m, &e), &e);
        struct loopsnap_mount_opts mo = {.struct_size = sizeof(mo), .loop_id = "abi-a"};
        e = err_new();
        rc = ops->mount_apply(r, m->json, mnt, &mo, &e);
        ops->mounts_free(m);
        m = NULL;
        CHECK(rc == 0, "mount_apply: %d %s", rc, e.message);
        char hello[300];
        snprintf(hello, sizeof(hello), "%s/hello", mnt);
        CHECK(write_file(hello, "hi\n"), "write %s: %m", hello);

        struct loopsnap_loops *l = NULL;
        OK(ops->loops_list(r, &l, &e), &e);
        bool tagged = false;
        for (uint32_t k = 0; k < l->n; k++)
                tagged |= strcmp(l->loops[k]->id, "abi-a") == 0 &&
                          strstr(l->loops[k]->backing_file, root_path) != NULL;
        ops->loops_free(l);
        CHECK(tagged, "no loop device tagged 'abi-a' of this root");

        e = err_new();
        EXPECT("commit while mounted", ops->commit(r, "base", "a", NULL, 0, &e), &e, EBUSY,
               LOOPSNAP_ERR_FAILED_PRECONDITION, "'a'");

        e = err_new();
        EXPECT("bad spec", ops->mount_apply(r, "{", mnt2, NULL, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, NULL);
        e = err_new();
        struct loopsnap_mount_opts small_mo = {.struct_size = 4};
        EXPECT("small mount opts", ops->mount_apply(r, "[]", mnt2, &small_mo, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, "mount options");

        e = err_new();
        rc = ops->unmount(r, mnt, 0, &e);
        CHECK(rc == 1, "unmount: %d %s", rc, e.message);
        e = err_new();
        EXPECT("unmount again", ops->unmount(NULL, mnt, 0, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, NULL);

        const char *commit_labels[] = {"role", "base"};
        e = err_new();
        OK(ops->commit(r, "base", "a", commit_labels, 1, &e), &e);
        CHECK(read_file(hello, buf, sizeof(buf)) == false, "hello visible after unmount");
        return true;
}

static bool step_stat_view(struct loopsnap_root *r)
{
        struct loopsnap_error e = err_new();
        struct loopsnap_info *i = NULL;
        struct loopsnap_mounts *m = NULL;
        char path[300], buf[64];
        int rc;

        EXPECT("stat a", ops->stat(r, "a", &i, &e), &e, ENOENT, LOOPSNAP_ERR_NOT_FOUND, "'a'");
        CHECK(i == NULL, "ret written on failure");
        e = err_new();
        OK(ops->stat(r, "base", &i, &e), &e);
        bool ok = i->kind == LOOPSNAP_KIND_COMMITTED && !i->parent && i->n_labels == 1 &&
                  !strcmp(i->labels[0], "role") && !strcmp(i->labels[1], "base") && i->size > 0 &&
                  i->inodes > 0 && i->id > 0;
        ops->info_free(i);
        CHECK(ok, "stat base: kind, labels (replaced at commit), size, inodes");

        e = err_new();
        EXPECT("mounts of committed", ops->mounts(r, "base", &m, &e), &e, EBUSY,
               LOOPSNAP_ERR_FAILED_PRECONDITION, "base");

        /* A view shows what was written before the commit. */
        e = err_new();
        OK(ops->view(r, "v", "base", NULL, 0, &m, &e), &e);
        e = err_new();
        rc = ops->mount_apply(r, m->json, mnt2, NULL, &e);
        CHECK(rc == 0, "mount_apply view: %d %s", rc, e.message);
        snprintf(path, sizeof(path), "%s/hello", mnt2);
        CHECK(read_file(path, buf, sizeof(buf)) && strcmp(buf, "hi\n") == 0,
              "the view does not show hello");
        snprintf(path, sizeof(path), "%s/new", mnt2);
        CHECK(!write_file(path, "x"), "the view is writable");
        e = err_new();
        rc = ops->unmount(r, mnt2, LOOPSNAP_UNMOUNT_ALL, &e);
        CHECK(rc >= 1, "unmount all: %d %s", rc, e.message);

        /* The same spec as a detached mount fd. */
        e = err_new();
        int fd = ops->mount_apply(r, m->json, NULL, NULL, &e);
        ops->mounts_free(m);
        CHECK(fd >= 0, "detached mount: %d %s", fd, e.message);
        int hf = openat(fd, "hello", O_RDONLY | O_CLOEXEC);
        ssize_t n = hf >= 0 ? read(hf, buf, sizeof(buf) - 1) : -1;
        if (hf >= 0)
                close(hf);
        close(fd);
        CHECK(n == 3 && memcmp(buf, "hi\n", 3) == 0, "hello through the detached mount");
        return true;
}

struct walk_seen {
        struct loopsnap_root *r;
        char names[8][32];
        int n;
        int stop_after; /* > 0: return 1 after that many */
        int fail_with;  /* < 0: return it */
        bool stat_ok;
};

static int walk_cb(void *data, const struct loopsnap_info *i)
{
        struct walk_seen *w = data;
        if (w->n < 8)
                snprintf(w->names[w->n], sizeof(w->names[0]), "%s", i->name);
        w->n++;
        /* Stat works inside a walk (the handle's mutex is recursive). */
        struct loopsnap_error e = err_new();
        struct loopsnap_info *s = NULL;
        w->stat_ok = ops->stat(w->r, i->name, &s, &e) == 0 && s->id == i->id;
        ops->info_free(s);
        if (w->fail_with)
                return w->fail_with;
        if (w->stop_after && w->n >= w->stop_after)
                return 1;
        return 0;
}

static bool step_walk_usage_update(struct loopsnap_root *r)
{
        struct loopsnap_error e = err_new();
        struct walk_seen w = {.r = r};

        OK(ops->prepare(r, "b", "base", NULL, 0, NULL, &e), &e);
        OK(ops->walk(r, NULL, 0, walk_cb, &w, &e), &e);
        CHECK(w.n == 3 && w.stat_ok, "walk all: %d snapshots", w.n);

        const char *active[] = {"kind==active"};
        w = (struct walk_seen){.r = r};
        OK(ops->walk(r, active, 1, walk_cb, &w, &e), &e);
        CHECK(w.n == 1 && strcmp(w.names[0], "b") == 0, "kind==active: %d", w.n);

        const char *either[] = {"labels.\"role\"==base", "name==v"};
        w = (struct walk_seen){.r = r};
        OK(ops->walk(r, either, 2, walk_cb, &w, &e), &e);
        CHECK(w.n == 2, "two ORed filters: %d", w.n);

        w = (struct walk_seen){.r = r, .stop_after = 1};
        OK(ops->walk(r, NULL, 0, walk_cb, &w, &e), &e);
        CHECK(w.n == 1, "a callback returning 1 stops the walk: %d", w.n);

        w = (struct walk_seen){.r = r, .fail_with = -EIO};
        EXPECT("callback error", ops->walk(r, NULL, 0, walk_cb, &w, &e), &e, EIO,
               LOOPSNAP_ERR_INTERNAL, "callback");
        /* Not an errno at all: still a clean EIO. */
        e = err_new();
        w = (struct walk_seen){.r = r, .fail_with = INT_MIN};
        EXPECT("callback INT_MIN", ops->walk(r, NULL, 0, walk_cb, &w, &e), &e, EIO,
               LOOPSNAP_ERR_INTERNAL, "callback");
        e = err_new();
        const char *bad[] = {"kind=="};
        EXPECT("bad filter", ops->walk(r, bad, 1, walk_cb, &w, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, NULL);

        /* usage: too small refused; a bigger (newer) struct keeps its tail. */
        e = err_new();
        struct loopsnap_usage u = {.struct_size = 8};
        EXPECT("small usage", ops->usage(r, "base", &u, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, "usage");
        struct {
                struct loopsnap_usage u;
                uint64_t newer;
        } ub = {{.struct_size = sizeof(ub)}, 0xabcdef};
        e = err_new();
        OK(ops->usage(r, "base", &ub.u, &e), &e);
        CHECK(ub.u.size > 0 && ub.u.inodes > 0 && ub.newer == 0xabcdef &&
                      ub.u.struct_size == sizeof(ub),
              "usage base: %llu bytes %llu inodes", (unsigned long long)ub.u.size,
              (unsigned long long)ub.u.inodes);
        e = err_new();
        u = (struct loopsnap_usage){.struct_size = sizeof(u)};
        EXPECT("usage nope", ops->usage(r, "nope", &u, &e), &e, ENOENT, LOOPSNAP_ERR_NOT_FOUND,
               "nope");

        /* update: labels only. */
        struct loopsnap_info *i = NULL;
        const char *set[] = {"k", "v", "j", "w"};
        const char *paths[] = {"labels.k"};
        e = err_new();
        OK(ops->update(r, "b", set, 2, paths, 1, &i, &e), &e);
        bool ok = i->n_labels == 1 && !strcmp(i->labels[0], "k") && !strcmp(i->labels[1], "v");
        ops->info_free(i);
        CHECK(ok, "update labels.k set k only");
        const char *kind_path[] = {"kind"};
        e = err_new();
        EXPECT("update kind", ops->update(r, "b", NULL, 0, kind_path, 1, NULL, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, "kind");
        return true;
}

/* ---- threads: one handle, many callers ------------------------------------------ */

struct worker {
        struct loopsnap_root *r;
        int n;
        int failed;
        char msg[LOOPSNAP_ERROR_MESSAGE_MAX + 64];
};

static void *worker_run(void *data)
{
        struct worker *w = data;
        for (int k = 0; k < 6 && !w->failed; k++) {
                struct loopsnap_error e = err_new();
                struct loopsnap_info *i = NULL;
                char key[32];
                snprintf(key, sizeof(key), "t%d-%d", w->n, k);
                if (ops->prepare(w->r, key, "base", NULL, 0, NULL, &e) < 0 ||
                    ops->stat(w->r, key, &i, &e) < 0 || ops->remove(w->r, key, &e) < 0) {
                        w->failed = 1;
                        snprintf(w->msg, sizeof(w->msg), "%s: %s", key, e.message);
                }
                ops->info_free(i);
        }
        return NULL;
}

static bool step_threads(struct loopsnap_root *r)
{
        struct worker w[4];
        pthread_t t[4];

        for (int k = 0; k < 4; k++) {
                w[k] = (struct worker){.r = r, .n = k};
                CHECK(pthread_create(&t[k], NULL, worker_run, &w[k]) == 0, "pthread_create");
        }
        for (int k = 0; k < 4; k++)
                pthread_join(t[k], NULL);
        for (int k = 0; k < 4; k++)
                CHECK(!w[k].failed, "worker %d: %s", k, w[k].msg);
        return true;
}

/* ---- layers, fsck, remove, features ---------------------------------------------- */

static bool step_layers(struct loopsnap_root *r)
{
        struct loopsnap_error e = err_new();
        char *chain = NULL;

        struct loopsnap_apply_opts ao = {.struct_size = sizeof(ao), .tar_path = "/nonexistent.tar"};
        EXPECT("apply_layer", ops->apply_layer(r, "b", &ao, &e), &e, ENOENT, LOOPSNAP_ERR_NOT_FOUND,
               "/nonexistent.tar");
        e = err_new();
        ao.struct_size = 4;
        EXPECT("small apply opts", ops->apply_layer(r, "b", &ao, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, "apply options");
        struct loopsnap_import_opts io = {.struct_size = sizeof(io), .layout_dir = "/nonexistent"};
        e = err_new();
        EXPECT("import_oci", ops->import_oci(r, &io, &chain, &e), &e, ENOENT,
               LOOPSNAP_ERR_NOT_FOUND, "/nonexistent");
        CHECK(chain == NULL, "chain id written on failure");
        return true;
}

static void count_line(void *data, const char *line)
{
        (*(unsigned *)data)++;
}

static bool step_fsck(struct loopsnap_root *r)
{
        struct loopsnap_error e = err_new();
        struct loopsnap_fsck_report rep = {.struct_size = sizeof(rep)};
        unsigned lines = 0;
        char junk[300];

        OK(ops->fsck(r, NULL, &rep, &e), &e);
        CHECK(rep.problems == 0, "a clean root has %u problems", rep.problems);

        /* A crash leftover: found, reported, repaired. */
        snprintf(junk, sizeof(junk), "%s/tmp/new-abi-host-junk", root_path);
        CHECK(mkdir(junk, 0700) == 0, "mkdir %s: %m", junk);
        struct loopsnap_fsck_opts o = {
                .struct_size = sizeof(o), .report = count_line, .report_data = &lines};
        OK(ops->fsck(r, &o, &rep, &e), &e);
        CHECK(rep.problems == 1 && rep.tmp_leftovers == 1 && rep.fixed == 0 && lines == 1,
              "fsck: %u problems, %u tmp, %u lines", rep.problems, rep.tmp_leftovers, lines);
        o.flags = LOOPSNAP_FSCK_REPAIR;
        OK(ops->fsck(r, &o, &rep, &e), &e);
        CHECK(rep.fixed >= 1 && access(junk, F_OK) != 0, "fsck --repair left %s", junk);
        OK(ops->fsck(r, NULL, &rep, &e), &e);
        CHECK(rep.problems == 0, "%u problems after repair", rep.problems);

        struct loopsnap_fsck_report small = {.struct_size = 12};
        EXPECT("small report", ops->fsck(r, NULL, &small, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, "fsck report");
        e = err_new();
        o.flags = 0x80;
        EXPECT("unknown fsck flag", ops->fsck(r, &o, NULL, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, "flags");

        e = err_new();
        int n = ops->cleanup(r, &e);
        CHECK(n == 0, "cleanup of a clean root: %d %s", n, e.message);
        return true;
}

static bool step_remove(struct loopsnap_root *r)
{
        struct loopsnap_error e = err_new();

        EXPECT("remove parent", ops->remove(r, "base", &e), &e, EBUSY,
               LOOPSNAP_ERR_FAILED_PRECONDITION, "base");
        e = err_new();
        EXPECT("remove nope", ops->remove(r, "nope", &e), &e, ENOENT, LOOPSNAP_ERR_NOT_FOUND,
               "nope");
        e = err_new();
        OK(ops->remove(r, "b", &e), &e);
        OK(ops->remove(r, "v", &e), &e);
        OK(ops->remove(r, "base", &e), &e);
        struct walk_seen w = {.r = r};
        OK(ops->walk(r, NULL, 0, walk_cb, &w, &e), &e);
        CHECK(w.n == 0, "%d snapshots left", w.n);
        return true;
}

static bool step_features(struct loopsnap_root *r)
{
        struct loopsnap_error e = err_new();
        struct loopsnap_features *f = NULL;

        OK(ops->features(r, 0, &f, &e), &e);
        bool ok = f->struct_size >= sizeof(*f) && !strcmp(f->version, ops->version) &&
                  f->overlay_api && f->overlay_api_used && f->mkfs_ext4;
        ops->features_free(f);
        CHECK(ok, "features");
        e = err_new();
        EXPECT("unknown features flag", ops->features(NULL, 0x40, &f, &e), &e, EINVAL,
               LOOPSNAP_ERR_INVALID_ARGUMENT, "flags");
        return true;
}

/* No loop device of this root may be left (autoclear frees them as the
 * mounts go; give the kernel a moment). */
static bool step_no_loops(struct loopsnap_root *r)
{
        struct loopsnap_error e = err_new();
        uint32_t n = 0;

        for (int k = 0; k < 50; k++) {
                struct loopsnap_loops *l = NULL;
                OK(ops->loops_list(r, &l, &e), &e);
                n = l->n;
                for (uint32_t j = 0; j < l->n && k == 49; j++)
                        fprintf(stderr, "left: %s %s %s\n", l->loops[j]->path, l->loops[j]->tag,
                                l->loops[j]->backing_file);
                ops->loops_free(l);
                if (n == 0)
                        break;
                usleep(100 * 1000);
        }
        CHECK(n == 0, "%u loop devices of this root left", n);
        return true;
}

/* Entries of directory `path` (0 when it cannot be read). */
static int dir_entries(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;
        int n = 0;
        while (d && (de = readdir(d)))
                n += de->d_name[0] != '.';
        if (d)
                closedir(d);
        return n;
}

/* A root with the defaults: the writable pool keeps a removed active's image
 * mounted as a spare; cleanup deletes it and its device. */
static bool step_pool(void)
{
        struct loopsnap_error e = err_new();
        struct loopsnap_root *r = NULL;
        struct loopsnap_mounts *m = NULL;
        char path[PATH_MAX], pool[PATH_MAX + 8];

        snprintf(path, sizeof(path), "%s/pooled", dir);
        snprintf(pool, sizeof(pool), "%s/pool", path);
        struct loopsnap_root_opts o = {
                .struct_size = sizeof(o), .path = path, .writable_size = 64u << 20};
        OK(ops->root_open(&o, &r, &e), &e);
        bool ok = ops->prepare(r, "p", NULL, NULL, 0, NULL, &e) >= 0 &&
                  ops->mounts(r, "p", &m, &e) >= 0 &&
                  ops->mount_apply(r, m->json, mnt2, NULL, &e) >= 0;
        if (m)
                ops->mounts_free(m);
        CHECK(ok, "prepare and mount on a default root: %s", e.message);
        e = err_new();
        OK(ops->unmount(r, mnt2, LOOPSNAP_UNMOUNT_ALL, &e), &e);
        OK(ops->remove(r, "p", &e), &e);
        CHECK(dir_entries(pool) == 1, "%d spares in %s after the remove, want 1", dir_entries(pool),
              pool);
        struct loopsnap_loops *l = NULL;
        OK(ops->loops_list(r, &l, &e), &e);
        uint32_t spare = 0;
        for (uint32_t k = 0; k < l->n; k++)
                spare += strstr(l->loops[k]->backing_file, pool) != NULL;
        ops->loops_free(l);
        CHECK(spare == 1, "%u devices on the spare, want 1", spare);
        /* Spares are the pool's, not crash leftovers: not in the count. */
        int n = ops->cleanup(r, &e);
        CHECK(n >= 0, "cleanup of the pool: %d %s", n, e.message);
        CHECK(dir_entries(pool) == 0, "spares left after cleanup");
        bool closed = step_no_loops(r);
        ops->root_close(r);
        return closed;
}

/* ---- setup and cleanup ---------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        if (flag == FTW_DP)
                return rmdir(path) < 0 ? -1 : 0;
        return unlink(path) < 0 ? -1 : 0;
}

static bool have_tool(const char *name)
{
        static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
        char p[256];
        for (size_t k = 0; k < sizeof(dirs) / sizeof(dirs[0]); k++) {
                snprintf(p, sizeof(p), "%s/%s", dirs[k], name);
                if (access(p, X_OK) == 0)
                        return true;
        }
        return false;
}

int main(int argc, char **argv)
{
        const char *lib = argc > 1 ? argv[1] : ABI_HOST_PLUGIN;
        struct loopsnap_root *r = NULL;
        loopsnap_plugin_v1_fn entry;
        void *dl;

        if (geteuid() != 0 || access("/dev/loop-control", R_OK | W_OK) != 0) {
                printf("SKIP: needs root and /dev/loop-control\n");
                return 77;
        }
        if (!have_tool("mkfs.ext4")) {
                printf("SKIP: mkfs.ext4 is not installed\n");
                return 77;
        }
        /* Mounts of this process vanish with it, whatever happens. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
                printf("SKIP: no private mount namespace: %m\n");
                return 77;
        }

        dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
                fprintf(stderr, "FAIL: dlopen %s: %s\n", lib, dlerror());
                return 1;
        }
        *(void **)&entry = dlsym(dl, LOOPSNAP_ENTRY_SYMBOL);
        if (!entry) {
                fprintf(stderr, "FAIL: dlsym %s: %s\n", LOOPSNAP_ENTRY_SYMBOL, dlerror());
                dlclose(dl);
                return 1;
        }
        if (!mkdtemp(dir)) {
                fprintf(stderr, "FAIL: mkdtemp: %m\n");
                dlclose(dl);
                return 1;
        }
        snprintf(root_path, sizeof(root_path), "%s/root", dir);
        snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
        snprintf(mnt2, sizeof(mnt2), "%s/mnt2", dir);
        if (mkdir(mnt, 0755) < 0 || mkdir(mnt2, 0755) < 0) {
                fprintf(stderr, "FAIL: mkdir: %m\n");
                failures++;
        }

        if (!failures && step_entry(entry) && step_open(&r) && step_prepare_mount_commit(r) &&
            step_stat_view(r) && step_walk_usage_update(r) && step_threads(r) && step_layers(r) &&
            step_fsck(r) && step_remove(r) && step_features(r) && step_no_loops(r))
                step_pool();
        if (r && log_lines == 0) {
                fprintf(stderr, "FAIL: the log callback was never called\n");
                failures++;
        }

        /* Cleanup, also after a failure: unmount, close, remove. */
        if (ops) {
                struct loopsnap_error e = err_new();
                (void)ops->unmount(NULL, mnt, LOOPSNAP_UNMOUNT_ALL, &e);
                (void)ops->unmount(NULL, mnt2, LOOPSNAP_UNMOUNT_ALL, &e);
                ops->root_close(r);
                ops->root_close(NULL);
        }
        /* FTW_MOUNT: never descend into something still mounted. */
        if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 || access(dir, F_OK) == 0) {
                fprintf(stderr, "FAIL: could not remove %s: %m\n", dir);
                failures++;
        }
        dlclose(dl);
        printf("%s: %d checks, %d failed\n", failures ? "FAIL" : "PASS", checks, failures);
        return failures ? 1 : 0;
}
