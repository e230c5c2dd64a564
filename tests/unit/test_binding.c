/* Device binding requests: GraphQL bodies and answers, the error mapping of the GraphQL endpoint,
 * and the binding and enrollment flows against the mock with the person answering through its
 * control endpoint. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "kt_binding.h"
#include "kt_device.h"
#include "kt_flow.h"
#include "kt_graphql.h"
#include "kt_http.h"
#include "kt_keys.h"
#include "kt_mock.h"
#include "kt_oauth.h"

#define REQ_FIELDS                                                                                 \
    "\"ipAddress\":\"198.51.100.7\",\"deviceName\":\"box\",\"address\":\"Berlin, Germany\","       \
    "\"createdAt\":\"2026-01-01T12:00:00.000Z\""

static const char *create_answer(const char *rest)
{
    static char buf[1024];

    snprintf(buf, sizeof(buf), "{\"data\":{\"createDeviceBindingRequest\":{%s}}}", rest);
    return buf;
}

static void parse_create_ok(const char *body, kt_binding_request *r)
{
    kt_error err = {0};

    if (kt_binding_parse_create(200, body, strlen(body), -1, r, &err) != 0)
        fail_msg("%s: %s", body, err.message);
}

static void expect_create_kind(long status, const char *body, kt_err_kind kind)
{
    kt_binding_request r;
    kt_error err = {0};
    int rc = kt_binding_parse_create(status, body, strlen(body), -1, &r, &err);

    if (rc != -1 || err.kind != kind)
        fail_msg("HTTP %ld %s: got %s (%s), want %s", status, body, kt_err_kind_name(err.kind),
                 err.message, kt_err_kind_name(kind));
    assert_null(r.id);
}

/* -- request bodies ------------------------------------------------------------------------- */

static void test_graphql_body(void **state)
{
    const char *vars[] = {"deviceName", "a \"box\" }\n{", NULL};
    const char *odd[] = {"deviceName", NULL, NULL};
    json_object *parsed, *v = NULL, *q = NULL;
    char *body;

    (void)state;
    /* A name with quotes, a brace and a newline travels as a variable, escaped. */
    body = kt_graphql_body("mutation M($deviceName: String!) { f(deviceName: $deviceName) }", vars);
    assert_non_null(body);
    parsed = json_tokener_parse(body);
    assert_non_null(parsed);
    assert_true(json_object_object_get_ex(parsed, "query", &q));
    assert_string_equal(json_object_get_string(q),
                        "mutation M($deviceName: String!) { f(deviceName: $deviceName) }");
    assert_true(json_object_object_get_ex(parsed, "variables", &v));
    assert_true(json_object_object_get_ex(v, "deviceName", &v));
    assert_string_equal(json_object_get_string(v), "a \"box\" }\n{");
    json_object_put(parsed);
    free(body);
    /* A variable without a value is a caller's mistake, not an empty string. */
    assert_null(kt_graphql_body("{ f }", odd));

    body = kt_graphql_body("{ listBoundDevices { id } }", NULL);
    assert_string_equal(body, "{\"query\":\"{ listBoundDevices { id } }\"}");
    free(body);
    assert_null(kt_graphql_body(NULL, NULL));
}

/* -- answers -------------------------------------------------------------------------------- */

static void test_parse_states(void **state)
{
    kt_binding_request r;

    (void)state;
    parse_create_ok(
        create_answer("\"id\":\"b-1\"," REQ_FIELDS ",\"confirmedAt\":null,\"rejectedAt\":null"),
        &r);
    assert_int_equal(r.state, KT_BINDING_PENDING);
    assert_string_equal(r.id, "b-1");
    assert_string_equal(r.device_name, "box");
    assert_string_equal(r.ip_address, "198.51.100.7");
    assert_string_equal(r.address, "Berlin, Germany");
    assert_string_equal(r.created_at, "2026-01-01T12:00:00.000Z");
    assert_null(r.confirmed_at);
    assert_null(r.rejected_at);
    kt_binding_request_free(&r);

    parse_create_ok(create_answer("\"id\":\"b-2\",\"confirmedAt\":\"2026-01-01T12:01:00Z\""), &r);
    assert_int_equal(r.state, KT_BINDING_CONFIRMED);
    assert_string_equal(r.confirmed_at, "2026-01-01T12:01:00Z");
    assert_null(r.device_name); /* only the id is required */
    kt_binding_request_free(&r);

    parse_create_ok(create_answer("\"id\":\"b-3\",\"rejectedAt\":\"2026-01-01T12:01:00Z\""), &r);
    assert_int_equal(r.state, KT_BINDING_REJECTED);
    kt_binding_request_free(&r);

    /* Both: the rejection wins. */
    parse_create_ok(create_answer("\"id\":\"b-4\",\"confirmedAt\":\"x\",\"rejectedAt\":\"y\""), &r);
    assert_int_equal(r.state, KT_BINDING_REJECTED);
    kt_binding_request_free(&r);

    /* Unknown fields are the bank's business; an empty errors array is no error. */
    parse_create_ok("{\"errors\":[],\"data\":{\"createDeviceBindingRequest\":"
                    "{\"id\":\"b-5\",\"newField\":[1,2]}},\"extensions\":{}}",
                    &r);
    assert_int_equal(r.state, KT_BINDING_PENDING);
    kt_binding_request_free(&r);
}

static void test_parse_broken_answers(void **state)
{
    char longtext[1200];
    char body[1400];
    const char *broken[] = {
        "",
        "not json",
        "[]",
        "{}",
        "{\"data\":null}",
        "{\"data\":[]}",
        "{\"data\":{}}",
        "{\"data\":{\"createDeviceBindingRequest\":\"b-1\"}}",
        "{\"data\":{\"createDeviceBindingRequest\":{}}}",
        "{\"data\":{\"createDeviceBindingRequest\":{\"id\":\"\"}}}",
        "{\"data\":{\"createDeviceBindingRequest\":{\"id\":42}}}",
        "{\"data\":{\"createDeviceBindingRequest\":{\"id\":\"../../x\"}}}",
        "{\"data\":{\"createDeviceBindingRequest\":{\"id\":\"b-1\",\"deviceName\":7}}}",
        "{\"data\":{\"createDeviceBindingRequest\":{\"id\":\"b-1\",\"confirmedAt\":true}}}",
        "{\"errors\":{\"message\":\"no\"},\"data\":null}",
        "{\"data\":{\"createDeviceBindingRequest\":{\"id\":\"b-1\"}}} trailing",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++)
        expect_create_kind(200, broken[i], KT_ERR_PROTOCOL);
    memset(longtext, 'a', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    snprintf(body, sizeof(body),
             "{\"data\":{\"createDeviceBindingRequest\":{\"id\":\"b-1\",\"address\":\"%s\"}}}",
             longtext);
    expect_create_kind(200, body, KT_ERR_PROTOCOL);
    /* Any 2xx is an answer. */
    expect_create_kind(201, "{\"data\":{}}", KT_ERR_PROTOCOL);
}

static void test_get_of_an_unknown_request(void **state)
{
    const char *body = "{\"data\":{\"getDeviceBindingRequest\":null}}";
    kt_binding_request r;
    kt_error err = {0};

    (void)state;
    assert_int_equal(kt_binding_parse_get(200, body, strlen(body), -1, &r, &err), -1);
    assert_int_equal(err.kind, KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "does not know"));
    /* The create answer's field is not the get answer's. */
    body = create_answer("\"id\":\"b-1\"");
    kt_error_clear(&err);
    expect_kind(kt_binding_parse_get(200, body, strlen(body), -1, &r, &err), &err, KT_ERR_PROTOCOL);
}

static void test_graphql_errors_in_a_2xx(void **state)
{
    kt_binding_request r;
    kt_error err = {0};
    const char *one = "{\"data\":null,\"errors\":[{\"message\":\"Too many requests for "
                      "devices\",\"path\":[\"createDeviceBindingRequest\"],\"extensions\":"
                      "{\"code\":\"FORBIDDEN\"}}]}";
    const char *four = "{\"errors\":[{\"message\":\"first\"},{\"message\":\"second\"},"
                       "{\"message\":\"third\"},{\"message\":\"fourth\"}]}";
    const char *auth = "{\"data\":null,\"errors\":[{\"message\":\"Not logged in\","
                       "\"extensions\":{\"code\":\"UNAUTHENTICATED\"}}]}";
    const char *hostile = "{\"errors\":[{\"message\":\"line\\nbreak \\\"quoted\\\" \\u00e4\"}]}";

    (void)state;
    expect_kind(kt_binding_parse_create(200, one, strlen(one), -1, &r, &err), &err,
                KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "FORBIDDEN: Too many requests for devices"));
    kt_error_clear(&err);
    expect_kind(kt_binding_parse_create(200, four, strlen(four), -1, &r, &err), &err,
                KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "first; second; third"));
    assert_null(strstr(err.message, "fourth"));
    kt_error_clear(&err);
    expect_kind(kt_binding_parse_create(200, auth, strlen(auth), -1, &r, &err), &err,
                KT_ERR_LOGIN_REQUIRED);
    assert_non_null(strstr(err.message, "Not logged in"));
    kt_error_clear(&err);
    expect_kind(kt_binding_parse_create(200, hostile, strlen(hostile), -1, &r, &err), &err,
                KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "line?break ?quoted? ?"));
}

/* Every status x body shape: the kind is the status's meaning; the bank's words appear when the
 * body is JSON (any of the three shapes), never from HTML or nothing. */
static void test_status_table(void **state)
{
    static const struct {
        const char *name;
        const char *body;
        bool words;
    } bodies[] = {
        {"rfc", "{\"error\":\"invalid_request\",\"error_description\":\"Ask the bank\"}", true},
        {"message", "{\"message\":\"Ask the bank\"}", true},
        {"graphql", "{\"errors\":[{\"message\":\"Ask the bank\"}]}", true},
        {"html", "<html><body><h1>Ask the bank</h1></body></html>", false},
        {"empty", "", false},
    };
    static const long statuses[] = {400, 401, 403, 404, 409, 410, 422, 429, 500, 502, 503};

    (void)state;
    for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
        for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
            long status = statuses[i];
            kt_err_kind want = status == 401   ? KT_ERR_LOGIN_REQUIRED
                               : status == 429 ? KT_ERR_RATE_LIMITED
                               : status >= 500 ? KT_ERR_UNAVAILABLE
                                               : KT_ERR_MFA_FAILED;
            for (int get = 0; get < 2; get++) {
                kt_binding_request r;
                kt_error err = {0};
                long retry = status == 429 ? 7 : -1;
                int rc = get ? kt_binding_parse_get(status, bodies[b].body, strlen(bodies[b].body),
                                                    retry, &r, &err)
                             : kt_binding_parse_create(status, bodies[b].body,
                                                       strlen(bodies[b].body), retry, &r, &err);

                if (rc != -1 || err.kind != want)
                    fail_msg("%s body, HTTP %ld: got %s (%s), want %s", bodies[b].name, status,
                             kt_err_kind_name(err.kind), err.message, kt_err_kind_name(want));
                if ((strstr(err.message, "Ask the bank") != NULL) != bodies[b].words)
                    fail_msg("%s body, HTTP %ld: message \"%s\"", bodies[b].name, status,
                             err.message);
                assert_null(strstr(err.message, "<"));
                if (status == 429)
                    assert_int_equal(kt_error_retry_after(&err), 7);
            }
        }
    }
    /* Neither an answer nor an error of this API. */
    expect_create_kind(302, "", KT_ERR_PROTOCOL);
    expect_create_kind(101, "", KT_ERR_PROTOCOL);
}

/* -- against the mock ------------------------------------------------------------------------ */

typedef struct fixture {
    kt_mock mock;
    kt_config cfg;
    kt_ctx *ctx;
    EVP_PKEY *key;
    char *access;
    /* what the person does when the wait starts: NULL (nothing), "CONFIRMED", "REJECTED" */
    const char *answer;
    bool cancel;            /* asks to stop at the first sign of waiting */
    int waits;              /* calls of the waiting callback with a message */
    int wait_ends;          /* ... and without */
    uint64_t first_wait_ms; /* when the first call with a message came (0: none yet) */
    uint64_t wait_end_ms;   /* when the call without a message came */
    long last_elapsed;
    char info[4][512];
    int infos;
    char prompt[128];
} fixture;

static void on_info(void *data, const char *message)
{
    fixture *f = data;

    if (f->infos < 4)
        snprintf(f->info[f->infos], sizeof(f->info[0]), "%s", message);
    f->infos++;
}

static int on_prompt(void *data, const char *message, bool echo, char **answer)
{
    fixture *f = data;

    (void)echo;
    snprintf(f->prompt, sizeof(f->prompt), "%s", message);
    *answer = kt_mock_last_otp(&f->mock);
    return *answer != NULL ? 0 : -1;
}

static void on_waiting(void *data, const char *message, long elapsed_s)
{
    fixture *f = data;

    if (message == NULL) {
        f->wait_ends++;
        f->wait_end_ms = kt_now_ms();
        return;
    }
    if (f->waits++ == 0)
        f->first_wait_ms = kt_now_ms();
    f->last_elapsed = elapsed_s;
    if (f->answer != NULL && kt_mock_answer_binding(&f->mock, f->answer) == 0)
        f->answer = NULL;
}

static bool on_cancelled(void *data)
{
    fixture *f = data;

    return f->cancel && f->waits > 0;
}

static int mock_up_args(void **state, const char *const *args)
{
    fixture *f = calloc(1, sizeof(*f));
    kt_conv conv = {.prompt = on_prompt, .info = on_info, .data = f};
    kt_conv_progress progress = {on_waiting, on_cancelled, f, NULL};
    kt_token_set t;
    kt_error err = {0};

    if (f == NULL || kt_mock_start(&f->mock, args) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    kt_test_config(&f->cfg, &f->mock);
    f->ctx = kt_ctx_new(&f->cfg, &conv, &err);
    f->key = kt_key_generate(&err);
    if (f->ctx == NULL || f->key == NULL ||
        kt_oauth_password_grant(f->ctx, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err) != 0) {
        fprintf(stderr, "set-up: %s\n", err.message);
        return -1;
    }
    kt_ctx_set_progress(f->ctx, &progress);
    f->access = strdup(t.access_token);
    kt_token_set_free(&t);
    return 0;
}

static int mock_up(void **state)
{
    return mock_up_args(state, NULL);
}

static int mock_up_short_window(void **state)
{
    const char *const args[] = {"--binding-window", "1", NULL};
    return mock_up_args(state, args);
}

static int mock_down(void **state)
{
    fixture *f = *state;

    if (f != NULL) {
        kt_ctx_free(f->ctx);
        EVP_PKEY_free(f->key);
        free(f->access);
        kt_test_config_free(&f->cfg);
        kt_mock_stop(&f->mock);
        free(f);
    }
    return 0;
}

static void test_bind_confirmed_then_enroll(void **state)
{
    fixture *f = *state;
    kt_binding b;
    kt_error err = {0};
    char *dev = NULL;
    uint64_t before = kt_now_ms();
    int requests = 0, conns = 0;

    f->answer = "CONFIRMED";
    assert_int_equal(kt_mock_devices(&f->mock), 0);
    if (kt_flow_bind(f->ctx, f->access, "unit box", 60, &b, &err) != 0)
        fail_msg("bind: %s", err.message);
    assert_int_equal(b.request.state, KT_BINDING_CONFIRMED);
    assert_non_null(b.request.confirmed_at);
    assert_string_equal(b.request.device_name, "unit box");
    /* The window starts no later than the last check that still found the request pending. */
    assert_true(b.window_end_ms >= before + 180000u);
    assert_true(b.window_end_ms <= kt_now_ms() + 180000u);
    /* The person was told what to do, then shown the wait, which ended. */
    assert_true(f->infos >= 2);
    assert_non_null(strstr(f->info[0], "Kontist app"));
    assert_non_null(strstr(f->info[0], "email"));
    assert_non_null(strstr(f->info[0], "\"unit box\""));
    assert_non_null(strstr(f->info[1], "127.0.0.1"));
    assert_true(f->waits >= 1);
    assert_int_equal(f->wait_ends, 1);
    /* Nothing was created at the bank yet. */
    assert_int_equal(kt_mock_devices(&f->mock), 0);

    if (kt_flow_enroll(f->ctx, f->access, "unit box", f->key, &b, &dev, &err) != 0)
        fail_msg("enroll: %s", err.message);
    assert_true(kt_device_id_ok(dev));
    assert_memory_equal(f->prompt, "SMS code (2:5", 13);
    assert_int_equal(kt_mock_devices(&f->mock), 1);
    /* token, create, one or two checks, create device, verify */
    assert_int_equal(kt_mock_requests(&f->mock, &requests, &conns), 0);
    assert_in_range(requests, 5, 6);
    kt_binding_free(&b);
    free(dev);
}

static void test_bind_rejected(void **state)
{
    fixture *f = *state;
    kt_binding b;
    kt_error err = {0};

    f->answer = "REJECTED";
    expect_kind(kt_flow_bind(f->ctx, f->access, "unit box", 60, &b, &err), &err, KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "rejected"));
    assert_null(b.request.id);
    assert_int_equal(f->wait_ends, 1);
    assert_int_equal(kt_mock_devices(&f->mock), 0);
}

static void test_bind_timeout(void **state)
{
    fixture *f = *state;
    kt_binding b;
    kt_error err = {0};
    uint64_t started = kt_now_ms(), took;

    /* The bank asks for the first check after 30 s: the 2 s timeout must cut that wait short,
     * so a flow that slept the interval out (or ignored the timeout) takes 30 s at least. */
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"graphql\",\"operation\":"
                                             "\"createDeviceBindingRequest\",\"kind\":"
                                             "\"retry_after\",\"seconds\":30}"),
                     0);
    expect_kind(kt_flow_bind(f->ctx, f->access, "unit box", 2, &b, &err), &err, KT_ERR_CONV);
    took = kt_now_ms() - started;
    assert_non_null(strstr(err.message, "not confirmed within 0:02"));
    assert_in_range(took, 1900, 15000);
    assert_int_equal(f->wait_ends, 1);
    /* Still waiting at the bank: nobody answered. */
    assert_int_equal(kt_mock_pending_bindings(&f->mock), 1);
}

static void test_bind_cancelled(void **state)
{
    fixture *f = *state;
    kt_binding b;
    kt_error err = {0};
    uint64_t started = kt_now_ms();

    f->cancel = true;
    expect_kind(kt_flow_bind(f->ctx, f->access, "unit box", 60, &b, &err), &err, KT_ERR_CONV);
    assert_string_equal(err.message, "cancelled");
    assert_int_equal(f->wait_ends, 1);
    /* Stopped within a wait slice of the first sign of waiting, not at the next check (3 s). */
    assert_true(f->first_wait_ms >= started);
    assert_true(f->wait_end_ms - f->first_wait_ms < 2900);
}

static void test_bind_honours_retry_after(void **state)
{
    fixture *f = *state;
    kt_binding b;
    kt_error err = {0};

    /* The create answer asks for the first check after 1 s instead of 3. */
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"graphql\",\"operation\":"
                                             "\"createDeviceBindingRequest\",\"kind\":"
                                             "\"retry_after\",\"seconds\":1}"),
                     0);
    f->answer = "CONFIRMED";
    assert_int_equal(kt_flow_bind(f->ctx, f->access, "unit box", 60, &b, &err), 0);
    /* One wait (the person confirms as it starts) and one check: from the wait's start to its
     * end 1 s and the check's answer; the usual 3 s interval would make it 3 s at least. */
    assert_int_equal(f->wait_ends, 1);
    assert_in_range(f->wait_end_ms - f->first_wait_ms, 900, 2900);
    kt_binding_free(&b);
}

static void test_bind_waits_out_an_outage(void **state)
{
    fixture *f = *state;
    kt_binding b;
    kt_error err = {0};

    /* Two failed checks (503, then 429, both with Retry-After: 1), then the answer. */
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"graphql\",\"operation\":"
                                             "\"getDeviceBindingRequest\",\"kind\":\"empty_body\","
                                             "\"status\":503,\"retry_after\":1,\"count\":1}"),
                     0);
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"graphql\",\"operation\":"
                                             "\"getDeviceBindingRequest\",\"kind\":\"html_body\","
                                             "\"status\":429,\"retry_after\":1,\"count\":1}"),
                     0);
    f->answer = "CONFIRMED";
    if (kt_flow_bind(f->ctx, f->access, "unit box", 60, &b, &err) != 0)
        fail_msg("bind: %s", err.message);
    assert_int_equal(b.request.state, KT_BINDING_CONFIRMED);
    kt_binding_free(&b);
}

static void test_bind_refused_by_the_bank(void **state)
{
    fixture *f = *state;
    kt_binding b;
    kt_error err = {0};

    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"graphql\",\"kind\":\"message_body\","
                                             "\"status\":403,\"message\":\"Too many devices\","
                                             "\"count\":1}"),
                     0);
    expect_kind(kt_flow_bind(f->ctx, f->access, "unit box", 60, &b, &err), &err, KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "create device binding request: refused (HTTP 403): Too "
                                        "many devices"));
    /* The person was never told to confirm anything. */
    assert_int_equal(f->infos, 0);
    kt_error_clear(&err);
    expect_kind(kt_flow_bind(f->ctx, "not-a-token", "unit box", 60, &b, &err), &err,
                KT_ERR_LOGIN_REQUIRED);
}

static void test_device_without_binding_is_refused(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    char *dev = NULL;

    expect_kind(kt_flow_enroll(f->ctx, f->access, "unit box", f->key, NULL, &dev, &err), &err,
                KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "binding_request_required"));
    assert_null(dev);
}

static void test_device_after_the_window(void **state)
{
    fixture *f = *state;
    kt_binding b;
    kt_error err = {0};
    char *dev = NULL;
    struct timespec pause = {1, 200000000L};

    /* The mock's window is 1 s: the bank refuses, and says why. */
    f->answer = "CONFIRMED";
    assert_int_equal(kt_flow_bind(f->ctx, f->access, "unit box", 60, &b, &err), 0);
    nanosleep(&pause, NULL);
    expect_kind(kt_flow_enroll(f->ctx, f->access, "unit box", f->key, &b, &dev, &err), &err,
                KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "create device: refused (HTTP 403)"));
    assert_non_null(strstr(err.message, "binding_request_expired"));
    assert_null(dev);
    kt_binding_free(&b);

    /* When this side's own clock says the 3 minutes are over, the message says that too. */
    f->answer = "CONFIRMED";
    kt_error_clear(&err);
    assert_int_equal(kt_flow_bind(f->ctx, f->access, "unit box", 60, &b, &err), 0);
    nanosleep(&pause, NULL);
    b.window_end_ms = kt_now_ms() - 1000;
    expect_kind(kt_flow_enroll(f->ctx, f->access, "unit box", f->key, &b, &dev, &err), &err,
                KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "more than 3 minutes passed"));
    kt_binding_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graphql_body),
        cmocka_unit_test(test_parse_states),
        cmocka_unit_test(test_parse_broken_answers),
        cmocka_unit_test(test_get_of_an_unknown_request),
        cmocka_unit_test(test_graphql_errors_in_a_2xx),
        cmocka_unit_test(test_status_table),
        cmocka_unit_test_setup_teardown(test_bind_confirmed_then_enroll, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_bind_rejected, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_bind_timeout, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_bind_cancelled, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_bind_honours_retry_after, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_bind_waits_out_an_outage, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_bind_refused_by_the_bank, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_device_without_binding_is_refused, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_device_after_the_window, mock_up_short_window,
                                        mock_down),
    };
    int rc = cmocka_run_group_tests_name("kt_binding", tests, NULL, NULL);

    kt_mock_cleanup_shared();
    return rc;
}
