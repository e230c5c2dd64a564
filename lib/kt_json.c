#include <config.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "kt_json.h"
#include "kt_secret.h"
#include "kt_util.h"

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
 * literals, JSON only has structure, numbers and true/false/null: a text json-c accepted is
 * refused still when it holds any other character there. */
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

/* Reads the text with json-c into *out (NULL for a JSON null); the size and NUL checks are done
 * already. */
static int kt_json_tokenize(const kt_json_doc *doc, const char *text, size_t len, json_object **out,
                            kt_error *err)
{
    struct json_tokener *tok;
    enum json_tokener_error jerr;
    json_object *obj;
    size_t end;

    /* Trailing data is allowed by json-c only to be refused below with a clearer message. */
    tok = kt_json_tokener_new(doc->max_depth, JSON_TOKENER_STRICT |
                                                  JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                                  JSON_TOKENER_VALIDATE_UTF8);
    *out = NULL;
    if (tok == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    obj = json_tokener_parse_ex(tok, text, (int)len);
    end = json_tokener_get_parse_end(tok);
    if (json_tokener_get_error(tok) == json_tokener_continue && end == len) {
        /* All input consumed but a bare number is not known to be complete: end it. Anything else
         * still open now fails as truncated. */
        obj = json_tokener_parse_ex(tok, "", 1);
        if (json_tokener_get_error(tok) != json_tokener_success) {
            kt_error_set(err, doc->kind, "%s is not valid JSON (truncated)", doc->what);
            goto fail;
        }
    }
    jerr = json_tokener_get_error(tok);
    if (jerr != json_tokener_success) {
        kt_error_set(err, doc->kind, "%s is not valid JSON (%s)", doc->what,
                     json_tokener_error_desc(jerr));
        goto fail;
    }
    while (end < len && kt_json_ws(text[end]))
        end++;
    if (end != len) {
        kt_error_set(err, doc->kind, "%s has data after the JSON object", doc->what);
        goto fail;
    }
    if (!kt_json_lexically_strict(text, len)) {
        kt_error_set(err, doc->kind, "%s is not valid JSON (not strict JSON)", doc->what);
        goto fail;
    }
    kt_json_tokener_free_wiped(tok);
    *out = obj;
    return 0;

fail:
    kt_json_put_wiped(obj);
    kt_json_tokener_free_wiped(tok);
    return -1;
}

struct json_object *kt_json_parse_doc(const kt_json_doc *doc, const char *text, size_t len,
                                      kt_error *err)
{
    json_object *obj;

    if (text == NULL || len == 0) {
        kt_error_set(err, doc->kind, "%s is not valid JSON (empty)", doc->what);
        return NULL;
    }
    if (len > doc->max_size) {
        kt_error_set(err, doc->kind, "%s is larger than %zu bytes", doc->what, doc->max_size);
        return NULL;
    }
    if (memchr(text, '\0', len) != NULL) {
        kt_error_set(err, doc->kind, "%s contains a NUL byte", doc->what);
        return NULL;
    }
    if (kt_json_tokenize(doc, text, len, &obj, err) != 0)
        return NULL;
    /* json-c gives a JSON null as a NULL object: not an object either. */
    if (obj == NULL || !json_object_is_type(obj, json_type_object)) {
        kt_error_set(err, doc->kind, "%s is not a JSON object", doc->what);
        kt_json_put_wiped(obj);
        return NULL;
    }
    return obj;
}

struct json_object *kt_json_parse_text(const char *body, size_t len, const char *what,
                                       kt_error *err)
{
    const kt_json_doc doc = {what != NULL ? what : "response", KT_ERR_PROTOCOL, KT_JSON_MAX_TEXT,
                             KT_JSON_MAX_DEPTH};

    return kt_json_parse_doc(&doc, body, len, err);
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

/* Finds member key: 1 with *v set, 0 when it counts as absent, -1 when that is an error. */
static int kt_json_member(const kt_json_doc *doc, json_object *obj, const char *key, unsigned flags,
                          json_object **v, kt_error *err)
{
    *v = NULL;
    if (obj != NULL && json_object_object_get_ex(obj, key, v) &&
        (*v != NULL || (flags & KT_JSON_NULLABLE) == 0))
        return 1;
    if (flags & KT_JSON_REQUIRED)
        return kt_error_set(err, doc->kind, "%s has no \"%s\"", doc->what, key);
    return 0;
}

int kt_json_string(const kt_json_doc *doc, struct json_object *obj, const char *key, unsigned flags,
                   size_t max_len, char **out, kt_error *err)
{
    json_object *v;
    const char *s;
    size_t len;
    int found;

    *out = NULL;
    found = kt_json_member(doc, obj, key, flags, &v, err);
    if (found <= 0)
        return found;
    if (!json_object_is_type(v, json_type_string))
        return kt_error_set(err, doc->kind, "%s: \"%s\" is not a string", doc->what, key);
    s = json_object_get_string(v);
    len = (size_t)json_object_get_string_len(v);
    if (len == 0 && (flags & KT_JSON_MAY_BE_EMPTY) == 0)
        return kt_error_set(err, doc->kind, "%s: \"%s\" is empty", doc->what, key);
    if (strlen(s) != len)
        return kt_error_set(err, doc->kind, "%s: \"%s\" is malformed (a NUL byte)", doc->what, key);
    if ((flags & KT_JSON_PRINTABLE) && kt_has_control(s))
        return kt_error_set(err, doc->kind, "%s: \"%s\" is malformed (a control character)",
                            doc->what, key);
    if (max_len > 0 && len > max_len)
        return kt_error_set(err, doc->kind, "%s: \"%s\" is too long", doc->what, key);
    *out = strdup(s);
    if (*out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return 0;
}

int kt_json_int64(const kt_json_doc *doc, struct json_object *obj, const char *key, unsigned flags,
                  int64_t min, int64_t max, int64_t *out, kt_error *err)
{
    json_object *v;
    int64_t n;
    int found;

    found = kt_json_member(doc, obj, key, flags, &v, err);
    if (found <= 0)
        return found;
    if (!json_object_is_type(v, json_type_int))
        return kt_error_set(err, doc->kind, "%s: \"%s\" is not an integer", doc->what, key);
    n = json_object_get_int64(v);
    if (n < min || n > max || n == INT64_MIN || n == INT64_MAX)
        return kt_error_set(err, doc->kind, "%s: \"%s\" is out of range", doc->what, key);
    *out = n;
    return 0;
}

int kt_json_bool(const kt_json_doc *doc, struct json_object *obj, const char *key, unsigned flags,
                 bool *out, kt_error *err)
{
    json_object *v;
    int found;

    found = kt_json_member(doc, obj, key, flags, &v, err);
    if (found <= 0)
        return found;
    if (!json_object_is_type(v, json_type_boolean))
        return kt_error_set(err, doc->kind, "%s: \"%s\" is not a boolean", doc->what, key);
    *out = json_object_get_boolean(v);
    return 0;
}

int kt_json_get_string(struct json_object *obj, const char *key, char **out, const char *what,
                       kt_error *err)
{
    const kt_json_doc doc = {what != NULL ? what : "response", KT_ERR_PROTOCOL, KT_JSON_MAX_TEXT,
                             KT_JSON_MAX_DEPTH};

    if (out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "no output");
    return kt_json_string(&doc, obj, key, KT_JSON_REQUIRED, 0, out, err);
}

/* --- writing ---------------------------------------------------------------------------------- */

/* Deeper than any document the core writes; the bit set in has_members has room for it. */
#define KT_JSON_WRITER_DEPTH 8

void kt_json_writer_init(kt_json_writer *w, size_t max, unsigned style)
{
    memset(w, 0, sizeof(*w));
    kt_dynbuf_init(&w->out, max);
    w->style = style;
}

static void kt_json_raw(kt_json_writer *w, const char *s, size_t n)
{
    if (!w->failed && kt_dynbuf_add(&w->out, s, n) != KT_DYNBUF_OK)
        w->failed = true;
}

/* A string literal, escaped as json-c escapes it (no "\/"), and DEL as \u007f too. */
static void kt_json_quoted(kt_json_writer *w, const char *s)
{
    static const char escaped[] = "\"\\\b\f\n\r\t", letters[] = "\"\\bfnrt";
    const char *run = s, *short_esc;
    char esc[8];

    kt_json_raw(w, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c >= 0x20 && c != 0x7f && c != '"' && c != '\\')
            continue;
        kt_json_raw(w, run, (size_t)(s - run));
        run = s + 1;
        short_esc = strchr(escaped, c); /* c is never NUL here */
        if (short_esc != NULL)
            snprintf(esc, sizeof(esc), "\\%c", letters[short_esc - escaped]);
        else
            snprintf(esc, sizeof(esc), "\\u%04x", c);
        kt_json_raw(w, esc, strlen(esc));
        kt_wipe(esc, sizeof(esc));
    }
    kt_json_raw(w, run, (size_t)(s - run));
    kt_json_raw(w, "\"", 1);
}

static void kt_json_newline(kt_json_writer *w, unsigned depth)
{
    static const char spaces[] = "                "; /* 2 * KT_JSON_WRITER_DEPTH */

    if ((w->style & KT_JSON_STYLE_PRETTY) == 0)
        return;
    kt_json_raw(w, "\n", 1);
    kt_json_raw(w, spaces, 2 * depth);
}

/* The separator and "key": before a member of the innermost open object. */
static void kt_json_key(kt_json_writer *w, const char *key)
{
    uint32_t bit;

    if (w->depth == 0 || key == NULL) {
        w->failed = true; /* members belong in an object */
        return;
    }
    bit = 1u << (w->depth - 1);
    if (w->has_members & bit)
        kt_json_raw(w, ",", 1);
    w->has_members |= bit;
    kt_json_newline(w, w->depth);
    kt_json_quoted(w, key);
    kt_json_raw(w, ":", 1);
}

void kt_json_open(kt_json_writer *w, const char *key)
{
    if (w->failed)
        return;
    if (w->depth >= KT_JSON_WRITER_DEPTH || (key == NULL) != (w->depth == 0) ||
        (w->depth == 0 && w->out.len > 0)) {
        w->failed = true; /* one top-level object; every other object is a member */
        return;
    }
    if (key != NULL)
        kt_json_key(w, key);
    kt_json_raw(w, "{", 1);
    w->depth++;
    w->has_members &= ~(1u << (w->depth - 1));
}

void kt_json_close(kt_json_writer *w)
{
    if (w->failed)
        return;
    if (w->depth == 0) {
        w->failed = true;
        return;
    }
    if (w->has_members & (1u << (w->depth - 1)))
        kt_json_newline(w, w->depth - 1);
    w->depth--;
    kt_json_raw(w, "}", 1);
}

void kt_json_put_string(kt_json_writer *w, const char *key, const char *value)
{
    if (w->failed || value == NULL)
        return;
    kt_json_key(w, key);
    kt_json_quoted(w, value);
}

void kt_json_put_int64(kt_json_writer *w, const char *key, int64_t value)
{
    char num[24];

    if (w->failed)
        return;
    kt_json_key(w, key);
    snprintf(num, sizeof(num), "%" PRId64, value);
    kt_json_raw(w, num, strlen(num));
}

void kt_json_put_bool(kt_json_writer *w, const char *key, bool value)
{
    if (w->failed)
        return;
    kt_json_key(w, key);
    kt_json_raw(w, value ? "true" : "false", value ? 4 : 5);
}

void kt_json_put_pairs(kt_json_writer *w, const char *const *pairs)
{
    size_t i;

    for (i = 0; !w->failed && pairs[i] != NULL; i += 2) {
        if (pairs[i + 1] == NULL)
            w->failed = true;
        kt_json_put_string(w, pairs[i], pairs[i + 1]);
    }
}

char *kt_json_writer_finish(kt_json_writer *w, size_t *len)
{
    char *text = NULL;

    if (!w->failed && w->depth == 0 && w->out.len > 0) {
        if (w->style & KT_JSON_STYLE_FILE)
            kt_json_raw(w, "\n", 1);
        if (!w->failed)
            text = kt_dynbuf_take(&w->out, len);
    }
    kt_json_writer_discard(w);
    return text;
}

void kt_json_writer_discard(kt_json_writer *w)
{
    kt_dynbuf_free(&w->out);
    w->depth = 0;
    w->has_members = 0;
    w->failed = false;
}

char *kt_json_build(const char *const *pairs)
{
    kt_json_writer w;

    if (pairs == NULL)
        return NULL;
    kt_json_writer_init(&w, 0, KT_JSON_STYLE_COMPACT);
    kt_json_open(&w, NULL);
    kt_json_put_pairs(&w, pairs);
    kt_json_close(&w);
    return kt_json_writer_finish(&w, NULL);
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
