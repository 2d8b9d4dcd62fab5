/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * idmap/ — id mappings, user-namespace fds and idmapped mounts (DESIGN §7).
 *
 * A mapping is what a user namespace's uid_map or gid_map holds: ranges
 * "container host size". It comes from containerd labels
 * ("0:100000:65536,65536:300000:1000") or from OCI config JSON
 * (linux.uidMappings: [{"containerID":0,"hostID":100000,"size":65536}]).
 * Both are untrusted input: every range is checked (non-empty, no overflow,
 * no overlap on either side, at most IDMAP_MAX_RANGES) before it reaches the
 * kernel, and a mapping string is never pasted into a mount option.
 *
 * Idmapping a mount = a user-namespace fd with the mapping, then
 * mount_setattr(MOUNT_ATTR_IDMAP) on a detached mount (open_tree clone or
 * fsmount). The namespace is made by a short-lived helper child that holds no
 * fd or path of ours (it closes every descriptor but its pipe first).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "util/util.h"

/* The kernel's limit of lines in uid_map/gid_map (since 4.15). */
#define IDMAP_MAX_RANGES 340

struct idmap_range {
        uint32_t container; /* first id inside the namespace */
        uint32_t host;      /* first id outside */
        uint32_t size;      /* > 0 */
};

struct idmap_map {
        size_t n;
        struct idmap_range r[IDMAP_MAX_RANGES];
};

/*
 * idmap_parse: containerd's form "c:h:s[,c:h:s...]" (decimal, no spaces,
 * no empty ranges). `what` names the input in errors ("uidmap"); ranges are
 * counted from 0 and quoted ("uidmap: range 2 '0:1:x': size is not a
 * number"). The result is checked with idmap_map_check().
 * Returns: 0, or -EINVAL (syntax, size 0, overlap), -ERANGE (a number or a
 * range beyond 32 bits), -E2BIG (more than IDMAP_MAX_RANGES ranges, or more
 * text than the kernel takes) with `err` naming the bad range; *ret is
 * untouched on failure.
 */
int idmap_parse(const char *s, const char *what, struct idmap_map *ret, struct util_err *err);

/*
 * idmap_parse_oci: an OCI uidMappings/gidMappings array (a parsed JSON
 * value): [{"containerID":N,"hostID":N,"size":N}, ...]. Exactly those three
 * keys (case-sensitive); unknown, missing or duplicate keys are errors.
 * `what` names the element in errors ("linux.uidMappings"; ranges become
 * "...[2].hostID").
 * Returns: 0, or -EINVAL/-ERANGE/-E2BIG (as idmap_parse) with `err` filled;
 * *ret is untouched on failure.
 */
int idmap_parse_oci(yajl_val arr, const char *what, struct idmap_map *ret, struct util_err *err);

/* Checks a mapping as the kernel's map_write() would: 1..IDMAP_MAX_RANGES
 * ranges, sizes > 0, first + size must not wrap a u32 on either side (so
 * the last id is at most 4294967294; (uid_t)-1 is never an id), no overlap
 * inside or outside, and the uid_map text ("c h s\n" per range) shorter
 * than a page, since the kernel takes the map in one write of < PAGE_SIZE.
 * Returns: 0, -EINVAL, -ERANGE or -E2BIG with `err` naming the range. */
int idmap_map_check(const struct idmap_map *m, const char *what, struct util_err *err);

/* Canonical text "c:h:s,c:h:s" (the order given, no leading zeros).
 * Returns 0, -ENOSPC when it does not fit `size` bytes with its NUL (buf
 * untouched), or -EINVAL for a map of more than IDMAP_MAX_RANGES ranges. */
int idmap_format(const struct idmap_map *m, char *buf, size_t size);

/* Whether two mappings are the same list of ranges. */
bool idmap_map_equal(const struct idmap_map *a, const struct idmap_map *b);

/* Maps a container id to the host id; returns false when unmapped. */
bool idmap_map_to_host(const struct idmap_map *m, uint32_t id, uint32_t *ret);

/*
 * idmap_userns_new: a new user-namespace fd (O_CLOEXEC) with these uid and
 * gid mappings. Needs CAP_SETUID/CAP_SETGID over the host ids (root), and
 * Linux 5.4 (CLONE_PIDFD, waitid(P_PIDFD)). Both maps are checked first.
 * A helper child (exit signal 0, all signals blocked, every fd but its
 * socket closed) lives for the duration of the call and is always reaped.
 * Costs about 0.2 ms; cache the result (idmap_cache_get).
 * Returns: 0 and the fd in *ret_fd (caller closes), or -errno with `err`.
 */
int idmap_userns_new(const struct idmap_map *uid, const struct idmap_map *gid, int *ret_fd,
                     struct util_err *err);

/* A cache of user-namespace fds, one per distinct (uid, gid) mapping pair.
 * Thread-safe (one mutex, held while a namespace is created, so a pair is
 * created once). The fds belong to the cache; idmap_cache_free() closes
 * them and must not race with idmap_cache_get(). */
struct idmap_cache;
int idmap_cache_new(struct idmap_cache **ret, struct util_err *err);
struct idmap_cache *idmap_cache_free(struct idmap_cache *c);
UTIL_DEFINE_FREE_FUNC(struct idmap_cache, idmap_cache_free)

/*
 * idmap_cache_get: the user-namespace fd for this mapping pair, created on
 * first use. *ret_fd stays owned by the cache (valid until it is freed);
 * *ret_cached (may be NULL) says whether it was reused.
 */
int idmap_cache_get(struct idmap_cache *c, const struct idmap_map *uid, const struct idmap_map *gid,
                    int *ret_fd, bool *ret_cached, struct util_err *err);
/* Number of namespaces the cache holds (for tests and `doctor`). */
size_t idmap_cache_size(const struct idmap_cache *c);

/*
 * idmap_mount_apply: idmap a detached mount (an fd from open_tree with
 * OPEN_TREE_CLONE, or from fsmount) with mount_setattr(MOUNT_ATTR_IDMAP).
 * `recursive` applies it to the whole subtree (AT_RECURSIVE).
 * Returns: 0; -EOPNOTSUPP when the kernel or filesystem cannot (the
 * kernel's EINVAL once userns_fd is known to be a user namespace: a
 * filesystem without idmapping, or a mount that is already idmapped);
 * -EINVAL/-EBADF when userns_fd is not a user-namespace fd; -EPERM (an
 * attached mount, no privilege); or -errno; `err` filled on failure.
 */
int idmap_mount_apply(int mount_fd, int userns_fd, bool recursive, struct util_err *err);

/*
 * idmap_clone: open_tree(dirfd, path, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC
 * [|AT_RECURSIVE]) and idmap the clone. `path` may be "" with AT_EMPTY_PATH
 * semantics when dirfd is the directory itself.
 * Returns: 0 and the detached mount fd in *ret_fd, or -errno with `err`.
 */
int idmap_clone(int dirfd, const char *path, int userns_fd, bool recursive, int *ret_fd,
                struct util_err *err);

/* Probed on first call, then remembered for the process: 1 when the kernel
 * has idmapped mounts (mount_setattr knows MOUNT_ATTR_IDMAP), 0 when not;
 * -1 when the probe could not decide (EPERM: no CAP_SYS_ADMIN, or seccomp),
 * which is not remembered. Whether a given filesystem can be idmapped shows
 * as -EOPNOTSUPP from idmap_mount_apply(). Changes nothing; no fork. */
int idmap_feature_supported(void);
