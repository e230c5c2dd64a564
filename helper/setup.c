#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "exit_codes.h"

/* kt_file insists on absolute paths; a relative --config is taken from the current directory
 * without resolving links, so the file itself is still opened with O_NOFOLLOW. */
char *ka_absolute_path(const char *path, kt_error *err)
{
    char *cwd, *out = NULL;

    if (path[0] == '/') {
        out = strdup(path);
    } else if ((cwd = getcwd(NULL, 0)) != NULL) {
        if (asprintf(&out, "%s/%s", cwd, path) < 0)
            out = NULL;
        free(cwd);
    } else {
        kt_error_set(err, KT_ERR_IO, "cannot find the current directory: %s", strerror(errno));
        return NULL;
    }
    if (out == NULL)
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return out;
}

static int load_one(ka_app *app, const char *path, const kt_owner_policy *owners, bool missing_ok,
                    kt_error *err)
{
    bool found = false;

    if (kt_config_load_file(&app->cfg, path, owners, missing_ok, &found, err) != 0)
        return -1;
    if (found) {
        for (size_t i = 0; i < 2; i++) {
            if (app->config_used[i] == NULL) {
                app->config_used[i] = strdup(path);
                break;
            }
        }
    }
    return 0;
}

size_t ka_config_files(const ka_app *app, kt_doctor_config_file files[2], char **chosen_abs,
                       kt_error *err)
{
    kt_owner_policy user_cfg_owners = app->user_owners;
    const char *chosen = app->config_path;

    *chosen_abs = NULL;
    /* Files in the user's own directory may also be root's (an administrator set them up). */
    user_cfg_owners.allow_root = true;
    if (chosen == NULL) {
        chosen = getenv("KONTIST_CONFIG");
        if (chosen != NULL && chosen[0] == '\0')
            chosen = NULL;
    }
    if (chosen != NULL) {
        *chosen_abs = ka_absolute_path(chosen, err);
        if (*chosen_abs == NULL)
            return 0;
        files[0] = (kt_doctor_config_file){*chosen_abs, user_cfg_owners, false};
        return 1;
    }
    files[0] = (kt_doctor_config_file){KT_SYSTEM_CONFIG, {.allow_root = true}, true};
    files[1] = (kt_doctor_config_file){app->paths.user_config, user_cfg_owners, true};
    return 2;
}

static int load_config(ka_app *app, kt_error *err)
{
    kt_doctor_config_file files[2];
    char *chosen_abs = NULL;
    size_t n = ka_config_files(app, files, &chosen_abs, err);
    int rc = n == 0 ? -1 : 0;

    for (size_t i = 0; i < n && rc == 0; i++)
        rc = load_one(app, files[i].path, &files[i].owners, files[i].missing_ok, err);
    free(chosen_abs);
    return rc;
}

int ka_app_setup_paths(ka_app *app, kt_error *err)
{
    app->user_owners.allow_root = false;
    app->user_owners.allow_uid = true;
    app->user_owners.uid = geteuid();
    return kt_paths_from_env(&app->paths, err);
}

/* A key that no file set has no line to name: the message names the files that were read, or,
 * when there were none, where they were looked for. */
static int validate(ka_app *app, kt_error *err)
{
    kt_error verr = {KT_OK, ""};

    if (kt_config_validate(&app->cfg, &verr) == 0)
        return 0;
    if (app->config_used[0] == NULL)
        return kt_error_set(err, verr.kind,
                            "no configuration file: neither %s nor %s exists (--config FILE or "
                            "KONTIST_CONFIG name another): %s",
                            KT_SYSTEM_CONFIG, app->paths.user_config, verr.message);
    if (app->config_used[1] != NULL)
        return kt_error_set(err, verr.kind, "%s, %s: %s", app->config_used[0], app->config_used[1],
                            verr.message);
    return kt_error_set(err, verr.kind, "%s: %s", app->config_used[0], verr.message);
}

/* A token's PIN, asked on the terminal without echo, once: a wrong one is an error, never asked
 * again (the token counts failed attempts). Never from standard input or the environment. */
static int ask_token_pin(void *data, const char *token, char *pin, size_t size, kt_error *err)
{
    const ka_term *t = data;
    char prompt[128];
    char *answer = NULL;
    int rc;

    if (t->no_prompt)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "token \"%s\" needs a PIN and nobody may be asked here (add "
                            "pin-source=file:... to the key URI)",
                            token);
    snprintf(prompt, sizeof(prompt), "PIN for token \"%.60s\": ", token);
    rc = ka_tty_ask(prompt, false, &answer, err);
    if (rc == 1)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "token \"%s\" needs a PIN and there is no terminal to ask on (add "
                            "pin-source=file:... to the key URI)",
                            token);
    if (rc != 0)
        return -1;
    if (answer == NULL || answer[0] == '\0' || strlen(answer) >= size) {
        kt_secret_free(answer);
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "no usable PIN given for token \"%s\"",
                            token);
    }
    memcpy(pin, answer, strlen(answer) + 1);
    kt_secret_free(answer);
    return 0;
}

int ka_app_setup(ka_app *app, kt_error *err)
{
    kt_key_set_pin_prompt(ask_token_pin, &app->term);
    kt_config_init(&app->cfg);
    app->config_loaded = true;
    if (ka_app_setup_paths(app, err) != 0)
        return -1;
    if (load_config(app, err) != 0 || validate(app, err) != 0)
        return -1;
    /* The person's own process: a TPM2OPENSSL_TCTI they set wins over tpm_tcti. */
    if (kt_key_set_tpm_tcti(app->cfg.tpm_tcti, true, err) != 0)
        return -1;
    /* Before anything is asked: a CA file this user cannot read is the configuration's problem,
     * and it must say so before the password is typed, not as a TLS failure after it. */
    return kt_config_check_files(&app->cfg, err);
}

void ka_app_free(ka_app *app)
{
    if (app->config_loaded)
        kt_config_free(&app->cfg);
    kt_paths_free(&app->paths);
    for (size_t i = 0; i < 2; i++) {
        free(app->config_used[i]);
        app->config_used[i] = NULL;
    }
    app->config_loaded = false;
}

int ka_usage_error(const ka_app *app, const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s%s%s: ", app->prog, cmd != NULL ? " " : "", cmd != NULL ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s%s%s --help'.\n", app->prog, cmd != NULL ? " " : "",
            cmd != NULL ? cmd : "");
    return KA_EXIT_USAGE;
}

int ka_bad_option(const ka_app *app, const char *cmd, int c, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "?";

    if (c == ':')
        return ka_usage_error(app, cmd, "option '%s' needs an argument", arg);
    if (strncmp(arg, "--", 2) == 0) {
        int name_len = (int)strcspn(arg, "=");

        /* getopt leaves a known long option's own value in optopt when it was given a value
         * it takes none of; an unknown or ambiguous one leaves 0. */
        if (optopt != 0 && arg[name_len] == '=')
            return ka_usage_error(app, cmd, "option '%.*s' takes no value", name_len, arg);
        return ka_usage_error(app, cmd, "unknown option '%s'", arg);
    }
    if (optopt > 0 && optopt < 0x80 && isprint(optopt))
        return ka_usage_error(app, cmd, "unknown option '-%c'", optopt);
    return ka_usage_error(app, cmd, "unknown option '%s'", arg);
}

void ka_format_time(time_t t, char *buf, size_t size)
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
}

void ka_mask(const char *secret, char *buf, size_t size)
{
    snprintf(buf, size, "%.8s\xe2\x80\xa6", secret != NULL ? secret : "");
}

void ka_key_ref_display(const char *ref, char *buf, size_t size)
{
    static const char pin[] = "pin-value=";
    const char *start = ref != NULL ? ref : "";
    size_t o = 0;

    if (size == 0)
        return;
    for (const char *p = start; *p != '\0' && o + 1 < size;) {
        bool attr_start = p > start && strchr(":;?&", p[-1]) != NULL;

        if (attr_start && strncmp(p, pin, sizeof(pin) - 1) == 0) {
            /* Keep the name, hide the value up to the next attribute. */
            snprintf(buf + o, size - o, "%s\xe2\x80\xa6", pin);
            o += strlen(buf + o);
            p += sizeof(pin) - 1;
            p += strcspn(p, ";?&");
            continue;
        }
        buf[o++] = *p++;
    }
    buf[o] = '\0';
}

/* The names of a table, "a, b, c", for usage errors. */
static void command_names(const ka_command *table, size_t n, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i > 0 ? ", " : "", table[i].name);

        if (w < 0)
            break;
        used += (size_t)w;
    }
}

int ka_dispatch(ka_app *app, const char *parent, const ka_command *table, size_t n, int argc,
                char **argv)
{
    char names[256];

    command_names(table, n, names, sizeof(names));
    if (argc < 1 || argv[0] == NULL)
        return parent == NULL ? ka_usage_error(app, NULL, "no command given")
                              : ka_usage_error(app, parent, "no subcommand given (%s)", names);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[0], table[i].name) == 0) {
            optind = 0; /* glibc: start the next getopt_long afresh */
            return table[i].run(app, argc, argv);
        }
    }
    return parent == NULL
               ? ka_usage_error(app, NULL, "unknown command '%s'", argv[0])
               : ka_usage_error(app, parent, "unknown subcommand '%s' (%s)", argv[0], names);
}
