/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One operation of the soak in a fresh process: the controller runs
 *
 *   loopsnap-soak --op OP --root-path ROOT [--key K] [--parent P] [--name N]
 *                 [--target DIR] [--size BYTES] [--plugin LIB] [-- CHANGE...]
 *
 * with LOOPSNAP_FAULT set when the operation is to die at a fault point.
 * The process opens its own root handle (nothing is inherited from the
 * controller but the environment), does the operation, prints one line
 *
 *   RESULT ok [id=N] [hash=H] [n=N]
 *   RESULT err errno=E kind=K msg=...
 *
 * on standard output and exits 0 (ok) or 1 (err); 93 means it stopped at the
 * fault point. OP is prepare, commit, remove, mount, umount, write (the
 * CHANGEs of a plan, model.c, into the mounted snapshot at DIR, then the
 * hash of DIR) or verify (soak_view_hash of committed PARENT through view K).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "test/soak/soak.h"

static int key_id(const struct loopsnap_ops *ops, struct loopsnap_root *root, const char *key,
                  int64_t *ret, struct loopsnap_error *err)
{
        struct loopsnap_info *i = NULL;
        int rc = ops->stat(root, key, &i, err);
        if (rc < 0)
                return rc;
        *ret = i->id;
        ops->info_free(i);
        return 0;
}

int soak_mount(const struct loopsnap_ops *ops, struct loopsnap_root *root, const char *key,
               const char *target, struct loopsnap_error *err)
{
        struct loopsnap_mounts *m = NULL;
        int64_t id = 0;
        char loop_id[32];
        int rc;

        if ((rc = key_id(ops, root, key, &id, err)) < 0)
                return rc;
        if ((rc = ops->mounts(root, key, &m, err)) < 0)
                return rc;
        snprintf(loop_id, sizeof(loop_id), "%" PRId64, id);
        struct loopsnap_mount_opts o = {.struct_size = sizeof(o), .loop_id = loop_id};
        rc = ops->mount_apply(root, m->json, target, &o, err);
        ops->mounts_free(m);
        return rc;
}

int soak_view_hash(const struct loopsnap_ops *ops, struct loopsnap_root *root, const char *key,
                   const char *parent, const char *target, char ret[SOAK_HASH_MAX],
                   struct loopsnap_error *err)
{
        struct loopsnap_error e2 = {.struct_size = sizeof(e2)};
        char hash[SOAK_HASH_MAX];
        int rc;

        rc = ops->view(root, key, parent, NULL, 0, NULL, err);
        if (rc < 0)
                return rc;
        rc = soak_mount(ops, root, key, target, err);
        if (rc >= 0) {
                struct util_err ue = {0};
                int hr = soak_dir_hash(target, hash, &ue);
                int ur = ops->unmount(root, target, LOOPSNAP_UNMOUNT_ALL, &e2);
                if (hr < 0) {
                        soak_err_set(err, -hr, "%s", ue.msg);
                        rc = hr;
                } else if (ur < 0) {
                        *err = e2;
                        rc = ur;
                }
        }
        /* The view goes in every case; its removal's error wins only when
         * everything else worked. */
        int dr = ops->remove(root, key, rc < 0 ? &e2 : err);
        if (rc >= 0 && dr < 0)
                rc = dr;
        if (rc < 0)
                return rc;
        memcpy(ret, hash, SOAK_HASH_MAX);
        return 0;
}

static void print_err(int rc, const struct loopsnap_error *e)
{
        char msg[LOOPSNAP_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "%s", e->message[0] ? e->message : strerror(-rc));
        for (char *p = msg; *p; p++)
                if (*p == '\n')
                        *p = ' ';
        printf("RESULT err errno=%d kind=%d msg=%s\n", -rc, e->kind, msg);
}

int soak_worker_main(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"op", required_argument, NULL, 'o'},
                {"root-path", required_argument, NULL, 'R'},
                {"key", required_argument, NULL, 'k'},
                {"parent", required_argument, NULL, 'p'},
                {"name", required_argument, NULL, 'n'},
                {"target", required_argument, NULL, 't'},
                {"size", required_argument, NULL, 's'},
                {"plugin", required_argument, NULL, 'P'},
                {},
        };
        const char *op = NULL, *root_path = NULL, *key = NULL, *parent = NULL, *name = NULL;
        const char *target = NULL, *size = NULL, *plugin = NULL;
        int c;

        /* Modes as the plan says, not as the umask would make them. */
        umask(0);
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (c) {
                case 'o':
                        op = optarg;
                        break;
                case 'R':
                        root_path = optarg;
                        break;
                case 'k':
                        key = optarg;
                        break;
                case 'p':
                        parent = optarg;
                        break;
                case 'n':
                        name = optarg;
                        break;
                case 't':
                        target = optarg;
                        break;
                case 's':
                        size = optarg;
                        break;
                case 'P':
                        plugin = optarg;
                        break;
                default:
                        return SOAK_OP_EXIT_USAGE;
                }
        }
        if (!op)
                return SOAK_OP_EXIT_USAGE;
        (void)setvbuf(stdout, NULL, _IOLBF, 0);

        struct loopsnap_error err = {.struct_size = sizeof(err)};
        int rc;

        if (strcmp(op, "write") == 0) {
                struct util_err ue = {0};
                char hash[SOAK_HASH_MAX];
                if (!target)
                        return SOAK_OP_EXIT_USAGE;
                rc = soak_plan_apply_dir(target, argv + optind, (size_t)(argc - optind), &ue);
                if (rc >= 0)
                        rc = soak_dir_hash(target, hash, &ue);
                if (rc < 0) {
                        soak_err_set(&err, -rc, "%s", ue.msg);
                        print_err(rc, &err);
                        return SOAK_OP_EXIT_FAILED;
                }
                printf("RESULT ok hash=%s\n", hash);
                return SOAK_OP_EXIT_OK;
        }

        const struct loopsnap_ops *ops = NULL;
        struct loopsnap_root *root = NULL;
        struct util_err ue = {0};
        if (!root_path || soak_plugin_load(plugin, &ops, &ue) < 0) {
                fprintf(stderr, "loopsnap-soak --op %s: %s\n", op, ue.msg);
                return SOAK_OP_EXIT_USAGE;
        }
        rc = soak_root_open(ops, root_path, NULL, 0, &root, &err);
        if (rc < 0) {
                print_err(rc, &err);
                return SOAK_OP_EXIT_FAILED;
        }

        int64_t id = -1;
        int n = -1;
        char hash[SOAK_HASH_MAX] = "";
        if (strcmp(op, "prepare") == 0 && key) {
                char max_size[32];
                const char *labels[] = {"containerd.io/snapshot/max-size", max_size};
                if (size)
                        snprintf(max_size, sizeof(max_size), "%s", size);
                rc = ops->prepare(root, key, parent, labels, size ? 1 : 0, NULL, &err);
                if (rc >= 0 && key_id(ops, root, key, &id, &err) < 0)
                        id = 0; /* prepared all the same; the checkpoint finds the id */
        } else if (strcmp(op, "commit") == 0 && key && name) {
                rc = ops->commit(root, name, key, NULL, 0, &err);
        } else if (strcmp(op, "remove") == 0 && key) {
                rc = ops->remove(root, key, &err);
        } else if (strcmp(op, "mount") == 0 && key && target) {
                rc = soak_mount(ops, root, key, target, &err);
        } else if (strcmp(op, "umount") == 0 && target) {
                rc = n = ops->unmount(root, target, LOOPSNAP_UNMOUNT_ALL, &err);
        } else if (strcmp(op, "verify") == 0 && key && parent && target) {
                rc = soak_view_hash(ops, root, key, parent, target, hash, &err);
        } else {
                ops->root_close(root);
                return SOAK_OP_EXIT_USAGE;
        }
        ops->root_close(root);
        if (rc < 0) {
                print_err(rc, &err);
                return SOAK_OP_EXIT_FAILED;
        }
        printf("RESULT ok");
        if (id >= 0)
                printf(" id=%" PRId64, id);
        if (n >= 0)
                printf(" n=%d", n);
        if (hash[0])
                printf(" hash=%s", hash);
        printf("\n");
        return SOAK_OP_EXIT_OK;
}
