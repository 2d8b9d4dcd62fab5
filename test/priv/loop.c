/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Privileged tests of loop/ on the real kernel: attach read-only and
 * read-write, data through the device, autoclear, shared read-only devices,
 * tags and listing, offset/size limit/block size, direct I/O and its
 * fallback, node creation in a /dev that is not devtmpfs, detach that never
 * yanks a busy device, every error case, and 16 processes x 50 cycles.
 *
 * CTest runs this binary twice: as is, and with LOOPSNAP_LOOP_CONFIGURE=0 so
 * that the LOOP_SET_FD + LOOP_SET_STATUS64 fallback passes the same tests.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include "test/priv/priv.h"

TestSuite(loop, .init = priv_setup, .fini = priv_teardown, .timeout = 300);

#define MiB (1024u * 1024u)

static struct loop_device *attach_ok(const char *path, struct loop_attach_opts o)
{
        struct util_err err = {0};
        struct loop_device *d = NULL;
        int r = loop_attach_path(path, &o, &d, &err);
        cr_assert_eq(r, 0, "attach %s: %s", path, err.msg);
        cr_assert_not_null(d);
        return priv_track(d);
}

static void fill_pattern(char *buf, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                buf[i] = (char)((i * 31 + seed) & 0xff);
}

static void release(struct loop_device *d)
{
        loop_device_free(priv_untrack(d));
}

Test(loop, configure_mode_follows_environment)
{
        const char *img = priv_image("a.img", 8 * MiB);
        struct loop_device *d = attach_ok(img, priv_opts(LOOP_ATTACH_READ_ONLY, "1"));
        const char *env = getenv("LOOPSNAP_LOOP_CONFIGURE");
        int want = env && !strcmp(env, "0") ? 0 : 1;

        cr_assert_eq(loop_feature_configure(), want, "attach used %s",
                     loop_feature_configure() ? "LOOP_CONFIGURE" : "the LOOP_SET_FD fallback");
        release(d);
}

Test(loop, rw_attach_writes_reach_the_file)
{
        const char *img = priv_image("rw.img", 8 * MiB);
        char buf[4096], back[4096];
        struct loop_device *d = attach_ok(img, priv_opts(0, "rw"));
        struct loop_status st;
        struct util_err err = {0};

        cr_assert_eq(loop_device_query(d, &st, &err), 0, "%s", err.msg);
        cr_assert_not(st.read_only);
        cr_assert(st.autoclear, "autoclear is the default");

        fill_pattern(buf, sizeof(buf), 7);
        cr_assert_eq(pwrite(loop_device_get_fd(d), buf, sizeof(buf), 4096), (ssize_t)sizeof(buf),
                     "write through %s: %m", loop_device_get_path(d));
        cr_assert_eq(fsync(loop_device_get_fd(d)), 0, "fsync: %m");
        cr_assert_eq(loop_device_detach(priv_untrack(d), &err), LOOP_DETACHED, "%s", err.msg);

        int fd = open(img, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_eq(pread(fd, back, sizeof(back), 4096), (ssize_t)sizeof(back));
        close(fd);
        cr_assert_arr_eq(buf, back, sizeof(buf), "the data written to the device is in the file");
}

Test(loop, ro_device_refuses_writes)
{
        const char *img = priv_image("ro.img", 8 * MiB);
        char buf[4096] = {0x5a}, back[4096];
        struct loop_device *d = attach_ok(img, priv_opts(LOOP_ATTACH_READ_ONLY, "ro"));
        struct loop_status st;
        struct util_err err = {0};
        int ro = 0;

        cr_assert_eq(loop_device_query(d, &st, &err), 0, "%s", err.msg);
        cr_assert(st.read_only);
        cr_assert_eq(ioctl(loop_device_get_fd(d), BLKROGET, &ro), 0);
        cr_assert_eq(ro, 1, "BLKROGET says read-only");

        /* A second opener asking for write access must not get data in. */
        int w = open(loop_device_get_path(d), O_RDWR | O_CLOEXEC);
        if (w >= 0) {
                cr_assert_lt(pwrite(w, buf, sizeof(buf), 0), 0, "write to a ro loop device");
                cr_assert(errno == EPERM || errno == EROFS || errno == EACCES, "errno %d", errno);
                close(w);
        }
        int fd = open(img, O_RDONLY | O_CLOEXEC);
        cr_assert_eq(pread(fd, back, sizeof(back), 0), (ssize_t)sizeof(back));
        close(fd);
        cr_assert_eq(back[0], 0, "the file is unchanged");
        release(d);
}

Test(loop, autoclear_frees_on_close)
{
        const char *img = priv_image("ac.img", 8 * MiB);
        struct loop_device *d = attach_ok(img, priv_opts(LOOP_ATTACH_READ_ONLY, "ac"));
        int nr = loop_device_get_nr(d);
        uint64_t seq = loop_device_get_diskseq(d);

        cr_assert(priv_is_bound(nr, seq));
        release(d);
        cr_assert_not(priv_is_bound(nr, seq), "loop%d still bound after the handle closed", nr);
}

Test(loop, no_autoclear_device_stays_until_detached_by_tag)
{
        const char *img = priv_image("nac.img", 8 * MiB);
        struct loop_device *d = attach_ok(img, priv_opts(LOOP_ATTACH_NO_AUTOCLEAR, "nac"));
        int nr = loop_device_get_nr(d);
        uint64_t seq = loop_device_get_diskseq(d);
        char path[32];
        struct util_err err = {0};

        snprintf(path, sizeof(path), "%s", loop_device_get_path(d));
        release(d);
        cr_assert(priv_is_bound(nr, seq), "without autoclear the device outlives the handle");

        cr_assert_eq(loop_detach_tagged(path, "someone-else", &err), -EPERM,
                     "another owner's device must be refused");
        cr_assert(strstr(err.msg, path), "message names the device: %s", err.msg);
        cr_assert(priv_is_bound(nr, seq));
        util_err_clear(&err);

        cr_assert_eq(loop_detach_tagged(path, priv_owner(), &err), LOOP_DETACHED, "%s", err.msg);
        cr_assert_not(priv_is_bound(nr, seq));
}

Test(loop, detach_tagged_refuses_foreign_device)
{
        const char *img = priv_image("foreign.img", 8 * MiB);
        struct util_err err = {0};
        char dev[32];

        /* Bind a device the way another tool would: untagged. */
        int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        cr_assert_geq(ctl, 0);
        int nr = -1, dfd = -1, ffd = open(img, O_RDONLY | O_CLOEXEC);
        for (int i = 0; i < 64 && dfd < 0; i++) {
                nr = ioctl(ctl, LOOP_CTL_GET_FREE);
                snprintf(dev, sizeof(dev), "/dev/loop%d", nr);
                int fd = open(dev, O_RDONLY | O_CLOEXEC);
                struct loop_config cfg = {.fd = (unsigned)ffd};
                cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
                strcpy((char *)cfg.info.lo_file_name, "some-other-tool");
                if (fd >= 0 && ioctl(fd, LOOP_CONFIGURE, &cfg) == 0)
                        dfd = fd;
                else if (fd >= 0)
                        close(fd);
        }
        close(ctl);
        close(ffd);
        cr_assert_geq(dfd, 0, "could not bind a foreign device");

        int r = loop_detach_tagged(dev, NULL, &err);
        cr_expect_eq(r, -EPERM, "a device loopsnap did not attach must be refused");
        cr_expect(strstr(err.msg, dev) && strstr(err.msg, "not attached by loopsnap"), "%s",
                  err.msg);
        cr_expect(priv_is_bound(nr, 0), "the foreign device is untouched");
        close(dfd); /* autoclear: our own test binding goes away */
        cr_assert_not(priv_is_bound(nr, 0));
}

Test(loop, shared_ro_attach_reuses_one_device)
{
        const char *img = priv_image("shared.img", 8 * MiB);
        unsigned f = LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_SHARED;
        struct loop_device *a = attach_ok(img, priv_opts(f, "s"));
        struct loop_device *b = attach_ok(img, priv_opts(f, "s"));
        struct loop_device *c = attach_ok(img, priv_opts(f, "s"));
        int nr = loop_device_get_nr(a);
        uint64_t seq = loop_device_get_diskseq(a);
        struct util_err err = {0};

        cr_assert_not(loop_device_is_shared_reuse(a));
        cr_assert_eq(loop_device_get_nr(b), nr, "second ro attach shares loop%d", nr);
        cr_assert_eq(loop_device_get_nr(c), nr, "third ro attach shares loop%d", nr);
        cr_assert(loop_device_is_shared_reuse(b) && loop_device_is_shared_reuse(c));
        cr_assert_eq(loop_device_get_diskseq(c), seq);

        /* The first user going away must not take the device from the others. */
        cr_assert_eq(loop_device_detach(priv_untrack(a), &err), LOOP_DEFERRED, "%s", err.msg);
        cr_assert(priv_is_bound(nr, seq));
        char buf[512];
        cr_assert_eq(pread(loop_device_get_fd(b), buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
        cr_assert_eq(loop_device_detach(priv_untrack(b), &err), LOOP_DEFERRED, "%s", err.msg);
        cr_assert_eq(loop_device_detach(priv_untrack(c), &err), LOOP_DETACHED, "%s", err.msg);
        cr_assert_not(priv_is_bound(nr, seq), "the last user frees the shared device");
}

/* The share registry names the device; a record that lies is only a hint. */
Test(loop, shared_record_is_only_a_hint)
{
        const char *share_dir = getenv("LOOPSNAP_LOOP_SHARE_DIR");
        if (share_dir && !*share_dir)
                cr_skip_test("the share registry is switched off (LOOPSNAP_LOOP_SHARE_DIR=)");
        const char *img = priv_image("rec.img", 8 * MiB);
        const char *reg = priv_path("%s/share", priv_tmpdir());
        cr_assert_eq(setenv("LOOPSNAP_LOOP_SHARE_DIR", reg, 1), 0);
        unsigned f = LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_SHARED;
        struct stat st;
        cr_assert_eq(stat(img, &st), 0);
        const char *rec = priv_path("%s/%llx-%llx-0-0-0", reg, (unsigned long long)st.st_dev,
                                    (unsigned long long)st.st_ino);
        char buf[64] = "";

        struct loop_device *a = attach_ok(img, priv_opts(f, "r"));
        FILE *fp = fopen(rec, "r");
        cr_assert(fp, "no record '%s': %m", rec);
        cr_assert(fgets(buf, sizeof(buf), fp));
        (void)fclose(fp); /* read only */
        cr_assert_eq(atoi(buf), loop_device_get_nr(a), "record '%s' says %s", rec, buf);
        struct loop_device *b = attach_ok(img, priv_opts(f, "r"));
        cr_assert_eq(loop_device_get_nr(b), loop_device_get_nr(a));

        /* A record naming a device that is bound to something else (or not
         * at all) is not trusted: the attach binds a device of its own. */
        const char *other = priv_image("rec2.img", 8 * MiB);
        struct loop_device *x = attach_ok(other, priv_opts(LOOP_ATTACH_READ_ONLY, "r"));
        fp = fopen(rec, "w");
        cr_assert(fp);
        fprintf(fp, "%d %llu\n", loop_device_get_nr(x),
                (unsigned long long)loop_device_get_diskseq(x));
        cr_assert_eq(fclose(fp), 0, "write the record: %m");
        struct loop_device *c = attach_ok(img, priv_opts(f, "r"));
        cr_assert_neq(loop_device_get_nr(c), loop_device_get_nr(x));
        cr_assert_not(loop_device_is_shared_reuse(c), "shared a device the record lied about");
        struct loop_status s = {0};
        struct util_err err = {0};
        cr_assert_eq(loop_device_query(c, &s, &err), 0, "%s", err.msg);
        cr_assert(s.backing_dev == st.st_dev && s.backing_ino == st.st_ino);
        release(a);
        release(b);
        release(c);
        release(x);
        /* The record now names a device autoclear freed: not trusted either.
         * Made longer than any real record, so the rewrite must cut it. */
        fp = fopen(rec, "a");
        cr_assert(fp);
        fprintf(fp, "%0200d\n", 7);
        cr_assert_eq(fclose(fp), 0, "%m");
        struct stat rec_before, rec_after;
        cr_assert_eq(stat(rec, &rec_before), 0, "%m");
        struct loop_device *d = attach_ok(img, priv_opts(f, "r"));
        cr_assert_not(loop_device_is_shared_reuse(d));
        cr_assert_eq(loop_device_query(d, &s, &err), 0, "%s", err.msg);
        cr_assert(s.backing_dev == st.st_dev && s.backing_ino == st.st_ino);
        /* The stale record is rewritten in place (no new file) and names
         * exactly the new device. */
        cr_assert_eq(stat(rec, &rec_after), 0, "%m");
        cr_assert_eq(rec_after.st_ino, rec_before.st_ino, "the record file was replaced");
        char whole[512], want[PATH_MAX + 64];
        fp = fopen(rec, "r");
        cr_assert(fp, "%m");
        size_t got = fread(whole, 1, sizeof(whole) - 1, fp);
        (void)fclose(fp); /* read only */
        whole[got] = 0;
        /* The image's path on a second line: the sweep keeps the record
         * while that file exists. */
        cr_assert_eq(img[0], '/', "'%s' is not absolute", img);
        snprintf(want, sizeof(want), "%d %llu\n%s\n", loop_device_get_nr(d),
                 (unsigned long long)loop_device_get_diskseq(d), img);
        cr_assert_str_eq(whole, want, "the rewritten record");
        release(d);
}

/* Records outlive their devices (autoclear frees a device without telling
 * anyone); the sweep removes those whose image is gone too, and temporary
 * files of dead writers, and keeps the record of a device still bound and
 * the record of an image that still exists (rewritten in place by its next
 * attach: no new file). */
Test(loop, share_sweep_removes_stale_records)
{
        const char *share_dir = getenv("LOOPSNAP_LOOP_SHARE_DIR");
        if (share_dir && !*share_dir)
                cr_skip_test("the share registry is switched off (LOOPSNAP_LOOP_SHARE_DIR=)");
        const char *reg = priv_path("%s/sweep", priv_tmpdir());
        cr_assert_eq(setenv("LOOPSNAP_LOOP_SHARE_DIR", reg, 1), 0);
        unsigned f = LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_SHARED;
        const char *live_img = priv_image("live.img", 8 * MiB);
        const char *gone_img = priv_image("gone.img", 8 * MiB);
        struct stat live, gone;
        cr_assert_eq(stat(live_img, &live), 0);
        cr_assert_eq(stat(gone_img, &gone), 0);
        const char *live_rec = priv_path("%s/%llx-%llx-0-0-0", reg, (unsigned long long)live.st_dev,
                                         (unsigned long long)live.st_ino);
        const char *gone_rec = priv_path("%s/%llx-%llx-0-0-0", reg, (unsigned long long)gone.st_dev,
                                         (unsigned long long)gone.st_ino);

        struct loop_device *a = attach_ok(live_img, priv_opts(f, "w"));
        release(attach_ok(gone_img, priv_opts(f, "w")));
        cr_assert_eq(access(gone_rec, F_OK), 0, "the freed device's record is still there");
        /* A writer that died between write and rename (pid 2^22+1 exceeds
         * pid_max's ceiling, so no such process exists). */
        const char *dead = priv_path("%s.new-4194305", live_rec);
        FILE *fp = fopen(dead, "w");
        cr_assert(fp, "%m");
        cr_assert_eq(fclose(fp), 0, "%m");
        const char *other = priv_path("%s/README", reg);
        fp = fopen(other, "w");
        cr_assert(fp, "%m");
        cr_assert_eq(fclose(fp), 0, "%m");

        size_t removed = 0;
        struct util_err err = {0};
        struct stat rec_before, rec_after;
        cr_assert_eq(stat(gone_rec, &rec_before), 0, "%m");
        cr_assert_eq(loop_share_sweep(&removed, &err), 0, "%s", err.msg);
        cr_assert_eq(removed, 1, "removed %zu, want only the dead writer's file", removed);
        cr_assert_eq(access(gone_rec, F_OK), 0, "the record of an existing image was removed");
        /* Its next attach writes over it, in place; a freed device's record
         * whose image is deleted goes. */
        release(attach_ok(gone_img, priv_opts(f, "w")));
        cr_assert_eq(stat(gone_rec, &rec_after), 0, "%m");
        cr_assert_eq(rec_after.st_ino, rec_before.st_ino, "the record file was replaced");
        cr_assert_eq(unlink(gone_img), 0, "%m");
        cr_assert_eq(loop_share_sweep(&removed, &err), 0, "%s", err.msg);
        cr_assert_eq(removed, 1, "removed %zu, want the stale record of the deleted image",
                     removed);
        cr_assert_neq(access(gone_rec, F_OK), 0, "stale record kept");
        cr_assert_neq(access(dead, F_OK), 0, "dead writer's file kept");
        cr_assert_eq(access(live_rec, F_OK), 0, "the bound device's record was removed");
        cr_assert_eq(access(other, F_OK), 0, "a file that is no record was removed");
        struct loop_device *b = attach_ok(live_img, priv_opts(f, "w"));
        cr_assert(loop_device_is_shared_reuse(b), "the kept record still finds the device");
        release(b);
        release(a);
        cr_assert_eq(loop_share_sweep(&removed, &err), 0, "%s", err.msg);
        cr_assert_eq(removed, 0, "a freed device's record went while its image exists");
        cr_assert_eq(unlink(live_img), 0, "%m");
        /* Not while an attach holds its lock (it is rewriting it). */
        int held = open(live_rec, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(held, 0, "%m");
        cr_assert_eq(flock(held, LOCK_EX), 0, "%m");
        cr_assert_eq(loop_share_sweep(&removed, &err), 0, "%s", err.msg);
        cr_assert_eq(removed, 0, "a record in use was removed");
        close(held);
        cr_assert_eq(loop_share_sweep(&removed, &err), 0, "%s", err.msg);
        cr_assert_eq(removed, 1, "once its device is freed and its image deleted, it goes too");
}

/* Shared attaches of one image started at once, from threads of one
 * process: one binds the device, the others join it (the image's record
 * lock, or the loop-control lock without a registry, makes lookup and bind
 * one step), while attaches of different images bind side by side. */
enum { RACERS = 8 };

struct racer {
        pthread_barrier_t *start;
        const char *img;
        struct loop_attach_opts opts;
        struct loop_device *d;
        int r;
        struct util_err err;
};

static void *racer_run(void *data)
{
        struct racer *x = data;
        (void)pthread_barrier_wait(x->start);
        x->r = loop_attach_path(x->img, &x->opts, &x->d, &x->err);
        return NULL;
}

static void race(struct racer *x, size_t n)
{
        pthread_barrier_t start;
        pthread_t th[RACERS];
        cr_assert_leq(n, RACERS);
        /* One attach first: the process then knows how to configure a
         * device, and binds the racers' without holding the allocation
         * lock (what this race is about). */
        release(attach_ok(priv_image("prime.img", 8 * MiB),
                          priv_opts(LOOP_ATTACH_READ_ONLY, "prime")));
        cr_assert_eq(pthread_barrier_init(&start, NULL, (unsigned)n), 0);
        for (size_t i = 0; i < n; i++) {
                x[i].start = &start;
                cr_assert_eq(pthread_create(&th[i], NULL, racer_run, &x[i]), 0);
        }
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(pthread_join(th[i], NULL), 0);
        (void)pthread_barrier_destroy(&start);
        for (size_t i = 0; i < n; i++)
                if (x[i].d)
                        priv_track(x[i].d);
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(x[i].r, 0, "attach %zu of '%s': %s", i, x[i].img, x[i].err.msg);
}

Test(loop, concurrent_shared_attaches_of_one_image_bind_one_device)
{
        const char *img = priv_image("race.img", 8 * MiB);
        struct racer x[RACERS] = {0};
        for (size_t i = 0; i < RACERS; i++) {
                x[i].img = img;
                x[i].opts = priv_opts(LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_SHARED, "race");
        }
        race(x, RACERS);
        int nr = loop_device_get_nr(x[0].d);
        size_t bound = 0;
        for (size_t i = 0; i < RACERS; i++) {
                cr_assert_eq(loop_device_get_nr(x[i].d), nr, "attach %zu bound loop%d, not loop%d",
                             i, loop_device_get_nr(x[i].d), nr);
                bound += !loop_device_is_shared_reuse(x[i].d);
        }
        cr_assert_eq(bound, 1, "%zu attaches bound a device of their own", bound);
        for (size_t i = 0; i < RACERS; i++)
                release(x[i].d);
}

Test(loop, concurrent_attaches_of_different_images_get_their_own_devices)
{
        struct racer x[RACERS] = {0};
        for (size_t i = 0; i < RACERS; i++) {
                char name[32];
                snprintf(name, sizeof(name), "many%zu.img", i);
                x[i].img = priv_image(name, 8 * MiB);
                x[i].opts = priv_opts(i % 2 ? LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_SHARED
                                            : LOOP_ATTACH_READ_ONLY,
                                      "many");
        }
        race(x, RACERS);
        for (size_t i = 0; i < RACERS; i++) {
                struct loop_status s = {0};
                struct util_err err = {0};
                struct stat st;
                cr_assert_eq(loop_device_query(x[i].d, &s, &err), 0, "%s", err.msg);
                cr_assert_eq(stat(x[i].img, &st), 0, "%m");
                cr_assert(s.backing_dev == st.st_dev && s.backing_ino == st.st_ino,
                          "loop%d is not bound to '%s'", s.nr, x[i].img);
                for (size_t j = 0; j < i; j++)
                        cr_assert_neq(loop_device_get_nr(x[j].d), s.nr, "loop%d twice", s.nr);
        }
        for (size_t i = 0; i < RACERS; i++)
                release(x[i].d);
}

/* A free device that someone holds flock'ed is being set up by them (or
 * probed by udev): an attach leaves it alone and takes another. */
Test(loop, a_locked_free_device_is_left_alone)
{
        const char *img = priv_image("locked.img", 8 * MiB);
        int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        cr_assert_geq(ctl, 0, "%m");
        int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
        cr_assert_geq(nr, 0, "%m");
        close(ctl);
        char dev[32];
        snprintf(dev, sizeof(dev), "/dev/loop%d", nr);
        int fd = open(dev, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0, "open '%s': %m", dev);
        cr_assert_eq(flock(fd, LOCK_EX), 0, "%m");

        struct loop_device *d = attach_ok(img, priv_opts(LOOP_ATTACH_READ_ONLY, "lk"));
        cr_assert_neq(loop_device_get_nr(d), nr, "bound the locked loop%d", nr);
        struct loop_info64 info;
        cr_assert_lt(ioctl(fd, LOOP_GET_STATUS64, &info), 0, "loop%d was bound", nr);
        cr_assert_eq(errno, ENXIO, "%m");
        close(fd);
        release(d);
}

Test(loop, shared_attach_differs_for_rw_offset_and_size)
{
        const char *img = priv_image("sh2.img", 8 * MiB);
        unsigned f = LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_SHARED;
        struct loop_device *base = attach_ok(img, priv_opts(f, "s"));
        struct loop_device *rw = attach_ok(img, priv_opts(0, "s"));
        struct loop_attach_opts o = priv_opts(f, "s");
        o.offset = 4096;
        struct loop_device *off = attach_ok(img, o);
        o = priv_opts(f, "s");
        o.size_limit = 4 * MiB;
        struct loop_device *lim = attach_ok(img, o);
        struct loop_device *again = attach_ok(img, priv_opts(f, "s"));
        struct loop_device *unshared = attach_ok(img, priv_opts(LOOP_ATTACH_READ_ONLY, "s"));

        int nr = loop_device_get_nr(base);
        cr_assert_neq(loop_device_get_nr(rw), nr, "a rw attach never shares");
        cr_assert_neq(loop_device_get_nr(off), nr, "another offset is another device");
        cr_assert_neq(loop_device_get_nr(lim), nr, "another size limit is another device");
        cr_assert_neq(loop_device_get_nr(unshared), nr, "a non-shared attach gets its own");
        cr_assert_eq(loop_device_get_nr(again), nr);

        /* And a different image with the same parameters is another device. */
        const char *img2 = priv_image("sh3.img", 8 * MiB);
        struct loop_device *other = attach_ok(img2, priv_opts(f, "s"));
        cr_assert_neq(loop_device_get_nr(other), nr);
}

Test(loop, tag_is_visible_and_listable)
{
        const char *img = priv_image("tag.img", 8 * MiB);
        struct loop_device *d = attach_ok(img, priv_opts(LOOP_ATTACH_READ_ONLY, "42"));
        struct loop_status *list = NULL;
        size_t n = 0;
        struct util_err err = {0};
        char prefix[64], want[80];
        struct stat st;

        snprintf(prefix, sizeof(prefix), LOOP_TAG_PREFIX "%s:", priv_owner());
        snprintf(want, sizeof(want), "%s42", prefix);
        cr_assert_eq(stat(img, &st), 0);

        struct loop_filter by_tag = {.tag_prefix = prefix};
        cr_assert_eq(loop_list(&by_tag, &list, &n, &err), 0, "%s", err.msg);
        cr_assert_eq(n, 1, "one device with prefix %s, got %zu", prefix, n);
        cr_assert_str_eq(list[0].tag, want);
        cr_assert_eq(list[0].nr, loop_device_get_nr(d));
        cr_assert_str_eq(list[0].backing_file, img);
        cr_assert_eq(list[0].backing_dev, st.st_dev);
        cr_assert_eq(list[0].backing_ino, st.st_ino);
        cr_assert(list[0].read_only && list[0].autoclear);
        cr_assert_eq(list[0].diskseq, loop_device_get_diskseq(d));
        free(list);

        struct loop_filter by_file = {.backing_path = img};
        cr_assert_eq(loop_list(&by_file, &list, &n, &err), 0, "%s", err.msg);
        cr_assert_eq(n, 1);
        cr_assert_eq(list[0].nr, loop_device_get_nr(d));
        free(list);

        struct loop_status q;
        cr_assert_eq(loop_status_query(loop_device_get_path(d), &q, &err), 0, "%s", err.msg);
        cr_assert_str_eq(q.tag, want);
        cr_assert_eq(q.devno, loop_device_get_devno(d));
        cr_assert_gt(q.diskseq, 0, "this kernel has diskseq");
        cr_assert_eq(q.block_size, 512);

        char owner[64], id[64];
        cr_assert_eq(loop_tag_parse(q.tag, owner, sizeof(owner), id, sizeof(id)), 0);
        cr_assert_str_eq(owner, priv_owner());
        cr_assert_str_eq(id, "42");

        cr_assert_eq(loop_status_query("/dev/null", &q, &err), -ENOTTY);
        cr_assert(strstr(err.msg, "/dev/null"), "%s", err.msg);
}

Test(loop, offset_size_limit_and_block_size_apply)
{
        const char *img = priv_image("opt.img", 16 * MiB);
        struct loop_attach_opts o = priv_opts(0, "opt");
        o.offset = 1 * MiB;
        o.size_limit = 2 * MiB;
        o.block_size = 4096;
        struct loop_device *d = attach_ok(img, o);
        uint64_t size = 0;
        int bs = 0;
        char buf[4096], back[4096];
        struct util_err err = {0};

        cr_assert_eq(ioctl(loop_device_get_fd(d), BLKGETSIZE64, &size), 0);
        cr_assert_eq(size, 2 * MiB);
        cr_assert_eq(ioctl(loop_device_get_fd(d), BLKSSZGET, &bs), 0);
        cr_assert_eq(bs, 4096);

        fill_pattern(buf, sizeof(buf), 3);
        cr_assert_eq(pwrite(loop_device_get_fd(d), buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
        cr_assert_eq(fsync(loop_device_get_fd(d)), 0);
        cr_assert_eq(loop_device_detach(priv_untrack(d), &err), LOOP_DETACHED, "%s", err.msg);
        int fd = open(img, O_RDONLY | O_CLOEXEC);
        cr_assert_eq(pread(fd, back, sizeof(back), 1 * MiB), (ssize_t)sizeof(back));
        close(fd);
        cr_assert_arr_eq(buf, back, sizeof(buf), "device offset 0 is file offset 1 MiB");
}

Test(loop, direct_io_is_on_by_default_and_can_be_turned_off)
{
        const char *img = priv_image("dio.img", 8 * MiB);
        struct loop_device *d = attach_ok(img, priv_opts(LOOP_ATTACH_READ_ONLY, "dio"));
        struct loop_status st;
        struct util_err err = {0};

        cr_assert_eq(loop_device_query(d, &st, &err), 0, "%s", err.msg);
        cr_assert(loop_device_is_direct_io(d) && st.direct_io,
                  "direct I/O on an ext4-backed image (/var/tmp)");
        struct loop_device *b =
                attach_ok(img, priv_opts(LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_NO_DIRECT_IO, "dio"));
        cr_assert_eq(loop_device_query(b, &st, &err), 0, "%s", err.msg);
        cr_assert_not(loop_device_is_direct_io(b) || st.direct_io);
}

Test(loop, direct_io_falls_back_when_the_backing_fs_refuses)
{
        priv_require_prog("mkfs.ext4");
        priv_private_mount_ns();
        /* A filesystem on a 4 KiB-sector device cannot do 512-byte direct I/O:
         * the kernel refuses direct I/O for a 512-byte-block loop on it. */
        const char *outer = priv_image("outer.img", 64 * MiB);
        struct loop_attach_opts o = priv_opts(0, "outer");
        o.block_size = 4096;
        struct loop_device *od = attach_ok(outer, o);
        const char *mkfs[] = {"mkfs.ext4", "-q", "-F", "-b", "4096", loop_device_get_path(od),
                              NULL};
        cr_assert_eq(priv_run(mkfs), 0, "mkfs.ext4 on %s", loop_device_get_path(od));
        char mnt[512], inner[600];
        snprintf(mnt, sizeof(mnt), "%s/mnt", priv_tmpdir());
        cr_assert_eq(mkdir(mnt, 0700), 0);
        cr_assert_eq(mount(loop_device_get_path(od), mnt, "ext4", 0, NULL), 0, "mount: %m");
        snprintf(inner, sizeof(inner), "%s/inner.img", mnt);
        int fd = open(inner, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, 8 * MiB), 0);
        close(fd);

        o = priv_opts(LOOP_ATTACH_READ_ONLY, "inner");
        o.block_size = 512;
        struct loop_device *in = attach_ok(inner, o);
        cr_assert_not(loop_device_is_direct_io(in), "direct I/O fell back to buffered");
        char buf[512];
        cr_assert_eq(pread(loop_device_get_fd(in), buf, sizeof(buf), 0), (ssize_t)sizeof(buf),
                     "buffered I/O works: %m");
        release(in);
        cr_assert_eq(umount(mnt), 0, "umount: %m");
}

Test(loop, attach_by_fd_including_o_path)
{
        const char *img = priv_image("fd.img", 8 * MiB);
        struct util_err err = {0};
        struct loop_device *d = NULL;
        struct loop_attach_opts o = priv_opts(LOOP_ATTACH_READ_ONLY, "fd");
        int fd = open(img, O_PATH | O_CLOEXEC);

        cr_assert_geq(fd, 0);
        cr_assert_eq(loop_attach_fd(fd, &o, &d, &err), 0, "%s", err.msg);
        priv_track(d);
        struct loop_status st;
        cr_assert_eq(loop_device_query(d, &st, &err), 0, "%s", err.msg);
        cr_assert_str_eq(st.backing_file, img);
        cr_assert(st.read_only);
        cr_assert_eq(fcntl(fd, F_GETFD), FD_CLOEXEC, "the caller's fd stays open");
        close(fd);

        /* rw through a read-only fd: reopened read-write by us. */
        fd = open(img, O_RDONLY | O_CLOEXEC);
        o = priv_opts(0, "fd");
        d = NULL;
        cr_assert_eq(loop_attach_fd(fd, &o, &d, &err), 0, "%s", err.msg);
        priv_track(d);
        cr_assert_eq(loop_device_query(d, &st, &err), 0, "%s", err.msg);
        cr_assert_not(st.read_only);
        close(fd);
}

Test(loop, device_fds_are_cloexec)
{
        const char *img = priv_image("ce.img", 8 * MiB);
        struct loop_device *d = attach_ok(img, priv_opts(0, "ce"));
        cr_assert(fcntl(loop_device_get_fd(d), F_GETFD) & FD_CLOEXEC);
}

/* ---- errors: each names the file (and device where there is one) ---- */

static void expect_attach_error(const char *path, struct loop_attach_opts o, int want,
                                const char *must_contain)
{
        struct util_err err = {0};
        struct loop_device *d = NULL;
        int r = loop_attach_path(path, &o, &d, &err);
        cr_assert_eq(r, want, "attach %s: got %d (%s), want %d", path, r, err.msg, want);
        cr_assert_null(d, "no handle on failure");
        cr_assert_eq(err.errnum, -want);
        cr_assert(strstr(err.msg, must_contain), "message '%s' names '%s'", err.msg, must_contain);
        cr_log_info("refused as expected: %s", err.msg);
}

Test(loop, error_missing_file)
{
        char path[512];
        snprintf(path, sizeof(path), "%s/does-not-exist.img", priv_tmpdir());
        expect_attach_error(path, priv_opts(LOOP_ATTACH_READ_ONLY, "e"), -ENOENT, path);
}

Test(loop, error_directory)
{
        const char *dir = priv_tmpdir();
        expect_attach_error(dir, priv_opts(LOOP_ATTACH_READ_ONLY, "e"), -EISDIR, dir);
        expect_attach_error(dir, priv_opts(0, "e"), -EISDIR, dir);
}

Test(loop, error_rw_attach_on_read_only_filesystem)
{
        priv_private_mount_ns();
        char mnt[512], img[600];
        snprintf(mnt, sizeof(mnt), "%s/rofs", priv_tmpdir());
        cr_assert_eq(mkdir(mnt, 0700), 0);
        cr_assert_eq(mount("tmpfs", mnt, "tmpfs", 0, "size=16m"), 0, "%m");
        snprintf(img, sizeof(img), "%s/x.img", mnt);
        int fd = open(img, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, 4 * MiB), 0);
        close(fd);
        cr_assert_eq(mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0, "%m");

        expect_attach_error(img, priv_opts(0, "e"), -EROFS, img);
        /* Read-only works there. */
        struct loop_device *d = attach_ok(img, priv_opts(LOOP_ATTACH_READ_ONLY, "e"));
        release(d);
        cr_assert_eq(umount(mnt), 0, "%m");
}

Test(loop, error_invalid_options)
{
        const char *img = priv_image("inv.img", 8 * MiB);
        expect_attach_error(img, priv_opts(LOOP_ATTACH_SHARED, "e"), -EINVAL, "read-only");
        struct loop_attach_opts o = priv_opts(LOOP_ATTACH_READ_ONLY, "e");
        o.block_size = 1000;
        expect_attach_error(img, o, -EINVAL, "block size 1000");
        o = priv_opts(LOOP_ATTACH_READ_ONLY, "a-very-long-id-that-does-not-fit-in-lo-file-name-xx");
        expect_attach_error(img, o, -ENAMETOOLONG, "longer than 63");
        o = priv_opts(LOOP_ATTACH_READ_ONLY, "bad id");
        expect_attach_error(img, o, -EINVAL, "bad id");
        o = priv_opts(LOOP_ATTACH_READ_ONLY, "e");
        o.offset = 8 * MiB;
        expect_attach_error(img, o, -EINVAL, img);
}

/* Replaces /dev with an empty tmpfs in this test's mount namespace. */
static void private_dev(bool with_control)
{
        priv_private_mount_ns();
        cr_assert_eq(mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, "mode=0755,size=1m"), 0, "%m");
        if (with_control)
                cr_assert_eq(mknod("/dev/loop-control", S_IFCHR | 0600, makedev(10, 237)), 0, "%m");
}

Test(loop, error_loop_control_missing)
{
        const char *img = priv_image("nc.img", 8 * MiB);
        private_dev(false);
        expect_attach_error(img, priv_opts(LOOP_ATTACH_READ_ONLY, "e"), -ENOENT,
                            "/dev/loop-control");
}

Test(loop, device_node_is_created_when_dev_is_not_devtmpfs)
{
        const char *img = priv_image("mk.img", 8 * MiB);
        struct stat st;
        private_dev(true);

        struct loop_device *d = attach_ok(img, priv_opts(0, "mk"));
        cr_assert_eq(stat(loop_device_get_path(d), &st), 0, "node %s created: %m",
                     loop_device_get_path(d));
        cr_assert(S_ISBLK(st.st_mode));
        cr_assert_eq(st.st_rdev, loop_device_get_devno(d));
        char buf[4096] = {1};
        cr_assert_eq(pwrite(loop_device_get_fd(d), buf, sizeof(buf), 0), (ssize_t)sizeof(buf));

        struct loop_device *s =
                attach_ok(img, priv_opts(LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_SHARED, "mk"));
        cr_assert_neq(loop_device_get_nr(s), loop_device_get_nr(d));
}

Test(loop, error_no_free_device_after_all_attempts, .timeout = 120)
{
        /* A /dev whose loop nodes all point at the wrong device (a stale
         * static /dev): every attempt is refused, none is configured, and the
         * error names the device after LOOP_ATTACH_MAX_ATTEMPTS attempts. */
        const char *img = priv_image("nf.img", 8 * MiB);
        private_dev(true);
        for (int i = 0; i < 1024; i++) {
                char p[32];
                snprintf(p, sizeof(p), "/dev/loop%d", i);
                cr_assert_eq(mknod(p, S_IFCHR | 0600, makedev(1, 3)), 0, "%m");
        }
        struct util_err err = {0};
        struct loop_device *d = NULL;
        struct loop_attach_opts o = priv_opts(LOOP_ATTACH_READ_ONLY, "nf");
        int r = loop_attach_path(img, &o, &d, &err);
        cr_assert_eq(r, -ENODEV, "%d: %s", r, err.msg);
        cr_assert_null(d);
        cr_assert(strstr(err.msg, "no free loop device after 64 attempts"), "%s", err.msg);
        cr_assert(strstr(err.msg, "/dev/loop") && strstr(err.msg, img), "%s", err.msg);
        cr_log_info("refused as expected: %s", err.msg);
}

Test(loop, detach_of_a_mounted_device_is_deferred_not_yanked)
{
        priv_require_prog("mkfs.ext4");
        priv_private_mount_ns();
        const char *img = priv_image("busy.img", 32 * MiB);
        const char *mkfs[] = {"mkfs.ext4", "-q", "-F", img, NULL};
        cr_assert_eq(priv_run(mkfs), 0);
        struct loop_device *d = attach_ok(img, priv_opts(0, "busy"));
        int nr = loop_device_get_nr(d);
        uint64_t seq = loop_device_get_diskseq(d);
        char mnt[512], file[600];
        struct util_err err = {0};

        snprintf(mnt, sizeof(mnt), "%s/m", priv_tmpdir());
        cr_assert_eq(mkdir(mnt, 0700), 0);
        cr_assert_eq(mount(loop_device_get_path(d), mnt, "ext4", 0, NULL), 0, "mount: %m");
        cr_assert_eq(loop_device_detach(priv_untrack(d), &err), LOOP_DEFERRED, "%s", err.msg);
        cr_assert(priv_is_bound(nr, seq), "a live mount keeps its device");

        snprintf(file, sizeof(file), "%s/still-writable", mnt);
        int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0, "the mount still works: %m");
        cr_assert_eq(write(fd, "x", 1), 1);
        close(fd);

        cr_assert_eq(umount(mnt), 0, "%m");
        cr_assert_not(priv_is_bound(nr, seq), "autoclear freed loop%d after the umount", nr);
}

/* ---- concurrency ---- */

static int cycle_worker(const char *img, const char *owner, int w, int cycles)
{
        int failures = 0;

        for (int i = 0; i < cycles; i++) {
                static const unsigned modes[] = {
                        0,
                        LOOP_ATTACH_READ_ONLY,
                        LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_SHARED,
                };
                struct loop_attach_opts o = {
                        .flags = modes[(w + i) % 3], .owner = owner, .id = "conc"};
                struct util_err err = {0};
                struct loop_device *d = NULL;
                if (loop_attach_path(img, &o, &d, &err) < 0) {
                        fprintf(stderr, "worker %d cycle %d: %s\n", w, i, err.msg);
                        failures++;
                        continue;
                }
                /* DEFERRED is a truthful answer too: a shared attach of the
                 * same image in another worker may hold the device. */
                int r = loop_device_detach(d, &err);
                if (r < 0) {
                        fprintf(stderr, "worker %d cycle %d: detach %d %s\n", w, i, r, err.msg);
                        failures++;
                }
        }
        return failures;
}

Test(loop, sixteen_processes_fifty_cycles_each, .timeout = 600)
{
        enum { WORKERS = 16, CYCLES = 50 };
        const char *img = priv_image("conc.img", 8 * MiB);
        pid_t pids[WORKERS];
        int failures = 0;

        for (int w = 0; w < WORKERS; w++) {
                /* No criterion call in the child: it reports even passing
                 * asserts over an IPC socket the child cannot use. */
                pids[w] = fork();
                if (pids[w] == 0)
                        _exit(cycle_worker(img, priv_owner(), w, CYCLES) ? 1 : 0);
                cr_assert_geq(pids[w], 0, "fork: %m");
        }
        for (int w = 0; w < WORKERS; w++) {
                int status;
                cr_assert_eq(waitpid(pids[w], &status, 0), pids[w]);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        failures++;
        }
        cr_assert_eq(failures, 0, "%d of %d workers had failures", failures, WORKERS);

        char prefix[64];
        snprintf(prefix, sizeof(prefix), LOOP_TAG_PREFIX "%s:", priv_owner());
        struct loop_filter f = {.tag_prefix = prefix};
        struct loop_status *list = NULL;
        size_t n = 0;
        struct util_err err = {0};
        cr_assert_eq(loop_list(&f, &list, &n, &err), 0, "%s", err.msg);
        free(list);
        cr_assert_eq(n, 0, "%zu devices left after the workers (autoclear)", n);
}
