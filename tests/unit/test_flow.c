/* kt_flow: login, confirm, refresh and enroll against the mock API. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "kt_device.h"
#include "kt_flow.h"
#include "kt_keys.h"
#include "kt_mock.h"
#include "kt_oauth.h"
#include "kt_session.h"

typedef struct fixture {
    kt_mock mock;
    kt_config cfg;
    kt_ctx *ctx;
    EVP_PKEY *key;
    /* conversation */
    char prompt[128];
    bool echo;
    int prompts;
    enum { ANSWER_OTP, ANSWER_PADDED_OTP, ANSWER_WRONG_OTP, ANSWER_FIXED, ANSWER_NONE } mode;
    const char *answer; /* with ANSWER_FIXED */
} fixture;

/* Plays the person reading the SMS: the OTP comes from the mock's sms.jsonl. */
static int sms_prompt(void *data, const char *message, bool echo, char **answer)
{
    fixture *f = data;
    char *otp;

    snprintf(f->prompt, sizeof(f->prompt), "%s", message);
    f->echo = echo;
    f->prompts++;
    if (f->mode == ANSWER_NONE)
        return -1;
    if (f->mode == ANSWER_FIXED) {
        *answer = strdup(f->answer);
        return 0;
    }
    otp = kt_mock_last_otp(&f->mock);
    if (otp == NULL)
        return -1;
    if (f->mode == ANSWER_WRONG_OTP) {
        otp[0] = otp[0] == '9' ? '0' : (char)(otp[0] + 1);
    } else if (f->mode == ANSWER_PADDED_OTP) {
        char *padded = malloc(strlen(otp) + 5);
        sprintf(padded, "  %s \n", otp);
        free(otp);
        otp = padded;
    }
    *answer = otp;
    return 0;
}

static kt_ctx *new_ctx(fixture *f)
{
    kt_conv conv = {.prompt = sms_prompt, .data = f};
    kt_error err = {0};
    kt_ctx *ctx = kt_ctx_new(&f->cfg, &conv, &err);

    assert_non_null(ctx);
    return ctx;
}

static int mock_up_args(void **state, const char *const *args)
{
    fixture *f = calloc(1, sizeof(*f));
    kt_error err = {0};

    if (f == NULL || kt_mock_start(&f->mock, args) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    kt_test_config(&f->cfg, &f->mock);
    f->key = kt_key_generate(&err);
    if (f->key == NULL)
        return -1;
    f->ctx = new_ctx(f);
    return 0;
}

/* Enrollment is tested here from the device on: the bank confirms every binding request at once
 * (test_binding waits for the person). */
static int mock_up(void **state)
{
    const char *const args[] = {"--binding-requests", "auto", NULL};
    return mock_up_args(state, args);
}

static int mock_up_rotating(void **state)
{
    const char *const args[] = {"--rotate-refresh", "--binding-requests", "auto", NULL};
    return mock_up_args(state, args);
}

static int mock_down(void **state)
{
    fixture *f = *state;

    if (f != NULL) {
        EVP_PKEY_free(f->key);
        kt_ctx_free(f->ctx);
        kt_mock_stop(&f->mock);
        kt_test_config_free(&f->cfg);
        free(f);
    }
    return 0;
}

static char *password_token(fixture *f)
{
    kt_token_set t;
    kt_error err = {0};
    char *access;

    assert_int_equal(kt_oauth_password_grant(f->ctx, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), 0);
    access = strdup(t.access_token);
    kt_token_set_free(&t);
    return access;
}

/* A device binding request, confirmed at once (the mock runs with --binding-requests auto). */
static void bind(fixture *f, const char *access, kt_binding *b)
{
    kt_error err = {0};

    if (kt_flow_bind(f->ctx, access, "unit test box", 10, b, &err) != 0)
        fail_msg("bind: %s (%s)", kt_err_kind_name(err.kind), err.message);
}

/* Enrolls f->key through the flow; returns the device id. */
static char *enroll(fixture *f)
{
    kt_error err = {0};
    kt_binding b;
    char *access = password_token(f), *dev = NULL;

    bind(f, access, &b);
    if (kt_flow_enroll(f->ctx, access, "unit test box", f->key, &b, &dev, &err) != 0)
        fail_msg("enroll: %s (%s)", kt_err_kind_name(err.kind), err.message);
    kt_binding_free(&b);
    free(access);
    return dev;
}

static int login(fixture *f, const char *password, const char *dev, EVP_PKEY *key,
                 kt_token_set *out, kt_error *err)
{
    kt_login_params p = {
        .username = KT_DEMO_USER, .password = password, .device_id = dev, .key = key};

    kt_error_clear(err);
    return kt_flow_login(f->ctx, &p, out, err);
}

static void test_enroll_then_login(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;
    char *dev = enroll(f);
    int requests = 0, conns = 0, before = 0;

    assert_true(kt_device_id_ok(dev));
    assert_int_equal(f->prompts, 1);
    /* The prompt says how much of the 3 minutes after the confirmation is left. */
    assert_memory_equal(f->prompt, "SMS code (2:5", 13);
    assert_string_equal(f->prompt + strlen(f->prompt) - 8, " left): ");
    assert_true(f->echo);

    /* A fresh context: the whole login (grant, challenge, verify) over one connection. */
    kt_ctx_free(f->ctx);
    f->ctx = new_ctx(f);
    assert_int_equal(kt_mock_requests(&f->mock, &before, &conns), 0);
    assert_int_equal(login(f, KT_DEMO_PASSWORD, dev, f->key, &t, &err), 0);
    assert_true(t.confirmed);
    assert_non_null(t.access_token);
    assert_non_null(t.refresh_token);
    assert_string_equal(t.username, KT_DEMO_USER);
    assert_string_equal(t.device_id, dev);
    assert_string_equal(t.scope, "accounts offline users");
    assert_true(t.expires_at > time(NULL) + 3000);
    assert_int_equal(kt_http_connections(f->ctx->http), 1);
    assert_int_equal(kt_mock_requests(&f->mock, &requests, &conns), 0);
    assert_int_equal(requests - before, 3);
    kt_token_set_free(&t);
    free(dev);
}

static void test_login_without_device(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;

    assert_int_equal(login(f, KT_DEMO_PASSWORD, NULL, NULL, &t, &err), 0);
    assert_false(t.confirmed);
    assert_string_equal(t.username, KT_DEMO_USER);
    assert_null(t.device_id);
    assert_non_null(t.refresh_token);
    kt_token_set_free(&t);
}

static void test_login_wrong_password(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;
    char *dev = enroll(f);

    expect_kind(login(f, "wrong-password", dev, f->key, &t, &err), &err, KT_ERR_BAD_CREDENTIALS);
    assert_null(t.access_token);
    assert_null(t.username);
    free(dev);
}

static void test_login_wrong_key(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};
    char *dev = enroll(f);
    EVP_PKEY *other = kt_key_generate(&err);

    assert_non_null(other);
    expect_kind(login(f, KT_DEMO_PASSWORD, dev, other, &t, &err), &err, KT_ERR_MFA_FAILED);
    assert_null(t.access_token);
    assert_null(t.refresh_token);
    /* No key at all is a local problem, not a rejected MFA. */
    expect_kind(login(f, KT_DEMO_PASSWORD, dev, NULL, &t, &err), &err, KT_ERR_KEY_UNUSABLE);
    EVP_PKEY_free(other);
    free(dev);
}

static void test_login_unknown_device(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;

    expect_kind(
        login(f, KT_DEMO_PASSWORD, "5d0c7d36-0000-4000-8000-000000000000", f->key, &t, &err), &err,
        KT_ERR_NOT_ENROLLED);
    expect_kind(login(f, KT_DEMO_PASSWORD, "../evil", f->key, &t, &err), &err, KT_ERR_PROTOCOL);
}

static void test_login_outage_during_mfa(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;
    char *dev = enroll(f);

    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"challenge_verify\",\"kind\":"
                                             "\"status\",\"status\":503,\"count\":1}"),
                     0);
    expect_kind(login(f, KT_DEMO_PASSWORD, dev, f->key, &t, &err), &err, KT_ERR_UNAVAILABLE);
    assert_int_equal(login(f, KT_DEMO_PASSWORD, dev, f->key, &t, &err), 0);
    kt_token_set_free(&t);
    free(dev);
}

static void test_login_deadline(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;
    char *dev = enroll(f);
    uint64_t t0;

    f->cfg.login_timeout = 1;
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"challenge_create\",\"kind\":"
                                             "\"delay\",\"seconds\":6,\"count\":1}"),
                     0);
    t0 = kt_now_ms();
    expect_kind(login(f, KT_DEMO_PASSWORD, dev, f->key, &t, &err), &err, KT_ERR_UNAVAILABLE);
    /* Cut at the 1 s deadline: a flow that waited for the delayed answer would take 6 s. */
    assert_true(kt_now_ms() - t0 < 5500);
    assert_non_null(strstr(err.message, "deadline"));
    free(dev);
}

static void check_refresh(fixture *f, bool rotating)
{
    kt_token_set a, b, c;
    kt_error err;
    char *dev = enroll(f);

    assert_int_equal(login(f, KT_DEMO_PASSWORD, dev, f->key, &a, &err), 0);
    kt_error_clear(&err);
    assert_int_equal(kt_flow_refresh(f->ctx, a.refresh_token, &b, &err), 0);
    /* The flow gives what the bank answered; the session carries the rest over. */
    assert_null(b.username);
    if (!rotating)
        assert_null(b.refresh_token);
    assert_int_equal(kt_session_carry_over(&b, &a, NULL, &err), 0);
    /* The confirmed refresh token renews confirmed access tokens. */
    assert_true(b.confirmed);
    assert_string_not_equal(b.access_token, a.access_token);
    assert_string_equal(b.username, KT_DEMO_USER);
    assert_string_equal(b.device_id, dev);
    assert_string_equal(b.scope, "accounts offline users");
    assert_non_null(b.refresh_token);
    if (rotating) {
        assert_string_not_equal(b.refresh_token, a.refresh_token);
        kt_error_clear(&err);
        expect_kind(kt_flow_refresh(f->ctx, a.refresh_token, &c, &err), &err,
                    KT_ERR_LOGIN_REQUIRED);
    } else {
        assert_string_equal(b.refresh_token, a.refresh_token);
    }
    /* The newest set refreshes again. */
    kt_error_clear(&err);
    assert_int_equal(kt_flow_refresh(f->ctx, b.refresh_token, &c, &err), 0);
    kt_token_set_free(&c);
    kt_token_set_free(&b);
    kt_token_set_free(&a);
    free(dev);
}

static void test_refresh_keeps(void **state)
{
    check_refresh(*state, false);
}

static void test_refresh_rotates(void **state)
{
    check_refresh(*state, true);
}

static void test_refresh_without_token(void **state)
{
    fixture *f = *state;
    kt_token_set out;
    kt_error err = {0};
    int requests = -1, conns = 0;

    expect_kind(kt_flow_refresh(f->ctx, NULL, &out, &err), &err, KT_ERR_LOGIN_REQUIRED);
    assert_int_equal(kt_mock_requests(&f->mock, &requests, &conns), 0);
    assert_int_equal(requests, 0);
}

static void test_enroll_bad_otp(void **state)
{
    fixture *f = *state;
    const char *bad[] = {"12a456", "",
                         "123",    "1234567890123",
                         "12 34",  "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94"};
    kt_error err;
    kt_binding b;
    char *access = password_token(f), *dev = NULL;
    int before = 0, after = 0, conns = 0;
    size_t i;

    f->mode = ANSWER_FIXED;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f->answer = bad[i];
        kt_error_clear(&err);
        bind(f, access, &b);
        assert_int_equal(kt_mock_requests(&f->mock, &before, &conns), 0);
        expect_kind(kt_flow_enroll(f->ctx, access, "box", f->key, &b, &dev, &err), &err,
                    KT_ERR_MFA_FAILED);
        assert_null(dev);
        /* Refused locally: only the device creation reached the server. */
        assert_int_equal(kt_mock_requests(&f->mock, &after, &conns), 0);
        assert_int_equal(after - before, 1);
        kt_binding_free(&b);
    }
    /* Digits, but not the OTP the server sent. */
    f->mode = ANSWER_WRONG_OTP;
    kt_error_clear(&err);
    bind(f, access, &b);
    expect_kind(kt_flow_enroll(f->ctx, access, "box", f->key, &b, &dev, &err), &err,
                KT_ERR_MFA_FAILED);
    assert_null(dev);
    kt_binding_free(&b);
    free(access);
}

static void test_enroll_padded_otp(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};
    kt_binding b;
    char *access = password_token(f), *dev = NULL;

    f->mode = ANSWER_PADDED_OTP;
    bind(f, access, &b);
    assert_int_equal(kt_flow_enroll(f->ctx, access, "box", f->key, &b, &dev, &err), 0);
    kt_binding_free(&b);
    assert_true(kt_device_id_ok(dev));
    /* And the device really is bound. */
    assert_int_equal(login(f, KT_DEMO_PASSWORD, dev, f->key, &t, &err), 0);
    assert_true(t.confirmed);
    kt_token_set_free(&t);
    free(dev);
    free(access);
}

static void test_enroll_no_answer(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_binding b;
    char *access = password_token(f), *dev = NULL;
    int requests = 0, conns = 0;

    f->mode = ANSWER_NONE;
    bind(f, access, &b);
    expect_kind(kt_flow_enroll(f->ctx, access, "box", f->key, &b, &dev, &err), &err, KT_ERR_CONV);
    assert_null(dev);
    kt_binding_free(&b);
    /* token + binding request + create device; nothing was verified */
    assert_int_equal(kt_mock_requests(&f->mock, &requests, &conns), 0);
    assert_int_equal(requests, 3);
    kt_error_clear(&err);
    expect_kind(kt_flow_enroll(f->ctx, access, "box", NULL, NULL, &dev, &err), &err,
                KT_ERR_KEY_UNUSABLE);
    kt_error_clear(&err);
    expect_kind(kt_flow_enroll(f->ctx, "bogus", "box", f->key, NULL, &dev, &err), &err,
                KT_ERR_LOGIN_REQUIRED);
    free(access);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enroll_then_login, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_login_without_device, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_login_wrong_password, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_login_wrong_key, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_login_unknown_device, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_login_outage_during_mfa, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_login_deadline, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_refresh_keeps, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_refresh_rotates, mock_up_rotating, mock_down),
        cmocka_unit_test_setup_teardown(test_refresh_without_token, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_enroll_bad_otp, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_enroll_padded_otp, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_enroll_no_answer, mock_up, mock_down),
    };
    int rc = cmocka_run_group_tests_name("kt_flow", tests, NULL, NULL);

    kt_mock_cleanup_shared();
    return rc;
}
