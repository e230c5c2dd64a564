/* kt_session: the token lifecycle between the network flows and the cache file. Without the
 * network: which tokens belong together and to the cached device (kt_session_check), what a refresh
 * carries over (kt_session_carry_over), saving a login, logging out, and kt_session_get_valid on
 * caches it must serve, refuse or leave alone. Through kontist-mock (kt_mock.c): real refreshes,
 * with and without rotation, a rejected one, one that cannot reserve the space for its result, and
 * several processes racing for one expiring token. */
#include <config.h>

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache_fixture.h"
#include "kt_cache.h"
#include "kt_config.h"
#include "kt_ctx.h"
#include "kt_file.h"
#include "kt_flow.h"
#include "kt_http.h"
#include "kt_mock.h"
#include "kt_oauth.h"
#include "kt_secret.h"
#include "kt_session.h"
#include "test_util.h"

/* The device the sample sets are kept for (sample_set's device_id). */
#define SAMPLE_DEVICE "3f1c0a2e-device"

/* Replaces *field (wiped: it may be a token) with a copy of value (NULL: none). */
static void set_field(char **field, const char *value)
{
    kt_secret_clear(field);
    *field = value != NULL ? strdup(value) : NULL;
    if (value != NULL)
        assert_non_null(*field);
}

/* Replaces *field with an unsigned JWT carrying these claims. */
static void set_jwt(char **field, const char *claims)
{
    kt_secret_clear(field);
    *field = kt_test_jwt(claims);
}

/* A set for the checks: access and refresh tokens made from claims (NULL: an opaque token), kept
 * for device_id (may be NULL). */
static void claims_set(kt_token_set *t, const char *access_claims, const char *refresh_claims,
                       const char *device_id)
{
    memset(t, 0, sizeof(*t));
    if (access_claims != NULL)
        set_jwt(&t->access_token, access_claims);
    else
        set_field(&t->access_token, "opaque-access-token");
    if (refresh_claims != NULL)
        set_jwt(&t->refresh_token, refresh_claims);
    else
        set_field(&t->refresh_token, "opaque-refresh-token");
    set_field(&t->device_id, device_id);
    t->expires_at = time(NULL) + 3600;
    t->confirmed = access_claims != NULL && strstr(access_claims, "\"cnf\"") != NULL;
}

/* kt_session_check on a set made by claims_set: accepted, or refused with a message naming `why`.
 */
static void check_claims(const char *access_claims, const char *refresh_claims,
                         const char *device_id, const char *why)
{
    kt_token_set t;
    kt_error err = {KT_OK, ""};
    int rc;

    claims_set(&t, access_claims, refresh_claims, device_id);
    rc = kt_session_check(&t, &err);
    kt_token_set_free(&t);
    if (why == NULL && rc != 0)
        fail_msg("refused access %s / refresh %s / device %s: %s",
                 access_claims != NULL ? access_claims : "opaque",
                 refresh_claims != NULL ? refresh_claims : "opaque",
                 device_id != NULL ? device_id : "none", err.message);
    if (why != NULL) {
        if (rc != -1)
            fail_msg("accepted access %s / refresh %s / device %s",
                     access_claims != NULL ? access_claims : "opaque",
                     refresh_claims != NULL ? refresh_claims : "opaque",
                     device_id != NULL ? device_id : "none");
        assert_int_equal(err.kind, KT_ERR_PROTOCOL);
        assert_msg_has(&err, why);
    }
}

/* --- kt_session_check ------------------------------------------------------------------------ */

/* A token confirmed by another device than the one the set is kept for would pass this machine's
 * MFA with someone else's key. */
static void test_check_device(void **state)
{
    (void)state;
    /* The access token confirmed by another device. */
    check_claims("{\"sub\":\"u\",\"exp\":1900000000,\"cnf\":{\"kid\":\"other-device\"}}", NULL,
                 SAMPLE_DEVICE,
                 "the access token was confirmed by device other-device, not " SAMPLE_DEVICE);
    /* The refresh token, while the access token is not confirmed. */
    check_claims("{\"sub\":\"u\",\"exp\":1900000000}",
                 "{\"sub\":\"u\",\"cnf\":{\"kid\":\"other-device\"}}", SAMPLE_DEVICE,
                 "the refresh token was confirmed by device other-device");
    /* A kid that is not a short printable string names nothing the core can compare. */
    check_claims("{\"sub\":\"u\",\"exp\":1900000000,\"cnf\":{\"kid\":7}}", NULL, SAMPLE_DEVICE,
                 NULL);
    /* Confirmed by the device the set is for, in either token. */
    check_claims("{\"sub\":\"u\",\"exp\":1900000000,\"cnf\":{\"kid\":\"" SAMPLE_DEVICE "\"}}",
                 "{\"sub\":\"u\",\"cnf\":{\"kid\":\"" SAMPLE_DEVICE "\"}}", SAMPLE_DEVICE, NULL);
    /* Nothing to compare: not confirmed, a cnf without kid, or a set kept for no device. */
    check_claims("{\"sub\":\"u\",\"exp\":1900000000}", NULL, SAMPLE_DEVICE, NULL);
    check_claims("{\"sub\":\"u\",\"exp\":1900000000,\"cnf\":{}}", NULL, SAMPLE_DEVICE, NULL);
    check_claims("{\"sub\":\"u\",\"exp\":1900000000,\"cnf\":{\"kid\":\"other-device\"}}", NULL,
                 NULL, NULL);
}

/* The access and the refresh token of one set are one person's. */
static void test_check_subjects(void **state)
{
    (void)state;
    check_claims("{\"sub\":\"alice\",\"exp\":1900000000}", "{\"sub\":\"bob\"}", SAMPLE_DEVICE,
                 "the access and the refresh token name different subjects");
    check_claims("{\"sub\":\"alice\",\"exp\":1900000000}", "{\"sub\":\"alice\"}", SAMPLE_DEVICE,
                 NULL);
    /* Opaque tokens carry nothing to compare, and a token without sub names nobody. */
    check_claims(NULL, NULL, SAMPLE_DEVICE, NULL);
    check_claims("{\"sub\":\"alice\",\"exp\":1900000000}", NULL, SAMPLE_DEVICE, NULL);
    check_claims(NULL, "{\"sub\":\"bob\"}", SAMPLE_DEVICE, NULL);
    check_claims("{\"exp\":1900000000}", "{\"sub\":\"bob\"}", SAMPLE_DEVICE, NULL);
    /* A sub that is not a string, or a token with dots that is no JWT (an opaque refresh token
     * may hold dots), names nobody: nothing to compare, nothing refused. */
    check_claims("{\"sub\":5}", "{\"sub\":\"bob\"}", SAMPLE_DEVICE, NULL);
    {
        kt_token_set t;
        kt_error err = {KT_OK, ""};

        claims_set(&t, "{\"sub\":\"alice\",\"exp\":1900000000}", NULL, SAMPLE_DEVICE);
        set_field(&t.refresh_token, "v1.8f3k.opaque");
        assert_int_equal(kt_session_check(&t, &err), 0);
        kt_token_set_free(&t);
    }
}

/* --- kt_session_carry_over ------------------------------------------------------------------- */

static void old_set(kt_token_set *old)
{
    sample_set(old, 1700000000);
    set_jwt(&old->access_token, "{\"sub\":\"alice\",\"exp\":1700000000}");
    set_field(&old->client_id, "issuing-client");
    old->login_at = 1690000000;
}

/* A refresh answer usually holds only a new access token: the rest of the set is the old one's. */
static void test_carry_over_fills_what_the_answer_omits(void **state)
{
    kt_token_set old, fresh;
    kt_error err = {KT_OK, ""};
    char *access;

    (void)state;
    old_set(&old);
    memset(&fresh, 0, sizeof(fresh));
    set_jwt(&fresh.access_token, "{\"sub\":\"alice\",\"exp\":1900000000}");
    fresh.expires_at = 1900000000;
    access = strdup(fresh.access_token);
    if (kt_session_carry_over(&fresh, &old, "this-client", &err) != 0)
        fail_msg("carry over: %s", err.message);
    assert_string_equal(fresh.access_token, access);
    assert_int_equal(fresh.expires_at, 1900000000);
    /* Without rotation the old refresh token stays valid, and stays. */
    assert_string_equal(fresh.refresh_token, old.refresh_token);
    assert_string_equal(fresh.username, old.username);
    assert_string_equal(fresh.device_id, old.device_id);
    assert_string_equal(fresh.scope, old.scope);
    /* The client that issued the set, not the one that refreshed it (they are the same in
     * practice: get_valid refreshes only with the issuing client). */
    assert_string_equal(fresh.client_id, "issuing-client");
    assert_int_equal(fresh.login_at, old.login_at);
    /* Copies, not shared pointers. */
    assert_ptr_not_equal(fresh.refresh_token, old.refresh_token);
    free(access);
    kt_token_set_free(&fresh);

    /* A set from a cache that named no client belongs to the one that refreshed it. */
    set_field(&old.client_id, NULL);
    memset(&fresh, 0, sizeof(fresh));
    set_field(&fresh.access_token, "opaque-access");
    assert_int_equal(kt_session_carry_over(&fresh, &old, "this-client", &err), 0);
    assert_string_equal(fresh.client_id, "this-client");
    kt_token_set_free(&fresh);
    memset(&fresh, 0, sizeof(fresh));
    set_field(&fresh.access_token, "opaque-access");
    assert_int_equal(kt_session_carry_over(&fresh, &old, NULL, &err), 0);
    assert_null(fresh.client_id);
    kt_token_set_free(&fresh);
    kt_token_set_free(&old);
}

/* What the answer does hold wins: a rotated refresh token replaces the old one (which the bank has
 * retired), and so does a scope it names. */
static void test_carry_over_keeps_what_the_answer_holds(void **state)
{
    kt_token_set old, fresh;
    kt_error err = {KT_OK, ""};

    (void)state;
    old_set(&old);
    memset(&fresh, 0, sizeof(fresh));
    set_jwt(&fresh.access_token, "{\"sub\":\"alice\",\"exp\":1900000000}");
    set_jwt(&fresh.refresh_token, "{\"sub\":\"alice\",\"jti\":\"rotated\"}");
    set_field(&fresh.scope, "accounts");
    if (kt_session_carry_over(&fresh, &old, "this-client", &err) != 0)
        fail_msg("carry over: %s", err.message);
    assert_string_not_equal(fresh.refresh_token, old.refresh_token);
    assert_non_null(strchr(fresh.refresh_token, '.'));
    assert_string_equal(fresh.scope, "accounts");
    assert_string_equal(fresh.username, old.username);
    assert_string_equal(fresh.device_id, old.device_id);
    assert_string_equal(fresh.client_id, "issuing-client");
    assert_int_equal(fresh.login_at, old.login_at);
    kt_token_set_free(&fresh);
    kt_token_set_free(&old);
}

/* Tokens a refresh hands back for another person are not stored under this one's name. */
static void test_carry_over_refuses_another_subject(void **state)
{
    kt_token_set old, fresh;
    kt_error err = {KT_OK, ""};

    (void)state;
    old_set(&old);
    memset(&fresh, 0, sizeof(fresh));
    set_jwt(&fresh.access_token, "{\"sub\":\"mallory\",\"exp\":1900000000}");
    assert_int_equal(kt_session_carry_over(&fresh, &old, "this-client", &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    assert_msg_has(&err, "another subject");
    /* Nothing was carried into the refused set. */
    assert_null(fresh.refresh_token);
    assert_null(fresh.username);
    kt_token_set_free(&fresh);

    /* The subject may come from either token of either set. */
    memset(&fresh, 0, sizeof(fresh));
    set_field(&fresh.access_token, "opaque-access");
    set_jwt(&fresh.refresh_token, "{\"sub\":\"mallory\"}");
    kt_error_clear(&err);
    assert_int_equal(kt_session_carry_over(&fresh, &old, "this-client", &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    kt_token_set_free(&fresh);

    /* An opaque answer names nobody: nothing to compare. */
    memset(&fresh, 0, sizeof(fresh));
    set_field(&fresh.access_token, "opaque-access");
    assert_int_equal(kt_session_carry_over(&fresh, &old, "this-client", &err), 0);
    assert_string_equal(fresh.refresh_token, old.refresh_token);
    kt_token_set_free(&fresh);
    kt_token_set_free(&old);
}

/* --- a context that reaches nothing --------------------------------------------------------- */

typedef struct offline_ctx {
    kt_config cfg;
    kt_ctx *ctx;
} offline_ctx;

/* A context whose every request fails at once: nothing listens on port 1. */
static void offline_ctx_new(offline_ctx *o)
{
    kt_error err = {KT_OK, ""};

    kt_config_init(&o->cfg);
    if (kt_config_set(&o->cfg, "base_url", "https://127.0.0.1:1", &err) != 0 ||
        kt_config_set(&o->cfg, "client_id", "test-client", &err) != 0 ||
        kt_config_set(&o->cfg, "login_timeout", "2", &err) != 0 ||
        kt_config_set(&o->cfg, "connect_timeout", "1", &err) != 0)
        fail_msg("config: %s", err.message);
    o->ctx = kt_ctx_new(&o->cfg, NULL, &err);
    if (o->ctx == NULL)
        fail_msg("context: %s", err.message);
}

static void offline_ctx_free(offline_ctx *o)
{
    kt_ctx_free(o->ctx);
    kt_config_free(&o->cfg);
}

/* --- saving a login, logging out ------------------------------------------------------------- */

/* A login's set is stamped with the client and the time, and checked before it is kept. */
static void test_save_login_stamps_and_checks(void **state)
{
    cache_fixture *f = *state;
    offline_ctx o;
    kt_token_set t, back;
    kt_error err = {KT_OK, ""};
    time_t before, after;

    offline_ctx_new(&o); /* client "test-client" */
    claims_set(&t, "{\"sub\":\"u\",\"exp\":1900000000,\"cnf\":{\"kid\":\"other-device\"}}", NULL,
               SAMPLE_DEVICE);
    assert_int_equal(kt_session_save_login(o.ctx, &f->paths, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    assert_int_equal(access(f->cache_file, F_OK), -1);
    kt_token_set_free(&t);

    claims_set(&t, "{\"sub\":\"u\",\"exp\":1900000000,\"cnf\":{\"kid\":\"" SAMPLE_DEVICE "\"}}",
               "{\"sub\":\"u\"}", SAMPLE_DEVICE);
    before = time(NULL);
    kt_error_clear(&err);
    if (kt_session_save_login(o.ctx, &f->paths, &t, &err) != 0)
        fail_msg("save login: %s", err.message);
    after = time(NULL);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &back, &err), KT_CACHE_LOADED);
    assert_string_equal(back.client_id, "test-client");
    assert_true(back.login_at >= before && back.login_at <= after);
    assert_sets_equal(&t, &back);
    kt_token_set_free(&back);
    kt_token_set_free(&t);
    offline_ctx_free(&o);
}

/* A writer killed between writing and renaming leaves a copy of the tokens beside the cache;
 * logging out (either way) removes it too. A link named like one is not the cache's and stays. */
static void test_logout_removes_stale_temps(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t, back;
    kt_error err = {KT_OK, ""};
    char target[700], names[512], *kept;

    /* Nothing to log out of. */
    assert_int_equal(kt_session_logout(&f->paths, false, &err), 0);
    assert_int_equal(kt_session_logout(&f->paths, true, &err), 0);

    store_sample(f, &t, time(NULL) + 3600);
    leave_stale_temp(f, ".tokens.json.tmp-Ab12Cd");
    leave_temp_link(f, ".tokens.json.tmp-link", target, sizeof(target));
    if (kt_session_logout(&f->paths, true, &err) != 0)
        fail_msg("logout: %s", err.message);
    list_dir(f->state_dir, names, sizeof(names));
    assert_string_equal(names, ".tokens.json.tmp-link\ntokens.json\ntokens.lock\n");
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &back, &err), KT_CACHE_LOADED);
    assert_null(back.access_token);
    assert_string_equal(back.refresh_token, t.refresh_token);
    kt_token_set_free(&back);

    leave_stale_temp(f, ".tokens.json.tmp-Ef34Gh");
    if (kt_session_logout(&f->paths, false, &err) != 0)
        fail_msg("logout: %s", err.message);
    list_dir(f->state_dir, names, sizeof(names));
    assert_string_equal(names, ".tokens.json.tmp-link\ntokens.lock\n");

    /* With no cache left, a stale copy alone is still removed. */
    leave_stale_temp(f, ".tokens.json.tmp-Ij56Kl");
    assert_int_equal(kt_session_logout(&f->paths, false, &err), 0);
    list_dir(f->state_dir, names, sizeof(names));
    assert_string_equal(names, ".tokens.json.tmp-link\ntokens.lock\n");
    kept = read_file_all(target, NULL);
    assert_string_equal(kept, "precious");
    free(kept);
    assert_int_equal(err.kind, KT_OK);
    kt_token_set_free(&t);
}

/* --- kt_session_get_valid without the network ------------------------------------------------ */

static void test_get_valid_returns_usable_token(void **state)
{
    cache_fixture *f = *state;
    offline_ctx o;
    kt_token_set t, out;
    kt_error err = {KT_OK, ""};

    offline_ctx_new(&o);
    store_sample(f, &t, time(NULL) + KT_TOKEN_MIN_LEFT + 30);
    /* Any request would fail against port 1, so success means no request was made. */
    if (kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err) != 0)
        fail_msg("get_valid: %s", err.message);
    assert_sets_equal(&t, &out);
    assert_int_equal(kt_http_connections(o.ctx->http), 0);
    kt_token_set_free(&out);
    kt_token_set_free(&t);
    offline_ctx_free(&o);
}

static void test_get_valid_absent_or_corrupt(void **state)
{
    cache_fixture *f = *state;
    offline_ctx o;
    kt_token_set out;
    kt_error err = {KT_OK, ""};

    offline_ctx_new(&o);
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);
    /* The front end words the hint: the core never names a command. */
    assert_msg_lacks(&err, "kontist-auth login");
    assert_null(out.access_token);

    assert_int_equal(kt_dir_ensure_private(f->state_dir, &err), 0);
    assert_int_equal(write_file_mode(f->cache_file, "{\"version\":1}", 13, 0600), 0);
    kt_error_clear(&err);
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);
    assert_msg_has(&err, "corrupt");
    /* The front end words the hint: the core never names a command. */
    assert_msg_lacks(&err, "kontist-auth login");
    assert_int_equal(kt_http_connections(o.ctx->http), 0);
    offline_ctx_free(&o);
}

static void test_get_valid_expired_without_refresh_token(void **state)
{
    cache_fixture *f = *state;
    offline_ctx o;
    kt_token_set t, out;
    kt_error err = {KT_OK, ""};

    offline_ctx_new(&o);
    sample_set(&t, time(NULL) + KT_TOKEN_MIN_LEFT - 5);
    kt_secret_clear(&t.refresh_token);
    assert_int_equal(kt_cache_store(&f->paths, &t, &err), 0);
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);
    /* The front end words the hint: the core never names a command. */
    assert_msg_lacks(&err, "kontist-auth login");
    assert_int_equal(kt_http_connections(o.ctx->http), 0);
    kt_token_set_free(&t);
    offline_ctx_free(&o);
}

/* Tokens another client was issued (the PAM module's confidential client, say) are never sent
 * to the token endpoint with this one: the person is told why and what to do. */
static void test_get_valid_other_client_is_explained(void **state)
{
    cache_fixture *f = *state;
    offline_ctx o;
    kt_token_set t, out;
    kt_error err = {KT_OK, ""};

    offline_ctx_new(&o); /* client "test-client" */
    sample_set(&t, time(NULL) + KT_TOKEN_MIN_LEFT - 5);
    t.client_id = strdup("kontist-auth-demo");
    t.login_at = 1700000000;
    assert_int_equal(kt_cache_store(&f->paths, &t, &err), 0);
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);
    assert_msg_has(&err, "these tokens were issued to client kontist-auth-demo by the login at "
                         "2023-11-14 22:13:20 UTC");
    assert_msg_has(&err, "test-client");
    assert_msg_has(&err, "log in again to get tokens this client can refresh");
    assert_msg_lacks(&err, "kontist-auth login");
    assert_int_equal(kt_http_connections(o.ctx->http), 0);
    /* Without the time of the login. */
    t.login_at = 0;
    assert_int_equal(kt_cache_store(&f->paths, &t, &err), 0);
    kt_error_clear(&err);
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), -1);
    assert_msg_has(&err, "issued to client kontist-auth-demo by an earlier login");
    /* A valid access token is a bearer token: it is handed out whichever client it came from. */
    t.expires_at = time(NULL) + KT_TOKEN_MIN_LEFT + 60;
    assert_int_equal(kt_cache_store(&f->paths, &t, &err), 0);
    if (kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err) != 0)
        fail_msg("get_valid: %s", err.message);
    assert_sets_equal(&t, &out);
    assert_int_equal(kt_http_connections(o.ctx->http), 0);
    kt_token_set_free(&out);
    kt_token_set_free(&t);
    offline_ctx_free(&o);
}

static void test_get_valid_unreachable_keeps_cache(void **state)
{
    cache_fixture *f = *state;
    offline_ctx o;
    kt_token_set t, out;
    kt_error err = {KT_OK, ""};
    char *before, *after;

    offline_ctx_new(&o);
    store_sample(f, &t, time(NULL) + 10);
    before = read_file_all(f->cache_file, NULL);
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    assert_null(out.access_token);
    after = read_file_all(f->cache_file, NULL);
    assert_string_equal(before, after);
    free(before);
    free(after);
    kt_token_set_free(&t);
    offline_ctx_free(&o);
}

static void test_get_valid_unsafe_cache(void **state)
{
    cache_fixture *f = *state;
    offline_ctx o;
    kt_token_set t, out;
    kt_error err = {KT_OK, ""};

    offline_ctx_new(&o);
    store_sample(f, &t, time(NULL) + 3600);
    assert_int_equal(chmod(f->cache_file, 0644), 0);
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_msg_has(&err, "readable by group or others");
    assert_null(out.access_token);
    kt_token_set_free(&t);
    offline_ctx_free(&o);
}

static void test_get_valid_waits_for_lock_only_to_refresh(void **state)
{
    cache_fixture *f = *state;
    offline_ctx o;
    kt_token_set t, out;
    kt_error err = {KT_OK, ""};
    int lock_fd;
    struct timespec t0, t1;
    double waited;

    offline_ctx_new(&o); /* login_timeout 2 s bounds the wait for the lock */
    store_sample(f, &t, time(NULL) + 3600);
    /* Another process holds the cache lock (an open file description of our own counts). */
    lock_fd = open(f->lock_file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(lock_fd >= 0);
    assert_int_equal(flock(lock_fd, LOCK_EX), 0);

    /* A usable token needs no lock. */
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), 0);
    assert_string_equal(out.access_token, t.access_token);
    kt_token_set_free(&out);

    /* An expiring one waits for the lock, and gives up within the bound. */
    kt_token_set_free(&t);
    sample_set(&t, time(NULL) + 10);
    {
        char *json = kt_cache_serialize(&t);

        assert_int_equal(write_file_mode(f->cache_file, json, strlen(json), 0600), 0);
        kt_secret_free(json);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_msg_has(&err, "locked");
    /* login_timeout (2 s), not the usual lock wait (5 s) */
    assert_true(waited >= 1.5 && waited < 4.9);
    assert_int_equal(kt_http_connections(o.ctx->http), 0);
    close(lock_fd);
    kt_token_set_free(&t);
    offline_ctx_free(&o);
}

/* A cache whose tokens are not the ones it is for is not used, and costs no request: neither a
 * valid access token confirmed by another device, nor an expiring set of two people's tokens. */
static void test_get_valid_refuses_foreign_tokens(void **state)
{
    cache_fixture *f = *state;
    offline_ctx o;
    kt_token_set t, out;
    kt_error err = {KT_OK, ""};
    char *before, *after;
    struct {
        const char *access_claims, *refresh_claims;
        long left; /* seconds of life left */
        const char *why;
    } cases[] = {
        {"{\"sub\":\"u\",\"exp\":1900000000,\"cnf\":{\"kid\":\"other-device\"}}", NULL, 3600,
         "confirmed by device other-device"},
        {"{\"sub\":\"u\",\"exp\":1900000000,\"cnf\":{\"kid\":\"other-device\"}}", NULL, 10,
         "confirmed by device other-device"},
        {"{\"sub\":\"alice\",\"exp\":1900000000}", "{\"sub\":\"bob\"}", 3600, "different subjects"},
        {"{\"sub\":\"alice\",\"exp\":1900000000}", "{\"sub\":\"bob\"}", 10, "different subjects"},
    };

    offline_ctx_new(&o);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        claims_set(&t, cases[i].access_claims, cases[i].refresh_claims, SAMPLE_DEVICE);
        t.expires_at = time(NULL) + cases[i].left;
        if (i == 0)
            assert_int_equal(kt_dir_ensure_private(f->state_dir, &err), 0);
        /* Written as it is: kt_cache_store does not check (the session does). */
        before = kt_cache_serialize(&t);
        assert_non_null(before);
        assert_int_equal(write_file_mode(f->cache_file, before, strlen(before), 0600), 0);
        kt_error_clear(&err);
        assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), -1);
        if (err.kind != KT_ERR_LOGIN_REQUIRED)
            fail_msg("case %zu: %s (%s)", i, kt_err_kind_name(err.kind), err.message);
        assert_msg_has(&err, f->cache_file);
        assert_msg_has(&err, cases[i].why);
        assert_null(out.access_token);
        assert_int_equal(kt_http_connections(o.ctx->http), 0);
        after = read_file_all(f->cache_file, NULL);
        assert_string_equal(before, after);
        free(after);
        kt_secret_free(before);
        kt_token_set_free(&t);
    }
    offline_ctx_free(&o);
}

/* --- kt_session_get_valid against kontist-mock ----------------------------------------------- */

typedef struct online {
    kt_mock m;
    kt_config cfg;
    kt_ctx *ctx;
} online;

static const char *const rotate_refresh[] = {"--rotate-refresh", NULL};

/* A context for the mock's demo client (cfg is freed with kt_test_config_free). */
static kt_ctx *mock_ctx(const kt_mock *m, kt_config *cfg)
{
    kt_error err = {KT_OK, ""};
    kt_ctx *ctx;

    kt_test_config(cfg, m);
    cfg->login_timeout = 20;
    ctx = kt_ctx_new(cfg, NULL, &err);
    if (ctx == NULL)
        fail_msg("context: %s", err.message);
    return ctx;
}

/* Starts a mock, logs in with the password grant and caches the result as about to expire. */
static void online_start(online *o, cache_fixture *f, const char *const *extra,
                         kt_token_set *cached)
{
    kt_error err = {KT_OK, ""};

    if (kt_mock_start(&o->m, extra) != 0)
        fail_msg("kontist-mock did not start");
    o->ctx = mock_ctx(&o->m, &o->cfg);
    kt_ctx_start_deadline(o->ctx);
    if (kt_oauth_password_grant(o->ctx, KT_DEMO_USER, KT_DEMO_PASSWORD, cached, &err) != 0)
        fail_msg("password grant: %s", err.message);
    assert_non_null(cached->refresh_token);
    set_field(&cached->username, KT_DEMO_USER);
    set_field(&cached->device_id, "device-kept");
    cached->expires_at = time(NULL) + KT_TOKEN_MIN_LEFT - 20;
    if (kt_cache_store(&f->paths, cached, &err) != 0)
        fail_msg("store: %s", err.message);
}

static void online_stop(online *o)
{
    kt_ctx_free(o->ctx);
    kt_test_config_free(&o->cfg);
    kt_mock_stop(&o->m);
}

static int refresh_grants(const online *o)
{
    return kt_mock_grants(&o->m, "refresh_token");
}

static void test_mock_refresh(void **state)
{
    cache_fixture *f = *state;
    online o;
    kt_token_set cached, out, again, stored;
    kt_error err = {KT_OK, ""};

    online_start(&o, f, NULL, &cached);
    assert_int_equal(refresh_grants(&o), 0);
    if (kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err) != 0)
        fail_msg("get_valid: %s", err.message);
    assert_int_equal(refresh_grants(&o), 1);
    assert_string_not_equal(out.access_token, cached.access_token);
    assert_string_equal(out.refresh_token, cached.refresh_token); /* no rotation: kept */
    assert_string_equal(out.username, KT_DEMO_USER);
    assert_string_equal(out.device_id, "device-kept");
    /* A cache that named no client now names the one that could refresh it. */
    assert_null(cached.client_id);
    assert_string_equal(out.client_id, KT_DEMO_CLIENT_ID);
    assert_true(kt_token_set_usable(&out, time(NULL), KT_TOKEN_MIN_LEFT));
    /* The cache holds exactly what was handed out. */
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &stored, &err), KT_CACHE_LOADED);
    assert_sets_equal(&out, &stored);
    assert_int_equal(file_mode(f->cache_file), 0600);
    /* The next call is served from the cache. */
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &again, &err), 0);
    assert_string_equal(again.access_token, out.access_token);
    assert_int_equal(refresh_grants(&o), 1);
    kt_token_set_free(&stored);
    kt_token_set_free(&again);
    kt_token_set_free(&out);
    kt_token_set_free(&cached);
    online_stop(&o);
}

/* The same client refreshes, and the record of the login survives the refresh. */
static void test_mock_refresh_same_client(void **state)
{
    cache_fixture *f = *state;
    online o;
    kt_token_set cached, out;
    kt_error err = {KT_OK, ""};

    online_start(&o, f, NULL, &cached);
    assert_int_equal(kt_token_set_stamp(&cached, KT_DEMO_CLIENT_ID, 1700000000, &err), 0);
    assert_int_equal(kt_cache_store(&f->paths, &cached, &err), 0);
    if (kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err) != 0)
        fail_msg("get_valid: %s", err.message);
    assert_int_equal(refresh_grants(&o), 1);
    assert_string_equal(out.client_id, KT_DEMO_CLIENT_ID);
    assert_int_equal(out.login_at, 1700000000);
    kt_token_set_free(&out);
    kt_token_set_free(&cached);
    online_stop(&o);
}

static void test_mock_refresh_rotation(void **state)
{
    cache_fixture *f = *state;
    online o;
    kt_token_set cached, out, stored, old;
    kt_error err = {KT_OK, ""};

    online_start(&o, f, rotate_refresh, &cached);
    if (kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err) != 0)
        fail_msg("get_valid: %s", err.message);
    assert_string_not_equal(out.refresh_token, cached.refresh_token);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &stored, &err), KT_CACHE_LOADED);
    assert_string_equal(stored.refresh_token, out.refresh_token);
    /* The old refresh token is retired: had the new one been dropped, the login would be lost. */
    assert_int_equal(kt_flow_refresh(o.ctx, cached.refresh_token, &old, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);
    kt_token_set_free(&stored);
    kt_token_set_free(&out);
    kt_token_set_free(&cached);
    online_stop(&o);
}

static void test_mock_refresh_rejected(void **state)
{
    cache_fixture *f = *state;
    online o;
    kt_token_set cached, out;
    kt_error err = {KT_OK, ""};
    char *before, *after;

    online_start(&o, f, NULL, &cached);
    free(cached.refresh_token);
    cached.refresh_token = strdup("not-a-refresh-token-the-server-knows");
    assert_int_equal(kt_cache_store(&f->paths, &cached, &err), 0);
    before = read_file_all(f->cache_file, NULL);
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);
    /* The front end words the hint: the core never names a command. */
    assert_msg_lacks(&err, "kontist-auth login");
    assert_null(out.access_token);
    assert_int_equal(refresh_grants(&o), 1);
    after = read_file_all(f->cache_file, NULL);
    assert_string_equal(before, after);
    free(before);
    free(after);
    kt_token_set_free(&cached);
    online_stop(&o);
}

/* A refresh answer the checks refuse (here a token_type that is not Bearer) after the bank
 * rotated: the rotated refresh token is all that still works, so it is kept, alone, under the
 * set's user and device; one naming another subject is not kept at all. */
static void test_mock_refused_answer_keeps_rotated_token(void **state)
{
    cache_fixture *f = *state;
    online o;
    kt_token_set cached, out, stored;
    kt_error err = {KT_OK, ""};
    kt_jwt_claims claims;
    char claims_json[512], spec[4096], *rotated, *before, *after;
    const char *subjects[] = {NULL, "someone-else"};

    online_start(&o, f, NULL, &cached);
    assert_int_equal(kt_jwt_read(cached.refresh_token, &claims, &err), 0);
    assert_true(claims.sub[0] != '\0');
    for (size_t i = 0; i < 2; i++) {
        snprintf(claims_json, sizeof(claims_json), "{\"sub\":\"%s\",\"jti\":\"rotated-%zu\"}",
                 subjects[i] != NULL ? subjects[i] : claims.sub, i);
        rotated = kt_test_jwt(claims_json);
        snprintf(spec, sizeof(spec),
                 "{\"endpoint\":\"token\",\"kind\":\"status\",\"status\":200,\"count\":1,"
                 "\"body\":{\"access_token\":\"%s\",\"token_type\":\"mac\",\"expires_in\":3600,"
                 "\"refresh_token\":\"%s\"}}",
                 rotated, rotated);
        assert_int_equal(kt_mock_fault(&o.m, spec), 0);
        before = read_file_all(f->cache_file, NULL);
        kt_error_clear(&err);
        assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err), -1);
        assert_int_equal(err.kind, KT_ERR_PROTOCOL);
        assert_msg_has(&err, "Bearer");
        assert_null(out.access_token);
        if (subjects[i] == NULL) {
            assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &stored, &err),
                             KT_CACHE_LOADED);
            assert_string_equal(stored.refresh_token, rotated);
            assert_null(stored.access_token);
            assert_string_equal(stored.username, KT_DEMO_USER);
            assert_string_equal(stored.device_id, "device-kept");
            kt_token_set_free(&stored);
        } else {
            after = read_file_all(f->cache_file, NULL);
            assert_string_equal(before, after);
            free(after);
        }
        free(before);
        kt_secret_free(rotated);
    }
    kt_token_set_free(&cached);
    online_stop(&o);
}

/* Several processes find the same expiring token at once: one refreshes, the others wait for the
 * lock and take its result. With rotation a second refresh would use a retired token and fail. */
static void test_mock_concurrent_refresh_once(void **state)
{
    enum { N = 4 };
    cache_fixture *f = *state;
    online o;
    kt_token_set cached, stored;
    kt_error err = {KT_OK, ""};
    int gate[2];
    pid_t pids[N];

    online_start(&o, f, rotate_refresh, &cached);
    assert_int_equal(pipe(gate), 0);
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            kt_config cfg;
            kt_ctx *ctx;
            kt_token_set out;
            kt_error cerr = {KT_OK, ""};
            char c;
            int rc;

            close(gate[1]);
            (void)!read(gate[0], &c, 1); /* returns at EOF, when the parent opens the gate */
            ctx = mock_ctx(&o.m, &cfg);
            rc = kt_session_get_valid(ctx, &f->paths, &f->owners, &out, &cerr);
            if (rc != 0)
                fprintf(stderr, "# child %d: %s\n", i, cerr.message);
            rc = rc == 0 && out.access_token != NULL &&
                         strcmp(out.access_token, cached.access_token) != 0
                     ? 0
                     : 1;
            kt_token_set_free(&out);
            kt_ctx_free(ctx);
            kt_test_config_free(&cfg);
            _exit(rc);
        }
    }
    close(gate[0]);
    close(gate[1]);
    for (int i = 0; i < N; i++) {
        int status;

        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(refresh_grants(&o), 1);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &stored, &err), KT_CACHE_LOADED);
    assert_string_not_equal(stored.refresh_token, cached.refresh_token);
    assert_true(kt_token_set_usable(&stored, time(NULL), KT_TOKEN_MIN_LEFT));
    kt_token_set_free(&stored);
    kt_token_set_free(&cached);
    online_stop(&o);
}

/* A refresh runs under the lock, where no writer is at work: the copies a killed writer left go,
 * a link named like one stays, and the refresh itself leaves no temporary file behind. */
static void test_mock_refresh_removes_stale_temps(void **state)
{
    cache_fixture *f = *state;
    online o;
    kt_token_set cached, out;
    kt_error err = {KT_OK, ""};
    char target[700], names[512];

    online_start(&o, f, NULL, &cached);
    leave_stale_temp(f, ".tokens.json.tmp-Ab12Cd");
    leave_temp_link(f, ".tokens.json.tmp-link", target, sizeof(target));
    if (kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err) != 0)
        fail_msg("get_valid: %s", err.message);
    assert_int_equal(refresh_grants(&o), 1);
    list_dir(f->state_dir, names, sizeof(names));
    assert_string_equal(names, ".tokens.json.tmp-link\ntokens.json\ntokens.lock\n");
    kt_token_set_free(&out);
    kt_token_set_free(&cached);
    online_stop(&o);
}

/* With rotation the refreshed set holds the only valid refresh token, so there must be room to keep
 * it before the bank is asked. Here the room cannot be reserved (a file size limit stands in for a
 * full disk): the refresh is not sent, the cache stays as it was and still works afterwards. */
static void test_mock_no_room_no_refresh(void **state)
{
    cache_fixture *f = *state;
    online o;
    kt_token_set cached, out;
    kt_error err = {KT_OK, ""};
    char *before, *after, names[512];
    size_t before_len = 0;
    pid_t pid;
    int status;

    online_start(&o, f, rotate_refresh, &cached);
    before = read_file_all(f->cache_file, &before_len);
    assert_non_null(before);
    /* Room for the cache as it is, not for the reservation. */
    assert_true(before_len < 16 * 1024 && KT_CACHE_RESERVE > 16 * 1024);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit small = {.rlim_cur = 16 * 1024, .rlim_max = 16 * 1024};
        kt_config cfg;
        kt_ctx *ctx;
        kt_token_set got;
        kt_error cerr = {KT_OK, ""};
        int rc;

        signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of a signal */
        if (setrlimit(RLIMIT_FSIZE, &small) != 0)
            _exit(2);
        ctx = mock_ctx(&o.m, &cfg);
        rc = kt_session_get_valid(ctx, &f->paths, &f->owners, &got, &cerr);
        if (rc != -1 || cerr.kind != KT_ERR_IO)
            fprintf(stderr, "# rc %d, %s: %s\n", rc, kt_err_kind_name(cerr.kind), cerr.message);
        else
            fprintf(stderr, "# as expected: %s\n", cerr.message);
        kt_token_set_free(&got);
        kt_ctx_free(ctx);
        kt_test_config_free(&cfg);
        _exit(rc == -1 && cerr.kind == KT_ERR_IO ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(refresh_grants(&o), 0);
    after = read_file_all(f->cache_file, NULL);
    assert_string_equal(before, after);
    free(after);
    list_dir(f->state_dir, names, sizeof(names));
    assert_string_equal(names, "tokens.json\ntokens.lock\n");
    /* The refresh token kept is still the valid one. */
    if (kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err) != 0)
        fail_msg("get_valid: %s", err.message);
    assert_int_equal(refresh_grants(&o), 1);
    assert_string_not_equal(out.refresh_token, cached.refresh_token);
    free(before);
    kt_token_set_free(&out);
    kt_token_set_free(&cached);
    online_stop(&o);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, cache_setup, cache_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_device),
        cmocka_unit_test(test_check_subjects),
        cmocka_unit_test(test_carry_over_fills_what_the_answer_omits),
        cmocka_unit_test(test_carry_over_keeps_what_the_answer_holds),
        cmocka_unit_test(test_carry_over_refuses_another_subject),
        T(test_save_login_stamps_and_checks),
        T(test_logout_removes_stale_temps),
        T(test_get_valid_returns_usable_token),
        T(test_get_valid_absent_or_corrupt),
        T(test_get_valid_expired_without_refresh_token),
        T(test_get_valid_other_client_is_explained),
        T(test_get_valid_unreachable_keeps_cache),
        T(test_get_valid_unsafe_cache),
        T(test_get_valid_waits_for_lock_only_to_refresh),
        T(test_get_valid_refuses_foreign_tokens),
        T(test_mock_refresh),
        T(test_mock_refresh_same_client),
        T(test_mock_refresh_rotation),
        T(test_mock_refresh_rejected),
        T(test_mock_refused_answer_keeps_rotated_token),
        T(test_mock_concurrent_refresh_once),
        T(test_mock_refresh_removes_stale_temps),
        T(test_mock_no_room_no_refresh),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    kt_mock_cleanup_shared();
    return failed;
}
