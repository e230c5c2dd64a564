/* kt_token: token sets, and what the core reads from a JWT (kt_jwt_peek, kt_jwt_read). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt_mock.h"
#include "kt_token.h"

static int peek(const char *jwt, time_t *exp, bool *confirmed, kt_err_kind *kind)
{
    kt_error err = {0};
    int rc = kt_jwt_peek(jwt, exp, confirmed, &err);

    *kind = err.kind;
    return rc;
}

static void test_peek_unconfirmed(void **state)
{
    char *jwt = kt_test_jwt("{\"sub\":\"demo@example.com\",\"exp\":1900000000,\"scope\":\"x\"}");
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
    char *jwt = kt_test_jwt("{\"exp\":1700000001,\"cnf\":{\"kid\":\"dev-1\"}}");
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
    char *jwt = kt_test_jwt("{\"exp\":1700000001,\"cnf\":\"dev-1\"}");
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
    char *jwt = kt_test_jwt("{\"sub\":\"x\"}");
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
        char *jwt = kt_test_jwt(payloads[i]);
        time_t exp;
        bool confirmed;
        kt_err_kind kind;

        assert_int_equal(peek(jwt, &exp, &confirmed, &kind), -1);
        assert_int_equal(kind, KT_ERR_PROTOCOL);
        free(jwt);
    }
}

/* The encoded payload of an unsigned JWT with these claims (malloc'd). */
static char *payload_part(const char *claims)
{
    char *jwt = kt_test_jwt(claims);
    char *start = strchr(jwt, '.') + 1;
    char *p = strndup(start, (size_t)(strchr(start, '.') - start));

    assert_non_null(p);
    free(jwt);
    return p;
}

static void test_peek_not_three_parts(void **state)
{
    char *p = payload_part("{\"exp\":1700000000}");
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
        char *jwt = kt_test_jwt(payloads[i]);
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
    jwt = kt_test_jwt(payload);
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

/* ---- kt_jwt_read ----------------------------------------------------------------------- */

static int read_claims(const char *claims, kt_jwt_claims *c, kt_error *err)
{
    char *jwt = kt_test_jwt(claims);
    int rc;

    kt_error_clear(err);
    rc = kt_jwt_read(jwt, c, err);
    free(jwt);
    return rc;
}

static void test_read_all_claims(void **state)
{
    kt_jwt_claims c;
    kt_error err;

    (void)state;
    assert_int_equal(read_claims("{\"sub\":\"demo@example.com\",\"iat\":1700000000,"
                                 "\"exp\":1700000900,\"cnf\":{\"kid\":\"dev-1\",\"x\":1},\"y\":[]}",
                                 &c, &err),
                     0);
    assert_string_equal(c.sub, "demo@example.com");
    assert_int_equal(c.iat, 1700000000);
    assert_int_equal(c.exp, 1700000900);
    assert_true(c.confirmed);
    assert_string_equal(c.kid, "dev-1");
    /* Every claim may be missing: zero and "" say so. */
    assert_int_equal(read_claims("{}", &c, &err), 0);
    assert_string_equal(c.sub, "");
    assert_int_equal(c.iat, 0);
    assert_int_equal(c.exp, 0);
    assert_false(c.confirmed);
    assert_string_equal(c.kid, "");
    /* A cnf without kid confirms without naming a device; a cnf that is not an object does not
     * confirm, and its kid is not read. */
    assert_int_equal(read_claims("{\"cnf\":{}}", &c, &err), 0);
    assert_true(c.confirmed);
    assert_string_equal(c.kid, "");
    assert_int_equal(read_claims("{\"cnf\":\"dev-1\"}", &c, &err), 0);
    assert_false(c.confirmed);
    assert_string_equal(c.kid, "");
    /* A null sub or kid is as good as none. */
    assert_int_equal(read_claims("{\"sub\":null,\"cnf\":{\"kid\":null}}", &c, &err), 0);
    assert_string_equal(c.sub, "");
    assert_string_equal(c.kid, "");
}

/* before + n letters + after (malloc'd): claims with one long string in them. */
static char *claims_with_long(const char *before, size_t n, const char *after)
{
    size_t size = strlen(before) + n + strlen(after) + 1;
    char *out = malloc(size);

    assert_non_null(out);
    memcpy(out, before, strlen(before));
    memset(out + strlen(before), 'a', n);
    strcpy(out + strlen(before) + n, after);
    return out;
}

/* Only exp decides whether a token is used: an iat, sub or cnf.kid the core cannot read is left
 * out (and so never compared), never a reason to refuse the bank's token. */
static void test_read_leaves_out_bad_claims(void **state)
{
    static const char *const bad[] = {
        "{\"exp\":1700000900,\"sub\":5}",
        "{\"exp\":1700000900,\"sub\":true}",
        "{\"exp\":1700000900,\"sub\":{\"id\":\"x\"}}",
        "{\"exp\":1700000900,\"sub\":[\"x\"]}",
        "{\"exp\":1700000900,\"sub\":\"nul\\u0000byte\"}",
        "{\"exp\":1700000900,\"sub\":\"line\\nbreak\"}",
        "{\"exp\":1700000900,\"sub\":\"del\\u007f\"}",
        "{\"exp\":1700000900,\"iat\":\"1700000000\"}",
        "{\"exp\":1700000900,\"iat\":1.7e9}",
        "{\"exp\":1700000900,\"iat\":0}",
        "{\"exp\":1700000900,\"iat\":-1}",
        "{\"exp\":1700000900,\"iat\":99999999999999}",
        "{\"exp\":1700000900,\"cnf\":{\"kid\":7}}",
        "{\"exp\":1700000900,\"cnf\":{\"kid\":[\"dev-1\"]}}",
        "{\"exp\":1700000900,\"cnf\":{\"kid\":\"tab\\there\"}}",
    };
    kt_jwt_claims c;
    kt_error err;
    char *claims;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (read_claims(bad[i], &c, &err) != 0)
            fail_msg("claims %s refused: %s", bad[i], err.message);
        assert_string_equal(c.sub, "");
        assert_string_equal(c.kid, "");
        assert_int_equal(c.iat, 0);
        assert_int_equal(c.exp, 1700000900);
    }
    /* sub and kid must fit their buffers with room for the terminator; longer ones are left out. */
    claims = claims_with_long("{\"sub\":\"", sizeof(c.sub) - 1, "\"}");
    assert_int_equal(read_claims(claims, &c, &err), 0);
    assert_int_equal(strlen(c.sub), sizeof(c.sub) - 1);
    free(claims);
    claims = claims_with_long("{\"sub\":\"", sizeof(c.sub), "\"}");
    assert_int_equal(read_claims(claims, &c, &err), 0);
    assert_string_equal(c.sub, "");
    free(claims);
    claims = claims_with_long("{\"cnf\":{\"kid\":\"", sizeof(c.kid) - 1, "\"}}");
    assert_int_equal(read_claims(claims, &c, &err), 0);
    assert_int_equal(strlen(c.kid), sizeof(c.kid) - 1);
    free(claims);
    claims = claims_with_long("{\"cnf\":{\"kid\":\"", sizeof(c.kid), "\"}}");
    assert_int_equal(read_claims(claims, &c, &err), 0);
    assert_true(c.confirmed);
    assert_string_equal(c.kid, "");
    free(claims);
    /* What kt_jwt_peek refuses, kt_jwt_read refuses too: no JWT, or an exp that is not one. */
    assert_int_equal(kt_jwt_read(NULL, &c, &err), -1);
    assert_int_equal(kt_jwt_read("opaque", &c, &err), -1);
    assert_int_equal(read_claims("{\"exp\":\"soon\"}", &c, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    assert_int_equal(read_claims("{\"exp\":0}", &c, &err), -1);
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
        cmocka_unit_test(test_read_all_claims),
        cmocka_unit_test(test_read_leaves_out_bad_claims),
        cmocka_unit_test(test_token_string_ok),
        cmocka_unit_test(test_set_free_zeroes),
        cmocka_unit_test(test_set_usable),
    };
    return cmocka_run_group_tests_name("kt_token", tests, NULL, NULL);
}
