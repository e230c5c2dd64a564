/* Safe file handling: opening without following links, owner/mode checks, size caps,
 * atomic locked replacement and directory creation with private modes. */
#ifndef KT_FILE_H
#define KT_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kt_config.h"
#include "kt_error.h"

#define KT_FILE_MAX_SIZE (64 * 1024)

typedef struct kt_file_policy {
    kt_owner_policy owners;
    bool private_read; /* refuse group/world readable (secrets, keys, tokens) */
    size_t max_size;   /* 0: KT_FILE_MAX_SIZE */
} kt_file_policy;

/* Opens an absolute path read-only with O_NOFOLLOW|O_CLOEXEC|O_NOCTTY, checks it is a regular
 * file, its owner is allowed, it is not group/world writable (and not group/world readable with
 * private_read). Returns the fd or -1 with err set; ENOENT gives KT_ERR_IO with errno_out ENOENT
 * (errno_out may be NULL). */
int kt_file_open_safely(const char *path, const kt_file_policy *policy, int *errno_out,
                        kt_error *err);
/* Reads the whole file into a NUL-terminated buffer (wiped with kt_secret_free by callers that hold
 * secrets). Same checks as kt_file_open_safely, plus the size cap. */
int kt_file_read(const char *path, const kt_file_policy *policy, char **data, size_t *len,
                 int *errno_out, kt_error *err);
/* Replaces path atomically: temp file in the same directory (mode), write, fsync, rename, fsync of
 * the directory. Never leaves a torn file; a temp file is removed on failure. */
int kt_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         kt_error *err);
/* Creates every missing directory of `dir` below `base` (base must exist) with mode 0700 and
 * checks that the final directory is owned by the caller's euid and not group/world accessible
 * when it created it, or at least not group/world writable when it existed. */
int kt_dir_ensure_private(const char *dir, kt_error *err);
/* Takes an exclusive flock on `lock_path` (created 0600 if missing, O_NOFOLLOW), waiting at most
 * timeout_ms (negative: no limit). Returns the fd (to pass to kt_file_unlock) or -1. */
int kt_file_lock(const char *lock_path, long timeout_ms, kt_error *err);
void kt_file_unlock(int fd);
/* Removes a file if it exists; missing is not an error. */
int kt_file_remove(const char *path, kt_error *err);

#endif
