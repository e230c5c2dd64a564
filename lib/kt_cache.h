/* The token cache: one JSON file per user, replaced atomically under a lock. Storage only: what
 * goes in and when is the session's (kt_session). */
#ifndef KT_CACHE_H
#define KT_CACHE_H

#include <stddef.h>

#include "kt_config.h"
#include "kt_file.h"
#include "kontist.h"
#include "kt_token.h"

/* Room reserved for a cache before a refresh: as much as a cache may ever be (the reader refuses
 * a larger one), so whatever the bank answers that can be kept at all fits. */
#define KT_CACHE_RESERVE KT_FILE_MAX_SIZE

/* Strict: one JSON object, known members only, types checked, "version" 1, "expires_at" and
 * "confirmed" required, tokens visible ASCII, and an access token may be missing only when a
 * refresh token is there. "client_id" (the client the tokens were issued to) and "login_at" are
 * optional: caches written before they existed are read as they are. *t is overwritten (zeroed on
 * failure). Errors are KT_ERR_PROTOCOL. */
int kt_cache_parse(const char *text, size_t len, kt_token_set *t, kt_error *err);
/* Returns a kt_cache_status, or -1 for an unsafe file (owner, mode, link): KT_ERR_IO. The file
 * must be private (0600 or stricter). owners NULL: the effective uid. */
int kt_cache_load(const char *path, const kt_owner_policy *owners, kt_token_set *t, kt_error *err);
/* NULL when t holds neither token (or out of memory). Wipe with kt_secret_free. */
char *kt_cache_serialize(const kt_token_set *t);
/* Creates the state directory if needed (0700) and replaces the file atomically (0600) under the
 * cache lock. Do not call it while holding the lock. */
int kt_cache_store(const kt_paths *paths, const kt_token_set *t, kt_error *err);
/* kt_cache_store waiting at most wait_ms for the lock. */
int kt_cache_store_waiting(const kt_paths *paths, const kt_token_set *t, long wait_ms,
                           kt_error *err);
/* The cache lock (kt_file_lock on the lock file), waited for at most wait_ms. */
int kt_cache_lock(const kt_paths *paths, long wait_ms, kt_error *err);
void kt_cache_unlock(int lock); /* -1 is ignored */
/* Under the lock: removes temporary files a crash left and prepares the replacement with
 * KT_CACHE_RESERVE bytes reserved (kt_file_prepare), before the tokens to store exist. */
int kt_cache_prepare(const kt_paths *paths, kt_file_pending *p, kt_error *err);
/* Writes t into the prepared replacement and puts it in place; always releases p. */
int kt_cache_commit(kt_file_pending *p, const kt_token_set *t, kt_error *err);
/* Removes the cache under the lock (and any temporary copy a crash left). With access_only, keeps
 * the refresh token and drops only the access token (a cache without a refresh token, or a corrupt
 * one, is removed). Nothing to erase is not an error. */
int kt_cache_erase(const kt_paths *paths, int access_only, kt_error *err);
/* kt_cache_erase with access_only, done only when the cache holds this user's tokens (NULL or "":
 * any user; a cache that names no user matches) and this access token (NULL: any), compared
 * under the lock. A cache that holds others is left as it is, and that is not an error. */
int kt_cache_erase_access_if(const kt_paths *paths, const char *username, const char *access_token,
                             kt_error *err);

#endif
