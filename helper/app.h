/* What every kontist-auth command shares: the program name, the configuration chosen by
 * --config / KONTIST_CONFIG or the usual files, the user's file locations and owner policy. */
#ifndef KA_APP_H
#define KA_APP_H

#include <stdbool.h>

#include "kontist.h"
#include "terminal.h"

#define KA_PROG "kontist-auth"
#define KA_CRED_PROG "git-credential-kontist"

typedef struct ka_app {
    const char *prog;        /* name used in messages */
    const char *config_path; /* --config FILE; NULL: KONTIST_CONFIG, else system then user file */
    char *config_used[2];    /* files actually read, for status */
    bool config_loaded;
    kt_config cfg;
    kt_paths paths;
    kt_owner_policy user_owners; /* per-user files: owned by the invoking user only */
    ka_term term;
} ka_app;

/* Resolves the user's paths and loads the configuration. Returns 0 or -1 with err set. */
int ka_app_setup(ka_app *app, kt_error *err);
/* Only the file locations, for commands that must work with a broken configuration (logout). */
int ka_app_setup_paths(ka_app *app, kt_error *err);
/* The configuration files every command reads, in order (later ones override earlier), with the
 * owners each may have: --config or KONTIST_CONFIG alone, else the system file then the user's.
 * Returns how many (0 with err set on failure); free *chosen_abs afterwards. */
size_t ka_config_files(const ka_app *app, kt_doctor_config_file files[2], char **chosen_abs,
                       kt_error *err);
void ka_app_free(ka_app *app);

/* One entry of a command table: kontist-auth's commands (main.c) and the subcommands of
 * `device` go through the same dispatcher. A command returns an exit code (exit_codes.h). */
typedef struct ka_command {
    const char *name;
    int (*run)(ka_app *app, int argc, char **argv);
} ka_command;

/* Runs the command argv[0] names from the table, with argv[0] as the command's own argv[0].
 * parent is the command the table belongs to ("device"), NULL for the top level; it words the
 * usage error for a missing or unknown name. */
int ka_dispatch(ka_app *app, const char *parent, const ka_command *table, size_t n, int argc,
                char **argv);

/* Commands: argv[0] is the command name; each returns an exit code. */
int ka_cmd_login(ka_app *app, int argc, char **argv);
int ka_cmd_device(ka_app *app, int argc, char **argv);
/* `device list` and `device remove` (cmd_device_admin.c), from the table in cmd_device.c. */
int ka_cmd_device_list(ka_app *app, int argc, char **argv);
int ka_cmd_device_remove(ka_app *app, int argc, char **argv);
int ka_cmd_token(ka_app *app, int argc, char **argv);
int ka_cmd_status(ka_app *app, int argc, char **argv);
int ka_cmd_logout(ka_app *app, int argc, char **argv);
int ka_cmd_credential(ka_app *app, int argc, char **argv);
int ka_cmd_doctor(ka_app *app, int argc, char **argv);
/* pam_kontist's own argument parser, for the doctor's PAM stack checks (doctor_module.c). */
int ka_doctor_parse_module_args(int argc, const char **argv, kt_doctor_module_args *out,
                                kt_error *err);
/* The --version text: this program's version and the libraries it runs with. */
void ka_print_version(const char *prog);
/* The credential operations themselves (get, store, erase; others are ignored). */
int ka_credential_run(ka_app *app, const char *operation);
struct ka_syntax;
/* git-credential-kontist and `kontist-auth credential`: the options by the syntax, then one
 * operation word. */
int ka_credential_main(ka_app *app, const struct ka_syntax *syntax, int argc, char **argv);

/* A token set from the cache whose access token is confirmed and has at least KT_TOKEN_MIN_LEFT
 * seconds left, refreshed under the cache lock when needed. Never prompts. */
int ka_confirmed_token(ka_app *app, kt_token_set *t, kt_error *err);

/* Usage helpers: an unknown option or a missing argument is reported the same way everywhere. */
int ka_usage_error(const ka_app *app, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reports a getopt failure ('?' or ':') for argv; returns KA_EXIT_USAGE. */
int ka_bad_option(const ka_app *app, const char *cmd, int c, char **argv);

/* An absolute version of path (relative ones are taken from the current directory); malloc'd. */
char *ka_absolute_path(const char *path, kt_error *err);

/* Formats a UNIX time as "2024-05-01 12:00:00 UTC" into buf. */
void ka_format_time(time_t t, char *buf, size_t size);
/* First 8 characters of a secret and an ellipsis, for messages that must not print it whole. */
void ka_mask(const char *secret, char *buf, size_t size);
/* A device key reference for display: a key URI may carry the PIN of its token (RFC 7512
 * pin-value), which is replaced by an ellipsis. */
void ka_key_ref_display(const char *ref, char *buf, size_t size);

#endif
