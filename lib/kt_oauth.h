/* OAuth2 token endpoint: password grant and refresh grant, per RFC 6749 and the Kontist contract.
 */
#ifndef KT_OAUTH_H
#define KT_OAUTH_H

#include <stddef.h>
#include <time.h>

#include "kt_ctx.h"
#include "kt_token.h"

/* application/x-www-form-urlencoded encoding of one value: RFC 3986 unreserved characters kept,
 * every other byte as %XX (a space becomes %20, which form decoders read like "+").
 * Returns a malloc'd string or NULL. */
char *kt_form_encode(const char *value);
/* Builds "k1=v1&k2=v2" from a NULL-terminated list of key, value pairs; values may be secrets so
 * the result is wiped by the caller with kt_secret_free. */
char *kt_form_build(const char *const *pairs);

/* Parses a token endpoint response (any status), classifying it by what the status means:
 * - 2xx with a token response as JSON object (the Content-Type is not what decides): fills t
 *   (expires_at = now + expires_in, confirmed from the JWT's cnf claim when the token is a JWT);
 *   a 2xx without a usable token is KT_ERR_PROTOCOL, but one carrying an OAuth "error" instead
 *   of a token is a refusal as below;
 * - any 4xx but 429, whatever the body: the bank refused: KT_ERR_BAD_CREDENTIALS (password grant)
 *   or KT_ERR_LOGIN_REQUIRED (refresh grant); only an RFC 6749 body with error=invalid_client is
 *   KT_ERR_CONFIG;
 * - 429 -> KT_ERR_RATE_LIMITED, 5xx -> KT_ERR_UNAVAILABLE, anything else -> KT_ERR_PROTOCOL.
 * The server's error code and description or message, made printable, go into the message. */
typedef enum kt_grant { KT_GRANT_PASSWORD, KT_GRANT_REFRESH } kt_grant;
int kt_oauth_parse_token_response(long status, const char *content_type, const char *body,
                                  size_t len, kt_grant grant, time_t now, kt_token_set *t,
                                  kt_error *err);

int kt_oauth_password_grant(kt_ctx *ctx, const char *username, const char *password,
                            kt_token_set *t, kt_error *err);
/* On success t holds the new access token and, when the response omitted refresh_token, a copy of
 * the old one (never lost); with rotation, the new one. On failure t may still hold a well-formed
 * refresh token from a 2xx answer the checks refused (the bank may have retired the old one by
 * then), alone: free t either way. */
int kt_oauth_refresh_grant(kt_ctx *ctx, const char *refresh_token, kt_token_set *t, kt_error *err);

#endif
