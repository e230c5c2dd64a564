#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kt_file.h"
#include "kt_secret.h"
#include "kt_util.h"

static int io_error(kt_error *err, const char *path, const char *what, int e)
{
    return kt_error_set(err, KT_ERR_IO, "%s: %s: %s", path, what, strerror(e));
}

static bool owner_allowed(const kt_owner_policy *owners, uid_t uid)
{
    if (owners->allow_root && uid == 0)
        return true;
    return owners->allow_uid && uid == owners->uid;
}

/* Checks what an open descriptor really is: the path may have changed since we named it, the
 * descriptor cannot. */
static int check_opened(int fd, const char *path, const kt_file_policy *policy, struct stat *st,
                        kt_error *err)
{
    if (fstat(fd, st) != 0)
        return io_error(err, path, "cannot stat", errno);
    if (!S_ISREG(st->st_mode))
        return kt_error_set(err, KT_ERR_IO, "%s: not a regular file", path);
    if (!owner_allowed(&policy->owners, st->st_uid))
        return kt_error_set(err, KT_ERR_IO, "%s: owned by uid %lu, which is not allowed", path,
                            (unsigned long)st->st_uid);
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return kt_error_set(err, KT_ERR_IO, "%s: writable by group or others (mode %04o)", path,
                            (unsigned)(st->st_mode & 07777));
    if (policy->private_read && (st->st_mode & (S_IRGRP | S_IROTH)) != 0)
        return kt_error_set(err, KT_ERR_IO, "%s: readable by group or others (mode %04o)", path,
                            (unsigned)(st->st_mode & 07777));
    return 0;
}

static size_t policy_max_size(const kt_file_policy *policy)
{
    return policy->max_size == 0 ? KT_FILE_MAX_SIZE : policy->max_size;
}

int kt_file_open_safely(const char *path, const kt_file_policy *policy, int *errno_out,
                        kt_error *err)
{
    struct stat st;
    int fd;

    if (errno_out != NULL)
        *errno_out = 0;
    if (path == NULL || path[0] != '/')
        return kt_error_set(err, KT_ERR_IO, "%s: not an absolute path", path ? path : "(null)");
    if (policy == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "%s: no file policy", path);
    /* O_NONBLOCK: opening a FIFO planted at the path must not hang; fstat rejects it below. */
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;

        if (errno_out != NULL)
            *errno_out = e;
        if (e == ELOOP)
            return kt_error_set(err, KT_ERR_IO, "%s: is a symbolic link", path);
        return io_error(err, path, "cannot open", e);
    }
    if (check_opened(fd, path, policy, &st, err) != 0) {
        close(fd);
        return -1;
    }
    if ((size_t)st.st_size > policy_max_size(policy)) {
        close(fd);
        return kt_error_set(err, KT_ERR_IO, "%s: larger than %zu bytes", path,
                            policy_max_size(policy));
    }
    return fd;
}

static void free_buffer(char *buf, size_t size)
{
    kt_wipe(buf, size);
    free(buf);
}

int kt_file_read(const char *path, const kt_file_policy *policy, char **data, size_t *len,
                 int *errno_out, kt_error *err)
{
    size_t max, size, total = 0;
    char *buf = NULL;
    int fd, rc = -1;

    *data = NULL;
    if (len != NULL)
        *len = 0;
    fd = kt_file_open_safely(path, policy, errno_out, err);
    if (fd < 0)
        return -1;
    max = policy_max_size(policy);
    /* One byte more than the cap tells a file that grew after fstat from one that fits. */
    size = max + 2;
    buf = malloc(size);
    if (buf == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        goto out;
    }
    while (total <= max) {
        ssize_t n = read(fd, buf + total, size - 1 - total);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            io_error(err, path, "cannot read", errno);
            goto out;
        }
        if (n == 0)
            break;
        total += (size_t)n;
    }
    if (total > max) {
        kt_error_set(err, KT_ERR_IO, "%s: larger than %zu bytes", path, max);
        goto out;
    }
    buf[total] = '\0';
    *data = buf;
    buf = NULL;
    if (len != NULL)
        *len = total;
    rc = 0;
out:
    if (buf != NULL)
        free_buffer(buf, size);
    close(fd);
    return rc;
}

/* Splits an absolute path into a malloc'd directory and a pointer to the base name inside path. */
static int split_path(const char *path, char **dir, const char **base, kt_error *err)
{
    const char *slash;

    if (path == NULL || path[0] != '/')
        return kt_error_set(err, KT_ERR_IO, "%s: not an absolute path", path ? path : "(null)");
    slash = strrchr(path, '/');
    *base = slash + 1;
    if (**base == '\0' || strcmp(*base, ".") == 0 || strcmp(*base, "..") == 0)
        return kt_error_set(err, KT_ERR_IO, "%s: not a file name", path);
    *dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (*dir == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return 0;
}

static void random_suffix(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char rnd[32];
    struct timespec ts;

    /* Unpredictable names are a courtesy, not the defence: O_EXCL|O_NOFOLLOW is. */
    if (n > sizeof(rnd))
        n = sizeof(rnd);
    if (getrandom(rnd, n, GRND_NONBLOCK) != (ssize_t)n) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        for (size_t i = 0; i < n; i++)
            rnd[i] = (unsigned char)((uint64_t)ts.tv_nsec >> (i % 8) ^ (uint64_t)getpid() >> i ^ i);
    }
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
    out[n] = '\0';
}

static int create_temp(const char *dir, const char *base, char **tmp_path, kt_error *err)
{
    char suffix[13];

    for (int attempt = 0; attempt < 100; attempt++) {
        int fd;

        random_suffix(suffix, sizeof(suffix) - 1);
        free(*tmp_path);
        if (asprintf(tmp_path, "%s%s.%s.tmp-%s", dir, strcmp(dir, "/") == 0 ? "" : "/", base,
                     suffix) < 0) {
            *tmp_path = NULL;
            return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        }
        fd = open(*tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST) {
            io_error(err, *tmp_path, "cannot create", errno);
            free(*tmp_path);
            *tmp_path = NULL;
            return -1;
        }
    }
    free(*tmp_path);
    *tmp_path = NULL;
    return kt_error_set(err, KT_ERR_IO, "%s: cannot find a free temporary name", dir);
}

/* Without this the rename itself may be lost in a crash even though the data was synced. */
static int sync_dir(const char *dir, kt_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return io_error(err, dir, "cannot open directory", errno);
    if (fsync(fd) != 0 && errno != EINVAL) {
        int e = errno;

        close(fd);
        return io_error(err, dir, "cannot sync directory", e);
    }
    close(fd);
    return 0;
}

int kt_file_prepare(const char *path, mode_t mode, size_t reserve, kt_file_pending *p,
                    kt_error *err)
{
    const char *base = NULL;
    int rc;

    memset(p, 0, sizeof(*p));
    p->fd = -1;
    if (split_path(path, &p->dir, &base, err) != 0)
        return -1;
    p->path = strdup(path);
    if (p->path == NULL) {
        kt_file_discard(p);
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    p->fd = create_temp(p->dir, base, &p->tmp, err);
    if (p->fd < 0) {
        kt_file_discard(p);
        return -1;
    }
    /* fchmod, unlike the open mode, is not narrowed by the umask. */
    if (fchmod(p->fd, mode & 07777) != 0) {
        io_error(err, p->tmp, "cannot set mode", errno);
        kt_file_discard(p);
        return -1;
    }
    /* The blocks are taken now, while losing the write would lose nothing. */
    rc = reserve > 0 ? posix_fallocate(p->fd, 0, (off_t)reserve) : 0;
    if (rc != 0) {
        io_error(err, p->tmp, "cannot reserve space", rc);
        kt_file_discard(p);
        return -1;
    }
    return 0;
}

static int pwrite_all(int fd, const void *data, size_t len, const char *path, kt_error *err)
{
    const unsigned char *cur = data;
    off_t at = 0;

    while (len > 0) {
        ssize_t n = pwrite(fd, cur, len, at);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return io_error(err, path, "cannot write", errno);
        if (n == 0)
            return kt_error_set(err, KT_ERR_IO, "%s: cannot write: no progress", path);
        cur += n;
        at += n;
        len -= (size_t)n;
    }
    return 0;
}

int kt_file_commit(kt_file_pending *p, const void *data, size_t len, kt_error *err)
{
    int rc = -1;

    if (p->fd < 0)
        return kt_error_set(err, KT_ERR_INTERNAL, "no prepared file to commit");
    if (pwrite_all(p->fd, data, len, p->tmp, err) != 0)
        goto out;
    /* What was reserved beyond the data goes; shrinking needs no new blocks. */
    if (ftruncate(p->fd, (off_t)len) != 0) {
        io_error(err, p->tmp, "cannot truncate", errno);
        goto out;
    }
    if (fsync(p->fd) != 0) {
        io_error(err, p->tmp, "cannot sync", errno);
        goto out;
    }
    rc = close(p->fd);
    p->fd = -1;
    if (rc != 0) {
        rc = io_error(err, p->tmp, "cannot close", errno);
        goto out;
    }
    rc = -1;
    if (rename(p->tmp, p->path) != 0) {
        io_error(err, p->path, "cannot replace", errno);
        goto out;
    }
    free(p->tmp);
    p->tmp = NULL;
    rc = sync_dir(p->dir, err);
out:
    kt_file_discard(p);
    return rc;
}

void kt_file_discard(kt_file_pending *p)
{
    if (p == NULL)
        return;
    if (p->fd >= 0)
        close(p->fd);
    if (p->tmp != NULL)
        unlink(p->tmp);
    free(p->tmp);
    free(p->dir);
    free(p->path);
    memset(p, 0, sizeof(*p));
    p->fd = -1;
}

int kt_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, kt_error *err)
{
    kt_file_pending p;

    if (kt_file_prepare(path, mode, 0, &p, err) != 0)
        return -1;
    return kt_file_commit(&p, data, len, err);
}

int kt_file_remove_temps(const char *path, kt_error *err)
{
    char *dir = NULL, *prefix = NULL;
    const char *base = NULL;
    struct dirent *ent;
    DIR *d;
    int rc = 0;

    if (split_path(path, &dir, &base, err) != 0)
        return -1;
    if (asprintf(&prefix, ".%s.tmp-", base) < 0) {
        free(dir);
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    d = opendir(dir);
    if (d == NULL) {
        if (errno != ENOENT)
            rc = io_error(err, dir, "cannot open directory", errno);
        goto out;
    }
    while ((ent = readdir(d)) != NULL) {
        struct stat st;

        if (strncmp(ent->d_name, prefix, strlen(prefix)) != 0)
            continue;
        /* Only our own regular files: a link or someone else's file is left as it is. */
        if (fstatat(dirfd(d), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            st.st_uid != geteuid())
            continue;
        if (unlinkat(dirfd(d), ent->d_name, 0) != 0 && errno != ENOENT && rc == 0)
            rc = io_error(err, ent->d_name, "cannot remove", errno);
    }
    closedir(d);
out:
    free(prefix);
    free(dir);
    return rc;
}

static int check_private_dir(int fd, const char *path, kt_error *err)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return io_error(err, path, "cannot stat", errno);
    if (st.st_uid != geteuid())
        return kt_error_set(err, KT_ERR_IO, "%s: owned by uid %lu, not by uid %lu", path,
                            (unsigned long)st.st_uid, (unsigned long)geteuid());
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return kt_error_set(err, KT_ERR_IO, "%s: writable by group or others (mode %04o)", path,
                            (unsigned)(st.st_mode & 07777));
    /* Tokens, keys and device records live here: their names and the lock are nobody else's. */
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        return kt_error_set(err, KT_ERR_IO,
                            "%s: open to group or others (mode %04o); it must be private to its "
                            "owner (mode 0700)",
                            path, (unsigned)(st.st_mode & 07777));
    return 0;
}

/* Walks the path with openat so that each step works on the directory checked before it; a
 * directory swapped for a link between mkdir and open is not followed. */
int kt_dir_ensure_private(const char *dir, kt_error *err)
{
    char *copy = NULL, *save = NULL, *comp;
    int fd = -1, rc = -1;

    if (dir == NULL || dir[0] != '/')
        return kt_error_set(err, KT_ERR_IO, "%s: not an absolute path", dir ? dir : "(null)");
    copy = strdup(dir);
    if (copy == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        io_error(err, "/", "cannot open", errno);
        goto out;
    }
    comp = strtok_r(copy, "/", &save);
    if (comp == NULL) {
        rc = check_private_dir(fd, dir, err);
        goto out;
    }
    while (comp != NULL) {
        char *next = strtok_r(NULL, "/", &save);
        bool created = false, last = next == NULL;
        int nfd;

        if (strcmp(comp, "..") == 0) {
            kt_error_set(err, KT_ERR_IO, "%s: '..' is not allowed", dir);
            goto out;
        }
        if (mkdirat(fd, comp, 0700) == 0)
            created = true;
        else if (errno != EEXIST) {
            io_error(err, dir, "cannot create directory", errno);
            goto out;
        }
        /* Existing parents (a symlinked home, say) are trusted; the directories we create and the
         * one we were asked for are not followed through links. */
        nfd = openat(fd, comp,
                     O_RDONLY | O_DIRECTORY | O_CLOEXEC | (created || last ? O_NOFOLLOW : 0));
        if (nfd < 0) {
            int e = errno;

            if (e == ELOOP || (e == ENOTDIR && (created || last)))
                kt_error_set(err, KT_ERR_IO, "%s: '%s' is not a directory or is a link", dir, comp);
            else
                io_error(err, dir, "cannot open directory", e);
            goto out;
        }
        close(fd);
        fd = nfd;
        if ((created || last) && check_private_dir(fd, dir, err) != 0)
            goto out;
        comp = next;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Polls a non-blocking flock: no timer or signal handler, which a PAM module must not install. */
static int wait_lock(int fd, const char *path, long timeout_ms, kt_error *err)
{
    uint64_t deadline = kt_now_ms() + (uint64_t)timeout_ms;
    long pause = 5;

    for (;;) {
        uint64_t now;

        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return io_error(err, path, "cannot lock", errno);
        now = kt_now_ms();
        if (now >= deadline)
            return kt_error_set(err, KT_ERR_IO, "%s: still locked by another process after %ld ms",
                                path, timeout_ms);
        if ((uint64_t)pause > deadline - now)
            pause = (long)(deadline - now);
        sleep_ms(pause);
        if (pause < 50)
            pause *= 2;
    }
}

int kt_file_lock(const char *lock_path, long timeout_ms, kt_error *err)
{
    struct stat st;
    int fd;

    if (lock_path == NULL || lock_path[0] != '/')
        return kt_error_set(err, KT_ERR_IO, "%s: not an absolute path",
                            lock_path ? lock_path : "(null)");
    fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
    if (fd < 0) {
        if (errno == ELOOP)
            return kt_error_set(err, KT_ERR_IO, "%s: is a symbolic link", lock_path);
        return io_error(err, lock_path, "cannot open", errno);
    }
    if (fstat(fd, &st) != 0) {
        io_error(err, lock_path, "cannot stat", errno);
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        kt_error_set(err, KT_ERR_IO, "%s: not a regular file owned by uid %lu", lock_path,
                     (unsigned long)geteuid());
        goto fail;
    }
    if (timeout_ms < 0) {
        while (flock(fd, LOCK_EX) != 0) {
            if (errno != EINTR) {
                io_error(err, lock_path, "cannot lock", errno);
                goto fail;
            }
        }
        return fd;
    }
    if (wait_lock(fd, lock_path, timeout_ms, err) == 0)
        return fd;
fail:
    close(fd);
    return -1;
}

void kt_file_unlock(int fd)
{
    if (fd < 0)
        return;
    /* Explicit unlock: a forked child may still hold a copy of this descriptor. */
    flock(fd, LOCK_UN);
    close(fd);
}

int kt_file_remove(const char *path, kt_error *err)
{
    if (path == NULL || path[0] != '/')
        return kt_error_set(err, KT_ERR_IO, "%s: not an absolute path", path ? path : "(null)");
    if (unlink(path) != 0 && errno != ENOENT)
        return io_error(err, path, "cannot remove", errno);
    return 0;
}
