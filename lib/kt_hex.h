/* Lowercase hex encoding used by the API for public keys and signatures. */
#ifndef KT_HEX_H
#define KT_HEX_H

#include <stddef.h>

#include "kontist.h"

/* Writes 2*len hex characters and a NUL into out (size >= 2*len+1). */
void kt_hex_encode(const unsigned char *in, size_t len, char *out);
/* The value of one hex digit (either case), or -1. */
int kt_hex_value(char c);

#endif
