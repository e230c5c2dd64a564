/* Helpers shared by the unit test programs: a private scratch directory per test (made with
 * mkdtemp, so mode 0700 and owned by the caller), paths inside it, and small file helpers. Every
 * function is static inline so that each program takes only what it uses; none needs cmocka, so the
 * callers decide how a failure is reported. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

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

/* Makes base/kt-TAG-XXXXXX. Returns 0, or -1 with d->path empty. */
static inline int test_dir_create_in(test_dir *d, const char *base, const char *tag)
{
    int n = snprintf(d->path, sizeof(d->path), "%s/kt-%s-XXXXXX", base, tag);

    if (n < 0 || (size_t)n >= sizeof(d->path) || mkdtemp(d->path) == NULL) {
        d->path[0] = '\0';
        return -1;
    }
    return 0;
}

/* Makes the scratch directory under $TMPDIR when that is an absolute path, else under /tmp. */
static inline int test_dir_create(test_dir *d, const char *tag)
{
    const char *tmp = getenv("TMPDIR");

    if (tmp == NULL || tmp[0] != '/')
        tmp = "/tmp";
    return test_dir_create_in(d, tmp, tag);
}

static inline int test_dir_remove_entry(const char *path, const struct stat *st, int flag,
                                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes the directory and everything below it (symbolic links are removed, not followed) and
 * forgets its name, so a second call does nothing. */
static inline void test_dir_remove(test_dir *d)
{
    if (d->path[0] == '/')
        nftw(d->path, test_dir_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    d->path[0] = '\0';
}

/* dir + "/" + name in the caller's buffer; a path that does not fit ends the test program. */
static inline const char *test_path(const test_dir *d, const char *name, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", d->path, name);

    if (n < 0 || (size_t)n >= size)
        abort();
    return buf;
}

/* Creates or truncates path with data and then sets exactly `mode` (the umask does not apply).
 * Returns 0 or -1. */
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

/* The permission bits of path itself (not of a link's target), or (mode_t)-1. */
static inline mode_t file_mode(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0 ? (st.st_mode & 07777) : (mode_t)-1;
}

#endif
