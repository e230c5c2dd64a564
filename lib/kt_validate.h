/* The one place that decides what a device id and a key reference may look like, for every file
 * that reads or writes one (API answers, the device record, the PAM authfile, the helper's
 * options). */
#ifndef KT_VALIDATE_H
#define KT_VALIDATE_H

#include <stdbool.h>

/* True for a device or challenge id that may be put into a URL path: 1 to KT_DEVICE_ID_MAX
 * characters of [A-Za-z0-9_-]. Ids come from the server and are kept in files a user can edit:
 * neither may inject path characters into later requests. */
#define KT_DEVICE_ID_MAX 128
bool kt_device_id_ok(const char *id);

typedef enum kt_key_ref_kind {
    KT_KEY_REF_INVALID, /* NULL, empty, or a scheme with nothing after it ("pkcs11:") */
    KT_KEY_REF_PATH,    /* an absolute file name */
    KT_KEY_REF_URI,     /* a scheme and more: "pkcs11:token=...", "handle:0x81000001", "file:..." */
    KT_KEY_REF_RELATIVE, /* anything else: a file name relative to the working directory */
} kt_key_ref_kind;

kt_key_ref_kind kt_key_ref_classify(const char *ref);
/* True for a key reference that may be stored: an absolute path or a URI, never a relative path
 * whose meaning depends on the working directory of whoever reads it. */
bool kt_key_ref_ok(const char *ref);

#endif
