/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers for the privileged tests (root, real kernel): one gate per kernel
 * feature that skips visibly with a reason, a private mount namespace per
 * test, temporary directories under /var/tmp, and a registry of the loop
 * devices a test attached so teardown detaches exactly those.
 *
 * Every test device is tagged with owner "test-<pid>" so the leak check that
 * runs after the suite (test/priv/leakcheck.c) can find anything left over.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"

#define PRIV_TAG_OWNER_PREFIX "test-"
#define PRIV_TMP_PREFIX       "/var/tmp/loopsnap-test."

/* Skips the test unless it runs as root in the initial user namespace with a
 * usable /dev/loop-control. */
void priv_require_loop(void);
/* Skips the test unless `prog` is on PATH. */
void priv_require_prog(const char *prog);

/* unshare(CLONE_NEWNS) and make every mount private: the test's mounts
 * disappear with its process. Fails the test on error. */
void priv_private_mount_ns(void);

/* A fresh directory under /var/tmp, removed by priv_teardown(). */
const char *priv_tmpdir(void);
/* Creates a sparse file of `size` bytes in the test's directory; returns
 * its path (static storage per call slot, valid until teardown). */
const char *priv_image(const char *name, uint64_t size);
/* A formatted path in one of 16 rotating static buffers: valid until 16
 * more calls; keep a copy of what must live longer. */
char *priv_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs argv (NULL-terminated) and returns its exit status (-1 on signal). */
int priv_run(const char *const argv[]);

/* The tag owner of this test process: "test-<pid>". */
const char *priv_owner(void);
/* Default attach options: tagged with priv_owner() and `id`. */
struct loop_attach_opts priv_opts(unsigned flags, const char *id);

/* Records a handle for teardown; returns it. */
struct loop_device *priv_track(struct loop_device *d);
/* Forgets (and returns) a tracked handle, when the test releases it itself. */
struct loop_device *priv_untrack(struct loop_device *d);

/* The test's mount engine (created on first use, freed at teardown): its
 * loop devices are tagged with priv_owner() so the leak check sees them,
 * its scratch directory is inside priv_tmpdir(). */
struct mount_engine;
struct mount_engine *priv_engine(void);

/* Runs fn(p) at teardown (in reverse order of registration): what a test
 * allocates is freed, so the sanitizer run reports only leaks of the code
 * under test. Returns p. */
void *priv_defer(void (*fn)(void *), void *p);
/* A copy of `s` that lives until teardown. */
char *priv_keep(const char *s);

/* The number of loop devices whose tag is "loopsnap:<owner>:*". */
size_t priv_devices_tagged(const char *tag_owner);

/* Unmounts the activation cache (<root>/m/<id>: committed layers kept
 * mounted on purpose, docs/snapshot.md) of the snapshotter root at
 * `root_path`, so that what remains is what leaked. Returns how many
 * activations were mounted. */
unsigned priv_drop_activations(const char *root_path);

/* Whether loop device `nr` is still bound with `diskseq` (0 = any). */
bool priv_is_bound(int nr, uint64_t diskseq);

/* Criterion .init / .fini for privileged suites. */
void priv_setup(void);
void priv_teardown(void);
