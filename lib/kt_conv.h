/* The conversation: how the core talks to a person through whichever front end runs it. */
#ifndef KT_CONV_H
#define KT_CONV_H

#include <stdbool.h>

typedef struct kt_conv {
    /* Asks a question; *answer is a malloc'd string the core wipes and frees. Returns 0, or -1 when
     * no answer can be had (no terminal, cancelled). */
    int (*prompt)(void *data, const char *message, bool echo, char **answer);
    void (*info)(void *data, const char *message);
    void (*error)(void *data, const char *message);
    void *data;
} kt_conv;

#endif
