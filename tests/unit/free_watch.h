/* For tests linked with -Wl,--wrap=free: watch(p, len) makes the next free(p) record whether the
 * block was all zero by then, so that a test can see that the core wiped a secret it dropped.
 * Include it in one file of the test program only. */
#ifndef KT_TEST_FREE_WATCH_H
#define KT_TEST_FREE_WATCH_H

#include <stdbool.h>
#include <stddef.h>

void __real_free(void *p);
void __wrap_free(void *p);

static const void *watched_block;
static size_t watched_len;
static int watched_freed;
static bool watched_was_wiped;

void __wrap_free(void *p)
{
    if (p != NULL && p == watched_block) {
        const unsigned char *b = p;
        size_t i;

        watched_was_wiped = true;
        for (i = 0; i < watched_len; i++)
            if (b[i] != 0)
                watched_was_wiped = false;
        watched_freed++;
        watched_block = NULL;
    }
    __real_free(p);
}

static void watch(const void *p, size_t len)
{
    watched_block = p;
    watched_len = len;
    watched_freed = 0;
    watched_was_wiped = false;
}

#endif
