/* The raw r || s of a PKCS#11 ECDSA signature turned into DER (kt_ecdsa_raw_to_der): sign bits
 * that need a zero byte, leading zeros that must go, lengths that are refused, and a round trip
 * through a real signature that OpenSSL verifies. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "kt_pkcs11.h"

#define HALF 32

static void convert(const unsigned char *raw, size_t len, const unsigned char *want,
                    size_t want_len)
{
    kt_error err = {KT_OK, ""};
    unsigned char *der = NULL;
    size_t der_len = 0;

    assert_int_equal(kt_ecdsa_raw_to_der(raw, len, &der, &der_len, &err), 0);
    assert_int_equal(der_len, want_len);
    assert_memory_equal(der, want, want_len);
    free(der);
}

/* r and s with the top bit set: each INTEGER gets a 0x00 in front (else it reads negative). */
static void test_high_bit_values_get_a_zero_byte(void **state)
{
    unsigned char raw[2 * HALF], want[2 + 2 * (2 + 1 + HALF)];
    size_t o = 0;

    (void)state;
    memset(raw, 0xff, HALF);
    raw[HALF - 1] = 0x01;
    memset(raw + HALF, 0x80, HALF);
    want[o++] = 0x30;
    want[o++] = 2 * (2 + 1 + HALF);
    for (int i = 0; i < 2; i++) {
        want[o++] = 0x02;
        want[o++] = HALF + 1;
        want[o++] = 0x00;
        memcpy(want + o, raw + i * HALF, HALF);
        o += HALF;
    }
    convert(raw, sizeof(raw), want, o);
}

/* Leading zero bytes are not part of the minimal encoding; a zero byte stays when the next one
 * has its top bit set. */
static void test_leading_zeros_are_dropped(void **state)
{
    unsigned char raw[2 * HALF];
    const unsigned char want[] = {0x30, 0x08, 0x02, 0x01, 0x05, 0x02, 0x03, 0x00, 0x80, 0x01};

    (void)state;
    memset(raw, 0, sizeof(raw));
    raw[HALF - 1] = 0x05;     /* r = 5: 31 zero bytes in front */
    raw[2 * HALF - 2] = 0x80; /* s = 0x8001: one zero byte needed, not 30 */
    raw[2 * HALF - 1] = 0x01;
    convert(raw, sizeof(raw), want, sizeof(want));
}

/* A value whose top byte is below 0x80 needs no padding at all: 32 bytes as they are. */
static void test_low_top_byte_is_kept_as_is(void **state)
{
    unsigned char raw[2 * HALF], want[2 + 2 * (2 + HALF)];
    size_t o = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(0x7f - i);
    want[o++] = 0x30;
    want[o++] = 2 * (2 + HALF);
    for (int i = 0; i < 2; i++) {
        want[o++] = 0x02;
        want[o++] = HALF;
        memcpy(want + o, raw + i * HALF, HALF);
        o += HALF;
    }
    convert(raw, sizeof(raw), want, o);
}

static void test_odd_empty_and_overlong_signatures_are_refused(void **state)
{
    unsigned char raw[200];
    kt_error err = {KT_OK, ""};
    unsigned char marker = 0, *der = &marker;
    size_t der_len = 7;

    (void)state;
    memset(raw, 0x11, sizeof(raw));
    assert_int_equal(kt_ecdsa_raw_to_der(raw, 63, &der, &der_len, &err), -1);
    assert_null(der);
    assert_int_equal(der_len, 0);
    assert_int_equal(err.kind, KT_ERR_KEY_UNUSABLE);
    assert_non_null(strstr(err.message, "63 bytes"));
    kt_error_clear(&err);
    assert_int_equal(kt_ecdsa_raw_to_der(raw, 0, &der, &der_len, &err), -1);
    kt_error_clear(&err);
    assert_int_equal(kt_ecdsa_raw_to_der(raw, 200, &der, &der_len, &err), -1);
}

/* Even-length signatures of other curves (P-384: 96 bytes, P-521: 132) and a short even one are
 * refused: only a P-256 r || s of exactly 64 bytes is turned into DER. */
static void test_only_p256_lengths_are_accepted(void **state)
{
    static const size_t refused[] = {2, 32, 62, 66, 96, 132};
    unsigned char raw[132];

    (void)state;
    memset(raw, 0x22, sizeof(raw));
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        kt_error err = {KT_OK, ""};
        unsigned char marker = 0, *der = &marker;
        size_t der_len = 7;

        assert_int_equal(kt_ecdsa_raw_to_der(raw, refused[i], &der, &der_len, &err), -1);
        assert_null(der);
        assert_int_equal(der_len, 0);
        assert_int_equal(err.kind, KT_ERR_KEY_UNUSABLE);
        assert_non_null(strstr(err.message, "P-256"));
    }
    {
        kt_error err = {KT_OK, ""};
        unsigned char *der = NULL;
        size_t der_len = 0;

        assert_int_equal(kt_ecdsa_raw_to_der(raw, 2 * HALF, &der, &der_len, &err), 0);
        assert_non_null(der);
        free(der);
    }
}

/* A real signature taken apart into r || s and put together again verifies, and is the same DER
 * OpenSSL made. */
static void test_round_trip_verifies(void **state)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    const unsigned char msg[] = "challenge";
    kt_error err = {KT_OK, ""};

    (void)state;
    assert_non_null(key);
    for (int round = 0; round < 32; round++) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char sig[80], raw[2 * HALF], *der = NULL;
        const unsigned char *p = sig;
        size_t sig_len = sizeof(sig), der_len = 0;
        ECDSA_SIG *es;
        const BIGNUM *r, *s;

        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(md, sig, &sig_len, msg, sizeof(msg) - 1), 1);
        es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
        assert_non_null(es);
        ECDSA_SIG_get0(es, &r, &s);
        assert_int_equal(BN_bn2binpad(r, raw, HALF), HALF);
        assert_int_equal(BN_bn2binpad(s, raw + HALF, HALF), HALF);
        ECDSA_SIG_free(es);
        assert_int_equal(kt_ecdsa_raw_to_der(raw, sizeof(raw), &der, &der_len, &err), 0);
        assert_int_equal(der_len, sig_len);
        assert_memory_equal(der, sig, sig_len);
        assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestVerify(md, der, der_len, msg, sizeof(msg) - 1), 1);
        free(der);
        EVP_MD_CTX_free(md);
    }
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_high_bit_values_get_a_zero_byte),
        cmocka_unit_test(test_leading_zeros_are_dropped),
        cmocka_unit_test(test_low_top_byte_is_kept_as_is),
        cmocka_unit_test(test_odd_empty_and_overlong_signatures_are_refused),
        cmocka_unit_test(test_only_p256_lengths_are_accepted),
        cmocka_unit_test(test_round_trip_verifies),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
