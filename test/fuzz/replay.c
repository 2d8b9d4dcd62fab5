/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The main of a fuzz target in the normal build (no libFuzzer, any
 * compiler): feeds every file of the given directories (and files) to
 * LLVMFuzzerTestOneInput once, in name order, so the committed seed corpus
 * and the regression inputs (test/fuzz/regressions/<target>/) run as CTest
 * tests (fuzz-replay-<target>). A crashing or invariant-breaking input
 * aborts the process; the last "replay:" line names it.
 *
 *   replay PATH...   a missing directory counts as empty (regressions/ of a
 *                    target that never crashed); no input at all is an error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test/fuzz/fuzz.h"

static int run_file(const char *path, size_t *count)
{
        struct stat st;
        uint8_t *buf;
        size_t len = 0;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        /* +1: a zero-length input still gets a valid pointer. */
        buf = fuzz_oom(malloc((size_t)st.st_size + 1));
        while (len < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        fprintf(stderr, "replay: read %s: %s\n", path,
                                n < 0 ? strerror(errno) : "short read");
                        close(fd);
                        free(buf);
                        return -1;
                }
                len += (size_t)n;
        }
        close(fd);
        printf("replay: %s (%zu bytes)\n", path, len);
        (void)fflush(stdout);
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
        (*count)++;
        return 0;
}

static int only_files(const struct dirent *d)
{
        return d->d_name[0] != '.';
}

static int run_path(const char *path, size_t *count)
{
        struct dirent **names = NULL;
        struct stat st;
        int n, r = 0;

        if (stat(path, &st) < 0) {
                if (errno == ENOENT) {
                        printf("replay: %s: none\n", path);
                        return 0;
                }
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                return -1;
        }
        if (!S_ISDIR(st.st_mode))
                return run_file(path, count);
        n = scandir(path, &names, only_files, alphasort);
        if (n < 0) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                return -1;
        }
        for (int i = 0; i < n; i++) {
                char *file = NULL;
                if (r == 0 && asprintf(&file, "%s/%s", path, names[i]->d_name) < 0) {
                        file = NULL;
                        r = -1;
                }
                if (r == 0 && run_file(file, count) < 0)
                        r = -1;
                free(file);
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char **argv)
{
        size_t count = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++)
                if (run_path(argv[i], &count) < 0)
                        return 1;
        if (count == 0) {
                fprintf(stderr, "replay: no inputs\n");
                return 1;
        }
        printf("replay: %zu inputs, all passed\n", count);
        return 0;
}
