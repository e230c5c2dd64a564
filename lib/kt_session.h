/* A user's session with the bank: the token lifecycle from a login to its last refresh. It owns
 * everything that happens to a token set between the network flows (kt_flow) and the file that
 * keeps it (kt_cache): what a refresh carries over, that only one process refreshes, that a
 * rotated refresh token is never lost, and that the tokens are the ones the cache is for. */
#ifndef KT_SESSION_H
#define KT_SESSION_H

#include <stdbool.h>

#include "kt_config.h"
#include "kt_ctx.h"
#include "kt_paths.h"
#include "kt_token.h"

/* A token is handed out only with at least this much life left. */
#define KT_TOKEN_MIN_LEFT 60

/* Gives a token set whose access token has at least KT_TOKEN_MIN_LEFT seconds left: from the cache,
 * or by refreshing under the cache lock (re-reading the cache after taking the lock so that only
 * one of several concurrent processes calls the token endpoint). The lock is waited for at most
 * min(5 s, login_timeout). The space for the refreshed set is reserved before the refresh, and the
 * set is saved before it is returned: a rotated refresh token is never lost, and a full disk
 * stops the refresh before it happens (KT_ERR_IO). A set issued to another client than ctx's is
 * not refreshed (KT_ERR_LOGIN_REQUIRED, naming both clients and the login that issued it); its
 * access token is still handed out while it is valid. The tokens must be those the cache is for
 * (kt_session_check): a set that is not is not used (KT_ERR_LOGIN_REQUIRED). A rejected refresh
 * gives KT_ERR_LOGIN_REQUIRED and leaves the cache as it was; so does a network failure
 * (KT_ERR_UNAVAILABLE). No cache, a corrupt cache or an expired token without a refresh token give
 * KT_ERR_LOGIN_REQUIRED. An unsafe cache file gives KT_ERR_IO. */
int kt_session_get_valid(kt_ctx *ctx, const kt_paths *paths, const kt_owner_policy *owners,
                         kt_token_set *out, kt_error *err);

/* Saves a fresh login's set: stamps it with ctx's client and the time, checks it
 * (kt_session_check) and replaces the cache. */
int kt_session_save_login(kt_ctx *ctx, const kt_paths *paths, kt_token_set *t, kt_error *err);

/* Ends the session on this machine: the cache is removed (access_only: only the access token;
 * the refresh token stays), and so is any temporary file a crash left beside it. */
int kt_session_logout(const kt_paths *paths, bool access_only, kt_error *err);

/* Checks that a set's tokens belong together and to what it is cached for: every JWT in it names
 * the same `sub`, and a confirmed token's cnf.kid names the set's device. Opaque (non-JWT) tokens
 * carry nothing to check. Returns -1 with KT_ERR_PROTOCOL, naming what differs. */
int kt_session_check(const kt_token_set *t, kt_error *err);

/* What a refresh answer does not repeat is carried over from the set it renewed, here and nowhere
 * else: the refresh token (when none was sent, the old one stays valid), username, device, scope,
 * client and the time of the login. The new tokens must name the old set's `sub`. */
int kt_session_carry_over(kt_token_set *fresh, const kt_token_set *old, const char *client_id,
                          kt_error *err);

#endif
