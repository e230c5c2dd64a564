/* kt_http: HTTPS-only transport, verification, timeouts, deadline, size cap, keep-alive. */
#include <config.h>

#include <dlfcn.h>
#include <netdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "kt_http.h"
#include "kt_json.h"
#include "kt_mock.h"

typedef struct fixture {
    kt_mock mock;
    kt_config cfg;
} fixture;

static const char *const token_form =
    "grant_type=password&username=demo%40example.com&password=demo-password-123"
    "&scope=accounts%20offline%20users";

static int mock_up_args(void **state, const char *const *args)
{
    fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || kt_mock_start(&f->mock, args) != 0) {
        free(f);
        return -1;
    }
    kt_test_config(&f->cfg, &f->mock);
    *state = f;
    return 0;
}

static int mock_up(void **state)
{
    return mock_up_args(state, NULL);
}

static int mock_up_untrusted(void **state)
{
    const char *const args[] = {"--cert-fault", "untrusted", NULL};
    return mock_up_args(state, args);
}

static int mock_up_wrong_host(void **state)
{
    const char *const args[] = {"--cert-fault", "wrong-host", NULL};
    return mock_up_args(state, args);
}

static int mock_down(void **state)
{
    fixture *f = *state;

    if (f != NULL) {
        kt_mock_stop(&f->mock);
        kt_test_config_free(&f->cfg);
        free(f);
    }
    return 0;
}

static int token_request(kt_http *http, kt_http_response *resp, kt_error *err)
{
    kt_http_request req = {.method = "POST",
                           .path = "/api/oauth/token",
                           .content_type = "application/x-www-form-urlencoded",
                           .body = token_form,
                           .body_len = strlen(token_form),
                           .auth = KT_AUTH_BASIC_CLIENT};
    return kt_http_send(http, &req, resp, err);
}

/* ---- offline ---------------------------------------------------------------------------- */

static void test_new_refuses_non_https(void **state)
{
    const char *bad[] = {"http://api.kontist.com",
                         "ftp://x",
                         "api.kontist.com",
                         "https://",
                         "https:///path",
                         "https://a b",
                         ""};
    kt_config cfg;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kt_error err = {0};
        kt_test_config(&cfg, NULL);
        kt_test_config_set(&cfg.base_url, bad[i]);
        assert_null(kt_http_new(&cfg, &err));
        assert_int_equal(err.kind, KT_ERR_CONFIG);
        kt_test_config_free(&cfg);
    }
    {
        kt_error err = {0};
        kt_test_config(&cfg, NULL);
        kt_test_config_set(&cfg.base_url, NULL);
        assert_null(kt_http_new(&cfg, &err));
        assert_int_equal(err.kind, KT_ERR_CONFIG);
        kt_test_config_free(&cfg);
    }
    {
        kt_error err = {0};
        assert_null(kt_http_new(NULL, &err));
        assert_int_equal(err.kind, KT_ERR_INTERNAL);
    }
}

static void test_new_accepts_https(void **state)
{
    kt_config cfg;
    kt_error err = {0};
    kt_http *http;

    (void)state;
    kt_test_config(&cfg, NULL);
    kt_test_config_set(&cfg.base_url, "HTTPS://api.kontist.com");
    http = kt_http_new(&cfg, &err);
    assert_non_null(http);
    assert_int_equal(err.kind, KT_OK);
    assert_int_equal(kt_http_connections(http), 0);
    kt_http_free(http);
    kt_http_free(NULL);
    kt_test_config_free(&cfg);
}

static void test_status_error_mapping(void **state)
{
    kt_http_response r = {.retry_after = -1};
    kt_error err;

    (void)state;
    r.status = 401;
    kt_error_clear(&err);
    assert_int_equal(kt_http_status_error(&r, "x", KT_ERR_PROTOCOL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);

    /* 429 is its own kind: anyone can trigger the bank's rate limit, so it must not read as an
     * outage (that would open a PAM stack's fallback). */
    r.status = 429;
    r.retry_after = 7;
    kt_error_clear(&err);
    kt_http_status_error(&r, "x", KT_ERR_PROTOCOL, &err);
    assert_int_equal(err.kind, KT_ERR_RATE_LIMITED);
    assert_non_null(strstr(err.message, "retry after 7 s"));
    assert_int_equal(kt_error_retry_after(&err), 7);
    r.retry_after = -1;
    kt_error_clear(&err);
    kt_http_status_error(&r, "x", KT_ERR_PROTOCOL, &err);
    assert_int_equal(err.kind, KT_ERR_RATE_LIMITED);
    assert_int_equal(kt_error_retry_after(&err), -1);

    r.status = 503;
    r.retry_after = -1;
    kt_error_clear(&err);
    kt_http_status_error(&r, "x", KT_ERR_PROTOCOL, &err);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    assert_null(strstr(err.message, "retry after"));

    r.status = 500;
    kt_error_clear(&err);
    kt_http_status_error(&r, "x", KT_ERR_PROTOCOL, &err);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);

    r.status = 404;
    kt_error_clear(&err);
    kt_http_status_error(&r, "x", KT_ERR_NOT_ENROLLED, &err);
    assert_int_equal(err.kind, KT_ERR_NOT_ENROLLED);

    r.status = 400;
    kt_error_clear(&err);
    kt_http_status_error(&r, "x", KT_ERR_MFA_FAILED, &err);
    assert_int_equal(err.kind, KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "400"));

    /* 403 and every other 4xx is the bank refusing on purpose: the caller's refusal kind, never
     * "unavailable". */
    for (long st = 400; st <= 499; st++) {
        if (st == 401 || st == 429)
            continue;
        r.status = st;
        kt_error_clear(&err);
        kt_http_status_error(&r, "x", KT_ERR_MFA_FAILED, &err);
        if (err.kind != KT_ERR_MFA_FAILED)
            fail_msg("HTTP %ld: got %s", st, kt_err_kind_name(err.kind));
    }

    /* Not an answer of this API at all: redirects are never followed, 1xx is never final. */
    r.status = 302;
    kt_error_clear(&err);
    kt_http_status_error(&r, "x", KT_ERR_MFA_FAILED, &err);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    r.status = 200; /* a success the caller does not take */
    kt_error_clear(&err);
    kt_http_status_error(&r, "x", KT_ERR_MFA_FAILED, &err);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
}

/* The bank's own words reach the message, made printable and bounded; an HTML page never does. */
static void test_status_error_server_words(void **state)
{
    char json[] =
        "{\"error\":\"challenge_used\",\"message\":\"challenge\\u0007 already \\\"used\\\"\"}";
    char html[] = "<html><body><h1>403 Forbidden</h1><script>x</script></body></html>";
    char big[600];
    kt_http_response r = {.status = 400, .retry_after = -1};
    kt_error err;
    size_t n;

    (void)state;
    r.body = json;
    r.body_len = strlen(json);
    r.content_type = (char *)(uintptr_t) "application/json";
    kt_error_clear(&err);
    kt_http_status_error(&r, "verify", KT_ERR_MFA_FAILED, &err);
    assert_int_equal(err.kind, KT_ERR_MFA_FAILED);
    assert_string_equal(err.message,
                        "verify: refused (HTTP 400): challenge_used: challenge? already ?used?");

    r.status = 403;
    r.body = html;
    r.body_len = strlen(html);
    r.content_type = (char *)(uintptr_t) "text/html";
    kt_error_clear(&err);
    kt_http_status_error(&r, "verify", KT_ERR_MFA_FAILED, &err);
    assert_string_equal(err.message, "verify: refused (HTTP 403)");

    /* A long message is cut, with "...", and the whole error stays within its buffer. */
    n = (size_t)snprintf(big, sizeof(big), "{\"message\":\"");
    memset(big + n, 'm', 500);
    snprintf(big + n + 500, sizeof(big) - n - 500, "\"}");
    r.status = 503;
    r.body = big;
    r.body_len = strlen(big);
    r.content_type = (char *)(uintptr_t) "application/json";
    kt_error_clear(&err);
    kt_http_status_error(&r, "verify", KT_ERR_MFA_FAILED, &err);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    assert_non_null(strstr(err.message, "mmm..."));
    assert_true(strlen(strstr(err.message, "mmm")) == KT_JSON_SERVER_TEXT_MAX);
}

static void test_now_ms_is_monotonic(void **state)
{
    uint64_t a, b;

    (void)state;
    a = kt_now_ms();
    b = kt_now_ms();
    assert_true(a > 0);
    assert_true(b >= a);
}

static void test_response_free_zeroes(void **state)
{
    kt_http_response r;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.body = strdup("secret");
    r.body_len = 6;
    r.content_type = strdup("application/json");
    kt_http_response_free(&r);
    assert_null(r.body);
    assert_null(r.content_type);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(r.retry_after, -1);
    kt_http_response_free(NULL);
}

static void test_bad_requests_refused(void **state)
{
    kt_config cfg;
    kt_error err;
    kt_http *http;
    kt_http_response resp;
    kt_http_request put = {.method = "PUT", .path = "/x"};
    kt_http_request nopath = {.method = "GET", .path = "x"};
    kt_http_request crlf = {.method = "GET", .path = "/x\r\nHost: evil"};
    kt_http_request bearer = {
        .method = "GET", .path = "/x", .auth = KT_AUTH_BEARER, .bearer = "tok\r\nX-Evil: 1"};
    kt_http_request nobearer = {.method = "GET", .path = "/x", .auth = KT_AUTH_BEARER};

    (void)state;
    kt_test_config(&cfg, NULL);
    kt_error_clear(&err);
    http = kt_http_new(&cfg, &err);
    assert_non_null(http);

    kt_error_clear(&err);
    assert_int_equal(kt_http_send(http, &put, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_INTERNAL);
    kt_error_clear(&err);
    assert_int_equal(kt_http_send(http, &nopath, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_INTERNAL);
    kt_error_clear(&err);
    assert_int_equal(kt_http_send(http, &crlf, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_INTERNAL);
    kt_error_clear(&err);
    assert_int_equal(kt_http_send(http, &bearer, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    kt_error_clear(&err);
    assert_int_equal(kt_http_send(http, &nobearer, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_LOGIN_REQUIRED);
    assert_int_equal(kt_http_connections(http), 0);

    /* A client id with a colon cannot be put into Basic authentication unambiguously. */
    kt_http_free(http);
    kt_test_config_set(&cfg.client_id, "a:b");
    kt_error_clear(&err);
    http = kt_http_new(&cfg, &err);
    assert_non_null(http);
    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    kt_http_free(http);
    kt_test_config_free(&cfg);
}

static void test_unreachable_is_unavailable(void **state)
{
    kt_config cfg;
    kt_error err = {0};
    kt_http *http;
    kt_http_response resp;

    (void)state;
    kt_test_config(&cfg, NULL); /* https://127.0.0.1:1: nothing listens there */
    http = kt_http_new(&cfg, &err);
    assert_non_null(http);
    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    kt_http_free(http);
    kt_test_config_free(&cfg);
}

/* The system resolver as libcurl's resolver thread calls it, interposed: SLOW_DNS_HOST fails only
 * after SLOW_DNS_SECONDS, like a resolver whose name servers do not answer. */
#define SLOW_DNS_HOST "slow.invalid"
#define SLOW_DNS_SECONDS 4
static atomic_int slow_dns_done;

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

    if (node != NULL && strcmp(node, SLOW_DNS_HOST) == 0) {
        sleep(SLOW_DNS_SECONDS);
        atomic_store(&slow_dns_done, 1);
        return EAI_AGAIN;
    }
    *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
    return real(node, service, hints, res);
}

static void test_slow_name_resolution_keeps_the_deadline(void **state)
{
    kt_config cfg;
    kt_error err = {0};
    kt_http *http;
    kt_http_response resp;
    uint64_t start;

    (void)state;
    kt_test_config(&cfg, NULL);
    kt_test_config_set(&cfg.base_url, "https://" SLOW_DNS_HOST);
    http = kt_http_new(&cfg, &err);
    assert_non_null(http);
    start = kt_now_ms();
    kt_http_set_deadline(http, start + 1000);
    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    kt_http_free(http);
    /* Not held up until the resolver gives up (after SLOW_DNS_SECONDS). */
    assert_true(kt_now_ms() - start < SLOW_DNS_SECONDS * 1000 - 200);
    assert_int_equal(atomic_load(&slow_dns_done), 0);
    /* Let the abandoned resolver thread finish before the program ends. */
    for (int i = 0; i < 100 && atomic_load(&slow_dns_done) == 0; i++)
        usleep(100000);
    usleep(200000);
    kt_test_config_free(&cfg);
}

/* ---- against the mock ------------------------------------------------------------------- */

static void test_password_grant_roundtrip(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http = kt_http_new(&f->cfg, &err);
    kt_http_response resp;

    assert_non_null(http);
    assert_int_equal(token_request(http, &resp, &err), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "application/json");
    assert_non_null(resp.body);
    assert_int_equal(strlen(resp.body), resp.body_len);
    assert_non_null(strstr(resp.body, "\"access_token\""));
    assert_int_equal(resp.retry_after, -1);
    kt_http_response_free(&resp);
    kt_http_free(http);
}

static void test_http_error_status_is_not_an_error(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http;
    kt_http_response resp;

    kt_test_config_set(&f->cfg.client_secret, "wrong-secret");
    http = kt_http_new(&f->cfg, &err);
    assert_non_null(http);
    assert_int_equal(token_request(http, &resp, &err), 0);
    assert_int_equal(err.kind, KT_OK);
    assert_int_equal(resp.status, 401);
    assert_non_null(strstr(resp.body, "invalid_client"));
    kt_http_response_free(&resp);
    kt_http_free(http);
}

static void test_headers_sent(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http = kt_http_new(&f->cfg, &err);
    kt_http_response resp;
    char path[1024], buf[8192];
    size_t n;
    FILE *log;

    assert_non_null(http);
    assert_int_equal(token_request(http, &resp, &err), 0);
    kt_http_response_free(&resp);
    kt_http_free(http);
    snprintf(path, sizeof(path), "%s/requests.jsonl", f->mock.state_dir);
    log = fopen(path, "r");
    assert_non_null(log);
    n = fread(buf, 1, sizeof(buf) - 1, log);
    fclose(log);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"accept\":\"application/json\""));
    assert_non_null(strstr(buf, "\"user-agent\":\"kontist-auth/"));
    assert_non_null(strstr(buf, "\"authorization\":\"Basic ***\""));
    assert_non_null(strstr(buf, "\"content-type\":\"application/x-www-form-urlencoded\""));
    assert_null(strstr(buf, "expect"));
}

static void test_status_fault_retry_after(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http = kt_http_new(&f->cfg, &err);
    kt_http_response resp;

    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"status\","
                                             "\"status\":429,\"retry_after\":7,\"count\":1}"),
                     0);
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"status\","
                                             "\"status\":503,\"retry_after\":"
                                             "\"Wed, 21 Oct 2015 07:28:00 GMT\",\"count\":1}"),
                     0);
    assert_int_equal(token_request(http, &resp, &err), 0);
    assert_int_equal(resp.status, 429);
    assert_int_equal(resp.retry_after, 7);
    kt_http_response_free(&resp);
    assert_int_equal(token_request(http, &resp, &err), 0);
    assert_int_equal(resp.status, 503);
    assert_int_equal(resp.retry_after, -1); /* an HTTP-date is not delta-seconds */
    kt_http_response_free(&resp);
    kt_http_free(http);
}

static void test_content_type_normalised(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http = kt_http_new(&f->cfg, &err);
    kt_http_response resp;

    assert_int_equal(
        kt_mock_fault(&f->mock,
                      "{\"endpoint\":\"token\",\"kind\":\"wrong_content_type\",\"count\":1}"),
        0);
    assert_int_equal(token_request(http, &resp, &err), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "text/html");
    kt_http_response_free(&resp);
    kt_http_free(http);
}

static void test_huge_body_is_protocol_error(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http = kt_http_new(&f->cfg, &err);
    kt_http_response resp;

    assert_int_equal(
        kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"huge_body\",\"count\":1}"), 0);
    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    assert_non_null(strstr(err.message, "response too large"));
    assert_null(resp.body);
    kt_http_free(http);
}

static void test_hang_times_out(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http;
    kt_http_response resp;
    uint64_t t0;

    f->cfg.timeout = 1;
    http = kt_http_new(&f->cfg, &err);
    assert_int_equal(
        kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"hang\",\"count\":1}"), 0);
    t0 = kt_now_ms();
    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    assert_true(kt_now_ms() - t0 >= 900);
    /* The configured 1 s, not the default 10 s. */
    assert_true(kt_now_ms() - t0 < 8000);
    kt_http_free(http);
}

static void test_deadline_cuts_request(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http;
    kt_http_response resp;
    uint64_t t0;

    f->cfg.timeout = 20;
    http = kt_http_new(&f->cfg, &err);
    assert_int_equal(
        kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"hang\",\"count\":1}"), 0);
    t0 = kt_now_ms();
    kt_http_set_deadline(http, t0 + 800);
    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    assert_non_null(strstr(err.message, "deadline"));
    /* The deadline (0.8 s), not the request timeout (20 s). */
    assert_true(kt_now_ms() - t0 < 8000);
    kt_http_free(http);
}

static void test_passed_deadline_sends_nothing(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http = kt_http_new(&f->cfg, &err);
    kt_http_response resp;
    int requests = -1, conns = -1;

    kt_http_set_deadline(http, kt_now_ms() - 1);
    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    assert_non_null(strstr(err.message, "deadline"));
    assert_int_equal(kt_http_connections(http), 0);
    assert_int_equal(kt_mock_requests(&f->mock, &requests, &conns), 0);
    assert_int_equal(requests, 0);

    /* Clearing the deadline makes the handle usable again. */
    kt_error_clear(&err);
    kt_http_set_deadline(http, 0);
    assert_int_equal(token_request(http, &resp, &err), 0);
    assert_int_equal(resp.status, 200);
    kt_http_response_free(&resp);
    kt_http_free(http);
}

static void test_cut_connection_is_unavailable(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http = kt_http_new(&f->cfg, &err);
    kt_http_response resp;

    assert_int_equal(
        kt_mock_fault(&f->mock, "{\"endpoint\":\"token\",\"kind\":\"close\",\"count\":1}"), 0);
    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    kt_http_free(http);
}

static void test_one_connection_per_flow(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http = kt_http_new(&f->cfg, &err);
    kt_http_response resp;
    int i, requests = 0, conns = 0;

    for (i = 0; i < 4; i++) {
        assert_int_equal(token_request(http, &resp, &err), 0);
        assert_int_equal(resp.status, 200);
        kt_http_response_free(&resp);
    }
    assert_int_equal(kt_http_connections(http), 1);
    kt_http_free(http);
    assert_int_equal(kt_mock_requests(&f->mock, &requests, &conns), 0);
    assert_int_equal(requests, 4);
    assert_int_equal(conns, 1);
}

/* The TLS handshake fails: UNAVAILABLE, and no request reached the server. */
static void assert_tls_refused(fixture *f)
{
    kt_error err = {0};
    kt_http *http = kt_http_new(&f->cfg, &err);
    kt_http_response resp;
    int requests = -1, conns = -1;

    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    kt_http_free(http);
    assert_int_equal(kt_mock_requests(&f->mock, &requests, &conns), 0);
    assert_int_equal(requests, 0);
}

static void test_system_store_rejects_mock_ca(void **state)
{
    fixture *f = *state;

    kt_test_config_set(&f->cfg.ca_file, NULL);
    assert_tls_refused(f);
}

static void test_untrusted_cert_refused(void **state)
{
    assert_tls_refused(*state);
}

static void test_wrong_host_refused(void **state)
{
    assert_tls_refused(*state);
}

/* "sha256//<base64 of SHA-256 of the server's SubjectPublicKeyInfo>". */
static char *server_pin(const kt_mock *m)
{
    char path[1024], *slash, *pin = NULL;
    unsigned char *der = NULL, md[32], b64[64];
    unsigned int mdlen = 0;
    X509 *cert = NULL;
    FILE *fp;
    int len;

    snprintf(path, sizeof(path), "%s", m->ca_file);
    slash = strrchr(path, '/');
    if (slash == NULL)
        return NULL;
    snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "server.pem");
    fp = fopen(path, "r");
    if (fp == NULL)
        return NULL;
    cert = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    if (cert == NULL)
        return NULL;
    len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
    if (len > 0 && EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1) {
        EVP_EncodeBlock(b64, md, (int)mdlen);
        pin = malloc(8 + strlen((char *)b64) + 1);
        if (pin != NULL)
            sprintf(pin, "sha256//%s", (char *)b64);
    }
    OPENSSL_free(der);
    X509_free(cert);
    return pin;
}

static void test_pinned_pubkey(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http;
    kt_http_response resp;
    char *pin = server_pin(&f->mock);

    assert_non_null(pin);
    kt_test_config_set(&f->cfg.pinned_pubkey, pin);
    http = kt_http_new(&f->cfg, &err);
    assert_int_equal(token_request(http, &resp, &err), 0);
    assert_int_equal(resp.status, 200);
    kt_http_response_free(&resp);
    kt_http_free(http);

    kt_test_config_set(&f->cfg.pinned_pubkey,
                       "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    http = kt_http_new(&f->cfg, &err);
    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    kt_http_free(http);
    free(pin);
}

static void test_environment_proxy_ignored(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_http *http;
    kt_http_response resp;

    /* Nothing listens on port 1: a request that went through this proxy would fail. */
    setenv("https_proxy", "http://127.0.0.1:1", 1);
    setenv("HTTPS_PROXY", "http://127.0.0.1:1", 1);
    setenv("all_proxy", "http://127.0.0.1:1", 1);
    http = kt_http_new(&f->cfg, &err);
    assert_int_equal(token_request(http, &resp, &err), 0);
    assert_int_equal(resp.status, 200);
    kt_http_response_free(&resp);
    kt_http_free(http);
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("all_proxy");

    /* A configured proxy is used. */
    kt_test_config_set(&f->cfg.proxy, "http://127.0.0.1:1");
    http = kt_http_new(&f->cfg, &err);
    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    kt_http_free(http);

    /* ... and no_proxy from the environment does not exempt the API from it. */
    kt_error_clear(&err);
    setenv("no_proxy", "*", 1);
    setenv("NO_PROXY", "*", 1);
    http = kt_http_new(&f->cfg, &err);
    assert_int_equal(token_request(http, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    kt_http_free(http);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
}

/* libcurl creates the file SSLKEYLOGFILE names and writes every TLS secret to it: in a privileged
 * process (su, sudo) that environment is the unprivileged caller's. */
static void test_keylog_environment_refused_when_privileged(void **state)
{
    kt_error err = {0};

    (void)state;
    unsetenv("SSLKEYLOGFILE");
    assert_int_equal(kt_http_check_environment(true, &err), 0);
    setenv("SSLKEYLOGFILE", "/etc/nologin", 1);
    assert_int_equal(kt_http_check_environment(true, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    assert_non_null(strstr(err.message, "SSLKEYLOGFILE"));
    kt_error_clear(&err);
    /* An unprivileged process may log its own secrets (debugging against a test server). */
    assert_int_equal(kt_http_check_environment(false, &err), 0);
    assert_int_equal(err.kind, KT_OK);
    /* An empty value names no file. */
    setenv("SSLKEYLOGFILE", "", 1);
    assert_int_equal(kt_http_check_environment(true, &err), 0);
    unsetenv("SSLKEYLOGFILE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_refuses_non_https),
        cmocka_unit_test(test_new_accepts_https),
        cmocka_unit_test(test_status_error_mapping),
        cmocka_unit_test(test_status_error_server_words),
        cmocka_unit_test(test_now_ms_is_monotonic),
        cmocka_unit_test(test_response_free_zeroes),
        cmocka_unit_test(test_bad_requests_refused),
        cmocka_unit_test(test_unreachable_is_unavailable),
        cmocka_unit_test(test_slow_name_resolution_keeps_the_deadline),
        cmocka_unit_test(test_keylog_environment_refused_when_privileged),
        cmocka_unit_test_setup_teardown(test_password_grant_roundtrip, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_http_error_status_is_not_an_error, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_headers_sent, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_status_fault_retry_after, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_content_type_normalised, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_huge_body_is_protocol_error, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_hang_times_out, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_deadline_cuts_request, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_passed_deadline_sends_nothing, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_cut_connection_is_unavailable, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_one_connection_per_flow, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_system_store_rejects_mock_ca, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_untrusted_cert_refused, mock_up_untrusted, mock_down),
        cmocka_unit_test_setup_teardown(test_wrong_host_refused, mock_up_wrong_host, mock_down),
        cmocka_unit_test_setup_teardown(test_pinned_pubkey, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_environment_proxy_ignored, mock_up, mock_down),
    };
    int rc = cmocka_run_group_tests_name("kt_http", tests, NULL, NULL);

    kt_mock_cleanup_shared();
    return rc;
}
