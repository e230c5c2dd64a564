/* The token cache: one JSON file per user, replaced atomically under a lock, so concurrent
 * processes refresh an expiring token once and a rotated refresh token is never lost. */
#ifndef KT_CACHE_H
#define KT_CACHE_H

#include <stddef.h>

#include "kt_config.h"
#include "kt_ctx.h"
#include "kt_paths.h"
#include "kt_token.h"

/* A token is handed out only with at least this much life left. */
#define KT_TOKEN_MIN_LEFT 60

typedef enum kt_cache_status {
    KT_CACHE_LOADED = 0,
    KT_CACHE_ABSENT = 1,
    KT_CACHE_CORRUPT = 2, /* err holds why; callers report it and go on as if absent */
} kt_cache_status;

/* Strict: one JSON object, known members only, types checked, "version" 1, "expires_at" and
 * "confirmed" required, tokens visible ASCII, and an access token may be missing only when a
 * refresh token is there. "client_id" (the client the tokens were issued to) and "login_at" are
 * optional: caches written before they existed are read as they are. *t is overwritten (zeroed on
 * failure). Errors are KT_ERR_PROTOCOL. */
int kt_cache_parse(const char *text, size_t len, kt_token_set *t, kt_error *err);
/* NULL when t holds neither token (or out of memory). Wipe with kt_secret_free. */
char *kt_cache_serialize(const kt_token_set *t);
/* Returns a kt_cache_status, or -1 for an unsafe file (owner, mode, link): KT_ERR_IO. The file
 * must be private (0600 or stricter). owners NULL: the effective uid. KT_CACHE_ABSENT leaves err
 * alone; KT_CACHE_CORRUPT sets it (KT_ERR_PROTOCOL, naming the file). */
int kt_cache_load(const char *path, const kt_owner_policy *owners, kt_token_set *t, kt_error *err);
/* Creates the state directory if needed (0700) and replaces the file atomically (0600) under the
 * cache lock. Do not call it while holding the lock (kt_cache_get_valid stores by itself). */
int kt_cache_store(const kt_paths *paths, const kt_token_set *t, kt_error *err);
/* Removes the cache under the lock. With access_only, keeps the refresh token and drops only the
 * access token (a cache without a refresh token, or a corrupt one, is removed). Nothing to erase
 * is not an error. */
int kt_cache_erase(const kt_paths *paths, int access_only, kt_error *err);

/* Gives a token set whose access token has at least KT_TOKEN_MIN_LEFT seconds left: from the cache,
 * or by refreshing under the cache lock (re-reading the cache after taking the lock so that only
 * one of several concurrent processes calls the token endpoint). The lock is waited for at most
 * min(5 s, login_timeout). A refreshed set is saved before it is returned (a rotated refresh token
 * is never lost; a failed save is KT_ERR_IO), and is returned even when the server granted less
 * than KT_TOKEN_MIN_LEFT. A set issued to another client than ctx's is not refreshed at all
 * (KT_ERR_LOGIN_REQUIRED, naming both clients and the login that issued it); its access token is
 * still handed out while it is valid. A rejected refresh gives KT_ERR_LOGIN_REQUIRED and leaves
 * the cache as it was; so does a network failure (KT_ERR_UNAVAILABLE). No cache, a corrupt cache or
 * an expired token without a refresh token give KT_ERR_LOGIN_REQUIRED; messages tell the person to
 * run `kontist-auth login`. An unsafe cache file gives KT_ERR_IO. */
int kt_cache_get_valid(kt_ctx *ctx, const kt_paths *paths, const kt_owner_policy *owners,
                       kt_token_set *out, kt_error *err);

#endif
