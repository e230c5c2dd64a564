#include <config.h>

#include <string.h>

#include <security/pam_modules.h>

#include "pam_kontist.h"

int kt_pam_code_for_error(kt_err_kind kind, bool nouserok)
{
    switch (kind) {
    case KT_ERR_BAD_CREDENTIALS:
    case KT_ERR_MFA_FAILED:
    /* Nobody approved the push challenge in time: a failed login like a denial (the log line
     * names the kind, so the two can be told apart), never an outage that opens a fallback. */
    case KT_ERR_MFA_EXPIRED:
    case KT_ERR_LOGIN_REQUIRED:
    case KT_ERR_IDENTITY_MISMATCH:
        return PAM_AUTH_ERR;
    case KT_ERR_RATE_LIMITED:
        /* Anyone can push the host's client into the bank's rate limit with a few wrong
         * passwords: if that counted as "unavailable", stacks that fall back to the local
         * password on an outage would hand every attacker that fallback. */
        return PAM_AUTH_ERR;
    case KT_ERR_NOT_ENROLLED:
        return nouserok ? PAM_IGNORE : PAM_USER_UNKNOWN;
    case KT_ERR_NO_SUCH_USER:
        /* No user nouserok could let through. */
        return PAM_USER_UNKNOWN;
    /* Kinds only kontist-auth meets; here they would be a bug. */
    case KT_ERR_NOT_CONFIRMED:
    case KT_ERR_BAD_REQUEST:
    case KT_ERR_ALREADY_ENROLLED:
        return PAM_SYSTEM_ERR;
    case KT_ERR_KEY_UNUSABLE:
        return PAM_CRED_INSUFFICIENT;
    case KT_ERR_UNAVAILABLE:
    case KT_ERR_PROTOCOL:
        /* No answer, or no answer that could come from the bank (a malformed body arrives only
         * over a verified TLS connection, so no outsider can cause it): the stack may fall back.
         * Every answer the bank gives on purpose (4xx, 429) has another kind. */
        return PAM_AUTHINFO_UNAVAIL;
    case KT_ERR_CONFIG:
        return PAM_SERVICE_ERR;
    case KT_ERR_CONV:
        return PAM_CONV_ERR;
    case KT_ERR_IO:
    case KT_ERR_INTERNAL:
        return PAM_SYSTEM_ERR;
    case KT_OK:
        /* A failure without a kind is a bug; it must not turn into a login. */
        return PAM_SYSTEM_ERR;
    }
    return PAM_SYSTEM_ERR;
}

const char *kt_pam_code_name(int code)
{
    switch (code) {
    case PAM_SUCCESS:
        return "PAM_SUCCESS";
    case PAM_AUTH_ERR:
        return "PAM_AUTH_ERR";
    case PAM_USER_UNKNOWN:
        return "PAM_USER_UNKNOWN";
    case PAM_IGNORE:
        return "PAM_IGNORE";
    case PAM_CRED_INSUFFICIENT:
        return "PAM_CRED_INSUFFICIENT";
    case PAM_AUTHINFO_UNAVAIL:
        return "PAM_AUTHINFO_UNAVAIL";
    case PAM_SERVICE_ERR:
        return "PAM_SERVICE_ERR";
    case PAM_CONV_ERR:
        return "PAM_CONV_ERR";
    case PAM_SYSTEM_ERR:
        return "PAM_SYSTEM_ERR";
    case PAM_BUF_ERR:
        return "PAM_BUF_ERR";
    case PAM_CRED_ERR:
        return "PAM_CRED_ERR";
    case PAM_SESSION_ERR:
        return "PAM_SESSION_ERR";
    case PAM_AUTHTOK_ERR:
        return "PAM_AUTHTOK_ERR";
    case PAM_ABORT:
        return "PAM_ABORT";
    default:
        return "PAM_OTHER";
    }
}

kt_err_kind kt_pam_kind_from_name(const char *name)
{
    /* The kinds are a small dense enum: ask kt_err_kind_name rather than keep a second table. */
    for (int k = KT_OK; k < KT_ERR_KIND_COUNT; k++) {
        if (strcmp(kt_err_kind_name((kt_err_kind)k), name) == 0)
            return (kt_err_kind)k;
    }
    return KT_ERR_INTERNAL;
}
