/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Runs after every other test: fails if a test left anything behind — a loop
 * device tagged by a test ("loopsnap:test-*"), a mount or a directory under
 * /var/tmp/loopsnap-test.*. It only reports; it never detaches or removes.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "test/priv/priv.h"

int main(void)
{
        struct loop_status *list = NULL;
        size_t n = 0;
        struct util_err err = {0};
        int leaks = 0;

        if (access("/dev/loop-control", F_OK) == 0) {
                struct loop_filter f = {.tag_prefix = LOOP_TAG_PREFIX PRIV_TAG_OWNER_PREFIX};
                if (loop_list(&f, &list, &n, &err) < 0) {
                        fprintf(stderr, "leakcheck: %s\n", err.msg);
                        return 1;
                }
                for (size_t i = 0; i < n; i++, leaks++)
                        printf("leaked loop device: %s tag %s backing %s\n", list[i].path,
                               list[i].tag, list[i].backing_file);
                free(list);
        }

        FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[4096];
        while (f && fgets(line, sizeof(line), f)) {
                char target[1024];
                if (sscanf(line, "%*s %*s %*s %*s %1023s", target) == 1 &&
                    strncmp(target, PRIV_TMP_PREFIX, strlen(PRIV_TMP_PREFIX)) == 0) {
                        printf("leaked mount: %s\n", target);
                        leaks++;
                }
        }
        if (f)
                (void)fclose(f); /* read only */

        DIR *d = opendir("/var/tmp");
        struct dirent *de;
        while (d && (de = readdir(d)))
                if (strncmp(de->d_name, "loopsnap-test.", 14) == 0) {
                        printf("leaked directory: /var/tmp/%s\n", de->d_name);
                        leaks++;
                }
        if (d)
                closedir(d);

        printf("leakcheck: %d leftovers from the tests\n", leaks);
        return leaks ? 1 : 0;
}
