/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * util/json.h — the thin wrapper over libyajl used for every JSON input
 * (mount specs, OCI id mappings, OCI state/config). All input is untrusted:
 * parsing enforces a size limit, a nesting limit (yajl itself has none) and
 * rejects embedded NUL bytes and comments (yajl's tree parser takes them),
 * and every error names the document and, where yajl says, the position.
 * Callers name the offending element ("mounts[3].options[1]") in their own
 * messages.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "util/util.h"

#define UTIL_JSON_DEFAULT_MAX_BYTES (1u << 20)
#define UTIL_JSON_DEFAULT_MAX_DEPTH 32u

struct util_json_limits {
        size_t max_bytes;   /* 0 = UTIL_JSON_DEFAULT_MAX_BYTES */
        unsigned max_depth; /* 0 = UTIL_JSON_DEFAULT_MAX_DEPTH */
};

/*
 * util_json_parse: parse `len` bytes of `text` (need not be NUL-terminated)
 * into a yajl tree. `what` names the document in errors ("mount spec").
 * `lim` may be NULL (defaults).
 * Returns: 0 and the tree in *ret (free with yajl_tree_free), or -EINVAL
 * (invalid JSON, a NUL byte, a comment) / -E2BIG (too large) / -ELOOP (nested
 * too deep) / -ENOMEM with `err` filled.
 */
int util_json_parse(const char *text, size_t len, const char *what,
                    const struct util_json_limits *lim, yajl_val *ret, struct util_err *err);

static inline void util_json_freep(yajl_val *v)
{
        if (*v)
                yajl_tree_free(*v);
}
#define _cleanup_json_ _cleanup_(util_json_freep)

/* The value of `key` in object `obj`, or NULL when absent (or `obj` is not
 * an object). With `icase`, keys compare case-insensitively (containerd's Go
 * structs serialise as "Type", its protobuf as "type"). */
yajl_val util_json_get(yajl_val obj, const char *key, bool icase);

/*
 * Typed reads: `what` names the element in errors ("mounts[2].type").
 * util_json_string: a JSON string. util_json_u32: a non-negative integer
 * that fits 32 bits (also rejects 1.5, "1", -1).
 * Returns: 0, or -EINVAL with `err` filled ("mounts[2].type: expected a string").
 */
int util_json_string(yajl_val v, const char *what, const char **ret, struct util_err *err);
int util_json_u32(yajl_val v, const char *what, uint32_t *ret, struct util_err *err);

/* A generator configured for our output (UTF-8 validated; `pretty` =
 * indented). Returns NULL on ENOMEM. */
yajl_gen util_json_gen_new(bool pretty);
static inline void util_json_gen_freep(yajl_gen *g)
{
        if (*g)
                yajl_gen_free(*g);
}
#define _cleanup_json_gen_ _cleanup_(util_json_gen_freep)

/* Adds a NUL-terminated string; returns 0 or -EINVAL (invalid UTF-8). */
int util_json_gen_str(yajl_gen g, const char *s);

/* Copies the generated text into a malloc'ed NUL-terminated string.
 * Returns 0, -EINVAL when the document is incomplete, or -ENOMEM. */
int util_json_gen_finish(yajl_gen g, char **ret);
