/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * snapctl oci-config: write the loopsnap OCI hook (docs/hook.md) into a
 * bundle's config.json — the createRuntime, createContainer and poststop
 * hooks with the hook binary's absolute path, and the annotations that
 * select the snapshot. crun reads no hooks.d directory, so whoever writes
 * config.json must add the hooks (research/oci-hook.md §8).
 *
 * The document is untrusted input: read with a size limit, its nesting
 * checked before yajl builds a tree, and written back member by member with
 * every other field as it was (numbers keep their text). Running it again
 * replaces the hook's entries and annotations instead of adding more. The
 * file is replaced atomically (temporary file, fsync, rename), keeping its
 * mode.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <yajl/yajl_tree.h>

#include "plugin/snapctl.h"

#define OCI_CONFIG_MAX_BYTES (4u << 20)
#define OCI_CONFIG_MAX_DEPTH 64u
#define OCI_HOOK_NAME        "loopsnap-oci-hook"

/* The annotations the hook reads (plugin/hook.h says the same). */
#define ANN_ROOT   "io.loopsnap.root"
#define ANN_PARENT "io.loopsnap.parent"
#define ANN_KEY    "io.loopsnap.key"
#define ANN_KEEP   "io.loopsnap.keep-after-stop"
#define ANN_SIZE   "io.loopsnap.writable-size"

/* Stage and its timeout in seconds: createRuntime may format the first
 * writable template of a root (mkfs); poststop waits up to 10 s for the
 * kernel to free the container's loop device. */
static const struct {
        const char *stage;
        int timeout;
} stages[] = {
        {"createRuntime", 60},
        {"createContainer", 10},
        {"poststop", 30},
};

struct oci {
        const char *hook;      /* absolute path of the hook binary */
        const char *ann[5][2]; /* annotations to set (value NULL: remove) */
};

static void yajl_tree_freep(yajl_val *v)
{
        if (*v)
                yajl_tree_free(*v);
}

static void yajl_gen_freep(yajl_gen *g)
{
        if (*g)
                yajl_gen_free(*g);
}

/* Deepest nesting of arrays/objects, ignoring brackets inside strings. */
static unsigned depth_of(const char *s, size_t len)
{
        unsigned d = 0, max = 0;
        bool in_str = false, esc = false;

        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (in_str) {
                        if (esc)
                                esc = false;
                        else if (c == '\\')
                                esc = true;
                        else if (c == '"')
                                in_str = false;
                } else if (c == '"') {
                        in_str = true;
                } else if (c == '[' || c == '{') {
                        if (++d > max)
                                max = d;
                } else if ((c == ']' || c == '}') && d > 0) {
                        d--;
                }
        }
        return max;
}

static int gen_str(yajl_gen g, const char *s)
{
        return yajl_gen_string(g, (const unsigned char *)s, strlen(s)) == yajl_gen_status_ok ? 0
                                                                                             : -1;
}

/* Writes `v` as it was. Depth is bounded by depth_of() before parsing. */
static int gen_value(yajl_gen g, yajl_val v)
{
        int bad = 0;

        if (!v) /* yajl stores JSON null as a node, never as NULL */
                return -1;
        if (YAJL_IS_STRING(v))
                return gen_str(g, YAJL_GET_STRING(v));
        if (YAJL_IS_NUMBER(v))
                return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r)) ==
                                       yajl_gen_status_ok
                               ? 0
                               : -1;
        if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
                return yajl_gen_bool(g, YAJL_IS_TRUE(v)) == yajl_gen_status_ok ? 0 : -1;
        if (YAJL_IS_NULL(v))
                return yajl_gen_null(g) == yajl_gen_status_ok ? 0 : -1;
        if (YAJL_IS_ARRAY(v)) {
                yajl_gen_array_open(g);
                for (size_t k = 0; k < v->u.array.len && !bad; k++)
                        bad |= gen_value(g, v->u.array.values[k]);
                yajl_gen_array_close(g);
                return bad;
        }
        yajl_gen_map_open(g);
        for (size_t k = 0; k < v->u.object.len && !bad; k++) {
                bad |= gen_str(g, v->u.object.keys[k]);
                bad |= gen_value(g, v->u.object.values[k]);
        }
        yajl_gen_map_close(g);
        return bad;
}

static yajl_val member(yajl_val obj, const char *key)
{
        if (!obj || !YAJL_IS_OBJECT(obj))
                return NULL;
        for (size_t k = 0; k < obj->u.object.len; k++)
                if (strcmp(obj->u.object.keys[k], key) == 0)
                        return obj->u.object.values[k];
        return NULL;
}

/* Whether hook entry `h` is one of ours (same binary). */
static bool is_our_hook(yajl_val h, const char *hook)
{
        yajl_val p = member(h, "path");
        if (!p || !YAJL_IS_STRING(p))
                return false;
        const char *s = YAJL_GET_STRING(p);
        const char *base = strrchr(s, '/');
        return strcmp(s, hook) == 0 || strcmp(base ? base + 1 : s, OCI_HOOK_NAME) == 0;
}

static int gen_our_hook(yajl_gen g, const char *hook, const char *stage, int timeout)
{
        int bad = 0;

        yajl_gen_map_open(g);
        bad |= gen_str(g, "path");
        bad |= gen_str(g, hook);
        bad |= gen_str(g, "args");
        yajl_gen_array_open(g);
        bad |= gen_str(g, OCI_HOOK_NAME);
        bad |= gen_str(g, stage);
        yajl_gen_array_close(g);
        bad |= gen_str(g, "timeout");
        yajl_gen_integer(g, timeout);
        yajl_gen_map_close(g);
        return bad;
}

/* "hooks": the given object with every stage kept, our entries of our
 * three stages replaced by one at the end. */
static int gen_hooks(yajl_gen g, yajl_val hooks, const struct oci *o)
{
        int bad = 0;

        yajl_gen_map_open(g);
        for (size_t k = 0; hooks && k < hooks->u.object.len; k++) {
                const char *name = hooks->u.object.keys[k];
                yajl_val list = hooks->u.object.values[k];
                bool ours = false;
                for (size_t s = 0; s < UTIL_ARRAY_SIZE(stages); s++)
                        ours |= strcmp(name, stages[s].stage) == 0;
                if (!ours) {
                        bad |= gen_str(g, name);
                        bad |= gen_value(g, list);
                }
        }
        for (size_t s = 0; s < UTIL_ARRAY_SIZE(stages); s++) {
                yajl_val list = member(hooks, stages[s].stage);
                bad |= gen_str(g, stages[s].stage);
                yajl_gen_array_open(g);
                for (size_t k = 0; list && YAJL_IS_ARRAY(list) && k < list->u.array.len; k++)
                        if (!is_our_hook(list->u.array.values[k], o->hook))
                                bad |= gen_value(g, list->u.array.values[k]);
                bad |= gen_our_hook(g, o->hook, stages[s].stage, stages[s].timeout);
                yajl_gen_array_close(g);
        }
        yajl_gen_map_close(g);
        return bad;
}

static int gen_annotations(yajl_gen g, yajl_val ann, const struct oci *o)
{
        int bad = 0;

        yajl_gen_map_open(g);
        for (size_t k = 0; ann && k < ann->u.object.len; k++) {
                bool ours = false;
                for (size_t a = 0; a < UTIL_ARRAY_SIZE(o->ann); a++)
                        ours |= strcmp(ann->u.object.keys[k], o->ann[a][0]) == 0;
                if (!ours) {
                        bad |= gen_str(g, ann->u.object.keys[k]);
                        bad |= gen_value(g, ann->u.object.values[k]);
                }
        }
        for (size_t a = 0; a < UTIL_ARRAY_SIZE(o->ann); a++)
                if (o->ann[a][1]) {
                        bad |= gen_str(g, o->ann[a][0]);
                        bad |= gen_str(g, o->ann[a][1]);
                }
        yajl_gen_map_close(g);
        return bad;
}

static int gen_config(yajl_gen g, yajl_val root, const struct oci *o)
{
        bool hooks_done = false, ann_done = false;
        int bad = 0;

        yajl_gen_map_open(g);
        for (size_t k = 0; k < root->u.object.len; k++) {
                const char *key = root->u.object.keys[k];
                bad |= gen_str(g, key);
                if (strcmp(key, "hooks") == 0) {
                        bad |= gen_hooks(g, root->u.object.values[k], o);
                        hooks_done = true;
                } else if (strcmp(key, "annotations") == 0) {
                        bad |= gen_annotations(g, root->u.object.values[k], o);
                        ann_done = true;
                } else {
                        bad |= gen_value(g, root->u.object.values[k]);
                }
        }
        if (!hooks_done) {
                bad |= gen_str(g, "hooks");
                bad |= gen_hooks(g, NULL, o);
        }
        if (!ann_done) {
                bad |= gen_str(g, "annotations");
                bad |= gen_annotations(g, NULL, o);
        }
        yajl_gen_map_close(g);
        return bad;
}

/* The hook binary: next to this snapctl (a build tree, or the same bindir),
 * else where the install put it. */
static int find_hook(char *buf, size_t size)
{
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        if (n > 0) {
                self[n] = '\0';
                snprintf(buf, size, "%s/%s", dirname(self), OCI_HOOK_NAME);
                if (access(buf, X_OK) == 0)
                        return 0;
        }
        snprintf(buf, size, "%s/%s", LOOPSNAP_BINDIR, OCI_HOOK_NAME);
        return access(buf, X_OK) == 0 ? 0 : -ENOENT;
}

/* Reads a regular file of at most `max` bytes. Returns 0 or -errno. */
static int read_file(const char *path, size_t max, char **ret, size_t *ret_len, mode_t *ret_mode)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t len = 0;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if ((uint64_t)st.st_size > max)
                return -E2BIG;
        buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t r = read(fd, buf + len, max + 1 - len);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        break;
                len += (size_t)r;
                if (len > max)
                        return -E2BIG;
        }
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        *ret_mode = st.st_mode & 07777;
        return 0;
}

static int write_atomic(const char *path, const char *text, size_t len, mode_t mode)
{
        _cleanup_free_ char *tmp = NULL;
        int fd, r = 0;

        if (asprintf(&tmp, "%s.snapctl-tmp", path) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
            fchmod(fd, mode) < 0 || fsync(fd) < 0)
                r = errno ? -errno : -EIO;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void)unlink(tmp);
        return r;
}

/* Makes root.path (relative to the bundle, or absolute) exist: the hook
 * stacks the container's tree on it, crun binds it first. */
static int root_dir(const char *bundle, yajl_val root, bool *created)
{
        yajl_val rt = member(root, "root");
        yajl_val p = member(rt, "path");
        char path[4200];

        if (!p || !YAJL_IS_STRING(p) || !*YAJL_GET_STRING(p))
                return -EINVAL;
        const char *s = YAJL_GET_STRING(p);
        if (s[0] == '/')
                snprintf(path, sizeof(path), "%s", s);
        else
                snprintf(path, sizeof(path), "%s/%s", bundle, s);
        if (mkdir(path, 0755) == 0)
                *created = true;
        else if (errno != EEXIST)
                return -errno;
        return 0;
}

int ctl_cmd_oci_config(struct ctl *c, int argc, char **argv)
{
        _cleanup_(yajl_tree_freep) yajl_val root = NULL;
        _cleanup_(yajl_gen_freep) yajl_gen g = NULL;
        _cleanup_free_ char *path = NULL, *text = NULL, *abs_root = NULL, *abs_bundle = NULL;
        const char *bundle;
        char hook[4096], size[32], ebuf[256];
        const unsigned char *out;
        size_t len = 0, out_len;
        bool created = false;
        mode_t mode = 0644;
        int r;

        if (!c->parent)
                return ctl_usage_error("oci-config", "--parent NAME is required");
        if (c->hook_path) {
                if (c->hook_path[0] != '/')
                        return ctl_usage_error("oci-config",
                                               "--hook '%s': expected an absolute "
                                               "path",
                                               c->hook_path);
                snprintf(hook, sizeof(hook), "%s", c->hook_path);
        } else if (find_hook(hook, sizeof(hook)) < 0) {
                ctl_msg("oci-config: cannot find %s next to snapctl or in %s; give --hook PATH",
                        OCI_HOOK_NAME, LOOPSNAP_BINDIR);
                return ctl_exit_code(CTL_OUTCOME_ERROR, LOOPSNAP_ERR_NOT_FOUND);
        }
        if (c->root_path) {
                abs_root = realpath(c->root_path, NULL);
                if (!abs_root) {
                        ctl_msg("oci-config: --root '%s': %m", c->root_path);
                        return ctl_exit_code(CTL_OUTCOME_ERROR, LOOPSNAP_ERR_NOT_FOUND);
                }
        }
        abs_bundle = realpath(argv[0], NULL);
        if (!abs_bundle) {
                ctl_msg("oci-config: bundle '%s': %m", argv[0]);
                return ctl_exit_code(CTL_OUTCOME_ERROR, errno == ENOENT
                                                                ? LOOPSNAP_ERR_NOT_FOUND
                                                                : LOOPSNAP_ERR_INVALID_ARGUMENT);
        }
        bundle = abs_bundle;
        if (asprintf(&path, "%s/config.json", bundle) < 0) {
                path = NULL;
                ctl_msg("out of memory");
                return CTL_EXIT_INTERNAL;
        }
        r = read_file(path, OCI_CONFIG_MAX_BYTES, &text, &len, &mode);
        if (r < 0) {
                if (r == -E2BIG)
                        ctl_msg("oci-config: '%s': more than %u bytes", path, OCI_CONFIG_MAX_BYTES);
                else if (r == -EINVAL)
                        ctl_msg("oci-config: '%s' is not a regular file", path);
                else
                        ctl_msg("oci-config: read '%s': %s", path, strerror(-r));
                return ctl_exit_code(CTL_OUTCOME_ERROR, r == -ENOENT
                                                                ? LOOPSNAP_ERR_NOT_FOUND
                                                                : LOOPSNAP_ERR_INVALID_ARGUMENT);
        }
        /* read_file() set text (r >= 0). NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
        if (memchr(text, '\0', len) || depth_of(text, len) > OCI_CONFIG_MAX_DEPTH) {
                ctl_msg("oci-config: '%s': a NUL byte or nesting deeper than %u", path,
                        OCI_CONFIG_MAX_DEPTH);
                return ctl_exit_code(CTL_OUTCOME_ERROR, LOOPSNAP_ERR_INVALID_ARGUMENT);
        }
        ebuf[0] = '\0';
        root = yajl_tree_parse(text, ebuf, sizeof(ebuf));
        if (!root || !YAJL_IS_OBJECT(root)) {
                char *nl = strchr(ebuf, '\n');
                if (nl)
                        *nl = '\0';
                ctl_msg("oci-config: '%s': %s", path,
                        root      ? "expected a JSON object"
                        : ebuf[0] ? ebuf
                                  : "not JSON");
                return ctl_exit_code(CTL_OUTCOME_ERROR, LOOPSNAP_ERR_INVALID_ARGUMENT);
        }
        yajl_val hooks = member(root, "hooks"), ann = member(root, "annotations");
        if ((hooks && !YAJL_IS_OBJECT(hooks)) || (ann && !YAJL_IS_OBJECT(ann))) {
                ctl_msg("oci-config: '%s': hooks and annotations must be objects", path);
                return ctl_exit_code(CTL_OUTCOME_ERROR, LOOPSNAP_ERR_INVALID_ARGUMENT);
        }
        for (size_t k = 0; hooks && k < UTIL_ARRAY_SIZE(stages); k++) {
                yajl_val l = member(hooks, stages[k].stage);
                if (l && !YAJL_IS_ARRAY(l)) {
                        ctl_msg("oci-config: '%s': hooks.%s must be an array", path,
                                stages[k].stage);
                        return ctl_exit_code(CTL_OUTCOME_ERROR, LOOPSNAP_ERR_INVALID_ARGUMENT);
                }
        }
        if ((r = root_dir(bundle, root, &created)) < 0) {
                ctl_msg("oci-config: '%s': root.path: %s", path,
                        r == -EINVAL ? "missing or not a string" : strerror(-r));
                return ctl_exit_code(CTL_OUTCOME_ERROR, LOOPSNAP_ERR_INVALID_ARGUMENT);
        }

        struct oci o = {
                .hook = hook,
                .ann =
                        {
                                {ANN_ROOT, abs_root},
                                {ANN_PARENT, c->parent},
                                {ANN_KEY, c->key},
                                {ANN_KEEP, c->keep ? "true" : NULL},
                                {ANN_SIZE, NULL},
                        },
        };
        if (c->size) {
                snprintf(size, sizeof(size), "%" PRIu64, c->size);
                o.ann[4][1] = size;
        }
        g = yajl_gen_alloc(NULL);
        if (!g) {
                ctl_msg("out of memory");
                return CTL_EXIT_INTERNAL;
        }
        yajl_gen_config(g, yajl_gen_validate_utf8, 1);
        yajl_gen_config(g, yajl_gen_beautify, 1);
        yajl_gen_config(g, yajl_gen_indent_string, "\t");
        if (gen_config(g, root, &o) != 0 || yajl_gen_get_buf(g, &out, &out_len) != 0) {
                ctl_msg("oci-config: '%s': cannot write it back (invalid UTF-8?)", path);
                return ctl_exit_code(CTL_OUTCOME_ERROR, LOOPSNAP_ERR_INVALID_ARGUMENT);
        }
        if ((r = write_atomic(path, (const char *)out, out_len, mode)) < 0) {
                ctl_msg("oci-config: write '%s': %s", path, strerror(-r));
                return CTL_EXIT_INTERNAL;
        }
        if (c->json) {
                yajl_gen j = ctl_json_begin();
                yajl_gen_map_open(j);
                ctl_json_key(j, "config");
                ctl_json_str(j, path);
                ctl_json_key(j, "hook");
                ctl_json_str(j, hook);
                ctl_json_key(j, "annotations");
                yajl_gen_map_open(j);
                for (size_t a = 0; a < UTIL_ARRAY_SIZE(o.ann); a++)
                        if (o.ann[a][1]) {
                                ctl_json_key(j, o.ann[a][0]);
                                ctl_json_str(j, o.ann[a][1]);
                        }
                yajl_gen_map_close(j);
                ctl_json_key(j, "created_root_path");
                ctl_json_bool(j, created);
                yajl_gen_map_close(j);
                return ctl_json_end(j);
        }
        printf("%s: hooks (%s) and annotations written\n", path, hook);
        return CTL_EXIT_OK;
}
