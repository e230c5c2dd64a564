/* Text from outside this program (the bank, a file, a path) written so that it cannot act on a
 * terminal, and as valid JSON. */
#include <config.h>

#include <stdio.h>

#include "output.h"

/* The length of the valid UTF-8 sequence at p (1 to 4), or 0 when the bytes there are not one
 * (a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, cut short). */
static size_t utf8_length(const unsigned char *p)
{
    size_t n;
    unsigned long cp;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* JSON string: control characters escaped, and bytes that are not UTF-8 (paths and names are
 * bytes) as U+FFFD, so that the output is always valid JSON. */
void ka_put_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0';) {
        size_t n = utf8_length(p);

        if (n == 0) {
            fputs("\\ufffd", out);
            p++;
            continue;
        }
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f || (n == 2 && p[0] == 0xc2 && p[1] < 0xa0))
            fprintf(out, "\\u%04x", n == 2 ? p[1] : *p);
        else
            fwrite(p, 1, n, out);
        p += n;
    }
    fputc('"', out);
}

/* Plain text for a terminal: a path or name holding ESC or a newline must not move the cursor,
 * recolour the screen or fake a line of its own. Control characters (C0, DEL, C1) and bytes that
 * are not UTF-8 are written as \xNN, a backslash as \\. */
void ka_put_plain(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0';) {
        size_t n = utf8_length(p);

        if (n == 0 || *p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\x%02x", *p);
            p++;
        } else if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
            fprintf(out, "\\xc2\\x%02x", p[1]);
            p += 2;
        } else if (*p == '\\') {
            fputs("\\\\", out);
            p++;
        } else {
            fwrite(p, 1, n, out);
            p += n;
        }
    }
}
