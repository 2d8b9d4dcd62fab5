/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The `hook` suite of loopsnap-bench (hook.c): crun run with the OCI hook
 * against a plain directory root. */
#pragma once

#include <stdbool.h>

#define BENCH_HOOK_ITERATIONS 30u

/* Runs the suite and prints its figures (text, or one JSON object).
 * Returns 0 when the run completed (target met or not), -errno when it
 * could not be set up, a container failed, or something was left behind. */
int bench_hook(bool json, unsigned iterations);
