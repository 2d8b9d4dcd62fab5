/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * snapctl's commands: each one calls the plugin's table and prints text, or
 * with --json exactly one JSON value on stdout. Failures print the plugin's
 * message and exit with the code of its error kind (ctl_exit_code).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "plugin/snapctl.h"

/* ---- small helpers ------------------------------------------------------------ */

static void info_freep(struct ctl *c, struct loopsnap_info **i)
{
        c->ops->info_free(*i);
        *i = NULL;
}

/* A growable list of snapshot rows copied out of a walk (the walk's info
 * lives only during its callback). */
struct row {
        int64_t id;
        int kind;
        char *name;
        char *parent;
};

struct rows {
        struct row *v;
        size_t n, cap;
        bool oom;
};

static int rows_add(void *data, const struct loopsnap_info *i)
{
        struct rows *r = data;

        if (r->n == r->cap) {
                size_t cap = r->cap ? 2 * r->cap : 64;
                struct row *v = realloc(r->v, cap * sizeof(*v));
                if (!v) {
                        r->oom = true;
                        return -ENOMEM;
                }
                r->v = v;
                r->cap = cap;
        }
        struct row *w = &r->v[r->n];
        w->id = i->id;
        w->kind = i->kind;
        w->name = strdup(i->name);
        w->parent = i->parent ? strdup(i->parent) : NULL;
        if (!w->name || (i->parent && !w->parent)) {
                free(w->name);
                free(w->parent);
                r->oom = true;
                return -ENOMEM;
        }
        r->n++;
        return 0;
}

static void rows_done(struct rows *r)
{
        for (size_t k = 0; k < r->n; k++) {
                free(r->v[k].name);
                free(r->v[k].parent);
        }
        free(r->v);
        *r = (struct rows){0};
}

/* Walks with `filters` into `r`. Returns an exit code. */
static int rows_walk(struct ctl *c, char **filters, int n, struct rows *r)
{
        int rc = ctl_root(c);
        if (rc != CTL_EXIT_OK)
                return rc;
        if (c->ops->walk(c->root, (const char *const *)filters, (size_t)n, rows_add, r, &c->err) <
            0)
                return ctl_fail(c, -1);
        return CTL_EXIT_OK;
}

/* ---- prepare / view / commit / rm --------------------------------------------- */

static int create(struct ctl *c, bool view, const char *key, const char *parent)
{
        struct loopsnap_mounts *m = NULL;
        int rc = ctl_root(c);

        if (rc != CTL_EXIT_OK)
                return rc;
        rc = (view ? c->ops->view : c->ops->prepare)(c->root, key, parent, c->labels, c->n_labels,
                                                     c->json ? &m : NULL, &c->err);
        if (rc < 0)
                return ctl_fail(c, rc);
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                yajl_gen_map_open(g);
                ctl_json_key(g, "key");
                ctl_json_str(g, key);
                ctl_json_key(g, "kind");
                ctl_json_str(g, view ? "view" : "active");
                ctl_json_key(g, "parent");
                ctl_json_str(g, parent);
                ctl_json_key(g, "mounts");
                ctl_json_mounts(g, m);
                yajl_gen_map_close(g);
                c->ops->mounts_free(m);
                return ctl_json_end(g);
        }
        return CTL_EXIT_OK;
}

static int cmd_prepare(struct ctl *c, int argc, char **argv)
{
        return create(c, false, argv[0], argc > 1 ? argv[1] : NULL);
}

static int cmd_view(struct ctl *c, int argc, char **argv)
{
        return create(c, true, argv[0], argv[1]);
}

static int cmd_commit(struct ctl *c, int argc, char **argv)
{
        int rc = ctl_root(c);

        if (rc != CTL_EXIT_OK)
                return rc;
        if (c->ops->commit(c->root, argv[0], argv[1], c->labels, c->n_labels, &c->err) < 0)
                return ctl_fail(c, -1);
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                yajl_gen_map_open(g);
                ctl_json_key(g, "name");
                ctl_json_str(g, argv[0]);
                ctl_json_key(g, "key");
                ctl_json_str(g, argv[1]);
                yajl_gen_map_close(g);
                return ctl_json_end(g);
        }
        return CTL_EXIT_OK;
}

static int cmd_rm(struct ctl *c, int argc, char **argv)
{
        int rc = ctl_root(c);
        int k;

        if (rc != CTL_EXIT_OK)
                return rc;
        for (k = 0; k < argc; k++)
                if (c->ops->remove(c->root, argv[k], &c->err) < 0) {
                        rc = ctl_fail(c, -1);
                        break;
                }
        if (c->json) {
                /* What was removed before a failure, so a script knows. */
                yajl_gen g = ctl_json_begin();
                yajl_gen_map_open(g);
                ctl_json_key(g, "removed");
                yajl_gen_array_open(g);
                for (int j = 0; j < k; j++)
                        ctl_json_str(g, argv[j]);
                yajl_gen_array_close(g);
                yajl_gen_map_close(g);
                int jr = ctl_json_end(g);
                if (rc == CTL_EXIT_OK)
                        rc = jr;
        }
        return rc;
}

/* ---- info / ls / tree / label ------------------------------------------------------ */

static int cmd_info(struct ctl *c, int argc, char **argv)
{
        struct loopsnap_info *i = NULL;
        int rc = ctl_root(c);

        if (rc != CTL_EXIT_OK)
                return rc;
        if (c->ops->stat(c->root, argv[0], &i, &c->err) < 0)
                return ctl_fail(c, -1);
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                ctl_json_info(g, i);
                rc = ctl_json_end(g);
        } else {
                ctl_print_info(i);
        }
        info_freep(c, &i);
        return rc;
}

/* ls in --json mode: the callback writes each object as it comes. */
static int ls_json_one(void *data, const struct loopsnap_info *i)
{
        ctl_json_info(data, i);
        return 0;
}

static int cmd_ls(struct ctl *c, int argc, char **argv)
{
        struct rows r = {0};
        int rc = ctl_root(c);

        if (rc != CTL_EXIT_OK)
                return rc;
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                yajl_gen_array_open(g);
                if (c->ops->walk(c->root, (const char *const *)argv, (size_t)argc, ls_json_one, g,
                                 &c->err) < 0) {
                        yajl_gen_free(g);
                        return ctl_fail(c, -1);
                }
                yajl_gen_array_close(g);
                return ctl_json_end(g);
        }
        if ((rc = rows_walk(c, argv, argc, &r)) != CTL_EXIT_OK)
                return rc;
        int w = 4;
        for (size_t k = 0; k < r.n; k++)
                if ((int)strlen(r.v[k].name) > w)
                        w = (int)strlen(r.v[k].name);
        printf("%-*s  %-9s  %s\n", w, "NAME", "KIND", "PARENT");
        for (size_t k = 0; k < r.n; k++)
                printf("%-*s  %-9s  %s\n", w, r.v[k].name, ctl_kind_name(r.v[k].kind),
                       r.v[k].parent ? r.v[k].parent : "");
        rows_done(&r);
        return CTL_EXIT_OK;
}

static void tree_text(const struct rows *r, const char *parent, const char *indent)
{
        for (size_t k = 0; k < r->n; k++) {
                const struct row *w = &r->v[k];
                if (parent ? !w->parent || strcmp(w->parent, parent) != 0 : w->parent != NULL)
                        continue;
                printf("%s%s (%s)\n", indent, w->name, ctl_kind_name(w->kind));
                if (w->kind == LOOPSNAP_KIND_COMMITTED) {
                        char sub[512];
                        snprintf(sub, sizeof(sub), "%s  ", indent);
                        tree_text(r, w->name, sub);
                }
        }
}

static void tree_json(yajl_gen g, const struct rows *r, const char *parent)
{
        yajl_gen_array_open(g);
        for (size_t k = 0; k < r->n; k++) {
                const struct row *w = &r->v[k];
                if (parent ? !w->parent || strcmp(w->parent, parent) != 0 : w->parent != NULL)
                        continue;
                yajl_gen_map_open(g);
                ctl_json_key(g, "name");
                ctl_json_str(g, w->name);
                ctl_json_key(g, "kind");
                ctl_json_str(g, ctl_kind_name(w->kind));
                ctl_json_key(g, "children");
                if (w->kind == LOOPSNAP_KIND_COMMITTED) {
                        tree_json(g, r, w->name);
                } else {
                        yajl_gen_array_open(g);
                        yajl_gen_array_close(g);
                }
                yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
}

static int cmd_tree(struct ctl *c, int argc, char **argv)
{
        struct rows r = {0};
        int rc = rows_walk(c, NULL, 0, &r);

        if (rc != CTL_EXIT_OK)
                return rc;
        /* Only committed snapshots are parents, and a parent always exists
         * before its children: the recursion ends. */
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                tree_json(g, &r, NULL);
                rc = ctl_json_end(g);
        } else {
                tree_text(&r, NULL, "");
        }
        rows_done(&r);
        return rc;
}

static int cmd_label(struct ctl *c, int argc, char **argv)
{
        const char *set[2 * CTL_MAX_LABELS];
        char *paths[CTL_MAX_LABELS] = {0};
        char *copies[CTL_MAX_LABELS] = {0};
        struct loopsnap_info *i = NULL;
        size_t n_set = 0;
        int n = argc - 1, rc;

        if (n > CTL_MAX_LABELS)
                return ctl_usage_error("label", "at most %d labels at once", CTL_MAX_LABELS);
        for (int k = 0; k < n; k++) {
                char *eq = strchr(argv[k + 1], '=');
                if (!eq || eq == argv[k + 1]) {
                        rc = ctl_usage_error("label",
                                             "'%s': expected KEY=VALUE or KEY=", argv[k + 1]);
                        goto out;
                }
                copies[k] = strndup(argv[k + 1], (size_t)(eq - argv[k + 1]));
                if (!copies[k] || asprintf(&paths[k], "labels.%s", copies[k]) < 0) {
                        paths[k] = NULL;
                        ctl_msg("out of memory");
                        rc = CTL_EXIT_INTERNAL;
                        goto out;
                }
                /* "k=" deletes k: a field path without a label. */
                if (eq[1]) {
                        set[2 * n_set] = copies[k];
                        set[2 * n_set + 1] = eq + 1;
                        n_set++;
                }
        }
        if ((rc = ctl_root(c)) != CTL_EXIT_OK)
                goto out;
        if (c->ops->update(c->root, argv[0], set, n_set, (const char *const *)paths, (size_t)n, &i,
                           &c->err) < 0) {
                rc = ctl_fail(c, -1);
                goto out;
        }
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                ctl_json_info(g, i);
                rc = ctl_json_end(g);
        } else {
                for (size_t k = 0; k < i->n_labels; k++)
                        printf("%s=%s\n", i->labels[2 * k], i->labels[2 * k + 1]);
        }
out:
        info_freep(c, &i);
        for (int k = 0; k < n; k++) {
                free(copies[k]);
                free(paths[k]);
        }
        return rc;
}

/* ---- usage ------------------------------------------------------------------------ */

static int cmd_usage(struct ctl *c, int argc, char **argv)
{
        struct loopsnap_usage u = {.struct_size = sizeof(u)};
        struct rows r = {0};
        char h[32];
        int rc;

        if (argc == 1) {
                if ((rc = ctl_root(c)) != CTL_EXIT_OK)
                        return rc;
                if (c->ops->usage(c->root, argv[0], &u, &c->err) < 0)
                        return ctl_fail(c, -1);
                if (c->json) {
                        yajl_gen g = ctl_json_begin();
                        yajl_gen_map_open(g);
                        ctl_json_key(g, "name");
                        ctl_json_str(g, argv[0]);
                        ctl_json_key(g, "size");
                        ctl_json_int(g, (long long)u.size);
                        ctl_json_key(g, "inodes");
                        ctl_json_int(g, (long long)u.inodes);
                        yajl_gen_map_close(g);
                        return ctl_json_end(g);
                }
                printf("%s\t%s\t%" PRIu64 " inodes\n", argv[0],
                       ctl_human_size(u.size, h, sizeof(h)), u.inodes);
                return CTL_EXIT_OK;
        }

        if ((rc = rows_walk(c, NULL, 0, &r)) != CTL_EXIT_OK)
                return rc;
        uint64_t *sizes = calloc(r.n ? r.n : 1, sizeof(*sizes));
        uint64_t *inodes = calloc(r.n ? r.n : 1, sizeof(*inodes));
        uint64_t tsize = 0, tinodes = 0;
        if (!sizes || !inodes) {
                ctl_msg("out of memory");
                rc = CTL_EXIT_INTERNAL;
                goto out;
        }
        for (size_t k = 0; k < r.n; k++) {
                u = (struct loopsnap_usage){.struct_size = sizeof(u)};
                if (c->ops->usage(c->root, r.v[k].name, &u, &c->err) < 0) {
                        rc = ctl_fail(c, -1);
                        goto out;
                }
                sizes[k] = u.size;
                inodes[k] = u.inodes;
                tsize += u.size;
                tinodes += u.inodes;
        }
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                yajl_gen_map_open(g);
                ctl_json_key(g, "snapshots");
                yajl_gen_array_open(g);
                for (size_t k = 0; k < r.n; k++) {
                        yajl_gen_map_open(g);
                        ctl_json_key(g, "name");
                        ctl_json_str(g, r.v[k].name);
                        ctl_json_key(g, "size");
                        ctl_json_int(g, (long long)sizes[k]);
                        ctl_json_key(g, "inodes");
                        ctl_json_int(g, (long long)inodes[k]);
                        yajl_gen_map_close(g);
                }
                yajl_gen_array_close(g);
                ctl_json_key(g, "total");
                yajl_gen_map_open(g);
                ctl_json_key(g, "size");
                ctl_json_int(g, (long long)tsize);
                ctl_json_key(g, "inodes");
                ctl_json_int(g, (long long)tinodes);
                yajl_gen_map_close(g);
                yajl_gen_map_close(g);
                rc = ctl_json_end(g);
        } else {
                int w = 5;
                for (size_t k = 0; k < r.n; k++)
                        if ((int)strlen(r.v[k].name) > w)
                                w = (int)strlen(r.v[k].name);
                printf("%-*s  %12s  %s\n", w, "NAME", "SIZE", "INODES");
                for (size_t k = 0; k < r.n; k++)
                        printf("%-*s  %12s  %" PRIu64 "\n", w, r.v[k].name,
                               ctl_human_size(sizes[k], h, sizeof(h)), inodes[k]);
                printf("%-*s  %12s  %" PRIu64 "\n", w, "total", ctl_human_size(tsize, h, sizeof(h)),
                       tinodes);
        }
out:
        free(sizes);
        free(inodes);
        rows_done(&r);
        return rc;
}

/* ---- mounts / mount / umount ---------------------------------------------------------- */

static int cmd_mounts(struct ctl *c, int argc, char **argv)
{
        struct loopsnap_mounts *m = NULL;
        int rc = ctl_root(c);

        if (rc != CTL_EXIT_OK)
                return rc;
        if (c->ops->mounts(c->root, argv[0], &m, &c->err) < 0)
                return ctl_fail(c, -1);
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                ctl_json_mounts(g, m);
                rc = ctl_json_end(g);
        } else {
                printf("%s\n", m->json);
        }
        c->ops->mounts_free(m);
        return rc;
}

static int cmd_mount(struct ctl *c, int argc, char **argv)
{
        struct loopsnap_mounts *m = NULL;
        struct loopsnap_info *i = NULL;
        char loop_id[32];
        int rc = ctl_root(c);

        if (rc != CTL_EXIT_OK)
                return rc;
        if (c->ops->stat(c->root, argv[0], &i, &c->err) < 0)
                return ctl_fail(c, -1);
        /* The snapshot's id tags the loop devices (the key may be any text). */
        snprintf(loop_id, sizeof(loop_id), "%" PRId64, i->id);
        info_freep(c, &i);
        if (c->ops->mounts(c->root, argv[0], &m, &c->err) < 0)
                return ctl_fail(c, -1);
        struct loopsnap_mount_opts o = {.struct_size = sizeof(o), .loop_id = loop_id};
        rc = c->ops->mount_apply(c->root, m->json, argv[1], &o, &c->err);
        c->ops->mounts_free(m);
        if (rc < 0)
                return ctl_fail(c, rc);
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                yajl_gen_map_open(g);
                ctl_json_key(g, "key");
                ctl_json_str(g, argv[0]);
                ctl_json_key(g, "target");
                ctl_json_str(g, argv[1]);
                yajl_gen_map_close(g);
                return ctl_json_end(g);
        }
        return CTL_EXIT_OK;
}

static int cmd_umount(struct ctl *c, int argc, char **argv)
{
        /* No root: unmounting needs no snapshotter (and must not create one). */
        int n = c->ops->unmount(NULL, argv[0], c->all ? LOOPSNAP_UNMOUNT_ALL : 0, &c->err);

        if (n < 0)
                return ctl_fail(c, n);
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                yajl_gen_map_open(g);
                ctl_json_key(g, "target");
                ctl_json_str(g, argv[0]);
                ctl_json_key(g, "unmounted");
                ctl_json_int(g, n);
                yajl_gen_map_close(g);
                return ctl_json_end(g);
        }
        return CTL_EXIT_OK;
}

/* ---- apply / import ------------------------------------------------------------------- */

static int cmd_apply(struct ctl *c, int argc, char **argv)
{
        int rc = ctl_root(c);

        if (rc != CTL_EXIT_OK)
                return rc;
        struct loopsnap_apply_opts o = {
                .struct_size = sizeof(o),
                .tar_path = argv[1],
                .progress = ctl_progress,
        };
        rc = c->ops->apply_layer(c->root, argv[0], &o, &c->err);
        ctl_progress_done();
        if (rc < 0)
                return ctl_fail(c, rc);
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                yajl_gen_map_open(g);
                ctl_json_key(g, "key");
                ctl_json_str(g, argv[0]);
                ctl_json_key(g, "layer");
                ctl_json_str(g, argv[1]);
                yajl_gen_map_close(g);
                return ctl_json_end(g);
        }
        return CTL_EXIT_OK;
}

static int cmd_import(struct ctl *c, int argc, char **argv)
{
        char *chain = NULL;
        int rc = ctl_root(c);

        if (rc != CTL_EXIT_OK)
                return rc;
        struct loopsnap_import_opts o = {
                .struct_size = sizeof(o),
                .layout_dir = argv[0],
                .ref = argc > 1 ? argv[1] : NULL,
                .progress = ctl_progress,
        };
        rc = c->ops->import_oci(c->root, &o, &chain, &c->err);
        ctl_progress_done();
        if (rc < 0)
                return ctl_fail(c, rc);
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                yajl_gen_map_open(g);
                ctl_json_key(g, "chain_id");
                ctl_json_str(g, chain);
                yajl_gen_map_close(g);
                rc = ctl_json_end(g);
        } else {
                printf("%s\n", chain);
        }
        c->ops->string_free(chain);
        return rc;
}

/* ---- cleanup / fsck --------------------------------------------------------------------- */

static int cmd_cleanup(struct ctl *c, int argc, char **argv)
{
        int rc = ctl_root(c);

        if (rc != CTL_EXIT_OK)
                return rc;
        int n = c->ops->cleanup(c->root, &c->err);
        if (n < 0)
                return ctl_fail(c, n);
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                yajl_gen_map_open(g);
                ctl_json_key(g, "removed");
                ctl_json_int(g, n);
                yajl_gen_map_close(g);
                return ctl_json_end(g);
        }
        printf("removed %d leftover%s\n", n, n == 1 ? "" : "s");
        return CTL_EXIT_OK;
}

struct fsck_lines {
        bool json;
        char **v;
        size_t n;
        bool oom;
};

static void fsck_line(void *data, const char *line)
{
        struct fsck_lines *l = data;

        if (!l->json) {
                printf("%s\n", line);
                return;
        }
        char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
        if (!v || !(v[l->n] = strdup(line))) {
                if (v)
                        l->v = v;
                l->oom = true;
                return;
        }
        l->v = v;
        l->n++;
}

static void fsck_counts(yajl_gen g, const struct loopsnap_fsck_report *r)
{
        static const struct {
                const char *name;
                size_t off;
        } f[] = {
                {"orphan_dirs", offsetof(struct loopsnap_fsck_report, orphan_dirs)},
                {"tmp_leftovers", offsetof(struct loopsnap_fsck_report, tmp_leftovers)},
                {"trash_leftovers", offsetof(struct loopsnap_fsck_report, trash_leftovers)},
                {"template_leftovers", offsetof(struct loopsnap_fsck_report, template_leftovers)},
                {"rows_without_files", offsetof(struct loopsnap_fsck_report, rows_without_files)},
                {"bad_images", offsetof(struct loopsnap_fsck_report, bad_images)},
                {"leaked_loops", offsetof(struct loopsnap_fsck_report, leaked_loops)},
                {"leaked_mounts", offsetof(struct loopsnap_fsck_report, leaked_mounts)},
                {"stale_files", offsetof(struct loopsnap_fsck_report, stale_files)},
        };
        yajl_gen_map_open(g);
        for (size_t k = 0; k < UTIL_ARRAY_SIZE(f); k++) {
                uint32_t v;
                memcpy(&v, (const char *)r + f[k].off, sizeof(v));
                ctl_json_key(g, f[k].name);
                ctl_json_int(g, v);
        }
        yajl_gen_map_close(g);
}

static int cmd_fsck(struct ctl *c, int argc, char **argv)
{
        struct fsck_lines lines = {.json = c->json};
        struct loopsnap_fsck_report rep = {.struct_size = sizeof(rep)};
        struct loopsnap_fsck_report after = {.struct_size = sizeof(after)};
        int rc = ctl_root(c);

        if (rc != CTL_EXIT_OK)
                return rc;
        struct loopsnap_fsck_opts o = {
                .struct_size = sizeof(o),
                .flags = c->repair ? LOOPSNAP_FSCK_REPAIR : 0,
                .report = fsck_line,
                .report_data = &lines,
        };
        if (c->ops->fsck(c->root, &o, &rep, &c->err) < 0) {
                rc = ctl_fail(c, -1);
                goto out;
        }
        uint32_t remaining = rep.problems;
        if (c->repair && rep.problems) {
                /* What is left after the repairs: a second, read-only pass. */
                if (c->ops->fsck(c->root, NULL, &after, &c->err) < 0) {
                        rc = ctl_fail(c, -1);
                        goto out;
                }
                remaining = after.problems;
        }
        if (lines.oom) {
                ctl_msg("out of memory");
                rc = CTL_EXIT_INTERNAL;
                goto out;
        }
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                yajl_gen_map_open(g);
                ctl_json_key(g, "problems");
                ctl_json_int(g, rep.problems);
                ctl_json_key(g, "fixed");
                ctl_json_int(g, rep.fixed);
                ctl_json_key(g, "remaining");
                ctl_json_int(g, remaining);
                ctl_json_key(g, "counts");
                fsck_counts(g, &rep);
                ctl_json_key(g, "lines");
                yajl_gen_array_open(g);
                for (size_t k = 0; k < lines.n; k++)
                        ctl_json_str(g, lines.v[k]);
                yajl_gen_array_close(g);
                yajl_gen_map_close(g);
                rc = ctl_json_end(g);
        } else if (!rep.problems) {
                printf("fsck: no problems\n");
        } else {
                printf("fsck: %u problem%s, %u repair%s made, %u remain%s\n", rep.problems,
                       rep.problems == 1 ? "" : "s", rep.fixed, rep.fixed == 1 ? "" : "s",
                       remaining, remaining == 1 ? "s" : "");
        }
        if (rc == CTL_EXIT_OK && remaining) {
                ctl_msg("fsck: %u problem%s left%s", remaining, remaining == 1 ? "" : "s",
                        c->repair ? " after repair" : " (snapctl fsck --repair fixes what it can)");
                rc = ctl_exit_code(CTL_OUTCOME_FSCK_PROBLEMS, 0);
        }
out:
        for (size_t k = 0; k < lines.n; k++)
                free(lines.v[k]);
        free(lines.v);
        return rc;
}

/* ---- doctor / loops --------------------------------------------------------------------- */

static const char *yes_no(int v)
{
        return v > 0 ? "yes" : v == 0 ? "no" : "unknown";
}

static void doctor_text(const struct ctl *c, const struct loopsnap_features *f)
{
        printf("libloopsnap %s (ABI %u.%u) from %s\n", f->version, c->ops->abi_major,
               c->ops->abi_minor, c->plugin_path);
        printf("kernel:\n");
        printf("  overlay API (best):    %s (fd layers: %s, lowerdir+: %s)\n", f->overlay_api,
               yes_no(f->overlay_fd), yes_no(f->overlay_lowerdir_plus));
        printf("  overlay API (in use):  %s\n", f->overlay_api_used);
        printf("  LOOP_CONFIGURE:        %s\n", yes_no(f->loop_configure));
        printf("  idmapped mounts:       %s\n", yes_no(f->idmapped_mounts));
        printf("  user namespaces:       %s\n", yes_no(f->user_namespaces));
        printf("  filesystems listed:    overlay %s, ext4 %s, xfs %s, erofs %s, fuse %s\n",
               yes_no(f->fs_overlay), yes_no(f->fs_ext4), yes_no(f->fs_xfs), yes_no(f->fs_erofs),
               yes_no(f->fs_fuse));
        printf("tools:\n");
        printf("  mkfs.ext4:   %s\n", f->mkfs_ext4 ? f->mkfs_ext4 : "not found");
        printf("  mkfs.xfs:    %s\n", f->mkfs_xfs ? f->mkfs_xfs : "not found");
        printf("  mkfs.erofs:  %s\n", f->mkfs_erofs ? f->mkfs_erofs : "not found");
        printf("  mount.fuse3: %s\n", f->mount_fuse3 ? f->mount_fuse3 : "not found");

        printf("fallbacks:\n");
        int n = 0;
        if (strcmp(f->overlay_api_used, "lowerdir+") == 0)
                n += printf("  - overlay layers go as lowerdir+ strings (each path at most 255 "
                            "bytes; intermediate mounts in a scratch directory)\n") > 0;
        else if (strcmp(f->overlay_api_used, "legacy") == 0)
                n += printf("  - overlays are mounted with mount(2): lowerdir compaction, "
                            "4095 bytes of options at most\n") > 0;
        if (strcmp(f->overlay_api_used, f->overlay_api) != 0)
                n += printf("  - LOOPSNAP_MOUNT_API forces '%s' (the kernel has '%s')\n",
                            f->overlay_api_used, f->overlay_api) > 0;
        if (f->loop_configure == 0)
                n += printf("  - loop devices attach with LOOP_SET_FD + LOOP_SET_STATUS64 "
                            "(slower, retried)\n") > 0;
        if (f->idmapped_mounts == 0 || f->user_namespaces == 0)
                n += printf("  - uidmapping/gidmapping labels cannot be honoured (prepare with "
                            "them fails)\n") > 0;
        if (!f->mkfs_ext4)
                n += printf("  - no mkfs.ext4: ext4 images cannot be made (the default)\n") > 0;
        if (!f->mkfs_xfs)
                n += printf("  - no mkfs.xfs: --writable-fs xfs is unavailable\n") > 0;
        if (!f->mkfs_erofs)
                n += printf("  - no mkfs.erofs: --committed-format erofs is unavailable\n") > 0;
        if (!f->mount_fuse3)
                n += printf("  - no mount.fuse3: FUSE mounts in specs fail\n") > 0;
        if (n == 0)
                printf("  none\n");
}

static void doctor_json(const struct ctl *c, yajl_gen g, const struct loopsnap_features *f)
{
        yajl_gen_map_open(g);
        ctl_json_key(g, "version");
        ctl_json_str(g, f->version);
        ctl_json_key(g, "abi");
        ctl_json_int(g, c->ops->abi_major);
        ctl_json_key(g, "abi_minor");
        ctl_json_int(g, c->ops->abi_minor);
        ctl_json_key(g, "plugin");
        ctl_json_str(g, c->plugin_path);
        ctl_json_key(g, "overlay_api");
        ctl_json_str(g, f->overlay_api);
        ctl_json_key(g, "overlay_api_used");
        ctl_json_str(g, f->overlay_api_used);
        ctl_json_key(g, "overlay_fd");
        ctl_json_tri(g, f->overlay_fd);
        ctl_json_key(g, "overlay_lowerdir_plus");
        ctl_json_tri(g, f->overlay_lowerdir_plus);
        ctl_json_key(g, "loop_configure");
        ctl_json_tri(g, f->loop_configure);
        ctl_json_key(g, "idmapped_mounts");
        ctl_json_tri(g, f->idmapped_mounts);
        ctl_json_key(g, "user_namespaces");
        ctl_json_tri(g, f->user_namespaces);
        ctl_json_key(g, "filesystems");
        yajl_gen_map_open(g);
        ctl_json_key(g, "overlay");
        ctl_json_tri(g, f->fs_overlay);
        ctl_json_key(g, "ext4");
        ctl_json_tri(g, f->fs_ext4);
        ctl_json_key(g, "xfs");
        ctl_json_tri(g, f->fs_xfs);
        ctl_json_key(g, "erofs");
        ctl_json_tri(g, f->fs_erofs);
        ctl_json_key(g, "fuse");
        ctl_json_tri(g, f->fs_fuse);
        yajl_gen_map_close(g);
        ctl_json_key(g, "tools");
        yajl_gen_map_open(g);
        ctl_json_key(g, "mkfs.ext4");
        ctl_json_str(g, f->mkfs_ext4);
        ctl_json_key(g, "mkfs.xfs");
        ctl_json_str(g, f->mkfs_xfs);
        ctl_json_key(g, "mkfs.erofs");
        ctl_json_str(g, f->mkfs_erofs);
        ctl_json_key(g, "mount.fuse3");
        ctl_json_str(g, f->mount_fuse3);
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
}

static int cmd_doctor(struct ctl *c, int argc, char **argv)
{
        struct loopsnap_features *f = NULL;
        int rc = CTL_EXIT_OK;

        /* No root: doctor must work (and create nothing) where no root is. */
        if (c->ops->features(NULL, LOOPSNAP_FEATURES_PROBE, &f, &c->err) < 0)
                return ctl_fail(c, -1);
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                doctor_json(c, g, f);
                rc = ctl_json_end(g);
        } else {
                doctor_text(c, f);
        }
        c->ops->features_free(f);
        return rc;
}

static int cmd_loops(struct ctl *c, int argc, char **argv)
{
        struct loopsnap_loops *l = NULL;
        int rc;

        if (!c->all && (rc = ctl_root(c)) != CTL_EXIT_OK)
                return rc;
        if (c->ops->loops_list(c->all ? NULL : c->root, &l, &c->err) < 0)
                return ctl_fail(c, -1);
        if (c->json) {
                yajl_gen g = ctl_json_begin();
                yajl_gen_array_open(g);
                for (uint32_t k = 0; k < l->n; k++) {
                        const struct loopsnap_loop *d = l->loops[k];
                        yajl_gen_map_open(g);
                        ctl_json_key(g, "device");
                        ctl_json_str(g, d->path);
                        ctl_json_key(g, "tag");
                        ctl_json_str(g, d->tag);
                        ctl_json_key(g, "owner");
                        ctl_json_str(g, d->owner);
                        ctl_json_key(g, "id");
                        ctl_json_str(g, d->id);
                        ctl_json_key(g, "backing_file");
                        ctl_json_str(g, d->backing_file);
                        ctl_json_key(g, "read_only");
                        ctl_json_bool(g, d->flags & LOOPSNAP_LOOP_READ_ONLY);
                        ctl_json_key(g, "autoclear");
                        ctl_json_bool(g, d->flags & LOOPSNAP_LOOP_AUTOCLEAR);
                        ctl_json_key(g, "direct_io");
                        ctl_json_bool(g, d->flags & LOOPSNAP_LOOP_DIRECT_IO);
                        ctl_json_key(g, "offset");
                        ctl_json_int(g, (long long)d->offset);
                        ctl_json_key(g, "size_limit");
                        ctl_json_int(g, (long long)d->size_limit);
                        yajl_gen_map_close(g);
                }
                yajl_gen_array_close(g);
                rc = ctl_json_end(g);
        } else {
                printf("%-12s  %-32s  %-2s  %s\n", "DEVICE", "TAG", "RO", "BACKING FILE");
                for (uint32_t k = 0; k < l->n; k++) {
                        const struct loopsnap_loop *d = l->loops[k];
                        printf("%-12s  %-32s  %-2s  %s\n", d->path, d->tag,
                               d->flags & LOOPSNAP_LOOP_READ_ONLY ? "ro" : "rw", d->backing_file);
                }
                rc = CTL_EXIT_OK;
        }
        c->ops->loops_free(l);
        return rc;
}

/* ---- the table ---------------------------------------------------------------------------- */

const struct ctl_cmd ctl_cmds[] = {
        {"prepare", "KEY [PARENT] [--label K=V]...",
         "create an active (writable) snapshot KEY on committed PARENT", 1, 2, CTL_OPT_LABEL,
         cmd_prepare},
        {"view", "KEY PARENT [--label K=V]...", "create a read-only view KEY of committed PARENT",
         2, 2, CTL_OPT_LABEL, cmd_view},
        {"commit", "NAME KEY [--label K=V]...",
         "commit active snapshot KEY as NAME (KEY must not be mounted)", 2, 2, CTL_OPT_LABEL,
         cmd_commit},
        {"rm", "KEY...", "remove snapshots (children first)", 1, -1, 0, cmd_rm},
        {"info", "KEY", "show a snapshot", 1, 1, 0, cmd_info},
        {"ls", "[FILTER]...",
         "list snapshots matching any FILTER (containerd syntax: kind==committed,parent==base)", 0,
         -1, 0, cmd_ls},
        {"tree", "", "show snapshots as a tree of parents and children", 0, 0, 0, cmd_tree},
        {"label", "KEY K=V|K=...", "set (K=V) or delete (K=) labels of KEY", 2, -1, 0, cmd_label},
        {"usage", "[KEY]", "disk usage of KEY, or of every snapshot with a total", 0, 1, 0,
         cmd_usage},
        {"mounts", "KEY", "print the mount spec (JSON) of an active snapshot or view", 1, 1, 0,
         cmd_mounts},
        {"mount", "KEY TARGET", "mount KEY's spec on directory TARGET with the bundled engine", 2,
         2, 0, cmd_mount},
        {"umount", "TARGET [--all]", "unmount TARGET (--all: every mount stacked on it)", 1, 1,
         CTL_OPT_ALL, cmd_umount},
        {"apply", "KEY LAYER.tar[.gz|.zst]", "unpack a layer tarball into active snapshot KEY", 2,
         2, 0, cmd_apply},
        {"import", "OCI-LAYOUT-DIR [REF]",
         "import an image from an OCI layout; prints its chain id", 1, 2, 0, cmd_import},
        {"cleanup", "", "remove crash leftovers of the root", 0, 0, 0, cmd_cleanup},
        {"fsck", "[--repair]", "check (and repair) metadata, files, loop devices and mounts", 0, 0,
         CTL_OPT_REPAIR, cmd_fsck},
        {"doctor", "", "what the kernel and the system offer, and what falls back", 0, 0, 0,
         cmd_doctor},
        {"loops", "[--all]", "loop devices of this root (--all: of any loopsnap user)", 0, 0,
         CTL_OPT_ALL, cmd_loops},
        {"oci-config", "BUNDLE --parent NAME [--key K] [--keep] [--size N] [--hook PATH]",
         "write the loopsnap OCI hooks and annotations into BUNDLE/config.json", 1, 1,
         CTL_OPT_PARENT | CTL_OPT_KEY | CTL_OPT_KEEP | CTL_OPT_SIZE | CTL_OPT_HOOK,
         ctl_cmd_oci_config},
        {NULL, NULL, NULL, 0, 0, 0, NULL},
};
