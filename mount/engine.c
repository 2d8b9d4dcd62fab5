/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine: applies a spec mount by mount. It decides where each mount
 * goes (intermediate: detached, or a private scratch mountpoint; otherwise
 * the target), hands each to overlay.c or simple.c, sets propagation in a
 * second call, and cleans up: intermediates are dropped once the spec is
 * applied (overlay keeps private clones of its layers), loop handles are
 * released (autoclear frees each device with its last mount), and on any
 * failure everything already mounted is unmounted again, so a failed apply
 * leaves nothing mounted or attached.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "mount/mount-internal.h"

int mount_engine_new(const struct mount_engine_opts *o, struct mount_engine **ret,
                     struct util_err *err)
{
        _cleanup_(mount_engine_freep) struct mount_engine *e = calloc(1, sizeof(*e));
        enum mount_api api = o ? o->api : MOUNT_API_AUTO;

        if (!e)
                return util_err_set(err, ENOMEM, "mount engine");
        if (api == MOUNT_API_AUTO) {
                const char *env = getenv("LOOPSNAP_MOUNT_API");
                if (env && *env && mount_api_parse(env, &api) < 0)
                        return util_err_setx(err, EINVAL,
                                             "LOOPSNAP_MOUNT_API='%s': expected fd, lowerdir+ or "
                                             "legacy",
                                             env);
        }
        if (api == MOUNT_API_AUTO)
                api = mount_api_probe();
        e->api = api;
        if (o && o->reuse && api != MOUNT_API_LEGACY) {
                e->reuse = o->reuse;
                e->reuse_data = o->reuse_data;
        }
        e->loop_owner = strdup(o && o->loop_owner ? o->loop_owner : "mount");
        e->scratch_dir = strdup(o && o->scratch_dir ? o->scratch_dir : "/run/loopsnap");
        if (!e->loop_owner || !e->scratch_dir)
                return util_err_set(err, ENOMEM, "mount engine");
        int r = idmap_cache_new(&e->userns, err);
        if (r < 0)
                return r;
        util_debug(UTIL_DBG_MOUNT, "engine: overlay API %s", mount_api_name(api));
        *ret = TAKE_PTR(e);
        return 0;
}

struct mount_engine *mount_engine_free(struct mount_engine *e)
{
        if (!e)
                return NULL;
        idmap_cache_free(e->userns);
        free(e->loop_owner);
        free(e->scratch_dir);
        free(e);
        return NULL;
}

enum mount_api mount_engine_api(const struct mount_engine *e)
{
        return e->api;
}

size_t mount_engine_reused(const struct mount_engine *e)
{
        return __atomic_load_n(&e->reused, __ATOMIC_RELAXED);
}

size_t mount_engine_borrowed(const struct mount_engine *e)
{
        return __atomic_load_n(&e->borrowed, __ATOMIC_RELAXED);
}

size_t mount_engine_retried(const struct mount_engine *e)
{
        return __atomic_load_n(&e->retried, __ATOMIC_RELAXED);
}

size_t mount_engine_userns_cached(const struct mount_engine *e)
{
        return idmap_cache_size(e->userns);
}

static bool is_layer_option(const char *opt)
{
        return strncmp(opt, "lowerdir=", 9) == 0 || strncmp(opt, "upperdir=", 9) == 0 ||
               strncmp(opt, "workdir=", 8) == 0;
}

static bool is_idmap_option(const char *opt)
{
        return strncmp(opt, "uidmap=", 7) == 0 || strncmp(opt, "gidmap=", 7) == 0;
}

/* Marks in `used` every earlier mount that string `s` of mount `i` refers
 * to; unless `layer_ref`, also clears their `borrow`. */
static int mark_refs(const char *s, size_t i, bool layer_ref, bool *used, bool *borrow,
                     struct util_err *err)
{
        if (!mount_template_has(s))
                return 0;
        const char *eq = strchr(s, '=');
        const char *value = eq && eq < strstr(s, "{{") ? eq + 1 : s;
        struct mount_layer *l = NULL;
        size_t n = 0;
        int r = mount_template_layers(value, i, &l, &n, err);
        if (r < 0)
                return r;
        for (size_t k = 0; k < n; k++)
                if (l[k].is_mount) {
                        used[l[k].index] = true;
                        if (!layer_ref)
                                borrow[l[k].index] = false;
                }
        mount_layers_free(l, n);
        return 0;
}

/*
 * `used`: the mounts a later mount refers to (intermediates). `borrow`: the
 * intermediates referred to only as a layer (lowerdir=, upperdir=, workdir=)
 * of overlays that are not id-mapped. Such an overlay clones each layer
 * privately when it is created and never changes the mount it was given,
 * so reuse may lend it an existing mount as it is (mount_engine_opts.reuse,
 * `borrow`) instead of a detached clone.
 */
static int find_intermediates(const struct mount_spec *spec, bool *used, bool *borrow,
                              struct util_err *err)
{
        for (size_t i = 0; i < spec->n; i++)
                borrow[i] = true;
        for (size_t i = 0; i < spec->n; i++) {
                const struct mount_entry *m = &spec->mounts[i];
                bool overlay = strcmp(m->type, "overlay") == 0;
                for (size_t k = 0; overlay && k < m->n_options; k++)
                        if (is_idmap_option(m->options[k]))
                                overlay = false;
                int r = mark_refs(m->source, i, false, used, borrow, err);
                for (size_t k = 0; r >= 0 && k < m->n_options; k++)
                        r = mark_refs(m->options[k], i, overlay && is_layer_option(m->options[k]),
                                      used, borrow, err);
                if (r < 0)
                        return util_err_prefix(err, "mounts[%zu]", i);
        }
        return 0;
}

struct apply {
        const struct mount_spec *spec;
        struct mount_applied *done;
        struct mount_scratch scratch;
};

/* Drops intermediates (and, on failure, everything) in reverse order. */
static void apply_cleanup(struct apply *a, bool failed)
{
        for (size_t k = a->spec->n; k-- > 0;) {
                struct mount_applied *m = &a->done[k];
                bool drop = failed || !m->on_target;
                if (drop && m->mounted && m->path)
                        (void)umount2(m->path, MNT_DETACH | UMOUNT_NOFOLLOW);
                if (drop && !m->on_target && m->path)
                        (void)rmdir(m->path);
                util_closep(&m->fd);
                m->fd = -EBADF;
                m->loop = loop_device_free(m->loop);
                free(m->path);
                m->path = NULL;
        }
        if (a->scratch.run_dir) {
                (void)rmdir(a->scratch.run_dir);
                free(a->scratch.run_dir);
                a->scratch.run_dir = NULL;
        }
}

int mount_scratch_dir(struct mount_scratch *s, const char *name, char **ret, struct util_err *err)
{
        if (!s->run_dir) {
                if (mkdir(s->base, 0700) < 0 && errno != EEXIST)
                        return util_err_set(err, errno, "create '%s'", s->base);
                if (asprintf(&s->run_dir, "%s/apply.XXXXXX", s->base) < 0) {
                        s->run_dir = NULL;
                        return util_err_set(err, ENOMEM, "scratch dir");
                }
                if (!mkdtemp(s->run_dir)) {
                        int e = errno;
                        free(s->run_dir);
                        s->run_dir = NULL;
                        return util_err_set(err, e, "create a scratch dir in '%s'", s->base);
                }
        }
        char *p = NULL;
        if (asprintf(&p, "%s/%s", s->run_dir, name) < 0)
                return util_err_set(err, ENOMEM, "scratch dir");
        if (mkdir(p, 0700) < 0) {
                int e = errno;
                free(p);
                return util_err_set(err, e, "create '%s/%s'", s->run_dir, name);
        }
        *ret = p;
        return 0;
}

/* One attempt at mount_engine_apply; `borrow`: whether reuse may lend
 * existing mounts. Counts the mounts it borrowed in *borrowed. */
static int apply_once(struct mount_engine *e, const struct mount_spec *spec, const char *target,
                      const char *loop_id, bool borrow, int *ret_fd, size_t *borrowed,
                      struct util_err *err)
{
        _cleanup_free_ bool *intermediate = NULL;
        _cleanup_free_ bool *lend = NULL;
        _cleanup_free_ char *abs_target = NULL;
        struct apply a = {.spec = spec, .scratch = {.base = e->scratch_dir}};
        size_t finals = 0;
        int r;

        if (!spec || spec->n == 0)
                return util_err_setx(err, EINVAL, "apply: empty mount spec");
        if (!target == !ret_fd)
                return util_err_setx(err, EINVAL, "apply: give a target or ask for an fd");
        intermediate = calloc(spec->n, sizeof(bool));
        lend = calloc(spec->n, sizeof(bool));
        a.done = calloc(spec->n, sizeof(*a.done));
        if (!intermediate || !lend || !a.done) {
                free(a.done);
                return util_err_set(err, ENOMEM, "apply");
        }
        for (size_t i = 0; i < spec->n; i++) {
                a.done[i].fd = -EBADF;
                a.done[i].idmap_ns = -1;
        }
        r = find_intermediates(spec, intermediate, lend, err);
        if (r < 0)
                goto fail_early;
        for (size_t i = 0; i < spec->n; i++)
                finals += !intermediate[i];
        if (!target && (finals != 1 || intermediate[spec->n - 1])) {
                r = util_err_setx(err, EINVAL,
                                  "apply: a detached result needs exactly one final mount, the "
                                  "last (this spec has %zu)",
                                  finals);
                goto fail_early;
        }
        if (target) {
                abs_target = realpath(target, NULL);
                if (!abs_target) {
                        r = util_err_set(err, errno, "apply: target '%s'", target);
                        goto fail_early;
                }
        }

        for (size_t i = 0; i < spec->n; i++) {
                const struct mount_entry *m = &spec->mounts[i];
                struct mount_applied *out = &a.done[i];
                struct mount_opts o;
                char *where = NULL;

                r = mount_opts_parse((const char *const *)m->options, m->n_options, &o, err);
                if (r < 0) {
                        util_err_prefix(err, "mounts[%zu]", i);
                        goto fail;
                }
                if (intermediate[i]) {
                        if (e->api != MOUNT_API_FD) {
                                char name[32];
                                snprintf(name, sizeof(name), "%zu", i);
                                r = mount_scratch_dir(&a.scratch, name, &where, err);
                        }
                } else if (abs_target) {
                        bool sub = m->target && *m->target && strcmp(m->target, "/") != 0;
                        if (asprintf(&where, "%s%s%s", abs_target,
                                     sub && m->target[0] != '/' ? "/" : "",
                                     sub ? m->target : "") < 0) {
                                where = NULL;
                                r = util_err_set(err, ENOMEM, "apply");
                        }
                }
                if (r >= 0) {
                        out->path = where;
                        out->on_target = !intermediate[i];
                        out->may_borrow = borrow && intermediate[i] && lend[i] && !where;
                        if (strcmp(m->type, "overlay") == 0)
                                r = mount_overlay_apply(e, spec, i, &o, a.done, &a.scratch, where,
                                                        out, err);
                        else
                                r = mount_simple_apply(e, spec, i, &o, a.done,
                                                       loop_id ? loop_id : "spec", where, out, err);
                }
                if (r >= 0) {
                        out->mounted = where != NULL;
                        if (out->on_target && o.propagation != MOUNT_PROPAGATION_NONE)
                                r = mount_set_propagation(out->mounted ? -EBADF : out->fd, where,
                                                          o.propagation, o.propagation_recursive,
                                                          err);
                        if (r < 0)
                                util_err_prefix(err, "mounts[%zu]", i);
                }
                mount_opts_done(&o);
                *borrowed += out->borrowed;
                if (r < 0)
                        goto fail;
                util_debug(UTIL_DBG_MOUNT, "mounts[%zu] %s %s", i, m->type,
                           where ? where : "(detached)");
        }
        if (ret_fd) {
                *ret_fd = a.done[spec->n - 1].fd;
                a.done[spec->n - 1].fd = -EBADF;
        }
        apply_cleanup(&a, false);
        free(a.done);
        return 0;
fail:
        apply_cleanup(&a, true);
fail_early:
        free(a.done);
        return r;
}

int mount_engine_apply(struct mount_engine *e, const struct mount_spec *spec, const char *target,
                       const char *loop_id, int *ret_fd, struct util_err *err)
{
        size_t borrowed = 0;
        int r = apply_once(e, spec, target, loop_id, true, ret_fd, &borrowed, err);
        if (r >= 0 || borrowed == 0)
                return r;
        /* A lent mount can go away before the overlay is created (its
         * owner unmounted it): the kernel then refuses the layer. Once
         * more with clones and fresh mounts only; that error is the one
         * reported. */
        util_debug(UTIL_DBG_MOUNT, "apply with %zu borrowed mounts failed (%s); again without",
                   borrowed, err ? err->msg : "");
        __atomic_fetch_add(&e->retried, 1, __ATOMIC_RELAXED);
        struct util_err again = {0};
        r = apply_once(e, spec, target, loop_id, false, ret_fd, &borrowed, &again);
        if (err)
                *err = again;
        return r;
}
