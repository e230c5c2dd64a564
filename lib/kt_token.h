/* A token set: what a login or refresh yields and what the cache keeps. */
#ifndef KT_TOKEN_H
#define KT_TOKEN_H

#include <stdbool.h>
#include <time.h>

#include "kt_error.h"

/* Records which client a fresh login's set was issued to, and when: every front end that stores
 * a login calls it, so that the cache can tell later whether its client may refresh the tokens. */
int kt_token_set_stamp(kt_token_set *t, const char *client_id, time_t login_at, kt_error *err);

/* Reads the claims of a JWT payload without checking its signature (the server checks it; we only
 * need exp and whether it is confirmed). *exp is 0 when the payload has no exp claim; a present exp
 * must be a positive integer. confirmed: the payload has a cnf object. Returns -1 with
 * KT_ERR_PROTOCOL for a malformed JWT (not three dot-separated parts, bad base64url, payload not a
 * JSON object, longer than KT_TOKEN_MAX). */
int kt_jwt_peek(const char *jwt, time_t *exp, bool *confirmed, kt_error *err);

/* What the core reads from a JWT's claims. The bank's documentation does not say what `sub` holds
 * (a username or an id), so it is compared only with other tokens' `sub`, never with a username. */
typedef struct kt_jwt_claims {
    time_t exp;     /* 0: no exp claim */
    time_t iat;     /* 0: no iat claim */
    bool confirmed; /* a cnf object is present */
    char sub[256];  /* "" when absent */
    char kid[256];  /* cnf.kid, "" when absent */
} kt_jwt_claims;

/* As kt_jwt_peek, with every claim above. exp must be a positive integer when present; iat, sub
 * and cnf.kid that are malformed (not a positive integer, not a printable string shorter than
 * the buffer) read as absent: they are only compared, never a reason to refuse a token. */
int kt_jwt_read(const char *jwt, kt_jwt_claims *claims, kt_error *err);

#endif
