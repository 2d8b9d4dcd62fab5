/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * util/ — the small generic layer every module uses: the error struct with
 * chained context messages (STYLE R1), cleanup attributes and ownership
 * transfer (R2), fd/path helpers that always use O_CLOEXEC (R8), the debug
 * trace switched on by LOOPSNAP_DEBUG (R10), and a randomised sleep for
 * bounded retry loops (R3).
 *
 * Error contract (docs/errors.md says the same for users of the modules):
 *   1. A function that takes `struct util_err *err` fills it on every failure.
 *   2. It does not touch `err` on success.
 *   3. A caller that recovers from an error calls util_err_clear().
 *   4. `ret_*` outputs are never written on failure.
 * Failure is reported as a negative errno return value (exactly -errno).
 */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- errors ------------------------------------------------------------ */

#define UTIL_ERR_MSG_MAX 512

struct util_err {
        int errnum;                 /* positive errno; 0 = no error recorded */
        char msg[UTIL_ERR_MSG_MAX]; /* outermost context first */
};

/*
 * util_err_set: record a failure. `fmt` names what failed ("open '%s'"); the
 * text of `errnum` is appended (": No such file or directory").
 * `err` may be NULL. `errnum` may be given positive or negative.
 * Returns: -errnum (always < 0; an errnum of 0 is recorded as EIO).
 */
int util_err_set(struct util_err *err, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Like util_err_set but appends no errno text: for errors whose message
 * already says everything ("tag 'x' is longer than 63 bytes"). */
int util_err_setx(struct util_err *err, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/*
 * util_err_prefix: prepend "ctx: " to the recorded message (the message is
 * truncated at the end if it no longer fits). `err` may be NULL.
 * Returns: -err->errnum, or -EIO if nothing was recorded.
 */
int util_err_prefix(struct util_err *err, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Forget a recorded failure (the caller recovered from it). NULL is fine. */
void util_err_clear(struct util_err *err);

#if defined(__clang_analyzer__) && !defined(UTIL_ERR_IMPLEMENTATION)
/*
 * For the static analyzer only (clang-tidy defines __clang_analyzer__; the
 * compiled code is unchanged). It sees one translation unit at a time, so it
 * does not know that these three always return a negative value and follows
 * impossible "error recorded, yet r >= 0" paths into false null-dereference
 * reports. A statement expression, not an inline function: the analyzer
 * stops inlining five calls deep. util/err.c defines UTIL_ERR_IMPLEMENTATION
 * to see the real names. A variadic error helper of a module, which the
 * analyzer does not inline either, can be wrapped the same way
 * (snapshot/filter.c parse_fail).
 */
#define UTIL_ERR_NEGATIVE_(call)                      \
        __extension__({                               \
                int util_err_r_ = (call);             \
                util_err_r_ < 0 ? util_err_r_ : -EIO; \
        })
#define util_err_set(...)    UTIL_ERR_NEGATIVE_(util_err_set(__VA_ARGS__))
#define util_err_setx(...)   UTIL_ERR_NEGATIVE_(util_err_setx(__VA_ARGS__))
#define util_err_prefix(...) UTIL_ERR_NEGATIVE_(util_err_prefix(__VA_ARGS__))
#endif

/* ---- cleanup and ownership transfer ------------------------------------ */

/* Closes *fd if >= 0, preserving errno. */
static inline void util_closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

static inline void util_freep(void *p)
{
        int saved = errno;
        free(*(void **)p);
        errno = saved;
}

static inline int util_take_fd(int *fd)
{
        int v = *fd;
        *fd = -EBADF;
        return v;
}

static inline void *util_take_ptr(void *pp)
{
        void **p = pp;
        void *v = *p;
        *p = NULL;
        return v;
}

#define _cleanup_(f)    __attribute__((cleanup(f)))
#define _cleanup_close_ _cleanup_(util_closep)
#define _cleanup_free_  _cleanup_(util_freep)
#define TAKE_FD(fd)     util_take_fd(&(fd))
#define TAKE_PTR(p)     ((__typeof__(p))util_take_ptr(&(p)))

/* Defines `name##p(type **)` that calls `func(*p)` when *p is not NULL.
 * func's result (fclose()'s, say) is dropped: a scope exit has no one to
 * tell. Close a stream you wrote with a checked fclose() instead. */
#define UTIL_DEFINE_FREE_FUNC(type, func)                                       \
        /* NOLINTNEXTLINE(bugprone-macro-parentheses): `type` is a type name */ \
        static inline void func##p(type **p)                                    \
        {                                                                       \
                if (*p) {                                                       \
                        int saved_ = errno;                                     \
                        (void)func(*p);                                         \
                        errno = saved_;                                         \
                }                                                               \
        }

#define UTIL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fd and path helpers (O_CLOEXEC always) ---------------------------- */

/*
 * util_fd_reopen: open a new file description for what `fd` refers to (also
 * an O_PATH fd), through /proc/self/fd, with `flags` | O_CLOEXEC.
 * Returns: the new fd, or -errno.
 */
int util_fd_reopen(int fd, int flags);

/*
 * util_fd_get_path: the path the kernel shows for `fd` (readlink of
 * /proc/self/fd/N) into `buf` of `size` bytes.
 * Returns: 0, -ENAMETOOLONG if it does not fit, or -errno.
 */
int util_fd_get_path(int fd, char *buf, size_t size);

/*
 * util_open_regular: open `path` with `flags` | O_CLOEXEC | O_NOFOLLOW |
 * O_NOCTTY and make sure it is a regular file (not a symlink, device, FIFO).
 * Returns: 0 and the fd in *ret_fd, or -errno (-EINVAL: not a regular file)
 * with `err` naming the path.
 */
int util_open_regular(const char *path, int flags, int *ret_fd, struct util_err *err);

/*
 * util_read_small_file: read a small text file (sysfs attribute) into `buf`
 * (NUL-terminated, trailing newline removed). The path is opened with
 * O_RDONLY|O_CLOEXEC|O_NOCTTY.
 * Returns: number of bytes kept, -EFBIG if it did not fit, or -errno.
 */
ssize_t util_read_small_file(const char *path, char *buf, size_t size);

/* Reads an unsigned decimal number from a small file (sysfs attribute).
 * Returns: 0 and *ret, -EINVAL if the content is not a number, or -errno. */
int util_read_u64_file(const char *path, uint64_t *ret);

/* Parses an unsigned decimal number that must fill the whole string.
 * Returns: 0 and *ret, -EINVAL or -ERANGE. */
int util_parse_u64(const char *s, uint64_t *ret);

/* A byte count: a decimal number with an optional binary suffix K, M, G or
 * T (either case), optionally followed by "B" or "iB" ("64M", "1GiB",
 * "4096"). Returns 0 and *ret, or -EINVAL (also on overflow). */
int util_parse_size(const char *s, uint64_t *ret);

/* ---- strings ----------------------------------------------------------- */

#define UTIL_PREVIEW_SIZE 72

/*
 * util_preview: a printable preview of untrusted text for an error message:
 * at most `len` bytes (SIZE_MAX: up to the NUL) and 64 characters of `s`,
 * control characters shown as '?', "..." when cut. Returns `buf`.
 */
const char *util_preview(char buf[static UTIL_PREVIEW_SIZE], const char *s, size_t len);

/* ---- debug trace ------------------------------------------------------- */

enum util_debug_area {
        UTIL_DBG_UTIL = 1u << 0,
        UTIL_DBG_LOOP = 1u << 1,
        UTIL_DBG_MOUNT = 1u << 2,
        UTIL_DBG_IDMAP = 1u << 3,
        UTIL_DBG_SNAP = 1u << 4,
        UTIL_DBG_PLUGIN = 1u << 5,
        UTIL_DBG_ALL = 0xffffu,
};

/*
 * The trace is off unless LOOPSNAP_DEBUG names areas: a comma-separated list
 * of util,loop,mount,idmap,snapshot,plugin or "all". It is read once per
 * process. This is the only way library code writes to stderr.
 */
bool util_debug_enabled(unsigned area);
void util_debug_print(unsigned area, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a LOOPSNAP_DEBUG value into an area mask (unknown names ignored). */
unsigned util_debug_parse(const char *value);

#define util_debug(area, ...)                                \
        do {                                                 \
                if (util_debug_enabled(area))                \
                        util_debug_print(area, __VA_ARGS__); \
        } while (0)

/* ---- fault injection ---------------------------------------------------- */

/* The exit status of a process stopped at a fault point. */
#define UTIL_FAULT_EXIT 93

/*
 * util_fault_point: when LOOPSNAP_FAULT names this point, the process ends
 * here at once with _exit(UTIL_FAULT_EXIT) — no cleanup, no atexit, like a
 * crash or a kill -9 — so tests can prove every multi-step operation leaves
 * a state that cleanup/fsck repairs. Built into every build. Otherwise it
 * costs one getenv per call (and a strcmp when the variable is set); the
 * value is not cached: tests set it in a forked child right before the
 * operation.
 */
void util_fault_point(const char *name);

/* ---- time and randomness ----------------------------------------------- */

/* A random number from the kernel (getrandom, non-blocking pool). */
uint32_t util_random_u32(void);

/* Sleeps a uniformly random time in [min_ms, max_ms] (restarts on EINTR). */
void util_sleep_random_ms(unsigned min_ms, unsigned max_ms);

/* Sleeps `ms` milliseconds (restarts on EINTR). */
void util_sleep_ms(unsigned ms);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t util_now_ns(void);

/* Reads an integer setting from the environment (`name`); `def` when unset or
 * not a number. Used for the LOOPSNAP_* switches. */
long util_env_long(const char *name, long def);
