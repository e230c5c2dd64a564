#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "exit_codes.h"
#include "options.h"
#include "waiting.h"

static const char login_help[] =
    "Usage: kontist-auth login [--user USERNAME] [--password-stdin] [--mfa device|push|none]\n"
    "\n"
    "Logs in with username and password (OAuth2 password grant), then confirms the login with a\n"
    "second factor, so that the token set stored in the cache is confirmed:\n"
    "  device  this machine's device key ('kontist-auth device enroll') signs a challenge\n"
    "  push    you approve the login in the Kontist app on your phone; meanwhile the request is\n"
    "          checked every 3 seconds (on a terminal a spinner shows the time waited), until\n"
    "          you approve or deny it, it expires, login_timeout passes, or Ctrl-C\n"
    "The factors are tried in the order of --mfa, else of 'mfa' in the configuration (default\n"
    "device,push: the device when one is enrolled here for the user and its key loads, push\n"
    "otherwise, with a message saying why; a TPM or token key is opened only after the password,\n"
    "and one that then fails ends the login). A device key the bank refuses fails the login; it\n"
    "never moves on to push by itself (use --mfa push). The password is asked on the terminal\n"
    "without echo; with --password-stdin it is one line of standard input instead. Without a\n"
    "terminal (cron, 'su USER -c', a pipe) and without --password-stdin, nothing is read: it\n"
    "refuses. Ctrl-C while waiting for the app stops the login: nothing is saved, the push\n"
    "request is left to expire, and the process ends by the signal (130 in a shell).\n"
    "\n"
    "Options:\n"
    "  -u, --user USERNAME  Kontist username (default: 'username' in the configuration, then the\n"
    "                       user of the enrolled device)\n"
    "      --password-stdin read the password from standard input\n"
    "      --mfa FACTORS    device, push, or both in the order to try them (device,push); none\n"
    "                       skips MFA: the token is not confirmed (to enroll anew)\n"
    "      --no-device      the same as --mfa none\n"
    "      --config FILE    read only FILE as configuration\n"
    "  -h, --help           show this help\n"
    "\n";

static const ka_syntax login_syntax = {"login", KA_IN_LOGIN, login_help, 0, false};

static const char *pick_username(const ka_app *app, const ka_args *o)
{
    if (o->user != NULL && o->user[0] != '\0')
        return o->user;
    if (app->cfg.username != NULL && app->cfg.username[0] != '\0')
        return app->cfg.username;
    return NULL;
}

static int read_password(ka_app *app, const ka_args *o, const char *username, char **password,
                         kt_error *err)
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
    if (t->confirmed && t->mfa == KT_MFA_PUSH)
        fprintf(stderr,
                "%s: logged in as %s; token confirmed in the Kontist app (push), valid until "
                "%s\n",
                app->prog, username, when);
    else if (t->confirmed)
        fprintf(stderr, "%s: logged in as %s; token confirmed by device %s, valid until %s\n",
                app->prog, username, t->device_id != NULL ? t->device_id : "(unknown)", when);
    else
        fprintf(stderr,
                "%s: logged in as %s; token NOT confirmed (no device MFA), valid until %s\n",
                app->prog, username, when);
}

/* A token or TPM device key, opened once the bank has accepted the password (kt_flow_login). */
typedef struct hardware_key_loader {
    ka_app *app;
    kt_device_selection *sel;
} hardware_key_loader;

static EVP_PKEY *load_hardware_key(void *data, kt_error *err)
{
    hardware_key_loader *l = data;

    return kt_device_load_key(l->sel, l->app->paths.key_file, &l->app->user_owners, err);
}

/* The factor order: --mfa, else the configuration's, else the default. */
static int login_order(const ka_app *app, const ka_args *o, kt_mfa_order *order, kt_error *err)
{
    if (o->mfa != NULL)
        return kt_mfa_order_parse(o->mfa, true, order, err);
    return kt_mfa_order_parse(app->cfg.mfa != NULL ? app->cfg.mfa : KT_DEFAULT_MFA, false, order,
                              err);
}

static bool order_has(const kt_mfa_order *order, kt_mfa_factor f)
{
    for (unsigned i = 0; i < order->count; i++)
        if (order->factor[i] == f)
            return true;
    return false;
}

/* What the person did not ask for is said out loud: which factor is used instead and why. */
static int choose_factor(const ka_app *app, const kt_mfa_order *order,
                         const kt_device_selection *sel, int sel_rc, const kt_error *sel_err,
                         const char *username, kt_mfa_decision *dec, kt_error *err)
{
    /* Without MFA the record only names the user: it must still be safe to read. */
    if (order->count == 1 && order->factor[0] == KT_MFA_NONE && sel_rc != 0)
        return kt_error_set(err, sel_err->kind, "%s", sel_err->message);
    if (kt_mfa_decide(order, sel, sel_rc, sel_err, dec, err) != 0)
        return -1;
    if (dec->passed_over[0] != '\0' && dec->factor == KT_MFA_PUSH)
        fprintf(stderr,
                "%s: no device MFA for %s: %s; confirming the login in the Kontist app "
                "(push) instead\n",
                app->prog, username, dec->passed_over);
    return 0;
}

/* A denial is no reason to enroll, as ka_report's advice for failed MFA would suggest. */
static int report_login(const ka_app *app, const kt_mfa_decision *dec, const kt_error *err)
{
    if (dec->factor == KT_MFA_PUSH && err->kind == KT_ERR_MFA_FAILED) {
        fprintf(stderr, "%s: %s\n", app->prog, err->message);
        fprintf(stderr,
                "%s: if you denied it by mistake, run 'kontist-auth login' again; if you did not "
                "deny it, someone else did: check the devices and activity in your Kontist app\n",
                app->prog);
        return ka_exit_code(err->kind);
    }
    if (err->kind == KT_ERR_MFA_EXPIRED) {
        fprintf(stderr, "%s: %s\n", app->prog, err->message);
        fprintf(stderr,
                "%s: run 'kontist-auth login' again and approve the login in the Kontist app; "
                "'login_timeout' in the configuration allows more time\n",
                app->prog);
        return ka_exit_code(err->kind);
    }
    return ka_report(app->prog, err);
}

int ka_cmd_login(ka_app *app, int argc, char **argv)
{
    ka_args o;
    kt_device_selection sel;
    hardware_key_loader loader = {app, &sel};
    kt_login_params params;
    kt_mfa_order order;
    kt_mfa_decision dec;
    kt_token_set t;
    kt_error err = {KT_OK, ""}, sel_err = {KT_OK, ""};
    kt_ctx *ctx = NULL;
    kt_conv conv;
    kt_conv_progress progress;
    ka_waiting waiting;
    char *password = NULL;
    int rc = ka_parse_args(app, &login_syntax, argc, argv, &o), sel_rc, signo = 0;

    if (rc >= 0)
        return rc;
    memset(&sel, 0, sizeof(sel));
    memset(&params, 0, sizeof(params));
    memset(&t, 0, sizeof(t));
    memset(&dec, 0, sizeof(dec));
    app->term.stdin_option = "--password-stdin";
    /* Without a terminal the password could only come from standard input, which may be a
     * terminal that echoes it (su -c): refuse before anything is read or sent. */
    if (!o.password_stdin && ka_term_check(app->term.stdin_option, &err) != 0)
        goto out;
    if (o.password_stdin && ka_stdin_secret_check(app->term.stdin_option, &err) != 0)
        goto out;
    if (ka_app_setup(app, &err) != 0)
        goto out;
    if (login_order(app, &o, &order, &err) != 0)
        goto out;
    /* Without a name given, the enrolled device's user logs in. */
    params.username = pick_username(app, &o);
    sel_rc = kt_device_select(app->paths.record_file, app->paths.key_file, &app->user_owners,
                              params.username, order_has(&order, KT_MFA_DEVICE), &sel, &sel_err);
    if (params.username == NULL && sel_rc == 0)
        params.username = sel.rec.username;
    if (params.username == NULL) {
        if (sel_rc != 0)
            kt_error_set(&err, sel_err.kind, "%s", sel_err.message);
        else
            kt_error_set(&err, KT_ERR_CONFIG,
                         "no Kontist username: pass --user or set 'username' in the "
                         "configuration");
        goto out;
    }
    if (choose_factor(app, &order, &sel, sel_rc, &sel_err, params.username, &dec, &err) != 0)
        goto out;
    if (dec.factor == KT_MFA_DEVICE) {
        params.device_id = sel.rec.device_id;
        params.key = sel.key;
        if (sel.key_after_password) {
            params.load_key = load_hardware_key;
            params.load_key_data = &loader;
        }
    } else if (dec.factor == KT_MFA_PUSH) {
        params.push = true;
    } else if (o.mfa == NULL && sel.choice == KT_DEVICE_OTHER_USER && sel.rec.device_id != NULL) {
        fprintf(stderr, "%s: the enrolled device belongs to %s, not %s: no device MFA\n", app->prog,
                sel.rec.username != NULL ? sel.rec.username : "(nobody)", params.username);
    }
    if (read_password(app, &o, params.username, &password, &err) != 0)
        goto out;
    params.password = password;
    conv = ka_term_conv(&app->term);
    ctx = kt_ctx_new(&app->cfg, &conv, &err);
    if (ctx == NULL)
        goto out;
    progress = ka_waiting_progress(&waiting, app->prog);
    kt_ctx_set_progress(ctx, &progress);
    ka_waiting_catch(&waiting);
    rc = kt_flow_login(ctx, &params, &t, &err);
    signo = ka_waiting_release(&waiting);
    /* Asked to stop: nothing is saved, whatever the flow got to (a push challenge is left to
     * expire at the bank). */
    if (signo != 0) {
        kt_token_set_free(&t);
        goto out;
    }
    if (rc != 0)
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
    if (signo != 0) {
        fprintf(stderr, "%s: stopped: nothing was saved%s\n", app->prog,
                params.push ? "; the request in the Kontist app is left to expire" : "");
        /* Ends the process the way the signal would have (130 for Ctrl-C in a shell). */
        fflush(stderr);
        raise(signo);
        return KA_EXIT_USAGE;
    }
    return err.kind == KT_OK ? KA_EXIT_OK : report_login(app, &dec, &err);
}
