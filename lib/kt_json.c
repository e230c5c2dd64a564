#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "kt_device.h"
#include "kt_http.h"
#include "kt_secret.h"

/* API responses are flat objects; anything nested deeper is not ours. */
#define KT_JSON_MAX_DEPTH 8

static bool kt_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* json-c's strict mode still takes single-quoted member names and NaN/Infinity. Outside string
 * literals, JSON only has structure, numbers and true/false/null: refuse every other character
 * before json-c sees the text. */
static bool kt_json_lexically_strict(const char *s, size_t len)
{
    bool in_string = false;
    size_t i;

    for (i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"')
            in_string = true;
        else if (strchr("{}[],: \t\r\n0123456789+-.eEtrufalsn", c) == NULL)
            return false;
    }
    return true;
}

struct json_object *kt_json_parse_body(const char *content_type, const char *body, size_t len,
                                       const char *what, kt_error *err)
{
    struct json_tokener *tok = NULL;
    json_object *obj = NULL;
    size_t end;

    if (what == NULL)
        what = "response";
    if (content_type == NULL || strcmp(content_type, "application/json") != 0) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: not a JSON response (Content-Type %s)", what,
                     content_type != NULL ? content_type : "missing");
        return NULL;
    }
    if (body == NULL || len == 0) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: empty response", what);
        return NULL;
    }
    if (len > KT_HTTP_MAX_BODY || memchr(body, '\0', len) != NULL ||
        !kt_json_lexically_strict(body, len)) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: malformed response", what);
        return NULL;
    }
    tok = json_tokener_new_ex(KT_JSON_MAX_DEPTH);
    if (tok == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                    JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, body, (int)len);
    if (obj == NULL || json_tokener_get_error(tok) != json_tokener_success) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: malformed JSON", what);
        goto fail;
    }
    /* The whole body must be this one value; only whitespace may follow. */
    for (end = json_tokener_get_parse_end(tok); end < len; end++) {
        if (!kt_json_ws(body[end])) {
            kt_error_set(err, KT_ERR_PROTOCOL, "%s: trailing data after JSON", what);
            goto fail;
        }
    }
    if (!json_object_is_type(obj, json_type_object)) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: JSON is not an object", what);
        goto fail;
    }
    json_tokener_free(tok);
    return obj;

fail:
    kt_json_put_wiped(obj);
    json_tokener_free(tok);
    return NULL;
}

struct json_object *kt_json_parse_response(long status, const char *content_type, const char *body,
                                           size_t len, const char *what, kt_error *err)
{
    if (status < 200 || status > 299) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: unexpected HTTP status %ld",
                     what != NULL ? what : "response", status);
        return NULL;
    }
    return kt_json_parse_body(content_type, body, len, what, err);
}

int kt_json_get_string(struct json_object *obj, const char *key, char **out, const char *what,
                       kt_error *err)
{
    json_object *v = NULL;
    const char *s;
    int len;

    if (out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "no output");
    *out = NULL;
    if (what == NULL)
        what = "response";
    if (obj == NULL || !json_object_object_get_ex(obj, key, &v) || v == NULL)
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: missing \"%s\"", what, key);
    if (!json_object_is_type(v, json_type_string))
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: \"%s\" is not a string", what, key);
    s = json_object_get_string(v);
    len = json_object_get_string_len(v);
    if (s == NULL || len <= 0)
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: \"%s\" is empty", what, key);
    if (strlen(s) != (size_t)len)
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: \"%s\" holds a NUL byte", what, key);
    *out = strdup(s);
    if (*out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return 0;
}

char *kt_json_build(const char *const *pairs)
{
    json_object *obj;
    const char *text;
    char *out = NULL;
    size_t i;

    if (pairs == NULL)
        return NULL;
    obj = json_object_new_object();
    if (obj == NULL)
        return NULL;
    for (i = 0; pairs[i] != NULL; i += 2) {
        json_object *v;

        if (pairs[i + 1] == NULL)
            goto out;
        v = json_object_new_string(pairs[i + 1]);
        if (v == NULL)
            goto out;
        if (json_object_object_add(obj, pairs[i], v) != 0) {
            json_object_put(v);
            goto out;
        }
    }
    text = json_object_to_json_string_ext(obj,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (text != NULL)
        out = strdup(text);
out:
    kt_json_put_wiped(obj);
    return out;
}

/* json-c has no hook for wiping; its strings are heap memory it owns and frees right after, so
 * overwriting them just before the put is safe. */
static void kt_json_wipe_tree(json_object *obj, int depth)
{
    const char *s;

    if (obj == NULL || depth > KT_JSON_MAX_DEPTH + 1)
        return;
    switch (json_object_get_type(obj)) {
    case json_type_string:
        s = json_object_get_string(obj);
        kt_wipe((void *)(uintptr_t)s, (size_t)json_object_get_string_len(obj));
        break;
    case json_type_object: {
        json_object_object_foreach(obj, key, val)
        {
            (void)key;
            kt_json_wipe_tree(val, depth + 1);
        }
        break;
    }
    case json_type_array: {
        size_t i, n = json_object_array_length(obj);
        for (i = 0; i < n; i++)
            kt_json_wipe_tree(json_object_array_get_idx(obj, i), depth + 1);
        break;
    }
    default:
        break;
    }
}

void kt_json_put_wiped(struct json_object *obj)
{
    if (obj == NULL)
        return;
    kt_json_wipe_tree(obj, 0);
    json_object_put(obj);
}
