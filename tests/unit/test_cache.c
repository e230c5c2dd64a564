/* The token cache as storage: strict parsing, serialisation, safe loading and storing, erasing,
 * and the temporary files a killed writer leaves. What goes into it and when (kt_session) is
 * tested in test_session.c. */
#include <config.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache_fixture.h"
#include "kt_cache.h"
#include "kt_file.h"
#include "kt_secret.h"
#include "test_util.h"

static void assert_parse_fails(const char *text, size_t len, const char *why)
{
    kt_token_set t;
    kt_error err = {KT_OK, ""};

    if (kt_cache_parse(text, len, &t, &err) == 0)
        fail_msg("parsed but must not (%s): %.*s", why, (int)len, text);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    assert_null(t.access_token);
    assert_null(t.refresh_token);
    assert_null(t.username);
}

/* --- parsing and serialisation --------------------------------------------------------------- */

static void test_parse_good(void **state)
{
    static const char text[] =
        "{\"version\":1,\"username\":\"demo@example.com\",\"device_id\":\"dev-1\","
        "\"access_token\":\"aaa.bbb.ccc\",\"refresh_token\":\"rrr\",\"expires_at\":1700000000,"
        "\"confirmed\":true,\"scope\":\"offline users\"}\n";
    kt_token_set t;
    kt_error err = {KT_OK, ""};

    (void)state;
    assert_int_equal(kt_cache_parse(text, strlen(text), &t, &err), 0);
    assert_string_equal(t.username, "demo@example.com");
    assert_string_equal(t.device_id, "dev-1");
    assert_string_equal(t.access_token, "aaa.bbb.ccc");
    assert_string_equal(t.refresh_token, "rrr");
    assert_int_equal(t.expires_at, 1700000000);
    assert_true(t.confirmed);
    assert_string_equal(t.scope, "offline users");
    kt_token_set_free(&t);
}

static void test_parse_minimal_and_refresh_only(void **state)
{
    static const char access_only[] =
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":5,\"confirmed\":false}";
    static const char refresh_only[] =
        " {\"version\":1,\"refresh_token\":\"r\",\"expires_at\":0,\"confirmed\":false} \n";
    kt_token_set t;
    kt_error err = {KT_OK, ""};

    (void)state;
    assert_int_equal(kt_cache_parse(access_only, strlen(access_only), &t, &err), 0);
    assert_string_equal(t.access_token, "a");
    assert_null(t.refresh_token);
    assert_null(t.username);
    assert_null(t.device_id);
    assert_null(t.scope);
    assert_false(t.confirmed);
    kt_token_set_free(&t);
    /* What an erased access token leaves behind. */
    assert_int_equal(kt_cache_parse(refresh_only, strlen(refresh_only), &t, &err), 0);
    assert_null(t.access_token);
    assert_string_equal(t.refresh_token, "r");
    assert_int_equal(t.expires_at, 0);
    kt_token_set_free(&t);
}

/* The client that issued the tokens and when its login ran; caches from before they were recorded
 * are read as they are. */
static void test_parse_client_and_login_time(void **state)
{
    static const char text[] =
        "{\"version\":1,\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_at\":5,"
        "\"confirmed\":true,\"client_id\":\"kontist-auth-demo\",\"login_at\":1700000000}";
    static const char old[] = "{\"version\":1,\"refresh_token\":\"r\",\"expires_at\":5,"
                              "\"confirmed\":false}";
    kt_token_set t;
    kt_error err = {KT_OK, ""};
    char *json;

    (void)state;
    assert_int_equal(kt_cache_parse(text, strlen(text), &t, &err), 0);
    assert_string_equal(t.client_id, "kontist-auth-demo");
    assert_int_equal(t.login_at, 1700000000);
    json = kt_cache_serialize(&t);
    assert_non_null(strstr(json, "\"client_id\":\"kontist-auth-demo\""));
    assert_non_null(strstr(json, "\"login_at\":1700000000"));
    kt_secret_free(json);
    kt_token_set_free(&t);
    assert_int_equal(kt_cache_parse(old, strlen(old), &t, &err), 0);
    assert_null(t.client_id);
    assert_int_equal(t.login_at, 0);
    json = kt_cache_serialize(&t);
    assert_null(strstr(json, "client_id"));
    assert_null(strstr(json, "login_at"));
    kt_secret_free(json);
    kt_token_set_free(&t);

#define BAD(members, why)                                                                          \
    assert_parse_fails("{\"version\":1,\"refresh_token\":\"r\",\"expires_at\":5,"                  \
                       "\"confirmed\":false," members "}",                                         \
                       strlen("{\"version\":1,\"refresh_token\":\"r\",\"expires_at\":5,"           \
                              "\"confirmed\":false," members "}"),                                 \
                       why)
    BAD("\"client_id\":5", "client_id not a string");
    BAD("\"client_id\":\"\"", "empty client_id");
    BAD("\"login_at\":\"yesterday\"", "login_at not an integer");
    BAD("\"login_at\":-1", "negative login_at");
#undef BAD
}

static void test_parse_bad(void **state)
{
#define BASE "\"version\":1,\"expires_at\":1,\"confirmed\":true"
    static const char *const bad[] = {
        "null",
        "[]",
        "\"string\"",
        "42",
        "{}",
        "{" BASE "}",                                                   /* neither token */
        "{\"access_token\":\"a\",\"expires_at\":1,\"confirmed\":true}", /* no version */
        "{\"version\":1,\"access_token\":\"a\",\"confirmed\":true}",    /* no expires_at */
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":1}",      /* no confirmed */
        "{\"version\":2,\"access_token\":\"a\",\"expires_at\":1,\"confirmed\":true}",
        "{\"version\":0,\"access_token\":\"a\",\"expires_at\":1,\"confirmed\":true}",
        "{" BASE ",\"access_token\":\"a\",\"extra\":1}", /* unknown member */
        "{" BASE ",\"access_token\":\"\"}",
        "{" BASE ",\"refresh_token\":\"\"}",
        "{" BASE ",\"access_token\":\"a\",\"username\":\"\"}",
        "{" BASE ",\"access_token\":\"has space\"}",
        "{" BASE ",\"access_token\":\"line\\nbreak\"}",
        "{" BASE ",\"access_token\":\"nul\\u0000byte\"}",
        "{" BASE ",\"refresh_token\":\"caf\\u00e9\"}",
        "{" BASE ",\"access_token\":\"a\",\"username\":\"nul\\u0000\"}",
        "{" BASE ",\"access_token\":\"a\"} trailing",
        "{" BASE ",\"access_token\":\"a\"}{}",
        "{" BASE ",\"access_token\":\"a\",}", /* trailing comma */
        "{'version':1,'access_token':'a','expires_at':1,'confirmed':true}",
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":-5,\"confirmed\":true}",
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":99999999999999999999999,"
        "\"confirmed\":true}",
        "{" BASE ",\"access_token\":\"a\",\"scope\":{\"deep\":{\"deeper\":{\"deepest\":[1]}}}}",
    };
#undef BASE

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_parse_fails(bad[i], strlen(bad[i]), "bad");
}

static void test_parse_wrong_types(void **state)
{
    static const char *const bad[] = {
        "{\"version\":\"1\",\"access_token\":\"a\",\"expires_at\":1,\"confirmed\":true}",
        "{\"version\":1.0,\"access_token\":\"a\",\"expires_at\":1,\"confirmed\":true}",
        "{\"version\":true,\"access_token\":\"a\",\"expires_at\":1,\"confirmed\":true}",
        "{\"version\":1,\"access_token\":5,\"expires_at\":1,\"confirmed\":true}",
        "{\"version\":1,\"access_token\":null,\"refresh_token\":\"r\",\"expires_at\":1,"
        "\"confirmed\":true}",
        "{\"version\":1,\"access_token\":[\"a\"],\"expires_at\":1,\"confirmed\":true}",
        "{\"version\":1,\"refresh_token\":{},\"expires_at\":1,\"confirmed\":true}",
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":\"1\",\"confirmed\":true}",
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":1.5,\"confirmed\":true}",
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":null,\"confirmed\":true}",
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":1,\"confirmed\":\"true\"}",
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":1,\"confirmed\":1}",
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":1,\"confirmed\":true,"
        "\"username\":7}",
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":1,\"confirmed\":true,"
        "\"device_id\":false}",
        "{\"version\":1,\"access_token\":\"a\",\"expires_at\":1,\"confirmed\":true,"
        "\"scope\":[\"offline\"]}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_parse_fails(bad[i], strlen(bad[i]), "wrong type");
}

static void test_parse_truncated_and_empty(void **state)
{
    kt_token_set t;
    char *json;
    size_t len;

    (void)state;
    sample_set(&t, 1700000000);
    json = kt_cache_serialize(&t);
    kt_token_set_free(&t);
    assert_non_null(json);
    len = strlen(json);
    assert_int_equal(json[len - 1], '\n');
    /* Every cut short of the closing brace must fail: a torn write is never taken for data. */
    for (size_t cut = 0; cut < len - 1; cut++)
        assert_parse_fails(json, cut, "truncated");
    assert_parse_fails("", 0, "empty");
    assert_parse_fails(NULL, 0, "null");
    assert_parse_fails("   \n", 4, "blank");
    /* An embedded NUL within the given length. */
    json[10] = '\0';
    assert_parse_fails(json, len, "nul");
    kt_secret_free(json);
}

static void test_serialize_round_trip(void **state)
{
    kt_token_set t, back;
    kt_error err = {KT_OK, ""};
    char *json;

    (void)state;
    sample_set(&t, 1893456000);
    free(t.username);
    t.username = strdup("quote\" back\\slash\nnew\tline \x01 \xc3\xa4 /");
    json = kt_cache_serialize(&t);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"version\":1"));
    assert_null(strchr(json, '\t'));
    assert_ptr_equal(strchr(json, '\n'), json + strlen(json) - 1);
    assert_int_equal(kt_cache_parse(json, strlen(json), &back, &err), 0);
    assert_sets_equal(&t, &back);
    kt_token_set_free(&back);
    kt_secret_free(json);

    /* Absent optional fields are left out, not written as null or "". */
    free(t.username);
    free(t.device_id);
    free(t.scope);
    t.username = t.device_id = t.scope = NULL;
    kt_secret_clear(&t.access_token);
    t.confirmed = false;
    t.expires_at = 0;
    json = kt_cache_serialize(&t);
    assert_non_null(json);
    assert_null(strstr(json, "username"));
    assert_null(strstr(json, "access_token"));
    assert_null(strstr(json, "null"));
    assert_int_equal(kt_cache_parse(json, strlen(json), &back, &err), 0);
    assert_sets_equal(&t, &back);
    kt_token_set_free(&back);
    kt_secret_free(json);

    /* Nothing to keep: no cache text. */
    kt_secret_clear(&t.refresh_token);
    assert_null(kt_cache_serialize(&t));
    assert_null(kt_cache_serialize(NULL));
    kt_token_set_free(&t);
}

/* --- files ----------------------------------------------------------------------------------- */

static void test_store_load_round_trip(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t, back;
    kt_error err = {KT_OK, ""};
    char *before, *after, names[256];

    store_sample(f, &t, time(NULL) + 3600);
    assert_int_equal(file_mode(f->state_dir), 0700);
    assert_int_equal(file_mode(f->cache_file), 0600);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &back, &err), KT_CACHE_LOADED);
    assert_sets_equal(&t, &back);
    kt_token_set_free(&back);

    /* A second store replaces the file whole and leaves no temporary files behind. */
    before = read_file_all(f->cache_file, NULL);
    free(t.access_token);
    t.access_token = strdup("second.access.token");
    assert_int_equal(kt_cache_store(&f->paths, &t, &err), 0);
    after = read_file_all(f->cache_file, NULL);
    assert_non_null(strstr(after, "second.access.token"));
    assert_string_not_equal(before, after);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &back, &err), KT_CACHE_LOADED);
    assert_string_equal(back.access_token, "second.access.token");
    list_dir(f->state_dir, names, sizeof(names));
    assert_string_equal(names, "tokens.json\ntokens.lock\n");
    assert_int_equal(err.kind, KT_OK);
    free(before);
    free(after);
    kt_token_set_free(&back);
    kt_token_set_free(&t);
}

/* Token names and the lock are nobody else's business: a state directory that others may write
 * to, or merely read or enter, is not used. */
static void test_store_refuses_open_state_dir(void **state)
{
    static const mode_t modes[] = {0777, 0755, 0750, 0710, 0705, 0701};
    cache_fixture *f = *state;
    kt_token_set t;
    kt_error err = {KT_OK, ""};
    char parent[600];

    test_path(&f->dir, "state", parent, sizeof(parent));
    assert_int_equal(mkdir(parent, 0700), 0);
    assert_int_equal(mkdir(f->state_dir, 0700), 0);
    sample_set(&t, time(NULL) + 3600);
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        assert_int_equal(chmod(f->state_dir, modes[i]), 0);
        kt_error_clear(&err);
        if (kt_cache_store(&f->paths, &t, &err) != -1)
            fail_msg("stored into a state directory of mode %04o", (unsigned)modes[i]);
        assert_int_equal(err.kind, KT_ERR_IO);
        assert_msg_has(&err, f->state_dir);
        assert_int_equal(access(f->cache_file, F_OK), -1);
        assert_int_equal(file_mode(f->state_dir), modes[i]); /* reported, not repaired */
    }
    assert_int_equal(chmod(f->state_dir, 0700), 0);
    assert_int_equal(kt_cache_store(&f->paths, &t, &err), 0);
    kt_token_set_free(&t);
}

static void test_load_absent(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t;
    kt_error err = {KT_OK, ""};

    /* Neither the file nor its directory exist. */
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &t, &err), KT_CACHE_ABSENT);
    assert_int_equal(err.kind, KT_OK);
    assert_null(t.access_token);
}

static void test_load_refuses_unsafe_files(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t;
    kt_error err = {KT_OK, ""};
    kt_owner_policy other = {.allow_root = false, .allow_uid = true, .uid = geteuid() + 1};
    kt_owner_policy root_and_me = {.allow_root = true, .allow_uid = true, .uid = geteuid()};
    const mode_t modes[] = {0644, 0640, 0604, 0660, 0622};
    char link_path[700];

    store_sample(f, &t, time(NULL) + 3600);
    kt_token_set_free(&t);
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        assert_int_equal(chmod(f->cache_file, modes[i]), 0);
        kt_error_clear(&err);
        assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &t, &err), -1);
        assert_int_equal(err.kind, KT_ERR_IO);
        assert_null(t.access_token);
    }
    assert_int_equal(chmod(f->cache_file, 0600), 0);
    kt_error_clear(&err);
    assert_int_equal(kt_cache_load(f->cache_file, &other, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_msg_has(&err, "not allowed");

    snprintf(link_path, sizeof(link_path), "%s/link.json", f->state_dir);
    assert_int_equal(symlink(f->cache_file, link_path), 0);
    kt_error_clear(&err);
    assert_int_equal(kt_cache_load(link_path, &f->owners, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_msg_has(&err, "symbolic link");

    if (geteuid() == 0) {
        assert_int_equal(chown(f->cache_file, 65534, 65534), 0);
        kt_error_clear(&err);
        assert_int_equal(kt_cache_load(f->cache_file, &root_and_me, &t, &err), -1);
        assert_int_equal(err.kind, KT_ERR_IO);
        assert_msg_has(&err, "owned by uid 65534");
    }
}

static void test_load_corrupt(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t;
    kt_error err = {KT_OK, ""};

    store_sample(f, &t, time(NULL) + 3600);
    kt_token_set_free(&t);
    assert_int_equal(write_file_mode(f->cache_file, "{\"version\":1,\"acc", 17, 0600), 0);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &t, &err), KT_CACHE_CORRUPT);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    assert_msg_has(&err, f->cache_file);
    assert_msg_has(&err, "corrupt");
    assert_null(t.access_token);
}

static void test_erase_all(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t;
    kt_error err = {KT_OK, ""};

    /* Nothing to erase, not even a state directory. */
    assert_int_equal(kt_cache_erase(&f->paths, 0, &err), 0);
    assert_int_equal(kt_cache_erase(&f->paths, 1, &err), 0);
    assert_int_equal(access(f->state_dir, F_OK), -1);

    store_sample(f, &t, time(NULL) + 3600);
    kt_token_set_free(&t);
    assert_int_equal(kt_cache_erase(&f->paths, 0, &err), 0);
    assert_int_equal(access(f->cache_file, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &t, &err), KT_CACHE_ABSENT);
    /* Twice is fine. */
    assert_int_equal(kt_cache_erase(&f->paths, 0, &err), 0);
    assert_int_equal(err.kind, KT_OK);
}

/* git's erase names the token it saw rejected: only that token, for that user, is dropped, and
 * the comparison is made under the lock against what the file holds then. */
static void test_erase_access_if_it_is_the_one_named(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t, back;
    kt_error err = {KT_OK, ""};

    store_sample(f, &t, time(NULL) + 3600);
    /* Another token (a newer one saved since), or a prefix of this one: kept. */
    assert_int_equal(kt_cache_erase_access_if(&f->paths, NULL, "eyJhbGciOiJFUzI1NiJ9.old", &err),
                     0);
    assert_int_equal(kt_cache_erase_access_if(&f->paths, NULL, "eyJhbGciOiJFUzI1NiJ9", &err), 0);
    /* The token, but another user's name: kept. */
    assert_int_equal(
        kt_cache_erase_access_if(&f->paths, "mallory@example.com", t.access_token, &err), 0);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &back, &err), KT_CACHE_LOADED);
    assert_string_equal(back.access_token, t.access_token);
    kt_token_set_free(&back);

    /* This user (the name compared without case) and this token: dropped, refresh token kept. */
    assert_int_equal(kt_cache_erase_access_if(&f->paths, "DEMO@example.com", t.access_token, &err),
                     0);
    assert_int_equal(err.kind, KT_OK);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &back, &err), KT_CACHE_LOADED);
    assert_null(back.access_token);
    assert_string_equal(back.refresh_token, t.refresh_token);
    kt_token_set_free(&back);

    /* A corrupt cache cannot be said to hold the token: left for logout. */
    assert_int_equal(write_file_mode(f->cache_file, "garbage", 7, 0600), 0);
    assert_int_equal(kt_cache_erase_access_if(&f->paths, NULL, t.access_token, &err), 0);
    assert_int_equal(access(f->cache_file, F_OK), 0);
    kt_token_set_free(&t);
}

static void test_erase_access_only(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t, back;
    kt_error err = {KT_OK, ""};

    store_sample(f, &t, time(NULL) + 3600);
    assert_int_equal(kt_cache_erase(&f->paths, 1, &err), 0);
    assert_int_equal(file_mode(f->cache_file), 0600);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &back, &err), KT_CACHE_LOADED);
    assert_null(back.access_token);
    assert_string_equal(back.refresh_token, t.refresh_token);
    assert_string_equal(back.username, t.username);
    assert_string_equal(back.device_id, t.device_id);
    assert_false(kt_token_set_usable(&back, time(NULL), 0));
    kt_token_set_free(&back);
    /* Erasing the access token again keeps the refresh token still. */
    assert_int_equal(kt_cache_erase(&f->paths, 1, &err), 0);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &back, &err), KT_CACHE_LOADED);
    assert_string_equal(back.refresh_token, t.refresh_token);
    kt_token_set_free(&back);

    /* Without a refresh token nothing worth keeping is left: the file goes. */
    kt_secret_clear(&t.refresh_token);
    assert_int_equal(kt_cache_store(&f->paths, &t, &err), 0);
    assert_int_equal(kt_cache_erase(&f->paths, 1, &err), 0);
    assert_int_equal(access(f->cache_file, F_OK), -1);

    /* Nor from a corrupt file. */
    assert_int_equal(write_file_mode(f->cache_file, "garbage", 7, 0600), 0);
    assert_int_equal(kt_cache_erase(&f->paths, 1, &err), 0);
    assert_int_equal(access(f->cache_file, F_OK), -1);

    /* An unsafe file is reported, not rewritten. */
    store_sample(f, &back, time(NULL) + 3600);
    kt_token_set_free(&back);
    assert_int_equal(chmod(f->cache_file, 0644), 0);
    assert_int_equal(kt_cache_erase(&f->paths, 1, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_int_equal(file_mode(f->cache_file), 0644);
    kt_token_set_free(&t);
}

/* --- what a killed writer leaves ------------------------------------------------------------- */

/* A writer killed between writing its temporary copy and renaming it leaves a live refresh token
 * beside the cache. The next store removes it (it runs under the lock, so no writer is at work);
 * a link named like one, or a file named otherwise, is not the cache's and stays. */
static void test_store_removes_stale_temps(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t;
    kt_error err = {KT_OK, ""};
    char target[700], names[512], *kept;

    store_sample(f, &t, time(NULL) + 3600);
    leave_stale_temp(f, ".tokens.json.tmp-Ab12Cd");
    leave_stale_temp(f, ".tokens.json.tmp-zz");
    leave_stale_temp(f, "tokens.json.bak");
    leave_temp_link(f, ".tokens.json.tmp-link", target, sizeof(target));
    assert_int_equal(kt_cache_store(&f->paths, &t, &err), 0);
    list_dir(f->state_dir, names, sizeof(names));
    assert_string_equal(names,
                        ".tokens.json.tmp-link\ntokens.json\ntokens.json.bak\ntokens.lock\n");
    kept = read_file_all(target, NULL);
    assert_string_equal(kept, "precious");
    free(kept);
    kt_token_set_free(&t);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, cache_setup, cache_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_minimal_and_refresh_only),
        cmocka_unit_test(test_parse_client_and_login_time),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_wrong_types),
        cmocka_unit_test(test_parse_truncated_and_empty),
        cmocka_unit_test(test_serialize_round_trip),
        T(test_store_load_round_trip),
        T(test_store_refuses_open_state_dir),
        T(test_load_absent),
        T(test_load_refuses_unsafe_files),
        T(test_load_corrupt),
        T(test_erase_all),
        T(test_erase_access_only),
        T(test_erase_access_if_it_is_the_one_named),
        T(test_store_removes_stale_temps),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
