/* Device binding endpoints of the Kontist API. All take a Bearer access token. */
#ifndef KT_DEVICE_H
#define KT_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "kt_ctx.h"
#include "kt_token.h"

/* Response parsers, exposed for tests: strict JSON, required fields must be non-empty strings. */
int kt_device_parse_create(long status, const char *content_type, const char *body, size_t len,
                           char **device_id, char **challenge_id, kt_error *err);
int kt_device_parse_challenge(long status, const char *content_type, const char *body, size_t len,
                              char **challenge_id, char **string_to_sign, kt_error *err);
/* Confirmed token response {"token","refresh_token"?}; expires_at from the JWT exp claim. */
int kt_device_parse_confirmed(long status, const char *content_type, const char *body, size_t len,
                              kt_token_set *t, kt_error *err);

/* POST /api/user/devices {"name","key"} */
int kt_device_create(kt_ctx *ctx, const char *access_token, const char *name,
                     const char *pubkey_hex, char **device_id, char **challenge_id, kt_error *err);
/* POST /api/user/devices/{id}/verify {"challengeId","signature"} -> 204. Rejection -> MFA_FAILED.
 */
int kt_device_verify(kt_ctx *ctx, const char *access_token, const char *device_id,
                     const char *challenge_id, const char *signature_hex, kt_error *err);
/* POST /api/user/devices/{id}/challenges -> {"id","stringToSign"}. 404 -> NOT_ENROLLED; refusal
 * (400/403) -> MFA_FAILED. */
int kt_device_challenge_create(kt_ctx *ctx, const char *access_token, const char *device_id,
                               char **challenge_id, char **string_to_sign, kt_error *err);
/* POST /api/user/devices/{id}/challenges/{cid}/verify {"signature"} -> confirmed tokens.
 * Rejection (400/403/404) -> MFA_FAILED. */
int kt_device_challenge_verify(kt_ctx *ctx, const char *access_token, const char *device_id,
                               const char *challenge_id, const char *signature_hex, kt_token_set *t,
                               kt_error *err);

/* True for a server-issued id that may be put into a URL path: 1 to KT_DEVICE_ID_MAX characters
 * of [A-Za-z0-9_-]. A hostile server must not inject path characters into later requests. */
#define KT_DEVICE_ID_MAX 128
bool kt_device_id_ok(const char *id);

/* JSON helpers shared by the API parsers: checks status 2xx and media type application/json,
 * parses strictly (whole body, depth-limited). Returns a json_object to be put by the caller. */
struct json_object;
struct json_object *kt_json_parse_response(long status, const char *content_type, const char *body,
                                           size_t len, const char *what, kt_error *err);
/* The same without the status check (for error bodies). */
struct json_object *kt_json_parse_body(const char *content_type, const char *body, size_t len,
                                       const char *what, kt_error *err);
/* Copies a required non-empty string member. */
int kt_json_get_string(struct json_object *obj, const char *key, char **out, const char *what,
                       kt_error *err);
/* Wipes every string in obj (tokens) and puts it; NULL is fine. */
void kt_json_put_wiped(struct json_object *obj);
/* Serialises {"k1":"v1",...} from a NULL-terminated list of key, value pairs. */
char *kt_json_build(const char *const *pairs);

#endif
