#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "output.h"
#include "exit_codes.h"
#include "options.h"

static const char status_help[] =
    "Usage: kontist-auth status\n"
    "\n"
    "Shows the configuration in use, who is logged in, the access token's expiry and whether it\n"
    "is confirmed and by which factor (device MFA with its device, push MFA in the Kontist app;\n"
    "an older cache without a device says 'unknown factor'), the client the tokens were issued\n"
    "to and by which login, whether a refresh token is held (and whether this configuration's "
    "client can use it), and\n"
    "the device binding. Prints no secret and makes no network request. Exits 0 when logged in\n"
    "(a usable access token, or a refresh token this client can use), 3 when not, 6 when the\n"
    "cache or record is unsafe.\n"
    "\n"
    "Options:\n"
    "      --config FILE  read only FILE as configuration\n"
    "  -h, --help         show this help\n"
    "\n";

static void show_config(const ka_app *app)
{
    printf("configuration: ");
    if (app->config_used[0] == NULL)
        printf("built-in defaults only\n");
    else if (app->config_used[1] == NULL)
        printf("%s\n", app->config_used[0]);
    else
        printf("%s, %s\n", app->config_used[0], app->config_used[1]);
    printf("api:           %s (client %s)\n", app->cfg.base_url,
           app->cfg.client_id != NULL ? app->cfg.client_id : "(none)");
}

/* Returns the exit code the token part of the status calls for. */
static int show_tokens(const ka_app *app)
{
    kt_error err = {KT_OK, ""};
    kt_token_set t;
    time_t now = time(NULL);
    char when[64];
    bool other_client;
    int st;

    memset(&t, 0, sizeof(t));
    st = kt_session_read(&app->paths, &app->user_owners, &t, &err);
    if (st < 0) {
        printf("logged in:     unknown: the token cache is refused: %s\n", err.message);
        return ka_exit_code(err.kind == KT_OK ? KT_ERR_IO : err.kind);
    }
    if (st == KT_CACHE_CORRUPT)
        printf("token cache:   corrupt, ignored (%s)\n", err.message);
    if (st != KT_CACHE_LOADED) {
        printf("logged in:     no\n");
        kt_token_set_free(&t);
        return KA_EXIT_AUTH;
    }
    fputs("logged in:     ", stdout);
    ka_put_plain(stdout, t.username != NULL ? t.username : "yes (user unknown)");
    putchar('\n');
    ka_format_time(t.expires_at, when, sizeof(when));
    if (t.access_token == NULL)
        printf("access token:  none\n");
    else if (t.expires_at > now)
        printf("access token:  valid until %s (%lld s left)%s\n", when,
               (long long)(t.expires_at - now),
               kt_token_set_usable(&t, now, KT_TOKEN_MIN_LEFT) ? "" : ", due for refresh");
    else
        printf("access token:  expired at %s\n", when);
    if (t.confirmed && t.mfa == KT_MFA_PUSH) {
        fputs("confirmed:     yes (push MFA in the Kontist app)\n", stdout);
    } else if (t.confirmed && t.mfa == KT_MFA_DEVICE) {
        fputs("confirmed:     yes (device MFA", stdout);
        if (t.device_id != NULL) {
            fputs(", device ", stdout);
            ka_put_plain(stdout, t.device_id);
        }
        fputs(")\n", stdout);
    } else if (t.confirmed) {
        fputs("confirmed:     yes (by an unknown factor)\n", stdout);
    } else
        printf("confirmed:     no\n");
    other_client = t.client_id != NULL && app->cfg.client_id != NULL &&
                   strcmp(t.client_id, app->cfg.client_id) != 0;
    if (t.login_at > 0) {
        ka_format_time(t.login_at, when, sizeof(when));
        printf("issued to:     client %s by the login at %s\n",
               t.client_id != NULL ? t.client_id : "(unknown)", when);
    } else {
        printf("issued to:     client %s\n",
               t.client_id != NULL ? t.client_id : "unknown (the cache does not say)");
    }
    if (t.refresh_token == NULL)
        printf("refresh token: none\n");
    else if (!other_client)
        printf("refresh token: present\n");
    else
        printf("refresh token: present, but only client %s can use it; this configuration's "
               "client is %s: log in again with `kontist-auth login` to get tokens this client "
               "can refresh\n",
               t.client_id, app->cfg.client_id);
    /* Logged in: a token can be had, now or by a refresh this configuration can make. */
    st = KA_EXIT_AUTH;
    if (kt_token_set_usable(&t, now, KT_TOKEN_MIN_LEFT) ||
        (t.refresh_token != NULL && !other_client))
        st = KA_EXIT_OK;
    kt_token_set_free(&t);
    return st;
}

/* Returns KA_EXIT_OK, or KA_EXIT_IO (or another code) for a record that cannot be read. */
static int show_device(const ka_app *app)
{
    kt_error err = {KT_OK, ""};
    kt_device_record rec;
    char key[512];
    int e = 0;

    memset(&rec, 0, sizeof(rec));
    if (kt_record_load(app->paths.record_file, &app->user_owners, &rec, &e, &err) != 0) {
        if (e == ENOENT) {
            printf("device:        not enrolled\n");
            return KA_EXIT_OK;
        }
        printf("device:        unusable record: %s\n", err.message);
        return ka_exit_code(err.kind);
    }
    ka_key_ref_display(rec.key_ref != NULL ? rec.key_ref : "(none)", key, sizeof(key));
    if (rec.device_id == NULL)
        printf("device:        not enrolled (user %s)\n",
               rec.username != NULL ? rec.username : "unknown");
    else
        printf("device:        %s \"%s\" for %s\n"
               "device key:    %s (%s)\n",
               rec.device_id, rec.name != NULL ? rec.name : "",
               rec.username != NULL ? rec.username : "unknown", key, kt_key_kind(rec.key_ref));
    kt_record_free(&rec);
    return KA_EXIT_OK;
}

int ka_cmd_status(ka_app *app, int argc, char **argv)
{
    static const ka_syntax syntax = {"status", KA_IN_STATUS, status_help, 0, false};
    kt_error err = {KT_OK, ""};
    ka_args args;
    int c, rc, dev;

    c = ka_parse_args(app, &syntax, argc, argv, &args);
    if (c >= 0)
        return c;
    if (ka_app_setup(app, &err) != 0)
        return ka_report(app->prog, &err);
    show_config(app);
    rc = show_tokens(app);
    dev = show_device(app);
    /* An unsafe file outranks "not logged in": it needs the person's attention first. */
    if (dev != KA_EXIT_OK && (rc == KA_EXIT_OK || rc == KA_EXIT_AUTH))
        rc = dev;
    return rc;
}
