/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An independent reading of a JSON document for the fuzz targets: yajl's
 * event parser, configured as yajl_tree_parse configures it (comments
 * allowed, strings validated), reports every string and key with its real
 * length, so a NUL byte decoded from "\u0000" is seen, and every nesting
 * level. util/json.c and mount/spec-json.c check these things with scanners
 * of their own; the targets compare their verdicts with this one.
 */
#pragma once

#include <yajl/yajl_parse.h>

#include "test/fuzz/fuzz.h"

struct jsonscan {
        bool ok;          /* the document parsed */
        bool nul;         /* a string or key holds a NUL byte */
        unsigned depth;   /* current nesting */
        unsigned max;     /* deepest nesting */
        size_t n_strings; /* strings and keys */
};

static inline int js_str(void *ctx, const unsigned char *s, size_t len)
{
        struct jsonscan *j = ctx;
        j->n_strings++;
        if (memchr(s, '\0', len))
                j->nul = true;
        return 1;
}

static inline int js_open(void *ctx)
{
        struct jsonscan *j = ctx;
        if (++j->depth > j->max)
                j->max = j->depth;
        return 1;
}

static inline int js_open_map(void *ctx)
{
        return js_open(ctx);
}

static inline int js_open_array(void *ctx)
{
        return js_open(ctx);
}

static inline int js_close(void *ctx)
{
        struct jsonscan *j = ctx;
        j->depth--;
        return 1;
}

static inline struct jsonscan jsonscan(const uint8_t *data, size_t size)
{
        static const yajl_callbacks cb = {
                .yajl_string = js_str,
                .yajl_map_key = js_str,
                .yajl_start_map = js_open_map,
                .yajl_end_map = js_close,
                .yajl_start_array = js_open_array,
                .yajl_end_array = js_close,
        };
        struct jsonscan j = {0};
        yajl_handle h = fuzz_oom(yajl_alloc(&cb, NULL, &j));

        yajl_config(h, yajl_allow_comments, 1);
        j.ok = yajl_parse(h, data, size) == yajl_status_ok &&
               yajl_complete_parse(h) == yajl_status_ok;
        yajl_free(h);
        return j;
}
