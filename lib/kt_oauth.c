#include <config.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "kt_device.h"
#include "kt_http.h"
#include "kt_json.h"
#include "kt_oauth.h"
#include "kt_secret.h"

#define KT_TOKEN_PATH "/api/oauth/token"
#define KT_FORM_TYPE "application/x-www-form-urlencoded"
/* No access token lives longer than a year; a larger expires_in is a broken server. */
#define KT_MAX_EXPIRES_IN (366L * 24 * 3600)
#define KT_MAX_FORM_VALUE (64 * 1024)

static bool kt_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

char *kt_form_encode(const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len, i, o = 0;
    char *out;

    if (value == NULL)
        return NULL;
    len = strlen(value);
    if (len > KT_MAX_FORM_VALUE)
        return NULL;
    out = malloc(3 * len + 1);
    if (out == NULL)
        return NULL;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (kt_unreserved(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0x0f];
        }
    }
    out[o] = '\0';
    return out;
}

char *kt_form_build(const char *const *pairs)
{
    size_t n, i, total = 1, off = 0;
    char **enc = NULL;
    char *out = NULL;

    if (pairs == NULL)
        return NULL;
    for (n = 0; pairs[n] != NULL; n += 2)
        if (pairs[n + 1] == NULL)
            return NULL;
    enc = calloc(n + 1, sizeof(*enc));
    if (enc == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        enc[i] = kt_form_encode(pairs[i]);
        if (enc[i] == NULL)
            goto out;
        total += strlen(enc[i]) + 1; /* '=' or '&' */
    }
    out = malloc(total);
    if (out == NULL)
        goto out;
    for (i = 0; i < n; i++) {
        size_t l = strlen(enc[i]);
        if (i > 0)
            out[off++] = i % 2 == 1 ? '=' : '&';
        memcpy(out + off, enc[i], l);
        off += l;
    }
    out[off] = '\0';
out:
    for (i = 0; i < n; i++)
        kt_secret_free(enc[i]);
    free(enc);
    return out;
}

/* What a refusal by the token endpoint means, for any 4xx but 429 and whatever its body looks
 * like (RFC 6749 JSON, {"message"}, HTML, nothing): the bank said no on purpose, so the password
 * (password grant) or the refresh token (refresh grant) did not pass. The one exception is an
 * RFC 6749 invalid_client, which singles out the installation's client credentials: a
 * configuration error. Nothing here may read as "unavailable" or "broken answer": those let a
 * PAM stack fall back to the local password. */
static int kt_oauth_refused(long status, const char *body, size_t len, kt_grant grant,
                            kt_error *err)
{
    char code[64], words[KT_JSON_SERVER_TEXT_MAX + 1];
    kt_err_kind kind = grant == KT_GRANT_PASSWORD ? KT_ERR_BAD_CREDENTIALS : KT_ERR_LOGIN_REQUIRED;

    kt_json_server_text(body, len, code, sizeof(code), NULL, 0);
    if (strcmp(code, "invalid_client") == 0)
        kind = KT_ERR_CONFIG;
    kt_json_server_words(body, len, words, sizeof(words));
    return kt_error_set(err, kind, "token endpoint: refused (HTTP %ld)%s%s", status,
                        words[0] != '\0' ? ": " : "", words);
}

static const kt_json_doc kt_token_response = {"token response", KT_ERR_PROTOCOL, 0, 0};

/* Optional string member: absent or null is fine, any other type is not. */
static int kt_opt_string(json_object *obj, const char *key, char **out, kt_error *err)
{
    return kt_json_string(&kt_token_response, obj, key, KT_JSON_NULLABLE, 0, out, err);
}

static int kt_oauth_parse_success(json_object *obj, time_t now, kt_token_set *t, kt_error *err)
{
    char *type = NULL;
    int64_t expires_in = 0;
    time_t jwt_exp;
    int rc = -1;

    if (kt_json_get_string(obj, "access_token", &t->access_token, "token response", err) != 0)
        goto out;
    if (!kt_token_string_ok(t->access_token)) {
        kt_error_set(err, KT_ERR_PROTOCOL, "token response: malformed access_token");
        goto out;
    }
    if (kt_json_get_string(obj, "token_type", &type, "token response", err) != 0)
        goto out;
    if (strcasecmp(type, "Bearer") != 0) {
        kt_error_set(err, KT_ERR_PROTOCOL, "token response: token_type is not Bearer");
        goto out;
    }
    /* 0 is an already expired token: useless, but not a broken server. */
    if (kt_json_int64(&kt_token_response, obj, "expires_in", KT_JSON_REQUIRED, 0, KT_MAX_EXPIRES_IN,
                      &expires_in, err) != 0)
        goto out;
    if (kt_opt_string(obj, "refresh_token", &t->refresh_token, err) != 0 ||
        kt_opt_string(obj, "scope", &t->scope, err) != 0)
        goto out;
    if (t->refresh_token != NULL && !kt_token_string_ok(t->refresh_token)) {
        kt_error_set(err, KT_ERR_PROTOCOL, "token response: malformed refresh_token");
        goto out;
    }
    t->expires_at = now + (time_t)expires_in;
    /* Opaque tokens are possible in principle; a JWT tells whether MFA was passed. */
    if (strchr(t->access_token, '.') != NULL &&
        kt_jwt_peek(t->access_token, &jwt_exp, &t->confirmed, err) != 0)
        goto out;
    rc = 0;
out:
    free(type);
    return rc;
}

/* A refresh answer the checks refuse may still carry a rotated refresh token, and the one it
 * renews is retired by then: a well-formed one is handed back beside the error, alone in t. */
static void salvage_refresh_token(json_object *obj, kt_token_set *t)
{
    kt_error ignored = {KT_OK, ""};

    if (kt_opt_string(obj, "refresh_token", &t->refresh_token, &ignored) != 0 ||
        (t->refresh_token != NULL && !kt_token_string_ok(t->refresh_token)))
        kt_token_set_free(t);
}

/* A 2xx answer: the token, whatever the Content-Type says as long as the body is the JSON object
 * of a token response (the peer is the bank, over verified TLS). */
static int kt_oauth_parse_2xx(long status, const char *content_type, const char *body, size_t len,
                              kt_grant grant, time_t now, kt_token_set *t, kt_error *err)
{
    kt_error first;
    json_object *obj, *v = NULL;
    int rc;

    memset(&first, 0, sizeof(first));
    obj = kt_json_parse_body(content_type, body, len, "token response", &first);
    if (obj == NULL && !kt_json_media_type(content_type))
        obj = kt_json_parse_text(body, len, "token response", NULL);
    if (obj == NULL)
        return kt_error_set(err, first.kind, "%s", first.message);
    /* An OAuth error object in place of a token, under a success status: still the bank saying no.
     */
    if (!json_object_object_get_ex(obj, "access_token", NULL) &&
        json_object_object_get_ex(obj, "error", &v) && json_object_is_type(v, json_type_string)) {
        kt_json_put_wiped(obj);
        return kt_oauth_refused(status, body, len, grant, err);
    }
    rc = kt_oauth_parse_success(obj, now, t, err);
    if (rc != 0) {
        kt_token_set_free(t);
        if (grant == KT_GRANT_REFRESH)
            salvage_refresh_token(obj, t);
    }
    kt_json_put_wiped(obj);
    return rc;
}

static int kt_oauth_parse(long status, const char *content_type, const char *body, size_t len,
                          long retry_after, kt_grant grant, time_t now, kt_token_set *t,
                          kt_error *err)
{
    if (t == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "no token set");
    memset(t, 0, sizeof(*t));
    if (status >= 200 && status <= 299)
        return kt_oauth_parse_2xx(status, content_type, body, len, grant, now, t, err);
    if (status >= 400 && status <= 499 && status != 429)
        return kt_oauth_refused(status, body, len, grant, err);
    /* 429 rate limited, 5xx unavailable, anything else (1xx, 3xx) a protocol error. */
    return kt_http_answer_error(status, body, len, retry_after, "token endpoint", KT_ERR_PROTOCOL,
                                err);
}

int kt_oauth_parse_token_response(long status, const char *content_type, const char *body,
                                  size_t len, kt_grant grant, time_t now, kt_token_set *t,
                                  kt_error *err)
{
    return kt_oauth_parse(status, content_type, body, len, -1, grant, now, t, err);
}

/* Sends a form to the token endpoint and parses the answer; the form is the caller's to wipe. */
static int kt_oauth_token_request(kt_ctx *ctx, const char *form, kt_grant grant, kt_token_set *t,
                                  kt_error *err)
{
    kt_http_request req = {
        .method = "POST",
        .path = KT_TOKEN_PATH,
        .content_type = KT_FORM_TYPE,
        .body = form,
        .body_len = strlen(form),
        .auth = KT_AUTH_BASIC_CLIENT,
    };
    kt_http_response resp;
    int rc;

    if (kt_http_send(ctx->http, &req, &resp, err) != 0)
        return -1;
    rc = kt_oauth_parse(resp.status, resp.content_type, resp.body, resp.body_len, resp.retry_after,
                        grant, time(NULL), t, err);
    kt_http_response_free(&resp);
    return rc;
}

int kt_oauth_password_grant(kt_ctx *ctx, const char *username, const char *password,
                            kt_token_set *t, kt_error *err)
{
    const char *scopes;
    char *form;
    int rc;

    if (ctx == NULL || t == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(t, 0, sizeof(*t));
    /* An empty answer is never right, and sending it would only count against the account. */
    if (username == NULL || *username == '\0' || password == NULL || *password == '\0')
        return kt_error_set(err, KT_ERR_BAD_CREDENTIALS, "empty username or password");
    scopes = ctx->cfg->scopes;
    if (scopes != NULL && *scopes != '\0') {
        const char *pairs[] = {"grant_type", "password", "username", username, "password",
                               password,     "scope",    scopes,     NULL};
        form = kt_form_build(pairs);
    } else {
        const char *pairs[] = {"grant_type", "password", "username", username,
                               "password",   password,   NULL};
        form = kt_form_build(pairs);
    }
    if (form == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    rc = kt_oauth_token_request(ctx, form, KT_GRANT_PASSWORD, t, err);
    kt_secret_free(form);
    return rc;
}

int kt_oauth_refresh_grant(kt_ctx *ctx, const char *refresh_token, kt_token_set *t, kt_error *err)
{
    const char *pairs[] = {"grant_type", "refresh_token", "refresh_token", refresh_token, NULL};
    char *form;
    int rc;

    if (ctx == NULL || t == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(t, 0, sizeof(*t));
    if (refresh_token == NULL || *refresh_token == '\0')
        return kt_error_set(err, KT_ERR_LOGIN_REQUIRED, "no refresh token");
    form = kt_form_build(pairs);
    if (form == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    rc = kt_oauth_token_request(ctx, form, KT_GRANT_REFRESH, t, err);
    kt_secret_free(form);
    return rc;
}
