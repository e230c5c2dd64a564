#include <config.h>

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kontist.h"

/* "dir" + "/" + "name" without doubling the slash when dir is "/" or ends in slashes. */
static char *join(const char *dir, const char *name)
{
    size_t len = strlen(dir);
    char *out;

    while (len > 0 && dir[len - 1] == '/')
        len--;
    if (asprintf(&out, "%.*s/%s", (int)len, dir, name) < 0)
        return NULL;
    return out;
}

static int fill_files(kt_paths *p, kt_error *err)
{
    p->user_config = join(p->config_dir, "kontist.conf");
    p->record_file = join(p->config_dir, "device.json");
    p->key_file = join(p->config_dir, "device-key.pem");
    p->cache_file = join(p->state_dir, "tokens.json");
    p->lock_file = join(p->state_dir, "tokens.lock");
    if (p->user_config == NULL || p->record_file == NULL || p->key_file == NULL ||
        p->cache_file == NULL || p->lock_file == NULL) {
        kt_paths_free(p);
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    return 0;
}

static int check_home(const char *home, kt_error *err)
{
    if (home == NULL || home[0] != '/')
        return kt_error_set(err, KT_ERR_CONFIG, "home directory '%s' is not an absolute path",
                            home != NULL ? home : "(none)");
    return 0;
}

int kt_paths_for_home(kt_paths *p, const char *home, kt_error *err)
{
    memset(p, 0, sizeof(*p));
    if (check_home(home, err) != 0)
        return -1;
    p->config_dir = join(home, ".config/kontist");
    p->state_dir = join(home, ".local/state/kontist");
    if (p->config_dir == NULL || p->state_dir == NULL) {
        kt_paths_free(p);
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    return fill_files(p, err);
}

/* HOME, or the password database when HOME is unset or empty. Caller frees. */
static char *home_dir(kt_error *err)
{
    const char *env = secure_getenv("HOME");
    struct passwd pw, *res = NULL;
    long size = sysconf(_SC_GETPW_R_SIZE_MAX);
    char *buf, *home = NULL;
    int rc;

    if (env != NULL && env[0] != '\0') {
        if (check_home(env, err) != 0)
            return NULL;
        home = strdup(env);
        if (home == NULL)
            kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        return home;
    }
    if (size < 1024)
        size = 16384;
    buf = malloc((size_t)size);
    if (buf == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    rc = getpwuid_r(getuid(), &pw, buf, (size_t)size, &res);
    if (res == NULL)
        kt_error_set(err, KT_ERR_CONFIG, "HOME is not set and uid %lu has no home directory%s%s",
                     (unsigned long)getuid(), rc != 0 ? ": " : "", rc != 0 ? strerror(rc) : "");
    else if (check_home(pw.pw_dir, err) == 0 && (home = strdup(pw.pw_dir)) == NULL)
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    free(buf);
    return home;
}

/* An XDG base directory counts only when absolute, as the XDG specification demands. */
static const char *xdg_dir(const char *name)
{
    const char *v = secure_getenv(name);

    return v != NULL && v[0] == '/' ? v : NULL;
}

int kt_paths_from_env(kt_paths *p, kt_error *err)
{
    const char *xdg_config = xdg_dir("XDG_CONFIG_HOME");
    const char *xdg_state = xdg_dir("XDG_STATE_HOME");
    char *home = NULL;

    memset(p, 0, sizeof(*p));
    if (xdg_config == NULL || xdg_state == NULL) {
        home = home_dir(err);
        if (home == NULL)
            return -1;
    }
    p->config_dir =
        xdg_config != NULL ? join(xdg_config, "kontist") : join(home, ".config/kontist");
    p->state_dir =
        xdg_state != NULL ? join(xdg_state, "kontist") : join(home, ".local/state/kontist");
    free(home);
    if (p->config_dir == NULL || p->state_dir == NULL) {
        kt_paths_free(p);
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    return fill_files(p, err);
}

void kt_paths_free(kt_paths *p)
{
    if (p == NULL)
        return;
    free(p->config_dir);
    free(p->state_dir);
    free(p->user_config);
    free(p->record_file);
    free(p->key_file);
    free(p->cache_file);
    free(p->lock_file);
    memset(p, 0, sizeof(*p));
}
