/* Device binding requests (GraphQL): the bank creates a device only after the person confirmed
 * a binding request on a device that is bound already (the Kontist app) or through an email. */
#ifndef KT_BINDING_H
#define KT_BINDING_H

#include <stdbool.h>
#include <stddef.h>

#include "kt_ctx.h"
#include "kt_error.h"

struct json_object;

/* After the confirmation the device must be created and verified within this. */
#define KT_BINDING_WINDOW_S 180
/* How often the request is checked while the person has not answered, unless the bank's
 * Retry-After says otherwise (KT_BINDING_POLL_MIN_S to KT_BINDING_POLL_MAX_S). */
#define KT_BINDING_POLL_S 3
#define KT_BINDING_POLL_MIN_S 1
#define KT_BINDING_POLL_MAX_S 60

typedef enum kt_binding_state {
    KT_BINDING_PENDING,
    KT_BINDING_CONFIRMED,
    KT_BINDING_REJECTED,
} kt_binding_state;

/* A DeviceBindingRequest as the bank describes it. Only id is required; the other strings are
 * NULL when the bank sent null or nothing, and are the bank's text as sent (sanitise before
 * showing them: kt_json_sanitize). */
typedef struct kt_binding_request {
    char *id; /* kt_device_id_ok */
    char *device_name;
    char *ip_address;
    char *address;
    char *created_at;
    char *confirmed_at;
    char *rejected_at;
    kt_binding_state state; /* rejectedAt set: REJECTED; else confirmedAt set: CONFIRMED */
} kt_binding_request;

void kt_binding_request_free(kt_binding_request *b);

/* Reads a DeviceBindingRequest object (exposed for tests). */
int kt_binding_request_read(struct json_object *obj, const char *what, kt_binding_request *out,
                            kt_error *err);
/* Whole answers of createDeviceBindingRequest and getDeviceBindingRequest, classified as
 * kt_graphql_answer does with KT_ERR_MFA_FAILED for a refusal (exposed for tests and fuzzing).
 * For get, a null request (the bank does not know it, or no longer) is a refusal too. */
int kt_binding_parse_create(long status, const char *body, size_t len, long retry_after,
                            kt_binding_request *out, kt_error *err);
int kt_binding_parse_get(long status, const char *body, size_t len, long retry_after,
                         kt_binding_request *out, kt_error *err);

/* createDeviceBindingRequest(deviceName: NAME); *retry_after (may be NULL) as for get. */
int kt_binding_create(kt_ctx *ctx, const char *access_token, const char *device_name,
                      kt_binding_request *out, long *retry_after, kt_error *err);
/* getDeviceBindingRequest(id: ID); *retry_after (may be NULL) gets the answer's Retry-After
 * seconds or -1, also when the call fails. */
int kt_binding_get(kt_ctx *ctx, const char *access_token, const char *id, kt_binding_request *out,
                   long *retry_after, kt_error *err);

#endif
