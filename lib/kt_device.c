#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "kt_device.h"
#include "kt_http.h"
#include "kt_secret.h"

#define KT_JSON_TYPE "application/json"
#define KT_PATH_MAX 512

/* Reads a required member that will become a URL path segment. */
static int kt_get_id(json_object *obj, const char *key, char **out, const char *what, kt_error *err)
{
    if (kt_json_get_string(obj, key, out, what, err) != 0)
        return -1;
    if (!kt_device_id_ok(*out)) {
        free(*out);
        *out = NULL;
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: \"%s\" is not a valid id", what, key);
    }
    return 0;
}

/* A 2xx JSON answer with two required strings: an id, then an id too or (key2_is_id false) any
 * text. */
static int kt_parse_two(long status, const char *content_type, const char *body, size_t len,
                        const char *what, const char *key1, const char *key2, bool key2_is_id,
                        char **v1, char **v2, kt_error *err)
{
    json_object *obj;
    int rc = -1;

    *v1 = *v2 = NULL;
    obj = kt_json_parse_response(status, content_type, body, len, what, err);
    if (obj == NULL)
        return -1;
    if (kt_get_id(obj, key1, v1, what, err) == 0 &&
        (key2_is_id ? kt_get_id(obj, key2, v2, what, err)
                    : kt_json_get_string(obj, key2, v2, what, err)) == 0)
        rc = 0;
    kt_json_put_wiped(obj);
    if (rc != 0) {
        free(*v1);
        free(*v2);
        *v1 = *v2 = NULL;
    }
    return rc;
}

int kt_device_parse_create(long status, const char *content_type, const char *body, size_t len,
                           char **device_id, char **challenge_id, kt_error *err)
{
    return kt_parse_two(status, content_type, body, len, "create device", "deviceId", "challengeId",
                        true, device_id, challenge_id, err);
}

int kt_device_parse_challenge(long status, const char *content_type, const char *body, size_t len,
                              char **challenge_id, char **string_to_sign, kt_error *err)
{
    return kt_parse_two(status, content_type, body, len, "create challenge", "id", "stringToSign",
                        false, challenge_id, string_to_sign, err);
}

static int kt_parse_confirmed_obj(json_object *obj, const char *what, time_t now, kt_token_set *t,
                                  kt_error *err)
{
    const kt_json_doc doc = {what, KT_ERR_PROTOCOL, 0, 0};
    kt_jwt_claims claims;

    if (kt_json_get_string(obj, "token", &t->access_token, what, err) != 0)
        return -1;
    if (!kt_token_string_ok(t->access_token))
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: malformed token", what);
    if (kt_json_string(&doc, obj, "refresh_token", KT_JSON_NULLABLE, 0, &t->refresh_token, err) !=
        0)
        return -1;
    if (t->refresh_token != NULL && !kt_token_string_ok(t->refresh_token))
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: malformed refresh_token", what);
    /* No expires_in here: the JWT says how long the token lives. Its exp is the bank's clock;
     * exp - iat is a lifetime, counted from now on this machine's clock, so a clock that is off
     * neither hands out expired tokens nor throws away good ones. */
    if (kt_jwt_read(t->access_token, &claims, err) != 0)
        return -1;
    if (claims.exp == 0)
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: token has no exp claim", what);
    t->confirmed = claims.confirmed;
    t->expires_at = claims.exp;
    if (claims.iat > 0 && claims.iat <= claims.exp)
        t->expires_at = now + (claims.exp - claims.iat);
    return 0;
}

int kt_device_parse_confirmed(long status, const char *content_type, const char *body, size_t len,
                              kt_token_set *t, kt_error *err)
{
    return kt_parse_confirmed_tokens("verify challenge", status, content_type, body, len, t, err);
}

int kt_parse_confirmed_tokens(const char *what, long status, const char *content_type,
                              const char *body, size_t len, kt_token_set *t, kt_error *err)
{
    json_object *obj;
    int rc;

    memset(t, 0, sizeof(*t));
    obj = kt_json_parse_response(status, content_type, body, len, what, err);
    if (obj == NULL)
        return -1;
    rc = kt_parse_confirmed_obj(obj, what, time(NULL), t, err);
    kt_json_put_wiped(obj);
    if (rc != 0)
        kt_token_set_free(t);
    return rc;
}

/* Joins path pieces after checking every id among them. */
static int kt_device_path(char *buf, size_t size, const char *device_id, const char *tail,
                          const char *challenge_id, const char *tail2, kt_error *err)
{
    int n;

    if (!kt_device_id_ok(device_id))
        return kt_error_set(err, KT_ERR_PROTOCOL, "invalid device id");
    if (challenge_id != NULL && !kt_device_id_ok(challenge_id))
        return kt_error_set(err, KT_ERR_PROTOCOL, "invalid challenge id");
    n = snprintf(buf, size, "/api/user/devices/%s%s%s%s", device_id, tail,
                 challenge_id != NULL ? challenge_id : "", tail2);
    if (n < 0 || (size_t)n >= size)
        return kt_error_set(err, KT_ERR_INTERNAL, "request path too long");
    return 0;
}

/* POSTs the JSON object of string pairs (NULL: no body) to path. The body (a key, a signature)
 * is wiped once sent. */
static int kt_device_post(kt_ctx *ctx, const char *access_token, const char *path,
                          const char *const *pairs, kt_http_response *resp, kt_error *err)
{
    char *json = NULL;
    kt_http_request req = {
        .method = "POST",
        .path = path,
        .auth = KT_AUTH_BEARER,
        .bearer = access_token,
    };
    int rc;

    if (ctx == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "no context");
    if (pairs != NULL) {
        json = kt_json_build(pairs);
        if (json == NULL)
            return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        req.content_type = KT_JSON_TYPE;
        req.body = json;
        req.body_len = strlen(json);
    }
    rc = kt_http_send(ctx->http, &req, resp, err);
    kt_secret_free(json);
    return rc;
}

static const char *kt_device_call_name(kt_device_call call)
{
    switch (call) {
    case KT_DEVICE_CREATE:
        return "create device";
    case KT_DEVICE_VERIFY:
        return "verify device";
    case KT_DEVICE_CHALLENGE:
        return "create challenge";
    case KT_DEVICE_CHALLENGE_VERIFY:
        return "verify challenge";
    }
    return "device request";
}

int kt_device_check_status(kt_device_call call, const kt_http_response *resp, const char *device_id,
                           kt_error *err)
{
    const char *what = kt_device_call_name(call);
    char words[KT_JSON_SERVER_TEXT_MAX + 1];
    long status;

    if (resp == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "%s: no response", what);
    status = resp->status;
    /* Any 2xx is the bank saying yes (verify's documented answer is 204). */
    if (status >= 200 && status <= 299)
        return 0;
    /* The bank no longer knows the device: enrolling again is the way out, not a retry. */
    if (call == KT_DEVICE_CHALLENGE && status == 404) {
        kt_json_server_words(resp->body, resp->body_len, words, sizeof(words));
        return kt_error_set(err, KT_ERR_NOT_ENROLLED,
                            "%s: the server does not know device %s (HTTP 404)%s%s", what,
                            device_id != NULL && kt_device_id_ok(device_id) ? device_id : "(none)",
                            words[0] != '\0' ? ": " : "", words);
    }
    /* Any other refusal (a wrong signature, a used or unknown challenge, a device not verified or
     * blocked, a rejected key) is a failed MFA: as an "unavailable" API or a "broken answer" it
     * would let a PAM stack fall back to another module. */
    return kt_http_status_error(resp, what, KT_ERR_MFA_FAILED, err);
}

int kt_device_create(kt_ctx *ctx, const char *access_token, const char *name,
                     const char *pubkey_hex, char **device_id, char **challenge_id, kt_error *err)
{
    const char *pairs[] = {"name", name, "key", pubkey_hex, NULL};
    kt_http_response resp;
    int rc = -1;

    *device_id = *challenge_id = NULL;
    if (name == NULL || *name == '\0' || pubkey_hex == NULL || *pubkey_hex == '\0')
        return kt_error_set(err, KT_ERR_INTERNAL, "device name and key are required");
    if (kt_device_post(ctx, access_token, "/api/user/devices", pairs, &resp, err) != 0)
        return -1;
    if (kt_device_check_status(KT_DEVICE_CREATE, &resp, NULL, err) == 0)
        rc = kt_device_parse_create(resp.status, resp.content_type, resp.body, resp.body_len,
                                    device_id, challenge_id, err);
    kt_http_response_free(&resp);
    return rc;
}

int kt_device_verify(kt_ctx *ctx, const char *access_token, const char *device_id,
                     const char *challenge_id, const char *signature_hex, kt_error *err)
{
    const char *pairs[] = {"challengeId", challenge_id, "signature", signature_hex, NULL};
    kt_http_response resp;
    char path[KT_PATH_MAX];
    int rc;

    if (kt_device_path(path, sizeof(path), device_id, "/verify", NULL, "", err) != 0)
        return -1;
    if (!kt_device_id_ok(challenge_id))
        return kt_error_set(err, KT_ERR_PROTOCOL, "invalid challenge id");
    if (signature_hex == NULL || *signature_hex == '\0')
        return kt_error_set(err, KT_ERR_INTERNAL, "no signature");
    if (kt_device_post(ctx, access_token, path, pairs, &resp, err) != 0)
        return -1;
    rc = kt_device_check_status(KT_DEVICE_VERIFY, &resp, device_id, err);
    kt_http_response_free(&resp);
    return rc;
}

int kt_device_challenge_create(kt_ctx *ctx, const char *access_token, const char *device_id,
                               char **challenge_id, char **string_to_sign, kt_error *err)
{
    kt_http_response resp;
    char path[KT_PATH_MAX];
    int rc = -1;

    *challenge_id = *string_to_sign = NULL;
    if (kt_device_path(path, sizeof(path), device_id, "/challenges", NULL, "", err) != 0)
        return -1;
    if (kt_device_post(ctx, access_token, path, NULL, &resp, err) != 0)
        return -1;
    if (kt_device_check_status(KT_DEVICE_CHALLENGE, &resp, device_id, err) == 0)
        rc = kt_device_parse_challenge(resp.status, resp.content_type, resp.body, resp.body_len,
                                       challenge_id, string_to_sign, err);
    kt_http_response_free(&resp);
    return rc;
}

int kt_device_challenge_verify(kt_ctx *ctx, const char *access_token, const char *device_id,
                               const char *challenge_id, const char *signature_hex, kt_token_set *t,
                               kt_error *err)
{
    const char *pairs[] = {"signature", signature_hex, NULL};
    kt_http_response resp;
    char path[KT_PATH_MAX];
    int rc = -1;

    memset(t, 0, sizeof(*t));
    if (kt_device_path(path, sizeof(path), device_id, "/challenges/", challenge_id, "/verify",
                       err) != 0)
        return -1;
    if (signature_hex == NULL || *signature_hex == '\0')
        return kt_error_set(err, KT_ERR_INTERNAL, "no signature");
    if (kt_device_post(ctx, access_token, path, pairs, &resp, err) != 0)
        return -1;
    if (kt_device_check_status(KT_DEVICE_CHALLENGE_VERIFY, &resp, device_id, err) == 0)
        rc = kt_device_parse_confirmed(resp.status, resp.content_type, resp.body, resp.body_len, t,
                                       err);
    kt_http_response_free(&resp);
    return rc;
}
