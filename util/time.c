/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Clocks, sleeps and randomness for bounded retry loops (STYLE R3): the
 * random delay comes from getrandom() so that processes started at the same
 * instant do not retry in lock-step.
 */
#include <sys/random.h>
#include <time.h>

#include "util/util.h"

uint32_t util_random_u32(void)
{
        uint32_t v = 0;

        /* GRND_NONBLOCK: at early boot fall back to the clock, never block. */
        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
                v = (uint32_t)(util_now_ns() ^ ((uint64_t)getpid() << 16));
        return v;
}

static void sleep_ns(uint64_t ns)
{
        struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                              .tv_nsec = (long)(ns % 1000000000u)};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

void util_sleep_ms(unsigned ms)
{
        sleep_ns((uint64_t)ms * 1000000u);
}

void util_sleep_random_ms(unsigned min_ms, unsigned max_ms)
{
        if (max_ms < min_ms)
                max_ms = min_ms;
        uint64_t span_us = (uint64_t)(max_ms - min_ms) * 1000u;
        uint64_t us = (uint64_t)min_ms * 1000u + (span_us ? util_random_u32() % (span_us + 1) : 0);
        sleep_ns(us * 1000u);
}

uint64_t util_now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long util_env_long(const char *name, long def)
{
        const char *v = getenv(name);
        if (!v || !*v)
                return def;
        char *end = NULL;
        errno = 0;
        long r = strtol(v, &end, 10);
        if (errno != 0 || !end || *end != '\0')
                return def;
        return r;
}
