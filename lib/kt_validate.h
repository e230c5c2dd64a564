/* The one place that decides what a device id and a key reference may look like, for every file
 * that reads or writes one (API answers, the device record, the PAM authfile, the helper's
 * options). */
#ifndef KT_VALIDATE_H
#define KT_VALIDATE_H

#include <stdbool.h>

#include "kontist.h"

typedef enum kt_key_ref_kind {
    KT_KEY_REF_INVALID, /* NULL, empty, or a scheme with nothing after it ("pkcs11:") */
    KT_KEY_REF_PATH,    /* an absolute file name */
    KT_KEY_REF_URI,     /* a scheme and more: "pkcs11:token=...", "handle:0x81000001", "file:..." */
    KT_KEY_REF_RELATIVE, /* anything else: a file name relative to the working directory */
} kt_key_ref_kind;

/* A key blob the TPM made, in a file: "tpm2:/path" (kt_tpm.c loads it). */
#define KT_TPM_REF_PREFIX "tpm2:"

kt_key_ref_kind kt_key_ref_classify(const char *ref);

#endif
