#include <string.h>

#include "alloc.h"
#include "error_int.h"

void rk_buf_free(rk_buf *buf)
{
    if (!buf)
        return;
    rk__free(buf->data);
    buf->data = NULL;
    buf->len = 0;
}

int rk_buf_set(rk_buf *buf, const void *data, size_t len)
{
    if (!buf)
        return rk__err(RK_EINVAL, "rk_buf_set: buf is NULL");
    if (!data && len)
        return rk__err(RK_EINVAL, "rk_buf_set: data is NULL but len is %zu", len);
    char *p = rk__malloc(len + 1);
    if (!p)
        return rk__err(RK_ENOMEM, "rk_buf_set: cannot allocate %zu bytes", len + 1);
    if (len)
        memcpy(p, data, len);
    p[len] = '\0';
    rk__free(buf->data);
    buf->data = p;
    buf->len = len;
    return RK_OK;
}

const char *rk_version(void) { return RK_VERSION_STRING; }
