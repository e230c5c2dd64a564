#include <config.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "kt_device.h"
#include "kt_json.h"
#include "kt_mfa.h"
#include "kt_validate.h"

void kt_push_challenge_free(kt_push_challenge *c)
{
    if (c == NULL)
        return;
    free(c->id);
    memset(c, 0, sizeof(*c));
}

/* n decimal digits at *p, advancing it; -1 when they are not there. */
static long kt_digits(const char **p, int n)
{
    long v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return v;
}

static bool kt_expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

int kt_iso8601_parse(const char *text, time_t *out)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = text;
    struct tm tm;
    long y, mo, d, h, mi, s, offset = 0;
    time_t t;

    if (text == NULL)
        return -1;
    memset(&tm, 0, sizeof(tm));
    y = kt_digits(&p, 4);
    if (y < 1970 || !kt_expect(&p, '-') || (mo = kt_digits(&p, 2)) < 1 || mo > 12 ||
        !kt_expect(&p, '-') || (d = kt_digits(&p, 2)) < 1 || d > mdays[mo - 1] ||
        (*p != 'T' && *p != 't') || (p++, (h = kt_digits(&p, 2)) < 0) || h > 23 ||
        !kt_expect(&p, ':') || (mi = kt_digits(&p, 2)) < 0 || mi > 59 || !kt_expect(&p, ':') ||
        (s = kt_digits(&p, 2)) < 0 || s > 60)
        return -1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (int i = 0; isdigit((unsigned char)*p); i++, p++)
            if (i >= 9)
                return -1;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        long oh, om;

        p++;
        if ((oh = kt_digits(&p, 2)) < 0 || oh > 23 || !kt_expect(&p, ':') ||
            (om = kt_digits(&p, 2)) < 0 || om > 59)
            return -1;
        offset = sign * (oh * 3600 + om * 60);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    tm.tm_year = (int)(y - 1900);
    tm.tm_mon = (int)(mo - 1);
    tm.tm_mday = (int)d;
    tm.tm_hour = (int)h;
    tm.tm_min = (int)mi;
    tm.tm_sec = (int)s;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = t - offset;
    return 0;
}

static int kt_mfa_read_challenge(json_object *obj, const char *what, kt_push_challenge *out,
                                 kt_error *err)
{
    char *state = NULL, *expires = NULL;
    int rc = -1;

    if (kt_json_get_string(obj, "id", &out->id, what, err) != 0)
        return -1;
    if (!kt_device_id_ok(out->id))
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: \"id\" is not a valid id", what);
    if (kt_json_get_string(obj, "status", &state, what, err) != 0 ||
        kt_json_get_string(obj, "expiresAt", &expires, what, err) != 0)
        goto out;
    if (strcmp(state, "PENDING") == 0)
        out->state = KT_PUSH_PENDING;
    else if (strcmp(state, "VERIFIED") == 0)
        out->state = KT_PUSH_VERIFIED;
    else if (strcmp(state, "DENIED") == 0)
        out->state = KT_PUSH_DENIED;
    else {
        /* The bank answered about the challenge, on purpose, with a state this client does not
         * know (expired, cancelled, ...): not approved, never an outage that opens a fallback. */
        kt_error_set(err, KT_ERR_MFA_FAILED, "%s: the challenge is %.32s, not approved", what,
                     kt_token_string_ok(state) ? state : "in an unknown state");
        goto out;
    }
    if (kt_iso8601_parse(expires, &out->expires_at) != 0) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: \"expiresAt\" is not a date and time", what);
        goto out;
    }
    rc = 0;
out:
    free(state);
    free(expires);
    return rc;
}

static int kt_mfa_parse(const char *what, long status, const char *content_type, const char *body,
                        size_t len, kt_push_challenge *out, kt_error *err)
{
    json_object *obj;
    int rc;

    memset(out, 0, sizeof(*out));
    obj = kt_json_parse_response(status, content_type, body, len, what, err);
    if (obj == NULL)
        return -1;
    rc = kt_mfa_read_challenge(obj, what, out, err);
    kt_json_put_wiped(obj);
    if (rc != 0)
        kt_push_challenge_free(out);
    return rc;
}

int kt_mfa_parse_challenge(long status, const char *content_type, const char *body, size_t len,
                           kt_push_challenge *out, kt_error *err)
{
    return kt_mfa_parse("push challenge", status, content_type, body, len, out, err);
}

static const char *kt_mfa_call_name(kt_mfa_call call)
{
    switch (call) {
    case KT_MFA_CREATE:
        return "create push challenge";
    case KT_MFA_GET:
        return "check push challenge";
    case KT_MFA_TOKEN:
        return "push challenge token";
    }
    return "push challenge";
}

int kt_mfa_check_status(kt_mfa_call call, const kt_http_response *resp, kt_error *err)
{
    const char *what = kt_mfa_call_name(call);

    if (resp == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "%s: no response", what);
    if (resp->status >= 200 && resp->status <= 299)
        return 0;
    /* A refusal (a denied, expired, used or unknown challenge) is a failed MFA: as "unavailable"
     * or "broken answer" it would let a PAM stack fall back to another module. */
    return kt_http_status_error(resp, what, KT_ERR_MFA_FAILED, err);
}

/* The challenges' collection; one challenge is below it by id. */
#define KT_MFA_PATH "/api/user/mfa/challenges"
#define KT_MFA_PATH_MAX 256

static int kt_mfa_path(char *buf, size_t size, const char *id, const char *tail, kt_error *err)
{
    int n;

    if (id == NULL) {
        n = snprintf(buf, size, "%s", KT_MFA_PATH);
    } else {
        if (!kt_device_id_ok(id))
            return kt_error_set(err, KT_ERR_PROTOCOL, "invalid push challenge id");
        n = snprintf(buf, size, "%s/%s%s", KT_MFA_PATH, id, tail);
    }
    if (n < 0 || (size_t)n >= size)
        return kt_error_set(err, KT_ERR_INTERNAL, "request path too long");
    return 0;
}

static int kt_mfa_send(kt_ctx *ctx, const char *method, const char *access_token, const char *path,
                       kt_http_response *resp, kt_error *err)
{
    kt_http_request req = {
        .method = method,
        .path = path,
        .auth = KT_AUTH_BEARER,
        .bearer = access_token,
    };

    if (ctx == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "no context");
    return kt_http_send(ctx->http, &req, resp, err);
}

static int kt_mfa_challenge_call(kt_ctx *ctx, kt_mfa_call call, const char *method,
                                 const char *access_token, const char *id, kt_push_challenge *out,
                                 long *retry_after, kt_error *err)
{
    char path[KT_MFA_PATH_MAX];
    kt_http_response resp;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (retry_after != NULL)
        *retry_after = -1;
    if (kt_mfa_path(path, sizeof(path), id, "", err) != 0)
        return -1;
    if (kt_mfa_send(ctx, method, access_token, path, &resp, err) != 0)
        return -1;
    if (retry_after != NULL)
        *retry_after = resp.retry_after;
    if (kt_mfa_check_status(call, &resp, err) == 0 &&
        kt_mfa_parse(kt_mfa_call_name(call), resp.status, resp.content_type, resp.body,
                     resp.body_len, out, err) == 0) {
        out->server_date = resp.date;
        rc = 0;
    }
    kt_http_response_free(&resp);
    return rc;
}

int kt_mfa_push_create(kt_ctx *ctx, const char *access_token, kt_push_challenge *out,
                       long *retry_after, kt_error *err)
{
    return kt_mfa_challenge_call(ctx, KT_MFA_CREATE, "POST", access_token, NULL, out, retry_after,
                                 err);
}

int kt_mfa_push_get(kt_ctx *ctx, const char *access_token, const char *id, kt_push_challenge *out,
                    long *retry_after, kt_error *err)
{
    if (!kt_device_id_ok(id))
        return kt_error_set(err, KT_ERR_INTERNAL, "invalid push challenge id");
    return kt_mfa_challenge_call(ctx, KT_MFA_GET, "GET", access_token, id, out, retry_after, err);
}

int kt_mfa_push_token(kt_ctx *ctx, const char *access_token, const char *id, kt_token_set *t,
                      kt_error *err)
{
    char path[KT_MFA_PATH_MAX];
    kt_http_response resp;
    int rc = -1;

    memset(t, 0, sizeof(*t));
    if (kt_mfa_path(path, sizeof(path), id, "/token", err) != 0)
        return -1;
    if (kt_mfa_send(ctx, "POST", access_token, path, &resp, err) != 0)
        return -1;
    if (kt_mfa_check_status(KT_MFA_TOKEN, &resp, err) == 0)
        rc = kt_parse_confirmed_tokens(kt_mfa_call_name(KT_MFA_TOKEN), resp.status,
                                       resp.content_type, resp.body, resp.body_len, t, err);
    kt_http_response_free(&resp);
    return rc;
}
