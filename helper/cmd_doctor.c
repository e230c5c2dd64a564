/* kontist-auth doctor: the front end of kt_doctor. It chooses the configuration files exactly as
 * every other command does, runs the checks and prints one line per check (or JSON). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "output.h"
#include "exit_codes.h"
#include "options.h"

static const char doctor_help[] =
    "Usage: kontist-auth doctor [--json] [--offline] [--system|--no-system]\n"
    "\n"
    "Checks everything a working setup needs and says how to fix what is wrong: the\n"
    "configuration files (syntax, owner, mode, the client secret file), the API (DNS, TCP, TLS\n"
    "with the configured CA or pin, the server's clock, the token endpoint and the client\n"
    "credentials), this user's token cache, device record and key (it signs a test message\n"
    "and, when logged in, lets the bank verify a signed challenge), and, as root, the PAM\n"
    "stacks that use pam_kontist.so and sshd's settings. One line per check:\n"
    "  ok|warn|fail|skip  NAME: WHAT WAS FOUND[; fix: WHAT TO DO]\n"
    "It sends no password, changes no file and makes at most three requests.\n"
    "Exits 0 when no check failed (warnings and skipped checks included), else with the code of\n"
    "the first failure's kind (below).\n"
    "\n"
    "Options:\n"
    "      --json            one JSON object: {\"ok\", \"checks\": [{\"name\", \"status\",\n"
    "                        \"detail\", \"fix\"}]}\n"
    "      --offline         no DNS lookup, connection or request\n"
    "      --system          check the PAM stacks and sshd also when not root\n"
    "      --no-system       do not check them, also as root\n"
    "      --pam-dir DIR     PAM stacks (default /etc/pam.d)\n"
    "      --sshd-config FILE  sshd's configuration (default /etc/ssh/sshd_config)\n"
    "      --sshd PATH       sshd, asked with -T for its settings (default /usr/sbin/sshd;\n"
    "                        '' reads the configuration file itself; as root, run only\n"
    "                        when root owns it and nobody else may write it)\n"
    "      --config FILE     read only FILE as configuration\n"
    "  -h, --help            show this help\n"
    "\n";

typedef struct printer {
    bool json;
    unsigned count;
} printer;

/* The command a fix leads to, in this program's words (the core says only which step). */
static const char *next_command(kt_doctor_next next)
{
    switch (next) {
    case KT_DOCTOR_NEXT_LOGIN:
        return "kontist-auth login";
    case KT_DOCTOR_NEXT_RELOGIN:
        return "kontist-auth logout && kontist-auth login";
    case KT_DOCTOR_NEXT_ENROLL:
        return "kontist-auth device enroll";
    case KT_DOCTOR_NEXT_NONE:
        break;
    }
    return NULL;
}

static void print_result(const kt_doctor_result *r, void *data)
{
    printer *p = data;
    const char *command = next_command(r->next);
    char words[1024];
    kt_doctor_result shown = *r;

    if (command != NULL && r->fix != NULL) {
        snprintf(words, sizeof(words), "%s (%s)", r->fix, command);
        shown.fix = words;
    } else if (command != NULL) {
        shown.fix = command;
    }
    r = &shown;

    if (p->json) {
        fputs(p->count++ == 0 ? "\n  " : ",\n  ", stdout);
        fputs("{\"name\": ", stdout);
        ka_put_json_string(stdout, r->name);
        printf(", \"status\": \"%s\", \"detail\": ", kt_doctor_status_name(r->status));
        ka_put_json_string(stdout, r->detail);
        fputs(", \"fix\": ", stdout);
        if (r->fix != NULL)
            ka_put_json_string(stdout, r->fix);
        else
            fputs("null", stdout);
        putchar('}');
        return;
    }
    printf("%-4s  ", kt_doctor_status_name(r->status));
    ka_put_plain(stdout, r->name);
    fputs(": ", stdout);
    ka_put_plain(stdout, r->detail);
    if (r->fix != NULL) {
        fputs("; fix: ", stdout);
        ka_put_plain(stdout, r->fix);
    }
    putchar('\n');
}

int ka_cmd_doctor(ka_app *app, int argc, char **argv)
{
    static const ka_syntax syntax = {"doctor", KA_IN_DOCTOR, doctor_help, 0, false};
    kt_error err = {KT_OK, ""};
    kt_doctor_config_file files[2];
    kt_doctor_options opts;
    kt_doctor_summary sum;
    printer pr = {false, 0};
    char *chosen = NULL;
    ka_args args;
    int c;

    c = ka_parse_args(app, &syntax, argc, argv, &args);
    if (c >= 0)
        return c;
    memset(&opts, 0, sizeof(opts));
    opts.network = !args.offline;
    opts.pam_dir = args.pam_dir;
    opts.sshd_config = args.sshd_config;
    opts.sshd_binary = args.sshd;
    pr.json = args.json;
    if (ka_app_setup_paths(app, &err) != 0)
        return ka_report(app->prog, &err);
    opts.config_files = files;
    opts.n_config_files = ka_config_files(app, files, &chosen, &err);
    if (opts.n_config_files == 0)
        return ka_report(app->prog, &err);
    opts.paths = &app->paths;
    opts.user_owners = app->user_owners;
    opts.system = args.system >= 0 ? args.system == 1 : geteuid() == 0;
    opts.parse_module_args = ka_doctor_parse_module_args;

    if (pr.json)
        fputs("{\"checks\": [", stdout);
    kt_doctor_run(&opts, print_result, &pr, &sum);
    if (pr.json)
        printf("\n], \"ok\": %s, \"failed\": %u, \"warnings\": %u}\n",
               sum.fail == 0 ? "true" : "false", sum.fail, sum.warn);
    else
        printf("%u ok, %u warnings, %u failed, %u skipped\n", sum.ok, sum.warn, sum.fail, sum.skip);
    free(chosen);
    return sum.fail == 0 ? KA_EXIT_OK : ka_exit_code(sum.first_failure);
}

void ka_print_version(const char *prog)
{
    kt_runtime_versions v;

    kt_runtime_versions_get(&v);
    printf("%s %s\nlibcurl %s\n%s\njson-c %s\n", prog, PACKAGE_VERSION, v.curl, v.openssl,
           v.json_c);
}
