/* Every option of kontist-auth and git-credential-kontist, in one table (options.c): which
 * commands take it and where its value goes. A command describes its syntax and gets its options
 * filled in; what they mean together (which exclude each other, what a value may be) stays the
 * command's to check. */
#ifndef KA_OPTIONS_H
#define KA_OPTIONS_H

#include <stdbool.h>

#include "app.h"

/* --confirm-timeout: how long an enrollment waits for the binding request to be confirmed. */
#define KA_CONFIRM_TIMEOUT_MAX 3600

/* Which command an option belongs to: one bit per command, to mark the table's rows. */
enum {
    KA_IN_TOP = 1u << 0, /* before the command word, and git-credential-kontist's own */
    KA_IN_LOGIN = 1u << 1,
    KA_IN_ENROLL = 1u << 2,
    KA_IN_DEVICE_LIST = 1u << 3,
    KA_IN_DEVICE_REMOVE = 1u << 4,
    KA_IN_TOKEN = 1u << 5,
    KA_IN_STATUS = 1u << 6,
    KA_IN_LOGOUT = 1u << 7,
    KA_IN_CREDENTIAL = 1u << 8,
    KA_IN_DOCTOR = 1u << 9,
};

/* The values of every option; a command reads the ones its syntax takes. */
typedef struct ka_args {
    bool json;
    /* login */
    const char *user;
    bool password_stdin;
    const char *mfa; /* --mfa, or "none" for --no-device */
    /* device enroll */
    const char *name;
    const char *key;
    const char *pkcs11;
    const char *tpm_handle;
    long confirm_timeout; /* 0: not given */
    bool otp_stdin, tpm, generate, force;
    /* device remove */
    bool this_machine, yes;
    /* doctor */
    bool offline;
    int system; /* -1: not given; 1: --system; 0: --no-system (the last one counts) */
    const char *pam_dir, *sshd_config, *sshd;
    /* The words after the options. */
    int n_operands;
    char **operands;
} ka_args;

typedef struct ka_syntax {
    const char *command; /* for messages ("device enroll"); NULL before the command word */
    unsigned in;         /* KA_IN_*: whose options */
    const char *help;    /* --help prints it, then the exit codes */
    /* The most words after the options; more are a usage error. With stop_at_word the options
     * end at the first word (a command, or git's operation) and the caller checks the words. */
    int max_operands;
    bool stop_at_word;
} ka_syntax;

/* Parses argv[1..] by the syntax into *args (initialised here) and --config into app.
 * Returns -1 to go on, or the exit code to end with: after --help or --version, KA_EXIT_OK;
 * after a usage error (already reported), KA_EXIT_USAGE. */
int ka_parse_args(ka_app *app, const ka_syntax *syntax, int argc, char **argv, ka_args *args);

#endif
