/* One error type for the whole core: a kind that front ends map to PAM codes or exit codes,
 * and a human-readable message that never carries a secret. */
#ifndef KT_ERROR_H
#define KT_ERROR_H

typedef enum kt_err_kind {
    KT_OK = 0,
    KT_ERR_BAD_CREDENTIALS, /* wrong username/password: the token endpoint refused the password */
    KT_ERR_LOGIN_REQUIRED,  /* refresh token or access token rejected or absent: log in again */
    KT_ERR_MFA_FAILED,      /* the server rejected a device signature, OTP, challenge or device */
    KT_ERR_NOT_ENROLLED,    /* no device record for this user */
    KT_ERR_KEY_UNUSABLE,    /* device key missing, unreadable, wrong permissions or wrong type */
    KT_ERR_UNAVAILABLE,     /* network, TLS, timeout, deadline, HTTP 5xx only (never 4xx/429) */
    KT_ERR_PROTOCOL,        /* the server answered something that breaks the contract */
    KT_ERR_CONFIG,          /* bad configuration, bad client credentials (invalid_client) */
    KT_ERR_CONV,            /* the conversation failed or the person gave no answer */
    KT_ERR_IO,              /* local files: permissions, ownership, disk */
    KT_ERR_INTERNAL,        /* out of memory, library failure, bug */
    /* HTTP 429 from any endpoint. Not "unavailable": anyone can push the bank's rate limit (wrong
     * passwords for someone's account), so it must never open a PAM stack's fallback. */
    KT_ERR_RATE_LIMITED,
    /* A user's own files name another Kontist identity than root pinned. */
    KT_ERR_IDENTITY_MISMATCH,
    KT_ERR_NO_SUCH_USER,     /* the local account does not exist (PAM) */
    KT_ERR_NOT_CONFIRMED,    /* a token is there but did not pass MFA, and a confirmed one is due */
    KT_ERR_BAD_REQUEST,      /* a caller's request is malformed (a git credential request) */
    KT_ERR_ALREADY_ENROLLED, /* this machine already holds a device for the user */
} kt_err_kind;

/* One past the last kind, for tables indexed by kind. */
#define KT_ERR_KIND_COUNT (KT_ERR_ALREADY_ENROLLED + 1)

/* What the bank's answers mean, by endpoint and HTTP status, never by the shape of the body (an
 * RFC 6749 object, {"message"}, an HTML page or nothing all mean the same). kt_http_answer_error
 * and kt_http_status_error map the statuses, kt_oauth, kt_device and kt_graphql their
 * endpoints; kontist-auth(1) and pam_kontist(8) show the same table to people.
 *
 *   answer                         token endpoint                 REST (devices), GraphQL
 *   2xx with a usable answer       success                        success
 *   2xx with GraphQL "errors"      -                              refused (UNAUTHENTICATED:
 *                                                                 LOGIN_REQUIRED)
 *   401                            as any other 4xx               LOGIN_REQUIRED
 *   any other 4xx (400 403 404     BAD_CREDENTIALS (password      refused: MFA_FAILED (404 on
 *   409 410 422 ...), or a 2xx     grant), LOGIN_REQUIRED         creating a device challenge:
 *   with an OAuth "error"          (refresh grant); an RFC body   NOT_ENROLLED)
 *                                  with invalid_client: CONFIG
 *   429, or 5xx with Retry-After   RATE_LIMITED                   RATE_LIMITED
 *   other 5xx, network, TLS,       UNAVAILABLE                    UNAVAILABLE
 *   timeout
 *   a 2xx that breaks the          PROTOCOL                       PROTOCOL
 *   contract, 1xx, 3xx
 *
 * The message names the call and the status and carries the bank's own words from a JSON body
 * (kt_json_server_words: "error" and "error_description", or "message", or the messages of a
 * GraphQL "errors" array), printable ASCII, at most KT_JSON_SERVER_TEXT_MAX characters; an HTML
 * or other non-JSON body is never copied. */
typedef struct kt_error {
    kt_err_kind kind;
    char message[512];
} kt_error;

/* Records the first error only: a cleanup path cannot overwrite the cause. Always returns -1 so
 * callers can write `return kt_error_set(err, ...);`. err may be NULL. */
int kt_error_set(kt_error *err, kt_err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kt_error_clear(kt_error *err);
/* Records KT_ERR_RATE_LIMITED as "WHAT: rate limited (HTTP 429)[, retry after N s][: DETAIL]";
 * retry_after is the server's Retry-After in seconds, or -1 when it sent none. */
int kt_error_set_rate_limited(kt_error *err, const char *what, long retry_after,
                              const char *detail);
/* The Retry-After seconds a KT_ERR_RATE_LIMITED error carries, or -1 (none, or another kind). */
long kt_error_retry_after(const kt_error *err);
/* Stable lowercase name of a kind, for logs ("bad_credentials", "unavailable", ...). */
const char *kt_err_kind_name(kt_err_kind kind);

#endif
