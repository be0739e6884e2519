/* Key slots: CRC16-XMODEM modulo 16384 of the hash tag or the whole key, against values Redis
 * itself gives (CLUSTER KEYSLOT) and the hash-tag rules. */
#include "harness.h"
#include "slot.h"

static uint16_t slot_of(const char *key) { return rk__slot(key, strlen(key)); }

static void known_slots(void)
{
    ASSERT_EQ(slot_of("123456789"), 12739u); /* CRC16 check value 0x31C3 */
    ASSERT_EQ(slot_of("foo"), 12182u);
    ASSERT_EQ(slot_of("bar"), 5061u);
    ASSERT_EQ(slot_of(""), 0u);
    ASSERT_EQ(rk__slot("a\0b", 3), rk__slot("a\0b", 3)); /* binary-safe: length, not NUL */
    ASSERT_TRUE(rk__slot("a\0b", 3) != slot_of("a"));
}

static void hash_tags(void)
{
    ASSERT_EQ(slot_of("{user1000}.following"), slot_of("user1000"));
    ASSERT_EQ(slot_of("{user1000}.followers"), slot_of("user1000"));
    ASSERT_EQ(slot_of("foo{}{bar}"), slot_of("foo{}{bar}")); /* "{}": the whole key */
    ASSERT_TRUE(slot_of("foo{}{bar}") != slot_of("bar"));
    ASSERT_EQ(slot_of("foo{{bar}}zap"), slot_of("{bar")); /* up to the first '}' */
    ASSERT_EQ(slot_of("foo{bar}{zap}"), slot_of("bar"));  /* the first tag */
    size_t s, n;
    ASSERT_TRUE(rk__hash_tag("a{b}c", 5, &s, &n) && s == 2 && n == 1);
    ASSERT_FALSE(rk__hash_tag("a{}c", 4, &s, &n));
    ASSERT_FALSE(rk__hash_tag("a{bc", 4, &s, &n));
    ASSERT_FALSE(rk__hash_tag("a}b{", 4, &s, &n));
}

static void braces_without_a_tag(void)
{
    ASSERT_TRUE(rk__braces_without_tag("a{}b", 4));
    ASSERT_TRUE(rk__braces_without_tag("a}b", 3));
    ASSERT_TRUE(rk__braces_without_tag("a{b", 3));
    ASSERT_FALSE(rk__braces_without_tag("a{b}", 4));
    ASSERT_FALSE(rk__braces_without_tag("plain", 5));
}

RKT_MAIN(RKT_CASE(known_slots), RKT_CASE(hash_tags), RKT_CASE(braces_without_a_tag))
