/* JSON on json-c: strict parsing of API answers, reading the server's words out of an error body,
 * and wiping every copy json-c makes of a secret (tokens, passwords, signatures, key references)
 * before json-c frees it. json-c has no allocator hook, so the copies are wiped where they are:
 * the string values of an object tree, the tokener's scratch buffer and the half-built values of
 * a failed parse, and the buffer an object is serialised into. Growing buffers are realloc'd by
 * json-c itself; the old blocks it frees then are out of reach. */
#ifndef KT_JSON_H
#define KT_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "kt_error.h"

/* The longest JSON text the core parses: what an HTTP answer may carry (KT_HTTP_MAX_BODY). */
#define KT_JSON_MAX_TEXT (64 * 1024)

struct json_object;
struct json_tokener;

/* Longest server text (code, description or message) copied into an error message. */
#define KT_JSON_SERVER_TEXT_MAX 200

/* Checks status 2xx and media type application/json, then parses strictly (kt_json_parse_text).
 * Returns a json_object to be freed with kt_json_put_wiped. */
struct json_object *kt_json_parse_response(long status, const char *content_type, const char *body,
                                           size_t len, const char *what, kt_error *err);
/* The same without the status check. */
struct json_object *kt_json_parse_body(const char *content_type, const char *body, size_t len,
                                       const char *what, kt_error *err);
/* Strict parse of a whole text into one JSON object, whatever a Content-Type said: no NUL bytes,
 * valid UTF-8, nothing but whitespace after the value, depth-limited. Errors are KT_ERR_PROTOCOL.
 */
struct json_object *kt_json_parse_text(const char *body, size_t len, const char *what,
                                       kt_error *err);
/* True for "application/json", in any case, with or without parameters ("; charset=utf-8"). */
bool kt_json_media_type(const char *content_type);

/* Copies a required non-empty string member. */
int kt_json_get_string(struct json_object *obj, const char *key, char **out, const char *what,
                       kt_error *err);

/* The server's own words in an error body, for a message: from a JSON object (whatever the
 * Content-Type says) the string members "error" into code and "error_description", else
 * "message", into text; failing those, from a GraphQL "errors" array the messages of the first
 * three errors (joined with "; ") into text and the first extensions.code into code. Anything
 * else (an HTML page, plain text, an empty body) gives "" in both:
 * such bodies are never copied. Both come out as printable ASCII (other bytes, and the quote and
 * backslash that would confuse a log line, become '?'), cut to the size given, at most
 * KT_JSON_SERVER_TEXT_MAX characters, with "..." when cut. code or text may be NULL. */
void kt_json_server_text(const char *body, size_t len, char *code, size_t code_size, char *text,
                         size_t text_size);
/* Any text from the server (a device name, an address) made fit for a message the same way:
 * printable ASCII, '?' for anything else and for quotes and backslashes, at most
 * KT_JSON_SERVER_TEXT_MAX characters with "..." when cut. NULL gives "". */
void kt_json_sanitize(const char *in, char *out, size_t size);
/* "CODE: TEXT", "CODE" or "TEXT" from kt_json_server_text, at most KT_JSON_SERVER_TEXT_MAX
 * characters; "" when the body has no words for us. out needs KT_JSON_SERVER_TEXT_MAX + 1. */
void kt_json_server_words(const char *body, size_t len, char *out, size_t size);

/* Wipes every string value in obj's tree (object members, array elements), in place. */
void kt_json_wipe(struct json_object *obj);
/* Wipes every string in obj (tokens) and puts it; NULL is fine. */
void kt_json_put_wiped(struct json_object *obj);
/* json_tokener_new_ex with flags set; free it with kt_json_tokener_free_wiped. */
struct json_tokener *kt_json_tokener_new(int max_depth, int flags);
/* Wipes the tokener's scratch buffer (every string of the text passed through it) and the
 * values a failed or unfinished parse left half-built; the tokener stays usable. */
void kt_json_tokener_wipe(struct json_tokener *tok);
/* kt_json_tokener_wipe, then json_tokener_free. NULL is fine. */
void kt_json_tokener_free_wiped(struct json_tokener *tok);
/* Serialises obj (json_object_to_json_string_ext flags) into a malloc'd copy and wipes the
 * object's own serialisation buffer; the copy is the caller's to free with kt_secret_free. */
char *kt_json_to_string(struct json_object *obj, int flags);
/* Serialises {"k1":"v1",...} from a NULL-terminated list of key, value pairs; free the result
 * with kt_secret_free (values may be secrets). */
char *kt_json_build(const char *const *pairs);

#endif
