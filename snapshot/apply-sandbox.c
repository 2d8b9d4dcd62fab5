/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The extraction sandbox: the forked child that reads a layer and writes it
 * (DESIGN §10; docs/apply.md). Everything about the layer is untrusted, and
 * the decompressors and the tar parser are the code a crafted layer is most
 * likely to turn against us, so they run here, not in the caller, behind
 * two walls:
 *
 *   1. the child chroots into its jail (a private directory holding only the
 *      layer's mount, and the read-only parent layers when there are any),
 *      keeps four descriptors (the stream, the report pipe, the layer root,
 *      the parent layers) and closes every other one, so nothing outside the
 *      jail is reachable by path or by descriptor;
 *   2. it keeps only the capabilities file creation needs (CHOWN,
 *      DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID, MKNOD, SETFCAP, and
 *      SYS_ADMIN for trusted.* xattrs), sets no_new_privs and loads a
 *      seccomp allow-list: reading and writing descriptors, the *at() calls
 *      that make files, xattrs, memory management, exit. Any other call
 *      fails with EPERM: no exec, socket, mount, chroot, ptrace, clone,
 *      kill. mknodat is allowed only for a 0:0 character device (an overlay
 *      whiteout) or a FIFO.
 *
 * Inside, the extractor (apply-extract.c) resolves every path beneath the
 * layer root itself: the walls are the second line, not the first.
 *
 * Fork safety: the caller may have threads. After fork the child takes no
 * lock another thread could have held: the sha256 context and the C.UTF-8
 * locale object are made by the parent before the fork (the child only
 * feeds the one and switches its thread to the other with uselocale);
 * what remains is malloc (fork-safe in glibc) and system calls.
 */
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <locale.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "snapshot/apply-internal.h"

/* ---- the sandbox -------------------------------------------------------- */

#define CAP_BIT(c) (UINT64_C(1) << (c))

static int caps_drop(void)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2];
        const uint64_t keep = CAP_BIT(CAP_CHOWN) | CAP_BIT(CAP_DAC_OVERRIDE) |
                              CAP_BIT(CAP_DAC_READ_SEARCH) | CAP_BIT(CAP_FOWNER) |
                              CAP_BIT(CAP_FSETID) | CAP_BIT(CAP_MKNOD) | CAP_BIT(CAP_SETFCAP) |
                              CAP_BIT(CAP_SYS_ADMIN);

        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        uint64_t have = ((uint64_t)d[1].permitted << 32) | d[0].permitted;
        uint64_t set = have & keep;
        for (int i = 0; i < 2; i++) {
                d[i].effective = d[i].permitted = (uint32_t)(set >> (32 * i));
                d[i].inheritable = 0;
        }
        return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

static int seccomp_install(void)
{
        static const int allowed[] = {
                /* descriptors */
                SCMP_SYS(read),
                SCMP_SYS(readv),
                SCMP_SYS(pread64),
                SCMP_SYS(write),
                SCMP_SYS(writev),
                SCMP_SYS(pwrite64),
                SCMP_SYS(close),
                SCMP_SYS(lseek),
                SCMP_SYS(fcntl),
                SCMP_SYS(fstat),
                SCMP_SYS(newfstatat),
                SCMP_SYS(statx),
                SCMP_SYS(getdents64),
                SCMP_SYS(fchdir),
                SCMP_SYS(ftruncate),
                /* making files */
                SCMP_SYS(openat),
                SCMP_SYS(openat2),
                SCMP_SYS(mkdirat),
                SCMP_SYS(symlinkat),
                SCMP_SYS(linkat),
                SCMP_SYS(unlinkat),
                SCMP_SYS(fchownat),
                SCMP_SYS(fchown),
                SCMP_SYS(fchmod),
                SCMP_SYS(fchmodat),
                SCMP_SYS(utimensat),
                SCMP_SYS(fsetxattr),
                SCMP_SYS(lsetxattr),
                /* memory, time, the process itself */
                SCMP_SYS(brk),
                SCMP_SYS(mmap),
                SCMP_SYS(munmap),
                SCMP_SYS(mremap),
                SCMP_SYS(madvise),
                SCMP_SYS(mprotect),
                SCMP_SYS(futex),
                SCMP_SYS(getrandom),
                SCMP_SYS(clock_gettime),
                SCMP_SYS(gettimeofday),
                SCMP_SYS(getpid),
                SCMP_SYS(gettid),
                SCMP_SYS(sched_yield),
                SCMP_SYS(rt_sigprocmask),
                SCMP_SYS(rt_sigreturn),
                SCMP_SYS(restart_syscall),
                SCMP_SYS(exit),
                SCMP_SYS(exit_group),
                /* AddressSanitizer's _exit takes its alternate signal stack
                 * down; a signal stack reaches nothing outside. */
                SCMP_SYS(sigaltstack),
        };
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        int r = ctx ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < UTIL_ARRAY_SIZE(allowed); i++)
                if (allowed[i] >= 0) /* < 0: a call this architecture lacks */
                        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
        /* mknodat: an overlay whiteout (character device 0:0) or a FIFO only. */
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mknodat), 2,
                                     SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFCHR),
                                     SCMP_A3(SCMP_CMP_EQ, 0));
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mknodat), 1,
                                     SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFIFO));
        if (r >= 0)
                r = seccomp_load(ctx);
        if (ctx)
                seccomp_release(ctx);
        return r;
}

/* Moves `fds` to 3, 4, ... (in order) and closes every other descriptor
 * above 2. */
static int fds_keep_only(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (fds[i] < 0)
                        continue;
                /* Out of the way first, so no later dup3 overwrites one. */
                int t = fcntl(fds[i], F_DUPFD_CLOEXEC, 1024);
                if (t < 0)
                        return -errno;
                fds[i] = t;
        }
        for (size_t i = 0; i < n; i++) {
                if (fds[i] < 0) {
                        (void)close(3 + (int)i); /* whatever was inherited there */
                        continue;
                }
                if (dup3(fds[i], 3 + (int)i, O_CLOEXEC) < 0)
                        return -errno;
                fds[i] = 3 + (int)i;
        }
        unsigned first = 3 + (unsigned)n;
        if (syscall(SYS_close_range, first, ~0u, 0) < 0) {
                /* COMPAT(kernel < 5.9): no close_range; drop when the
                 * baseline is >= 5.9. */
                long max = sysconf(_SC_OPEN_MAX);
                for (long fd = first; fd < (max > 0 ? max : 65536); fd++)
                        (void)close((int)fd);
        }
        return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
        const char *b = buf;
        while (len > 0) {
                ssize_t n = write(fd, b, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -errno;
                b += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Sets up the sandbox and extracts. Fills *rep; -errno with `err`. */
static int child_run(const struct snap_apply_job *j, int jail_fd, int *data_fd, int *report_fd,
                     struct snap_apply_report *rep, struct util_err *err)
{
        _cleanup_(snap_extract_freep) struct snap_extract *x = NULL;
        int root_fd = -EBADF, lower_fd = -EBADF, r;

        /* Signals as a fresh process has them: the caller's handlers must
         * not run in here. */
        for (int s = 1; s < NSIG; s++)
                (void)signal(s, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);

        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
                (void)dup2(null, 0);
                (void)dup2(null, 1);
                if (null > 2)
                        close(null);
        }
        /* pax names are UTF-8; libarchive converts them to the locale's
         * charset (and warns, which is a refusal here, when it cannot). */
        if (j->utf8)
                (void)uselocale(j->utf8);

        /* What allocates at first use, before the walls. */
        if ((r = snap_extract_new(j->mode, j->sha, &x, err)) < 0)
                return r;

        /* Wall 1: the jail is the root; only our descriptors stay. */
        if (fchdir(jail_fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
                return util_err_set(err, errno, "enter the jail '%s'", j->jail);
        struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS};
        root_fd = (int)syscall(SYS_openat2, jail_fd, j->root, &how, sizeof(how));
        if (root_fd < 0)
                return util_err_set(err, errno, "open '%s/%s'", j->jail, j->root);
        if (j->lower) {
                lower_fd = (int)syscall(SYS_openat2, jail_fd, j->lower, &how, sizeof(how));
                if (lower_fd < 0)
                        return util_err_set(err, errno, "open '%s/%s'", j->jail, j->lower);
        }
        int fds[] = {*data_fd, *report_fd, root_fd, lower_fd};
        if ((r = fds_keep_only(fds, UTIL_ARRAY_SIZE(fds))) < 0)
                return util_err_set(err, r, "close inherited descriptors");
        *data_fd = fds[0];
        *report_fd = fds[1];

        /* Wall 2: capabilities, no_new_privs, the system-call allow-list. */
        if ((r = caps_drop()) < 0)
                return util_err_set(err, r, "drop capabilities");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return util_err_set(err, errno, "PR_SET_NO_NEW_PRIVS");
        if ((r = seccomp_install()) < 0)
                return util_err_set(err, r, "load the seccomp filter");

        return snap_extract_run(x, fds[0], fds[2], fds[3], rep, err);
}

_Noreturn void snap_apply_child(const struct snap_apply_job *j, int jail_fd, int data_fd,
                                int report_fd)
{
        struct snap_apply_report rep = {.magic = SNAP_APPLY_REPORT_MAGIC};
        struct util_err err = {0};

        if (child_run(j, jail_fd, &data_fd, &report_fd, &rep, &err) < 0) {
                rep.errnum = err.errnum ? err.errnum : EIO;
                memcpy(rep.msg, err.msg, sizeof(rep.msg));
        }
        _exit(write_all(report_fd, &rep, sizeof(rep)) < 0 ? 2 : 0);
}
