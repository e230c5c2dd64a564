#include <config.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kt_cache.h"
#include "kt_ctx.h"
#include "kt_file.h"
#include "kt_flow.h"
#include "kt_secret.h"
#include "kt_session.h"
#include "kt_util.h"

/* How long get_valid waits for a concurrent refresh at most (less when login_timeout is). */
#define KT_SESSION_LOCK_WAIT_MS 5000L

/* --- what the tokens say about themselves ----------------------------------------------------- */

/* Reads a JWT's claims. A token that does not read as a JWT (an opaque one, which may hold
 * dots too) names nothing to compare: *is_jwt is false. Whether a token is usable at all is
 * decided where it arrives (kt_oauth, kt_device), not here. */
static int read_claims(const char *token, const char *which, kt_jwt_claims *c, bool *is_jwt,
                       kt_error *err)
{
    kt_error jerr = {KT_OK, ""};

    (void)which;
    (void)err;
    memset(c, 0, sizeof(*c));
    *is_jwt = token != NULL && kt_jwt_read(token, c, &jerr) == 0;
    if (!*is_jwt)
        memset(c, 0, sizeof(*c));
    return 0;
}

int kt_session_check(const kt_token_set *t, kt_error *err)
{
    const char *tokens[] = {t->access_token, t->refresh_token};
    const char *names[] = {"access token", "refresh token"};
    char sub[sizeof(((kt_jwt_claims *)0)->sub)] = "";

    for (size_t i = 0; i < 2; i++) {
        kt_jwt_claims c;
        bool is_jwt;

        if (read_claims(tokens[i], names[i], &c, &is_jwt, err) != 0)
            return -1;
        if (!is_jwt)
            continue;
        if (c.sub[0] != '\0' && sub[0] != '\0' && strcmp(c.sub, sub) != 0)
            return kt_error_set(err, KT_ERR_PROTOCOL,
                                "the access and the refresh token name different subjects");
        if (c.sub[0] != '\0')
            memcpy(sub, c.sub, sizeof(sub));
        /* A token confirmed by another device than the one the set is kept for would pass this
         * machine's MFA with someone else's key. */
        if (c.confirmed && t->device_id != NULL && c.kid[0] != '\0' &&
            strcmp(c.kid, t->device_id) != 0)
            return kt_error_set(err, KT_ERR_PROTOCOL,
                                "the %s was confirmed by device %.64s, not %s", names[i], c.kid,
                                t->device_id);
    }
    return 0;
}

/* The `sub` of the first JWT of a set, "" when none names one. */
static int set_subject(const kt_token_set *t, char *sub, size_t size, kt_error *err)
{
    const char *tokens[] = {t->access_token, t->refresh_token};

    sub[0] = '\0';
    for (size_t i = 0; i < 2 && sub[0] == '\0'; i++) {
        kt_jwt_claims c;
        bool is_jwt;

        if (read_claims(tokens[i], "token", &c, &is_jwt, err) != 0)
            return -1;
        if (is_jwt)
            snprintf(sub, size, "%s", c.sub);
    }
    return 0;
}

static int dup_missing(char **field, const char *old, kt_error *err)
{
    if (*field != NULL || old == NULL)
        return 0;
    *field = strdup(old);
    return *field == NULL ? kt_error_set(err, KT_ERR_INTERNAL, "out of memory") : 0;
}

int kt_session_carry_over(kt_token_set *fresh, const kt_token_set *old, const char *client_id,
                          kt_error *err)
{
    char was[sizeof(((kt_jwt_claims *)0)->sub)], now[sizeof(was)];

    if (set_subject(old, was, sizeof(was), err) != 0 ||
        set_subject(fresh, now, sizeof(now), err) != 0)
        return -1;
    if (was[0] != '\0' && now[0] != '\0' && strcmp(was, now) != 0)
        return kt_error_set(err, KT_ERR_PROTOCOL,
                            "the refreshed tokens name another subject than the ones they renew");
    /* A set from an older cache names no client: the one that refreshed it is its client. */
    if (dup_missing(&fresh->refresh_token, old->refresh_token, err) != 0 ||
        dup_missing(&fresh->username, old->username, err) != 0 ||
        dup_missing(&fresh->device_id, old->device_id, err) != 0 ||
        dup_missing(&fresh->scope, old->scope, err) != 0 ||
        dup_missing(&fresh->client_id, old->client_id != NULL ? old->client_id : client_id, err) !=
            0)
        return -1;
    if (fresh->login_at == 0)
        fresh->login_at = old->login_at;
    /* A refresh renews what the login confirmed; the answer does not say how. */
    if (fresh->mfa == KT_MFA_NONE && fresh->confirmed)
        fresh->mfa = old->mfa;
    return 0;
}

/* --- a usable token, refreshed when needed --------------------------------------------------- */

/* Loads the cache. Returns 1 when it holds a usable token (moved to out), 0 when a refresh is
 * needed (t holds the set), -1 on error: LOGIN_REQUIRED when there is nothing to refresh with. */
static int load_usable(const char *path, const kt_owner_policy *owners, kt_token_set *t,
                       kt_token_set *out, kt_error *err)
{
    kt_error lerr = {KT_OK, ""};
    int st = kt_cache_load(path, owners, t, &lerr);

    if (st < 0)
        return kt_error_set(err, lerr.kind, "%s", lerr.message);
    if (st == KT_CACHE_ABSENT)
        return kt_error_set(err, KT_ERR_LOGIN_REQUIRED, "no cached token");
    if (st == KT_CACHE_CORRUPT)
        return kt_error_set(err, KT_ERR_LOGIN_REQUIRED, "%s", lerr.message);
    if (kt_session_check(t, &lerr) != 0) {
        kt_token_set_free(t);
        return kt_error_set(err, KT_ERR_LOGIN_REQUIRED, "token cache %s is not usable: %s", path,
                            lerr.message);
    }
    if (kt_token_set_usable(t, time(NULL), KT_TOKEN_MIN_LEFT)) {
        *out = *t;
        memset(t, 0, sizeof(*t));
        return 1;
    }
    if (t->refresh_token == NULL) {
        kt_token_set_free(t);
        return kt_error_set(err, KT_ERR_LOGIN_REQUIRED,
                            "the cached token has expired and there is no refresh token");
    }
    return 0;
}

/* A refresh token works only with the client it was issued to: with another one the bank
 * refuses it, and the person would learn only that it was "rejected". Not tried; explained. */
static int check_client(const kt_ctx *ctx, const kt_token_set *cur, kt_error *err)
{
    const char *mine = ctx->cfg != NULL ? ctx->cfg->client_id : NULL;
    char when[64] = "an earlier login";
    struct tm tm;

    if (cur->client_id == NULL || mine == NULL || strcmp(cur->client_id, mine) == 0)
        return 0;
    if (cur->login_at > 0 && gmtime_r(&cur->login_at, &tm) != NULL)
        strftime(when, sizeof(when), "the login at %Y-%m-%d %H:%M:%S UTC", &tm);
    return kt_error_set(err, KT_ERR_LOGIN_REQUIRED,
                        "these tokens were issued to client %s by %s; this configuration's "
                        "client %s cannot refresh them: log in again to get tokens this client "
                        "can refresh",
                        cur->client_id, when, mine);
}

/* After a refresh whose answer failed a check: the cache keeps the old set's data with the
 * refresh token the bank just issued (when it issued one) and no access token. Best effort: the
 * check's error is what the caller reports. */
static void keep_refresh_token(kt_file_pending *pending, const kt_token_set *cur,
                               const kt_token_set *fresh)
{
    kt_token_set keep = *cur;
    kt_error ignored = {KT_OK, ""};
    char was[sizeof(((kt_jwt_claims *)0)->sub)], now[sizeof(was)];

    if (fresh->refresh_token == NULL || cur->refresh_token == NULL ||
        strcmp(fresh->refresh_token, cur->refresh_token) == 0)
        return;
    /* Only a refresh token shown to be the same person's is kept under this set's user and
     * device: kept otherwise, another subject's token would pass the next check, whose only
     * anchor is the kept token itself. Not kept, the next use asks for a login. */
    if (set_subject(cur, was, sizeof(was), &ignored) != 0 ||
        set_subject(fresh, now, sizeof(now), &ignored) != 0 || was[0] == '\0' ||
        strcmp(was, now) != 0)
        return;
    keep.refresh_token = fresh->refresh_token;
    keep.access_token = NULL;
    keep.expires_at = 0;
    keep.confirmed = false;
    kt_cache_commit(pending, &keep, &ignored);
}

/* Refreshes under the lock and saves the result before anyone sees it: a rotated refresh token
 * exists nowhere else, so the file it goes into is made, with its space, before asking. */
static int refresh_locked(kt_ctx *ctx, const kt_paths *paths, const kt_token_set *cur,
                          kt_token_set *out, kt_error *err)
{
    kt_file_pending pending;
    kt_token_set fresh;
    kt_error rerr = {KT_OK, ""};
    int ret = -1;

    memset(&fresh, 0, sizeof(fresh));
    if (check_client(ctx, cur, err) != 0)
        return -1;
    if (kt_cache_prepare(paths, &pending, err) != 0)
        return -1;
    if (kt_flow_refresh(ctx, cur->refresh_token, &fresh, &rerr) != 0) {
        /* An answer refused after the bank rotated: its refresh token alone is kept. */
        keep_refresh_token(&pending, cur, &fresh);
        if (rerr.kind == KT_ERR_LOGIN_REQUIRED)
            kt_error_set(err, KT_ERR_LOGIN_REQUIRED, "the cached refresh token was rejected (%s)",
                         rerr.message);
        else
            kt_error_set(err, rerr.kind, "%s", rerr.message);
        goto out;
    }
    if (fresh.access_token == NULL) {
        kt_error_set(err, KT_ERR_PROTOCOL, "the refresh gave no access token");
        goto out;
    }
    if (kt_session_carry_over(&fresh, cur, ctx->cfg != NULL ? ctx->cfg->client_id : NULL, err) !=
            0 ||
        kt_session_check(&fresh, err) != 0) {
        /* The bank has retired the old refresh token: the new one is kept, without the access
         * token that failed the check, so that nothing is lost while the error is reported. */
        keep_refresh_token(&pending, cur, &fresh);
        goto out;
    }
    ret = kt_cache_commit(&pending, &fresh, err);
    if (ret == 0) {
        *out = fresh;
        memset(&fresh, 0, sizeof(fresh));
    }
out:
    kt_file_discard(&pending);
    kt_token_set_free(&fresh);
    return ret;
}

static long lock_wait_ms(const kt_ctx *ctx)
{
    long limit = ctx != NULL && ctx->cfg != NULL ? ctx->cfg->login_timeout * 1000L : 0;

    return limit > 0 && limit < KT_SESSION_LOCK_WAIT_MS ? limit : KT_SESSION_LOCK_WAIT_MS;
}

int kt_session_get_valid(kt_ctx *ctx, const kt_paths *paths, const kt_owner_policy *owners,
                         kt_token_set *out, kt_error *err)
{
    kt_token_set cur;
    int lock = -1;
    int st;
    int ret = -1;

    memset(out, 0, sizeof(*out));
    memset(&cur, 0, sizeof(cur));
    /* Fast path without the lock: most calls find a usable token. */
    st = load_usable(paths->cache_file, owners, &cur, out, err);
    if (st != 0)
        return st > 0 ? 0 : -1;
    kt_token_set_free(&cur);

    lock = kt_cache_lock(paths, lock_wait_ms(ctx), err);
    if (lock < 0)
        goto out;
    /* Another process may have refreshed while we waited for the lock. */
    st = load_usable(paths->cache_file, owners, &cur, out, err);
    if (st != 0) {
        ret = st > 0 ? 0 : -1;
        goto out;
    }
    if (ctx == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "no context to refresh the token with");
        goto out;
    }
    ret = refresh_locked(ctx, paths, &cur, out, err);
out:
    kt_cache_unlock(lock);
    kt_token_set_free(&cur);
    return ret;
}

/* --- login and logout ------------------------------------------------------------------------ */

/* How long a login's save waits for the cache lock: a process of the user's holding it must not
 * keep the login (accepted by then) past its deadline, which the PAM helper's own watchdog
 * follows a few seconds later. Up to a second past the flow deadline, at most the usual wait. */
static long save_wait_ms(const kt_ctx *ctx)
{
    uint64_t deadline = ctx != NULL ? ctx->deadline_ms : 0;
    uint64_t now = kt_now_ms();
    uint64_t left;

    if (deadline == 0)
        return KT_SESSION_LOCK_WAIT_MS;
    left = (deadline > now ? deadline - now : 0) + 1000u;
    return left < (uint64_t)KT_SESSION_LOCK_WAIT_MS ? (long)left : KT_SESSION_LOCK_WAIT_MS;
}

int kt_session_save_login(kt_ctx *ctx, const kt_paths *paths, kt_token_set *t, kt_error *err)
{
    const char *client = ctx != NULL && ctx->cfg != NULL ? ctx->cfg->client_id : NULL;

    if (kt_token_set_stamp(t, client, time(NULL), err) != 0 || kt_session_check(t, err) != 0)
        return -1;
    return kt_cache_store_waiting(paths, t, save_wait_ms(ctx), err);
}

int kt_session_logout(const kt_paths *paths, bool access_only, kt_error *err)
{
    return kt_cache_erase(paths, access_only, err);
}

int kt_session_forget_access(const kt_paths *paths, const char *username, const char *access_token,
                             kt_error *err)
{
    return kt_cache_erase_access_if(paths, username, access_token, err);
}

int kt_session_read(const kt_paths *paths, const kt_owner_policy *owners, kt_token_set *t,
                    kt_error *err)
{
    kt_error cerr = {KT_OK, ""};
    int st = kt_cache_load(paths->cache_file, owners, t, err);

    /* What get_valid would refuse is not reported as a login. */
    if (st == KT_CACHE_LOADED && kt_session_check(t, &cerr) != 0) {
        kt_token_set_free(t);
        kt_error_set(err, cerr.kind, "the tokens are not usable: %s", cerr.message);
        return KT_CACHE_CORRUPT;
    }
    return st;
}

/* Whether a token names device_id in its cnf.kid. */
static bool confirmed_by(const char *token, const char *device_id)
{
    kt_jwt_claims c;
    bool is_jwt;

    return read_claims(token, "token", &c, &is_jwt, NULL) == 0 && is_jwt && c.confirmed &&
           strcmp(c.kid, device_id) == 0;
}

int kt_session_forget_device(const kt_paths *paths, const char *device_id, bool *removed,
                             kt_error *err)
{
    kt_error lerr = {KT_OK, ""};
    kt_token_set t;
    struct stat st;
    bool match;
    int lock, status, ret = 0;

    if (removed != NULL)
        *removed = false;
    if (paths == NULL || device_id == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    /* Without the state directory there is no cache, and no place for a lock file either. */
    if (lstat(paths->state_dir, &st) != 0 && errno == ENOENT)
        return 0;
    lock = kt_cache_lock(paths, KT_SESSION_LOCK_WAIT_MS, err);
    if (lock < 0)
        return -1;
    status = kt_cache_load(paths->cache_file, NULL, &t, &lerr);
    if (status < 0) {
        ret = kt_error_set(err, lerr.kind, "%s", lerr.message);
        goto out;
    }
    if (status != KT_CACHE_LOADED)
        goto out;
    match = (t.device_id != NULL && strcmp(t.device_id, device_id) == 0) ||
            confirmed_by(t.access_token, device_id) || confirmed_by(t.refresh_token, device_id);
    kt_token_set_free(&t);
    if (!match)
        goto out;
    ret = kt_file_remove(paths->cache_file, err);
    /* A crash between writing and renaming leaves a temporary copy with the same tokens. */
    if (kt_file_remove_temps(paths->cache_file, err) != 0)
        ret = -1;
    if (ret == 0 && removed != NULL)
        *removed = true;
out:
    kt_cache_unlock(lock);
    return ret;
}
