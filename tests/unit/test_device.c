/* kt_device (device binding endpoints and their parsers) and the kt_json helpers. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "kt_device.h"
#include "kt_http.h"
#include "kt_keys.h"
#include "kt_mock.h"
#include "kt_oauth.h"
#include "kt_secret.h"

#define JSON "application/json"

/* ---- ids ---------------------------------------------------------------------------------- */

static void test_device_id_ok(void **state)
{
    char id[KT_DEVICE_ID_MAX + 2];
    const char *bad[] = {"",    "../x", "a/b",  "a%2Fb",       "a?b", "a#b",
                         "a b", "a.b",  "a\nb", "caf\xc3\xa9", "a;b", "a\\b"};
    size_t i;

    (void)state;
    assert_true(kt_device_id_ok("daecde61-18a4-4010-a0f7-a8b21c27996a"));
    assert_true(kt_device_id_ok("A_z-09"));
    assert_false(kt_device_id_ok(NULL));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (kt_device_id_ok(bad[i]))
            fail_msg("id \"%s\" accepted", bad[i]);
    memset(id, 'a', KT_DEVICE_ID_MAX);
    id[KT_DEVICE_ID_MAX] = '\0';
    assert_true(kt_device_id_ok(id));
    id[KT_DEVICE_ID_MAX] = 'a';
    id[KT_DEVICE_ID_MAX + 1] = '\0';
    assert_false(kt_device_id_ok(id));
}

/* ---- json helpers ------------------------------------------------------------------------- */

static json_object *parse(long status, const char *ct, const char *body, kt_error *err)
{
    kt_error_clear(err);
    return kt_json_parse_response(status, ct, body, body != NULL ? strlen(body) : 0, "test", err);
}

static void expect_parse_fail(long status, const char *ct, const char *body)
{
    kt_error err;
    json_object *obj = parse(status, ct, body, &err);

    if (obj != NULL || err.kind != KT_ERR_PROTOCOL)
        fail_msg("status %ld ct %s body %s: accepted", status, ct, body);
}

static void test_json_parse_ok(void **state)
{
    kt_error err;
    json_object *obj;

    (void)state;
    obj = parse(200, JSON, "{\"a\":\"b\",\"n\":[1,{\"x\":null}],\"t\":true,\"e\":\"\\u00e9\\\"\"}",
                &err);
    assert_non_null(obj);
    assert_true(json_object_is_type(obj, json_type_object));
    kt_json_put_wiped(obj);
    obj = parse(201, JSON, "\r\n {}\t\n", &err);
    assert_non_null(obj);
    kt_json_put_wiped(obj);
    obj = parse(299, JSON, "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":1}}}}}}", &err);
    assert_non_null(obj);
    kt_json_put_wiped(obj);
    kt_json_put_wiped(NULL);
}

static void test_json_parse_rejects(void **state)
{
    char *big;
    kt_error err;

    (void)state;
    /* status */
    expect_parse_fail(199, JSON, "{}");
    expect_parse_fail(300, JSON, "{}");
    expect_parse_fail(400, JSON, "{}");
    expect_parse_fail(500, JSON, "{}");
    /* media type */
    expect_parse_fail(200, NULL, "{}");
    expect_parse_fail(200, "text/html", "{}");
    expect_parse_fail(200, "application/problem+json", "{}");
    expect_parse_fail(200, "", "{}");
    /* documents */
    expect_parse_fail(200, JSON, "");
    expect_parse_fail(200, JSON, "   ");
    expect_parse_fail(200, JSON, "[]");
    expect_parse_fail(200, JSON, "\"s\"");
    expect_parse_fail(200, JSON, "1");
    expect_parse_fail(200, JSON, "null");
    expect_parse_fail(200, JSON, "{");
    expect_parse_fail(200, JSON, "{}{}");
    expect_parse_fail(200, JSON, "{} x");
    expect_parse_fail(200, JSON, "{\"a\":1,}");
    expect_parse_fail(200, JSON, "{'a':1}");
    expect_parse_fail(200, JSON, "{\"a\":'b'}");
    expect_parse_fail(200, JSON, "{\"a\":NaN}");
    expect_parse_fail(200, JSON, "{\"a\":Infinity}");
    expect_parse_fail(200, JSON, "{a:1}");
    expect_parse_fail(200, JSON, "{\"a\":01}");
    expect_parse_fail(200, JSON, "{\"a\":\"\\x41\"}");
    expect_parse_fail(200, JSON, "{\"a\":\"\xc3\x28\"}"); /* invalid UTF-8 */
    expect_parse_fail(200, JSON, "{\"a\":1} /* c */");
    /* nesting deeper than any API answer */
    expect_parse_fail(200, JSON, "{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}");
    /* embedded NUL and oversized input */
    kt_error_clear(&err);
    assert_null(kt_json_parse_response(200, JSON, "{}\0", 3, "t", &err));
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    big = malloc(KT_HTTP_MAX_BODY + 2);
    assert_non_null(big);
    memset(big, ' ', KT_HTTP_MAX_BODY + 1);
    big[0] = '{';
    big[KT_HTTP_MAX_BODY] = '}';
    big[KT_HTTP_MAX_BODY + 1] = '\0';
    expect_parse_fail(200, JSON, big);
    free(big);
}

static void test_json_parse_body_ignores_status(void **state)
{
    kt_error err = {0};
    json_object *obj = kt_json_parse_body(JSON, "{\"error\":\"x\"}", 13, "t", &err);

    (void)state;
    assert_non_null(obj);
    kt_json_put_wiped(obj);
    assert_null(kt_json_parse_body("text/plain", "{}", 2, "t", &err));
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
}

static void test_json_get_string(void **state)
{
    kt_error err = {0};
    json_object *obj =
        parse(200, JSON,
              "{\"s\":\"v\",\"e\":\"\",\"n\":1,\"z\":null,\"o\":{},\"u\":\"\\u00e9\","
              "\"nul\":\"a\\u0000b\"}",
              &err);
    const char *bad[] = {"e", "n", "z", "o", "missing", "nul"};
    static char sentinel[] = "sentinel";
    char *out = sentinel;
    size_t i;

    (void)state;
    assert_non_null(obj);
    assert_int_equal(kt_json_get_string(obj, "s", &out, "t", &err), 0);
    assert_string_equal(out, "v");
    free(out);
    assert_int_equal(kt_json_get_string(obj, "u", &out, "t", &err), 0);
    assert_string_equal(out, "\xc3\xa9");
    free(out);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kt_error_clear(&err);
        out = sentinel;
        assert_int_equal(kt_json_get_string(obj, bad[i], &out, "t", &err), -1);
        assert_int_equal(err.kind, KT_ERR_PROTOCOL);
        assert_null(out);
        assert_non_null(strstr(err.message, bad[i]));
    }
    kt_error_clear(&err);
    assert_int_equal(kt_json_get_string(NULL, "s", &out, "t", &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    kt_json_put_wiped(obj);
}

static void test_json_build(void **state)
{
    const char *pairs[] = {"name", "a \"quoted\" \\ name/\n\t\x01", "key", "caf\xc3\xa9", NULL};
    const char *empty[] = {NULL};
    const char *odd[] = {"a", NULL};
    kt_error err = {0};
    json_object *obj;
    char *s, *v = NULL;

    (void)state;
    s = kt_json_build(pairs);
    assert_non_null(s);
    assert_string_equal(s, "{\"name\":\"a \\\"quoted\\\" \\\\ name/\\n\\t\\u0001\","
                           "\"key\":\"caf\xc3\xa9\"}");
    /* What we build, we parse back to the same values. */
    obj = parse(200, JSON, s, &err);
    assert_non_null(obj);
    assert_int_equal(kt_json_get_string(obj, "name", &v, "t", &err), 0);
    assert_string_equal(v, pairs[1]);
    free(v);
    kt_json_put_wiped(obj);
    free(s);
    s = kt_json_build(empty);
    assert_string_equal(s, "{}");
    free(s);
    assert_null(kt_json_build(odd));
    assert_null(kt_json_build(NULL));
}

static void test_json_media_type(void **state)
{
    (void)state;
    assert_true(kt_json_media_type("application/json"));
    assert_true(kt_json_media_type("application/json; charset=utf-8"));
    assert_true(kt_json_media_type("APPLICATION/Json;charset=UTF-8"));
    assert_true(kt_json_media_type(" application/json ;x=y"));
    assert_false(kt_json_media_type("application/jsonx"));
    assert_false(kt_json_media_type("application/json x"));
    assert_false(kt_json_media_type("application/problem+json"));
    assert_false(kt_json_media_type("text/html"));
    assert_false(kt_json_media_type(""));
    assert_false(kt_json_media_type(NULL));
}

static void test_json_server_text(void **state)
{
    char code[16], text[32], words[KT_JSON_SERVER_TEXT_MAX + 1];
    const char *both = "{\"error\":\"e1\",\"error_description\":\"d1\",\"message\":\"m1\"}";
    const char *msg = "{\"error\":5,\"message\":\"caf\\u00e9 \\\"x\\\" \\u0000 end\"}";
    const char *longer = "{\"message\":\"0123456789012345678901234567890123456789\"}";

    (void)state;
    kt_json_server_text(both, strlen(both), code, sizeof(code), text, sizeof(text));
    assert_string_equal(code, "e1");
    assert_string_equal(text, "d1"); /* error_description before message */
    kt_json_server_text(msg, strlen(msg), code, sizeof(code), text, sizeof(text));
    assert_string_equal(code, "");
    assert_string_equal(text, "caf? ?x? ? end");
    /* Cut to the buffer, and said so. */
    kt_json_server_text(longer, strlen(longer), NULL, 0, text, sizeof(text));
    assert_int_equal(strlen(text), sizeof(text) - 1);
    assert_string_equal(text + sizeof(text) - 4, "...");
    /* Nothing from anything but a JSON object. */
    kt_json_server_words("<p>\"message\":\"x\"</p>", 21, words, sizeof(words));
    assert_string_equal(words, "");
    kt_json_server_words("[\"message\"]", 11, words, sizeof(words));
    assert_string_equal(words, "");
    kt_json_server_words(NULL, 0, words, sizeof(words));
    assert_string_equal(words, "");
    kt_json_server_words(both, strlen(both), words, sizeof(words));
    assert_string_equal(words, "e1: d1");
}

/* ---- wiping json-c's copies of secrets ---------------------------------------------------- */

static bool all_zero(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != '\0')
            return false;
    return true;
}

static const char *member_string(json_object *obj, const char *key, size_t *len)
{
    json_object *v = NULL;

    assert_true(json_object_object_get_ex(obj, key, &v));
    assert_true(json_object_is_type(v, json_type_string));
    *len = (size_t)json_object_get_string_len(v);
    return json_object_get_string(v);
}

static void test_json_wipe_values(void **state)
{
    const char *text = "{\"access_token\":\"eyJ.secret-access.sig\",\"n\":{\"refresh_token\":"
                       "\"r-secret-refresh\",\"list\":[\"s-3\",1,{\"k\":\"deep-secret\"}]},"
                       "\"x\":\"s\",\"u\":\"\\u00e9t\\u00e9\"}";
    kt_error err = {0};
    json_object *obj, *n, *list, *v = NULL;
    const char *p[6];
    size_t len[6], i;

    (void)state;
    obj = kt_json_parse_text(text, strlen(text), "t", &err);
    assert_non_null(obj);
    assert_true(json_object_object_get_ex(obj, "n", &n));
    assert_true(json_object_object_get_ex(n, "list", &list));
    p[0] = member_string(obj, "access_token", &len[0]);
    p[1] = member_string(n, "refresh_token", &len[1]);
    p[2] = json_object_get_string(json_object_array_get_idx(list, 0));
    len[2] = 3;
    p[3] = member_string(json_object_array_get_idx(list, 2), "k", &len[3]);
    p[4] = member_string(obj, "x", &len[4]);
    p[5] = member_string(obj, "u", &len[5]);
    assert_string_equal(p[0], "eyJ.secret-access.sig");
    assert_string_equal(p[3], "deep-secret");

    kt_json_wipe(obj);
    /* The very buffers json-c will free read back as zeros before the put. */
    for (i = 0; i < 6; i++)
        if (!all_zero(p[i], len[i]))
            fail_msg("string %zu not wiped", i);
    /* The tree itself is intact: still an object with the same members. */
    assert_true(json_object_object_get_ex(obj, "access_token", &v));
    kt_json_put_wiped(obj);
}

static void test_json_tokener_wipe(void **state)
{
    const char *whole = "{\"access_token\":\"tok-secret-1\",\"refresh_token\":\"ref-secret-2\"}";
    const char *unfinished = "{\"access_token\":\"tok-secret-3\",\"n\":{\"r\":\"ref-secret-4\","
                             "\"half\":\"half-sec";
    const char *broken = "{\"access_token\":\"tok-secret-5\",\"n\":[\"ref-secret-6\",x]}";
    struct json_tokener *tok;
    json_object *obj;
    const char *a, *r;
    size_t alen, rlen;

    (void)state;
    /* A finished parse: the values are the caller's, the scratch buffer still holds the last
     * string of the text until the tokener wipes it. */
    tok = kt_json_tokener_new(8, JSON_TOKENER_STRICT);
    assert_non_null(tok);
    obj = json_tokener_parse_ex(tok, whole, (int)strlen(whole));
    assert_non_null(obj);
    assert_non_null(memmem(tok->pb->buf, (size_t)tok->pb->size, "ref-secret-2", 12));
    kt_json_tokener_wipe(tok);
    assert_true(all_zero(tok->pb->buf, (size_t)tok->pb->size));
    kt_json_tokener_free_wiped(tok);
    /* ...and the values handed out are not the tokener's to wipe: they are intact. */
    assert_string_equal(member_string(obj, "access_token", &alen), "tok-secret-1");
    assert_string_equal(member_string(obj, "refresh_token", &rlen), "ref-secret-2");
    kt_json_put_wiped(obj);

    /* An unfinished parse keeps half-built values on the tokener's stack, and the string it was
     * in the middle of in its buffer; json_tokener_free would put them unwiped. */
    tok = kt_json_tokener_new(8, JSON_TOKENER_STRICT);
    assert_non_null(tok);
    assert_null(json_tokener_parse_ex(tok, unfinished, (int)strlen(unfinished)));
    assert_int_equal(json_tokener_get_error(tok), json_tokener_continue);
    assert_non_null(tok->stack[0].current);
    a = member_string(tok->stack[0].current, "access_token", &alen);
    assert_true(tok->depth >= 1);
    r = NULL;
    for (int d = 1; d <= tok->depth; d++)
        if (tok->stack[d].current != NULL &&
            json_object_is_type(tok->stack[d].current, json_type_object))
            r = member_string(tok->stack[d].current, "r", &rlen);
    assert_non_null(r);
    assert_string_equal(a, "tok-secret-3");
    assert_string_equal(r, "ref-secret-4");
    assert_non_null(memmem(tok->pb->buf, (size_t)tok->pb->size, "half-sec", 8));
    kt_json_tokener_wipe(tok);
    assert_true(all_zero(a, alen));
    assert_true(all_zero(r, rlen));
    assert_true(all_zero(tok->pb->buf, (size_t)tok->pb->size));
    kt_json_tokener_free_wiped(tok);

    /* A failed parse likewise. */
    tok = kt_json_tokener_new(8, JSON_TOKENER_STRICT);
    assert_non_null(tok);
    assert_null(json_tokener_parse_ex(tok, broken, (int)strlen(broken)));
    assert_int_not_equal(json_tokener_get_error(tok), json_tokener_continue);
    a = member_string(tok->stack[0].current, "access_token", &alen);
    kt_json_tokener_wipe(tok);
    assert_true(all_zero(a, alen));
    assert_null(memmem(tok->pb->buf, (size_t)tok->pb->size, "secret", 6));
    kt_json_tokener_free_wiped(tok);
    kt_json_tokener_free_wiped(NULL);
}

/* ---- response parsers --------------------------------------------------------------------- */

static void test_parse_create(void **state)
{
    const char *ok = "{\"deviceId\":\"d-1\",\"challengeId\":\"c_2\"}";
    const char *bad[] = {
        "{\"challengeId\":\"c\"}",
        "{\"deviceId\":\"d\"}",
        "{\"deviceId\":\"\",\"challengeId\":\"c\"}",
        "{\"deviceId\":1,\"challengeId\":\"c\"}",
        "{\"deviceId\":\"d\",\"challengeId\":null}",
        "{\"deviceId\":\"../../oauth/token\",\"challengeId\":\"c\"}",
        "{\"deviceId\":\"d\",\"challengeId\":\"c/verify\"}",
        "[\"d\",\"c\"]",
    };
    char *dev = NULL, *ch = NULL;
    kt_error err = {0};
    size_t i;

    (void)state;
    assert_int_equal(kt_device_parse_create(201, JSON, ok, strlen(ok), &dev, &ch, &err), 0);
    assert_string_equal(dev, "d-1");
    assert_string_equal(ch, "c_2");
    free(dev);
    free(ch);
    assert_int_equal(kt_device_parse_create(200, JSON, ok, strlen(ok), &dev, &ch, &err), 0);
    free(dev);
    free(ch);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kt_error_clear(&err);
        assert_int_equal(kt_device_parse_create(201, JSON, bad[i], strlen(bad[i]), &dev, &ch, &err),
                         -1);
        assert_int_equal(err.kind, KT_ERR_PROTOCOL);
        assert_null(dev);
        assert_null(ch);
    }
    kt_error_clear(&err);
    assert_int_equal(kt_device_parse_create(201, "text/html", ok, strlen(ok), &dev, &ch, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    kt_error_clear(&err);
    assert_int_equal(kt_device_parse_create(400, JSON, ok, strlen(ok), &dev, &ch, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
}

static void test_parse_challenge(void **state)
{
    const char *ok = "{\"id\":\"83d1a026-dc80\",\"stringToSign\":\"7b6ad39f 1593/x\"}";
    const char *bad[] = {
        "{\"stringToSign\":\"s\"}",
        "{\"id\":\"c\"}",
        "{\"id\":\"c\",\"stringToSign\":\"\"}",
        "{\"id\":\"c\",\"stringToSign\":5}",
        "{\"id\":\"c?x=1\",\"stringToSign\":\"s\"}",
        "{\"id\":[],\"stringToSign\":\"s\"}",
    };
    char *id = NULL, *sts = NULL;
    kt_error err = {0};
    size_t i;

    (void)state;
    assert_int_equal(kt_device_parse_challenge(201, JSON, ok, strlen(ok), &id, &sts, &err), 0);
    assert_string_equal(id, "83d1a026-dc80");
    assert_string_equal(sts, "7b6ad39f 1593/x"); /* signed as is: no validation of content */
    free(id);
    free(sts);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kt_error_clear(&err);
        assert_int_equal(
            kt_device_parse_challenge(201, JSON, bad[i], strlen(bad[i]), &id, &sts, &err), -1);
        assert_int_equal(err.kind, KT_ERR_PROTOCOL);
        assert_null(id);
        assert_null(sts);
    }
    kt_error_clear(&err);
    assert_int_equal(kt_device_parse_challenge(201, NULL, ok, strlen(ok), &id, &sts, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
}

static char *confirmed_body(const char *claims, const char *rest)
{
    char *jwt = kt_test_jwt(claims);
    char *body = malloc(2048);

    assert_non_null(body);
    snprintf(body, 2048, "{\"token\":\"%s\"%s}", jwt, rest);
    free(jwt);
    return body;
}

static int parse_confirmed(const char *body, kt_token_set *t, kt_error *err)
{
    kt_error_clear(err);
    return kt_device_parse_confirmed(200, JSON, body, strlen(body), t, err);
}

static void test_parse_confirmed(void **state)
{
    const char *cnf = "{\"exp\":1900000000,\"cnf\":{\"kid\":\"d-1\"}}";
    kt_token_set t;
    kt_error err;
    char *body;
    size_t i;
    struct {
        const char *claims, *rest;
    } bad[] = {
        {"{\"cnf\":{\"kid\":\"d\"}}", ""},   /* no exp */
        {"{\"exp\":\"1900000000\"}", ""},    /* exp not an integer */
        {cnf, ",\"refresh_token\":7"},       /* wrong type */
        {cnf, ",\"refresh_token\":\"\""},    /* empty */
        {cnf, ",\"refresh_token\":\"a b\""}, /* not a header-safe token */
        {"[]", ""},                          /* payload not an object */
    };

    (void)state;
    body = confirmed_body(cnf, ",\"refresh_token\":\"r-1\"");
    assert_int_equal(parse_confirmed(body, &t, &err), 0);
    assert_true(t.confirmed);
    assert_int_equal(t.expires_at, 1900000000);
    assert_string_equal(t.refresh_token, "r-1");
    kt_token_set_free(&t);
    free(body);

    body = confirmed_body("{\"exp\":1900000000}", ",\"refresh_token\":null");
    assert_int_equal(parse_confirmed(body, &t, &err), 0);
    assert_false(t.confirmed);
    assert_null(t.refresh_token);
    kt_token_set_free(&t);
    free(body);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        body = confirmed_body(bad[i].claims, bad[i].rest);
        assert_int_equal(parse_confirmed(body, &t, &err), -1);
        assert_int_equal(err.kind, KT_ERR_PROTOCOL);
        assert_null(t.access_token);
        assert_null(t.refresh_token);
        free(body);
    }
    assert_int_equal(parse_confirmed("{\"token\":\"opaque\"}", &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    assert_int_equal(parse_confirmed("{\"token\":\"\"}", &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    assert_int_equal(parse_confirmed("{\"access_token\":\"a.b.c\"}", &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    kt_error_clear(&err);
    assert_int_equal(kt_device_parse_confirmed(204, JSON, "", 0, &t, &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
}

/* The confirmed token's expiry, from claims made relative to now (the bank's clock = now + skew).
 */
static time_t confirmed_expiry(long skew, long lifetime, bool with_iat)
{
    time_t now = time(NULL);
    char claims[160];
    kt_token_set t;
    kt_error err;
    time_t got;
    char *body;

    if (with_iat)
        snprintf(claims, sizeof(claims), "{\"iat\":%lld,\"exp\":%lld,\"cnf\":{\"kid\":\"d-1\"}}",
                 (long long)(now + skew), (long long)(now + skew + lifetime));
    else
        snprintf(claims, sizeof(claims), "{\"exp\":%lld,\"cnf\":{\"kid\":\"d-1\"}}",
                 (long long)(now + skew + lifetime));
    body = confirmed_body(claims, "");
    if (parse_confirmed(body, &t, &err) != 0)
        fail_msg("%s: %s", claims, err.message);
    got = t.expires_at;
    kt_token_set_free(&t);
    free(body);
    return got;
}

static void assert_near(time_t got, time_t want)
{
    /* A few seconds for the time the parse takes. */
    if (got < want - 1 || got > want + 5)
        fail_msg("expires_at %lld, want about %lld (now %lld)", (long long)got, (long long)want,
                 (long long)time(NULL));
}

/* A confirmed token lives exp - iat seconds from when it arrives, on this machine's clock: a clock
 * two hours behind the bank's does not hand out expired tokens for two hours, nor does one two
 * hours ahead throw good ones away. */
static void test_parse_confirmed_expiry_is_lifetime(void **state)
{
    time_t now = time(NULL);

    (void)state;
    /* The bank's clock 2 h ahead: exp is far in our future, the token is not. */
    assert_near(confirmed_expiry(7200, 900, true), now + 900);
    /* 2 h behind: exp has passed on our clock, yet the token is fresh. */
    assert_near(confirmed_expiry(-7200, 900, true), now + 900);
    /* In step. */
    assert_near(confirmed_expiry(0, 900, true), now + 900);
    /* Without iat there is no lifetime: exp is all there is. */
    assert_near(confirmed_expiry(7200, 900, false), now + 7200 + 900);
    assert_near(confirmed_expiry(-7200, 900, false), now - 7200 + 900);
    /* An iat after exp makes no lifetime either. */
    assert_near(confirmed_expiry(0, -60, true), now - 60);
}

/* ---- device answers: call x status x body shape ----------------------------------------- */

typedef struct body_shape {
    const char *name;
    const char *content_type;
    const char *body;
    const char *words; /* what of it must reach the message, or NULL: nothing may */
} body_shape;

static const body_shape shapes[] = {
    {"API error", JSON,
     "{\"error\":\"invalid_signature\",\"message\":\"signature does not verify\"}",
     "invalid_signature: signature does not verify"},
    {"message only", "application/json; charset=utf-8", "{\"message\":\"Device is blocked\"}",
     "Device is blocked"},
    {"RFC 6749", JSON, "{\"error\":\"invalid_token\",\"error_description\":\"expired\"}",
     "invalid_token: expired"},
    {"problem+json", "application/problem+json", "{\"title\":\"x\",\"message\":\"Conflict\"}",
     "Conflict"},
    {"GraphQL errors", JSON, "{\"errors\":[{\"message\":\"Device limit reached\"}]}",
     "Device limit reached"},
    {"JSON without words", JSON, "{\"detail\":{\"message\":\"nested\"}}", NULL},
    {"truncated JSON", JSON, "{\"error\":\"x\"", NULL},
    {"HTML", "text/html", "<html><body><h1>Forbidden</h1></body></html>", NULL},
    {"plain text", "text/plain", "Request blocked", NULL},
    {"empty", NULL, "", NULL},
};

static const struct {
    kt_device_call call;
    const char *name;
} calls[] = {
    {KT_DEVICE_CREATE, "create device"},
    {KT_DEVICE_VERIFY, "verify device"},
    {KT_DEVICE_CHALLENGE, "create challenge"},
    {KT_DEVICE_CHALLENGE_VERIFY, "verify challenge"},
};

/* What a device answer must mean: by status, whatever its body. */
static kt_err_kind device_kind(kt_device_call call, long status)
{
    if (status == 401)
        return KT_ERR_LOGIN_REQUIRED;
    if (status == 404 && call == KT_DEVICE_CHALLENGE)
        return KT_ERR_NOT_ENROLLED;
    if (status == 429)
        return KT_ERR_RATE_LIMITED;
    if (status >= 400 && status <= 499)
        return KT_ERR_MFA_FAILED;
    if (status >= 500 && status <= 599)
        return KT_ERR_UNAVAILABLE;
    /* Any 2xx is a yes, verify's included (the bank may verify with 201 or 202 as well). */
    if (status >= 200 && status <= 299)
        return KT_OK;
    return KT_ERR_PROTOCOL;
}

static void test_device_status_by_body_shape(void **state)
{
    const long statuses[] = {200, 201, 202, 204, 299, 100, 301, 302, 304, 307, 400,
                             401, 402, 403, 404, 405, 409, 410, 412, 415, 422, 423,
                             451, 499, 429, 500, 501, 502, 503, 504, 599};
    size_t c, i, j;

    (void)state;
    for (c = 0; c < sizeof(calls) / sizeof(calls[0]); c++) {
        for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
            for (j = 0; j < sizeof(shapes) / sizeof(shapes[0]); j++) {
                kt_http_response r = {.status = statuses[i],
                                      .body = (char *)(uintptr_t)shapes[j].body,
                                      .body_len = strlen(shapes[j].body),
                                      .content_type = (char *)(uintptr_t)shapes[j].content_type,
                                      .retry_after = -1};
                kt_err_kind want = device_kind(calls[c].call, statuses[i]);
                kt_error err;
                int rc;

                kt_error_clear(&err);
                rc = kt_device_check_status(calls[c].call, &r, "dev-1", &err);
                if ((want == KT_OK) != (rc == 0) || err.kind != want)
                    fail_msg("%s, HTTP %ld, %s: got %d %s (%s), want %s", calls[c].name,
                             statuses[i], shapes[j].name, rc, kt_err_kind_name(err.kind),
                             err.message, kt_err_kind_name(want));
                if (want == KT_OK)
                    continue;
                assert_non_null(strstr(err.message, calls[c].name));
                if (statuses[i] >= 400 && shapes[j].words != NULL &&
                    strstr(err.message, shapes[j].words) == NULL)
                    fail_msg("%s, HTTP %ld, %s: \"%s\" lacks \"%s\"", calls[c].name, statuses[i],
                             shapes[j].name, err.message, shapes[j].words);
                if (strchr(err.message, '<') != NULL || strstr(err.message, "Request blocked") ||
                    strstr(err.message, "nested"))
                    fail_msg("%s, HTTP %ld, %s: body copied into \"%s\"", calls[c].name,
                             statuses[i], shapes[j].name, err.message);
            }
        }
    }
}

static void test_device_status_details(void **state)
{
    kt_http_response r = {.status = 429, .body = (char *)(uintptr_t) "", .retry_after = 42};
    kt_error err;

    (void)state;
    kt_error_clear(&err);
    assert_int_equal(kt_device_check_status(KT_DEVICE_CHALLENGE_VERIFY, &r, "d", &err), -1);
    assert_int_equal(err.kind, KT_ERR_RATE_LIMITED);
    assert_int_equal(kt_error_retry_after(&err), 42);
    /* A 5xx with Retry-After is a rate limiter's answer too: never an outage. */
    r.status = 503;
    kt_error_clear(&err);
    assert_int_equal(kt_device_check_status(KT_DEVICE_CHALLENGE, &r, "d", &err), -1);
    assert_int_equal(err.kind, KT_ERR_RATE_LIMITED);
    assert_non_null(strstr(err.message, "retry after 42 s"));
    assert_int_equal(kt_error_retry_after(&err), 42);
    r.retry_after = -1;
    kt_error_clear(&err);
    assert_int_equal(kt_device_check_status(KT_DEVICE_CHALLENGE, &r, "d", &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    assert_int_equal(kt_error_retry_after(&err), -1);
    r.retry_after = 42;
    /* The unknown device is named, but only if it is a valid id. */
    r.status = 404;
    kt_error_clear(&err);
    kt_device_check_status(KT_DEVICE_CHALLENGE, &r, "dev-7", &err);
    assert_int_equal(err.kind, KT_ERR_NOT_ENROLLED);
    assert_non_null(strstr(err.message, "device dev-7"));
    kt_error_clear(&err);
    kt_device_check_status(KT_DEVICE_CHALLENGE, &r, "a\nb", &err);
    assert_null(strchr(err.message, '\n'));
    kt_error_clear(&err);
    assert_int_equal(kt_device_check_status(KT_DEVICE_CREATE, NULL, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_INTERNAL);
}

/* ---- endpoints against the mock ----------------------------------------------------------- */

typedef struct fixture {
    kt_mock mock;
    kt_config cfg;
    kt_ctx *ctx;
    kt_token_set login;
    EVP_PKEY *key;
    char pub[KT_PUBKEY_HEX_LEN + 1];
} fixture;

static int mock_up(void **state)
{
    /* The device endpoints themselves, without the binding request that precedes them
     * (test_binding and test_flow run that). */
    const char *const args[] = {"--binding-requests", "off", NULL};
    fixture *f = calloc(1, sizeof(*f));
    kt_error err = {0};

    if (f == NULL || kt_mock_start(&f->mock, args) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    kt_test_config(&f->cfg, &f->mock);
    f->ctx = kt_ctx_new(&f->cfg, NULL, &err);
    if (f->ctx == NULL ||
        kt_oauth_password_grant(f->ctx, KT_DEMO_USER, KT_DEMO_PASSWORD, &f->login, &err) != 0)
        return -1;
    f->key = kt_key_generate(&err);
    if (f->key == NULL || kt_key_public_hex(f->key, f->pub, &err) != 0) {
        fprintf(stderr, "key: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int mock_down(void **state)
{
    fixture *f = *state;

    if (f != NULL) {
        EVP_PKEY_free(f->key);
        kt_token_set_free(&f->login);
        kt_ctx_free(f->ctx);
        kt_mock_stop(&f->mock);
        kt_test_config_free(&f->cfg);
        free(f);
    }
    return 0;
}

static char *sign(fixture *f, const char *msg)
{
    kt_error err = {0};
    char *sig = NULL;

    assert_int_equal(kt_key_sign_hex(f->key, msg, strlen(msg), &sig, &err), 0);
    return sig;
}

/* Creates and verifies a device; returns its id. */
static char *enroll(fixture *f)
{
    kt_error err = {0};
    char *dev = NULL, *ch = NULL, *otp, *sig;

    assert_int_equal(
        kt_device_create(f->ctx, f->login.access_token, "test box", f->pub, &dev, &ch, &err), 0);
    assert_true(kt_device_id_ok(dev));
    otp = kt_mock_last_otp(&f->mock);
    assert_non_null(otp);
    sig = sign(f, otp);
    assert_int_equal(kt_device_verify(f->ctx, f->login.access_token, dev, ch, sig, &err), 0);
    free(otp);
    free(sig);
    free(ch);
    return dev;
}

static void test_device_lifecycle(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_token_set t;
    char *dev, *cid = NULL, *sts = NULL, *sig;
    int requests = 0, conns = 0;

    dev = enroll(f);
    assert_int_equal(
        kt_device_challenge_create(f->ctx, f->login.access_token, dev, &cid, &sts, &err), 0);
    assert_non_null(cid);
    assert_non_null(sts);
    sig = sign(f, sts);
    assert_int_equal(
        kt_device_challenge_verify(f->ctx, f->login.access_token, dev, cid, sig, &t, &err), 0);
    assert_true(t.confirmed);
    assert_non_null(t.refresh_token); /* offline scope */
    assert_true(t.expires_at > time(NULL));
    kt_token_set_free(&t);

    /* A challenge is single-use. */
    kt_error_clear(&err);
    expect_kind(kt_device_challenge_verify(f->ctx, f->login.access_token, dev, cid, sig, &t, &err),
                &err, KT_ERR_MFA_FAILED);

    /* Everything above went over the one connection. */
    assert_int_equal(kt_http_connections(f->ctx->http), 1);
    assert_int_equal(kt_mock_requests(&f->mock, &requests, &conns), 0);
    assert_int_equal(requests, 6);
    assert_int_equal(conns, 1);
    free(sig);
    free(cid);
    free(sts);
    free(dev);
}

static void test_create_failures(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    char *dev = NULL, *ch = NULL;

    expect_kind(kt_device_create(f->ctx, "not-a-token", "n", f->pub, &dev, &ch, &err), &err,
                KT_ERR_LOGIN_REQUIRED);
    assert_null(dev);
    /* The bank refuses a key it cannot use (400 invalid_key): a refusal, with its words. */
    kt_error_clear(&err);
    expect_kind(kt_device_create(f->ctx, f->login.access_token, "n", "04abcd", &dev, &ch, &err),
                &err, KT_ERR_MFA_FAILED);
    assert_non_null(strstr(err.message, "invalid_key: key must be"));
    kt_error_clear(&err);
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"devices_create\",\"kind\":"
                                             "\"status\",\"status\":503,\"count\":1}"),
                     0);
    expect_kind(kt_device_create(f->ctx, f->login.access_token, "n", f->pub, &dev, &ch, &err), &err,
                KT_ERR_UNAVAILABLE);
    kt_error_clear(&err);
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"devices_create\",\"kind\":"
                                             "\"malformed_json\",\"count\":1}"),
                     0);
    expect_kind(kt_device_create(f->ctx, f->login.access_token, "n", f->pub, &dev, &ch, &err), &err,
                KT_ERR_PROTOCOL);
    kt_error_clear(&err);
    expect_kind(kt_device_create(f->ctx, f->login.access_token, "", f->pub, &dev, &ch, &err), &err,
                KT_ERR_INTERNAL);
    assert_null(dev);
    assert_null(ch);
}

static void test_verify_failures(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    char *dev = NULL, *ch = NULL, *otp, *sig, *wrong;

    assert_int_equal(
        kt_device_create(f->ctx, f->login.access_token, "box", f->pub, &dev, &ch, &err), 0);
    otp = kt_mock_last_otp(&f->mock);
    assert_non_null(otp);
    sig = sign(f, otp);
    wrong = sign(f, "000000");

    /* Any 2xx is the bank saying yes, not only the documented 204 (the fault answers in the
     * mock's place, so the device stays unverified there for the cases below). */
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"device_verify\",\"kind\":"
                                             "\"status\",\"status\":201,\"count\":1}"),
                     0);
    assert_int_equal(kt_device_verify(f->ctx, f->login.access_token, dev, ch, sig, &err), 0);
    kt_error_clear(&err);
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"device_verify\",\"kind\":"
                                             "\"status\",\"status\":403,\"count\":1}"),
                     0);
    expect_kind(kt_device_verify(f->ctx, f->login.access_token, dev, ch, sig, &err), &err,
                KT_ERR_MFA_FAILED);
    kt_error_clear(&err);
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"device_verify\",\"kind\":"
                                             "\"status\",\"status\":502,\"count\":1}"),
                     0);
    expect_kind(kt_device_verify(f->ctx, f->login.access_token, dev, ch, sig, &err), &err,
                KT_ERR_UNAVAILABLE);
    kt_error_clear(&err);
    expect_kind(kt_device_verify(f->ctx, "bogus", dev, ch, sig, &err), &err, KT_ERR_LOGIN_REQUIRED);
    kt_error_clear(&err);
    expect_kind(kt_device_verify(f->ctx, f->login.access_token, "no-such-device", ch, sig, &err),
                &err, KT_ERR_MFA_FAILED);
    /* A wrong signature uses the challenge up: the right one is refused afterwards. */
    kt_error_clear(&err);
    expect_kind(kt_device_verify(f->ctx, f->login.access_token, dev, ch, wrong, &err), &err,
                KT_ERR_MFA_FAILED);
    kt_error_clear(&err);
    expect_kind(kt_device_verify(f->ctx, f->login.access_token, dev, ch, sig, &err), &err,
                KT_ERR_MFA_FAILED);
    free(otp);
    free(sig);
    free(wrong);
    free(dev);
    free(ch);
}

static void test_verify_accepts_200(void **state)
{
    fixture *f = *state;
    kt_error err = {0};

    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"device_verify\",\"kind\":"
                                             "\"status\",\"status\":200,\"count\":1}"),
                     0);
    assert_int_equal(kt_device_verify(f->ctx, f->login.access_token, "d", "c", "00", &err), 0);
    assert_int_equal(kt_mock_last_status(&f->mock), 200);
}

static void test_challenge_failures(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_token_set t;
    char *dev, *cid = NULL, *sts = NULL, *sig, *wrong;

    expect_kind(kt_device_challenge_create(f->ctx, f->login.access_token, "unknown-device", &cid,
                                           &sts, &err),
                &err, KT_ERR_NOT_ENROLLED);
    assert_null(cid);
    kt_error_clear(&err);
    dev = enroll(f);
    expect_kind(kt_device_challenge_create(f->ctx, "bogus", dev, &cid, &sts, &err), &err,
                KT_ERR_LOGIN_REQUIRED);
    kt_error_clear(&err);
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"challenge_create\",\"kind\":"
                                             "\"status\",\"status\":429,\"retry_after\":9,"
                                             "\"count\":1}"),
                     0);
    expect_kind(kt_device_challenge_create(f->ctx, f->login.access_token, dev, &cid, &sts, &err),
                &err, KT_ERR_RATE_LIMITED);
    assert_non_null(strstr(err.message, "retry after 9"));
    assert_int_equal(kt_error_retry_after(&err), 9);
    kt_error_clear(&err);
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"challenge_create\",\"kind\":"
                                             "\"wrong_content_type\",\"count\":1}"),
                     0);
    expect_kind(kt_device_challenge_create(f->ctx, f->login.access_token, dev, &cid, &sts, &err),
                &err, KT_ERR_PROTOCOL);
    kt_error_clear(&err);
    /* The bank refusing a challenge for this device is a failed MFA, not an unavailable API. */
    for (int i = 0; i < 2; i++) {
        char spec[128];

        snprintf(spec, sizeof(spec),
                 "{\"endpoint\":\"challenge_create\",\"kind\":\"status\",\"status\":%d,"
                 "\"count\":1}",
                 i == 0 ? 400 : 403);
        assert_int_equal(kt_mock_fault(&f->mock, spec), 0);
        expect_kind(
            kt_device_challenge_create(f->ctx, f->login.access_token, dev, &cid, &sts, &err), &err,
            KT_ERR_MFA_FAILED);
        assert_null(cid);
        kt_error_clear(&err);
    }

    assert_int_equal(
        kt_device_challenge_create(f->ctx, f->login.access_token, dev, &cid, &sts, &err), 0);
    sig = sign(f, sts);
    wrong = sign(f, "not the string to sign");
    expect_kind(kt_device_challenge_verify(f->ctx, f->login.access_token, dev, "no-such-challenge",
                                           sig, &t, &err),
                &err, KT_ERR_MFA_FAILED);
    kt_error_clear(&err);
    expect_kind(kt_device_challenge_verify(f->ctx, "bogus", dev, cid, sig, &t, &err), &err,
                KT_ERR_LOGIN_REQUIRED);
    kt_error_clear(&err);
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"challenge_verify\",\"kind\":"
                                             "\"status\",\"status\":503,\"count\":1}"),
                     0);
    expect_kind(kt_device_challenge_verify(f->ctx, f->login.access_token, dev, cid, sig, &t, &err),
                &err, KT_ERR_UNAVAILABLE);
    kt_error_clear(&err);
    assert_int_equal(kt_mock_fault(&f->mock, "{\"endpoint\":\"challenge_verify\",\"kind\":"
                                             "\"status\",\"status\":403,\"count\":1}"),
                     0);
    expect_kind(kt_device_challenge_verify(f->ctx, f->login.access_token, dev, cid, sig, &t, &err),
                &err, KT_ERR_MFA_FAILED);
    kt_error_clear(&err);
    expect_kind(
        kt_device_challenge_verify(f->ctx, f->login.access_token, dev, cid, wrong, &t, &err), &err,
        KT_ERR_MFA_FAILED);
    assert_null(t.access_token);
    free(sig);
    free(wrong);
    free(cid);
    free(sts);
    free(dev);
}

/* Refusals with statuses the mock never gives by itself, through the real client. */
static void test_refusals_via_mock(void **state)
{
    fixture *f = *state;
    const long statuses[] = {403, 409, 410, 422};
    kt_error err = {0};
    kt_token_set t;
    char *dev, *cid = NULL, *sts = NULL, *ch = NULL, *d2 = NULL, spec[256];
    size_t i;

    dev = enroll(f);
    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        const char *endpoints[] = {"devices_create", "device_verify", "challenge_create",
                                   "challenge_verify"};

        for (size_t e = 0; e < 4; e++) {
            snprintf(spec, sizeof(spec),
                     "{\"endpoint\":\"%s\",\"kind\":\"status\",\"status\":%ld,"
                     "\"body\":{\"message\":\"refused by the bank\"},\"count\":1}",
                     endpoints[e], statuses[i]);
            assert_int_equal(kt_mock_fault(&f->mock, spec), 0);
            kt_error_clear(&err);
            switch (e) {
            case 0:
                expect_kind(
                    kt_device_create(f->ctx, f->login.access_token, "n", f->pub, &d2, &ch, &err),
                    &err, KT_ERR_MFA_FAILED);
                break;
            case 1:
                expect_kind(kt_device_verify(f->ctx, f->login.access_token, dev, "c-1", "00", &err),
                            &err, KT_ERR_MFA_FAILED);
                break;
            case 2:
                expect_kind(kt_device_challenge_create(f->ctx, f->login.access_token, dev, &cid,
                                                       &sts, &err),
                            &err, KT_ERR_MFA_FAILED);
                break;
            default:
                expect_kind(kt_device_challenge_verify(f->ctx, f->login.access_token, dev, "c-1",
                                                       "00", &t, &err),
                            &err, KT_ERR_MFA_FAILED);
                break;
            }
            assert_non_null(strstr(err.message, "refused by the bank"));
        }
    }
    assert_null(d2);
    assert_null(cid);
    free(dev);
}

static void test_hostile_ids_not_sent(void **state)
{
    fixture *f = *state;
    kt_error err = {0};
    kt_token_set t;
    char *cid = NULL, *sts = NULL;
    int before = 0, after = 0, conns = 0;

    assert_int_equal(kt_mock_requests(&f->mock, &before, &conns), 0);
    expect_kind(kt_device_challenge_create(f->ctx, f->login.access_token, "../../oauth/token", &cid,
                                           &sts, &err),
                &err, KT_ERR_PROTOCOL);
    kt_error_clear(&err);
    expect_kind(kt_device_verify(f->ctx, f->login.access_token, "d?x=1", "c", "00", &err), &err,
                KT_ERR_PROTOCOL);
    kt_error_clear(&err);
    expect_kind(kt_device_verify(f->ctx, f->login.access_token, "d", "c/../x", "00", &err), &err,
                KT_ERR_PROTOCOL);
    kt_error_clear(&err);
    expect_kind(
        kt_device_challenge_verify(f->ctx, f->login.access_token, "d", "c#", "00", &t, &err), &err,
        KT_ERR_PROTOCOL);
    kt_error_clear(&err);
    expect_kind(
        kt_device_challenge_verify(f->ctx, f->login.access_token, NULL, "c", "00", &t, &err), &err,
        KT_ERR_PROTOCOL);
    assert_int_equal(kt_mock_requests(&f->mock, &after, &conns), 0);
    assert_int_equal(after, before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_id_ok),
        cmocka_unit_test(test_json_parse_ok),
        cmocka_unit_test(test_json_parse_rejects),
        cmocka_unit_test(test_json_parse_body_ignores_status),
        cmocka_unit_test(test_json_get_string),
        cmocka_unit_test(test_json_build),
        cmocka_unit_test(test_json_media_type),
        cmocka_unit_test(test_json_server_text),
        cmocka_unit_test(test_json_wipe_values),
        cmocka_unit_test(test_json_tokener_wipe),
        cmocka_unit_test(test_parse_create),
        cmocka_unit_test(test_parse_challenge),
        cmocka_unit_test(test_parse_confirmed),
        cmocka_unit_test(test_parse_confirmed_expiry_is_lifetime),
        cmocka_unit_test(test_device_status_by_body_shape),
        cmocka_unit_test(test_device_status_details),
        cmocka_unit_test_setup_teardown(test_device_lifecycle, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_create_failures, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_verify_failures, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_verify_accepts_200, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_challenge_failures, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_refusals_via_mock, mock_up, mock_down),
        cmocka_unit_test_setup_teardown(test_hostile_ids_not_sent, mock_up, mock_down),
    };
    int rc = cmocka_run_group_tests_name("kt_device", tests, NULL, NULL);

    kt_mock_cleanup_shared();
    return rc;
}
