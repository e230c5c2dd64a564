/* What pam_kontist.so and kontist-pam-helper say to each other over their socket.
 *
 * The module sends a request: `key=value` lines (`password_len` among them), then a line
 * `password`, then exactly password_len bytes of password. It keeps its end open: the helper reads
 * the request up to that length, not to the end of the stream.
 *
 * At most once per request, and only after the bank has accepted the password, the helper may
 * ask for the PIN of the token that holds the user's own device key (one that needs a PIN its URI
 * does not source): a line `ask_pin=TOKEN LABEL`. The module asks the person in the PAM
 * conversation and answers with a line `pin_len=N` and N bytes of PIN (N = 0: the conversation
 * gave none). A second question is a broken helper, never answered (a token counts failed PINs).
 * A wrong password therefore never brings a PIN prompt and never reaches the token.
 *
 * With push MFA (`mfa=` naming push), the helper announces the wait for the person before its
 * answer: a first line `push_wait=SECONDS` (the time the challenge stays open), sent as soon as
 * the challenge exists, while the helper goes on polling it. The module then prompts in the PAM
 * conversation and reads on. A login asks for a PIN (device factor) or announces a push wait
 * (push factor), never both.
 *
 * The helper ends with its answer: `key=value` lines up to the end of the stream. Values are one
 * line each; neither side ever puts a token or the client secret on the wire, and the password
 * and the PIN go only from the module to the helper. The answer names the factor used
 * (`factor=`) and why a device was passed over for push (`passed_over=`). */
#ifndef KT_WIRE_H
#define KT_WIRE_H

#include <stdbool.h>
#include <stddef.h>

/* The largest request or result either side accepts (the password is capped lower). */
#define KT_WIRE_MAX 16384
/* The request format's version: the first field of every request; the helper refuses others, so
 * a module and a helper from different builds fail closed instead of misreading each other. */
#define KT_WIRE_VERSION "4"
/* The longest token PIN the module sends and the helper accepts. */
#define KT_WIRE_PIN_MAX 256
/* The key of the push wait notice, the first line of an answer when there is one. */
#define KT_WIRE_PUSH_WAIT "push_wait"
/* The line that separates the request's fields from the password. */
#define KT_WIRE_PASSWORD_LINE "password\n"
/* The start of the helper's PIN question (`ask_pin=LABEL\n`). */
#define KT_WIRE_ASK_PIN "ask_pin="

/* Appends `key=value\n` to buf (of size size, holding *len bytes). A value with a newline or a
 * NUL is cut at it; false when the line does not fit. */
bool kt_wire_add(char *buf, size_t size, size_t *len, const char *key, const char *value);
/* Finds `key=` at the start of a line among the first len bytes of text and copies the value
 * (up to the end of the line) into out, NUL-terminated and cut to size. False when absent. */
bool kt_wire_get(const char *text, size_t len, const char *key, char *out, size_t size);
/* Writes all len bytes to fd, a socket (MSG_NOSIGNAL: a peer that went away is an error, not a
 * SIGPIPE that kills the process) or, failing that, a pipe or file. 0, or -1 with errno. */
int kt_wire_send_all(int fd, const char *data, size_t len);

#endif
