#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "kt_device.h"
#include "kt_flow.h"
#include "kt_keys.h"
#include "kt_oauth.h"
#include "kt_secret.h"

/* SMS one-time passwords are short digit strings; anything else is a typo or a paste accident. */
#define KT_OTP_MIN 4
#define KT_OTP_MAX 12

static int kt_dup(char **dst, const char *src, kt_error *err)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst == NULL ? kt_error_set(err, KT_ERR_INTERNAL, "out of memory") : 0;
}

/* create challenge -> sign stringToSign -> verify, without touching the deadline. */
static int kt_confirm_steps(kt_ctx *ctx, const char *access_token, const char *device_id,
                            EVP_PKEY *key, kt_token_set *out, kt_error *err)
{
    char *challenge_id = NULL, *to_sign = NULL, *sig = NULL;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (key == NULL)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "no device key");
    if (kt_device_challenge_create(ctx, access_token, device_id, &challenge_id, &to_sign, err) != 0)
        goto out;
    /* The exact bytes the server sent: no trimming, no re-encoding. */
    if (kt_key_sign_hex(key, to_sign, strlen(to_sign), &sig, err) != 0)
        goto out;
    if (kt_device_challenge_verify(ctx, access_token, device_id, challenge_id, sig, out, err) != 0)
        goto out;
    if (!out->confirmed) {
        kt_token_set_free(out);
        kt_error_set(err, KT_ERR_PROTOCOL, "verify challenge: the token is not confirmed");
        goto out;
    }
    if (kt_dup(&out->device_id, device_id, err) != 0) {
        kt_token_set_free(out);
        goto out;
    }
    rc = 0;
out:
    free(challenge_id);
    free(to_sign);
    free(sig);
    return rc;
}

int kt_flow_confirm(kt_ctx *ctx, const char *access_token, const char *device_id, EVP_PKEY *key,
                    kt_token_set *out, kt_error *err)
{
    if (ctx == NULL || out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    kt_ctx_start_deadline(ctx);
    return kt_confirm_steps(ctx, access_token, device_id, key, out, err);
}

int kt_flow_login(kt_ctx *ctx, const kt_login_params *params, kt_token_set *out, kt_error *err)
{
    kt_token_set pw, conf;
    int rc = -1;

    if (ctx == NULL || params == NULL || out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    memset(&pw, 0, sizeof(pw));
    memset(&conf, 0, sizeof(conf));
    kt_ctx_start_deadline(ctx);
    if (kt_oauth_password_grant(ctx, params->username, params->password, &pw, err) != 0)
        goto out;
    if (params->device_id == NULL) {
        *out = pw;
        memset(&pw, 0, sizeof(pw));
    } else {
        if (kt_confirm_steps(ctx, pw.access_token, params->device_id, params->key, &conf, err) != 0)
            goto out;
        /* The confirmed set replaces the unconfirmed one entirely: an unconfirmed refresh token
         * would quietly renew unconfirmed access tokens. The scope is what was granted. */
        if (conf.scope == NULL && kt_dup(&conf.scope, pw.scope, err) != 0)
            goto out;
        *out = conf;
        memset(&conf, 0, sizeof(conf));
    }
    if (kt_dup(&out->username, params->username, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        kt_token_set_free(out);
    kt_token_set_free(&pw);
    kt_token_set_free(&conf);
    return rc;
}

int kt_flow_refresh(kt_ctx *ctx, const kt_token_set *current, kt_token_set *out, kt_error *err)
{
    int rc = -1;

    if (ctx == NULL || current == NULL || out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    if (current->refresh_token == NULL || *current->refresh_token == '\0')
        return kt_error_set(err, KT_ERR_LOGIN_REQUIRED, "no refresh token: log in again");
    kt_ctx_start_deadline(ctx);
    if (kt_oauth_refresh_grant(ctx, current->refresh_token, out, err) != 0)
        return -1;
    if (kt_dup(&out->username, current->username, err) != 0 ||
        kt_dup(&out->device_id, current->device_id, err) != 0)
        goto out;
    if (out->scope == NULL && kt_dup(&out->scope, current->scope, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        kt_token_set_free(out);
    return rc;
}

/* Trims surrounding blanks and checks the OTP is digits only, of a plausible length. */
static int kt_otp_check(char *otp, kt_error *err)
{
    size_t len, start = 0, i;

    len = strlen(otp);
    while (start < len && (otp[start] == ' ' || otp[start] == '\t'))
        start++;
    while (len > start && (otp[len - 1] == ' ' || otp[len - 1] == '\t' || otp[len - 1] == '\n' ||
                           otp[len - 1] == '\r'))
        len--;
    memmove(otp, otp + start, len - start);
    kt_wipe(otp + (len - start), strlen(otp + (len - start)));
    otp[len - start] = '\0';
    len -= start;
    if (len < KT_OTP_MIN || len > KT_OTP_MAX)
        return kt_error_set(err, KT_ERR_MFA_FAILED, "the SMS code must have %d to %d digits",
                            KT_OTP_MIN, KT_OTP_MAX);
    for (i = 0; i < len; i++)
        if (otp[i] < '0' || otp[i] > '9')
            return kt_error_set(err, KT_ERR_MFA_FAILED, "the SMS code must be digits only");
    return 0;
}

int kt_flow_enroll(kt_ctx *ctx, const char *access_token, const char *name, EVP_PKEY *key,
                   char **device_id, kt_error *err)
{
    char pub[KT_PUBKEY_HEX_LEN + 1];
    char *dev = NULL, *challenge_id = NULL, *otp = NULL, *sig = NULL;
    int rc = -1;

    if (ctx == NULL || device_id == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    *device_id = NULL;
    if (key == NULL)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "no device key");
    kt_ctx_start_deadline(ctx);
    if (kt_key_public_hex(key, pub, err) != 0)
        goto out;
    if (kt_device_create(ctx, access_token, name, pub, &dev, &challenge_id, err) != 0)
        goto out;
    if (kt_ctx_prompt(ctx, "SMS code: ", 1, &otp, err) != 0)
        goto out;
    if (kt_otp_check(otp, err) != 0)
        goto out;
    /* The person took their time reading the SMS; the remaining requests get a fresh deadline. */
    kt_ctx_start_deadline(ctx);
    if (kt_key_sign_hex(key, otp, strlen(otp), &sig, err) != 0)
        goto out;
    if (kt_device_verify(ctx, access_token, dev, challenge_id, sig, err) != 0)
        goto out;
    *device_id = dev;
    dev = NULL;
    rc = 0;
out:
    kt_secret_free(otp);
    free(dev);
    free(challenge_id);
    free(sig);
    return rc;
}
