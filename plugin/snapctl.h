/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * snapctl — private header of the command-line tool (docs/snapctl.1).
 * snapctl reaches the snapshotter only through the plugin ABI: it dlopen()s
 * libloopsnap.so.1 (snapctl-load.c) and calls the table; it links none of
 * loopsnap's module libraries (util/util.h is used for its header-only
 * cleanup macros). It is the one place that prints: data on stdout (text or
 * --json, one JSON value per run), errors as "snapctl: <message>" on stderr,
 * and the exit code comes from one function, ctl_exit_code().
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>

#include "plugin/loopsnap.h"
#include "util/util.h"

/* Exit codes (docs/snapctl.1, EXIT STATUS). */
enum ctl_exit {
        CTL_EXIT_OK = 0,
        CTL_EXIT_INTERNAL = 1,
        CTL_EXIT_USAGE = 2,
        CTL_EXIT_NOT_FOUND = 3,
        CTL_EXIT_ALREADY_EXISTS = 4,
        CTL_EXIT_FAILED_PRECONDITION = 5,
        CTL_EXIT_INVALID_ARGUMENT = 6,
        CTL_EXIT_UNAVAILABLE = 7,
        CTL_EXIT_NOT_SUPPORTED = 8,
        CTL_EXIT_FSCK_PROBLEMS = 9,
        CTL_EXIT_PLUGIN = 10,
};

/* What ended a run, for ctl_exit_code(). */
enum ctl_outcome {
        CTL_OUTCOME_OK = 0,
        CTL_OUTCOME_ERROR,         /* an operation failed: the error's kind decides */
        CTL_OUTCOME_USAGE,         /* the command line is wrong */
        CTL_OUTCOME_FSCK_PROBLEMS, /* fsck found problems that remain */
        CTL_OUTCOME_PLUGIN,        /* the library could not be loaded or refused the ABI */
};

/* The one mapping to exit codes: outcome, and for errors their kind. */
int ctl_exit_code(enum ctl_outcome outcome, int kind);

/* Command-specific options (a command lists those it accepts). */
enum ctl_opt {
        CTL_OPT_LABEL = 1u << 0,  /* --label K=V (repeatable) */
        CTL_OPT_REPAIR = 1u << 1, /* --repair */
        CTL_OPT_ALL = 1u << 2,    /* --all */
        CTL_OPT_PARENT = 1u << 3, /* --parent NAME */
        CTL_OPT_KEY = 1u << 4,    /* --key K (oci-config) */
        CTL_OPT_KEEP = 1u << 5,   /* --keep (oci-config) */
        CTL_OPT_SIZE = 1u << 6,   /* --size N (oci-config) */
        CTL_OPT_HOOK = 1u << 7,   /* --hook PATH (oci-config) */
};

#define CTL_MAX_LABELS 256

struct ctl {
        /* The loaded library. */
        void *dl;
        const struct loopsnap_ops *ops;
        char plugin_path[4096];
        /* Global options. */
        const char *root_path;
        const char *layout;
        const char *writable_fs;
        const char *committed_format;
        uint64_t writable_size;
        bool upper_dir;
        int writable_pool; /* -1 the library's default (on), 0 --no-writable-pool, 1 */
        bool json;
        bool verbose;
        /* Command options. */
        const char *labels[2 * CTL_MAX_LABELS]; /* key, value, ... (into argv) */
        size_t n_labels;
        char *label_buf[CTL_MAX_LABELS]; /* the split copies, freed at exit */
        bool repair;
        bool all;
        const char *parent;
        const char *key;       /* oci-config --key */
        bool keep;             /* oci-config --keep */
        uint64_t size;         /* oci-config --size; 0: not given */
        const char *hook_path; /* oci-config --hook */
        /* Opened on first use. */
        struct loopsnap_root *root;
        /* The last failure. */
        struct loopsnap_error err;
};

struct ctl_cmd {
        const char *name;
        const char *synopsis; /* after "snapctl NAME " */
        const char *summary;
        int min_args, max_args; /* positional; max -1: any */
        unsigned opts;          /* enum ctl_opt */
        int (*run)(struct ctl *c, int argc, char **argv);
};

/* The command table (snapctl-cmd.c), terminated by a NULL name. */
extern const struct ctl_cmd ctl_cmds[];

/* oci-config (snapctl-oci.c): BUNDLE. Returns an exit code. */
int ctl_cmd_oci_config(struct ctl *c, int argc, char **argv);

/* ---- loading (snapctl-load.c) ---------------------------------------------- */

/* Finds, dlopen()s and enters the library. Returns an exit code. */
int ctl_load(struct ctl *c);
void ctl_unload(struct ctl *c);
/* Opens the root (once) with the global options. Returns an exit code. */
int ctl_root(struct ctl *c);

/* ---- output (snapctl-out.c) -------------------------------------------------- */

/* Prints "snapctl: <msg>" on stderr. */
void ctl_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints c->err and returns the exit code of its kind. */
int ctl_fail(struct ctl *c, int rc);
/* A usage error: prints the message and a hint; returns CTL_EXIT_USAGE. */
int ctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A JSON generator for stdout; ctl_json_end prints it (with a newline). */
yajl_gen ctl_json_begin(void);
int ctl_json_end(yajl_gen g);
void ctl_json_str(yajl_gen g, const char *s); /* NULL: null */
void ctl_json_key(yajl_gen g, const char *k);
void ctl_json_int(yajl_gen g, long long v);
void ctl_json_bool(yajl_gen g, bool v);
/* A tri-state (1/0/-1) as true/false/null. */
void ctl_json_tri(yajl_gen g, int v);
void ctl_json_info(yajl_gen g, const struct loopsnap_info *i);
void ctl_json_mounts(yajl_gen g, const struct loopsnap_mounts *m);

const char *ctl_kind_name(int kind);
/* "1.5 GiB" into buf. */
const char *ctl_human_size(uint64_t bytes, char *buf, size_t size);
/* "2024-05-01 12:00:00" (UTC) into buf. */
const char *ctl_time(int64_t ns, char *buf, size_t size);
void ctl_print_info(const struct loopsnap_info *i);

/* A progress bar on stderr, only when stderr is a terminal (the callback of
 * apply_layer / import_oci). */
void ctl_progress(void *data, const struct loopsnap_progress *p);
/* Ends the bar's line if one was drawn. */
void ctl_progress_done(void);

/* Log callback for --verbose. */
void ctl_log(void *data, int level, const char *message);
