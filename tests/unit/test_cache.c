/* The token cache: strict parsing, serialisation, safe loading and storing, erasing, and
 * kt_cache_get_valid both without the network and, through kontist-mock, with real refreshes
 * (including rotation and several processes racing for one expiring token). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>

#include "kontist.h"
#include "test_util.h"

#ifndef KT_TEST_SRCDIR_DEFAULT
#define KT_TEST_SRCDIR_DEFAULT "tests"
#endif

#define MOCK_USER "demo@example.com"
#define MOCK_PASSWORD "demo-password-123"
#define MOCK_CLIENT "kontist-auth-demo"
#define MOCK_SECRET "demo-client-secret"

typedef struct cache_fixture {
    test_dir dir;
    char state_dir[600];
    char cache_file[700];
    char lock_file[700];
    kt_paths paths;
    kt_owner_policy owners;
} cache_fixture;

static int setup(void **state)
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

static int teardown(void **state)
{
    cache_fixture *f = *state;

    test_dir_remove(&f->dir);
    free(f);
    return 0;
}

/* A complete token set; the caller frees it with kt_token_set_free. */
static void sample_set(kt_token_set *t, time_t expires_at)
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

static void assert_sets_equal(const kt_token_set *a, const kt_token_set *b)
{
#define STR_EQ(field)                                                                              \
    do {                                                                                           \
        if (a->field == NULL || b->field == NULL)                                                  \
            assert_ptr_equal(a->field, b->field);                                                  \
        else                                                                                       \
            assert_string_equal(a->field, b->field);                                               \
    } while (0)
    STR_EQ(access_token);
    STR_EQ(refresh_token);
    STR_EQ(username);
    STR_EQ(device_id);
    STR_EQ(scope);
    STR_EQ(client_id);
#undef STR_EQ
    assert_int_equal(a->login_at, b->login_at);
    assert_int_equal(a->expires_at, b->expires_at);
    assert_int_equal(a->confirmed, b->confirmed);
}

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

static void assert_msg_has(const kt_error *err, const char *part)
{
    if (strstr(err->message, part) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err->message, part);
}

static void assert_msg_lacks(const kt_error *err, const char *part)
{
    if (strstr(err->message, part) != NULL)
        fail_msg("message \"%s\" has \"%s\"", err->message, part);
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

static void store_sample(cache_fixture *f, kt_token_set *t, time_t expires_at)
{
    kt_error err = {KT_OK, ""};

    sample_set(t, expires_at);
    if (kt_cache_store(&f->paths, t, &err) != 0)
        fail_msg("store failed: %s", err.message);
}

static void test_store_load_round_trip(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t, back;
    kt_error err = {KT_OK, ""};
    char *before, *after;

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
    {
        char cmd[800], out[256];
        FILE *p;
        size_t n;

        snprintf(cmd, sizeof(cmd), "ls -A '%s'", f->state_dir);
        p = popen(cmd, "r");
        assert_non_null(p);
        n = fread(out, 1, sizeof(out) - 1, p);
        out[n] = '\0';
        pclose(p);
        assert_string_equal(out, "tokens.json\ntokens.lock\n");
    }
    assert_int_equal(err.kind, KT_OK);
    free(before);
    free(after);
    kt_token_set_free(&back);
    kt_token_set_free(&t);
}

static void test_store_refuses_open_state_dir(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t;
    kt_error err = {KT_OK, ""};
    char parent[600];

    test_path(&f->dir, "state", parent, sizeof(parent));
    assert_int_equal(mkdir(parent, 0700), 0);
    assert_int_equal(mkdir(f->state_dir, 0700), 0);
    assert_int_equal(chmod(f->state_dir, 0777), 0);
    sample_set(&t, time(NULL) + 3600);
    assert_int_equal(kt_cache_store(&f->paths, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_int_equal(access(f->cache_file, F_OK), -1);
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

/* --- kt_cache_get_valid without the network -------------------------------------------------- */

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
    assert_true(waited >= 1.5 && waited < 4.0);
    assert_int_equal(kt_http_connections(o.ctx->http), 0);
    close(lock_fd);
    kt_token_set_free(&t);
    offline_ctx_free(&o);
}

/* --- kt_cache_get_valid against kontist-mock -------------------------------------------------- */

typedef struct mock {
    pid_t pid;
    int stdin_fd;
    char url[256];
    char ca_file[512];
    char state_dir[512];
} mock;

static const char *test_srcdir(void)
{
    const char *d = getenv("KT_TEST_SRCDIR");

    return d != NULL && d[0] != '\0' ? d : KT_TEST_SRCDIR_DEFAULT;
}

static void copy_json_string(struct json_object *obj, const char *key, char *out, size_t size)
{
    struct json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        fail_msg("kontist-mock line lacks %s", key);
    snprintf(out, size, "%s", json_object_get_string(v));
}

/* Starts kontist-mock and reads the JSON line it prints once it listens. It also stops when its
 * standard input closes, so a crashed test leaves no server behind. */
static void mock_start(mock *m, const char *state_dir, const char *extra)
{
    char script[1024], line[2048];
    int out_pipe[2], in_pipe[2];
    size_t n = 0;
    struct json_object *obj;

    snprintf(script, sizeof(script), "%s/mock/kontist-mock", test_srcdir());
    if (access(script, R_OK) != 0)
        fail_msg("kontist-mock not found at %s (set KT_TEST_SRCDIR)", script);
    assert_int_equal(pipe2(out_pipe, O_CLOEXEC), 0);
    assert_int_equal(pipe2(in_pipe, O_CLOEXEC), 0);
    m->pid = fork();
    assert_true(m->pid >= 0);
    if (m->pid == 0) {
        dup2(in_pipe[0], STDIN_FILENO);
        dup2(out_pipe[1], STDOUT_FILENO);
        execl("/usr/bin/python3", "python3", script, "--listen", "127.0.0.1:0", "--state-dir",
              state_dir, "--watch-stdin", extra, (char *)NULL); /* extra may be NULL */
        _exit(127);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    m->stdin_fd = in_pipe[1];
    while (n < sizeof(line) - 1) {
        struct pollfd pfd = {.fd = out_pipe[0], .events = POLLIN};
        ssize_t r;

        if (poll(&pfd, 1, 30000) != 1)
            fail_msg("kontist-mock did not start within 30 s");
        r = read(out_pipe[0], line + n, 1);
        if (r != 1)
            fail_msg("kontist-mock exited before it listened");
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(out_pipe[0]);
    obj = json_tokener_parse(line);
    if (obj == NULL)
        fail_msg("kontist-mock printed no JSON: %s", line);
    copy_json_string(obj, "url", m->url, sizeof(m->url));
    copy_json_string(obj, "ca_file", m->ca_file, sizeof(m->ca_file));
    copy_json_string(obj, "state_dir", m->state_dir, sizeof(m->state_dir));
    json_object_put(obj);
}

static void mock_stop(mock *m)
{
    int status;

    close(m->stdin_fd);
    kill(m->pid, SIGTERM);
    waitpid(m->pid, &status, 0);
}

/* Number of refresh grants the mock has answered so far. */
static int mock_refresh_count(const mock *m)
{
    char path[600];
    char *log, *line, *save = NULL;
    int count = 0;

    snprintf(path, sizeof(path), "%s/requests.jsonl", m->state_dir);
    log = read_file_all(path, NULL);
    if (log == NULL)
        return 0;
    for (line = strtok_r(log, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        struct json_object *obj = json_tokener_parse(line), *v;

        if (obj != NULL && json_object_object_get_ex(obj, "grant_type", &v) &&
            json_object_is_type(v, json_type_string) &&
            strcmp(json_object_get_string(v), "refresh_token") == 0)
            count++;
        json_object_put(obj);
    }
    free(log);
    return count;
}

typedef struct online {
    mock m;
    kt_config cfg;
    kt_ctx *ctx;
} online;

static kt_ctx *mock_ctx(const mock *m, kt_config *cfg)
{
    kt_error err = {KT_OK, ""};
    kt_ctx *ctx;

    kt_config_init(cfg);
    if (kt_config_set(cfg, "base_url", m->url, &err) != 0 ||
        kt_config_set(cfg, "ca_file", m->ca_file, &err) != 0 ||
        kt_config_set(cfg, "client_id", MOCK_CLIENT, &err) != 0 ||
        kt_config_set(cfg, "login_timeout", "20", &err) != 0)
        fail_msg("config: %s", err.message);
    cfg->client_secret = strdup(MOCK_SECRET);
    ctx = kt_ctx_new(cfg, NULL, &err);
    if (ctx == NULL)
        fail_msg("context: %s", err.message);
    return ctx;
}

/* Starts a mock, logs in with the password grant and caches the result as about to expire. */
static void online_start(online *o, cache_fixture *f, const char *extra, kt_token_set *cached)
{
    char mock_dir[600];
    kt_error err = {KT_OK, ""};

    test_path(&f->dir, "mock", mock_dir, sizeof(mock_dir));
    assert_int_equal(mkdir(mock_dir, 0700), 0);
    mock_start(&o->m, mock_dir, extra);
    o->ctx = mock_ctx(&o->m, &o->cfg);
    kt_ctx_start_deadline(o->ctx);
    if (kt_oauth_password_grant(o->ctx, MOCK_USER, MOCK_PASSWORD, cached, &err) != 0)
        fail_msg("password grant: %s", err.message);
    assert_non_null(cached->refresh_token);
    free(cached->username);
    free(cached->device_id);
    cached->username = strdup(MOCK_USER);
    cached->device_id = strdup("device-kept");
    cached->expires_at = time(NULL) + KT_TOKEN_MIN_LEFT - 20;
    if (kt_cache_store(&f->paths, cached, &err) != 0)
        fail_msg("store: %s", err.message);
}

static void online_stop(online *o)
{
    kt_ctx_free(o->ctx);
    kt_config_free(&o->cfg);
    mock_stop(&o->m);
}

static void test_mock_refresh(void **state)
{
    cache_fixture *f = *state;
    online o;
    kt_token_set cached, out, again, stored;
    kt_error err = {KT_OK, ""};

    online_start(&o, f, NULL, &cached);
    assert_int_equal(mock_refresh_count(&o.m), 0);
    if (kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err) != 0)
        fail_msg("get_valid: %s", err.message);
    assert_int_equal(mock_refresh_count(&o.m), 1);
    assert_string_not_equal(out.access_token, cached.access_token);
    assert_string_equal(out.refresh_token, cached.refresh_token); /* no rotation: kept */
    assert_string_equal(out.username, MOCK_USER);
    assert_string_equal(out.device_id, "device-kept");
    /* A cache that named no client now names the one that could refresh it. */
    assert_null(cached.client_id);
    assert_string_equal(out.client_id, MOCK_CLIENT);
    assert_true(kt_token_set_usable(&out, time(NULL), KT_TOKEN_MIN_LEFT));
    /* The cache holds exactly what was handed out. */
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &stored, &err), KT_CACHE_LOADED);
    assert_sets_equal(&out, &stored);
    assert_int_equal(file_mode(f->cache_file), 0600);
    /* The next call is served from the cache. */
    assert_int_equal(kt_session_get_valid(o.ctx, &f->paths, &f->owners, &again, &err), 0);
    assert_string_equal(again.access_token, out.access_token);
    assert_int_equal(mock_refresh_count(&o.m), 1);
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
    assert_int_equal(kt_token_set_stamp(&cached, MOCK_CLIENT, 1700000000, &err), 0);
    assert_int_equal(kt_cache_store(&f->paths, &cached, &err), 0);
    if (kt_session_get_valid(o.ctx, &f->paths, &f->owners, &out, &err) != 0)
        fail_msg("get_valid: %s", err.message);
    assert_int_equal(mock_refresh_count(&o.m), 1);
    assert_string_equal(out.client_id, MOCK_CLIENT);
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

    online_start(&o, f, "--rotate-refresh", &cached);
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
    assert_int_equal(mock_refresh_count(&o.m), 1);
    after = read_file_all(f->cache_file, NULL);
    assert_string_equal(before, after);
    free(before);
    free(after);
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

    online_start(&o, f, "--rotate-refresh", &cached);
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
            kt_config_free(&cfg);
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
    assert_int_equal(mock_refresh_count(&o.m), 1);
    assert_int_equal(kt_cache_load(f->cache_file, &f->owners, &stored, &err), KT_CACHE_LOADED);
    assert_string_not_equal(stored.refresh_token, cached.refresh_token);
    assert_true(kt_token_set_usable(&stored, time(NULL), KT_TOKEN_MIN_LEFT));
    kt_token_set_free(&stored);
    kt_token_set_free(&cached);
    online_stop(&o);
}

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
        cmocka_unit_test_setup_teardown(test_store_load_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_refuses_open_state_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_unsafe_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_access_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_valid_returns_usable_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_valid_absent_or_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_valid_expired_without_refresh_token, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_get_valid_other_client_is_explained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_valid_unreachable_keeps_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_valid_unsafe_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_valid_waits_for_lock_only_to_refresh, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mock_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mock_refresh_same_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mock_refresh_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mock_refresh_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mock_concurrent_refresh_once, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
