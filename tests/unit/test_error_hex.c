/* Unit tests for the error type, secret helpers and hex encoding. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kt_error.h"
#include "kt_hex.h"
#include "kt_secret.h"

static void test_error_first_wins(void **state)
{
    kt_error err = {KT_OK, ""};

    assert_int_equal(kt_error_set(&err, KT_ERR_UNAVAILABLE, "network down: %d", 7), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    assert_string_equal(err.message, "network down: 7");
    /* A later error (from a cleanup path) must not hide the cause. */
    assert_int_equal(kt_error_set(&err, KT_ERR_IO, "cleanup failed"), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    assert_string_equal(err.message, "network down: 7");
}

static void test_error_clear_and_reuse(void **state)
{
    kt_error err = {KT_OK, ""};

    kt_error_set(&err, KT_ERR_CONFIG, "bad");
    kt_error_clear(&err);
    assert_int_equal(err.kind, KT_OK);
    assert_string_equal(err.message, "");
    kt_error_set(&err, KT_ERR_MFA_FAILED, "second");
    assert_int_equal(err.kind, KT_ERR_MFA_FAILED);
    assert_string_equal(err.message, "second");
    kt_error_clear(NULL);
}

static void test_error_null_and_ok_kind(void **state)
{
    kt_error err = {KT_OK, ""};

    assert_int_equal(kt_error_set(NULL, KT_ERR_IO, "nobody listens"), -1);
    /* KT_OK is not an error kind: setting it must still record a failure. */
    kt_error_set(&err, KT_OK, "oops");
    assert_int_equal(err.kind, KT_ERR_INTERNAL);
    assert_string_equal(err.message, "oops");
}

static void test_error_long_message_truncated(void **state)
{
    kt_error err = {KT_OK, ""};
    char big[1000];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    kt_error_set(&err, KT_ERR_PROTOCOL, "%s", big);
    assert_int_equal(strlen(err.message), sizeof(err.message) - 1);
    assert_int_equal(err.message[0], 'x');
}

static void test_error_kind_names(void **state)
{
    static const struct {
        kt_err_kind kind;
        const char *name;
    } names[] = {
        {KT_OK, "ok"},
        {KT_ERR_BAD_CREDENTIALS, "bad_credentials"},
        {KT_ERR_LOGIN_REQUIRED, "login_required"},
        {KT_ERR_MFA_FAILED, "mfa_failed"},
        {KT_ERR_NOT_ENROLLED, "not_enrolled"},
        {KT_ERR_KEY_UNUSABLE, "key_unusable"},
        {KT_ERR_UNAVAILABLE, "unavailable"},
        {KT_ERR_PROTOCOL, "protocol"},
        {KT_ERR_CONFIG, "config"},
        {KT_ERR_CONV, "conversation"},
        {KT_ERR_IO, "io"},
        {KT_ERR_INTERNAL, "internal"},
        {KT_ERR_RATE_LIMITED, "rate_limited"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_string_equal(kt_err_kind_name(names[i].kind), names[i].name);
    assert_string_equal(kt_err_kind_name((kt_err_kind)999), "unknown");
}

static void test_error_rate_limited(void **state)
{
    kt_error err = {KT_OK, ""};
    char long_detail[400];

    kt_error_set_rate_limited(&err, "token endpoint", 30, "slow down");
    assert_int_equal(err.kind, KT_ERR_RATE_LIMITED);
    assert_string_equal(err.message,
                        "token endpoint: rate limited (HTTP 429), retry after 30 s: slow down");
    assert_int_equal(kt_error_retry_after(&err), 30);

    kt_error_clear(&err);
    kt_error_set_rate_limited(&err, NULL, -1, NULL);
    assert_string_equal(err.message, "request: rate limited (HTTP 429)");
    assert_int_equal(kt_error_retry_after(&err), -1);

    /* Retry-After: 0 is "now", not "unknown". */
    kt_error_clear(&err);
    kt_error_set_rate_limited(&err, "x", 0, "");
    assert_string_equal(err.message, "x: rate limited (HTTP 429), retry after 0 s");
    assert_int_equal(kt_error_retry_after(&err), 0);

    /* The seconds are read from our own mark, not from what the server wrote after it. */
    memset(long_detail, 'd', sizeof(long_detail) - 1);
    long_detail[sizeof(long_detail) - 1] = '\0';
    kt_error_clear(&err);
    kt_error_set_rate_limited(&err, "x", -1, "(HTTP 429), retry after 1 s");
    assert_int_equal(kt_error_retry_after(&err), -1);
    kt_error_clear(&err);
    kt_error_set_rate_limited(&err, "x", 5, long_detail);
    assert_int_equal(kt_error_retry_after(&err), 5);

    /* Other kinds carry no Retry-After, even when their text looks like it. */
    kt_error_clear(&err);
    kt_error_set(&err, KT_ERR_UNAVAILABLE, "x: rate limited (HTTP 429), retry after 3 s");
    assert_int_equal(kt_error_retry_after(&err), -1);
    assert_int_equal(kt_error_retry_after(NULL), -1);
    /* The first error still wins. */
    kt_error_set_rate_limited(&err, "y", 9, NULL);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
}

static void test_secret_helpers(void **state)
{
    char buf[16];
    char *s = strdup("hunter2");

    assert_non_null(s);
    kt_secret_clear(&s);
    assert_null(s);
    kt_secret_clear(&s); /* twice is fine */
    kt_secret_clear(NULL);
    kt_secret_free(NULL);

    memset(buf, 'A', sizeof(buf));
    kt_wipe(buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
    kt_wipe(NULL, 10);
}

static void test_hex_encode(void **state)
{
    const unsigned char in[] = {0x00, 0xff, 0x10, 0xa5, 0x0f};
    char out[2 * sizeof(in) + 1];
    char empty[1] = {'z'};

    kt_hex_encode(in, sizeof(in), out);
    assert_string_equal(out, "00ff10a50f");
    kt_hex_encode(in, 0, empty);
    assert_string_equal(empty, "");
}

static void test_hex_decode_good(void **state)
{
    unsigned char out[8];

    assert_int_equal(kt_hex_decode("00ff10A5aB", out, sizeof(out)), 5);
    assert_int_equal(out[0], 0x00);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(out[2], 0x10);
    assert_int_equal(out[3], 0xa5);
    assert_int_equal(out[4], 0xab);
    assert_int_equal(kt_hex_decode("", out, sizeof(out)), 0);
    /* Exactly fitting buffer. */
    assert_int_equal(kt_hex_decode("0102030405060708", out, sizeof(out)), 8);
    assert_int_equal(out[7], 0x08);
}

static void test_hex_decode_bad(void **state)
{
    unsigned char out[8];

    assert_int_equal(kt_hex_decode(NULL, out, sizeof(out)), -1);
    assert_int_equal(kt_hex_decode("abc", out, sizeof(out)), -1);                /* odd length */
    assert_int_equal(kt_hex_decode("0g", out, sizeof(out)), -1);                 /* not hex */
    assert_int_equal(kt_hex_decode("0x12", out, sizeof(out)), -1);               /* prefix */
    assert_int_equal(kt_hex_decode("12 34", out, sizeof(out)), -1);              /* separator */
    assert_int_equal(kt_hex_decode("12:3", out, sizeof(out)), -1);               /* separator */
    assert_int_equal(kt_hex_decode("G0", out, sizeof(out)), -1);                 /* past 'F' */
    assert_int_equal(kt_hex_decode("010203040506070809", out, sizeof(out)), -1); /* too long */
    assert_int_equal(kt_hex_decode("00", out, 0), -1);
}

static void test_hex_round_trip(void **state)
{
    unsigned char in[256], back[256];
    char hex[513];

    for (int i = 0; i < 256; i++)
        in[i] = (unsigned char)i;
    kt_hex_encode(in, sizeof(in), hex);
    assert_int_equal(strlen(hex), 512);
    for (size_t i = 0; i < 512; i++)
        assert_true(strchr("0123456789abcdef", hex[i]) != NULL);
    assert_int_equal(kt_hex_decode(hex, back, sizeof(back)), 256);
    assert_memory_equal(in, back, sizeof(in));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_first_wins),
        cmocka_unit_test(test_error_clear_and_reuse),
        cmocka_unit_test(test_error_null_and_ok_kind),
        cmocka_unit_test(test_error_long_message_truncated),
        cmocka_unit_test(test_error_kind_names),
        cmocka_unit_test(test_error_rate_limited),
        cmocka_unit_test(test_secret_helpers),
        cmocka_unit_test(test_hex_encode),
        cmocka_unit_test(test_hex_decode_good),
        cmocka_unit_test(test_hex_decode_bad),
        cmocka_unit_test(test_hex_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
