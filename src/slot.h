/* Redis Cluster key slots: CRC16 (XMODEM) of the key's hash tag, or of the whole key, modulo
 * 16384. The lock names every key of one lock after the same tag, so that its scripts run on
 * one node. */
#ifndef RK_SLOT_H
#define RK_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RK__SLOTS 16384u

uint16_t rk__slot(const char *key, size_t len);

/* The hash tag of `key`: the bytes between its first '{' and the first '}' after it, when
 * there are any. True with `*start`/`*len` set when the key has a valid tag. */
bool rk__hash_tag(const char *key, size_t len, size_t *start, size_t *tag_len);

/* Whether a key without a valid tag still has braces: wrapping it in a tag would hash
 * something else than the key, so its lock names cannot share its slot. */
bool rk__braces_without_tag(const char *key, size_t len);

#endif
