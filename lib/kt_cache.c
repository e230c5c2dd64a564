#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "kt_cache.h"
#include "kt_file.h"
#include "kt_json.h"
#include "kt_secret.h"

#define KT_CACHE_VERSION 1
#define KT_CACHE_JSON_DEPTH 4
/* How long a store or an erase waits for a concurrent refresh to finish. */
#define KT_CACHE_LOCK_WAIT_MS 5000L

/* client_id, login_at and mfa came later: a cache without them is still read (its client is
 * then unknown; what confirmed it is the device when one is named, else unknown). */
static const char *const cache_members[] = {
    "version",   "username", "device_id", "access_token", "refresh_token", "expires_at",
    "confirmed", "scope",    "client_id", "login_at",     "mfa",
};

/* --- parsing --------------------------------------------------------------------------------- */

/* kt_cache_load says which token cache is corrupt; the messages name only the part. */
static const kt_json_doc cache_doc = {"the cache", KT_ERR_PROTOCOL, KT_FILE_MAX_SIZE,
                                      KT_CACHE_JSON_DEPTH};

static int check_members(struct json_object *obj, kt_error *err)
{
    json_object_object_foreach(obj, key, val)
    {
        size_t i;

        (void)val;
        for (i = 0; i < sizeof(cache_members) / sizeof(cache_members[0]); i++)
            if (strcmp(key, cache_members[i]) == 0)
                break;
        if (i == sizeof(cache_members) / sizeof(cache_members[0]))
            return kt_error_set(err, KT_ERR_PROTOCOL, "unknown member \"%.64s\"", key);
    }
    return 0;
}

/* "mfa": the factor that confirmed the set. Absent (an older cache): a confirmed set that names
 * a device was confirmed by it, as only device MFA existed then. */
static int read_factor(struct json_object *obj, kt_token_set *t, kt_error *err)
{
    char *name = NULL;
    int rc = 0;

    if (kt_json_string(&cache_doc, obj, "mfa", 0, 0, &name, err) != 0)
        return -1;
    if (name == NULL)
        t->mfa = t->confirmed && t->device_id != NULL ? KT_MFA_DEVICE : KT_MFA_NONE;
    else if (strcmp(name, "device") == 0)
        t->mfa = KT_MFA_DEVICE;
    else if (strcmp(name, "push") == 0)
        t->mfa = KT_MFA_PUSH;
    else if (strcmp(name, "none") == 0)
        t->mfa = KT_MFA_NONE;
    else
        rc = kt_error_set(err, KT_ERR_PROTOCOL, "unknown MFA factor in \"mfa\"");
    free(name);
    return rc;
}

static int fill_token_set(struct json_object *obj, kt_token_set *t, kt_error *err)
{
    int64_t version = 0, expires_at = 0, login_at = 0;

    if (check_members(obj, err) != 0)
        return -1;
    if (kt_json_int64(&cache_doc, obj, "version", KT_JSON_REQUIRED, INT64_MIN, INT64_MAX, &version,
                      err) != 0)
        return -1;
    if (version != KT_CACHE_VERSION)
        return kt_error_set(err, KT_ERR_PROTOCOL, "unsupported version %" PRId64, version);
    if (kt_json_int64(&cache_doc, obj, "expires_at", KT_JSON_REQUIRED, 0, INT64_MAX, &expires_at,
                      err) != 0 ||
        kt_json_bool(&cache_doc, obj, "confirmed", KT_JSON_REQUIRED, &t->confirmed, err) != 0)
        return -1;
    t->expires_at = (time_t)expires_at;
    if (kt_json_string(&cache_doc, obj, "access_token", 0, 0, &t->access_token, err) != 0 ||
        kt_json_string(&cache_doc, obj, "refresh_token", 0, 0, &t->refresh_token, err) != 0)
        return -1;
    /* Tokens go into Authorization headers: nothing but visible ASCII may come back out. */
    if ((t->access_token != NULL && !kt_token_string_ok(t->access_token)) ||
        (t->refresh_token != NULL && !kt_token_string_ok(t->refresh_token)))
        return kt_error_set(err, KT_ERR_PROTOCOL, "a token holds characters a token cannot have");
    if (kt_json_string(&cache_doc, obj, "username", 0, 0, &t->username, err) != 0 ||
        kt_json_string(&cache_doc, obj, "device_id", 0, 0, &t->device_id, err) != 0 ||
        kt_json_string(&cache_doc, obj, "scope", 0, 0, &t->scope, err) != 0 ||
        kt_json_string(&cache_doc, obj, "client_id", 0, 0, &t->client_id, err) != 0 ||
        kt_json_int64(&cache_doc, obj, "login_at", 0, 0, INT64_MAX, &login_at, err) != 0)
        return -1;
    t->login_at = (time_t)login_at;
    if (read_factor(obj, t, err) != 0)
        return -1;
    /* Only an erased access token (kt_cache_erase with access_only) leaves a cache without one,
     * and that cache exists only for its refresh token. */
    if (t->access_token == NULL && t->refresh_token == NULL)
        return kt_error_set(err, KT_ERR_PROTOCOL, "neither an access nor a refresh token");
    return 0;
}

int kt_cache_parse(const char *text, size_t len, kt_token_set *t, kt_error *err)
{
    struct json_object *obj;
    int ret = 0;

    memset(t, 0, sizeof(*t));
    /* kt_json wipes json-c's copies of the tokens: in the values, in the tokener's buffer and in
     * the values a failed parse left half-built. */
    obj = kt_json_parse_doc(&cache_doc, text, len, err);
    if (obj == NULL)
        return -1;
    if (fill_token_set(obj, t, err) != 0) {
        kt_token_set_free(t);
        ret = -1;
    }
    kt_json_put_wiped(obj);
    return ret;
}

/* --- serialisation --------------------------------------------------------------------------- */

char *kt_cache_serialize(const kt_token_set *t)
{
    kt_json_writer w;

    if (t == NULL || (t->access_token == NULL && t->refresh_token == NULL))
        return NULL;
    kt_json_writer_init(&w, 0, KT_JSON_STYLE_FILE);
    kt_json_open(&w, NULL);
    kt_json_put_int64(&w, "version", KT_CACHE_VERSION);
    kt_json_put_string(&w, "username", t->username);
    kt_json_put_string(&w, "device_id", t->device_id);
    kt_json_put_string(&w, "access_token", t->access_token);
    kt_json_put_string(&w, "refresh_token", t->refresh_token);
    kt_json_put_int64(&w, "expires_at", (int64_t)(t->expires_at < 0 ? 0 : t->expires_at));
    kt_json_put_bool(&w, "confirmed", t->confirmed);
    kt_json_put_string(&w, "scope", t->scope);
    kt_json_put_string(&w, "client_id", t->client_id);
    if (t->login_at > 0)
        kt_json_put_int64(&w, "login_at", (int64_t)t->login_at);
    if (t->confirmed && t->mfa != KT_MFA_NONE)
        kt_json_put_string(&w, "mfa", kt_mfa_factor_name((kt_mfa_factor)t->mfa));
    kt_json_close(&w);
    return kt_json_writer_finish(&w, NULL);
}

/* --- files ----------------------------------------------------------------------------------- */

/* Files we write belong to the effective user (the PAM module drops privileges first). */
static kt_owner_policy self_owners(void)
{
    kt_owner_policy p = {.allow_root = false, .allow_uid = true, .uid = geteuid()};

    return p;
}

int kt_cache_load(const char *path, const kt_owner_policy *owners, kt_token_set *t, kt_error *err)
{
    kt_owner_policy self = self_owners();
    kt_file_policy policy = {.private_read = true, .max_size = 0};
    kt_error ferr = {KT_OK, ""};
    kt_error perr = {KT_OK, ""};
    char *data = NULL;
    size_t len = 0;
    int errno_out = 0;
    int ret;

    memset(t, 0, sizeof(*t));
    policy.owners = owners != NULL ? *owners : self;
    if (kt_file_read(path, &policy, &data, &len, &errno_out, &ferr) != 0) {
        if (errno_out == ENOENT)
            return KT_CACHE_ABSENT;
        return kt_error_set(err, KT_ERR_IO, "%s", ferr.message);
    }
    if (kt_cache_parse(data, len, t, &perr) == 0) {
        ret = KT_CACHE_LOADED;
    } else {
        kt_error_set(err, perr.kind == KT_ERR_INTERNAL ? KT_ERR_INTERNAL : KT_ERR_PROTOCOL,
                     "token cache %s is corrupt: %s", path, perr.message);
        ret = perr.kind == KT_ERR_INTERNAL ? -1 : KT_CACHE_CORRUPT;
    }
    kt_wipe(data, len);
    free(data);
    return ret;
}

int kt_cache_lock(const kt_paths *paths, long wait_ms, kt_error *err)
{
    return kt_file_lock(paths->lock_file, wait_ms, err);
}

void kt_cache_unlock(int lock)
{
    kt_file_unlock(lock);
}

int kt_cache_prepare(const kt_paths *paths, kt_file_pending *p, kt_error *err)
{
    /* Under the lock no writer is at work: a temporary file beside the cache is a crash's, and
     * may hold a live refresh token. */
    if (kt_file_remove_temps(paths->cache_file, err) != 0)
        return -1;
    return kt_file_prepare(paths->cache_file, 0600, KT_CACHE_RESERVE, p, err);
}

int kt_cache_commit(kt_file_pending *p, const kt_token_set *t, kt_error *err)
{
    char *json = kt_cache_serialize(t);
    int ret;

    if (json == NULL) {
        kt_file_discard(p);
        return kt_error_set(err, KT_ERR_INTERNAL, "cannot serialise the token cache");
    }
    ret = kt_file_commit(p, json, strlen(json), err);
    kt_secret_free(json);
    return ret;
}

/* Writes the cache; the caller holds the lock and the state directory exists. */
static int store_locked(const kt_paths *paths, const kt_token_set *t, kt_error *err)
{
    kt_file_pending p;

    if (kt_cache_prepare(paths, &p, err) != 0)
        return -1;
    return kt_cache_commit(&p, t, err);
}

int kt_cache_store(const kt_paths *paths, const kt_token_set *t, kt_error *err)
{
    return kt_cache_store_waiting(paths, t, KT_CACHE_LOCK_WAIT_MS, err);
}

int kt_cache_store_waiting(const kt_paths *paths, const kt_token_set *t, long wait_ms,
                           kt_error *err)
{
    int lock;
    int ret;

    if (kt_dir_ensure_private(paths->state_dir, err) != 0)
        return -1;
    lock = kt_cache_lock(paths, wait_ms, err);
    if (lock < 0)
        return -1;
    ret = store_locked(paths, t, err);
    kt_cache_unlock(lock);
    return ret;
}

/* Equal lengths and bytes, in time that does not depend on where they differ. */
static bool same_token(const char *a, const char *b)
{
    size_t n = strlen(a);

    return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

/* Whether the cache holds the tokens a caller means (NULL: any): a caller that saw an older token
 * rejected must not take away the newer one another process saved since. */
static bool holds(const kt_token_set *t, const char *username, const char *access_token)
{
    if (username != NULL && username[0] != '\0' && t->username != NULL &&
        strcasecmp(username, t->username) != 0)
        return false;
    return access_token == NULL ||
           (t->access_token != NULL && same_token(access_token, t->access_token));
}

/* Keeps only the refresh token, if the cache holds the tokens named; the caller holds the lock. */
static int erase_access_locked(const kt_paths *paths, const char *username,
                               const char *access_token, kt_error *err)
{
    kt_owner_policy self = self_owners();
    kt_token_set t;
    kt_error lerr = {KT_OK, ""};
    int st;
    int ret;

    st = kt_cache_load(paths->cache_file, &self, &t, &lerr);
    if (st < 0)
        return kt_error_set(err, lerr.kind, "%s", lerr.message);
    if (st == KT_CACHE_ABSENT)
        return 0;
    /* A corrupt cache cannot be said to hold the tokens named: it is left for logout. */
    if (st == KT_CACHE_CORRUPT ? (username != NULL || access_token != NULL)
                               : !holds(&t, username, access_token)) {
        kt_token_set_free(&t);
        return 0;
    }
    /* A corrupt cache holds nothing usable; one without a refresh token keeps nothing. */
    if (st == KT_CACHE_CORRUPT || t.refresh_token == NULL) {
        kt_token_set_free(&t);
        return kt_file_remove(paths->cache_file, err);
    }
    kt_secret_clear(&t.access_token);
    t.expires_at = 0;
    t.confirmed = false;
    ret = store_locked(paths, &t, err);
    kt_token_set_free(&t);
    return ret;
}

static int erase_locked_as(const kt_paths *paths, bool access_only, const char *username,
                           const char *access_token, kt_error *err)
{
    struct stat st;
    int lock;
    int ret;

    /* Without the state directory there is no cache, and no place for a lock file either. */
    if (lstat(paths->state_dir, &st) != 0 && errno == ENOENT)
        return 0;
    lock = kt_file_lock(paths->lock_file, KT_CACHE_LOCK_WAIT_MS, err);
    if (lock < 0)
        return -1;
    if (access_only)
        ret = erase_access_locked(paths, username, access_token, err);
    else
        ret = kt_file_remove(paths->cache_file, err);
    /* A crash between writing and renaming leaves a temporary copy with the tokens in it. */
    if (kt_file_remove_temps(paths->cache_file, err) != 0)
        ret = -1;
    kt_file_unlock(lock);
    return ret;
}

int kt_cache_erase(const kt_paths *paths, int access_only, kt_error *err)
{
    return access_only ? kt_cache_erase_access_if(paths, NULL, NULL, err)
                       : erase_locked_as(paths, false, NULL, NULL, err);
}

int kt_cache_erase_access_if(const kt_paths *paths, const char *username, const char *access_token,
                             kt_error *err)
{
    return erase_locked_as(paths, true, username, access_token, err);
}
