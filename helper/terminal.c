#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "kontist.h"
#include "terminal.h"

/* State for the signal handler only: it must put the terminal back before the process dies or
 * stops, and a handler can reach nothing but globals. */
static volatile sig_atomic_t tty_signo;
static volatile sig_atomic_t tty_echo_off;
static int tty_fd = -1;
static struct termios tty_saved;

/* Every signal whose default action ends or stops the process and that arrives from outside
 * (not the synchronous faults, SIGSEGV and the like, whose handler could never return). */
static const int tty_signals[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,   SIGALRM,
                                  SIGPIPE, SIGUSR1, SIGUSR2, SIGVTALRM, SIGPROF,
                                  SIGXCPU, SIGXFSZ, SIGTSTP, SIGTTIN,   SIGTTOU};
#define TTY_NSIGNALS (sizeof(tty_signals) / sizeof(tty_signals[0]))
/* How often a prompt that waits for input looks whether a signal arrived. */
#define TTY_SIGNAL_POLL_MS 100

static void tty_on_signal(int signo)
{
    int saved_errno = errno;

    if (tty_echo_off)
        tcsetattr(tty_fd, TCSANOW, &tty_saved);
    tty_signo = signo;
    errno = saved_errno;
}

static void tty_catch(struct sigaction *old)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = tty_on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: the blocked read() must return so the prompt can be abandoned. */
    for (size_t i = 0; i < TTY_NSIGNALS; i++) {
        sigaction(tty_signals[i], NULL, &old[i]);
        if (old[i].sa_handler != SIG_IGN)
            sigaction(tty_signals[i], &sa, NULL);
    }
}

static void tty_release(const struct sigaction *old)
{
    for (size_t i = 0; i < TTY_NSIGNALS; i++)
        sigaction(tty_signals[i], &old[i], NULL);
}

static int read_line_until(int fd, size_t max, char **out, bool stop_on_signal, kt_error *err)
{
    char *buf = malloc(max + 2);
    size_t len = 0;
    int rc = -1;

    *out = NULL;
    if (buf == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    for (;;) {
        char c;
        ssize_t n;

        /* A signal that lands after the last check but before read() blocks would not interrupt
         * it: look again at least every TTY_SIGNAL_POLL_MS, and read only what is there. */
        if (stop_on_signal) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};

            if (tty_signo != 0) {
                kt_error_set(err, KT_ERR_CONV, "interrupted");
                goto out;
            }
            if (poll(&pfd, 1, TTY_SIGNAL_POLL_MS) <= 0)
                continue;
        }
        n = read(fd, &c, 1);

        if (n < 0 && errno == EINTR && !(stop_on_signal && tty_signo != 0))
            continue;
        if (n < 0) {
            if (errno == EINTR)
                kt_error_set(err, KT_ERR_CONV, "interrupted");
            else
                kt_error_set(err, KT_ERR_IO, "cannot read the answer: %s", strerror(errno));
            goto out;
        }
        if (n == 0) {
            if (len == 0) {
                rc = 1;
                goto out;
            }
            break; /* a last line without newline still counts */
        }
        if (c == '\n')
            break;
        if (c == '\0') {
            kt_error_set(err, KT_ERR_CONV, "the answer contains a NUL byte");
            goto out;
        }
        /* One extra byte for a CR that a CRLF line ending puts before the newline. */
        if (len > max) {
            kt_error_set(err, KT_ERR_CONV, "the answer is longer than %zu bytes", max);
            goto out;
        }
        buf[len++] = c;
    }
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    if (len > max) {
        kt_error_set(err, KT_ERR_CONV, "the answer is longer than %zu bytes", max);
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
    rc = 0;
out:
    if (buf != NULL) {
        kt_wipe(buf, max + 2);
        free(buf);
    }
    return rc;
}

int ka_read_line(int fd, size_t max, char **out, kt_error *err)
{
    return read_line_until(fd, max, out, false, err);
}

static void write_all(int fd, const char *s)
{
    size_t len = strlen(s);

    while (len > 0) {
        ssize_t n = write(fd, s, len);

        /* Not after a caught signal: a background job's write to a terminal with tostop gets
         * SIGTTOU and EINTR on every attempt; the caller stops the process instead. */
        if (n < 0 && errno == EINTR && tty_signo == 0)
            continue;
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

/* One attempt at a prompt; a signal that arrived is left in tty_signo for the caller.
 *
 * For a secret, echo goes off before the prompt is written: whatever the person types once they
 * see the prompt (fast typing, a paste) is never echoed. TCSANOW, not TCSAFLUSH: what was typed
 * ahead stays in the input queue and is read as the answer, instead of being thrown away so that
 * the next line counts as the password. Restoring uses TCSADRAIN for the same reason: lines typed
 * after the answer are left for whoever reads the terminal next. */
static int tty_ask_once(int fd, const char *prompt, bool echo, char **answer, kt_error *err)
{
    struct sigaction old[TTY_NSIGNALS];
    struct termios quiet;
    int rc;

    tty_signo = 0;
    tty_fd = fd;
    tty_catch(old);
    if (!echo) {
        if (tcgetattr(fd, &tty_saved) != 0) {
            tty_release(old);
            return kt_error_set(err, KT_ERR_CONV, "cannot read the terminal's settings: %s",
                                strerror(errno));
        }
        quiet = tty_saved;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
        quiet.c_lflag |= ICANON;
        tty_echo_off = 1;
        if (tcsetattr(fd, TCSANOW, &quiet) != 0) {
            tty_echo_off = 0;
            tty_release(old);
            return kt_error_set(err, KT_ERR_CONV, "cannot turn off echo: %s", strerror(errno));
        }
    }
    if (tty_signo == 0)
        write_all(fd, prompt);
    rc = tty_signo != 0 ? kt_error_set(err, KT_ERR_CONV, "interrupted")
                        : read_line_until(fd, KA_ANSWER_MAX, answer, true, err);
    if (!echo) {
        tcsetattr(fd, TCSADRAIN, &tty_saved);
        tty_echo_off = 0;
        /* The Enter key was not echoed either. */
        if (tty_signo == 0)
            write_all(fd, "\n");
    }
    tty_release(old);
    return rc;
}

static bool is_stop_signal(int signo)
{
    return signo == SIGTSTP || signo == SIGTTIN || signo == SIGTTOU;
}

int ka_tty_ask(const char *prompt, bool echo, char **answer, kt_error *err)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    int rc;

    *answer = NULL;
    if (fd < 0)
        return 1;
    for (;;) {
        kt_error local = {KT_OK, ""};
        int signo;

        rc = tty_ask_once(fd, prompt, echo, answer, &local);
        signo = tty_signo;
        tty_signo = 0;
        if (signo == 0) {
            /* End of input on the terminal is a refusal to answer, not "no terminal": nothing
             * else may be read in its place. */
            if (rc == 1)
                rc = kt_error_set(err, KT_ERR_CONV, "no answer on the terminal");
            else if (rc < 0)
                kt_error_set(err, local.kind, "%s", local.message);
            break;
        }
        kt_secret_clear(answer);
        /* The terminal is restored and the old dispositions are back: deliver the signal as if we
         * had never caught it. A stop signal returns here on SIGCONT, and the prompt starts over.
         */
        raise(signo);
        if (!is_stop_signal(signo)) {
            rc = kt_error_set(err, KT_ERR_CONV, "interrupted");
            break;
        }
    }
    close(fd);
    return rc;
}

int ka_term_check(const char *option, kt_error *err)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);

    if (fd >= 0) {
        close(fd);
        return 0;
    }
    /* `su USER -c CMD` runs CMD in a new session: standard input is still the terminal, but it
     * is no longer the process's controlling terminal, so /dev/tty cannot be opened and reading
     * standard input would show the secret as it is typed. */
    if (isatty(STDIN_FILENO))
        return kt_error_set(err, KT_ERR_CONV,
                            "standard input is a terminal, but not this process's controlling "
                            "terminal (as under 'su USER -c ...'), so typing could not be hidden: "
                            "use 'su - USER' and run the command in that shell, or give the "
                            "answer through a pipe with %s",
                            option);
    return kt_error_set(err, KT_ERR_CONV,
                        "no terminal to ask on, and %s was not given: run this on a terminal, or "
                        "pass %s and give the answer as one line of standard input",
                        option, option);
}

int ka_stdin_secret_check(const char *option, kt_error *err)
{
    /* A --*-stdin option is for pipes: read from a terminal, the secret would be shown as it is
     * typed (as under 'su USER -c ...', where that terminal is not ours to switch echo off on). */
    if (isatty(STDIN_FILENO))
        return kt_error_set(err, KT_ERR_CONV,
                            "%s reads a pipe, but standard input is a terminal, which would show "
                            "what is typed: leave %s out and answer at the prompt, or pipe the "
                            "answer in (printf '%%s\\n' \"$SECRET\" | kontist-auth ... %s)",
                            option, option, option);
    return 0;
}

int ka_ask(const ka_term *t, const char *prompt, bool echo, char **answer, kt_error *err)
{
    int rc;

    *answer = NULL;
    if (t->no_prompt)
        return kt_error_set(err, KT_ERR_CONV, "cannot ask for input here: %s", prompt);
    if (!t->stdin_only) {
        rc = ka_tty_ask(prompt, echo, answer, err);
        if (rc == 1)
            /* Never standard input in its place: it may be a terminal echoing what is typed. */
            return ka_term_check(t->stdin_option != NULL ? t->stdin_option : "the --*-stdin option",
                                 err);
        return rc == 0 && *answer == NULL ? kt_error_set(err, KT_ERR_CONV, "no answer") : rc;
    }
    if (ka_stdin_secret_check(t->stdin_option != NULL ? t->stdin_option : "--*-stdin", err) != 0)
        return -1;
    rc = ka_read_line(STDIN_FILENO, KA_ANSWER_MAX, answer, err);
    if (rc == 1)
        return kt_error_set(err, KT_ERR_CONV, "nothing on standard input (%s)", prompt);
    return rc;
}

static int conv_prompt(void *data, const char *message, bool echo, char **answer)
{
    ka_term *t = data;
    kt_error err = {KT_OK, ""};

    /* The core's only questions are one-time codes, and those are secrets that are never
     * echoed, whatever echo the caller asked for. */
    (void)echo;
    /* The core turns a failed prompt into its own error; the reason is said here. */
    if (ka_ask(t, message, false, answer, &err) != 0) {
        fprintf(stderr, "%s: %s\n", t->prog, err.message);
        return -1;
    }
    return 0;
}

static void conv_say(void *data, const char *message)
{
    ka_term *t = data;

    fprintf(stderr, "%s: %s\n", t->prog, message);
}

kt_conv ka_term_conv(ka_term *t)
{
    kt_conv conv = {
        .prompt = t->no_prompt ? NULL : conv_prompt,
        .info = conv_say,
        .data = t,
    };

    return conv;
}
