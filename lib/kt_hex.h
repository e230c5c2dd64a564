/* Lowercase hex encoding used by the API for public keys and signatures. */
#ifndef KT_HEX_H
#define KT_HEX_H

#include <stddef.h>

/* Writes 2*len hex characters and a NUL into out (size >= 2*len+1). */
void kt_hex_encode(const unsigned char *in, size_t len, char *out);
/* Decodes hex (either case, even length, no separators) into out (size >= strlen(hex)/2).
 * Returns the number of bytes, or -1 for bad input or a too-small buffer. */
long kt_hex_decode(const char *hex, unsigned char *out, size_t out_size);

#endif
