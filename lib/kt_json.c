#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "kt_json.h"
#include "kt_secret.h"

/* API responses are flat objects; anything nested deeper is not ours. */
#define KT_JSON_MAX_DEPTH 8
/* No tree we wipe is deeper than its tokener allowed (at most KT_JSON_MAX_DEPTH); the bound only
 * keeps the recursion finite whatever it is handed. */
#define KT_JSON_WIPE_DEPTH 64

static void kt_json_printable(const char *in, size_t in_len, char *out, size_t size);

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

bool kt_json_media_type(const char *content_type)
{
    static const char json[] = "application/json";
    const char *p = content_type;

    if (p == NULL)
        return false;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, json, sizeof(json) - 1) != 0)
        return false;
    for (p += sizeof(json) - 1; *p == ' ' || *p == '\t'; p++)
        ;
    return *p == '\0' || *p == ';';
}

struct json_object *kt_json_parse_text(const char *body, size_t len, const char *what,
                                       kt_error *err)
{
    struct json_tokener *tok = NULL;
    json_object *obj = NULL;
    size_t end;

    if (what == NULL)
        what = "response";
    if (body == NULL || len == 0) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: empty response", what);
        return NULL;
    }
    if (len > KT_JSON_MAX_TEXT || memchr(body, '\0', len) != NULL ||
        !kt_json_lexically_strict(body, len)) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: malformed response", what);
        return NULL;
    }
    tok = kt_json_tokener_new(KT_JSON_MAX_DEPTH, JSON_TOKENER_STRICT |
                                                     JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                                     JSON_TOKENER_VALIDATE_UTF8);
    if (tok == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        return NULL;
    }
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
    kt_json_tokener_free_wiped(tok);
    return obj;

fail:
    kt_json_put_wiped(obj);
    kt_json_tokener_free_wiped(tok);
    return NULL;
}

struct json_object *kt_json_parse_body(const char *content_type, const char *body, size_t len,
                                       const char *what, kt_error *err)
{
    char ct[64];

    if (!kt_json_media_type(content_type)) {
        kt_json_printable(content_type != NULL ? content_type : "missing",
                          content_type != NULL ? strlen(content_type) : 7, ct, sizeof(ct));
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: not a JSON response (Content-Type %s)",
                     what != NULL ? what : "response", ct);
        return NULL;
    }
    return kt_json_parse_text(body, len, what, err);
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
            kt_json_put_wiped(v);
            goto out;
        }
    }
    out = kt_json_to_string(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
out:
    kt_json_put_wiped(obj);
    return out;
}

char *kt_json_to_string(struct json_object *obj, int flags)
{
    const char *text;
    size_t len = 0;
    char *out;

    if (obj == NULL)
        return NULL;
    /* The text lives in the object's own print buffer until the object is freed. */
    text = json_object_to_json_string_length(obj, flags, &len);
    if (text == NULL)
        return NULL;
    out = malloc(len + 1);
    if (out != NULL) {
        memcpy(out, text, len);
        out[len] = '\0';
    }
    kt_wipe((void *)(uintptr_t)text, len);
    return out;
}

/* json-c has no hook for wiping; its strings are heap memory it owns and frees right after, so
 * overwriting them just before the put is safe. */
static void kt_json_wipe_tree(json_object *obj, int depth)
{
    const char *s;

    if (obj == NULL || depth > KT_JSON_WIPE_DEPTH)
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

void kt_json_wipe(struct json_object *obj)
{
    kt_json_wipe_tree(obj, 0);
}

void kt_json_put_wiped(struct json_object *obj)
{
    if (obj == NULL)
        return;
    kt_json_wipe_tree(obj, 0);
    json_object_put(obj);
}

struct json_tokener *kt_json_tokener_new(int max_depth, int flags)
{
    struct json_tokener *tok = json_tokener_new_ex(max_depth);

    if (tok != NULL)
        json_tokener_set_flags(tok, flags);
    return tok;
}

/* json-c 0.16 declares struct json_tokener and struct printbuf publicly (marked "do not access");
 * there is no other way to reach the copies a tokener keeps. Every string of the text is
 * assembled in tok->pb before it becomes a value, and an unfinished parse keeps its values on
 * tok->stack[0..depth] until json_tokener_free puts them. */
void kt_json_tokener_wipe(struct json_tokener *tok)
{
    int i;

    if (tok == NULL)
        return;
    if (tok->pb != NULL && tok->pb->buf != NULL && tok->pb->size > 0)
        kt_wipe(tok->pb->buf, (size_t)tok->pb->size);
    if (tok->stack == NULL)
        return;
    for (i = 0; i <= tok->depth && i < tok->max_depth; i++) {
        kt_json_wipe_tree(tok->stack[i].current, 0);
        if (tok->stack[i].obj_field_name != NULL)
            kt_wipe(tok->stack[i].obj_field_name, strlen(tok->stack[i].obj_field_name));
    }
}

void kt_json_tokener_free_wiped(struct json_tokener *tok)
{
    if (tok == NULL)
        return;
    kt_json_tokener_wipe(tok);
    json_tokener_free(tok);
}

/* Server text as printable ASCII: one '?' for each other character (a UTF-8 sequence counts once)
 * and for '"' and '\\', which could fake fields in a log line. Cut at max characters, "..." then.
 */
static void kt_json_printable(const char *in, size_t in_len, char *out, size_t size)
{
    size_t max = size - 1, o = 0, i;

    if (max > KT_JSON_SERVER_TEXT_MAX)
        max = KT_JSON_SERVER_TEXT_MAX;
    for (i = 0; i < in_len && o < max; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c >= 0x80 && c < 0xc0)
            continue; /* UTF-8 continuation byte: its lead byte gave the '?' already */
        out[o++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    /* Whatever is left may be continuation bytes of the last character only. */
    while (i < in_len && (unsigned char)in[i] >= 0x80 && (unsigned char)in[i] < 0xc0)
        i++;
    if (i < in_len && max >= 3) {
        o = o > max - 3 ? max - 3 : o;
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static void kt_json_copy_member(json_object *obj, const char *key, char *out, size_t size)
{
    json_object *v = NULL;

    if (out == NULL || size == 0 || out[0] != '\0')
        return;
    if (json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string))
        kt_json_printable(json_object_get_string(v), (size_t)json_object_get_string_len(v), out,
                          size);
}

/* A GraphQL answer's words: the "message" of its first errors (a server sends at most 3), joined
 * with "; ", and the extensions.code of the first as the code. */
static void kt_json_graphql_errors(json_object *obj, char *code, size_t code_size, char *text,
                                   size_t text_size)
{
    char joined[3 * KT_JSON_SERVER_TEXT_MAX + 8];
    json_object *errors = NULL, *ext = NULL, *v = NULL;
    size_t n, i, used = 0;

    if (!json_object_object_get_ex(obj, "errors", &errors) ||
        !json_object_is_type(errors, json_type_array))
        return;
    joined[0] = '\0';
    n = json_object_array_length(errors);
    for (i = 0; i < n && i < 3; i++) {
        json_object *e = json_object_array_get_idx(errors, i);
        const char *m;
        size_t mlen;

        if (!json_object_is_type(e, json_type_object))
            continue;
        if (code != NULL && json_object_object_get_ex(e, "extensions", &ext) &&
            json_object_is_type(ext, json_type_object))
            kt_json_copy_member(ext, "code", code, code_size);
        if (!json_object_object_get_ex(e, "message", &v) ||
            !json_object_is_type(v, json_type_string))
            continue;
        m = json_object_get_string(v);
        mlen = strlen(m);
        if (mlen > KT_JSON_SERVER_TEXT_MAX)
            mlen = KT_JSON_SERVER_TEXT_MAX;
        if (used > 0 && used + 2 < sizeof(joined)) {
            memcpy(joined + used, "; ", 2);
            used += 2;
        }
        if (used + mlen >= sizeof(joined))
            mlen = sizeof(joined) - used - 1;
        memcpy(joined + used, m, mlen);
        used += mlen;
        joined[used] = '\0';
    }
    if (text != NULL && text_size > 0 && text[0] == '\0' && used > 0)
        kt_json_printable(joined, used, text, text_size);
}

void kt_json_sanitize(const char *in, char *out, size_t size)
{
    if (out == NULL || size == 0)
        return;
    out[0] = '\0';
    if (in != NULL)
        kt_json_printable(in, strlen(in), out, size);
}

void kt_json_server_text(const char *body, size_t len, char *code, size_t code_size, char *text,
                         size_t text_size)
{
    kt_error ignored;
    json_object *obj;

    if (code != NULL && code_size > 0)
        code[0] = '\0';
    if (text != NULL && text_size > 0)
        text[0] = '\0';
    /* Only a JSON object has words we can pick out safely; an HTML page is not shown at all. */
    memset(&ignored, 0, sizeof(ignored));
    obj = kt_json_parse_text(body, len, "error body", &ignored);
    if (obj == NULL)
        return;
    kt_json_copy_member(obj, "error", code, code_size);
    kt_json_copy_member(obj, "error_description", text, text_size);
    kt_json_copy_member(obj, "message", text, text_size);
    kt_json_graphql_errors(obj, code, code_size, text, text_size);
    kt_json_put_wiped(obj);
}

void kt_json_server_words(const char *body, size_t len, char *out, size_t size)
{
    char code[KT_JSON_SERVER_TEXT_MAX + 1], text[KT_JSON_SERVER_TEXT_MAX + 1];
    char both[2 * KT_JSON_SERVER_TEXT_MAX + 3];

    if (out == NULL || size == 0)
        return;
    kt_json_server_text(body, len, code, sizeof(code), text, sizeof(text));
    snprintf(both, sizeof(both), "%s%s%s", code, code[0] != '\0' && text[0] != '\0' ? ": " : "",
             text);
    kt_json_printable(both, strlen(both), out, size);
}
