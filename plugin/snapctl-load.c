/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * snapctl: finding and entering libloopsnap.so.1, and opening the root.
 *
 * Where the library comes from, first match wins:
 *   1. $LOOPSNAP_PLUGIN (a path; if set it is the only candidate, so a typo
 *      is an error rather than a silent fallback to another library);
 *   2. ../lib/libloopsnap.so.1 next to the executable (the build tree:
 *      build/bin/snapctl and build/lib; an install with bindir and libdir
 *      side by side);
 *   3. the installed libdir.
 * The environment variable is read with secure_getenv, so a set-id snapctl
 * would ignore it.
 */
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin/snapctl.h"

#ifndef LOOPSNAP_LIBDIR
#error "LOOPSNAP_LIBDIR must be defined by the build"
#endif

/* ../lib/<soname> relative to the executable, when it exists. */
static bool beside_exe(char *buf, size_t size)
{
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return false;
        exe[n] = '\0';
        char lib[4096 + 64];
        int len = snprintf(lib, sizeof(lib), "%s/../lib/%s", dirname(exe), LOOPSNAP_SONAME);
        if (len <= 0 || (size_t)len >= sizeof(lib))
                return false;
        /* Resolved, so doctor and --version show where it really is. */
        _cleanup_free_ char *real = realpath(lib, NULL);
        if (!real || strlen(real) >= size)
                return false;
        strcpy(buf, real);
        return true;
}

int ctl_load(struct ctl *c)
{
        const char *env = secure_getenv("LOOPSNAP_PLUGIN");
        loopsnap_plugin_v1_fn entry;

        if (env && *env)
                snprintf(c->plugin_path, sizeof(c->plugin_path), "%s", env);
        else if (!beside_exe(c->plugin_path, sizeof(c->plugin_path)))
                snprintf(c->plugin_path, sizeof(c->plugin_path), "%s/%s", LOOPSNAP_LIBDIR,
                         LOOPSNAP_SONAME);

        c->dl = dlopen(c->plugin_path, RTLD_NOW | RTLD_LOCAL);
        if (!c->dl) {
                ctl_msg("cannot load the plugin library: %s", dlerror());
                return ctl_exit_code(CTL_OUTCOME_PLUGIN, 0);
        }
        /* POSIX: a function pointer through void * (dlsym's contract). */
        *(void **)&entry = dlsym(c->dl, LOOPSNAP_ENTRY_SYMBOL);
        if (!entry) {
                ctl_msg("'%s' has no %s: %s", c->plugin_path, LOOPSNAP_ENTRY_SYMBOL, dlerror());
                return ctl_exit_code(CTL_OUTCOME_PLUGIN, 0);
        }
        struct loopsnap_host host = {
                .struct_size = sizeof(host),
                .abi_major = LOOPSNAP_ABI_MAJOR,
                .abi_minor = LOOPSNAP_ABI_MINOR,
        };
        if (entry(&host, &c->ops, &c->err) < 0) {
                ctl_msg("'%s': %s", c->plugin_path, c->err.message);
                return ctl_exit_code(CTL_OUTCOME_PLUGIN, 0);
        }
        /* snapctl calls everything up to string_free. */
        if (!LOOPSNAP_HAS_FIELD(c->ops, string_free)) {
                ctl_msg("'%s': its operation table is too small (%u bytes) for snapctl",
                        c->plugin_path, c->ops->struct_size);
                return ctl_exit_code(CTL_OUTCOME_PLUGIN, 0);
        }
        return CTL_EXIT_OK;
}

void ctl_unload(struct ctl *c)
{
        if (c->root)
                c->ops->root_close(c->root);
        c->root = NULL;
        if (c->dl)
                dlclose(c->dl);
        c->dl = NULL;
}

int ctl_root(struct ctl *c)
{
        if (c->root)
                return CTL_EXIT_OK;
        struct loopsnap_root_opts o = {
                .struct_size = sizeof(o),
                .flags = (c->upper_dir ? LOOPSNAP_ROOT_UPPER_DIR : 0) |
                         (c->writable_pool == 1 ? LOOPSNAP_ROOT_WRITABLE_POOL : 0) |
                         (c->writable_pool == 0 ? LOOPSNAP_ROOT_NO_WRITABLE_POOL : 0),
                .path = c->root_path,
                .layout = c->layout,
                .writable_fs = c->writable_fs,
                .writable_size = c->writable_size,
                .committed_format = c->committed_format,
                .log = c->verbose ? ctl_log : NULL,
        };
        if (c->ops->root_open(&o, &c->root, &c->err) < 0)
                return ctl_fail(c, -1);
        return CTL_EXIT_OK;
}
