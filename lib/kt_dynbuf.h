/* A growable byte buffer with a size cap, for text that may hold secrets (a response body with
 * tokens, a serialised token cache). Growing never uses realloc: the old block is copied, wiped
 * and freed, so no unwiped copy is left on the heap; kt_dynbuf_free wipes the whole allocation.
 * The content is always NUL-terminated. Zero-initialised ({0}) it is an empty buffer with no cap
 * beyond SIZE_MAX; kt_dynbuf_init sets the cap. */
#ifndef KT_DYNBUF_H
#define KT_DYNBUF_H

#include <stddef.h>

typedef struct kt_dynbuf {
    char *buf;  /* NULL until the first byte (or kt_dynbuf_take) */
    size_t len; /* bytes of content, without the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* most bytes of content ever held; 0: no cap */
} kt_dynbuf;

typedef enum kt_dynbuf_rc {
    KT_DYNBUF_OK = 0,
    KT_DYNBUF_TOO_LARGE, /* the content would pass the cap: nothing was added */
    KT_DYNBUF_NO_MEMORY, /* nothing was added */
} kt_dynbuf_rc;

/* An empty buffer that will hold at most max bytes of content (0: no cap). */
void kt_dynbuf_init(kt_dynbuf *b, size_t max);
/* Appends n bytes of data. */
kt_dynbuf_rc kt_dynbuf_add(kt_dynbuf *b, const void *data, size_t n);
/* Appends a NUL-terminated string. */
kt_dynbuf_rc kt_dynbuf_add_str(kt_dynbuf *b, const char *s);
/* Hands over the content as a malloc'd NUL-terminated string ("" for an empty buffer), its length
 * in *len if len is not NULL, and leaves the buffer empty (same cap); NULL when out of memory.
 * The result holds what the buffer held: free it with kt_secret_free. */
char *kt_dynbuf_take(kt_dynbuf *b, size_t *len);
/* Wipes and frees the allocation; the buffer is empty again (same cap). */
void kt_dynbuf_free(kt_dynbuf *b);

#endif
