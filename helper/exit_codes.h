/* Exit codes of kontist-auth and git-credential-kontist, mapped from the core's error kinds in
 * one place so the man page, --help and the code cannot drift apart. */
#ifndef KA_EXIT_CODES_H
#define KA_EXIT_CODES_H

#include "kontist.h"

enum ka_exit {
    KA_EXIT_OK = 0,
    KA_EXIT_INTERNAL = 1,    /* a bug, out of memory, a library failure */
    KA_EXIT_USAGE = 2,       /* bad command line, bad configuration, no answer to a prompt */
    KA_EXIT_AUTH = 3,        /* wrong username or password, or not logged in / login expired */
    KA_EXIT_MFA = 4,         /* device MFA rejected, no device enrolled, key unusable */
    KA_EXIT_UNAVAILABLE = 5, /* network, TLS, timeout, rate limit, server error or bad answer */
    KA_EXIT_IO = 6,          /* local files: permissions, ownership, disk */
};

/* The exit code for an error kind. */
int ka_exit_code(kt_err_kind kind);
/* Prints "PROG: MESSAGE" and a hint on what to do next to stderr; returns the exit code. */
int ka_report(const char *prog, const kt_error *err);
/* The exit-code table as it appears in --help. */
extern const char ka_exit_codes_help[];

#endif
