/* HTTPS client on libcurl: HTTPS only, TLS >= 1.2, verification always on, no redirects, connect
 * and per-request timeouts bounded by the flow deadline, response size cap, one connection reused
 * for all requests made through the same kt_http. libcurl is loaded by the first request, not
 * before (kt_curl.h): a kt_http that never sends costs nothing. */
#ifndef KT_HTTP_H
#define KT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "kt_config.h"
#include "kt_error.h"
#include "kt_json.h"
#include "kt_util.h"

#define KT_HTTP_MAX_BODY KT_JSON_MAX_TEXT

typedef struct kt_http kt_http;

typedef struct kt_http_response {
    long status;
    char *body; /* NUL-terminated, may hold secrets: freed with kt_http_response_free (wiped) */
    size_t body_len;
    char *content_type; /* lowercased media type without parameters, or NULL */
    long retry_after;   /* seconds from Retry-After, or -1 */
    time_t date;        /* the server's clock from the Date header (IMF-fixdate), 0 if none */
} kt_http_response;

typedef enum kt_http_auth { KT_AUTH_NONE, KT_AUTH_BASIC_CLIENT, KT_AUTH_BEARER } kt_http_auth;

typedef struct kt_http_request {
    const char *method;       /* "GET" or "POST" */
    const char *path;         /* appended to base_url, e.g. "/api/oauth/token" */
    const char *content_type; /* NULL: no body */
    const char *body;
    size_t body_len;
    kt_http_auth auth;
    const char *bearer; /* with KT_AUTH_BEARER */
} kt_http_request;

/* The config must outlive the handle. Checks base_url is https; loads nothing. */
kt_http *kt_http_new(const kt_config *cfg, kt_error *err);
void kt_http_free(kt_http *http);
/* Absolute CLOCK_MONOTONIC deadline in milliseconds for every later request (0: none beyond the
 * per-request timeout). */
void kt_http_set_deadline(kt_http *http, uint64_t deadline_ms);
/* Sends one request. Network/TLS failures, timeouts and a passed deadline give KT_ERR_UNAVAILABLE;
 * an oversized body gives KT_ERR_PROTOCOL; a libcurl that cannot be loaded (first request only)
 * gives KT_ERR_INTERNAL. HTTP error statuses are NOT errors here: the caller reads resp->status. */
int kt_http_send(kt_http *http, const kt_http_request *req, kt_http_response *resp, kt_error *err);
void kt_http_response_free(kt_http_response *resp);
/* Number of TCP connections curl opened so far (for tests and debug logs). */
long kt_http_connections(const kt_http *http);

/* Maps an answer that is not the caller's success to an error by what its status means, whatever
 * the body looks like: 429 -> KT_ERR_RATE_LIMITED and 5xx -> KT_ERR_UNAVAILABLE (both with the
 * Retry-After seconds when retry_after >= 0), any 4xx -> refused_kind (the bank refused on
 * purpose), anything else (1xx, 3xx, an unexpected 2xx) -> KT_ERR_PROTOCOL. The message carries
 * the server's own words from a JSON body (kt_json_server_words), never an HTML page. */
int kt_http_answer_error(long status, const char *body, size_t body_len, long retry_after,
                         const char *what, kt_err_kind refused_kind, kt_error *err);
/* kt_http_answer_error for a Bearer endpoint, where 401 means the access token was rejected:
 * KT_ERR_LOGIN_REQUIRED. */
int kt_http_status_error(const kt_http_response *resp, const char *what, kt_err_kind refused_kind,
                         kt_error *err);

/* libcurl creates the file named by SSLKEYLOGFILE when it initialises and writes the TLS secrets of
 * every connection to it. A privileged process (set-user-ID: su, sudo) runs with its unprivileged
 * caller's environment, so there that would let the caller create or append to any file as root
 * and read the login's traffic: refused with KT_ERR_CONFIG. kt_http_new checks this with
 * privileged = the process runs in secure-execution mode. */
int kt_http_check_environment(bool privileged, kt_error *err);

#endif
