#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "kt_graphql.h"
#include "kt_http.h"
#include "kt_json.h"
#include "kt_secret.h"

char *kt_graphql_body(const char *query, const char *const *variables)
{
    kt_json_writer w;

    if (query == NULL)
        return NULL;
    kt_json_writer_init(&w, 0, KT_JSON_STYLE_COMPACT);
    kt_json_open(&w, NULL);
    kt_json_put_string(&w, "query", query);
    if (variables != NULL) {
        kt_json_open(&w, "variables");
        kt_json_put_pairs(&w, variables);
        kt_json_close(&w);
    }
    kt_json_close(&w);
    return kt_json_writer_finish(&w, NULL);
}

/* A 2xx answer's "errors": the bank refused (or, UNAUTHENTICATED, wants a new login). */
static int kt_graphql_errors(const char *body, size_t len, const char *what,
                             kt_err_kind refused_kind, kt_error *err)
{
    char code[64], words[KT_JSON_SERVER_TEXT_MAX + 1];

    kt_json_server_text(body, len, code, sizeof(code), NULL, 0);
    kt_json_server_words(body, len, words, sizeof(words));
    if (strcmp(code, "UNAUTHENTICATED") == 0)
        return kt_error_set(err, KT_ERR_LOGIN_REQUIRED, "%s: access token rejected%s%s", what,
                            words[0] != '\0' ? ": " : "", words);
    return kt_error_set(err, refused_kind, "%s: refused%s%s", what, words[0] != '\0' ? ": " : "",
                        words);
}

int kt_graphql_answer(long status, const char *body, size_t len, long retry_after, const char *what,
                      const char *field, kt_err_kind refused_kind, struct json_object **value,
                      kt_error *err)
{
    json_object *obj, *v = NULL, *data = NULL, *out = NULL;
    int rc = -1;

    if (value == NULL || field == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    *value = NULL;
    if (what == NULL)
        what = "GraphQL request";
    if (status < 200 || status > 299) {
        kt_http_response resp = {.status = status,
                                 .body = (char *)(uintptr_t)body,
                                 .body_len = len,
                                 .retry_after = retry_after};
        return kt_http_status_error(&resp, what, refused_kind, err);
    }
    obj = kt_json_parse_text(body, len, what, err);
    if (obj == NULL)
        return -1;
    if (json_object_object_get_ex(obj, "errors", &v) && v != NULL &&
        !(json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0)) {
        if (!json_object_is_type(v, json_type_array))
            kt_error_set(err, KT_ERR_PROTOCOL, "%s: \"errors\" is not an array", what);
        else
            kt_graphql_errors(body, len, what, refused_kind, err);
        goto out;
    }
    if (!json_object_object_get_ex(obj, "data", &data) ||
        !json_object_is_type(data, json_type_object)) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: the answer has no data", what);
        goto out;
    }
    if (!json_object_object_get_ex(data, field, &out)) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: the answer has no %s", what, field);
        goto out;
    }
    *value = out != NULL ? json_object_get(out) : NULL;
    rc = 0;
out:
    json_object_put(obj);
    return rc;
}

int kt_graphql_call(kt_ctx *ctx, const char *access_token, const char *query,
                    const char *const *variables, const char *what, const char *field,
                    kt_err_kind refused_kind, struct json_object **value, long *retry_after,
                    kt_error *err)
{
    kt_http_request req = {
        .method = "POST",
        .path = KT_GRAPHQL_PATH,
        .content_type = "application/json",
        .auth = KT_AUTH_BEARER,
        .bearer = access_token,
    };
    kt_http_response resp;
    char *json;
    int rc;

    if (value != NULL)
        *value = NULL;
    if (retry_after != NULL)
        *retry_after = -1;
    if (ctx == NULL || value == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    json = kt_graphql_body(query, variables);
    if (json == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    req.body = json;
    req.body_len = strlen(json);
    rc = kt_http_send(ctx->http, &req, &resp, err);
    kt_secret_free(json);
    if (rc != 0)
        return -1;
    if (retry_after != NULL)
        *retry_after = resp.retry_after;
    rc = kt_graphql_answer(resp.status, resp.body, resp.body_len, resp.retry_after, what, field,
                           refused_kind, value, err);
    kt_http_response_free(&resp);
    return rc;
}
