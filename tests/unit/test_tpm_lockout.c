/* A TPM in dictionary-attack lockout (kt_tpm_lockout_queued): the tpm2 provider's error reason
 * says only what failed ("cannot sign"); the TPM's answer is the error's data, the TSS return code
 * in decimal and its decoded text. The errors here are queued the way the provider queues them. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include <openssl/err.h>

#include "kt_tpm.h"

/* TPM_RC_LOCKOUT (0x921) as tpm2-openssl 1.1 words it. */
#define LOCKOUT_DATA                                                                               \
    "2337 tpm:warn(2.0): authorizations for objects subject to DA protection are not allowed "     \
    "at this time because the TPM is in DA lockout mode"
/* TPM_RC_AUTH_FAIL on session 1 (0x98e): a wrong password, one step closer to lockout. */
#define AUTH_FAIL_DATA                                                                             \
    "2446 tpm:session(1):the authorization HMAC check failed and DA counter incremented"

static int provider_lib;

/* One error as a provider queues it: its own library code, a reason, and data. */
static void queue(int reason, const char *data)
{
    ERR_new();
    ERR_set_debug("", -1, "");
    if (data != NULL)
        ERR_set_error(provider_lib, reason, "%s", data);
    else
        ERR_set_error(provider_lib, reason, NULL);
}

static void test_the_return_code_in_the_data_is_lockout(void **state)
{
    (void)state;
    queue(15, LOCKOUT_DATA);
    assert_true(kt_tpm_lockout_queued());
    assert_int_equal(ERR_peek_error(), 0); /* the queue is emptied */
}

static void test_the_code_decides_without_the_word(void **state)
{
    char data[64];

    (void)state;
    /* passed on by a resource manager (TSS layer 11): still the TPM's lockout */
    snprintf(data, sizeof(data), "%lu resmgr-tpm", 0x000B0921ul);
    queue(15, data);
    assert_true(kt_tpm_lockout_queued());
}

static void test_a_lockout_behind_other_errors_is_found(void **state)
{
    (void)state;
    queue(15, LOCKOUT_DATA);
    queue(3, "something failed further up");
    queue(7, NULL);
    assert_true(kt_tpm_lockout_queued());
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_the_word_alone_is_the_fallback(void **state)
{
    (void)state;
    queue(15, "the TPM is in Lockout");
    assert_true(kt_tpm_lockout_queued());
}

static void test_other_failures_are_not_lockout(void **state)
{
    (void)state;
    assert_false(kt_tpm_lockout_queued()); /* nothing queued */
    queue(15, AUTH_FAIL_DATA);
    assert_false(kt_tpm_lockout_queued());
    queue(15, "2337x no code here"); /* a number that does not end where the code does */
    assert_false(kt_tpm_lockout_queued());
    queue(15, "the NV index is locked");
    assert_false(kt_tpm_lockout_queued());
    queue(15, NULL);
    assert_false(kt_tpm_lockout_queued());
    /* 0x121 (TPM_RC_LOCKOUT without the warning bits) is another code */
    queue(15, "289 tpm:error");
    assert_false(kt_tpm_lockout_queued());
}

static void test_the_message_says_what_to_do(void **state)
{
    kt_error err = {KT_OK, ""};

    (void)state;
    assert_int_equal(kt_tpm_lockout_error(&err), -1);
    assert_int_equal(err.kind, KT_ERR_KEY_UNUSABLE);
    assert_non_null(strstr(err.message, "the TPM is in dictionary-attack lockout"));
    assert_non_null(strstr(err.message, "tpm2_dictionarylockout --clear-lockout"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_return_code_in_the_data_is_lockout),
        cmocka_unit_test(test_the_code_decides_without_the_word),
        cmocka_unit_test(test_a_lockout_behind_other_errors_is_found),
        cmocka_unit_test(test_the_word_alone_is_the_fallback),
        cmocka_unit_test(test_other_failures_are_not_lockout),
        cmocka_unit_test(test_the_message_says_what_to_do),
    };

    provider_lib = ERR_get_next_error_library();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
