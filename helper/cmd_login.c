#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "exit_codes.h"

static const char login_help[] =
    "Usage: kontist-auth login [--user USERNAME] [--password-stdin] [--no-device]\n"
    "\n"
    "Logs in with username and password (OAuth2 password grant). When this machine holds a device\n"
    "bound to that user ('kontist-auth device enroll'), its key then passes device MFA and the\n"
    "token set stored in the cache is confirmed. The password is asked on the terminal without\n"
    "echo; with --password-stdin it is one line of standard input instead. Without a terminal\n"
    "(cron, 'su USER -c', a pipe) and without --password-stdin, nothing is read: it refuses.\n"
    "\n"
    "Options:\n"
    "  -u, --user USERNAME  Kontist username (default: 'username' in the configuration, then the\n"
    "                       user of the enrolled device)\n"
    "      --password-stdin read the password from standard input\n"
    "      --no-device      skip device MFA: the token is not confirmed (to enroll anew)\n"
    "      --config FILE    read only FILE as configuration\n"
    "  -h, --help           show this help\n"
    "\n";

struct login_opts {
    const char *user;
    bool password_stdin;
    bool no_device;
};

enum { OPT_PASSWORD_STDIN = 0x200, OPT_NO_DEVICE };

static const struct option login_options[] = {
    {"user", required_argument, NULL, 'u'},
    {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
    {"no-device", no_argument, NULL, OPT_NO_DEVICE},
    {"config", required_argument, NULL, KA_OPT_CONFIG},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Returns -1 to go on, or an exit code. */
static int parse_login(ka_app *app, int argc, char **argv, struct login_opts *o)
{
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":u:h", login_options, NULL)) != -1) {
        switch (c) {
        case 'u':
            o->user = optarg;
            break;
        case OPT_PASSWORD_STDIN:
            o->password_stdin = true;
            break;
        case OPT_NO_DEVICE:
            o->no_device = true;
            break;
        case KA_OPT_CONFIG:
            app->config_path = optarg;
            break;
        case 'h':
            fputs(login_help, stdout);
            fputs(ka_exit_codes_help, stdout);
            return KA_EXIT_OK;
        default:
            return ka_bad_option(app, "login", c, argv);
        }
    }
    if (optind < argc)
        return ka_usage_error(app, "login", "unexpected argument '%s'", argv[optind]);
    return -1;
}

static const char *pick_username(const ka_app *app, const struct login_opts *o)
{
    if (o->user != NULL && o->user[0] != '\0')
        return o->user;
    if (app->cfg.username != NULL && app->cfg.username[0] != '\0')
        return app->cfg.username;
    return NULL;
}

static int read_password(ka_app *app, const struct login_opts *o, const char *username,
                         char **password, kt_error *err)
{
    char prompt[512];
    int rc;

    if (o->password_stdin) {
        if (ka_stdin_secret_check("--password-stdin", err) != 0)
            return -1;
        rc = ka_read_line(STDIN_FILENO, KA_ANSWER_MAX, password, err);
        if (rc == 1)
            return kt_error_set(err, KT_ERR_CONV, "no password on standard input");
    } else {
        snprintf(prompt, sizeof(prompt), "Kontist password for %s: ", username);
        rc = ka_ask(&app->term, prompt, false, password, err);
    }
    if (rc != 0)
        return -1;
    if ((*password)[0] == '\0') {
        kt_secret_clear(password);
        return kt_error_set(err, KT_ERR_CONV, "empty password");
    }
    return 0;
}

static void say_result(const ka_app *app, const kt_token_set *t, const char *username)
{
    char when[64];

    ka_format_time(t->expires_at, when, sizeof(when));
    if (t->confirmed)
        fprintf(stderr, "%s: logged in as %s; token confirmed by device %s, valid until %s\n",
                app->prog, username, t->device_id != NULL ? t->device_id : "(unknown)", when);
    else
        fprintf(stderr,
                "%s: logged in as %s; token NOT confirmed (no device MFA), valid until %s\n",
                app->prog, username, when);
}

/* The device key of a token, opened once the bank has accepted the password (kt_flow_login). */
typedef struct token_key_loader {
    ka_app *app;
    kt_device_selection *sel;
} token_key_loader;

static EVP_PKEY *load_token_key(void *data, kt_error *err)
{
    token_key_loader *l = data;

    return kt_device_load_key(l->sel, l->app->paths.key_file, &l->app->user_owners, err);
}

int ka_cmd_login(ka_app *app, int argc, char **argv)
{
    struct login_opts o = {NULL, false, false};
    kt_device_selection sel;
    token_key_loader loader = {app, &sel};
    kt_login_params params;
    kt_token_set t;
    kt_error err = {KT_OK, ""};
    kt_ctx *ctx = NULL;
    kt_conv conv;
    char *password = NULL;
    int rc = parse_login(app, argc, argv, &o);

    if (rc >= 0)
        return rc;
    memset(&sel, 0, sizeof(sel));
    memset(&params, 0, sizeof(params));
    memset(&t, 0, sizeof(t));
    app->term.stdin_option = "--password-stdin";
    /* Without a terminal the password could only come from standard input, which may be a
     * terminal that echoes it (su -c): refuse before anything is read or sent. */
    if (!o.password_stdin && ka_term_check(app->term.stdin_option, &err) != 0)
        goto out;
    if (o.password_stdin && ka_stdin_secret_check(app->term.stdin_option, &err) != 0)
        goto out;
    if (ka_app_setup(app, &err) != 0)
        goto out;
    /* Without a name given, the enrolled device's user logs in. */
    params.username = pick_username(app, &o);
    if (kt_device_select(app->paths.record_file, app->paths.key_file, &app->user_owners,
                         params.username, !o.no_device, &sel, &err) != 0)
        goto out;
    if (params.username == NULL)
        params.username = sel.rec.username;
    if (params.username == NULL) {
        kt_error_set(&err, KT_ERR_CONFIG,
                     "no Kontist username: pass --user or set 'username' in the configuration");
        goto out;
    }
    if (!o.no_device && sel.choice == KT_DEVICE_USE) {
        params.device_id = sel.rec.device_id;
        params.key = sel.key;
        if (sel.key_on_token) {
            params.load_key = load_token_key;
            params.load_key_data = &loader;
        }
    } else if (!o.no_device && sel.choice == KT_DEVICE_OTHER_USER && sel.rec.device_id != NULL) {
        fprintf(stderr, "%s: the enrolled device belongs to %s, not %s: no device MFA\n", app->prog,
                sel.rec.username != NULL ? sel.rec.username : "(nobody)", params.username);
    }
    if (read_password(app, &o, params.username, &password, &err) != 0)
        goto out;
    params.password = password;
    conv = ka_term_conv(&app->term);
    ctx = kt_ctx_new(&app->cfg, &conv, &err);
    if (ctx == NULL || kt_flow_login(ctx, &params, &t, &err) != 0)
        goto out;
    /* Only this client can refresh the tokens: the cache says which one it was. */
    if (kt_session_save_login(ctx, &app->paths, &t, &err) != 0)
        goto out;
    say_result(app, &t, params.username);
    if (!t.confirmed && params.device_id == NULL)
        fprintf(stderr,
                "%s: enroll this machine with 'kontist-auth device enroll', then log in "
                "again for a confirmed token\n",
                app->prog);
out:
    kt_secret_free(password);
    kt_ctx_free(ctx);
    kt_token_set_free(&t);
    kt_device_selection_free(&sel);
    return err.kind == KT_OK ? KA_EXIT_OK : ka_report(app->prog, &err);
}
