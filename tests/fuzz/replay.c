/* Replay driver: runs every file of the given corpus directories (or single files) through
 * LLVMFuzzerTestOneInput() once, in name order, so a ctest run checks the seeds and every
 * crash input ever added to the corpus without needing clang's libFuzzer. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    size_t cap = 4096, len = 0, n;
    uint8_t *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    FUZZ_CHECK(buf != NULL && !ferror(f));
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int skip_dots(const struct dirent *e) { return e->d_name[0] != '.'; }

/* Returns how many inputs ran. */
static size_t run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        exit(1);
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return 1;
    }
    struct dirent **names;
    int n = scandir(path, &names, skip_dots, by_name);
    FUZZ_CHECK(n >= 0);
    for (int i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, names[i]->d_name);
        run_file(full);
        free(names[i]);
    }
    free(names);
    return (size_t)n;
}

int main(int argc, char **argv)
{
    size_t ran = 0;
    for (int i = 1; i < argc; i++)
        ran += run_path(argv[i]);
    if (ran == 0) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...: no input found\n", argv[0]);
        return 1;
    }
    printf("%zu inputs replayed\n", ran);
    return 0;
}
