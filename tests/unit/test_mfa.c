/* Push MFA: the parsers and status mapping of kt_mfa, the factor order and choice, and the push
 * flow of kt_flow_login against the mock (the person is played through the control endpoint). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "kt_cache.h"
#include "kt_flow.h"
#include "kt_mfa.h"
#include "kt_mock.h"

/* --- parsing ------------------------------------------------------------------------------- */

static void test_iso8601(void **state)
{
    time_t t = 0;

    (void)state;
    assert_int_equal(kt_iso8601_parse("1970-01-01T00:00:00Z", &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(kt_iso8601_parse("2026-01-01T12:00:00.123Z", &t), 0);
    assert_int_equal(t, 1767268800);
    assert_int_equal(kt_iso8601_parse("2026-01-01T13:30:00+01:30", &t), 0);
    assert_int_equal(t, 1767268800);
    assert_int_equal(kt_iso8601_parse("2026-01-01T10:00:00-02:00", &t), 0);
    assert_int_equal(t, 1767268800);
    static const char *const bad[] = {
        "",
        "2026-01-01",
        "2026-01-01T12:00:00",
        "2026-13-01T12:00:00Z",
        "2026-01-32T12:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T12:00:00.Z",
        "2026-01-01T12:00:00.1234567890Z",
        "2026-01-01T12:00:00Zjunk",
        "2026-01-01T12:00:00+0100",
        "1969-12-31T23:59:59Z",
        " 2026-01-01T12:00:00Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (kt_iso8601_parse(bad[i], &t) == 0)
            fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(kt_iso8601_parse(NULL, &t), -1);
}

static int parse(const char *body, kt_push_challenge *c, kt_error *err)
{
    return kt_mfa_parse_challenge(200, "application/json", body, strlen(body), c, err);
}

static void test_parse_challenge(void **state)
{
    kt_push_challenge c;
    kt_error err = {0};

    (void)state;
    assert_int_equal(
        parse("{\"id\":\"c-1\",\"status\":\"PENDING\",\"expiresAt\":\"2026-01-01T12:00:00Z\"}", &c,
              &err),
        0);
    assert_string_equal(c.id, "c-1");
    assert_int_equal(c.state, KT_PUSH_PENDING);
    assert_int_equal(c.expires_at, 1767268800);
    kt_push_challenge_free(&c);
    assert_int_equal(
        parse("{\"id\":\"c\",\"status\":\"VERIFIED\",\"expiresAt\":\"2026-01-01T12:00:00Z\"}", &c,
              &err),
        0);
    assert_int_equal(c.state, KT_PUSH_VERIFIED);
    kt_push_challenge_free(&c);
    assert_int_equal(
        parse("{\"id\":\"c\",\"status\":\"DENIED\",\"expiresAt\":\"2026-01-01T12:00:00Z\"}", &c,
              &err),
        0);
    assert_int_equal(c.state, KT_PUSH_DENIED);
    kt_push_challenge_free(&c);
}

static void expect_challenge_error(const char *body, kt_err_kind kind, const char *fragment)
{
    kt_push_challenge c;
    kt_error err = {0};

    assert_int_equal(parse(body, &c, &err), -1);
    assert_int_equal(err.kind, kind);
    assert_null(c.id);
    if (strstr(err.message, fragment) == NULL)
        fail_msg("'%s' gave '%s', expected '%s'", body, err.message, fragment);
}

static void expect_bad_challenge(const char *body, const char *fragment)
{
    expect_challenge_error(body, KT_ERR_PROTOCOL, fragment);
}

static void test_parse_challenge_bad(void **state)
{
    (void)state;
    /* an id that would change the path of the next request */
    expect_bad_challenge(
        "{\"id\":\"../x\",\"status\":\"PENDING\",\"expiresAt\":\"2026-01-01T12:00:00Z\"}",
        "not a valid id");
    /* an unknown status is no approval, and no outage either: the bank answered on purpose */
    expect_challenge_error(
        "{\"id\":\"c\",\"status\":\"verified\",\"expiresAt\":\"2026-01-01T12:00:00Z\"}",
        KT_ERR_MFA_FAILED, "the challenge is verified, not approved");
    expect_challenge_error(
        "{\"id\":\"c\",\"status\":\"EXPIRED\",\"expiresAt\":\"2026-01-01T12:00:00Z\"}",
        KT_ERR_MFA_FAILED, "the challenge is EXPIRED, not approved");
    expect_bad_challenge("{\"id\":\"c\",\"status\":\"PENDING\",\"expiresAt\":\"soon\"}",
                         "expiresAt");
    expect_bad_challenge("{\"id\":\"c\",\"status\":\"PENDING\"}", "expiresAt");
    expect_bad_challenge("{\"id\":\"c\",\"status\":true,\"expiresAt\":\"2026-01-01T12:00:00Z\"}",
                         "status");
    expect_bad_challenge("[]", "");
    expect_bad_challenge("{\"id\":\"c\"", "");
}

static void expect_status(long status, kt_err_kind kind)
{
    kt_http_response resp = {.status = status, .retry_after = -1};
    kt_error err = {0};

    assert_int_equal(kt_mfa_check_status(KT_MFA_GET, &resp, &err), kind == KT_OK ? 0 : -1);
    assert_int_equal(err.kind, kind);
}

static void test_check_status(void **state)
{
    (void)state;
    expect_status(200, KT_OK);
    expect_status(201, KT_OK);
    expect_status(401, KT_ERR_LOGIN_REQUIRED);
    /* refusals are failed MFA, never an outage a PAM stack would fall back on */
    expect_status(400, KT_ERR_MFA_FAILED);
    expect_status(403, KT_ERR_MFA_FAILED);
    expect_status(404, KT_ERR_MFA_FAILED);
    expect_status(429, KT_ERR_RATE_LIMITED);
    expect_status(503, KT_ERR_UNAVAILABLE);
    expect_status(302, KT_ERR_PROTOCOL);
}

/* --- the factor order and the choice -----------------------------------------------------------
 */

static void test_order_parse(void **state)
{
    kt_mfa_order o;
    kt_error err = {0};
    char buf[32];

    (void)state;
    assert_int_equal(kt_mfa_order_parse("device,push", false, &o, &err), 0);
    assert_int_equal(o.count, 2);
    assert_int_equal(o.factor[0], KT_MFA_DEVICE);
    assert_int_equal(o.factor[1], KT_MFA_PUSH);
    assert_int_equal(kt_mfa_order_parse(" push , device ", false, &o, &err), 0);
    kt_mfa_order_format(&o, buf, sizeof(buf));
    assert_string_equal(buf, "push,device");
    assert_int_equal(kt_mfa_order_parse("none", true, &o, &err), 0);
    assert_int_equal(o.count, 1);
    assert_int_equal(o.factor[0], KT_MFA_NONE);
    static const char *const bad[] = {"",
                                      "none",
                                      "sms",
                                      "device,device",
                                      "push,",
                                      ",push",
                                      "device;push",
                                      "device push",
                                      "Push",
                                      "device,none",
                                      "push,push,device"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kt_error e = {0};

        if (kt_mfa_order_parse(bad[i], false, &o, &e) == 0)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(e.kind, KT_ERR_CONFIG);
    }
    assert_int_equal(kt_mfa_order_parse("none,push", true, &o, &err), -1);
}

static void test_config_key(void **state)
{
    kt_config cfg;
    kt_error err = {0};

    (void)state;
    kt_config_init(&cfg);
    assert_null(cfg.mfa);
    assert_int_equal(kt_config_parse(&cfg, "t", "mfa = push , device\n", 20, &err), 0);
    assert_string_equal(cfg.mfa, "push,device");
    assert_int_equal(kt_config_parse(&cfg, "t", "mfa = none\n", 11, &err), -1);
    assert_non_null(strstr(err.message, "t:1"));
    kt_config_free(&cfg);
}

static kt_mfa_order order_of(const char *text)
{
    kt_mfa_order o;
    kt_error err = {0};

    assert_int_equal(kt_mfa_order_parse(text, true, &o, &err), 0);
    return o;
}

static void test_decide(void **state)
{
    kt_device_selection usable = {.choice = KT_DEVICE_USE}, none = {.choice = KT_DEVICE_NONE};
    kt_error key_err = {KT_ERR_KEY_UNUSABLE, "key gone"}, io_err = {KT_ERR_IO, "unsafe"};
    kt_mfa_order device_push = order_of("device,push"), device = order_of("device");
    kt_mfa_order push_device = order_of("push,device"), nothing = order_of("none");
    kt_mfa_decision d;
    kt_error err = {0};

    (void)state;
    usable.key = EVP_PKEY_new();
    assert_non_null(usable.key);
    assert_int_equal(kt_mfa_decide(&device_push, &usable, 0, NULL, &d, &err), 0);
    assert_int_equal(d.factor, KT_MFA_DEVICE);
    assert_string_equal(d.passed_over, "");
    assert_int_equal(kt_mfa_decide(&push_device, &usable, 0, NULL, &d, &err), 0);
    assert_int_equal(d.factor, KT_MFA_PUSH);
    assert_string_equal(d.passed_over, "");
    assert_int_equal(kt_mfa_decide(&nothing, &usable, 0, NULL, &d, &err), 0);
    assert_int_equal(d.factor, KT_MFA_NONE);
    /* no device here: push, and the reason is said */
    assert_int_equal(kt_mfa_decide(&device_push, &none, 0, NULL, &d, &err), 0);
    assert_int_equal(d.factor, KT_MFA_PUSH);
    assert_non_null(strstr(d.passed_over, "no device is enrolled"));
    /* a key that does not load: push, saying why */
    assert_int_equal(kt_mfa_decide(&device_push, &none, -1, &key_err, &d, &err), 0);
    assert_int_equal(d.factor, KT_MFA_PUSH);
    assert_non_null(strstr(d.passed_over, "key gone"));
    /* an unsafe file is no reason to ask for something else */
    assert_int_equal(kt_mfa_decide(&device_push, &none, -1, &io_err, &d, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    /* device alone: no device is an error, never an unconfirmed login */
    kt_error_clear(&err);
    assert_int_equal(kt_mfa_decide(&device, &none, 0, NULL, &d, &err), -1);
    assert_int_equal(err.kind, KT_ERR_NOT_ENROLLED);
    kt_error_clear(&err);
    assert_int_equal(kt_mfa_decide(&device, &none, -1, &key_err, &d, &err), -1);
    assert_int_equal(err.kind, KT_ERR_KEY_UNUSABLE);
    EVP_PKEY_free(usable.key);
}

/* The cache keeps the factor; an older cache without it reads as the device when it names one. */
static void test_cache_factor(void **state)
{
    char jwt[] = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    kt_token_set t = {0}, back;
    kt_error err = {0};
    char *text;

    (void)state;
    t.access_token = jwt;
    t.expires_at = 2000000000;
    t.confirmed = true;
    t.mfa = KT_MFA_PUSH;
    text = kt_cache_serialize(&t);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"mfa\""));
    assert_non_null(strstr(text, "\"push\""));
    assert_int_equal(kt_cache_parse(text, strlen(text), &back, &err), 0);
    assert_int_equal(back.mfa, KT_MFA_PUSH);
    kt_token_set_free(&back);
    kt_secret_free(text);
    static const char old_device[] = "{\"version\":1,\"access_token\":\"a.b.c\",\"expires_at\":1,"
                                     "\"confirmed\":true,\"device_id\":\"d1\"}";
    assert_int_equal(kt_cache_parse(old_device, strlen(old_device), &back, &err), 0);
    assert_int_equal(back.mfa, KT_MFA_DEVICE);
    kt_token_set_free(&back);
    static const char old_unknown[] = "{\"version\":1,\"access_token\":\"a.b.c\",\"expires_at\":1,"
                                      "\"confirmed\":true}";
    assert_int_equal(kt_cache_parse(old_unknown, strlen(old_unknown), &back, &err), 0);
    assert_int_equal(back.mfa, KT_MFA_NONE);
    kt_token_set_free(&back);
    static const char bad[] = "{\"version\":1,\"access_token\":\"a.b.c\",\"expires_at\":1,"
                              "\"confirmed\":true,\"mfa\":\"sms\"}";
    assert_int_equal(kt_cache_parse(bad, strlen(bad), &back, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
}

/* --- the push flow against the mock --------------------------------------------------------- */

typedef struct fixture {
    kt_mock mock;
    kt_config cfg;
    kt_ctx *ctx;
    const char *answer; /* what the person does when asked: "VERIFIED", "DENIED" or NULL */
    bool cancel;        /* press Ctrl-C while waiting */
    int instructions;
    long seconds_left;
    char instruction[128];
    int waits;
    bool answered;
    bool done;
} fixture;

static void on_instruct(void *data, const char *instruction, long seconds_left)
{
    fixture *f = data;

    f->instructions++;
    f->seconds_left = seconds_left;
    snprintf(f->instruction, sizeof(f->instruction), "%s", instruction);
}

static void on_waiting(void *data, const char *message, long elapsed_s)
{
    fixture *f = data;

    (void)elapsed_s;
    if (message == NULL) {
        f->done = true;
        return;
    }
    f->waits++;
    if (f->answer != NULL && !f->answered && kt_mock_answer_push(&f->mock, f->answer) == 0)
        f->answered = true;
}

static bool on_cancelled(void *data)
{
    fixture *f = data;

    return f->cancel && f->waits > 0;
}

static int mock_up_with(void **state, const char *const *args, long login_timeout)
{
    fixture *f = calloc(1, sizeof(*f));
    kt_conv_progress progress;
    kt_error err = {0};

    if (f == NULL || kt_mock_start(&f->mock, args) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    kt_test_config(&f->cfg, &f->mock);
    f->cfg.login_timeout = login_timeout;
    f->ctx = kt_ctx_new(&f->cfg, NULL, &err);
    if (f->ctx == NULL)
        return -1;
    progress = (kt_conv_progress){on_waiting, on_cancelled, f, on_instruct};
    kt_ctx_set_progress(f->ctx, &progress);
    return 0;
}

static int mock_up(void **state)
{
    return mock_up_with(state, NULL, 30);
}

static int mock_up_short(void **state)
{
    const char *const args[] = {"--challenge-lifetime", "2", NULL};

    return mock_up_with(state, args, 30);
}

static int mock_down(void **state)
{
    fixture *f = *state;

    if (f != NULL) {
        kt_ctx_free(f->ctx);
        kt_mock_stop(&f->mock);
        kt_test_config_free(&f->cfg);
        free(f);
    }
    return 0;
}

static int push_login(fixture *f, kt_token_set *t, kt_error *err)
{
    kt_login_params p = {.username = KT_DEMO_USER, .password = KT_DEMO_PASSWORD, .push = true};

    return kt_flow_login(f->ctx, &p, t, err);
}

static void test_push_approved(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};

    f->answer = "VERIFIED";
    assert_int_equal(push_login(f, &t, &err), 0);
    assert_true(t.confirmed);
    assert_int_equal(t.mfa, KT_MFA_PUSH);
    assert_null(t.device_id);
    assert_string_equal(t.username, KT_DEMO_USER);
    assert_non_null(t.refresh_token);
    /* told once, before the first wait, with the time left (at most login_timeout) */
    assert_int_equal(f->instructions, 1);
    assert_string_equal(f->instruction, "Confirm the login in the Kontist app");
    assert_true(f->seconds_left > 0 && f->seconds_left <= 30);
    assert_true(f->done);
    kt_token_set_free(&t);
}

static void test_push_denied(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};

    f->answer = "DENIED";
    assert_int_equal(push_login(f, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "denied"));
    assert_null(t.access_token);
}

static void test_push_expired(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};

    assert_int_equal(push_login(f, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_MFA_EXPIRED);
    assert_non_null(strstr(err.message, "expired"));
    assert_true(f->seconds_left <= 2);
    assert_null(t.access_token);
}

static void test_push_login_timeout(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};
    uint64_t start = kt_now_ms();

    f->cfg.login_timeout = 4;
    assert_int_equal(push_login(f, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_MFA_EXPIRED);
    assert_non_null(strstr(err.message, "login timeout"));
    /* the wait ends early enough to fetch a token within the deadline */
    assert_true(kt_now_ms() - start < 4000);
}

static void test_push_cancelled(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};

    f->cancel = true;
    assert_int_equal(push_login(f, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONV);
    assert_string_equal(err.message, "cancelled");
    assert_null(t.access_token);
}

static void test_push_rate_limited_create(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};

    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"mfa_create\",\"kind\":\"status\","
                                             "\"status\":429,\"retry_after\":7}"),
                     0);
    assert_int_equal(push_login(f, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_RATE_LIMITED);
    assert_int_equal(kt_error_retry_after(&err), 7);
    assert_int_equal(f->instructions, 0);
}

static void test_push_poll_outage_waited_out(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};

    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"mfa_get\",\"kind\":\"status\","
                                             "\"status\":503,\"retry_after\":1,\"count\":1}"),
                     0);
    f->answer = "VERIFIED";
    assert_int_equal(push_login(f, &t, &err), 0);
    assert_true(t.confirmed);
    kt_token_set_free(&t);
}

/* A rate limit that lasts until time runs out is reported as what it is. */
static void test_push_rate_limited_until_the_end(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err = {0};

    f->cfg.login_timeout = 7;
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"mfa_get\",\"kind\":\"status\","
                                             "\"status\":429,\"retry_after\":30}"),
                     0);
    assert_int_equal(push_login(f, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_RATE_LIMITED);
    assert_null(t.access_token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iso8601),
        cmocka_unit_test(test_parse_challenge),
        cmocka_unit_test(test_parse_challenge_bad),
        cmocka_unit_test(test_check_status),
        cmocka_unit_test(test_order_parse),
        cmocka_unit_test(test_config_key),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_cache_factor),
        cmocka_unit_test_setup_teardown(test_push_approved, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_push_denied, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_push_expired, mock_up_short, mock_down),
        cmocka_unit_test_setup_teardown(test_push_login_timeout, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_push_cancelled, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_push_rate_limited_create, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_push_poll_outage_waited_out, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_push_rate_limited_until_the_end, mock_up, mock_down),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
