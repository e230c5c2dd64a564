/* Talking to the person: prompts on the controlling terminal (echo off for secrets), one line from
 * standard input only when the command was told so (--password-stdin, --otp-stdin), messages on
 * stderr. */
#ifndef KA_TERMINAL_H
#define KA_TERMINAL_H

#include <stdbool.h>
#include <stddef.h>

#include "kontist.h"

/* Longest answer accepted (password, OTP, username), without the newline. */
#define KA_ANSWER_MAX 1024

typedef struct ka_term {
    const char *prog;         /* prefix of messages on stderr */
    bool stdin_only;          /* answers come from standard input (--password-stdin and such) */
    bool no_prompt;           /* nobody may be asked (credential mode): prompts fail at once */
    const char *stdin_option; /* the option that makes answers come from standard input, for
                                 messages ("--otp-stdin") */
} ka_term;

/* Reads one line from fd, at most max bytes before the newline; the newline (and a CR before it)
 * is dropped. A NUL byte or an overlong line is an error. Returns 0 with *out set (wipe with
 * kt_secret_free), 1 at end of input before any byte, or -1 with err set. */
int ka_read_line(int fd, size_t max, char **out, kt_error *err);

/* Asks on /dev/tty, with echo off unless `echo`; the terminal's settings are restored on every
 * path, signals included. Returns 0 with *answer, 1 when the process has no terminal, -1 with
 * err set. */
int ka_tty_ask(const char *prompt, bool echo, char **answer, kt_error *err);

/* Whether secrets can be asked for: 0 when the process has a controlling terminal, else -1 with
 * KT_ERR_CONV and a message that names `option` (the way to give the answer on standard input
 * instead) and, when standard input is a terminal that is not the controlling one (su -c), says
 * so. Commands call it before they read or send anything, so that they refuse at once. */
int ka_term_check(const char *option, kt_error *err);

/* Refuses (KT_ERR_CONV, a message naming option) when standard input is a terminal: the
 * --*-stdin options read secrets from pipes, never from a terminal that would echo them. */
int ka_stdin_secret_check(const char *option, kt_error *err);
/* Asks the way the helper does: with stdin_only, one line from standard input; otherwise on the
 * terminal, and without one it refuses as ka_term_check does (standard input is never read in
 * its place: it may be a terminal that would echo the secret). No answer is KT_ERR_CONV. */
int ka_ask(const ka_term *t, const char *prompt, bool echo, char **answer, kt_error *err);

/* A conversation for the core on top of ka_ask, with info and errors on stderr. */
kt_conv ka_term_conv(ka_term *t);

#endif
