/* Take a lock, do the work, release it: the README's lock example.
 * usage: lock [redis://host:port | unix:///path/redis.sock] */
#include <stdio.h>

#include <redkit.h>

int main(int argc, char **argv)
{
    rk_config *cfg;
    rk_lock *lock;
    const char *uri = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";

    rk_config_from_tuples(&cfg, "connection.uri", uri, NULL);
    rk_lock_new(&lock);
    rk_lock_configure(lock, cfg);
    rk_config_free(cfg);
    if (rk_lock_open(lock, NULL) != RK_OK) {
        fprintf(stderr, "open: %s\n", rk_last_error()->message);
        return 1;
    }

    /* Hold "report" for at most 10 s; wait up to 5 s for it. */
    if (rk_lock_acquire(lock, NULL, "report", 10000, 5000) != RK_OK) {
        const rk_error *e = rk_last_error();
        fprintf(stderr, "%s: %s\n", e->name, e->message); /* LOCK_TIMEOUT: ... */
        rk_lock_free(lock);
        return 1;
    }
    printf("lock held: generating the report\n");
    rk_lock_release(lock, NULL, "report");
    printf("lock released\n");

    rk_lock_free(lock);
    return 0;
}
