#include <config.h>

#include <getopt.h>
#include <stdio.h>
#include <sys/stat.h>

#include "app.h"
#include "exit_codes.h"

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

static const struct option logout_options[] = {
    {"config", required_argument, NULL, KA_OPT_CONFIG},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int ka_cmd_logout(ka_app *app, int argc, char **argv)
{
    kt_error err = {KT_OK, ""};
    struct stat st;
    bool had;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", logout_options, NULL)) != -1) {
        switch (c) {
        case KA_OPT_CONFIG:
            app->config_path = optarg;
            break;
        case 'h':
            fputs(logout_help, stdout);
            fputs(ka_exit_codes_help, stdout);
            return KA_EXIT_OK;
        default:
            return ka_bad_option(app, "logout", c, argv);
        }
    }
    if (optind < argc)
        return ka_usage_error(app, "logout", "unexpected argument '%s'", argv[optind]);
    /* A broken configuration must not keep anyone from dropping their tokens. */
    if (ka_app_setup_paths(app, &err) != 0)
        return ka_report(app->prog, &err);
    had = lstat(app->paths.cache_file, &st) == 0;
    if (kt_session_logout(&app->paths, false, &err) != 0)
        return ka_report(app->prog, &err);
    fprintf(stderr, "%s: %s\n", app->prog, had ? "logged out" : "not logged in; nothing to remove");
    return KA_EXIT_OK;
}
