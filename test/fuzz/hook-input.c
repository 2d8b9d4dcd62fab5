/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-hook-input: the OCI hook's two inputs (plugin/hook-input.c, linked
 * into the target from its source, as into loopsnap-oci-hook): the runtime
 * state JSON read from a descriptor (hook_input_read_state, here from a
 * memfd) and the bundle's config.json (hook_input_read_config, here from a
 * bundle directory made once per process in /dev/shm or /tmp, with a
 * rootfs/ to resolve).
 * The input is STATE, or STATE NUL CONFIG: both JSON readers refuse a NUL
 * byte, so it cannot be part of either. The config is read whether or not
 * the state was accepted, with the bundle pointed at the scratch bundle.
 *
 * Checks: the error contract; an accepted state has an id of 1..128 bytes
 * of [A-Za-z0-9_.+-] not starting with '.', an absolute bundle without
 * control characters (messages name it), a pid >= 0;
 * hook_stage_guess (for pid 0, where it reads nothing from /proc) names the
 * stage of a "stopped"/"created"/"creating" status and refuses others; an
 * accepted config has an absolute, resolved root path, an absolute
 * snapshotter root, a non-empty key and parent, and id maps in the label
 * form that idmap_parse accepts; hook_input_done frees everything.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "idmap/idmap.h"
#include "plugin/hook.h"
#include "test/fuzz/fuzz.h"

static char bundle[64];

static void bundle_remove(void)
{
        char path[128];

        snprintf(path, sizeof(path), "%s/config.json", bundle);
        unlink(path);
        snprintf(path, sizeof(path), "%s/rootfs", bundle);
        rmdir(path);
        rmdir(bundle);
}

/* The scratch bundle, made on first use and removed at exit. */
static const char *bundle_dir(void)
{
        char path[128];

        if (bundle[0])
                return bundle;
        /* tmpfs when there is one: config.json is rewritten on every run. */
        snprintf(bundle, sizeof(bundle), "/dev/shm/loopsnap-fuzz-hook.XXXXXX");
        if (!mkdtemp(bundle)) {
                snprintf(bundle, sizeof(bundle), "/tmp/loopsnap-fuzz-hook.XXXXXX");
                FUZZ_CHECK(mkdtemp(bundle) != NULL, "mkdtemp: %s", strerror(errno));
        }
        snprintf(path, sizeof(path), "%s/rootfs", bundle);
        FUZZ_CHECK(mkdir(path, 0755) == 0, "mkdir %s: %s", path, strerror(errno));
        FUZZ_CHECK(atexit(bundle_remove) == 0, "atexit");
        return bundle;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                FUZZ_CHECK(w > 0, "write: %s", strerror(errno));
                p += w;
                n -= (size_t)w;
        }
}

static bool id_ok(const char *id)
{
        size_t n = strlen(id);
        return n >= 1 && n <= HOOK_ID_MAX && id[0] != '.' &&
               strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-") ==
                       n;
}

static void check_state(const uint8_t *data, size_t size)
{
        struct util_err err = {0};
        struct hook_input in = {0};
        int fd = memfd_create("state", MFD_CLOEXEC);
        int r;

        FUZZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
        write_all(fd, data, size);
        FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek: %s", strerror(errno));
        r = hook_input_read_state(fd, &in, &err);
        close(fd);
        fuzz_check_err(r, &err, "hook_input_read_state");
        if (r == 0) {
                FUZZ_CHECK(id_ok(in.id), "state id '%s' accepted", in.id);
                FUZZ_CHECK(in.bundle && in.bundle[0] == '/' && fuzz_is_printable(in.bundle),
                           "bundle '%s' accepted", in.bundle ? in.bundle : "(null)");
                FUZZ_CHECK(in.pid >= 0, "pid %d", (int)in.pid);
                FUZZ_CHECK(!in.stderr_file || in.stderr_file[0], "empty stderr file kept");
                if (in.pid == 0) {
                        const char *stage = NULL;
                        err = (struct util_err){0};
                        r = hook_stage_guess(&in, &stage, &err);
                        fuzz_check_err(r, &err, "hook_stage_guess");
                        if (strcmp(in.status, "stopped") == 0)
                                FUZZ_CHECK(r == 0 && strcmp(stage, "poststop") == 0,
                                           "stopped is not poststop");
                        else if (strcmp(in.status, "created") == 0 ||
                                 strcmp(in.status, "creating") == 0)
                                FUZZ_CHECK(r == 0 && strcmp(stage, "createContainer") == 0,
                                           "%s with pid 0 is not createContainer", in.status);
                        else
                                FUZZ_CHECK(r == -EINVAL, "status '%s' guessed as a stage",
                                           in.status);
                }
        }
        hook_input_done(&in);
}

/* An id map of the hook's input: the label form, as idmap_parse reads it. */
static void check_map(const char *s, const char *what)
{
        struct util_err err = {0};
        struct idmap_map *m = fuzz_oom(malloc(sizeof(*m)));
        int r = idmap_parse(s, what, m, &err);

        FUZZ_CHECK(r == 0, "%s '%s' from config.json does not parse: %s", what, s, err.msg);
        free(m);
}

static void check_config(const uint8_t *data, size_t size)
{
        struct util_err err = {0};
        struct hook_input in = {0};
        char path[128];
        int fd, r;

        snprintf(path, sizeof(path), "%s/config.json", bundle_dir());
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        FUZZ_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
        write_all(fd, data, size);
        close(fd);

        snprintf(in.id, sizeof(in.id), "fuzz-1");
        in.bundle = fuzz_oom(strdup(bundle));
        r = hook_input_read_config(&in, &err);
        fuzz_check_err(r, &err, "hook_input_read_config");
        if (r == 0) {
                FUZZ_CHECK(in.root_path && in.root_path[0] == '/', "root path '%s'",
                           in.root_path ? in.root_path : "(null)");
                FUZZ_CHECK(in.snap_root && in.snap_root[0] == '/', "snapshotter root '%s'",
                           in.snap_root ? in.snap_root : "(null)");
                FUZZ_CHECK(in.key && in.key[0], "empty key");
                FUZZ_CHECK(!in.parent || in.parent[0], "empty parent");
                FUZZ_CHECK(!in.stderr_file || in.stderr_file[0], "empty stderr file kept");
                if (in.uidmap)
                        check_map(in.uidmap, "uidmap");
                if (in.gidmap)
                        check_map(in.gidmap, "gidmap");
        }
        hook_input_done(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *nul = memchr(data, '\0', size);
        size_t state_len = nul ? (size_t)(nul - data) : size;

        check_state(data, state_len);
        if (nul)
                check_config(nul + 1, size - state_len - 1);
        return 0;
}
