/* Every wire name against the table of docs/wire-format.md ("Every name, with an example"):
 * the document is read at run time, so the code and the table cannot drift apart. */
#include "harness.h"
#include "keys.h"

#ifndef RKT_SOURCE_DIR
#error "RKT_SOURCE_DIR must name the source tree"
#endif

typedef int (*key_fn)(rk__name *n, const rk__options *o, const char *arg);

static int lock_part(rk__name *n, const rk__options *o, const char *key,
                     int (*part)(rk__name *, const rk__name *))
{
    rk__name k;
    int rc = rk__name_key(&k, o, key);
    if (rc == RK_OK)
        rc = part(n, &k);
    rk__name_free(&k);
    return rc;
}

static int lock_queue(rk__name *n, const rk__options *o, const char *key)
{
    return lock_part(n, o, key, rk__name_lock_queue);
}

static int lock_waiters(rk__name *n, const rk__options *o, const char *key)
{
    return lock_part(n, o, key, rk__name_lock_waiters);
}

static int lock_fence(rk__name *n, const rk__options *o, const char *key)
{
    return lock_part(n, o, key, rk__name_lock_fence);
}

static int lock_inbox(rk__name *n, const rk__options *o, const char *id)
{
    (void)o; /* one per handle, not per key: no prefix */
    return rk__name_lock_inbox(n, id, NULL);
}

static int lock_freed(rk__name *n, const rk__options *o, const char *key)
{
    return lock_part(n, o, key, rk__name_lock_freed);
}

static int sem_permits(rk__name *n, const rk__options *o, const char *key)
{
    return lock_part(n, o, key, rk__name_sem);
}

static int sem_queue(rk__name *n, const rk__options *o, const char *key)
{
    return lock_part(n, o, key, rk__name_sem_queue);
}

static int sem_waiters(rk__name *n, const rk__options *o, const char *key)
{
    return lock_part(n, o, key, rk__name_sem_waiters);
}

static int sem_inbox(rk__name *n, const rk__options *o, const char *id)
{
    (void)o;
    return rk__name_sem_inbox(n, id, NULL);
}

#define EXAMPLE_ID "5f0c2a7e9b1d4c3f8a6e0b2d4f6a8c0e"

static int cluster_inbox(rk__name *n, const rk__options *o, const char *key)
{
    rk__name k;
    int rc = rk__name_key(&k, o, key);
    if (rc == RK_OK)
        rc = rk__name_lock_inbox(n, EXAMPLE_ID, &k);
    rk__name_free(&k);
    return rc;
}

static int sem_cluster_inbox(rk__name *n, const rk__options *o, const char *key)
{
    rk__name k;
    int rc = rk__name_key(&k, o, key);
    if (rc == RK_OK)
        rc = rk__name_sem_inbox(n, EXAMPLE_ID, &k);
    rk__name_free(&k);
    return rc;
}

/* The table's rows: the name in the first column, its builder, and the argument it takes. */
static const struct {
    const char *name;
    key_fn build;
    const char *arg;
} builders[] = {
    {"cache key", rk__name_key, "orders:42"},
    {"lock key", rk__name_key, "orders:42"},
    {"lock queue", lock_queue, "orders:42"},
    {"lock waiters", lock_waiters, "orders:42"},
    {"lock fence", lock_fence, "orders:42"},
    {"lock inbox", lock_inbox, EXAMPLE_ID},
    {"lock queue, tagged key", lock_queue, "user:{7}"},
    {"lock inbox, cluster", cluster_inbox, "orders:42"},
    {"lock inbox, cluster, tagged", cluster_inbox, "user:{7}"},
    {"lock freed, quorum", lock_freed, "orders:42"},
    {"semaphore permits", sem_permits, "orders:42"},
    {"semaphore permits, tagged key", sem_permits, "user:{7}"},
    {"semaphore queue", sem_queue, "orders:42"},
    {"semaphore waiters", sem_waiters, "orders:42"},
    {"semaphore inbox", sem_inbox, EXAMPLE_ID},
    {"semaphore inbox, cluster", sem_cluster_inbox, "orders:42"},
    {"memolock value", rk__name_memo_value, "user:7"},
    {"memolock lock", rk__name_memo_lock, "user:7"},
    {"memolock channel", rk__name_memo_channel, "user:7"},
};
#define NBUILDERS (sizeof builders / sizeof builders[0])

static rk__options example_options(void)
{
    rk__options o;
    rk_config *cfg;
    ASSERT_OK(rk_config_from_string(&cfg, "options.prefix=app:;options.resource_tag=query"));
    ASSERT_OK(rk__options_parse(&o, cfg));
    rk_config_free(cfg);
    return o;
}

/* "| name | `pattern` | `example` |" -> name and example; false for other lines. */
static bool parse_row(const char *line, char *name, char *example)
{
    char pattern[128];
    return sscanf(line, "| %63[^|]| `%127[^`]` | `%127[^`]` |", name, pattern, example) == 3;
}

static void every_name_matches_the_document(void)
{
    FILE *f = fopen(RKT_SOURCE_DIR "/docs/wire-format.md", "r");
    ASSERT_TRUE(f != NULL);
    rk__options o = example_options();
    char line[512], name[64], example[128];
    size_t checked = 0;
    while (fgets(line, sizeof line, f)) {
        if (!parse_row(line, name, example))
            continue;
        for (size_t len = strlen(name); len && name[len - 1] == ' '; len--)
            name[len - 1] = '\0';
        for (size_t i = 0; i < NBUILDERS; i++) {
            if (strcmp(builders[i].name, name))
                continue;
            rk__name n;
            ASSERT_OK(builders[i].build(&n, &o, builders[i].arg));
            printf("     %-16s %s\n", name, n.str);
            ASSERT_STR_EQ(n.str, example);
            ASSERT_EQ(n.len, strlen(example));
            rk__name_free(&n);
            checked++;
        }
    }
    fclose(f);
    rk__options_clear(&o);
    ASSERT_EQ(checked, NBUILDERS); /* every builder has its row, and no row is unchecked */
}

/* No prefix: a key goes out as given, without a copy; long names move to the heap. */
static void no_prefix_and_long_names(void)
{
    rk__options o;
    ASSERT_OK(rk__options_parse(&o, NULL));
    rk__name n;
    const char *key = "k";
    ASSERT_OK(rk__name_key(&n, &o, key));
    ASSERT_TRUE(n.str == key && n.heap == NULL);
    rk__name_free(&n);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT_OK(rk__name_lock_fence(&n, &(rk__name){big, strlen(big), NULL, {0}}));
    ASSERT_TRUE(n.heap != NULL);
    ASSERT_EQ(n.len, strlen("redkit:lock-fence:{}") + strlen(big));
    rk__name_free(&n);
    rk__options_clear(&o);
}

RKT_MAIN(RKT_CASE(every_name_matches_the_document), RKT_CASE(no_prefix_and_long_names))
