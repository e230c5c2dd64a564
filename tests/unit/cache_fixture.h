/* What the token cache tests (test_cache.c) and the session tests (test_session.c) share: a state
 * directory of their own per test, a complete sample token set, and checks on sets and messages.
 * The checks use cmocka: a failure ends the running test. */
#ifndef CACHE_FIXTURE_H
#define CACHE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_cache.h"
#include "kt_all.h"
#include "kt_token.h"
#include "test_util.h"

typedef struct cache_fixture {
    test_dir dir;
    char state_dir[600]; /* dir/state/kontist, not created */
    char cache_file[700];
    char lock_file[700];
    kt_paths paths;
    kt_owner_policy owners; /* the caller's euid only */
} cache_fixture;

static inline int cache_setup(void **state)
{
    cache_fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || test_dir_create(&f->dir, "cache") != 0) {
        free(f);
        return -1;
    }
    test_path(&f->dir, "state/kontist", f->state_dir, sizeof(f->state_dir));
    snprintf(f->cache_file, sizeof(f->cache_file), "%s/tokens.json", f->state_dir);
    snprintf(f->lock_file, sizeof(f->lock_file), "%s/tokens.lock", f->state_dir);
    f->paths.state_dir = f->state_dir;
    f->paths.cache_file = f->cache_file;
    f->paths.lock_file = f->lock_file;
    f->owners.allow_root = false;
    f->owners.allow_uid = true;
    f->owners.uid = geteuid();
    *state = f;
    return 0;
}

static inline int cache_teardown(void **state)
{
    cache_fixture *f = *state;

    test_dir_remove(&f->dir);
    free(f);
    return 0;
}

/* A complete token set (an unconfirmed JWT with sub "1", an opaque refresh token); the caller
 * frees it with kt_token_set_free. */
static inline void sample_set(kt_token_set *t, time_t expires_at)
{
    memset(t, 0, sizeof(*t));
    t->access_token = strdup("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln");
    t->refresh_token = strdup("refresh-0123456789abcdef");
    t->username = strdup("demo@example.com");
    t->device_id = strdup("3f1c0a2e-device");
    t->scope = strdup("offline users accounts");
    t->expires_at = expires_at;
    t->confirmed = true;
    assert_non_null(t->access_token);
    assert_non_null(t->refresh_token);
}

/* sample_set, stored with kt_cache_store (which creates the state directory). */
static inline void store_sample(cache_fixture *f, kt_token_set *t, time_t expires_at)
{
    kt_error err = {KT_OK, ""};

    sample_set(t, expires_at);
    if (kt_cache_store(&f->paths, t, &err) != 0)
        fail_msg("store failed: %s", err.message);
}

static inline void assert_str_or_null_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static inline void assert_sets_equal(const kt_token_set *a, const kt_token_set *b)
{
    assert_str_or_null_equal(a->access_token, b->access_token);
    assert_str_or_null_equal(a->refresh_token, b->refresh_token);
    assert_str_or_null_equal(a->username, b->username);
    assert_str_or_null_equal(a->device_id, b->device_id);
    assert_str_or_null_equal(a->scope, b->scope);
    assert_str_or_null_equal(a->client_id, b->client_id);
    assert_int_equal(a->login_at, b->login_at);
    assert_int_equal(a->expires_at, b->expires_at);
    assert_int_equal(a->confirmed, b->confirmed);
}

static inline void assert_msg_has(const kt_error *err, const char *part)
{
    if (strstr(err->message, part) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err->message, part);
}

static inline void assert_msg_lacks(const kt_error *err, const char *part)
{
    if (strstr(err->message, part) != NULL)
        fail_msg("message \"%s\" has \"%s\"", err->message, part);
}

/* The names in dir, sorted, one per line ("" for an empty or missing directory). */
static inline void list_dir(const char *dir, char *out, size_t size)
{
    char cmd[800];
    FILE *p;
    size_t n;

    snprintf(cmd, sizeof(cmd), "LC_ALL=C ls -A '%s' 2>/dev/null", dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    pclose(p);
}

/* Leaves a file `name` beside the cache holding a refresh token, as the temporary copy of a writer
 * killed between writing and renaming does (".tokens.json.tmp-*"). The state directory exists. */
static inline void leave_stale_temp(const cache_fixture *f, const char *name)
{
    char path[800];
    static const char body[] = "{\"version\":1,\"refresh_token\":\"stale-live-refresh-token\","
                               "\"expires_at\":0,\"confirmed\":false}\n";

    snprintf(path, sizeof(path), "%s/%s", f->state_dir, name);
    assert_int_equal(write_file_mode(path, body, strlen(body), 0600), 0);
}

/* A symbolic link named like a temporary file beside the cache, pointing at a file of its own
 * in the test directory: neither may be touched by a clean-up. */
static inline void leave_temp_link(const cache_fixture *f, const char *name, char *target,
                                   size_t size)
{
    char link_path[800];

    test_path(&f->dir, "link-target", target, size);
    assert_int_equal(write_file_mode(target, "precious", 8, 0600), 0);
    snprintf(link_path, sizeof(link_path), "%s/%s", f->state_dir, name);
    assert_int_equal(symlink(target, link_path), 0);
}

#endif
