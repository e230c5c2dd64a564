#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kontist.h"
#include "pam_kontist.h"

/* The value of `name=value` when arg starts with prefix (which ends in '='), else NULL. */
static const char *arg_value(const char *arg, const char *prefix)
{
    size_t n = strlen(prefix);

    return strncmp(arg, prefix, n) == 0 ? arg + n : NULL;
}

static int set_path(const char **slot, const char *name, const char *value, kt_error *err)
{
    if (*slot != NULL)
        return kt_error_set(err, KT_ERR_CONFIG, "module argument %s given twice", name);
    if (value[0] != '/')
        return kt_error_set(err, KT_ERR_CONFIG, "module argument %s needs an absolute path", name);
    *slot = value;
    return 0;
}

static const kt_pam_mfa mfa_modes[] = {
    KT_PAM_MFA_DEVICE,      KT_PAM_MFA_NONE,        KT_PAM_MFA_PUSH,
    KT_PAM_MFA_DEVICE_PUSH, KT_PAM_MFA_PUSH_DEVICE,
};

static int set_mfa(kt_pam_args *args, const char *value, kt_error *err)
{
    for (size_t i = 0; i < sizeof(mfa_modes) / sizeof(mfa_modes[0]); i++) {
        if (strcmp(value, kt_pam_mfa_name(mfa_modes[i])) == 0) {
            args->mfa = mfa_modes[i];
            return 0;
        }
    }
    return kt_error_set(err, KT_ERR_CONFIG,
                        "module argument mfa= must be device, push, device,push, push,device or "
                        "none");
}

static int set_timeout(kt_pam_args *args, const char *value, kt_error *err)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || value[0] == '-' || value[0] == '+' || v < 1 ||
        v > KT_PAM_LOGIN_TIMEOUT_MAX)
        return kt_error_set(err, KT_ERR_CONFIG,
                            "module argument login_timeout= must be 1 to %d seconds",
                            KT_PAM_LOGIN_TIMEOUT_MAX);
    args->login_timeout = v;
    return 0;
}

static int set_fail_floor(kt_pam_args *args, const char *value, kt_error *err)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || value[0] == '-' || value[0] == '+' || v < 0 ||
        v > KT_PAM_FAIL_FLOOR_MAX_MS)
        return kt_error_set(err, KT_ERR_CONFIG,
                            "module argument fail_floor_ms= must be 0 to %d milliseconds",
                            KT_PAM_FAIL_FLOOR_MAX_MS);
    args->fail_floor_ms = v;
    return 0;
}

/* Sets the flag named arg; false when arg is no flag. */
static bool parse_flag(kt_pam_args *args, const char *arg)
{
    const struct {
        const char *name;
        bool *slot;
    } flags[] = {
        {"debug", &args->debug},
        {"nouserok", &args->nouserok},
        {"use_first_pass", &args->use_first_pass},
        {"try_first_pass", &args->try_first_pass},
        {"logout_on_close", &args->logout_on_close},
        {"nocache", &args->nocache},
    };

    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (strcmp(arg, flags[i].name) == 0) {
            *flags[i].slot = true;
            return true;
        }
    }
    return false;
}

static int parse_one(kt_pam_args *args, const char *arg, kt_error *err)
{
    const char *v;

    if (parse_flag(args, arg))
        return 0;
    if ((v = arg_value(arg, "config=")) != NULL)
        return set_path(&args->config, "config=", v, err);
    if ((v = arg_value(arg, "authfile=")) != NULL) {
        args->authfile_given = true;
        return set_path(&args->authfile, "authfile=", v, err);
    }
    if ((v = arg_value(arg, "helper=")) != NULL)
        return set_path(&args->helper, "helper=", v, err);
    if ((v = arg_value(arg, "mfa=")) != NULL)
        return set_mfa(args, v, err);
    if ((v = arg_value(arg, "login_timeout=")) != NULL)
        return set_timeout(args, v, err);
    if ((v = arg_value(arg, "fail_floor_ms=")) != NULL)
        return set_fail_floor(args, v, err);
    /* An unknown argument is most likely a typo of a security setting: refuse to guess. */
    return kt_error_set(err, KT_ERR_CONFIG, "unknown module argument '%.64s'", arg);
}

int kt_pam_args_parse(kt_pam_args *args, int argc, const char **argv, kt_error *err)
{
    memset(args, 0, sizeof(*args));
    args->mfa = KT_PAM_MFA_DEVICE;
    args->fail_floor_ms = KT_PAM_FAIL_FLOOR_MS;
    for (int i = 0; i < argc; i++) {
        if (argv[i] == NULL || argv[i][0] == '\0')
            return kt_error_set(err, KT_ERR_CONFIG, "empty module argument");
        if (parse_one(args, argv[i], err) != 0)
            return -1;
    }
    if (args->config == NULL)
        args->config = KT_SYSTEM_CONFIG;
    if (args->authfile == NULL)
        args->authfile = KT_PAM_DEFAULT_AUTHFILE;
    if (args->helper == NULL)
        args->helper = KT_PAM_HELPER_PATH;
    return 0;
}

const char *kt_pam_mfa_name(kt_pam_mfa mfa)
{
    switch (mfa) {
    case KT_PAM_MFA_DEVICE:
        return "device";
    case KT_PAM_MFA_NONE:
        return "none";
    case KT_PAM_MFA_PUSH:
        return "push";
    case KT_PAM_MFA_DEVICE_PUSH:
        return "device,push";
    case KT_PAM_MFA_PUSH_DEVICE:
        return "push,device";
    }
    return "unknown";
}

bool kt_pam_mfa_has_push(kt_pam_mfa mfa)
{
    return mfa == KT_PAM_MFA_PUSH || mfa == KT_PAM_MFA_DEVICE_PUSH || mfa == KT_PAM_MFA_PUSH_DEVICE;
}
