/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The soak's content model (docs/soak.md): what a snapshot's tree must hold,
 * as a sorted list of entries whose file contents are seeded segments, so
 * that the controller knows the expected hash of every committed layer
 * without keeping any of its bytes. A write plan is generated against the
 * model, applied to the model and (by a worker) to the mounted snapshot;
 * both are then hashed the same canonical way (soak_dir_hash).
 *
 * Names come from small fixed sets (directories d0-d3 with e0-e1 below
 * them, files f0-f7, symlinks l0-l3), so plans keep hitting what the parent
 * layers hold: overwrites and appends copy files up, unlinks and removed
 * directories become whiteouts, a directory made again where a lower one
 * was removed becomes opaque.
 */
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "test/soak/soak.h"

UTIL_DEFINE_FREE_FUNC(EVP_MD_CTX, EVP_MD_CTX_free)
UTIL_DEFINE_FREE_FUNC(DIR, closedir)

/* ---- random numbers ---- */

static uint64_t splitmix64(uint64_t *x)
{
        uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
        z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
        return z ^ (z >> 31);
}

uint64_t soak_rand(struct soak_rng *r)
{
        return splitmix64(&r->s);
}

uint32_t soak_below(struct soak_rng *r, uint32_t n)
{
        return n ? (uint32_t)(soak_rand(r) % n) : 0;
}

bool soak_chance(struct soak_rng *r, unsigned pct)
{
        return soak_below(r, 100) < pct;
}

/* Random access: byte i of content `seed` is byte i%8 of a hash of
 * (seed, i/8), so an append or a read at any offset needs no state. */
void soak_content(uint64_t seed, uint64_t off, void *buf, size_t len)
{
        unsigned char *p = buf;

        while (len > 0) {
                uint64_t x = seed ^ ((off / 8) * UINT64_C(0xD1B54A32D192ED03));
                uint64_t v = splitmix64(&x);
                size_t in = off % 8, n = 8 - in < len ? 8 - in : len;
                for (size_t k = 0; k < n; k++)
                        p[k] = (unsigned char)(v >> (8 * (in + k)));
                p += n;
                off += n;
                len -= n;
        }
}

/* ---- sha256 ---- */

static void hex(const unsigned char *md, unsigned n, char ret[SOAK_HASH_MAX])
{
        static const char digits[] = "0123456789abcdef";
        for (unsigned k = 0; k < n && k < 32; k++) {
                ret[2 * k] = digits[md[k] >> 4];
                ret[2 * k + 1] = digits[md[k] & 15];
        }
        ret[2 * (n < 32 ? n : 32)] = '\0';
}

static int sha_final(EVP_MD_CTX *ctx, char ret[SOAK_HASH_MAX])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        if (EVP_DigestFinal_ex(ctx, md, &n) != 1)
                return -EIO;
        hex(md, n, ret);
        return 0;
}

static EVP_MD_CTX *sha_new(void)
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(ctx);
                return NULL;
        }
        return ctx;
}

/* ---- the canonical tree hash: records sorted by path ---- */

struct rec {
        char path[SOAK_PATH_MAX * 4];
        char type;
        unsigned mode;
        char payload[SOAK_PATH_MAX * 4];
};

struct recs {
        struct rec *v;
        size_t n, cap;
};

static struct rec *recs_add(struct recs *rs)
{
        if (rs->n == rs->cap) {
                size_t cap = rs->cap ? 2 * rs->cap : 64;
                void *p = realloc(rs->v, cap * sizeof(*rs->v));
                if (!p)
                        return NULL;
                rs->v = p;
                rs->cap = cap;
        }
        struct rec *r = &rs->v[rs->n++];
        memset(r, 0, sizeof(*r));
        return r;
}

static int rec_cmp(const void *a, const void *b)
{
        return strcmp(((const struct rec *)a)->path, ((const struct rec *)b)->path);
}

static int recs_hash(struct recs *rs, char ret[SOAK_HASH_MAX])
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = sha_new();
        if (!ctx)
                return -ENOMEM;
        if (rs->n) /* an empty tree has no array (qsort wants one) */
                qsort(rs->v, rs->n, sizeof(*rs->v), rec_cmp);
        for (size_t k = 0; k < rs->n; k++) {
                const struct rec *r = &rs->v[k];
                char head[8];
                snprintf(head, sizeof(head), "%c%04o", r->type, r->mode & 07777);
                if (EVP_DigestUpdate(ctx, r->path, strlen(r->path) + 1) != 1 ||
                    EVP_DigestUpdate(ctx, head, strlen(head) + 1) != 1 ||
                    EVP_DigestUpdate(ctx, r->payload, strlen(r->payload)) != 1 ||
                    EVP_DigestUpdate(ctx, "\n", 1) != 1)
                        return -EIO;
        }
        return sha_final(ctx, ret);
}

/* ---- trees ---- */

static void entry_done(struct soak_entry *e)
{
        free(e->segs);
        e->segs = NULL;
        e->n_segs = 0;
}

void soak_tree_done(struct soak_tree *t)
{
        for (size_t k = 0; k < t->n; k++)
                entry_done(&t->e[k]);
        free(t->e);
        t->e = NULL;
        t->n = 0;
}

static int entry_copy(const struct soak_entry *from, struct soak_entry *to)
{
        *to = *from;
        to->segs = NULL;
        if (from->n_segs) {
                to->segs = malloc(from->n_segs * sizeof(*to->segs));
                if (!to->segs)
                        return -ENOMEM;
                memcpy(to->segs, from->segs, from->n_segs * sizeof(*to->segs));
        }
        return 0;
}

int soak_tree_copy(const struct soak_tree *t, struct soak_tree *ret)
{
        struct soak_tree c = {0};
        if (t->n) {
                c.e = calloc(t->n, sizeof(*c.e));
                if (!c.e)
                        return -ENOMEM;
        }
        for (size_t k = 0; k < t->n; k++) {
                if (entry_copy(&t->e[k], &c.e[k]) < 0) {
                        c.n = k;
                        soak_tree_done(&c);
                        return -ENOMEM;
                }
        }
        c.n = t->n;
        *ret = c;
        return 0;
}

uint64_t soak_tree_bytes(const struct soak_tree *t)
{
        uint64_t n = 0;
        for (size_t k = 0; k < t->n; k++)
                for (size_t j = 0; j < t->e[k].n_segs; j++)
                        n += t->e[k].segs[j].len;
        return n;
}

static ssize_t tree_find(const struct soak_tree *t, const char *path)
{
        for (size_t k = 0; k < t->n; k++)
                if (strcmp(t->e[k].path, path) == 0)
                        return (ssize_t)k;
        return -1;
}

/* Inserts `e` (taking its segments) in path order. */
static int tree_insert(struct soak_tree *t, const struct soak_entry *e)
{
        void *p = realloc(t->e, (t->n + 1) * sizeof(*t->e));
        if (!p)
                return -ENOMEM;
        t->e = p;
        size_t k = 0;
        while (k < t->n && strcmp(t->e[k].path, e->path) < 0)
                k++;
        memmove(&t->e[k + 1], &t->e[k], (t->n - k) * sizeof(*t->e));
        t->e[k] = *e;
        t->n++;
        return 0;
}

static void tree_remove_at(struct soak_tree *t, size_t k)
{
        entry_done(&t->e[k]);
        memmove(&t->e[k], &t->e[k + 1], (t->n - k - 1) * sizeof(*t->e));
        t->n--;
}

/* Missing parent directories of `path`, as mkdir -p makes them (0755). */
static int tree_parents(struct soak_tree *t, const char *path)
{
        char p[SOAK_PATH_MAX];
        for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
                snprintf(p, sizeof(p), "%.*s", (int)(s - path), path);
                ssize_t k = tree_find(t, p);
                if (k >= 0) {
                        /* k < t->n: t->e is set (the analyzer stops short of
                         * tree_find). NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
                        if (t->e[k].type != 'd')
                                return -EINVAL;
                        continue;
                }
                struct soak_entry d = {.type = 'd', .mode = 0755};
                snprintf(d.path, sizeof(d.path), "%s", p);
                if (tree_insert(t, &d) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int soak_tree_apply(struct soak_tree *t, const struct soak_action *a)
{
        ssize_t k = tree_find(t, a->path);
        struct soak_entry *e = k >= 0 ? &t->e[k] : NULL;

        switch (a->op) {
        case 'w': {
                if (e && e->type != 'f')
                        return -EINVAL;
                struct soak_seg *seg = malloc(sizeof(*seg));
                if (!seg)
                        return -ENOMEM;
                *seg = (struct soak_seg){.seed = a->seed, .len = a->len};
                if (e) {
                        entry_done(e);
                        e->segs = seg;
                        e->n_segs = 1;
                        e->mode = a->mode;
                        e->digest[0] = '\0';
                        return 0;
                }
                int r = tree_parents(t, a->path);
                struct soak_entry f = {.type = 'f', .mode = a->mode, .segs = seg, .n_segs = 1};
                snprintf(f.path, sizeof(f.path), "%s", a->path);
                if (r < 0 || (r = tree_insert(t, &f)) < 0)
                        free(seg);
                return r;
        }
        case 'a': {
                if (!e || e->type != 'f')
                        return -EINVAL;
                void *p = realloc(e->segs, (e->n_segs + 1) * sizeof(*e->segs));
                if (!p)
                        return -ENOMEM;
                e->segs = p;
                e->segs[e->n_segs++] = (struct soak_seg){.seed = a->seed, .len = a->len};
                e->digest[0] = '\0';
                return 0;
        }
        case 'c':
                if (!e || e->type == 'l')
                        return -EINVAL;
                e->mode = a->mode;
                return 0;
        case 's': {
                if (e)
                        return -EINVAL;
                int r = tree_parents(t, a->path);
                struct soak_entry l = {.type = 'l', .mode = 0777};
                snprintf(l.path, sizeof(l.path), "%s", a->path);
                snprintf(l.target, sizeof(l.target), "%s", a->to);
                return r < 0 ? r : tree_insert(t, &l);
        }
        case 'x':
                if (!e || e->type == 'd')
                        return -EINVAL;
                tree_remove_at(t, (size_t)k);
                return 0;
        case 'r': {
                if (!e || e->type != 'd')
                        return -EINVAL;
                size_t len = strlen(a->path);
                for (size_t j = t->n; j > 0; j--) {
                        const char *p = t->e[j - 1].path;
                        if (strcmp(p, a->path) == 0 ||
                            (strncmp(p, a->path, len) == 0 && p[len] == '/'))
                                tree_remove_at(t, j - 1);
                }
                return 0;
        }
        case 'm': {
                if (e)
                        return -EINVAL;
                int r = tree_parents(t, a->path);
                struct soak_entry d = {.type = 'd', .mode = a->mode};
                snprintf(d.path, sizeof(d.path), "%s", a->path);
                return r < 0 ? r : tree_insert(t, &d);
        }
        case 'n': {
                if (!e || e->type != 'f' || tree_find(t, a->to) >= 0)
                        return -EINVAL;
                struct soak_entry moved = *e;
                /* Take the entry out without freeing its segments. */
                memmove(&t->e[k], &t->e[k + 1], (t->n - (size_t)k - 1) * sizeof(*t->e));
                t->n--;
                snprintf(moved.path, sizeof(moved.path), "%s", a->to);
                int r = tree_parents(t, a->to);
                if (r >= 0)
                        r = tree_insert(t, &moved);
                if (r < 0)
                        entry_done(&moved);
                return r;
        }
        }
        return -EINVAL;
}

/* sha256 of a model file's content, "size:hex" in `ret`. */
static int model_file_digest(struct soak_entry *e)
{
        if (e->digest[0])
                return 0;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = sha_new();
        _cleanup_free_ unsigned char *buf = malloc(65536);
        if (!ctx || !buf)
                return -ENOMEM;
        for (size_t s = 0; s < e->n_segs; s++) {
                for (uint64_t off = 0; off < e->segs[s].len;) {
                        size_t n = e->segs[s].len - off < 65536 ? e->segs[s].len - off : 65536;
                        soak_content(e->segs[s].seed, off, buf, n);
                        if (EVP_DigestUpdate(ctx, buf, n) != 1)
                                return -EIO;
                        off += n;
                }
        }
        return sha_final(ctx, e->digest);
}

int soak_tree_hash(struct soak_tree *t, char ret[SOAK_HASH_MAX])
{
        struct recs rs = {0};
        int r = 0;

        for (size_t k = 0; r >= 0 && k < t->n; k++) {
                struct soak_entry *e = &t->e[k];
                struct rec *c = recs_add(&rs);
                if (!c) {
                        r = -ENOMEM;
                        break;
                }
                snprintf(c->path, sizeof(c->path), "%s", e->path);
                c->type = e->type;
                c->mode = e->type == 'l' ? 0777 : e->mode;
                if (e->type == 'f') {
                        uint64_t size = 0;
                        for (size_t s = 0; s < e->n_segs; s++)
                                size += e->segs[s].len;
                        r = model_file_digest(e);
                        snprintf(c->payload, sizeof(c->payload), "%llu:%s",
                                 (unsigned long long)size, e->digest);
                } else if (e->type == 'l') {
                        snprintf(c->payload, sizeof(c->payload), "%s", e->target);
                }
        }
        if (r >= 0)
                r = recs_hash(&rs, ret);
        free(rs.v);
        return r;
}

/* ---- the same hash of a directory on disk ---- */

static int file_digest(int dfd, const char *name, const char *rel, char *payload, size_t size,
                       struct util_err *err)
{
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = sha_new();
        _cleanup_free_ unsigned char *buf = malloc(65536);
        uint64_t total = 0;
        char md[SOAK_HASH_MAX];

        if (fd < 0)
                return util_err_set(err, errno, "open '%s'", rel);
        if (!ctx || !buf)
                return util_err_set(err, ENOMEM, "hash '%s'", rel);
        for (;;) {
                ssize_t n = read(fd, buf, 65536);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return util_err_set(err, errno, "read '%s'", rel);
                if (n == 0)
                        break;
                if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
                        return util_err_set(err, EIO, "hash '%s'", rel);
                total += (uint64_t)n;
        }
        if (sha_final(ctx, md) < 0)
                return util_err_set(err, EIO, "hash '%s'", rel);
        snprintf(payload, size, "%llu:%s", (unsigned long long)total, md);
        return 0;
}

/* Entries below the directory `dfd` (shown as `prefix`), recursively; does
 * not cross into other mounts (st_dev). */
static int walk(int dfd, const char *prefix, dev_t dev, struct recs *rs, struct util_err *err)
{
        int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0)
                return util_err_set(err, errno, "dup");
        _cleanup_(closedirp) DIR *d = fdopendir(dup_fd);
        struct dirent *de;

        if (!d) {
                close(dup_fd);
                return util_err_set(err, errno, "open directory '%s'", *prefix ? prefix : ".");
        }
        while ((errno = 0, de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                struct rec *c = recs_add(rs);
                if (!c)
                        return util_err_set(err, ENOMEM, "hash");
                int len = snprintf(c->path, sizeof(c->path), "%s%s%s", prefix, *prefix ? "/" : "",
                                   de->d_name);
                if (len < 0 || (size_t)len >= sizeof(c->path))
                        return util_err_setx(err, ENAMETOOLONG, "path '%s/%s' too long", prefix,
                                             de->d_name);
                char rel[sizeof(c->path)];
                memcpy(rel, c->path, sizeof(rel));
                struct stat st;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return util_err_set(err, errno, "stat '%s'", rel);
                c->mode = st.st_mode & 07777;
                if (S_ISDIR(st.st_mode)) {
                        c->type = 'd';
                        if (st.st_dev != dev)
                                return util_err_setx(err, EXDEV, "'%s' is another mount", rel);
                        _cleanup_close_ int sub = openat(
                                dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0)
                                return util_err_set(err, errno, "open '%s'", rel);
                        int r = walk(sub, rel, dev, rs, err);
                        if (r < 0)
                                return r;
                } else if (S_ISREG(st.st_mode)) {
                        c->type = 'f';
                        char payload[sizeof(c->payload)];
                        int r = file_digest(dfd, de->d_name, rel, payload, sizeof(payload), err);
                        if (r < 0)
                                return r;
                        snprintf(c->payload, sizeof(c->payload), "%s", payload);
                } else if (S_ISLNK(st.st_mode)) {
                        c->type = 'l';
                        ssize_t n = readlinkat(dfd, de->d_name, c->payload, sizeof(c->payload) - 1);
                        if (n < 0)
                                return util_err_set(err, errno, "readlink '%s'", rel);
                        c->payload[n] = '\0';
                } else {
                        /* A whiteout (0:0 character device) or anything else that a
                         * merged tree must never show: hashed as what it is. */
                        c->type = '?';
                        snprintf(c->payload, sizeof(c->payload), "mode %o rdev %u:%u",
                                 (unsigned)st.st_mode, major(st.st_rdev), minor(st.st_rdev));
                }
        }
        if (errno != 0)
                return util_err_set(err, errno, "read directory '%s'", *prefix ? prefix : ".");
        return 0;
}

int soak_dir_hash(const char *dir, char ret[SOAK_HASH_MAX], struct util_err *err)
{
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct recs rs = {0};
        struct stat st;
        int r;

        if (fd < 0)
                return util_err_set(err, errno, "open '%s'", dir);
        if (fstat(fd, &st) < 0)
                return util_err_set(err, errno, "stat '%s'", dir);
        r = walk(fd, "", st.st_dev, &rs, err);
        if (r >= 0 && recs_hash(&rs, ret) < 0)
                r = util_err_set(err, EIO, "hash '%s'", dir);
        free(rs.v);
        return r < 0 ? util_err_prefix(err, "hash '%s'", dir) : 0;
}

/* ---- plans ---- */

int soak_action_parse(const char *s, struct soak_action *ret)
{
        struct soak_action a = {0};
        char f[4][SOAK_PATH_MAX] = {{0}};
        int n = 0;
        const char *p = s;

        if (!s[0] || s[1] != ':')
                return -EINVAL;
        a.op = s[0];
        p = s + 2;
        while (n < 4) {
                const char *c = strchr(p, ':');
                size_t len = c ? (size_t)(c - p) : strlen(p);
                if (len == 0 || len >= SOAK_PATH_MAX)
                        return -EINVAL;
                memcpy(f[n], p, len);
                f[n++][len] = '\0';
                if (!c)
                        break;
                p = c + 1;
        }
        char *end = NULL;
        snprintf(a.path, sizeof(a.path), "%s", f[0]);
        switch (a.op) {
        case 'w':
                if (n != 4)
                        return -EINVAL;
                a.mode = (unsigned)strtoul(f[1], &end, 8);
                a.seed = strtoull(f[2], &end, 16);
                a.len = (uint32_t)strtoul(f[3], &end, 10);
                break;
        case 'a':
                if (n != 3)
                        return -EINVAL;
                a.seed = strtoull(f[1], &end, 16);
                a.len = (uint32_t)strtoul(f[2], &end, 10);
                break;
        case 'c':
        case 'm':
                if (n != 2)
                        return -EINVAL;
                a.mode = (unsigned)strtoul(f[1], &end, 8);
                break;
        case 's':
        case 'n':
                if (n != 2)
                        return -EINVAL;
                snprintf(a.to, sizeof(a.to), "%s", f[1]);
                break;
        case 'x':
        case 'r':
                if (n != 1)
                        return -EINVAL;
                break;
        default:
                return -EINVAL;
        }
        *ret = a;
        return 0;
}

static int action_format(const struct soak_action *a, char **ret)
{
        int n;
        switch (a->op) {
        case 'w':
                n = asprintf(ret, "w:%s:%o:%llx:%u", a->path, a->mode, (unsigned long long)a->seed,
                             a->len);
                break;
        case 'a':
                n = asprintf(ret, "a:%s:%llx:%u", a->path, (unsigned long long)a->seed, a->len);
                break;
        case 'c':
        case 'm':
                n = asprintf(ret, "%c:%s:%o", a->op, a->path, a->mode);
                break;
        case 's':
        case 'n':
                n = asprintf(ret, "%c:%s:%s", a->op, a->path, a->to);
                break;
        default:
                n = asprintf(ret, "%c:%s", a->op, a->path);
                break;
        }
        return n < 0 ? -ENOMEM : 0;
}

void soak_plan_free(char **plan, size_t n)
{
        for (size_t k = 0; k < n; k++)
                free(plan[k]);
        free(plan);
}

static const unsigned file_modes[] = {0644, 0600, 0755, 0640, 0444, 0700, 04755, 0664};
static const unsigned dir_modes[] = {0755, 0700, 0750, 0711, 01777};

/* A directory prefix: "", "dN" or "dN/eM". */
static void pick_dir(struct soak_rng *r, char *buf, size_t size, bool allow_top)
{
        unsigned x = soak_below(r, 10);
        if (allow_top && x < 4)
                buf[0] = '\0';
        else if (x < 8)
                snprintf(buf, size, "d%u", soak_below(r, 4));
        else
                snprintf(buf, size, "d%u/e%u", soak_below(r, 4), soak_below(r, 2));
}

static void pick_name(struct soak_rng *r, char kind, char *buf, size_t size)
{
        char dir[24];
        pick_dir(r, dir, sizeof(dir), true);
        snprintf(buf, size, "%s%s%c%u", dir, *dir ? "/" : "", kind,
                 soak_below(r, kind == 'f' ? 8 : 4));
}

static uint32_t pick_len(struct soak_rng *r)
{
        unsigned x = soak_below(r, 100);
        if (x < 10)
                return 0;
        if (x < 50)
                return soak_below(r, 512);
        if (x < 85)
                return 512 + soak_below(r, 16384);
        if (x < 97)
                return 16384 + soak_below(r, 256 * 1024);
        return 256 * 1024 + soak_below(r, 2 * 1024 * 1024);
}

/* A random existing entry whose type is in `types`, or NULL. */
static const struct soak_entry *pick_existing(const struct soak_tree *t, struct soak_rng *r,
                                              const char *types)
{
        size_t n = 0;
        for (size_t k = 0; k < t->n; k++)
                n += strchr(types, t->e[k].type) != NULL;
        if (n == 0)
                return NULL;
        size_t want = soak_below(r, (uint32_t)n);
        for (size_t k = 0; k < t->n; k++)
                if (strchr(types, t->e[k].type) && want-- == 0)
                        return &t->e[k];
        return NULL;
}

/* A random change that fits `t`; false when the one drawn does not. */
static bool pick_action(const struct soak_tree *t, struct soak_rng *r, uint64_t room,
                        struct soak_action *a)
{
        const struct soak_entry *e;
        unsigned x = soak_below(r, 100);

        *a = (struct soak_action){0};
        if (x < 35) {
                a->op = 'w';
                pick_name(r, 'f', a->path, sizeof(a->path));
                a->mode = file_modes[soak_below(r, UTIL_ARRAY_SIZE(file_modes))];
                a->seed = soak_rand(r);
                a->len = pick_len(r);
                if (a->len > room)
                        a->len = (uint32_t)(room < 512 ? room : soak_below(r, 512));
                return true;
        }
        if (x < 45) {
                if (!(e = pick_existing(t, r, "f")))
                        return false;
                a->op = 'a';
                snprintf(a->path, sizeof(a->path), "%s", e->path);
                a->seed = soak_rand(r);
                a->len = soak_below(r, 8192);
                return a->len <= room;
        }
        if (x < 55) {
                if (!(e = pick_existing(t, r, "fd")))
                        return false;
                a->op = 'c';
                snprintf(a->path, sizeof(a->path), "%s", e->path);
                a->mode = e->type == 'd' ? dir_modes[soak_below(r, UTIL_ARRAY_SIZE(dir_modes))]
                                         : file_modes[soak_below(r, UTIL_ARRAY_SIZE(file_modes))];
                return true;
        }
        if (x < 62) {
                a->op = 's';
                pick_name(r, 'l', a->path, sizeof(a->path));
                snprintf(a->to, sizeof(a->to), "%s%u", soak_chance(r, 50) ? "../f" : "nowhere-",
                         soak_below(r, 100));
                return tree_find(t, a->path) < 0;
        }
        if (x < 77) {
                if (!(e = pick_existing(t, r, "fl")))
                        return false;
                a->op = 'x';
                snprintf(a->path, sizeof(a->path), "%s", e->path);
                return true;
        }
        if (x < 83) {
                if (!(e = pick_existing(t, r, "d")))
                        return false;
                a->op = 'r';
                snprintf(a->path, sizeof(a->path), "%s", e->path);
                return true;
        }
        if (x < 91) {
                a->op = 'm';
                pick_dir(r, a->path, sizeof(a->path), false);
                a->mode = dir_modes[soak_below(r, UTIL_ARRAY_SIZE(dir_modes))];
                return tree_find(t, a->path) < 0;
        }
        if (!(e = pick_existing(t, r, "f")))
                return false;
        a->op = 'n';
        snprintf(a->path, sizeof(a->path), "%s", e->path);
        pick_name(r, 'f', a->to, sizeof(a->to));
        return tree_find(t, a->to) < 0;
}

int soak_plan_make(const struct soak_tree *base, struct soak_rng *r, uint64_t max_bytes,
                   struct soak_tree *ret_tree, char ***ret_plan, size_t *ret_n)
{
        struct soak_tree t = {0};
        char **plan = NULL;
        size_t n = 0;
        unsigned want = 1 + soak_below(r, 8);
        int rc = soak_tree_copy(base, &t);

        if (rc >= 0)
                plan = calloc(want, sizeof(*plan));
        if (!plan)
                rc = -ENOMEM;
        for (unsigned tries = 0; rc >= 0 && n < want && tries < 8 * want; tries++) {
                uint64_t used = soak_tree_bytes(&t);
                struct soak_action a;
                if (!pick_action(&t, r, used < max_bytes ? max_bytes - used : 0, &a))
                        continue;
                /* A truncating write that would grow the tree past the cap is
                 * cut down in pick_action; anything else the model refuses is
                 * simply not part of the plan. */
                struct soak_tree trial;
                if ((rc = soak_tree_copy(&t, &trial)) < 0)
                        break;
                if (soak_tree_apply(&trial, &a) < 0) {
                        soak_tree_done(&trial);
                        continue;
                }
                if ((rc = action_format(&a, &plan[n])) < 0) {
                        soak_tree_done(&trial);
                        break;
                }
                n++;
                soak_tree_done(&t);
                t = trial;
        }
        if (rc < 0) {
                soak_tree_done(&t);
                soak_plan_free(plan, n);
                return rc;
        }
        *ret_tree = t;
        *ret_plan = plan;
        *ret_n = n;
        return 0;
}

/* ---- applying a plan to a mounted snapshot (in a worker) ---- */

static int mkdir_parents(int dfd, const char *path, struct util_err *err)
{
        char p[SOAK_PATH_MAX];
        for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
                snprintf(p, sizeof(p), "%.*s", (int)(s - path), path);
                if (mkdirat(dfd, p, 0755) < 0) {
                        if (errno == EEXIST)
                                continue;
                        return util_err_set(err, errno, "mkdir '%s'", p);
                }
                if (fchmodat(dfd, p, 0755, 0) < 0)
                        return util_err_set(err, errno, "chmod '%s'", p);
        }
        return 0;
}

static int write_all(int fd, uint64_t seed, uint32_t len, const char *path, struct util_err *err)
{
        _cleanup_free_ unsigned char *buf = malloc(65536);
        if (!buf)
                return util_err_set(err, ENOMEM, "write '%s'", path);
        for (uint64_t off = 0; off < len;) {
                size_t n = len - off < 65536 ? len - off : 65536;
                soak_content(seed, off, buf, n);
                ssize_t w = write(fd, buf, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return util_err_set(err, w < 0 ? errno : EIO, "write '%s'", path);
                off += (uint64_t)w;
        }
        return 0;
}

static int remove_tree(int dfd, const char *path, struct util_err *err)
{
        _cleanup_close_ int fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return util_err_set(err, errno, "open '%s'", path);
        int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        _cleanup_(closedirp) DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
        struct dirent *de;
        if (!d) {
                if (dup_fd >= 0)
                        close(dup_fd);
                return util_err_set(err, errno, "open '%s'", path);
        }
        while ((errno = 0, de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (de->d_type == DT_DIR) {
                        int r = remove_tree(fd, de->d_name, err);
                        if (r < 0)
                                return r;
                } else if (unlinkat(fd, de->d_name, 0) < 0) {
                        return util_err_set(err, errno, "unlink '%s/%s'", path, de->d_name);
                }
        }
        if (errno != 0)
                return util_err_set(err, errno, "read '%s'", path);
        if (unlinkat(dfd, path, AT_REMOVEDIR) < 0)
                return util_err_set(err, errno, "rmdir '%s'", path);
        return 0;
}

static int apply_one(int dfd, const struct soak_action *a, struct util_err *err)
{
        int r;
        switch (a->op) {
        case 'w':
        case 'a': {
                if (a->op == 'w' && (r = mkdir_parents(dfd, a->path, err)) < 0)
                        return r;
                int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC |
                            (a->op == 'w' ? O_CREAT | O_TRUNC : O_APPEND);
                _cleanup_close_ int fd = openat(dfd, a->path, flags, a->mode);
                if (fd < 0)
                        return util_err_set(err, errno, "open '%s'", a->path);
                if ((r = write_all(fd, a->seed, a->len, a->path, err)) < 0)
                        return r;
                if (a->op == 'w' && fchmod(fd, a->mode) < 0)
                        return util_err_set(err, errno, "chmod '%s'", a->path);
                int fd2 = TAKE_FD(fd);
                if (close(fd2) < 0)
                        return util_err_set(err, errno, "close '%s'", a->path);
                return 0;
        }
        case 'c':
                if (fchmodat(dfd, a->path, a->mode, 0) < 0)
                        return util_err_set(err, errno, "chmod '%s'", a->path);
                return 0;
        case 's':
                if ((r = mkdir_parents(dfd, a->path, err)) < 0)
                        return r;
                if (symlinkat(a->to, dfd, a->path) < 0)
                        return util_err_set(err, errno, "symlink '%s'", a->path);
                return 0;
        case 'x':
                if (unlinkat(dfd, a->path, 0) < 0)
                        return util_err_set(err, errno, "unlink '%s'", a->path);
                return 0;
        case 'r':
                return remove_tree(dfd, a->path, err);
        case 'm':
                if ((r = mkdir_parents(dfd, a->path, err)) < 0)
                        return r;
                if (mkdirat(dfd, a->path, a->mode) < 0)
                        return util_err_set(err, errno, "mkdir '%s'", a->path);
                if (fchmodat(dfd, a->path, a->mode, 0) < 0)
                        return util_err_set(err, errno, "chmod '%s'", a->path);
                return 0;
        case 'n':
                if ((r = mkdir_parents(dfd, a->to, err)) < 0)
                        return r;
                if (renameat(dfd, a->path, dfd, a->to) < 0)
                        return util_err_set(err, errno, "rename '%s' to '%s'", a->path, a->to);
                return 0;
        }
        return util_err_setx(err, EINVAL, "unknown change '%c'", a->op);
}

int soak_plan_apply_dir(const char *dir, char *const *plan, size_t n, struct util_err *err)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return util_err_set(err, errno, "open '%s'", dir);
        for (size_t k = 0; k < n; k++) {
                struct soak_action a;
                if (soak_action_parse(plan[k], &a) < 0)
                        return util_err_setx(err, EINVAL, "bad change '%s'", plan[k]);
                int r = apply_one(dfd, &a, err);
                if (r < 0)
                        return util_err_prefix(err, "change %zu '%s'", k + 1, plan[k]);
        }
        return 0;
}
