#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "credential_proto.h"
#include "exit_codes.h"
#include "options.h"

static const char credential_help[] =
    "Usage: kontist-auth credential get|store|erase\n"
    "\n"
    "The git credential protocol on standard input and output (see gitcredentials(7)); the same\n"
    "as git-credential-kontist. 'get' answers only for the configured API's protocol and host\n"
    "with username, password (a valid confirmed access token) and password_expiry_utc, plus\n"
    "authtype=Bearer and credential when the request announces capability[]=authtype. 'store'\n"
    "keeps nothing; 'erase' drops the cached access token. It never prompts.\n"
    "\n"
    "Options:\n"
    "      --config FILE  read only FILE as configuration\n"
    "  -h, --help         show this help\n"
    "\n";

/* git hands out the password a little before the token really expires, so that a token that
 * git keeps (another helper, a long operation) is not used in its last minute. */
#define KA_EXPIRY_MARGIN 60

int ka_credential_main(ka_app *app, const ka_syntax *syntax, int argc, char **argv)
{
    ka_args args;
    int rc = ka_parse_args(app, syntax, argc, argv, &args);

    if (rc >= 0)
        return rc;
    if (args.n_operands < 1)
        return ka_usage_error(app, syntax->command, "no operation given (get, store or erase)");
    if (args.n_operands > 1)
        return ka_usage_error(app, syntax->command, "too many arguments");
    /* Prompts would read git's protocol stream. */
    app->term.no_prompt = true;
    return ka_credential_run(app, args.operands[0]);
}

int ka_cmd_credential(ka_app *app, int argc, char **argv)
{
    static const ka_syntax syntax = {"credential", KA_IN_CREDENTIAL, credential_help, 0, true};

    return ka_credential_main(app, &syntax, argc, argv);
}

/* "host" and "host:443" name the same https endpoint. */
static size_t host_len(const char *host)
{
    size_t len = strlen(host);

    if (len > 4 && strcmp(host + len - 4, ":443") == 0)
        len -= 4;
    return len;
}

static bool same_host(const char *a, const char *b)
{
    size_t la = host_len(a), lb = host_len(b);

    return la == lb && strncasecmp(a, b, la) == 0;
}

/* Whether a request is about our API: protocol and host must match the configured base URL. */
static bool is_ours(const ka_app *app, const ka_cred *c)
{
    char *ours;
    bool match;

    if (c->protocol == NULL || c->host == NULL || strcasecmp(c->protocol, "https") != 0)
        return false;
    ours = kt_config_host(&app->cfg);
    match = ours != NULL && same_host(c->host, ours);
    free(ours);
    return match;
}

/* A request naming another user is not for this login. */
static bool user_matches(const ka_cred *c, const char *ours)
{
    return c->username == NULL || c->username[0] == '\0' || ours == NULL ||
           strcasecmp(c->username, ours) == 0;
}

static int cred_get(ka_app *app, const ka_cred *c)
{
    kt_error err = {KT_OK, ""};
    kt_token_set t;
    const char *user;
    char expiry[32];
    int rc = KA_EXIT_OK;

    if (ka_confirmed_token(app, &t, &err) != 0)
        return ka_report(app->prog, &err);
    user = t.username != NULL ? t.username : app->cfg.username;
    if (!user_matches(c, user))
        goto out;
    /* git asks for a username when a helper gives none; the API ignores it anyway. */
    if (user == NULL || !ka_cred_value_ok(user))
        user = "kontist";
    snprintf(expiry, sizeof(expiry), "%lld", (long long)(t.expires_at - KA_EXPIRY_MARGIN));
    if (c->cap_authtype) {
        fputs("capability[]=authtype\n", stdout);
        fputs("authtype=Bearer\n", stdout);
        ka_cred_write(stdout, "credential", t.access_token);
        /* The token lives minutes: storage helpers must not keep it. */
        fputs("ephemeral=1\n", stdout);
    }
    ka_cred_write(stdout, "username", user);
    ka_cred_write(stdout, "password", t.access_token);
    ka_cred_write(stdout, "password_expiry_utc", expiry);
out:
    kt_token_set_free(&t);
    return rc;
}

/* Drops the cached access token (the refresh token stays, so the next get refreshes) unless the
 * rejected password is not the one in the cache: a newer token must not pay for an old one. The
 * session compares them under the cache lock, so a token saved meanwhile is not the one dropped. */
static int cred_erase(ka_app *app, const ka_cred *c)
{
    kt_error err = {KT_OK, ""};

    if (kt_session_forget_access(&app->paths, c->username, c->password, &err) != 0)
        return ka_report(app->prog, &err);
    return KA_EXIT_OK;
}

int ka_credential_run(ka_app *app, const char *operation)
{
    kt_error err = {KT_OK, ""};
    ka_cred c;
    int rc = KA_EXIT_OK;
    bool get = strcmp(operation, "get") == 0;
    bool erase = strcmp(operation, "erase") == 0;

    if (!get && !erase && strcmp(operation, "store") != 0)
        return KA_EXIT_OK;
    if (ka_cred_read(STDIN_FILENO, &c, &err) != 0)
        return ka_report(app->prog, &err);
    /* store: the token cache is the store; git's copy of a token is never kept. */
    if (!get && !erase)
        goto out;
    if (ka_app_setup(app, &err) != 0) {
        /* With a global credential.helper, git asks about every host: a broken or missing
         * configuration is only worth a message when the request could be ours (judged by the
         * base URL read so far, or the default one). */
        if (is_ours(app, &c))
            rc = ka_report(app->prog, &err);
        goto out;
    }
    if (!is_ours(app, &c))
        goto out;
    rc = get ? cred_get(app, &c) : cred_erase(app, &c);
out:
    ka_cred_free(&c);
    return rc;
}
