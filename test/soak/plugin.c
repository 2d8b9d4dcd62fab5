/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The soak reaches loopsnap the way a host does: it dlopen()s
 * libloopsnap.so.1 and uses its table only (plugin/loopsnap.h), so what it
 * exercises is what containerd, snapctl and the hook get. Where the library
 * comes from: --plugin, else $LOOPSNAP_PLUGIN, else ../lib next to the
 * executable (build/bin/loopsnap-soak and build/lib, as for snapctl).
 */
#include <dlfcn.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "test/soak/soak.h"

void soak_err_set(struct loopsnap_error *err, int errnum, const char *fmt, ...)
{
        va_list ap;

        if (!err)
                return;
        err->struct_size = sizeof(*err);
        err->kind = LOOPSNAP_ERR_INTERNAL;
        err->errnum = errnum < 0 ? -errnum : errnum;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
}

static int beside_exe(char *buf, size_t size)
{
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return -errno;
        exe[n] = '\0';
        int len = snprintf(buf, size, "%s/../lib/%s", dirname(exe), LOOPSNAP_SONAME);
        return len > 0 && (size_t)len < size ? 0 : -ENAMETOOLONG;
}

int soak_plugin_load(const char *path, const struct loopsnap_ops **ret, struct util_err *err)
{
        char lib[PATH_MAX];
        const char *env = getenv("LOOPSNAP_PLUGIN");
        loopsnap_plugin_v1_fn entry;

        if (path)
                snprintf(lib, sizeof(lib), "%s", path);
        else if (env && *env)
                snprintf(lib, sizeof(lib), "%s", env);
        else if (beside_exe(lib, sizeof(lib)) < 0)
                return util_err_set(err, ENOENT, "find %s", LOOPSNAP_SONAME);

        /* Never unloaded: the table lives as long as the process. */
        void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                return util_err_setx(err, ENOENT, "load '%s': %s", lib, dlerror());
        *(void **)&entry = dlsym(dl, LOOPSNAP_ENTRY_SYMBOL);
        if (!entry)
                return util_err_setx(err, ENOENT, "'%s' has no %s", lib, LOOPSNAP_ENTRY_SYMBOL);
        struct loopsnap_host host = {
                .struct_size = sizeof(host),
                .abi_major = LOOPSNAP_ABI_MAJOR,
                .abi_minor = LOOPSNAP_ABI_MINOR,
        };
        struct loopsnap_error e = {.struct_size = sizeof(e)};
        if (entry(&host, ret, &e) < 0)
                return util_err_setx(err, e.errnum ? e.errnum : EINVAL, "'%s': %s", lib, e.message);
        if (!LOOPSNAP_HAS_FIELD(*ret, string_free))
                return util_err_setx(err, EPROTO, "'%s': its table is too small", lib);
        return 0;
}

int soak_root_open(const struct loopsnap_ops *ops, const char *path, const char *variant,
                   uint64_t writable_size, struct loopsnap_root **ret, struct loopsnap_error *err)
{
        struct loopsnap_root_opts o = {.struct_size = sizeof(o), .path = path};

        if (variant) {
                o.writable_size = writable_size;
                if (strstr(variant, "erofs"))
                        o.committed_format = "erofs";
                if (strncmp(variant, "dir", 3) == 0)
                        o.flags |= LOOPSNAP_ROOT_UPPER_DIR;
        }
        return ops->root_open(&o, ret, err);
}
