#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "exit_codes.h"
#include "options.h"

typedef enum value_kind {
    SET_FLAG,      /* bool field = true */
    SET_TEXT,      /* const char * field = the option's value */
    SET_CHOICE,    /* const char * field = fixed; a different earlier choice is an error */
    SET_NUMBER,    /* int field = number */
    SET_SECONDS,   /* long field = the value, a number of seconds from 1 to number */
    SET_CONFIG,    /* the configuration file, into the app */
    PRINT_HELP,    /* the syntax's help text */
    PRINT_VERSION, /* versions of this program and its libraries */
} value_kind;

/* A value's check, where one option's value alone can be wrong: NULL when it is fine, else the
 * message (in buf). Checked as the option is met, so an error is found before a later --help. */
typedef const char *(*value_check)(const char *value, char *buf, size_t size);

typedef struct option_row {
    const char *name;
    char letter; /* the short form, or 0; unique among a command's rows */
    unsigned in; /* KA_IN_* */
    value_kind kind;
    size_t field; /* offsetof(ka_args, ...) for the SET_* kinds but SET_CONFIG */
    const char *fixed;
    int number;
    value_check check;
} option_row;

static const char *check_mfa(const char *value, char *buf, size_t size)
{
    kt_error err = {KT_OK, ""};
    kt_mfa_order order;

    if (kt_mfa_order_parse(value, true, &order, &err) == 0)
        return NULL;
    snprintf(buf, size, "--mfa: %s", err.message);
    return buf;
}

static const char *check_tpm_handle(const char *value, char *buf, size_t size)
{
    char *end = NULL;
    unsigned long h;

    (void)buf;
    (void)size;
    errno = 0;
    h = strtoul(value, &end, 16);
    if (errno == 0 && strncasecmp(value, "0x", 2) == 0 && *end == '\0' && h >= 0x81000000ul &&
        h <= 0x81fffffful)
        return NULL;
    return "--tpm-handle takes a persistent handle, 0x81000000 to 0x81ffffff";
}

static const char *check_pkcs11_uri(const char *value, char *buf, size_t size)
{
    (void)buf;
    (void)size;
    return strncasecmp(value, "pkcs11:", 7) == 0 ? NULL : "--pkcs11 takes a pkcs11: URI";
}

#define ALL_COMMANDS                                                                               \
    (KA_IN_TOP | KA_IN_LOGIN | KA_IN_ENROLL | KA_IN_DEVICE_LIST | KA_IN_DEVICE_REMOVE |            \
     KA_IN_TOKEN | KA_IN_STATUS | KA_IN_LOGOUT | KA_IN_CREDENTIAL | KA_IN_DOCTOR)
#define FIELD(f) offsetof(ka_args, f)

static const option_row rows[] = {
    /* Every command's, and before the command word. */
    {"config", 0, ALL_COMMANDS, SET_CONFIG, 0, NULL, 0, NULL},
    {"help", 'h', ALL_COMMANDS, PRINT_HELP, 0, NULL, 0, NULL},
    {"version", 'V', KA_IN_TOP, PRINT_VERSION, 0, NULL, 0, NULL},
    {"json", 0, KA_IN_TOKEN | KA_IN_DEVICE_LIST | KA_IN_DOCTOR, SET_FLAG, FIELD(json), NULL, 0,
     NULL},
    /* login: who, the password from where, and which factor. */
    {"user", 'u', KA_IN_LOGIN, SET_TEXT, FIELD(user), NULL, 0, NULL},
    {"password-stdin", 0, KA_IN_LOGIN, SET_FLAG, FIELD(password_stdin), NULL, 0, NULL},
    {"mfa", 0, KA_IN_LOGIN, SET_CHOICE, FIELD(mfa), NULL, 0, check_mfa},
    {"no-device", 0, KA_IN_LOGIN, SET_CHOICE, FIELD(mfa), "none", 0, NULL},
    /* device enroll: the key, */
    {"key", 'k', KA_IN_ENROLL, SET_TEXT, FIELD(key), NULL, 0, NULL},
    {"tpm", 0, KA_IN_ENROLL, SET_FLAG, FIELD(tpm), NULL, 0, NULL},
    {"tpm-handle", 0, KA_IN_ENROLL, SET_TEXT, FIELD(tpm_handle), NULL, 0, check_tpm_handle},
    {"pkcs11", 0, KA_IN_ENROLL, SET_TEXT, FIELD(pkcs11), NULL, 0, check_pkcs11_uri},
    {"generate", 0, KA_IN_ENROLL, SET_FLAG, FIELD(generate), NULL, 0, NULL},
    /* and the enrollment itself. */
    {"name", 'n', KA_IN_ENROLL, SET_TEXT, FIELD(name), NULL, 0, NULL},
    {"otp-stdin", 0, KA_IN_ENROLL, SET_FLAG, FIELD(otp_stdin), NULL, 0, NULL},
    {"confirm-timeout", 0, KA_IN_ENROLL, SET_SECONDS, FIELD(confirm_timeout), NULL,
     KA_CONFIRM_TIMEOUT_MAX, NULL},
    {"force", 0, KA_IN_ENROLL, SET_FLAG, FIELD(force), NULL, 0, NULL},
    /* device remove */
    {"this", 0, KA_IN_DEVICE_REMOVE, SET_FLAG, FIELD(this_machine), NULL, 0, NULL},
    {"yes", 'y', KA_IN_DEVICE_REMOVE, SET_FLAG, FIELD(yes), NULL, 0, NULL},
    /* doctor: what it may look at, */
    {"offline", 0, KA_IN_DOCTOR, SET_FLAG, FIELD(offline), NULL, 0, NULL},
    {"system", 0, KA_IN_DOCTOR, SET_NUMBER, FIELD(system), NULL, 1, NULL},
    {"no-system", 0, KA_IN_DOCTOR, SET_NUMBER, FIELD(system), NULL, 0, NULL},
    /* and where the system's files are. */
    {"pam-dir", 0, KA_IN_DOCTOR, SET_TEXT, FIELD(pam_dir), NULL, 0, NULL},
    {"sshd-config", 0, KA_IN_DOCTOR, SET_TEXT, FIELD(sshd_config), NULL, 0, NULL},
    {"sshd", 0, KA_IN_DOCTOR, SET_TEXT, FIELD(sshd), NULL, 0, NULL},
};

#define N_ROWS (sizeof(rows) / sizeof(rows[0]))
/* getopt_long's value for a row without a short form: above every character. */
#define LONG_ONLY_BASE 0x100

static bool takes_value(const option_row *r)
{
    return r->kind == SET_TEXT || r->kind == SET_CONFIG || r->kind == SET_SECONDS ||
           (r->kind == SET_CHOICE && r->fixed == NULL);
}

/* The getopt_long tables for one command: its rows only, so another command's option is as
 * unknown here as a misspelt one. */
static void build_tables(const ka_syntax *syntax, struct option *longs, char *shorts, size_t size)
{
    size_t n = 0, s = 0;

    /* '+': stop at the first word; ':': report a missing value apart from an unknown option. */
    if (syntax->stop_at_word)
        shorts[s++] = '+';
    shorts[s++] = ':';
    for (size_t i = 0; i < N_ROWS; i++) {
        const option_row *r = &rows[i];

        if ((r->in & syntax->in) == 0)
            continue;
        longs[n].name = r->name;
        longs[n].has_arg = takes_value(r) ? required_argument : no_argument;
        longs[n].flag = NULL;
        longs[n].val = r->letter != 0 ? r->letter : LONG_ONLY_BASE + (int)i;
        n++;
        if (r->letter != 0 && s + 3 <= size) {
            shorts[s++] = r->letter;
            if (takes_value(r))
                shorts[s++] = ':';
        }
    }
    memset(&longs[n], 0, sizeof(longs[n]));
    shorts[s] = '\0';
}

static const option_row *row_for(const ka_syntax *syntax, int c)
{
    if (c >= LONG_ONLY_BASE && (size_t)(c - LONG_ONLY_BASE) < N_ROWS)
        return &rows[c - LONG_ONLY_BASE];
    for (size_t i = 0; i < N_ROWS; i++)
        if (rows[i].letter != 0 && rows[i].letter == c && (rows[i].in & syntax->in) != 0)
            return &rows[i];
    return NULL;
}

/* A number of seconds from 1 to max, digits only; -1 otherwise. */
static long seconds_value(const char *text, long max)
{
    char *end = NULL;
    long v;

    if (!isdigit((unsigned char)text[0]))
        return -1;
    errno = 0;
    v = strtol(text, &end, 10);
    return errno == 0 && *end == '\0' && v >= 1 && v <= max ? v : -1;
}

/* Returns -1 to go on, or an exit code. */
static int apply(ka_app *app, const ka_syntax *syntax, const option_row *r, ka_args *args)
{
    char *field = (char *)args + r->field;
    char why[sizeof(((kt_error *)NULL)->message)];
    const char *bad;

    if (r->check != NULL && takes_value(r) && (bad = r->check(optarg, why, sizeof(why))) != NULL)
        return ka_usage_error(app, syntax->command, "%s", bad);
    switch (r->kind) {
    case SET_FLAG:
        *(bool *)(void *)field = true;
        return -1;
    case SET_TEXT:
        *(const char **)(void *)field = optarg;
        return -1;
    case SET_CHOICE: {
        const char **text = (const char **)(void *)field;
        const char *value = r->fixed != NULL ? r->fixed : optarg;

        if (*text != NULL && strcmp(*text, value) != 0)
            return ka_usage_error(app, syntax->command, "--%s contradicts an earlier option",
                                  r->name);
        *text = value;
        return -1;
    }
    case SET_NUMBER:
        *(int *)(void *)field = r->number;
        return -1;
    case SET_SECONDS: {
        long v = seconds_value(optarg, r->number);

        if (v < 0)
            return ka_usage_error(app, syntax->command,
                                  "--%s must be a number of seconds from 1 to %d", r->name,
                                  r->number);
        *(long *)(void *)field = v;
        return -1;
    }
    case SET_CONFIG:
        app->config_path = optarg;
        return -1;
    case PRINT_HELP:
        fputs(syntax->help, stdout);
        fputs(ka_exit_codes_help, stdout);
        return KA_EXIT_OK;
    case PRINT_VERSION:
        ka_print_version(app->prog);
        return KA_EXIT_OK;
    }
    return ka_usage_error(app, syntax->command, "--%s is not understood", r->name);
}

int ka_parse_args(ka_app *app, const ka_syntax *syntax, int argc, char **argv, ka_args *args)
{
    struct option longs[N_ROWS + 1];
    /* "+:", then a letter and its ':' per row at the most, and the NUL. */
    char shorts[2 + 2 * N_ROWS + 1];
    int c, rc;

    memset(args, 0, sizeof(*args));
    args->system = -1;
    build_tables(syntax, longs, shorts, sizeof(shorts));
    opterr = 0;
    while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        const option_row *r = c == ':' || c == '?' ? NULL : row_for(syntax, c);

        if (r == NULL)
            return ka_bad_option(app, syntax->command, c, argv);
        rc = apply(app, syntax, r, args);
        if (rc >= 0)
            return rc;
    }
    /* An empty argv (execve with none) leaves optind past argc. */
    args->n_operands = optind < argc ? argc - optind : 0;
    args->operands = argv + (optind < argc ? optind : argc);
    if (!syntax->stop_at_word && args->n_operands > syntax->max_operands)
        return ka_usage_error(app, syntax->command, "unexpected argument '%s'",
                              args->operands[syntax->max_operands]);
    return -1;
}
