#include <config.h>

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "exit_codes.h"
#include "options.h"

static const char usage_text[] =
    "Usage: kontist-auth [--config FILE] COMMAND [OPTIONS]\n"
    "\n"
    "Logs in to the Kontist API with username and password plus device MFA, keeps the tokens in\n"
    "a private cache and hands out a valid access token to scripts and git.\n"
    "\n"
    "Commands:\n"
    "  login                        log in (password, then device or push MFA: --mfa)\n"
    "  device enroll                bind this machine as a device (key and SMS code)\n"
    "  token [--json]               print a valid confirmed access token\n"
    "  status                       who is logged in, token expiry, device binding\n"
    "  logout                       remove the cached tokens\n"
    "  credential get|store|erase   the git credential protocol (also as git-credential-kontist)\n"
    "  doctor [--json]              check the whole setup and say how to fix what is wrong\n"
    "\n"
    "Options:\n"
    "  --config FILE   read only FILE as configuration (default: /etc/kontist/kontist.conf,\n"
    "                  then ~/.config/kontist/kontist.conf; KONTIST_CONFIG also names a file)\n"
    "  -h, --help      show this help ('kontist-auth COMMAND --help' for a command)\n"
    "  -V, --version   show the version and those of libcurl, OpenSSL and json-c\n"
    "\n";

static const char cred_usage_text[] =
    "Usage: git-credential-kontist [--config FILE] get|store|erase\n"
    "\n"
    "A git credential helper: 'git config credential.helper kontist'. For the configured Kontist\n"
    "API host, 'get' answers with a valid confirmed access token from kontist-auth's cache\n"
    "(refreshing it when needed); 'store' keeps nothing; 'erase' drops the cached access token.\n"
    "Other hosts get no answer. It never prompts: log in first with 'kontist-auth login'.\n"
    "\n"
    "Options:\n"
    "  --config FILE   read only FILE as configuration (also KONTIST_CONFIG)\n"
    "  -h, --help      show this help\n"
    "\n";

static const ka_command commands[] = {
    {"login", ka_cmd_login},   {"device", ka_cmd_device}, {"token", ka_cmd_token},
    {"status", ka_cmd_status}, {"logout", ka_cmd_logout}, {"credential", ka_cmd_credential},
    {"doctor", ka_cmd_doctor},
};

static int run_kontist_auth(ka_app *app, int argc, char **argv)
{
    static const ka_syntax syntax = {NULL, KA_IN_TOP, usage_text, 0, true};
    ka_args args;
    int rc = ka_parse_args(app, &syntax, argc, argv, &args);

    if (rc >= 0)
        return rc;
    return ka_dispatch(app, NULL, commands, sizeof(commands) / sizeof(commands[0]), args.n_operands,
                       args.operands);
}

/* As git-credential-kontist: git appends the operation; unknown operations are ignored, as
 * gitcredentials(7) asks of helpers, so future git versions do not break. */
static int run_credential_helper(ka_app *app, int argc, char **argv)
{
    static const ka_syntax syntax = {NULL, KA_IN_TOP, cred_usage_text, 0, true};

    return ka_credential_main(app, &syntax, argc, argv);
}

/* No core file and no ptrace by other processes of the same user: this process holds the
 * password, OTPs, tokens and the device key, and a core dump (a crash, or SIGABRT/SIGQUIT sent by
 * anyone running as the user) would write them to disk, in the working directory or wherever
 * core_pattern says. PR_SET_DUMPABLE 0 stops every dump, also one piped to a handler such as
 * systemd-coredump, which ignores RLIMIT_CORE; the zero RLIMIT_CORE (hard limit too, so it cannot
 * be raised again) is the second line.
 *
 * Neither call can fail on Linux as made here: prctl fails only for an argument other than 0 or
 * 1, and setrlimit only when raising a hard limit or with soft > hard. They could fail only under
 * a seccomp filter that denies them, and then it is better to refuse to run than to handle
 * secrets without this protection: the failure is fatal, before any secret is read. */
static int disable_core_dumps(void)
{
    const struct rlimit none = {0, 0};

    if (prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) != 0) {
        fprintf(stderr, "%s: cannot disable core dumps (prctl: %s); refusing to handle secrets\n",
                KA_PROG, strerror(errno));
        return -1;
    }
    if (setrlimit(RLIMIT_CORE, &none) != 0) {
        fprintf(stderr,
                "%s: cannot disable core dumps (setrlimit: %s); refusing to handle secrets\n",
                KA_PROG, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    ka_app app;
    char *self;
    int rc;

    /* First of all: nothing has been read yet that a core file could hold. */
    if (disable_core_dumps() != 0)
        return KA_EXIT_INTERNAL;
    self = strdup(argc > 0 && argv[0] != NULL ? argv[0] : KA_PROG);
    /* Files are created with explicit modes anyway; this covers anything a library creates. */
    umask(077);
    memset(&app, 0, sizeof(app));
    if (self == NULL) {
        fprintf(stderr, "%s: out of memory\n", KA_PROG);
        return KA_EXIT_INTERNAL;
    }
    if (strcmp(basename(self), KA_CRED_PROG) == 0) {
        app.prog = KA_CRED_PROG;
        app.term.prog = app.prog;
        app.term.no_prompt = true;
        rc = run_credential_helper(&app, argc, argv);
    } else {
        app.prog = KA_PROG;
        app.term.prog = app.prog;
        rc = run_kontist_auth(&app, argc, argv);
    }
    ka_app_free(&app);
    free(self);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: cannot write to standard output\n", app.prog);
        if (rc == KA_EXIT_OK)
            rc = KA_EXIT_IO;
    }
    return rc;
}
