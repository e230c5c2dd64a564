/* Helpers for memory that holds passwords, OTPs, tokens and keys: wiped before it is freed. */
#ifndef KT_SECRET_H
#define KT_SECRET_H

#include <stddef.h>

#include "kontist.h"

/* strdup that returns NULL on NULL input. */
char *kt_strdup_or_null(const char *s);

#endif
