/* Safe file handling: opening without following links, owner/mode checks, size caps,
 * atomic locked replacement and directory creation with private modes. */
#ifndef KT_FILE_H
#define KT_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kt_config.h"
#include "kt_error.h"

/* Opens an absolute path read-only with O_NOFOLLOW|O_CLOEXEC|O_NOCTTY, checks it is a regular
 * file, its owner is allowed, it is not group/world writable (and not group/world readable with
 * private_read). Returns the fd or -1 with err set; ENOENT gives KT_ERR_IO with errno_out ENOENT
 * (errno_out may be NULL). */
int kt_file_open_safely(const char *path, const kt_file_policy *policy, int *errno_out,
                        kt_error *err);
/* Replaces path atomically: temp file in the same directory (mode), write, fsync, rename, fsync of
 * the directory. Never leaves a torn file; a temp file is removed on failure. */
int kt_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         kt_error *err);
/* A replacement prepared before its contents are known: the temporary file exists, has its mode
 * and its blocks (reserve bytes) are allocated, so that committing a token that exists nowhere
 * else cannot fail for want of space. */
typedef struct kt_file_pending {
    int fd;
    char *path; /* the file to replace */
    char *tmp;  /* the temporary file beside it */
    char *dir;
} kt_file_pending;

/* Creates the temporary file for path (mode) and reserves `reserve` bytes (0: none). A full disk
 * fails here (KT_ERR_IO), before anything that cannot be undone. */
int kt_file_prepare(const char *path, mode_t mode, size_t reserve, kt_file_pending *p,
                    kt_error *err);
/* Writes data, trims the reservation, fsyncs, renames over the path and fsyncs the directory.
 * Always releases p (a failed commit removes the temporary file). */
int kt_file_commit(kt_file_pending *p, const void *data, size_t len, kt_error *err);
/* Drops a prepared replacement: the temporary file is removed. */
void kt_file_discard(kt_file_pending *p);
/* Removes temporary files a crash left beside path (".NAME.tmp-*", regular files of the euid
 * only). Call it only while no writer of path can be at work (under its lock). */
int kt_file_remove_temps(const char *path, kt_error *err);
/* Creates every missing directory of `dir` below `base` (base must exist) with mode 0700 and
 * checks that every directory it created and the final one are owned by the caller's euid and
 * not open to group or others at all (mode 0700 or stricter). */
int kt_dir_ensure_private(const char *dir, kt_error *err);
/* Takes an exclusive flock on `lock_path` (created 0600 if missing, O_NOFOLLOW), waiting at most
 * timeout_ms (negative: no limit). Returns the fd (to pass to kt_file_unlock) or -1. */
int kt_file_lock(const char *lock_path, long timeout_ms, kt_error *err);
void kt_file_unlock(int fd);
/* Removes a file if it exists; missing is not an error. */
int kt_file_remove(const char *path, kt_error *err);

#endif
