/* The histogram's buckets and quantiles (stats.h): every value falls in the bucket whose bounds
 * hold it, buckets are at most 25% wide, and a quantile is within a bucket of the truth. */
#include "harness.h"
#include "stats.h"

static void every_value_is_in_its_bucket(void)
{
    for (uint64_t v = 0; v < (1ull << 40); v = v < 5000 ? v + 1 : v + v / 7) {
        unsigned i = rk__hist_bucket(v);
        ASSERT_TRUE(i < RK__HIST_BUCKETS);
        if (i == RK__HIST_BUCKETS - 1)
            continue; /* the last one takes everything above */
        ASSERT_TRUE(v < rk__hist_upper(i));
        ASSERT_TRUE(i == 0 || rk__hist_upper(i - 1) <= v);
        if (v >= 4) /* four buckets per power of two: at most 25% wide */
            ASSERT_TRUE(rk__hist_upper(i) - (i ? rk__hist_upper(i - 1) : 0) <= v / 4 + 1);
    }
    ASSERT_EQ(rk__hist_bucket(UINT64_MAX), RK__HIST_BUCKETS - 1);
}

static void quantiles_are_within_a_bucket(void)
{
    static rk__stats live;
    rk__stats_init(&live, "cache");
    for (uint64_t v = 1; v <= 1000; v++)
        rk__hist_add(&live.hist[RK_HIST_COMMAND], v);
    rk_stats *s;
    ASSERT_OK(rk_stats_new(&s));
    rk__stats_snapshot(&live, s);
    ASSERT_EQ(rk_stats_count(s, RK_HIST_COMMAND), 1000);
    ASSERT_EQ(rk_stats_sum_us(s, RK_HIST_COMMAND), 500500);
    uint64_t p50 = rk_stats_quantile_us(s, RK_HIST_COMMAND, 0.5);
    uint64_t p99 = rk_stats_quantile_us(s, RK_HIST_COMMAND, 0.99);
    ASSERT_TRUE(p50 > 500 && p50 <= 500 * 5 / 4 + 1);
    ASSERT_TRUE(p99 > 990 && p99 <= 990 * 5 / 4 + 1);
    ASSERT_TRUE(rk_stats_quantile_us(s, RK_HIST_COMMAND, 1.0) > 1000);
    ASSERT_EQ(rk_stats_quantile_us(s, RK_HIST_COMMAND, 1.5), 0);
    ASSERT_EQ(rk_stats_quantile_us(NULL, RK_HIST_COMMAND, 0.5), 0);
    ASSERT_EQ(rk_stats_quantile_us(s, RK_HISTOGRAMS, 0.5), 0);
    rk_stats_free(s);
}

static void events_count_by_outcome(void)
{
    static rk__stats live;
    rk__stats_init(&live, "lock");
    rk__stats_event(&live, RK_EVENT_LOCK_GRANTED, 1500, RK_OK);
    rk__stats_event(&live, RK_EVENT_LOCK_GRANTED, 0, RK_ETIMEDOUT);
    ASSERT_EQ(rk__stats_call(&live, RK__OP_ACQUIRE, 0, RK_ENOTFOUND), RK_ENOTFOUND);
    rk__stats_call(&live, RK__OP_ACQUIRE, 0, RK_EIO);
    rk_stats *s;
    ASSERT_OK(rk_stats_new(&s));
    rk__stats_snapshot(&live, s);
    ASSERT_EQ(rk_stats_events(s, RK_EVENT_LOCK_GRANTED, false), 2);
    ASSERT_EQ(rk_stats_events(s, RK_EVENT_LOCK_GRANTED, true), 1);
    ASSERT_EQ(rk_stats_count(s, RK_HIST_LOCK_WAIT), 1); /* failures have no duration */
    ASSERT_EQ(rk_stats_calls(s, "acquire", false), 2);
    ASSERT_EQ(rk_stats_calls(s, "acquire", true), 1);
    ASSERT_EQ(rk_stats_events(s, RK_EVENT_TYPES, false), 0);
    ASSERT_EQ(rk_stats_new(NULL), RK_EINVAL);
    rk_stats_free(s);
    rk_stats_free(NULL);
}

RKT_MAIN(RKT_CASE(every_value_is_in_its_bucket), RKT_CASE(quantiles_are_within_a_bucket),
         RKT_CASE(events_count_by_outcome))
