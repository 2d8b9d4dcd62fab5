/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Everything that is not an overlay: a filesystem (on a device or a loop
 * image), and bind mounts.
 *
 * New API: fsopen/fsconfig per option/fsmount gives a detached mount that is
 * idmapped (if asked) before anyone can see it, then moved into place.
 * A bind is an open_tree clone with mount_setattr, which changes only the
 * attributes asked for and keeps the rest, locked flags included.
 * Legacy: mount(2); "bind,ro" is a bind followed by a read-only remount that
 * repeats the flags the kernel locks (nosuid, nodev, noexec, atime) — a
 * remount that drops a locked flag fails with EPERM.
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include "mount/mount-internal.h"

#ifndef OVERLAYFS_SUPER_MAGIC
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#endif

/* The legacy data page: mount(2) silently cuts at 4095 bytes + NUL. */
#define LEGACY_DATA_MAX 4095u

static bool is_type(const char *type, const char *name)
{
        return strcmp(type, name) == 0;
}

static bool is_ext4(const char *type)
{
        return is_type(type, "ext4") || is_type(type, "ext3") || is_type(type, "ext2");
}

/* Superblock flags the new API sets with fsconfig flags, not attributes. */
static int set_sb_flags(int fs, unsigned long flags, struct util_err *err)
{
        static const struct {
                unsigned long ms;
                const char *key;
        } sb[] = {
                {MS_RDONLY, "ro"},         {MS_SYNCHRONOUS, "sync"}, {MS_DIRSYNC, "dirsync"},
                {MS_LAZYTIME, "lazytime"}, {MS_MANDLOCK, "mand"},
        };
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(sb); k++)
                if (flags & sb[k].ms) {
                        int r = mount_fsconfig_flag(fs, sb[k].key, err);
                        if (r < 0)
                                return r;
                }
        return 0;
}

static bool has_data(const struct mount_opts *o, const char *key)
{
        size_t len = strlen(key);
        for (size_t k = 0; k < o->n_data; k++)
                if (strncmp(o->data[k], key, len) == 0 &&
                    (o->data[k][len] == '\0' || o->data[k][len] == '='))
                        return true;
        return false;
}

/* "a,b,c" from the data options (plus `extra`), checked against the legacy
 * page size. */
static int join_data(const struct mount_opts *o, const char *extra, char **ret,
                     struct util_err *err)
{
        size_t len = 0;
        for (size_t k = 0; k < o->n_data; k++)
                len += strlen(o->data[k]) + 1;
        if (extra)
                len += strlen(extra) + 1;
        _cleanup_free_ char *s = calloc(1, len + 1);
        if (!s)
                return util_err_set(err, ENOMEM, "mount options");
        for (size_t k = 0; k < o->n_data; k++) {
                if (*s)
                        strcat(s, ",");
                strcat(s, o->data[k]);
        }
        if (extra) {
                if (*s)
                        strcat(s, ",");
                strcat(s, extra);
        }
        if (strlen(s) > LEGACY_DATA_MAX)
                return util_err_setx(err, E2BIG,
                                     "mount options are %zu bytes; mount(2) takes at most %u and "
                                     "would silently cut them",
                                     strlen(s), LEGACY_DATA_MAX);
        *ret = TAKE_PTR(s);
        return 0;
}

/* Ranges in a mount option are separated by spaces ("0:1:1 1:2:3"): a ','
 * would end the option. idmap_parse wants containerd's ',' form. */
static char *ranges_from_option(const char *v)
{
        char *s = strdup(v);
        for (char *p = s; p && *p; p++)
                if (*p == ' ')
                        *p = ',';
        return s;
}

int mount_userns_for(struct mount_engine *e, const struct mount_opts *o, const char *what,
                     int *ret_fd, struct util_err *err)
{
        /* Large (340 ranges each): not on the stack of a thread. */
        _cleanup_free_ struct idmap_map *uid = calloc(1, sizeof(*uid));
        _cleanup_free_ struct idmap_map *gid = calloc(1, sizeof(*gid));
        _cleanup_free_ char *us = ranges_from_option(o->uidmap ? o->uidmap : o->gidmap);
        _cleanup_free_ char *gs = ranges_from_option(o->gidmap ? o->gidmap : o->uidmap);

        if (!uid || !gid || !us || !gs)
                return util_err_set(err, ENOMEM, "%s: id map", what);
        int r = idmap_parse(us, "uidmap", uid, err);
        if (r >= 0)
                r = idmap_parse(gs, "gidmap", gid, err);
        if (r >= 0)
                r = idmap_cache_get(e->userns, uid, gid, ret_fd, NULL, err);
        if (r < 0)
                return util_err_prefix(err, "%s", what);
        return 0;
}

/* Source of entry i: a path, or (templates) an earlier mount. */
struct source {
        const char *path;   /* resolved path; NULL when only `fd` is known */
        int fd;             /* earlier mount's fd (or a directory inside it), or -EBADF */
        bool is_overlay;    /* the source is an overlay mount */
        int owned_fd;       /* a sub-directory fd we opened */
        char proc_path[32]; /* "/proc/self/fd/N" of owned_fd, for mount(2) */
};

static void source_done(struct source *s)
{
        util_closep(&s->owned_fd);
}

static int resolve_source(const struct mount_spec *spec, size_t i, struct mount_applied *done,
                          struct source *s, struct util_err *err)
{
        const char *src = spec->mounts[i].source;

        *s = (struct source){.path = src, .fd = -EBADF, .owned_fd = -EBADF};
        if (!mount_template_has(src))
                return 0;

        struct mount_layer *l = NULL;
        size_t n = 0;
        int r = mount_template_layers(src, i, &l, &n, err);
        if (r < 0)
                return util_err_prefix(err, "source");
        if (n != 1 || !l[0].is_mount) {
                mount_layers_free(l, n);
                return util_err_setx(err, EINVAL, "source '%s': expected one '{{ mount N }}'", src);
        }
        struct mount_applied *m = &done[l[0].index];
        s->is_overlay = m->is_overlay;
        if (l[0].path && *l[0].path) {
                /* "{{ mount N }}/sub": resolved beneath that mount, used by fd
                 * (new API) or by its magic link (mount(2)). */
                r = mount_open_sub(m, l[0].path, &s->owned_fd, err);
                mount_layers_free(l, n);
                if (r < 0)
                        return util_err_prefix(err, "source '%s'", src);
                s->fd = s->owned_fd;
                snprintf(s->proc_path, sizeof(s->proc_path), "/proc/self/fd/%d", s->owned_fd);
                s->path = m->fd >= 0 && !m->path ? NULL : s->proc_path;
                return 0;
        }
        mount_layers_free(l, n);
        s->fd = m->fd;
        s->path = m->path;
        return 0;
}

static int bind_new_api(struct mount_engine *e, const struct mount_opts *o, const struct source *s,
                        const char *what, const char *where, struct mount_applied *out,
                        struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;
        unsigned tflags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (o->rbind ? AT_RECURSIVE : 0);

        if (s->fd >= 0)
                fd = open_tree(s->fd, "", tflags | AT_EMPTY_PATH);
        else
                fd = open_tree(AT_FDCWD, s->path, tflags);
        if (fd < 0)
                return util_err_set(err, errno, "%s: clone '%s'", what,
                                    s->path ? s->path : "earlier mount");

        struct mount_attr attr = {
                .attr_set = mount_flags_to_attr(o->flags),
                .attr_clr = mount_flags_to_attr(o->cleared),
        };
        if (o->flags & (MS_NOATIME | MS_STRICTATIME | MS_RELATIME))
                attr.attr_clr |= MOUNT_ATTR__ATIME;
        if (o->uidmap || o->gidmap) {
                struct statfs sf;
                if (s->is_overlay ||
                    (fstatfs(fd, &sf) == 0 && (unsigned long)sf.f_type == OVERLAYFS_SUPER_MAGIC))
                        return util_err_setx(err, EINVAL,
                                             "%s: an overlay mount cannot be idmapped as a whole "
                                             "(the kernel refuses it); put uidmap=/gidmap= on the "
                                             "overlay so that its lower layers are idmapped",
                                             what);
                int ns;
                int r = mount_userns_for(e, o, what, &ns, err);
                if (r < 0)
                        return r;
                attr.attr_set |= MOUNT_ATTR_IDMAP;
                attr.userns_fd = (unsigned)ns;
        }
        if ((attr.attr_set || attr.attr_clr) &&
            mount_setattr(fd, "", AT_EMPTY_PATH | (o->rbind ? AT_RECURSIVE : 0), &attr,
                          sizeof(attr)) < 0)
                return util_err_set(err, errno, "%s: set mount attributes on the bind of '%s'",
                                    what, s->path ? s->path : "earlier mount");
        if (where) {
                int r = mount_move_to(fd, where, err);
                if (r < 0)
                        return util_err_prefix(err, "%s", what);
        }
        out->fd = TAKE_FD(fd);
        return 0;
}

/* The flags a bind remount must repeat because the kernel locks them. */
static unsigned long locked_flags(const char *path)
{
        struct statvfs sv;
        unsigned long f = 0;

        if (statvfs(path, &sv) < 0)
                return 0;
        if (sv.f_flag & ST_NOSUID)
                f |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV)
                f |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC)
                f |= MS_NOEXEC;
        if (sv.f_flag & ST_NOATIME)
                f |= MS_NOATIME;
        if (sv.f_flag & ST_NODIRATIME)
                f |= MS_NODIRATIME;
        if (sv.f_flag & ST_RELATIME)
                f |= MS_RELATIME;
        return f;
}

static int bind_legacy(const struct mount_opts *o, const struct source *s, const char *what,
                       const char *where, struct util_err *err)
{
        if (!s->path)
                return util_err_setx(err, EINVAL, "%s: the source has no path", what);
        if (o->uidmap || o->gidmap)
                return util_err_setx(err, EOPNOTSUPP,
                                     "%s: idmapped mounts need the new mount API (mount_setattr)",
                                     what);
        if (mount(s->path, where, NULL, MS_BIND | (o->rbind ? MS_REC : 0), NULL) < 0)
                return util_err_set(err, errno, "%s: bind '%s' onto '%s'", what, s->path, where);
        unsigned long want = o->flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME |
                                         MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME);
        if (!want)
                return 0;
        unsigned long flags = MS_REMOUNT | MS_BIND | want | (locked_flags(where) & ~o->cleared);
        if (mount(NULL, where, NULL, flags, NULL) < 0) {
                int e = errno;
                (void)umount2(where, MNT_DETACH);
                return util_err_set(err, e, "%s: remount the bind on '%s' with its flags", what,
                                    where);
        }
        return 0;
}

static int fs_new_api(struct mount_engine *e, const char *type, const char *source,
                      const struct mount_opts *o, bool add_noload, const char *what,
                      const char *where, struct mount_applied *out, struct util_err *err)
{
        _cleanup_close_ int fs = fsopen(type, FSOPEN_CLOEXEC);
        _cleanup_close_ int mnt = -EBADF;
        int r;

        if (fs < 0)
                return util_err_set(err, errno, "%s: fsopen '%s'", what, type);
        if (source && *source && (r = mount_fsconfig_string(fs, "source", source, err)) < 0)
                goto fail;
        if ((r = set_sb_flags(fs, o->flags, err)) < 0)
                goto fail;
        for (size_t k = 0; k < o->n_data; k++)
                if ((r = mount_fsconfig_data(fs, o->data[k], err)) < 0)
                        goto fail;
        if (add_noload && (r = mount_fsconfig_flag(fs, "noload", err)) < 0)
                goto fail;
        if ((r = mount_fsconfig_create(fs, err)) < 0)
                goto fail;
        if ((r = mount_fsmount(fs, o->flags, &mnt, err)) < 0)
                goto fail;
        if (o->uidmap || o->gidmap) {
                int ns;
                r = mount_userns_for(e, o, what, &ns, err);
                if (r < 0)
                        return r;
                r = idmap_mount_apply(mnt, ns, false, err);
                if (r < 0)
                        return util_err_prefix(err, "%s", what);
        }
        if (where && (r = mount_move_to(mnt, where, err)) < 0)
                return util_err_prefix(err, "%s", what);
        out->fd = TAKE_FD(mnt);
        return 0;
fail:
        return util_err_prefix(err, "%s: %s on '%s'", what, type, source ? source : "");
}

/* Whether the mount of O_PATH fd `fd` has exactly the per-mount flags
 * `o` asks for (no atime flag in the spec: relatime). */
static bool flags_are(int fd, const struct mount_opts *o)
{
        const unsigned long mask = ST_RDONLY | ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_NOATIME |
                                   ST_NODIRATIME | ST_RELATIME;
        const unsigned long atime = MS_NOATIME | MS_RELATIME | MS_STRICTATIME;
        struct statfs sf;

        if (fstatfs(fd, &sf) < 0)
                return false;
        /* ST_* and MS_* share these bit values, apart from relatime. */
        unsigned long want = o->flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC |
                                         MS_NODIRATIME | MS_NOATIME);
        if ((o->flags & MS_RELATIME) || !(o->flags & atime))
                want |= ST_RELATIME;
        return ((unsigned long)sf.f_flags & mask) == want;
}

/*
 * A loop image that is already mounted somewhere the engine's owner vouches
 * for (mount_engine_opts.reuse: a committed layer's activation, read-only,
 * or a writable image's keeper). Where only overlays that clone their
 * layers use it (out->may_borrow), that mount itself, when its flags are
 * the spec's; otherwise a clone of it, given the spec's per-mount flags and
 * id mapping. The kernel would have joined the same superblock anyway (one
 * bdev, one superblock), so the result is the mount a fresh attach would
 * have made, minus the device lookup and the fs context. Returns 1 when
 * done, 0 when there is nothing to reuse, or -errno.
 */
static int reuse_mount(struct mount_engine *e, const char *type, const char *source,
                       const struct mount_opts *o, const char *what, const char *where,
                       struct mount_applied *out, struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;
        bool rw = !(o->flags & MS_RDONLY);
        bool borrow = out->may_borrow && !where && !o->uidmap && !o->gidmap;

        int got = e->reuse(e->reuse_data, type, source, rw, borrow, &fd);
        if (got == 2 && !(borrow && fd >= 0 && flags_are(fd, o))) {
                util_closep(&fd);
                fd = -EBADF;
                got = e->reuse(e->reuse_data, type, source, rw, false, &fd);
                if (got == 2) /* lent although not asked to: not used */
                        return 0;
        }
        if (got <= 0 || fd < 0)
                return 0;
        if (got == 2) {
                util_debug(UTIL_DBG_MOUNT, "%s: borrowed a mount of '%s'", what, source);
                __atomic_fetch_add(&e->reused, 1, __ATOMIC_RELAXED);
                __atomic_fetch_add(&e->borrowed, 1, __ATOMIC_RELAXED);
                out->borrowed = true;
                out->fd = TAKE_FD(fd);
                return 1;
        }
        /* Exactly the spec's flags: whatever the cached mount carries
         * beyond them is cleared (no atime flag in the spec: relatime). */
        const unsigned long long all = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                       MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODIRATIME;
        struct mount_attr attr = {.attr_set = mount_flags_to_attr(o->flags)};
        attr.attr_clr = (all & ~attr.attr_set) | MOUNT_ATTR__ATIME;
        if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
                return util_err_set(err, errno, "%s: set mount attributes on a clone of '%s'", what,
                                    source);
        if (o->uidmap || o->gidmap) {
                int ns;
                int r = mount_userns_for(e, o, what, &ns, err);
                if (r < 0)
                        return r;
                if ((r = idmap_mount_apply(fd, ns, false, err)) < 0)
                        return util_err_prefix(err, "%s", what);
        }
        if (where) {
                int r = mount_move_to(fd, where, err);
                if (r < 0)
                        return util_err_prefix(err, "%s", what);
        }
        util_debug(UTIL_DBG_MOUNT, "%s: reused a mount of '%s'", what, source);
        __atomic_fetch_add(&e->reused, 1, __ATOMIC_RELAXED);
        out->fd = TAKE_FD(fd);
        return 1;
}

static int fs_legacy(const char *type, const char *source, const struct mount_opts *o,
                     bool add_noload, const char *what, const char *where, struct util_err *err)
{
        _cleanup_free_ char *data = NULL;

        if (o->uidmap || o->gidmap)
                return util_err_setx(err, EOPNOTSUPP,
                                     "%s: idmapped mounts need the new mount API (mount_setattr)",
                                     what);
        int r = join_data(o, add_noload ? "noload" : NULL, &data, err);
        if (r < 0)
                return util_err_prefix(err, "%s", what);
        /* mount(2) cannot say which option it did not like: name them all. */
        if (mount(source, where, type, o->flags, *data ? data : NULL) < 0)
                return util_err_set(err, errno, "%s: mount %s '%s' on '%s' with options '%s'", what,
                                    type, source, where, data);
        return 0;
}

/* ---- FUSE: through the mount.fuse3 / mount.fuse helper ------------------ */

extern char **environ;

static bool is_fuse(const char *type)
{
        return !strcmp(type, "fuse") || !strcmp(type, "fuse3") || !strncmp(type, "fuse.", 5) ||
               !strncmp(type, "fuse3.", 6);
}

static bool find_prog(const char *name, char *buf, size_t size)
{
        static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(dirs); k++) {
                snprintf(buf, size, "%s/%s", dirs[k], name);
                if (access(buf, X_OK) == 0)
                        return true;
        }
        return false;
}

/* The flags as option words for the helper, then the data options. */
static int fuse_optstr(const struct mount_opts *o, char **ret, struct util_err *err)
{
        static const struct {
                unsigned long ms;
                const char *word;
        } words[] = {{MS_RDONLY, "ro"},        {MS_NOSUID, "nosuid"},
                     {MS_NODEV, "nodev"},      {MS_NOEXEC, "noexec"},
                     {MS_NOATIME, "noatime"},  {MS_NODIRATIME, "nodiratime"},
                     {MS_SYNCHRONOUS, "sync"}, {MS_DIRSYNC, "dirsync"}};
        size_t len = 1;
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(words); k++)
                len += strlen(words[k].word) + 1;
        for (size_t k = 0; k < o->n_data; k++)
                len += strlen(o->data[k]) + 1;
        char *s = calloc(1, len);
        if (!s)
                return util_err_set(err, ENOMEM, "FUSE options");
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(words); k++)
                if (o->flags & words[k].ms) {
                        if (*s)
                                strcat(s, ",");
                        strcat(s, words[k].word);
                }
        for (size_t k = 0; k < o->n_data; k++) {
                if (*s)
                        strcat(s, ",");
                strcat(s, o->data[k]);
        }
        *ret = s;
        return 0;
}

/* One run of the helper. Returns 0, or -errno / -EIO with err filled. */
static int fuse_run(const char *helper, const char *type, const char *source, const char *opts,
                    const char *what, const char *where, struct util_err *err)
{
        int pipefd[2];
        pid_t pid;
        posix_spawn_file_actions_t fa;
        const char *argv[] = {helper, source, where, "-t", type, *opts ? "-o" : NULL, opts, NULL};

        /* The filesystem daemon inherits the pipe: never wait for its EOF,
         * read what the helper wrote once it has exited. */
        if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
                return util_err_set(err, errno, "%s: pipe", what);
        int r = posix_spawn_file_actions_init(&fa);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
        if (r == 0)
                r = posix_spawn(&pid, helper, &fa, NULL, (char *const *)argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(pipefd[1]);
        if (r != 0) {
                close(pipefd[0]);
                return util_err_set(err, r, "%s: run '%s'", what, helper);
        }

        int status = 0;
        pid_t w;
        while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
                ;
        char msg[256] = "";
        ssize_t n = read(pipefd[0], msg, sizeof(msg) - 1);
        close(pipefd[0]);
        msg[n > 0 ? n : 0] = '\0';
        msg[strcspn(msg, "\n")] = '\0';
        if (w < 0) {
                /* A host that ignores SIGCHLD reaps for us (ECHILD): did the
                 * mount happen? */
                int e = errno;
                if (e == ECHILD && mount_is_mountpoint(where, NULL) == 1)
                        return 0;
                return util_err_set(err, e, "%s: wait for '%s'", what, helper);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return util_err_setx(err, EIO, "%s: '%s -t %s' %s %d%s%s", what, helper, type,
                                     WIFEXITED(status) ? "exited with" : "killed by signal",
                                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                                     *msg ? ": " : "", msg);
        return 0;
}

#define FUSE_ECHILD_ATTEMPTS 3

static int fuse_mount(const char *type, const char *source, const struct mount_opts *o,
                      const char *what, const char *where, struct util_err *err)
{
        char helper[64];
        _cleanup_free_ char *opts = NULL;

        if (!where)
                return util_err_setx(err, EOPNOTSUPP,
                                     "%s: a FUSE mount needs a mountpoint (it cannot be an "
                                     "intermediate or detached mount)",
                                     what);
        if (o->uidmap || o->gidmap)
                return util_err_setx(err, EOPNOTSUPP, "%s: idmapped FUSE mounts are not supported",
                                     what);
        bool v3 = strncmp(type, "fuse3", 5) == 0;
        if (!find_prog("mount.fuse3", helper, sizeof(helper)) &&
            (v3 || !find_prog("mount.fuse", helper, sizeof(helper))))
                return util_err_setx(err, ENOENT,
                                     "%s: '%s' needs mount.fuse3%s (Debian package fuse3)", what,
                                     type, v3 ? "" : " or mount.fuse");
        int r = fuse_optstr(o, &opts, err);
        if (r < 0)
                return r;
        for (unsigned attempt = 1;; attempt++) {
                r = fuse_run(helper, type, source, opts, what, where, err);
                /* ECHILD and nothing mounted: the helper's fate is unknown. */
                if (r != -ECHILD || attempt >= FUSE_ECHILD_ATTEMPTS)
                        return r;
                util_err_clear(err);
        }
}

int mount_simple_apply(struct mount_engine *e, const struct mount_spec *spec, size_t i,
                       const struct mount_opts *o, struct mount_applied *done, const char *loop_id,
                       const char *where, struct mount_applied *out, struct util_err *err)
{
        const struct mount_entry *m = &spec->mounts[i];
        bool legacy = e->api == MOUNT_API_LEGACY;
        char what[64];
        _cleanup_(source_done) struct source s = {.fd = -EBADF, .owned_fd = -EBADF};

        snprintf(what, sizeof(what), "mounts[%zu]", i);
        if (legacy && !where)
                return util_err_setx(err, EOPNOTSUPP,
                                     "%s: a detached mount needs the new mount API", what);
        int r = resolve_source(spec, i, done, &s, err);
        if (r < 0)
                return util_err_prefix(err, "%s", what);
        if (is_fuse(m->type)) {
                if (!s.path || s.fd >= 0 || o->loop || o->bind || o->rbind)
                        return util_err_setx(err, EINVAL,
                                             "%s: a FUSE mount takes a plain source (no loop, "
                                             "bind or earlier detached mount)",
                                             what);
                return fuse_mount(m->type, s.path, o, what, where, err);
        }

        if (o->bind || o->rbind || is_type(m->type, "bind") || is_type(m->type, "rbind")) {
                struct mount_opts bo = *o;
                bo.rbind = o->rbind || is_type(m->type, "rbind");
                if (o->loop)
                        return util_err_setx(err, EINVAL, "%s: 'loop' and 'bind' together", what);
                return legacy ? bind_legacy(&bo, &s, what, where, err)
                              : bind_new_api(e, &bo, &s, what, where, out, err);
        }
        if (s.fd >= 0 && !s.path)
                return util_err_setx(err, EINVAL,
                                     "%s: a '%s' mount cannot take an earlier detached mount as "
                                     "source (only bind can)",
                                     what, m->type);

        const char *source = s.path;
        bool ro = o->flags & MS_RDONLY;
        if (o->loop && e->reuse && s.fd < 0 && source) {
                r = reuse_mount(e, m->type, source, o, what, where, out, err);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        if (o->loop) {
                struct loop_attach_opts lo = {
                        .flags = ro ? LOOP_ATTACH_READ_ONLY | LOOP_ATTACH_SHARED : 0,
                        .owner = e->loop_owner,
                        .id = loop_id,
                };
                if (o->direct_io == 0)
                        lo.flags |= LOOP_ATTACH_NO_DIRECT_IO;
                r = loop_attach_path(source, &lo, &out->loop, err);
                if (r < 0)
                        return util_err_prefix(err, "%s", what);
                source = loop_device_get_path(out->loop);
        }
        bool noload =
                ro && is_ext4(m->type) && !has_data(o, "noload") && !has_data(o, "norecovery");
        r = legacy ? fs_legacy(m->type, source, o, noload, what, where, err)
                   : fs_new_api(e, m->type, source, o, noload, what, where, out, err);
        if (r < 0) {
                out->loop = loop_device_free(out->loop);
                return r;
        }
        return 0;
}
