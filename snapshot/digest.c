/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sha256 through OpenSSL's EVP interface, the "sha256:<hex>" digest form of
 * OCI descriptors, and OCI chain ids. Only sha256 is accepted: it is what
 * every registry and image tool writes, and a descriptor naming another
 * algorithm is refused (EOPNOTSUPP) rather than trusted unchecked.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "snapshot/apply-internal.h"

struct snap_sha256 {
        EVP_MD_CTX *ctx;
};

int snap_sha256_new(struct snap_sha256 **ret)
{
        struct snap_sha256 *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx) {
                free(h);
                return -ENOMEM;
        }
        if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
                snap_sha256_free(h);
                return -EIO;
        }
        *ret = h;
        return 0;
}

struct snap_sha256 *snap_sha256_free(struct snap_sha256 *h)
{
        if (!h)
                return NULL;
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
}

void snap_sha256_update(struct snap_sha256 *h, const void *buf, size_t len)
{
        /* Cannot fail for an initialised sha256 context with software
         * digests; a failure would show as a wrong digest, never as a match. */
        (void)EVP_DigestUpdate(h->ctx, buf, len);
}

static void hex(const unsigned char *b, size_t n, char *out)
{
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[b[i] >> 4];
                out[2 * i + 1] = digits[b[i] & 15];
        }
        out[2 * n] = '\0';
}

int snap_sha256_final(struct snap_sha256 *h, char ret[SNAP_DIGEST_MAX])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;

        if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32)
                return -EIO;
        memcpy(ret, "sha256:", 7); /* NOLINT(bugprone-not-null-terminated-result): hex() ends it */
        hex(md, n, ret + 7);
        return 0;
}

int snap_digest_check(const char *digest)
{
        if (!digest)
                return -EINVAL;
        const char *colon = strchr(digest, ':');
        if (!colon || colon == digest)
                return -EINVAL;
        if ((size_t)(colon - digest) != 6 || strncmp(digest, "sha256", 6) != 0) {
                /* algorithm := [a-z0-9]+ ([+._-] [a-z0-9]+)* (OCI image-spec). */
                for (const char *p = digest; p < colon; p++)
                        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                              strchr("+._-", *p)))
                                return -EINVAL;
                return -EOPNOTSUPP;
        }
        const char *h = colon + 1;
        size_t n = 0;
        for (; h[n]; n++)
                if (!((h[n] >= '0' && h[n] <= '9') || (h[n] >= 'a' && h[n] <= 'f')))
                        return -EINVAL;
        return n == 64 ? 0 : -EINVAL;
}

int snap_chain_id(const char *parent, const char *diff_id, char ret[SNAP_DIGEST_MAX])
{
        _cleanup_(snap_sha256_freep) struct snap_sha256 *h = NULL;
        int r;

        if ((r = snap_digest_check(diff_id)) < 0)
                return r;
        if (!parent || !*parent) {
                memcpy(ret, diff_id, strlen(diff_id) + 1);
                return 0;
        }
        if ((r = snap_digest_check(parent)) < 0)
                return r;
        if ((r = snap_sha256_new(&h)) < 0)
                return r;
        snap_sha256_update(h, parent, strlen(parent));
        snap_sha256_update(h, " ", 1);
        snap_sha256_update(h, diff_id, strlen(diff_id));
        return snap_sha256_final(h, ret);
}
