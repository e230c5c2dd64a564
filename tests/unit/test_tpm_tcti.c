/* Which TPM a process reaches (kt_tpm_set_tcti): always an explicit TCTI, the caller's TSS
 * variables removed where only the configuration may decide (the PAM helper), and an error that
 * names the group a device node is open to when the process's identity cannot open it. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_privs.h"
#include "kt_tpm.h"
#include "test_util.h"

#define NOBODY 65534

static const char *const hostile[] = {"TPM2TOOLS_TCTI", "TCTI", "TSS2_TCTI"};

static void set_hostile_environment(void)
{
    assert_int_equal(setenv("TPM2OPENSSL_TCTI", "swtpm:host=127.0.0.1,port=2321", 1), 0);
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
        assert_int_equal(setenv(hostile[i], "swtpm:host=127.0.0.1,port=2321", 1), 0);
}

/* The PAM helper's way: the configuration (here none: the default) wins, the rest is removed. */
static void test_configuration_only_ignores_the_environment(void **state)
{
    (void)state;
    set_hostile_environment();
    assert_int_equal(kt_tpm_set_tcti(NULL, false), 0);
    assert_string_equal(getenv("TPM2OPENSSL_TCTI"), KT_TPM_DEFAULT_TCTI);
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
        assert_null(getenv(hostile[i]));

    set_hostile_environment();
    assert_int_equal(kt_tpm_set_tcti("swtpm:host=127.0.0.1,port=4000", false), 0);
    assert_string_equal(getenv("TPM2OPENSSL_TCTI"), "swtpm:host=127.0.0.1,port=4000");
    assert_null(getenv("TCTI"));
}

/* kontist-auth's way: the person's own TPM2OPENSSL_TCTI wins over the configuration. */
static void test_environment_wins_for_the_persons_own_process(void **state)
{
    (void)state;
    assert_int_equal(setenv("TPM2OPENSSL_TCTI", "mssim:host=127.0.0.1,port=5000", 1), 0);
    assert_int_equal(kt_tpm_set_tcti("device:/dev/tpmrm0", true), 0);
    assert_string_equal(getenv("TPM2OPENSSL_TCTI"), "mssim:host=127.0.0.1,port=5000");
    assert_int_equal(unsetenv("TPM2OPENSSL_TCTI"), 0);
    assert_int_equal(kt_tpm_set_tcti("device:/dev/tpmrm0", true), 0);
    assert_string_equal(getenv("TPM2OPENSSL_TCTI"), "device:/dev/tpmrm0");
}

static void test_a_missing_device_says_there_is_no_tpm(void **state)
{
    kt_error err = {KT_OK, ""};

    (void)state;
    assert_int_equal(kt_tpm_set_tcti("device:/nonexistent/tpmrm0", false), 0);
    assert_int_equal(kt_tpm_ensure_provider(&err), -1);
    assert_int_equal(err.kind, KT_ERR_KEY_UNUSABLE);
    if (strstr(err.message, "no TPM on this machine (/nonexistent/tpmrm0 does not exist") == NULL)
        fail_msg("got '%s'", err.message);
}

/* A device node open to a group the identity lacks: the message names that group. */
static void test_no_access_names_the_group(void **state)
{
    test_dir dir;
    char path[PATH_MAX];
    struct group *g = getgrgid(1);
    kt_privs p;
    kt_error err = {KT_OK, ""};
    int fd, rc;

    (void)state;
    if (geteuid() != 0 || g == NULL)
        skip();
    assert_int_equal(test_dir_create_in(&dir, "/tmp", "test-tpm"), 0);
    assert_int_equal(chmod(dir.path, 0755), 0);
    test_path(&dir, "tpmrm0", path, sizeof(path));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0660);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chown(path, 0, 1), 0);
    assert_int_equal(chmod(path, 0660), 0);
    {
        char tcti[PATH_MAX + 8], want[256];

        snprintf(tcti, sizeof(tcti), "device:%s", path);
        assert_int_equal(kt_tpm_set_tcti(tcti, false), 0);
        assert_int_equal(kt_privs_drop(&p, NOBODY, NOBODY, &err), 0);
        rc = kt_tpm_ensure_provider(&err);
        assert_int_equal(kt_privs_restore(&p, &err), 0);
        assert_int_equal(rc, -1);
        snprintf(want, sizeof(want), "it is open to the group '%s' (mode 660)", g->gr_name);
        if (strstr(err.message, want) == NULL || strstr(err.message, "no access to") == NULL)
            fail_msg("got '%s', expected '%s'", err.message, want);
    }
    unlink(path);
    test_dir_remove(&dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_configuration_only_ignores_the_environment),
        cmocka_unit_test(test_environment_wins_for_the_persons_own_process),
        cmocka_unit_test(test_a_missing_device_says_there_is_no_tpm),
        cmocka_unit_test(test_no_access_names_the_group),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
