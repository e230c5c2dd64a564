#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "kt_cache.h"
#include "kt_file.h"
#include "kt_json.h"
#include "kt_secret.h"

#define KT_CACHE_VERSION 1
#define KT_CACHE_JSON_DEPTH 4
/* How long a store or an erase waits for a concurrent refresh to finish. */
#define KT_CACHE_LOCK_WAIT_MS 5000L

/* client_id and login_at came later: a cache without them is still read (its client is then
 * unknown). */
static const char *const cache_members[] = {
    "version",    "username",  "device_id", "access_token", "refresh_token",
    "expires_at", "confirmed", "scope",     "client_id",    "login_at",
};

/* --- parsing --------------------------------------------------------------------------------- */

static int get_string(struct json_object *obj, const char *key, char **out, kt_error *err)
{
    struct json_object *val;
    const char *s;
    size_t len;

    *out = NULL;
    if (!json_object_object_get_ex(obj, key, &val))
        return 0;
    if (!json_object_is_type(val, json_type_string))
        return kt_error_set(err, KT_ERR_PROTOCOL, "\"%s\" is not a string", key);
    s = json_object_get_string(val);
    len = (size_t)json_object_get_string_len(val);
    if (len == 0)
        return kt_error_set(err, KT_ERR_PROTOCOL, "\"%s\" is empty", key);
    if (strlen(s) != len)
        return kt_error_set(err, KT_ERR_PROTOCOL, "\"%s\" holds a NUL byte", key);
    *out = strdup(s);
    if (*out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return 0;
}

static int get_required(struct json_object *obj, const char *key, json_type type,
                        const char *type_name, struct json_object **val, kt_error *err)
{
    if (!json_object_object_get_ex(obj, key, val))
        return kt_error_set(err, KT_ERR_PROTOCOL, "\"%s\" is missing", key);
    if (!json_object_is_type(*val, type))
        return kt_error_set(err, KT_ERR_PROTOCOL, "\"%s\" is not %s", key, type_name);
    return 0;
}

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

static int fill_token_set(struct json_object *obj, kt_token_set *t, kt_error *err)
{
    struct json_object *val;
    int64_t expires_at;

    if (check_members(obj, err) != 0)
        return -1;
    if (get_required(obj, "version", json_type_int, "an integer", &val, err) != 0)
        return -1;
    if (json_object_get_int64(val) != KT_CACHE_VERSION)
        return kt_error_set(err, KT_ERR_PROTOCOL, "unsupported version %" PRId64,
                            json_object_get_int64(val));
    if (get_required(obj, "expires_at", json_type_int, "an integer", &val, err) != 0)
        return -1;
    expires_at = json_object_get_int64(val);
    if (expires_at < 0 || expires_at == INT64_MAX)
        return kt_error_set(err, KT_ERR_PROTOCOL, "\"expires_at\" is out of range");
    t->expires_at = (time_t)expires_at;
    if (get_required(obj, "confirmed", json_type_boolean, "a boolean", &val, err) != 0)
        return -1;
    t->confirmed = json_object_get_boolean(val);
    if (get_string(obj, "access_token", &t->access_token, err) != 0 ||
        get_string(obj, "refresh_token", &t->refresh_token, err) != 0)
        return -1;
    /* Tokens go into Authorization headers: nothing but visible ASCII may come back out. */
    if ((t->access_token != NULL && !kt_token_string_ok(t->access_token)) ||
        (t->refresh_token != NULL && !kt_token_string_ok(t->refresh_token)))
        return kt_error_set(err, KT_ERR_PROTOCOL, "a token holds characters a token cannot have");
    if (get_string(obj, "username", &t->username, err) != 0 ||
        get_string(obj, "device_id", &t->device_id, err) != 0 ||
        get_string(obj, "scope", &t->scope, err) != 0 ||
        get_string(obj, "client_id", &t->client_id, err) != 0)
        return -1;
    if (json_object_object_get_ex(obj, "login_at", &val)) {
        int64_t login_at;

        if (!json_object_is_type(val, json_type_int))
            return kt_error_set(err, KT_ERR_PROTOCOL, "\"login_at\" is not an integer");
        login_at = json_object_get_int64(val);
        if (login_at < 0 || login_at == INT64_MAX)
            return kt_error_set(err, KT_ERR_PROTOCOL, "\"login_at\" is out of range");
        t->login_at = (time_t)login_at;
    }
    /* Only an erased access token (kt_cache_erase with access_only) leaves a cache without one,
     * and that cache exists only for its refresh token. */
    if (t->access_token == NULL && t->refresh_token == NULL)
        return kt_error_set(err, KT_ERR_PROTOCOL, "neither an access nor a refresh token");
    return 0;
}

int kt_cache_parse(const char *text, size_t len, kt_token_set *t, kt_error *err)
{
    struct json_tokener *tok = NULL;
    struct json_object *obj = NULL;
    enum json_tokener_error jerr;
    int ret = -1;

    memset(t, 0, sizeof(*t));
    if (text == NULL || len == 0)
        return kt_error_set(err, KT_ERR_PROTOCOL, "token cache is empty");
    if (len > KT_FILE_MAX_SIZE || memchr(text, '\0', len) != NULL)
        return kt_error_set(err, KT_ERR_PROTOCOL, "token cache is not a JSON text");
    tok = kt_json_tokener_new(KT_CACHE_JSON_DEPTH, JSON_TOKENER_STRICT);
    if (tok == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    obj = json_tokener_parse_ex(tok, text, (int)len);
    jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        kt_error_set(err, KT_ERR_PROTOCOL, "token cache is truncated");
        goto out;
    }
    if (obj == NULL || jerr != json_tokener_success) {
        kt_error_set(err, KT_ERR_PROTOCOL, "token cache is not valid JSON: %s",
                     json_tokener_error_desc(jerr));
        goto out;
    }
    if (json_tokener_get_parse_end(tok) != len) {
        kt_error_set(err, KT_ERR_PROTOCOL, "token cache has data after the JSON object");
        goto out;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        kt_error_set(err, KT_ERR_PROTOCOL, "token cache is not a JSON object");
        goto out;
    }
    if (fill_token_set(obj, t, err) != 0) {
        kt_token_set_free(t);
        goto out;
    }
    ret = 0;
out:
    /* json-c's copies of the tokens: in the values, and in the tokener's buffer (and in the
     * values a failed parse left half-built). */
    kt_json_put_wiped(obj);
    kt_json_tokener_free_wiped(tok);
    return ret;
}

/* --- serialisation --------------------------------------------------------------------------- */

/* A fixed-size buffer sized up front: growing it would leave unwiped copies of the tokens. */
typedef struct json_out {
    char *buf;
    size_t len;
    size_t cap;
} json_out;

static size_t json_string_bound(const char *s)
{
    return s == NULL ? 0 : 6 * strlen(s) + 2; /* worst case: every byte as \u00XX */
}

static void out_raw(json_out *o, const char *s)
{
    size_t n = strlen(s);

    if (o->len + n < o->cap) {
        memcpy(o->buf + o->len, s, n);
        o->len += n;
    }
}

static void out_string(json_out *o, const char *s)
{
    char esc[8];

    out_raw(o, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            esc[2] = '\0';
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
        } else {
            esc[0] = (char)*p;
            esc[1] = '\0';
        }
        out_raw(o, esc);
    }
    out_raw(o, "\"");
}

static void out_member(json_out *o, const char *key, const char *value)
{
    if (value == NULL)
        return;
    out_raw(o, ",\"");
    out_raw(o, key);
    out_raw(o, "\":");
    out_string(o, value);
}

char *kt_cache_serialize(const kt_token_set *t)
{
    char num[64];
    json_out o = {NULL, 0, 0};

    if (t == NULL || (t->access_token == NULL && t->refresh_token == NULL))
        return NULL;
    o.cap = 320 + json_string_bound(t->username) + json_string_bound(t->device_id) +
            json_string_bound(t->access_token) + json_string_bound(t->refresh_token) +
            json_string_bound(t->scope) + json_string_bound(t->client_id);
    o.buf = malloc(o.cap);
    if (o.buf == NULL)
        return NULL;
    out_raw(&o, "{\"version\":1");
    out_member(&o, "username", t->username);
    out_member(&o, "device_id", t->device_id);
    out_member(&o, "access_token", t->access_token);
    out_member(&o, "refresh_token", t->refresh_token);
    snprintf(num, sizeof(num), ",\"expires_at\":%" PRId64 ",\"confirmed\":%s",
             (int64_t)(t->expires_at < 0 ? 0 : t->expires_at), t->confirmed ? "true" : "false");
    out_raw(&o, num);
    out_member(&o, "scope", t->scope);
    out_member(&o, "client_id", t->client_id);
    if (t->login_at > 0) {
        snprintf(num, sizeof(num), ",\"login_at\":%" PRId64, (int64_t)t->login_at);
        out_raw(&o, num);
    }
    out_raw(&o, "}\n");
    o.buf[o.len] = '\0';
    return o.buf;
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
    int lock;
    int ret;

    if (kt_dir_ensure_private(paths->state_dir, err) != 0)
        return -1;
    lock = kt_cache_lock(paths, KT_CACHE_LOCK_WAIT_MS, err);
    if (lock < 0)
        return -1;
    ret = store_locked(paths, t, err);
    kt_cache_unlock(lock);
    return ret;
}

/* Keeps only the refresh token; the caller holds the lock. */
static int erase_access_locked(const kt_paths *paths, kt_error *err)
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

int kt_cache_erase(const kt_paths *paths, int access_only, kt_error *err)
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
        ret = erase_access_locked(paths, err);
    else
        ret = kt_file_remove(paths->cache_file, err);
    /* A crash between writing and renaming leaves a temporary copy with the tokens in it. */
    if (kt_file_remove_temps(paths->cache_file, err) != 0)
        ret = -1;
    kt_file_unlock(lock);
    return ret;
}
