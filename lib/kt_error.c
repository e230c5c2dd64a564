#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kt_error.h"

int kt_error_set(kt_error *err, kt_err_kind kind, const char *fmt, ...)
{
    va_list ap;

    /* The first error is the cause; later ones come from cleanup paths and would hide it. */
    if (err == NULL || err->kind != KT_OK)
        return -1;
    err->kind = kind == KT_OK ? KT_ERR_INTERNAL : kind;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

void kt_error_clear(kt_error *err)
{
    if (err == NULL)
        return;
    err->kind = KT_OK;
    err->message[0] = '\0';
}

/* The seconds travel in the message itself, in a form only this file writes and reads, so that
 * kt_error stays a kind and a text (and every copy of an error keeps them). */
#define KT_RATE_LIMITED_MARK "rate limited (HTTP 429)"
#define KT_RETRY_AFTER_MARK ", retry after "

int kt_error_set_rate_limited(kt_error *err, const char *what, long retry_after, const char *detail)
{
    const char *sep = detail != NULL && *detail != '\0' ? ": " : "";

    if (what == NULL)
        what = "request";
    if (detail == NULL)
        detail = "";
    if (retry_after >= 0)
        return kt_error_set(err, KT_ERR_RATE_LIMITED,
                            "%s: " KT_RATE_LIMITED_MARK KT_RETRY_AFTER_MARK "%ld s%s%s", what,
                            retry_after, sep, detail);
    return kt_error_set(err, KT_ERR_RATE_LIMITED, "%s: " KT_RATE_LIMITED_MARK "%s%s", what, sep,
                        detail);
}

long kt_error_retry_after(const kt_error *err)
{
    const char *p;
    long secs = 0;
    int digits = 0;

    if (err == NULL || err->kind != KT_ERR_RATE_LIMITED)
        return -1;
    /* The first mark is ours: what precedes it is the caller's text, never the server's, and
     * the server's words only ever follow our own ", retry after N s". */
    p = strstr(err->message, KT_RATE_LIMITED_MARK);
    if (p == NULL)
        return -1;
    p += strlen(KT_RATE_LIMITED_MARK);
    if (strncmp(p, KT_RETRY_AFTER_MARK, strlen(KT_RETRY_AFTER_MARK)) != 0)
        return -1;
    for (p += strlen(KT_RETRY_AFTER_MARK); *p >= '0' && *p <= '9' && digits < 12; p++, digits++)
        secs = secs * 10 + (*p - '0');
    if (digits == 0 || digits == 12 || strncmp(p, " s", 2) != 0)
        return -1;
    return secs;
}

const char *kt_err_kind_name(kt_err_kind kind)
{
    switch (kind) {
    case KT_OK:
        return "ok";
    case KT_ERR_BAD_CREDENTIALS:
        return "bad_credentials";
    case KT_ERR_LOGIN_REQUIRED:
        return "login_required";
    case KT_ERR_MFA_FAILED:
        return "mfa_failed";
    case KT_ERR_NOT_ENROLLED:
        return "not_enrolled";
    case KT_ERR_KEY_UNUSABLE:
        return "key_unusable";
    case KT_ERR_UNAVAILABLE:
        return "unavailable";
    case KT_ERR_PROTOCOL:
        return "protocol";
    case KT_ERR_CONFIG:
        return "config";
    case KT_ERR_CONV:
        return "conversation";
    case KT_ERR_IO:
        return "io";
    case KT_ERR_INTERNAL:
        return "internal";
    case KT_ERR_RATE_LIMITED:
        return "rate_limited";
    case KT_ERR_IDENTITY_MISMATCH:
        return "identity_mismatch";
    case KT_ERR_NO_SUCH_USER:
        return "no_such_user";
    case KT_ERR_NOT_CONFIRMED:
        return "not_confirmed";
    case KT_ERR_BAD_REQUEST:
        return "bad_request";
    case KT_ERR_ALREADY_ENROLLED:
        return "already_enrolled";
    case KT_ERR_MFA_EXPIRED:
        return "mfa_expired";
    }
    return "unknown";
}
