/* kt_token: token sets and the JWT peek. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "kt_token.h"

/* base64url without padding. */
static char *b64url(const char *in)
{
    size_t len = strlen(in), i, o = 0;
    unsigned char *std = malloc(4 * ((len + 2) / 3) + 1);
    char *out;

    assert_non_null(std);
    EVP_EncodeBlock(std, (const unsigned char *)in, (int)len);
    out = malloc(strlen((char *)std) + 1);
    assert_non_null(out);
    for (i = 0; std[i] != '\0'; i++) {
        if (std[i] == '=')
            break;
        out[o++] = std[i] == '+' ? '-' : std[i] == '/' ? '_' : (char)std[i];
    }
    out[o] = '\0';
    free(std);
    return out;
}

static char *make_jwt(const char *payload_json)
{
    char *h = b64url("{\"alg\":\"ES256\",\"typ\":\"JWT\"}");
    char *p = b64url(payload_json);
    size_t len = strlen(h) + strlen(p) + 16;
    char *jwt = malloc(len);

    assert_non_null(jwt);
    snprintf(jwt, len, "%s.%s.c2ln", h, p);
    free(h);
    free(p);
    return jwt;
}

static int peek(const char *jwt, time_t *exp, bool *confirmed, kt_err_kind *kind)
{
    kt_error err = {0};
    int rc = kt_jwt_peek(jwt, exp, confirmed, &err);

    *kind = err.kind;
    return rc;
}

static void test_peek_unconfirmed(void **state)
{
    char *jwt = make_jwt("{\"sub\":\"demo@example.com\",\"exp\":1900000000,\"scope\":\"x\"}");
    time_t exp = 0;
    bool confirmed = true;
    kt_err_kind kind;

    (void)state;
    assert_int_equal(peek(jwt, &exp, &confirmed, &kind), 0);
    assert_int_equal(exp, 1900000000);
    assert_false(confirmed);
    free(jwt);
}

static void test_peek_confirmed(void **state)
{
    char *jwt = make_jwt("{\"exp\":1700000001,\"cnf\":{\"kid\":\"dev-1\"}}");
    time_t exp = 0;
    bool confirmed = false;
    kt_err_kind kind;

    (void)state;
    assert_int_equal(peek(jwt, &exp, &confirmed, &kind), 0);
    assert_int_equal(exp, 1700000001);
    assert_true(confirmed);
    free(jwt);
}

static void test_peek_cnf_must_be_object(void **state)
{
    char *jwt = make_jwt("{\"exp\":1700000001,\"cnf\":\"dev-1\"}");
    time_t exp = 0;
    bool confirmed = true;
    kt_err_kind kind;

    (void)state;
    assert_int_equal(peek(jwt, &exp, &confirmed, &kind), 0);
    assert_false(confirmed);
    free(jwt);
}

static void test_peek_without_exp(void **state)
{
    char *jwt = make_jwt("{\"sub\":\"x\"}");
    time_t exp = 42;
    bool confirmed = true;
    kt_err_kind kind;

    (void)state;
    assert_int_equal(peek(jwt, &exp, &confirmed, &kind), 0);
    assert_int_equal(exp, 0);
    assert_false(confirmed);
    /* NULL outputs are fine. */
    assert_int_equal(peek(jwt, NULL, NULL, &kind), 0);
    free(jwt);
}

static void test_peek_bad_exp(void **state)
{
    const char *payloads[] = {
        "{\"exp\":\"1700000000\"}", "{\"exp\":1.7e9}",          "{\"exp\":0}",   "{\"exp\":-5}",
        "{\"exp\":true}",           "{\"exp\":99999999999999}", "{\"exp\":null}"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        char *jwt = make_jwt(payloads[i]);
        time_t exp;
        bool confirmed;
        kt_err_kind kind;

        assert_int_equal(peek(jwt, &exp, &confirmed, &kind), -1);
        assert_int_equal(kind, KT_ERR_PROTOCOL);
        free(jwt);
    }
}

static void test_peek_not_three_parts(void **state)
{
    char *p = b64url("{\"exp\":1700000000}");
    char buf[256];
    /* prefix, suffix around the payload */
    const char *shapes[][2] = {
        {"", ""}, {"hdr.", ""}, {"hdr.", ".sig.extra"}, {".", ".sig"}, {"hdr.", ".sig."}};
    size_t i;
    time_t exp;
    bool confirmed;
    kt_err_kind kind;

    (void)state;
    for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        snprintf(buf, sizeof(buf), "%s%s%s", shapes[i][0], p, shapes[i][1]);
        assert_int_equal(peek(buf, &exp, &confirmed, &kind), -1);
        assert_int_equal(kind, KT_ERR_PROTOCOL);
    }
    assert_int_equal(peek(NULL, &exp, &confirmed, &kind), -1);
    assert_int_equal(kind, KT_ERR_PROTOCOL);
    assert_int_equal(peek("", &exp, &confirmed, &kind), -1);
    free(p);
}

static void test_peek_bad_base64(void **state)
{
    const char *bad[] = {
        "h.eyJleHAiOjF9=.s",    /* padding is not base64url */
        "h.eyJle+AiOjF9.s",     /* standard alphabet */
        "h.eyJle AiOjF9.s",     /* space */
        "h.e.s",                /* one character: not a length base64 can have */
        "h..s",                 /* empty payload */
        "h.eyJleHAiOjF9\x01.s", /* control character */
    };
    size_t i;
    time_t exp;
    bool confirmed;
    kt_err_kind kind;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(peek(bad[i], &exp, &confirmed, &kind), -1);
        assert_int_equal(kind, KT_ERR_PROTOCOL);
    }
}

static void test_peek_payload_not_object(void **state)
{
    const char *payloads[] = {"[1,2]",        "\"exp\"", "17",       "{\"exp\":1",
                              "{\"exp\":1}x", "",        "{'exp':1}"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        char *jwt = make_jwt(payloads[i]);
        time_t exp;
        bool confirmed;
        kt_err_kind kind;

        if (peek(jwt, &exp, &confirmed, &kind) != -1 || kind != KT_ERR_PROTOCOL)
            fail_msg("payload %s accepted", payloads[i]);
        free(jwt);
    }
}

static void test_peek_oversized(void **state)
{
    size_t n = KT_TOKEN_MAX + 10;
    char *payload = malloc(n + 32);
    char *jwt;
    time_t exp;
    bool confirmed;
    kt_err_kind kind;

    (void)state;
    assert_non_null(payload);
    strcpy(payload, "{\"exp\":1700000000,\"pad\":\"");
    memset(payload + strlen(payload), 'a', n);
    strcpy(payload + 25 + n, "\"}");
    jwt = make_jwt(payload);
    assert_true(strlen(jwt) > KT_TOKEN_MAX);
    assert_int_equal(peek(jwt, &exp, &confirmed, &kind), -1);
    assert_int_equal(kind, KT_ERR_PROTOCOL);
    assert_non_null(strstr(payload, "\"}"));
    free(jwt);
    free(payload);
}

static void test_token_string_ok(void **state)
{
    char *big = malloc(KT_TOKEN_MAX + 2);

    (void)state;
    assert_true(kt_token_string_ok("abc.DEF-_~+/="));
    assert_false(kt_token_string_ok(NULL));
    assert_false(kt_token_string_ok(""));
    assert_false(kt_token_string_ok("a b"));
    assert_false(kt_token_string_ok("a\r\nb"));
    assert_false(kt_token_string_ok("caf\xc3\xa9"));
    assert_non_null(big);
    memset(big, 'a', KT_TOKEN_MAX);
    big[KT_TOKEN_MAX] = '\0';
    assert_true(kt_token_string_ok(big));
    big[KT_TOKEN_MAX] = 'a';
    big[KT_TOKEN_MAX + 1] = '\0';
    assert_false(kt_token_string_ok(big));
    free(big);
}

static void fill(kt_token_set *t)
{
    memset(t, 0, sizeof(*t));
    t->access_token = strdup("access");
    t->refresh_token = strdup("refresh");
    t->scope = strdup("offline users");
    t->username = strdup("demo@example.com");
    t->device_id = strdup("dev-1");
    t->expires_at = 1000;
    t->confirmed = true;
}

static void test_set_free_zeroes(void **state)
{
    kt_token_set t;

    (void)state;
    fill(&t);
    kt_token_set_free(&t);
    assert_null(t.access_token);
    assert_null(t.refresh_token);
    assert_null(t.scope);
    assert_null(t.username);
    assert_null(t.device_id);
    assert_int_equal(t.expires_at, 0);
    assert_false(t.confirmed);
    kt_token_set_free(&t); /* twice is fine */
    kt_token_set_free(NULL);
}

static void test_set_usable(void **state)
{
    kt_token_set t;

    (void)state;
    fill(&t);
    assert_true(kt_token_set_usable(&t, 900, 60));
    assert_true(kt_token_set_usable(&t, 940, 60));
    assert_false(kt_token_set_usable(&t, 941, 60));
    assert_false(kt_token_set_usable(&t, 1000, 0));
    assert_true(kt_token_set_usable(&t, 999, 0));
    assert_false(kt_token_set_usable(&t, 2000, 0));
    free(t.access_token);
    t.access_token = NULL;
    assert_false(kt_token_set_usable(&t, 0, 0));
    t.access_token = strdup("");
    assert_false(kt_token_set_usable(&t, 0, 0));
    assert_false(kt_token_set_usable(NULL, 0, 0));
    kt_token_set_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_unconfirmed),
        cmocka_unit_test(test_peek_confirmed),
        cmocka_unit_test(test_peek_cnf_must_be_object),
        cmocka_unit_test(test_peek_without_exp),
        cmocka_unit_test(test_peek_bad_exp),
        cmocka_unit_test(test_peek_not_three_parts),
        cmocka_unit_test(test_peek_bad_base64),
        cmocka_unit_test(test_peek_payload_not_object),
        cmocka_unit_test(test_peek_oversized),
        cmocka_unit_test(test_token_string_ok),
        cmocka_unit_test(test_set_free_zeroes),
        cmocka_unit_test(test_set_usable),
    };
    return cmocka_run_group_tests_name("kt_token", tests, NULL, NULL);
}
