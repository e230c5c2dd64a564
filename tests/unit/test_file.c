/* Unit tests for safe file opening, atomic replacement (prepared before its contents exist),
 * clean-up of what a killed writer leaves, private directories and locks. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kt_file.h"
#include "kt_secret.h"
#include "test_util.h"

#define OTHER_UID 65534

typedef struct fixture {
    test_dir dir;
    char path[PATH_MAX];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || test_dir_create(&f->dir, "test-file") != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    test_dir_remove(&f->dir);
    free(f);
    return 0;
}

/* Builds f->dir/name into f->path and returns it. */
static const char *at(fixture *f, const char *name)
{
    return test_path(&f->dir, name, f->path, sizeof(f->path));
}

static void write_file(const char *path, const char *data, size_t len, mode_t mode)
{
    assert_int_equal(write_file_mode(path, data, len, mode), 0);
}

static kt_file_policy my_policy(bool private_read, size_t max_size)
{
    kt_file_policy p = {
        .owners = {.allow_root = false, .allow_uid = true, .uid = geteuid()},
        .private_read = private_read,
        .max_size = max_size,
    };
    return p;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* ---- kt_file_open_safely / kt_file_read ------------------------------------------------- */

static void test_read_ok(void **state)
{
    fixture *f = *state;
    kt_file_policy p = my_policy(false, 0);
    kt_error err = {KT_OK, ""};
    char *data = NULL;
    size_t len = 0;
    int e = -1;

    write_file(at(f, "a"), "hello\n", 6, 0644);
    assert_int_equal(kt_file_read(f->path, &p, &data, &len, &e, &err), 0);
    assert_int_equal(err.kind, KT_OK);
    assert_int_equal(e, 0);
    assert_int_equal(len, 6);
    assert_string_equal(data, "hello\n");
    free(data);
}

static void test_read_keeps_nul_bytes(void **state)
{
    fixture *f = *state;
    kt_file_policy p = my_policy(true, 0);
    kt_error err = {KT_OK, ""};
    char *data = NULL;
    size_t len = 0;

    write_file(at(f, "nul"), "a\0b", 3, 0600);
    assert_int_equal(kt_file_read(f->path, &p, &data, &len, NULL, &err), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "a\0b", 4); /* and NUL-terminated */
    free(data);
}

static void test_open_relative_refused(void **state)
{
    kt_file_policy p = my_policy(false, 0);
    kt_error err = {KT_OK, ""};

    assert_int_equal(kt_file_open_safely("etc/passwd", &p, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_non_null(strstr(err.message, "absolute"));
}

static void test_open_missing(void **state)
{
    fixture *f = *state;
    kt_file_policy p = my_policy(false, 0);
    kt_error err = {KT_OK, ""};
    char sentinel[] = "untouched";
    char *data = sentinel;
    int e = 0;

    assert_int_equal(kt_file_read(at(f, "missing"), &p, &data, NULL, &e, &err), -1);
    assert_int_equal(e, ENOENT);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_null(data);
    assert_non_null(strstr(err.message, f->path));
}

static void test_open_symlink_refused(void **state)
{
    fixture *f = *state;
    kt_file_policy p = my_policy(false, 0);
    kt_error err = {KT_OK, ""};
    char target[PATH_MAX];

    write_file(at(f, "real"), "x", 1, 0600);
    strcpy(target, f->path);
    assert_int_equal(symlink(target, at(f, "link")), 0);
    assert_int_equal(kt_file_open_safely(f->path, &p, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_non_null(strstr(err.message, "symbolic link"));
}

static void test_open_not_regular_refused(void **state)
{
    fixture *f = *state;
    kt_file_policy p = my_policy(false, 0);
    kt_error err = {KT_OK, ""};

    assert_int_equal(mkdir(at(f, "d"), 0700), 0);
    assert_int_equal(kt_file_open_safely(f->path, &p, NULL, &err), -1);
    assert_non_null(strstr(err.message, "not a regular file"));

    /* A FIFO must be refused without blocking on open. */
    kt_error_clear(&err);
    assert_int_equal(mkfifo(at(f, "fifo"), 0600), 0);
    assert_int_equal(kt_file_open_safely(f->path, &p, NULL, &err), -1);
    assert_non_null(strstr(err.message, "not a regular file"));

    kt_error_clear(&err);
    p.owners.allow_root = true;
    assert_int_equal(kt_file_open_safely("/dev/null", &p, NULL, &err), -1);
    assert_non_null(strstr(err.message, "not a regular file"));
}

static void test_open_writable_by_others_refused(void **state)
{
    fixture *f = *state;
    kt_file_policy p = my_policy(false, 0);
    kt_error err = {KT_OK, ""};

    write_file(at(f, "gw"), "x", 1, 0664);
    assert_int_equal(kt_file_open_safely(f->path, &p, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_non_null(strstr(err.message, "writable by group or others"));

    kt_error_clear(&err);
    write_file(at(f, "ww"), "x", 1, 0602);
    assert_int_equal(kt_file_open_safely(f->path, &p, NULL, &err), -1);
    assert_non_null(strstr(err.message, "writable by group or others"));
}

static void test_open_private_read(void **state)
{
    fixture *f = *state;
    kt_file_policy priv = my_policy(true, 0);
    kt_file_policy pub = my_policy(false, 0);
    kt_error err = {KT_OK, ""};
    int fd;

    write_file(at(f, "s"), "secret", 6, 0640);
    assert_int_equal(kt_file_open_safely(f->path, &priv, NULL, &err), -1);
    assert_non_null(strstr(err.message, "readable by group or others"));
    kt_error_clear(&err);
    assert_int_equal(chmod(f->path, 0604), 0);
    assert_int_equal(kt_file_open_safely(f->path, &priv, NULL, &err), -1);
    assert_non_null(strstr(err.message, "readable by group or others"));

    /* The same file is fine where it is no secret. */
    kt_error_clear(&err);
    fd = kt_file_open_safely(f->path, &pub, NULL, &err);
    assert_true(fd >= 0);
    close(fd);

    assert_int_equal(chmod(f->path, 0600), 0);
    fd = kt_file_open_safely(f->path, &priv, NULL, &err);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(f->path, 0400), 0);
    fd = kt_file_open_safely(f->path, &priv, NULL, &err);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(err.kind, KT_OK);
}

static void test_open_wrong_owner(void **state)
{
    fixture *f = *state;
    kt_file_policy p = my_policy(false, 0);
    kt_error err = {KT_OK, ""};
    int fd;

    if (geteuid() == 0) {
        /* Root: a file of another uid is refused under a root-only policy and accepted only
         * when that uid is the allowed one. */
        write_file(at(f, "other"), "x", 1, 0644);
        assert_int_equal(chown(f->path, OTHER_UID, OTHER_UID), 0);
        p.owners = (kt_owner_policy){.allow_root = true, .allow_uid = false};
        assert_int_equal(kt_file_open_safely(f->path, &p, NULL, &err), -1);
        assert_non_null(strstr(err.message, "owned by uid 65534"));
        kt_error_clear(&err);
        p.owners = (kt_owner_policy){.allow_root = true, .allow_uid = true, .uid = 1000};
        assert_int_equal(kt_file_open_safely(f->path, &p, NULL, &err), -1);
        kt_error_clear(&err);
        p.owners = (kt_owner_policy){.allow_root = false, .allow_uid = true, .uid = OTHER_UID};
        fd = kt_file_open_safely(f->path, &p, NULL, &err);
        assert_true(fd >= 0);
        close(fd);
        /* Root's own file under a policy that names another user only. */
        write_file(at(f, "mine"), "x", 1, 0644);
        assert_int_equal(kt_file_open_safely(f->path, &p, NULL, &err), -1);
        assert_non_null(strstr(err.message, "owned by uid 0"));
    } else {
        /* Not root: a root-owned file is "not owned by the caller". */
        assert_int_equal(kt_file_open_safely("/etc/passwd", &p, NULL, &err), -1);
        assert_non_null(strstr(err.message, "owned by uid 0"));
        kt_error_clear(&err);
        p.owners.allow_root = true;
        fd = kt_file_open_safely("/etc/passwd", &p, NULL, &err);
        assert_true(fd >= 0);
        close(fd);
    }
}

static void test_open_no_owner_allowed(void **state)
{
    fixture *f = *state;
    kt_file_policy p = my_policy(false, 0);
    kt_error err = {KT_OK, ""};

    p.owners = (kt_owner_policy){.allow_root = false, .allow_uid = false};
    write_file(at(f, "x"), "x", 1, 0600);
    assert_int_equal(kt_file_open_safely(f->path, &p, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
}

static void test_read_size_cap(void **state)
{
    fixture *f = *state;
    kt_file_policy p = my_policy(false, 10);
    kt_error err = {KT_OK, ""};
    char *big = malloc(KT_FILE_MAX_SIZE + 1);
    char *data = NULL;
    size_t len = 0;

    assert_non_null(big);
    memset(big, 'a', KT_FILE_MAX_SIZE + 1);
    write_file(at(f, "ten"), big, 10, 0600);
    assert_int_equal(kt_file_read(f->path, &p, &data, &len, NULL, &err), 0);
    assert_int_equal(len, 10);
    free(data);

    write_file(at(f, "eleven"), big, 11, 0600);
    assert_int_equal(kt_file_read(f->path, &p, &data, &len, NULL, &err), -1);
    assert_null(data);
    assert_non_null(strstr(err.message, "larger than 10 bytes"));

    /* max_size 0 means the default cap. */
    p.max_size = 0;
    kt_error_clear(&err);
    write_file(at(f, "max"), big, KT_FILE_MAX_SIZE, 0600);
    assert_int_equal(kt_file_read(f->path, &p, &data, &len, NULL, &err), 0);
    assert_int_equal(len, KT_FILE_MAX_SIZE);
    free(data);
    write_file(at(f, "over"), big, KT_FILE_MAX_SIZE + 1, 0600);
    assert_int_equal(kt_file_read(f->path, &p, &data, &len, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    free(big);
}

/* ---- kt_file_write_atomic ---------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    kt_file_policy p = my_policy(false, 4 * 1024 * 1024);
    kt_error err = {KT_OK, ""};
    char *data = NULL;

    p.owners.allow_root = true;
    assert_int_equal(kt_file_read(path, &p, &data, len, NULL, &err), 0);
    return data;
}

static void test_atomic_write_new_and_replace(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};
    struct stat st1, st2;
    size_t len;
    char *data;

    assert_int_equal(kt_file_write_atomic(at(f, "t.json"), "first", 5, 0600, &err), 0);
    assert_int_equal(stat(f->path, &st1), 0);
    assert_int_equal(st1.st_mode & 07777, 0600);
    assert_int_equal(st1.st_uid, geteuid());
    data = slurp(f->path, &len);
    assert_string_equal(data, "first");
    free(data);

    write_file(f->path, "old old old", 11, 0644);
    assert_int_equal(stat(f->path, &st1), 0);
    assert_int_equal(kt_file_write_atomic(f->path, "new", 3, 0600, &err), 0);
    assert_int_equal(err.kind, KT_OK);
    assert_int_equal(stat(f->path, &st2), 0);
    /* Replaced by rename, not rewritten in place: a new inode with the new mode. */
    assert_int_not_equal(st1.st_ino, st2.st_ino);
    assert_int_equal(st2.st_mode & 07777, 0600);
    data = slurp(f->path, &len);
    assert_int_equal(len, 3);
    assert_string_equal(data, "new");
    free(data);
    assert_int_equal(count_entries(f->dir.path), 1);
}

static void test_atomic_write_mode_ignores_umask(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};
    struct stat st;
    mode_t old = umask(077);

    assert_int_equal(kt_file_write_atomic(at(f, "m"), "x", 1, 0644, &err), 0);
    umask(old);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
}

static void test_atomic_write_large(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};
    size_t n = 3 * 1024 * 1024 + 17, len = 0;
    char *buf = malloc(n + 1), *data;

    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + i % 26);
    buf[n] = '\0';
    assert_int_equal(kt_file_write_atomic(at(f, "big"), buf, n, 0600, &err), 0);
    data = slurp(f->path, &len);
    assert_int_equal(len, n);
    assert_memory_equal(data, buf, n);
    free(data);
    free(buf);
}

static void test_atomic_write_failure_leaves_nothing(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};

    /* rename() onto a non-empty directory fails after the temp file was written. */
    assert_int_equal(mkdir(at(f, "dir"), 0700), 0);
    write_file(at(f, "dir/keep"), "k", 1, 0600);
    assert_int_equal(kt_file_write_atomic(at(f, "dir"), "data", 4, 0600, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_int_equal(count_entries(f->dir.path), 1);

    kt_error_clear(&err);
    assert_int_equal(kt_file_write_atomic(at(f, "nodir/file"), "data", 4, 0600, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);

    kt_error_clear(&err);
    assert_int_equal(kt_file_write_atomic("relative/file", "data", 4, 0600, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_int_equal(count_entries(f->dir.path), 1);
}

static void test_atomic_write_replaces_link_not_target(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};
    char target[PATH_MAX];
    struct stat st;
    size_t len;
    char *data;

    write_file(at(f, "target"), "precious", 8, 0600);
    strcpy(target, f->path);
    assert_int_equal(symlink(target, at(f, "link")), 0);
    assert_int_equal(kt_file_write_atomic(f->path, "new", 3, 0600, &err), 0);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    data = slurp(target, &len);
    assert_string_equal(data, "precious");
    free(data);
}

/* ---- kt_file_prepare / kt_file_commit / kt_file_discard -------------------------------- */

/* The one temporary file beside f->dir/name (".name.tmp-*"), copied into buf; fails the test
 * unless there is exactly one. */
static void the_temp(fixture *f, const char *name, char *buf, size_t size)
{
    DIR *d = opendir(f->dir.path);
    struct dirent *e;
    char prefix[128];
    int n = 0;

    assert_non_null(d);
    snprintf(prefix, sizeof(prefix), ".%s.tmp-", name);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        test_path(&f->dir, e->d_name, buf, size);
        n++;
    }
    closedir(d);
    assert_int_equal(n, 1);
}

/* The replacement exists before its contents do: with its mode and its space taken. Committing
 * writes, trims the reservation and renames over the old file, which is never torn. */
static void test_prepare_commit(void **state)
{
    fixture *f = *state;
    kt_file_pending p;
    kt_error err = {KT_OK, ""};
    char tmp[PATH_MAX], *data;
    struct stat old_st, st;
    size_t len;
    mode_t old_umask;

    write_file(at(f, "t.json"), "the old contents", 16, 0644);
    assert_int_equal(stat(f->path, &old_st), 0);
    old_umask = umask(077);
    assert_int_equal(kt_file_prepare(f->path, 0640, 64 * 1024, &p, &err), 0);
    umask(old_umask);
    assert_true(p.fd >= 0);
    the_temp(f, "t.json", tmp, sizeof(tmp));
    assert_int_equal(lstat(tmp, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_uid, geteuid());
    /* The space is allocated, not just promised (a sparse file would not hold it). */
    assert_true(st.st_size >= 64 * 1024);
    assert_true((long long)st.st_blocks * 512 >= 64 * 1024);
    /* Until the commit, the old file is the file. */
    data = slurp(at(f, "t.json"), &len);
    assert_string_equal(data, "the old contents");
    free(data);

    assert_int_equal(kt_file_commit(&p, "new", 3, &err), 0);
    assert_int_equal(err.kind, KT_OK);
    assert_int_equal(p.fd, -1);
    assert_null(p.tmp);
    assert_int_equal(stat(at(f, "t.json"), &st), 0);
    assert_int_not_equal(st.st_ino, old_st.st_ino);
    assert_int_equal(st.st_mode & 07777, 0640);
    /* Trimmed to the data: no trailing reservation in the file. */
    assert_int_equal(st.st_size, 3);
    data = slurp(f->path, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "new", 3);
    free(data);
    assert_int_equal(count_entries(f->dir.path), 1);

    /* A new file, and a reservation smaller than the data. */
    assert_int_equal(kt_file_prepare(at(f, "n"), 0600, 2, &p, &err), 0);
    assert_int_equal(kt_file_commit(&p, "longer than two", 15, &err), 0);
    data = slurp(at(f, "n"), &len);
    assert_int_equal(len, 15);
    free(data);
    assert_int_equal(file_mode(f->path), 0600);
    assert_int_equal(count_entries(f->dir.path), 2);
}

/* A prepared replacement that is not wanted after all leaves nothing behind. */
static void test_prepare_discard(void **state)
{
    fixture *f = *state;
    kt_file_pending p;
    kt_error err = {KT_OK, ""};
    char tmp[PATH_MAX], *data;
    size_t len;

    write_file(at(f, "t.json"), "kept", 4, 0600);
    assert_int_equal(kt_file_prepare(f->path, 0600, 4096, &p, &err), 0);
    the_temp(f, "t.json", tmp, sizeof(tmp));
    kt_file_discard(&p);
    assert_int_equal(p.fd, -1);
    assert_null(p.tmp);
    assert_null(p.path);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(count_entries(f->dir.path), 1);
    data = slurp(at(f, "t.json"), &len);
    assert_string_equal(data, "kept");
    free(data);
    /* Twice, or with nothing, is harmless; a discarded replacement cannot be committed. */
    kt_file_discard(&p);
    kt_file_discard(NULL);
    assert_int_equal(kt_file_commit(&p, "x", 1, &err), -1);
    assert_int_equal(err.kind, KT_ERR_INTERNAL);
    data = slurp(at(f, "t.json"), &len);
    assert_string_equal(data, "kept");
    free(data);

    /* Failures leave nothing either: no directory, a relative path. */
    kt_error_clear(&err);
    assert_int_equal(kt_file_prepare(at(f, "nodir/t.json"), 0600, 4096, &p, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_int_equal(p.fd, -1);
    kt_error_clear(&err);
    assert_int_equal(kt_file_prepare("relative.json", 0600, 4096, &p, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_int_equal(count_entries(f->dir.path), 1);
}

/* A reservation the file system cannot give fails at prepare, before anything that cannot be
 * undone. A file size limit stands in for a full disk. */
static void test_prepare_without_room(void **state)
{
    fixture *f = *state;
    pid_t pid;
    int status;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit small = {.rlim_cur = 4096, .rlim_max = 4096};
        kt_file_pending p;
        kt_error err = {KT_OK, ""};
        int rc;

        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &small) != 0)
            _exit(2);
        rc = kt_file_prepare(at(f, "t.json"), 0600, 64 * 1024, &p, &err);
        _exit(rc == -1 && err.kind == KT_ERR_IO && strstr(err.message, "reserve") != NULL ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(count_entries(f->dir.path), 0);
}

/* ---- kt_file_remove_temps ---------------------------------------------------------------- */

/* What a writer killed between writing and renaming leaves is removed; nothing else is: not other
 * names, not a link (nor its target), not a directory, not another user's file. */
static void test_remove_temps(void **state)
{
    static const char *const kept[] = {
        "t.json",          ".t.json.tmp",      "t.json.tmp-abc", ".t.json.tmpabc",
        ".u.json.tmp-abc", "..t.json.tmp-abc", ".t.jso.tmp-abc", ".T.json.tmp-abc",
    };
    fixture *f = *state;
    kt_error err = {KT_OK, ""};
    char target[PATH_MAX], name[PATH_MAX], *data;
    size_t len;

    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        write_file(at(f, kept[i]), "k", 1, 0600);
    write_file(at(f, ".t.json.tmp-Ab12Cd"), "live refresh token", 18, 0600);
    write_file(at(f, ".t.json.tmp-"), "x", 1, 0644);
    write_file(at(f, "target"), "precious", 8, 0600);
    strcpy(target, f->path);
    assert_int_equal(symlink(target, at(f, ".t.json.tmp-link")), 0);
    assert_int_equal(mkdir(at(f, ".t.json.tmp-dir"), 0700), 0);
    if (geteuid() == 0) {
        write_file(at(f, ".t.json.tmp-other"), "x", 1, 0600);
        assert_int_equal(chown(f->path, OTHER_UID, OTHER_UID), 0);
    }

    test_path(&f->dir, "t.json", name, sizeof(name));
    assert_int_equal(kt_file_remove_temps(name, &err), 0);
    assert_int_equal(err.kind, KT_OK);
    assert_int_equal(access(at(f, ".t.json.tmp-Ab12Cd"), F_OK), -1);
    assert_int_equal(access(at(f, ".t.json.tmp-"), F_OK), -1);
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        if (access(at(f, kept[i]), F_OK) != 0)
            fail_msg("%s was removed", kept[i]);
    assert_int_equal(lstat(at(f, ".t.json.tmp-link"), &(struct stat){0}), 0);
    data = slurp(target, &len);
    assert_string_equal(data, "precious");
    free(data);
    assert_int_equal(access(at(f, ".t.json.tmp-dir"), F_OK), 0);
    if (geteuid() == 0)
        assert_int_equal(access(at(f, ".t.json.tmp-other"), F_OK), 0);

    /* Nothing to remove, or no directory at all, is not an error. */
    assert_int_equal(kt_file_remove_temps(name, &err), 0);
    assert_int_equal(kt_file_remove_temps(at(f, "missing/t.json"), &err), 0);
    assert_int_equal(err.kind, KT_OK);
    assert_int_equal(kt_file_remove_temps("relative.json", &err), -1);
}

/* ---- kt_dir_ensure_private -------------------------------------------------------------- */

static void assert_private_dir(const char *path)
{
    struct stat st;

    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(st.st_uid, geteuid());
}

static void test_dir_create_nested(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};
    char path[PATH_MAX];
    mode_t old = umask(022);

    assert_int_equal(kt_dir_ensure_private(at(f, "a/b/c/"), &err), 0);
    umask(old);
    assert_int_equal(err.kind, KT_OK);
    assert_private_dir(at(f, "a"));
    assert_private_dir(at(f, "a/b"));
    assert_private_dir(at(f, "a/b/c"));
    /* Idempotent. */
    test_path(&f->dir, "a/b/c", path, sizeof(path));
    assert_int_equal(kt_dir_ensure_private(path, &err), 0);
    assert_int_equal(kt_file_write_atomic(at(f, "a/b/c/f"), "x", 1, 0600, &err), 0);
}

static void test_dir_existing_checks(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};

    /* An existing private directory is accepted... */
    assert_int_equal(mkdir(at(f, "ro"), 0700), 0);
    assert_int_equal(chmod(f->path, 0700), 0);
    assert_int_equal(kt_dir_ensure_private(f->path, &err), 0);
    /* ...one that others may merely read or enter is not: tokens and keys live there... */
    assert_int_equal(chmod(f->path, 0755), 0);
    assert_int_equal(kt_dir_ensure_private(f->path, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_non_null(strstr(err.message, "open to group or others (mode 0755)"));
    kt_error_clear(&err);
    assert_int_equal(chmod(f->path, 0750), 0);
    assert_int_equal(kt_dir_ensure_private(f->path, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_non_null(strstr(err.message, "open to group or others (mode 0750)"));
    kt_error_clear(&err);
    assert_int_equal(chmod(f->path, 0710), 0);
    assert_int_equal(kt_dir_ensure_private(f->path, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_non_null(strstr(err.message, "open to group or others (mode 0710)"));
    kt_error_clear(&err);
    assert_int_equal(chmod(f->path, 0701), 0);
    assert_int_equal(kt_dir_ensure_private(f->path, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    kt_error_clear(&err);
    /* The refusal changes nothing: the mode is the owner's to fix. */
    assert_int_equal(file_mode(f->path), 0701);
    /* ...nor one that others may write to. */
    assert_int_equal(mkdir(at(f, "gw"), 0700), 0);
    assert_int_equal(chmod(f->path, 0770), 0);
    assert_int_equal(kt_dir_ensure_private(f->path, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_non_null(strstr(err.message, "writable by group or others"));
    kt_error_clear(&err);
    assert_int_equal(chmod(f->path, 0707), 0);
    assert_int_equal(kt_dir_ensure_private(f->path, &err), -1);
}

static void test_dir_refusals(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};
    char target[PATH_MAX];

    assert_int_equal(kt_dir_ensure_private("relative/dir", &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);

    kt_error_clear(&err);
    assert_int_equal(kt_dir_ensure_private(at(f, "x/../y"), &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);

    /* A file in the way. */
    kt_error_clear(&err);
    write_file(at(f, "file"), "x", 1, 0600);
    assert_int_equal(kt_dir_ensure_private(at(f, "file/sub"), &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    kt_error_clear(&err);
    assert_int_equal(kt_dir_ensure_private(at(f, "file"), &err), -1);

    /* The final directory must not be a link, even to a good directory. */
    kt_error_clear(&err);
    assert_int_equal(mkdir(at(f, "real"), 0700), 0);
    strcpy(target, f->path);
    assert_int_equal(symlink(target, at(f, "link")), 0);
    assert_int_equal(kt_dir_ensure_private(f->path, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);

    /* An existing parent reached through a link (a symlinked home, say) is followed. */
    kt_error_clear(&err);
    assert_int_equal(kt_dir_ensure_private(at(f, "link/sub"), &err), 0);
    assert_private_dir(at(f, "real/sub"));
}

static void test_dir_wrong_owner(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};

    if (geteuid() == 0) {
        assert_int_equal(mkdir(at(f, "other"), 0700), 0);
        assert_int_equal(chown(f->path, OTHER_UID, OTHER_UID), 0);
        assert_int_equal(kt_dir_ensure_private(f->path, &err), -1);
        assert_non_null(strstr(err.message, "owned by uid 65534"));
    } else {
        assert_int_equal(kt_dir_ensure_private("/etc", &err), -1);
        assert_non_null(strstr(err.message, "owned by uid 0"));
    }
}

/* ---- kt_file_lock ----------------------------------------------------------------------- */

static void test_lock_basic(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};
    struct stat st;
    int fd, fd2;

    fd = kt_file_lock(at(f, "l.lock"), 0, &err);
    assert_true(fd >= 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* flock is per open file: a second open in the same process conflicts too. */
    fd2 = kt_file_lock(f->path, 50, &err);
    assert_int_equal(fd2, -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    kt_file_unlock(fd);
    kt_error_clear(&err);
    fd2 = kt_file_lock(f->path, 0, &err);
    assert_true(fd2 >= 0);
    kt_file_unlock(fd2);
    kt_file_unlock(-1);
}

static void test_lock_refusals(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};
    char target[PATH_MAX];

    write_file(at(f, "real.lock"), "", 0, 0600);
    strcpy(target, f->path);
    assert_int_equal(symlink(target, at(f, "link.lock")), 0);
    assert_int_equal(kt_file_lock(f->path, 0, &err), -1);
    assert_non_null(strstr(err.message, "symbolic link"));

    kt_error_clear(&err);
    assert_int_equal(mkdir(at(f, "dir.lock"), 0700), 0);
    assert_int_equal(kt_file_lock(f->path, 0, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);

    kt_error_clear(&err);
    assert_int_equal(kt_file_lock("rel.lock", 0, &err), -1);
}

/* CLOCK_MONOTONIC in milliseconds: the same clock in the parent and a child. */
static long monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* What a lock child reports through its pipe. */
typedef struct lock_report {
    long ms;      /* how long kt_file_lock took in the child */
    long done_ms; /* monotonic_ms() when it returned (the lock was taken or given up on) */
} lock_report;

/* Child: tries the lock and reports by exit status: 0 got it, 1 timed out, 2 other error. How
 * long it took, and when it ended, go through a pipe. */
static void lock_child(const char *path, long timeout_ms, int report_fd)
{
    kt_error err = {KT_OK, ""};
    struct timespec t0;
    lock_report r;
    int fd;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    fd = kt_file_lock(path, timeout_ms, &err);
    r.done_ms = monotonic_ms();
    r.ms = elapsed_ms(&t0);
    if (write(report_fd, &r, sizeof(r)) != sizeof(r))
        _exit(3);
    if (fd >= 0) {
        kt_file_unlock(fd);
        _exit(0);
    }
    _exit(strstr(err.message, "still locked") != NULL ? 1 : 2);
}

/* Runs lock_child; with hold_ms > 0, releases held_fd after that long and sets *released_ms to
 * monotonic_ms() just before the release. */
static int run_lock_child_report(const char *path, long timeout_ms, long hold_ms, int held_fd,
                                 lock_report *r, long *released_ms)
{
    int pipefd[2], status = -1;
    pid_t pid;

    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        lock_child(path, timeout_ms, pipefd[1]);
    }
    close(pipefd[1]);
    if (hold_ms > 0) {
        struct timespec ts = {.tv_sec = hold_ms / 1000, .tv_nsec = (hold_ms % 1000) * 1000000L};

        nanosleep(&ts, NULL);
        *released_ms = monotonic_ms();
        kt_file_unlock(held_fd);
    }
    assert_int_equal(read(pipefd[0], r, sizeof(*r)), sizeof(*r));
    close(pipefd[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* run_lock_child_report without a release: *ms is how long kt_file_lock took in the child. */
static int run_lock_child(const char *path, long timeout_ms, int held_fd, long *ms)
{
    lock_report r;
    long unused = 0;
    int rc = run_lock_child_report(path, timeout_ms, 0, held_fd, &r, &unused);

    *ms = r.ms;
    return rc;
}

static void test_lock_excludes_other_process_until_timeout(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};
    long ms = 0;
    int fd = kt_file_lock(at(f, "t.lock"), 0, &err);

    assert_true(fd >= 0);
    assert_int_equal(run_lock_child(f->path, 300, fd, &ms), 1);
    assert_true(ms >= 290);
    assert_true(ms < 3000);
    kt_file_unlock(fd);
    /* Free again: the other process gets it at once. */
    assert_int_equal(run_lock_child(f->path, 0, -1, &ms), 0);
}

static void test_lock_waits_for_release(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};
    lock_report r;
    long released_ms = 0;
    int fd = kt_file_lock(at(f, "w.lock"), 0, &err);

    /* The child gets the lock, and not before the parent let go of it (however late the child
     * was started: both times are on the same monotonic clock). */
    assert_true(fd >= 0);
    /* The child waits up to 10 s; the parent lets go after 300 ms. */
    assert_int_equal(run_lock_child_report(f->path, 10000, 300, fd, &r, &released_ms), 0);
    assert_true(r.done_ms >= released_ms);
    assert_true(r.ms < 9000); /* not the 10 s timeout */

    /* No limit: blocks until released. */
    fd = kt_file_lock(f->path, -1, &err);
    assert_true(fd >= 0);
    assert_int_equal(run_lock_child_report(f->path, -1, 200, fd, &r, &released_ms), 0);
    assert_true(r.done_ms >= released_ms);
}

/* ---- kt_file_remove --------------------------------------------------------------------- */

static void test_remove(void **state)
{
    fixture *f = *state;
    kt_error err = {KT_OK, ""};

    write_file(at(f, "gone"), "x", 1, 0600);
    assert_int_equal(kt_file_remove(f->path, &err), 0);
    assert_int_equal(access(f->path, F_OK), -1);
    assert_int_equal(kt_file_remove(f->path, &err), 0); /* missing is fine */
    assert_int_equal(err.kind, KT_OK);
    assert_int_equal(mkdir(at(f, "d"), 0700), 0);
    assert_int_equal(kt_file_remove(f->path, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    kt_error_clear(&err);
    assert_int_equal(kt_file_remove("relative", &err), -1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_read_ok),
        T(test_read_keeps_nul_bytes),
        T(test_open_relative_refused),
        T(test_open_missing),
        T(test_open_symlink_refused),
        T(test_open_not_regular_refused),
        T(test_open_writable_by_others_refused),
        T(test_open_private_read),
        T(test_open_wrong_owner),
        T(test_open_no_owner_allowed),
        T(test_read_size_cap),
        T(test_atomic_write_new_and_replace),
        T(test_atomic_write_mode_ignores_umask),
        T(test_atomic_write_large),
        T(test_atomic_write_failure_leaves_nothing),
        T(test_atomic_write_replaces_link_not_target),
        T(test_prepare_commit),
        T(test_prepare_discard),
        T(test_prepare_without_room),
        T(test_remove_temps),
        T(test_dir_create_nested),
        T(test_dir_existing_checks),
        T(test_dir_refusals),
        T(test_dir_wrong_owner),
        T(test_lock_basic),
        T(test_lock_refusals),
        T(test_lock_excludes_other_process_until_timeout),
        T(test_lock_waits_for_release),
        T(test_remove),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
