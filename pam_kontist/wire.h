/* What pam_kontist.so and kontist-pam-helper say to each other over their socket.
 *
 * The module sends a request: `key=value` lines, then a line `password`, then the secrets' raw
 * bytes up to the end of the stream: first the token PIN (`pin_len` bytes, 0 when there is
 * none), then the password. The helper answers with `key=value` lines. Values are one line
 * each; neither side ever puts a token or the client secret on the wire, and the password and
 * the PIN go only from the module to the helper.
 *
 * A device key on a PKCS#11 token that needs a PIN the request did not carry (and its URI has no
 * pin-source) ends the helper before the bank is asked anything, with `need_pin=TOKEN LABEL` in
 * its answer. The module may then ask for the PIN once, in the PAM conversation, and run the
 * helper again with it; never more than once per authentication (a token counts failed PINs).
 *
 * With push MFA (`mfa=` naming push), the helper announces the wait for the person before its
 * answer: a first line `push_wait=SECONDS` (the time the challenge stays open), sent as soon as
 * the challenge exists, while the helper goes on polling it. The module then prompts in the PAM
 * conversation and reads on; the answer's `key=value` lines follow the notice, and end with the
 * factor used (`factor=`) and why a device was passed over for push (`passed_over=`). */
#ifndef KT_WIRE_H
#define KT_WIRE_H

#include <stdbool.h>
#include <stddef.h>

/* The largest request or result either side accepts (the password is capped lower). */
#define KT_WIRE_MAX 16384
/* The request format's version: the first field of every request; the helper refuses others, so
 * a module and a helper from different builds fail closed instead of misreading each other. */
#define KT_WIRE_VERSION "3"
/* The longest token PIN the module sends and the helper accepts. */
#define KT_WIRE_PIN_MAX 256
/* The key of the push wait notice, the first line of an answer when there is one. */
#define KT_WIRE_PUSH_WAIT "push_wait"
/* The line that separates the request's fields from the password. */
#define KT_WIRE_PASSWORD_LINE "password\n"

/* Appends `key=value\n` to buf (of size size, holding *len bytes). A value with a newline or a
 * NUL is cut at it; false when the line does not fit. */
bool kt_wire_add(char *buf, size_t size, size_t *len, const char *key, const char *value);
/* Finds `key=` at the start of a line among the first len bytes of text and copies the value
 * (up to the end of the line) into out, NUL-terminated and cut to size. False when absent. */
bool kt_wire_get(const char *text, size_t len, const char *key, char *out, size_t size);

#endif
