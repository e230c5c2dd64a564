#include <config.h>

#include <stdio.h>
#include <sys/stat.h>

#include "app.h"
#include "exit_codes.h"
#include "options.h"

static const char logout_help[] =
    "Usage: kontist-auth logout\n"
    "\n"
    "Removes the cached access and refresh tokens. The device record and key stay: the next\n"
    "'kontist-auth login' passes device MFA again.\n"
    "\n"
    "Options:\n"
    "      --config FILE  accepted for symmetry; logout reads no configuration\n"
    "  -h, --help         show this help\n"
    "\n";

int ka_cmd_logout(ka_app *app, int argc, char **argv)
{
    static const ka_syntax syntax = {"logout", KA_IN_LOGOUT, logout_help, 0, false};
    kt_error err = {KT_OK, ""};
    struct stat st;
    ka_args args;
    bool had;
    int c;

    c = ka_parse_args(app, &syntax, argc, argv, &args);
    if (c >= 0)
        return c;
    /* A broken configuration must not keep anyone from dropping their tokens. */
    if (ka_app_setup_paths(app, &err) != 0)
        return ka_report(app->prog, &err);
    had = lstat(app->paths.cache_file, &st) == 0;
    if (kt_session_logout(&app->paths, false, &err) != 0)
        return ka_report(app->prog, &err);
    fprintf(stderr, "%s: %s\n", app->prog, had ? "logged out" : "not logged in; nothing to remove");
    return KA_EXIT_OK;
}
