#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <security/pam_ext.h>

#include "pam_kontist.h"

/* Room for one escaped field; longer values are cut (user names and hosts are short). */
#define FIELD_MAX 128
#define REASON_MAX 384

static bool plain_char(unsigned char c)
{
    /* Visible ASCII except the characters that delimit or quote fields. */
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
}

/* Copies in, each character that is not plain (for free text: nor a space or '=') as \xHH, cut
 * where the next character would not fit. */
static void escape(const char *in, bool text, char *out, size_t size)
{
    size_t o = 0;

    if (size == 0)
        return;
    for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
        if (plain_char(*p) || (text && (*p == ' ' || *p == '='))) {
            if (o + 1 >= size)
                break;
            out[o++] = (char)*p;
        } else {
            if (o + 4 >= size)
                break;
            snprintf(out + o, 5, "\\x%02x", *p);
            o += 4;
        }
    }
    out[o] = '\0';
}

void kt_pam_log_escape(const char *in, char *out, size_t size)
{
    escape(in != NULL && in[0] != '\0' ? in : "-", false, out, size);
}

void kt_pam_log_escape_text(const char *in, char *out, size_t size)
{
    escape(in != NULL ? in : "", true, out, size);
}

static const char *pam_str_item(pam_handle_t *pamh, int item)
{
    const void *v = NULL;

    if (pam_get_item(pamh, item, &v) != PAM_SUCCESS)
        return NULL;
    return v;
}

static int priority_for(int code)
{
    switch (code) {
    case PAM_SUCCESS:
        return LOG_INFO;
    case PAM_AUTH_ERR:
    case PAM_USER_UNKNOWN:
    case PAM_IGNORE:
    case PAM_CRED_INSUFFICIENT:
    case PAM_CONV_ERR:
        return LOG_NOTICE;
    default:
        return LOG_ERR;
    }
}

void kt_pam_log_attempt(pam_handle_t *pamh, const kt_pam_attempt *a, int code, const kt_error *err)
{
    char service[FIELD_MAX], user[FIELD_MAX], rhost[FIELD_MAX], kuser[FIELD_MAX], device[FIELD_MAX],
        factor[FIELD_MAX], reason[REASON_MAX];
    const char *outcome = code == PAM_SUCCESS ? "success" : "failure";
    const char *kind = "ok";
    uint64_t elapsed = kt_now_ms() - a->start_ms;

    kt_pam_log_escape(pam_str_item(pamh, PAM_SERVICE), service, sizeof(service));
    kt_pam_log_escape(a->user, user, sizeof(user));
    kt_pam_log_escape(pam_str_item(pamh, PAM_RHOST), rhost, sizeof(rhost));
    kt_pam_log_escape(a->kontist_user, kuser, sizeof(kuser));
    kt_pam_log_escape(a->device_id, device, sizeof(device));
    kt_pam_log_escape(a->factor, factor, sizeof(factor));
    if (code != PAM_SUCCESS) {
        kind = err != NULL ? kt_err_kind_name(err->kind) : "unknown";
        kt_pam_log_escape_text(err != NULL ? err->message : "", reason, sizeof(reason));
        if (code == PAM_IGNORE)
            outcome = "ignored";
    }
    pam_syslog(pamh, priority_for(code),
               "auth service=%s user=%s rhost=%s kontist_user=%s device=%s mfa=%s factor=%s "
               "outcome=%s error=%s pam=%s duration_ms=%" PRIu64 "%s%s%s",
               service, user, rhost, kuser, device, kt_pam_mfa_name(a->mfa), factor, outcome, kind,
               kt_pam_code_name(code), elapsed, code != PAM_SUCCESS ? " reason=\"" : "",
               code != PAM_SUCCESS ? reason : "", code != PAM_SUCCESS ? "\"" : "");
}

void kt_pam_debug(pam_handle_t *pamh, const kt_pam_args *args, const char *fmt, ...)
{
    va_list ap;

    if (args == NULL || !args->debug)
        return;
    va_start(ap, fmt);
    pam_vsyslog(pamh, LOG_DEBUG, fmt, ap);
    va_end(ap);
}
