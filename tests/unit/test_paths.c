/* Unit tests for where a user's files live, with and without XDG variables. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kt_all.h"

static const char *const env_names[] = {"HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"};

typedef struct saved_env {
    char *values[3];
} saved_env;

/* Every test starts from a known environment: HOME=/home/tester, no XDG variables. */
static int setup(void **state)
{
    saved_env *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return -1;
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(env_names[i]);

        s->values[i] = v != NULL ? strdup(v) : NULL;
    }
    setenv("HOME", "/home/tester", 1);
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("XDG_STATE_HOME");
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    saved_env *s = *state;

    for (int i = 0; i < 3; i++) {
        if (s->values[i] != NULL)
            setenv(env_names[i], s->values[i], 1);
        else
            unsetenv(env_names[i]);
        free(s->values[i]);
    }
    free(s);
    return 0;
}

static void assert_home_layout(const kt_paths *p, const char *home)
{
    char want[512];

    snprintf(want, sizeof(want), "%s/.config/kontist", home);
    assert_string_equal(p->config_dir, want);
    snprintf(want, sizeof(want), "%s/.local/state/kontist", home);
    assert_string_equal(p->state_dir, want);
    snprintf(want, sizeof(want), "%s/.config/kontist/kontist.conf", home);
    assert_string_equal(p->user_config, want);
    snprintf(want, sizeof(want), "%s/.config/kontist/device.json", home);
    assert_string_equal(p->record_file, want);
    snprintf(want, sizeof(want), "%s/.config/kontist/device-key.pem", home);
    assert_string_equal(p->key_file, want);
    snprintf(want, sizeof(want), "%s/.local/state/kontist/tokens.json", home);
    assert_string_equal(p->cache_file, want);
    snprintf(want, sizeof(want), "%s/.local/state/kontist/tokens.lock", home);
    assert_string_equal(p->lock_file, want);
}

static void test_for_home(void **state)
{
    kt_paths p;
    kt_error err = {KT_OK, ""};

    assert_int_equal(kt_paths_for_home(&p, "/home/alice", &err), 0);
    assert_home_layout(&p, "/home/alice");
    kt_paths_free(&p);
    assert_null(p.config_dir);
    assert_null(p.lock_file);

    /* Trailing slashes do not double up; "/" as home gives "/.config/...". */
    assert_int_equal(kt_paths_for_home(&p, "/home/alice//", &err), 0);
    assert_home_layout(&p, "/home/alice");
    kt_paths_free(&p);
    assert_int_equal(kt_paths_for_home(&p, "/", &err), 0);
    assert_string_equal(p.config_dir, "/.config/kontist");
    assert_string_equal(p.cache_file, "/.local/state/kontist/tokens.json");
    kt_paths_free(&p);
}

static void test_for_home_ignores_xdg(void **state)
{
    kt_paths p;
    kt_error err = {KT_OK, ""};

    /* The PAM module runs in root's environment: XDG variables there say nothing about the user. */
    setenv("XDG_CONFIG_HOME", "/xdg/config", 1);
    setenv("XDG_STATE_HOME", "/xdg/state", 1);
    assert_int_equal(kt_paths_for_home(&p, "/home/bob", &err), 0);
    assert_home_layout(&p, "/home/bob");
    kt_paths_free(&p);
}

static void test_for_home_bad(void **state)
{
    kt_paths p;
    kt_error err = {KT_OK, ""};

    assert_int_equal(kt_paths_for_home(&p, "home/alice", &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    assert_null(p.config_dir);
    kt_error_clear(&err);
    assert_int_equal(kt_paths_for_home(&p, "", &err), -1);
    kt_error_clear(&err);
    assert_int_equal(kt_paths_for_home(&p, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
}

static void test_env_home(void **state)
{
    kt_paths p;
    kt_error err = {KT_OK, ""};

    assert_int_equal(kt_paths_from_env(&p, &err), 0);
    assert_home_layout(&p, "/home/tester");
    kt_paths_free(&p);
}

static void test_env_xdg(void **state)
{
    kt_paths p;
    kt_error err = {KT_OK, ""};

    setenv("XDG_CONFIG_HOME", "/xdg/config/", 1);
    setenv("XDG_STATE_HOME", "/xdg/state", 1);
    assert_int_equal(kt_paths_from_env(&p, &err), 0);
    assert_string_equal(p.config_dir, "/xdg/config/kontist");
    assert_string_equal(p.user_config, "/xdg/config/kontist/kontist.conf");
    assert_string_equal(p.record_file, "/xdg/config/kontist/device.json");
    assert_string_equal(p.key_file, "/xdg/config/kontist/device-key.pem");
    assert_string_equal(p.state_dir, "/xdg/state/kontist");
    assert_string_equal(p.cache_file, "/xdg/state/kontist/tokens.json");
    assert_string_equal(p.lock_file, "/xdg/state/kontist/tokens.lock");
    kt_paths_free(&p);

    /* With both XDG directories set, HOME is not needed at all. */
    setenv("HOME", "relative", 1);
    assert_int_equal(kt_paths_from_env(&p, &err), 0);
    assert_string_equal(p.state_dir, "/xdg/state/kontist");
    kt_paths_free(&p);
}

static void test_env_xdg_partial_and_relative(void **state)
{
    kt_paths p;
    kt_error err = {KT_OK, ""};

    setenv("XDG_CONFIG_HOME", "/xdg/config", 1);
    assert_int_equal(kt_paths_from_env(&p, &err), 0);
    assert_string_equal(p.config_dir, "/xdg/config/kontist");
    assert_string_equal(p.state_dir, "/home/tester/.local/state/kontist");
    kt_paths_free(&p);

    /* Relative or empty XDG values are ignored, as the XDG specification says. */
    setenv("XDG_CONFIG_HOME", "xdg/config", 1);
    setenv("XDG_STATE_HOME", "", 1);
    assert_int_equal(kt_paths_from_env(&p, &err), 0);
    assert_home_layout(&p, "/home/tester");
    kt_paths_free(&p);
}

static void test_env_home_relative(void **state)
{
    kt_paths p;
    kt_error err = {KT_OK, ""};

    setenv("HOME", "home/tester", 1);
    assert_int_equal(kt_paths_from_env(&p, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    assert_non_null(strstr(err.message, "home/tester"));
    assert_null(p.config_dir);
    /* Also when only one XDG variable would have spared it. */
    kt_error_clear(&err);
    setenv("XDG_STATE_HOME", "/xdg/state", 1);
    assert_int_equal(kt_paths_from_env(&p, &err), -1);
}

static void test_env_home_unset_uses_passwd(void **state)
{
    struct passwd *pw = getpwuid(getuid());
    kt_paths p;
    kt_error err = {KT_OK, ""};
    char home[256];

    assert_non_null(pw);
    snprintf(home, sizeof(home), "%s", pw->pw_dir);
    unsetenv("HOME");
    assert_int_equal(kt_paths_from_env(&p, &err), 0);
    assert_home_layout(&p, strcmp(home, "/") == 0 ? "" : home);
    kt_paths_free(&p);
    setenv("HOME", "", 1);
    assert_int_equal(kt_paths_from_env(&p, &err), 0);
    assert_home_layout(&p, strcmp(home, "/") == 0 ? "" : home);
    kt_paths_free(&p);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_for_home),          T(test_for_home_ignores_xdg),
        T(test_for_home_bad),      T(test_env_home),
        T(test_env_xdg),           T(test_env_xdg_partial_and_relative),
        T(test_env_home_relative), T(test_env_home_unset_uses_passwd),
    };

    kt_paths_free(NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
