/* Unit tests for kt_doctor: sshd's time syntax and the reporting contract (every failure comes
 * with a fix, the summary counts what was reported), on a setup that needs no network. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kontist.h"

static void test_sshd_time(void **state)
{
    assert_int_equal(kt_doctor_sshd_time("120"), 120);
    assert_int_equal(kt_doctor_sshd_time("0"), 0);
    assert_int_equal(kt_doctor_sshd_time("2m"), 120);
    assert_int_equal(kt_doctor_sshd_time("1h30m"), 5400);
    assert_int_equal(kt_doctor_sshd_time("20s"), 20);
    assert_int_equal(kt_doctor_sshd_time("1M5S"), 65);
    assert_int_equal(kt_doctor_sshd_time(""), -1);
    assert_int_equal(kt_doctor_sshd_time("m"), -1);
    assert_int_equal(kt_doctor_sshd_time("12x"), -1);
    assert_int_equal(kt_doctor_sshd_time("-5"), -1);
    assert_int_equal(kt_doctor_sshd_time(NULL), -1);
}

static void test_status_names(void **state)
{
    assert_string_equal(kt_doctor_status_name(KT_DOCTOR_OK), "ok");
    assert_string_equal(kt_doctor_status_name(KT_DOCTOR_WARN), "warn");
    assert_string_equal(kt_doctor_status_name(KT_DOCTOR_FAIL), "fail");
    assert_string_equal(kt_doctor_status_name(KT_DOCTOR_SKIP), "skip");
}

typedef struct seen {
    unsigned ok, warn, fail, skip;
    char first_fail[32];
    bool fail_without_fix;
    bool ok_with_fix;
} seen;

static void collect(const kt_doctor_result *r, void *data)
{
    seen *s = data;

    assert_non_null(r->name);
    assert_non_null(r->detail);
    switch (r->status) {
    case KT_DOCTOR_OK:
        s->ok++;
        s->ok_with_fix |= r->fix != NULL;
        break;
    case KT_DOCTOR_WARN:
        s->warn++;
        break;
    case KT_DOCTOR_FAIL:
        if (s->fail++ == 0)
            snprintf(s->first_fail, sizeof(s->first_fail), "%s", r->name);
        s->fail_without_fix |= r->fix == NULL || r->kind == KT_OK;
        break;
    case KT_DOCTOR_SKIP:
        s->skip++;
        break;
    }
}

static void test_missing_configuration_fails_with_a_fix(void **state)
{
    char home[] = "/tmp/kt-doctor-XXXXXX";
    kt_error err = {KT_OK, ""};
    kt_doctor_config_file file;
    kt_doctor_options opts;
    kt_doctor_summary sum;
    kt_paths paths;
    seen s;
    char conf[64];

    assert_non_null(mkdtemp(home));
    assert_int_equal(kt_paths_for_home(&paths, home, &err), 0);
    snprintf(conf, sizeof(conf), "%s/missing.conf", home);
    memset(&opts, 0, sizeof(opts));
    memset(&s, 0, sizeof(s));
    file.path = conf;
    file.owners = (kt_owner_policy){true, true, geteuid()};
    file.missing_ok = false;
    opts.config_files = &file;
    opts.n_config_files = 1;
    opts.paths = &paths;
    opts.user_owners = (kt_owner_policy){false, true, geteuid()};
    opts.network = true; /* no usable configuration: no request is made anyway */

    assert_int_equal(kt_doctor_run(&opts, collect, &s, &sum), -1);
    assert_string_equal(s.first_fail, "config-file");
    assert_int_equal(sum.first_failure, KT_ERR_CONFIG);
    assert_false(s.fail_without_fix);
    assert_false(s.ok_with_fix);
    assert_int_equal(sum.ok, s.ok);
    assert_int_equal(sum.warn, s.warn);
    assert_int_equal(sum.fail, s.fail);
    assert_int_equal(sum.skip, s.skip);
    assert_true(s.warn >= 2); /* not logged in, no device enrolled */
    kt_paths_free(&paths);
    assert_int_equal(rmdir(home), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sshd_time),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_missing_configuration_fails_with_a_fix),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
