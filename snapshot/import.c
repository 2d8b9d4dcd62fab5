/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Importing an image from an OCI image layout (docs/apply.md): oci-layout,
 * index.json, then content-addressed blobs under blobs/sha256/. Every file
 * is opened beneath the layout directory (openat2 RESOLVE_BENEATH), must be
 * a regular file of the size its descriptor says, and is read with a size
 * limit; JSON goes through util/json.h. Blobs read here (indexes, the
 * manifest, the config) are hashed before they are parsed; layer blobs are
 * hashed by snap_apply's parent side while they stream to the sandbox, and
 * the sandbox hashes the uncompressed tar for the diff id. A layer whose
 * digests do not match is removed, never committed.
 *
 * Layers become committed snapshots named by their chain ids, each on the
 * one below, so a second import of an image (or of one sharing its bottom
 * layers) reuses what is there. Two imports racing for the same layer both
 * apply it; the second commit finds the name taken and keeps the first.
 */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "snapshot/apply-internal.h"
#include "snapshot/snapshot-internal.h"
#include "util/json.h"

#define MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG      "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"
#define ANNOTATION_REF     "org.opencontainers.image.ref.name"

static const char *const layer_types[] = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
};

#define INDEX_MAX     (1u << 20) /* oci-layout, index.json, indexes, manifests */
#define CONFIG_MAX    (8u << 20) /* a config (its history can be long) */
#define NESTING_MAX   4u         /* indexes within indexes */
#define LAYERS_MAX    500u       /* overlayfs stacks at most 500 lowers */
#define MEDIATYPE_MAX 255u

/* The machine's architecture in OCI's (Go's GOARCH) spelling. */
static const char *host_arch(void)
{
#if defined(__x86_64__)
        return "amd64";
#elif defined(__aarch64__)
        return "arm64";
#elif defined(__i386__)
        return "386";
#elif defined(__arm__)
        return "arm";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return "ppc64le";
#elif defined(__s390x__)
        return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
        return "riscv64";
#else
        return "unknown";
#endif
}

struct desc {
        char media_type[MEDIATYPE_MAX + 1];
        char digest[SNAP_DIGEST_MAX];
        uint64_t size;
        yajl_val annotations; /* into the parsed document; may be NULL */
        yajl_val platform;    /* likewise */
};

struct ctx {
        struct snap_root *r;
        const char *layout; /* the directory, for messages */
        int dfd;
        snap_progress_fn progress;
        void *progress_data;
        uint64_t done, total; /* bytes of layer blobs, for progress */
};

static const char *json_str(yajl_val obj, const char *key)
{
        yajl_val v = util_json_get(obj, key, false);
        return YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

static int desc_parse(yajl_val v, const char *what, struct desc *d, struct util_err *err)
{
        const char *mt, *dg;
        yajl_val size = util_json_get(v, "size", false);
        char field[160];
        int r;

        if (!YAJL_IS_OBJECT(v))
                return util_err_setx(err, EINVAL, "%s: expected an object", what);
        *d = (struct desc){0};
        snprintf(field, sizeof(field), "%s.mediaType", what);
        if ((r = util_json_string(util_json_get(v, "mediaType", false), field, &mt, err)) < 0)
                return r;
        if (strlen(mt) > MEDIATYPE_MAX)
                return util_err_setx(err, EINVAL, "%s: mediaType is longer than %u bytes", what,
                                     MEDIATYPE_MAX);
        strcpy(d->media_type, mt);
        snprintf(field, sizeof(field), "%s.digest", what);
        if ((r = util_json_string(util_json_get(v, "digest", false), field, &dg, err)) < 0)
                return r;
        if ((r = snap_digest_check(dg)) < 0) {
                char pv[UTIL_PREVIEW_SIZE];
                return util_err_setx(err, -r, "%s: digest '%s' is not %s", what,
                                     util_preview(pv, dg, SIZE_MAX),
                                     r == -EOPNOTSUPP ? "sha256 (the only algorithm supported)"
                                                      : "a valid sha256 digest");
        }
        strcpy(d->digest, dg);
        if (!YAJL_IS_INTEGER(size) || YAJL_GET_INTEGER(size) < 0)
                return util_err_setx(err, EINVAL, "%s: size: expected a non-negative integer",
                                     what);
        d->size = (uint64_t)YAJL_GET_INTEGER(size);
        d->annotations = util_json_get(v, "annotations", false);
        d->platform = util_json_get(v, "platform", false);
        return 0;
}

/* Opens `path` beneath the layout directory: a regular file. */
static int layout_open(struct ctx *c, const char *path, int *ret_fd, struct stat *st,
                       struct util_err *err)
{
        struct open_how how = {.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        _cleanup_close_ int fd = (int)syscall(SYS_openat2, c->dfd, path, &how, sizeof(how));

        if (fd < 0)
                return util_err_set(err, errno, "open '%s/%s'", c->layout, path);
        if (fstat(fd, st) < 0)
                return util_err_set(err, errno, "stat '%s/%s'", c->layout, path);
        if (!S_ISREG(st->st_mode))
                return util_err_setx(err, EINVAL, "'%s/%s' is not a regular file", c->layout, path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int read_exact(int fd, char *buf, size_t len)
{
        size_t got = 0;
        while (got < len) {
                ssize_t n = read(fd, buf + got, len - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ENODATA; /* shrank under us */
                got += (size_t)n;
        }
        return 0;
}

/* A small JSON file that is not content-addressed (oci-layout, index.json). */
static int read_json_file(struct ctx *c, const char *path, yajl_val *ret, struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        char what[64];
        int r;

        if ((r = layout_open(c, path, &fd, &st, err)) < 0)
                return r;
        if ((uint64_t)st.st_size > INDEX_MAX)
                return util_err_setx(err, E2BIG, "'%s/%s': %lld bytes, more than the limit of %u",
                                     c->layout, path, (long long)st.st_size, INDEX_MAX);
        if (!(buf = malloc((size_t)st.st_size + 1)))
                return util_err_set(err, ENOMEM, "read '%s/%s'", c->layout, path);
        if ((r = read_exact(fd, buf, (size_t)st.st_size)) < 0)
                return util_err_set(err, r, "read '%s/%s'", c->layout, path);
        snprintf(what, sizeof(what), "%s", path);
        struct util_json_limits lim = {.max_bytes = INDEX_MAX};
        return util_json_parse(buf, (size_t)st.st_size, what, &lim, ret, err);
}

static void blob_path(const struct desc *d, char buf[96])
{
        snprintf(buf, 96, "blobs/sha256/%s", d->digest + 7);
}

/* Opens the blob of `d`: present, regular, of the descriptor's size. */
static int blob_open(struct ctx *c, const struct desc *d, const char *what, int *ret_fd,
                     struct util_err *err)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        char path[96];
        int r;

        blob_path(d, path);
        if ((r = layout_open(c, path, &fd, &st, err)) < 0) {
                util_err_prefix(err, "%s", what);
                return r;
        }
        if ((uint64_t)st.st_size != d->size)
                return util_err_setx(err, EINVAL,
                                     "%s: blob %s has %lld bytes, its descriptor says %llu", what,
                                     d->digest, (long long)st.st_size, (unsigned long long)d->size);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* A JSON blob (index, manifest, config): size-limited, hashed, parsed. */
static int read_json_blob(struct ctx *c, const struct desc *d, size_t max, const char *what,
                          yajl_val *ret, struct util_err *err)
{
        _cleanup_(snap_sha256_freep) struct snap_sha256 *h = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        char got[SNAP_DIGEST_MAX];
        int r;

        if (d->size > max)
                return util_err_setx(err, E2BIG, "%s %s: %llu bytes, more than the limit of %zu",
                                     what, d->digest, (unsigned long long)d->size, max);
        if ((r = blob_open(c, d, what, &fd, err)) < 0)
                return r;
        if (!(buf = malloc((size_t)d->size + 1)))
                return util_err_set(err, ENOMEM, "read %s", what);
        if ((r = read_exact(fd, buf, (size_t)d->size)) < 0)
                return util_err_set(err, r, "read %s %s", what, d->digest);
        if ((r = snap_sha256_new(&h)) < 0)
                return util_err_set(err, r, "sha256");
        snap_sha256_update(h, buf, (size_t)d->size);
        if ((r = snap_sha256_final(h, got)) < 0)
                return util_err_set(err, r, "sha256");
        if (strcmp(got, d->digest) != 0)
                return util_err_setx(err, EINVAL, "%s: blob %s has digest %s: it was altered", what,
                                     d->digest, got);
        struct util_json_limits lim = {.max_bytes = max};
        return util_json_parse(buf, (size_t)d->size, what, &lim, ret, err);
}

static bool is_index(const char *mt)
{
        return !strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST);
}

static bool is_manifest(const char *mt)
{
        return !strcmp(mt, MT_OCI_MANIFEST) || !strcmp(mt, MT_DOCKER_MANIFEST);
}

static bool platform_is_host(yajl_val platform)
{
        const char *os = json_str(platform, "os"), *arch = json_str(platform, "architecture");
        return os && arch && !strcmp(os, "linux") && !strcmp(arch, host_arch());
}

/*
 * Picks one descriptor of the `manifests` array of index `where`: those
 * whose ref.name annotation is `ref` (all when NULL); of several, the one
 * for linux on this architecture.
 */
static int pick(yajl_val index, const char *where, const char *ref, struct desc *ret,
                struct util_err *err)
{
        yajl_val arr = util_json_get(index, "manifests", false);
        struct desc d, found = {0}, host = {0};
        size_t n = 0, n_host = 0;
        char what[128];

        if (!YAJL_IS_ARRAY(arr))
                return util_err_setx(err, EINVAL, "%s: manifests: expected an array", where);
        for (size_t i = 0; i < arr->u.array.len; i++) {
                snprintf(what, sizeof(what), "%s: manifests[%zu]", where, i);
                int r = desc_parse(arr->u.array.values[i], what, &d, err);
                if (r < 0)
                        return r;
                const char *name = json_str(d.annotations, ANNOTATION_REF);
                if (ref && (!name || strcmp(name, ref) != 0))
                        continue;
                if (n++ == 0)
                        found = d;
                if (platform_is_host(d.platform) && n_host++ == 0)
                        host = d;
        }
        if (n == 0 && ref) {
                char pv[UTIL_PREVIEW_SIZE];
                return util_err_setx(err, ENOENT, "%s: no manifest is named '%s'", where,
                                     util_preview(pv, ref, SIZE_MAX));
        }
        if (n == 0)
                return util_err_setx(err, ENOENT, "%s: lists no manifests", where);
        if (n == 1) {
                *ret = found;
                return 0;
        }
        if (n_host == 1) {
                *ret = host;
                return 0;
        }
        if (n_host == 0)
                return util_err_setx(err, ENOENT, "%s: none of its %zu manifests is for linux/%s",
                                     where, n, host_arch());
        return util_err_setx(err, EINVAL, "%s: %zu manifests are for linux/%s%s: cannot choose one",
                             where, n_host, host_arch(), ref ? "" : " (name one with a ref)");
}

static int check_schema_version(yajl_val doc, const char *what, struct util_err *err)
{
        char field[128];
        uint32_t v;
        int r;

        snprintf(field, sizeof(field), "%s: schemaVersion", what);
        if ((r = util_json_u32(util_json_get(doc, "schemaVersion", false), field, &v, err)) < 0)
                return r;
        if (v != 2)
                return util_err_setx(err, EINVAL, "%s: schemaVersion %u is not 2", what, v);
        return 0;
}

/* From index.json down to one image manifest (following nested indexes). */
static int find_manifest(struct ctx *c, const char *ref, struct desc *ret, struct util_err *err)
{
        _cleanup_json_ yajl_val layout = NULL, index = NULL;
        struct desc d;
        const char *ver;
        int r;

        if ((r = read_json_file(c, "oci-layout", &layout, err)) < 0)
                return r;
        if (util_json_string(util_json_get(layout, "imageLayoutVersion", false),
                             "oci-layout: imageLayoutVersion", &ver, err) < 0)
                return -EINVAL;
        if (strncmp(ver, "1.", 2) != 0)
                return util_err_setx(err, EOPNOTSUPP,
                                     "oci-layout: imageLayoutVersion '%.16s' is not 1.x", ver);
        if ((r = read_json_file(c, "index.json", &index, err)) < 0 ||
            (r = check_schema_version(index, "index.json", err)) < 0 ||
            (r = pick(index, "index.json", ref, &d, err)) < 0)
                return r;
        for (unsigned depth = 0; is_index(d.media_type); depth++) {
                _cleanup_json_ yajl_val nested = NULL;
                char where[96];
                if (depth >= NESTING_MAX)
                        return util_err_setx(err, ELOOP, "indexes nested deeper than %u",
                                             NESTING_MAX);
                snprintf(where, sizeof(where), "index %.24s", d.digest);
                if ((r = read_json_blob(c, &d, INDEX_MAX, where, &nested, err)) < 0 ||
                    (r = check_schema_version(nested, where, err)) < 0 ||
                    (r = pick(nested, where, NULL, &d, err)) < 0)
                        return r;
        }
        if (!is_manifest(d.media_type)) {
                char pv[UTIL_PREVIEW_SIZE];
                return util_err_setx(err, EOPNOTSUPP,
                                     "%s: media type '%s' is neither an image manifest nor an "
                                     "index",
                                     d.digest, util_preview(pv, d.media_type, SIZE_MAX));
        }
        *ret = d;
        return 0;
}

struct image {
        struct desc *layers;
        char (*diff_ids)[SNAP_DIGEST_MAX];
        size_t n;
};

static void image_done(struct image *im)
{
        free(im->layers);
        free(im->diff_ids);
        *im = (struct image){0};
}

/* The manifest's layers and the config's diff ids, checked against each
 * other; every layer blob present with its descriptor's size. */
static int read_image(struct ctx *c, const struct desc *md, struct image *im, struct util_err *err)
{
        _cleanup_json_ yajl_val m = NULL, cfg = NULL;
        struct desc cd;
        char what[64];
        int r;

        if ((r = read_json_blob(c, md, INDEX_MAX, "manifest", &m, err)) < 0 ||
            (r = check_schema_version(m, "manifest", err)) < 0)
                return r;
        const char *mt = json_str(m, "mediaType");
        if (mt && strcmp(mt, md->media_type) != 0)
                return util_err_setx(err, EINVAL,
                                     "manifest %s: its mediaType is not the one its descriptor "
                                     "gives",
                                     md->digest);
        if ((r = desc_parse(util_json_get(m, "config", false), "manifest: config", &cd, err)) < 0)
                return r;
        if (strcmp(cd.media_type, MT_OCI_CONFIG) != 0 &&
            strcmp(cd.media_type, MT_DOCKER_CONFIG) != 0)
                return util_err_setx(err, EOPNOTSUPP,
                                     "manifest: config: media type '%.64s' is not an image config",
                                     cd.media_type);
        yajl_val layers = util_json_get(m, "layers", false);
        if (!YAJL_IS_ARRAY(layers))
                return util_err_setx(err, EINVAL, "manifest: layers: expected an array");
        size_t n = layers->u.array.len;
        if (n == 0 || n > LAYERS_MAX)
                return util_err_setx(err, EINVAL, "manifest: %zu layers (expected 1 to %u)", n,
                                     LAYERS_MAX);
        if (!(im->layers = calloc(n, sizeof(*im->layers))) ||
            !(im->diff_ids = calloc(n, sizeof(*im->diff_ids))))
                return util_err_set(err, ENOMEM, "manifest");
        im->n = n;
        for (size_t i = 0; i < n; i++) {
                bool known = false;
                snprintf(what, sizeof(what), "manifest: layers[%zu]", i);
                if ((r = desc_parse(layers->u.array.values[i], what, &im->layers[i], err)) < 0)
                        return r;
                for (size_t k = 0; k < UTIL_ARRAY_SIZE(layer_types); k++)
                        known |= !strcmp(im->layers[i].media_type, layer_types[k]);
                if (!known) {
                        char pv[UTIL_PREVIEW_SIZE];
                        return util_err_setx(err, EOPNOTSUPP,
                                             "%s: media type '%s' is not supported", what,
                                             util_preview(pv, im->layers[i].media_type, SIZE_MAX));
                }
        }

        if ((r = read_json_blob(c, &cd, CONFIG_MAX, "config", &cfg, err)) < 0)
                return r;
        yajl_val rootfs = util_json_get(cfg, "rootfs", false);
        const char *type = json_str(rootfs, "type");
        yajl_val ids = util_json_get(rootfs, "diff_ids", false);
        if (!type || strcmp(type, "layers") != 0)
                return util_err_setx(err, EINVAL, "config %s: rootfs.type is not \"layers\"",
                                     cd.digest);
        if (!YAJL_IS_ARRAY(ids) || ids->u.array.len != n)
                return util_err_setx(err, EINVAL,
                                     "config %s: rootfs.diff_ids does not list %zu digests (one "
                                     "per layer)",
                                     cd.digest, n);
        for (size_t i = 0; i < n; i++) {
                yajl_val v = ids->u.array.values[i];
                const char *id = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
                if (!id || snap_digest_check(id) < 0)
                        return util_err_setx(err, EINVAL,
                                             "config %s: rootfs.diff_ids[%zu] is not a sha256 "
                                             "digest",
                                             cd.digest, i);
                strcpy(im->diff_ids[i], id);
        }
        /* Before anything is made: every layer is there, of the right size. */
        for (size_t i = 0; i < n; i++) {
                _cleanup_close_ int fd = -EBADF;
                snprintf(what, sizeof(what), "layer %zu", i);
                if ((r = blob_open(c, &im->layers[i], what, &fd, err)) < 0)
                        return r;
                c->total += im->layers[i].size;
        }
        return 0;
}

static void layer_progress(uint64_t done, uint64_t total, void *data)
{
        struct ctx *c = data;
        (void)total;
        c->progress(c->done + done, c->total, c->progress_data);
}

/* Whether committed `name` on `parent` ("" = none) is there: 1 yes, 0 no. */
static int layer_present(struct ctx *c, const char *name, const char *parent, struct util_err *err)
{
        struct snap_info i = {0};
        struct util_err e = {0};
        int r = snap_store_get(c->r->store, name, &i, &e);

        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                if (err)
                        *err = e;
                return r;
        }
        if (i.kind != SNAP_KIND_COMMITTED)
                r = util_err_setx(err, EEXIST, "'%s' exists and is not committed", name);
        else if (strcmp(i.parent ? i.parent : "", parent) != 0)
                r = util_err_setx(err, EEXIST, "'%s' exists on parent '%s', not on '%s'", name,
                                  i.parent ? i.parent : "", parent);
        else
                r = 1;
        snap_info_done(&i);
        return r;
}

/* Applies layer `i` as `chain` on `parent` through a temporary key. */
static int import_layer(struct ctx *c, const struct image *im, size_t i, const char *parent,
                        const char *chain, struct util_err *err)
{
        const struct desc *d = &im->layers[i];
        struct snap_label label = {(char *)SNAP_LABEL_REF, (char *)chain};
        struct snap_apply_result res;
        _cleanup_close_ int fd = -EBADF;
        char key[32], what[40], path[96];
        int r;

        snprintf(what, sizeof(what), "layer %zu", i);
        if ((r = blob_open(c, d, what, &fd, err)) < 0)
                return r;
        snprintf(key, sizeof(key), "import-%08x%08x", util_random_u32(), util_random_u32());
        if ((r = snap_prepare(c->r, key, *parent ? parent : NULL, &label, 1, NULL, err)) < 0)
                return r;
        blob_path(d, path);
        _cleanup_free_ char *full = NULL;
        if (asprintf(&full, "%s/%s", c->layout, path) < 0)
                full = NULL;
        r = snap_apply_key_fd(c->r, key, fd, full ? full : path,
                              c->progress ? layer_progress : NULL, c, &res, err);
        if (r >= 0 && (strcmp(res.digest, d->digest) != 0 || res.size != d->size))
                r = util_err_setx(err, EINVAL,
                                  "blob %s read as %llu bytes with digest %s: it was altered",
                                  d->digest, (unsigned long long)res.size, res.digest);
        if (r >= 0 && strcmp(res.diff_id, im->diff_ids[i]) != 0)
                r = util_err_setx(err, EINVAL,
                                  "its uncompressed digest %s is not rootfs.diff_ids[%zu] %s",
                                  res.diff_id, i, im->diff_ids[i]);
        if (r >= 0) {
                util_fault_point("import-before-commit");
                r = snap_commit(c->r, chain, key, &label, 1, err);
                if (r == -EEXIST) {
                        /* Another import committed this layer meanwhile. */
                        struct util_err e2 = {0};
                        if (layer_present(c, chain, parent, &e2) == 1) {
                                util_err_clear(err);
                                r = 0;
                                struct util_err e3 = {0};
                                (void)snap_remove(c->r, key, &e3);
                        }
                }
                if (r >= 0)
                        return 0;
        }
        struct util_err e4 = {0};
        if (snap_remove(c->r, key, &e4) < 0)
                util_debug(UTIL_DBG_SNAP, "import: removing '%s' after a failure: %s", key, e4.msg);
        return r;
}

int snap_import_oci(struct snap_root *r, const char *layout_dir, const char *ref,
                    snap_progress_fn progress, void *progress_data, char **ret_chain_id,
                    struct util_err *err)
{
        struct ctx c = {.r = r,
                        .layout = layout_dir,
                        .dfd = -EBADF,
                        .progress = progress,
                        .progress_data = progress_data};
        struct image im = {0};
        struct desc md;
        char chain[SNAP_DIGEST_MAX] = "", parent[SNAP_DIGEST_MAX] = "";
        struct util_err scratch = {0};
        int rc;

        /* The errno of a failure (EEXIST from a racing import's commit, say)
         * is only exact from calls that have somewhere to write. */
        if (!err)
                err = &scratch;

        c.dfd = open(layout_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (c.dfd < 0) {
                rc = util_err_set(err, errno, "open '%s'", layout_dir);
                goto out;
        }
        if ((rc = find_manifest(&c, ref, &md, err)) < 0 || (rc = read_image(&c, &md, &im, err)) < 0)
                goto out;
        if (progress)
                progress(0, c.total, progress_data);
        for (size_t i = 0; i < im.n; i++) {
                if ((rc = snap_chain_id(parent, im.diff_ids[i], chain)) < 0) {
                        rc = util_err_set(err, rc, "chain id of layer %zu", i);
                        goto out;
                }
                rc = layer_present(&c, chain, parent, err);
                if (rc == 0)
                        rc = import_layer(&c, &im, i, parent, chain, err);
                if (rc < 0) {
                        util_err_prefix(err, "layer %zu (%s)", i, im.layers[i].digest);
                        goto out;
                }
                c.done += im.layers[i].size;
                if (progress)
                        progress(c.done, c.total, progress_data);
                memcpy(parent, chain, sizeof(parent));
        }
        if (ret_chain_id && !(*ret_chain_id = strdup(chain))) {
                rc = util_err_set(err, ENOMEM, "import");
                goto out;
        }
        rc = 0;
out:
        image_done(&im);
        util_closep(&c.dfd);
        if (rc < 0)
                util_err_prefix(err, "import '%s'", layout_dir);
        return rc < 0 ? rc : 0;
}
