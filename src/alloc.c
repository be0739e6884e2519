#include "alloc.h"

#include <stdlib.h>
#include <string.h>

#include "error_int.h"

static void *std_malloc(void *ud, size_t size)
{
    (void)ud;
    return malloc(size);
}
static void *std_realloc(void *ud, void *p, size_t size)
{
    (void)ud;
    return realloc(p, size);
}
static void std_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

static rk_allocator current = {std_malloc, std_realloc, std_free, NULL};

int rk_set_allocator(const rk_allocator *a)
{
    if (!a) {
        current = (rk_allocator){std_malloc, std_realloc, std_free, NULL};
        return RK_OK;
    }
    if (!a->malloc_fn || !a->realloc_fn || !a->free_fn)
        return rk__err(RK_EINVAL,
                       "rk_set_allocator: malloc_fn, realloc_fn and free_fn are all required");
    current = *a;
    return RK_OK;
}

void *rk__malloc(size_t size) { return current.malloc_fn(current.ud, size ? size : 1); }

void *rk__calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = rk__malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *rk__realloc(void *ptr, size_t size)
{
    return current.realloc_fn(current.ud, ptr, size ? size : 1);
}

void rk__free(void *ptr)
{
    if (ptr)
        current.free_fn(current.ud, ptr);
}

char *rk__strndup(const char *s, size_t len)
{
    char *p = rk__malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *rk__strdup(const char *s) { return rk__strndup(s, strlen(s)); }

void rk__wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

void rk__free_secret(char *s)
{
    if (!s)
        return;
    rk__wipe(s, strlen(s));
    rk__free(s);
}
