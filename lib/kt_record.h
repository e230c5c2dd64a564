/* The device record: which Kontist user and bound device a local account uses, and where its key
 * is. Stored as a small JSON object in a private file. */
#ifndef KT_RECORD_H
#define KT_RECORD_H

#include <stddef.h>

#include "kt_config.h"
#include "kt_error.h"

#define KT_RECORD_MAX_SIZE (16 * 1024)

int kt_record_parse(const char *text, size_t len, kt_device_record *rec, kt_error *err);
/* The record as pretty JSON with a final newline; free it with kt_secret_free (the key reference
 * may carry a PIN). */
char *kt_record_serialize(const kt_device_record *rec);
/* Atomic, mode 0600. */
int kt_record_save(const char *path, const kt_device_record *rec, kt_error *err);

#endif
