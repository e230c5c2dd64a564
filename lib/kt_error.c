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
    }
    return "unknown";
}
