/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The boundary's error and size discipline: errno -> containerd error kind,
 * the module's util_err copied into the host's struct loopsnap_error, and the
 * struct_size checks of every struct a host passes in (loopsnap.h: too small
 * is refused, unknown non-zero tails are refused, as the kernel does for its
 * extensible structs), and the optional log callback.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "plugin/plugin-internal.h"

enum loopsnap_err_kind plugin_err_kind(int errnum)
{
        switch (errnum) {
        case 0:
                return LOOPSNAP_ERR_NONE;
        case ENOENT:
                return LOOPSNAP_ERR_NOT_FOUND;
        case EEXIST:
                return LOOPSNAP_ERR_ALREADY_EXISTS;
        case EBUSY:
                return LOOPSNAP_ERR_FAILED_PRECONDITION;
        case EINVAL:
        case E2BIG:
        case ERANGE:
        case ENAMETOOLONG:
                return LOOPSNAP_ERR_INVALID_ARGUMENT;
        case EAGAIN:
                return LOOPSNAP_ERR_UNAVAILABLE;
        case EOPNOTSUPP: /* == ENOTSUP on Linux */
        case ENOSYS:
        case EPROTONOSUPPORT:
                return LOOPSNAP_ERR_NOT_SUPPORTED;
        default:
                return LOOPSNAP_ERR_INTERNAL;
        }
}

int plugin_err_check(const struct loopsnap_error *out)
{
        if (out && out->struct_size < PLUGIN_V1_SIZE(struct loopsnap_error, message))
                return -EINVAL;
        return 0;
}

int plugin_err_out(struct loopsnap_error *out, const struct util_err *e, int rc)
{
        if (rc >= 0 || !out)
                return rc;
        /* errnum is always minus the return value (the contract); the
         * message is the module's when it recorded one. */
        int errnum = rc == INT_MIN ? EIO : -rc;
        out->kind = (int32_t)plugin_err_kind(errnum);
        out->errnum = errnum;
        if (e && e->errnum > 0)
                snprintf(out->message, sizeof(out->message), "%s", e->msg);
        else
                snprintf(out->message, sizeof(out->message), "%s", strerror(errnum));
        return rc;
}

int plugin_struct_check(const void *p, bool optional, size_t min, size_t known, const char *what,
                        struct util_err *e)
{
        uint32_t size;

        if (!p)
                return optional ? 0 : util_err_setx(e, EINVAL, "%s is NULL", what);
        memcpy(&size, p, sizeof(size));
        if (size < min)
                return util_err_setx(e, EINVAL,
                                     "%s: struct_size %u is smaller than its first version "
                                     "(%zu bytes)",
                                     what, size, min);
        /* As the kernel's extensible structs: no struct grows past a page. */
        if (size > PLUGIN_STRUCT_MAX)
                return util_err_setx(e, E2BIG, "%s: struct_size %u is larger than %u bytes", what,
                                     size, PLUGIN_STRUCT_MAX);
        const unsigned char *b = p;
        for (size_t k = known; k < size; k++)
                if (b[k] != 0)
                        return util_err_setx(e, E2BIG,
                                             "%s: struct_size %u sets fields this plugin does "
                                             "not know (ABI %d.%d knows %zu bytes)",
                                             what, size, LOOPSNAP_ABI_MAJOR, LOOPSNAP_ABI_MINOR,
                                             known);
        return 1;
}

int plugin_out_check(const void *p, size_t min, const char *what, struct util_err *e)
{
        uint32_t size;

        if (!p)
                return util_err_setx(e, EINVAL, "%s is NULL", what);
        memcpy(&size, p, sizeof(size));
        if (size < min)
                return util_err_setx(e, EINVAL,
                                     "%s: struct_size %u is smaller than its first version "
                                     "(%zu bytes)",
                                     what, size, min);
        return 0;
}

void plugin_out_copy(void *dst, const void *src, size_t n)
{
        uint32_t size;

        memcpy(&size, dst, sizeof(size));
        if (n > size)
                n = size;
        /* Everything but the host's struct_size. */
        if (n > sizeof(uint32_t))
                memcpy((char *)dst + sizeof(uint32_t), (const char *)src + sizeof(uint32_t),
                       n - sizeof(uint32_t));
}

int plugin_arg_check(const void *p, const char *what, struct util_err *e)
{
        return p ? 0 : util_err_setx(e, EINVAL, "%s is NULL", what);
}

void plugin_log(struct loopsnap_root *h, int level, const char *fmt, ...)
{
        char line[1024];
        va_list ap;

        if (!h || !h->log)
                return;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        h->log(h->log_data, level, line);
}
