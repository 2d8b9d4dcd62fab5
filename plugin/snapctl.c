/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * snapctl — the command-line front door of loopsnap (docs/snapctl.1).
 *
 *   snapctl [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]
 *
 * Global options may also follow the command. This file parses the command
 * line, prints help, loads the plugin and runs the command from the table
 * in snapctl-cmd.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "plugin/snapctl.h"

enum {
        OPT_ROOT = 256,
        OPT_LAYOUT,
        OPT_WRITABLE_FS,
        OPT_WRITABLE_SIZE,
        OPT_COMMITTED_FORMAT,
        OPT_UPPER_DIR,
        OPT_WRITABLE_POOL,
        OPT_NO_WRITABLE_POOL,
        OPT_JSON,
        OPT_VERSION,
        OPT_LABEL,
        OPT_REPAIR,
        OPT_ALL,
        OPT_PARENT,
        OPT_KEY,
        OPT_KEEP,
        OPT_SIZE,
        OPT_HOOK,
};

static const struct option long_opts[] = {
        {"root", required_argument, NULL, OPT_ROOT},
        {"layout", required_argument, NULL, OPT_LAYOUT},
        {"writable-fs", required_argument, NULL, OPT_WRITABLE_FS},
        {"writable-size", required_argument, NULL, OPT_WRITABLE_SIZE},
        {"committed-format", required_argument, NULL, OPT_COMMITTED_FORMAT},
        {"upper-dir", no_argument, NULL, OPT_UPPER_DIR},
        {"writable-pool", no_argument, NULL, OPT_WRITABLE_POOL},
        {"no-writable-pool", no_argument, NULL, OPT_NO_WRITABLE_POOL},
        {"json", no_argument, NULL, OPT_JSON},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"label", required_argument, NULL, OPT_LABEL},
        {"repair", no_argument, NULL, OPT_REPAIR},
        {"all", no_argument, NULL, OPT_ALL},
        {"parent", required_argument, NULL, OPT_PARENT},
        {"key", required_argument, NULL, OPT_KEY},
        {"keep", no_argument, NULL, OPT_KEEP},
        {"size", required_argument, NULL, OPT_SIZE},
        {"hook", required_argument, NULL, OPT_HOOK},
        {NULL, 0, NULL, 0},
};

static const char global_help[] =
        "Global options (before or after the command):\n"
        "  --root DIR               the snapshotter root (default /var/lib/loopsnap)\n"
        "  --layout overlay|block   layout of a new root (default overlay)\n"
        "  --writable-fs ext4|xfs   filesystem of writable images of a new root\n"
        "  --writable-size SIZE     writable image size of a new root (K/M/G/T suffixes)\n"
        "  --committed-format ext4|erofs  format of committed layers of a new root\n"
        "  --upper-dir              writable upper as a plain directory (new root)\n"
        "  --writable-pool          keep emptied writable images mounted for reuse (default)\n"
        "  --no-writable-pool       delete a removed snapshot's writable image at once\n"
        "  --json                   print data as one JSON value on stdout\n"
        "  -v, --verbose            show what the library does (on stderr)\n"
        "  -h, --help               this help, or a command's\n"
        "  --version                versions of snapctl and of the library\n";

static const struct ctl_cmd *cmd_find(const char *name)
{
        for (const struct ctl_cmd *k = ctl_cmds; k->name; k++)
                if (strcmp(k->name, name) == 0)
                        return k;
        return NULL;
}

static void help_main(void)
{
        printf("Usage: snapctl [OPTIONS] COMMAND [ARGS]\n\n"
               "Manage a loopsnap snapshotter root: snapshots whose layers are image files on "
               "loop devices.\n\nCommands:\n");
        for (const struct ctl_cmd *k = ctl_cmds; k->name; k++)
                printf("  %-11s %s\n", k->name, k->summary);
        printf("  %-11s %s\n", "help", "this help, or 'help COMMAND'");
        printf("\n%s\nExit status: 0 success, 1 internal error, 2 usage, 3 not found, 4 already "
               "exists,\n5 failed precondition, 6 invalid argument, 7 unavailable, 8 not "
               "supported,\n9 fsck problems remain, 10 plugin not loadable (see snapctl(1)).\n",
               global_help);
}

static void help_cmd(const struct ctl_cmd *k)
{
        printf("Usage: snapctl %s%s%s\n\n%s.\n", k->name, *k->synopsis ? " " : "", k->synopsis,
               k->summary);
        if (k->opts) {
                printf("\nOptions:\n");
                if (k->opts & CTL_OPT_LABEL)
                        printf("  --label K=V   a label (repeatable; K= sets an empty value)\n");
                if (k->opts & CTL_OPT_REPAIR)
                        printf("  --repair      repair what can be repaired; exit 9 if problems "
                               "remain\n");
                if (k->opts & CTL_OPT_ALL)
                        printf("  --all         %s\n",
                               strcmp(k->name, "umount") == 0
                                       ? "peel every mount stacked on TARGET"
                                       : "loop devices of every loopsnap user, not this root's");
                if (k->opts & CTL_OPT_PARENT)
                        printf("  --parent NAME the committed snapshot (name or chain id) the "
                               "container runs on\n");
                if (k->opts & CTL_OPT_KEY)
                        printf("  --key K       the container's snapshot key (default: the "
                               "container id)\n");
                if (k->opts & CTL_OPT_KEEP)
                        printf("  --keep        keep the snapshot after the container stops\n");
                if (k->opts & CTL_OPT_SIZE)
                        printf("  --size N      writable image size (K/M/G/T suffixes)\n");
                if (k->opts & CTL_OPT_HOOK)
                        printf("  --hook PATH   the hook binary (default: loopsnap-oci-hook next "
                               "to snapctl, or installed)\n");
        }
        printf("\n%s", global_help);
}

/* Splits "K=V" into the label list. Returns an exit code. */
static int label_add(struct ctl *c, const char *cmd, const char *arg)
{
        const char *eq = strchr(arg, '=');

        if (!eq || eq == arg)
                return ctl_usage_error(cmd, "--label '%s': expected KEY=VALUE", arg);
        if (c->n_labels == CTL_MAX_LABELS)
                return ctl_usage_error(cmd, "at most %d labels", CTL_MAX_LABELS);
        char *key = strndup(arg, (size_t)(eq - arg));
        if (!key) {
                ctl_msg("out of memory");
                return CTL_EXIT_INTERNAL;
        }
        c->label_buf[c->n_labels] = key;
        c->labels[2 * c->n_labels] = key;
        c->labels[2 * c->n_labels + 1] = eq + 1;
        c->n_labels++;
        return CTL_EXIT_OK;
}

/*
 * Parses options out of argv[1..]. `cmd` NULL: the global part, which stops
 * at the command's name (optind then points at it). With a command, every
 * positional argument is collected into pos (in order; "--" ends the
 * options). Returns an exit code, or -1 when --version was given.
 */
static int parse(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv, bool *help,
                 char **pos, int *n_pos)
{
        const char *name = cmd ? cmd->name : NULL;
        int o, idx;

        optind = 0; /* glibc: reinitialise (this runs twice) */
        opterr = 0;
        while ((o = getopt_long(argc, argv, cmd ? "-:vh" : "+:vh", long_opts, &idx)) != -1) {
                unsigned need = 0;
                switch (o) {
                case 1: /* a positional argument, in order ("-" mode) */
                        /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): "-" mode has pos */
                        pos[(*n_pos)++] = optarg;
                        continue;
                case OPT_ROOT:
                        c->root_path = optarg;
                        continue;
                case OPT_LAYOUT:
                        c->layout = optarg;
                        continue;
                case OPT_WRITABLE_FS:
                        c->writable_fs = optarg;
                        continue;
                case OPT_WRITABLE_SIZE:
                        if (util_parse_size(optarg, &c->writable_size) < 0 || !c->writable_size)
                                return ctl_usage_error(name,
                                                       "--writable-size '%s': expected a size "
                                                       "such as 64M or 10G",
                                                       optarg);
                        continue;
                case OPT_COMMITTED_FORMAT:
                        c->committed_format = optarg;
                        continue;
                case OPT_UPPER_DIR:
                        c->upper_dir = true;
                        continue;
                case OPT_WRITABLE_POOL:
                        c->writable_pool = 1;
                        continue;
                case OPT_NO_WRITABLE_POOL:
                        c->writable_pool = 0;
                        continue;
                case OPT_JSON:
                        c->json = true;
                        continue;
                case 'v':
                        c->verbose = true;
                        continue;
                case 'h':
                        *help = true;
                        continue;
                case OPT_VERSION:
                        if (cmd)
                                return ctl_usage_error(name, "--version is not a command option");
                        return -1;
                case OPT_LABEL:
                        need = CTL_OPT_LABEL;
                        break;
                case OPT_REPAIR:
                        need = CTL_OPT_REPAIR;
                        break;
                case OPT_ALL:
                        need = CTL_OPT_ALL;
                        break;
                case OPT_PARENT:
                        need = CTL_OPT_PARENT;
                        break;
                case OPT_KEY:
                        need = CTL_OPT_KEY;
                        break;
                case OPT_KEEP:
                        need = CTL_OPT_KEEP;
                        break;
                case OPT_SIZE:
                        need = CTL_OPT_SIZE;
                        break;
                case OPT_HOOK:
                        need = CTL_OPT_HOOK;
                        break;
                case ':':
                        return ctl_usage_error(name, "option '%s' needs a value", argv[optind - 1]);
                default:
                        if (optopt > 0 && optopt < 256)
                                return ctl_usage_error(name, "unknown option '-%c'", optopt);
                        return ctl_usage_error(name, "unknown option '%s'", argv[optind - 1]);
                }
                if (!cmd)
                        return ctl_usage_error(NULL, "--%s goes after the command",
                                               long_opts[idx].name);
                if (!(cmd->opts & need))
                        return ctl_usage_error(name, "--%s is not an option of snapctl %s",
                                               long_opts[idx].name, name);
                if (o == OPT_LABEL) {
                        int rc = label_add(c, name, optarg);
                        if (rc != CTL_EXIT_OK)
                                return rc;
                } else if (o == OPT_REPAIR) {
                        c->repair = true;
                } else if (o == OPT_ALL) {
                        c->all = true;
                } else if (o == OPT_KEY) {
                        c->key = optarg;
                } else if (o == OPT_KEEP) {
                        c->keep = true;
                } else if (o == OPT_SIZE) {
                        if (util_parse_size(optarg, &c->size) < 0 || !c->size)
                                return ctl_usage_error(name,
                                                       "--size '%s': expected a size such as 64M "
                                                       "or 10G",
                                                       optarg);
                } else if (o == OPT_HOOK) {
                        c->hook_path = optarg;
                } else {
                        c->parent = optarg;
                }
        }
        /* After "--" everything is positional. */
        for (int k = optind; cmd && k < argc; k++)
                pos[(*n_pos)++] = argv[k];
        return CTL_EXIT_OK;
}

static int run(struct ctl *c, int argc, char **argv)
{
        bool help = false;
        int n_pos = 0, rc;

        rc = parse(c, NULL, argc, argv, &help, NULL, &n_pos);
        if (rc < 0) {
                printf("snapctl %s\n", LOOPSNAP_VERSION);
                if ((rc = ctl_load(c)) != CTL_EXIT_OK)
                        return rc;
                printf("libloopsnap %s (ABI %u.%u) from %s\n", c->ops->version, c->ops->abi_major,
                       c->ops->abi_minor, c->plugin_path);
                return CTL_EXIT_OK;
        }
        if (rc != CTL_EXIT_OK)
                return rc;
        int first = optind;
        if (first >= argc) {
                if (help) {
                        help_main();
                        return CTL_EXIT_OK;
                }
                return ctl_usage_error(NULL, "no command given");
        }
        const char *name = argv[first];
        if (strcmp(name, "help") == 0) {
                if (first + 1 >= argc) {
                        help_main();
                        return CTL_EXIT_OK;
                }
                const struct ctl_cmd *k = cmd_find(argv[first + 1]);
                if (!k)
                        return ctl_usage_error(NULL, "no command '%s'", argv[first + 1]);
                help_cmd(k);
                return CTL_EXIT_OK;
        }
        const struct ctl_cmd *cmd = cmd_find(name);
        if (!cmd)
                return ctl_usage_error(NULL, "no command '%s'", name);

        /* The command's part of the line: its name is the argv[0] getopt skips. */
        int sub_argc = argc - first;
        _cleanup_free_ char **pos = calloc((size_t)sub_argc + 1, sizeof(*pos));
        if (!pos) {
                ctl_msg("out of memory");
                return CTL_EXIT_INTERNAL;
        }
        rc = parse(c, cmd, sub_argc, argv + first, &help, pos, &n_pos);
        if (rc != CTL_EXIT_OK)
                return rc;
        if (help) {
                help_cmd(cmd);
                return CTL_EXIT_OK;
        }
        if (n_pos < cmd->min_args)
                return ctl_usage_error(name, "missing arguments: snapctl %s %s", name,
                                       cmd->synopsis);
        if (cmd->max_args >= 0 && n_pos > cmd->max_args)
                return ctl_usage_error(name, "too many arguments: snapctl %s %s", name,
                                       cmd->synopsis);

        if ((rc = ctl_load(c)) != CTL_EXIT_OK)
                return rc;
        return cmd->run(c, n_pos, pos);
}

int main(int argc, char **argv)
{
        struct ctl c = {.err = {.struct_size = sizeof(c.err)}, .writable_pool = -1};

        int rc = run(&c, argc, argv);
        ctl_progress_done();
        ctl_unload(&c);
        for (size_t k = 0; k < c.n_labels; k++)
                free(c.label_buf[k]);
        /* ferror() too: a write that went straight to the fd (larger than
         * stdio's buffer) and failed leaves nothing to flush, and fflush()
         * returns 0 for it. */
        if ((fflush(stdout) != 0 || ferror(stdout)) && rc == CTL_EXIT_OK) {
                ctl_msg("write to stdout failed: %m");
                rc = CTL_EXIT_INTERNAL;
        }
        return rc;
}
