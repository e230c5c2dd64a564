/* Device administration: the answers of listBoundDevices and deleteBoundDevice, which key files
 * go with a removed device, forgetting the tokens it confirmed, and listing and removing against
 * the mock with this machine's record, key and cache checked file by file. */
#include <config.h>

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
#include "kt_all.h"
#include "kt_mock.h"

#define DEV_A "3f1c0a2e-aaaa"
#define DEV_B "77b0-bbbb_2"

static void parse_list_ok(const char *body, kt_device_list *l)
{
    kt_error err = {0};

    if (kt_devices_parse_list(200, body, strlen(body), -1, l, &err) != 0)
        fail_msg("%s: %s", body, err.message);
}

static void expect_list_kind(long status, const char *body, long retry_after, kt_err_kind kind)
{
    kt_device_list l;
    kt_error err = {0};
    int rc = kt_devices_parse_list(status, body, strlen(body), retry_after, &l, &err);

    if (rc != -1 || err.kind != kind)
        fail_msg("HTTP %ld %s: got %s (%s), want %s", status, body, kt_err_kind_name(err.kind),
                 err.message, kt_err_kind_name(kind));
    assert_null(l.devices);
    assert_int_equal(l.count, 0);
}

/* -- answers ------------------------------------------------------------------------------------
 */

static void test_list_answer(void **state)
{
    kt_device_list l;

    (void)state;
    parse_list_ok("{\"data\":{\"listBoundDevices\":[{\"id\":\"" DEV_A "\",\"name\":\"box\"},"
                  "{\"id\":\"" DEV_B "\",\"name\":\"\\u001b[2J\\u00e4\",\"extra\":1}]}}",
                  &l);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.devices[0].id, DEV_A);
    assert_string_equal(l.devices[0].name, "box");
    assert_string_equal(l.devices[1].id, DEV_B);
    /* The name is kept as sent; showing it safely is the front end's business. */
    assert_string_equal(l.devices[1].name, "\x1b[2J\xc3\xa4");
    assert_false(l.devices[0].this_machine || l.devices[1].this_machine);
    assert_null(l.username);
    kt_device_list_free(&l);
    assert_null(l.devices);

    parse_list_ok("{\"data\":{\"listBoundDevices\":[]}}", &l);
    assert_int_equal(l.count, 0);
    assert_null(l.devices);
    kt_device_list_free(&l);
}

static void test_list_broken_answers(void **state)
{
    static const char *const broken[] = {
        "{\"data\":{\"listBoundDevices\":null}}",
        "{\"data\":{\"listBoundDevices\":{}}}",
        "{\"data\":{\"listBoundDevices\":[1]}}",
        "{\"data\":{\"listBoundDevices\":[{\"name\":\"x\"}]}}",
        "{\"data\":{\"listBoundDevices\":[{\"id\":\"../x\",\"name\":\"x\"}]}}",
        "{\"data\":{\"listBoundDevices\":[{\"id\":\"a b\",\"name\":\"x\"}]}}",
        "{\"data\":{\"listBoundDevices\":[{\"id\":\"" DEV_A "\"}]}}",
        "{\"data\":{\"listBoundDevices\":[{\"id\":\"" DEV_A "\",\"name\":7}]}}",
        "{\"data\":{\"listBoundDevices\":[{\"id\":\"" DEV_A "\",\"name\":null}]}}",
        "{\"data\":{\"listBoundDevices\":[{\"id\":\"" DEV_A "\",\"name\":\"x\"},2]}}",
        "{\"data\":{}}",
        "{\"data\":null}",
        "{}",
        "[]",
        "not json",
        "",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++)
        expect_list_kind(200, broken[i], -1, KT_ERR_PROTOCOL);
}

static void test_list_too_long(void **state)
{
    size_t size = 64 + (KT_DEVICES_MAX + 1) * 32;
    char *body = malloc(size), *p;

    (void)state;
    assert_non_null(body);
    p = body + sprintf(body, "{\"data\":{\"listBoundDevices\":[");
    for (int i = 0; i <= KT_DEVICES_MAX; i++)
        p += sprintf(p, "%s{\"id\":\"d%d\",\"name\":\"n\"}", i > 0 ? "," : "", i);
    sprintf(p, "]}}");
    expect_list_kind(200, body, -1, KT_ERR_PROTOCOL);
    free(body);
}

/* The bank's errors, whatever their status: with their messages, by what they mean. */
static void test_list_errors(void **state)
{
    kt_device_list l;
    kt_error err = {0};
    const char *refused = "{\"data\":null,\"errors\":[{\"message\":\"not for you\",\"extensions\":"
                          "{\"code\":\"FORBIDDEN\"}},{\"message\":\"second\"}]}";
    const char *unauth = "{\"errors\":[{\"message\":\"token revoked\",\"extensions\":"
                         "{\"code\":\"UNAUTHENTICATED\"}}],\"data\":null}";

    (void)state;
    assert_int_equal(kt_devices_parse_list(200, refused, strlen(refused), -1, &l, &err), -1);
    assert_int_equal(err.kind, KT_ERR_MFA_FAILED);
    assert_msg_has(&err, "not for you");
    assert_msg_has(&err, "second");
    kt_error_clear(&err);
    assert_int_equal(kt_devices_parse_list(200, unauth, strlen(unauth), -1, &l, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);
    assert_msg_has(&err, "token revoked");
    expect_list_kind(401, "{\"error\":\"invalid_token\"}", -1, KT_ERR_LOGIN_REQUIRED);
    expect_list_kind(400, refused, -1, KT_ERR_MFA_FAILED);
    expect_list_kind(503, "<html>down</html>", -1, KT_ERR_UNAVAILABLE);
    kt_error_clear(&err);
    assert_int_equal(kt_devices_parse_list(429, "{}", 2, 7, &l, &err), -1);
    assert_int_equal(err.kind, KT_ERR_RATE_LIMITED);
    assert_int_equal(kt_error_retry_after(&err), 7);
}

static void test_delete_answer(void **state)
{
    static const struct {
        long status;
        const char *body;
        kt_err_kind kind;
    } cases[] = {
        {200, "{\"data\":{\"deleteBoundDevice\":true}}", KT_OK},
        {200, "{\"data\":{\"deleteBoundDevice\":false}}", KT_ERR_MFA_FAILED},
        {200, "{\"data\":{\"deleteBoundDevice\":\"true\"}}", KT_ERR_PROTOCOL},
        {200, "{\"data\":{\"deleteBoundDevice\":1}}", KT_ERR_PROTOCOL},
        {200, "{\"data\":{\"deleteBoundDevice\":null}}", KT_ERR_PROTOCOL},
        {200, "{\"data\":{}}", KT_ERR_PROTOCOL},
        {200,
         "{\"data\":null,\"errors\":[{\"message\":\"Device not found\",\"extensions\":"
         "{\"code\":\"NOT_FOUND\"}}]}",
         KT_ERR_MFA_FAILED},
        {200, "{\"errors\":[{\"message\":\"x\",\"extensions\":{\"code\":\"UNAUTHENTICATED\"}}]}",
         KT_ERR_LOGIN_REQUIRED},
        {200, "{\"errors\":{}}", KT_ERR_PROTOCOL},
        {429, "{}", KT_ERR_RATE_LIMITED},
        {500, "{}", KT_ERR_UNAVAILABLE},
        {403, "{\"message\":\"no\"}", KT_ERR_MFA_FAILED},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kt_error err = {0};
        int rc = kt_devices_parse_delete(cases[i].status, cases[i].body, strlen(cases[i].body), -1,
                                         DEV_A, &err);

        if ((cases[i].kind == KT_OK) != (rc == 0) || err.kind != cases[i].kind)
            fail_msg("HTTP %ld %s: got %s (%s)", cases[i].status, cases[i].body,
                     kt_err_kind_name(err.kind), err.message);
    }
}

/* -- which key files go -------------------------------------------------------------------------
 */

static void test_key_is_ours(void **state)
{
    char dir[] = "/home/u/.config/kontist";
    kt_paths p = {.config_dir = dir};

    (void)state;
    assert_true(kt_devices_key_is_ours(&p, "/home/u/.config/kontist/device-key.pem"));
    assert_true(kt_devices_key_is_ours(&p, "/home/u/.config/kontist/device-key-1700000000.pem"));
    assert_true(kt_devices_key_is_ours(&p, "tpm2:/home/u/.config/kontist/device-key.tss2"));
    assert_true(kt_devices_key_is_ours(&p, "tpm2:/home/u/.config/kontist/device-key-17.tss2"));
    /* what the person chose, or what lives elsewhere, stays */
    assert_false(kt_devices_key_is_ours(&p, "/home/u/keys/device-key.pem"));
    assert_false(kt_devices_key_is_ours(&p, "/home/u/.config/kontist/my.pem"));
    assert_false(kt_devices_key_is_ours(&p, "/home/u/.config/kontist/sub/device-key.pem"));
    assert_false(kt_devices_key_is_ours(&p, "/home/u/.config/kontistX/device-key.pem"));
    assert_false(kt_devices_key_is_ours(&p, "/home/u/.config/kontist/device-key.tss2"));
    assert_false(kt_devices_key_is_ours(&p, "tpm2:/home/u/.config/kontist/device-key.pem"));
    assert_false(kt_devices_key_is_ours(&p, "/home/u/.config/kontist/device-key"));
    assert_false(kt_devices_key_is_ours(&p, "file:/home/u/.config/kontist/device-key.pem"));
    assert_false(kt_devices_key_is_ours(&p, "pkcs11:token=t;object=device-key.pem"));
    assert_false(kt_devices_key_is_ours(&p, "handle:0x81000001"));
    assert_false(kt_devices_key_is_ours(&p, NULL));
    assert_false(kt_devices_key_is_ours(NULL, "/home/u/.config/kontist/device-key.pem"));
}

/* -- forgetting a device's tokens -----------------------------------------------------------------
 */

static void test_forget_device_tokens(void **state)
{
    cache_fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};
    char names[512];
    bool removed = true;

    /* No state directory: nothing to do, and no directory made. */
    assert_int_equal(kt_session_forget_device(&f->paths, DEV_A, &removed, &err), 0);
    assert_false(removed);
    assert_int_equal(access(f->state_dir, F_OK), -1);

    /* A cache another device confirmed stays, byte for byte. */
    store_sample(f, &t, time(NULL) + 3600); /* device 3f1c0a2e-device */
    assert_int_equal(kt_session_forget_device(&f->paths, DEV_A, &removed, &err), 0);
    assert_false(removed);
    assert_int_equal(access(f->cache_file, F_OK), 0);

    /* The set's device: the cache and a crash's copy of it go, under the lock. */
    leave_stale_temp(f, ".tokens.json.tmp-Zz99Yy");
    if (kt_session_forget_device(&f->paths, t.device_id, &removed, &err) != 0)
        fail_msg("forget: %s", err.message);
    assert_true(removed);
    list_dir(f->state_dir, names, sizeof(names));
    assert_string_equal(names, "tokens.lock\n");
    kt_token_set_free(&t);

    /* A set whose access token the device confirmed, whatever device the set names. */
    sample_set(&t, time(NULL) + 3600);
    free(t.access_token);
    t.access_token = kt_test_jwt("{\"sub\":\"1\",\"cnf\":{\"kid\":\"" DEV_B "\"}}");
    free(t.device_id);
    t.device_id = NULL;
    if (kt_cache_store(&f->paths, &t, &err) != 0)
        fail_msg("store: %s", err.message);
    assert_int_equal(kt_session_forget_device(&f->paths, DEV_A, &removed, &err), 0);
    assert_false(removed);
    assert_int_equal(kt_session_forget_device(&f->paths, DEV_B, &removed, &err), 0);
    assert_true(removed);
    assert_int_equal(access(f->cache_file, F_OK), -1);
    kt_token_set_free(&t);

    /* A corrupt cache is not this function's to judge: it stays. */
    assert_int_equal(kt_file_write_atomic(f->cache_file, "{", 1, 0600, &err), 0);
    assert_int_equal(kt_session_forget_device(&f->paths, DEV_A, &removed, &err), 0);
    assert_false(removed);
    assert_int_equal(access(f->cache_file, F_OK), 0);
    assert_int_equal(err.kind, KT_OK);
}

/* -- against the mock ----------------------------------------------------------------------------
 */

typedef struct fixture {
    kt_mock mock;
    kt_config cfg;
    kt_ctx *ctx;
    test_dir dir;
    char config_dir[600], state_dir[600], record[700], key_file[700], cache[700], lock[700];
    kt_paths paths;
    kt_owner_policy owners;
    char *device_id; /* this machine's, enrolled at the mock */
    int asked;
    int answer;
} fixture;

static int on_prompt(void *data, const char *message, bool echo, char **answer)
{
    fixture *f = data;

    (void)message;
    (void)echo;
    *answer = kt_mock_last_otp(&f->mock);
    return *answer != NULL ? 0 : -1;
}

static void on_info(void *data, const char *message)
{
    (void)data;
    (void)message;
}

/* Enrolls this machine at the mock (binding requests confirmed at once), logs in with the device
 * and keeps the confirmed set, the record and the key where kontist-auth would. */
static int enroll_here(fixture *f, kt_error *err)
{
    kt_token_set t;
    kt_binding b;
    EVP_PKEY *key = kt_key_generate(err);
    kt_device_record rec = {0};
    char name[] = "unit box";
    kt_login_params p = {.username = KT_DEMO_USER, .password = KT_DEMO_PASSWORD};
    int rc = -1;

    memset(&t, 0, sizeof(t));
    memset(&b, 0, sizeof(b));
    if (key == NULL || kt_oauth_password_grant(f->ctx, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, err) ||
        kt_flow_bind(f->ctx, t.access_token, "unit box", 30, &b, err) != 0 ||
        kt_flow_enroll(f->ctx, t.access_token, "unit box", key, &b, &f->device_id, err) != 0)
        goto out;
    kt_token_set_free(&t);
    p.device_id = f->device_id;
    p.key = key;
    if (kt_flow_login(f->ctx, &p, &t, err) != 0 || kt_dir_ensure_private(f->config_dir, err) != 0 ||
        kt_key_save_pem(key, f->key_file, err) != 0)
        goto out;
    rec.username = strdup(KT_DEMO_USER);
    rec.device_id = f->device_id;
    rec.key_ref = f->key_file;
    rec.name = name;
    if (kt_record_save(f->record, &rec, err) != 0 ||
        kt_session_save_login(f->ctx, &f->paths, &t, err) != 0)
        goto out;
    rc = 0;
out:
    free(rec.username);
    kt_token_set_free(&t);
    kt_binding_free(&b);
    EVP_PKEY_free(key);
    return rc;
}

static int mock_up(void **state)
{
    const char *const args[] = {"--binding-requests", "auto", NULL};
    fixture *f = calloc(1, sizeof(*f));
    kt_conv conv = {.prompt = on_prompt, .info = on_info, .data = f};
    kt_error err = {0};

    if (f == NULL || test_dir_create(&f->dir, "devices") != 0 ||
        kt_mock_start(&f->mock, args) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    test_path(&f->dir, "config/kontist", f->config_dir, sizeof(f->config_dir));
    test_path(&f->dir, "state/kontist", f->state_dir, sizeof(f->state_dir));
    snprintf(f->record, sizeof(f->record), "%s/device.json", f->config_dir);
    snprintf(f->key_file, sizeof(f->key_file), "%s/device-key.pem", f->config_dir);
    snprintf(f->cache, sizeof(f->cache), "%s/tokens.json", f->state_dir);
    snprintf(f->lock, sizeof(f->lock), "%s/tokens.lock", f->state_dir);
    f->paths = (kt_paths){.config_dir = f->config_dir,
                          .state_dir = f->state_dir,
                          .record_file = f->record,
                          .key_file = f->key_file,
                          .cache_file = f->cache,
                          .lock_file = f->lock};
    f->owners = (kt_owner_policy){.allow_root = false, .allow_uid = true, .uid = geteuid()};
    kt_test_config(&f->cfg, &f->mock);
    f->ctx = kt_ctx_new(&f->cfg, &conv, &err);
    if (f->ctx == NULL || enroll_here(f, &err) != 0) {
        fprintf(stderr, "set-up: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int mock_down(void **state)
{
    fixture *f = *state;

    if (f != NULL) {
        kt_ctx_free(f->ctx);
        kt_test_config_free(&f->cfg);
        kt_mock_stop(&f->mock);
        test_dir_remove(&f->dir);
        free(f->device_id);
        free(f);
    }
    return 0;
}

static int confirm(void *data, const kt_bound_device *device, kt_error *err)
{
    fixture *f = data;

    (void)err;
    assert_non_null(device->id);
    f->asked++;
    return f->answer;
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static void test_mock_list_marks_this_machine(void **state)
{
    fixture *f = *state;
    kt_device_list l;
    kt_error err = {0};
    char off[800];

    if (kt_devices_list(f->ctx, &f->paths, &f->owners, &l, &err) != 0)
        fail_msg("list: %s", err.message);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.devices[0].id, f->device_id);
    assert_string_equal(l.devices[0].name, "unit box");
    assert_true(l.devices[0].this_machine);
    assert_string_equal(l.username, KT_DEMO_USER);
    kt_device_list_free(&l);

    /* Without the record nothing is this machine's. */
    snprintf(off, sizeof(off), "%s.off", f->record);
    assert_int_equal(rename(f->record, off), 0);
    if (kt_devices_list(f->ctx, &f->paths, &f->owners, &l, &err) != 0)
        fail_msg("list: %s", err.message);
    assert_false(l.devices[0].this_machine);
    kt_device_list_free(&l);
}

static void test_mock_remove_unknown_or_declined_changes_nothing(void **state)
{
    fixture *f = *state;
    kt_device_removal_request req = {&f->paths, &f->owners, "no-such-device", confirm, f};
    kt_device_removal r;
    kt_error err = {0};

    f->answer = 1;
    expect_kind(kt_devices_remove(f->ctx, &req, &r, &err), &err, KT_ERR_BAD_REQUEST);
    assert_msg_has(&err, "lists no device no-such-device");
    assert_false(r.removed);
    assert_int_equal(f->asked, 0);
    kt_device_removal_free(&r);

    /* A malformed id never reaches the bank. */
    req.device_id = "../../x";
    kt_error_clear(&err);
    expect_kind(kt_devices_remove(f->ctx, &req, &r, &err), &err, KT_ERR_BAD_REQUEST);
    kt_device_removal_free(&r);

    /* The person says no. */
    req.device_id = NULL;
    f->answer = 0;
    kt_error_clear(&err);
    expect_kind(kt_devices_remove(f->ctx, &req, &r, &err), &err, KT_ERR_CONV);
    assert_int_equal(f->asked, 1);
    assert_false(r.removed);
    kt_device_removal_free(&r);
    assert_int_equal(kt_mock_devices(&f->mock), 1);
    assert_true(exists(f->record) && exists(f->key_file) && exists(f->cache));
}

static void test_mock_bank_failure_keeps_everything(void **state)
{
    fixture *f = *state;
    kt_device_removal_request req = {&f->paths, &f->owners, NULL, NULL, NULL};
    kt_device_removal r;
    kt_error err = {0};

    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"graphql\",\"operation\":"
                                             "\"deleteBoundDevice\",\"kind\":\"status\","
                                             "\"status\":503}"),
                     0);
    expect_kind(kt_devices_remove(f->ctx, &req, &r, &err), &err, KT_ERR_UNAVAILABLE);
    assert_false(r.removed);
    assert_int_equal(r.tokens, KT_LOCAL_NONE);
    assert_int_equal(r.record, KT_LOCAL_NONE);
    assert_int_equal(r.key, KT_LOCAL_NONE);
    kt_device_removal_free(&r);
    assert_int_equal(kt_mock_devices(&f->mock), 1);
    assert_true(exists(f->record) && exists(f->key_file) && exists(f->cache));
}

static void test_mock_remove_this_machine(void **state)
{
    fixture *f = *state;
    kt_device_removal_request req = {&f->paths, &f->owners, NULL, confirm, f};
    kt_device_removal r;
    kt_error err = {0};
    char names[512];

    f->answer = 1;
    if (kt_devices_remove(f->ctx, &req, &r, &err) != 0)
        fail_msg("remove: %s", err.message);
    assert_int_equal(f->asked, 1);
    assert_true(r.removed);
    assert_true(r.device.this_machine);
    assert_string_equal(r.device.id, f->device_id);
    assert_int_equal(r.tokens, KT_LOCAL_REMOVED);
    assert_int_equal(r.record, KT_LOCAL_REMOVED);
    assert_int_equal(r.key, KT_LOCAL_REMOVED);
    assert_string_equal(r.key_ref, f->key_file);
    assert_string_equal(r.key_kind, "file");
    assert_null(r.local_error);
    kt_device_removal_free(&r);
    assert_int_equal(kt_mock_devices(&f->mock), 0);
    list_dir(f->config_dir, names, sizeof(names));
    assert_string_equal(names, "");
    list_dir(f->state_dir, names, sizeof(names));
    assert_string_equal(names, "tokens.lock\n");
}

static void test_mock_local_failure_is_reported(void **state)
{
    fixture *f = *state;
    kt_device_removal_request req = {&f->paths, &f->owners, NULL, NULL, NULL};
    kt_device_removal r;
    kt_error err = {0};
    char inner[800];

    /* A key that cannot be unlinked: a directory with something in it. */
    assert_int_equal(unlink(f->key_file), 0);
    assert_int_equal(mkdir(f->key_file, 0700), 0);
    snprintf(inner, sizeof(inner), "%s/x", f->key_file);
    assert_int_equal(kt_file_write_atomic(inner, "x", 1, 0600, &err), 0);
    expect_kind(kt_devices_remove(f->ctx, &req, &r, &err), &err, KT_ERR_IO);
    assert_msg_has(&err, "was removed at the bank, but not everything here");
    assert_true(r.removed);
    assert_int_equal(r.tokens, KT_LOCAL_REMOVED);
    assert_int_equal(r.record, KT_LOCAL_REMOVED);
    assert_int_equal(r.key, KT_LOCAL_FAILED);
    assert_non_null(r.local_error);
    kt_device_removal_free(&r);
    assert_int_equal(kt_mock_devices(&f->mock), 0);
    assert_false(exists(f->record) || exists(f->cache));
    assert_int_equal(unlink(inner), 0);
    assert_int_equal(rmdir(f->key_file), 0);
}

static void test_mock_delete_by_id(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};

    if (kt_session_get_valid(f->ctx, &f->paths, &f->owners, &t, &err) != 0)
        fail_msg("session: %s", err.message);
    expect_kind(kt_devices_delete(f->ctx, t.access_token, "a/b", &err), &err, KT_ERR_INTERNAL);
    kt_error_clear(&err);
    if (kt_devices_delete(f->ctx, t.access_token, f->device_id, &err) != 0)
        fail_msg("delete: %s", err.message);
    assert_int_equal(kt_mock_devices(&f->mock), 0);
    /* Gone: the bank's own words say so. */
    expect_kind(kt_devices_delete(f->ctx, t.access_token, f->device_id, &err), &err,
                KT_ERR_MFA_FAILED);
    assert_msg_has(&err, "Device not found");
    kt_token_set_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_answer),
        cmocka_unit_test(test_list_broken_answers),
        cmocka_unit_test(test_list_too_long),
        cmocka_unit_test(test_list_errors),
        cmocka_unit_test(test_delete_answer),
        cmocka_unit_test(test_key_is_ours),
        cmocka_unit_test_setup_teardown(test_forget_device_tokens, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(test_mock_list_marks_this_machine, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_mock_remove_unknown_or_declined_changes_nothing,
                                        mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_mock_bank_failure_keeps_everything, mock_up,
                                        mock_down),
        cmocka_unit_test_setup_teardown(test_mock_remove_this_machine, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_mock_local_failure_is_reported, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_mock_delete_by_id, mock_up, mock_down),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    kt_mock_cleanup_shared();
    return rc;
}
