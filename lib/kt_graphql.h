/* GraphQL over POST /api/graphql with a Bearer token: requests built with kt_json_writer (values
 * travel as variables, never pasted into the query) and answers classified by what they mean. */
#ifndef KT_GRAPHQL_H
#define KT_GRAPHQL_H

#include <stddef.h>

#include "kt_ctx.h"
#include "kt_error.h"

struct json_object;

#define KT_GRAPHQL_PATH "/api/graphql"

/* The request body {"query": QUERY, "variables": {NAME: VALUE, ...}} from a NULL-terminated list
 * of name, value pairs of string variables (NULL: no "variables"). malloc'd (free it with
 * kt_secret_free), or NULL when out of memory or a value is NULL. */
char *kt_graphql_body(const char *query, const char *const *variables);

/* What a GraphQL answer means (exposed for tests and fuzzing), whatever its Content-Type says:
 * - not 2xx: as every Bearer endpoint (kt_http_status_error): 401 -> KT_ERR_LOGIN_REQUIRED,
 *   429 -> KT_ERR_RATE_LIMITED, 5xx -> KT_ERR_UNAVAILABLE, any other 4xx -> refused_kind, with
 *   the server's words (those of a GraphQL "errors" array included);
 * - 2xx with a non-empty "errors" array: refused_kind with the messages of the first three, or
 *   KT_ERR_LOGIN_REQUIRED when the first error's extensions.code is "UNAUTHENTICATED";
 * - 2xx with data.FIELD: 0, *value a new reference to it (to put), NULL for a JSON null;
 * - anything else (not a JSON object, no data, no such field): KT_ERR_PROTOCOL. */
int kt_graphql_answer(long status, const char *body, size_t len, long retry_after, const char *what,
                      const char *field, kt_err_kind refused_kind, struct json_object **value,
                      kt_error *err);

/* Sends QUERY with VARIABLES (may be NULL) and reads data.FIELD as kt_graphql_answer does.
 * *retry_after (may be NULL) gets the answer's Retry-After seconds, or -1 (none, or no answer). */
int kt_graphql_call(kt_ctx *ctx, const char *access_token, const char *query,
                    const char *const *variables, const char *what, const char *field,
                    kt_err_kind refused_kind, struct json_object **value, long *retry_after,
                    kt_error *err);

#endif
