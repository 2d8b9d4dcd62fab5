/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Attaching a backing file to a loop device.
 *
 * One attempt, under the lock on /dev/loop-control (a shared attach first
 * locks its image's registry record, share.c): (shared lookup,)
 * LOOP_CTL_GET_FREE, claim the device (opened, flock'ed, checked unbound),
 * drop the lock, configure it in one LOOP_CONFIGURE ioctl (0.1-0.25
 * ms here) and read the result back. Attempts that lose a race (EBUSY:
 * another allocator, one that does not take our lock, bound it first;
 * ENXIO/ENODEV/ENOENT: the device vanished) are retried with a random,
 * growing delay, up to LOOP_ATTACH_MAX_ATTEMPTS times (STYLE R3).
 *
 * Where the kernel lacks LOOP_CONFIGURE, or ignored part of it, the device is
 * set up the old way: LOOP_SET_FD + LOOP_SET_STATUS64 (16 ms each here).
 */
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "loop/loop-internal.h"

/* -1 unknown, 0 no (or forced off), 1 yes. Shared by all threads of the
 * process; a race between two first probes is harmless, both store the same
 * answer. */
static _Atomic int configure_ok = -1;

static int configure_state(void)
{
        int v = atomic_load(&configure_ok);
        if (v == -1 && util_env_long("LOOPSNAP_LOOP_CONFIGURE", 1) == 0) {
                atomic_store(&configure_ok, 0);
                return 0;
        }
        return v;
}

int loop_feature_configure(void)
{
        return configure_state();
}

/*
 * The allocation lock: a process-local mutex, then flock on /dev/loop-control.
 * The mutex is not needed for correctness (flock alone serialises), but every
 * flock unlock wakes *all* waiters: 64 threads of one runtime attaching at
 * once would wake each other 64 x 63 / 2 times. Behind the mutex only one
 * thread per process waits on the flock and the mutex wakes one at a time.
 * Lock order: registry record (shared) -> mutex -> /dev/loop-control ->
 * /dev/loopN (loop.h).
 */
static pthread_mutex_t alloc_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t alloc_once = PTHREAD_ONCE_INIT;

static void alloc_mutex_reset_in_child(void)
{
        /* A fork while another thread held it must not leave the child's
         * copy locked forever. */
        pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
        alloc_mutex = fresh;
}

static void alloc_mutex_register(void)
{
        (void)pthread_atfork(NULL, NULL, alloc_mutex_reset_in_child);
}

struct alloc_lock {
        int ctl_fd;
        bool held;
};

static int alloc_lock_take(struct alloc_lock *l, struct util_err *err)
{
        (void)pthread_once(&alloc_once, alloc_mutex_register);
        pthread_mutex_lock(&alloc_mutex);
        int r = loop_fd_lock(l->ctl_fd, LOCK_EX, LOOP_CONTROL_PATH, err);
        if (r < 0) {
                pthread_mutex_unlock(&alloc_mutex);
                return r;
        }
        l->held = true;
        return 0;
}

/* Idempotent: also called from inside an attempt before a long wait. */
static void alloc_lock_drop(struct alloc_lock *l)
{
        if (!l->held)
                return;
        (void)flock(l->ctl_fd, LOCK_UN);
        pthread_mutex_unlock(&alloc_mutex);
        l->held = false;
}

struct attach_req {
        const struct loop_attach_opts *opts;
        int backing_fd;
        struct stat st;
        const char *name; /* backing file, for messages */
        int rec_fd;       /* shared: the locked registry record, or -1 */
        char tag[LOOP_TAG_MAX + 1];
        bool read_only;
        bool autoclear;
        bool want_dio;
};

static bool error_is_transient(int r)
{
        /* ENXIO/ENODEV/ENOENT: the free device vanished (or its node is stale).
         * EBUSY: someone else bound it first. EAGAIN: the kernel asked us to. */
        return r == -EBUSY || r == -ENXIO || r == -ENODEV || r == -ENOENT || r == -EAGAIN;
}

int loop_attach_opts_check(const struct loop_attach_opts *opts, struct util_err *err)
{
        const unsigned known = LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_NO_AUTOCLEAR |
                               LOOP_ATTACH_NO_DIRECT_IO | LOOP_ATTACH_SHARED;
        char tag[LOOP_TAG_MAX + 1];

        if (!opts)
                return util_err_setx(err, EINVAL, "no attach options");
        if (opts->flags & ~known)
                return util_err_setx(err, EINVAL, "unknown attach flags 0x%x",
                                     opts->flags & ~known);
        if ((opts->flags & LOOP_ATTACH_SHARED) && !(opts->flags & LOOP_ATTACH_READ_ONLY))
                return util_err_setx(err, EINVAL, "a shared attach must be read-only");
        if ((opts->flags & LOOP_ATTACH_SHARED) && (opts->flags & LOOP_ATTACH_NO_AUTOCLEAR))
                return util_err_setx(err, EINVAL,
                                     "a shared attach must use autoclear (it is freed by its "
                                     "last user)");
        long page = sysconf(_SC_PAGESIZE);
        uint32_t bs = opts->block_size;
        if (bs != 0 && (bs < 512 || (long)bs > page || (bs & (bs - 1)) != 0))
                return util_err_setx(err, EINVAL,
                                     "block size %u is not a power of two from 512 to %ld", bs,
                                     page);
        int r = loop_tag_format(tag, sizeof(tag), opts->owner, opts->id);
        if (r == -ENAMETOOLONG)
                return util_err_setx(err, ENAMETOOLONG,
                                     "tag '" LOOP_TAG_PREFIX "%s:%s' is longer than %d bytes",
                                     opts->owner, opts->id, LOOP_TAG_MAX);
        if (r < 0)
                return util_err_setx(err, EINVAL,
                                     "invalid tag owner '%s' or id '%s' (owner: [A-Za-z0-9._-]+, "
                                     "id: [A-Za-z0-9._:-]+)",
                                     opts->owner ? opts->owner : "(null)",
                                     opts->id ? opts->id : "(null)");
        return 0;
}

/* Reads the device back and checks the kernel did what was asked.
 * Returns 0, -EUCLEAN when it did not (message says what), or -errno. */
static int verify_config(int fd, const char *dev, const struct attach_req *q, bool *ret_dio,
                         struct util_err *err)
{
        struct loop_info64 info;

        if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0)
                return util_err_set(err, errno, "%s: LOOP_GET_STATUS64", dev);

        const char *what = NULL;
        if (info.lo_offset != q->opts->offset)
                what = "offset";
        else if (info.lo_sizelimit != q->opts->size_limit)
                what = "size limit";
        else if (!!(info.lo_flags & LO_FLAGS_READ_ONLY) != q->read_only)
                what = "read-only flag";
        else if (!!(info.lo_flags & LO_FLAGS_AUTOCLEAR) != q->autoclear)
                what = "autoclear flag";
        else if (strncmp((const char *)info.lo_file_name, q->tag, sizeof(info.lo_file_name)) != 0)
                what = "tag (lo_file_name)";
        if (!what && q->opts->block_size) {
                int bs = 0;
                if (ioctl(fd, BLKSSZGET, &bs) < 0)
                        return util_err_set(err, errno, "%s: BLKSSZGET", dev);
                if ((uint32_t)bs != q->opts->block_size)
                        what = "block size";
        }
        if (what)
                return util_err_setx(err, EUCLEAN, "%s: the kernel did not apply the %s", dev,
                                     what);
        *ret_dio = (info.lo_flags & LO_FLAGS_DIRECT_IO) != 0;
        return 0;
}

static void fill_info(struct loop_info64 *info, const struct attach_req *q, bool dio)
{
        memset(info, 0, sizeof(*info));
        info->lo_offset = q->opts->offset;
        info->lo_sizelimit = q->opts->size_limit;
        info->lo_flags = (q->read_only ? LO_FLAGS_READ_ONLY : 0) |
                         (q->autoclear ? LO_FLAGS_AUTOCLEAR : 0) | (dio ? LO_FLAGS_DIRECT_IO : 0);
        memcpy(info->lo_file_name, q->tag, strlen(q->tag) + 1);
}

/*
 * LOOP_CONFIGURE. Returns 0 (bound, verified), 1 when the kernel does not
 * know the ioctl (use the fallback), or -errno. A configuration the kernel
 * silently ignored (vanilla 5.8 ignored the size limit) is undone, the
 * fallback remembered, and -EBUSY returned so the attempt is retried: the
 * cleared device may not be reusable at once.
 */
static int configure(int fd, const char *dev, const struct attach_req *q, bool *ret_dio,
                     struct util_err *err)
{
        struct loop_config cfg = {.fd = (unsigned)q->backing_fd, .block_size = q->opts->block_size};
        bool dio = q->want_dio;

        fill_info(&cfg.info, q, dio);
        int r = ioctl(fd, LOOP_CONFIGURE, &cfg);
        if (r < 0 && errno == EINVAL && dio) {
                /* Kernels that refuse (rather than drop) direct I/O the backing
                 * file cannot do: try again with buffered I/O. */
                util_debug(UTIL_DBG_LOOP,
                           "%s: LOOP_CONFIGURE with direct I/O: EINVAL, retrying "
                           "buffered",
                           dev);
                dio = false;
                fill_info(&cfg.info, q, dio);
                r = ioctl(fd, LOOP_CONFIGURE, &cfg);
        }
        if (r < 0) {
                int e = errno;
                if ((e == EINVAL || e == ENOTTY || e == ENOSYS) && configure_state() != 1) {
                        util_debug(UTIL_DBG_LOOP, "%s: LOOP_CONFIGURE: %s, trying LOOP_SET_FD", dev,
                                   strerror(e));
                        /* Cache only a definite "unknown ioctl": EINVAL may be
                         * about this one configuration. */
                        if (e != EINVAL)
                                atomic_store(&configure_ok, 0);
                        return 1;
                }
                return util_err_set(err, e, "%s: LOOP_CONFIGURE", dev);
        }
        atomic_store(&configure_ok, 1);

        r = verify_config(fd, dev, q, ret_dio, err);
        if (r == -EUCLEAN) {
                /* COMPAT(kernel 5.8): LOOP_CONFIGURE ignored parameters. */
                atomic_store(&configure_ok, 0);
                (void)ioctl(fd, LOOP_CLR_FD, 0);
                err->errnum = EBUSY; /* retried, with the fallback */
                return util_err_prefix(err, "LOOP_CONFIGURE (falling back to LOOP_SET_FD)");
        }
        if (r < 0) {
                (void)ioctl(fd, LOOP_CLR_FD, 0);
                return r;
        }
        return 0;
}

/* BLKFLSBUF on the block device under the backing file (found through
 * sysfs); syncfs on the backing file where there is none. */
static void flush_backing(const struct attach_req *q)
{
        char path[128], buf[256];

        snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/uevent", major(q->st.st_dev),
                 minor(q->st.st_dev));
        if (util_read_small_file(path, buf, sizeof(buf)) >= 0) {
                char *name = strstr(buf, "DEVNAME=");
                if (name) {
                        name += strlen("DEVNAME=");
                        name[strcspn(name, "\n")] = '\0';
                        char dev[300];
                        snprintf(dev, sizeof(dev), "/dev/%s", name);
                        _cleanup_close_ int bfd = open(dev, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                        if (bfd >= 0 && ioctl(bfd, BLKFLSBUF, 0) == 0)
                                return;
                }
        }
        (void)syncfs(q->backing_fd);
}

/*
 * LOOP_SET_STATUS64 returns EAGAIN while the device still has page cache from
 * before an offset or size change (kernel >= 5.0, commit 5db470e229e2).
 * Retry a few times with sleeps, then flush (the loop device's own buffers,
 * then the backing device or filesystem), then give it a grace period.
 */
static int set_status(int fd, const char *dev, const struct attach_req *q,
                      const struct loop_info64 *info, struct alloc_lock *lock, struct util_err *err)
{
        for (unsigned attempt = 1;; attempt++) {
                if (ioctl(fd, LOOP_SET_STATUS64, info) == 0)
                        return 0;
                if (errno != EAGAIN || attempt > 7)
                        return util_err_set(err, errno, "%s: LOOP_SET_STATUS64%s", dev,
                                            errno == EAGAIN ? " (page cache kept busy)" : "");
                util_debug(UTIL_DBG_LOOP, "%s: LOOP_SET_STATUS64: EAGAIN (attempt %u)", dev,
                           attempt);
                /* The device is bound to us now, so no other allocator can
                 * get it: let them go on while we wait. */
                alloc_lock_drop(lock);
                if (attempt <= 5) {
                        util_sleep_random_ms(50, 200);
                } else if (attempt == 6) {
                        (void)ioctl(fd, BLKFLSBUF, 0);
                        flush_backing(q);
                } else {
                        util_sleep_ms(1000);
                }
        }
}

/* COMPAT(kernel < 5.8): LOOP_SET_FD + LOOP_SET_STATUS64 (+ block size and
 * direct I/O ioctls). Drop when the oldest supported kernel has
 * LOOP_CONFIGURE. Only undoes what it bound. */
static int configure_legacy(int fd, const char *dev, const struct attach_req *q, bool *ret_dio,
                            struct alloc_lock *lock, struct util_err *err)
{
        struct loop_info64 info;

        if (ioctl(fd, LOOP_SET_FD, q->backing_fd) < 0)
                return util_err_set(err, errno, "%s: LOOP_SET_FD", dev);

        /* The device is bound without autoclear until SET_STATUS64: keep that
         * window short (no sleeps before it), and clear on every failure. */
        fill_info(&info, q, false);
        /* The read-only flag cannot be set; the kernel derives it from the
         * backing fd's mode, which was opened read-only for a read-only attach. */
        info.lo_flags &= ~(uint32_t)LO_FLAGS_READ_ONLY;
        int r = set_status(fd, dev, q, &info, lock, err);
        if (r < 0)
                goto fail;
        if (q->opts->block_size && ioctl(fd, LOOP_SET_BLOCK_SIZE, q->opts->block_size) < 0) {
                r = util_err_set(err, errno, "%s: LOOP_SET_BLOCK_SIZE %u", dev,
                                 q->opts->block_size);
                goto fail;
        }
        if (q->want_dio && ioctl(fd, LOOP_SET_DIRECT_IO, 1UL) < 0)
                util_debug(UTIL_DBG_LOOP, "%s: LOOP_SET_DIRECT_IO: %s, using buffered I/O", dev,
                           strerror(errno));

        r = verify_config(fd, dev, q, ret_dio, err);
        if (r == -EUCLEAN) {
                /* Even the fallback did not take: nothing left to try. */
                err->errnum = EIO;
                r = -EIO;
        }
        if (r < 0)
                goto fail;
        return 0;
fail:
        (void)ioctl(fd, LOOP_CLR_FD, 0);
        return r;
}

/* How many device numbers from GET_FREE's answer up an attempt tries to
 * claim before it backs off. */
#define CLAIM_SPAN 64

/*
 * Claims a free device: opened, flock'ed and checked unbound. The flock is
 * what keeps it ours until it is bound: allocators of ours check a device
 * under its lock (and skip a locked one here), udev leaves locked devices
 * alone, and an allocator that takes no lock (losetup) and binds it first
 * only makes our LOOP_CONFIGURE fail with EBUSY, which is retried. GET_FREE
 * names the lowest unbound device, which may be one being configured by
 * another attach (another thread's, or another process's): then the numbers
 * above it are tried, made with LOOP_CTL_ADD where the kernel has none yet.
 * Never an exclusive open: a probe must not make a concurrent mount of a
 * just-bound device fail. Called under the allocation lock.
 */
static int claim_device(int ctl_fd, int first, const struct attach_req *q, int *ret_fd, int *ret_nr,
                        dev_t *ret_devno, struct util_err *err)
{
        for (int nr = first; nr >= 0 && nr - first < CLAIM_SPAN; nr++) {
                _cleanup_close_ int fd = -EBADF;
                struct loop_info64 info;
                char dev[32];
                dev_t devno;

                snprintf(dev, sizeof(dev), "/dev/loop%d", nr);
                int r = loop_node_open(ctl_fd, nr, q->read_only ? O_RDONLY : O_RDWR, &fd, &devno,
                                       err);
                if (r < 0 && nr > first) {
                        /* Past GET_FREE's answer a device we cannot open
                         * (or add) ends the search, not the attach: the
                         * attempt is retried, when the devices in setup
                         * are bound and GET_FREE names another. */
                        util_debug(UTIL_DBG_LOOP, "claim: %s", err->msg);
                        util_err_clear(err);
                        return util_err_setx(err, EBUSY,
                                             "/dev/loop%d is being set up, and /dev/loop%d "
                                             "cannot be used",
                                             first, nr);
                }
                if (r < 0)
                        return r;
                if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                        if (errno == EWOULDBLOCK || errno == EINTR)
                                continue; /* being set up (or probed): the next */
                        return util_err_set(err, errno, "lock '%s'", dev);
                }
                if (ioctl(fd, LOOP_GET_STATUS64, &info) == 0)
                        continue; /* bound since GET_FREE looked */
                if (errno != ENXIO)
                        return util_err_set(err, errno, "%s: LOOP_GET_STATUS64", dev);
                *ret_fd = TAKE_FD(fd);
                *ret_nr = nr;
                *ret_devno = devno;
                return 0;
        }
        return util_err_setx(err, EBUSY, "/dev/loop%d to /dev/loop%d: none free", first,
                             first + CLAIM_SPAN - 1);
}

/*
 * One allocation attempt; the allocation lock is held by the caller. Once a
 * device is claimed, no allocator of ours takes it, so the lock is
 * dropped before LOOP_CONFIGURE (~0.1-0.25 ms, most of an attach): attaches
 * of different images configure side by side. It is kept throughout while
 * LOOP_CONFIGURE is not known to work here (the fallback may drop it itself)
 * and for a shared attach without a registry record, whose scan and bind
 * must stay one step.
 */
static int attach_once(struct alloc_lock *lock, const struct attach_req *q, struct loop_device *ret,
                       struct util_err *err)
{
        int ctl_fd = lock->ctl_fd;
        _cleanup_close_ int fd = -EBADF;
        char dev[32];
        dev_t devno = 0;
        bool shared = q->opts->flags & LOOP_ATTACH_SHARED;
        bool dio = false;
        int nr = -1;

        if (shared) {
                int r = loop_share_find(q->rec_fd, &q->st, q->opts, ret, err);
                if (r != 0)
                        return r < 0 ? r : 0;
        }

        int first = ioctl(ctl_fd, LOOP_CTL_GET_FREE);
        if (first < 0)
                return util_err_set(err, errno, "%s: LOOP_CTL_GET_FREE", LOOP_CONTROL_PATH);
        int r = claim_device(ctl_fd, first, q, &fd, &nr, &devno, err);
        if (r < 0)
                return r;
        snprintf(dev, sizeof(dev), "/dev/loop%d", nr);
        if (configure_state() == 1 && (!shared || q->rec_fd >= 0))
                alloc_lock_drop(lock);

        r = configure_state() != 0 ? configure(fd, dev, q, &dio, err) : 1;
        if (r > 0)
                r = configure_legacy(fd, dev, q, &dio, lock, err);
        if (r < 0)
                return r;

        (void)flock(fd, LOCK_UN);
        ret->fd = TAKE_FD(fd);
        ret->nr = nr;
        memcpy(ret->path, dev, sizeof(ret->path));
        ret->devno = devno;
        ret->diskseq = loop_read_diskseq(ret->fd, nr);
        ret->bound_by_us = true;
        ret->direct_io = dio;
        if (shared)
                loop_share_record(q->rec_fd, q->name, ret);
        if (q->want_dio && !dio)
                util_debug(UTIL_DBG_LOOP, "%s: direct I/O refused for '%s', using buffered I/O",
                           dev, q->name);
        return 0;
}

static unsigned backoff_max_ms(unsigned attempt)
{
        /* 2, 4, 8, ... ms, capped at 250 ms (systemd caps at 250 ms too). */
        return attempt >= 7 ? 250 : 1u << (attempt + 1);
}

static int attach_backing(int backing_fd, const char *name, const struct loop_attach_opts *opts,
                          struct loop_device **ret, struct util_err *err)
{
        _cleanup_close_ int ctl_fd = -EBADF, rec_fd = -EBADF;
        _cleanup_free_ struct loop_device *d = NULL;
        struct attach_req q = {
                .opts = opts,
                .backing_fd = backing_fd,
                .name = name,
                .rec_fd = -1,
                .read_only = opts->flags & LOOP_ATTACH_READ_ONLY,
                .autoclear = !(opts->flags & LOOP_ATTACH_NO_AUTOCLEAR),
                .want_dio = !(opts->flags & LOOP_ATTACH_NO_DIRECT_IO),
        };

        if (fstat(backing_fd, &q.st) < 0)
                return util_err_set(err, errno, "stat '%s'", name);
        if (S_ISDIR(q.st.st_mode))
                return util_err_setx(err, EISDIR, "'%s' is a directory, not an image file", name);
        if (!S_ISREG(q.st.st_mode) && !S_ISBLK(q.st.st_mode))
                return util_err_setx(err, EINVAL, "'%s' is not a regular file or block device",
                                     name);
        if (S_ISREG(q.st.st_mode) && q.st.st_size == 0)
                return util_err_setx(err, EINVAL, "'%s' is empty (0 bytes)", name);
        if (S_ISREG(q.st.st_mode) && opts->offset >= (uint64_t)q.st.st_size)
                return util_err_setx(
                        err, EINVAL, "offset %llu is beyond the end of '%s' (%llu bytes)",
                        (unsigned long long)opts->offset, name, (unsigned long long)q.st.st_size);
        (void)loop_tag_format(q.tag, sizeof(q.tag), opts->owner, opts->id);

        d = calloc(1, sizeof(*d));
        if (!d)
                return util_err_set(err, ENOMEM, "attach '%s'", name);
        d->fd = -EBADF;

        int r = loop_control_open(&ctl_fd, err);
        if (r < 0)
                return r;
        if (opts->flags & LOOP_ATTACH_SHARED) {
                rec_fd = loop_share_lock(&q.st, opts);
                q.rec_fd = rec_fd;
        }

        struct alloc_lock lock = {.ctl_fd = ctl_fd};
        unsigned attempt;
        for (attempt = 1;; attempt++) {
                r = alloc_lock_take(&lock, err);
                if (r < 0)
                        return r;
                r = attach_once(&lock, &q, d, err);
                alloc_lock_drop(&lock);
                if (r >= 0)
                        break;
                if (!error_is_transient(r))
                        return r;
                if (attempt >= LOOP_ATTACH_MAX_ATTEMPTS)
                        return util_err_prefix(err, "no free loop device after %u attempts",
                                               attempt);
                util_debug(UTIL_DBG_LOOP, "attempt %u for '%s': %s", attempt, name, err->msg);
                util_err_clear(err);
                util_sleep_random_ms(0, backoff_max_ms(attempt));
        }
        util_debug(UTIL_DBG_LOOP, "%s: %s '%s' (%s%s%s, attempt %u)", d->path,
                   d->bound_by_us ? "attached" : "shared", name, q.read_only ? "ro" : "rw",
                   d->direct_io ? ",dio" : "", q.autoclear ? ",autoclear" : "", attempt);
        *ret = TAKE_PTR(d);
        return 0;
}

int loop_attach_fd(int fd, const struct loop_attach_opts *opts, struct loop_device **ret,
                   struct util_err *err)
{
        char name[4096];
        _cleanup_close_ int bfd = -EBADF;
        struct util_err local;

        if (!err) /* the retry loop reads messages for its trace */
                err = &local;

        if (util_fd_get_path(fd, name, sizeof(name)) < 0)
                snprintf(name, sizeof(name), "fd %d", fd);
        int r = loop_attach_opts_check(opts, err);
        if (r < 0)
                return util_err_prefix(err, "attach '%s'", name);

        /* Our own open file description in the mode we need (the caller's fd
         * may be O_PATH, or read-write for a read-only attach). */
        bool ro = opts->flags & LOOP_ATTACH_READ_ONLY;
        bfd = util_fd_reopen(fd, (ro ? O_RDONLY : O_RDWR) | O_NOCTTY);
        if (bfd < 0)
                return util_err_set(err, bfd, "attach '%s': reopen %s", name,
                                    ro ? "read-only" : "read-write");
        r = attach_backing(bfd, name, opts, ret, err);
        if (r < 0)
                return util_err_prefix(err, "attach '%s'", name);
        return 0;
}

int loop_attach_path(const char *path, const struct loop_attach_opts *opts,
                     struct loop_device **ret, struct util_err *err)
{
        _cleanup_close_ int bfd = -EBADF;
        struct util_err local;

        if (!err) /* the retry loop reads messages for its trace */
                err = &local;
        if (!path || !*path)
                return util_err_setx(err, EINVAL, "attach: no backing file given");
        int r = loop_attach_opts_check(opts, err);
        if (r < 0)
                return util_err_prefix(err, "attach '%s'", path);

        bool ro = opts->flags & LOOP_ATTACH_READ_ONLY;
        bfd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
        if (bfd < 0) {
                if (errno == EROFS)
                        return util_err_set(err, errno,
                                            "attach '%s': open read-write (attach it read-only)",
                                            path);
                return util_err_set(err, errno, "attach '%s': open %s", path,
                                    ro ? "read-only" : "read-write");
        }
        r = attach_backing(bfd, path, opts, ret, err);
        if (r < 0)
                return util_err_prefix(err, "attach '%s'", path);
        return 0;
}

int loop_device_get_fd(const struct loop_device *d)
{
        return d->fd;
}

const char *loop_device_get_path(const struct loop_device *d)
{
        return d->path;
}

int loop_device_get_nr(const struct loop_device *d)
{
        return d->nr;
}

dev_t loop_device_get_devno(const struct loop_device *d)
{
        return d->devno;
}

uint64_t loop_device_get_diskseq(const struct loop_device *d)
{
        return d->diskseq;
}

bool loop_device_is_direct_io(const struct loop_device *d)
{
        return d->direct_io;
}

bool loop_device_is_shared_reuse(const struct loop_device *d)
{
        return !d->bound_by_us;
}
