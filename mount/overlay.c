/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Overlay mounts, three ways (see mount.h):
 *
 *   fd         each lower is an fd — an earlier (detached) mount of the spec,
 *              a directory inside one (openat2 beneath it), or an O_PATH
 *              directory — passed with FSCONFIG_SET_FD "lowerdir+". Idmapped
 *              lowers are detached clones with MOUNT_ATTR_IDMAP: the overlay
 *              itself cannot be idmapped (EINVAL, research/limits.md §5).
 *   lowerdir+  one FSCONFIG_SET_STRING "lowerdir+" per layer; fsconfig copies
 *              at most 255 bytes of a value (strndup_user(_value, 256)), so a
 *              longer path is refused up front.
 *   legacy     mount(2). The data page is cut silently at 4095 bytes and the
 *              mount can then succeed with fewer layers or without its upper
 *              (limits.md §4), so the length is checked, after compaction:
 *              the layers' common parent becomes the working directory of a
 *              thread that did unshare(CLONE_FS) (so the process's cwd is
 *              untouched) and the paths become relative to it.
 *
 * index=off is added unless the spec sets index (with shared lowers the
 * index makes a second mount of the same lower fail with EBUSY).
 */
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "mount/mount-internal.h"

/* OVL_MAX_STACK in fs/overlayfs. */
#define OVERLAY_MAX_LOWERS 500u
/* fsconfig copies at most 255 bytes of a string value (+ NUL). */
#define FSCONFIG_STRING_MAX 255u
#define LEGACY_DATA_MAX     4095u

struct ovl {
        const char *what;
        struct mount_layer *lower;
        size_t n_lower;
        struct mount_layer *upper, *work; /* one each, or NULL */
        size_t n_upper, n_work;
        int userns; /* -1: no idmap */
        /* Layer fds we opened. They stay open until the overlay is created:
         * closing the last fd of a detached clone dissolves its mount, and
         * overlay then fails to clone the layer ("failed to clone lowerpath"). */
        int *fds;
        size_t n_fds;
        /* The parent directory of the last plain layer opened: layers are
         * usually siblings, and a one-component openat is cheaper than a
         * full path walk (500 layers: ~0.15 ms). */
        int parent_fd;
        char *parent;
};

static void ovl_done(struct ovl *v)
{
        for (size_t k = 0; k < v->n_fds; k++)
                close(v->fds[k]);
        free(v->fds);
        util_closep(&v->parent_fd);
        free(v->parent);
        mount_layers_free(v->lower, v->n_lower);
        mount_layers_free(v->upper, v->n_upper);
        mount_layers_free(v->work, v->n_work);
}

static int parse_one(const char *value, size_t i, const char *key, const char *what,
                     struct mount_layer **ret, size_t *ret_n, struct util_err *err)
{
        int r = mount_template_layers(value, i, ret, ret_n, err);
        if (r < 0)
                return util_err_prefix(err, "%s: %s", what, key);
        if (*ret_n != 1)
                return util_err_setx(err, EINVAL, "%s: %s must be one directory, got %zu", what,
                                     key, *ret_n);
        return 0;
}

/* Other data options, with index=off unless index was given. */
static bool is_layer_key(const char *opt)
{
        return strncmp(opt, "lowerdir=", 9) == 0 || strncmp(opt, "upperdir=", 9) == 0 ||
               strncmp(opt, "workdir=", 8) == 0;
}

static bool has_index(const struct mount_opts *o)
{
        for (size_t k = 0; k < o->n_data; k++)
                if (strncmp(o->data[k], "index=", 6) == 0)
                        return true;
        return false;
}

/* ---- fd ---------------------------------------------------------------- */

/* O_PATH fd of a plain directory layer, through the cached parent. */
static int open_plain(struct ovl *v, const char *path, int *ret)
{
        const char *slash = strrchr(path, '/');
        size_t plen = slash ? (size_t)(slash - path) : 0;

        if (slash && slash[1] && plen > 0) {
                if (!v->parent || strlen(v->parent) != plen || memcmp(v->parent, path, plen) != 0) {
                        util_closep(&v->parent_fd);
                        free(v->parent);
                        v->parent = strndup(path, plen);
                        v->parent_fd = v->parent ? open(v->parent, O_PATH | O_DIRECTORY | O_CLOEXEC)
                                                 : -EBADF;
                }
                if (v->parent_fd >= 0) {
                        int fd = openat(v->parent_fd, slash + 1,
                                        O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        /* A symlinked layer: resolve the whole path instead. */
                        if (fd >= 0 || (errno != ELOOP && errno != ENOTDIR)) {
                                *ret = fd;
                                return fd < 0 ? -errno : 0;
                        }
                }
        }
        int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        *ret = fd;
        return fd < 0 ? -errno : 0;
}

/* An fd for layer `l`. *ret_owned says whether the caller must close it. */
static int layer_fd(struct ovl *v, const struct mount_layer *l, struct mount_applied *done,
                    bool idmap, int *ret, bool *ret_owned, struct util_err *err)
{
        int r;

        if (l->is_mount) {
                struct mount_applied *m = &done[l->index];
                if (m->fd < 0)
                        return util_err_setx(err, EINVAL, "%s: mount %zu has no fd", v->what,
                                             l->index);
                if (idmap && m->idmap_ns != v->userns) {
                        if (m->idmap_ns >= 0)
                                return util_err_setx(err, EINVAL,
                                                     "%s: mount %zu is used with two id maps",
                                                     v->what, l->index);
                        /* Our own detached intermediate: idmap it in place. */
                        r = idmap_mount_apply(m->fd, v->userns, false, err);
                        if (r < 0)
                                return util_err_prefix(err, "%s: layer mount %zu", v->what,
                                                       l->index);
                        m->idmap_ns = v->userns;
                }
                if (l->path && *l->path) {
                        r = mount_open_sub(m, l->path, ret, err);
                        if (r < 0)
                                return util_err_prefix(err, "%s: layer mount %zu", v->what,
                                                       l->index);
                        *ret_owned = true;
                        return 0;
                }
                *ret = m->fd;
                *ret_owned = false;
                return 0;
        }
        if (idmap) {
                r = idmap_clone(AT_FDCWD, l->path, v->userns, false, ret, err);
                if (r < 0)
                        return util_err_prefix(err, "%s: layer '%s'", v->what, l->path);
        } else {
                r = open_plain(v, l->path, ret);
                if (r < 0)
                        return util_err_set(err, r, "%s: open layer '%s'", v->what, l->path);
        }
        *ret_owned = true;
        return 0;
}

static int set_layer_fd(int fs, struct ovl *v, const char *key, const struct mount_layer *l,
                        struct mount_applied *done, bool idmap, struct util_err *err)
{
        int fd = -EBADF;
        bool owned = false;
        int r = layer_fd(v, l, done, idmap, &fd, &owned, err);
        if (r < 0)
                return r;
        r = mount_fsconfig_fd(fs, key, fd, err);
        /* A plain directory can go at once (overlay holds its path); a
         * detached clone must stay open until the superblock exists. */
        if (owned && !l->is_mount && !idmap)
                close(fd);
        else if (owned)
                v->fds[v->n_fds++] = fd;
        return r;
}

static int common_tail(int fs, const struct mount_entry *m, const struct mount_opts *o,
                       struct util_err *err)
{
        int r;

        for (size_t k = 0; k < o->n_data; k++)
                if (!is_layer_key(o->data[k]) && (r = mount_fsconfig_data(fs, o->data[k], err)) < 0)
                        return r;
        if (!has_index(o) && (r = mount_fsconfig_string(fs, "index", "off", err)) < 0)
                return r;
        if ((o->flags & MS_RDONLY) && (r = mount_fsconfig_flag(fs, "ro", err)) < 0)
                return r;
        (void)m;
        return mount_fsconfig_create(fs, err);
}

static int ovl_fd(struct ovl *v, const struct mount_entry *m, const struct mount_opts *o,
                  struct mount_applied *done, int fs, struct util_err *err)
{
        int r;

        for (size_t k = 0; k < v->n_lower; k++)
                if ((r = set_layer_fd(fs, v, "lowerdir+", &v->lower[k], done, v->userns >= 0,
                                      err)) < 0)
                        return util_err_prefix(err, "lower layer %zu", k);
        if (v->upper && (r = set_layer_fd(fs, v, "upperdir", v->upper, done, false, err)) < 0)
                return r;
        if (v->work && (r = set_layer_fd(fs, v, "workdir", v->work, done, false, err)) < 0)
                return r;
        return common_tail(fs, m, o, err);
}

/* ---- lowerdir+ strings and legacy: layers as paths ----------------------- */

static int layer_path(struct ovl *v, const struct mount_layer *l, struct mount_applied *done,
                      char **ret, struct util_err *err)
{
        const char *base = l->path;
        const char *sub = NULL;

        if (l->is_mount) {
                base = done[l->index].path;
                sub = l->path;
                if (!base)
                        return util_err_setx(err, EINVAL, "%s: mount %zu has no mountpoint",
                                             v->what, l->index);
                if (sub && *sub) {
                        /* Resolved beneath the mount; the kernel gets the fd's
                         * magic link, which it follows to that directory. */
                        int fd;
                        int r = mount_open_sub(&done[l->index], sub, &fd, err);
                        if (r < 0)
                                return util_err_prefix(err, "%s: layer mount %zu", v->what,
                                                       l->index);
                        v->fds[v->n_fds++] = fd;
                        if (asprintf(ret, "/proc/self/fd/%d", fd) < 0)
                                return util_err_set(err, ENOMEM, "%s", v->what);
                        return 0;
                }
        }
        char *s = NULL;
        if (asprintf(&s, "%s%s%s", base, sub && *sub ? "/" : "", sub && *sub ? sub : "") < 0)
                return util_err_set(err, ENOMEM, "%s", v->what);
        *ret = s;
        return 0;
}

static int ovl_strings(struct ovl *v, const struct mount_entry *m, const struct mount_opts *o,
                       struct mount_applied *done, int fs, struct util_err *err)
{
        struct {
                const char *key;
                const struct mount_layer *l;
                size_t n;
        } sets[] = {
                {"lowerdir+", v->lower, v->n_lower},
                {"upperdir", v->upper, v->upper ? 1 : 0},
                {"workdir", v->work, v->work ? 1 : 0},
        };
        for (size_t s = 0; s < UTIL_ARRAY_SIZE(sets); s++)
                for (size_t k = 0; k < sets[s].n; k++) {
                        _cleanup_free_ char *p = NULL;
                        int r = layer_path(v, &sets[s].l[k], done, &p, err);
                        if (r < 0)
                                return r;
                        if (strlen(p) > FSCONFIG_STRING_MAX)
                                return util_err_setx(err, ENAMETOOLONG,
                                                     "%s: %s '%s' is %zu bytes; fsconfig takes "
                                                     "at most %u",
                                                     v->what, sets[s].key, p, strlen(p),
                                                     FSCONFIG_STRING_MAX);
                        r = mount_fsconfig_string(fs, sets[s].key, p, err);
                        if (r < 0)
                                return util_err_prefix(err, "%s", v->what);
                }
        return common_tail(fs, m, o, err);
}

/* Length of the directory prefix (up to, not including, a '/') that every
 * path shares; 0 when there is none worth using. */
static size_t common_dir(char **paths, size_t n)
{
        if (n == 0 || paths[0][0] != '/')
                return 0;
        size_t len = strlen(paths[0]);
        for (size_t k = 1; k < n; k++) {
                if (paths[k][0] != '/')
                        return 0;
                size_t j = 0;
                while (j < len && paths[k][j] == paths[0][j])
                        j++;
                len = j;
        }
        /* Back up to a component boundary that every path continues after. */
        for (;;) {
                while (len > 0 && paths[0][len] != '/' && paths[0][len] != '\0')
                        len--;
                bool ok = len > 0;
                for (size_t k = 0; ok && k < n; k++)
                        ok = paths[k][len] == '/' && paths[k][len + 1] != '\0';
                if (ok || len == 0)
                        return len;
                len--;
        }
}

struct legacy_call {
        const char *dir; /* chdir here first, or NULL */
        const char *source;
        const char *target;
        unsigned long flags;
        const char *data;
        int error;
};

static void *legacy_thread(void *p)
{
        struct legacy_call *c = p;

        /* Our own fs struct: the chdir does not move the process's cwd. */
        if (unshare(CLONE_FS) < 0)
                c->error = errno; /* NOLINT(bugprone-branch-clone): each step's own errno */
        else if (c->dir && chdir(c->dir) < 0)
                c->error = errno;
        else if (mount(c->source, c->target, "overlay", c->flags, c->data) < 0)
                c->error = errno;
        return NULL;
}

/* Appends to a buffer sized up front by build_data. */
static char *put(char *p, const char *s)
{
        size_t n = strlen(s);
        memcpy(p, s, n); /* NOLINT(bugprone-not-null-terminated-result): build_data ends it */
        return p + n;
}

static int build_data(struct ovl *v, const struct mount_opts *o, char **lower, char **upper,
                      char **work, size_t skip, char **ret, struct util_err *err)
{
        size_t len = 64;
        for (size_t k = 0; k < v->n_lower; k++)
                len += strlen(lower[k] + skip) + 1;
        len += (upper ? strlen(*upper) : 0) + (work ? strlen(*work) : 0) + 32;
        for (size_t k = 0; k < o->n_data; k++)
                len += strlen(o->data[k]) + 1;
        char *s = malloc(len);
        if (!s)
                return util_err_set(err, ENOMEM, "%s", v->what);
        char *p = put(s, "lowerdir=");
        for (size_t k = 0; k < v->n_lower; k++) {
                if (k)
                        *p++ = ':';
                p = put(p, lower[k] + skip);
        }
        if (upper) {
                p = put(put(p, ",upperdir="), *upper + skip);
                p = put(put(p, ",workdir="), *work + skip);
        }
        for (size_t k = 0; k < o->n_data; k++)
                if (!is_layer_key(o->data[k]))
                        p = put(put(p, ","), o->data[k]);
        if (!has_index(o))
                p = put(p, ",index=off");
        *p = '\0';
        *ret = s;
        return 0;
}

/* Directory part of `p` ("/a/b" for "/a/b/c"); NULL on ENOMEM. */
static char *dir_of(const char *p)
{
        const char *slash = strrchr(p, '/');
        return slash && slash != p ? strndup(p, (size_t)(slash - p)) : strdup("/");
}

/*
 * Stage 3 of compaction: bind every lower onto <run>/c/<ordinal> and the
 * upper/work parent (overlay wants both on one mount) onto <run>/c/u, so
 * that each layer costs 1-3 bytes plus a colon. The binds are dropped again
 * right after the overlay is mounted: overlay keeps private clones.
 */
struct binds {
        char *dir;
        char **points;
        size_t n;
};

static void binds_drop(struct binds *b)
{
        for (size_t k = b->n; k-- > 0;) {
                (void)umount2(b->points[k], MNT_DETACH | UMOUNT_NOFOLLOW);
                (void)rmdir(b->points[k]);
                free(b->points[k]);
        }
        free(b->points);
        if (b->dir)
                (void)rmdir(b->dir);
        free(b->dir);
        *b = (struct binds){0};
}

static int bind_to(struct binds *b, const char *src, const char *name, struct util_err *err)
{
        char *p = NULL;
        if (asprintf(&p, "%s/%s", b->dir, name) < 0)
                return util_err_set(err, ENOMEM, "compaction");
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
                int e = errno;
                free(p);
                return util_err_set(err, e, "compaction: create '%s/%s'", b->dir, name);
        }
        b->points[b->n++] = p;
        if (mount(src, p, NULL, MS_BIND, NULL) < 0)
                return util_err_set(err, errno, "compaction: bind '%s' onto '%s'", src, p);
        return 0;
}

static int bind_compact(struct ovl *v, char **paths, struct mount_scratch *scratch, struct binds *b,
                        char ***ret_rel, struct util_err *err)
{
        size_t n = v->n_lower + (v->upper ? 2 : 0);
        char **rel = calloc(n, sizeof(char *));
        int r;

        b->points = calloc(v->n_lower + 1, sizeof(char *));
        if (!rel || !b->points) {
                free(rel);
                return util_err_set(err, ENOMEM, "%s: compaction", v->what);
        }
        *ret_rel = rel;
        r = mount_scratch_dir(scratch, "c", &b->dir, err);
        for (size_t k = 0; r >= 0 && k < v->n_lower; k++) {
                char name[24];
                snprintf(name, sizeof(name), "%zu", k);
                r = bind_to(b, paths[k], name, err);
                if (r >= 0 && !(rel[k] = strdup(name)))
                        r = util_err_set(err, ENOMEM, "compaction");
        }
        if (r >= 0 && v->upper) {
                _cleanup_free_ char *ud = dir_of(paths[v->n_lower]);
                _cleanup_free_ char *wd = dir_of(paths[v->n_lower + 1]);
                if (!ud || !wd)
                        return util_err_set(err, ENOMEM, "compaction");
                if (strcmp(ud, wd) != 0)
                        return util_err_setx(err, E2BIG,
                                             "%s: cannot compact: upperdir and workdir are not in "
                                             "one directory",
                                             v->what);
                r = bind_to(b, ud, "u", err);
                if (r >= 0 &&
                    (asprintf(&rel[v->n_lower], "u/%s", strrchr(paths[v->n_lower], '/') + 1) < 0 ||
                     asprintf(&rel[v->n_lower + 1], "u/%s",
                              strrchr(paths[v->n_lower + 1], '/') + 1) < 0))
                        r = util_err_set(err, ENOMEM, "compaction");
        }
        return r < 0 ? util_err_prefix(err, "%s", v->what) : 0;
}

static void free_paths(char **p, size_t n)
{
        for (size_t k = 0; p && k < n; k++)
                free(p[k]);
        free(p);
}

static int ovl_legacy(struct ovl *v, const struct mount_entry *m, const struct mount_opts *o,
                      struct mount_applied *done, struct mount_scratch *scratch, const char *where,
                      struct util_err *err)
{
        size_t n = v->n_lower + (v->upper ? 2 : 0);
        char **paths = calloc(n, sizeof(char *));
        char **rel = NULL;
        _cleanup_free_ char *data = NULL;
        _cleanup_free_ char *dir = NULL;
        struct binds b = {0};
        const char *how = "absolute paths";
        int r = 0;

        if (!paths)
                return util_err_set(err, ENOMEM, "%s", v->what);
        for (size_t k = 0; k < v->n_lower && r >= 0; k++)
                r = layer_path(v, &v->lower[k], done, &paths[k], err);
        if (r >= 0 && v->upper)
                r = layer_path(v, v->upper, done, &paths[v->n_lower], err);
        if (r >= 0 && v->upper)
                r = layer_path(v, v->work, done, &paths[v->n_lower + 1], err);

        /* 1: absolute paths. */
        if (r >= 0)
                r = build_data(v, o, paths, v->upper ? &paths[v->n_lower] : NULL,
                               v->upper ? &paths[v->n_lower + 1] : NULL, 0, &data, err);
        /* 2: relative to the layers' common parent. */
        if (r >= 0 && strlen(data) > LEGACY_DATA_MAX) {
                size_t c = common_dir(paths, n);
                if (c > 0) {
                        free(data);
                        data = NULL;
                        dir = strndup(paths[0], c);
                        how = "paths relative to their common parent";
                        r = dir ? build_data(v, o, paths, v->upper ? &paths[v->n_lower] : NULL,
                                             v->upper ? &paths[v->n_lower + 1] : NULL, c + 1, &data,
                                             err)
                                : util_err_set(err, ENOMEM, "%s", v->what);
                }
        }
        /* 3: short bind mounts. */
        if (r >= 0 && strlen(data) > LEGACY_DATA_MAX) {
                free(data);
                data = NULL;
                free(dir);
                dir = NULL;
                r = bind_compact(v, paths, scratch, &b, &rel, err);
                if (r >= 0) {
                        how = "bind-mounted short names";
                        dir = strdup(b.dir);
                        r = dir ? build_data(v, o, rel, v->upper ? &rel[v->n_lower] : NULL,
                                             v->upper ? &rel[v->n_lower + 1] : NULL, 0, &data, err)
                                : util_err_set(err, ENOMEM, "%s", v->what);
                }
        }
        if (r >= 0 && strlen(data) > LEGACY_DATA_MAX)
                r = util_err_setx(err, E2BIG,
                                  "%s: overlay options are %zu bytes even with %s; mount(2) takes "
                                  "at most %u and would silently drop the rest (layers or the "
                                  "upper): refused, nothing mounted",
                                  v->what, strlen(data), how, LEGACY_DATA_MAX);
        free_paths(paths, n);
        free_paths(rel, n);

        if (r >= 0) {
                struct legacy_call call = {
                        .dir = dir,
                        .source = m->source && *m->source ? m->source : "overlay",
                        .target = where,
                        .flags = o->flags,
                        .data = data,
                };
                pthread_t t;
                int e = 0;
                if (!dir) /* absolute paths: no chdir, no thread needed */
                        call.error = mount(call.source, where, "overlay", call.flags, data) < 0
                                             ? errno
                                             : 0;
                else
                        e = pthread_create(&t, NULL, legacy_thread, &call);
                if (e != 0) {
                        r = util_err_set(err, e, "%s: start the mount thread", v->what);
                } else {
                        if (dir)
                                pthread_join(t, NULL);
                        if (call.error)
                                r = util_err_set(err, call.error,
                                                 "%s: mount(2) overlay on '%s' (%s)", v->what,
                                                 where, how);
                        else
                                util_debug(UTIL_DBG_MOUNT, "%s: legacy overlay, %zu bytes, %s",
                                           v->what, strlen(data), how);
                }
        }
        binds_drop(&b);
        return r;
}

/* fd and lowerdir+: fsopen, the layers, fsmount, then into place. */
static int ovl_newapi(struct mount_engine *e, struct ovl *v, const struct mount_entry *m,
                      const struct mount_opts *o, struct mount_applied *done, const char *where,
                      struct mount_applied *out, struct util_err *err)
{
        _cleanup_close_ int fs = fsopen("overlay", FSOPEN_CLOEXEC);
        _cleanup_close_ int mnt = -EBADF;
        int r;

        if (fs < 0)
                return util_err_set(err, errno, "%s: fsopen", v->what);
        if (m->source && *m->source && !mount_template_has(m->source) &&
            (r = mount_fsconfig_string(fs, "source", m->source, err)) < 0)
                goto fail;
        r = e->api == MOUNT_API_FD ? ovl_fd(v, m, o, done, fs, err)
                                   : ovl_strings(v, m, o, done, fs, err);
        if (r < 0)
                goto fail;
        if ((r = mount_fsmount(fs, o->flags, &mnt, err)) < 0)
                goto fail;
        if (where && (r = mount_move_to(mnt, where, err)) < 0)
                goto fail;
        out->fd = TAKE_FD(mnt);
        return 0;
fail:
        return util_err_prefix(err, "%s via %s", v->what, mount_api_name(e->api));
}

int mount_overlay_apply(struct mount_engine *e, const struct mount_spec *spec, size_t i,
                        const struct mount_opts *o, struct mount_applied *done,
                        struct mount_scratch *scratch, const char *where, struct mount_applied *out,
                        struct util_err *err)
{
        const struct mount_entry *m = &spec->mounts[i];
        char what[64];
        struct ovl v = {.what = what, .userns = -1, .parent_fd = -EBADF};
        int r;

        snprintf(what, sizeof(what), "mounts[%zu] (overlay)", i);
        if (o->loop || o->bind || o->rbind)
                return util_err_setx(err, EINVAL, "%s: '%s' does not apply to an overlay", what,
                                     o->loop ? "loop" : "bind");
        const char *lower = mount_opts_data_get(o, "lowerdir");
        const char *upper = mount_opts_data_get(o, "upperdir");
        const char *work = mount_opts_data_get(o, "workdir");
        if (!lower)
                return util_err_setx(err, EINVAL, "%s: no lowerdir= option", what);
        if (!upper != !work)
                return util_err_setx(err, EINVAL, "%s: upperdir= and workdir= go together", what);

        r = mount_template_layers(lower, i, &v.lower, &v.n_lower, err);
        if (r < 0) {
                util_err_prefix(err, "%s: lowerdir", what);
                goto out;
        }
        if (v.n_lower > OVERLAY_MAX_LOWERS) {
                r = util_err_setx(err, EINVAL, "%s: %zu lower layers; the kernel takes at most %u",
                                  what, v.n_lower, OVERLAY_MAX_LOWERS);
                goto out;
        }
        if (upper && ((r = parse_one(upper, i, "upperdir", what, &v.upper, &v.n_upper, err)) < 0 ||
                      (r = parse_one(work, i, "workdir", what, &v.work, &v.n_work, err)) < 0))
                goto out;

        v.fds = calloc(v.n_lower + 2, sizeof(int));
        if (!v.fds) {
                r = util_err_set(err, ENOMEM, "%s", what);
                goto out;
        }
        if (o->uidmap || o->gidmap) {
                if (e->api != MOUNT_API_FD) {
                        r = util_err_setx(err, EOPNOTSUPP,
                                          "%s: idmapped layers need the fd API (this engine uses "
                                          "'%s')",
                                          what, mount_api_name(e->api));
                        goto out;
                }
                r = mount_userns_for(e, o, what, &v.userns, err);
                if (r < 0)
                        goto out;
        }

        if (e->api == MOUNT_API_LEGACY) {
                if (!where) {
                        r = util_err_setx(err, EOPNOTSUPP,
                                          "%s: a detached overlay needs the new mount API", what);
                        goto out;
                }
                r = ovl_legacy(&v, m, o, done, scratch, where, err);
                goto out;
        }

        r = ovl_newapi(e, &v, m, o, done, where, out, err);
out:
        ovl_done(&v);
        if (r >= 0)
                out->is_overlay = true;
        return r;
}
