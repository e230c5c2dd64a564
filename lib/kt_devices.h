/* Device administration over GraphQL: listBoundDevices and deleteBoundDevice, and what removing
 * this machine's device does to its local state (kontist.h has the front ends' side). */
#ifndef KT_DEVICES_H
#define KT_DEVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "kontist.h"
#include "kt_ctx.h"
#include "kt_error.h"

/* Longest device name kept from the bank's list. */
#define KT_DEVICES_NAME_MAX 1024

/* Whole answers of listBoundDevices and deleteBoundDevice, classified as kt_graphql_answer does
 * with KT_ERR_MFA_FAILED for a refusal (exposed for tests and fuzzing). A list element without a
 * valid id (kt_device_id_ok) or a string name, more than KT_DEVICES_MAX of them, or a delete that
 * answers anything but a boolean is KT_ERR_PROTOCOL; a delete answering false is a refusal. The
 * list's username and this_machine marks are left for the caller. */
int kt_devices_parse_list(long status, const char *body, size_t len, long retry_after,
                          kt_device_list *out, kt_error *err);
int kt_devices_parse_delete(long status, const char *body, size_t len, long retry_after,
                            const char *device_id, kt_error *err);

/* The requests themselves, with a Bearer token; the id travels as a GraphQL variable. */
int kt_devices_fetch(kt_ctx *ctx, const char *access_token, kt_device_list *out, kt_error *err);
int kt_devices_delete(kt_ctx *ctx, const char *access_token, const char *device_id, kt_error *err);

/* Whether a key reference names a file that kontist-auth made itself and that may go with its
 * device: a key (device-key*.pem) or a TPM key blob (tpm2: with device-key*.tss2) directly in the
 * user's configuration directory. Anything else the person chose stays. */
bool kt_devices_key_is_ours(const kt_paths *paths, const char *key_ref);

#endif
