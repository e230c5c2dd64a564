#include <config.h>

#include <stdio.h>
#include <string.h>

#include "exit_codes.h"

const char ka_exit_codes_help[] =
    "Exit status:\n"
    "  0  success\n"
    "  1  internal error\n"
    "  2  usage or configuration error, or a prompt got no answer\n"
    "  3  wrong username or password, or not logged in (log in again)\n"
    "  4  MFA failed (device key refused, push denied or expired), no device enrolled, or the\n"
    "     device key is unusable\n"
    "  5  service unavailable (network, TLS, timeout, rate limit, server error)\n"
    "  6  local I/O error (file permissions, ownership, disk)\n";

int ka_exit_code(kt_err_kind kind)
{
    switch (kind) {
    case KT_OK:
        return KA_EXIT_OK;
    case KT_ERR_CONFIG:
    case KT_ERR_CONV:
    case KT_ERR_BAD_REQUEST:
    case KT_ERR_ALREADY_ENROLLED:
        return KA_EXIT_USAGE;
    case KT_ERR_BAD_CREDENTIALS:
    case KT_ERR_LOGIN_REQUIRED:
    case KT_ERR_IDENTITY_MISMATCH:
        return KA_EXIT_AUTH;
    case KT_ERR_MFA_FAILED:
    case KT_ERR_MFA_EXPIRED:
    case KT_ERR_NOT_ENROLLED:
    case KT_ERR_NOT_CONFIRMED:
    case KT_ERR_KEY_UNUSABLE:
        return KA_EXIT_MFA;
    /* Its own message (ka_report), but for scripts the same as an outage: try again later. */
    case KT_ERR_RATE_LIMITED:
    case KT_ERR_UNAVAILABLE:
    /* The server broke the contract: nothing the person can fix, so it counts as the service. */
    case KT_ERR_PROTOCOL:
        return KA_EXIT_UNAVAILABLE;
    case KT_ERR_IO:
        return KA_EXIT_IO;
    case KT_ERR_INTERNAL:
    case KT_ERR_NO_SUCH_USER: /* PAM's kind: here it would be a bug */
        return KA_EXIT_INTERNAL;
    }
    return KA_EXIT_INTERNAL;
}

static const char *hint(kt_err_kind kind)
{
    switch (kind) {
    case KT_ERR_LOGIN_REQUIRED:
        return "log in again with 'kontist-auth login'";
    case KT_ERR_NOT_ENROLLED:
    case KT_ERR_MFA_FAILED:
        /* Also when the bank no longer knows an enrolled device: enrolling anew needs a login
         * without it first. */
        return "enroll this machine with 'kontist-auth device enroll'; if it was enrolled but the "
               "device was removed from the account, run 'kontist-auth login --no-device' and "
               "'kontist-auth device enroll --force'";
    case KT_ERR_NOT_CONFIRMED:
        return "log in with 'kontist-auth login' on a machine with an enrolled device "
               "('kontist-auth device enroll')";
    case KT_ERR_ALREADY_ENROLLED:
        return "'kontist-auth device enroll --force' enrolls a new device";
    case KT_ERR_UNAVAILABLE:
        return "try again later";
    default:
        return NULL;
    }
}

int ka_report(const char *prog, const kt_error *err)
{
    kt_err_kind kind = err->kind == KT_OK ? KT_ERR_INTERNAL : err->kind;
    const char *h = hint(kind);
    long retry;

    fprintf(stderr, "%s: %s\n", prog, err->message[0] != '\0' ? err->message : "unknown error");
    /* Same exit code as an outage, but not the same advice: retrying at once only prolongs it. */
    if (kind == KT_ERR_RATE_LIMITED) {
        retry = kt_error_retry_after(err);
        if (retry >= 0)
            fprintf(stderr, "%s: the bank is rate limiting requests; try again in %ld s\n", prog,
                    retry);
        else
            fprintf(stderr, "%s: the bank is rate limiting requests; try again later\n", prog);
        return ka_exit_code(kind);
    }
    /* The core says what went wrong; what to run about it is the front end's to say. */
    if (h != NULL)
        fprintf(stderr, "%s: %s\n", prog, h);
    return ka_exit_code(kind);
}
