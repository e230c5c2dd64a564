/* The conversation: how the core talks to a person through whichever front end runs it. */
#ifndef KT_CONV_H
#define KT_CONV_H

#include <stdbool.h>

typedef struct kt_conv {
    /* Asks a question; *answer is a malloc'd string the core wipes and frees. Returns 0, or -1 when
     * no answer can be had (no terminal, cancelled). */
    int (*prompt)(void *data, const char *message, bool echo, char **answer);
    void (*info)(void *data, const char *message);
    void *data;
} kt_conv;

/* While the core waits for the person to do something elsewhere (confirm a device binding request
 * in the Kontist app or in an email), set on a context with kt_ctx_set_progress. A context
 * without it waits quietly and can only be stopped by its timeout. */
typedef struct kt_conv_progress {
    /* Called a few times a second while waiting, with what is awaited and the seconds waited so
     * far, and once with message NULL when the wait is over (to clear a status line). For display
     * only: a front end without a terminal shows nothing. May be NULL. */
    void (*waiting)(void *data, const char *message, long elapsed_s);
    /* True once the person asked to stop (Ctrl-C): the core then gives up at its next step with
     * KT_ERR_CONV "cancelled". May be NULL. */
    bool (*cancelled)(void *data);
    void *data;
} kt_conv_progress;

#endif
