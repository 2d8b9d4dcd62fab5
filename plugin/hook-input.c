/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hook's input: the runtime's state JSON on stdin and the bundle's
 * config.json, both untrusted (DESIGN §10). Sizes and nesting are limited
 * (util/json.h), every field is type-checked, the container id is checked
 * before it becomes a path component, and every error names the field.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "idmap/idmap.h"
#include "plugin/hook.h"
#include "snapshot/snapshot.h"

void hook_input_done(struct hook_input *in)
{
        free(in->bundle);
        free(in->root_path);
        free(in->snap_root);
        free(in->parent);
        free(in->key);
        free(in->uidmap);
        free(in->gidmap);
        free(in->stderr_file);
        *in = (struct hook_input){0};
}

/* Reads `fd` to EOF into a malloc'ed buffer; E2BIG past `max` bytes. */
static int read_all(int fd, size_t max, char **ret, size_t *ret_len)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;

        for (;;) {
                if (len == cap) {
                        size_t ncap = cap ? 2 * cap : 4096;
                        if (ncap > max + 1)
                                ncap = max + 1;
                        if (ncap == cap)
                                return -E2BIG;
                        char *n = realloc(buf, ncap);
                        if (!n)
                                return -ENOMEM;
                        buf = n;
                        cap = ncap;
                }
                ssize_t r = read(fd, buf + len, cap - len);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        break;
                len += (size_t)r;
        }
        if (len > max)
                return -E2BIG;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* Whether `s` holds a C0 control character or DEL. */
static bool has_control(const char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

static int id_check(const char *id, struct util_err *err)
{
        char p[UTIL_PREVIEW_SIZE];
        size_t n = strlen(id);

        if (n == 0 || n > HOOK_ID_MAX || id[0] == '.' ||
            strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-") != n)
                return util_err_setx(err, EINVAL,
                                     "state: id '%s': expected 1 to %d characters of "
                                     "[A-Za-z0-9_.+-], not starting with '.'",
                                     util_preview(p, id, SIZE_MAX), HOOK_ID_MAX);
        return 0;
}

/* An optional string member; EINVAL when present but not a string. */
static int opt_string(yajl_val obj, const char *key, const char *what, const char **ret,
                      struct util_err *err)
{
        yajl_val v = util_json_get(obj, key, false);

        *ret = NULL;
        if (!v || YAJL_IS_NULL(v))
                return 0;
        return util_json_string(v, what, ret, err);
}

static int dup_to(char **dst, const char *s, struct util_err *err)
{
        char *c = strdup(s);
        if (!c)
                return util_err_set(err, ENOMEM, "input");
        free(*dst);
        *dst = c;
        return 0;
}

int hook_input_read_state(int fd, struct hook_input *in, struct util_err *err)
{
        struct util_json_limits lim = {.max_bytes = HOOK_STATE_MAX_BYTES};
        _cleanup_json_ yajl_val root = NULL;
        _cleanup_free_ char *text = NULL;
        const char *id = NULL, *bundle = NULL, *errfile = NULL;
        char p[UTIL_PREVIEW_SIZE];
        size_t len = 0;
        int r;

        r = read_all(fd, HOOK_STATE_MAX_BYTES, &text, &len);
        if (r == -E2BIG)
                return util_err_setx(err, E2BIG, "state on stdin: more than %u bytes",
                                     HOOK_STATE_MAX_BYTES);
        if (r < 0)
                return util_err_set(err, r, "read the state from stdin");
        if (len == 0)
                return util_err_setx(err, EINVAL,
                                     "no state on stdin (this program runs as an OCI hook; "
                                     "see docs/hook.md)");
        if ((r = util_json_parse(text, len, "state", &lim, &root, err)) < 0)
                return r;
        if (!YAJL_IS_OBJECT(root))
                return util_err_setx(err, EINVAL, "state: expected a JSON object");

        /* The stderr file first: later errors should reach it. */
        yajl_val ann = util_json_get(root, "annotations", false);
        if (ann && YAJL_IS_OBJECT(ann) &&
            opt_string(ann, HOOK_ANN_STDERR, "state: annotations." HOOK_ANN_STDERR, &errfile,
                       err) == 0 &&
            errfile && *errfile && (r = dup_to(&in->stderr_file, errfile, err)) < 0)
                return r;
        util_err_clear(err);

        r = util_json_string(util_json_get(root, "id", false), "state: id", &id, err);
        if (r < 0)
                return r;
        if ((r = id_check(id, err)) < 0)
                return r;
        snprintf(in->id, sizeof(in->id), "%s", id);

        yajl_val pid = util_json_get(root, "pid", false);
        if (pid) {
                if (!YAJL_IS_INTEGER(pid) || YAJL_GET_INTEGER(pid) < 0 ||
                    YAJL_GET_INTEGER(pid) > INT32_MAX)
                        return util_err_setx(err, EINVAL,
                                             "state: pid: expected a non-negative integer");
                in->pid = (pid_t)YAJL_GET_INTEGER(pid);
        }
        const char *status = NULL;
        if ((r = opt_string(root, "status", "state: status", &status, err)) < 0)
                return r;
        snprintf(in->status, sizeof(in->status), "%s", status ? status : "");
        r = util_json_string(util_json_get(root, "bundle", false), "state: bundle", &bundle, err);
        if (r < 0)
                return r;
        /* The bundle is a path every later message names (config.json's):
         * a control character in it is refused here, once. */
        if (bundle[0] != '/' || has_control(bundle))
                return util_err_setx(err, EINVAL,
                                     "state: bundle '%s': expected an absolute path without "
                                     "control characters",
                                     util_preview(p, bundle, SIZE_MAX));
        return dup_to(&in->bundle, bundle, err);
}

/* One annotation, as a string (annotations are string → string). */
static int ann_get(yajl_val ann, const char *key, const char **ret, struct util_err *err)
{
        char what[128];

        snprintf(what, sizeof(what), "config.json: annotations \"%s\"", key);
        return opt_string(ann, key, what, ret, err);
}

/* A "true"/"false" annotation; *ret stays as it is when absent. */
static int ann_bool(const char *name, const char *value, bool *ret, struct util_err *err)
{
        char p[UTIL_PREVIEW_SIZE];

        if (!value)
                return 0;
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
                return util_err_setx(err, EINVAL,
                                     "config.json: annotations \"%s\": '%s': expected true or "
                                     "false",
                                     name, util_preview(p, value, SIZE_MAX));
        *ret = strcmp(value, "true") == 0;
        return 0;
}

static int annotations(struct hook_input *in, yajl_val ann, struct util_err *err)
{
        const char *root = NULL, *parent = NULL, *key = NULL, *keep = NULL, *size = NULL;
        const char *cache = NULL, *pool = NULL;
        char p[UTIL_PREVIEW_SIZE];
        int r;

        if (ann && !YAJL_IS_OBJECT(ann))
                return util_err_setx(err, EINVAL, "config.json: annotations: expected an object");
        const char *errfile = NULL;
        if ((r = ann_get(ann, HOOK_ANN_STDERR, &errfile, err)) < 0)
                return r;
        if (errfile && *errfile && !in->stderr_file &&
            (r = dup_to(&in->stderr_file, errfile, err)) < 0)
                return r;
        if ((r = ann_get(ann, HOOK_ANN_ROOT, &root, err)) < 0 ||
            (r = ann_get(ann, HOOK_ANN_PARENT, &parent, err)) < 0 ||
            (r = ann_get(ann, HOOK_ANN_KEY, &key, err)) < 0 ||
            (r = ann_get(ann, HOOK_ANN_KEEP, &keep, err)) < 0 ||
            (r = ann_get(ann, HOOK_ANN_SIZE, &size, err)) < 0 ||
            (r = ann_get(ann, HOOK_ANN_CACHE, &cache, err)) < 0 ||
            (r = ann_get(ann, HOOK_ANN_POOL, &pool, err)) < 0)
                return r;
        if (root && root[0] != '/')
                return util_err_setx(err, EINVAL,
                                     "config.json: annotations \"%s\": '%s' is not an absolute "
                                     "path",
                                     HOOK_ANN_ROOT, util_preview(p, root, SIZE_MAX));
        if ((r = dup_to(&in->snap_root, root ? root : SNAP_DEFAULT_ROOT, err)) < 0)
                return r;
        if (parent && !*parent)
                return util_err_setx(err, EINVAL, "config.json: annotations \"%s\" is empty",
                                     HOOK_ANN_PARENT);
        if (parent && (r = dup_to(&in->parent, parent, err)) < 0)
                return r;
        if (key && !*key)
                return util_err_setx(err, EINVAL, "config.json: annotations \"%s\" is empty",
                                     HOOK_ANN_KEY);
        if ((r = dup_to(&in->key, key ? key : in->id, err)) < 0)
                return r;
        bool cache_on = true;
        if ((r = ann_bool(HOOK_ANN_KEEP, keep, &in->keep, err)) < 0 ||
            (r = ann_bool(HOOK_ANN_CACHE, cache, &cache_on, err)) < 0)
                return r;
        in->no_cache = !cache_on;
        /* Without the activation cache nothing stays mounted: no pool
         * either, unless asked for by name. */
        in->pool = in->no_cache ? 0 : SNAP_DEFAULT_WRITABLE_POOL;
        if (pool) {
                uint64_t v = 0;
                if (util_parse_u64(pool, &v) < 0 || v > 1024)
                        return util_err_setx(err, EINVAL,
                                             "config.json: annotations \"%s\": '%s': expected a "
                                             "number of spare images from 0 to 1024",
                                             HOOK_ANN_POOL, util_preview(p, pool, SIZE_MAX));
                in->pool = (unsigned)v;
        }
        if (size && (util_parse_size(size, &in->size) < 0 || in->size == 0))
                return util_err_setx(err, EINVAL,
                                     "config.json: annotations \"%s\": '%s': expected a size "
                                     "such as 64M or 10G",
                                     HOOK_ANN_SIZE, util_preview(p, size, SIZE_MAX));
        return 0;
}

/* linux.uidMappings / gidMappings into the labels' "c:h:s,..." form. */
static int mapping(yajl_val linux_obj, const char *key, char **ret, struct util_err *err)
{
        yajl_val v = util_json_get(linux_obj, key, false);
        struct idmap_map *m = NULL;
        char what[64], buf[8192];
        int r;

        if (!v || YAJL_IS_NULL(v) || (YAJL_IS_ARRAY(v) && YAJL_GET_ARRAY(v)->len == 0))
                return 0;
        snprintf(what, sizeof(what), "config.json: linux.%s", key);
        m = malloc(sizeof(*m));
        if (!m)
                return util_err_set(err, ENOMEM, "%s", what);
        r = idmap_parse_oci(v, what, m, err);
        if (r >= 0 && idmap_format(m, buf, sizeof(buf)) < 0)
                r = util_err_setx(err, E2BIG, "%s: too many ranges", what);
        free(m);
        if (r < 0)
                return r;
        return dup_to(ret, buf, err);
}

int hook_input_read_config(struct hook_input *in, struct util_err *err)
{
        struct util_json_limits lim = {.max_bytes = HOOK_CONFIG_MAX_BYTES};
        _cleanup_json_ yajl_val root = NULL;
        _cleanup_free_ char *path = NULL, *text = NULL, *rp = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *rootpath = NULL;
        char p[UTIL_PREVIEW_SIZE];
        struct stat st;
        size_t len = 0;
        int r;

        if (asprintf(&path, "%s/config.json", in->bundle) < 0) {
                path = NULL;
                return util_err_set(err, ENOMEM, "config.json");
        }
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return util_err_set(err, errno, "open '%s'", path);
        if (fstat(fd, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", path);
        if (!S_ISREG(st.st_mode))
                return util_err_setx(err, EINVAL, "'%s' is not a regular file", path);
        r = read_all(fd, HOOK_CONFIG_MAX_BYTES, &text, &len);
        if (r == -E2BIG)
                return util_err_setx(err, E2BIG, "'%s': more than %u bytes", path,
                                     HOOK_CONFIG_MAX_BYTES);
        if (r < 0)
                return util_err_set(err, r, "read '%s'", path);
        if ((r = util_json_parse(text, len, "config.json", &lim, &root, err)) < 0)
                return r;
        if (!YAJL_IS_OBJECT(root))
                return util_err_setx(err, EINVAL, "config.json: expected a JSON object");

        yajl_val rt = util_json_get(root, "root", false);
        if (!rt || !YAJL_IS_OBJECT(rt))
                return util_err_setx(err, EINVAL, "config.json: root: expected an object");
        r = util_json_string(util_json_get(rt, "path", false), "config.json: root.path", &rootpath,
                             err);
        if (r < 0)
                return r;
        if (!*rootpath)
                return util_err_setx(err, EINVAL, "config.json: root.path is empty");
        yajl_val ro = util_json_get(rt, "readonly", false);
        if (ro && !YAJL_IS_TRUE(ro) && !YAJL_IS_FALSE(ro))
                return util_err_setx(err, EINVAL, "config.json: root.readonly: expected a boolean");
        in->readonly = ro && YAJL_IS_TRUE(ro);
        /* crun resolves root.path against the bundle and follows symlinks
         * (realpath): the same directory it binds. */
        _cleanup_free_ char *joined = NULL;
        if (rootpath[0] != '/' && asprintf(&joined, "%s/%s", in->bundle, rootpath) < 0) {
                joined = NULL;
                return util_err_set(err, ENOMEM, "config.json");
        }
        rp = realpath(joined ? joined : rootpath, NULL);
        if (!rp)
                return util_err_set(err, errno, "config.json: root.path '%s'",
                                    util_preview(p, rootpath, SIZE_MAX));
        free(in->root_path);
        in->root_path = TAKE_PTR(rp);

        if ((r = annotations(in, util_json_get(root, "annotations", false), err)) < 0)
                return r;

        yajl_val lx = util_json_get(root, "linux", false);
        if (lx && !YAJL_IS_OBJECT(lx))
                return util_err_setx(err, EINVAL, "config.json: linux: expected an object");
        if (lx && ((r = mapping(lx, "uidMappings", &in->uidmap, err)) < 0 ||
                   (r = mapping(lx, "gidMappings", &in->gidmap, err)) < 0))
                return r;
        return 0;
}

int hook_stage_guess(const struct hook_input *in, const char **ret, struct util_err *err)
{
        char self[64] = "", init[64] = "", path[64], p[UTIL_PREVIEW_SIZE];

        if (strcmp(in->status, "stopped") == 0) {
                *ret = "poststop";
                return 0;
        }
        if (strcmp(in->status, "created") != 0 && strcmp(in->status, "creating") != 0)
                return util_err_setx(err, EINVAL,
                                     "auto: status '%s' is not a stage of this hook (register it "
                                     "for createRuntime, createContainer and poststop)",
                                     util_preview(p, in->status, SIZE_MAX));
        /* crun gives createContainer pid 0; runtimes that give the init's
         * pid run createContainer in its mount namespace, createRuntime in
         * the runtime's. */
        if (in->pid <= 0) {
                *ret = "createContainer";
                return 0;
        }
        snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)in->pid);
        ssize_t a = readlink("/proc/self/ns/mnt", self, sizeof(self) - 1);
        ssize_t b = readlink(path, init, sizeof(init) - 1);
        if (a < 0 || b < 0)
                return util_err_set(err, errno, "auto: read the mount namespaces");
        self[a] = init[b] = '\0';
        *ret = strcmp(self, init) == 0 ? "createContainer" : "createRuntime";
        return 0;
}
