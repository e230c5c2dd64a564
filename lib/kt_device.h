/* Device binding endpoints of the Kontist API. All take a Bearer access token. */
#ifndef KT_DEVICE_H
#define KT_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "kt_ctx.h"
#include "kt_http.h"
#include "kt_json.h"
#include "kt_token.h"
#include "kt_validate.h"

/* Response parsers, exposed for tests: strict JSON, required fields must be non-empty strings. */
int kt_device_parse_create(long status, const char *content_type, const char *body, size_t len,
                           char **device_id, char **challenge_id, kt_error *err);
int kt_device_parse_challenge(long status, const char *content_type, const char *body, size_t len,
                              char **challenge_id, char **string_to_sign, kt_error *err);
/* Confirmed token response {"token","refresh_token"?}; expires_at from the JWT exp claim. */
int kt_device_parse_confirmed(long status, const char *content_type, const char *body, size_t len,
                              kt_token_set *t, kt_error *err);
/* The same for any endpoint that answers with confirmed tokens (push MFA's token call); `what`
 * names the call in messages. */
int kt_parse_confirmed_tokens(const char *what, long status, const char *content_type,
                              const char *body, size_t len, kt_token_set *t, kt_error *err);

/* The device calls, for kt_device_check_status. */
typedef enum kt_device_call {
    KT_DEVICE_CREATE,           /* POST /api/user/devices */
    KT_DEVICE_VERIFY,           /* POST /api/user/devices/{id}/verify */
    KT_DEVICE_CHALLENGE,        /* POST /api/user/devices/{id}/challenges */
    KT_DEVICE_CHALLENGE_VERIFY, /* POST /api/user/devices/{id}/challenges/{cid}/verify */
} kt_device_call;

/* What a device call's answer means before its body is read (exposed for tests): 0 for a success
 * status the contract allows (any 2xx; for KT_DEVICE_VERIFY, which has no body, 200 and 204
 * only), else -1 with err set by meaning: 401 -> KT_ERR_LOGIN_REQUIRED; 404 on
 * KT_DEVICE_CHALLENGE -> KT_ERR_NOT_ENROLLED (the bank does not know device_id, which may be
 * NULL); any other 4xx -> KT_ERR_MFA_FAILED (the bank refused); 429 -> KT_ERR_RATE_LIMITED; 5xx ->
 * KT_ERR_UNAVAILABLE; anything else -> KT_ERR_PROTOCOL. A 2xx with a malformed body is the
 * parser's KT_ERR_PROTOCOL. */
int kt_device_check_status(kt_device_call call, const kt_http_response *resp, const char *device_id,
                           kt_error *err);

/* POST /api/user/devices {"name","key"} */
int kt_device_create(kt_ctx *ctx, const char *access_token, const char *name,
                     const char *pubkey_hex, char **device_id, char **challenge_id, kt_error *err);
/* POST /api/user/devices/{id}/verify {"challengeId","signature"} -> 204. Refusal -> MFA_FAILED. */
int kt_device_verify(kt_ctx *ctx, const char *access_token, const char *device_id,
                     const char *challenge_id, const char *signature_hex, kt_error *err);
/* POST /api/user/devices/{id}/challenges -> {"id","stringToSign"}. 404 -> NOT_ENROLLED; any other
 * refusal -> MFA_FAILED. */
int kt_device_challenge_create(kt_ctx *ctx, const char *access_token, const char *device_id,
                               char **challenge_id, char **string_to_sign, kt_error *err);
/* POST /api/user/devices/{id}/challenges/{cid}/verify {"signature"} -> confirmed tokens.
 * Refusal (any 4xx but 401 and 429) -> MFA_FAILED. */
int kt_device_challenge_verify(kt_ctx *ctx, const char *access_token, const char *device_id,
                               const char *challenge_id, const char *signature_hex, kt_token_set *t,
                               kt_error *err);

#endif
