/* Helpers for memory that holds passwords, OTPs, tokens and keys: wiped before it is freed. */
#ifndef KT_SECRET_H
#define KT_SECRET_H

#include <stddef.h>

/* Wipes and frees a NUL-terminated string; NULL is fine. */
void kt_secret_free(char *s);
/* Wipes and frees a string, then sets the pointer to NULL. */
void kt_secret_clear(char **s);
/* Wipes len bytes (OPENSSL_cleanse: not optimised away). */
void kt_wipe(void *p, size_t len);

#endif
