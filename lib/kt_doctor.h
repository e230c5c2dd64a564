/* `kontist-auth doctor`: checks everything a working setup needs and says how to fix what is
 * wrong. The checks live here; front ends only format the results the callback hands them.
 *
 * The checks send no password and make at most three requests: one to the token endpoint (a
 * refresh grant with a token that cannot exist: it shows that TLS works, that the endpoint
 * answers, that the client credentials are accepted, and the server's clock from its Date
 * header), and, when the token cache holds a valid access token and a device is enrolled, one
 * device challenge and its verification, signed with the device key, so that the bank itself says
 * whether the key is the one it has bound. The tokens that verification yields are wiped, never
 * stored: the doctor changes no file. */
#ifndef KT_DOCTOR_H
#define KT_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "kt_config.h"
#include "kt_error.h"
#include "kt_paths.h"

/* The most the server's clock may differ from this machine's. Tokens carry absolute expiry times
 * (the JWT exp claim) that this machine compares with its own clock. */
#define KT_DOCTOR_MAX_SKEW_S 60

typedef enum kt_doctor_status {
    KT_DOCTOR_OK,
    KT_DOCTOR_WARN, /* works, but not as it should, or not everywhere */
    KT_DOCTOR_FAIL, /* this stops logins */
    KT_DOCTOR_SKIP, /* could not be checked because something before it failed or is absent */
} kt_doctor_status;

typedef struct kt_doctor_result {
    const char *name; /* stable check name: "config-file", "tls", "sshd-usepam", ... */
    kt_doctor_status status;
    const char *detail; /* what was found; never a secret */
    const char *fix;    /* what to do, or NULL when there is nothing to do */
    kt_err_kind kind;   /* the error kind of a failure (for exit codes), KT_OK otherwise */
} kt_doctor_result;

/* Called once per check, in order; the strings live until the callback returns. */
typedef void (*kt_doctor_report_fn)(const kt_doctor_result *result, void *data);

/* What the PAM module makes of one stack line's arguments. */
typedef struct kt_doctor_module_args {
    const char *config; /* config= or the system file */
    const char *helper; /* helper= or the built-in path of kontist-pam-helper */
    long login_timeout; /* login_timeout=, 0 when not given (the configuration's applies) */
    bool nouserok;
    bool mfa_device; /* mfa=device (the default) rather than mfa=none */
} kt_doctor_module_args;

/* The module's own argument parser (front ends hand in pam_kontist's, so that the doctor can never
 * accept what the module refuses). Returns 0, or -1 with err set. */
typedef int (*kt_doctor_module_parser)(int argc, const char **argv, kt_doctor_module_args *out,
                                       kt_error *err);

/* One configuration file the front end would read, in order (later files override earlier). */
typedef struct kt_doctor_config_file {
    const char *path;
    kt_owner_policy owners;
    bool missing_ok;
} kt_doctor_config_file;

typedef struct kt_doctor_options {
    const kt_doctor_config_file *config_files;
    size_t n_config_files;
    const kt_paths *paths;       /* this user's record, key and cache */
    kt_owner_policy user_owners; /* who may own this user's files */
    bool network;                /* false: no DNS, no connection, no request */
    bool system;                 /* also the PAM stacks and sshd (run as root) */
    const char *pam_dir;         /* NULL: /etc/pam.d */
    const char *sshd_config;     /* NULL: /etc/ssh/sshd_config */
    const char *sshd_binary;     /* NULL: /usr/sbin/sshd; "": parse sshd_config ourselves */
    kt_doctor_module_parser parse_module_args; /* NULL: stack arguments are not checked */
} kt_doctor_options;

typedef struct kt_doctor_summary {
    unsigned ok, warn, fail, skip;
    kt_err_kind first_failure; /* kind of the first failed check, KT_OK when none failed */
} kt_doctor_summary;

/* Runs every check and reports each through `report`. Returns 0 when no check failed, -1
 * otherwise (summary says which kind failed first). */
int kt_doctor_run(const kt_doctor_options *opts, kt_doctor_report_fn report, void *data,
                  kt_doctor_summary *summary);

/* "ok", "warn", "fail", "skip". */
const char *kt_doctor_status_name(kt_doctor_status status);

/* sshd's LoginGraceTime syntax ("120", "2m", "1h30m", "0"): seconds, or -1 when malformed.
 * Exposed for tests. */
long kt_doctor_sshd_time(const char *value);

#endif
