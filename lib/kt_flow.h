/* The flows the front ends run. Each runs over the context's one HTTPS connection, under its
 * deadline (kt_ctx_start_deadline is called by the flow). */
#ifndef KT_FLOW_H
#define KT_FLOW_H

#include <openssl/evp.h>

#include "kt_ctx.h"
#include "kt_token.h"

typedef struct kt_login_params {
    const char *username;
    const char *password;
    const char *device_id; /* NULL: no device bound, the result is unconfirmed */
    EVP_PKEY *key;         /* the device key, with device_id */
} kt_login_params;

/* Password grant, then (device bound) create challenge -> sign -> verify -> confirmed token set.
 * out->username and out->device_id are filled. */
int kt_flow_login(kt_ctx *ctx, const kt_login_params *params, kt_token_set *out, kt_error *err);
/* Device challenge MFA for an access token already held: create challenge -> sign -> verify.
 * out gets the confirmed tokens (refresh token only if the server sent one). */
int kt_flow_confirm(kt_ctx *ctx, const char *access_token, const char *device_id, EVP_PKEY *key,
                    kt_token_set *out, kt_error *err);
/* Refresh grant; keeps the old refresh token when the response has none. */
int kt_flow_refresh(kt_ctx *ctx, const kt_token_set *current, kt_token_set *out, kt_error *err);
/* Enrollment: create device with the key's public point -> OTP asked through the conversation
 * (echo on) -> sign OTP -> verify device. *device_id is malloc'd. */
int kt_flow_enroll(kt_ctx *ctx, const char *access_token, const char *name, EVP_PKEY *key,
                   char **device_id, kt_error *err);

#endif
