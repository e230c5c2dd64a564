/* The core's side of the one error type (kt_error, in kontist.h): how answers become kinds. */
#ifndef KT_ERROR_H
#define KT_ERROR_H

#include "kontist.h"

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
 * Device administration (kt_devices) reads GraphQL answers as above; deleteBoundDevice answering
 * false is refused too (MFA_FAILED), and an id that listBoundDevices does not list is the
 * caller's mistake (BAD_REQUEST), found before anything is removed.
 *
 * The message names the call and the status and carries the bank's own words from a JSON body
 * (kt_json_server_words: "error" and "error_description", or "message", or the messages of a
 * GraphQL "errors" array), printable ASCII, at most KT_JSON_SERVER_TEXT_MAX characters; an HTML
 * or other non-JSON body is never copied. */

/* Records KT_ERR_RATE_LIMITED as "WHAT: rate limited (HTTP 429)[, retry after N s][: DETAIL]";
 * retry_after is the server's Retry-After in seconds, or -1 when it sent none. */
int kt_error_set_rate_limited(kt_error *err, const char *what, long retry_after,
                              const char *detail);

#endif
