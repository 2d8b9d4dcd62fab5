/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The error struct: a positive errno plus a context chain built from the
 * innermost failure outwards ("prepare 'k': attach '/x.img': LOOP_CONFIGURE:
 * Device or resource busy"). The buffer lives inside the caller's struct, so
 * nothing crosses the dlopen boundary that the host would have to free.
 */
#include <stdio.h>
#include <string.h>

/* The real definitions, not the analyzer's view of them (util/util.h). */
#define UTIL_ERR_IMPLEMENTATION
#include "util/util.h"

static int err_vset(struct util_err *err, int errnum, bool with_strerror, const char *fmt,
                    va_list ap)
{
        if (errnum < 0)
                errnum = -errnum;
        if (errnum == 0)
                errnum = EIO;
        if (!err)
                return -errnum;

        int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        if (n < 0)
                n = 0;
        if (with_strerror && (size_t)n < sizeof(err->msg)) {
                char buf[128];
                /* GNU strerror_r returns the string (maybe not in buf). */
                const char *s = strerror_r(errnum, buf, sizeof(buf));
                snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", s);
        }
        err->errnum = errnum;
        return -errnum;
}

int util_err_set(struct util_err *err, int errnum, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = err_vset(err, errnum, true, fmt, ap);
        va_end(ap);
        return r;
}

int util_err_setx(struct util_err *err, int errnum, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = err_vset(err, errnum, false, fmt, ap);
        va_end(ap);
        return r;
}

int util_err_prefix(struct util_err *err, const char *fmt, ...)
{
        if (!err)
                return -EIO;
        if (err->errnum == 0)
                err->errnum = EIO;

        char prefix[UTIL_ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        if (n < 0)
                return -err->errnum;

        /* msg = prefix ": " old msg, cut at the end if it does not fit. */
        size_t plen = strnlen(prefix, sizeof(prefix) - 1);
        size_t olen = strnlen(err->msg, sizeof(err->msg) - 1);
        size_t cap = sizeof(err->msg) - 1;
        if (plen + 2 > cap)
                plen = cap - 2;
        size_t keep = olen;
        if (plen + 2 + keep > cap)
                keep = cap - plen - 2;
        memmove(err->msg + plen + 2, err->msg, keep);
        memcpy(err->msg, prefix, plen);
        err->msg[plen] = ':';
        err->msg[plen + 1] = ' ';
        err->msg[plen + 2 + keep] = '\0';
        return -err->errnum;
}

void util_err_clear(struct util_err *err)
{
        if (!err)
                return;
        err->errnum = 0;
        err->msg[0] = '\0';
}
