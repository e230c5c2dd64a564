/* Talking to the person: prompts on the controlling terminal (echo off for secrets), one line from
 * standard input when there is no terminal, messages on stderr. */
#ifndef KA_TERMINAL_H
#define KA_TERMINAL_H

#include <stdbool.h>
#include <stddef.h>

#include "kt_conv.h"
#include "kt_error.h"

/* Longest answer accepted (password, OTP, username), without the newline. */
#define KA_ANSWER_MAX 1024

typedef struct ka_term {
    const char *prog; /* prefix of messages on stderr */
    bool stdin_only;  /* answers come from standard input even when a terminal exists */
    bool no_prompt;   /* nobody may be asked (credential mode): prompts fail at once */
} ka_term;

/* Reads one line from fd, at most max bytes before the newline; the newline (and a CR before it)
 * is dropped. A NUL byte or an overlong line is an error. Returns 0 with *out set (wipe with
 * kt_secret_free), 1 at end of input before any byte, or -1 with err set. */
int ka_read_line(int fd, size_t max, char **out, kt_error *err);

/* Asks on /dev/tty, with echo off unless `echo`; the terminal's settings are restored on every
 * path, signals included. Returns 0 with *answer, 1 when the process has no terminal, -1 with
 * err set. */
int ka_tty_ask(const char *prompt, bool echo, char **answer, kt_error *err);

/* Asks the way the helper does: the terminal when there is one (and !stdin_only), otherwise one
 * line from standard input. No answer at all is KT_ERR_CONV. */
int ka_ask(const ka_term *t, const char *prompt, bool echo, char **answer, kt_error *err);

/* A conversation for the core on top of ka_ask, with info and errors on stderr. */
kt_conv ka_term_conv(ka_term *t);

#endif
