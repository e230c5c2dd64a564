/* The flows the front ends run. Each runs over the context's one HTTPS connection, under its
 * deadline (kt_ctx_start_deadline is called by the flow). */
#ifndef KT_FLOW_H
#define KT_FLOW_H

#include <stdint.h>

#include <openssl/evp.h>

#include "kt_binding.h"
#include "kt_ctx.h"
#include "kt_token.h"

/* Push MFA: a challenge is checked every KT_PUSH_POLL_S seconds (the official SDK's pace), or
 * as the bank's Retry-After says, at most every KT_PUSH_POLL_MAX_S; KT_PUSH_FETCH_RESERVE_MS of
 * the flow deadline are kept for fetching the token once it is approved; outages and rate limits
 * while checking are waited out KT_PUSH_MAX_FAILURES times in a row. */
#define KT_PUSH_POLL_S 3
#define KT_PUSH_POLL_MAX_S 30
#define KT_PUSH_FETCH_RESERVE_MS 2000u
#define KT_PUSH_MAX_FAILURES 5

/* Refresh grant: out holds only what the bank answered (no refresh token when it sent none);
 * what carries over from the renewed set is the session's business (kt_session_carry_over). On
 * failure out may hold the rotated refresh token of an answer the checks refused (see
 * kt_oauth_refresh_grant); free it either way. */
int kt_flow_refresh(kt_ctx *ctx, const char *refresh_token, kt_token_set *out, kt_error *err);
/* Whether conf, the bank's confirmed set after a login whose token was login_token, belongs to
 * the same subject and (when device_id is given and the token names one) was confirmed by that
 * device. KT_ERR_MFA_FAILED otherwise. */
int kt_flow_check_confirmed(const char *login_token, const kt_token_set *conf,
                            const char *device_id, kt_error *err);
/* Device MFA with a token the bank already gave: create a challenge for device_id, sign its
 * stringToSign with key, verify. out is the confirmed set (KT_ERR_PROTOCOL if the bank's is not
 * confirmed), its device_id filled. Runs under the deadline already started on ctx. */
int kt_flow_device_confirm(kt_ctx *ctx, const char *access_token, const char *device_id,
                           EVP_PKEY *key, kt_token_set *out, kt_error *err);
/* A confirmed device binding request, the bank's consent to a new device. */
typedef struct kt_binding {
    kt_binding_request request;
    /* CLOCK_MONOTONIC milliseconds (kt_now_ms) by which the device has to be created and
     * verified: KT_BINDING_WINDOW_S after the last check that still found the request pending,
     * so the bank's window cannot have started before it whatever the clocks say. */
    uint64_t window_end_ms;
} kt_binding;

void kt_binding_free(kt_binding *b);

/* Enrollment, step 1: createDeviceBindingRequest(NAME), then the person is told through the
 * conversation (info) to confirm it in the Kontist app or in the email the bank sends, and the
 * request is checked every KT_BINDING_POLL_S seconds (or as the Retry-After of the bank's last
 * answer says) until it is
 * answered, with the progress callbacks told while waiting. Returns 0 when confirmed. Rejected:
 * KT_ERR_MFA_FAILED. No answer within timeout_s seconds: KT_ERR_CONV ("not confirmed within").
 * Cancelled through the progress callbacks: KT_ERR_CONV "cancelled". An outage or a rate limit
 * while checking is waited out (Retry-After honoured) up to five times in a row, within the
 * timeout. Any other failure is the bank's answer classified as everywhere else. Nothing is
 * created locally; out is to be freed with kt_binding_free. */
int kt_flow_bind(kt_ctx *ctx, const char *access_token, const char *name, long timeout_s,
                 kt_binding *out, kt_error *err);
/* Enrollment, step 2, within the binding's window: create device with the key's public point ->
 * SMS code asked through the conversation (the prompt says how much of the window is left) ->
 * sign the code -> verify device. binding may be NULL for an API without binding requests (no
 * window then). A refusal that comes after the window has passed says so. *device_id is
 * malloc'd. */
int kt_flow_enroll(kt_ctx *ctx, const char *access_token, const char *name, EVP_PKEY *key,
                   const kt_binding *binding, char **device_id, kt_error *err);

#endif
