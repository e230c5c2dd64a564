/* The device record: which Kontist user and bound device a local account uses, and where its key
 * is. Stored as a small JSON object in a private file. */
#ifndef KT_RECORD_H
#define KT_RECORD_H

#include <stddef.h>

#include "kt_config.h"
#include "kt_error.h"

#define KT_RECORD_MAX_SIZE (16 * 1024)

/* JSON members: "username" (required), "device_id", "key" (key_ref), "name"; optional members are
 * non-empty strings when present; unknown members are ignored. */
typedef struct kt_device_record {
    char *username;  /* Kontist username */
    char *device_id; /* NULL when only the username is known (not enrolled) */
    char *key_ref;   /* absolute path or provider URI */
    char *name;      /* device name given at enrollment */
} kt_device_record;

int kt_record_parse(const char *text, size_t len, kt_device_record *rec, kt_error *err);
/* The record as pretty JSON with a final newline; free it with kt_secret_free (the key reference
 * may carry a PIN). */
char *kt_record_serialize(const kt_device_record *rec);
/* Missing file: returns -1, KT_ERR_NOT_ENROLLED and *errno_out = ENOENT. Unsafe file: KT_ERR_IO.
 * Malformed: KT_ERR_CONFIG naming the file. */
int kt_record_load(const char *path, const kt_owner_policy *owners, kt_device_record *rec,
                   int *errno_out, kt_error *err);
/* Atomic, mode 0600. */
int kt_record_save(const char *path, const kt_device_record *rec, kt_error *err);
void kt_record_free(kt_device_record *rec);

#endif
