/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Privileged tests of layer application and OCI import (snapshot/apply.c,
 * apply-sandbox.c, import.c) on the real kernel. Layers are generated here
 * with libarchive's writer (tar, gzip, zstd) or, for what that writer will
 * not produce, block by block (test/common/tar.h); OCI layouts are written
 * here too, their digests computed with OpenSSL independently of the code
 * under test. Trees are compared as a canonical listing (type, mode,
 * owner, link count, content, symlink target, times, xattrs) against the
 * expected text, so a missing, extra or altered file fails the test.
 */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include "loop/loop.h"
#include "mount/mount.h"
#include "snapshot/snapshot.h"
#include "test/common/tar.h"
#include "test/priv/priv.h"

/* The layer tables list entries positionally and leave trailing fields
 * out on purpose (zero: no xattr, no capability). */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define MIB        (UINT64_C(1) << 20)
#define IMAGE_SIZE (64 * MIB)
#define TIME0      1600000000L /* mtimes of layer n: TIME0 + n */

static void root_free(void *p)
{
        snap_root_close(p);
}

static void spec_free(void *p)
{
        mount_spec_free(p);
}

static void apply_setup(void)
{
        priv_setup();
        priv_private_mount_ns();
}

TestSuite(apply, .init = apply_setup, .fini = priv_teardown, .timeout = 240);

/* ---- files ---- */

static void write_text(const char *path, const void *data, size_t len)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0, "create %s: %m", path);
        cr_assert_eq(write(fd, data, len), (ssize_t)len, "write %s: %m", path);
        close(fd);
}

/* The whole file (malloc'ed, NUL-terminated; deferred free). */
static char *slurp(const char *path, size_t *ret_len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0, "open %s: %m", path);
        struct stat st;
        cr_assert_eq(fstat(fd, &st), 0);
        char *b = priv_defer(free, malloc((size_t)st.st_size + 1));
        cr_assert_eq(read(fd, b, (size_t)st.st_size), st.st_size, "read %s", path);
        close(fd);
        b[st.st_size] = '\0';
        if (ret_len)
                *ret_len = (size_t)st.st_size;
        return b;
}

/* A formatted string of any length that lives until teardown. */
static const char *keepf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *keepf(const char *fmt, ...)
{
        char *s = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&s, fmt, ap);
        va_end(ap);
        cr_assert_geq(n, 0);
        return priv_defer(free, s);
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
        unsigned char md[32];
        unsigned n = 0;
        cr_assert_eq(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
        for (unsigned i = 0; i < 32; i++)
                snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* "sha256:<hex>" of a file (a copy that lives until teardown). */
static const char *file_digest(const char *path)
{
        size_t len;
        char *b = slurp(path, &len), hex[65];
        sha256_hex(b, len, hex);
        return priv_keep(priv_path("sha256:%s", hex));
}

/* ---- layers ---- */

/* An entry of a generated layer. type: f file, d directory, l symlink,
 * h hard link, p FIFO, c/b device (data = "major:minor"). */
struct ent {
        const char *name;
        char type;
        unsigned mode;
        unsigned uid, gid;
        const char *data;  /* content, symlink or hard link target */
        const char *xattr; /* "name=value" (one) or NULL */
        bool cap;          /* a security.capability: cap_net_bind_service+ep */
};

/* The file capability the tests set: VFS_CAP_REVISION_2 | effective,
 * permitted = CAP_NET_BIND_SERVICE (bit 10), little-endian. */
static const unsigned char fcap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x04};

static void add_entry(struct archive *a, const struct ent *e, long mtime)
{
        struct archive_entry *ae = archive_entry_new();
        cr_assert_not_null(ae);
        archive_entry_set_pathname(ae, e->name);
        archive_entry_set_uid(ae, e->uid);
        archive_entry_set_gid(ae, e->gid);
        archive_entry_set_mtime(ae, mtime, 0);
        archive_entry_set_atime(ae, mtime, 0);
        size_t size = 0;
        switch (e->type) {
        case 'f':
                archive_entry_set_filetype(ae, AE_IFREG);
                size = e->data ? strlen(e->data) : 0;
                break;
        case 'd':
                archive_entry_set_filetype(ae, AE_IFDIR);
                break;
        case 'l':
                archive_entry_set_filetype(ae, AE_IFLNK);
                archive_entry_set_symlink(ae, e->data);
                break;
        case 'h':
                archive_entry_set_filetype(ae, AE_IFREG);
                archive_entry_set_hardlink(ae, e->data);
                break;
        case 'p':
                archive_entry_set_filetype(ae, AE_IFIFO);
                break;
        case 'c':
        case 'b': {
                unsigned ma = 0, mi = 0;
                cr_assert_eq(sscanf(e->data, "%u:%u", &ma, &mi), 2, "device '%s'", e->data);
                archive_entry_set_filetype(ae, e->type == 'c' ? AE_IFCHR : AE_IFBLK);
                archive_entry_set_rdev(ae, makedev(ma, mi));
                break;
        }
        default:
                cr_assert_fail("bad type %c", e->type);
        }
        archive_entry_set_perm(ae, e->mode ? e->mode : (e->type == 'd' ? 0755 : 0644));
        archive_entry_set_size(ae, (la_int64_t)size);
        if (e->xattr) {
                const char *eq = strchr(e->xattr, '=');
                char name[256];
                snprintf(name, sizeof(name), "%.*s", (int)(eq - e->xattr), e->xattr);
                archive_entry_xattr_add_entry(ae, name, eq + 1, strlen(eq + 1));
        }
        if (e->cap)
                archive_entry_xattr_add_entry(ae, "security.capability", fcap, sizeof(fcap));
        cr_assert_eq(archive_write_header(a, ae), ARCHIVE_OK, "write header '%s': %s", e->name,
                     archive_error_string(a));
        if (size)
                cr_assert_eq(archive_write_data(a, e->data, size), (la_ssize_t)size);
        archive_entry_free(ae);
}

/* Writes the entries as an uncompressed pax tar at <tmp>/<name>. */
static const char *write_tar(const char *name, const struct ent *e, size_t n, long mtime)
{
        const char *path = priv_keep(priv_path("%s/%s", priv_tmpdir(), name));
        struct archive *a = archive_write_new();
        cr_assert_not_null(a);
        cr_assert_eq(archive_write_set_format_pax(a), ARCHIVE_OK);
        cr_assert_eq(archive_write_open_filename(a, path), ARCHIVE_OK, "%s",
                     archive_error_string(a));
        for (size_t i = 0; i < n; i++)
                add_entry(a, &e[i], mtime);
        cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        return path;
}

/* Compresses `src` with `filter` ("gzip", "zstd") into src.<filter>, the
 * uncompressed bytes exactly those of `src` (libarchive's raw format). */
static const char *compress(const char *src, const char *filter)
{
        const char *dst = priv_keep(priv_path("%s.%s", src, filter));
        size_t len;
        char *data = slurp(src, &len);
        struct archive *a = archive_write_new();
        cr_assert_eq(archive_write_set_format_raw(a), ARCHIVE_OK);
        cr_assert_eq(!strcmp(filter, "gzip") ? archive_write_add_filter_gzip(a)
                                             : archive_write_add_filter_zstd(a),
                     ARCHIVE_OK, "%s", archive_error_string(a));
        cr_assert_eq(archive_write_open_filename(a, dst), ARCHIVE_OK);
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, "data");
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_size(ae, (la_int64_t)len);
        cr_assert_eq(archive_write_header(a, ae), ARCHIVE_OK, "%s", archive_error_string(a));
        cr_assert_eq(archive_write_data(a, data, len), (la_ssize_t)len);
        archive_entry_free(ae);
        cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        return dst;
}

static const char *write_raw(const char *name, struct ttar *t)
{
        const char *path = priv_keep(priv_path("%s/%s", priv_tmpdir(), name));
        cr_assert_eq(ttar_write(t, path), 0, "write %s", path);
        ttar_free(t);
        return path;
}

/* ---- trees ---- */

static int cmp_names(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void dump_xattrs(char **out, size_t *len, FILE *f, const char *path)
{
        char names[4096];
        ssize_t n = llistxattr(path, names, sizeof(names));
        cr_assert_geq(n, 0, "llistxattr %s: %m", path);
        const char *list[64] = {0};
        size_t k = 0;
        for (char *p = names; p < names + n && k < 64; p += strlen(p) + 1)
                if (strcmp(p, "security.selinux") != 0)
                        list[k++] = p;
        qsort(list, k, sizeof(list[0]), cmp_names);
        for (size_t i = 0; i < k; i++) {
                unsigned char v[256];
                ssize_t vl = lgetxattr(path, list[i], v, sizeof(v));
                cr_assert_geq(vl, 0, "lgetxattr %s %s: %m", path, list[i]);
                fprintf(f, " x:%s=", list[i]);
                bool text = true;
                for (ssize_t j = 0; j < vl; j++)
                        text &= v[j] >= 0x20 && v[j] < 0x7f;
                for (ssize_t j = 0; j < vl; j++)
                        fprintf(f, text ? "%c" : "%02x", v[j]);
        }
        (void)out;
        (void)len;
}

/* One line per file below `dir` (sorted by path; lost+found left out):
 * "<path> <type><mode> <uid>:<gid>[ n<links>][ '<content>'][ -> target]
 *  [ t<mtime - TIME0>][ x:<xattr>=<value>...]". Times that are not a
 * layer's (made now) show no t. */
static void dump_dir(FILE *f, const char *dir, const char *rel)
{
        struct dirent **names;
        int n = scandir(dir, &names, NULL, alphasort);
        cr_assert_geq(n, 0, "scandir %s: %m", dir);
        for (int i = 0; i < n; i++) {
                const char *name = names[i]->d_name;
                if (!strcmp(name, ".") || !strcmp(name, "..") ||
                    (!*rel && !strcmp(name, "lost+found"))) {
                        free(names[i]);
                        continue;
                }
                char path[4096], r[4096];
                snprintf(path, sizeof(path), "%s/%s", dir, name);
                snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "", name);
                struct stat st;
                cr_assert_eq(lstat(path, &st), 0, "lstat %s: %m", path);
                char t = S_ISDIR(st.st_mode)    ? 'd'
                         : S_ISREG(st.st_mode)  ? 'f'
                         : S_ISLNK(st.st_mode)  ? 'l'
                         : S_ISFIFO(st.st_mode) ? 'p'
                         : S_ISCHR(st.st_mode)  ? 'c'
                                                : '?';
                fprintf(f, "%s %c%04o %u:%u", r, t, (unsigned)(st.st_mode & 07777), st.st_uid,
                        st.st_gid);
                if (S_ISREG(st.st_mode) && st.st_nlink > 1)
                        fprintf(f, " n%u", (unsigned)st.st_nlink);
                if (S_ISCHR(st.st_mode))
                        fprintf(f, " %u:%u", major(st.st_rdev), minor(st.st_rdev));
                if (S_ISREG(st.st_mode)) {
                        char c[64] = "";
                        int fd = open(path, O_RDONLY | O_CLOEXEC);
                        cr_assert_geq(fd, 0, "open %s: %m", path);
                        ssize_t got = read(fd, c, sizeof(c) - 1);
                        close(fd);
                        c[got > 0 ? got : 0] = '\0';
                        fprintf(f, " '%s'", c);
                }
                if (S_ISLNK(st.st_mode)) {
                        char target[4096];
                        ssize_t l = readlink(path, target, sizeof(target) - 1);
                        cr_assert_geq(l, 0);
                        target[l] = '\0';
                        fprintf(f, " -> %s", target);
                }
                long dt = (long)st.st_mtim.tv_sec - TIME0;
                if (dt >= 0 && dt < 100 && st.st_mtim.tv_nsec == 0)
                        fprintf(f, " t%ld", dt);
                dump_xattrs(NULL, NULL, f, path);
                fputc('\n', f);
                if (S_ISDIR(st.st_mode))
                        dump_dir(f, path, r);
                free(names[i]);
        }
        free(names);
}

static const char *tree(const char *dir)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        cr_assert_not_null(f);
        dump_dir(f, dir, "");
        cr_assert_eq(fclose(f), 0);
        return priv_defer(free, buf);
}

static void expect_tree(const char *dir, const char *want)
{
        const char *got = tree(dir);
        cr_assert_str_eq(got, want, "tree of %s:\n--- got\n%s--- want\n%s", dir, got, want);
}

/* ---- applying into a plain directory ---- */

static const char *fresh_dir(const char *name)
{
        const char *d = priv_keep(priv_path("%s/%s", priv_tmpdir(), name));
        cr_assert_eq(mkdir(d, 0755), 0, "mkdir %s: %m", d);
        return d;
}

static void apply_dir_ok(const char *dir, enum snap_apply_mode mode, const char *tar,
                         struct snap_apply_result *res)
{
        struct util_err err = {0};
        int rc = snap_apply_dir(dir, mode, tar, NULL, NULL, res, &err);
        cr_assert_eq(rc, 0, "apply %s into %s: %d %s", tar, dir, rc, err.msg);
}

/* The base layer of the tests: every kind of entry the apply preserves. */
static const struct ent base_layer[] = {
        {"./", 'd', 0755},
        {"bin/", 'd', 0755},
        {"bin/su", 'f', 04755, 0, 0, "su"},
        {"bin/sg", 'f', 02711, 0, 42, "sg"},
        {"bin/ping", 'f', 0755, 0, 0, "ping", NULL, true},
        {"tmp/", 'd', 01777},
        {"home/u/", 'd', 0700, 1000, 1001},
        {"home/u/f", 'f', 0640, 1000, 1001, "data", "user.k=v"},
        {"home/u/hard", 'h', 0, 0, 0, "home/u/f"},
        {"home/u/sym", 'l', 0777, 1000, 1001, "f"},
        {"home/u/abs", 'l', 0777, 0, 0, "/etc/passwd"},
        {"run/fifo", 'p', 0620, 5, 6},
        {"old/", 'd', 0750},
        {"old/x", 'f', 0644, 0, 0, "x"},
        {"opq/", 'd', 0755},
        {"opq/lower", 'f', 0644, 0, 0, "lower"},
        {"gone", 'f', 0644, 0, 0, "gone"},
};

/* The second layer: deletions, an opaque directory, a replaced file, a
 * directory the layer does not carry (home/u), one deleted and made again. */
static const struct ent second_layer[] = {
        {".wh.gone", 'f'},
        {"opq/", 'd', 0711},
        {"opq/.wh..wh..opq", 'f'},
        {"opq/new", 'f', 0644, 0, 0, "new"},
        {"home/u/f", 'f', 0600, 1000, 1001, "data2"},
        {"home/u/added", 'f', 0644, 1000, 1001, "added"},
        {".wh.old", 'f'},
        {"old/", 'd', 0700},
        {"old/y", 'f', 0644, 0, 0, "y"},
};

#define CAP_HEX "0100000200040000000000000000000000000000"

/* What a container sees after both layers (merged view, or block image). */
static const char base_tree[] = "bin d0755 0:0 t0\n"
                                "bin/ping f0755 0:0 'ping' t0 x:security.capability=" CAP_HEX "\n"
                                "bin/sg f2711 0:42 'sg' t0\n"
                                "bin/su f4755 0:0 'su' t0\n"
                                "gone f0644 0:0 'gone' t0\n"
                                "home d0755 0:0\n"
                                "home/u d0700 1000:1001 t0\n"
                                "home/u/abs l0777 0:0 -> /etc/passwd t0\n"
                                "home/u/f f0640 1000:1001 n2 'data' t0 x:user.k=v\n"
                                "home/u/hard f0640 1000:1001 n2 'data' t0 x:user.k=v\n"
                                "home/u/sym l0777 1000:1001 -> f t0\n"
                                "old d0750 0:0 t0\n"
                                "old/x f0644 0:0 'x' t0\n"
                                "opq d0755 0:0 t0\n"
                                "opq/lower f0644 0:0 'lower' t0\n"
                                "run d0755 0:0\n"
                                "run/fifo p0620 5:6 t0\n"
                                "tmp d1777 0:0 t0\n";

Test(apply, dir_merged_preserves_everything)
{
        const char *dir = fresh_dir("target");
        struct snap_apply_result res;
        const char *tar = write_tar("base.tar", base_layer, UTIL_ARRAY_SIZE(base_layer), TIME0);

        apply_dir_ok(dir, SNAP_APPLY_MERGED, tar, &res);
        expect_tree(dir, base_tree);
        struct stat st;
        cr_assert_eq(stat(dir, &st), 0);
        cr_expect_eq(st.st_mode & 07777, 0755, "the root entry's mode");
        cr_expect_eq(st.st_mtim.tv_sec, TIME0, "the root's time, set after its contents");
        /* Symlinks keep their own times (utimensat AT_SYMLINK_NOFOLLOW). */
        cr_assert_eq(lstat(priv_path("%s/home/u/sym", dir), &st), 0);
        cr_expect_eq(st.st_mtim.tv_sec, TIME0);

        /* Digests: of the file as read, and of the uncompressed stream. */
        cr_expect_str_eq(res.digest, file_digest(tar));
        cr_expect_str_eq(res.diff_id, file_digest(tar), "uncompressed: both the same");
        struct stat ts;
        cr_assert_eq(stat(tar, &ts), 0);
        cr_expect_eq(res.size, (uint64_t)ts.st_size);
        cr_expect_eq(res.uncompressed_size, (uint64_t)ts.st_size);
        cr_expect_eq(res.entries, UTIL_ARRAY_SIZE(base_layer));
}

Test(apply, dir_merged_second_layer)
{
        const char *dir = fresh_dir("target");
        apply_dir_ok(dir, SNAP_APPLY_MERGED,
                     write_tar("1.tar", base_layer, UTIL_ARRAY_SIZE(base_layer), TIME0), NULL);
        apply_dir_ok(
                dir, SNAP_APPLY_MERGED,
                compress(write_tar("2.tar", second_layer, UTIL_ARRAY_SIZE(second_layer), TIME0 + 1),
                         "gzip"),
                NULL);
        /* gone deleted; opq emptied of what was below, its own new kept;
         * f replaced (its old hard link keeps the old content); old
         * deleted and made again (x gone). */
        expect_tree(dir, "bin d0755 0:0 t0\n"
                         "bin/ping f0755 0:0 'ping' t0 x:security.capability=" CAP_HEX "\n"
                         "bin/sg f2711 0:42 'sg' t0\n"
                         "bin/su f4755 0:0 'su' t0\n"
                         "home d0755 0:0\n"
                         "home/u d0700 1000:1001\n"
                         "home/u/abs l0777 0:0 -> /etc/passwd t0\n"
                         "home/u/added f0644 1000:1001 'added' t1\n"
                         "home/u/f f0600 1000:1001 'data2' t1\n"
                         "home/u/hard f0640 1000:1001 'data' t0 x:user.k=v\n"
                         "home/u/sym l0777 1000:1001 -> f t0\n"
                         "old d0700 0:0 t1\n"
                         "old/y f0644 0:0 'y' t1\n"
                         "opq d0711 0:0 t1\n"
                         "opq/new f0644 0:0 'new' t1\n"
                         "run d0755 0:0\n"
                         "run/fifo p0620 5:6 t0\n"
                         "tmp d1777 0:0 t0\n");
}

Test(apply, dir_overlay_whiteouts)
{
        const char *dir = fresh_dir("upper");
        apply_dir_ok(
                dir, SNAP_APPLY_OVERLAY,
                compress(write_tar("2.tar", second_layer, UTIL_ARRAY_SIZE(second_layer), TIME0 + 1),
                         "zstd"),
                NULL);
        /* Whiteouts are 0:0 character devices; opq carries the opaque
         * xattr; old, deleted and made again, is opaque; home/u has no
         * parent layer here to take its attributes from: 0755 0:0. */
        expect_tree(dir, "gone c0000 0:0 0:0\n"
                         "home d0755 0:0\n"
                         "home/u d0755 0:0\n"
                         "home/u/added f0644 1000:1001 'added' t1\n"
                         "home/u/f f0600 1000:1001 'data2' t1\n"
                         "old d0700 0:0 t1 x:trusted.overlay.opaque=y\n"
                         "old/y f0644 0:0 'y' t1\n"
                         "opq d0711 0:0 t1 x:trusted.overlay.opaque=y\n"
                         "opq/new f0644 0:0 'new' t1\n");
}

Test(apply, dir_compressions_and_digests)
{
        const char *tar = write_tar("l.tar", base_layer, UTIL_ARRAY_SIZE(base_layer), TIME0);
        const char *variants[] = {tar, compress(tar, "gzip"), compress(tar, "zstd")};
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(variants); i++) {
                const char *dir = fresh_dir(priv_path("t%zu", i));
                struct snap_apply_result res;
                apply_dir_ok(dir, SNAP_APPLY_MERGED, variants[i], &res);
                expect_tree(dir, base_tree);
                cr_expect_str_eq(res.digest, file_digest(variants[i]), "%s", variants[i]);
                cr_expect_str_eq(res.diff_id, file_digest(tar), "%s: the uncompressed digest",
                                 variants[i]);
        }
}

Test(apply, dir_names_utf8_and_raw_bytes)
{
        /* A pax path (as Docker writes non-ASCII names): UTF-8, kept as is;
         * a ustar name with a Latin-1 byte (as GNU tar writes): raw. */
        static const char utf8[] = "caf\xc3\xa9-\xe2\x9c\x93";
        struct ttar t = {0};
        ttar_pax(&t, 'x', "path", utf8, sizeof(utf8) - 1);
        ttar_file(&t, "placeholder", "u");
        ttar_file(&t, "latin1-\xe9", "l");
        ttar_end(&t);
        const char *tar = write_raw("names.tar", &t);

        const char *dir = fresh_dir("t");
        apply_dir_ok(dir, SNAP_APPLY_MERGED, tar, NULL);
        expect_tree(dir, "caf\xc3\xa9-\xe2\x9c\x93 f0644 0:0 'u'\n"
                         "latin1-\xe9 f0644 0:0 'l'\n");
}

static uint64_t progress_last, progress_total;
static unsigned progress_calls;
static bool progress_monotonic = true;

static void on_progress(uint64_t done, uint64_t total, void *data)
{
        if (done < progress_last || done > total)
                progress_monotonic = false;
        progress_last = done;
        progress_total = total;
        progress_calls++;
        (*(unsigned *)data)++;
}

Test(apply, dir_progress)
{
        /* A layer of a few MiB, so the feed takes several chunks. */
        char *big = priv_defer(free, malloc(3 * MIB + 1));
        cr_assert_not_null(big);
        for (size_t i = 0; i < 3 * MIB; i++)
                big[i] = (char)('a' + (i * 7919) % 26);
        big[3 * MIB] = '\0';
        struct ent e[] = {{"big", 'f', 0644, 0, 0, big}};
        const char *tar = write_tar("big.tar", e, 1, TIME0);
        unsigned mine = 0;
        struct util_err err = {0};
        int rc = snap_apply_dir(fresh_dir("t"), SNAP_APPLY_MERGED, tar, on_progress, &mine, NULL,
                                &err);
        cr_assert_eq(rc, 0, "%s", err.msg);
        struct stat st;
        cr_assert_eq(stat(tar, &st), 0);
        cr_expect_gt(mine, 3, "called per chunk (%u calls)", mine);
        cr_expect(progress_monotonic, "done only grows and stays <= total");
        cr_expect_eq(progress_last, (uint64_t)st.st_size, "ends at the file's size");
        cr_expect_eq(progress_total, (uint64_t)st.st_size);
}

/* ---- the sandbox, seen from outside ---- */

/* What the progress callback saw of the extraction child once it was
 * reading (the stream is far bigger than a socket buffer, so by 2 MiB the
 * child has set its walls up and is busy; it stays alive until the parent
 * closes the stream). */
static struct {
        bool seen;
        char status[4096];
        char root[4096];
        char fds[2048];
} probe;

static pid_t only_child(void)
{
        char buf[256];
        ssize_t n = util_read_small_file(priv_path("/proc/self/task/%d/children", (int)gettid()),
                                         buf, sizeof(buf));
        int pid = 0, more = 0;
        if (n <= 0 || sscanf(buf, "%d %d", &pid, &more) != 1)
                return -1;
        return pid;
}

static void on_progress_probe(uint64_t done, uint64_t total, void *data)
{
        if (probe.seen || done < 2 * MIB)
                return;
        pid_t pid = only_child();
        if (pid <= 0)
                return;
        probe.seen = true;
        (void)util_read_small_file(priv_path("/proc/%d/status", pid), probe.status,
                                   sizeof(probe.status));
        ssize_t n = readlink(priv_path("/proc/%d/root", pid), probe.root, sizeof(probe.root) - 1);
        probe.root[n > 0 ? n : 0] = '\0';
        struct dirent **names;
        int k = scandir(priv_path("/proc/%d/fd", pid), &names, NULL, versionsort);
        size_t off = 0;
        for (int i = 0; i < k; i++) {
                if (names[i]->d_name[0] != '.') {
                        char target[512];
                        ssize_t l = readlink(priv_path("/proc/%d/fd/%s", pid, names[i]->d_name),
                                             target, sizeof(target) - 1);
                        target[l > 0 ? l : 0] = '\0';
                        /* Sockets and pipes by kind only (their inode varies). */
                        if (!strncmp(target, "socket:", 7) || !strncmp(target, "pipe:", 5))
                                target[strcspn(target, ":")] = '\0';
                        off += (size_t)snprintf(probe.fds + off, sizeof(probe.fds) - off, "%s=%s\n",
                                                names[i]->d_name, target);
                }
                free(names[i]);
        }
        free(names);
}

static const char *status_field(const char *name)
{
        const char *p = strstr(probe.status, name);
        cr_assert_not_null(p, "no %s in the child's status:\n%s", name, probe.status);
        p += strlen(name);
        while (*p == '\t' || *p == ' ')
                p++;
        return priv_keep(priv_path("%.*s", (int)strcspn(p, "\n"), p));
}

Test(apply, sandbox_walls_seen_from_outside)
{
        char *big = priv_defer(free, malloc(6 * MIB + 1));
        cr_assert_not_null(big);
        for (size_t i = 0; i < 6 * MIB; i++)
                big[i] = (char)('a' + (i * 7919) % 26);
        big[6 * MIB] = '\0';
        struct ent e[] = {{"big", 'f', 0644, 0, 0, big}};
        const char *tar = write_tar("big.tar", e, 1, TIME0);
        const char *dir = fresh_dir("jail");
        unsigned calls = 0;
        struct util_err err = {0};
        int rc = snap_apply_dir(dir, SNAP_APPLY_MERGED, tar, on_progress_probe, &calls, NULL, &err);
        cr_assert_eq(rc, 0, "%s", err.msg);
        cr_assert(probe.seen, "the child was never seen while it read");

        cr_expect_str_eq(status_field("Seccomp:"), "2", "a seccomp filter");
        cr_expect_str_eq(status_field("NoNewPrivs:"), "1");
        /* CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID | SYS_ADMIN |
         * MKNOD | SETFCAP, nothing else; none inheritable, no ambient. */
        cr_expect_str_eq(status_field("CapEff:"), "000000008820001f");
        cr_expect_str_eq(status_field("CapPrm:"), "000000008820001f");
        cr_expect_str_eq(status_field("CapInh:"), "0000000000000000");
        cr_expect_str_eq(status_field("CapAmb:"), "0000000000000000");
        cr_expect_str_eq(probe.root, dir, "chrooted into the target");
        /* stdin/stdout on /dev/null, stderr kept (ours); the stream, the
         * report, the layer root, the directory of the entry being written
         * and its file. Nothing else of the parent's. */
        char err2[512];
        ssize_t l = readlink("/proc/self/fd/2", err2, sizeof(err2) - 1);
        err2[l > 0 ? l : 0] = '\0';
        if (!strncmp(err2, "socket:", 7) || !strncmp(err2, "pipe:", 5))
                err2[strcspn(err2, ":")] = '\0';
        cr_expect_str_eq(probe.fds,
                         keepf("0=/dev/null\n1=/dev/null\n2=%s\n3=socket\n4=pipe\n5=%s\n6=%s\n"
                               "7=%s/big\n",
                               err2, dir, dir, dir),
                         "descriptors:\n%s", probe.fds);
}

/* ---- the hostile corpus ---- */

struct hostile {
        const char *what;
        const char *(*build)(void);
        int errnum;
        const char *needle; /* in the message, naming the entry */
};

static const char *h_dotdot(void)
{
        struct ttar t = {0};
        ttar_file(&t, "../x", "escaped");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_absolute(void)
{
        struct ttar t = {0};
        ttar_file(&t, "/abs", "escaped");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_inner_dotdot(void)
{
        struct ttar t = {0};
        ttar_file(&t, "a/../../x", "escaped");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_symlink_abs(void)
{
        struct ttar t = {0};
        ttar_header(&t, "l", '2', 0, "/etc");
        ttar_file(&t, "l/passwd", "root::0:0::/:/bin/sh\n");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_symlink_up(void)
{
        struct ttar t = {0};
        ttar_header(&t, "l", '2', 0, "..");
        ttar_file(&t, "l/x", "escaped");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_hardlink_abs(void)
{
        struct ttar t = {0};
        ttar_header(&t, "evil", '1', 0, "/etc/passwd");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_hardlink_up(void)
{
        struct ttar t = {0};
        ttar_header(&t, "evil", '1', 0, "../x");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_hardlink_dir(void)
{
        struct ttar t = {0};
        ttar_header(&t, "d/", '5', 0, NULL);
        ttar_header(&t, "evil", '1', 0, "d");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_hardlink_through_symlink(void)
{
        struct ttar t = {0};
        ttar_header(&t, "l", '2', 0, "/etc");
        ttar_header(&t, "evil", '1', 0, "l/passwd");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_chardev(void)
{
        struct ent e[] = {{"null", 'c', 0666, 0, 0, "1:3"}};
        return write_tar("h.tar", e, 1, TIME0);
}

static const char *h_blockdev(void)
{
        struct ent e[] = {{"sda", 'b', 0660, 0, 6, "8:0"}};
        return write_tar("h.tar", e, 1, TIME0);
}

static const char *h_whiteout_dev(void)
{
        /* A 0:0 character device not named .wh.: not a whiteout. */
        struct ent e[] = {{"wh", 'c', 0, 0, 0, "0:0"}};
        return write_tar("h.tar", e, 1, TIME0);
}

static const char *h_nul(void)
{
        static const char v[] = "ok\0../../x";
        struct ttar t = {0};
        ttar_pax(&t, 'x', "path", v, sizeof(v) - 1);
        ttar_file(&t, "ok", "x");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_big_pax(void)
{
        size_t n = MIB;
        char *v = priv_defer(free, malloc(n));
        memset(v, 'a', n);
        struct ttar t = {0};
        ttar_pax(&t, 'x', "comment", v, n);
        ttar_file(&t, "innocent", "x");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_long_path(void)
{
        char *p = priv_defer(free, malloc(5001));
        for (int i = 0; i < 2500; i++)
                memcpy(p + 2 * i, "a/", 2);
        p[4999] = 'z';
        p[5000] = '\0';
        struct ent e[] = {{p, 'f', 0644, 0, 0, "x"}};
        return write_tar("h.tar", e, 1, TIME0);
}

static const char *h_long_component(void)
{
        char p[301];
        memset(p, 'n', 300);
        p[300] = '\0';
        struct ent e[] = {{p, 'f', 0644, 0, 0, "x"}};
        return write_tar("h.tar", e, 1, TIME0);
}

static const char *h_unknown_type(void)
{
        struct ttar t = {0};
        ttar_header(&t, "weird", 'Z', 0, NULL);
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_overlay_xattr(void)
{
        struct ent e[] = {{"d/", 'd', 0755, 0, 0, NULL, "trusted.overlay.redirect=/etc"}};
        return write_tar("h.tar", e, 1, TIME0);
}

static const char *h_trailing(void)
{
        struct ttar t = {0};
        ttar_file(&t, "a", "x");
        ttar_end(&t);
        ttar_file(&t, "hidden", "smuggled");
        return write_raw("h.tar", &t);
}

static const char *h_truncated(void)
{
        struct ttar t = {0};
        char data[2000];
        memset(data, 'd', sizeof(data));
        ttar_header(&t, "cut", '0', sizeof(data), NULL);
        ttar_data(&t, data, sizeof(data));
        t.len -= 1024;
        return write_raw("h.tar", &t);
}

static const char *h_whiteout_dotdot(void)
{
        struct ttar t = {0};
        ttar_file(&t, "d/.wh...", "");
        ttar_end(&t);
        return write_raw("h.tar", &t);
}

static const char *h_not_a_tar(void)
{
        struct ttar t = {0};
        char junk[4096];
        for (size_t i = 0; i < sizeof(junk); i++)
                junk[i] = (char)(i * 31 + 7);
        ttar_raw(&t, junk, sizeof(junk));
        return write_raw("h.tar", &t);
}

static const struct hostile corpus[] = {
        {"../x", h_dotdot, EINVAL, "entry '../x': path escapes the layer root"},
        {"/abs", h_absolute, EINVAL, "entry '/abs': an absolute path"},
        {"a/../../x", h_inner_dotdot, EINVAL, "entry 'a/../../x': path escapes the layer root"},
        {"l -> /etc, l/passwd", h_symlink_abs, EINVAL,
         "entry 'l/passwd': path escapes the layer root"},
        {"l -> .., l/x", h_symlink_up, EINVAL, "entry 'l/x': path escapes the layer root"},
        {"hard link to /etc/passwd", h_hardlink_abs, EINVAL,
         "entry 'evil': hard link target '/etc/passwd': an absolute path"},
        {"hard link to ../x", h_hardlink_up, EINVAL,
         "entry 'evil': hard link target '../x': path escapes the layer root"},
        {"hard link to a directory", h_hardlink_dir, EINVAL,
         "entry 'evil': hard link target 'd' is not a file extracted earlier from this layer"},
        {"hard link through a symlink", h_hardlink_through_symlink, EINVAL,
         "entry 'evil': hard link target 'l/passwd' is not a file extracted earlier"},
        {"character device", h_chardev, EINVAL, "entry 'null': a character device node (1:3)"},
        {"block device", h_blockdev, EINVAL, "entry 'sda': a block device node (8:0)"},
        {"0:0 device not named .wh.", h_whiteout_dev, EINVAL,
         "entry 'wh': a character device node (0:0)"},
        {"NUL in a name", h_nul, EINVAL, "entry 'ok?../../x': the pax path holds a NUL byte"},
        {"1 MiB pax header", h_big_pax, E2BIG,
         "entry 'PaxHeaders/entry': a pax header of 1048593 bytes is over the limit of 262144"},
        {"path over PATH_MAX", h_long_path, E2BIG, "entry 'a/a/a/a/a/a/a/a/a/a/a/a/"},
        {"component over NAME_MAX", h_long_component, E2BIG,
         "a name component longer than NAME_MAX"},
        {"unknown type", h_unknown_type, EINVAL, "entry 'weird': unknown entry type 'Z'"},
        {"overlay xattr", h_overlay_xattr, EINVAL,
         "entry 'd/': xattr 'trusted.overlay.redirect' is refused"},
        {"data after the end", h_trailing, EINVAL, "data after the end of the archive"},
        {"truncated", h_truncated, EINVAL, "entry 'cut'"},
        {"whiteout of ..", h_whiteout_dotdot, EINVAL, "entry 'd/.wh...': a whiteout of nothing"},
        {"not a tar", h_not_a_tar, EINVAL, "damaged tar header at offset 0 (bad checksum)"},
};

static const char *sentinel_make(const char *dir)
{
        const char *s = priv_keep(priv_path("%s/sentinel", dir));
        cr_assert_eq(mkdir(s, 0755), 0);
        write_text(priv_path("%s/keep", s), "keep", 4);
        return s;
}

/* Nothing but `allowed` (NULL-terminated) in `dir`; the sentinel intact. */
static void expect_only(const char *what, const char *dir, const char *const *allowed)
{
        struct dirent **names;
        int n = scandir(dir, &names, NULL, alphasort);
        cr_assert_geq(n, 0, "scandir %s: %m", dir);
        for (int i = 0; i < n; i++) {
                const char *name = names[i]->d_name;
                bool ok = !strcmp(name, ".") || !strcmp(name, "..");
                for (size_t k = 0; allowed[k] && !ok; k++)
                        ok = !strcmp(name, allowed[k]);
                cr_expect(ok, "%s: '%s' appeared in %s", what, name, dir);
                free(names[i]);
        }
        free(names);
}

static void expect_sentinel(const char *what, const char *s)
{
        expect_only(what, s, (const char *const[]){"keep", NULL});
        cr_expect_str_eq(slurp(priv_path("%s/keep", s), NULL), "keep", "%s: sentinel altered",
                         what);
}

static void expect_refused(const struct hostile *h, int rc, const struct util_err *err)
{
        cr_expect_eq(rc, -h->errnum, "%s: returned %d (%s), want -%s", h->what, rc,
                     rc < 0 ? err->msg : "success", strerrorname_np(h->errnum));
        cr_expect_eq(err->errnum, h->errnum, "%s: errnum %d", h->what, err->errnum);
        cr_expect(strstr(err->msg, h->needle), "%s: the message '%s' lacks '%s'", h->what, err->msg,
                  h->needle);
}

Test(apply, hostile_corpus_into_directories)
{
        struct stat passwd0, passwd1;
        cr_assert_eq(stat("/etc/passwd", &passwd0), 0);
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(corpus); i++) {
                for (int m = 0; m < 2; m++) {
                        const struct hostile *h = &corpus[i];
                        const char *box = fresh_dir(priv_path("case%zu-%d", i, m));
                        const char *target = priv_keep(priv_path("%s/target", box));
                        cr_assert_eq(mkdir(target, 0755), 0);
                        const char *s = sentinel_make(box);
                        const char *tar = h->build();
                        struct util_err err = {0};
                        int rc = snap_apply_dir(target, m ? SNAP_APPLY_OVERLAY : SNAP_APPLY_MERGED,
                                                tar, NULL, NULL, NULL, &err);
                        expect_refused(h, rc, &err);
                        cr_expect(strncmp(err.msg, "apply '", 7) == 0, "%s: '%s'", h->what,
                                  err.msg);
                        expect_only(h->what, box,
                                    (const char *const[]){"target", "sentinel", NULL});
                        expect_sentinel(h->what, s);
                        (void)unlink(tar);
                }
        }
        cr_assert_eq(stat("/etc/passwd", &passwd1), 0);
        cr_expect(passwd0.st_mtim.tv_sec == passwd1.st_mtim.tv_sec &&
                          passwd0.st_mtim.tv_nsec == passwd1.st_mtim.tv_nsec &&
                          passwd0.st_size == passwd1.st_size,
                  "/etc/passwd untouched");
}

/* ---- snapshot roots and OCI layouts ---- */

static struct snap_root *open_root(enum snap_layout layout)
{
        struct snap_root_opts o = {.path = priv_keep(priv_path("%s/root", priv_tmpdir())),
                                   .layout = layout,
                                   .writable_size = IMAGE_SIZE};
        /* CTest runs the suite again for the overlay root variants
         * (priv-apply-erofs, priv-apply-dir); the block layout has neither. */
        const char *v = getenv("LOOPSNAP_TEST_VARIANT");
        if (v && layout == SNAP_LAYOUT_OVERLAY && strstr(v, "erofs"))
                o.committed_format = "erofs";
        if (v && layout == SNAP_LAYOUT_OVERLAY && strncmp(v, "dir", 3) == 0)
                o.upper_dir = true;
        struct snap_root *r = NULL;
        struct util_err err = {0};
        int rc = snap_root_open(&o, &r, &err);
        cr_assert_eq(rc, 0, "snap_root_open: %s", err.msg);
        return priv_defer(root_free, r);
}

struct blob {
        char digest[SNAP_DIGEST_MAX];
        uint64_t size;
};

static struct blob put_blob(const char *layout, const void *data, size_t len)
{
        struct blob b = {.size = len};
        char hex[65];
        sha256_hex(data, len, hex);
        snprintf(b.digest, sizeof(b.digest), "sha256:%s", hex);
        (void)mkdir(priv_path("%s/blobs", layout), 0755);
        (void)mkdir(priv_path("%s/blobs/sha256", layout), 0755);
        write_text(priv_path("%s/blobs/sha256/%s", layout, hex), data, len);
        return b;
}

static struct blob put_file(const char *layout, const char *path)
{
        size_t len;
        char *data = slurp(path, &len);
        return put_blob(layout, data, len);
}

static struct blob put_json(const char *layout, const char *json)
{
        return put_blob(layout, json, strlen(json));
}

struct layer {
        const char *path;       /* as stored (maybe compressed) */
        const char *media_type; /* NULL: by suffix */
        const char *diff_id;    /* NULL: the digest of `plain` */
        const char *plain;      /* the uncompressed tar; NULL: `path` */
};

static const char *media_type_of(const struct layer *l)
{
        if (l->media_type)
                return l->media_type;
        if (strstr(l->path, ".gzip"))
                return "application/vnd.oci.image.layer.v1.tar+gzip";
        if (strstr(l->path, ".zstd"))
                return "application/vnd.oci.image.layer.v1.tar+zstd";
        return "application/vnd.oci.image.layer.v1.tar";
}

/* Writes the blobs of an image (layers, config, manifest); returns the
 * manifest's descriptor JSON with `annotations` (a JSON object or NULL). */
static const char *put_image(const char *layout, const struct layer *l, size_t n,
                             const char *platform_arch, const char *annotations)
{
        char *diff_ids = NULL, *layers = NULL;
        size_t dl = 0, ll = 0;
        FILE *fd = open_memstream(&diff_ids, &dl), *fl = open_memstream(&layers, &ll);
        for (size_t i = 0; i < n; i++) {
                struct blob b = put_file(layout, l[i].path);
                const char *id = l[i].diff_id ? l[i].diff_id
                                              : file_digest(l[i].plain ? l[i].plain : l[i].path);
                fprintf(fd, "%s\"%s\"", i ? "," : "", id);
                fprintf(fl, "%s{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%llu}",
                        i ? "," : "", media_type_of(&l[i]), b.digest, (unsigned long long)b.size);
        }
        cr_assert_eq(fclose(fd), 0);
        cr_assert_eq(fclose(fl), 0);
        struct blob cfg =
                put_json(layout, keepf("{\"architecture\":\"%s\",\"os\":\"linux\",\"config\":{},"
                                       "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[%s]}}",
                                       platform_arch, diff_ids));
        char *manifest = NULL;
        if (asprintf(&manifest,
                     "{\"schemaVersion\":2,\"mediaType\":\"application/"
                     "vnd.oci.image.manifest.v1+json\","
                     "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                     "\"digest\":\"%s\",\"size\":%llu},\"layers\":[%s]}",
                     cfg.digest, (unsigned long long)cfg.size, layers) < 0)
                cr_assert_fail("asprintf");
        struct blob m = put_json(layout, manifest);
        free(manifest);
        free(diff_ids);
        free(layers);
        return keepf(
                "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\","
                "\"size\":%llu,\"platform\":{\"architecture\":\"%s\",\"os\":\"linux\"}%s%s}",
                m.digest, (unsigned long long)m.size, platform_arch,
                annotations ? ",\"annotations\":" : "", annotations ? annotations : "");
}

/* oci-layout and index.json listing `descs` (JSON descriptors). */
static void put_index(const char *layout, const char *const *descs, size_t n)
{
        char *list = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&list, &len);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s%s", i ? "," : "", descs[i]);
        cr_assert_eq(fclose(f), 0);
        const char *ol = "{\"imageLayoutVersion\":\"1.0.0\"}";
        write_text(priv_path("%s/oci-layout", layout), ol, strlen(ol));
        const char *idx = keepf("{\"schemaVersion\":2,\"manifests\":[%s]}", list);
        write_text(priv_path("%s/index.json", layout), idx, strlen(idx));
        free(list);
}

static const char *new_layout(const char *name)
{
        return fresh_dir(name);
}

/* A one-image layout of `n` layers. */
static const char *layout_of(const char *name, const struct layer *l, size_t n)
{
        const char *layout = new_layout(name);
        const char *d = put_image(layout, l, n, "amd64", NULL);
        put_index(layout, &d, 1);
        return layout;
}

static int count_fn(const struct snap_info *i, void *data, struct util_err *err)
{
        (*(size_t *)data)++;
        return 0;
}

static size_t count(struct snap_root *r, const char *filter)
{
        size_t n = 0;
        struct util_err err = {0};
        const char *f[] = {filter};
        cr_assert_eq(snap_walk(r, f, filter ? 1 : 0, count_fn, &n, &err), 0, "%s", err.msg);
        return n;
}

/* After an operation: no jail left in tmp/, no device of the root. */
static void expect_clean(struct snap_root *r, const char *what)
{
        priv_drop_activations(snap_root_path(r));
        const char *tmp = priv_path("%s/tmp", snap_root_path(r));
        expect_only(what, tmp, (const char *const[]){NULL});
        cr_expect_eq(priv_devices_tagged(snap_root_tag_owner(r)), 0, "%s: loop devices left", what);
}

static const char *import_ok(struct snap_root *r, const char *layout, const char *ref)
{
        char *top = NULL;
        struct util_err err = {0};
        int rc = snap_import_oci(r, layout, ref, NULL, NULL, &top, &err);
        cr_assert_eq(rc, 0, "import %s: %d %s", layout, rc, err.msg);
        cr_assert_not_null(top);
        return priv_defer(free, top);
}

/* Prepares a child of `parent`, mounts it; returns the target. */
static const char *mount_child(struct snap_root *r, const char *key, const char *parent)
{
        struct mount_spec *m = NULL;
        struct util_err err = {0};
        int rc = snap_prepare(r, key, parent, NULL, 0, &m, &err);
        cr_assert_eq(rc, 0, "prepare %s: %s", key, err.msg);
        priv_defer(spec_free, m);
        const char *t = fresh_dir(priv_path("mnt-%s", key));
        rc = mount_engine_apply(priv_engine(), m, t, NULL, NULL, &err);
        cr_assert_eq(rc, 0, "mount %s: %s", key, err.msg);
        return t;
}

/* Mounts(key) onto a fresh target. */
static const char *mount_key(struct snap_root *r, const char *key)
{
        struct mount_spec *m = NULL;
        struct util_err err = {0};
        cr_assert_eq(snap_mounts(r, key, &m, &err), 0, "mounts %s: %s", key, err.msg);
        priv_defer(spec_free, m);
        const char *t = fresh_dir(priv_path("mnt2-%s", key));
        cr_assert_eq(mount_engine_apply(priv_engine(), m, t, NULL, NULL, &err), 0, "mount %s: %s",
                     key, err.msg);
        return t;
}

static void unmount_ok(const char *t)
{
        struct util_err err = {0};
        cr_assert_geq(mount_unmount_all(t, &err), 1, "%s", err.msg);
}

/* Three layers: the base (uncompressed), the second (gzip), a third (zstd)
 * that adds to a directory of the base no entry of its own names. */
static const struct ent third_layer[] = {
        {"bin/new", 'f', 0755, 0, 0, "new"},
        {"bin/.wh.su", 'f'},
        {"home/u/deep/er/file", 'f', 0600, 1000, 1001, "deep"},
};

/* `hard_links`: overlayfs reports the link count of the lower inode (the
 * layer where f and hard were one file); a block image has the real one. */
static const char final_tree_fmt[] =
        "bin d0755 0:0\n"
        "bin/new f0755 0:0 'new' t2\n"
        "bin/ping f0755 0:0 'ping' t0 x:security.capability=" CAP_HEX "\n"
        "bin/sg f2711 0:42 'sg' t0\n"
        "home d0755 0:0\n"
        "home/u d0700 1000:1001\n"
        "home/u/abs l0777 0:0 -> /etc/passwd t0\n"
        "home/u/added f0644 1000:1001 'added' t1\n"
        "home/u/deep d0755 0:0\n"
        "home/u/deep/er d0755 0:0\n"
        "home/u/deep/er/file f0600 1000:1001 'deep' t2\n"
        "home/u/f f0600 1000:1001 'data2' t1\n"
        "home/u/hard f0640 1000:1001%s 'data' t0 x:user.k=v\n"
        "home/u/sym l0777 1000:1001 -> f t0\n"
        "old d0700 0:0 t1\n"
        "old/y f0644 0:0 'y' t1\n"
        "opq d0711 0:0 t1\n"
        "opq/new f0644 0:0 'new' t1\n"
        "run d0755 0:0\n"
        "run/fifo p0620 5:6 t0\n"
        "tmp d1777 0:0 t0\n";

static void three_layers(struct layer l[3])
{
        const char *t0 = write_tar("l0.tar", base_layer, UTIL_ARRAY_SIZE(base_layer), TIME0);
        const char *t1 =
                write_tar("l1.tar", second_layer, UTIL_ARRAY_SIZE(second_layer), TIME0 + 1);
        const char *t2 = write_tar("l2.tar", third_layer, UTIL_ARRAY_SIZE(third_layer), TIME0 + 2);
        l[0] = (struct layer){.path = t0};
        l[1] = (struct layer){.path = compress(t1, "gzip"), .plain = t1};
        l[2] = (struct layer){.path = compress(t2, "zstd"), .plain = t2};
}

static void import_three_layers(enum snap_layout layout)
{
        struct snap_root *r = open_root(layout);
        struct layer l[3];
        three_layers(l);
        const char *oci = layout_of("oci", l, 3);

        unsigned calls = 0;
        char *top = NULL;
        struct util_err err = {0};
        progress_last = 0;
        progress_monotonic = true;
        int rc = snap_import_oci(r, oci, NULL, on_progress, &calls, &top, &err);
        cr_assert_eq(rc, 0, "import: %s", err.msg);
        priv_defer(free, top);

        /* Chain ids computed here from the diff ids. */
        char c0[SNAP_DIGEST_MAX], c1[SNAP_DIGEST_MAX], c2[SNAP_DIGEST_MAX];
        cr_assert_eq(snap_chain_id(NULL, file_digest(l[0].path), c0), 0);
        cr_assert_eq(snap_chain_id(c0, file_digest(l[1].plain), c1), 0);
        cr_assert_eq(snap_chain_id(c1, file_digest(l[2].plain), c2), 0);
        cr_expect_str_eq(top, c2, "the top chain id");
        cr_expect_eq(count(r, NULL), 3, "three snapshots");
        cr_expect_eq(count(r, "kind==committed"), 3, "all committed");
        cr_expect_eq(count(r, priv_path("name==\"%s\",parent==\"%s\"", c2, c1)), 1);
        cr_expect_eq(count(r, priv_path("name==\"%s\",parent==\"%s\"", c1, c0)), 1);
        cr_expect_eq(count(r, priv_path("name==\"%s\"", c0)), 1);
        cr_expect_eq(count(r, "name~=^import-"), 0, "no temporary key left");
        uint64_t blobs = 0;
        for (int i = 0; i < 3; i++) {
                struct stat st;
                cr_assert_eq(stat(l[i].path, &st), 0);
                blobs += (uint64_t)st.st_size;
        }
        cr_expect(progress_monotonic, "progress only grows");
        cr_expect_eq(progress_last, blobs, "progress ends at the sum of the layer blobs");
        cr_expect_eq(progress_total, blobs);
        expect_clean(r, "import");

        /* What a container sees. */
        const char *t = mount_child(r, "ctr", top);
        expect_tree(t, keepf(final_tree_fmt, layout == SNAP_LAYOUT_OVERLAY ? " n2" : ""));
        unmount_ok(t);

        /* A second import finds every layer and makes nothing. */
        cr_expect_str_eq(import_ok(r, oci, NULL), c2);
        cr_expect_eq(count(r, NULL), 4, "the three layers and the container's snapshot");
        expect_clean(r, "re-import");
        cr_expect_eq(priv_devices_tagged(priv_owner()), 0);
}

Test(apply, import_overlay_layout)
{
        import_three_layers(SNAP_LAYOUT_OVERLAY);
}

Test(apply, import_block_layout)
{
        import_three_layers(SNAP_LAYOUT_BLOCK);
}

Test(apply, overlay_upper_holds_whiteouts_and_parent_attributes)
{
        /* The overlay layout keeps the OCI deletions as overlay metadata in
         * the layer's upper/: look at the committed image of layer 2. */
        struct snap_root *r = open_root(SNAP_LAYOUT_OVERLAY);
        struct layer l[3];
        three_layers(l);
        const char *oci = layout_of("oci", l, 2);
        const char *top = import_ok(r, oci, NULL);

        struct snap_info i = {0};
        struct util_err err = {0};
        cr_assert_eq(snap_stat(r, top, &i, &err), 0, "%s", err.msg);
        const char *v = getenv("LOOPSNAP_TEST_VARIANT");
        bool erofs = v && strstr(v, "erofs");
        const char *img = priv_keep(priv_path("%s/snapshots/%lld/%s", snap_root_path(r),
                                              (long long)i.id, erofs ? "layer.erofs" : "fs.img"));
        snap_info_done(&i);
        struct mount_spec *spec = NULL;
        cr_assert_eq(mount_spec_new(&spec), 0);
        priv_defer(spec_free, spec);
        const char *o[] = {"ro", "loop", NULL};
        cr_assert_eq(mount_spec_add(spec, erofs ? "erofs" : "ext4", img, NULL, o, &err), 0, "%s",
                     err.msg);
        const char *t = fresh_dir("img");
        cr_assert_eq(mount_engine_apply(priv_engine(), spec, t, NULL, NULL, &err), 0, "%s",
                     err.msg);
        /* home/u: not in layer 2's tar, made with the mode and owner it has
         * in layer 1 (0700 1000:1001), not 0755 root. */
        expect_tree(priv_path("%s/upper", t), "gone c0000 0:0 0:0\n"
                                              "home d0755 0:0\n"
                                              "home/u d0700 1000:1001\n"
                                              "home/u/added f0644 1000:1001 'added' t1\n"
                                              "home/u/f f0600 1000:1001 'data2' t1\n"
                                              "old d0700 0:0 t1 x:trusted.overlay.opaque=y\n"
                                              "old/y f0644 0:0 'y' t1\n"
                                              "opq d0711 0:0 t1 x:trusted.overlay.opaque=y\n"
                                              "opq/new f0644 0:0 'new' t1\n");
        unmount_ok(t);
}

/* Each hostile layer, as the one layer of an image on top of a committed
 * base: refused naming the entry, nothing committed, nothing left over. */
static void hostile_imports(enum snap_layout layout)
{
        struct snap_root *r = open_root(layout);
        struct layer base = {
                .path = write_tar("base.tar", base_layer, UTIL_ARRAY_SIZE(base_layer), TIME0)};
        const char *base_top = import_ok(r, layout_of("base", &base, 1), NULL);
        const char *s = sentinel_make(priv_tmpdir());

        for (size_t i = 0; i < UTIL_ARRAY_SIZE(corpus); i++) {
                const struct hostile *h = &corpus[i];
                struct layer l[2] = {base, {.path = h->build()}};
                /* Its diff id as the config would honestly state it. */
                const char *oci = layout_of(priv_path("oci%zu", i), l, 2);
                char *top = (char *)"untouched";
                struct util_err err = {0};
                int rc = snap_import_oci(r, oci, NULL, NULL, NULL, &top, &err);
                expect_refused(h, rc, &err);
                cr_expect_str_eq(top, "untouched", "%s: output left alone", h->what);
                cr_expect(strstr(err.msg, "layer 1 (sha256:"), "%s: names the layer: %s", h->what,
                          err.msg);
                cr_expect_eq(count(r, NULL), 1, "%s: nothing new (only the base)", h->what);
                expect_clean(r, h->what);
                expect_sentinel(h->what, s);
                (void)unlink(l[1].path);
        }
        /* The base is intact and still usable. */
        const char *t = mount_child(r, "after", base_top);
        expect_tree(t, base_tree);
        unmount_ok(t);
}

Test(apply, hostile_corpus_overlay_layout)
{
        hostile_imports(SNAP_LAYOUT_OVERLAY);
}

Test(apply, hostile_corpus_block_layout)
{
        hostile_imports(SNAP_LAYOUT_BLOCK);
}

/* ---- a crash while the jail is mounted ---- */

Test(apply, crash_while_mounted_then_cleanup)
{
        struct snap_root *r = open_root(SNAP_LAYOUT_OVERLAY);
        struct layer l[3];
        three_layers(l);
        const char *base = import_ok(r, layout_of("oci", l, 1), NULL);
        struct util_err err = {0};
        cr_assert_eq(snap_prepare(r, "k", base, NULL, 0, NULL, &err), 0, "%s", err.msg);

        /* The child dies at the fault point with the image (and the parent
         * layers) mounted in tmp/: no cleanup of its own, like a kill -9. */
        /* The crashing apply runs as a fresh process (snapctl, through the
         * plugin ABI): a child forked from the Criterion worker inherits its
         * threads' state and signal handlers, which made this case crash in
         * sanitizer builds under load. */
        const char *root_path = priv_keep(priv_path("%s", snap_root_path(r)));
        char *const argv[] = {(char *)LOOPSNAP_SNAPCTL,
                              (char *)"--root",
                              (char *)root_path,
                              (char *)"apply",
                              (char *)"k",
                              (char *)l[1].path,
                              NULL};
        /* posix_spawn, not fork: no atfork handlers (Criterion's) run and
         * nothing but exec happens in the child. */
        extern char **environ;
        size_t n_env = 0;
        while (environ[n_env])
                n_env++;
        char **envp = calloc(n_env + 2, sizeof(*envp));
        cr_assert_not_null(envp);
        memcpy(envp, environ, n_env * sizeof(*envp));
        envp[n_env] = (char *)"LOOPSNAP_FAULT=apply-while-mounted";
        posix_spawn_file_actions_t fa;
        cr_assert_eq(posix_spawn_file_actions_init(&fa), 0);
        cr_assert_eq(posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0),
                     0);
        (void)fflush(NULL);
        pid_t pid = -1;
        int sr = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        free(envp);
        cr_assert_eq(sr, 0, "spawn %s: %s", argv[0], strerror(sr));
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == UTIL_FAULT_EXIT,
                  "the child stopped at the fault point (status 0x%x)", status);
        const char *tmp = priv_path("%s/tmp", snap_root_path(r));
        struct dirent **names;
        int n = scandir(tmp, &names, NULL, alphasort);
        cr_assert_eq(n, 3, "one jail left in tmp/ (%d entries)", n);
        const char *jail = keepf("%s/%s", tmp, names[2]->d_name);
        for (int i = 0; i < n; i++)
                free(names[i]);
        free(names);
        cr_assert_eq(mount_is_mountpoint(priv_path("%s/layer", jail), NULL), 1);
        cr_assert_eq(mount_is_mountpoint(priv_path("%s/lower", jail), NULL), 1);
        cr_assert_gt(priv_devices_tagged(snap_root_tag_owner(r)), 0);

        int removed = snap_cleanup(r, &err);
        cr_assert_eq(removed, 1, "cleanup removed %d (%s)", removed, err.msg);
        expect_clean(r, "cleanup after a crash");
        /* The snapshot is still there and can be applied and committed. */
        cr_assert_eq(snap_apply(r, "k", l[1].path, NULL, NULL, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_commit(r, "done", "k", NULL, 0, &err), 0, "%s", err.msg);
}

/* ---- digests ---- */

static void import_fails(struct snap_root *r, const char *layout, int errnum, const char *needle)
{
        struct util_err err = {0};
        char *top = NULL;
        int rc = snap_import_oci(r, layout, NULL, NULL, NULL, &top, &err);
        cr_assert_eq(rc, -errnum, "import %s: %d (%s), want -%s", layout, rc,
                     rc ? err.msg : "success", strerrorname_np(errnum));
        cr_assert_null(top);
        cr_expect(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
        const char *prefix = keepf("import '%s': ", layout);
        cr_expect(strncmp(err.msg, prefix, strlen(prefix)) == 0, "'%s' names the layout", err.msg);
        expect_clean(r, needle);
}

static void flip_byte(const char *path, off_t off)
{
        int fd = open(path, O_RDWR | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        unsigned char c;
        cr_assert_eq(pread(fd, &c, 1, off), 1);
        c ^= 0x01;
        cr_assert_eq(pwrite(fd, &c, 1, off), 1);
        close(fd);
}

static const char *blob_file(const char *layout, const char *path_of_source)
{
        return priv_keep(priv_path("%s/blobs/sha256/%s", layout, file_digest(path_of_source) + 7));
}

Test(apply, corrupt_layer_blob_refused)
{
        struct snap_root *r = open_root(SNAP_LAYOUT_OVERLAY);
        struct layer l[3];
        three_layers(l);
        const char *oci = layout_of("oci", l, 3);
        /* Layer 1 (gzip): one byte in the middle of the stored file. */
        const char *blob = blob_file(oci, l[1].path);
        struct stat st;
        cr_assert_eq(stat(blob, &st), 0);
        flip_byte(blob, st.st_size / 2);
        struct util_err err = {0};
        int rc = snap_import_oci(r, oci, NULL, NULL, NULL, NULL, &err);
        cr_assert_lt(rc, 0, "a corrupt blob was imported");
        cr_expect(strstr(err.msg, "layer 1 (sha256:"), "names the layer: %s", err.msg);
        /* The flipped byte breaks the gzip stream or (if the CRC is not
         * reached first) the digest: refused either way, nothing of layer
         * 1 or 2 committed; layer 0 is correct and stays. */
        cr_expect_eq(count(r, NULL), 1, "only layer 0: %s", err.msg);
        expect_clean(r, "corrupt blob");
}

Test(apply, altered_blob_same_stream_refused)
{
        /* An uncompressed layer blob with one byte of file content changed:
         * a valid tar, so only the digest can tell. */
        struct snap_root *r = open_root(SNAP_LAYOUT_BLOCK);
        struct ent e[] = {{"file", 'f', 0644, 0, 0, "AAAAAAAAAA"}};
        struct layer l = {.path = write_tar("one.tar", e, 1, TIME0)};
        const char *oci = layout_of("oci", &l, 1);
        const char *blob = blob_file(oci, l.path);
        size_t len;
        char *b = slurp(blob, &len);
        char *p = memmem(b, len, "AAAAAAAAAA", 10);
        cr_assert_not_null(p);
        flip_byte(blob, p - b);
        import_fails(r, oci, EINVAL, "it was altered");
        cr_expect_eq(count(r, NULL), 0, "nothing committed");
}

Test(apply, diff_id_mismatch_refused)
{
        struct snap_root *r = open_root(SNAP_LAYOUT_OVERLAY);
        struct layer l[3];
        three_layers(l);
        /* The config names another uncompressed digest for layer 0. */
        l[0].diff_id = "sha256:"
                       "0000000000000000000000000000000000000000000000000000000000000000";
        const char *oci = layout_of("oci", l, 3);
        import_fails(r, oci, EINVAL, "is not rootfs.diff_ids[0] sha256:0000");
        cr_expect_eq(count(r, NULL), 0, "nothing committed");
}

Test(apply, corrupt_config_and_manifest_refused_before_any_snapshot)
{
        struct snap_root *r = open_root(SNAP_LAYOUT_OVERLAY);
        struct layer l[3];
        three_layers(l);
        const char *oci = layout_of("oci", l, 3);
        /* The manifest blob: find it through index.json. */
        char *idx = slurp(priv_path("%s/index.json", oci), NULL);
        char *d = strstr(idx, "\"digest\":\"sha256:");
        cr_assert_not_null(d);
        char hex[65];
        memcpy(hex, d + 17, 64);
        hex[64] = '\0';
        const char *manifest = priv_keep(priv_path("%s/blobs/sha256/%s", oci, hex));
        flip_byte(manifest, 3);
        import_fails(r, oci, EINVAL, "manifest: blob sha256:");
        cr_expect_eq(count(r, NULL), 0, "nothing made");
        flip_byte(manifest, 3); /* back */

        /* A layer blob of the wrong size is refused before anything runs. */
        const char *blob = blob_file(oci, l[2].path);
        int fd = open(blob, O_WRONLY | O_APPEND | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "x", 1), 1);
        close(fd);
        import_fails(r, oci, EINVAL, "layer 2: blob sha256:");
        cr_expect_eq(count(r, NULL), 0, "nothing made");
}

/* ---- selecting a manifest ---- */

Test(apply, ref_platform_and_nested_index)
{
        struct snap_root *r = open_root(SNAP_LAYOUT_OVERLAY);
        struct ent ea[] = {{"which", 'f', 0644, 0, 0, "a"}};
        struct ent eb[] = {{"which", 'f', 0644, 0, 0, "b"}};
        struct ent ec[] = {{"which", 'f', 0644, 0, 0, "arm"}};
        struct layer la = {.path = write_tar("a.tar", ea, 1, TIME0)};
        struct layer lb = {.path = write_tar("b.tar", eb, 1, TIME0)};
        struct layer lc = {.path = write_tar("c.tar", ec, 1, TIME0)};
        const char *oci = new_layout("oci");

        /* Two named manifests, plus a nested index (amd64 + arm64) named "multi". */
        const char *da =
                put_image(oci, &la, 1, "amd64", "{\"org.opencontainers.image.ref.name\":\"a\"}");
        const char *db =
                put_image(oci, &lb, 1, "amd64", "{\"org.opencontainers.image.ref.name\":\"b\"}");
        const char *dc = put_image(oci, &lc, 1, "arm64", NULL);
        const char *inner = keepf(
                "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                "\"manifests\":[%s,%s]}",
                dc, put_image(oci, &lb, 1, "amd64", NULL));
        struct blob ib = put_json(oci, inner);
        const char *dmulti = keepf("{\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                                   "\"digest\":\"%s\",\"size\":%llu,\"annotations\":{"
                                   "\"org.opencontainers.image.ref.name\":\"multi\"}}",
                                   ib.digest, (unsigned long long)ib.size);
        const char *all[] = {da, db, dmulti};
        put_index(oci, all, 3);

        const char *ta = import_ok(r, oci, "a");
        const char *tb = import_ok(r, oci, "b");
        cr_expect_str_eq(ta, file_digest(la.path), "one layer: the chain id is the diff id");
        cr_expect_str_eq(tb, file_digest(lb.path));
        /* "multi": the nested index's linux/amd64 manifest (= b's layer). */
        cr_expect_str_eq(import_ok(r, oci, "multi"), tb);

        struct util_err err = {0};
        cr_expect_eq(snap_import_oci(r, oci, "nope", NULL, NULL, NULL, &err), -ENOENT, "%s",
                     err.msg);
        cr_expect(strstr(err.msg, "no manifest is named 'nope'"), "%s", err.msg);
        util_err_clear(&err);
        /* No ref, three candidates, two for linux/amd64: ambiguous. */
        cr_expect_eq(snap_import_oci(r, oci, NULL, NULL, NULL, NULL, &err), -EINVAL, "%s", err.msg);
        cr_expect(strstr(err.msg, "cannot choose one"), "%s", err.msg);

        /* Only the arm64 one and an amd64 one, unnamed: the host's is taken. */
        const char *oci2 = new_layout("oci2");
        const char *two[] = {put_image(oci2, &lc, 1, "arm64", NULL),
                             put_image(oci2, &la, 1, "amd64", NULL)};
        put_index(oci2, two, 2);
        cr_expect_str_eq(import_ok(r, oci2, NULL), ta);
        cr_expect_eq(count(r, NULL), 2, "a and b");
        expect_clean(r, "refs");
}

Test(apply, unsupported_media_types_and_bad_layouts)
{
        struct snap_root *r = open_root(SNAP_LAYOUT_OVERLAY);
        struct ent e[] = {{"f", 'f', 0644, 0, 0, "x"}};
        struct layer l = {.path = write_tar("x.tar", e, 1, TIME0),
                          .media_type = "application/vnd.oci.image.layer.v1.tar+bzip2"};
        import_fails(r, layout_of("oci", &l, 1), EOPNOTSUPP,
                     "manifest: layers[0]: media type "
                     "'application/vnd.oci.image.layer.v1.tar+bzip2' is not supported");

        /* Docker's media type is fine. */
        l.media_type = "application/vnd.docker.image.rootfs.diff.tar";
        cr_expect_str_eq(import_ok(r, layout_of("oci2", &l, 1), NULL), file_digest(l.path));

        /* No oci-layout file. */
        const char *empty = new_layout("empty");
        import_fails(r, empty, ENOENT, "oci-layout");

        /* A blob that is a symlink out of the layout. */
        const char *oci3 = layout_of("oci3", &l, 1);
        const char *blob = blob_file(oci3, l.path);
        cr_assert_eq(unlink(blob), 0);
        cr_assert_eq(symlink("/etc/passwd", blob), 0);
        import_fails(r, oci3, EXDEV, "layer 0: open '");
        cr_expect_eq(count(r, NULL), 1);
}

/* ---- snap_apply's preconditions ---- */

Test(apply, apply_preconditions)
{
        struct snap_root *r = open_root(SNAP_LAYOUT_OVERLAY);
        struct ent e[] = {{"f", 'f', 0644, 0, 0, "x"}};
        const char *tar = write_tar("x.tar", e, 1, TIME0);
        struct util_err err = {0};

        cr_assert_eq(snap_prepare(r, "a", NULL, NULL, 0, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_apply(r, "a", tar, NULL, NULL, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(snap_commit(r, "c", "a", NULL, 0, &err), 0, "%s", err.msg);

        struct snap_apply_result untouched = {.entries = 4242};
        cr_expect_eq(snap_apply(r, "c", tar, NULL, NULL, &untouched, &err), -EBUSY);
        cr_expect(strstr(err.msg, "'c' is committed"), "%s", err.msg);
        cr_expect_eq(untouched.entries, 4242, "the result is left alone on failure");
        util_err_clear(&err);
        /* err may be NULL. */
        cr_expect_eq(snap_apply(r, "c", tar, NULL, NULL, NULL, NULL), -EBUSY);
        int irc = snap_import_oci(r, priv_tmpdir(), NULL, NULL, NULL, NULL, NULL);
        cr_expect_eq(irc, -ENOENT, "import without a layout: %d", irc);
        cr_expect_eq(snap_apply(r, "missing", tar, NULL, NULL, NULL, &err), -ENOENT);
        util_err_clear(&err);
        cr_assert_eq(snap_view(r, "v", "c", NULL, 0, NULL, &err), 0, "%s", err.msg);
        cr_expect_eq(snap_apply(r, "v", tar, NULL, NULL, NULL, &err), -EBUSY);
        cr_expect(strstr(err.msg, "'v' is a view"), "%s", err.msg);
        util_err_clear(&err);

        struct snap_label lb[] = {{(char *)SNAP_LABEL_UIDMAPPING, (char *)"0:100000:65536"}};
        cr_assert_eq(snap_prepare(r, "mapped", "c", lb, 1, NULL, &err), 0, "%s", err.msg);
        cr_expect_eq(snap_apply(r, "mapped", tar, NULL, NULL, NULL, &err), -EOPNOTSUPP);
        util_err_clear(&err);

        /* Mounted: refused naming the device. */
        const char *t = mount_child(r, "busy", "c");
        cr_expect_eq(snap_apply(r, "busy", tar, NULL, NULL, NULL, &err), -EBUSY);
        cr_expect(strstr(err.msg, "still attached to /dev/loop") || strstr(err.msg, t), "%s",
                  err.msg);
        unmount_ok(t);
        util_err_clear(&err);

        /* A FIFO where the tarball should be does not hang. */
        const char *fifo = priv_keep(priv_path("%s/fifo", priv_tmpdir()));
        cr_assert_eq(mkfifo(fifo, 0600), 0);
        cr_expect_eq(snap_apply(r, "busy", fifo, NULL, NULL, NULL, &err), -EINVAL);
        cr_expect(strstr(err.msg, "is not a regular file"), "%s", err.msg);
        util_err_clear(&err);

        /* Unmounted again: applied on top of its parent's file. */
        struct ent e2[] = {{"g", 'f', 0600, 7, 8, "y"}};
        const char *tar2 = write_tar("y.tar", e2, 1, TIME0 + 1);
        cr_assert_eq(snap_apply(r, "busy", tar2, NULL, NULL, NULL, &err), 0, "%s", err.msg);
        t = mount_key(r, "busy");
        expect_tree(t, "f f0644 0:0 'x' t0\n"
                       "g f0600 7:8 'y' t1\n");
        unmount_ok(t);
        expect_clean(r, "preconditions");
}
