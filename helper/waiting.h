/* Waiting for the person to do something elsewhere (approve a push challenge in the Kontist app):
 * a status line on the terminal, and Ctrl-C (or SIGTERM, SIGHUP, SIGQUIT) noted so that the
 * core stops at its next step and the command can clean up before the signal ends it. */
#ifndef KA_WAITING_H
#define KA_WAITING_H

#include <signal.h>
#include <stdbool.h>

#include "kontist.h"

#define KA_WAIT_NSIGNALS 4

typedef struct ka_waiting {
    const char *prog;
    bool tty; /* standard error is a terminal: the status line goes there, nowhere else */
    bool shown;
    unsigned tick;
    struct sigaction saved[KA_WAIT_NSIGNALS];
} ka_waiting;

/* Progress callbacks for the core (waiting line, cancelled), on top of w. */
kt_conv_progress ka_waiting_progress(ka_waiting *w, const char *prog);
/* Catches the signals (no SA_RESTART: a sleep ends at once); ignored ones stay ignored. */
void ka_waiting_catch(ka_waiting *w);
/* Puts the dispositions back; returns the signal that arrived meanwhile, or 0. */
int ka_waiting_release(ka_waiting *w);

#endif
