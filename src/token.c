#include "token.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "error_int.h"

/* Read fresh for every token: buffering would hand a forked child its parent's next tokens. */
int rk__token_new(char out[RK__TOKEN_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[RK__TOKEN_LEN / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return rk__err_cause(RK_ERROR, strerror(errno), "cannot read the OS random generator");
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[RK__TOKEN_LEN] = '\0';
    return RK_OK;
}
