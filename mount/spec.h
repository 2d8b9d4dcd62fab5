/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mount/spec.h — the mount spec model, its JSON form, templates, and option
 * parsing. Included by mount/mount.h (the module's public header); kept in
 * its own file because it is pure (no kernel calls) and unit-tested alone.
 *
 * A spec is an ordered list of mounts with containerd's Mount shape:
 *   [{"type": "ext4", "source": "/x/7/fs.img", "target": "", "options": ["ro","loop"]},
 *    {"type": "overlay", "source": "overlay",
 *     "options": ["lowerdir={{ overlay 0 0 }}", "upperdir=...", "workdir=..."]}]
 * Keys are read case-insensitively ("Type" from Go's encoding, "type" from
 * protobuf JSON); they are written in lower case. All but the last mount are
 * intermediate: templates in later mounts refer to them by index.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

/* Limits for untrusted specs. */
#define MOUNT_SPEC_MAX_MOUNTS     1024u  /* 500 layers + their intermediates */
#define MOUNT_SPEC_MAX_OPTIONS    256u   /* per mount */
#define MOUNT_SPEC_MAX_STRING     65536u /* bytes, any single string */
#define MOUNT_SPEC_MAX_JSON_BYTES (4u << 20)

struct mount_entry {
        char *type;     /* required, non-empty */
        char *source;   /* required (may be a template) */
        char *target;   /* optional: NULL or "" = the spec's target itself */
        char **options; /* n_options strings */
        size_t n_options;
};

struct mount_spec {
        struct mount_entry *mounts;
        size_t n;
};

/* An empty spec. Returns 0 or -ENOMEM. */
int mount_spec_new(struct mount_spec **ret);
/* Frees everything; NULL is fine; returns NULL. */
struct mount_spec *mount_spec_free(struct mount_spec *s);
UTIL_DEFINE_FREE_FUNC(struct mount_spec, mount_spec_free)

/*
 * mount_spec_add: append a mount (all strings copied). `options` is a
 * NULL-terminated array (or NULL). `target` may be NULL.
 * Returns: 0, -EINVAL (empty type, a limit exceeded, a string with a control
 * character), or -ENOMEM; `err` names the mount ("mounts[3]").
 */
int mount_spec_add(struct mount_spec *s, const char *type, const char *source, const char *target,
                   const char *const *options, struct util_err *err);

/*
 * mount_spec_from_json: parse a spec (a JSON array of mounts; an object
 * {"mounts": [...]} is accepted too). Unknown keys are errors, as are
 * missing type/source, wrong JSON types, and the limits above. Errors name
 * the element: "mount spec: mounts[2].options[1]: expected a string".
 * Returns: 0 and a new spec, or -errno with `err`.
 */
int mount_spec_from_json(const char *json, size_t len, struct mount_spec **ret,
                         struct util_err *err);

/* The JSON form (array of objects, lower-case keys, "target" omitted when
 * empty). Round-trips through mount_spec_from_json. Returns 0 or -errno. */
int mount_spec_to_json(const struct mount_spec *s, bool pretty, char **ret, struct util_err *err);

/* Whether two specs are identical (same mounts, same strings, same order). */
bool mount_spec_equal(const struct mount_spec *a, const struct mount_spec *b);

/* ---- templates ---------------------------------------------------------- */

/*
 * Templates inside a mount's source and options, as containerd's mount
 * manager writes them:
 *   {{ mount N }}      the mountpoint of earlier mount N
 *   {{ overlay A B }}  the mountpoints of mounts A..B joined with ':'
 *                      (A > B walks backwards: topmost layer first)
 * Whitespace inside the braces is free ("{{mount 0}}" is fine). N, A and B
 * must be < the index of the mount that uses them (no forward or self
 * references); anything else inside {{ }} is an error.
 */

/*
 * mount_template_resolve: replace every template in `in` with the given
 * mountpoints (`mountpoints[i]` for mount i; `self` = index of the mount
 * being resolved, so only mountpoints[0..self-1] are read).
 * Returns: 0 and a malloc'ed string, or -EINVAL with `err` naming the
 * template ("'{{ mount 3 }}' refers forward (mount 3 of 2)").
 */
int mount_template_resolve(const char *in, size_t self, const char *const *mountpoints, char **ret,
                           struct util_err *err);

/* Whether `s` contains a template ("{{"). */
bool mount_template_has(const char *s);

/* One overlay layer: an earlier mount of the spec (optionally a directory
 * inside it), or a plain absolute path. */
struct mount_layer {
        bool is_mount; /* true: `index` is used, and `path` is NULL or the
                          relative sub-directory after "{{ mount N }}/" */
        size_t index;
        char *path; /* is_mount: sub-directory or NULL; else the absolute path */
};

/*
 * mount_template_layers: split a colon-separated layer list (the value of
 * lowerdir=, upperdir=, workdir=) into layers, expanding {{ overlay A B }}
 * and {{ mount N }}. A template may be followed by "/relative/sub/dir" (a
 * directory inside that mount; containerd writes "{{ mount 0 }}/upper");
 * any other mix of text and template is an error. Plain layers must be
 * absolute paths without ',' or '\\'. Empty layers are errors.
 * Returns: 0 and a malloc'ed array (free with mount_layers_free), or -EINVAL.
 */
int mount_template_layers(const char *value, size_t self, struct mount_layer **ret, size_t *ret_n,
                          struct util_err *err);
void mount_layers_free(struct mount_layer *l, size_t n);

/* ---- options ------------------------------------------------------------ */

/* Propagation requested by options (applied in a second call). */
enum mount_propagation {
        MOUNT_PROPAGATION_NONE = 0,
        MOUNT_PROPAGATION_SHARED,
        MOUNT_PROPAGATION_SLAVE,
        MOUNT_PROPAGATION_PRIVATE,
        MOUNT_PROPAGATION_UNBINDABLE,
};

struct mount_opts {
        /* Mount flags from libmount's Linux option map (MS_RDONLY, MS_NOSUID,
         * MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS, MS_DIRSYNC, MS_NOATIME,
         * MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME, MS_LAZYTIME, MS_MANDLOCK,
         * MS_SILENT...), after inversions ("rw", "suid", "dev", "exec", ...)
         * are applied in order: the last one wins. */
        unsigned long flags;
        /* Flags the options explicitly cleared ("rw" clears MS_RDONLY...),
         * so a remount knows what was asked for. */
        unsigned long cleared;
        bool bind;  /* "bind" */
        bool rbind; /* "rbind" (bind + recursive) */
        enum mount_propagation propagation;
        bool propagation_recursive; /* "rshared", "rslave", ... */

        /* Consumed by the engine, never passed to the kernel: */
        bool loop;         /* "loop" */
        int direct_io;     /* "direct-io" / "direct-io=on|off": -1 default, 0 off, 1 on */
        char *uidmap;      /* "uidmap=..." (validated with idmap_parse by the engine) */
        char *gidmap;      /* "gidmap=..." */
        char **x_loopsnap; /* "X-loopsnap.*" options, as given */
        size_t n_x_loopsnap;

        /* Filesystem data options, in the given order ("lowerdir=/a",
         * "index=off", "errors=remount-ro", "noload"...): everything that is
         * neither a mount flag nor consumed. Userspace-only options from
         * libmount's userspace map ("user", "noauto", "_netdev", "nofail",
         * "x-*", "X-*" other than X-loopsnap.*) are dropped. */
        char **data;
        size_t n_data;
};

/*
 * mount_opts_parse: classify options (each one separately, never a joined
 * string). Refused with -EINVAL and `err` naming the option by index:
 * any option containing ',' (it would inject further options into the
 * fs data, e.g. "uidmap=0:1:1,upperdir=/etc"), an empty option, a control
 * character, "loop=..."/"uidmap"/"gidmap" without a value, "remount"
 * (the engine never remounts on behalf of a spec), conflicting propagation.
 * Returns: 0 and `ret` filled (free with mount_opts_done), or -errno.
 */
int mount_opts_parse(const char *const *options, size_t n, struct mount_opts *ret,
                     struct util_err *err);
void mount_opts_done(struct mount_opts *o);

/* The value of data option `key` ("lowerdir") in `o`, or NULL (the last one
 * wins when given twice). */
const char *mount_opts_data_get(const struct mount_opts *o, const char *key);
