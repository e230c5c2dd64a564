/* Enrollment: binding this machine to the logged-in Kontist user as a device, the way the bank
 * asks for it, with everything it writes locally and the undoing of it when a step fails. */
#ifndef KT_ENROLL_H
#define KT_ENROLL_H

#include <stdbool.h>

#include "kt_config.h"
#include "kt_ctx.h"
#include "kt_paths.h"
#include "kt_record.h"

#define KT_ENROLL_NAME_MAX 100

/* How far an enrollment got: a front end words its advice after a failure by the step. */
typedef enum kt_enroll_step {
    KT_ENROLL_PREPARING, /* nothing was asked of the bank */
    KT_ENROLL_BINDING,   /* the device binding request: created, awaited */
    KT_ENROLL_DEVICE,    /* the device: key, creation, SMS code, verification */
    KT_ENROLL_SAVING,    /* verified at the bank; key and record being written here */
    KT_ENROLL_DONE,
} kt_enroll_step;

typedef struct kt_enroll_request {
    const kt_paths *paths;         /* the user's files */
    const kt_owner_policy *owners; /* who may own them (a given key, the current record) */
    const char *name;              /* device name; NULL: "kontist-auth on HOST" */
    const char *key_ref;           /* an existing key (absolute path or URI); NULL: generate one */
    const char *username;          /* when the cached login names no user (configuration) */
    bool force;                    /* enroll although a device is enrolled (replaces the record) */
    long confirm_timeout_s;        /* how long the binding request is awaited */
} kt_enroll_request;

typedef struct kt_enroll_outcome {
    kt_enroll_step step;  /* KT_ENROLL_DONE, or the step that failed */
    kt_device_record rec; /* what is known of the new device (all of it when done) */
} kt_enroll_outcome;

/* Enrolls with the cached login's token (kt_session_get_valid; never prompts for a password):
 * binding request (kt_flow_bind), then a new key in memory (or the given one, loaded and checked
 * before the bank is asked anything), the device and its SMS code (kt_flow_enroll); only then is a
 * generated key written (0600, never over the key the current record uses) and the record
 * replaced. A failure, a rejection, a timeout or a cancel through the progress callbacks writes
 * nothing; a record that cannot be saved takes the key written for it away again. An enrolled
 * machine without force is KT_ERR_ALREADY_ENROLLED; a name that is empty, longer than
 * KT_ENROLL_NAME_MAX or holds control characters is KT_ERR_CONFIG. */
int kt_enroll(kt_ctx *ctx, const kt_enroll_request *req, kt_enroll_outcome *out, kt_error *err);
void kt_enroll_outcome_free(kt_enroll_outcome *out);
/* The rule for device names, for a front end to check its arguments before anything else. */
int kt_enroll_check_name(const char *name, kt_error *err);

#endif
