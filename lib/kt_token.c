#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "kt_json.h"
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

int kt_token_set_stamp(kt_token_set *t, const char *client_id, time_t login_at, kt_error *err)
{
    char *copy = NULL;

    if (t == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "no token set");
    if (client_id != NULL && (copy = strdup(client_id)) == NULL)
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

/* Copies a string claim into buf ("" when absent); a claim that is not a short printable string
 * is malformed. */
/* Copies a string claim into buf, or leaves "" when it is absent or not a short printable
 * string: only exp decides whether a token can be used, and the bank may shape the other claims
 * as it likes (a claim that cannot be read is not compared, never a reason to refuse a login). */
static void kt_jwt_string_claim(json_object *obj, const char *name, char *buf, size_t size)
{
    json_object *v = NULL;
    const char *s;
    size_t len;

    buf[0] = '\0';
    if (!json_object_object_get_ex(obj, name, &v) || !json_object_is_type(v, json_type_string))
        return;
    s = json_object_get_string(v);
    len = (size_t)json_object_get_string_len(v);
    if (len >= size || strlen(s) != len)
        return;
    for (const char *c = s; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
            return;
    memcpy(buf, s, len + 1);
}

/* exp must be a positive integer when present (it decides when the token is used). */
static int kt_jwt_exp_claim(json_object *payload, time_t *out, kt_error *err)
{
    static const kt_json_doc doc = {"JWT", KT_ERR_PROTOCOL, 0, 0};
    int64_t e = 0;

    *out = 0;
    if (kt_json_int64(&doc, payload, "exp", 0, 1, KT_JWT_MAX_EXP, &e, err) != 0)
        return -1;
    *out = (time_t)e;
    return 0;
}

/* iat only refines the lifetime: one that is not a positive integer (a fractional NumericDate,
 * say) is left out (0). */
static time_t kt_jwt_iat_claim(json_object *payload)
{
    json_object *v = NULL;
    int64_t e;

    if (!json_object_object_get_ex(payload, "iat", &v) || !json_object_is_type(v, json_type_int))
        return 0;
    e = json_object_get_int64(v);
    return e > 0 && e <= KT_JWT_MAX_EXP ? (time_t)e : 0;
}

static int kt_jwt_read_claims(json_object *payload, kt_jwt_claims *c, kt_error *err)
{
    json_object *cnf = NULL;

    if (kt_jwt_exp_claim(payload, &c->exp, err) != 0)
        return -1;
    c->iat = kt_jwt_iat_claim(payload);
    kt_jwt_string_claim(payload, "sub", c->sub, sizeof(c->sub));
    c->confirmed = json_object_object_get_ex(payload, "cnf", &cnf) &&
                   json_object_is_type(cnf, json_type_object);
    if (c->confirmed)
        kt_jwt_string_claim(cnf, "kid", c->kid, sizeof(c->kid));
    return 0;
}

int kt_jwt_read(const char *jwt, kt_jwt_claims *claims, kt_error *err)
{
    const char *dot1, *dot2;
    unsigned char *payload = NULL;
    size_t len, plen = 0;
    json_object *obj = NULL;
    kt_jwt_claims c;
    int rc = -1;

    memset(&c, 0, sizeof(c));
    memset(claims, 0, sizeof(*claims));
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
    if (kt_jwt_read_claims(obj, &c, err) != 0)
        goto out;
    *claims = c;
    rc = 0;
out:
    kt_json_put_wiped(obj);
    kt_wipe(payload, plen);
    free(payload);
    return rc;
}

int kt_jwt_peek(const char *jwt, time_t *exp, bool *confirmed, kt_error *err)
{
    kt_jwt_claims c;

    if (kt_jwt_read(jwt, &c, err) != 0)
        return -1;
    if (exp != NULL)
        *exp = c.exp;
    if (confirmed != NULL)
        *confirmed = c.confirmed;
    return 0;
}
