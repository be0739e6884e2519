/* Fuzz target: the connection.uri parser (rk__uri_parse), applied twice to one endpoint as a
 * re-configuration would, then copied and named; and its host-list form (rk__uri_parse_list). */
#include <string.h>

#include "endpoint.h"
#include "error_int.h"
#include "fuzz.h"

static void check(const rk__endpoint *ep, int rc)
{
    if (rc == RK_OK) {
        FUZZ_CHECK((ep->host != NULL) != (ep->path != NULL));
        FUZZ_CHECK(ep->path ? ep->path[0] == '/' && !ep->tls : ep->port > 0);
        FUZZ_CHECK(ep->db <= 1000000);
        FUZZ_CHECK(!ep->username || *ep->username);
        return;
    }
    FUZZ_CHECK(rc == RK_EINVAL || rc == RK_ENOMEM);
    FUZZ_CHECK(rk_last_error()->code == rc);
    FUZZ_CHECK(strstr(rk_last_error()->message, "connection.uri") != NULL);
    FUZZ_CHECK(!ep->host && !ep->path && !ep->username && !ep->password);
}

/* Every host of a list shares the URI's user info, database and TLS. */
static void check_list(const char *s)
{
    rk__endpoint tmpl = {.db = 7}, *eps = &tmpl;
    size_t n = 1;
    int rc = rk__uri_parse_list(&eps, &n, &tmpl, s, "connection.uri");
    FUZZ_CHECK((rc == RK_OK) == (eps != NULL) && (rc == RK_OK) == (n >= 1));
    FUZZ_CHECK(n <= RK__URI_MAX_HOSTS);
    if (rc != RK_OK)
        check(&tmpl, rc);
    for (size_t i = 0; i < n; i++) {
        check(&eps[i], RK_OK);
        FUZZ_CHECK(eps[i].db == eps[0].db && eps[i].tls == eps[0].tls);
        FUZZ_CHECK(!eps[i].password == !eps[0].password);
    }
    rk__seeds_free(eps, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_string(data, size), name[80];
    rk__endpoint ep = {.db = 7}, copy;
    check(&ep, rk__uri_parse(&ep, "rediss://:pw@first:1/2", "connection.uri"));
    int rc = rk__uri_parse(&ep, s, "connection.uri");
    check(&ep, rc);
    if (rc == RK_OK) {
        FUZZ_CHECK(rk__endpoint_copy(&copy, &ep) == RK_OK);
        FUZZ_CHECK(strlen(rk__endpoint_name(&copy, name, sizeof name)) < sizeof name);
        rk__endpoint_clear(&copy);
    }
    rk__endpoint_clear(&ep);
    check_list(s);
    free(s);
    return 0;
}
