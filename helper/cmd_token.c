#include <config.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "exit_codes.h"
#include "options.h"

static const char token_help[] =
    "Usage: kontist-auth token [--json]\n"
    "\n"
    "Prints a valid confirmed access token and nothing else, refreshing it first when it has less\n"
    "than 60 seconds left, e.g. for  curl -H \"Authorization: Bearer $(kontist-auth token)\".\n"
    "Never prompts: log in first with 'kontist-auth login'.\n"
    "\n"
    "Options:\n"
    "      --json         print {\"access_token\",\"token_type\",\"expires_at\",\"expires_in\",\n"
    "                     \"confirmed\",\"username\"} instead\n"
    "      --config FILE  read only FILE as configuration\n"
    "  -h, --help         show this help\n"
    "\n";

int ka_confirmed_token(ka_app *app, kt_token_set *t, kt_error *err)
{
    ka_term quiet = app->term;
    kt_conv conv;
    kt_ctx *ctx;
    int rc = -1;

    memset(t, 0, sizeof(*t));
    /* Scripts and git call this unattended: nobody is asked anything. */
    quiet.no_prompt = true;
    conv = ka_term_conv(&quiet);
    ctx = kt_ctx_new(&app->cfg, &conv, err);
    if (ctx == NULL)
        return -1;
    if (kt_session_get_valid(ctx, &app->paths, &app->user_owners, t, err) != 0)
        goto out;
    if (!t->confirmed) {
        kt_error_set(err, KT_ERR_NOT_CONFIRMED, "the cached token is not confirmed by device MFA");
        goto out;
    }
    if (!kt_token_string_ok(t->access_token)) {
        kt_error_set(err, KT_ERR_PROTOCOL, "the cached access token is not printable");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        kt_token_set_free(t);
    kt_ctx_free(ctx);
    return rc;
}

/* A JSON string literal; the token is visible ASCII already, names may be anything. */
static void put_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void print_json(const kt_token_set *t)
{
    long long left = (long long)(t->expires_at - time(NULL));

    fputs("{\"access_token\":", stdout);
    put_json_string(stdout, t->access_token);
    printf(",\"token_type\":\"Bearer\",\"expires_at\":%lld,\"expires_in\":%lld,\"confirmed\":%s",
           (long long)t->expires_at, left > 0 ? left : 0, t->confirmed ? "true" : "false");
    fputs(",\"username\":", stdout);
    if (t->username != NULL)
        put_json_string(stdout, t->username);
    else
        fputs("null", stdout);
    fputs("}\n", stdout);
}

int ka_cmd_token(ka_app *app, int argc, char **argv)
{
    kt_error err = {KT_OK, ""};
    kt_token_set t;
    static const ka_syntax syntax = {"token", KA_IN_TOKEN, token_help, 0, false};
    ka_args args;
    int c;

    c = ka_parse_args(app, &syntax, argc, argv, &args);
    if (c >= 0)
        return c;
    if (ka_app_setup(app, &err) != 0 || ka_confirmed_token(app, &t, &err) != 0)
        return ka_report(app->prog, &err);
    if (args.json)
        print_json(&t);
    else
        printf("%s\n", t.access_token);
    kt_token_set_free(&t);
    return KA_EXIT_OK;
}
