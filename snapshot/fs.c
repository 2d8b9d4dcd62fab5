/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Filesystem backends (STYLE R5): one const ops table per type, registered in
 * one table keyed by name. A backend knows how to format an image file
 * non-interactively with the root directory owned by a given uid:gid, and how
 * to recognise its own superblock.
 *
 * The mkfs tools run as children through posix_spawn: stdin and stdout are
 * /dev/null, stderr is a pipe whose first line goes into the error message,
 * every other descriptor is closed, signals are reset to their defaults and
 * the environment is a fixed minimal one (PATH, LC_ALL=C), so neither the
 * caller's environment nor a mke2fs.conf override picked up through
 * MKE2FS_CONFIG changes the result. The tools are looked up in fixed
 * directories, never through the caller's PATH.
 *
 * Measured flags (research/limits.md §6, 1 GiB sparse file on ext4):
 *   mkfs.ext4 -E lazy_itable_init=1,lazy_journal_init=1: ~6 ms, 0.6 MiB
 *     allocated (the default zeroes the journal: 32.6 MiB). Discard is left
 *     on on purpose: on a regular file mke2fs punches the whole file, and
 *     because a punched file reads back as zeros it then marks every inode
 *     table ITABLE_ZEROED (checked with dumpe2fs). Without that, the
 *     kernel's ext4lazyinit thread would zero the inode tables after the
 *     first mount of every clone (~16 MiB written per 1 GiB clone).
 *   -O ^resize_inode: no blocks reserved in every backup group for growing
 *     the filesystem online (images are never grown in place): a 10 GiB
 *     template goes from 4.3 MiB allocated in 17 extents to 0.23 MiB, which
 *     every clone copies and every remove frees.
 *   mkfs.xfs: ~5 ms, 64 MiB allocated at any size (the log is written).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "snapshot/image.h"

/* Where the mkfs tools live on Debian (and every other distribution). */
static const char *const fs_tool_dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};

/* The children's whole environment. LC_ALL=C keeps the messages we quote in
 * errors in one language. */
static char *const fs_tool_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};

/* Smallest sizes we format. mke2fs below 2 MiB drops the journal ("Filesystem
 * too small for a journal") and fails outright at 64 KiB; mkfs.xfs refuses
 * filesystems below 300 MB since xfsprogs 5.19 ("Filesystem must be larger
 * than 300MB"). Checked before spawning so the caller gets EINVAL. */
#define FS_EXT4_MIN_SIZE (UINT64_C(2) << 20)
#define FS_XFS_MIN_SIZE  (UINT64_C(300) << 20)

/* The fd number at which the xfs protofile is handed to mkfs.xfs. */
#define FS_PROTO_FD 3

/*
 * Finds `tool` in fs_tool_dirs; `package` names the Debian package for the
 * message. Returns: 0 and the path in buf, or -ENOENT with err filled.
 */
static int fs_tool_find(const char *tool, const char *package, char *buf, size_t size,
                        struct util_err *err)
{
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(fs_tool_dirs); i++) {
                int n = snprintf(buf, size, "%s/%s", fs_tool_dirs[i], tool);
                if (n < 0 || (size_t)n >= size)
                        continue;
                if (access(buf, X_OK) == 0)
                        return 0;
        }
        return util_err_setx(err, ENOENT, "%s not found (Debian package %s)", tool, package);
}

/* Moves `fd` to a number >= min (keeping O_CLOEXEC), so that the child's
 * dup2 onto 0..min-1 never clobbers it. Returns the fd or -errno; on failure
 * `fd` is closed. */
static int fd_move_above(int fd, int min)
{
        if (fd >= min)
                return fd;
        int nfd = fcntl(fd, F_DUPFD_CLOEXEC, min);
        int saved = errno;
        close(fd);
        if (nfd < 0)
                return -saved;
        return nfd;
}

/* Keeps the first line of `text` (at most `size` - 1 bytes) in buf. */
static void first_line(const char *text, char *buf, size_t size)
{
        size_t len = strcspn(text, "\n");
        if (len >= size)
                len = size - 1;
        memcpy(buf, text, len);
        buf[len] = '\0';
}

UTIL_DEFINE_FREE_FUNC(posix_spawn_file_actions_t, posix_spawn_file_actions_destroy)
UTIL_DEFINE_FREE_FUNC(posix_spawnattr_t, posix_spawnattr_destroy)

/*
 * Runs argv[0] (an absolute path) with argv; `proto_fd` (>= 0) is passed to
 * the child as fd FS_PROTO_FD. Waits for it and reads its stderr to EOF
 * (mkfs does not daemonise, so EOF comes at its exit).
 * Returns: 0 when it exited with status 0; -EIO with the exit status and the
 * first line of its stderr in err; -errno when it could not be run.
 */
static int fs_tool_run(char *const argv[], int proto_fd, struct util_err *err)
{
        _cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        /* Point at fa/attr once initialised; destroyed on every return. */
        _cleanup_(posix_spawn_file_actions_destroyp) posix_spawn_file_actions_t *fap = NULL;
        _cleanup_(posix_spawnattr_destroyp) posix_spawnattr_t *attrp = NULL;
        int pipefd[2], r;
        pid_t pid;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return util_err_set(err, errno, "pipe");
        rfd = pipefd[0];
        wfd = pipefd[1];
        /* Keep the pipe (and the protofile fd) above the numbers the child
         * redirects, in case the caller runs with fds 0-2 closed. */
        rfd = fd_move_above(TAKE_FD(rfd), FS_PROTO_FD + 1);
        if (rfd < 0)
                return util_err_set(err, rfd, "fcntl(F_DUPFD_CLOEXEC)");
        wfd = fd_move_above(TAKE_FD(wfd), FS_PROTO_FD + 1);
        if (wfd < 0)
                return util_err_set(err, wfd, "fcntl(F_DUPFD_CLOEXEC)");

        r = posix_spawn_file_actions_init(&fa);
        if (r != 0)
                return util_err_set(err, r, "posix_spawn_file_actions_init");
        fap = &fa;
        r = posix_spawn_file_actions_addopen(fap, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(fap, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(fap, wfd, STDERR_FILENO);
        if (r == 0 && proto_fd >= 0)
                r = posix_spawn_file_actions_adddup2(fap, proto_fd, FS_PROTO_FD);
        /* Nothing else of the caller's reaches the tool (glibc >= 2.34). */
        if (r == 0)
                r = posix_spawn_file_actions_addclosefrom_np(
                        fap, proto_fd >= 0 ? FS_PROTO_FD + 1 : STDERR_FILENO + 1);
        if (r != 0)
                return util_err_set(err, r, "posix_spawn file actions");

        r = posix_spawnattr_init(&attr);
        if (r != 0)
                return util_err_set(err, r, "posix_spawnattr_init");
        attrp = &attr;
        /* A host that ignores SIGPIPE or blocks signals must not pass that
         * on to the tool. */
        sigset_t all, none;
        sigfillset(&all);
        sigemptyset(&none);
        r = posix_spawnattr_setsigdefault(attrp, &all);
        if (r == 0)
                r = posix_spawnattr_setsigmask(attrp, &none);
        if (r == 0)
                r = posix_spawnattr_setflags(attrp, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
        if (r != 0)
                return util_err_set(err, r, "posix_spawnattr");

        r = posix_spawn(&pid, argv[0], fap, attrp, argv, fs_tool_env);
        if (r != 0)
                return util_err_set(err, r, "spawn '%s'", argv[0]);
        /* Our copy of the write end must go, or the read below never sees EOF. */
        util_closep(&wfd);
        wfd = -EBADF;

        /* Read everything, keep the start for the message. */
        char text[1024];
        size_t len = 0;
        for (;;) {
                char chunk[4096];
                ssize_t n = read(rfd, chunk, sizeof(chunk));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break; /* EOF, or a read error: the exit status still counts */
                size_t keep = (size_t)n;
                if (keep > sizeof(text) - 1 - len)
                        keep = sizeof(text) - 1 - len;
                memcpy(text + len, chunk, keep);
                len += keep;
        }
        text[len] = '\0';

        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return util_err_set(err, errno, "waitpid '%s'", argv[0]);

        char line[256];
        first_line(text, line, sizeof(line));
        if (WIFSIGNALED(status))
                return util_err_setx(err, EIO, "%s killed by signal %d%s%s", argv[0],
                                     WTERMSIG(status), line[0] ? ": " : "", line);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return util_err_setx(err, EIO, "%s exited with status %d%s%s", argv[0],
                                     WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                                     line[0] ? ": " : "", line);
        util_debug(UTIL_DBG_SNAP, "%s ok%s%s", argv[0], line[0] ? ": " : "", line);
        return 0;
}

/* Whether fd has `len` bytes equal to `magic` at `off`. */
static bool fs_magic_at(int fd, off_t off, const void *magic, size_t len)
{
        unsigned char buf[8];
        ssize_t n;

        if (len > sizeof(buf))
                return false;
        do
                n = pread(fd, buf, len, off);
        while (n < 0 && errno == EINTR);
        return n == (ssize_t)len && memcmp(buf, magic, len) == 0;
}

static int fs_size_check(const char *path, const char *type, uint64_t min, struct util_err *err)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", path);
        if ((uint64_t)st.st_size < min)
                return util_err_setx(err, EINVAL, "%s needs at least %llu MiB, not %llu bytes",
                                     type, (unsigned long long)(min >> 20),
                                     (unsigned long long)st.st_size);
        return 0;
}

/* ---- ext4 --------------------------------------------------------------- */

int snap_make_upper_work(int dfd, const char *dir, uint32_t uid, uint32_t gid, struct util_err *err)
{
        static const char *const subs[] = {"upper", "work"};
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(subs); k++) {
                char d[PATH_MAX];
                if (snprintf(d, sizeof(d), "%s/%s", dir, subs[k]) >= (int)sizeof(d))
                        return util_err_setx(err, ENAMETOOLONG, "'%s/%s': path too long", dir,
                                             subs[k]);
                /* chmod after the mkdir: the umask must not narrow 0755. */
                if (mkdirat(dfd, d, 0755) < 0 ||
                    fchownat(dfd, d, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ||
                    fchmodat(dfd, d, 0755, 0) < 0)
                        return util_err_set(err, errno, "create '%s'", d);
        }
        return 0;
}

/* A "new-skel-*" directory next to `path` holding upper/ and work/ owned
 * by uid:gid, for mkfs.ext4 -d (which copies owners and modes). Swept like
 * every new-* leftover if we crash. */
static int ext4_skeleton(const char *path, uint32_t uid, uint32_t gid, char *ret, size_t size,
                         struct util_err *err)
{
        const char *slash = strrchr(path, '/');
        int plen = slash ? (int)(slash - path) : 1;
        snprintf(ret, size, "%.*s/new-skel-XXXXXX", plen, slash ? path : ".");
        if (!mkdtemp(ret))
                return util_err_set(err, errno, "create '%s'", ret);
        return snap_make_upper_work(AT_FDCWD, ret, uid, gid, err);
}

static void ext4_skeleton_remove(const char *skel)
{
        char d[4200];
        snprintf(d, sizeof(d), "%s/upper", skel);
        (void)rmdir(d);
        snprintf(d, sizeof(d), "%s/work", skel);
        (void)rmdir(d);
        (void)rmdir(skel);
}

static int ext4_mkfs(const char *path, uint32_t root_uid, uint32_t root_gid, bool overlay_dirs,
                     struct util_err *err)
{
        char tool[64], ext_opts[128], skel[4096] = "";
        int r;

        r = fs_size_check(path, "ext4", FS_EXT4_MIN_SIZE, err);
        if (r < 0)
                return r;
        r = fs_tool_find("mkfs.ext4", "e2fsprogs", tool, sizeof(tool), err);
        if (r < 0)
                return r;
        snprintf(ext_opts, sizeof(ext_opts),
                 "lazy_itable_init=1,lazy_journal_init=1,root_owner=%" PRIu32 ":%" PRIu32, root_uid,
                 root_gid);
        if (overlay_dirs) {
                r = ext4_skeleton(path, root_uid, root_gid, skel, sizeof(skel), err);
                if (r < 0) {
                        if (strstr(skel, "new-skel-") && !strstr(skel, "XXXXXX"))
                                ext4_skeleton_remove(skel);
                        return util_err_prefix(err, "mkfs.ext4 '%s'", path);
                }
        }
        /* -F: no "contains a file system, proceed?" prompt on a regular file
         * (stdin is /dev/null anyway). -q: only errors on stderr. -d: populate
         * from the skeleton (upper/ and work/). */
        char *const argv_d[] = {tool, "-q", "-F",         "-O", "^resize_inode", "-E", ext_opts,
                                "-d", skel, (char *)path, NULL};
        char *const argv_p[] = {tool, "-q",     "-F",         "-O", "^resize_inode",
                                "-E", ext_opts, (char *)path, NULL};
        r = fs_tool_run(overlay_dirs ? argv_d : argv_p, /* proto_fd= */ -1, err);
        if (overlay_dirs)
                ext4_skeleton_remove(skel);
        if (r < 0)
                return util_err_prefix(err, "mkfs.ext4 '%s'", path);
        return 0;
}

/* ext4 (and ext2/3) superblock at byte 1024, s_magic (le16 0xEF53) at +56. */
static bool ext4_magic_ok(int fd)
{
        static const unsigned char magic[2] = {0x53, 0xef};
        return fs_magic_at(fd, 1024 + 56, magic, sizeof(magic));
}

static const struct snap_fs_ops snap_fs_ext4 = {
        .name = "ext4",
        .flags = SNAP_FS_CAN_TRIM,
        .mkfs = ext4_mkfs,
        .magic_ok = ext4_magic_ok,
};

/* ---- xfs ---------------------------------------------------------------- */

/*
 * mkfs.xfs has no root_owner option (xfsprogs 6.1). Its protofile (-p) sets
 * the root directory's mode and owner without mounting anything: a dummy
 * line, two ignored numbers, the root's "d--755 uid gid", and "$" to end the
 * (empty) root directory. The protofile is a memfd handed to the child as
 * fd FS_PROTO_FD, so no temporary file is left anywhere.
 */
static int xfs_mkfs(const char *path, uint32_t root_uid, uint32_t root_gid, bool overlay_dirs,
                    struct util_err *err)
{
        _cleanup_close_ int proto = -EBADF;
        char tool[64], text[256], proto_path[32];
        int r;

        r = fs_size_check(path, "xfs", FS_XFS_MIN_SIZE, err);
        if (r < 0)
                return r;
        r = fs_tool_find("mkfs.xfs", "xfsprogs", tool, sizeof(tool), err);
        if (r < 0)
                return r;

        /* With overlay_dirs the root holds two empty directories, each line
         * "name mode uid gid" followed by its own "$". */
        int len = overlay_dirs
                          ? snprintf(text, sizeof(text),
                                     "loopsnap\n0 0\nd--755 %" PRIu32 " %" PRIu32 "\n"
                                     "upper d--755 %" PRIu32 " %" PRIu32 "\n$\n"
                                     "work d--755 %" PRIu32 " %" PRIu32 "\n$\n$\n",
                                     root_uid, root_gid, root_uid, root_gid, root_uid, root_gid)
                          : snprintf(text, sizeof(text),
                                     "loopsnap\n0 0\nd--755 %" PRIu32 " %" PRIu32 "\n$\n", root_uid,
                                     root_gid);
        proto = memfd_create("loopsnap-xfs-proto", MFD_CLOEXEC);
        if (proto < 0)
                return util_err_set(err, errno, "mkfs.xfs '%s': memfd_create", path);
        proto = fd_move_above(TAKE_FD(proto), FS_PROTO_FD + 1);
        if (proto < 0)
                return util_err_set(err, proto, "mkfs.xfs '%s': fcntl", path);
        ssize_t n = write(proto, text, (size_t)len);
        if (n != len)
                return util_err_set(err, n < 0 ? errno : EIO, "mkfs.xfs '%s': write protofile",
                                    path);

        snprintf(proto_path, sizeof(proto_path), "/proc/self/fd/%d", FS_PROTO_FD);
        /* -f: overwrite whatever signature is there; -q: quiet. */
        char *const argv[] = {tool, "-q", "-f", "-p", proto_path, (char *)path, NULL};
        r = fs_tool_run(argv, proto, err);
        if (r < 0)
                return util_err_prefix(err, "mkfs.xfs '%s'", path);
        return 0;
}

static bool xfs_magic_ok(int fd)
{
        return fs_magic_at(fd, 0, "XFSB", 4);
}

static const struct snap_fs_ops snap_fs_xfs = {
        .name = "xfs",
        .flags = SNAP_FS_CAN_TRIM,
        .mkfs = xfs_mkfs,
        .magic_ok = xfs_magic_ok,
};

/* ---- read-only layer images from a directory --------------------------------- */

/* erofs superblock at byte 1024, magic le32 0xE0F5E1E2. */
bool snap_erofs_magic_ok(int fd)
{
        static const unsigned char magic[4] = {0xe2, 0xe1, 0xf5, 0xe0};
        return fs_magic_at(fd, 1024, magic, sizeof(magic));
}

int snap_image_tool_check(const char *type, struct util_err *err)
{
        char tool[64];
        if (strcmp(type, "erofs") == 0)
                return fs_tool_find("mkfs.erofs", "erofs-utils", tool, sizeof(tool), err);
        if (strcmp(type, "ext4") == 0)
                return fs_tool_find("mkfs.ext4", "e2fsprogs", tool, sizeof(tool), err);
        return util_err_setx(err, EINVAL, "no layer image type '%s'", type);
}

/* A layer image's size for mkfs.ext4 -d: room for the data twice over (block
 * rounding, directories, extent blocks), a block and an inode per inode, and
 * 16 MiB for the fixed metadata; sparse, so the slack costs nothing. */
static uint64_t ext4_layer_size(uint64_t bytes, uint64_t inodes)
{
        uint64_t size = 2 * bytes + inodes * (4096 + 256) + (UINT64_C(16) << 20);
        return (size + (UINT64_C(1) << 20) - 1) & ~((UINT64_C(1) << 20) - 1);
}

int snap_image_from_dir(const char *type, const char *src_dir, const char *const *exclude,
                        uint64_t bytes, uint64_t inodes, const char *path, struct util_err *err)
{
        char tool[64], inodes_arg[32];
        char *argv[24];
        size_t n = 0;
        bool erofs = strcmp(type, "erofs") == 0;
        _cleanup_free_ char *excl = NULL;
        int r;

        if (!erofs && strcmp(type, "ext4") != 0)
                return util_err_setx(err, EINVAL, "no layer image type '%s'", type);
        if (!erofs && exclude && exclude[0])
                return util_err_setx(err, EINVAL, "mkfs.ext4 -d cannot leave out '%s'", exclude[0]);
        r = erofs ? fs_tool_find("mkfs.erofs", "erofs-utils", tool, sizeof(tool), err)
                  : fs_tool_find("mkfs.ext4", "e2fsprogs", tool, sizeof(tool), err);
        if (r < 0)
                return r;

        _cleanup_close_ int fd =
                open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return util_err_set(err, errno, "create '%s'", path);
        argv[n++] = tool;
        if (erofs) {
                /* Per-file mtimes as they are, xattrs kept (the default
                 * tolerance), uncompressed: a lower layer is read often. */
                argv[n++] = "--quiet";
                argv[n++] = "--preserve-mtime";
                size_t len = 0;
                for (size_t k = 0; exclude && exclude[k]; k++)
                        len += strlen(exclude[k]) + sizeof("--exclude-path=");
                excl = calloc(1, len + 1);
                if (!excl) {
                        r = util_err_set(err, ENOMEM, "mkfs.erofs '%s'", path);
                        goto fail;
                }
                char *p = excl;
                for (size_t k = 0; exclude && exclude[k] && n < 16; k++) {
                        argv[n++] = p;
                        p += sprintf(p, "--exclude-path=%s", exclude[k]) + 1;
                }
        } else {
                if (ftruncate(fd, (off_t)ext4_layer_size(bytes, inodes)) < 0) {
                        r = util_err_set(err, errno, "resize '%s'", path);
                        goto fail;
                }
                snprintf(inodes_arg, sizeof(inodes_arg), "%" PRIu64, inodes + 64);
                argv[n++] = "-q";
                argv[n++] = "-F";
                argv[n++] = "-O";
                argv[n++] = "^resize_inode,^has_journal";
                argv[n++] = "-E";
                argv[n++] = "lazy_itable_init=1";
                argv[n++] = "-m";
                argv[n++] = "0";
                argv[n++] = "-N";
                argv[n++] = inodes_arg;
                argv[n++] = "-d";
                argv[n++] = (char *)src_dir;
        }
        argv[n++] = (char *)path;
        if (erofs)
                argv[n++] = (char *)src_dir;
        argv[n] = NULL;
        r = fs_tool_run(argv, /* proto_fd= */ -1, err);
        if (r < 0) {
                util_err_prefix(err, "%s '%s' from '%s'", erofs ? "mkfs.erofs" : "mkfs.ext4", path,
                                src_dir);
                goto fail;
        }
        if (!(erofs ? snap_erofs_magic_ok(fd) : ext4_magic_ok(fd))) {
                r = util_err_setx(err, EUCLEAN, "mkfs left no %s superblock in '%s'", type, path);
                goto fail;
        }
        if (fsync(fd) < 0) {
                r = util_err_set(err, errno, "fsync '%s'", path);
                goto fail;
        }
        return 0;
fail:
        (void)unlink(path);
        return r;
}

/* ---- the table ------------------------------------------------------------ */

static const struct snap_fs_ops *const snap_fs_backends[] = {
        &snap_fs_ext4,
        &snap_fs_xfs,
        NULL,
};

const struct snap_fs_ops *snap_fs_lookup(const char *name)
{
        if (!name)
                return NULL;
        for (size_t i = 0; snap_fs_backends[i]; i++)
                if (strcmp(snap_fs_backends[i]->name, name) == 0)
                        return snap_fs_backends[i];
        return NULL;
}
