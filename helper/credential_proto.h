/* The git credential protocol (git-credential(1)): `key=value` lines ended by a blank line or end
 * of input. Only what kontist-auth needs is kept; unknown attributes are ignored. */
#ifndef KA_CREDENTIAL_PROTO_H
#define KA_CREDENTIAL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "kontist.h"

#define KA_CRED_LINE_MAX 16384        /* bytes per line, newline excluded */
#define KA_CRED_INPUT_MAX (64 * 1024) /* bytes per request */
#define KA_CRED_READ_TIMEOUT_MS 20000 /* git writes its request at once; a stuck one is dropped */

typedef struct ka_cred {
    char *protocol;
    char *host; /* with ":port" when one was given */
    char *path;
    char *username;
    char *password;    /* secret */
    bool cap_authtype; /* the caller announced capability[]=authtype */
} ka_cred;

/* Parses a request held in buf (len bytes). Stops at the first blank line. A NUL byte, a line
 * longer than KA_CRED_LINE_MAX, a line without '=' or with an empty key, or a bad url= value is
 * KT_ERR_CONFIG (the caller's fault), and *c is left empty. */
int ka_cred_parse(const char *buf, size_t len, ka_cred *c, kt_error *err);
/* Reads a request from fd up to its blank line or end of input, bounded in size and time, and
 * parses it. */
int ka_cred_read(int fd, ka_cred *c, kt_error *err);
void ka_cred_free(ka_cred *c);

/* True for a value that may be written as an attribute: no newline, no NUL, bounded. */
bool ka_cred_value_ok(const char *v);
/* Writes "key=value\n"; returns -1 for a value that cannot travel in the protocol. */
int ka_cred_write(FILE *out, const char *key, const char *value);

#endif
