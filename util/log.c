/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The debug trace. LOOPSNAP_DEBUG=loop,mount (or "all") turns areas on; it is
 * read once per process and cached in an atomic, so the check on a hot path
 * is one load. A race between two first readers is harmless: both compute
 * the same mask.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "util/util.h"

static const struct {
        const char *name;
        unsigned area;
} debug_areas[] = {
        {"util", UTIL_DBG_UTIL},   {"loop", UTIL_DBG_LOOP},     {"mount", UTIL_DBG_MOUNT},
        {"idmap", UTIL_DBG_IDMAP}, {"snapshot", UTIL_DBG_SNAP}, {"plugin", UTIL_DBG_PLUGIN},
        {"all", UTIL_DBG_ALL},
};

/* Bit 31 set = parsed. */
#define DEBUG_PARSED (1u << 31)
static _Atomic unsigned debug_mask;

unsigned util_debug_parse(const char *value)
{
        unsigned mask = 0;

        if (!value)
                return 0;
        while (*value) {
                size_t len = strcspn(value, ",");
                for (size_t i = 0; i < UTIL_ARRAY_SIZE(debug_areas); i++)
                        if (strlen(debug_areas[i].name) == len &&
                            strncmp(debug_areas[i].name, value, len) == 0)
                                mask |= debug_areas[i].area;
                value += len;
                if (*value == ',')
                        value++;
        }
        return mask;
}

bool util_debug_enabled(unsigned area)
{
        unsigned m = atomic_load_explicit(&debug_mask, memory_order_relaxed);
        if (!(m & DEBUG_PARSED)) {
                m = util_debug_parse(getenv("LOOPSNAP_DEBUG")) | DEBUG_PARSED;
                atomic_store_explicit(&debug_mask, m, memory_order_relaxed);
        }
        return (m & area) != 0;
}

void util_debug_print(unsigned area, const char *fmt, ...)
{
        const char *name = "?";
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(debug_areas); i++)
                if (debug_areas[i].area == area) {
                        name = debug_areas[i].name;
                        break;
                }

        char line[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        /* CLOCK_MONOTONIC seconds: lines of several processes (the hook's
         * stages, snapctl and a runtime) line up, and a step's cost is the
         * difference to the line before. One write per line so concurrent
         * processes do not interleave. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        fprintf(stderr, "loopsnap[%d] %lld.%06ld %s: %s\n", (int)getpid(), (long long)ts.tv_sec,
                ts.tv_nsec / 1000, name, line);
}

void util_fault_point(const char *name)
{
        /* Read per call: tests set it in a forked child right before the
         * operation; getenv is cheap next to any operation with a point. */
        const char *want = getenv("LOOPSNAP_FAULT");
        if (want && strcmp(want, name) == 0) {
                util_debug(UTIL_DBG_UTIL, "fault point '%s': exiting", name);
                _exit(UTIL_FAULT_EXIT);
        }
}
