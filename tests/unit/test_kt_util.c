/* Unit tests for the utility layer: kt_util (strings, clock, URI schemes), kt_dynbuf (the capped
 * buffer that wipes what it drops) and kt_validate (device ids and key references). */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kt_dynbuf.h"
#include "kt_util.h"
#include "kt_validate.h"

/* free is wrapped (-Wl,--wrap=free): a block that held a secret must be all zero when freed. */
#include "free_watch.h"

/* --- kt_util ------------------------------------------------------------------------------- */

static void test_strdup_or_null(void **state)
{
    char *s;

    (void)state;
    assert_null(kt_strdup_or_null(NULL));
    s = kt_strdup_or_null("abc");
    assert_non_null(s);
    assert_string_equal(s, "abc");
    free(s);
    s = kt_strdup_or_null("");
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static void test_trim(void **state)
{
    char a[] = " \t key = value \t\r\n";
    char b[] = "";
    char c[] = " \t\r\n";
    char d[] = "inner  space";
    char e[] = "\rnot leading";

    (void)state;
    assert_string_equal(kt_trim(a), "key = value");
    assert_string_equal(kt_trim(b), "");
    assert_string_equal(kt_trim(c), "");
    assert_string_equal(kt_trim(d), "inner  space");
    /* Only spaces and tabs lead a value; a CR there is content. */
    assert_string_equal(kt_trim(e), "\rnot leading");
}

static void test_trim_span(void **state)
{
    const char text[] = "  application/json ; charset=utf-8\r\n";
    const char *start = text, *end = strchr(text, ';');

    (void)state;
    kt_trim_span(&start, &end);
    assert_int_equal(end - start, strlen("application/json"));
    assert_memory_equal(start, "application/json", (size_t)(end - start));

    start = text;
    end = text + 2;
    kt_trim_span(&start, &end);
    assert_ptr_equal(start, end);
}

static void test_now_ms(void **state)
{
    struct timespec pause = {0, 20 * 1000 * 1000};
    uint64_t a, b;

    (void)state;
    a = kt_now_ms();
    assert_true(a > 0);
    nanosleep(&pause, NULL);
    b = kt_now_ms();
    assert_true(b >= a + 19);
    assert_true(b < a + 5000);
}

static void test_uri_scheme_len(void **state)
{
    (void)state;
    assert_int_equal(kt_uri_scheme_len("pkcs11:token=x"), 6);
    assert_int_equal(kt_uri_scheme_len("handle:0x81000001"), 6);
    assert_int_equal(kt_uri_scheme_len("file:/k.pem"), 4);
    assert_int_equal(kt_uri_scheme_len("a+b-c.d:x"), 7);
    assert_int_equal(kt_uri_scheme_len("pkcs11:"), 6);
    assert_int_equal(kt_uri_scheme_len("/abs/path:x"), 0);
    assert_int_equal(kt_uri_scheme_len("./rel:x"), 0);
    assert_int_equal(kt_uri_scheme_len("1abc:x"), 0);
    assert_int_equal(kt_uri_scheme_len(":x"), 0);
    assert_int_equal(kt_uri_scheme_len("key.pem"), 0);
    assert_int_equal(kt_uri_scheme_len("with space:x"), 0);
    assert_int_equal(kt_uri_scheme_len(""), 0);
    assert_int_equal(kt_uri_scheme_len(NULL), 0);
}

/* --- kt_validate --------------------------------------------------------------------------- */

static void test_device_id_ok(void **state)
{
    char longest[KT_DEVICE_ID_MAX + 2];

    (void)state;
    assert_true(kt_device_id_ok("dev-1_A"));
    assert_true(kt_device_id_ok("0"));
    assert_false(kt_device_id_ok(NULL));
    assert_false(kt_device_id_ok(""));
    assert_false(kt_device_id_ok("../x"));
    assert_false(kt_device_id_ok("a/b"));
    assert_false(kt_device_id_ok("a.b"));
    assert_false(kt_device_id_ok("a~b"));
    assert_false(kt_device_id_ok("a%2f"));
    assert_false(kt_device_id_ok("a b"));
    assert_false(kt_device_id_ok("a?b"));
    memset(longest, 'a', KT_DEVICE_ID_MAX);
    longest[KT_DEVICE_ID_MAX] = '\0';
    assert_true(kt_device_id_ok(longest));
    longest[KT_DEVICE_ID_MAX] = 'a';
    longest[KT_DEVICE_ID_MAX + 1] = '\0';
    assert_false(kt_device_id_ok(longest));
}

static void test_key_ref(void **state)
{
    (void)state;
    assert_int_equal(kt_key_ref_classify("/home/u/.config/kontist/device.pem"), KT_KEY_REF_PATH);
    assert_int_equal(kt_key_ref_classify("pkcs11:token=kontist;object=dev"), KT_KEY_REF_URI);
    assert_int_equal(kt_key_ref_classify("handle:0x81000001"), KT_KEY_REF_URI);
    assert_int_equal(kt_key_ref_classify("file:/k.pem"), KT_KEY_REF_URI);
    assert_int_equal(kt_key_ref_classify("device.pem"), KT_KEY_REF_RELATIVE);
    assert_int_equal(kt_key_ref_classify("./a:b"), KT_KEY_REF_RELATIVE);
    assert_int_equal(kt_key_ref_classify("pkcs11:"), KT_KEY_REF_INVALID);
    assert_int_equal(kt_key_ref_classify(""), KT_KEY_REF_INVALID);
    assert_int_equal(kt_key_ref_classify(NULL), KT_KEY_REF_INVALID);

    assert_true(kt_key_ref_ok("/k.pem"));
    assert_true(kt_key_ref_ok("handle:0x81000001"));
    assert_false(kt_key_ref_ok("k.pem"));
    assert_false(kt_key_ref_ok("./a:b"));
    assert_false(kt_key_ref_ok("pkcs11:"));
    assert_false(kt_key_ref_ok(""));
    assert_false(kt_key_ref_ok(NULL));
}

/* A PIN in a pkcs11: URI is refused wherever a reference is checked, path or query part, any
 * case; pin-source and attributes that only look alike are not. */
static void test_key_ref_pin_value_is_refused(void **state)
{
    static const char *const refused[] = {
        "pkcs11:token=t;object=k?pin-value=1234",
        "pkcs11:token=t;pin-value=1234;object=k",
        "pkcs11:token=t?module-path=/m.so&PIN-VALUE=1234",
        "pkcs11:pin-value",
    };
    static const char *const accepted[] = {
        "pkcs11:token=t;object=k?pin-source=file:/etc/kontist/pin",
        "pkcs11:token=pin-value;object=k",
        "pkcs11:token=t;object=k?pin-values=x",
    };
    kt_error err = {KT_OK, ""};

    (void)state;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        kt_error_clear(&err);
        assert_false(kt_key_ref_ok(refused[i]));
        assert_int_equal(kt_key_ref_check(refused[i], &err), -1);
        assert_int_equal(err.kind, KT_ERR_CONFIG);
        assert_non_null(strstr(err.message, "pin-value"));
        assert_non_null(strstr(err.message, "pin-source"));
    }
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        kt_error_clear(&err);
        assert_true(kt_key_ref_ok(accepted[i]));
        assert_int_equal(kt_key_ref_check(accepted[i], &err), 0);
    }
    kt_error_clear(&err);
    assert_int_equal(kt_key_ref_check("k.pem", &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    assert_true(kt_key_ref_has_attr(accepted[0], "pin-source"));
    assert_false(kt_key_ref_has_attr("pkcs11:token=t", "pin-source"));
    assert_false(kt_key_ref_has_attr("/k.pem", "pin-source"));
    assert_true(kt_key_ref_is_token("PKCS11:token=t"));
    assert_false(kt_key_ref_is_token("handle:0x81000001"));
    /* Only files are software keys, read before the password; everything else is hardware. */
    assert_true(kt_key_ref_is_hardware("pkcs11:token=t"));
    assert_true(kt_key_ref_is_hardware("tpm2:/home/a/.config/kontist/device-key.tss2"));
    assert_true(kt_key_ref_is_hardware("HANDLE:0x81000001"));
    assert_true(kt_key_ref_is_hardware("object:/home/a/key"));
    assert_false(kt_key_ref_is_hardware("/home/a/.config/kontist/device-key.pem"));
    assert_false(kt_key_ref_is_hardware("file:///home/a/key.pem"));
    assert_false(kt_key_ref_is_hardware("FILE:/home/a/key.pem"));
    assert_false(kt_key_ref_is_hardware(NULL));
    assert_true(kt_key_ref_in_tpm("handle:0x81000001"));
    assert_false(kt_key_ref_in_tpm("pkcs11:token=t"));
}

/* --- kt_dynbuf ----------------------------------------------------------------------------- */

static void test_dynbuf_add_and_take(void **state)
{
    kt_dynbuf b;
    size_t len = 99;
    char *s;

    (void)state;
    kt_dynbuf_init(&b, 0);
    assert_int_equal(kt_dynbuf_add_str(&b, "refresh="), KT_DYNBUF_OK);
    assert_int_equal(kt_dynbuf_add(&b, "abcdef", 3), KT_DYNBUF_OK);
    assert_int_equal(kt_dynbuf_add(&b, "", 0), KT_DYNBUF_OK);
    assert_int_equal(b.len, 11);
    assert_string_equal(b.buf, "refresh=abc");
    s = kt_dynbuf_take(&b, &len);
    assert_string_equal(s, "refresh=abc");
    assert_int_equal(len, 11);
    assert_null(b.buf);
    assert_int_equal(b.len, 0);
    free(s);

    /* An empty buffer hands over "", not NULL. */
    s = kt_dynbuf_take(&b, &len);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    kt_dynbuf_free(&b);
    kt_dynbuf_free(&b); /* twice is fine */
}

static void test_dynbuf_cap(void **state)
{
    kt_dynbuf b;
    char chunk[1000];

    (void)state;
    memset(chunk, 'x', sizeof(chunk));
    kt_dynbuf_init(&b, 2500);
    assert_int_equal(kt_dynbuf_add(&b, chunk, 1000), KT_DYNBUF_OK);
    assert_int_equal(kt_dynbuf_add(&b, chunk, 1000), KT_DYNBUF_OK);
    /* Past the cap: refused whole, the content is unchanged. */
    assert_int_equal(kt_dynbuf_add(&b, chunk, 501), KT_DYNBUF_TOO_LARGE);
    assert_int_equal(b.len, 2000);
    assert_int_equal(kt_dynbuf_add(&b, chunk, 500), KT_DYNBUF_OK);
    assert_int_equal(b.len, 2500);
    assert_int_equal(kt_dynbuf_add(&b, "y", 1), KT_DYNBUF_TOO_LARGE);
    assert_true(b.cap <= 2501);
    assert_int_equal(b.buf[2500], '\0');
    kt_dynbuf_free(&b);

    /* The cap still holds after a take. */
    kt_dynbuf_init(&b, 4);
    assert_int_equal(kt_dynbuf_add_str(&b, "abcd"), KT_DYNBUF_OK);
    free(kt_dynbuf_take(&b, NULL));
    assert_int_equal(kt_dynbuf_add_str(&b, "abcde"), KT_DYNBUF_TOO_LARGE);
    kt_dynbuf_free(&b);
}

static void test_dynbuf_wipes_on_grow(void **state)
{
    static const char secret[] = "refresh-token-secret";
    kt_dynbuf b;
    char filler[4096];
    const char *old;
    size_t old_cap;

    (void)state;
    memset(filler, 'f', sizeof(filler));
    kt_dynbuf_init(&b, 0);
    assert_int_equal(kt_dynbuf_add_str(&b, secret), KT_DYNBUF_OK);
    old = b.buf;
    old_cap = b.cap;
    watch(old, old_cap);
    /* More than fits: the buffer moves, and the block it leaves must hold no trace of the text. */
    assert_int_equal(kt_dynbuf_add(&b, filler, sizeof(filler)), KT_DYNBUF_OK);
    assert_int_equal(watched_freed, 1);
    assert_true(watched_was_wiped);
    assert_ptr_not_equal(b.buf, old);
    assert_memory_equal(b.buf, secret, strlen(secret));
    assert_int_equal(b.len, strlen(secret) + sizeof(filler));

    watch(b.buf, b.cap);
    kt_dynbuf_free(&b);
    assert_int_equal(watched_freed, 1);
    assert_true(watched_was_wiped);
    assert_null(b.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strdup_or_null),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_trim_span),
        cmocka_unit_test(test_now_ms),
        cmocka_unit_test(test_uri_scheme_len),
        cmocka_unit_test(test_device_id_ok),
        cmocka_unit_test(test_key_ref),
        cmocka_unit_test(test_key_ref_pin_value_is_refused),
        cmocka_unit_test(test_dynbuf_add_and_take),
        cmocka_unit_test(test_dynbuf_cap),
        cmocka_unit_test(test_dynbuf_wipes_on_grow),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
