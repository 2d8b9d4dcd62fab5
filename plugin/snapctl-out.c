/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * snapctl's output: the exit-code mapping (the only one), error and usage
 * messages on stderr, the JSON generator for --json (yajl, UTF-8 checked,
 * one value per run on stdout), text helpers, the progress bar and the
 * --verbose log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "plugin/snapctl.h"

int ctl_exit_code(enum ctl_outcome outcome, int kind)
{
        switch (outcome) {
        case CTL_OUTCOME_OK:
                return CTL_EXIT_OK;
        case CTL_OUTCOME_USAGE:
                return CTL_EXIT_USAGE;
        case CTL_OUTCOME_FSCK_PROBLEMS:
                return CTL_EXIT_FSCK_PROBLEMS;
        case CTL_OUTCOME_PLUGIN:
                return CTL_EXIT_PLUGIN;
        case CTL_OUTCOME_ERROR:
                break;
        }
        switch (kind) {
        case LOOPSNAP_ERR_NOT_FOUND:
                return CTL_EXIT_NOT_FOUND;
        case LOOPSNAP_ERR_ALREADY_EXISTS:
                return CTL_EXIT_ALREADY_EXISTS;
        case LOOPSNAP_ERR_FAILED_PRECONDITION:
                return CTL_EXIT_FAILED_PRECONDITION;
        case LOOPSNAP_ERR_INVALID_ARGUMENT:
                return CTL_EXIT_INVALID_ARGUMENT;
        case LOOPSNAP_ERR_UNAVAILABLE:
                return CTL_EXIT_UNAVAILABLE;
        case LOOPSNAP_ERR_NOT_SUPPORTED:
                return CTL_EXIT_NOT_SUPPORTED;
        default: /* internal, and any kind a newer plugin might add */
                return CTL_EXIT_INTERNAL;
        }
}

void ctl_msg(const char *fmt, ...)
{
        va_list ap;

        ctl_progress_done();
        fputs("snapctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

int ctl_fail(struct ctl *c, int rc)
{
        ctl_msg("%s", c->err.message[0] ? c->err.message : "unknown error");
        return ctl_exit_code(CTL_OUTCOME_ERROR, c->err.kind);
}

int ctl_usage_error(const char *cmd, const char *fmt, ...)
{
        va_list ap;

        fputs("snapctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'snapctl %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
        return ctl_exit_code(CTL_OUTCOME_USAGE, 0);
}

/* ---- JSON ------------------------------------------------------------------- */

yajl_gen ctl_json_begin(void)
{
        yajl_gen g = yajl_gen_alloc(NULL);
        if (!g)
                return NULL;
        yajl_gen_config(g, yajl_gen_beautify, 1);
        yajl_gen_config(g, yajl_gen_validate_utf8, 1);
        return g;
}

int ctl_json_end(yajl_gen g)
{
        const unsigned char *buf;
        size_t len;
        int rc = CTL_EXIT_OK;

        if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
                ctl_msg("--json: the output is not a complete JSON document");
                rc = CTL_EXIT_INTERNAL;
        } else {
                /* A failed write sets stdout's error flag, which main()
                 * checks before it exits. */
                (void)fwrite(buf, 1, len, stdout);
                if (len && buf[len - 1] != '\n')
                        fputc('\n', stdout);
        }
        yajl_gen_free(g);
        return rc;
}

void ctl_json_str(yajl_gen g, const char *s)
{
        if (!s)
                yajl_gen_null(g);
        else
                yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

void ctl_json_key(yajl_gen g, const char *k)
{
        ctl_json_str(g, k);
}

void ctl_json_int(yajl_gen g, long long v)
{
        yajl_gen_integer(g, v);
}

void ctl_json_bool(yajl_gen g, bool v)
{
        yajl_gen_bool(g, v);
}

void ctl_json_tri(yajl_gen g, int v)
{
        if (v < 0)
                yajl_gen_null(g);
        else
                yajl_gen_bool(g, v != 0);
}

const char *ctl_kind_name(int kind)
{
        switch (kind) {
        case LOOPSNAP_KIND_VIEW:
                return "view";
        case LOOPSNAP_KIND_ACTIVE:
                return "active";
        case LOOPSNAP_KIND_COMMITTED:
                return "committed";
        default:
                return "unknown";
        }
}

void ctl_json_info(yajl_gen g, const struct loopsnap_info *i)
{
        yajl_gen_map_open(g);
        ctl_json_key(g, "name");
        ctl_json_str(g, i->name);
        ctl_json_key(g, "id");
        ctl_json_int(g, i->id);
        ctl_json_key(g, "kind");
        ctl_json_str(g, ctl_kind_name(i->kind));
        ctl_json_key(g, "parent");
        ctl_json_str(g, i->parent);
        ctl_json_key(g, "labels");
        yajl_gen_map_open(g);
        for (size_t k = 0; k < i->n_labels; k++) {
                ctl_json_key(g, i->labels[2 * k]);
                ctl_json_str(g, i->labels[2 * k + 1]);
        }
        yajl_gen_map_close(g);
        ctl_json_key(g, "created_ns");
        ctl_json_int(g, i->created_ns);
        ctl_json_key(g, "updated_ns");
        ctl_json_int(g, i->updated_ns);
        ctl_json_key(g, "size");
        ctl_json_int(g, (long long)i->size);
        ctl_json_key(g, "inodes");
        ctl_json_int(g, (long long)i->inodes);
        yajl_gen_map_close(g);
}

void ctl_json_mounts(yajl_gen g, const struct loopsnap_mounts *m)
{
        yajl_gen_array_open(g);
        for (uint32_t k = 0; k < m->n; k++) {
                const struct loopsnap_mount *e = m->mounts[k];
                yajl_gen_map_open(g);
                ctl_json_key(g, "type");
                ctl_json_str(g, e->type);
                ctl_json_key(g, "source");
                ctl_json_str(g, e->source);
                if (e->target) {
                        ctl_json_key(g, "target");
                        ctl_json_str(g, e->target);
                }
                ctl_json_key(g, "options");
                yajl_gen_array_open(g);
                for (uint32_t o = 0; o < e->n_options; o++)
                        ctl_json_str(g, e->options[o]);
                yajl_gen_array_close(g);
                yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
}

/* ---- text -------------------------------------------------------------------- */

const char *ctl_human_size(uint64_t bytes, char *buf, size_t size)
{
        static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
        double v = (double)bytes;
        size_t u = 0;

        while (v >= 1024 && u + 1 < UTIL_ARRAY_SIZE(units)) {
                v /= 1024;
                u++;
        }
        if (u == 0)
                snprintf(buf, size, "%llu B", (unsigned long long)bytes);
        else
                snprintf(buf, size, "%.1f %s", v, units[u]);
        return buf;
}

const char *ctl_time(int64_t ns, char *buf, size_t size)
{
        time_t t = (time_t)(ns / 1000000000);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                snprintf(buf, size, "%lld", (long long)ns);
        return buf;
}

void ctl_print_info(const struct loopsnap_info *i)
{
        char a[64], b[64];

        printf("name:    %s\n", i->name);
        printf("id:      %lld\n", (long long)i->id);
        printf("kind:    %s\n", ctl_kind_name(i->kind));
        printf("parent:  %s\n", i->parent ? i->parent : "-");
        printf("created: %s\n", ctl_time(i->created_ns, a, sizeof(a)));
        printf("updated: %s\n", ctl_time(i->updated_ns, b, sizeof(b)));
        if (i->kind == LOOPSNAP_KIND_COMMITTED) {
                printf("size:    %s\n", ctl_human_size(i->size, a, sizeof(a)));
                printf("inodes:  %llu\n", (unsigned long long)i->inodes);
        }
        printf("labels:%s\n", i->n_labels ? "" : "  -");
        for (size_t k = 0; k < i->n_labels; k++)
                printf("  %s=%s\n", i->labels[2 * k], i->labels[2 * k + 1]);
}

/* ---- progress and log ----------------------------------------------------------- */

/* Whether a bar is on screen (its line not ended yet). snapctl is a program
 * with one thread: a static is fine here, unlike in the library. */
static bool bar_drawn;

void ctl_progress(void *data, const struct loopsnap_progress *p)
{
        char done[32], total[32];
        enum { WIDTH = 30 };

        if (!isatty(STDERR_FILENO) || !p || !LOOPSNAP_HAS_FIELD(p, what))
                return;
        /* "[2/3]" when the number of steps is known, else "[2]". */
        char step[32];
        if (p->n_steps)
                snprintf(step, sizeof(step), "[%u/%u]", p->step, p->n_steps);
        else
                snprintf(step, sizeof(step), "[%u]", p->step);
        ctl_human_size(p->done, done, sizeof(done));
        if (p->total) {
                unsigned fill =
                        (unsigned)(p->done >= p->total ? WIDTH : p->done * WIDTH / p->total);
                char bar[WIDTH + 1];
                memset(bar, '=', fill);
                memset(bar + fill, ' ', WIDTH - fill);
                bar[WIDTH] = '\0';
                fprintf(stderr, "\r\033[K%s [%s] %s / %s %s", step, bar, done,
                        ctl_human_size(p->total, total, sizeof(total)), p->what ? p->what : "");
        } else {
                fprintf(stderr, "\r\033[K%s %s %s", step, done, p->what ? p->what : "");
        }
        (void)fflush(stderr);
        bar_drawn = true;
}

void ctl_progress_done(void)
{
        if (bar_drawn)
                fputc('\n', stderr);
        bar_drawn = false;
}

void ctl_log(void *data, int level, const char *message)
{
        const char *what = level <= LOOPSNAP_LOG_ERROR     ? "error"
                           : level <= LOOPSNAP_LOG_WARNING ? "warning"
                           : level <= LOOPSNAP_LOG_INFO    ? "info"
                                                           : "debug";
        ctl_progress_done();
        fprintf(stderr, "snapctl: [%s] %s\n", what, message);
}
