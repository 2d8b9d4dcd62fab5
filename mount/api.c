/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Choosing how overlays are mounted: probe once per process which of the
 * three ways the kernel supports (STYLE R4: probe, remember, never compare
 * kernel versions), unless LOOPSNAP_MOUNT_API forces one.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mount.h>

#include "mount/mount-internal.h"

static const char *const api_names[] = {
        [MOUNT_API_AUTO] = "auto",
        [MOUNT_API_FD] = "fd",
        [MOUNT_API_LOWERDIR_PLUS] = "lowerdir+",
        [MOUNT_API_LEGACY] = "legacy",
};

const char *mount_api_name(enum mount_api api)
{
        if ((size_t)api < UTIL_ARRAY_SIZE(api_names))
                return api_names[api];
        return "?";
}

int mount_api_parse(const char *s, enum mount_api *ret)
{
        for (size_t i = 0; s && i < UTIL_ARRAY_SIZE(api_names); i++)
                if (strcmp(s, api_names[i]) == 0) {
                        *ret = (enum mount_api)i;
                        return 0;
                }
        return -EINVAL;
}

/* 0 = not probed yet, else an enum mount_api. Racing first probes store the
 * same answer. */
static _Atomic int probed;

static enum mount_api probe_kernel(void)
{
        _cleanup_close_ int fs = fsopen("overlay", FSOPEN_CLOEXEC);
        _cleanup_close_ int dir = -EBADF;

        /* ENOSYS/EPERM (seccomp), ENODEV (no overlay in this kernel's
         * fsopen): nothing but mount(2) is left. */
        if (fs < 0)
                return MOUNT_API_LEGACY;
        dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        /* Both probes only configure a context that is never created. */
        if (dir >= 0 && fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, dir) == 0)
                return MOUNT_API_FD;
        if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", "/", 0) == 0)
                return MOUNT_API_LOWERDIR_PLUS;
        /* COMPAT(kernel < 6.8): no "lowerdir+"; drop when the baseline has it. */
        return MOUNT_API_LEGACY;
}

enum mount_api mount_api_probe(void)
{
        int v = atomic_load(&probed);
        if (v == 0) {
                v = (int)probe_kernel();
                atomic_store(&probed, v);
                util_debug(UTIL_DBG_MOUNT, "overlay API: %s", mount_api_name((enum mount_api)v));
        }
        return (enum mount_api)v;
}
