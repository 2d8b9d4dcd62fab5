/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * User-namespace fds with a given mapping, and a cache of them.
 *
 * A user namespace exists only as long as something refers to it, and its
 * uid_map/gid_map can only be written through a process inside it. So a
 * helper child is cloned straight into a new user namespace
 * (clone(CLONE_NEWUSER)), the parent writes both maps through
 * /proc/<pid>/{uid,gid}_map and opens /proc/<pid>/ns/user, and the helper is
 * killed and reaped. The namespace fd is all that is kept.
 *
 * The library runs inside multi-threaded container runtimes, so:
 *   - The helper is made with the raw clone syscall (fork semantics, no
 *     pthread_atfork handlers of the host run) and does only raw,
 *     async-signal-safe syscalls: it closes every descriptor except its end
 *     of a socketpair, says "ready", and blocks reading until it is killed.
 *     The parent writes the maps only after "ready", so no fd of ours is
 *     ever held by a process inside a namespace that has an identity.
 *   - All signals are blocked in the helper (it inherits the mask set around
 *     the clone), so no host signal handler ever runs in it.
 *   - Its exit signal is 0, not SIGCHLD: a host reaper that calls
 *     waitpid(-1) (containerd's shim does) neither gets a SIGCHLD for it nor
 *     can reap it, since such children are only seen with __WALL/__WCLONE.
 *   - It is addressed through a pidfd (CLONE_PIDFD, Linux 5.2), so a pid
 *     that was recycled is never signalled or written to, and it is reaped
 *     with waitid(P_PIDFD, __WALL) (Linux 5.4) on every path.
 * Kernel baseline here: 5.4; idmapped mounts need 5.12 anyway.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "idmap/idmap.h"

/* One line "container host size\n" is at most 3 * 10 digits + 3 bytes. */
#define MAP_LINE_MAX 33

/* The fallback close loop stops here when RLIMIT_NOFILE is unlimited
 * (the kernel's default fs.nr_open). */
#define FALLBACK_FD_MAX (1 << 20)

/* ---- the helper child -------------------------------------------------- */

struct helper {
        pid_t pid;
        int pidfd;
};

#define HELPER_NULL ((struct helper){.pid = 0, .pidfd = -EBADF})

/* Kills and reaps the helper (if any), preserving errno. Runs on every path
 * out of idmap_userns_new(): the helper never outlives the call. */
static void helper_reap(struct helper *h)
{
        siginfo_t si;
        int saved = errno;

        if (h->pidfd < 0)
                return;
        (void)syscall(SYS_pidfd_send_signal, (long)h->pidfd, (long)SIGKILL, NULL, 0L);
        /* ECHILD: someone reaped it with __WALL; nothing left to do. */
        while (waitid((idtype_t)P_PIDFD, (id_t)h->pidfd, &si, WEXITED | __WALL) < 0 &&
               errno == EINTR)
                ;
        close(h->pidfd);
        *h = HELPER_NULL;
        errno = saved;
}

/* Arguments to syscall() are passed as long: it reads them with
 * va_arg(long), so a narrower argument would leave the upper half of the
 * register undefined. */

/* Ends the helper without any libc (or sanitizer) exit path. */
static _Noreturn void helper_exit(int code)
{
        for (;;)
                (void)syscall(SYS_exit_group, (long)code);
}

/* Closes every descriptor but `keep`. Async-signal-safe (raw syscalls). */
static void close_all_but(int keep, int fd_max)
{
        bool ok = true;

        if (keep > 0 && syscall(SYS_close_range, 0L, (long)keep - 1, 0L) < 0)
                ok = false;
        /* NOLINTNEXTLINE(bugprone-misplaced-widening-cast): ~0U is close_range's "all" */
        if (ok && syscall(SYS_close_range, (long)keep + 1, (long)~0u, 0L) == 0)
                return;
        /* COMPAT(kernel < 5.9): no close_range; drop when the baseline is >= 5.9. */
        for (int fd = 0; fd < fd_max; fd++)
                if (fd != keep)
                        (void)syscall(SYS_close, (long)fd);
}

/* The helper's whole life. Only raw syscalls: it is a copy of one thread of
 * a possibly multi-threaded process, so no lock it inherited is usable. */
static _Noreturn void helper_main(int sock, int fd_max, pid_t parent)
{
        char c = 'r';

        /* If the parent thread dies before it kills us, die with it. */
        if (syscall(SYS_prctl, (long)PR_SET_PDEATHSIG, (long)SIGKILL, 0L, 0L, 0L) < 0 ||
            syscall(SYS_getppid) != (long)parent)
                helper_exit(EXIT_FAILURE);
        close_all_but(sock, fd_max);
        if (syscall(SYS_sendto, (long)sock, &c, 1L, (long)MSG_NOSIGNAL, NULL, 0L) != 1)
                helper_exit(EXIT_FAILURE);
        /* Wait to be killed; EOF (the parent is gone) ends it too. */
        while (syscall(SYS_read, (long)sock, &c, 1L) < 0 && errno == EINTR)
                ;
        helper_exit(EXIT_SUCCESS);
}

/* clone(CLONE_NEWUSER | CLONE_PIDFD) with exit signal 0: the child gets 0,
 * the parent the pid and *ret_pidfd. The pidfd goes in the parent_tid slot,
 * which is the third argument on every architecture but s390/cris. */
static pid_t helper_clone(int *ret_pidfd)
{
        unsigned long flags = CLONE_NEWUSER | CLONE_PIDFD;

#if defined(__s390__) || defined(__CRIS__)
        return (pid_t)syscall(SYS_clone, 0UL, flags, ret_pidfd, NULL, 0UL);
#else
        return (pid_t)syscall(SYS_clone, flags, 0UL, ret_pidfd, NULL, 0UL);
#endif
}

static int helper_start(int child_sock, struct helper *ret, struct util_err *err)
{
        sigset_t all, old;
        struct rlimit rl;
        int fd_max = FALLBACK_FD_MAX, pidfd = -EBADF;
        pid_t parent = getpid();

        /* Everything the child needs is computed before the clone. */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur < (rlim_t)FALLBACK_FD_MAX)
                fd_max = (int)rl.rlim_cur;

        sigfillset(&all);
        int r = pthread_sigmask(SIG_SETMASK, &all, &old);
        if (r != 0)
                return util_err_set(err, r, "block signals");
        pid_t pid = helper_clone(&pidfd);
        if (pid == 0)
                helper_main(child_sock, fd_max, parent);
        int saved = errno;
        (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (pid < 0)
                return util_err_set(err, saved, "clone(CLONE_NEWUSER)");
        *ret = (struct helper){.pid = pid, .pidfd = pidfd};
        return 0;
}

/* ---- writing the maps -------------------------------------------------- */

/* The uid_map/gid_map text: "container host size\n" per range. */
static char *map_text(const struct idmap_map *m)
{
        size_t size = m->n * MAP_LINE_MAX + 1, o = 0;
        char *s = malloc(size);

        if (!s)
                return NULL;
        s[0] = '\0';
        for (size_t i = 0; i < m->n; i++)
                o += (size_t)snprintf(s + o, size - o, "%u %u %u\n", m->r[i].container,
                                      m->r[i].host, m->r[i].size);
        return s;
}

/* The kernel takes a map in exactly one write, so the whole text goes at
 * once; a short write is an error. Returns 0 or -errno. */
static int write_proc_file(int dir_fd, const char *name, const char *text)
{
        _cleanup_close_ int fd = -EBADF;
        size_t len = strlen(text);

        fd = openat(dir_fd, name, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, text, len);
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EIO;
}

int idmap_userns_new(const struct idmap_map *uid, const struct idmap_map *gid, int *ret_fd,
                     struct util_err *err)
{
        /* Declared first so it runs last: the helper is killed and reaped
         * after every fd below is closed, on every path. */
        _cleanup_(helper_reap) struct helper h = HELPER_NULL;
        _cleanup_close_ int sock = -EBADF, proc_fd = -EBADF, ns_fd = -EBADF;
        _cleanup_free_ char *uid_text = NULL, *gid_text = NULL;
        char path[64], c;
        int sv[2], r;

        r = idmap_map_check(uid, "uid map", err);
        if (r < 0)
                return util_err_prefix(err, "create user namespace");
        r = idmap_map_check(gid, "gid map", err);
        if (r < 0)
                return util_err_prefix(err, "create user namespace");
        uid_text = map_text(uid);
        gid_text = map_text(gid);
        if (!uid_text || !gid_text)
                return util_err_set(err, ENOMEM, "create user namespace");

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return util_err_set(err, errno, "create user namespace: socketpair");
        sock = sv[0];
        r = helper_start(sv[1], &h, err);
        close(sv[1]);
        if (r < 0)
                return util_err_prefix(err, "create user namespace");

        /* "ready": the helper holds nothing of ours any more. */
        ssize_t n;
        while ((n = recv(sock, &c, 1, 0)) < 0 && errno == EINTR)
                ;
        if (n < 0)
                return util_err_set(err, errno, "create user namespace: wait for helper %d",
                                    (int)h.pid);
        if (n == 0)
                return util_err_setx(err, ECHILD,
                                     "create user namespace: helper %d exited before it was ready",
                                     (int)h.pid);

        snprintf(path, sizeof(path), "/proc/%d", (int)h.pid);
        proc_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (proc_fd < 0)
                return util_err_set(err, errno, "create user namespace: open '%s'", path);
        /* The helper is still alive (the pidfd says so) after we opened its
         * /proc directory, so that directory is the helper's, not a process
         * that got a recycled pid. */
        if (syscall(SYS_pidfd_send_signal, (long)h.pidfd, 0L, NULL, 0L) < 0)
                return util_err_set(err, errno, "create user namespace: helper %d", (int)h.pid);

        r = write_proc_file(proc_fd, "uid_map", uid_text);
        if (r < 0)
                return util_err_set(err, r, "create user namespace: write '%s/uid_map'", path);
        r = write_proc_file(proc_fd, "gid_map", gid_text);
        if (r == -EPERM) {
                /* Without CAP_SETGID over the parent namespace the kernel
                 * wants setgroups denied first (user_namespaces(7)). Root in
                 * the initial namespace never gets here. */
                util_debug(UTIL_DBG_IDMAP, "%s/gid_map: EPERM, writing 'deny' to setgroups", path);
                int r2 = write_proc_file(proc_fd, "setgroups", "deny");
                if (r2 < 0)
                        return util_err_set(err, r2,
                                            "create user namespace: write '%s/setgroups' after "
                                            "gid_map was refused",
                                            path);
                r = write_proc_file(proc_fd, "gid_map", gid_text);
        }
        if (r < 0)
                return util_err_set(err, r, "create user namespace: write '%s/gid_map'", path);

        ns_fd = openat(proc_fd, "ns/user", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (ns_fd < 0)
                return util_err_set(err, errno, "create user namespace: open '%s/ns/user'", path);

        util_debug(UTIL_DBG_IDMAP, "user namespace fd %d (helper %d): %zu uid, %zu gid ranges",
                   ns_fd, (int)h.pid, uid->n, gid->n);
        *ret_fd = TAKE_FD(ns_fd);
        return 0;
}

/* ---- the cache --------------------------------------------------------- */

struct idmap_cache_entry {
        struct idmap_map uid;
        struct idmap_map gid;
        int fd; /* owned */
};

struct idmap_cache {
        /* Guards everything below. Held while a namespace is created (about
         * 0.2 ms), so two threads asking for the same new pair make it once. */
        pthread_mutex_t lock;
        struct idmap_cache_entry **v;
        size_t n, cap;
        _Atomic size_t size; /* == n, readable without the lock */
};

static void mutex_unlockp(pthread_mutex_t **m)
{
        if (*m)
                pthread_mutex_unlock(*m);
}

int idmap_cache_new(struct idmap_cache **ret, struct util_err *err)
{
        struct idmap_cache *c = calloc(1, sizeof(*c));

        if (!c)
                return util_err_set(err, ENOMEM, "create user-namespace cache");
        int r = pthread_mutex_init(&c->lock, NULL);
        if (r != 0) {
                free(c);
                return util_err_set(err, r, "create user-namespace cache: mutex");
        }
        *ret = c;
        return 0;
}

struct idmap_cache *idmap_cache_free(struct idmap_cache *c)
{
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n; i++) {
                util_closep(&c->v[i]->fd);
                free(c->v[i]);
        }
        free(c->v);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

int idmap_cache_get(struct idmap_cache *c, const struct idmap_map *uid, const struct idmap_map *gid,
                    int *ret_fd, bool *ret_cached, struct util_err *err)
{
        _cleanup_(mutex_unlockp) pthread_mutex_t *locked = NULL;
        _cleanup_free_ struct idmap_cache_entry *e = NULL;
        int r;

        if (!c || !uid || !gid)
                return util_err_setx(err, EINVAL, "user-namespace cache: no cache or mapping");

        r = pthread_mutex_lock(&c->lock);
        if (r != 0)
                return util_err_set(err, r, "user-namespace cache: lock");
        locked = &c->lock; /* NOLINT(clang-analyzer-deadcode.DeadStores): read by cleanup */

        for (size_t i = 0; i < c->n; i++)
                if (idmap_map_equal(&c->v[i]->uid, uid) && idmap_map_equal(&c->v[i]->gid, gid)) {
                        *ret_fd = c->v[i]->fd;
                        if (ret_cached)
                                *ret_cached = true;
                        return 0;
                }

        if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 4;
                /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
                struct idmap_cache_entry **v = realloc(c->v, cap * sizeof(*v));
                if (!v)
                        return util_err_set(err, ENOMEM, "user-namespace cache");
                c->v = v;
                c->cap = cap;
        }
        e = malloc(sizeof(*e));
        if (!e)
                return util_err_set(err, ENOMEM, "user-namespace cache");
        e->uid = *uid;
        e->gid = *gid;
        r = idmap_userns_new(uid, gid, &e->fd, err);
        if (r < 0)
                return r;

        *ret_fd = e->fd;
        if (ret_cached)
                *ret_cached = false;
        c->v[c->n++] = TAKE_PTR(e);
        atomic_store(&c->size, c->n);
        return 0;
}

size_t idmap_cache_size(const struct idmap_cache *c)
{
        return c ? atomic_load(&c->size) : 0;
}
