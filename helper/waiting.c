#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "waiting.h"

static volatile sig_atomic_t waiting_signo;
static const int waiting_signals[KA_WAIT_NSIGNALS] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static void on_signal(int signo)
{
    waiting_signo = signo;
}

static bool cancelled(void *data)
{
    (void)data;
    return waiting_signo != 0;
}

static void show(void *data, const char *message, long elapsed_s)
{
    static const char spin[] = "|/-\\";
    ka_waiting *w = data;

    if (!w->tty)
        return;
    if (message == NULL) {
        if (w->shown)
            fputs("\r\033[K", stderr);
        w->shown = false;
    } else {
        fprintf(stderr, "\r\033[K%s: %c %s... %ld:%02ld (Ctrl-C to stop)", w->prog,
                spin[w->tick++ % 4], message, elapsed_s / 60, elapsed_s % 60);
        w->shown = true;
    }
    fflush(stderr);
}

kt_conv_progress ka_waiting_progress(ka_waiting *w, const char *prog)
{
    kt_conv_progress p = {show, cancelled, w, NULL};

    w->prog = prog;
    w->tty = isatty(STDERR_FILENO) == 1;
    w->shown = false;
    w->tick = 0;
    return p;
}

void ka_waiting_catch(ka_waiting *w)
{
    struct sigaction sa;

    waiting_signo = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < KA_WAIT_NSIGNALS; i++) {
        sigaction(waiting_signals[i], NULL, &w->saved[i]);
        if (w->saved[i].sa_handler != SIG_IGN)
            sigaction(waiting_signals[i], &sa, NULL);
    }
}

int ka_waiting_release(ka_waiting *w)
{
    for (size_t i = 0; i < KA_WAIT_NSIGNALS; i++)
        sigaction(waiting_signals[i], &w->saved[i], NULL);
    return (int)waiting_signo;
}
