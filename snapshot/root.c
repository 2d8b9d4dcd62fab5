/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening a snapshotter root: its directories (mode 0700), the lock file,
 * the metadata store, and config.json, which fixes the root's settings when
 * it is created. Mount specs depend on those settings (the writable image's
 * filesystem type), and a spec must never change for an existing snapshot,
 * so a later open with different settings is refused instead of obeyed.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "snapshot/snapshot-internal.h"
#include "util/json.h"

#define CONFIG_VERSION 1

char *snap_path(const struct snap_root *r, const char *fmt, ...)
{
        char *tail = NULL, *p = NULL;
        va_list ap;

        va_start(ap, fmt);
        int n = vasprintf(&tail, fmt, ap);
        va_end(ap);
        if (n < 0)
                return NULL;
        if (asprintf(&p, "%s/%s", r->path, tail) < 0)
                p = NULL;
        free(tail);
        return p;
}

static int mkdir_0700(const char *path, struct util_err *err)
{
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return util_err_set(err, errno, "create '%s'", path);
        struct stat st;
        if (lstat(path, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", path);
        if (!S_ISDIR(st.st_mode))
                return util_err_setx(err, ENOTDIR, "'%s' is not a directory", path);
        return 0;
}

/* Writes config.json crash-safely: temp file, fsync, rename, fsync dir. */
static int config_write(struct snap_root *r, struct util_err *err)
{
        _cleanup_free_ char *tmp = snap_path(r, "tmp/new-config.json");
        _cleanup_free_ char *final = snap_path(r, "config.json");
        char text[512];

        if (!tmp || !final)
                return util_err_set(err, ENOMEM, "config");
        int len = snprintf(text, sizeof(text),
                           "{\"version\": %d, \"layout\": \"%s\", \"writable_fs\": \"%s\", "
                           "\"writable_size\": %" PRIu64 ", \"committed_format\": \"%s\", "
                           "\"upper_dir\": %s}\n",
                           CONFIG_VERSION, r->layout == SNAP_LAYOUT_BLOCK ? "block" : "overlay",
                           r->writable_fs, r->writable_size, r->committed_format,
                           r->upper_dir ? "true" : "false");
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return util_err_set(err, errno, "create '%s'", tmp);
        if (write(fd, text, (size_t)len) != len || fsync(fd) < 0)
                return util_err_set(err, errno ? errno : EIO, "write '%s'", tmp);
        if (rename(tmp, final) < 0)
                return util_err_set(err, errno, "rename '%s' to '%s'", tmp, final);
        _cleanup_close_ int dfd = open(r->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void)fsync(dfd);
        return 0;
}

/* Reads config.json (1 = read, 0 = none yet). */
static int config_read(struct snap_root *r, const struct snap_root_opts *o, struct util_err *err)
{
        _cleanup_free_ char *path = snap_path(r, "config.json");
        char text[4096];
        _cleanup_json_ yajl_val v = NULL;

        if (!path)
                return util_err_set(err, ENOMEM, "config");
        ssize_t n = util_read_small_file(path, text, sizeof(text));
        if (n == -ENOENT)
                return 0;
        if (n < 0)
                return util_err_set(err, (int)n, "read '%s'", path);
        int rr = util_json_parse(text, (size_t)n, path, NULL, &v, err);
        if (rr < 0)
                return rr;
        const char *fs = NULL, *layout = NULL;
        yajl_val size = util_json_get(v, "writable_size", false);
        uint32_t version = 0;
        if (util_json_u32(util_json_get(v, "version", false), "config.json: version", &version,
                          err) < 0 ||
            util_json_string(util_json_get(v, "writable_fs", false), "config.json: writable_fs",
                             &fs, err) < 0)
                return -EINVAL;
        if (util_json_string(util_json_get(v, "layout", false), "config.json: layout", &layout,
                             err) < 0)
                return -EINVAL;
        if (strcmp(layout, "overlay") != 0 && strcmp(layout, "block") != 0)
                return util_err_setx(err, EINVAL, "'%s': unknown layout '%s'", path, layout);
        enum snap_layout recorded =
                strcmp(layout, "block") == 0 ? SNAP_LAYOUT_BLOCK : SNAP_LAYOUT_OVERLAY;
        /* overlay is the default (0): only an explicit block can disagree. */
        if (o->layout == SNAP_LAYOUT_BLOCK && recorded != SNAP_LAYOUT_BLOCK)
                return util_err_setx(err, EINVAL,
                                     "root '%s' was created with layout 'overlay', not 'block'",
                                     r->path);
        r->layout = recorded;
        if (version != CONFIG_VERSION)
                return util_err_setx(err, EINVAL, "'%s': version %u is not %d", path, version,
                                     CONFIG_VERSION);
        if (!YAJL_IS_INTEGER(size) || YAJL_GET_INTEGER(size) <= 0)
                return util_err_setx(err, EINVAL, "'%s': bad writable_size", path);
        if (o->writable_fs && strcmp(o->writable_fs, fs) != 0)
                return util_err_setx(err, EINVAL,
                                     "root '%s' was created with writable_fs '%s', not '%s' "
                                     "(mount specs of its snapshots depend on it)",
                                     r->path, fs, o->writable_fs);
        if (o->writable_size && o->writable_size != (uint64_t)YAJL_GET_INTEGER(size))
                return util_err_setx(err, EINVAL,
                                     "root '%s' was created with writable_size %lld, not %" PRIu64,
                                     r->path, YAJL_GET_INTEGER(size), o->writable_size);
        /* Both were added with version 1 files already around: absent means
         * the defaults (ext4, an image upper). */
        const char *cf = "ext4";
        yajl_val cfv = util_json_get(v, "committed_format", false);
        if (cfv && util_json_string(cfv, "config.json: committed_format", &cf, err) < 0)
                return -EINVAL;
        if (strcmp(cf, "ext4") != 0 && strcmp(cf, "erofs") != 0)
                return util_err_setx(err, EINVAL, "'%s': unknown committed_format '%s'", path, cf);
        yajl_val ud = util_json_get(v, "upper_dir", false);
        if (ud && !YAJL_IS_TRUE(ud) && !YAJL_IS_FALSE(ud))
                return util_err_setx(err, EINVAL, "'%s': upper_dir is not true or false", path);
        bool upper_dir = ud && YAJL_IS_TRUE(ud);
        if (o->committed_format && strcmp(o->committed_format, cf) != 0)
                return util_err_setx(err, EINVAL,
                                     "root '%s' was created with committed_format '%s', not '%s'",
                                     r->path, cf, o->committed_format);
        /* false is the default: only an explicit true can disagree. */
        if (o->upper_dir && !upper_dir)
                return util_err_setx(err, EINVAL,
                                     "root '%s' was created with an image upper, not upper_dir",
                                     r->path);
        free(r->writable_fs);
        free(r->committed_format);
        r->writable_fs = strdup(fs);
        r->committed_format = strdup(cf);
        r->upper_dir = upper_dir;
        r->writable_size = (uint64_t)YAJL_GET_INTEGER(size);
        return r->writable_fs && r->committed_format ? 1 : util_err_set(err, ENOMEM, "config");
}

/* Whether the kernel can mount `type` (fsopen loads the module on demand). */
static bool kernel_has_fs(const char *type)
{
        int fd = (int)syscall(SYS_fsopen, type, FSOPEN_CLOEXEC);
        if (fd >= 0) {
                close(fd);
                return true;
        }
        return errno != ENODEV;
}

/* The combinations a root can have, and what they need from the host. */
static int settings_check(struct snap_root *r, struct util_err *err)
{
        bool erofs = strcmp(r->committed_format, "erofs") == 0;
        if (r->layout == SNAP_LAYOUT_BLOCK && erofs)
                return util_err_setx(err, EINVAL,
                                     "committed_format 'erofs' needs layout 'overlay' (a block "
                                     "layout's child is a writable clone of its parent's image)");
        if (r->layout == SNAP_LAYOUT_BLOCK && r->upper_dir)
                return util_err_setx(err, EINVAL,
                                     "upper_dir needs layout 'overlay' (a block layout's "
                                     "snapshot is one image)");
        if (erofs && !kernel_has_fs("erofs"))
                return util_err_setx(err, EOPNOTSUPP,
                                     "committed_format 'erofs': this kernel cannot mount erofs");
        if (erofs && snap_image_tool_check("erofs", err) < 0)
                return -EOPNOTSUPP;
        if (r->upper_dir && !erofs && snap_image_tool_check("ext4", err) < 0)
                return -EOPNOTSUPP;
        return 0;
}

const char *snap_committed_type(const struct snap_root *r)
{
        if (strcmp(r->committed_format, "erofs") == 0)
                return "erofs";
        return r->upper_dir ? "ext4" : r->writable_fs;
}

char *snap_layer_image(const struct snap_root *r, int64_t id)
{
        bool erofs = strcmp(r->committed_format, "erofs") == 0;
        return snap_path(r, "snapshots/%lld/%s", (long long)id, erofs ? "layer.erofs" : "fs.img");
}

/* Opens (creating, 0600) lock file `name` of the root into *ret_fd. */
static int lock_file_open(struct snap_root *r, const char *name, int *ret_fd, struct util_err *err)
{
        _cleanup_free_ char *path = snap_path(r, "%s", name);
        if (!path)
                return util_err_set(err, ENOMEM, "open root");
        *ret_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (*ret_fd < 0)
                return util_err_set(err, errno, "open '%s'", path);
        return 0;
}

int snap_root_open(const struct snap_root_opts *o, struct snap_root **ret, struct util_err *err)
{
        static const struct snap_root_opts defaults = {0};
        _cleanup_(snap_root_closep) struct snap_root *r = calloc(1, sizeof(*r));
        int rc;

        if (!o)
                o = &defaults;
        if (!r)
                return util_err_set(err, ENOMEM, "open root");
        r->lock_fd = -EBADF;
        pthread_mutex_init(&r->verified_lock, NULL);
        /* Say what is missing before anything is created. */
        if (o->layout != SNAP_LAYOUT_OVERLAY && o->layout != SNAP_LAYOUT_BLOCK)
                return util_err_setx(err, EINVAL, "unknown layout %d", (int)o->layout);
        if (o->committed_format && strcmp(o->committed_format, "ext4") != 0 &&
            strcmp(o->committed_format, "erofs") != 0)
                return util_err_setx(err, EINVAL, "committed_format '%s': expected ext4 or erofs",
                                     o->committed_format);
        if (o->writable_fs && !snap_fs_lookup(o->writable_fs))
                return util_err_setx(err, EINVAL, "writable_fs '%s': expected ext4 or xfs",
                                     o->writable_fs);

        r->layout = o->layout;
        r->path = strdup(o->path ? o->path : SNAP_DEFAULT_ROOT);
        r->writable_fs = strdup(o->writable_fs ? o->writable_fs : "ext4");
        r->writable_size = o->writable_size ? o->writable_size : SNAP_DEFAULT_WRITABLE_SIZE;
        r->committed_format = strdup(o->committed_format ? o->committed_format : "ext4");
        r->upper_dir = o->upper_dir;
        r->m_lock_fd = -EBADF;
        r->w_lock_fd = -EBADF;
        if (!r->path || !r->writable_fs || !r->committed_format)
                return util_err_set(err, ENOMEM, "open root");

        rc = mkdir_0700(r->path, err);
        if (rc < 0)
                return rc;
        static const char *const subdirs[] = {"snapshots", "templates", "tmp", "trash",
                                              "m",         "w",         "pool"};
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(subdirs); k++) {
                _cleanup_free_ char *p = snap_path(r, "%s", subdirs[k]);
                if (!p)
                        return util_err_set(err, ENOMEM, "open root");
                if ((rc = mkdir_0700(p, err)) < 0)
                        return rc;
        }
        _cleanup_free_ char *db = snap_path(r, "metadata.db");
        if (!db)
                return util_err_set(err, ENOMEM, "open root");
        if ((rc = lock_file_open(r, "lock", &r->lock_fd, err)) < 0)
                return rc;

        rc = config_read(r, o, err);
        if (rc >= 0 && settings_check(r, err) < 0)
                rc = -err->errnum;
        if (rc == 0)
                rc = config_write(r, err);
        if (rc < 0)
                return util_err_prefix(err, "open root '%s'", r->path);
        if ((rc = lock_file_open(r, "m/.lock", &r->m_lock_fd, err)) < 0 ||
            (rc = lock_file_open(r, "w/.lock", &r->w_lock_fd, err)) < 0)
                return rc;
        long pool = util_env_long("LOOPSNAP_WRITABLE_POOL", (long)o->writable_pool);
        if (r->layout == SNAP_LAYOUT_OVERLAY && pool > 0)
                r->pool_max = pool > 1024 ? 1024 : (unsigned)pool;
        /* The cache serves overlay lowers; a block-layout snapshot is one
         * image of its own. */
        r->activation = !o->no_activation_cache && r->layout == SNAP_LAYOUT_OVERLAY &&
                        util_env_long("LOOPSNAP_ACTIVATION", 1) != 0;

        rc = snap_store_open(db, &r->store, err);
        if (rc < 0)
                return rc;
        struct mount_engine_opts eo;
        struct stat st;
        if (stat(r->path, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", r->path);
        /* A short, stable owner for this root's loop-device tags. */
        snprintf(r->owner, sizeof(r->owner), "r%" PRIx64,
                 ((uint64_t)st.st_dev << 32) ^ (uint64_t)st.st_ino);
        snap_root_engine_opts(r, &eo);
        _cleanup_free_ char *scratch = snap_path(r, "tmp");
        eo.scratch_dir = scratch;
        rc = mount_engine_new(&eo, &r->engine, err);
        if (rc >= 0 && r->activation) {
                eo.reuse = NULL;
                eo.reuse_data = NULL;
                rc = mount_engine_new(&eo, &r->act_engine, err);
        }
        if (rc < 0)
                return rc;
        *ret = TAKE_PTR(r);
        return 0;
}

struct snap_root *snap_root_close(struct snap_root *r)
{
        if (!r)
                return NULL;
        snap_store_close(r->store);
        mount_engine_free(r->engine);
        mount_engine_free(r->act_engine);
        util_closep(&r->lock_fd);
        util_closep(&r->m_lock_fd);
        util_closep(&r->w_lock_fd);
        free(r->path);
        free(r->writable_fs);
        free(r->committed_format);
        pthread_mutex_destroy(&r->verified_lock);
        free(r);
        return NULL;
}

const char *snap_root_tag_owner(const struct snap_root *r)
{
        return r->owner;
}

const char *snap_root_path(const struct snap_root *r)
{
        return r->path;
}
