/* Every allocation redkit makes goes through here, so an allocator can be injected (tests sweep
 * allocation failures through rk_set_allocator). */
#ifndef RK_ALLOC_H
#define RK_ALLOC_H

#include <stddef.h>

void *rk__malloc(size_t size);
void *rk__calloc(size_t n, size_t size);
void *rk__realloc(void *ptr, size_t size);
void rk__free(void *ptr);
char *rk__strdup(const char *s);
char *rk__strndup(const char *s, size_t len);

/* Zero `n` bytes in a way the compiler cannot drop as a dead store before a free. */
void rk__wipe(void *p, size_t n);

/* Wipe a string, then free it (NULL-safe): for anything that may hold a credential, so that no
 * freed block keeps one (a heap dump, a core file, the next owner of the block). */
void rk__free_secret(char *s);

#endif
