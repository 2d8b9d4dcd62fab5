/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * loopsnap-oci-hook — an OCI runtime hook that gives a container its root
 * filesystem from a loopsnap snapshot (docs/hook.md).
 *
 *   loopsnap-oci-hook createRuntime|createContainer|poststop|auto   (state on stdin)
 *   loopsnap-oci-hook sweep        release entries of containers that are gone
 *
 * This file parses the command line, reads the state and reports errors:
 * on stderr, which crun connects to the file named by the
 * run.oci.hooks.stderr annotation (and to /dev/null without it), and, for
 * runtimes that do not, appended to that file directly. Exit status: 0 done,
 * 1 failed (the runtime then aborts the create), 2 usage.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin/hook.h"

/* Where errors go besides stderr: the annotation's file when stderr is not
 * that file already. Set once the state is read. */
static const char *extra_log;

static void emit(const char *line)
{
        fprintf(stderr, "%s: %s\n", HOOK_NAME, line);
        (void)fflush(stderr);
        if (!extra_log)
                return;
        int fd = open(extra_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return;
        dprintf(fd, "%s: %s\n", HOOK_NAME, line);
        close(fd);
}

void hook_warn(const char *fmt, ...)
{
        char line[UTIL_ERR_MSG_MAX + HOOK_ID_MAX + 64];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        emit(line);
}

/* The annotation's file, unless stderr already is it (crun opens it for
 * us: writing it twice would log every line twice). */
static void set_extra_log(const char *path)
{
        struct stat a, b;

        if (!path || !*path)
                return;
        if (fstat(STDERR_FILENO, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino)
                return;
        extra_log = path;
}

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: %s createRuntime|createContainer|poststop|auto   (OCI state JSON on "
                "stdin)\n"
                "       %s sweep\n\n"
                "An OCI runtime hook giving a container its root filesystem from a loopsnap\n"
                "snapshot (docs/hook.md). Register all three stages; 'snapctl oci-config'\n"
                "writes them into a bundle; 'auto' tells the stage from the state (for\n"
                "oci-hooks(5) files, which pass one argument list to every stage). 'sweep'\n"
                "releases staging entries (and their snapshots) of containers that are gone.\n",
                HOOK_NAME, HOOK_NAME);
}

static void sweep_line(const char *line)
{
        emit(line);
}

int main(int argc, char **argv)
{
        struct hook_input in = {0};
        struct util_err err = {0};
        const char *stage = argc > 1 ? argv[1] : NULL;
        int (*run)(struct hook_input *, struct util_err *) = NULL;
        int rc;

        if (argc == 2 && (strcmp(stage, "-h") == 0 || strcmp(stage, "--help") == 0)) {
                usage(stdout);
                return 0;
        }
        if (argc == 2 && strcmp(stage, "--version") == 0) {
                printf("%s %s\n", HOOK_NAME, LOOPSNAP_VERSION);
                return 0;
        }
        if (argc != 2) {
                usage(stderr);
                return 2;
        }
        if (strcmp(stage, "sweep") == 0) {
                int lock = hook_lock(&err);
                if (lock < 0) {
                        emit(err.msg);
                        return 1;
                }
                rc = hook_sweep(sweep_line);
                close(lock);
                printf("released %d entr%s\n", rc, rc == 1 ? "y" : "ies");
                return 0;
        }
        bool automatic = strcmp(stage, "auto") == 0;
        if (strcmp(stage, "createRuntime") == 0)
                run = hook_create_runtime;
        else if (strcmp(stage, "createContainer") == 0)
                run = hook_create_container;
        else if (strcmp(stage, "poststop") == 0)
                run = hook_poststop;
        if (!run && !automatic) {
                fprintf(stderr, "%s: unknown stage '%s'\n", HOOK_NAME, stage);
                usage(stderr);
                return 2;
        }

        util_debug(UTIL_DBG_PLUGIN, "%s: start", stage);
        rc = hook_input_read_state(STDIN_FILENO, &in, &err);
        set_extra_log(in.stderr_file);
        if (rc >= 0 && automatic) {
                rc = hook_stage_guess(&in, &stage, &err);
                if (rc >= 0)
                        run = strcmp(stage, "createRuntime") == 0     ? hook_create_runtime
                              : strcmp(stage, "createContainer") == 0 ? hook_create_container
                                                                      : hook_poststop;
        }
        if (rc >= 0)
                rc = run(&in, &err);
        if (rc < 0) {
                char line[UTIL_ERR_MSG_MAX + HOOK_ID_MAX + 64];
                /* The annotation may have come from config.json only. */
                if (!extra_log)
                        set_extra_log(in.stderr_file);
                if (in.id[0])
                        snprintf(line, sizeof(line), "%s '%s': %s", stage, in.id, err.msg);
                else
                        snprintf(line, sizeof(line), "%s: %s", stage, err.msg);
                emit(line);
        }
        util_debug(UTIL_DBG_PLUGIN, "%s '%s': done (%s)", stage, in.id, rc < 0 ? "failed" : "ok");
        hook_input_done(&in);
        return rc < 0 ? 1 : 0;
}
