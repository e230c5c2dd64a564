/* Which device key a login uses: decided here, once, for kontist-auth and the PAM module. */
#ifndef KT_SELECT_H
#define KT_SELECT_H

#include <stdbool.h>

#include <openssl/evp.h>

#include "kt_config.h"
#include "kt_error.h"
#include "kt_record.h"

typedef enum kt_device_choice {
    KT_DEVICE_USE,        /* the record's device and key (loaded when asked for) */
    KT_DEVICE_NONE,       /* no record, or the user's record without a bound device */
    KT_DEVICE_OTHER_USER, /* the record names another Kontist user: nothing in it may be used */
} kt_device_choice;

typedef struct kt_device_selection {
    kt_device_choice choice;
    kt_device_record rec; /* the record as read (empty without one) */
    EVP_PKEY *key;        /* with KT_DEVICE_USE and load_key */
} kt_device_selection;

/* Reads the device record at record_path (files owned by `owners`) and decides for a login of
 * `username`: the record's device when it names that user (Kontist usernames are e-mail
 * addresses: compared without case; NULL: whoever the record names), with its key (the record's
 * reference, else default_key) loaded when load_key. A record that cannot be read safely or parsed,
 * a malformed device id (KT_ERR_KEY_UNUSABLE, before any password goes anywhere) or a key that does
 * not load is an error; a missing record is KT_DEVICE_NONE. */
int kt_device_select(const char *record_path, const char *default_key,
                     const kt_owner_policy *owners, const char *username, bool load_key,
                     kt_device_selection *sel, kt_error *err);
void kt_device_selection_free(kt_device_selection *sel);

#endif
