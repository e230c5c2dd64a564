/* Shared by test_keys.c and test_cache.c: a private scratch directory per test and small file
 * helpers. */
#ifndef KEYS_CACHE_UTIL_H
#define KEYS_CACHE_UTIL_H

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct test_dir {
    char path[512];
} test_dir;

static inline int test_dir_create(test_dir *d, const char *tag)
{
    const char *tmp = getenv("TMPDIR");

    if (tmp == NULL || tmp[0] != '/')
        tmp = "/tmp";
    int n = snprintf(d->path, sizeof(d->path), "%s/kt-%s-XXXXXX", tmp, tag);

    if (n < 0 || (size_t)n >= sizeof(d->path))
        return -1;
    return mkdtemp(d->path) != NULL ? 0 : -1;
}

static inline int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void test_dir_remove(test_dir *d)
{
    if (d->path[0] == '/')
        nftw(d->path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* dir + "/" + name in the caller's buffer; a path that does not fit ends the test program. */
static inline const char *test_path(const test_dir *d, const char *name, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", d->path, name);

    if (n < 0 || (size_t)n >= size)
        abort();
    return buf;
}

static inline int write_file_mode(const char *path, const void *data, size_t len, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    int ok;

    if (f == NULL)
        return -1;
    ok = fwrite(data, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    return ok && chmod(path, mode) == 0 ? 0 : -1;
}

/* Reads a whole small file into a malloc'd NUL-terminated buffer, or NULL. */
static inline char *read_file_all(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = malloc(1024 * 1024);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, 1024 * 1024 - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (len_out != NULL)
        *len_out = n;
    return buf;
}

static inline mode_t file_mode(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0 ? (st.st_mode & 07777) : (mode_t)-1;
}

#endif
