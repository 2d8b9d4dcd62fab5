/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-mount-opts: a mount's option list (mount_opts_parse, one option per
 * line of the input) and the templates inside the values that name layers
 * and mounts (mount_template_layers, mount_template_resolve), plus the
 * uidmap=/gidmap= values as the engine reads them (ranges separated by
 * spaces, idmap_parse). A first line "#self=N" sets the index of the mount
 * the options belong to (default 3): templates may refer to mounts 0..N-1.
 *
 * Checks, for accepted options: no flag is both set and cleared; the data
 * options are a subsequence of the input in order, without ',' and without
 * anything the engine consumes; uidmap/gidmap/loop/X-loopsnap.* are taken
 * exactly from their options; mount_opts_data_get returns the last value of
 * a key; parsing the data options again is a fixed point (all data, no
 * flags). For templates: every layer is an earlier mount (with a clean
 * relative sub-directory) or an absolute path without ',', '\\' or control
 * characters; whatever the layer split accepts, the text resolution accepts
 * too, with the same result joined by ':' (except "{{ overlay A B }}/sub",
 * where the layer split applies the sub-directory to every layer and the
 * text form only to the last); text without templates resolves to itself.
 */
#include "mount/spec.h"
#include "idmap/idmap.h"
#include "test/fuzz/fuzz.h"

#define MAX_OPTIONS 64
#define SELF_MAX    16

static bool startswith(const char *s, const char *p)
{
        return strncmp(s, p, strlen(p)) == 0;
}

/* Whether option `opt` is "name" or "name=...". */
static bool is_named(const char *opt, const char *name)
{
        size_t n = strlen(name);
        return strncmp(opt, name, n) == 0 && (opt[n] == '\0' || opt[n] == '=');
}

/* The value of the last "key=" option of `opts`, or NULL. */
static const char *last_value(char *const *opts, size_t n, const char *key)
{
        const char *v = NULL;
        size_t kl = strlen(key);
        for (size_t i = 0; i < n; i++)
                if (strncmp(opts[i], key, kl) == 0 && opts[i][kl] == '=')
                        v = opts[i] + kl + 1;
        return v;
}

static void check_parsed(char *const *opts, size_t n, const struct mount_opts *o)
{
        struct util_err err = {0};
        struct mount_opts again;
        size_t at = 0;
        int r;

        FUZZ_CHECK((o->flags & o->cleared) == 0, "flags %#lx both set and cleared (%#lx)", o->flags,
                   o->cleared);
        FUZZ_CHECK(o->direct_io >= -1 && o->direct_io <= 1, "direct_io %d", o->direct_io);
        FUZZ_CHECK(o->n_data + o->n_x_loopsnap <= n, "%zu data and %zu X-loopsnap of %zu options",
                   o->n_data, o->n_x_loopsnap, n);
        for (size_t k = 0; k < o->n_data; k++) {
                const char *d = o->data[k];
                while (at < n && strcmp(opts[at], d) != 0)
                        at++;
                FUZZ_CHECK(at < n, "data option '%s' is not an input option in order", d);
                at++;
                FUZZ_CHECK(!strchr(d, ',') && d[0] && fuzz_is_printable(d), "data option '%s' kept",
                           d);
                FUZZ_CHECK(!is_named(d, "loop") && !is_named(d, "uidmap") &&
                                   !is_named(d, "gidmap") && !is_named(d, "direct-io") &&
                                   !startswith(d, "X-loopsnap."),
                           "consumed option '%s' passed on as data", d);
        }
        for (size_t k = 0; k < o->n_x_loopsnap; k++)
                FUZZ_CHECK(startswith(o->x_loopsnap[k], "X-loopsnap."), "'%s' taken as X-loopsnap",
                           o->x_loopsnap[k]);

        bool loop = false;
        for (size_t i = 0; i < n; i++)
                loop |= strcmp(opts[i], "loop") == 0;
        FUZZ_CHECK(o->loop == loop, "loop is %d", o->loop);
        const char *uid = last_value(opts, n, "uidmap"), *gid = last_value(opts, n, "gidmap");
        FUZZ_CHECK(uid ? o->uidmap && strcmp(uid, o->uidmap) == 0 : !o->uidmap,
                   "uidmap '%s' from '%s'", o->uidmap ? o->uidmap : "(none)", uid ? uid : "(none)");
        FUZZ_CHECK(gid ? o->gidmap && strcmp(gid, o->gidmap) == 0 : !o->gidmap,
                   "gidmap '%s' from '%s'", o->gidmap ? o->gidmap : "(none)", gid ? gid : "(none)");

        static const char *const keys[] = {"lowerdir", "upperdir", "workdir", "index", "errors"};
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(keys); k++) {
                const char *want = last_value(o->data, o->n_data, keys[k]);
                const char *got = mount_opts_data_get(o, keys[k]);
                FUZZ_CHECK(got == want, "mount_opts_data_get('%s') is not the last value", keys[k]);
        }

        /* Data is what remains after everything else is taken: parsing it
         * again changes nothing and finds nothing else. */
        r = mount_opts_parse((const char *const *)o->data, o->n_data, &again, &err);
        FUZZ_CHECK(r == 0, "the data options are refused: %s", err.msg);
        FUZZ_CHECK(again.n_data == o->n_data && again.flags == 0 && again.cleared == 0 &&
                           !again.bind && !again.rbind && !again.loop && !again.uidmap &&
                           !again.gidmap && again.n_x_loopsnap == 0 && again.direct_io == -1 &&
                           again.propagation == MOUNT_PROPAGATION_NONE,
                   "the data options parse to more than data");
        for (size_t k = 0; k < o->n_data; k++)
                FUZZ_CHECK(strcmp(again.data[k], o->data[k]) == 0, "data[%zu] changed", k);
        mount_opts_done(&again);
}

/* A relative sub-directory after "{{ mount N }}/" (mount/template.c). */
static bool subpath_clean(const char *p)
{
        if (!*p || *p == '/' || p[strlen(p) - 1] == '/' || strstr(p, "//"))
                return false;
        for (const char *c = p; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f || strchr(",\\{}", *c))
                        return false;
        /* No "." or ".." component. */
        for (const char *c = p; c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL) {
                size_t len = strcspn(c, "/");
                if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
        }
        return true;
}

static void check_templates(const char *value, size_t self, const char *const *mountpoints)
{
        struct util_err err = {0}, rerr = {0};
        struct mount_layer *l = NULL;
        size_t n = 0;
        char *text = NULL;
        int r, rr;

        r = mount_template_layers(value, self, &l, &n, &err);
        fuzz_check_err(r, &err, "mount_template_layers");
        rr = mount_template_resolve(value, self, mountpoints, &text, &rerr);
        fuzz_check_err(rr, &rerr, "mount_template_resolve");
        if (rr == 0) {
                FUZZ_CHECK(!strstr(text, "{{"), "'%s' resolves to '%s'", value, text);
                if (!mount_template_has(value))
                        FUZZ_CHECK(strcmp(text, value) == 0, "'%s' resolves to '%s'", value, text);
        }
        if (r < 0) {
                free(text);
                return;
        }
        FUZZ_CHECK(rr == 0, "layers of '%s' accepted, its text refused: %s", value, rerr.msg);

        size_t cap = 1, o = 0;
        for (size_t k = 0; k < n; k++)
                cap += 32 + (l[k].path ? strlen(l[k].path) : 0);
        char *joined = fuzz_oom(malloc(cap));
        joined[0] = '\0';
        FUZZ_CHECK(n >= 1 && n <= MOUNT_SPEC_MAX_MOUNTS, "%zu layers from '%s'", n, value);
        for (size_t k = 0; k < n; k++) {
                const struct mount_layer *x = &l[k];
                if (x->is_mount) {
                        FUZZ_CHECK(x->index < self, "layer %zu is mount %zu of %zu", k, x->index,
                                   self);
                        FUZZ_CHECK(!x->path || subpath_clean(x->path),
                                   "layer %zu: sub-directory '%s'", k, x->path);
                        o += (size_t)snprintf(joined + o, cap - o, "%s%s%s%s", k ? ":" : "",
                                              mountpoints[x->index], x->path ? "/" : "",
                                              x->path ? x->path : "");
                } else {
                        FUZZ_CHECK(x->path && x->path[0] == '/', "layer %zu: '%s'", k,
                                   x->path ? x->path : "(null)");
                        FUZZ_CHECK(fuzz_is_printable(x->path) && !strpbrk(x->path, ",\\"),
                                   "layer %zu: path '%s'", k, x->path);
                        o += (size_t)snprintf(joined + o, cap - o, "%s%s", k ? ":" : "", x->path);
                }
        }
        if (!(strstr(value, "overlay") && strstr(value, "}}/")))
                FUZZ_CHECK(strcmp(joined, text) == 0,
                           "'%s': the layers join to '%s', the text resolves to '%s'", value,
                           joined, text);
        free(joined);
        free(text);
        mount_layers_free(l, n);
}

/* uidmap=/gidmap= as the engine reads them (mount/simple.c). */
static void check_idmap_value(const char *v)
{
        struct util_err err = {0};
        struct idmap_map *m = fuzz_oom(malloc(sizeof(*m)));
        char *s = fuzz_oom(strdup(v));

        for (char *p = s; *p; p++)
                if (*p == ' ')
                        *p = ',';
        int r = idmap_parse(s, "uidmap", m, &err);
        fuzz_check_err(r, &err, "idmap_parse");
        free(s);
        free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct util_err err = {0};
        struct mount_opts o;
        size_t n = 0, self = 3;
        char **lines = fuzz_lines(data, size, MAX_OPTIONS + 1, &n);
        char **opts = lines;
        const char *mountpoints[SELF_MAX];
        char mp[SELF_MAX][32];
        int r;

        if (n > 0 && startswith(lines[0], "#self=")) {
                self = strtoul(lines[0] + 6, NULL, 10) % (SELF_MAX + 1);
                opts++;
                n--;
        }
        for (size_t i = 0; i < SELF_MAX; i++) {
                snprintf(mp[i], sizeof(mp[i]), "/run/m/%zu", i);
                mountpoints[i] = mp[i];
        }

        r = mount_opts_parse((const char *const *)opts, n, &o, &err);
        fuzz_check_err(r, &err, "mount_opts_parse");
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL || r == -ENOMEM, "mount_opts_parse: %d", r);
                FUZZ_CHECK(startswith(err.msg, "options"), "message '%s'", err.msg);
        } else {
                check_parsed(opts, n, &o);
                static const char *const keys[] = {"lowerdir", "upperdir", "workdir"};
                for (size_t k = 0; k < UTIL_ARRAY_SIZE(keys); k++) {
                        const char *v = mount_opts_data_get(&o, keys[k]);
                        if (v)
                                check_templates(v, self, mountpoints);
                }
                if (o.uidmap)
                        check_idmap_value(o.uidmap);
                if (o.gidmap)
                        check_idmap_value(o.gidmap);
                mount_opts_done(&o);
        }
        /* Every line as a template string too (sources are templates). */
        for (size_t i = 0; i < n; i++)
                check_templates(opts[i], self, mountpoints);
        fuzz_lines_free(lines);
        return 0;
}
