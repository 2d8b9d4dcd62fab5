/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Applying a layer tarball (docs/apply.md): the parent's side. It opens the
 * tarball, forks the extraction sandbox (apply-sandbox.c), streams the file
 * to it over a socket while hashing what it sends (the blob digest comes
 * from the side the blob cannot subvert) and reporting progress, then reads
 * the child's report: success with the uncompressed digest, or the refusal
 * naming the entry.
 *
 * snap_apply wraps that for an active snapshot: a jail directory
 * tmp/new-<random>/ holding the snapshot's image mounted at layer/ and, for
 * the overlay layout with parents, the parent layers mounted read-only at
 * lower/ (a view spec of the same parents, from the layout); both go
 * through the mount engine; the root lock is held shared while the jail
 * exists (cleanup takes it exclusive and sweeps tmp/, unmounting what a
 * crash left in there).
 */
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "loop/loop.h"
#include "snapshot/apply-internal.h"
#include "snapshot/snapshot-internal.h"

#define FEED_CHUNK (128u << 10)

static int read_full(int fd, void *buf, size_t len, size_t *ret)
{
        char *b = buf;
        size_t got = 0;
        while (got < len) {
                ssize_t n = read(fd, b + got, len - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        *ret = got;
        return 0;
}

/* Sends all of buf; 1 when the child stopped reading (EPIPE/ECONNRESET). */
static int send_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
                        return 1;
                if (n < 0)
                        return -errno;
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

static int wait_child(pid_t pid, int *status)
{
        while (waitpid(pid, status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

static void freelocalep(locale_t *l)
{
        if (*l)
                freelocale(*l);
}

int snap_apply_run(const struct snap_apply_job *j, int tar_fd, snap_progress_fn progress,
                   void *progress_data, struct snap_apply_result *ret, struct util_err *err)
{
        _cleanup_(snap_sha256_freep) struct snap_sha256 *sha = NULL, *child_sha = NULL;
        _cleanup_(freelocalep) locale_t utf8 = (locale_t)0;
        _cleanup_close_ int jail_fd = -EBADF, data_fd = -EBADF, child_data = -EBADF;
        _cleanup_close_ int report_fd = -EBADF, child_report = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct snap_apply_report rep = {0};
        struct stat st;
        int sv[2], pv[2], rc;

        if (fstat(tar_fd, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", j->tar_path);
        if ((rc = snap_sha256_new(&sha)) < 0 || (rc = snap_sha256_new(&child_sha)) < 0)
                return util_err_set(err, rc, "sha256");
        /* The child's locale, made here: newlocale after fork could wait for
         * a lock another thread of ours held at the fork. C.UTF-8 is built
         * into glibc >= 2.35; without it, non-ASCII pax names are refused. */
        utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
        struct snap_apply_job job = *j;
        job.sha = child_sha;
        job.utf8 = utf8;
        if (!(buf = malloc(FEED_CHUNK)))
                return util_err_set(err, ENOMEM, "apply");
        jail_fd = open(j->jail, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (jail_fd < 0)
                return util_err_set(err, errno, "open '%s'", j->jail);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return util_err_set(err, errno, "socketpair");
        data_fd = sv[0];
        child_data = sv[1];
        if (pipe2(pv, O_CLOEXEC) < 0)
                return util_err_set(err, errno, "pipe");
        report_fd = pv[0];
        child_report = pv[1];

        /* The child must not see the parent's end of either channel, or it
         * would never read EOF (it closes every other fd on its own). */
        pid_t pid = fork();
        if (pid < 0)
                return util_err_set(err, errno, "fork the extraction sandbox");
        if (pid == 0)
                snap_apply_child(&job, jail_fd, child_data, child_report);
        util_closep(&child_data);
        child_data = -EBADF;
        util_closep(&child_report);
        child_report = -EBADF;

        /* Feed the whole file; hash exactly what was sent. */
        uint64_t sent = 0, total = (uint64_t)st.st_size;
        bool child_stopped = false;
        int feed_err = 0;
        if (lseek(tar_fd, 0, SEEK_SET) < 0)
                feed_err = -errno;
        while (feed_err == 0) {
                ssize_t n = read(tar_fd, buf, FEED_CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        feed_err = -errno;
                        break;
                }
                if (n == 0)
                        break;
                snap_sha256_update(sha, buf, (size_t)n);
                int r = send_all(data_fd, buf, (size_t)n);
                if (r < 0) {
                        feed_err = r;
                        break;
                }
                if (r > 0) {
                        child_stopped = true;
                        break;
                }
                sent += (uint64_t)n;
                if (progress)
                        progress(sent, total > sent ? total : sent, progress_data);
        }
        /* EOF for the child (or, after a read error, a truncated stream it
         * refuses; the read error is what is reported then). */
        util_closep(&data_fd);
        data_fd = -EBADF;

        size_t got = 0;
        int rr = read_full(report_fd, &rep, sizeof(rep), &got);
        int status = 0;
        int wr = wait_child(pid, &status);

        if (feed_err < 0)
                return util_err_set(err, feed_err, "read '%s'", j->tar_path);
        if (rr < 0 || got != sizeof(rep) || rep.magic != SNAP_APPLY_REPORT_MAGIC) {
                if (wr == 0 && WIFSIGNALED(status))
                        return util_err_setx(err, EIO,
                                             "the extraction sandbox was killed by signal %d (%s)",
                                             WTERMSIG(status), strsignal(WTERMSIG(status)));
                return util_err_setx(err, EIO,
                                     "the extraction sandbox ended without a report (status %d)",
                                     wr == 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        if (rep.errnum != 0) {
                rep.msg[sizeof(rep.msg) - 1] = '\0';
                return util_err_setx(err, rep.errnum > 0 ? rep.errnum : EIO, "%s", rep.msg);
        }
        if (child_stopped)
                return util_err_setx(err, EIO,
                                     "the extraction sandbox stopped reading at byte "
                                     "%llu of %llu",
                                     (unsigned long long)sent, (unsigned long long)total);
        /* wr < 0 (ECHILD: the host reaps children itself) leaves the report
         * as the word; a report of success from a child that then failed
         * is not trusted. */
        if (wr == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                return util_err_setx(err, EIO, "the extraction sandbox failed after its report");
        rep.diff_id[sizeof(rep.diff_id) - 1] = '\0';
        if (snap_digest_check(rep.diff_id) < 0)
                return util_err_setx(err, EIO, "the extraction sandbox reported no diff id");

        struct snap_apply_result res = {
                .size = sent, .uncompressed_size = rep.uncompressed_size, .entries = rep.entries};
        if ((rc = snap_sha256_final(sha, res.digest)) < 0)
                return util_err_set(err, rc, "sha256");
        memcpy(res.diff_id, rep.diff_id, sizeof(res.diff_id));
        if (ret)
                *ret = res;
        return 0;
}

int snap_apply_dir(const char *dir, enum snap_apply_mode mode, const char *tar_path,
                   snap_progress_fn progress, void *progress_data, struct snap_apply_result *ret,
                   struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;
        struct util_err scratch = {0};
        int rc;

        /* Errors are propagated by errno through calls whose return value
         * is only exact when they have somewhere to write the message. */
        if (!err)
                err = &scratch;
        if (mode != SNAP_APPLY_MERGED && mode != SNAP_APPLY_OVERLAY)
                return util_err_setx(err, EINVAL, "apply '%s': unknown mode %d", tar_path,
                                     (int)mode);
        if ((rc = util_open_regular(tar_path, O_RDONLY | O_NONBLOCK, &fd, err)) < 0) {
                util_err_prefix(err, "apply");
                return rc;
        }
        struct snap_apply_job j = {
                .jail = dir, .root = ".", .lower = NULL, .mode = mode, .tar_path = tar_path};
        rc = snap_apply_run(&j, fd, progress, progress_data, ret, err);
        if (rc < 0)
                util_err_prefix(err, "apply '%s'", tar_path);
        return rc < 0 ? rc : 0;
}

/* ---- onto an active snapshot -------------------------------------------- */

/* The jail: tmp/new-<random>/ with layer/ (the image) and lower/ (the
 * parents). Everything it made is undone by jail_free, in reverse. */
struct jail {
        char *dir, *layer, *lower;
        bool layer_mounted, lower_mounted;
};

static int jail_release(struct jail *j, struct util_err *err)
{
        int rc = 0;
        if (j->lower_mounted && mount_unmount_all(j->lower, err) < 0)
                rc = -EBUSY;
        else if (j->lower)
                (void)rmdir(j->lower);
        /* A failed unmount above leaves the directory; so does cleanup. */
        if (j->layer_mounted && mount_unmount_all(j->layer, rc < 0 ? NULL : err) < 0)
                rc = -EBUSY;
        else if (j->layer)
                (void)rmdir(j->layer);
        if (j->dir && rc == 0)
                (void)rmdir(j->dir);
        free(j->dir);
        free(j->layer);
        free(j->lower);
        *j = (struct jail){0};
        return rc;
}

/* Mounts the parents of `info` read-only at j->lower: the view spec of the
 * same parent chain, from metadata, as a container would see them. */
static int mount_lower(struct snap_root *r, const struct snap_info *info, struct jail *j,
                       struct util_err *err)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        struct snap_info v = *info; /* shallow: not freed */
        char tagid[40];
        int rc;

        v.kind = SNAP_KIND_VIEW;
        v.labels = NULL;
        v.n_labels = 0;
        if ((rc = snap_layout_spec(r, &v, &spec, err)) < 0)
                return rc;
        if (mkdir(j->lower, 0700) < 0)
                return util_err_set(err, errno, "create '%s'", j->lower);
        snprintf(tagid, sizeof(tagid), "apply-lower-%lld", (long long)info->id);
        if ((rc = mount_engine_apply(r->engine, spec, j->lower, tagid, NULL, err)) < 0) {
                util_err_prefix(err, "mount the parent layers");
                return rc;
        }
        j->lower_mounted = true;
        return 0;
}

static int mount_layer(struct snap_root *r, const struct snap_info *info, const char *img,
                       struct jail *j, struct util_err *err)
{
        _cleanup_(mount_spec_freep) struct mount_spec *spec = NULL;
        const char *opts[] = {"rw", "loop", snap_fs_option(r->writable_fs, true), NULL};
        char tagid[40];
        int rc;

        /* A directory upper (upper_dir roots): its snapshots/<id>/fs bound,
         * so the child sees the same layer/upper either way. */
        const char *bind_opts[] = {"rbind", "rw", NULL};
        if (mkdir(j->layer, 0700) < 0)
                return util_err_set(err, errno, "create '%s'", j->layer);
        if (mount_spec_new(&spec) < 0)
                return util_err_set(err, ENOMEM, "apply");
        if ((rc = r->upper_dir ? mount_spec_add(spec, "bind", img, NULL, bind_opts, err)
                               : mount_spec_add(spec, r->writable_fs, img, NULL, opts, err)) < 0)
                return rc;
        snprintf(tagid, sizeof(tagid), "apply-%lld", (long long)info->id);
        if ((rc = snap_mount_private(r, spec, j->layer, tagid, err)) < 0) {
                util_err_prefix(err, "mount '%s'", img);
                return rc;
        }
        j->layer_mounted = true;
        return 0;
}

/* Flushes what the child wrote: an error writing back is an error of the
 * apply (unmount alone would hide it). */
static int layer_sync(const struct jail *j, struct util_err *err)
{
        _cleanup_close_ int fd = open(j->layer, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || syncfs(fd) < 0)
                return util_err_set(err, errno, "sync '%s'", j->layer);
        return 0;
}

static int apply_locked(struct snap_root *r, const struct snap_info *info, const char *img,
                        int tar_fd, const char *tar_path, snap_progress_fn progress,
                        void *progress_data, struct snap_apply_result *ret, struct util_err *err)
{
        struct snap_apply_result res = {0};
        struct jail j = {0};
        bool overlay = r->layout == SNAP_LAYOUT_OVERLAY;
        int rc;

        j.dir = snap_path(r, "tmp/new-%08x%08x", util_random_u32(), util_random_u32());
        if (j.dir) {
                if (asprintf(&j.layer, "%s/layer", j.dir) < 0)
                        j.layer = NULL;
                if (asprintf(&j.lower, "%s/lower", j.dir) < 0)
                        j.lower = NULL;
        }
        if (!j.dir || !j.layer || !j.lower) {
                jail_release(&j, NULL);
                return util_err_set(err, ENOMEM, "apply");
        }
        if (mkdir(j.dir, 0700) < 0) {
                rc = util_err_set(err, errno, "create '%s'", j.dir);
                free(j.dir);
                j.dir = NULL;
                jail_release(&j, NULL);
                return rc;
        }
        rc = mount_layer(r, info, img, &j, err);
        if (rc >= 0 && overlay && info->parent_id > 0)
                rc = mount_lower(r, info, &j, err);
        if (rc >= 0) {
                util_fault_point("apply-while-mounted");
                struct snap_apply_job job = {
                        .jail = j.dir,
                        .root = overlay ? "layer/upper" : "layer",
                        .lower = j.lower_mounted ? "lower" : NULL,
                        .mode = overlay ? SNAP_APPLY_OVERLAY : SNAP_APPLY_MERGED,
                        .tar_path = tar_path,
                };
                rc = snap_apply_run(&job, tar_fd, progress, progress_data, &res, err);
        }
        if (rc >= 0 && j.layer_mounted)
                rc = layer_sync(&j, err);
        struct util_err rerr = {0};
        int rr = jail_release(&j, &rerr);
        if (rc >= 0 && rr < 0) {
                if (err)
                        *err = rerr;
                rc = rr;
        }
        /* Only now: a failed sync or unmount is a failed apply. */
        if (rc >= 0 && ret)
                *ret = res;
        return rc;
}

int snap_apply_key_fd(struct snap_root *r, const char *key, int tar_fd, const char *tar_path,
                      snap_progress_fn progress, void *progress_data, struct snap_apply_result *ret,
                      struct util_err *err)
{
        struct snap_info info = {0};
        _cleanup_free_ char *img = NULL;
        int rc;

        if ((rc = snap_store_get(r->store, key, &info, err)) < 0)
                goto out;
        if (info.kind != SNAP_KIND_ACTIVE) {
                rc = util_err_setx(err, EBUSY, "'%s' is %s; layers are applied to active snapshots",
                                   key, info.kind == SNAP_KIND_VIEW ? "a view" : "committed");
                goto out;
        }
        if (snap_info_label(&info, SNAP_LABEL_UIDMAPPING) ||
            snap_info_label(&info, SNAP_LABEL_GIDMAPPING)) {
                rc = util_err_setx(err, EOPNOTSUPP,
                                   "'%s' has id-mapping labels; layers are applied to unmapped "
                                   "snapshots",
                                   key);
                goto out;
        }
        img = snap_path(r, "snapshots/%lld/%s", (long long)info.id, r->upper_dir ? "fs" : "fs.img");
        if (!img) {
                rc = util_err_set(err, ENOMEM, "apply");
                goto out;
        }
        if (r->upper_dir) {
                rc = snap_dir_upper_check_free(img, key, err);
                if (rc >= 0)
                        goto locked;
                goto out;
        }
        /* Mounted elsewhere, a second read-write mount of the same image
         * would corrupt it: the same check as commit's. */
        if ((rc = snap_image_check_free(r, img, key, err)) < 0)
                goto out;
        if ((rc = snap_image_verify(img, r->writable_fs, err)) < 0)
                goto out;

locked:
        /* Shared: cleanup (exclusive) must not sweep the jail in tmp/. */
        if (flock(r->lock_fd, LOCK_SH) < 0) {
                rc = util_err_set(err, errno, "lock the root");
                goto out;
        }
        rc = apply_locked(r, &info, img, tar_fd, tar_path, progress, progress_data, ret, err);
        (void)flock(r->lock_fd, LOCK_UN);
out:
        snap_info_done(&info);
        return rc;
}

int snap_apply(struct snap_root *r, const char *key, const char *tar_path,
               snap_progress_fn progress, void *progress_data, struct snap_apply_result *ret,
               struct util_err *err)
{
        _cleanup_close_ int tar_fd = -EBADF;
        struct util_err scratch = {0};
        if (!err)
                err = &scratch; /* as in snap_apply_dir */
        /* O_NONBLOCK: a FIFO planted at the path must not hang the open
         * (util_open_regular refuses it right after). */
        int rc = util_open_regular(tar_path, O_RDONLY | O_NONBLOCK, &tar_fd, err);
        if (rc >= 0)
                rc = snap_apply_key_fd(r, key, tar_fd, tar_path, progress, progress_data, ret, err);
        if (rc < 0)
                util_err_prefix(err, "apply '%s' to '%s'", tar_path, key);
        return rc < 0 ? rc : 0;
}
