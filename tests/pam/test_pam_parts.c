/* Unit tests of pam_kontist's own parts: argument parsing, PAM code mapping, the authfile parser
 * and the escaping of logged values. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <security/pam_modules.h>

#include "pam_helper.h"
#include "pam_kontist.h"

static int parse(kt_pam_args *a, kt_error *err, int argc, const char **argv)
{
    kt_error_clear(err);
    return kt_pam_args_parse(a, argc, argv, err);
}

static void test_args_defaults(void **state)
{
    kt_pam_args a;
    kt_error err = {0};

    assert_int_equal(parse(&a, &err, 0, NULL), 0);
    assert_string_equal(a.config, KT_SYSTEM_CONFIG);
    /* Root's pins are always read: there is no mode in which the user's files name the identity. */
    assert_string_equal(a.authfile, KT_PAM_DEFAULT_AUTHFILE);
    assert_false(a.authfile_given);
    assert_string_equal(a.helper, KT_PAM_HELPER_PATH);
    assert_int_equal(a.mfa, KT_PAM_MFA_DEVICE);
    assert_false(a.debug || a.nouserok || a.use_first_pass || a.try_first_pass ||
                 a.logout_on_close);
    assert_int_equal(a.login_timeout, 0);
}

static void test_args_all(void **state)
{
    const char *argv[] = {"config=/etc/k.conf",
                          "authfile=/etc/kontist/users",
                          "debug",
                          "nouserok",
                          "use_first_pass",
                          "try_first_pass",
                          "mfa=none",
                          "login_timeout=7",
                          "logout_on_close"};
    kt_pam_args a;
    kt_error err = {0};

    assert_int_equal(parse(&a, &err, 9, argv), 0);
    assert_string_equal(a.config, "/etc/k.conf");
    assert_string_equal(a.authfile, "/etc/kontist/users");
    assert_true(a.debug && a.nouserok && a.use_first_pass && a.try_first_pass && a.logout_on_close);
    assert_int_equal(a.mfa, KT_PAM_MFA_NONE);
    assert_int_equal(a.login_timeout, 7);
}

static void test_args_mfa(void **state)
{
    static const struct {
        const char *arg;
        kt_pam_mfa mfa;
        bool push;
    } cases[] = {
        {"mfa=device", KT_PAM_MFA_DEVICE, false},
        {"mfa=none", KT_PAM_MFA_NONE, false},
        {"mfa=push", KT_PAM_MFA_PUSH, true},
        {"mfa=device,push", KT_PAM_MFA_DEVICE_PUSH, true},
        {"mfa=push,device", KT_PAM_MFA_PUSH_DEVICE, true},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *argv[] = {cases[i].arg};
        kt_pam_args a;
        kt_error err = {0};

        assert_int_equal(parse(&a, &err, 1, argv), 0);
        assert_int_equal(a.mfa, cases[i].mfa);
        assert_int_equal(kt_pam_mfa_has_push(a.mfa), cases[i].push);
        /* The name goes on the wire: the helper parses it back as a factor order. */
        assert_string_equal(kt_pam_mfa_name(a.mfa), cases[i].arg + 4);
    }
}

static void expect_bad(const char *arg, const char *fragment)
{
    const char *argv[] = {arg};
    kt_pam_args a;
    kt_error err = {0};

    assert_int_equal(parse(&a, &err, 1, argv), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    if (strstr(err.message, fragment) == NULL)
        fail_msg("'%s' gave '%s', expected '%s'", arg, err.message, fragment);
}

static void test_args_bad(void **state)
{
    expect_bad("use_fist_pass", "unknown module argument 'use_fist_pass'");
    expect_bad("Debug", "unknown module argument");
    expect_bad("config=etc/k.conf", "absolute path");
    expect_bad("authfile=", "absolute path");
    expect_bad("mfa=sms", "push,device or none");
    expect_bad("mfa=", "push,device or none");
    expect_bad("mfa=device,none", "push,device or none");
    expect_bad("mfa=push,push", "push,device or none");
    expect_bad("mfa=device,", "push,device or none");
    expect_bad("login_timeout=0", "login_timeout");
    expect_bad("login_timeout=-5", "login_timeout");
    expect_bad("login_timeout=+5", "login_timeout");
    expect_bad("login_timeout=5s", "login_timeout");
    expect_bad("login_timeout=111", "login_timeout");
    expect_bad("login_timeout=99999999999999999999", "login_timeout");
    expect_bad("", "empty module argument");
}

static void test_args_twice(void **state)
{
    const char *argv[] = {"config=/a", "config=/b"};
    kt_pam_args a;
    kt_error err = {0};

    assert_int_equal(parse(&a, &err, 2, argv), -1);
    assert_non_null(strstr(err.message, "twice"));
}

static void test_codes(void **state)
{
    assert_int_equal(kt_pam_code_for_error(KT_ERR_BAD_CREDENTIALS, false), PAM_AUTH_ERR);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_MFA_FAILED, false), PAM_AUTH_ERR);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_LOGIN_REQUIRED, false), PAM_AUTH_ERR);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_NOT_ENROLLED, false), PAM_USER_UNKNOWN);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_NOT_ENROLLED, true), PAM_IGNORE);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_KEY_UNUSABLE, false), PAM_CRED_INSUFFICIENT);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_UNAVAILABLE, false), PAM_AUTHINFO_UNAVAIL);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_PROTOCOL, false), PAM_AUTHINFO_UNAVAIL);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_CONFIG, false), PAM_SERVICE_ERR);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_CONV, false), PAM_CONV_ERR);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_IO, false), PAM_SYSTEM_ERR);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_INTERNAL, false), PAM_SYSTEM_ERR);
    /* What an outsider can cause, and what the user's own files can say, never falls back. */
    assert_int_equal(kt_pam_code_for_error(KT_ERR_RATE_LIMITED, true), PAM_AUTH_ERR);
    assert_int_equal(kt_pam_code_for_error(KT_ERR_IDENTITY_MISMATCH, true), PAM_AUTH_ERR);
    assert_int_equal(kt_pam_kind_from_name("rate_limited"), KT_ERR_RATE_LIMITED);
    assert_int_equal(kt_pam_kind_from_name("identity_mismatch"), KT_ERR_IDENTITY_MISMATCH);
    assert_int_equal(kt_pam_kind_from_name("ok"), KT_OK);
    assert_int_equal(kt_pam_kind_from_name("no-such-kind"), KT_ERR_INTERNAL);
}

/* No kind, including values outside the enum, may ever map to success. */
static void test_codes_never_success(void **state)
{
    for (int k = -3; k < 64; k++) {
        assert_int_not_equal(kt_pam_code_for_error((kt_err_kind)k, false), PAM_SUCCESS);
        assert_int_not_equal(kt_pam_code_for_error((kt_err_kind)k, true), PAM_SUCCESS);
    }
    assert_string_equal(kt_pam_code_name(PAM_CRED_INSUFFICIENT), "PAM_CRED_INSUFFICIENT");
    assert_string_equal(kt_pam_code_name(9999), "PAM_OTHER");
}

static const char authfile[] = "# local user, Kontist user, device id, key\n"
                               "alice  alice@example.com  dev-1  /etc/kontist/keys/alice.pem\n"
                               "\n"
                               "   # indented comment\n"
                               "bob\tbob@example.com\n"
                               "carol carol@example.com dev_3 "
                               "pkcs11:token=x;object=y?pin-source=file:/etc/kontist/pin # note\n";

static int lookup(const char *text, const char *user, kt_device_record *rec, kt_error *err)
{
    kt_error_clear(err);
    return kt_pam_authfile_parse("users", text, strlen(text), user, rec, err);
}

static void test_authfile_good(void **state)
{
    kt_device_record rec;
    kt_error err = {0};

    assert_int_equal(lookup(authfile, "alice", &rec, &err), 0);
    assert_string_equal(rec.username, "alice@example.com");
    assert_string_equal(rec.device_id, "dev-1");
    assert_string_equal(rec.key_ref, "/etc/kontist/keys/alice.pem");
    kt_record_free(&rec);

    assert_int_equal(lookup(authfile, "bob", &rec, &err), 0);
    assert_string_equal(rec.username, "bob@example.com");
    assert_null(rec.device_id);
    assert_null(rec.key_ref);
    kt_record_free(&rec);

    assert_int_equal(lookup(authfile, "carol", &rec, &err), 0);
    assert_string_equal(rec.key_ref, "pkcs11:token=x;object=y?pin-source=file:/etc/kontist/pin");
    kt_record_free(&rec);
}

static void test_authfile_absent_user(void **state)
{
    kt_device_record rec;
    kt_error err = {0};

    assert_int_equal(lookup(authfile, "dave", &rec, &err), -1);
    assert_int_equal(err.kind, KT_ERR_NOT_ENROLLED);
    assert_null(rec.username);
    /* A prefix of a listed name is another name. */
    assert_int_equal(lookup(authfile, "ali", &rec, &err), -1);
    assert_int_equal(err.kind, KT_ERR_NOT_ENROLLED);
}

static void expect_authfile_error(const char *text, const char *user, const char *fragment)
{
    kt_device_record rec;
    kt_error err = {0};

    assert_int_equal(lookup(text, user, &rec, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    if (strstr(err.message, fragment) == NULL)
        fail_msg("got '%s', expected '%s'", err.message, fragment);
    assert_null(rec.username);
}

static void test_authfile_errors(void **state)
{
    expect_authfile_error("alice a@x dev-1\n", "alice", "users:1: a device id needs a key");
    expect_authfile_error("alice a@x d k extra\n", "alice", "users:1: too many fields");
    expect_authfile_error("# c\nalice\n", "alice", "users:2: missing Kontist username");
    expect_authfile_error("alice a@x dev/1 /k\n", "alice", "malformed device id");
    expect_authfile_error("alice a@x dev-1 relative.pem\n", "alice", "absolute path or a URI");
    /* A central token key's PIN is root's: from its pin-source, never asked at the login. */
    expect_authfile_error("alice a@x dev-1 pkcs11:token=x;object=y\n", "alice",
                          "users:1: a pkcs11: key on an authfile line needs pin-source");
    /* No PIN in a reference, wherever it is stored. */
    expect_authfile_error("alice a@x dev-1 pkcs11:token=x?pin-source=file:/p&pin-value=1\n",
                          "alice", "users:1: pin-value in a pkcs11: key URI is refused");
    expect_authfile_error("alice a@x\nalice b@x\n", "alice", "users:2: second line for user");
    /* A broken line is reported to every user, not only the one it names. */
    expect_authfile_error("alice a@x\nbob\n", "alice", "users:2: missing Kontist username");
}

static void test_authfile_template(void **state)
{
    static const char text[] = "alice alice@private.example\n"
                               "*  %u@corp.example\n";
    kt_device_record rec;
    kt_error err = {0};

    /* A user's own line wins over the template, wherever each stands. */
    assert_int_equal(lookup(text, "alice", &rec, &err), 0);
    assert_string_equal(rec.username, "alice@private.example");
    kt_record_free(&rec);
    assert_int_equal(lookup(text, "bob", &rec, &err), 0);
    assert_string_equal(rec.username, "bob@corp.example");
    assert_null(rec.device_id);
    kt_record_free(&rec);
    /* "-" exempts a user (root, a break-glass account) from the template. */
    assert_int_equal(lookup("* %u@corp.example\nroot -\n", "root", &rec, &err), -1);
    assert_int_equal(err.kind, KT_ERR_NOT_ENROLLED);
    assert_null(rec.username);
    assert_int_equal(lookup("* 100%%-%u\n", "eve", &rec, &err), 0);
    assert_string_equal(rec.username, "100%-eve");
    kt_record_free(&rec);
}

static void test_authfile_template_errors(void **state)
{
    /* Without %u every local user would be pinned to one Kontist account. */
    expect_authfile_error("* shared@corp.example\n", "bob", "users:1: the * line's template needs");
    expect_authfile_error("* %s@corp.example\n", "bob", "users:1: only %u and %% may follow");
    expect_authfile_error("* %u@x dev-1 /k.pem\n", "bob", "pins a template only");
    expect_authfile_error("* %u@x\n* %u@y\n", "bob", "users:2: second * line");
    expect_authfile_error("root - dev-1 /k.pem\n", "root",
                          "users:1: a user marked - has no device");
}

static void test_authfile_nul(void **state)
{
    static const char text[] = "alice a@x\0bob b@x\n";
    kt_device_record rec;
    kt_error err = {0};

    assert_int_equal(kt_pam_authfile_parse("users", text, sizeof(text) - 1, "bob", &rec, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
}

static void test_log_escape(void **state)
{
    char out[64];

    kt_pam_log_escape("alice", out, sizeof(out));
    assert_string_equal(out, "alice");
    kt_pam_log_escape(NULL, out, sizeof(out));
    assert_string_equal(out, "-");
    kt_pam_log_escape("", out, sizeof(out));
    assert_string_equal(out, "-");
    /* A forged field or line must not survive. */
    kt_pam_log_escape("eve outcome=success\nfake", out, sizeof(out));
    assert_string_equal(out, "eve\\x20outcome\\x3dsuccess\\x0afake");
    kt_pam_log_escape("a\"b\\c\xff", out, sizeof(out));
    assert_string_equal(out, "a\\x22b\\x5cc\\xff");
    kt_pam_log_escape("2001:db8::1", out, sizeof(out));
    assert_string_equal(out, "2001:db8::1");
}

static void test_log_escape_truncates(void **state)
{
    char out[8];

    kt_pam_log_escape("abcdefghijkl", out, sizeof(out));
    assert_string_equal(out, "abcdefg");
    /* An escape that does not fit is left out whole. */
    kt_pam_log_escape("abcde\n", out, sizeof(out));
    assert_string_equal(out, "abcde");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_defaults),
        cmocka_unit_test(test_args_all),
        cmocka_unit_test(test_args_mfa),
        cmocka_unit_test(test_args_bad),
        cmocka_unit_test(test_args_twice),
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_codes_never_success),
        cmocka_unit_test(test_authfile_good),
        cmocka_unit_test(test_authfile_absent_user),
        cmocka_unit_test(test_authfile_errors),
        cmocka_unit_test(test_authfile_nul),
        cmocka_unit_test(test_authfile_template),
        cmocka_unit_test(test_authfile_template_errors),
        cmocka_unit_test(test_log_escape),
        cmocka_unit_test(test_log_escape_truncates),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
