/* Writing text that is not this program's own: names, paths and messages that came from the bank,
 * a file or a user, which may hold escape sequences, newlines or bytes that are not UTF-8. */
#ifndef KA_OUTPUT_H
#define KA_OUTPUT_H

#include <stdio.h>

/* As plain text for a terminal: control characters (C0, DEL, C1) and bytes that are not UTF-8
 * as \xNN, a backslash as \\; other UTF-8 as it is. */
void ka_put_plain(FILE *out, const char *s);
/* As a JSON string literal (quotes included), always valid JSON: bytes that are not UTF-8
 * become U+FFFD. */
void ka_put_json_string(FILE *out, const char *s);

#endif
