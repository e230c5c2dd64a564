#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt_dynbuf.h"
#include "kt_secret.h"

/* The first allocation: a typical API answer or token cache fits without growing. */
#define KT_DYNBUF_FIRST 4096

void kt_dynbuf_init(kt_dynbuf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

/* Copies into a larger block and wipes the old one: realloc would free it unwiped. */
static kt_dynbuf_rc kt_dynbuf_grow(kt_dynbuf *b, size_t need)
{
    size_t limit = b->max == 0 ? SIZE_MAX : b->max + 1;
    size_t cap = b->cap == 0 ? KT_DYNBUF_FIRST : b->cap;
    char *buf;

    while (cap < need && cap <= SIZE_MAX / 2)
        cap *= 2;
    if (cap < need)
        cap = need;
    if (cap > limit)
        cap = limit;
    buf = malloc(cap);
    if (buf == NULL)
        return KT_DYNBUF_NO_MEMORY;
    if (b->buf != NULL) {
        memcpy(buf, b->buf, b->len + 1);
        kt_wipe(b->buf, b->cap);
        free(b->buf);
    }
    b->buf = buf;
    b->cap = cap;
    return KT_DYNBUF_OK;
}

kt_dynbuf_rc kt_dynbuf_add(kt_dynbuf *b, const void *data, size_t n)
{
    size_t max = b->max == 0 ? SIZE_MAX - 1 : b->max;

    if (n > max - b->len)
        return KT_DYNBUF_TOO_LARGE;
    if (b->buf == NULL || b->len + n + 1 > b->cap) {
        kt_dynbuf_rc rc = kt_dynbuf_grow(b, b->len + n + 1);

        if (rc != KT_DYNBUF_OK)
            return rc;
    }
    if (n > 0)
        memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return KT_DYNBUF_OK;
}

kt_dynbuf_rc kt_dynbuf_add_str(kt_dynbuf *b, const char *s)
{
    return kt_dynbuf_add(b, s, strlen(s));
}

char *kt_dynbuf_take(kt_dynbuf *b, size_t *len)
{
    char *out;

    if (b->buf == NULL && kt_dynbuf_add(b, "", 0) != KT_DYNBUF_OK)
        return NULL;
    out = b->buf;
    if (len != NULL)
        *len = b->len;
    b->buf = NULL;
    b->len = b->cap = 0;
    return out;
}

void kt_dynbuf_free(kt_dynbuf *b)
{
    if (b->buf != NULL) {
        kt_wipe(b->buf, b->cap);
        free(b->buf);
    }
    b->buf = NULL;
    b->len = b->cap = 0;
}
