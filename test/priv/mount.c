/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Privileged tests of the mount engine on the real kernel. CTest runs this
 * binary three times, with LOOPSNAP_MOUNT_API=fd, lowerdir+ and legacy, so
 * every overlay test passes on each way of mounting an overlay.
 *
 * Layer fixture: layer k has "layer" (content k), "only-k"; the bottom layer
 * also "gone" and "dir/old"; the top layer (with more than one layer) has a
 * whiteout for "gone" and an opaque "dir" holding "dir/new". Lowers are
 * listed topmost first.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "mount/mount.h"
#include "test/priv/priv.h"

static void spec_free(void *p)
{
        mount_spec_free(p);
}

static void engine_free(void *p)
{
        mount_engine_free(p);
}

static void mount_setup(void)
{
        priv_setup();
        priv_private_mount_ns();
}

TestSuite(mount, .init = mount_setup, .fini = priv_teardown, .timeout = 300);

/* ---- fixture helpers ---- */

static void mkdir_p(const char *p)
{
        char tmp[1024];
        snprintf(tmp, sizeof(tmp), "%s", p);
        for (char *s = tmp + 1; *s; s++)
                if (*s == '/') {
                        *s = '\0';
                        (void)mkdir(tmp, 0755);
                        *s = '/';
                }
        cr_assert(mkdir(tmp, 0755) == 0 || errno == EEXIST, "mkdir %s: %m", p);
}

static void write_file(const char *p, const char *content)
{
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0, "create %s: %m", p);
        cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        close(fd);
}

static char *read_file(const char *p)
{
        static char buf[256];
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

/* Content of layer k of n in directory `dir`. */
static void fill_layer(const char *dir, size_t k, size_t n)
{
        char num[32];
        mkdir_p(dir);
        snprintf(num, sizeof(num), "%zu", k);
        write_file(priv_path("%s/layer", dir), num);
        write_file(priv_path("%s/only-%zu", dir, k), num);
        if (k == 0) {
                write_file(priv_path("%s/gone", dir), "bottom");
                mkdir_p(priv_path("%s/dir", dir));
                write_file(priv_path("%s/dir/old", dir), "old");
        }
        if (k == n - 1 && n > 1) {
                /* cppcheck-suppress badBitmaskCheck ; mode 0000, spelled out */
                cr_assert_eq(mknod(priv_path("%s/gone", dir), S_IFCHR | 0000, makedev(0, 0)), 0,
                             "whiteout: %m");
                mkdir_p(priv_path("%s/dir", dir));
                cr_assert_eq(
                        setxattr(priv_path("%s/dir", dir), "trusted.overlay.opaque", "y", 1, 0), 0,
                        "opaque: %m");
                write_file(priv_path("%s/dir/new", dir), "new");
        }
}

static struct mount_engine *engine(void)
{
        struct mount_engine_opts o = {
                .loop_owner = priv_owner(),
                .scratch_dir = priv_path("%s/scratch", priv_tmpdir()),
        };
        struct mount_engine *e = NULL;
        struct util_err err = {0};
        cr_assert_eq(mount_engine_new(&o, &e, &err), 0, "%s", err.msg);
        return priv_defer(engine_free, e);
}

static bool api_is(const char *name)
{
        const char *env = getenv("LOOPSNAP_MOUNT_API");
        return env && strcmp(env, name) == 0;
}

static size_t test_devices(void)
{
        char prefix[64];
        struct loop_status *list = NULL;
        size_t n = 0;
        struct util_err err = {0};
        snprintf(prefix, sizeof(prefix), LOOP_TAG_PREFIX "%s:", priv_owner());
        struct loop_filter f = {.tag_prefix = prefix};
        cr_assert_eq(loop_list(&f, &list, &n, &err), 0, "%s", err.msg);
        free(list);
        return n;
}

static int is_mountpoint(const char *p)
{
        struct util_err err = {0};
        int r = mount_is_mountpoint(p, &err);
        cr_assert_geq(r, 0, "%s", err.msg);
        return r;
}

/* "lowerdir=" + the given layer strings joined with ':'. */
static char *lowerdir_of(char **layers, size_t n)
{
        size_t len = 16;
        for (size_t k = 0; k < n; k++)
                len += strlen(layers[k]) + 1;
        char *s = calloc(1, len);
        strcpy(s, "lowerdir=");
        for (size_t k = 0; k < n; k++) {
                if (k)
                        strcat(s, ":");
                strcat(s, layers[k]);
        }
        return s;
}

static void check_overlay(const char *t, size_t n, const char *upper)
{
        char want[32];
        snprintf(want, sizeof(want), "%zu", n - 1);
        cr_assert_str_eq(read_file(priv_path("%s/layer", t)), want, "the topmost layer wins");
        size_t probe[] = {0, n / 2, n - 1};
        for (size_t k = 0; k < 3; k++)
                cr_assert_eq(access(priv_path("%s/only-%zu", t, probe[k]), F_OK), 0,
                             "only-%zu visible", probe[k]);
        if (n > 1) {
                cr_assert_neq(access(priv_path("%s/gone", t), F_OK), 0, "whiteout hides 'gone'");
                cr_assert_neq(access(priv_path("%s/dir/old", t), F_OK), 0,
                              "opaque dir hides dir/old");
                cr_assert_str_eq(read_file(priv_path("%s/dir/new", t)), "new");
        }
        write_file(priv_path("%s/written", t), "w");
        cr_assert_str_eq(read_file(priv_path("%s/written", upper)), "w", "writes go to the upper");
        write_file(priv_path("%s/only-0", t), "changed");
        cr_assert_str_eq(read_file(priv_path("%s/only-0", upper)), "changed", "copy-up");
}

/* ---- overlays of plain directories ---- */

static void overlay_of_dirs(size_t n)
{
        const char *base = priv_keep(priv_path("%s/L", priv_tmpdir()));
        char **layers = calloc(n, sizeof(char *));
        struct util_err err = {0};

        for (size_t k = 0; k < n; k++) {
                fill_layer(priv_path("%s/%zu", base, k), k, n);
                layers[n - 1 - k] = priv_keep(priv_path("%s/%zu", base, k)); /* topmost first */
        }
        const char *upper = priv_keep(priv_path("%s/u/upper", base));
        mkdir_p(upper);
        mkdir_p(priv_path("%s/u/work", base));
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(target);

        _cleanup_free_ char *lower = lowerdir_of(layers, n);
        const char *opts[] = {lower, priv_path("upperdir=%s", upper),
                              priv_path("workdir=%s/u/work", base), NULL};
        struct mount_spec *spec = NULL;
        cr_assert_eq(mount_spec_new(&spec), 0);
        priv_defer(spec_free, spec);
        cr_assert_eq(mount_spec_add(spec, "overlay", "overlay", NULL, opts, &err), 0, "%s",
                     err.msg);
        struct mount_engine *e = engine();
        cr_assert_eq(mount_engine_apply(e, spec, target, "t", NULL, &err), 0, "%zu lowers: %s", n,
                     err.msg);
        cr_log_info("%zu plain lowers mounted via %s", n, mount_api_name(mount_engine_api(e)));
        check_overlay(target, n, upper);
        cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);
        cr_assert_eq(access(priv_path("%s/scratch", priv_tmpdir()), F_OK) == 0 &&
                             rmdir(priv_path("%s/scratch", priv_tmpdir())) != 0,
                     false, "the scratch directory holds nothing after the apply");
        free(layers);
}

Test(mount, overlay_1_dir)
{
        overlay_of_dirs(1);
}
Test(mount, overlay_20_dirs)
{
        overlay_of_dirs(20);
}
Test(mount, overlay_128_dirs)
{
        overlay_of_dirs(128);
}
Test(mount, overlay_500_dirs)
{
        overlay_of_dirs(500);
}

/* ---- overlays of loop-mounted ext4 layer images ---- */

static void overlay_of_images(size_t n)
{
        cr_assert_gt(n, 0);
        priv_require_prog("mkfs.ext4");
        const char *src = priv_keep(priv_path("%s/S", priv_tmpdir()));
        struct util_err err = {0};
        struct mount_spec *spec = NULL;
        cr_assert_eq(mount_spec_new(&spec), 0);
        priv_defer(spec_free, spec);

        for (size_t k = 0; k < n; k++) {
                char *dir = strdup(priv_path("%s/%zu", src, k));
                fill_layer(priv_path("%s/upper", dir), k, n);
                char *img = strdup(priv_path("%s/%zu.img", src, k));
                const char *mkfs[] = {"mkfs.ext4",
                                      "-q",
                                      "-F",
                                      "-d",
                                      dir,
                                      "-b",
                                      "1024",
                                      "-N",
                                      "64",
                                      "-O",
                                      "^has_journal,^resize_inode",
                                      img,
                                      "512K",
                                      NULL};
                cr_assert_eq(priv_run(mkfs), 0, "mkfs.ext4 -d %s", dir);
                const char *o[] = {"ro", "loop", NULL};
                cr_assert_eq(mount_spec_add(spec, "ext4", img, NULL, o, &err), 0, "%s", err.msg);
                free(dir);
                free(img);
        }
        const char *upper = priv_keep(priv_path("%s/W/upper", priv_tmpdir()));
        mkdir_p(upper);
        mkdir_p(priv_path("%s/W/work", priv_tmpdir()));
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(target);
        char lower[64];
        /* {{ overlay n-1 0 }}: mount n-1 (the top layer) first. */
        snprintf(lower, sizeof(lower), "lowerdir={{ overlay %zu 0 }}", n - 1);
        /* Each layer's content is in upper/ of its image. */
        char *lowers = NULL;
        if (n == 1) {
                lowers = strdup("lowerdir={{ mount 0 }}/upper");
        } else {
                char **l = calloc(n, sizeof(char *));
                cr_assert_not_null(l);
                for (size_t k = 0; k < n; k++)
                        l[k] = strdup(priv_path("{{ mount %zu }}/upper", n - 1 - k));
                lowers = lowerdir_of(l, n);
                for (size_t k = 0; k < n; k++)
                        free(l[k]);
                free(l);
        }
        const char *opts[] = {lowers, priv_path("upperdir=%s", upper),
                              priv_path("workdir=%s/W/work", priv_tmpdir()), NULL};
        cr_assert_eq(mount_spec_add(spec, "overlay", "overlay", NULL, opts, &err), 0, "%s",
                     err.msg);
        free(lowers);

        struct mount_engine *e = engine();
        cr_assert_eq(mount_engine_apply(e, spec, target, "img", NULL, &err), 0,
                     "%zu image lowers: %s", n, err.msg);
        cr_log_info("%zu image lowers mounted via %s", n, mount_api_name(mount_engine_api(e)));
        check_overlay(target, n, upper);
        cr_assert_leq(test_devices(), n, "one device per layer image at most");
        cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);
        cr_assert_eq(test_devices(), 0, "every layer's loop device went with the overlay");
}

Test(mount, overlay_1_image)
{
        overlay_of_images(1);
}
Test(mount, overlay_20_images)
{
        overlay_of_images(20);
}
Test(mount, overlay_128_images)
{
        overlay_of_images(128);
}
Test(mount, overlay_500_images, .timeout = 600)
{
        overlay_of_images(500);
}

/* ---- limits ---- */

static struct mount_spec *overlay_spec_n(size_t n, const char *extra_opt, size_t extra_count)
{
        const char *base = priv_keep(priv_path("%s/N", priv_tmpdir()));
        char **layers = calloc(n, sizeof(char *));
        for (size_t k = 0; k < n; k++) {
                layers[k] = priv_keep(priv_path("%s/%zu", base, k));
                mkdir_p(layers[k]);
        }
        mkdir_p(priv_path("%s/u/upper", base));
        mkdir_p(priv_path("%s/u/work", base));
        char *lower = lowerdir_of(layers, n);
        const char **opts = calloc(extra_count + 4, sizeof(char *));
        size_t o = 0;
        opts[o++] = lower;
        opts[o++] = priv_keep(priv_path("upperdir=%s/u/upper", base));
        opts[o++] = priv_keep(priv_path("workdir=%s/u/work", base));
        for (size_t k = 0; k < extra_count; k++)
                opts[o++] = extra_opt;
        struct mount_spec *spec = NULL;
        struct util_err err = {0};
        cr_assert_eq(mount_spec_new(&spec), 0);
        priv_defer(spec_free, spec);
        cr_assert_eq(mount_spec_add(spec, "overlay", "overlay", NULL, opts, &err), 0, "%s",
                     err.msg);
        free(opts);
        free(lower);
        free(layers);
        return spec;
}

Test(mount, overlay_501_lowers_is_a_clear_error)
{
        struct mount_spec *spec = overlay_spec_n(501, NULL, 0);
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(target);
        struct mount_engine *e = engine();
        struct util_err err = {0};
        int r = mount_engine_apply(e, spec, target, "t", NULL, &err);
        cr_assert_eq(r, -EINVAL, "%d %s", r, err.msg);
        cr_assert(strstr(err.msg, "501 lower layers") && strstr(err.msg, "500"), "%s", err.msg);
        cr_assert_eq(is_mountpoint(target), 0, "nothing mounted");
        cr_log_info("refused as expected: %s", err.msg);
}

Test(mount, legacy_spec_that_cannot_fit_is_refused_and_nothing_is_mounted)
{
        /* 500 lowers plus 200 copies of a harmless option: more than 4095
         * bytes however short the layer paths get. */
        struct mount_spec *spec = overlay_spec_n(500, "redirect_dir=off", 200);
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(target);
        struct mount_engine *e = engine();
        struct util_err err = {0};
        int r = mount_engine_apply(e, spec, target, "t", NULL, &err);
        if (mount_engine_api(e) != MOUNT_API_LEGACY) {
                /* The new API has no page limit: the same spec mounts. */
                cr_assert_eq(r, 0, "%s", err.msg);
                cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);
                return;
        }
        cr_assert_eq(r, -E2BIG, "%d %s", r, err.msg);
        cr_assert(strstr(err.msg, "4095") && strstr(err.msg, "nothing mounted"), "%s", err.msg);
        cr_assert_eq(is_mountpoint(target), 0, "nothing mounted on the target");
        /* No compaction binds left either. */
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[4096];
        while (fgets(line, sizeof(line), f))
                cr_assert_null(strstr(line, priv_tmpdir()), "left mounted: %s", line);
        (void)fclose(f); /* read only */
        cr_log_info("refused as expected: %s", err.msg);
}

/* ---- errors name the culprit; nothing stays mounted or attached ---- */

static void expect_apply_error(const char *json, int want, const char *must_contain)
{
        struct util_err err = {0};
        struct mount_spec *spec = NULL;
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(target);
        int r = mount_spec_from_json(json, strlen(json), &spec, &err);
        if (r == 0) {
                priv_defer(spec_free, spec);
                r = mount_engine_apply(engine(), spec, target, "t", NULL, &err);
        }
        cr_assert_eq(r, want, "got %d (%s), want %d", r, err.msg, want);
        cr_assert(strstr(err.msg, must_contain), "'%s' names '%s'", err.msg, must_contain);
        cr_assert_eq(is_mountpoint(target), 0, "nothing mounted");
        cr_assert_eq(test_devices(), 0, "nothing attached");
        cr_log_info("refused as expected: %s", err.msg);
}

static const char *ext4_image(void)
{
        priv_require_prog("mkfs.ext4");
        const char *img = priv_image("fs.img", 8u << 20);
        const char *mkfs[] = {"mkfs.ext4", "-q", "-F", img, NULL};
        cr_assert_eq(priv_run(mkfs), 0);
        return img;
}

Test(mount, unknown_option_names_the_option)
{
        const char *img = ext4_image();
        char json[1024];
        snprintf(json, sizeof(json),
                 "[{\"type\":\"ext4\",\"source\":\"%s\",\"options\":[\"loop\",\"bogusopt\"]}]",
                 img);
        expect_apply_error(json, -EINVAL, "bogusopt");
}

Test(mount, bad_template_names_the_template)
{
        expect_apply_error("[{\"type\":\"overlay\",\"source\":\"overlay\",\"options\":"
                           "[\"lowerdir={{ mount 3 }}\"]}]",
                           -EINVAL, "{{ mount 3 }}");
        expect_apply_error("[{\"type\":\"overlay\",\"source\":\"overlay\",\"options\":"
                           "[\"lowerdir={{ frob 0 }}\"]}]",
                           -EINVAL, "frob");
}

Test(mount, injected_option_is_refused)
{
        const char *img = ext4_image();
        char json[1024];
        snprintf(json, sizeof(json),
                 "[{\"type\":\"ext4\",\"source\":\"%s\",\"options\":[\"loop\",\"ro\","
                 "\"uidmap=0:1:1,upperdir=/etc\"]}]",
                 img);
        expect_apply_error(json, -EINVAL, "uidmap=0:1:1,upperdir=/etc");
}

Test(mount, bad_id_map_names_the_map)
{
        const char *img = ext4_image();
        char json[1024];
        snprintf(json, sizeof(json),
                 "[{\"type\":\"ext4\",\"source\":\"%s\",\"options\":[\"loop\",\"ro\","
                 "\"uidmap=0:100000:x\"]}]",
                 img);
        if (api_is("legacy"))
                expect_apply_error(json, -EOPNOTSUPP, "need the new mount API");
        else
                expect_apply_error(json, -EINVAL, "uidmap");
}

Test(mount, malformed_json_names_the_element)
{
        expect_apply_error("[{\"type\":\"ext4\",\"source\":\"/x\",\"options\":[1]}]", -EINVAL,
                           "options[0]");
        expect_apply_error("[{\"type\":\"ext4\",\"source\":\"/x\"", -EINVAL, "mount spec");
}

/* ---- binds, propagation, stacking, templates ---- */

Test(mount, bind_ro_is_read_only_and_the_source_is_not)
{
        const char *src = priv_keep(priv_path("%s/src", priv_tmpdir()));
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(src);
        mkdir_p(target);
        write_file(priv_path("%s/f", src), "x");
        char json[1024];
        snprintf(json, sizeof(json),
                 "[{\"type\":\"bind\",\"source\":\"%s\",\"options\":[\"rbind\",\"ro\","
                 "\"nosuid\"]}]",
                 src);
        struct mount_spec *spec = NULL;
        struct util_err err = {0};
        cr_assert_eq(mount_spec_from_json(json, strlen(json), &spec, &err), 0, "%s", err.msg);
        priv_defer(spec_free, spec);
        struct mount_engine *e = engine();
        cr_assert_eq(mount_engine_apply(e, spec, target, "t", NULL, &err), 0, "%s", err.msg);
        cr_assert_str_eq(read_file(priv_path("%s/f", target)), "x");
        int fd = open(priv_path("%s/new", target), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        cr_assert_lt(fd, 0, "the bind is read-only");
        cr_assert_eq(errno, EROFS);
        write_file(priv_path("%s/new", src), "y");
        struct mount_info mi;
        cr_assert_eq(mount_find_by_target(target, &mi, &err), 0, "%s", err.msg);
        cr_assert(strstr(mi.options, "ro") && strstr(mi.options, "nosuid"), "%s", mi.options);
        cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);
}

static bool has_optional_field(const char *target, const char *field)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[4096];
        bool found = false;
        while (fgets(line, sizeof(line), f)) {
                char mp[2048];
                if (sscanf(line, "%*s %*s %*s %*s %2047s", mp) == 1 && strcmp(mp, target) == 0)
                        found = strstr(line, field) != NULL;
        }
        (void)fclose(f); /* read only */
        return found;
}

Test(mount, propagation_is_applied)
{
        const char *src = priv_keep(priv_path("%s/src", priv_tmpdir()));
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(src);
        mkdir_p(target);
        char json[1024];
        snprintf(json, sizeof(json),
                 "[{\"type\":\"bind\",\"source\":\"%s\",\"options\":[\"bind\",\"shared\"]}]", src);
        struct mount_spec *spec = NULL;
        struct util_err err = {0};
        cr_assert_eq(mount_spec_from_json(json, strlen(json), &spec, &err), 0, "%s", err.msg);
        priv_defer(spec_free, spec);
        struct mount_engine *e = engine();
        cr_assert(!has_optional_field(target, "shared:"));
        cr_assert_eq(mount_engine_apply(e, spec, target, "t", NULL, &err), 0, "%s", err.msg);
        cr_assert(has_optional_field(target, "shared:"), "the mount is shared");
        cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);
}

Test(mount, unmount_all_peels_a_stack)
{
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        struct util_err err = {0};
        mkdir_p(target);
        for (int k = 0; k < 3; k++)
                cr_assert_eq(mount("tmpfs", target, "tmpfs", 0, "size=1m"), 0, "%m");
        cr_assert_eq(is_mountpoint(target), 1);
        cr_assert_eq(mount_unmount_all(target, &err), 3, "%s", err.msg);
        cr_assert_eq(is_mountpoint(target), 0);
        cr_assert_eq(mount_unmount(target, &err), -EINVAL);
        cr_assert(strstr(err.msg, "not a mountpoint"), "%s", err.msg);
}

Test(mount, template_source_binds_an_earlier_mount_read_only)
{
        const char *img = ext4_image();
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(target);
        char json[2048];
        snprintf(
                json, sizeof(json),
                "[{\"type\":\"ext4\",\"source\":\"%s\",\"options\":[\"loop\",\"ro\"]},"
                " {\"type\":\"bind\",\"source\":\"{{ mount 0 }}\",\"options\":[\"rbind\",\"ro\"]}]",
                img);
        struct mount_spec *spec = NULL;
        struct util_err err = {0};
        cr_assert_eq(mount_spec_from_json(json, strlen(json), &spec, &err), 0, "%s", err.msg);
        priv_defer(spec_free, spec);
        struct mount_engine *e = engine();
        cr_assert_eq(mount_engine_apply(e, spec, target, "t", NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(access(priv_path("%s/lost+found", target), F_OK), 0, "the image is visible");
        struct mount_info mi;
        cr_assert_eq(mount_find_by_target(target, &mi, &err), 0, "%s", err.msg);
        cr_assert_str_eq(mi.fstype, "ext4");
        dev_t dev;
        cr_assert_eq(mount_backing_device(target, &dev, &err), 0);
        cr_assert_eq(mount_blockdev_kind(dev), MOUNT_BLOCKDEV_LOOP, "backed by a loop device");
        cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);
        cr_assert_eq(test_devices(), 0, "the loop device went with the mount");
}

Test(mount, detached_result_fd)
{
        /* Without an upper, overlay needs two lowers. */
        const char *src = priv_keep(priv_path("%s/L", priv_tmpdir()));
        fill_layer(priv_path("%s/1", src), 1, 2);
        fill_layer(priv_path("%s/0", src), 0, 2);
        char json[1024];
        snprintf(json, sizeof(json),
                 "[{\"type\":\"overlay\",\"source\":\"overlay\",\"options\":["
                 "\"lowerdir=%s/1:%s/0\"]}]",
                 src, src);
        struct mount_spec *spec = NULL;
        struct util_err err = {0};
        cr_assert_eq(mount_spec_from_json(json, strlen(json), &spec, &err), 0, "%s", err.msg);
        priv_defer(spec_free, spec);
        struct mount_engine *e = engine();
        int fd = -1;
        int r = mount_engine_apply(e, spec, NULL, "t", &fd, &err);
        if (mount_engine_api(e) == MOUNT_API_LEGACY) {
                cr_assert_eq(r, -EOPNOTSUPP, "%d %s", r, err.msg);
                cr_assert(strstr(err.msg, "needs the new mount API"), "%s", err.msg);
                cr_log_info("refused as expected: %s", err.msg);
                return;
        }
        cr_assert_eq(r, 0, "%s", err.msg);
        cr_assert_geq(fd, 0);
        int f = openat(fd, "layer", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(f, 0, "the detached overlay is readable: %m");
        close(f);
        close(fd);
}

/* ---- idmapped mounts ---- */

static void stat_uid(const char *p, uid_t want)
{
        struct stat st;
        cr_assert_eq(lstat(p, &st), 0, "stat %s: %m", p);
        cr_assert_eq(st.st_uid, want, "%s: uid %u, want %u", p, st.st_uid, want);
}

Test(mount, idmapped_overlay_lowers_shift_ids_and_copy_up_keeps_them)
{
        const char *base = priv_keep(priv_path("%s/L", priv_tmpdir()));
        for (size_t k = 0; k < 2; k++)
                fill_layer(priv_path("%s/%zu", base, k), k, 2);
        const char *upper = priv_keep(priv_path("%s/u/upper", base));
        mkdir_p(upper);
        mkdir_p(priv_path("%s/u/work", base));
        /* The snapshotter makes upper/work owned by the mapped root. */
        cr_assert_eq(chown(upper, 100000, 100000), 0);
        cr_assert_eq(chown(priv_path("%s/u/work", base), 100000, 100000), 0);
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(target);
        char json[4096];
        snprintf(json, sizeof(json),
                 "[{\"type\":\"overlay\",\"source\":\"overlay\",\"options\":["
                 "\"lowerdir=%s/1:%s/0\",\"upperdir=%s\",\"workdir=%s/u/work\","
                 "\"uidmap=0:100000:65536\",\"gidmap=0:100000:65536\"]}]",
                 base, base, upper, base);
        struct mount_spec *spec = NULL;
        struct util_err err = {0};
        cr_assert_eq(mount_spec_from_json(json, strlen(json), &spec, &err), 0, "%s", err.msg);
        priv_defer(spec_free, spec);
        struct mount_engine *e = engine();
        int r = mount_engine_apply(e, spec, target, "t", NULL, &err);
        if (mount_engine_api(e) != MOUNT_API_FD) {
                cr_assert_eq(r, -EOPNOTSUPP, "%d %s", r, err.msg);
                cr_assert(strstr(err.msg, "fd API"), "%s", err.msg);
                cr_log_info("refused as expected: %s", err.msg);
                return;
        }
        cr_assert_eq(r, 0, "%s", err.msg);
        stat_uid(priv_path("%s/layer", target), 100000);
        stat_uid(priv_path("%s/0/only-0", base), 0);
        /* A copy-up writes the shifted ids into the (not idmapped) upper. */
        cr_assert_eq(chmod(priv_path("%s/only-0", target), 0600), 0, "%m");
        stat_uid(priv_path("%s/only-0", upper), 100000);
        cr_assert_eq(mount_engine_userns_cached(e), 1);
        cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);

        /* Same mapping again: the cached user namespace is reused. */
        cr_assert_eq(mount_engine_apply(e, spec, target, "t", NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(mount_engine_userns_cached(e), 1, "cached userns reused");
        cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);
}

Test(mount, idmapped_plain_mount)
{
        const char *img = ext4_image();
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(target);
        char json[1024];
        snprintf(json, sizeof(json),
                 "[{\"type\":\"ext4\",\"source\":\"%s\",\"options\":[\"loop\",\"ro\","
                 "\"uidmap=0:200000:65536\"]}]",
                 img);
        struct mount_spec *spec = NULL;
        struct util_err err = {0};
        cr_assert_eq(mount_spec_from_json(json, strlen(json), &spec, &err), 0, "%s", err.msg);
        priv_defer(spec_free, spec);
        struct mount_engine *e = engine();
        int r = mount_engine_apply(e, spec, target, "t", NULL, &err);
        if (mount_engine_api(e) == MOUNT_API_LEGACY) {
                cr_assert_eq(r, -EOPNOTSUPP, "%d %s", r, err.msg);
                cr_assert_eq(test_devices(), 0, "nothing attached");
                cr_log_info("refused as expected: %s", err.msg);
                return;
        }
        cr_assert_eq(r, 0, "%s", err.msg);
        stat_uid(priv_path("%s/lost+found", target), 200000);
        cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);
}

Test(mount, idmapping_an_overlay_as_a_whole_is_a_clear_error)
{
        const char *src = priv_keep(priv_path("%s/L", priv_tmpdir()));
        fill_layer(priv_path("%s/1", src), 1, 2);
        fill_layer(priv_path("%s/0", src), 0, 2);
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(target);
        char json[2048];
        snprintf(json, sizeof(json),
                 "[{\"type\":\"overlay\",\"source\":\"overlay\",\"options\":["
                 "\"lowerdir=%s/1:%s/0\"]},"
                 " {\"type\":\"bind\",\"source\":\"{{ mount 0 }}\",\"options\":[\"rbind\","
                 "\"uidmap=0:100000:65536\"]}]",
                 src, src);
        if (api_is("legacy"))
                expect_apply_error(json, -EOPNOTSUPP, "need the new mount API");
        else
                expect_apply_error(json, -EINVAL, "cannot be idmapped as a whole");
}

/* ---- FUSE ---- */

Test(mount, fuse_through_mount_fuse3)
{
        priv_require_prog("mount.fuse3");
        priv_require_prog("bindfs");
        if (access("/dev/fuse", R_OK | W_OK) != 0)
                cr_skip_test("no usable /dev/fuse");
        const char *src = priv_keep(priv_path("%s/src", priv_tmpdir()));
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(src);
        mkdir_p(target);
        write_file(priv_path("%s/f", src), "fuse");
        char json[1024];
        snprintf(json, sizeof(json),
                 "[{\"type\":\"fuse.bindfs\",\"source\":\"%s\",\"options\":[\"ro\"]}]", src);
        struct mount_spec *spec = NULL;
        struct util_err err = {0};
        cr_assert_eq(mount_spec_from_json(json, strlen(json), &spec, &err), 0, "%s", err.msg);
        priv_defer(spec_free, spec);
        struct mount_engine *e = engine();
        cr_assert_eq(mount_engine_apply(e, spec, target, "t", NULL, &err), 0, "%s", err.msg);
        cr_assert_str_eq(read_file(priv_path("%s/f", target)), "fuse");
        struct mount_info mi;
        cr_assert_eq(mount_find_by_target(target, &mi, &err), 0, "%s", err.msg);
        cr_assert(strncmp(mi.fstype, "fuse", 4) == 0, "%s", mi.fstype);
        cr_assert_eq(open(priv_path("%s/new", target), O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1,
                     "ro reached the FUSE helper");
        cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);

        /* A helper failure is an error that names the helper, nothing mounted. */
        snprintf(json, sizeof(json),
                 "[{\"type\":\"fuse.bindfs\",\"source\":\"%s/missing\",\"options\":[]}]", src);
        expect_apply_error(json, -EIO, "mount.fuse3");
}

Test(mount, find_by_source_and_mountpoint_queries)
{
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        struct util_err err = {0};
        struct mount_info mi;
        mkdir_p(target);
        mkdir_p(priv_path("%s/inner", target));
        cr_assert_eq(mount("loopsnap-q", target, "tmpfs", 0, "size=1m"), 0, "%m");
        cr_assert_eq(mount_find_by_source("loopsnap-q", &mi, &err), 0, "%s", err.msg);
        cr_assert_str_eq(mi.target, target);
        cr_assert_str_eq(mi.fstype, "tmpfs");
        mkdir_p(priv_path("%s/sub", target));
        cr_assert_eq(is_mountpoint(priv_path("%s/sub", target)), 0);
        cr_assert_eq(mount_find_by_target(priv_path("%s/sub", target), &mi, &err), 0, "%s",
                     err.msg);
        cr_assert_str_eq(mi.target, target, "the mount containing a plain directory");
        cr_assert_eq(mount_find_by_source("no-such-source", &mi, &err), -ENOENT);
        cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);
}

/* ---- sub-directories of earlier mounts are resolved beneath them ---- */

/* An ext4 image holding sub/f and two symlinks that lead out of it. */
static const char *image_with_escapes(void)
{
        priv_require_prog("mkfs.ext4");
        const char *dir = priv_keep(priv_path("%s/content", priv_tmpdir()));
        mkdir_p(priv_path("%s/sub", dir));
        write_file(priv_path("%s/sub/f", dir), "inside");
        cr_assert_eq(symlink("/etc", priv_path("%s/abs", dir)), 0, "%m");
        cr_assert_eq(symlink("../../../..", priv_path("%s/rel", dir)), 0, "%m");
        const char *img = priv_keep(priv_path("%s/esc.img", priv_tmpdir()));
        const char *mkfs[] = {"mkfs.ext4", "-q", "-F", "-d", dir, img, "8M", NULL};
        cr_assert_eq(priv_run(mkfs), 0);
        return img;
}

Test(mount, template_sub_directory_is_resolved_beneath_the_mount)
{
        const char *img = image_with_escapes();
        const char *target = priv_keep(priv_path("%s/target", priv_tmpdir()));
        mkdir_p(target);
        char json[2048];
        snprintf(json, sizeof(json),
                 "[{\"type\":\"ext4\",\"source\":\"%s\",\"options\":[\"loop\",\"ro\"]},"
                 " {\"type\":\"bind\",\"source\":\"{{ mount 0 }}/sub\",\"options\":[\"rbind\","
                 "\"ro\"]}]",
                 img);
        struct mount_spec *spec = NULL;
        struct util_err err = {0};
        cr_assert_eq(mount_spec_from_json(json, strlen(json), &spec, &err), 0, "%s", err.msg);
        priv_defer(spec_free, spec);
        cr_assert_eq(mount_engine_apply(engine(), spec, target, "t", NULL, &err), 0, "%s", err.msg);
        cr_assert_str_eq(read_file(priv_path("%s/f", target)), "inside");
        cr_assert_eq(mount_unmount_all(target, &err), 1, "%s", err.msg);
        cr_assert_eq(test_devices(), 0);

        /* Symlinks in the image never lead the engine out of it. */
        for (int k = 0; k < 2; k++) {
                const char *link = k ? "rel" : "abs";
                snprintf(json, sizeof(json),
                         "[{\"type\":\"ext4\",\"source\":\"%s\",\"options\":[\"loop\",\"ro\"]},"
                         " {\"type\":\"bind\",\"source\":\"{{ mount 0 }}/%s\",\"options\":"
                         "[\"rbind\"]}]",
                         img, link);
                expect_apply_error(json, -EXDEV, "leads out of the mount");
                snprintf(json, sizeof(json),
                         "[{\"type\":\"ext4\",\"source\":\"%s\",\"options\":[\"loop\",\"ro\"]},"
                         " {\"type\":\"overlay\",\"source\":\"overlay\",\"options\":["
                         "\"lowerdir={{ mount 0 }}/sub:{{ mount 0 }}/%s\"]}]",
                         img, link);
                expect_apply_error(json, -EXDEV, "leads out of the mount");
        }
}
