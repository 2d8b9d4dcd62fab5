/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the kernel and the system offer, for `snapctl doctor`: the overlay
 * API the engine probed (and the one it uses), LOOP_CONFIGURE, idmapped
 * mounts, user namespaces, the filesystems the kernel lists, and the tools
 * loopsnap runs, looked up where loopsnap looks for them (fixed directories,
 * never the caller's PATH).
 *
 * The modules probe lazily (STYLE R4: probe, remember, never compare kernel
 * versions), so a fresh process may not know about LOOP_CONFIGURE yet. With
 * LOOPSNAP_FEATURES_PROBE the answer is found by doing it: a 1 MiB
 * unlinked temporary file is attached read-only to a loop device (freed at
 * once: autoclear, nothing mounts it) and a user namespace is created.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "idmap/idmap.h"
#include "loop/loop.h"
#include "plugin/plugin-internal.h"

#ifndef LOOPSNAP_VERSION
#error "LOOPSNAP_VERSION must be defined by the build"
#endif

/* Where loopsnap's modules look for the tools they run (snapshot/fs.c,
 * mount/simple.c). */
static const char *const tool_dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};

/* The path of `tool` (malloc'ed), NULL when absent; -ENOMEM. */
static int tool_find(const char *tool, const char **ret)
{
        char buf[256];

        *ret = NULL;
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(tool_dirs); k++) {
                snprintf(buf, sizeof(buf), "%s/%s", tool_dirs[k], tool);
                if (access(buf, X_OK) == 0) {
                        *ret = strdup(buf);
                        return *ret ? 0 : -ENOMEM;
                }
        }
        return 0;
}

/* Whether /proc/filesystems lists `fs` (1/0), -1 when it cannot be read. */
static int fs_listed(const char *text, const char *fs)
{
        if (!text)
                return -1;
        size_t n = strlen(fs);
        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
                /* "nodev\toverlay" or "\text4" */
                const char *tab = strchr(p, '\t');
                const char *eol = strchr(p, '\n');
                if (!tab || (eol && tab > eol))
                        continue;
                const char *name = tab + 1;
                size_t len = eol ? (size_t)(eol - name) : strlen(name);
                if (len == n && memcmp(name, fs, n) == 0)
                        return 1;
        }
        return 0;
}

/* A 1 MiB temporary file, already unlinked, in `dir`. Returns the fd or -errno. */
static int probe_file(const char *dir)
{
        _cleanup_close_ int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

        if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
                /* COMPAT(filesystems without O_TMPFILE): a named file,
                 * unlinked at once. */
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/.loopsnap-probe-XXXXXX", dir) < 0)
                        return -ENOMEM;
                fd = mkostemp(path, O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                (void)unlink(path);
        }
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, 1 << 20) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* LOOP_CONFIGURE, found out by attaching a probe file. */
static int probe_loop_configure(struct loopsnap_root *h, struct util_err *e)
{
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct loop_device *d = NULL;
        int rc;

        if (loop_feature_configure() >= 0)
                return loop_feature_configure();
        if (h && asprintf(&dir, "%s/tmp", snap_root_path(h->r)) < 0)
                return util_err_set(e, ENOMEM, "loop probe");
        fd = probe_file(dir ? dir : "/var/tmp");
        if (fd < 0)
                return util_err_set(e, fd, "loop probe: temporary file in '%s'",
                                    dir ? dir : "/var/tmp");
        struct loop_attach_opts o = {
                .flags = LOOP_ATTACH_READ_ONLY,
                .owner = h ? snap_root_tag_owner(h->r) : "doctor",
                .id = "probe",
        };
        rc = loop_attach_fd(fd, &o, &d, e);
        if (rc < 0)
                return util_err_prefix(e, "loop probe");
        /* Autoclear, no mount: releasing the handle frees the device. */
        loop_device_free(d);
        return loop_feature_configure();
}

/* Whether a user namespace can be created (one id mapped: nobody). */
static int probe_userns(bool probe)
{
        char buf[32];

        /* 0 here means the administrator switched them off. */
        if (util_read_small_file("/proc/sys/user/max_user_namespaces", buf, sizeof(buf)) > 0 &&
            strcmp(buf, "0") == 0)
                return 0;
        if (!probe)
                return -1;
        struct idmap_map m = {.n = 1, .r = {{.container = 0, .host = 65534, .size = 1}}};
        struct util_err ignored = {0};
        int fd = -EBADF;
        if (idmap_userns_new(&m, &m, &fd, &ignored) < 0)
                return 0;
        util_closep(&fd);
        return 1;
}

static void features_freep(struct loopsnap_features **f)
{
        plugin_features_free(*f);
}

static int features(struct loopsnap_root *h0, uint32_t flags, struct loopsnap_features **ret,
                    struct util_err *e)
{
        _cleanup_root_unlock_ struct loopsnap_root *h = h0 ? plugin_root_lock(h0, e) : NULL;
        _cleanup_(features_freep) struct loopsnap_features *f = NULL;
        _cleanup_(mount_engine_freep) struct mount_engine *tmp_engine = NULL;
        char fs_text[8192];
        bool probe = flags & LOOPSNAP_FEATURES_PROBE;
        int rc;

        if ((rc = plugin_arg_check(ret, "ret", e)) < 0)
                return rc;
        if (flags & ~(uint32_t)LOOPSNAP_FEATURES_PROBE)
                return util_err_setx(e, EINVAL, "features: unknown flags 0x%x",
                                     flags & ~(uint32_t)LOOPSNAP_FEATURES_PROBE);
        f = calloc(1, sizeof(*f));
        if (!f)
                return util_err_set(e, ENOMEM, "features");
        f->struct_size = sizeof(*f);
        f->version = LOOPSNAP_VERSION;

        enum mount_api best = mount_api_probe();
        f->overlay_api = mount_api_name(best);
        /* What an engine would use here: LOOPSNAP_MOUNT_API, else the probe. */
        struct mount_engine *eng = h ? h->engine : NULL;
        if (!eng) {
                if ((rc = mount_engine_new(NULL, &tmp_engine, e)) < 0)
                        return util_err_prefix(e, "features");
                eng = tmp_engine;
        }
        f->overlay_api_used = mount_api_name(mount_engine_api(eng));
        /* The probe tries fd layers first: "lowerdir+" by fd builds on the
         * "lowerdir+" key, so fd implies strings. */
        f->overlay_fd = best == MOUNT_API_FD;
        f->overlay_lowerdir_plus = best == MOUNT_API_FD || best == MOUNT_API_LOWERDIR_PLUS;

        if (probe) {
                rc = probe_loop_configure(h, e);
                if (rc < 0)
                        return rc;
                f->loop_configure = rc;
        } else {
                f->loop_configure = loop_feature_configure();
        }
        f->idmapped_mounts = idmap_feature_supported();
        f->user_namespaces = probe_userns(probe);

        ssize_t n = util_read_small_file("/proc/filesystems", fs_text, sizeof(fs_text));
        const char *text = n >= 0 ? fs_text : NULL;
        f->fs_overlay = fs_listed(text, "overlay");
        f->fs_ext4 = fs_listed(text, "ext4");
        f->fs_xfs = fs_listed(text, "xfs");
        f->fs_erofs = fs_listed(text, "erofs");
        f->fs_fuse = fs_listed(text, "fuse");

        if (tool_find("mkfs.ext4", &f->mkfs_ext4) < 0 || tool_find("mkfs.xfs", &f->mkfs_xfs) < 0 ||
            tool_find("mkfs.erofs", &f->mkfs_erofs) < 0 ||
            tool_find("mount.fuse3", &f->mount_fuse3) < 0)
                return util_err_set(e, ENOMEM, "features");
        *ret = TAKE_PTR(f);
        return 0;
}

int plugin_op_features(struct loopsnap_root *h, uint32_t flags, struct loopsnap_features **ret,
                       struct loopsnap_error *err)
{
        struct util_err e = {0};

        if (plugin_err_check(err) < 0)
                return -EINVAL;
        return plugin_err_out(err, &e, features(h, flags, ret, &e));
}
