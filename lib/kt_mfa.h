/* Push-notification MFA endpoints of the Kontist API: the person approves or denies a challenge in
 * the Kontist app. All take the password grant's Bearer access token. */
#ifndef KT_MFA_H
#define KT_MFA_H

#include <stddef.h>
#include <time.h>

#include "kt_ctx.h"
#include "kt_http.h"
#include "kt_token.h"

typedef enum kt_push_state {
    KT_PUSH_PENDING,
    KT_PUSH_VERIFIED,
    KT_PUSH_DENIED,
} kt_push_state;

typedef struct kt_push_challenge {
    char *id; /* passed kt_device_id_ok: it goes into later URLs */
    kt_push_state state;
    time_t expires_at;  /* expiresAt, on the bank's clock */
    time_t server_date; /* the answer's Date header (the bank's clock), 0 when it sent none */
} kt_push_challenge;

void kt_push_challenge_free(kt_push_challenge *c);

/* An ISO 8601 date and time as the bank writes expiresAt: YYYY-MM-DDTHH:MM:SS, optional
 * fraction, then Z or +HH:MM / -HH:MM. Returns 0 with *out (UNIX time), -1 for anything else. */
int kt_iso8601_parse(const char *text, time_t *out);

/* Parses a challenge answer {"id","status","expiresAt"} (exposed for tests and the fuzz
 * harness): strict JSON, status one of PENDING, VERIFIED, DENIED; anything else, an id that
 * cannot go into a URL or an expiresAt that does not parse is KT_ERR_PROTOCOL. */
int kt_mfa_parse_challenge(long status, const char *content_type, const char *body, size_t len,
                           kt_push_challenge *out, kt_error *err);

/* The calls, for kt_mfa_check_status. */
typedef enum kt_mfa_call {
    KT_MFA_CREATE, /* POST /api/user/mfa/challenges */
    KT_MFA_GET,    /* GET /api/user/mfa/challenges/{id} */
    KT_MFA_TOKEN,  /* POST /api/user/mfa/challenges/{id}/token */
} kt_mfa_call;

/* What an answer's status means (the table in kt_error.h, REST column): any 2xx is 0; 401 ->
 * KT_ERR_LOGIN_REQUIRED; any other 4xx -> KT_ERR_MFA_FAILED (the bank refused: a denied, used,
 * expired or unknown challenge); 429 -> KT_ERR_RATE_LIMITED; 5xx -> KT_ERR_UNAVAILABLE; anything
 * else -> KT_ERR_PROTOCOL. */
int kt_mfa_check_status(kt_mfa_call call, const kt_http_response *resp, kt_error *err);

/* POST /api/user/mfa/challenges -> the new challenge. *retry_after: the answer's Retry-After
 * seconds, or -1. */
int kt_mfa_push_create(kt_ctx *ctx, const char *access_token, kt_push_challenge *out,
                       long *retry_after, kt_error *err);
/* GET /api/user/mfa/challenges/{id} -> its current state. */
int kt_mfa_push_get(kt_ctx *ctx, const char *access_token, const char *id, kt_push_challenge *out,
                    long *retry_after, kt_error *err);
/* POST /api/user/mfa/challenges/{id}/token -> the confirmed token set (one per challenge). */
int kt_mfa_push_token(kt_ctx *ctx, const char *access_token, const char *id, kt_token_set *t,
                      kt_error *err);

#endif
