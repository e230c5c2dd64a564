/* The core's tiny helpers, each kept once: copying an optional string, trimming blanks, reading
 * the monotonic clock and recognising a URI scheme. Only libc: the PAM module compiles this file
 * in as it is, without the rest of the core. The growable buffer for secrets is kt_dynbuf.h. */
#ifndef KT_UTIL_H
#define KT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kontist.h"

/* strdup that returns NULL on NULL input (and on out of memory: callers tell them apart by the
 * input). */
char *kt_strdup_or_null(const char *s);

/* Narrows [*start, *end) to leave out leading spaces and tabs and trailing spaces, tabs, CR and
 * LF: the blanks around a header value or a configuration line. */
void kt_trim_span(const char **start, const char **end);
/* The same on a NUL-terminated string, in place: cuts the trailing blanks off with a NUL and
 * returns the first non-blank character. */
char *kt_trim(char *s);

/* True when s holds a control character (below 0x20, or DEL): text that could break a line or a
 * terminal where it is shown. */
bool kt_has_control(const char *s);

#endif
