/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The extractor: what the sandboxed child (apply-sandbox.c) runs behind its
 * walls. It reads the layer stream, decompresses it with libarchive
 * (format "raw" with the gzip and zstd filters), hashes every uncompressed
 * byte (the diff id) and runs it through the framing check of tar-scan.c,
 * then hands it to a second libarchive reader for the tar entries, and
 * writes each entry beneath the layer root (docs/apply.md):
 *
 *   - every entry is checked before anything is written for it: its name
 *     (no "..", not absolute, under PATH_MAX/NAME_MAX), type, owner, xattrs;
 *   - every path is resolved with openat2(RESOLVE_BENEATH |
 *     RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) from the layer root, the
 *     final component never followed (the *at() calls work on the parent's
 *     descriptor and the name);
 *   - whiteouts become overlay whiteouts (overlay mode) or deletions (merged
 *     mode); hard links only reach regular files this layer extracted;
 *   - directories get their times after their contents.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "snapshot/apply-internal.h"

#define CHUNK              (128u << 10)
#define XATTR_COUNT_MAX    128u
#define XATTR_VALUE_MAX    65536u /* XATTR_SIZE_MAX */
#define XATTR_NAME_LEN_MAX 255u   /* XATTR_NAME_MAX */
#define OPAQUE_XATTR       "trusted.overlay.opaque"

/* ---- reading: decompression, framing check, digest ---------------------- */

struct reader {
        int fd;                /* the compressed stream */
        struct archive *outer; /* decompression only */
        struct archive *inner; /* the tar reader */
        struct snap_tar_scan scan;
        struct snap_sha256 *sha;
        uint64_t total; /* uncompressed bytes */
        bool refused;   /* the framing check failed: `err` says why */
        struct util_err err;
        unsigned char in[CHUNK];
        unsigned char out[CHUNK];
};

static la_ssize_t outer_read(struct archive *a, void *data, const void **buf)
{
        struct reader *rd = data;
        for (;;) {
                ssize_t n = read(rd->fd, rd->in, sizeof(rd->in));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        archive_set_error(a, errno, "read the layer stream: %s", strerror(errno));
                        return -1;
                }
                *buf = rd->in;
                return n;
        }
}

/* The next uncompressed bytes, hashed and checked. 0 at the end. */
static la_ssize_t pull(struct reader *rd)
{
        la_ssize_t n = archive_read_data(rd->outer, rd->out, sizeof(rd->out));
        if (n <= 0)
                return n;
        snap_sha256_update(rd->sha, rd->out, (size_t)n);
        rd->total += (uint64_t)n;
        if (snap_tar_scan_feed(&rd->scan, rd->out, (size_t)n, &rd->err) < 0) {
                rd->refused = true;
                return ARCHIVE_FATAL;
        }
        return n;
}

static la_ssize_t inner_read(struct archive *a, void *data, const void **buf)
{
        struct reader *rd = data;
        la_ssize_t n = pull(rd);
        if (n < 0) {
                if (rd->refused)
                        archive_set_error(a, EINVAL, "%s", rd->err.msg);
                else
                        archive_set_error(
                                a, archive_errno(rd->outer) > 0 ? archive_errno(rd->outer) : EIO,
                                "%s",
                                archive_error_string(rd->outer) ? archive_error_string(rd->outer)
                                                                : "decompression failed");
                return -1;
        }
        *buf = rd->out;
        return n;
}

/* ---- the extraction context --------------------------------------------- */

/* Paths of this layer, in a balanced tree (tsearch): the layer decides the
 * keys, so no hash table an attacker could flood. */
enum {
        PATH_LAYER = 1u, /* an entry of this layer, or a directory holding one */
        PATH_FILE = 2u,  /* a regular file extracted from this layer */
};

struct pnode {
        unsigned flags;
        char *path;
};

struct relpath {
        char s[PATH_MAX]; /* components joined by '/'; "" = the layer root */
        size_t len;
        size_t n;                 /* components */
        size_t end[PATH_MAX / 2]; /* end offset of component i in s */
};

struct dirtime {
        char *path;
        struct timespec ts[2];
};

struct meta {
        uid_t uid;
        gid_t gid;
        mode_t mode; /* permission bits with setuid/setgid/sticky */
        struct timespec ts[2];
};

struct xctx {
        int root_fd;
        int lower_fd; /* OVERLAY: the parent layers, read-only; -1: none */
        dev_t root_dev;
        enum snap_apply_mode mode;
        struct reader *rd;
        void *paths; /* tsearch tree of struct pnode */
        struct dirtime *dirs;
        size_t n_dirs, cap_dirs;
        char name[UTIL_PREVIEW_SIZE]; /* the entry being applied, for messages */
        struct relpath path, target;
        uint64_t entries;
        struct util_err *err;
};

static int msg_v(struct xctx *c, int errnum, bool with_errno, const char *fmt, va_list ap)
{
        char buf[UTIL_ERR_MSG_MAX];
        vsnprintf(buf, sizeof(buf), fmt, ap);
        if (with_errno)
                return util_err_set(c->err, errnum, "entry '%s': %s", c->name, buf);
        return util_err_setx(c->err, errnum, "entry '%s': %s", c->name, buf);
}

/* A refusal: "entry '<name>': <why>". */
static int refuse(struct xctx *c, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int refuse(struct xctx *c, int errnum, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = msg_v(c, errnum, false, fmt, ap);
        va_end(ap);
        return r;
}

/* A failed call: "entry '<name>': <what>: <strerror>". */
static int failed(struct xctx *c, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int failed(struct xctx *c, int errnum, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = msg_v(c, errnum, true, fmt, ap);
        va_end(ap);
        return r;
}

/* An error of libarchive (or of the framing check under it). */
static int archive_failed(struct xctx *c, struct archive *a, const char *what)
{
        if (c->rd->refused) {
                *c->err = c->rd->err;
                return -c->err->errnum;
        }
        const char *s = archive_error_string(a);
        if (what)
                return refuse(c, EINVAL, "%s: %s", what, s ? s : "unknown error");
        return util_err_setx(c->err, EINVAL, "read the archive: %s", s ? s : "unknown error");
}

static void set_name(struct xctx *c, const char *raw)
{
        util_preview(c->name, raw ? raw : "", SIZE_MAX);
}

/* ---- paths -------------------------------------------------------------- */

static size_t comp_start(const struct relpath *p, size_t i)
{
        return i == 0 ? 0 : p->end[i - 1] + 1;
}

/* The first `k` components of `p` ("." for none) in `buf` (PATH_MAX). */
static const char *prefix(const struct relpath *p, size_t k, char *buf)
{
        if (k == 0)
                return strcpy(buf, ".");
        memcpy(buf, p->s, p->end[k - 1]);
        buf[p->end[k - 1]] = '\0';
        return buf;
}

/* Component `i` of `p` in `buf` (NAME_MAX + 1). */
static const char *component(const struct relpath *p, size_t i, char *buf)
{
        size_t b = comp_start(p, i);
        memcpy(buf, p->s + b, p->end[i] - b);
        buf[p->end[i] - b] = '\0';
        return buf;
}

/*
 * Parses an entry's name into components: "." and empty components are
 * dropped (so "./a//b/" is "a/b"); refused are an empty or absolute name,
 * ".." anywhere (even where it would stay inside), a name of PATH_MAX bytes
 * or more, a component over NAME_MAX. Returns 0, or -EINVAL / -E2BIG with
 * the reason in *why.
 */
static int path_parse(const char *raw, struct relpath *p, const char **why)
{
        if (!raw || !*raw)
                return *why = "an empty name", -EINVAL;
        if (raw[0] == '/')
                return *why = "an absolute path (layers hold paths relative to their root)",
                       -EINVAL;
        if (strlen(raw) >= PATH_MAX)
                return *why = "a name longer than PATH_MAX", -E2BIG;
        p->len = 0;
        p->n = 0;
        for (const char *c = raw; *c;) {
                size_t l = strcspn(c, "/");
                if (l == 2 && c[0] == '.' && c[1] == '.')
                        return *why = "path escapes the layer root ('..')", -EINVAL;
                if (l > NAME_MAX)
                        return *why = "a name component longer than NAME_MAX", -E2BIG;
                if (l > 0 && !(l == 1 && c[0] == '.')) {
                        if (p->len)
                                p->s[p->len++] = '/';
                        memcpy(p->s + p->len, c, l);
                        p->len += l;
                        p->end[p->n++] = p->len;
                }
                c += l;
                if (*c == '/')
                        c++;
        }
        p->s[p->len] = '\0';
        return 0;
}

static int open_beneath(int dirfd, const char *path, int flags)
{
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        };
        /* EAGAIN: a rename elsewhere raced the lookup (none happen in the
         * jail, but the kernel may still say so): retry, bounded. */
        for (int i = 0; i < 16; i++) {
                long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
                if (fd >= 0)
                        return (int)fd;
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;
        }
        return -EAGAIN;
}

/* A failed resolution of `what` (a path of the layer) as a refusal. */
static int resolve_failed(struct xctx *c, int r, const char *what)
{
        switch (-r) {
        case EXDEV:
                return refuse(c, EINVAL,
                              "path escapes the layer root (through a symlink at or "
                              "above '%s')",
                              what);
        case ELOOP:
                return refuse(c, EINVAL, "too many symlinks resolving '%s'", what);
        case ENOTDIR:
                return refuse(c, EINVAL, "'%s' is not a directory", what);
        default:
                return failed(c, r, "open '%s'", what);
        }
}

static bool is_whiteout(const struct stat *st)
{
        return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

/* ---- the layer's path set ----------------------------------------------- */

static int pnode_cmp(const void *a, const void *b)
{
        return strcmp(((const struct pnode *)a)->path, ((const struct pnode *)b)->path);
}

static void pnode_free(void *p)
{
        struct pnode *n = p;
        free(n->path);
        free(n);
}

static unsigned paths_get(struct xctx *c, const char *path)
{
        struct pnode key = {.path = (char *)path};
        void *f = tfind(&key, &c->paths, pnode_cmp);
        return f ? (*(struct pnode **)f)->flags : 0;
}

/* Sets (`replace`) or adds `flags` for `path`. */
static int paths_put(struct xctx *c, const char *path, unsigned flags, bool replace)
{
        struct pnode key = {.path = (char *)path};
        void *f = tfind(&key, &c->paths, pnode_cmp);
        if (f) {
                struct pnode *n = *(struct pnode **)f;
                n->flags = replace ? flags : n->flags | flags;
                return 0;
        }
        struct pnode *n = calloc(1, sizeof(*n));
        if (!n || !(n->path = strdup(path))) {
                free(n);
                return refuse(c, ENOMEM, "out of memory");
        }
        n->flags = flags;
        if (!tsearch(n, &c->paths, pnode_cmp)) {
                pnode_free(n);
                return refuse(c, ENOMEM, "out of memory");
        }
        return 0;
}

/* Records an applied entry (and, merged, the directories holding it: an
 * opaque marker must keep them). */
static int paths_record(struct xctx *c, const struct relpath *p, bool file)
{
        char buf[PATH_MAX];
        int r = paths_put(c, p->s, PATH_LAYER | (file ? PATH_FILE : 0), true);
        for (size_t k = 1; r >= 0 && c->mode == SNAP_APPLY_MERGED && k < p->n; k++)
                r = paths_put(c, prefix(p, k, buf), PATH_LAYER, false);
        return r;
}

/* ---- removing ----------------------------------------------------------- */

static int clear_dir(struct xctx *c, int fd, const char *layer_path);

/* Removes directory `name` in `dirfd` with everything in it. */
static int remove_tree(struct xctx *c, int dirfd, const char *name)
{
        _cleanup_close_ int fd =
                openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;

        if (fd < 0)
                return failed(c, errno, "open '%s' to remove it", name);
        if (fstat(fd, &st) < 0)
                return failed(c, errno, "stat '%s'", name);
        if (st.st_dev != c->root_dev)
                return refuse(c, EXDEV, "'%s' is on another filesystem", name);
        int r = clear_dir(c, fd, NULL);
        if (r < 0)
                return r;
        if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
                return failed(c, errno, "remove '%s'", name);
        return 0;
}

UTIL_DEFINE_FREE_FUNC(DIR, closedir)

/*
 * Empties directory `fd`. With `layer_path` (merged mode's opaque marker),
 * only of what this layer did not put there: children recorded in the path
 * set stay (directories among them are cleared the same way), the rest go.
 */
static int clear_dir(struct xctx *c, int fd, const char *layer_path)
{
        _cleanup_(closedirp) DIR *d = NULL;
        char **names = NULL;
        size_t n = 0, cap = 0;
        int r = 0;

        int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || !(d = fdopendir(dfd))) {
                r = failed(c, errno, "read a directory");
                if (dfd >= 0 && !d)
                        close(dfd);
                return r;
        }
        /* Names first, then changes: no removal while the directory is read. */
        for (struct dirent *de; (errno = 0, de = readdir(d));) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (n == cap) {
                        cap = cap ? 2 * cap : 16;
                        char **nn = realloc(names, cap * sizeof(*names));
                        if (!nn) {
                                r = refuse(c, ENOMEM, "out of memory");
                                goto out;
                        }
                        names = nn;
                }
                if (!(names[n] = strdup(de->d_name))) {
                        r = refuse(c, ENOMEM, "out of memory");
                        goto out;
                }
                n++;
        }
        if (errno) {
                r = failed(c, errno, "read a directory");
                goto out;
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                struct stat st;
                char child[PATH_MAX];
                bool keep = false;
                if (layer_path) {
                        /* The root's lost+found belongs to the filesystem. */
                        if (!*layer_path && !strcmp(names[i], "lost+found"))
                                continue;
                        int len = snprintf(child, sizeof(child), "%s%s%s", layer_path,
                                           *layer_path ? "/" : "", names[i]);
                        keep = len < (int)sizeof(child) && (paths_get(c, child) & PATH_LAYER);
                }
                if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = failed(c, errno, "stat '%s'", names[i]);
                } else if (S_ISDIR(st.st_mode) && keep) {
                        _cleanup_close_ int sub = openat(
                                fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        r = sub < 0 ? failed(c, errno, "open '%s'", child)
                                    : clear_dir(c, sub, child);
                } else if (S_ISDIR(st.st_mode)) {
                        r = remove_tree(c, fd, names[i]);
                } else if (!keep && unlinkat(fd, names[i], 0) < 0) {
                        r = failed(c, errno, "remove '%s'", names[i]);
                }
        }
out:
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return r;
}

/* Removes what is at `name` in `dirfd` (recursively). A directory stays
 * when `keep_dir`: returns 1 then; 0 when nothing is there (any more). */
static int remove_existing(struct xctx *c, int dirfd, const char *name, bool keep_dir,
                           struct stat *ret_st)
{
        struct stat st;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                return failed(c, errno, "stat '%s'", name);
        }
        if (ret_st)
                *ret_st = st;
        if (S_ISDIR(st.st_mode)) {
                if (keep_dir)
                        return 1;
                return remove_tree(c, dirfd, name);
        }
        if (unlinkat(dirfd, name, 0) < 0)
                return failed(c, errno, "remove '%s'", name);
        return 0;
}

/* ---- parent directories ------------------------------------------------- */

/*
 * Where a directory of entry `p` is missing, makes it: overlay mode copies
 * the mode and owner the parent layers give it (a layer that omits a
 * directory entry must not change it), or makes it opaque when this layer
 * whited it out; otherwise mode 0755, owner 0:0. For a whiteout entry
 * (`whiteout`), a directory is made only when the parent layers have it
 * (there is something to hide); where nothing is below, *ret_fd is -1.
 */
static int make_parents(struct xctx *c, const struct relpath *p, bool whiteout, int *ret_fd)
{
        _cleanup_close_ int cur = open_beneath(c->root_fd, ".", O_RDONLY | O_DIRECTORY);
        char pre[PATH_MAX], comp[NAME_MAX + 1];

        if (cur < 0)
                return failed(c, -cur, "open the layer root");
        for (size_t i = 0; i + 1 < p->n; i++) {
                prefix(p, i + 1, pre);
                component(p, i, comp);
                int fd = open_beneath(c->root_fd, pre, O_RDONLY | O_DIRECTORY);
                if (fd >= 0) {
                        util_closep(&cur);
                        cur = fd;
                        continue;
                }
                if (fd != -ENOENT && fd != -ENOTDIR)
                        return resolve_failed(c, fd, pre);

                struct stat st;
                bool opaque = false;
                if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                        if (c->mode == SNAP_APPLY_OVERLAY && is_whiteout(&st)) {
                                /* Deleted earlier: below it there is nothing
                                 * left to hide; a new one hides all below. */
                                if (whiteout) {
                                        *ret_fd = -1;
                                        return 0;
                                }
                                if (unlinkat(cur, comp, 0) < 0)
                                        return failed(c, errno, "remove whiteout '%s'", pre);
                                opaque = true;
                        } else if (S_ISLNK(st.st_mode)) {
                                return refuse(c, EINVAL,
                                              "'%s' is a symlink that does not lead to a "
                                              "directory beneath the layer root",
                                              pre);
                        } else {
                                return refuse(c, EINVAL, "'%s' is not a directory", pre);
                        }
                } else if (errno != ENOENT) {
                        return failed(c, errno, "stat '%s'", pre);
                }

                mode_t mode = 0755;
                uid_t uid = 0;
                gid_t gid = 0;
                bool below = false;
                if (!opaque && c->mode == SNAP_APPLY_OVERLAY && c->lower_fd >= 0) {
                        _cleanup_close_ int l = open_beneath(c->lower_fd, pre, O_PATH | O_NOFOLLOW);
                        if (l >= 0 && fstat(l, &st) < 0)
                                return failed(c, errno, "stat '%s' in the parent layers", pre);
                        if ((l >= 0 && !S_ISDIR(st.st_mode)) || l == -ENOTDIR || l == -EXDEV ||
                            l == -ELOOP)
                                return refuse(c, EINVAL,
                                              "'%s' is not a directory in the parent layers", pre);
                        if (l < 0 && l != -ENOENT)
                                return failed(c, -l, "open '%s' in the parent layers", pre);
                        if (l >= 0) {
                                below = true;
                                mode = st.st_mode & 07777;
                                uid = st.st_uid;
                                gid = st.st_gid;
                        }
                }
                if (whiteout && !below) {
                        *ret_fd = -1;
                        return 0;
                }
                if (mkdirat(cur, comp, 0700) < 0)
                        return failed(c, errno, "create '%s'", pre);
                fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return failed(c, errno, "open '%s'", pre);
                util_closep(&cur);
                cur = fd;
                if (fchown(cur, uid, gid) < 0 || fchmod(cur, mode) < 0)
                        return failed(c, errno, "set the owner and mode of '%s'", pre);
                if (opaque && fsetxattr(cur, OPAQUE_XATTR, "y", 1, 0) < 0)
                        return failed(c, errno, "make '%s' opaque", pre);
        }
        *ret_fd = TAKE_FD(cur);
        return 0;
}

/* The directory that holds entry `p` (p->n >= 1), made where missing (see
 * make_parents). *ret_fd is -1 when a whiteout has nothing to hide. */
static int parent_open(struct xctx *c, const struct relpath *p, bool whiteout, int *ret_fd)
{
        char pre[PATH_MAX];
        int fd = open_beneath(c->root_fd, prefix(p, p->n - 1, pre), O_RDONLY | O_DIRECTORY);

        if (fd >= 0) {
                *ret_fd = fd;
                return 0;
        }
        if (fd != -ENOENT && fd != -ENOTDIR)
                return resolve_failed(c, fd, pre);
        if (whiteout && c->mode == SNAP_APPLY_MERGED) {
                /* Nothing there to delete. */
                *ret_fd = -1;
                return 0;
        }
        return make_parents(c, p, whiteout, ret_fd);
}

/* ---- metadata ----------------------------------------------------------- */

static bool xattr_allowed(const char *name, const char **why)
{
        static const char *const overlay[] = {"trusted.overlay.", "user.overlay."};
        static const char *const ok[] = {"user.", "security.", "trusted."};

        for (size_t i = 0; i < UTIL_ARRAY_SIZE(overlay); i++)
                if (!strncmp(name, overlay[i], strlen(overlay[i])))
                        return *why = "overlayfs metadata may not come from a layer", false;
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(ok); i++)
                if (!strncmp(name, ok[i], strlen(ok[i])) && name[strlen(ok[i])])
                        return true;
        if (!strcmp(name, "system.posix_acl_access") || !strcmp(name, "system.posix_acl_default"))
                return true;
        return *why = "not a user.*, security.*, trusted.* or POSIX ACL xattr", false;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
        ts[1] = (struct timespec){.tv_nsec = UTIME_OMIT};
        if (archive_entry_mtime_is_set(e)) {
                ts[1].tv_sec = archive_entry_mtime(e);
                long ns = archive_entry_mtime_nsec(e);
                ts[1].tv_nsec = ns >= 0 && ns < 1000000000L ? ns : 0;
        }
        ts[0] = ts[1];
        if (archive_entry_atime_is_set(e)) {
                ts[0].tv_sec = archive_entry_atime(e);
                long ns = archive_entry_atime_nsec(e);
                ts[0].tv_nsec = ns >= 0 && ns < 1000000000L ? ns : 0;
        }
}

/* Everything about an entry's metadata is checked before it is written. */
static int meta_check(struct xctx *c, struct archive_entry *e, struct meta *m)
{
        la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
        const char *name, *why;
        const void *value;
        size_t size;

        if (uid < 0 || uid > (la_int64_t)UINT32_MAX - 1)
                return refuse(c, EINVAL, "owner %lld is out of range", (long long)uid);
        if (gid < 0 || gid > (la_int64_t)UINT32_MAX - 1)
                return refuse(c, EINVAL, "group %lld is out of range", (long long)gid);
        m->uid = (uid_t)uid;
        m->gid = (gid_t)gid;
        m->mode = archive_entry_perm(e) & 07777;
        entry_times(e, m->ts);

        int n = archive_entry_xattr_reset(e);
        if (n > (int)XATTR_COUNT_MAX)
                return refuse(c, E2BIG, "%d xattrs, more than the limit of %u", n, XATTR_COUNT_MAX);
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
                char pv[UTIL_PREVIEW_SIZE];
                util_preview(pv, name ? name : "", SIZE_MAX);
                if (!name || !*name || strlen(name) > XATTR_NAME_LEN_MAX)
                        return refuse(c, EINVAL, "xattr name '%s' is empty or too long", pv);
                if (size > XATTR_VALUE_MAX)
                        return refuse(c, E2BIG, "xattr '%s' of %zu bytes is over the limit of %u",
                                      pv, size, XATTR_VALUE_MAX);
                if (!xattr_allowed(name, &why))
                        return refuse(c, EINVAL, "xattr '%s' is refused: %s", pv, why);
        }
        return 0;
}

/* Sets the entry's xattrs on `fd`, or on symlink `name` in `dirfd` when
 * `fd` is -1 (no descriptor can name a symlink for setxattr: by path from
 * the directory, which is the working directory for the call). */
static int xattrs_apply(struct xctx *c, struct archive_entry *e, int fd, int dirfd,
                        const char *name)
{
        const char *xn;
        const void *v;
        size_t sz;

        if (archive_entry_xattr_reset(e) == 0)
                return 0;
        if (fd < 0 && fchdir(dirfd) < 0)
                return failed(c, errno, "enter the directory of '%s'", name);
        while (archive_entry_xattr_next(e, &xn, &v, &sz) == ARCHIVE_OK) {
                int r = fd >= 0 ? fsetxattr(fd, xn, v, sz, 0) : lsetxattr(name, xn, v, sz, 0);
                if (r < 0)
                        return failed(c, errno, "set xattr '%s'", xn);
        }
        return 0;
}

/* Owner, xattrs, mode, times on an open file or directory. Owner first
 * (chown clears setuid/setgid and file capabilities), mode after it. */
static int meta_apply(struct xctx *c, struct archive_entry *e, int fd, const struct meta *m,
                      bool times)
{
        int r;
        if (fchown(fd, m->uid, m->gid) < 0)
                return failed(c, errno, "set the owner to %u:%u", m->uid, m->gid);
        if ((r = xattrs_apply(c, e, fd, -1, NULL)) < 0)
                return r;
        if (fchmod(fd, m->mode) < 0)
                return failed(c, errno, "set the mode to %04o", m->mode);
        if (times && futimens(fd, m->ts) < 0)
                return failed(c, errno, "set the times");
        return 0;
}

static int dir_time_defer(struct xctx *c, const char *path, const struct timespec ts[2])
{
        if (c->n_dirs == c->cap_dirs) {
                size_t cap = c->cap_dirs ? 2 * c->cap_dirs : 64;
                struct dirtime *d = realloc(c->dirs, cap * sizeof(*d));
                if (!d)
                        return refuse(c, ENOMEM, "out of memory");
                c->dirs = d;
                c->cap_dirs = cap;
        }
        char *p = strdup(path);
        if (!p)
                return refuse(c, ENOMEM, "out of memory");
        c->dirs[c->n_dirs].path = p;
        c->dirs[c->n_dirs].ts[0] = ts[0];
        c->dirs[c->n_dirs].ts[1] = ts[1];
        c->n_dirs++;
        return 0;
}

/* Directories get their times after their contents are written. */
static int dir_times_apply(struct xctx *c)
{
        for (size_t i = c->n_dirs; i-- > 0;) {
                const char *p = c->dirs[i].path;
                _cleanup_close_ int fd =
                        open_beneath(c->root_fd, *p ? p : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
                /* Gone or replaced by a later entry of the layer: its times are moot. */
                if (fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP)
                        continue;
                util_preview(c->name, *p ? p : ".", SIZE_MAX);
                if (fd < 0)
                        return failed(c, -fd, "open to set its times");
                if (futimens(fd, c->dirs[i].ts) < 0)
                        return failed(c, errno, "set the times");
        }
        return 0;
}

/* ---- entries ------------------------------------------------------------ */

static const char *basename_of(const struct relpath *p)
{
        return p->s + comp_start(p, p->n - 1);
}

static int write_all_at(int fd, const void *buf, size_t len, off_t off)
{
        const char *b = buf;
        while (len > 0) {
                ssize_t n = pwrite(fd, b, len, off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                b += n;
                len -= (size_t)n;
                off += n;
        }
        return 0;
}

static int do_file(struct xctx *c, struct archive *a, struct archive_entry *e, int dirfd,
                   const char *name, const struct meta *m)
{
        int r = remove_existing(c, dirfd, name, false, NULL);
        if (r < 0)
                return r;
        _cleanup_close_ int fd =
                openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return failed(c, errno, "create");

        la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        if (size < 0)
                return refuse(c, EINVAL, "a negative size");
        for (;;) {
                const void *buf;
                size_t len;
                la_int64_t off;
                r = archive_read_data_block(a, &buf, &len, &off);
                if (r == ARCHIVE_EOF)
                        break;
                if (r != ARCHIVE_OK)
                        return archive_failed(c, a, "read its data");
                if (off < 0 || off > size || (uint64_t)len > (uint64_t)(size - off))
                        return refuse(c, EINVAL, "data beyond the entry's size");
                if ((r = write_all_at(fd, buf, len, (off_t)off)) < 0)
                        return failed(c, r, "write");
        }
        if (ftruncate(fd, (off_t)size) < 0)
                return failed(c, errno, "set the size");
        if ((r = meta_apply(c, e, fd, m, true)) < 0)
                return r;
        return 0;
}

static int do_dir(struct xctx *c, struct archive_entry *e, int dirfd, const char *name,
                  const struct meta *m)
{
        _cleanup_close_ int fd = -EBADF;
        bool opaque = false;
        int r;

        if (!name) {
                /* The layer root itself ("./"). */
                fd = open_beneath(c->root_fd, ".", O_RDONLY | O_DIRECTORY);
                if (fd < 0)
                        return failed(c, -fd, "open the layer root");
        } else {
                struct stat st = {0};
                r = remove_existing(c, dirfd, name, true, &st);
                if (r < 0)
                        return r;
                if (r == 0) {
                        /* Overlay: a directory this layer deleted and made
                         * again hides what is below (as overlayfs does). */
                        opaque = c->mode == SNAP_APPLY_OVERLAY && is_whiteout(&st);
                        if (mkdirat(dirfd, name, 0700) < 0)
                                return failed(c, errno, "create");
                }
                fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return failed(c, errno, "open");
        }
        if ((r = meta_apply(c, e, fd, m, false)) < 0)
                return r;
        if (opaque && fsetxattr(fd, OPAQUE_XATTR, "y", 1, 0) < 0)
                return failed(c, errno, "make it opaque");
        return dir_time_defer(c, c->path.s, m->ts);
}

static int do_symlink(struct xctx *c, struct archive_entry *e, int dirfd, const char *name,
                      const struct meta *m)
{
        const char *target = archive_entry_symlink(e);
        int r;

        if (!target || !*target)
                return refuse(c, EINVAL, "a symlink without a target");
        if (strlen(target) >= PATH_MAX)
                return refuse(c, E2BIG, "a symlink target longer than PATH_MAX");
        if ((r = remove_existing(c, dirfd, name, false, NULL)) < 0)
                return r;
        /* The target is stored as it is: nothing here ever follows it. */
        if (symlinkat(target, dirfd, name) < 0)
                return failed(c, errno, "create the symlink");
        if (fchownat(dirfd, name, m->uid, m->gid, AT_SYMLINK_NOFOLLOW) < 0)
                return failed(c, errno, "set the owner to %u:%u", m->uid, m->gid);
        if ((r = xattrs_apply(c, e, -1, dirfd, name)) < 0)
                return r;
        if (utimensat(dirfd, name, m->ts, AT_SYMLINK_NOFOLLOW) < 0)
                return failed(c, errno, "set the times");
        return 0;
}

/* FIFOs are allowed: they are inert files that images do carry (e.g. for
 * init systems); device nodes and sockets are not. */
static int do_fifo(struct xctx *c, struct archive_entry *e, int dirfd, const char *name,
                   const struct meta *m)
{
        int r = remove_existing(c, dirfd, name, false, NULL);
        if (r < 0)
                return r;
        if (mknodat(dirfd, name, S_IFIFO | 0600, 0) < 0)
                return failed(c, errno, "create the FIFO");
        /* Opening the read end without blocking needs no writer. */
        _cleanup_close_ int fd =
                openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return failed(c, errno, "open the FIFO");
        return meta_apply(c, e, fd, m, true);
}

static int do_hardlink(struct xctx *c, const char *raw_target)
{
        struct relpath *p = &c->path, *t = &c->target;
        char pre[PATH_MAX], tname[NAME_MAX + 1], tv[UTIL_PREVIEW_SIZE];
        const char *why;
        struct stat st, ts;
        int r;

        util_preview(tv, raw_target, SIZE_MAX);
        if (p->n == 0)
                return refuse(c, EINVAL, "the layer root cannot be a hard link");
        if ((r = path_parse(raw_target, t, &why)) < 0)
                return refuse(c, -r, "hard link target '%s': %s", tv, why);
        if (t->n == 0 || strcmp(t->s, p->s) == 0 || !(paths_get(c, t->s) & PATH_FILE))
                return refuse(c, EINVAL,
                              "hard link target '%s' is not a file extracted earlier from this "
                              "layer",
                              tv);
        _cleanup_close_ int tdir =
                open_beneath(c->root_fd, prefix(t, t->n - 1, pre), O_RDONLY | O_DIRECTORY);
        if (tdir < 0)
                return resolve_failed(c, tdir, pre);
        component(t, t->n - 1, tname);
        if (fstatat(tdir, tname, &ts, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(ts.st_mode))
                return refuse(c, EINVAL,
                              "hard link target '%s' is not a file extracted earlier from this "
                              "layer",
                              tv);

        _cleanup_close_ int dir = -EBADF;
        if ((r = parent_open(c, p, false, &dir)) < 0)
                return r;
        const char *name = basename_of(p);
        if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == ts.st_dev &&
            st.st_ino == ts.st_ino)
                return paths_record(c, p, true); /* linked already */
        if ((r = remove_existing(c, dir, name, false, NULL)) < 0)
                return r;
        if (linkat(tdir, tname, dir, name, 0) < 0)
                return failed(c, errno, "link to '%s'", tv);
        return paths_record(c, p, true);
}

/* `.wh.<name>` and `.wh..wh..opq` (OCI image-spec, layer.md). */
static int do_whiteout(struct xctx *c, const char *base)
{
        struct relpath *p = &c->path;
        _cleanup_close_ int dir = -EBADF;
        int r;

        if (!strcmp(base, ".wh..wh..opq")) {
                if ((r = parent_open(c, p, true, &dir)) < 0 || dir < 0)
                        return r;
                if (c->mode == SNAP_APPLY_OVERLAY) {
                        if (fsetxattr(dir, OPAQUE_XATTR, "y", 1, 0) < 0)
                                return failed(c, errno, "make the directory opaque");
                        return 0;
                }
                char pre[PATH_MAX];
                prefix(p, p->n - 1, pre);
                return clear_dir(c, dir, p->n > 1 ? pre : "");
        }
        if (!strncmp(base, ".wh..wh.", 8))
                return refuse(c, EINVAL, "unknown whiteout metadata (only .wh..wh..opq is)");
        const char *victim = base + 4;
        if (!*victim || !strcmp(victim, ".") || !strcmp(victim, ".."))
                return refuse(c, EINVAL, "a whiteout of nothing");
        if ((r = parent_open(c, p, true, &dir)) < 0 || dir < 0)
                return r;
        if ((r = remove_existing(c, dir, victim, false, NULL)) < 0)
                return r;
        if (c->mode == SNAP_APPLY_OVERLAY && mknodat(dir, victim, S_IFCHR, makedev(0, 0)) < 0)
                return failed(c, errno, "create the overlay whiteout");
        return 0;
}

static int apply_entry(struct xctx *c, struct archive *a, struct archive_entry *e)
{
        struct relpath *p = &c->path;
        const char *raw = archive_entry_pathname(e), *why;
        struct meta m;
        int r;

        set_name(c, raw);
        if (!raw)
                return refuse(c, EINVAL, "a name that cannot be read (not valid UTF-8?)");
        if ((r = path_parse(raw, p, &why)) < 0)
                return refuse(c, -r, "%s", why);
        for (size_t i = 0; i + 1 < p->n; i++)
                if (!strncmp(p->s + comp_start(p, i), ".wh.", 4))
                        return refuse(c, EINVAL, "a whiteout name inside the path");
        if (p->n && !strncmp(basename_of(p), ".wh.", 4))
                return do_whiteout(c, basename_of(p));
        const char *hardlink = archive_entry_hardlink(e);
        if (hardlink)
                return do_hardlink(c, hardlink);

        mode_t type = archive_entry_filetype(e);
        switch (type) {
        case AE_IFREG:
        case AE_IFDIR:
        case AE_IFLNK:
        case AE_IFIFO:
                break;
        case AE_IFCHR:
        case AE_IFBLK:
                return refuse(c, EINVAL,
                              "a %s device node (%u:%u): layers may not carry device nodes "
                              "(whiteouts are .wh. entries)",
                              type == AE_IFCHR ? "character" : "block",
                              (unsigned)archive_entry_rdevmajor(e),
                              (unsigned)archive_entry_rdevminor(e));
        case AE_IFSOCK:
                return refuse(c, EINVAL, "a socket: layers may not carry sockets");
        default:
                return refuse(c, EINVAL, "unknown entry type 0%o", (unsigned)type);
        }
        /* A copy the analyzer can follow past meta_check(c, ...): with no
         * component (the root) the type is a directory, so name is set
         * for every other type. */
        const size_t n = p->n;
        if (n == 0 && type != AE_IFDIR)
                return refuse(c, EINVAL, "the layer root must be a directory");
        if ((r = meta_check(c, e, &m)) < 0)
                return r;

        _cleanup_close_ int dir = -EBADF;
        const char *name = NULL;
        if (n > 0) {
                if ((r = parent_open(c, p, false, &dir)) < 0)
                        return r;
                name = basename_of(p);
        }
        switch (type) {
        case AE_IFREG:
                r = do_file(c, a, e, dir, name, &m);
                break;
        case AE_IFDIR:
                r = do_dir(c, e, dir, name, &m);
                break;
        case AE_IFLNK:
                r = do_symlink(c, e, dir, name, &m);
                break;
        default:
                r = do_fifo(c, e, dir, name, &m);
                break;
        }
        if (r < 0)
                return r;
        return p->n ? paths_record(c, p, type == AE_IFREG) : 0;
}

static int extract(struct xctx *c)
{
        struct reader *rd = c->rd;
        struct archive_entry *e;
        int r;

        /* Opening already reads (to detect the compression): behind the walls. */
        r = archive_read_open(rd->outer, rd, NULL, outer_read, NULL);
        if (r == ARCHIVE_OK)
                r = archive_read_next_header(rd->outer, &e);
        if (r != ARCHIVE_OK) {
                const char *s = archive_error_string(rd->outer);
                return util_err_setx(c->err, EINVAL, "read the layer: %s",
                                     s ? s : "empty or unreadable");
        }
        if (archive_read_open(rd->inner, rd, NULL, inner_read, NULL) != ARCHIVE_OK)
                return archive_failed(c, rd->inner, NULL);
        for (;;) {
                r = archive_read_next_header(rd->inner, &e);
                if (r == ARCHIVE_EOF)
                        break;
                /* Warnings too: each means libarchive changed or dropped
                 * something of the entry (a header it ignored, a name it
                 * could not convert). */
                if (r != ARCHIVE_OK)
                        return archive_failed(c, rd->inner, NULL);
                c->entries++;
                if ((r = apply_entry(c, rd->inner, e)) < 0)
                        return r;
        }
        /* The rest of the stream (the end blocks, padding) counts for the
         * diff id and must be zeros. */
        la_ssize_t n;
        while ((n = pull(rd)) > 0)
                ;
        if (n < 0) {
                if (rd->refused) {
                        *c->err = rd->err;
                        return -c->err->errnum;
                }
                const char *s = archive_error_string(rd->outer);
                return util_err_setx(c->err, EINVAL, "read the layer: %s",
                                     s ? s : "decompression failed");
        }
        if ((r = snap_tar_scan_finish(&rd->scan, c->err)) < 0)
                return r;
        return dir_times_apply(c);
}

struct snap_extract {
        struct reader rd;
        struct xctx c;
};

int snap_extract_new(enum snap_apply_mode mode, struct snap_sha256 *sha, struct snap_extract **ret,
                     struct util_err *err)
{
        struct snap_extract *x = calloc(1, sizeof(*x)); /* 256 KiB of buffers, 40 KiB of paths */
        if (!x) {
                snap_sha256_free(sha);
                return util_err_set(err, ENOMEM, "extract");
        }
        x->rd.sha = sha;
        x->rd.fd = -EBADF;
        snap_tar_scan_init(&x->rd.scan);
        x->c = (struct xctx){.mode = mode, .rd = &x->rd, .root_fd = -EBADF, .lower_fd = -EBADF};
        x->rd.outer = archive_read_new();
        x->rd.inner = archive_read_new();
        if (!x->rd.outer || !x->rd.inner) {
                snap_extract_free(x);
                return util_err_set(err, ENOMEM, "libarchive");
        }
        if (archive_read_support_filter_gzip(x->rd.outer) != ARCHIVE_OK ||
            archive_read_support_filter_zstd(x->rd.outer) != ARCHIVE_OK ||
            archive_read_support_format_raw(x->rd.outer) != ARCHIVE_OK ||
            archive_read_support_format_tar(x->rd.inner) != ARCHIVE_OK) {
                const char *s = archive_error_string(x->rd.outer);
                util_err_setx(err, EOPNOTSUPP,
                              "libarchive lacks built-in gzip/zstd/tar support: %s", s ? s : "?");
                snap_extract_free(x);
                return -EOPNOTSUPP;
        }
        *ret = x;
        return 0;
}

int snap_extract_run(struct snap_extract *x, int data_fd, int root_fd, int lower_fd,
                     struct snap_apply_report *rep, struct util_err *err)
{
        struct xctx *c = &x->c;
        struct stat st;
        int r;

        x->rd.fd = data_fd;
        c->root_fd = root_fd;
        c->lower_fd = lower_fd;
        c->err = err;
        if (fstat(root_fd, &st) < 0)
                return util_err_set(err, errno, "stat the layer root");
        c->root_dev = st.st_dev;
        r = extract(c);
        rep->entries = c->entries;
        rep->uncompressed_size = x->rd.total;
        if (r >= 0 && snap_sha256_final(x->rd.sha, rep->diff_id) < 0)
                r = util_err_set(err, EIO, "sha256");
        return r;
}

struct snap_extract *snap_extract_free(struct snap_extract *x)
{
        if (!x)
                return NULL;
        if (x->rd.outer)
                archive_read_free(x->rd.outer);
        if (x->rd.inner)
                archive_read_free(x->rd.inner);
        snap_sha256_free(x->rd.sha);
        snap_tar_scan_done(&x->rd.scan);
        tdestroy(x->c.paths, pnode_free);
        for (size_t i = 0; i < x->c.n_dirs; i++)
                free(x->c.dirs[i].path);
        free(x->c.dirs);
        free(x);
        return NULL;
}
