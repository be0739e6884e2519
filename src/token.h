/* Lock owner tokens: 32 lowercase hex characters (128 bits) from the OS CSPRNG, the format of
 * the pip-services IdGenerator.nextLong(). */
#ifndef RK_TOKEN_H
#define RK_TOKEN_H

#define RK__TOKEN_LEN 32

/* Fill out[RK__TOKEN_LEN + 1]. Returns RK_OK or RK_ERROR when the OS has no entropy source. */
int rk__token_new(char out[RK__TOKEN_LEN + 1]);

#endif
