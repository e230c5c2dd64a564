/* kt_oauth (form encoding, token responses, grants) and kt_ctx. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kt_ctx.h"
#include "kt_mock.h"
#include "kt_oauth.h"

#define NOW ((time_t)1700000000)

/* ---- form encoding ---------------------------------------------------------------------- */

static void check_encode(const char *in, const char *want)
{
    char *out = kt_form_encode(in);

    assert_non_null(out);
    assert_string_equal(out, want);
    free(out);
}

static void test_form_encode(void **state)
{
    (void)state;
    check_encode("AZaz09-._~", "AZaz09-._~");
    check_encode("", "");
    check_encode(" ", "%20");
    check_encode("a+b&c=d/e?f#g%h", "a%2Bb%26c%3Dd%2Fe%3Ff%23g%25h");
    check_encode("demo@example.com", "demo%40example.com");
    check_encode("!*'();:@&=+$,/?#[]", "%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D");
    check_encode("caf\xc3\xa9 \xe2\x82\xac", "caf%C3%A9%20%E2%82%AC");
    check_encode("\t\r\n\"<>\\", "%09%0D%0A%22%3C%3E%5C");
    check_encode("\x7f\xff", "%7F%FF");
    assert_null(kt_form_encode(NULL));
}

static void test_form_build(void **state)
{
    const char *pairs[] = {"grant_type", "password", "username", "a b@c", "password", "p&=%", NULL};
    const char *keys[] = {"k y", "", NULL};
    const char *empty[] = {NULL};
    const char *odd[] = {"a", NULL};
    char *s;

    (void)state;
    s = kt_form_build(pairs);
    assert_non_null(s);
    assert_string_equal(s, "grant_type=password&username=a%20b%40c&password=p%26%3D%25");
    free(s);
    s = kt_form_build(keys);
    assert_string_equal(s, "k%20y=");
    free(s);
    s = kt_form_build(empty);
    assert_string_equal(s, "");
    free(s);
    assert_null(kt_form_build(odd));
    assert_null(kt_form_build(NULL));
}

/* ---- token response parsing ------------------------------------------------------------- */

static int parse(long status, const char *ct, const char *body, kt_grant grant, kt_token_set *t,
                 kt_error *err)
{
    kt_error_clear(err);
    return kt_oauth_parse_token_response(status, ct, body, body != NULL ? strlen(body) : 0, grant,
                                         NOW, t, err);
}

static void expect_fail(long status, const char *ct, const char *body, kt_grant grant,
                        kt_err_kind kind)
{
    kt_token_set t;
    kt_error err;

    if (parse(status, ct, body, grant, &t, &err) != -1 || err.kind != kind)
        fail_msg("status %ld body %s: got %s (%s), want %s", status, body,
                 kt_err_kind_name(err.kind), err.message, kt_err_kind_name(kind));
    assert_null(t.access_token);
    assert_null(t.refresh_token);
    assert_null(t.scope);
}

static void expect_protocol(const char *body)
{
    expect_fail(200, "application/json", body, KT_GRANT_PASSWORD, KT_ERR_PROTOCOL);
}

static char *jwt_body(const char *claims, const char *rest)
{
    char *jwt = kt_test_jwt(claims);
    char *body = malloc(2048);

    assert_non_null(body);
    snprintf(body, 2048, "{\"access_token\":\"%s\",%s}", jwt, rest);
    free(jwt);
    return body;
}

static void test_parse_minimal(void **state)
{
    kt_token_set t;
    kt_error err;

    (void)state;
    assert_int_equal(
        parse(200, "application/json",
              "{\"access_token\":\"abc\",\"token_type\":\"Bearer\",\"expires_in\":3599}",
              KT_GRANT_PASSWORD, &t, &err),
        0);
    assert_string_equal(t.access_token, "abc");
    assert_null(t.refresh_token);
    assert_null(t.scope);
    assert_int_equal(t.expires_at, NOW + 3599);
    assert_false(t.confirmed);
    kt_token_set_free(&t);
}

static void test_parse_full(void **state)
{
    kt_token_set t;
    kt_error err;

    (void)state;
    assert_int_equal(parse(200, "application/json",
                           " {\"access_token\":\"abc\",\"token_type\":\"bEARER\",\"expires_in\":60,"
                           "\"refresh_token\":\"r-1\",\"scope\":\"offline users\",\"extra\":[1]}\n",
                           KT_GRANT_REFRESH, &t, &err),
                     0);
    assert_string_equal(t.access_token, "abc");
    assert_string_equal(t.refresh_token, "r-1");
    assert_string_equal(t.scope, "offline users");
    assert_int_equal(t.expires_at, NOW + 60);
    kt_token_set_free(&t);

    /* null for an optional member means absent; 0 is an already expired token. */
    assert_int_equal(parse(200, "application/json",
                           "{\"access_token\":\"abc\",\"token_type\":\"Bearer\",\"expires_in\":0,"
                           "\"refresh_token\":null,\"scope\":null}",
                           KT_GRANT_PASSWORD, &t, &err),
                     0);
    assert_null(t.refresh_token);
    assert_null(t.scope);
    assert_int_equal(t.expires_at, NOW);
    kt_token_set_free(&t);
}

static void test_parse_jwt_confirmed(void **state)
{
    const char *rest = "\"token_type\":\"Bearer\",\"expires_in\":100";
    char *body;
    kt_token_set t;
    kt_error err;

    (void)state;
    body = jwt_body("{\"exp\":1700000100,\"cnf\":{\"kid\":\"d\"}}", rest);
    assert_int_equal(parse(200, "application/json", body, KT_GRANT_REFRESH, &t, &err), 0);
    assert_true(t.confirmed);
    assert_int_equal(t.expires_at, NOW + 100);
    kt_token_set_free(&t);
    free(body);

    body = jwt_body("{\"exp\":1700000100}", rest);
    assert_int_equal(parse(200, "application/json", body, KT_GRANT_REFRESH, &t, &err), 0);
    assert_false(t.confirmed);
    kt_token_set_free(&t);
    free(body);

    /* Looks like a JWT but is not one. */
    body = jwt_body("[1]", rest);
    expect_protocol(body);
    free(body);
    expect_protocol("{\"access_token\":\"a.b\",\"token_type\":\"Bearer\",\"expires_in\":1}");
}

static void test_parse_bad_fields(void **state)
{
    (void)state;
    /* access_token */
    expect_protocol("{\"token_type\":\"Bearer\",\"expires_in\":1}");
    expect_protocol("{\"access_token\":\"\",\"token_type\":\"Bearer\",\"expires_in\":1}");
    expect_protocol("{\"access_token\":7,\"token_type\":\"Bearer\",\"expires_in\":1}");
    expect_protocol("{\"access_token\":null,\"token_type\":\"Bearer\",\"expires_in\":1}");
    expect_protocol("{\"access_token\":[\"a\"],\"token_type\":\"Bearer\",\"expires_in\":1}");
    expect_protocol("{\"access_token\":\"a b\",\"token_type\":\"Bearer\",\"expires_in\":1}");
    expect_protocol(
        "{\"access_token\":\"a\\r\\nX: y\",\"token_type\":\"Bearer\",\"expires_in\":1}");
    expect_protocol("{\"access_token\":\"a\\u0000b\",\"token_type\":\"Bearer\",\"expires_in\":1}");
    /* token_type */
    expect_protocol("{\"access_token\":\"a\",\"expires_in\":1}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"mac\",\"expires_in\":1}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer \",\"expires_in\":1}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":1,\"expires_in\":1}");
    /* expires_in */
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\"}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":\"3599\"}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":3599.5}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":-1}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1e12}");
    expect_protocol(
        "{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":99999999999}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":true}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":null}");
    /* refresh_token and scope */
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1,"
                    "\"refresh_token\":5}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1,"
                    "\"refresh_token\":\"\"}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1,"
                    "\"refresh_token\":{}}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1,"
                    "\"refresh_token\":\"r r\"}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1,"
                    "\"scope\":7}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1,"
                    "\"scope\":[\"users\"]}");
}

static void test_parse_bad_documents(void **state)
{
    const char *ok = "{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1}";
    kt_token_set t;
    kt_error err;

    (void)state;
    expect_protocol("");
    expect_protocol("not json");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1");
    expect_protocol("[{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1}]");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1}{}");
    expect_protocol("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1,}");
    expect_protocol("{'access_token':'a','token_type':'Bearer','expires_in':1}");
    expect_protocol("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":1}}}}}}}}}");
    expect_protocol("{\"access_token\":\"\xff\",\"token_type\":\"Bearer\",\"expires_in\":1}");
    /* Not JSON at all, whatever the label: the media type is named in the message. */
    expect_fail(200, "text/html", "<html>Welcome</html>", KT_GRANT_PASSWORD, KT_ERR_PROTOCOL);
    assert_int_equal(parse(200, "text/html", "<html>Welcome</html>", KT_GRANT_PASSWORD, &t, &err),
                     -1);
    assert_non_null(strstr(err.message, "text/html"));
    expect_fail(200, NULL, "", KT_GRANT_PASSWORD, KT_ERR_PROTOCOL);
    /* JSON, but not a token. */
    expect_fail(200, "text/html", "{\"token\":\"a\"}", KT_GRANT_PASSWORD, KT_ERR_PROTOCOL);
    /* Embedded NUL: the length counts past it. */
    kt_error_clear(&err);
    assert_int_equal(kt_oauth_parse_token_response(200, "application/json", "{}\0{}", 5,
                                                   KT_GRANT_PASSWORD, NOW, &t, &err),
                     -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    kt_error_clear(&err);
    assert_int_equal(kt_oauth_parse_token_response(201, "text/plain", ok, strlen(ok) + 1,
                                                   KT_GRANT_PASSWORD, NOW, &t, &err),
                     -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    /* A 204 has no body, so no token; redirects are never followed; 0 is no HTTP status. */
    expect_fail(204, NULL, "", KT_GRANT_PASSWORD, KT_ERR_PROTOCOL);
    expect_fail(302, "application/json", ok, KT_GRANT_PASSWORD, KT_ERR_PROTOCOL);
    expect_fail(301, "text/html", "<a href=x>moved</a>", KT_GRANT_REFRESH, KT_ERR_PROTOCOL);
    expect_fail(0, "application/json", ok, KT_GRANT_PASSWORD, KT_ERR_PROTOCOL);
    expect_fail(100, "application/json", ok, KT_GRANT_PASSWORD, KT_ERR_PROTOCOL);
}

/* Any 2xx carrying a usable token is the token: the status need not be exactly 200, and the
 * Content-Type is not what decides (parameters, case, even a wrong label: the peer is the bank
 * over verified TLS, and the body still has to be a strict JSON token response). */
static void test_parse_success_leniency(void **state)
{
    const char *ok = "{\"access_token\":\"abc\",\"token_type\":\"Bearer\",\"expires_in\":60}";
    const long statuses[] = {200, 201, 202, 203, 299};
    const char *types[] = {"application/json",
                           "application/json; charset=utf-8",
                           "Application/JSON;charset=UTF-8",
                           " application/json ; charset=\"utf-8\"",
                           "text/html",
                           "text/plain; charset=utf-8",
                           "application/jsonx",
                           NULL};
    size_t i, j;

    (void)state;
    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        for (j = 0; j < sizeof(types) / sizeof(types[0]); j++) {
            kt_token_set t;
            kt_error err;

            if (parse(statuses[i], types[j], ok, KT_GRANT_PASSWORD, &t, &err) != 0)
                fail_msg("HTTP %ld, %s: %s (%s)", statuses[i], types[j] ? types[j] : "no type",
                         kt_err_kind_name(err.kind), err.message);
            assert_string_equal(t.access_token, "abc");
            assert_int_equal(t.expires_at, NOW + 60);
            kt_token_set_free(&t);
        }
    }
}

/* ---- token endpoint refusals: status x body shape -------------------------------------- */

typedef struct body_shape {
    const char *name;
    const char *content_type;
    const char *body;
    const char *words; /* what of it must reach the message, or NULL: nothing may */
} body_shape;

static const body_shape shapes[] = {
    {"RFC 6749", "application/json",
     "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid credentials\"}",
     "invalid_grant: Invalid credentials"},
    {"RFC 6749 code only", "application/json; charset=utf-8", "{\"error\":\"access_denied\"}",
     "access_denied"},
    {"RFC 6749 unknown code", "application/json", "{\"error\":\"something_new\"}", "something_new"},
    {"RFC 6749 unauthorized_client", "application/json", "{\"error\":\"unauthorized_client\"}",
     "unauthorized_client"},
    {"RFC 6749 invalid_scope", "application/json",
     "{\"error\":\"invalid_scope\",\"error_description\":\"unknown scope bogus\"}",
     "invalid_scope: unknown scope bogus"},
    {"RFC 6749 invalid_request", "application/json", "{\"error\":\"invalid_request\"}",
     "invalid_request"},
    {"message", "application/json", "{\"message\":\"Wrong e-mail or password\",\"status\":401}",
     "Wrong e-mail or password"},
    {"message, mislabelled", "text/plain", "{\"message\":\"Account locked\"}", "Account locked"},
    {"problem+json", "application/problem+json",
     "{\"title\":\"Forbidden\",\"message\":\"Not allowed\"}", "Not allowed"},
    {"JSON without words", "application/json", "{}", NULL},
    {"JSON, error not a string", "application/json", "{\"error\":7}", NULL},
    {"truncated JSON", "application/json", "{\"error\":\"invalid_grant\"", NULL},
    {"HTML", "text/html", "<html><head><title>Forbidden</title></head><body>nope</body></html>",
     NULL},
    {"HTML labelled JSON", "application/json", "<h1>401 Unauthorized</h1>", NULL},
    {"plain text", "text/plain", "Unauthorized", NULL},
    {"empty", NULL, "", NULL},
};

static const char *invalid_client_body = "{\"error\":\"invalid_client\","
                                         "\"error_description\":\"client authentication failed\"}";

/* What a token endpoint answer must mean: by status first, the body never turns an answer into
 * an outage or a broken answer. */
static kt_err_kind token_kind(long status, bool invalid_client, kt_grant grant)
{
    if (status == 429)
        return KT_ERR_RATE_LIMITED;
    if (status >= 500 && status <= 599)
        return KT_ERR_UNAVAILABLE;
    if (status >= 400 && status <= 499)
        return invalid_client               ? KT_ERR_CONFIG
               : grant == KT_GRANT_PASSWORD ? KT_ERR_BAD_CREDENTIALS
                                            : KT_ERR_LOGIN_REQUIRED;
    return KT_ERR_PROTOCOL;
}

static void check_token_answer(long status, const char *ct, const char *body, const char *words,
                               bool invalid_client, kt_grant grant, const char *shape)
{
    kt_err_kind want = token_kind(status, invalid_client, grant);
    kt_token_set t;
    kt_error err;

    if (parse(status, ct, body, grant, &t, &err) != -1 || err.kind != want)
        fail_msg("HTTP %ld, %s, %s grant: got %s (%s), want %s", status, shape,
                 grant == KT_GRANT_PASSWORD ? "password" : "refresh", kt_err_kind_name(err.kind),
                 err.message, kt_err_kind_name(want));
    assert_null(t.access_token);
    if (words != NULL && strstr(err.message, words) == NULL)
        fail_msg("HTTP %ld, %s: \"%s\" lacks \"%s\"", status, shape, err.message, words);
    /* An HTML page never reaches the message. */
    if (strchr(err.message, '<') != NULL || strstr(err.message, "Unauthorized") != NULL)
        fail_msg("HTTP %ld, %s: body copied into \"%s\"", status, shape, err.message);
}

static void test_token_status_by_body_shape(void **state)
{
    const long statuses[] = {400, 401, 402, 403, 404, 405, 406, 409, 410, 413, 415,
                             418, 422, 423, 428, 451, 499, 429, 500, 501, 502, 503,
                             504, 599, 100, 300, 301, 302, 303, 304, 307, 308};
    const kt_grant grants[] = {KT_GRANT_PASSWORD, KT_GRANT_REFRESH};
    size_t i, j, g;

    (void)state;
    for (g = 0; g < 2; g++) {
        for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
            for (j = 0; j < sizeof(shapes) / sizeof(shapes[0]); j++)
                check_token_answer(statuses[i], shapes[j].content_type, shapes[j].body,
                                   statuses[i] >= 400 && statuses[i] <= 599 ? shapes[j].words
                                                                            : NULL,
                                   false, grants[g], shapes[j].name);
            check_token_answer(
                statuses[i], "application/json", invalid_client_body,
                statuses[i] >= 400 ? "invalid_client: client authentication failed" : NULL,
                statuses[i] >= 400 && statuses[i] <= 499, grants[g], "invalid_client");
        }
    }
}

static void test_parse_oauth_errors(void **state)
{
    const char *json = "application/json";
    kt_token_set t;
    kt_error err;

    (void)state;
    expect_fail(400, json, "{\"error\":\"invalid_grant\"}", KT_GRANT_PASSWORD,
                KT_ERR_BAD_CREDENTIALS);
    expect_fail(400, json, "{\"error\":\"invalid_grant\"}", KT_GRANT_REFRESH,
                KT_ERR_LOGIN_REQUIRED);
    /* Only invalid_client singles out the installation (its client id or secret). */
    expect_fail(401, json, "{\"error\":\"invalid_client\"}", KT_GRANT_PASSWORD, KT_ERR_CONFIG);
    expect_fail(401, json, "{\"error\":\"invalid_client\"}", KT_GRANT_REFRESH, KT_ERR_CONFIG);
    expect_fail(400, "text/plain", "{\"error\":\"invalid_client\"}", KT_GRANT_REFRESH,
                KT_ERR_CONFIG);
    /* The other RFC 6749 codes, malformed error bodies and non-JSON bodies are all the bank
     * refusing this grant on purpose; the code, when there is one, is in the message. */
    expect_fail(400, json, "{\"error\":\"unauthorized_client\"}", KT_GRANT_PASSWORD,
                KT_ERR_BAD_CREDENTIALS);
    expect_fail(400, json, "{\"error\":\"unsupported_grant_type\"}", KT_GRANT_REFRESH,
                KT_ERR_LOGIN_REQUIRED);
    expect_fail(400, json, "{\"error\":\"invalid_request\"}", KT_GRANT_PASSWORD,
                KT_ERR_BAD_CREDENTIALS);
    expect_fail(404, json, "{\"error\":\"not_found\"}", KT_GRANT_PASSWORD, KT_ERR_BAD_CREDENTIALS);
    expect_fail(400, json, "{}", KT_GRANT_PASSWORD, KT_ERR_BAD_CREDENTIALS);
    expect_fail(401, "text/plain", "Unauthorized", KT_GRANT_REFRESH, KT_ERR_LOGIN_REQUIRED);
    /* A 2xx with an OAuth error in place of a token is a refusal too. */
    expect_fail(200, json, "{\"error\":\"invalid_grant\"}", KT_GRANT_PASSWORD,
                KT_ERR_BAD_CREDENTIALS);
    expect_fail(200, json, "{\"error\":\"invalid_client\"}", KT_GRANT_PASSWORD, KT_ERR_CONFIG);
    /* Outages and rate limits are that whatever the body says. */
    expect_fail(429, json, "{\"error\":\"invalid_grant\"}", KT_GRANT_PASSWORD, KT_ERR_RATE_LIMITED);
    expect_fail(500, "text/html", "<h1>oops</h1>", KT_GRANT_PASSWORD, KT_ERR_UNAVAILABLE);
    expect_fail(502, NULL, "", KT_GRANT_REFRESH, KT_ERR_UNAVAILABLE);
    expect_fail(503, json, "{\"error\":\"invalid_client\"}", KT_GRANT_REFRESH, KT_ERR_UNAVAILABLE);

    /* The description is shown, made printable: control characters, non-ASCII characters and
     * the quotes and backslashes that could fake a field in a log line. */
    assert_int_equal(parse(400, json,
                           "{\"error\":\"invalid_grant\",\"error_description\":\"bad\\npassword "
                           "\\\"f\\u00fcr\\\" \\\\ x\\u001b[31m\"}",
                           KT_GRANT_PASSWORD, &t, &err),
                     -1);
    assert_string_equal(err.message,
                        "token endpoint: refused (HTTP 400): invalid_grant: bad?password ?f?r? ? "
                        "x?[31m");
    assert_null(strchr(err.message, '\n'));
}

/* ---- kt_ctx ------------------------------------------------------------------------------ */

typedef struct conv_log {
    char last_info[256];
    char last_prompt[256];
    bool last_echo;
    const char *answer; /* NULL: fail */
} conv_log;

static int conv_prompt(void *data, const char *message, bool echo, char **answer)
{
    conv_log *log = data;

    snprintf(log->last_prompt, sizeof(log->last_prompt), "%s", message);
    log->last_echo = echo;
    if (log->answer == NULL)
        return -1;
    *answer = strdup(log->answer);
    return 0;
}

static void conv_info(void *data, const char *message)
{
    conv_log *log = data;
    snprintf(log->last_info, sizeof(log->last_info), "%s", message);
}

static void test_ctx_conversation(void **state)
{
    conv_log log = {.answer = "42"};
    kt_conv conv = {conv_prompt, conv_info, &log};
    kt_config cfg;
    kt_error err = {0};
    kt_ctx *ctx;
    char *answer = NULL;

    (void)state;
    kt_test_config(&cfg, NULL);
    ctx = kt_ctx_new(&cfg, &conv, &err);
    assert_non_null(ctx);
    assert_non_null(ctx->http);
    assert_ptr_equal(ctx->cfg, &cfg);

    assert_int_equal(kt_ctx_prompt(ctx, "Code: ", 1, &answer, &err), 0);
    assert_string_equal(answer, "42");
    assert_string_equal(log.last_prompt, "Code: ");
    assert_true(log.last_echo);
    free(answer);
    assert_int_equal(kt_ctx_prompt(ctx, "Password: ", 0, &answer, &err), 0);
    assert_false(log.last_echo);
    free(answer);

    log.answer = NULL;
    assert_int_equal(kt_ctx_prompt(ctx, "Code: ", 1, &answer, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONV);
    assert_null(answer);

    kt_ctx_info(ctx, "device %s bound", "d-1");
    assert_string_equal(log.last_info, "device d-1 bound");
    kt_ctx_free(ctx);
    kt_ctx_free(NULL);
    kt_test_config_free(&cfg);
}

static void test_ctx_without_conversation(void **state)
{
    kt_config cfg;
    kt_error err = {0};
    kt_ctx *ctx;
    char *answer = NULL;

    (void)state;
    kt_test_config(&cfg, NULL);
    ctx = kt_ctx_new(&cfg, NULL, &err);
    assert_non_null(ctx);
    kt_ctx_info(ctx, "nobody hears this");
    assert_int_equal(kt_ctx_prompt(ctx, "Code: ", 1, &answer, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONV);
    assert_null(answer);
    kt_ctx_free(ctx);

    kt_error_clear(&err);
    kt_test_config_set(&cfg.base_url, "http://api.kontist.com");
    assert_null(kt_ctx_new(&cfg, NULL, &err));
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    kt_error_clear(&err);
    assert_null(kt_ctx_new(NULL, NULL, &err));
    assert_int_equal(err.kind, KT_ERR_INTERNAL);
    kt_test_config_free(&cfg);
}

/* ---- grants against the mock ------------------------------------------------------------ */

typedef struct fixture {
    kt_mock mock;
    kt_config cfg;
    kt_ctx *ctx;
} fixture;

static int mock_up_args(void **state, const char *const *args)
{
    fixture *f = calloc(1, sizeof(*f));
    kt_error err = {0};

    if (f == NULL || kt_mock_start(&f->mock, args) != 0) {
        free(f);
        return -1;
    }
    kt_test_config(&f->cfg, &f->mock);
    f->ctx = kt_ctx_new(&f->cfg, NULL, &err);
    *state = f;
    return f->ctx != NULL ? 0 : -1;
}

static int mock_up(void **state)
{
    return mock_up_args(state, NULL);
}

static int mock_up_rotating(void **state)
{
    const char *const args[] = {"--rotate-refresh", NULL};
    return mock_up_args(state, args);
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

/* Rebuilds the context after a configuration change. */
static void reconfigure(fixture *f)
{
    kt_error err = {0};

    kt_ctx_free(f->ctx);
    f->ctx = kt_ctx_new(&f->cfg, NULL, &err);
    assert_non_null(f->ctx);
}

static int grant(fixture *f, const char *user, const char *password, kt_token_set *t, kt_error *err)
{
    kt_error_clear(err);
    return kt_oauth_password_grant(f->ctx, user, password, t, err);
}

static void test_grant_success(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;
    time_t before = time(NULL);
    char path[1024], buf[4096];
    size_t n;
    FILE *log;

    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), 0);
    assert_non_null(t.access_token);
    assert_non_null(t.refresh_token);
    assert_string_equal(t.scope, "accounts offline users");
    assert_false(t.confirmed);
    assert_true(t.expires_at >= before + 3599 && t.expires_at <= time(NULL) + 3599);
    kt_token_set_free(&t);

    /* The form carries exactly the contract's fields, in order. */
    snprintf(path, sizeof(path), "%s/requests.jsonl", f->mock.state_dir);
    log = fopen(path, "r");
    assert_non_null(log);
    n = fread(buf, 1, sizeof(buf) - 1, log);
    fclose(log);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"body_keys\":[\"grant_type\",\"username\",\"password\","
                                "\"scope\"]"));
    assert_non_null(strstr(buf, "\"grant_type\":\"password\""));
    assert_null(strstr(buf, KT_DEMO_PASSWORD));
}

static void test_grant_without_offline_scope(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;

    kt_test_config_set(&f->cfg.scopes, "users accounts");
    reconfigure(f);
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), 0);
    assert_null(t.refresh_token);
    assert_string_equal(t.scope, "users accounts");
    kt_token_set_free(&t);
}

static void test_grant_public_client(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;

    /* Empty secret: "kontist-public:" in the Basic header. */
    kt_test_config_set(&f->cfg.client_id, "kontist-public");
    kt_test_config_set(&f->cfg.client_secret, NULL);
    reconfigure(f);
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), 0);
    kt_token_set_free(&t);
    kt_test_config_set(&f->cfg.client_secret, "");
    reconfigure(f);
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), 0);
    kt_token_set_free(&t);
}

static void test_grant_wrong_password(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;

    assert_int_equal(grant(f, KT_DEMO_USER, "wrong-password", &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_BAD_CREDENTIALS);
    assert_null(t.access_token);
    assert_int_equal(grant(f, "nobody@example.com", KT_DEMO_PASSWORD, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_BAD_CREDENTIALS);
}

static void test_grant_empty_password_not_sent(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;
    int requests = -1, conns = -1;

    assert_int_equal(grant(f, KT_DEMO_USER, "", &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_BAD_CREDENTIALS);
    assert_int_equal(grant(f, "", KT_DEMO_PASSWORD, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_BAD_CREDENTIALS);
    assert_int_equal(grant(f, NULL, NULL, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_BAD_CREDENTIALS);
    assert_int_equal(kt_mock_requests(&f->mock, &requests, &conns), 0);
    assert_int_equal(requests, 0);
}

static void test_grant_wrong_client(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;

    kt_test_config_set(&f->cfg.client_secret, "not-the-secret");
    reconfigure(f);
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    assert_non_null(strstr(err.message, "invalid_client"));

    kt_test_config_set(&f->cfg.client_id, "unknown-client");
    reconfigure(f);
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
}

static void test_grant_bad_scope(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;

    /* The bank refuses the grant: a refusal like any other but invalid_client, with the bank's
     * code and words in the message for whoever reads it. */
    kt_test_config_set(&f->cfg.scopes, "users bogus");
    reconfigure(f);
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_BAD_CREDENTIALS);
    assert_non_null(strstr(err.message, "invalid_scope: unknown scope bogus"));
}

static void test_grant_outages(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;

    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"status\","
                                             "\"status\":503,\"retry_after\":5,\"count\":1}"),
                     0);
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), -1);
    /* A 5xx that says when to come back is how many rate limiters answer: anyone can provoke it,
     * so it is a rate limit, not an outage. */
    assert_int_equal(err.kind, KT_ERR_RATE_LIMITED);
    assert_non_null(strstr(err.message, "retry after 5 s"));

    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"status\","
                                             "\"status\":503,\"count\":1}"),
                     0);
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);

    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"status\","
                                             "\"status\":429,\"retry_after\":30,\"count\":1}"),
                     0);
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_RATE_LIMITED);
    assert_non_null(strstr(err.message, "retry after 30 s"));
    assert_int_equal(kt_error_retry_after(&err), 30);

    /* Even with a wrong password an outage must read as an outage. */
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"status\","
                                             "\"status\":500,\"count\":1}"),
                     0);
    assert_int_equal(grant(f, KT_DEMO_USER, "wrong", &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);

    /* And the fault is gone: the login works again. */
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), 0);
    kt_token_set_free(&t);
}

static void test_grant_broken_answers(void **state)
{
    fixture *f = *state;
    const char *kinds[] = {"malformed_json", "huge_body"};
    kt_token_set t;
    kt_error err;
    char spec[256];
    size_t i;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        snprintf(spec, sizeof(spec), "{\"endpoint\":\"token\",\"kind\":\"%s\",\"count\":1}",
                 kinds[i]);
        assert_int_equal(kt_mock_fault(&f->mock, spec), 0);
        assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), -1);
        if (err.kind != KT_ERR_PROTOCOL)
            fail_msg("%s: got %s (%s)", kinds[i], kt_err_kind_name(err.kind), err.message);
        assert_null(t.access_token);
    }
    /* The real token under a wrong Content-Type is still the token. */
    assert_int_equal(kt_mock_fault(&f->mock,
                                   "{\"endpoint\":\"token\",\"kind\":\"wrong_content_type\","
                                   "\"count\":1}"),
                     0);
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), 0);
    assert_non_null(t.access_token);
    kt_token_set_free(&t);
}

/* The bank's refusals through the real client, whatever their body: never an outage. */
static void test_grant_refusal_bodies(void **state)
{
    fixture *f = *state;
    const struct {
        const char *spec;
        kt_err_kind password, refresh;
        const char *words;
    } cases[] = {
        {"\"status\":403,\"body\":{\"message\":\"Your account is locked\"}", KT_ERR_BAD_CREDENTIALS,
         KT_ERR_LOGIN_REQUIRED, "Your account is locked"},
        {"\"status\":401,\"body\":{\"error\":\"invalid_client\"}", KT_ERR_CONFIG, KT_ERR_CONFIG,
         "invalid_client"},
        {"\"status\":410,\"body\":\"<html>gone</html>\"", KT_ERR_BAD_CREDENTIALS,
         KT_ERR_LOGIN_REQUIRED, NULL},
        {"\"status\":422,\"body\":{}", KT_ERR_BAD_CREDENTIALS, KT_ERR_LOGIN_REQUIRED, NULL},
        {"\"status\":429,\"retry_after\":12,\"body\":{\"message\":\"slow down\"}",
         KT_ERR_RATE_LIMITED, KT_ERR_RATE_LIMITED, "retry after 12 s: slow down"},
        {"\"status\":503,\"body\":{\"error\":\"invalid_grant\"}", KT_ERR_UNAVAILABLE,
         KT_ERR_UNAVAILABLE, NULL},
    };
    kt_token_set t;
    kt_error err;
    char spec[256];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(spec, sizeof(spec), "{\"endpoint\":\"token\",\"kind\":\"status\",%s,\"count\":2}",
                 cases[i].spec);
        assert_int_equal(kt_mock_fault(&f->mock, spec), 0);
        if (grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err) != -1 ||
            err.kind != cases[i].password)
            fail_msg("%s: password grant got %s (%s)", cases[i].spec, kt_err_kind_name(err.kind),
                     err.message);
        if (cases[i].words != NULL)
            assert_non_null(strstr(err.message, cases[i].words));
        assert_null(strchr(err.message, '<'));
        kt_error_clear(&err);
        if (kt_oauth_refresh_grant(f->ctx, "some-refresh-token", &t, &err) != -1 ||
            err.kind != cases[i].refresh)
            fail_msg("%s: refresh grant got %s (%s)", cases[i].spec, kt_err_kind_name(err.kind),
                     err.message);
    }
}

static void test_grant_deadline_from_ctx(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;
    uint64_t t0;

    f->cfg.login_timeout = 1;
    assert_int_equal(
        kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"hang\",\"count\":1}"), 0);
    t0 = kt_now_ms();
    kt_ctx_start_deadline(f->ctx);
    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    /* The flow deadline (login_timeout 1 s), not the request timeout (10 s). */
    assert_true(kt_now_ms() - t0 < 8000);
}

static void test_refresh_keeps_token(void **state)
{
    fixture *f = *state;
    kt_token_set a, b;
    kt_error err;

    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &a, &err), 0);
    assert_int_equal(kt_oauth_refresh_grant(f->ctx, a.refresh_token, &b, &err), 0);
    assert_string_not_equal(b.access_token, a.access_token);
    /* What the bank answered, nothing more: keeping the old refresh token is the session's. */
    assert_null(b.refresh_token);
    assert_false(b.confirmed);
    kt_token_set_free(&b);
    /* Not rotated: the old refresh token still works. */
    assert_int_equal(kt_oauth_refresh_grant(f->ctx, a.refresh_token, &b, &err), 0);
    kt_token_set_free(&b);
    kt_token_set_free(&a);
}

static void test_refresh_rotates(void **state)
{
    fixture *f = *state;
    kt_token_set a, b;
    kt_error err;

    assert_int_equal(grant(f, KT_DEMO_USER, KT_DEMO_PASSWORD, &a, &err), 0);
    assert_int_equal(kt_oauth_refresh_grant(f->ctx, a.refresh_token, &b, &err), 0);
    assert_non_null(b.refresh_token);
    assert_string_not_equal(b.refresh_token, a.refresh_token);
    kt_token_set_free(&b);
    /* The retired token is refused as "log in again", not as an outage. */
    kt_error_clear(&err);
    assert_int_equal(kt_oauth_refresh_grant(f->ctx, a.refresh_token, &b, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);
    assert_null(b.access_token);
    kt_token_set_free(&a);
}

static void test_refresh_refused(void **state)
{
    fixture *f = *state;
    kt_token_set t;
    kt_error err;

    kt_error_clear(&err);
    assert_int_equal(kt_oauth_refresh_grant(f->ctx, "no-such-token", &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);
    kt_error_clear(&err);
    assert_int_equal(kt_oauth_refresh_grant(f->ctx, NULL, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);
    kt_error_clear(&err);
    assert_int_equal(kt_oauth_refresh_grant(f->ctx, "", &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);

    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"status\","
                                             "\"status\":502,\"count\":1}"),
                     0);
    kt_error_clear(&err);
    assert_int_equal(kt_oauth_refresh_grant(f->ctx, "no-such-token", &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_encode),
        cmocka_unit_test(test_form_build),
        cmocka_unit_test(test_parse_minimal),
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_jwt_confirmed),
        cmocka_unit_test(test_parse_bad_fields),
        cmocka_unit_test(test_parse_bad_documents),
        cmocka_unit_test(test_parse_success_leniency),
        cmocka_unit_test(test_token_status_by_body_shape),
        cmocka_unit_test(test_parse_oauth_errors),
        cmocka_unit_test(test_ctx_conversation),
        cmocka_unit_test(test_ctx_without_conversation),
        cmocka_unit_test_setup_teardown(test_grant_success, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_grant_without_offline_scope, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_grant_public_client, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_grant_wrong_password, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_grant_empty_password_not_sent, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_grant_wrong_client, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_grant_bad_scope, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_grant_outages, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_grant_broken_answers, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_grant_refusal_bodies, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_grant_deadline_from_ctx, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_refresh_keeps_token, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_refresh_rotates, mock_up_rotating, mock_down),
        cmocka_unit_test_setup_teardown(test_refresh_refused, mock_up, mock_down),
    };
    int rc = cmocka_run_group_tests_name("kt_oauth", tests, NULL, NULL);

    kt_mock_cleanup_shared();
    return rc;
}
