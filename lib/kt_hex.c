#include <config.h>

#include <string.h>

#include "kt_hex.h"

void kt_hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

int kt_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long kt_hex_decode(const char *hex, unsigned char *out, size_t out_size)
{
    size_t len;

    if (hex == NULL)
        return -1;
    len = strlen(hex);
    if (len % 2 != 0 || len / 2 > out_size)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = kt_hex_value(hex[2 * i]);
        int lo = kt_hex_value(hex[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(len / 2);
}
