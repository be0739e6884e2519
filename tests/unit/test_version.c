/* rk_version(): the header's version, which must also be the one CMake's project() declares
 * (the .so's SOVERSION, the .pc and the package config are built from that one). */
#include "harness.h"

static void matches_header(void) { ASSERT_STR_EQ(rk_version(), RK_VERSION_STRING); }

static void matches_project(void)
{
    ASSERT_STR_EQ(rk_version(), RKT_PROJECT_VERSION);
    char parts[32];
    snprintf(parts, sizeof parts, "%d.%d.%d", RK_VERSION_MAJOR, RK_VERSION_MINOR, RK_VERSION_PATCH);
    ASSERT_STR_EQ(rk_version(), parts);
}

RKT_MAIN(RKT_CASE(matches_header), RKT_CASE(matches_project))
