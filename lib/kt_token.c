#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "kt_device.h"
#include "kt_secret.h"
#include "kt_token.h"

/* exp beyond the year 9999 is not a real expiry. */
#define KT_JWT_MAX_EXP 253402300799LL

void kt_token_set_free(kt_token_set *t)
{
    if (t == NULL)
        return;
    kt_secret_free(t->access_token);
    kt_secret_free(t->refresh_token);
    free(t->scope);
    free(t->username);
    free(t->device_id);
    free(t->client_id);
    memset(t, 0, sizeof(*t));
}

static int kt_dup_field(char **dst, const char *src)
{
    if (src == NULL) {
        *dst = NULL;
        return 0;
    }
    *dst = strdup(src);
    return *dst == NULL ? -1 : 0;
}

int kt_token_set_copy(kt_token_set *dst, const kt_token_set *src, kt_error *err)
{
    kt_token_set t;

    if (dst == NULL || src == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "no token set");
    memset(&t, 0, sizeof(t));
    t.expires_at = src->expires_at;
    t.confirmed = src->confirmed;
    t.login_at = src->login_at;
    if (kt_dup_field(&t.access_token, src->access_token) != 0 ||
        kt_dup_field(&t.refresh_token, src->refresh_token) != 0 ||
        kt_dup_field(&t.scope, src->scope) != 0 || kt_dup_field(&t.username, src->username) != 0 ||
        kt_dup_field(&t.device_id, src->device_id) != 0 ||
        kt_dup_field(&t.client_id, src->client_id) != 0) {
        kt_token_set_free(&t);
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    *dst = t;
    return 0;
}

int kt_token_set_stamp(kt_token_set *t, const char *client_id, time_t login_at, kt_error *err)
{
    char *copy = NULL;

    if (t == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "no token set");
    if (client_id != NULL && kt_dup_field(&copy, client_id) != 0)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    free(t->client_id);
    t->client_id = copy;
    t->login_at = login_at;
    return 0;
}

bool kt_token_set_usable(const kt_token_set *t, time_t now, long min_left)
{
    if (t == NULL || t->access_token == NULL || t->access_token[0] == '\0')
        return false;
    if (min_left < 0)
        min_left = 0;
    return t->expires_at > now && (long long)t->expires_at - (long long)now >= min_left;
}

bool kt_token_string_ok(const char *s)
{
    size_t n = 0;

    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || n >= KT_TOKEN_MAX)
            return false;
    }
    return true;
}

static bool kt_b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* base64url without padding (RFC 7515) into a NUL-terminated malloc'd buffer; *out_len gets the
 * decoded length. */
static unsigned char *kt_b64url_decode(const char *in, size_t len, size_t *out_len)
{
    size_t padded = (len + 3) / 4 * 4, i;
    unsigned char *std = NULL, *out = NULL;
    int n;

    if (len == 0 || len % 4 == 1)
        return NULL;
    std = malloc(padded + 1);
    out = malloc(padded / 4 * 3 + 1);
    if (std == NULL || out == NULL)
        goto fail;
    for (i = 0; i < len; i++) {
        if (!kt_b64url_char(in[i]))
            goto fail;
        std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : (unsigned char)in[i];
    }
    for (; i < padded; i++)
        std[i] = '=';
    std[padded] = '\0';
    n = EVP_DecodeBlock(out, std, (int)padded);
    if (n < 0)
        goto fail;
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    *out_len = (size_t)n - (padded - len);
    out[*out_len] = '\0';
    kt_wipe(std, padded);
    free(std);
    return out;

fail:
    if (std != NULL)
        kt_wipe(std, padded);
    free(std);
    free(out);
    return NULL;
}

static int kt_jwt_claims(json_object *payload, time_t *exp, bool *confirmed, kt_error *err)
{
    static const kt_json_doc doc = {"JWT", KT_ERR_PROTOCOL, 0, 0};
    json_object *v = NULL;
    int64_t e = 0;

    *exp = 0;
    if (kt_json_int64(&doc, payload, "exp", 0, 1, KT_JWT_MAX_EXP, &e, err) != 0)
        return -1;
    *exp = (time_t)e;
    *confirmed =
        json_object_object_get_ex(payload, "cnf", &v) && json_object_is_type(v, json_type_object);
    return 0;
}

int kt_jwt_peek(const char *jwt, time_t *exp, bool *confirmed, kt_error *err)
{
    const char *dot1, *dot2;
    unsigned char *payload = NULL;
    size_t len, plen = 0;
    json_object *obj = NULL;
    time_t e = 0;
    bool c = false;
    int rc = -1;

    if (jwt == NULL)
        return kt_error_set(err, KT_ERR_PROTOCOL, "JWT: missing");
    len = strnlen(jwt, KT_TOKEN_MAX + 1);
    if (len > KT_TOKEN_MAX)
        return kt_error_set(err, KT_ERR_PROTOCOL, "JWT: too long");
    dot1 = strchr(jwt, '.');
    dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL || dot1 == jwt)
        return kt_error_set(err, KT_ERR_PROTOCOL, "JWT: not three dot-separated parts");
    payload = kt_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &plen);
    if (payload == NULL)
        return kt_error_set(err, KT_ERR_PROTOCOL, "JWT: payload is not base64url");
    obj = kt_json_parse_body("application/json", (const char *)payload, plen, "JWT payload", err);
    if (obj == NULL)
        goto out;
    if (kt_jwt_claims(obj, &e, &c, err) != 0)
        goto out;
    if (exp != NULL)
        *exp = e;
    if (confirmed != NULL)
        *confirmed = c;
    rc = 0;
out:
    kt_json_put_wiped(obj);
    kt_wipe(payload, plen);
    free(payload);
    return rc;
}
