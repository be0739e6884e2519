/* Typed access to configuration values for the components' option parsing. */
#ifndef RK_CONFIG_INT_H
#define RK_CONFIG_INT_H

#include "redkit/config.h"

/* Whether values under `key` are secrets: credential.*, credentials.*, and any key containing
 * "pass" (case-insensitive). Messages name such keys but never quote their values. */
bool rk__config_is_secret(const char *key);

/* Whether an error message may quote `value` of `key`: not a secret key, and nothing in it that
 * looks like a URI or user:password ('@', ':', '/') typed into the wrong key. */
bool rk__config_may_quote(const char *key, const char *value);

/* Deep copy; `*out` is NULL when `cfg` is NULL. */
int rk__config_copy(rk_config **out, const rk_config *cfg);

/* Parse `key` as an unsigned integer in [min, max]; absent keys give `def`.
 * RK_EINVAL names the key and the bad value. */
int rk__config_u64(const rk_config *cfg, const char *key, uint64_t def, uint64_t min, uint64_t max,
                   uint64_t *out);

/* Parse true/false/1/0/yes/no/on/off; absent keys give `def`. */
int rk__config_bool(const rk_config *cfg, const char *key, bool def, bool *out);

/* One accepted value of an enumerated option; a list of them ends with {NULL, 0}. */
typedef struct rk__config_word {
    const char *name;
    int value;
} rk__config_word;

/* Parse `key` as one of `words` (case-insensitive); absent keys give `def`. RK_EINVAL names the
 * key and the bad value, and says `expected` ("auto, true or false"). */
int rk__config_enum(const rk_config *cfg, const char *key, const rk__config_word *words, int def,
                    const char *expected, int *out);

/* Copy every `<section>.<rest>` entry into a new configuration as `<rest>`. */
int rk__config_section(rk_config **out, const rk_config *cfg, const char *section);

/* Names of the sub-sections under `prefix.` (e.g. "connections" -> "primary", "backup"), in
 * insertion order, joined as NUL-separated strings in a new buffer. `*count` receives their
 * number; the buffer is freed with rk__free. */
int rk__config_subsections(char **names, size_t *count, const rk_config *cfg, const char *prefix);

#endif
