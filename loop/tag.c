/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owner tags in lo_file_name: "loopsnap:<owner>:<id>". The kernel keeps the
 * string as given (64 bytes with the NUL) and shows it in LOOP_GET_STATUS64,
 * so the tag survives the process that attached the device: fsck lists
 * leaked devices by tag, and detach-by-name refuses untagged devices.
 */
#include <stdio.h>
#include <string.h>

#include "loop/loop-internal.h"

static bool tag_char_ok(char c, bool allow_colon)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-' || (allow_colon && c == ':');
}

static bool tag_part_ok(const char *s, bool allow_colon)
{
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if (!tag_char_ok(*s, allow_colon))
                        return false;
        return true;
}

int loop_tag_format(char *buf, size_t size, const char *owner, const char *id)
{
        if (!tag_part_ok(owner, false) || !tag_part_ok(id, true))
                return -EINVAL;
        int n = snprintf(buf, size, LOOP_TAG_PREFIX "%s:%s", owner, id);
        if (n < 0)
                return -EINVAL;
        if ((size_t)n > LOOP_TAG_MAX || (size_t)n >= size)
                return -ENAMETOOLONG;
        return 0;
}

int loop_tag_parse(const char *tag, char *ret_owner, size_t owner_size, char *ret_id,
                   size_t id_size)
{
        const size_t plen = strlen(LOOP_TAG_PREFIX);

        if (!tag || strncmp(tag, LOOP_TAG_PREFIX, plen) != 0)
                return -EINVAL;
        const char *owner = tag + plen;
        const char *sep = strchr(owner, ':');
        if (!sep)
                return -EINVAL;
        size_t olen = (size_t)(sep - owner);
        const char *id = sep + 1;
        size_t ilen = strlen(id);
        if (olen == 0 || ilen == 0 || olen >= owner_size || ilen >= id_size)
                return -EINVAL;

        char o[LOOP_TAG_MAX + 1];
        if (olen > LOOP_TAG_MAX)
                return -EINVAL;
        memcpy(o, owner, olen);
        o[olen] = '\0';
        if (!tag_part_ok(o, false) || !tag_part_ok(id, true))
                return -EINVAL;
        memcpy(ret_owner, o, olen + 1);
        memcpy(ret_id, id, ilen + 1);
        return 0;
}

bool loop_tag_is_ours(const char *tag, const char *owner)
{
        const size_t plen = strlen(LOOP_TAG_PREFIX);

        if (strncmp(tag, LOOP_TAG_PREFIX, plen) != 0)
                return false;
        if (!owner)
                return true;
        size_t olen = strlen(owner);
        return strncmp(tag + plen, owner, olen) == 0 && tag[plen + olen] == ':';
}
